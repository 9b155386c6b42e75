//! Argument groups shared by several stages.

use std::path::PathBuf;
use std::time::Duration;

use crate::competition::Profile;

/// Which competition rules apply: a built-in profile or a user's TOML file.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct CompetitionArgs {
    /// Built-in competition profile: sn9 (pretraining) or sn37 (finetuning).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// A competition profile TOML file (start from `valkit profile show sn9`).
    #[arg(long, value_name = "FILE")]
    pub competitions: Option<PathBuf>,
}

impl CompetitionArgs {
    /// The profile, or `None` where the group is optional (eval-losses) and neither was given.
    pub fn resolve_if_given(&self) -> anyhow::Result<Option<Profile>> {
        (self.profile.is_some() || self.competitions.is_some()).then(|| self.resolve()).transpose()
    }

    pub fn resolve(&self) -> anyhow::Result<Profile> {
        Ok(match (&self.profile, &self.competitions) {
            (_, Some(path)) => Profile::from_file(path)?,
            (Some(name), None) => Profile::builtin(name)?,
            (None, None) => anyhow::bail!("pass --profile sn9|sn37 or --competitions FILE"),
        })
    }
}

/// `--json`, for a subcommand that ends with a summary.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct JsonArg {
    /// Print the summary as one JSON line on stdout instead of prose on stderr.
    #[arg(long)]
    pub json: bool,
}

/// A duration flag given in seconds, refused when negative or not a number.
pub fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| anyhow::anyhow!("{flag} must be a non-negative number of seconds, got {value}"))
}

/// How to reach the chain: `--network` and its deadlines.
#[derive(Debug, Clone, clap::Args)]
pub struct ChainArgs {
    /// Deadline of each chain request (and of connecting), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub rpc_timeout: f64,
    /// Deadline of the whole command, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    pub deadline: f64,
}

impl ChainArgs {
    /// Runs `work` under the command's deadline; running out is an unreachable chain (exit 4).
    pub async fn within_deadline<T>(
        &self,
        endpoint: &str,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        within(seconds(self.deadline, "--deadline")?, "subtensor", endpoint, work).await
    }
}

/// Runs `work` under a command's `--deadline`: running out means `service` did not answer in
/// time, an unreachable remote (exit 4), and nothing is written.
pub async fn within<T>(
    deadline: Duration,
    service: &'static str,
    endpoint: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(crate::endpoint::Unreachable {
            service,
            endpoint: endpoint.to_string(),
            detail: format!("the command did not finish within --deadline {} s", deadline.as_secs_f64()),
        }
        .into()),
    }
}
