//! Files of a pinned snapshot made present in the standard Hugging Face cache, as
//! huggingface_hub's `hf_hub_download` leaves them (`blobs/{etag}`, `snapshots/{commit}/{file}`
//! as a relative link, `refs/{branch}`, `.locks/…/{etag}.lock`), so that Python and valkit share
//! one cache: already there (no request), linked from a blob another repository holds (a
//! copy-cat's weights are stored once), or downloaded from where the metadata says the bytes
//! are (the CDN or the Xet bridge, over plain HTTP) — resumed with a byte range when an answer
//! breaks off, bounded in size and time, and verified against the blob's name (sha256 for LFS
//! and Xet files, the git oid for plain ones) before it is renamed into place; huggingface_hub
//! checks only the size. Every name is checked (`names`) and every path the cache writes stays
//! inside it.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::CONTENT_RANGE;
use reqwest::{Method, StatusCode};
use sha2::Digest;

use super::http::Follow;
use super::meta::FileMeta;
use super::names::{self, BlobKind};
use super::{Error, Hub, Progress, SnapshotFile};

/// How often a blob lock held by another process is tried again.
const LOCK_POLL: Duration = Duration::from_millis(200);
/// Resumptions of a download that broke off (huggingface_hub `http_get`'s `_nb_retries`).
const MAX_RESUMES: u32 = 5;

/// A download's progress: bytes so far and their running hash.
struct Body {
    checker: Checker,
    done: u64,
    size: u64,
}

/// Why an answer's body stopped.
enum Interrupted {
    Transport(reqwest::Error),
    Deadline,
    TooLong,
    Write(std::io::Error),
}

/// A temporary download, removed unless it was renamed into place.
struct TempBlob(PathBuf);

impl Drop for TempBlob {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl Hub {
    /// Makes `file` of `repo@revision` present in the snapshot and returns its path. `size` is the
    /// listed size, which the hub's metadata and the bytes must agree with.
    pub async fn snapshot_file(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
        size: u64,
        progress: Option<Box<dyn Progress>>,
    ) -> Result<SnapshotFile, Error> {
        names::repo_id(repo)?;
        names::file_path(file)?;
        if let Some(path) = self.present(repo, revision, file, size) {
            return Ok(SnapshotFile { path, downloaded_bytes: 0, shared: false });
        }
        self.offline_check(repo, revision, file)?;
        let meta = self.meta(repo, revision, file).await?;
        if meta.size != size {
            let detail = format!("the file list says {size} bytes, the file's metadata {}", meta.size);
            return Err(Error::Corrupt { repo: repo.to_string(), file: file.to_string(), detail });
        }
        if let Err(e) = self.cache.record_fetched(repo) {
            tracing::warn!(repo, error = %e, "could not mark the repository as fetched by valkit");
        }
        let in_flight = self.blobs_in_flight.lock().expect("no panics while held").entry(meta.blob.clone()).or_default().clone();
        let _guard = in_flight.lock().await;
        let blob = self.cache.blob_path(repo, &meta.blob);
        let (mut downloaded_bytes, mut shared) = (0, false);
        if !fs::metadata(&blob).is_ok_and(|m| m.is_file() && m.len() == size) {
            shared = self.cache.link_blob_from_elsewhere(repo, &meta.blob, size).map_err(|e| Error::io(&blob, e))?;
            if shared {
                tracing::debug!(repo, file, "stored once: the blob was already in the cache");
            } else {
                self.download_blob(repo, file, &meta, &blob, progress).await?;
                downloaded_bytes = size;
            }
        }
        let path = self.cache.point(repo, &meta.commit, file, &meta.blob).map_err(|e| Error::io(&blob, e))?;
        if !names::is_commit(revision) {
            self.cache.write_ref(repo, revision, &meta.commit).map_err(|e| Error::io(self.cache.root(), e))?;
        }
        Ok(SnapshotFile { path, downloaded_bytes, shared })
    }

