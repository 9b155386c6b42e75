//! Object stores (`s3://`, `gs://`, `az://`): the thin client behind table locations that are
//! URLs, and behind Stack v2's content bucket. Credentials, region and endpoint come from each
//! store's standard environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, …) through the
//! `object_store` crate.
//!
//! Every request is bounded in time (connect, request, and retries in total) and every read in
//! size. A write is a multipart upload that is completed only after every part arrived: an
//! interrupted writer never leaves a partial object at the final key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};

use crate::endpoint::Unreachable;

/// Uploads go in parts of this size (S3 needs at least 5 MiB for all parts but the last).
const PART_SIZE: usize = 16 << 20;

/// An object's address: `scheme://bucket/key`, as the user wrote it (it never holds secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    // Boxed: a Location (and every error naming one) stays small.
    url: Box<url::Url>,
}

impl ObjectUrl {
    /// `s3://`, `s3a://`, `gs://`, `az://`, `abfs://` and `abfss://` URLs; `None` for anything else.
    pub fn parse(arg: &str) -> Option<Result<Self, String>> {
        let (scheme, _) = arg.split_once("://")?;
        if !matches!(scheme, "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss") {
            return None;
        }
        Some(match url::Url::parse(arg) {
            Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) && url.path().len() > 1 => Ok(Self { url: Box::new(url) }),
            Ok(_) => Err(format!("{arg}: an object URL needs a bucket and a key ({scheme}://BUCKET/KEY)")),
            Err(e) => Err(format!("{arg}: not a valid URL: {e}")),
        })
    }

    /// The key's last segment (`losses.parquet`).
    pub fn file_name(&self) -> &str {
        self.url.path().rsplit('/').next().unwrap_or_default()
    }

    /// The same bucket with `name` appended to this URL's key as a directory.
    pub fn join(&self, name: &str) -> Self {
        let mut url = self.url.clone();
        let path = format!("{}/{name}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Self { url }
    }

    /// `bucket/key`, for local state that shadows this object (journals, locks).
    pub fn bucket_and_key(&self) -> String {
        format!("{}{}", self.url.host_str().unwrap_or_default(), self.url.path())
    }

    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{url}: no such object")]
    NotFound { url: ObjectUrl },
    #[error("{url}: access denied ({detail}); check the credentials in the environment (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")]
    Denied { url: ObjectUrl, detail: String },
    #[error("{url}: the object is {size} bytes, more than the {limit} bytes allowed")]
    TooLarge { url: ObjectUrl, size: u64, limit: u64 },
    #[error("{url}: cannot configure the object store: {detail}")]
    Config { url: ObjectUrl, detail: String },
    #[error("{url}: {detail}")]
    Request { url: ObjectUrl, detail: String },
}

/// The credential variables an `s3://` location needs and the environment lacks. (Upstream's
/// Stack v2 loader requires both keys, even where a bucket can be read anonymously.)
pub fn missing_aws_credentials() -> Vec<&'static str> {
    use object_store::aws::AmazonS3ConfigKey as Key;
    let builder = object_store::aws::AmazonS3Builder::from_env();
    [(Key::AccessKeyId, "AWS_ACCESS_KEY_ID"), (Key::SecretAccessKey, "AWS_SECRET_ACCESS_KEY")]
        .into_iter()
        .filter(|(key, _)| builder.get_config_value(key).is_none_or(|v| v.is_empty()))
        .map(|(_, name)| name)
        .collect()
}

/// A store and the key inside it.
struct Target {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
}

fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new().with_connect_timeout(Duration::from_secs(10)).with_timeout(Duration::from_secs(120)).with_allow_http(allow_http)
}

fn retry_config() -> RetryConfig {
    RetryConfig { max_retries: 4, retry_timeout: Duration::from_secs(60), ..Default::default() }
}

