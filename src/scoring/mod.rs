//! Pure scoring (upstream.md §5.1, §6): who beats whom under the epsilon rule, the SN9
//! competitive filter, step weights (softmax or winner-takes-all), the competition tracker EMA,
//! the keep set, the retry rule, which uids enter a step, and task aggregation. Values in, values out: no I/O, no clock.
//!
//! Uids are processed in ascending order wherever upstream iterates a Python set
//! (upstream.md §10.2): only tie-breaks between otherwise equal uids can differ from a given
//! upstream process, whose set order depends on its insertion history.

mod aggregate;
mod keep;
mod retry;
pub mod selection;
mod step;
pub mod torch;
mod tracker;
mod wins;

#[cfg(test)]
pub(crate) mod vectors;

pub use aggregate::{mean, normalize, task_weighted_score, TaskScore};
pub use keep::keep_set;
pub use retry::should_retry_model;
pub use step::{run_step, Step, StepError, StepInput, UidOutcome};
pub use tracker::CompetitionTracker;
pub use wins::{compute_competitive_uids, compute_wins, iswin, SingleUidWinRate, WinCount};

/// One model's result in one step of a competition, as upstream's `EvalResult`: kept per
/// (hotkey, competition) to decide whether a model is worth evaluating again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    /// The block the evaluation ran at.
    pub block: u64,
    pub score: f64,
    /// `f64` because a winner without metadata has block `inf` upstream.
    pub winning_model_block: f64,
    pub winning_model_score: f64,
}

/// A uid entering a step: its aggregate score (`inf` on failure) and commit block (`inf` without
/// usable metadata).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contender {
    pub uid: u16,
    pub score: f64,
    pub block: f64,
}
