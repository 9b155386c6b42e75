//! The one integration-test binary: the real `valkit` executable against files in a temporary
//! directory, with HF_*/RUST_LOG cleared. Exit codes and decoded rows are asserted, never log text
//! beyond the culprit an error line must name.

#[macro_use]
mod util;
mod fixtures;

/// `sync-metadata` and `set-weights` against a real subtensor runtime (chopsticks, ../shared/chain).
mod chain;
/// `compute-wins`: the demo step, upstream's step simulations through Parquet, bad inputs.
mod compute_wins;
/// `eval-losses`: every architecture against PyTorch's losses, bad models as failed rows, shards, resume.
mod eval_losses;
/// The fault suite: kill -9 and resume, concurrent writers — nothing lost, nothing mixed.
mod faults;
/// `fetch-models` and `gc` against a local hub: statuses, checks before download, the shared cache.
mod fetch_models;
/// `--help`: every argument described, every example run against the demo data.
mod help;
/// `inspect`: aligned table, JSON lines, CSV, metadata, closed pipes.
mod inspect;
/// `profile`: built-in profiles round-trip, errors name the field.
mod profile;
/// No panic on any input: generated and damaged tables, profiles, configs, chain data, arguments.
mod properties;
/// `report`: the demo step as an HTML page, rendered by headless Chromium.
mod report;
/// `scripts/run-loop.sh` from cron: cycles of the demo subnet, the tracker carried, the lock.
mod run_loop;
/// `sample-batches`: pages and windows as upstream's loaders pick them, against a local datasets-server.
mod sample_batches;
/// Tables on an S3 server (s3rver): round trips, a writer killed mid-upload, credentials, dead endpoints.
mod storage;
/// Table files: round trips, byte-identical rewrites, refusals.
mod tables;
