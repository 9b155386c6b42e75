//! Hugging Face hub: the HF environment and cache layout, a deadline-bound client for listings,
//! file metadata, byte ranges and pinned snapshot files (read and written as huggingface_hub
//! does, so both share one cache), which files a validator downloads, and the snapshot hash a
//! miner's secure hash is checked against. Every name an answer or a commitment carries is
//! checked before it becomes a path; writes stay inside the cache. Knows no competition rules
//! and no tables.

pub mod cache;
mod client;
mod config;
mod download;
pub mod files;
pub mod hash;
mod http;
pub mod meta;
pub mod names;

pub use cache::{Cache, Verified};
pub use client::{Error, Hub, Policy, Progress, SnapshotFile, TreeFile};
pub use config::{Config, Secret};

/// Error texts from a server can carry a whole body; rows keep one short line.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}
