use std::path::PathBuf;

use super::args::{seconds, CompetitionArgs};
use crate::datasets::ClientOptions;
use crate::exit::Outcome;
use crate::files::Location;
use crate::hub;
use crate::printer::Printer;
use crate::stages::sample_batches::{self, SeedSource, TokenizerSource};

/// Sample a competition's evaluation batches, as the reference validators pick them.
#[derive(Debug, clap::Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Examples:\n  valkit sample-batches --profile sn9 --competition-id 4 \\\n      --metagraph metagraph.parquet -o batches.parquet\n  valkit sample-batches --profile sn9 --competition-id 4 \\\n      --metagraph metagraph.parquet --plan --json\n  valkit sample-batches --competitions my-subnet.toml --competition-id 1 \\\n      --seed 42 --tokenizer ./tokenizer/ -o batches.parquet"
)]
#[command(group(clap::ArgGroup::new("seed_source").required(true).args(["metagraph", "block_hash", "seed"])))]
#[command(group(clap::ArgGroup::new("output").required(true).args(["out", "plan"])))]
pub struct Args {
    #[command(flatten)]
    competition: CompetitionArgs,
    /// The competition whose eval tasks are sampled.
    #[arg(long, value_name = "ID")]
    competition_id: u16,
    /// Take the seed from the sync block hash recorded in this metagraph table.
    #[arg(long, value_name = "FILE")]
    metagraph: Option<String>,
    /// Derive the seed from this block hash (0x + 64 hex digits).
    #[arg(long, value_name = "0x…")]
    block_hash: Option<String>,
    /// Use this integer seed directly.
    #[arg(long, value_name = "N")]
    seed: Option<String>,
    /// The block whose schedule entry applies [default: the metagraph's block, else the latest entry].
    #[arg(long, value_name = "N")]
    block: Option<u64>,
    /// The datasets-server to ask for rows.
    #[arg(long, value_name = "URL", env = "VALKIT_DATASETS_ENDPOINT", default_value = ClientOptions::DEFAULT_ENDPOINT)]
    datasets_endpoint: String,
    /// The tokenizer: a directory or tokenizer.json, or REPO@REVISION from the Hugging Face cache
    /// [default: the competition's tokenizer at main].
    #[arg(long, value_name = "PATH|REPO@REV")]
    tokenizer: Option<String>,
    /// Deadline of each request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 15.0)]
    request_timeout: f64,
    /// Pause before retrying a failed request, in seconds (upstream waits 5).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    retry_delay: f64,
    /// Longest total wait on HTTP 429 over the whole command before the server counts as
    /// unreachable (exit 4), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    max_rate_limit_wait: f64,
    /// Deadline of the whole command, in seconds; past it the server counts as unreachable.
    #[arg(long, value_name = "SECS", default_value_t = 3600.0)]
    deadline: f64,
    /// Where to write the batches table (`-` for stdout, `s3://bucket/key` for an object store).
    #[arg(short, long, value_name = "FILE")]
    out: Option<String>,
    /// Print the pages each task would request, from the seed and /size alone; fetch no rows.
    #[arg(long)]
    plan: bool,
    #[command(flatten)]
    pub(super) json: super::args::JsonArg,
}

pub async fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let hub = hub::Config::from_env();
    let seed = match (args.metagraph, args.block_hash, args.seed) {
        (Some(m), _, _) => SeedSource::Metagraph(Location::parse(&m)?),
        (_, Some(h), _) => SeedSource::BlockHash(h),
        (_, _, Some(s)) => SeedSource::Seed(s),
        _ => anyhow::bail!("pass --metagraph, --block-hash or --seed"),
    };
    let tokenizer = args.tokenizer.map(|t| match t.split_once('@') {
        Some((repo, revision)) if !PathBuf::from(&t).exists() => TokenizerSource::Repo { repo: repo.into(), revision: revision.into() },
        _ => TokenizerSource::Path(PathBuf::from(t)),
    });
    let mut datasets = ClientOptions::new(args.datasets_endpoint, hub.token.clone());
    datasets.timeout = seconds(args.request_timeout, "--request-timeout")?;
    datasets.rate_limit_budget = seconds(args.max_rate_limit_wait, "--max-rate-limit-wait")?;
    let options = sample_batches::Options {
        profile: args.competition.resolve()?,
        competition_id: args.competition_id,
        seed,
        block: args.block,
        datasets,
        tokenizer,
        hub,
        out: Location::parse(args.out.as_deref().unwrap_or("-"))?,
        retry_delay: seconds(args.retry_delay, "--retry-delay")?,
    };
    if args.plan {
        let plans = sample_batches::plan(&options).await?;
        let mut out = printer.stdout();
        for plan in plans {
            use std::io::Write;
            if printer.json() {
                writeln!(out, "{}", crate::format::json_line(&plan)?)?;
            } else {
                writeln!(out, "{plan}")?;
            }
        }
        return Ok(Outcome::Done);
    }
    let deadline = seconds(args.deadline, "--deadline")?;
    let endpoint = options.datasets.endpoint.clone();
    let (outcome, summary) = super::args::within(deadline, "datasets server", &endpoint, sample_batches::run(&options)).await?;
    let lines: Vec<String> = summary
        .tasks
        .iter()
        .map(|t| match &t.error {
            None => format!("  {:<16} {:>3} batches from {} pages ({} failed requests)", t.task, t.batches, t.pages, t.failed_pages),
            Some(e) => format!("  {:<16} skipped: {}", t.task, crate::format::printable(e, &[])),
        })
        .collect();
    let human = format!(
        "competition {} with seed {}:\n{}\nwrote {}",
        summary.competition_id,
        summary.seed,
        lines.join("\n"),
        crate::format::printable(&summary.out, &[])
    );
    printer.writing_to(&options.out).summary(&human, &serde_json::to_value(&summary)?)?;
    Ok(outcome)
}
