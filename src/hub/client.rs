//! The hub client `fetch-models` uses: a revision's file listing, a file's metadata (read as
//! huggingface_hub reads it, `meta`), bounded byte ranges (safetensors headers), and files of a
//! pinned snapshot made present in the standard cache (`snapshot_file`). Every request goes
//! through `http` (deadlines, 429s, the token kept off CDNs); errors are sorted into "this
//! repository" and "the hub", so that one bad repo is one failed row while a dead hub ends the
//! run with exit 4.
//!
//! Why not hf-hub 1.0 underneath: its `get_file_metadata` reads the headers off the CDN's answer
//! (hf-hub PR #212), its ranged stream does the same (PR #209), a Xet file can only go through
//! its CAS client, `Retry-After` dates are dropped, and blob and snapshot paths are built from
//! unchecked `ETag`/`X-Repo-Commit` values; its own lower layers are crate-private. The protocol
//! here is the few requests huggingface_hub makes, over the reqwest hf-hub itself used.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::http::{redact, Answer, Follow, Http};
use super::meta::{self, FileMeta};
use super::names;
use super::{Cache, Config};

/// A listing longer than this is not a model repository.
const MAX_TREE_ENTRIES: usize = 10_000;
/// One page of a listing larger than this is not one.
const MAX_TREE_PAGE_BYTES: usize = 32 << 20;
/// The slowest download rate a file's deadline allows for, after the request deadline.
const MIN_BYTES_PER_SEC: u64 = 4 << 20;

/// Deadlines, the rate-limit budget and the connections per host.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Connect and idle-read deadline of every request, and the whole deadline of small ones.
    pub request_timeout: Duration,
    /// The most time spent waiting out HTTP 429 (and 5xx) per request before the hub counts as
    /// unreachable.
    pub max_rate_limit_wait: Duration,
    /// Requests in flight to one host; halved by each 429 that host answers.
    pub connections_per_host: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(30), max_rate_limit_wait: Duration::from_secs(120), connections_per_host: 8 }
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
    #[error("{repo}: {file}: the hub's answer is not to be trusted: {detail}")]
    Untrusted { repo: String, file: String, detail: String },
    #[error("{repo}: {file}: {detail}")]
    Corrupt { repo: String, file: String, detail: String },
    #[error("{0}")]
    BadName(#[from] names::Refused),
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
            Self::Untrusted { .. } => "untrusted-answer",
            Self::Corrupt { .. } => "download-corrupt",
            Self::BadName(_) => "bad-name",
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

    /// The repository broke a rule (rather than could not be fetched).
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::TooLarge { .. } | Self::BadName(_))
    }

    pub(super) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), source }
    }
}

/// One file of a revision, as the tree listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub path: String,
    pub size: u64,
}

/// A tree entry as `GET /api/models/{repo}/tree/{revision}` lists it.
#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
}

/// A file made present in a snapshot, and how many bytes that took from the network.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub downloaded_bytes: u64,
    /// Linked from a blob another repository holds: stored once.
    pub shared: bool,
}

/// A file download's progress, drawn by whoever asked for it.
pub trait Progress: Send + Sync {
    fn start(&self, total_bytes: u64);
    fn advance(&self, bytes_done: u64);
    fn finish(&self);
}

