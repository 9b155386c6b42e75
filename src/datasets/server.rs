//! The datasets-server client: a deadline on every request, `Retry-After` back-off on HTTP 429
//! (bounded), the HF token only for gated datasets. Other failures go back to the caller, whose
//! loaders decide what upstream would do (retry the page, or sample a new one).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{StatusCode, Url};

use super::Error;
use crate::endpoint::Unreachable;
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
    /// All 429 waits of the command together; past it the server counts as unreachable.
    pub rate_limit_budget: Duration,
}

impl ClientOptions {
    pub const DEFAULT_ENDPOINT: &'static str = "https://datasets-server.huggingface.co";

    pub fn new(endpoint: String, token: Option<Secret>) -> Self {
        Self {
            endpoint,
            token,
            timeout: Duration::from_secs(15),
            max_rate_limited: 10,
            default_backoff: Duration::from_secs(5),
            rate_limit_budget: Duration::from_secs(300),
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    options: ClientOptions,
    base: Url,
    /// Pages answered, and requests the server failed (5xx, not JSON, oversized, reset): a run
    /// where no page came and requests failed means the server, not the data, is broken (exit 4).
    answered: AtomicUsize,
    server_failures: AtomicUsize,
    failures_in_a_row: AtomicUsize,
    rate_limited_for: Mutex<Duration>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The largest body of each endpoint: a `/size` answer, and a page of rows (100 rows of long
/// documents fit many times over). Past it the answer is refused, never read on.
const MAX_SIZE_BODY: u64 = 4 << 20;
/// Failed requests in a row (5xx, not JSON, oversized, refused, or 429 past its attempts) after
/// which the server counts as down and no more requests are made: a storm ends in seconds, not
/// in hours of loaders retrying pages (upstream would retry on; this deviation only cuts short a
/// run that could not have produced data).
const FAILURES_IN_A_ROW: usize = 30;
const MAX_ROWS_BODY: u64 = 64 << 20;

impl Client {
    pub fn new(options: ClientOptions) -> Result<Self, Error> {
        crate::endpoint::http_base(&options.endpoint).map_err(Error::Endpoint)?;
        let base = Url::parse(&format!("{}/", options.endpoint.trim_end_matches('/'))).map_err(|e| Error::Endpoint(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .user_agent(concat!("valkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Malformed { url: options.endpoint.clone(), what: format!("cannot build an HTTP client: {e}") })?;
        Ok(Self {
            http,
            options,
            base,
            answered: AtomicUsize::new(0),
            server_failures: AtomicUsize::new(0),
            failures_in_a_row: AtomicUsize::new(0),
            rate_limited_for: Mutex::new(Duration::ZERO),
        })
    }

    /// `Some(failures)` when requests were made and the server failed every one of them.
    pub fn failed_every_request(&self) -> Option<usize> {
        let failed = self.server_failures.load(Ordering::Relaxed);
        (failed > 0 && self.answered.load(Ordering::Relaxed) == 0).then_some(failed)
    }

    pub fn endpoint(&self) -> &str {
        &self.options.endpoint
    }

    /// The decoded JSON body and the URL asked, for error messages.
    async fn get_json(&self, path: &str, params: &[(&str, String)], auth: bool, limit: u64) -> Result<(serde_json::Value, String), Error> {
        let in_a_row = self.failures_in_a_row.load(Ordering::Relaxed);
        if in_a_row >= FAILURES_IN_A_ROW {
            let detail = format!("{in_a_row} requests in a row failed; no more requests are made");
            return Err(Error::GaveUp(Unreachable { service: "datasets server", endpoint: self.options.endpoint.clone(), detail }));
        }
        let result = self.fetch_json(path, params, auth, limit).await;
        let server_failed = matches!(&result, Err(Error::Status { status, .. }) if *status >= 500)
            || matches!(&result, Err(Error::NotJson { .. } | Error::Unreachable(_) | Error::TooLarge { .. }));
        // As for `answered`, only a page proves the server serves data.
        if result.is_ok() && path == "rows" {
            self.failures_in_a_row.store(0, Ordering::Relaxed);
        } else if server_failed {
            self.failures_in_a_row.fetch_add(1, Ordering::Relaxed);
        }
        match &result {
            // Only pages count as answers: a server that lists sizes but never serves a row
            // serves no data.
            Ok(_) if path == "rows" => self.answered.fetch_add(1, Ordering::Relaxed),
            Ok(_) => 0,
            Err(Error::TooLarge { .. }) => self.server_failures.fetch_add(1, Ordering::Relaxed),
            Err(Error::Status { status, .. }) if *status >= 500 => self.server_failures.fetch_add(1, Ordering::Relaxed),
            Err(Error::NotJson { .. } | Error::Unreachable(_)) => self.server_failures.fetch_add(1, Ordering::Relaxed),
            Err(_) => 0,
        };
        result
    }

    async fn fetch_json(
        &self,
        path: &str,
        params: &[(&str, String)],
        auth: bool,
        limit: u64,
    ) -> Result<(serde_json::Value, String), Error> {
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
                {
                    let mut waited = self.rate_limited_for.lock().expect("not poisoned");
                    if *waited + wait > self.options.rate_limit_budget {
                        let detail = format!(
                            "rate limited (HTTP 429) past the command's budget of {} s of waiting, at {shown}",
                            self.options.rate_limit_budget.as_secs()
                        );
                        return Err(Error::Unreachable(Unreachable {
                            service: "datasets server",
                            endpoint: self.options.endpoint.clone(),
                            detail,
                        }));
                    }
                    *waited += wait;
                }
                tracing::warn!(url = %shown, attempt, wait_secs = wait.as_secs_f64(), "rate limited, backing off");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            if !status.is_success() {
                return Err(Error::Status { url: shown, status: status.as_u16() });
            }
            let body = self.bounded_body(response, &shown, limit).await?;
            return serde_json::from_slice(&body).map(|v| (v, shown.clone())).map_err(|_| Error::NotJson { url: shown });
        }
        // A server that keeps refusing is, for the caller, a server that cannot be reached.
        let detail = format!("still rate limited (HTTP 429) after {} attempts at {shown}", self.options.max_rate_limited);
        Err(Error::Unreachable(Unreachable { service: "datasets server", endpoint: self.options.endpoint.clone(), detail }))
    }

    /// The body, read chunk by chunk and refused as soon as it passes `limit` bytes (a
    /// `Content-Length` over it is refused before anything is read).
    async fn bounded_body(&self, mut response: reqwest::Response, url: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let too_large = || Error::TooLarge { url: url.to_string(), limit };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn unreachable(&self, e: &reqwest::Error) -> Error {
        let detail = if e.is_timeout() {
            format!("no answer within {} s", self.options.timeout.as_secs_f64())
        } else if e.is_connect() {
            "cannot connect".into()
        } else {
            // The cause (a reset connection, a broken chunk) is what an operator needs.
            super::with_causes(e)
        };
        Error::Unreachable(Unreachable { service: "datasets server", endpoint: self.options.endpoint.clone(), detail })
    }

    /// `GET /size?dataset=…`: `size.splits[]` as (config, split, num_rows), in response order.
    pub async fn size(&self, dataset: &str, auth: bool) -> Result<Vec<ConfigRows>, Error> {
        let (body, url) = self.get_json("size", &[("dataset", dataset.to_string())], auth, MAX_SIZE_BODY).await?;
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
        let (body, url) = self.get_json("rows", &params, auth, MAX_ROWS_BODY).await?;
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
