//! The command line: global flags, one subcommand per stage, and the dispatch. Each
//! `cli/<stage>.rs` holds the clap `Args` (with an example in its help) and `exec`, which
//! resolves them into the stage's `Options` and calls it; no stage logic lives here.

use clap::{Parser, Subcommand};

use crate::exit::Outcome;
use crate::printer::Printer;

mod args;
mod compute_wins;
mod consensus;
mod eval_losses;
mod fetch_models;
mod gc;
mod inspect;
mod profile;
mod report;
mod sample_batches;
mod set_weights;
mod sync_metadata;

/// The help heading of the flags every subcommand takes, kept apart from its own.
const GLOBAL: &str = "Global options";

#[derive(Debug, Parser)]
#[command(
    name = "valkit",
    version,
    about = "Run the validator of a Bittensor model-training subnet (SN9, SN37) as Parquet-in, Parquet-out stages",
    after_help = "Exit codes: 0 done, 1 done but some models failed, 2 error (nothing written), 3 nothing to do yet, 4 a remote service unreachable.\nLogs go to stderr; set RUST_LOG (e.g. RUST_LOG=valkit=debug) to choose what is logged."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = GLOBAL)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    quiet: bool,
    /// No progress bars (they are drawn only on a terminal anyway).
    #[arg(long, global = true, help_heading = GLOBAL)]
    no_progress: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    ComputeWins(Box<compute_wins::Args>),
    Consensus(consensus::Args),
    EvalLosses(Box<eval_losses::Args>),
    #[command(hide = true)]
    EvalWorker(eval_losses::WorkerArgs),
    FetchModels(Box<fetch_models::Args>),
    Gc(gc::Args),
    Inspect(inspect::Args),
    Profile(profile::Args),
    Report(report::Args),
    SampleBatches(sample_batches::Args),
    SetWeights(Box<set_weights::Args>),
    SyncMetadata(Box<sync_metadata::Args>),
}

impl Cli {
    /// -1 for `-q`, else the number of `-v`.
    pub fn verbosity(&self) -> i8 {
        if self.quiet {
            -1
        } else {
            i8::try_from(self.verbose).unwrap_or(i8::MAX)
        }
    }

    pub fn printer(&self) -> Printer {
        Printer::new(self.quiet, self.json()).with_progress(!self.no_progress && self.verbose == 0)
    }

    /// Whether the subcommand was asked for JSON on stdout (each defines its own `--json`).
    fn json(&self) -> bool {
        match &self.command {
            Command::ComputeWins(a) => a.json.json,
            Command::Consensus(a) => a.json.json,
            Command::EvalLosses(a) => a.json.json,
            Command::FetchModels(a) => a.json.json,
            Command::Gc(a) => a.json.json,
            Command::Inspect(a) => a.json,
            Command::Report(a) => a.json.json,
            Command::SampleBatches(a) => a.json.json,
            Command::SetWeights(a) => a.json.json,
            Command::SyncMetadata(a) => a.json.json,
            Command::EvalWorker(_) | Command::Profile(_) => false,
        }
    }
}

pub async fn run(cli: Cli, printer: Printer) -> anyhow::Result<Outcome> {
    // A worker keeps the default actions: its death by a stop signal tells its parent to stop.
    if !matches!(cli.command, Command::EvalWorker(_)) {
        crate::interrupt::install()?;
    }
    match cli.command {
        Command::ComputeWins(args) => compute_wins::exec(*args, printer),
        Command::Consensus(args) => consensus::exec(args, printer),
        Command::EvalLosses(args) => eval_losses::exec(*args, printer),
        Command::EvalWorker(args) => eval_losses::exec_worker(args),
        Command::FetchModels(args) => fetch_models::exec(*args, printer).await,
        Command::Gc(args) => gc::exec(args, printer),
        Command::Inspect(args) => inspect::exec(args, printer),
        Command::Profile(args) => profile::exec(args, printer),
        Command::Report(args) => report::exec(args, printer),
        Command::SampleBatches(args) => sample_batches::exec(args, printer).await,
        Command::SetWeights(args) => set_weights::exec(*args, printer).await,
        Command::SyncMetadata(args) => sync_metadata::exec(*args, printer).await,
    }
}