/// The store of a URL's bucket (with the key inside it). Stores are kept per scheme and bucket
/// for the life of the process, so that many objects (The Stack v2's blobs) share one client and
/// its connections.
fn target(url: &ObjectUrl) -> Result<Target, Error> {
    static STORES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Arc<dyn ObjectStore>>>> =
        std::sync::OnceLock::new();
    let path =
        ObjectPath::parse(url.url.path().trim_start_matches('/')).map_err(|e| Error::Config { url: url.clone(), detail: e.to_string() })?;
    let key = format!("{}://{}", url.scheme(), url.url.host_str().unwrap_or_default());
    let mut stores = STORES.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(store) = stores.get(&key) {
        return Ok(Target { store: store.clone(), path });
    }
    let store = new_store(url)?;
    stores.insert(key, store.clone());
    Ok(Target { store, path })
}

fn new_store(url: &ObjectUrl) -> Result<Arc<dyn ObjectStore>, Error> {
    let config = |detail: String| Error::Config { url: url.clone(), detail };
    let bucket = url.url.host_str().unwrap_or_default();
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let builder = object_store::aws::AmazonS3Builder::from_env();
            // A local S3 (MinIO, a test server) usually speaks plain HTTP; its endpoint is the user's choice.
            let endpoint = builder.get_config_value(&object_store::aws::AmazonS3ConfigKey::Endpoint);
            let allow_http = endpoint.is_some_and(|e| e.starts_with("http://"));
            Arc::new(
                builder
                    .with_bucket_name(bucket)
                    .with_client_options(client_options(allow_http))
                    .with_retry(retry_config())
                    .build()
                    .map_err(|e| config(e.to_string()))?,
            )
        }
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(client_options(false))
                .with_retry(retry_config())
                .build()
                .map_err(|e| config(e.to_string()))?,
        ),
        _ => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.url.as_str())
                .with_client_options(client_options(false))
                .with_retry(retry_config())
                .build()
                .map_err(|e| config(e.to_string()))?,
        ),
    };
    Ok(store)
}

/// What went wrong, for the user: a missing object, refused credentials, or a service that
/// cannot be reached (exit 4). The message names the URL and never the credentials.
fn classify(url: &ObjectUrl, err: object_store::Error) -> anyhow::Error {
    use object_store::Error as E;
    let detail = short_reason(&err);
    let refused = status_of(&detail).or(Some(detail.as_str())).is_some_and(|s| s.starts_with("401") || s.starts_with("403"));
    match err {
        E::NotFound { .. } => Error::NotFound { url: url.clone() }.into(),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Error::Denied { url: url.clone(), detail }.into(),
        _ if refused => Error::Denied { url: url.clone(), detail }.into(),
        other if unreachable(&other) => anyhow::Error::new(Unreachable { service: "object store", endpoint: url.to_string(), detail }),
        _ => Error::Request { url: url.clone(), detail }.into(),
    }
}

/// Connection failures, timeouts and server errors (5xx) that survived the retries.
fn unreachable(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            return matches!(http.kind(), K::Connect | K::Timeout | K::Request | K::Interrupted);
        }
        if status_of(&e.to_string()).is_some_and(|s| s.starts_with('5')) {
            return true;
        }
        next = e.source();
    }
    false
}

/// The HTTP status in object_store's message for a failed request ("… status code: 403 Forbidden: …").
fn status_of(message: &str) -> Option<&str> {
    let rest = &message[message.find("status code: ")? + "status code: ".len()..];
    Some(rest.split(':').next().unwrap_or(rest).trim())
}

/// The innermost useful sentence: S3's status, error code and message, or the transport's failure.
fn short_reason(err: &(dyn std::error::Error + 'static)) -> String {
    let mut next = Some(err);
    while let Some(e) = next {
        let message = e.to_string();
        if let Some(status) = status_of(&message) {
            let code = xml_field(&message, "Code").unwrap_or_default();
            let text = xml_field(&message, "Message").unwrap_or_default();
            return [status.to_string(), code, text].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(": ");
        }
        if e.downcast_ref::<object_store::client::HttpError>().is_some() {
            let mut innermost = e;
            while let Some(s) = innermost.source() {
                innermost = s;
            }
            return innermost.to_string();
        }
        next = e.source();
    }
    err.to_string()
}

fn xml_field(body: &str, field: &str) -> Option<String> {
    let start = body.find(&format!("<{field}>"))? + field.len() + 2;
    let end = start + body[start..].find(&format!("</{field}>"))?;
    Some(body[start..end].to_string())
}

/// Runs an object-store future from synchronous code, inside or outside a tokio runtime.
fn block_on<F>(future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(future))
        }
        _ => std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
                runtime.block_on(future)
            })
            .join()
            .expect("object store thread")
        }),
    }
}