    /// The snapshot's file when it is already there at its listed size: no request at all.
    fn present(&self, repo: &str, revision: &str, file: &str, size: u64) -> Option<PathBuf> {
        let dir = if names::is_commit(revision) {
            self.cache.snapshot_dir(repo, revision)
        } else {
            self.config.cached_snapshot(repo, revision)?
        };
        let path = dir.join(file);
        let ok = fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size) && self.cache.contains(&path);
        ok.then_some(path)
    }

    fn offline_check(&self, repo: &str, revision: &str, file: &str) -> Result<(), Error> {
        if self.config.offline {
            return Err(Error::Offline(format!("{repo}@{revision}/{file}")));
        }
        Ok(())
    }

    /// Downloads a blob under its lock into a file of this process's own, resuming with a byte
    /// range when the answer breaks off, checks it, and renames it into place.
    async fn download_blob(
        &self,
        repo: &str,
        file: &str,
        meta: &FileMeta,
        blob: &Path,
        progress: Option<Box<dyn Progress>>,
    ) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + self.download_deadline(meta.size);
        let _lock = self.lock_blob(repo, &meta.blob, blob, deadline).await?;
        if fs::metadata(blob).is_ok_and(|m| m.len() == meta.size) {
            return Ok(()); // another process finished it while we waited
        }
        // huggingface_hub `_download_to_tmp_and_move` (PR #4228): a process-unique
        // `{blob}.{8 hex}.incomplete`, removed on failure, because a shared one is corrupted
        // wherever flock silently succeeds (Lustre, GPFS, some NFS).
        let tmp = TempBlob(PathBuf::from(format!("{}.{:08x}.incomplete", blob.display(), fastrand::u32(..))));
        let mut out = self.cache.create_file(&tmp.0).map_err(|e| Error::io(&tmp.0, e))?;
        if let Some(p) = &progress {
            p.start(meta.size);
        }
        let mut body = Body { checker: Checker::new(meta.kind, meta.size), done: 0, size: meta.size };
        let mut resumes = MAX_RESUMES;
        loop {
            let range = (body.done > 0).then(|| format!("bytes={}-", body.done));
            let answer = self.http.send(repo, Method::GET, meta.location.clone(), range.as_deref(), Follow::Any).await?;
            let answer = self.check(answer, repo, &meta.commit, Some(file)).await?;
            // huggingface_hub `http_get`: a Range answered with the whole file starts over.
            let continues =
                answer.response.status() == StatusCode::PARTIAL_CONTENT && content_range_start(&answer.response) == Some(body.done);
            if body.done > 0 && !continues {
                out.set_len(0).and_then(|()| out.seek(SeekFrom::Start(0)).map(drop)).map_err(|e| Error::io(&tmp.0, e))?;
                body = Body { checker: Checker::new(meta.kind, meta.size), done: 0, size: meta.size };
            }
            match self.stream(answer.response, &mut out, &mut body, deadline, progress.as_deref()).await {
                Ok(()) if body.done == meta.size => break,
                Ok(()) | Err(Interrupted::Transport(_)) if resumes > 0 && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(repo, file, done = body.done, "the download broke off; resuming");
                    resumes -= 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(()) => {
                    let detail = format!("{file}: the answer ended after {} of {} bytes", body.done, meta.size);
                    return Err(Error::Unreachable { endpoint: self.config.endpoint.clone(), detail });
                }
                Err(Interrupted::Transport(e)) => return Err(self.http_unreachable(&e)),
                Err(Interrupted::Deadline) => return Err(self.unreachable_after(meta.size)),
                Err(Interrupted::TooLong) => {
                    let detail = format!("more than the {} bytes its metadata says", meta.size);
                    return Err(Error::Corrupt { repo: repo.to_string(), file: file.to_string(), detail });
                }
                Err(Interrupted::Write(e)) => return Err(Error::io(&tmp.0, e)),
            }
        }
        out.sync_all().map_err(|e| Error::io(&tmp.0, e))?;
        drop(out);
        if let Err(actual) = body.checker.verify(&meta.blob) {
            let detail = format!("the bytes hash to {actual}, not to the {} the hub named", meta.blob);
            return Err(Error::Corrupt { repo: repo.to_string(), file: file.to_string(), detail });
        }
        fs::rename(&tmp.0, blob).map_err(|e| Error::io(blob, e))?;
        if let Some(p) = &progress {
            p.finish();
        }
        Ok(())
    }

    /// One answer's body appended to `out`, hashed as it comes, never past the expected size.
    async fn stream(
        &self,
        response: reqwest::Response,
        out: &mut fs::File,
        body: &mut Body,
        deadline: tokio::time::Instant,
        progress: Option<&dyn Progress>,
    ) -> Result<(), Interrupted> {
        let mut stream = response.bytes_stream();
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next()).await.map_err(|_| Interrupted::Deadline)?;
            let Some(chunk) = next else { return Ok(()) };
            let chunk = chunk.map_err(Interrupted::Transport)?;
            body.done += chunk.len() as u64;
            if body.done > body.size {
                return Err(Interrupted::TooLong);
            }
            body.checker.update(&chunk);
            out.write_all(&chunk).map_err(Interrupted::Write)?;
            if let Some(p) = progress {
                p.advance(body.done);
            }
        }
    }

    fn unreachable_after(&self, size: u64) -> Error {
        let detail = format!("no complete download within {} s", self.download_deadline(size).as_secs());
        Error::Unreachable { endpoint: self.config.endpoint.clone(), detail }
    }

    /// huggingface_hub's `WeakFileLock` on `.locks/models--…/{blob}.lock`: one process writes a
    /// blob at a time.
    async fn lock_blob(&self, repo: &str, name: &str, blob: &Path, deadline: tokio::time::Instant) -> Result<fs::File, Error> {
        let path = self.cache.lock_path(repo, name);
        let file = self.cache.create_file(&path).map_err(|e| Error::io(&path, e))?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => tokio::time::sleep(LOCK_POLL).await,
                Err(fs::TryLockError::WouldBlock) => {
                    let detail = format!("{} is locked by another download", blob.display());
                    return Err(Error::Io { path: path.display().to_string(), source: std::io::Error::other(detail) });
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
    }
}

