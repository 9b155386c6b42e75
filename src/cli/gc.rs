use crate::exit::Outcome;
use crate::hub;
use crate::printer::Printer;
use crate::stages::gc;

/// Free the Hugging Face cache of model snapshots the latest models table no longer uses.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit gc --dry-run\n  HF_HUB_CACHE=$PWD/hf-cache valkit gc --grace 600 --max-bytes 500000000000\n\nSnapshots the last fetch-models run uses are kept; so is anything modified within the grace\nperiod (a download in progress). With --max-bytes, the oldest unused snapshots are removed\nonly until the cache fits."
)]
pub struct Args {
    /// List what would be removed and how much it would free; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep snapshots modified within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    grace: u64,
    /// Remove unused snapshots only until the cache holds at most this many bytes.
    #[arg(long, value_name = "N")]
    max_bytes: Option<u64>,
    #[command(flatten)]
    pub(super) json: super::args::JsonArg,
}

pub fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let options = gc::Options {
        hub: hub::Config::from_env(),
        dry_run: args.dry_run,
        grace: std::time::Duration::from_secs(args.grace),
        max_bytes: args.max_bytes,
    };
    let (outcome, summary) = gc::run(&options)?;
    let verb = if summary.dry_run { "would remove" } else { "removed" };
    let mut human = String::new();
    for dir in &summary.removed {
        human.push_str(&format!("{verb} {}\n", crate::format::printable(dir, &[])));
    }
    human.push_str(&format!(
        "{verb} {} of {} snapshots ({} in use), {:.1} MB freed, {:.1} MB left in {}",
        summary.removed.len(),
        summary.snapshots,
        summary.in_use,
        summary.freed_bytes as f64 / 1e6,
        summary.bytes_left as f64 / 1e6,
        crate::format::printable(&options.hub.cache_dir.display().to_string(), &[])
    ));
    printer.summary(&human, &serde_json::to_value(&summary)?)?;
    Ok(outcome)
}
