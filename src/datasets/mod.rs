//! Where evaluation rows come from: the Hugging Face datasets-server (`/size`, `/rows`) or a
//! local directory of JSONL files answering the same two questions. Rows only — which pages to
//! ask for is decided by `sampling` and the stage. The Stack v2's rows name their contents, which
//! live in an object store (`stack_v2`).

pub mod encoding;
mod local;
mod server;
pub mod stack_v2;

pub use local::LocalDataset;
pub use server::{Client, ClientOptions};

use crate::sampling::ConfigRows;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Kept as a source (not transparent) so that the exit-code walk finds the marker.
    #[error("request failed")]
    Unreachable(#[source] crate::endpoint::Unreachable),
    /// So many requests in a row failed that the client stopped asking: not retried.
    #[error("giving up on the server")]
    GaveUp(#[source] crate::endpoint::Unreachable),
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: response is not JSON")]
    NotJson { url: String },
    #[error("{url}: response larger than {limit} bytes, refused")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: malformed response: {what}")]
    Malformed { url: String, what: String },
    #[error("the datasets endpoint {0}")]
    Endpoint(String),
    #[error("{path}: {what}")]
    Local { path: String, what: String },
}

/// An error and its causes on one line.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

impl Error {
    /// Failures upstream's `requests` raises as `RequestException` (connection, timeout, HTTP
    /// status, undecodable JSON): its loaders retry them. A response of the wrong shape is not
    /// retried upstream (a `KeyError`), and neither is a broken local file.
    /// The error with its causes on one line, for provenance records.
    pub fn describe(&self) -> String {
        with_causes(self)
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Status { .. } | Self::NotJson { .. } | Self::TooLarge { .. })
    }
}

/// One dataset, remote or local.
pub enum Source<'a> {
    Server { client: &'a Client, dataset: &'a str, auth: bool },
    Local(&'a LocalDataset),
}

impl Source<'_> {
    /// The configs and splits with their row counts, in the order the server lists them.
    pub async fn size(&self) -> Result<Vec<ConfigRows>, Error> {
        match self {
            Source::Server { client, dataset, auth } => client.size(dataset, *auth).await,
            Source::Local(local) => Ok(local.size()),
        }
    }

    /// The `row` objects of `length` rows from `offset` (fewer at the end of a split).
    pub async fn rows(&self, config: &str, split: &str, offset: u64, length: u64) -> Result<Vec<serde_json::Value>, Error> {
        match self {
            Source::Server { client, dataset, auth } => client.rows(dataset, config, split, offset, length, *auth).await,
            Source::Local(local) => local.rows(config, split, offset, length),
        }
    }

    /// `dataset:config:split:offset`, the provenance of a page.
    pub fn page_name(&self, config: &str, split: &str, offset: u64) -> String {
        let name = match self {
            Source::Server { dataset, .. } => dataset.to_string(),
            Source::Local(local) => local.name(),
        };
        format!("{name}:{config}:{split}:{offset}")
    }
}
