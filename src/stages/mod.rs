//! One module per stage: the only code that opens pipeline files. Each stage takes resolved
//! `Options`, glues the table modules to the pure cores, and returns an `Outcome` plus a summary
//! for the printer. No formulas and no column names here.

pub mod compute_wins;
pub mod consensus;
pub mod eval_losses;
pub mod fetch_models;
pub mod gc;
pub mod inspect;
pub mod report;
pub mod sample_batches;
pub mod set_weights;
pub mod sync_metadata;

/// Progress events a long stage reports; the CLI draws them (`printer::ProgressReporter`),
/// tests pass `NoProgress`. Stages never draw anything themselves.
pub trait Reporter: Sync {
    /// A unit of work (a model) starts: `steps` batches, `tokens` tokens in all.
    fn start(&self, name: &str, steps: u64, tokens: u64);
    /// `tokens` more tokens done.
    fn advance(&self, tokens: u64);
    fn finish(&self);
}

pub struct NoProgress;

impl Reporter for NoProgress {
    fn start(&self, _: &str, _: u64, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
