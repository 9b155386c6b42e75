//! A thin client over hf-hub 1.0 for what `fetch-models` asks of the hub: the file listing of a
//! pinned revision, bounded byte ranges (safetensors headers), ETags, and pinned downloads into
//! the standard cache. Every request has a deadline; HTTP 429 waits out `Retry-After` within a
//! bounded total; errors are sorted into "this repository" and "the hub" so that one bad repo
//! is one failed row while a dead hub ends the run with exit 4.

use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use hf_hub::progress::Progress;
use hf_hub::repository::{HFRepository, RepoTreeEntry, RepoTypeModel};
use hf_hub::{HFClient, HFError};

use super::Config;

/// A listing longer than this is not a model repository.
const MAX_TREE_ENTRIES: usize = 10_000;
/// The slowest download rate a file's deadline allows for, after the request deadline.
const MIN_BYTES_PER_SEC: u64 = 4 << 20;

/// Deadlines and the rate-limit budget.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Connect and idle-read deadline of every request, and the whole deadline of small ones.
    pub request_timeout: Duration,
    /// The most time spent waiting out HTTP 429 per request before the hub counts as unreachable.
    pub max_rate_limit_wait: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(30), max_rate_limit_wait: Duration::from_secs(120) }
    }
}

/// Why a hub request failed. `code()` is the stable reason code a models row starts with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{repo}@{revision}: repository or revision not found on the hub")]
    NotFound { repo: String, revision: String },
    #[error("{repo}@{revision}: {file} not found")]
    EntryNotFound { repo: String, revision: String, file: String },
    #[error("{repo}: access denied ({detail})")]
    Denied { repo: String, detail: String },
    #[error("hub unreachable at {endpoint}: {detail}")]
    Unreachable { endpoint: String, detail: String },
    #[error("{repo}: the hub answered {detail}")]
    Remote { repo: String, detail: String },
    #[error("{what} is {size} bytes, over the {max}-byte bound")]
    TooLarge { what: String, size: u64, max: u64 },
    #[error("{0} is not in the local cache and HF_HUB_OFFLINE is set")]
    Offline(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not-found",
            Self::EntryNotFound { .. } => "file-not-found",
            Self::Denied { .. } => "access-denied",
            Self::Unreachable { .. } => "hub-unreachable",
            Self::Remote { .. } => "hub-error",
            Self::TooLarge { .. } => "too-large",
            Self::Offline(_) => "offline",
            Self::Io { .. } => "io",
        }
    }

    /// Failures of the hub rather than of one repository: if every request fails this way, the
    /// hub is down.
    pub fn is_hub_failure(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Remote { .. })
    }
}

/// One file of a revision, as the tree listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub path: String,
    pub size: u64,
}

pub struct Hub {
    client: HFClient,
    config: Config,
    policy: Policy,
}

impl Hub {
    pub fn new(config: Config, policy: Policy) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(policy.request_timeout)
            .read_timeout(policy.request_timeout)
            .user_agent(concat!("valkit/", env!("CARGO_PKG_VERSION"), "; hf-hub/1.0"))
            .build()?;
        let mut builder = HFClient::builder()
            .client(http)
            .endpoint(config.endpoint.clone())
            .cache_dir(config.cache_dir.clone())
            // hf-hub's own retry ignores Retry-After; one quick retry for a dropped connection,
            // the rate-limit waiting is ours.
            .retry_max_attempts(1)
            .retry_base_delay(Duration::from_millis(200));
        if let Some(token) = &config.token {
            builder = builder.token(token.expose());
        }
        Ok(Self { client: builder.build()?, config, policy })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn repo(&self, repo: &str) -> HFRepository<RepoTypeModel> {
        let (owner, name) = repo.split_once('/').unwrap_or(("", repo));
        self.client.model(owner, name)
    }

    fn offline(&self, what: String) -> Result<(), Error> {
        if self.config.offline {
            return Err(Error::Offline(what));
        }
        Ok(())
    }

    /// Every file of `repo` at `revision`, with sizes.
    pub async fn tree(&self, repo: &str, revision: &str) -> Result<Vec<TreeFile>, Error> {
        self.offline(format!("the file list of {repo}@{revision}"))?;
        let handle = self.repo(repo);
        let entries = self
            .call(repo, revision, self.policy.request_timeout, || async {
                let stream = handle.list_tree().revision(revision).recursive(true).limit(MAX_TREE_ENTRIES + 1).send()?;
                stream.try_collect::<Vec<_>>().await
            })
            .await?;
        if entries.len() > MAX_TREE_ENTRIES {
            return Err(Error::TooLarge {
                what: format!("the file list of {repo}"),
                size: entries.len() as u64,
                max: MAX_TREE_ENTRIES as u64,
            });
        }
        Ok(entries
            .into_iter()
            .filter_map(|e| match e {
                RepoTreeEntry::File { path, size, .. } => Some(TreeFile { path, size }),
                _ => None,
            })
            .collect())
    }

