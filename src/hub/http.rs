//! Every HTTP request the hub client makes goes through `Http::send`: one deadline per answer,
//! `Authorization` only to the hub's own origin (never to a CDN), redirects followed only where
//! the caller's `Follow` allows, and the hub's refusals waited out politely — HTTP 429 by its
//! `Retry-After` (seconds or an HTTP date), 5xx and dropped connections by jittered backoff, all
//! within `Policy::max_rate_limit_wait`, after which the hub counts as unreachable (exit 4).
//! A 429 also lowers that host's concurrency for the rest of the run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LOCATION, RANGE, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

use super::{Error, Policy, Secret};

/// Redirects followed per request (huggingface_hub `utils/_http.py` `_MAX_REDIRECTS`).
const MAX_REDIRECTS: usize = 20;
/// Origins that are the hub wherever `HF_ENDPOINT` points: redirects to them are followed and
/// the token goes there (huggingface_hub `utils/_http.py` `_HUB_ORIGINS`).
const HUB_ORIGINS: [&str; 3] = ["https://huggingface.co", "https://hub-ci.huggingface.co", "https://hf.co"];
/// Attempts for a 5xx or a dropped connection before the answer stands.
const MAX_TRANSIENT_ATTEMPTS: u32 = 4;
/// The first backoff without `Retry-After`, doubled per attempt up to `MAX_BACKOFF`
/// (huggingface_hub's `http_backoff`: base 1 s, max 8 s).
const BASE_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Which redirects a request follows by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Redirects to the same origin or a hub origin (a renamed repository, the resolve cache);
    /// a redirect anywhere else is the answer, whose `Location` is the CDN's (huggingface_hub
    /// `_httpx2_follow_hub_redirects_with_backoff`).
    Hub,
    /// Every redirect (a CDN's own), `Authorization` dropped off the hub's origin.
    Any,
}

/// A host's share of the connections: lowered after each 429 it answers.
struct HostLimit {
    permits: Semaphore,
    capacity: AtomicUsize,
    /// Permits still to forget when their requests end.
    debt: AtomicUsize,
}

impl HostLimit {
    fn release(&self, permit: tokio::sync::SemaphorePermit<'_>) {
        let owed = self.debt.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| d.checked_sub(1));
        if owed.is_ok() {
            permit.forget();
        }
    }
}

pub struct Http {
    client: reqwest::Client,
    endpoint: Url,
    token: Option<Secret>,
    policy: Policy,
    hosts: Mutex<BTreeMap<String, Arc<HostLimit>>>,
}

/// An answer that is neither a 429 nor a 5xx (those are retried), with the URL it came from.
pub struct Answer {
    pub response: Response,
    pub url: Url,
}

impl Http {
    pub fn new(endpoint: &str, token: Option<Secret>, policy: Policy) -> anyhow::Result<Self> {
        let endpoint = crate::endpoint::http_base(endpoint).map_err(|e| anyhow::anyhow!("HF_ENDPOINT: {e}"))?;
        let client = reqwest::Client::builder()
            .connect_timeout(policy.request_timeout)
            .read_timeout(policy.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("valkit/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, endpoint, token, policy, hosts: Mutex::new(BTreeMap::new()) })
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The hub's origins (`HF_ENDPOINT`'s and `HUB_ORIGINS`): where the token may go.
    pub fn is_hub(&self, url: &Url) -> bool {
        let origin = url.origin();
        origin == self.endpoint.origin() || HUB_ORIGINS.iter().any(|o| Url::parse(o).is_ok_and(|u| u.origin() == origin))
    }

    /// Sends `method url` (with `range`, an HTTP `Range` value), following redirects as `follow`
    /// says, retrying what the hub asks to retry. `repo` names the culprit in errors.
    pub async fn send(&self, repo: &str, method: Method, url: Url, range: Option<&str>, follow: Follow) -> Result<Answer, Error> {
        let mut url = url;
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send_once(repo, &method, &url, range).await?;
            if !response.status().is_redirection() {
                return Ok(Answer { response, url });
            }
            let Some(next) = location(&response, &url) else { return Ok(Answer { response, url }) };
            if follow == Follow::Hub && next.origin() != url.origin() && !self.is_hub(&next) {
                return Ok(Answer { response, url });
            }
            tracing::debug!(repo, from = %url, to = %redact(&next), "following a redirect");
            url = next;
        }
        Err(Error::Remote { repo: repo.to_string(), detail: format!("more than {MAX_REDIRECTS} redirects from {}", redact(&url)) })
    }

    /// One request, its 429s and transient failures waited out within the budget.
    async fn send_once(&self, repo: &str, method: &Method, url: &Url, range: Option<&str>) -> Result<Response, Error> {
        let host = self.host(url);
        let mut waited = Duration::ZERO;
        let mut transient = 0u32;
        let mut attempt = 0u32;
        loop {
            let permit = host.permits.acquire().await.expect("the semaphore is never closed");
            let sent = tokio::time::timeout(self.policy.request_timeout, self.request(method, url, range).send()).await;
            host.release(permit);
            let wait = match sent {
                Err(_) => {
                    transient += 1;
                    if transient >= MAX_TRANSIENT_ATTEMPTS {
                        return Err(self.unreachable(format!("no answer within {} s", self.policy.request_timeout.as_secs())));
                    }
                    backoff(attempt)
                }
                Ok(Err(e)) => {
                    transient += 1;
                    if transient >= MAX_TRANSIENT_ATTEMPTS || !(e.is_connect() || e.is_timeout() || e.is_request()) {
                        return Err(self.unreachable(transport_detail(&e)));
                    }
                    backoff(attempt)
                }
                Ok(Ok(response)) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    self.slow_down(url, &host);
                    retry_after(response.headers(), SystemTime::now()).unwrap_or_else(|| backoff(attempt))
                }
                Ok(Ok(response)) if response.status().is_server_error() => {
                    transient += 1;
                    if transient >= MAX_TRANSIENT_ATTEMPTS {
                        let status = response.status().as_u16();
                        return Err(Error::Remote { repo: repo.to_string(), detail: format!("HTTP {status} from {}", redact(url)) });
                    }
                    retry_after(response.headers(), SystemTime::now()).unwrap_or_else(|| backoff(attempt))
                }
                Ok(Ok(response)) => return Ok(response),
            };
            if waited + wait > self.policy.max_rate_limit_wait {
                let detail =
                    format!("still refusing (HTTP 429 or 5xx) after {} s of waiting, the --max-rate-limit-wait bound", waited.as_secs());
                return Err(self.unreachable(detail));
            }
            tracing::debug!(repo, url = %redact(url), wait_secs = wait.as_secs_f64(), "the hub asked to wait; retrying");
            tokio::time::sleep(wait).await;
            waited += wait;
            attempt += 1;
        }
    }

