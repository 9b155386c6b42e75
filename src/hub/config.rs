//! The Hugging Face settings (read through `crate::env`): `HF_ENDPOINT`, `HF_TOKEN` (or
//! `$HF_HOME/token`), `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`, and the standard cache layout
//! (`models--{ns}--{name}/snapshots/{commit}`, `refs/{branch}`) that Python's huggingface_hub uses.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::env::var;

/// A credential whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub endpoint: String,
    pub token: Option<Secret>,
    pub cache_dir: PathBuf,
    pub offline: bool,
}

impl Config {
    pub fn from_env() -> Self {
        let home = var("HF_HOME").map_or_else(|| crate::env::cache_home().join("huggingface"), PathBuf::from);
        let token = var("HF_TOKEN")
            .or_else(|| std::fs::read_to_string(home.join("token")).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()));
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        Self {
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()).trim_end_matches('/').to_string(),
            token: token.map(Secret::new),
            cache_dir: var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| home.join("hub")),
            offline,
        }
    }

    /// The snapshot directory of `repo` at `revision` (a commit sha or a branch recorded under
    /// `refs/`) in the local cache, if present.
    pub fn cached_snapshot(&self, repo: &str, revision: &str) -> Option<PathBuf> {
        super::names::repo_id(repo).ok()?;
        let repo_dir = self.cache_dir.join(super::cache::repo_folder(repo));
        let commit = if super::names::is_commit(revision) {
            revision.to_string()
        } else {
            super::names::file_path(revision).ok()?;
            // A ref file is written by whoever shares the cache: a commit, or nothing.
            Some(std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok()?.trim().to_string())
                .filter(|c| super::names::is_commit(c))?
        };
        let snapshot = repo_dir.join("snapshots").join(commit);
        is_dir(&snapshot).then_some(snapshot)
    }
}

fn is_dir(p: &Path) -> bool {
    p.is_dir()
}
