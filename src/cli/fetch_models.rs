use super::args::{seconds, CompetitionArgs};
use crate::exit::Outcome;
use crate::files::Location;
use crate::hub;
use crate::printer::Printer;
use crate::stages::fetch_models;

/// Download and verify the models a step evaluates, pinned to their committed revisions.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit fetch-models --profile sn9 --metagraph metagraph.parquet \\\n      --tracker state/tracker.parquet -o models.parquet\n  HF_HUB_CACHE=$PWD/hf-cache valkit fetch-models --profile sn9 \\\n      --metagraph metagraph.parquet --all --jobs 4 -o models.parquet\n\nEvery uid of the metagraph gets a row: ok (with the snapshot path), skipped (no commitment,\ninactive competition, too recent, not in this step), rejected (limits, hash, format,\narchitecture) or failed (network or hub). Models are checked before their weights are\ndownloaded; verified snapshots are recorded in the cache and cost no request on the next run.\nHonours HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE."
)]
pub struct Args {
    #[command(flatten)]
    competition: CompetitionArgs,
    /// The metagraph table written by sync-metadata.
    #[arg(long, value_name = "FILE")]
    metagraph: String,
    /// The previous step's tracker: its keep sets and eval history choose the step's uids.
    #[arg(long, value_name = "FILE")]
    tracker: Option<String>,
    /// The current block [default: the block the metagraph was read at].
    #[arg(long, value_name = "N")]
    cur_block: Option<u64>,
    /// Put every eligible model in the step, not only those the step rules select.
    #[arg(long)]
    all: bool,
    /// Where to write the models table (`-` for stdout, `s3://bucket/key` for an object store).
    #[arg(short, long, value_name = "FILE")]
    out: String,
    /// Models fetched at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    jobs: usize,
    /// Deadline of each request (connect and idle read), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    request_timeout: f64,
    /// Longest total wait on HTTP 429 per request before the hub counts as unreachable, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    max_rate_limit_wait: f64,
    /// Deadline of the whole command, in seconds; models not done by then are failed rows.
    #[arg(long, value_name = "SECS", default_value_t = 6.0 * 3600.0)]
    deadline: f64,
    #[command(flatten)]
    pub(super) json: super::args::JsonArg,
}

pub async fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let options = fetch_models::Options {
        metagraph: Location::parse(&args.metagraph)?,
        tracker: args.tracker.as_deref().map(Location::parse).transpose()?,
        out: Location::parse(&args.out)?,
        profile: args.competition.resolve()?,
        current_block: args.cur_block,
        all: args.all,
        jobs: args.jobs,
        hub: hub::Config::from_env(),
        policy: hub::Policy {
            request_timeout: seconds(args.request_timeout, "--request-timeout")?,
            max_rate_limit_wait: seconds(args.max_rate_limit_wait, "--max-rate-limit-wait")?,
            connections_per_host: args.jobs.max(1),
        },
        deadline: seconds(args.deadline, "--deadline")?,
    };
    let reporter = printer.download_reporter();
    let (outcome, summary) = fetch_models::run(&options, &reporter).await?;
    let human = format!(
        "{} uids: {} in the step, {} ok, {} skipped, {} rejected, {} failed; {} snapshots ({} verified earlier), {:.1} MB downloaded in {:.1} s\nwrote {}",
        summary.uids,
        summary.in_step,
        summary.ok,
        summary.skipped,
        summary.rejected,
        summary.failed,
        summary.snapshots,
        summary.snapshots_cached,
        summary.bytes_downloaded as f64 / 1e6,
        summary.seconds,
        crate::format::printable(&options.out.to_string(), &[])
    );
    printer.writing_to(&options.out).summary(&human, &serde_json::to_value(&summary)?)?;
    Ok(outcome)
}