    fn request(&self, method: &Method, url: &Url, range: Option<&str>) -> reqwest::RequestBuilder {
        let mut headers = HeaderMap::new();
        // huggingface_hub `_HUB_ORIGINS`: "the auth header is forwarded to these"; a CDN's URL
        // is signed and never gets the token.
        if let (Some(token), true) = (&self.token, self.is_hub(url)) {
            if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
        }
        if let Some(range) = range.and_then(|r| HeaderValue::from_str(r).ok()) {
            headers.insert(RANGE, range);
        }
        self.client.request(method.clone(), url.clone()).headers(headers)
    }

    fn host(&self, url: &Url) -> Arc<HostLimit> {
        let key = format!("{}://{}:{}", url.scheme(), url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0));
        let mut hosts = self.hosts.lock().expect("no panics while held");
        let capacity = self.policy.connections_per_host.max(1);
        hosts
            .entry(key)
            .or_insert_with(|| {
                Arc::new(HostLimit { permits: Semaphore::new(capacity), capacity: AtomicUsize::new(capacity), debt: AtomicUsize::new(0) })
            })
            .clone()
    }

    /// Halves the host's concurrency (down to one connection) for the rest of the run.
    fn slow_down(&self, url: &Url, host: &HostLimit) {
        let before = host.capacity.load(Ordering::SeqCst);
        let target = (before / 2).max(1);
        if target < before && host.capacity.compare_exchange(before, target, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            // Free permits go now; those held by requests in flight go as they come back.
            let forgotten = host.permits.forget_permits(before - target);
            host.debt.fetch_add(before - target - forgotten, Ordering::SeqCst);
            tracing::info!(host = url.host_str().unwrap_or(""), connections = target, "rate limited: fewer connections to this host");
        }
    }

    fn unreachable(&self, detail: String) -> Error {
        Error::Unreachable { endpoint: self.endpoint.as_str().trim_end_matches('/').to_string(), detail }
    }
}

/// A redirect's target, resolved against the URL that answered.
fn location(response: &Response, url: &Url) -> Option<Url> {
    let value = response.headers().get(LOCATION)?.to_str().ok()?;
    url.join(value).ok()
}

/// How long a 429 or 503 asks to wait: `Retry-After` in seconds or as an HTTP date (RFC 9110
/// §10.2.3); None when absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Doubling from `BASE_BACKOFF` up to `MAX_BACKOFF`, times a jitter in [0.5, 1.5) so that
/// validators rate-limited together do not come back together.
fn backoff(attempt: u32) -> Duration {
    let base = BASE_BACKOFF.saturating_mul(1 << attempt.min(8)).min(MAX_BACKOFF);
    base.mul_f64(0.5 + fastrand::f64())
}

/// A URL without its query: CDN URLs carry signatures, which logs and rows do not need.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

fn transport_detail(e: &reqwest::Error) -> String {
    if e.is_connect() {
        return "connection refused or failed".into();
    }
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    super::first_line(&detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Dec 2026 10:00:00 GMT").unwrap();
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(retry_after(&headers("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers("Sun, 06 Dec 2026 10:00:07 GMT"), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("Sun, 06 Dec 2026 09:59:00 GMT"), now), Some(Duration::ZERO), "a date passed: go now");
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        for attempt in 0..12 {
            let b = backoff(attempt);
            let base = BASE_BACKOFF.saturating_mul(1 << attempt.min(8)).min(MAX_BACKOFF);
            assert!(b >= base.mul_f64(0.5) && b < base.mul_f64(1.5), "attempt {attempt}: {b:?}");
        }
    }

    #[test]
    fn the_token_goes_to_the_hub_origin_only() {
        let policy = Policy::default();
        let http = Http::new("http://127.0.0.1:8080", Some(Secret::new("hf_secret".into())), policy).unwrap();
        let has_auth = |u: &str| {
            let request = http.request(&Method::GET, &Url::parse(u).unwrap(), None).build().unwrap();
            request.headers().contains_key(AUTHORIZATION)
        };
        assert!(has_auth("http://127.0.0.1:8080/a/b/resolve/main/config.json"));
        assert!(!has_auth("http://127.0.0.1:8081/repos/ab/cd"), "another port is another host");
        assert!(!has_auth("https://127.0.0.1:8080/a"), "another scheme");
        assert!(!has_auth("http://cdn-lfs.hf.co/repos/x"));
        assert!(!has_auth("https://cas-bridge.xethub.hf.co/xet-bridge-us/x"));
        assert!(has_auth("https://huggingface.co/a/b/resolve/main/x"), "a known hub origin, whatever HF_ENDPOINT says");
    }
}