/// The whole object, refused unread when larger than `limit` bytes.
pub async fn get_async(url: &ObjectUrl, limit: u64) -> anyhow::Result<Bytes> {
    let t = target(url)?;
    let result = t.store.get(&t.path).await.map_err(|e| classify(url, e))?;
    let size = result.meta.size;
    if size > limit {
        return Err(Error::TooLarge { url: url.clone(), size, limit }.into());
    }
    result.bytes().await.map_err(|e| classify(url, e))
}

pub fn get(url: &ObjectUrl, limit: u64) -> anyhow::Result<Bytes> {
    block_on(get_async(url, limit))
}

/// Whether the object exists (a HEAD request).
pub fn exists(url: &ObjectUrl) -> anyhow::Result<bool> {
    block_on(async {
        let t = target(url)?;
        match t.store.head(&t.path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(classify(url, e)),
        }
    })
}

/// Writes the object all-or-nothing, as a multipart upload even when it is small: the object
/// appears at its key only when the upload is completed after its last part (and a failed upload
/// is aborted). A plain PUT is atomic on S3 itself, but not on every S3-compatible server: s3rver
/// keeps the part of a PUT body that arrived before its writer was killed, as the object.
pub async fn put_async(url: &ObjectUrl, bytes: Bytes) -> anyhow::Result<()> {
    let t = target(url)?;
    let upload = t.store.put_multipart(&t.path).await.map_err(|e| classify(url, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut rest = bytes;
    while !rest.is_empty() {
        if let Err(e) = writer.wait_for_capacity(4).await {
            let _ = writer.abort().await;
            return Err(classify(url, e));
        }
        writer.put(rest.split_to(rest.len().min(PART_SIZE)));
    }
    writer.finish().await.map_err(|e| classify(url, e))?;
    Ok(())
}

pub fn put(url: &ObjectUrl, bytes: Bytes) -> anyhow::Result<()> {
    block_on(put_async(url, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_object_urls_and_leaves_paths_alone() {
        let url = ObjectUrl::parse("s3://bucket/step/losses.parquet").unwrap().unwrap();
        assert_eq!(url.file_name(), "losses.parquet");
        assert_eq!(url.bucket_and_key(), "bucket/step/losses.parquet");
        assert_eq!(url.join("wins.parquet").to_string(), "s3://bucket/step/losses.parquet/wins.parquet");
        assert!(ObjectUrl::parse("losses.parquet").is_none());
        assert!(ObjectUrl::parse("./s3/losses.parquet").is_none());
        assert!(ObjectUrl::parse("s3://bucket").unwrap().is_err(), "a bucket without a key");
        assert!(ObjectUrl::parse("gs://b/k").unwrap().is_ok());
    }

    #[test]
    fn reads_s3_error_codes() {
        let body = "<Error><Code>InvalidAccessKeyId</Code><Message>The key is unknown.</Message></Error>";
        assert_eq!(xml_field(body, "Code").as_deref(), Some("InvalidAccessKeyId"));
        assert_eq!(xml_field(body, "Message").as_deref(), Some("The key is unknown."));
        assert_eq!(xml_field(body, "Resource"), None);
        let message = "Error performing GET http://127.0.0.1:1/b/k in 2ms - Server returned non-2xx status code: 403 Forbidden: <Error/>";
        assert_eq!(status_of(message), Some("403 Forbidden"));
        assert_eq!(status_of("connection refused"), None);
    }
}
