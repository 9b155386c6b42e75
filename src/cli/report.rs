use std::path::PathBuf;

use crate::exit::Outcome;
use crate::files::Location;
use crate::printer::Printer;
use crate::stages::report;

/// Write one step's results as a self-contained HTML page with charts.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit report step/\n  valkit report steps/* -o history.html\n  valkit report --wins step/wins.parquet --weights step/weights.parquet \\\n      --losses losses.parquet -o step.html\n\nGiven several step directories (as scripts/run-loop.sh leaves them under WORKDIR/steps/), the\none scored at the highest block is reported, the one before it gives the tracker weights before\nthe step, and all of them each uid's weight over time. The page has no scripts and loads\nnothing: open it anywhere, or attach it. Prints the path it wrote."
)]
pub struct Args {
    /// Step directories holding wins.parquet and weights.parquet (and tracker, losses, models).
    #[arg(value_name = "STEP_DIR")]
    steps: Vec<PathBuf>,
    /// The wins table of the step to report (instead of a directory's).
    #[arg(long, value_name = "FILE", requires = "weights")]
    wins: Option<String>,
    /// The weights table of the step to report.
    #[arg(long, value_name = "FILE", requires = "wins")]
    weights: Option<String>,
    /// The tracker written by the step.
    #[arg(long, value_name = "FILE")]
    tracker: Option<String>,
    /// The step's losses tables (repeat for shards).
    #[arg(long, value_name = "FILE")]
    losses: Vec<String>,
    /// The step's models table (for rejected and failed models).
    #[arg(long, value_name = "FILE")]
    models: Option<String>,
    /// Where to write the page [default: STEP_DIR/report.html of the reported step, or ./report.html].
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    pub(super) json: super::args::JsonArg,
}

pub fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let options = report::Options {
        steps: args.steps,
        wins: args.wins.as_deref().map(Location::parse).transpose()?,
        weights: args.weights.as_deref().map(Location::parse).transpose()?,
        tracker: args.tracker.as_deref().map(Location::parse).transpose()?,
        losses: args.losses.iter().map(|l| Location::parse(l)).collect::<Result<_, _>>()?,
        models: args.models.as_deref().map(Location::parse).transpose()?,
        out: args.out,
    };
    let (outcome, summary) = report::run(&options)?;
    let human = format!(
        "report of competition {} ({} step{}, {} charts): {}",
        summary.competition_id,
        summary.steps,
        if summary.steps == 1 { "" } else { "s" },
        summary.charts,
        crate::format::printable(&summary.out, &[])
    );
    printer.summary(&human, &serde_json::to_value(&summary)?)?;
    Ok(outcome)
}
