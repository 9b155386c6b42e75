//! The datasets-server client: a deadline on every request, `Retry-After` back-off on HTTP 429
//! (bounded), the HF token only for gated datasets. Other failures go back to the caller, whose
//! loaders decide what upstream would do (retry the page, or sample a new one).

use std::time::Duration;

use reqwest::{StatusCode, Url};

use super::Error;
use crate::exit::Unreachable;
use crate::hub::Secret;
use crate::sampling::ConfigRows;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub endpoint: String,
    pub token: Option<Secret>,
    /// Per request; upstream uses 15 s.
    pub timeout: Duration,
    /// Attempts on HTTP 429 before giving up.
    pub max_rate_limited: u32,
    /// Wait on a 429 without `Retry-After`: doubles per attempt up to a minute.
    pub default_backoff: Duration,
}

impl ClientOptions {
    pub const DEFAULT_ENDPOINT: &'static str = "https://datasets-server.huggingface.co";

    pub fn new(endpoint: String, token: Option<Secret>) -> Self {
        Self { endpoint, token, timeout: Duration::from_secs(15), max_rate_limited: 10, default_backoff: Duration::from_secs(5) }
    }
}

pub struct Client {
    http: reqwest::Client,
    options: ClientOptions,
    base: Url,
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Client {
    pub fn new(options: ClientOptions) -> Result<Self, Error> {
        let base = Url::parse(&format!("{}/", options.endpoint.trim_end_matches('/')))
            .map_err(|e| Error::Malformed { url: options.endpoint.clone(), what: format!("not a URL: {e}") })?;
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .user_agent(concat!("valkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Malformed { url: options.endpoint.clone(), what: format!("cannot build an HTTP client: {e}") })?;
        Ok(Self { http, options, base })
    }

    pub fn endpoint(&self) -> &str {
        &self.options.endpoint
    }

    /// The decoded JSON body and the URL asked, for error messages.
    async fn get_json(&self, path: &str, params: &[(&str, String)], auth: bool) -> Result<(serde_json::Value, String), Error> {
        let mut url = self.base.join(path).expect("static path joins");
        url.query_pairs_mut().extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        let shown = url.to_string();
        let mut backoff = self.options.default_backoff;
        for attempt in 1..=self.options.max_rate_limited {
            let mut request = self.http.get(url.clone());
            if let (true, Some(token)) = (auth, &self.options.token) {
                request = request.bearer_auth(token.expose());
            }
            let response = request.send().await.map_err(|e| self.unreachable(&e))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(&response).unwrap_or(backoff);
                tracing::warn!(url = %shown, attempt, wait_secs = wait.as_secs_f64(), "rate limited, backing off");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            if !status.is_success() {
                return Err(Error::Status { url: shown, status: status.as_u16() });
            }
            let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
            return serde_json::from_slice(&body).map(|v| (v, shown.clone())).map_err(|_| Error::NotJson { url: shown });
        }
        // A server that keeps refusing is, for the caller, a server that cannot be reached.
        let detail = format!("still rate limited (HTTP 429) after {} attempts at {shown}", self.options.max_rate_limited);
        Err(Error::Unreachable(Unreachable { service: "datasets server", endpoint: self.options.endpoint.clone(), detail }))
    }

    fn unreachable(&self, e: &reqwest::Error) -> Error {
        let detail = if e.is_timeout() {
            format!("no answer within {} s", self.options.timeout.as_secs_f64())
        } else if e.is_connect() {
            "cannot connect".into()
        } else {
            e.to_string()
        };
        Error::Unreachable(Unreachable { service: "datasets server", endpoint: self.options.endpoint.clone(), detail })
    }

    /// `GET /size?dataset=…`: `size.splits[]` as (config, split, num_rows), in response order.
    pub async fn size(&self, dataset: &str, auth: bool) -> Result<Vec<ConfigRows>, Error> {
        let (body, url) = self.get_json("size", &[("dataset", dataset.to_string())], auth).await?;
        let malformed = |what: &str| Error::Malformed { url: url.clone(), what: what.into() };
        let splits = body["size"]["splits"].as_array().ok_or_else(|| malformed("no size.splits list"))?;
        splits
            .iter()
            .map(|s| {
                Ok(ConfigRows {
                    config: s["config"].as_str().ok_or_else(|| malformed("a split without config"))?.to_string(),
                    split: s["split"].as_str().ok_or_else(|| malformed("a split without split name"))?.to_string(),
                    num_rows: s["num_rows"].as_u64().ok_or_else(|| malformed("a split without num_rows"))?,
                })
            })
            .collect()
    }

    /// `GET /rows?dataset&config&split&offset&length`: the `row` objects.
    pub async fn rows(
        &self,
        dataset: &str,
        config: &str,
        split: &str,
        offset: u64,
        length: u64,
        auth: bool,
    ) -> Result<Vec<serde_json::Value>, Error> {
        let params = [
            ("dataset", dataset.to_string()),
            ("config", config.to_string()),
            ("split", split.to_string()),
            ("offset", offset.to_string()),
            ("length", length.to_string()),
        ];
        let (body, url) = self.get_json("rows", &params, auth).await?;
        let malformed = |what: &str| Error::Malformed { url: url.clone(), what: what.into() };
        let rows = body["rows"].as_array().ok_or_else(|| malformed("no rows list"))?;
        rows.iter().map(|r| r.get("row").cloned().ok_or_else(|| malformed("an entry without row"))).collect()
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the datasets server).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s).min(MAX_BACKOFF))
}
