//! `gc`: frees the Hugging Face cache of model snapshots the latest models table does not use
//! (upstream.md §7.3 deletes per hotkey after a grace period; valkit shares one cache, so it
//! keeps what the last `fetch-models` recorded as in use). A snapshot modified within the grace
//! period is never removed, so a download in progress is safe; with a byte budget, the oldest
//! unused snapshots go first and only until the cache fits.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::Serialize;

use crate::exit::Outcome;
use crate::hub::{self, Cache};

pub struct Options {
    pub hub: hub::Config,
    pub dry_run: bool,
    pub grace: Duration,
    /// Stop removing once the snapshots left take at most this many bytes.
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    pub snapshots: usize,
    pub in_use: usize,
    pub removed: Vec<String>,
    pub freed_bytes: u64,
    pub bytes_left: u64,
}

pub fn run(opts: &Options) -> anyhow::Result<(Outcome, Summary)> {
    let cache = Cache::new(opts.hub.cache_dir.clone());
    let context = || format!("reading the cache at {}", cache.root().display());
    let mut snapshots = cache.snapshots().with_context(context)?;
    let in_use = cache.in_use().with_context(context)?;
    let now = SystemTime::now();
    let mut total: u64 = snapshots.iter().map(|s| s.bytes).sum();
    // Oldest first, so that a byte budget frees what was used longest ago.
    snapshots.sort_by_key(|s| (s.newest, s.dir.clone()));
    let mut summary =
        Summary { dry_run: opts.dry_run, snapshots: snapshots.len(), in_use: 0, removed: Vec::new(), freed_bytes: 0, bytes_left: total };
    for s in &snapshots {
        if in_use.contains(&s.dir) {
            summary.in_use += 1;
            continue;
        }
        let young = now.duration_since(s.newest).unwrap_or_default() < opts.grace;
        if young || opts.max_bytes.is_some_and(|max| total <= max) {
            continue;
        }
        if !opts.dry_run {
            cache.remove(s).with_context(|| format!("removing {}", s.dir.display()))?;
        }
        tracing::info!(snapshot = %s.dir.display(), bytes = s.bytes, dry_run = opts.dry_run, "unused snapshot removed");
        summary.removed.push(s.dir.display().to_string());
        summary.freed_bytes += s.bytes;
        total = total.saturating_sub(s.bytes);
    }
    summary.bytes_left = total;
    Ok((Outcome::Done, summary))
}
