//! A file's metadata as huggingface_hub's `get_hf_file_metadata` reads it: off the answer to a
//! `HEAD /{repo}/resolve/{revision}/{file}` that followed only the hub's own redirects, so that
//! for an LFS or Xet file it is the hub's 302 — not the CDN's answer — that carries the commit,
//! the sha256 and the size (`X-Linked-*` before `ETag`/`Content-Length`), and its `Location` is
//! where the bytes are. Every value is checked (`names`) before anything uses it. Pure.

use reqwest::header::{HeaderMap, CONTENT_LENGTH, ETAG, LOCATION};
use url::Url;

use super::names::{self, BlobKind, Refused};

pub const X_REPO_COMMIT: &str = "x-repo-commit";
pub const X_LINKED_ETAG: &str = "x-linked-etag";
pub const X_LINKED_SIZE: &str = "x-linked-size";
pub const X_XET_HASH: &str = "x-xet-hash";

/// Where a file's bytes are and what they must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The commit the revision resolved to: the pinned one when the revision is a commit.
    pub commit: String,
    /// The blob's name in the cache: the sha256 of an LFS/Xet file, the git oid of a plain one.
    pub blob: String,
    pub kind: BlobKind,
    pub size: u64,
    /// The URL to download from: the CDN's (signed) for LFS and Xet files.
    pub location: Url,
    /// Present for Xet-backed files.
    pub xet_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMeta {
    #[error("no {0} header")]
    Missing(&'static str),
    #[error("{0}")]
    Refused(#[from] Refused),
    #[error("{header} {value:?} is not a byte count")]
    Size { header: &'static str, value: String },
    #[error("Location {0:?} is not a URL")]
    Location(String),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The metadata in `headers`, the answer `answered` gave for `pinned` (a commit or a branch);
/// `redirect` when that answer was a redirect off the hub (huggingface_hub
/// `get_hf_file_metadata`).
pub fn from_headers(headers: &HeaderMap, answered: &Url, pinned: &str, redirect: bool) -> Result<FileMeta, BadMeta> {
    let commit = header(headers, X_REPO_COMMIT).ok_or(BadMeta::Missing("X-Repo-Commit"))?;
    let commit = names::commit(commit, pinned)?;
    let etag = header(headers, X_LINKED_ETAG).or_else(|| header(headers, ETAG.as_str())).ok_or(BadMeta::Missing("ETag"))?;
    let (blob, kind) = names::blob(etag)?;
    // A redirect's own Content-Length is its body's, not the file's.
    let (size_header, size) = match header(headers, X_LINKED_SIZE) {
        Some(v) => ("X-Linked-Size", v),
        None if redirect => return Err(BadMeta::Missing("X-Linked-Size")),
        None => ("Content-Length", header(headers, CONTENT_LENGTH.as_str()).ok_or(BadMeta::Missing("Content-Length"))?),
    };
    let size = size.parse().map_err(|_| BadMeta::Size { header: size_header, value: size.to_string() })?;
    let location = match header(headers, LOCATION.as_str()) {
        Some(l) => answered.join(l).map_err(|_| BadMeta::Location(l.to_string()))?,
        None => answered.clone(),
    };
    let xet_hash = header(headers, X_XET_HASH).map(str::to_string);
    Ok(FileMeta { commit, blob, kind, size, location, xet_hash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_lfs_redirect_is_read_off_the_302() {
        let commit = "c".repeat(40);
        let sha = "5".repeat(64);
        let answered = Url::parse("https://huggingface.co/a/b/resolve/cccc/model.safetensors").unwrap();
        let h = headers(&[
            ("X-Repo-Commit", &commit),
            ("X-Linked-Etag", &format!("\"{sha}\"")),
            ("X-Linked-Size", "1234567"),
            ("ETag", &format!("\"{}\"", "9".repeat(40))),
            ("Content-Length", "1371"),
            ("Location", "https://cdn-lfs.hf.co/repos/aa/bb/5555?X-Amz-Signature=s"),
        ]);
        let meta = from_headers(&h, &answered, &commit, true).unwrap();
        assert_eq!((meta.blob.as_str(), meta.kind, meta.size), (sha.as_str(), BlobKind::Sha256, 1_234_567));
        assert_eq!(meta.location.host_str(), Some("cdn-lfs.hf.co"));
        assert_eq!(meta.xet_hash, None);
    }

    #[test]
    fn a_plain_file_uses_etag_and_content_length_and_its_own_url() {
        let commit = "c".repeat(40);
        let oid = "9".repeat(40);
        let answered = Url::parse("https://huggingface.co/api/resolve-cache/models/a/b/cccc/config.json").unwrap();
        let h = headers(&[("X-Repo-Commit", &commit), ("ETag", &format!("W/\"{oid}\"")), ("Content-Length", "321")]);
        let meta = from_headers(&h, &answered, "main", false).unwrap();
        assert_eq!((meta.blob.as_str(), meta.kind, meta.size, &meta.location), (oid.as_str(), BlobKind::GitOid, 321, &answered));
    }

    #[test]
    fn hostile_or_missing_headers_are_refused() {
        let commit = "c".repeat(40);
        let answered = Url::parse("https://huggingface.co/a/b/resolve/x/f").unwrap();
        let etag = format!("\"{}\"", "9".repeat(40));
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("ETag", &etag), ("Content-Length", "1")], "X-Repo-Commit"),
            (&[("X-Repo-Commit", &commit), ("ETag", "\"../../../../tmp/x\""), ("Content-Length", "1")], "ETag"),
            (&[("X-Repo-Commit", "../../../tmp/y"), ("ETag", &etag), ("Content-Length", "1")], "X-Repo-Commit"),
            (&[("X-Repo-Commit", &"d".repeat(40)), ("ETag", &etag), ("Content-Length", "1")], "another commit"),
            (&[("X-Repo-Commit", &commit), ("ETag", &etag), ("X-Linked-Size", "-1")], "X-Linked-Size"),
            (&[("X-Repo-Commit", &commit), ("ETag", &etag), ("Content-Length", "1"), ("Location", "https://cdn/x")], "X-Linked-Size"),
        ];
        for (pairs, says) in cases {
            let redirect = pairs.iter().any(|(k, _)| *k == "Location");
            let e = from_headers(&headers(pairs), &answered, &commit, redirect).unwrap_err();
            assert!(e.to_string().contains(says), "{e} should mention {says}");
        }
    }
}