pub struct Hub {
    pub(super) http: Http,
    pub(super) config: Config,
    pub(super) policy: Policy,
    pub(super) cache: Cache,
    /// Metadata read this run, by (repo, revision, file): header ranges and the download share
    /// one HEAD.
    metas: Mutex<BTreeMap<(String, String, String), FileMeta>>,
    /// One lock per blob name, so that two repositories holding the same blob (a copy-cat)
    /// download it once even when fetched at the same time.
    pub(super) blobs_in_flight: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Hub {
    pub fn new(config: Config, policy: Policy) -> anyhow::Result<Self> {
        let http = Http::new(&config.endpoint, config.token.clone(), policy)?;
        let cache = Cache::new(config.cache_dir.clone());
        Ok(Self { http, config, policy, cache, metas: Mutex::default(), blobs_in_flight: Mutex::default() })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    fn offline(&self, what: impl FnOnce() -> String) -> Result<(), Error> {
        if self.config.offline {
            return Err(Error::Offline(what()));
        }
        Ok(())
    }

    /// `{endpoint}/{prefix...}/{segments...}`, each segment percent-encoded on its own (a
    /// revision `feature/x` is one segment, as huggingface_hub `quote(revision, safe="")`).
    fn url(&self, prefix: &[&str], repo: &str, tail: &[&str], file: Option<&str>) -> Url {
        let mut url = self.http.endpoint().clone();
        {
            let mut segments = url.path_segments_mut().expect("an http(s) endpoint has a path");
            segments.pop_if_empty();
            segments.extend(prefix).extend(repo.split('/')).extend(tail);
            if let Some(file) = file {
                segments.extend(file.split('/'));
            }
        }
        url
    }

    /// Every file of `repo` at `revision`, with sizes.
    pub async fn tree(&self, repo: &str, revision: &str) -> Result<Vec<TreeFile>, Error> {
        names::repo_id(repo)?;
        self.offline(|| format!("the file list of {repo}@{revision}"))?;
        let mut url = self.url(&["api", "models"], repo, &["tree", revision], None);
        url.query_pairs_mut().append_pair("recursive", "true").append_pair("expand", "false");
        let mut files = Vec::new();
        let mut next = Some(url);
        let mut entries = 0usize;
        while let Some(url) = next.take() {
            let answer = self.http.send(repo, Method::GET, url, None, Follow::Hub).await?;
            let answer = self.check(answer, repo, revision, None).await?;
            next = next_page(&answer);
            let body = self.bounded_body(answer, repo, MAX_TREE_PAGE_BYTES as u64, self.policy.request_timeout).await?;
            let page: Vec<TreeEntry> = serde_json::from_slice(&body)
                .map_err(|e| Error::Remote { repo: repo.to_string(), detail: format!("a file list that is not JSON: {e}") })?;
            entries += page.len();
            if entries > MAX_TREE_ENTRIES {
                let what = format!("the file list of {repo}");
                return Err(Error::TooLarge { what, size: entries as u64, max: MAX_TREE_ENTRIES as u64 });
            }
            files.extend(page.into_iter().filter(|e| e.kind == "file").map(|e| TreeFile { path: e.path, size: e.size }));
            if next.as_ref().is_some_and(|n| !self.http.is_hub(n)) {
                return Err(Error::Remote { repo: repo.to_string(), detail: "a next page on another host".into() });
            }
        }
        Ok(files)
    }

    /// The metadata of one file, from one HEAD per run.
    pub async fn meta(&self, repo: &str, revision: &str, file: &str) -> Result<FileMeta, Error> {
        names::repo_id(repo)?;
        names::file_path(file)?;
        let key = (repo.to_string(), revision.to_string(), file.to_string());
        if let Some(meta) = self.metas.lock().expect("no panics while held").get(&key) {
            return Ok(meta.clone());
        }
        self.offline(|| format!("{repo}@{revision}/{file}"))?;
        let url = self.url(&[], repo, &["resolve", revision], Some(file));
        let answer = self.http.send(repo, Method::HEAD, url, None, Follow::Hub).await?;
        // The hub's 302 to a CDN is the answer that carries the metadata.
        let redirect = answer.response.status().is_redirection();
        let answer = if redirect { answer } else { self.check(answer, repo, revision, Some(file)).await? };
        let meta = meta::from_headers(answer.response.headers(), &answer.url, revision, redirect).map_err(|e| Error::Untrusted {
            repo: repo.to_string(),
            file: file.to_string(),
            detail: e.to_string(),
        })?;
        self.metas.lock().expect("no panics while held").insert(key, meta.clone());
        Ok(meta)
    }

    /// Bytes `range` of a file, from where its metadata says the bytes are; a body longer than
    /// the range is refused.
    pub async fn read_range(&self, repo: &str, revision: &str, file: &str, range: Range<u64>) -> Result<Vec<u8>, Error> {
        let meta = self.meta(repo, revision, file).await?;
        let max = range.end.saturating_sub(range.start);
        let header = format!("bytes={}-{}", range.start, range.end.saturating_sub(1));
        let answer = self.http.send(repo, Method::GET, meta.location.clone(), Some(&header), Follow::Any).await?;
        let answer = self.check(answer, repo, revision, Some(file)).await?;
        if answer.response.status() != StatusCode::PARTIAL_CONTENT && max < meta.size {
            return Err(Error::Remote { repo: repo.to_string(), detail: format!("{file}: the byte range was ignored (HTTP 200)") });
        }
        self.bounded_body(answer, repo, max, self.policy.request_timeout).await
    }

    /// A non-success answer as the error it means (404s by the hub's `X-Error-Code`).
    pub(super) async fn check(&self, answer: Answer, repo: &str, revision: &str, file: Option<&str>) -> Result<Answer, Error> {
        let status = answer.response.status();
        if status.is_success() {
            return Ok(answer);
        }
        let (repo_s, revision_s) = (repo.to_string(), revision.to_string());
        let code = answer.response.headers().get("x-error-code").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Err(match status {
            StatusCode::NOT_FOUND => match (code.as_str(), file) {
                ("EntryNotFound", Some(file)) => Error::EntryNotFound { repo: repo_s, revision: revision_s, file: file.to_string() },
                _ => Error::NotFound { repo: repo_s, revision: revision_s },
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Error::Denied { repo: repo_s, detail: format!("HTTP {}{}", status.as_u16(), gated(&code)) }
            }
            _ => Error::Remote { repo: repo_s, detail: format!("HTTP {} for {}", status.as_u16(), redact(&answer.url)) },
        })
    }

    /// A whole body of at most `max` bytes within `deadline`.
    async fn bounded_body(&self, answer: Answer, repo: &str, max: u64, deadline: Duration) -> Result<Vec<u8>, Error> {
        if answer.response.content_length().is_some_and(|n| n > max) {
            return Err(Error::Remote {
                repo: repo.to_string(),
                detail: format!("{} bytes where at most {max} were asked for", redact(&answer.url)),
            });
        }
        let read = async {
            let mut body = Vec::new();
            let mut stream = answer.response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.http_unreachable(&e))?;
                body.extend_from_slice(&chunk);
                if body.len() as u64 > max {
                    return Err(Error::Remote { repo: repo.to_string(), detail: format!("more than the {max} bytes asked for") });
                }
            }
            Ok(body)
        };
        tokio::time::timeout(deadline, read).await.unwrap_or_else(|_| {
            Err(Error::Unreachable {
                endpoint: self.config.endpoint.clone(),
                detail: format!("no complete answer within {} s", deadline.as_secs()),
            })
        })
    }

    pub(super) fn http_unreachable(&self, e: &reqwest::Error) -> Error {
        let detail = if e.is_timeout() { "timed out reading an answer".to_string() } else { super::first_line(&e.to_string()) };
        Error::Unreachable { endpoint: self.config.endpoint.clone(), detail }
    }

    /// The deadline of a whole download of `size` bytes.
    pub(super) fn download_deadline(&self, size: u64) -> Duration {
        self.policy.request_timeout + Duration::from_secs(size / MIN_BYTES_PER_SEC)
    }
}

fn gated(code: &str) -> &'static str {
    if code == "GatedRepo" {
        ": a gated repository"
    } else {
        ""
    }
}

/// The `Link: <url>; rel="next"` of a paginated listing (huggingface_hub `paginate`).
fn next_page(answer: &Answer) -> Option<Url> {
    let link = answer.response.headers().get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.split(';').any(|p| p.trim().replace(' ', "") == "rel=\"next\"").then_some(())?;
        answer.url.join(target.trim().trim_start_matches('<').trim_end_matches('>')).ok()
    })
}
