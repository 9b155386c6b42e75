//! One module per stage: the only code that opens pipeline files. Each stage takes resolved
//! `Options`, glues the table modules to the pure cores, and returns an `Outcome` plus a summary
//! for the printer. No formulas and no column names here.

pub mod compute_wins;
pub mod eval_losses;
pub mod sample_batches;
pub mod inspect;
