//! valkit: the validator of a Bittensor model-training subnet as composable batch stages.
//!
//! The binary (`main.rs`) only parses arguments and maps results to exit codes; everything else
//! lives here so that tests and benchmarks drive the same code. See `../shared/spec/SPEC.md`.

pub mod chain;
pub mod cli;
pub mod competition;
pub mod consensus;
pub mod datasets;
pub mod endpoint;
pub mod env;
pub mod exit;
pub mod files;
pub mod format;
pub mod hub;
pub mod interrupt;
pub mod kernels;
pub mod logging;
pub mod loss;
pub mod model;
pub mod printer;
pub mod report;
pub mod sampling;
pub mod scoring;
pub mod stages;
pub mod storage;
pub mod tables;
pub mod tokenizer;
pub mod weights;

/// The version written into every table's `valkit.version` metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
