//! Endpoint URLs from flags and the environment (`HF_ENDPOINT`, `--datasets-endpoint`), parsed
//! once as base URLs: a value that cannot be one (`mailto:x`, `file:///x`, `localhost:8080`)
//! is a one-line error when the client is made, never a panic when a path is joined onto it;
//! and what a client reports when an endpoint does not answer ([`Unreachable`], exit 4).

use url::Url;

/// `value` as an http(s) URL with a host, onto which paths can be joined.
pub fn http_base(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("{value:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{value:?} is not an http(s) URL with a host (such as https://huggingface.co)"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_base_urls_with_a_host_pass() {
        for good in ["https://huggingface.co", "http://127.0.0.1:8080/", "https://mirror.example/hf/"] {
            assert!(http_base(good).is_ok(), "{good}");
        }
        for bad in ["mailto:x", "file:///tmp/x", "localhost:8080", "data:text/plain,x", "ws://127.0.0.1:9944", "", "https://"] {
            let err = http_base(bad).unwrap_err();
            assert!(err.starts_with(&format!("{bad:?} is not")), "{bad}: {err}");
        }
    }
}

/// Marker error wrapped by protocol clients when a service cannot be reached; yields exit 4.
#[derive(Debug, thiserror::Error)]
#[error("{service} unreachable at {endpoint}: {detail}")]
pub struct Unreachable {
    pub service: &'static str,
    pub endpoint: String,
    /// What happened: "connection refused", "timed out after 15 s", ...
    pub detail: String,
}