    /// Bytes `range` of a file, refusing a body longer than the range.
    pub async fn read_range(&self, repo: &str, revision: &str, file: &str, range: Range<u64>) -> Result<Vec<u8>, Error> {
        self.offline(format!("{repo}@{revision}/{file}"))?;
        let handle = self.repo(repo);
        let max = range.end.saturating_sub(range.start);
        self.call(repo, revision, self.policy.request_timeout, || async {
            let (_, mut stream) = handle.download_file_stream().filename(file).revision(revision).range(range.clone()).send().await?;
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                body.extend_from_slice(&chunk?);
                if body.len() as u64 > max {
                    return Err(HFError::Other(format!("{file}: the hub ignored the byte range (more than {max} bytes)")));
                }
            }
            Ok(body)
        })
        .await
    }

    /// The ETag of a file: the blob name in the cache (the sha256 of an LFS file).
    pub async fn etag(&self, repo: &str, revision: &str, file: &str) -> Result<String, Error> {
        self.offline(format!("{repo}@{revision}/{file}"))?;
        let handle = self.repo(repo);
        let info = self
            .call(repo, revision, self.policy.request_timeout, || handle.get_file_metadata().filepath(file).revision(revision).send())
            .await?;
        Ok(info.etag)
    }

    /// Downloads one file of a pinned revision into the cache (no request if the snapshot
    /// already holds it) and returns its path in the snapshot.
    pub async fn download(&self, repo: &str, revision: &str, file: &str, size: u64, progress: Option<Progress>) -> Result<PathBuf, Error> {
        let handle = self.repo(repo);
        let cached = || handle.download_file().filename(file).revision(revision).local_files_only(true).send();
        if let Ok(path) = cached().await {
            return Ok(path);
        }
        self.offline(format!("{repo}@{revision}/{file}"))?;
        let deadline = self.policy.request_timeout + Duration::from_secs(size / MIN_BYTES_PER_SEC);
        self.call(repo, revision, deadline, || {
            handle.download_file().filename(file).revision(revision).maybe_progress(progress.clone()).send()
        })
        .await
    }

    /// One request under a deadline, waiting out 429s within the budget, errors classified.
    async fn call<T, F, Fut>(&self, repo: &str, revision: &str, deadline: Duration, request: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, HFError>>,
    {
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        loop {
            let result = match tokio::time::timeout(deadline, request()).await {
                Ok(result) => result,
                Err(_) => return Err(self.unreachable(format!("no complete answer within {} s", deadline.as_secs()))),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(HFError::RateLimited { retry_after, .. }) => {
                    let backoff = Duration::from_secs(1 << attempt.min(6));
                    let wait = retry_after.unwrap_or(backoff);
                    if waited + wait > self.policy.max_rate_limit_wait {
                        let detail = format!("still rate limited (HTTP 429) after waiting {} s", waited.as_secs());
                        return Err(self.unreachable(detail));
                    }
                    tracing::debug!(repo, wait_secs = wait.as_secs_f64(), "rate limited; waiting");
                    tokio::time::sleep(wait).await;
                    waited += wait;
                    attempt += 1;
                }
                Err(e) => return Err(self.classify(repo, revision, e)),
            }
        }
    }

    fn unreachable(&self, detail: String) -> Error {
        Error::Unreachable { endpoint: self.config.endpoint.clone(), detail }
    }

    fn classify(&self, repo: &str, revision: &str, e: HFError) -> Error {
        let (repo_s, revision_s) = (repo.to_string(), revision.to_string());
        match e {
            HFError::RepoNotFound { .. } | HFError::RevisionNotFound { .. } => Error::NotFound { repo: repo_s, revision: revision_s },
            HFError::EntryNotFound { path, .. } => Error::EntryNotFound { repo: repo_s, revision: revision_s, file: path },
            HFError::AuthRequired { context } | HFError::Forbidden { context } => {
                Error::Denied { repo: repo_s, detail: format!("HTTP {}", context.status.as_u16()) }
            }
            HFError::Http { context } if context.status.as_u16() == 404 => Error::NotFound { repo: repo_s, revision: revision_s },
            HFError::Http { context } => Error::Remote { repo: repo_s, detail: format!("HTTP {}", context.status.as_u16()) },
            HFError::Request { source, .. } => self.unreachable(transport_detail(&source)),
            HFError::Io(source) => Error::Io { path: self.config.cache_dir.display().to_string(), source },
            // Malformed answers are the hub's failure, not the miner's.
            other => Error::Remote { repo: repo_s, detail: first_line(&other.to_string()) },
        }
    }
}

fn transport_detail(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or failed".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        first_line(&detail)
    }
}

/// Error texts from the hub can carry a whole body; rows keep one short line.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}
