//! The Stack v2's file contents. Its rows carry no text: each names a blob (`blob_id`) whose
//! gzip-compressed bytes are the object `{prefix}{blob_id}` in Software Heritage's bucket, and the
//! encoding (`src_encoding`) they are decoded with (upstream.md §4.2).

use std::io::Read;

use crate::storage::{self, ObjectUrl};

/// The largest compressed blob and the largest file read from one (The Stack v2's files are a
/// few MiB at most; anything larger is refused, never allocated).
pub const MAX_BLOB_BYTES: u64 = 16 << 20;
pub const MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object could not be read: upstream's loader retries the page (an HTTP error).
    #[error(transparent)]
    Fetch(anyhow::Error),
    /// The row or the bytes are unusable: upstream's loader raises and the task is skipped.
    #[error("{0}")]
    Content(String),
}

impl Error {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Fetch(_))
    }
}

/// The object a row's content lives in.
pub fn blob_url(prefix: &str, row: &serde_json::Value) -> Result<ObjectUrl, Error> {
    let blob_id = row.get("blob_id").and_then(|b| b.as_str()).ok_or_else(|| Error::Content("row has no blob_id".into()))?;
    if blob_id.is_empty() || !blob_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::Content(format!("blob_id {blob_id:?} is not an object name")));
    }
    match ObjectUrl::parse(&format!("{prefix}{blob_id}")) {
        Some(Ok(url)) => Ok(url),
        _ => Err(Error::Content(format!("content prefix {prefix:?} is not an object-store URL"))),
    }
}

/// A row's text: the blob fetched, gunzipped and decoded with the row's `src_encoding`.
pub async fn content(prefix: &str, row: &serde_json::Value) -> Result<String, Error> {
    let url = blob_url(prefix, row)?;
    let encoding =
        row.get("src_encoding").and_then(|e| e.as_str()).ok_or_else(|| Error::Content(format!("{url}: row has no src_encoding")))?;
    let gz = storage::get_async(&url, MAX_BLOB_BYTES).await.map_err(Error::Fetch)?;
    decode_blob(&gz, encoding).map_err(|e| Error::Content(format!("{url}: {e}")))
}

/// Gunzip (bounded) and decode, as Python's `gzip` then `bytes.decode(encoding)`.
pub fn decode_blob(gz: &[u8], encoding: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("not a gzip stream: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("decompresses to more than {MAX_FILE_BYTES} bytes"));
    }
    super::encoding::decode(&bytes, encoding).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn blobs_decode_with_their_encoding_and_bad_ones_are_named() {
        assert_eq!(decode_blob(&gzip(b"caf\xe9"), "ISO-8859-1").unwrap(), "café");
        assert!(decode_blob(&gzip(b"caf\xe9"), "UTF-8").unwrap_err().contains("not valid UTF-8"));
        assert!(decode_blob(b"plain text", "UTF-8").unwrap_err().contains("gzip"));
        let row = serde_json::json!({ "blob_id": "../etc/passwd", "src_encoding": "UTF-8" });
        assert!(blob_url("s3://softwareheritage/content/", &row).is_err(), "a blob id is a name, never a path");
        let row = serde_json::json!({ "blob_id": "0123abcd", "src_encoding": "UTF-8" });
        assert_eq!(blob_url("s3://softwareheritage/content/", &row).unwrap().to_string(), "s3://softwareheritage/content/0123abcd");
    }

    #[test]
    fn a_gzip_bomb_is_refused() {
        let bomb = gzip(&vec![b'a'; (MAX_FILE_BYTES + 10) as usize]);
        assert!(bomb.len() < 1 << 20);
        assert!(decode_blob(&bomb, "UTF-8").unwrap_err().contains("more than"));
    }
}