/// The first byte a 206's `Content-Range: bytes a-b/n` carries.
fn content_range_start(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    value.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// The hash a blob's name promises, computed as the bytes arrive.
enum Checker {
    Sha256(sha2::Sha256),
    /// git's blob oid: sha1 of `blob {size}\0` and the content.
    GitOid(sha1::Sha1),
}

impl Checker {
    fn new(kind: BlobKind, size: u64) -> Self {
        match kind {
            BlobKind::Sha256 => Self::Sha256(sha2::Sha256::new()),
            BlobKind::GitOid => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Self::GitOid(h)
            }
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::GitOid(h) => h.update(bytes),
        }
    }

    /// Ok when the bytes hash to `name`, else the hash they have.
    fn verify(self, name: &str) -> Result<(), String> {
        let actual = match self {
            Self::Sha256(h) => hex::encode(h.finalize()),
            Self::GitOid(h) => hex::encode(h.finalize()),
        };
        if actual == name {
            Ok(())
        } else {
            Err(actual)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_checked_as_git_and_lfs_name_them() {
        // `printf 'hello\n' | git hash-object --stdin`, and `sha256sum`.
        let mut git = Checker::new(BlobKind::GitOid, 6);
        git.update(b"hello\n");
        assert_eq!(git.verify("ce013625030ba8dba906f756967f9e9ca394464a"), Ok(()));
        let mut lfs = Checker::new(BlobKind::Sha256, 6);
        lfs.update(b"hello\n");
        assert_eq!(lfs.verify("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"), Ok(()));
        let mut bad = Checker::new(BlobKind::Sha256, 6);
        bad.update(b"hellO\n");
        assert!(bad.verify("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03").is_err());
    }
}
