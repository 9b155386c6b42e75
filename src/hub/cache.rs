//! valkit's additions to the standard Hugging Face cache, kept beside it so that Python's
//! huggingface_hub still reads the cache: a record per verified snapshot (so that a verified
//! model costs no request at all on the next run), blob sharing between repositories (a
//! copy-cat miner's identical weights are stored once), the list of snapshots the latest models
//! table uses, and the garbage collection that frees the rest.
//!
//! Layout under the cache root: `models--{ns}--{name}/{blobs,snapshots,refs}` (hf-hub's), and
//! `.valkit/verified/models--{ns}--{name}/{commit}.json`, `.valkit/in-use.json` (ours).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// What was checked about a snapshot, so that a later run trusts it without a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// The files the model hash covers, with their sizes.
    pub files: BTreeMap<String, u64>,
    /// upstream.md §2.3's directory hash over exactly those files.
    pub model_hash: String,
    /// Facts the caller derived (parameters, architecture, norms), opaque here.
    pub facts: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn snapshot_dir(&self, repo: &str, commit: &str) -> PathBuf {
        self.root.join(repo_folder(repo)).join("snapshots").join(commit)
    }

    fn verified_path(&self, repo: &str, commit: &str) -> PathBuf {
        self.root.join(".valkit/verified").join(repo_folder(repo)).join(format!("{commit}.json"))
    }

    /// The record of an earlier verification, if the snapshot still holds every file at its size.
    pub fn verified(&self, repo: &str, commit: &str) -> Option<Verified> {
        let text = fs::read_to_string(self.verified_path(repo, commit)).ok()?;
        let record: Verified = serde_json::from_str(&text).ok()?;
        let dir = self.snapshot_dir(repo, commit);
        let intact = record.files.iter().all(|(file, size)| fs::metadata(dir.join(file)).is_ok_and(|m| m.is_file() && m.len() == *size));
        intact.then_some(record)
    }

    pub fn record_verified(&self, repo: &str, commit: &str, record: &Verified) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        write_atomic(&self.verified_path(repo, commit), &text)
    }

    /// `models--{ns}--{name}/blobs/{name}`; both names were checked by the caller (`names`).
    pub fn blob_path(&self, repo: &str, blob: &str) -> PathBuf {
        self.root.join(repo_folder(repo)).join("blobs").join(blob)
    }

    /// huggingface_hub's lock beside the cache: `.locks/models--{ns}--{name}/{blob}.lock`.
    pub fn lock_path(&self, repo: &str, blob: &str) -> PathBuf {
        self.root.join(".locks").join(repo_folder(repo)).join(format!("{blob}.lock"))
    }

    /// Whether `path`, with every link in its existing part resolved, is inside the cache.
    pub fn contains(&self, path: &Path) -> bool {
        let Ok(root) = fs::canonicalize(&self.root) else { return false };
        // The deepest existing ancestor decides: what does not exist yet is created under it
        // from checked names.
        let mut existing = path;
        loop {
            if let Ok(real) = fs::canonicalize(existing) {
                return real.starts_with(&root);
            }
            match existing.parent() {
                Some(parent) => existing = parent,
                None => return false,
            }
        }
    }

    /// Creates `path`'s directories, refusing any that a link leads out of the cache.
    fn create_dirs(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(&self.root)?;
        let outside = || io::Error::other(format!("{} leads outside the cache {}", dir.display(), self.root.display()));
        // Before (nothing created through a link) and after (nothing swapped in between).
        if !self.contains(dir) {
            return Err(outside());
        }
        fs::create_dir_all(dir)?;
        if !self.contains(dir) {
            return Err(outside());
        }
        Ok(())
    }

    /// Opens (creating) a file inside the cache, such as a lock.
    pub fn create_file(&self, path: &Path) -> io::Result<fs::File> {
        self.create_dirs(path.parent().expect("a file in a directory"))?;
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)
    }

    /// Gives `repo` the blob `blob` from another repository that already holds it at `size`
    /// (a hard link: the bytes are stored once). Returns whether it did.
    pub fn link_blob_from_elsewhere(&self, repo: &str, blob: &str, size: u64) -> io::Result<bool> {
        let target = self.blob_path(repo, blob);
        let Some(source) = self.find_blob(blob, size, &repo_folder(repo))? else { return Ok(false) };
        self.create_dirs(target.parent().expect("blobs dir"))?;
        // Another filesystem: let the download happen rather than copy gigabytes.
        Ok(fs::hard_link(&source, &target).is_ok())
    }

    /// `snapshots/{commit}/{file}` as a relative link to `blobs/{blob}`, as huggingface_hub
    /// `_create_symlink` makes it; an existing entry is replaced.
    pub fn point(&self, repo: &str, commit: &str, file: &str, blob: &str) -> io::Result<PathBuf> {
        let pointer = self.snapshot_dir(repo, commit).join(file);
        self.create_dirs(pointer.parent().expect("snapshot dir"))?;
        let depth = file.matches('/').count() + 2;
        let relative = PathBuf::from("../".repeat(depth)).join("blobs").join(blob);
        if fs::symlink_metadata(&pointer).is_ok() {
            fs::remove_file(&pointer)?;
        }
        symlink(&relative, &pointer)?;
        Ok(pointer)
    }

    /// `refs/{branch}` holding the commit a branch resolved to (huggingface_hub writes it only
    /// for a revision that is not a commit).
    pub fn write_ref(&self, repo: &str, branch: &str, commit: &str) -> io::Result<()> {
        let path = self.root.join(repo_folder(repo)).join("refs").join(branch);
        self.create_dirs(path.parent().expect("refs dir"))?;
        if fs::read_to_string(&path).is_ok_and(|c| c == commit) {
            return Ok(());
        }
        write_atomic(&path, commit.as_bytes())
    }

    fn find_blob(&self, etag: &str, size: u64, except: &str) -> io::Result<Option<PathBuf>> {
        for folder in self.repo_folders()? {
            if folder == except {
                continue;
            }
            let blob = self.root.join(&folder).join("blobs").join(etag);
            if fs::metadata(&blob).is_ok_and(|m| m.is_file() && m.len() == size) {
                return Ok(Some(blob));
            }
        }
        Ok(None)
    }

    fn repo_folders(&self) -> io::Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with("models--") {
                out.insert(name);
            }
        }
        Ok(out)
    }

    /// Records which snapshots (`repo@commit`) the latest models table uses; `gc` keeps them.
    pub fn record_in_use(&self, snapshots: &BTreeSet<(String, String)>) -> io::Result<()> {
        let list: Vec<String> = snapshots.iter().map(|(r, c)| format!("{r}@{c}")).collect();
        write_atomic(&self.root.join(".valkit/in-use.json"), &serde_json::to_vec_pretty(&list).map_err(io::Error::other)?)
    }

    /// The snapshot directories the latest models table uses.
    pub fn in_use(&self) -> io::Result<BTreeSet<PathBuf>> {
        let text = match fs::read_to_string(self.root.join(".valkit/in-use.json")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(e),
        };
        let list: Vec<String> = serde_json::from_str(&text).map_err(io::Error::other)?;
        Ok(list.iter().filter_map(|s| s.rsplit_once('@')).map(|(r, c)| self.snapshot_dir(r, c)).collect())
    }

    /// Marks `repo` as one valkit downloads into, before the first byte arrives: `gc` only ever
    /// frees such repositories, never what else shares the cache (the competitions'
    /// tokenizers, a user's own models).
    pub fn record_fetched(&self, repo: &str) -> io::Result<()> {
        let marker = self.root.join(".valkit/fetched").join(repo_folder(repo));
        if marker.exists() {
            return Ok(());
        }
        write_atomic(&marker, b"")
    }

    fn fetched_by_valkit(&self, folder: &str) -> bool {
        self.root.join(".valkit/fetched").join(folder).exists() || self.root.join(".valkit/verified").join(folder).is_dir()
    }

    /// Every snapshot of a repository valkit fetched, with the bytes only it holds and its
    /// newest modification.
    pub fn snapshots(&self) -> io::Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        for folder in self.repo_folders()?.into_iter().filter(|f| self.fetched_by_valkit(f)) {
            let repo_dir = self.root.join(&folder);
            let Ok(entries) = fs::read_dir(repo_dir.join("snapshots")) else { continue };
            let mut commits: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            commits.sort();
            for dir in commits {
                let blobs = blobs_of(&dir)?;
                let mut newest = fs::symlink_metadata(&dir)?.modified()?;
                let mut bytes = 0;
                for blob in &blobs {
                    let meta = fs::metadata(blob)?;
                    newest = newest.max(meta.modified()?);
                    bytes += meta.len();
                }
                out.push(Snapshot { repo_dir: repo_dir.clone(), dir, blobs, bytes, newest });
            }
        }
        Ok(out)
    }

    /// Removes a snapshot, its verification record and the blobs no other snapshot of the
    /// repository links to; the repository folder goes when nothing is left in it.
    pub fn remove(&self, snapshot: &Snapshot) -> io::Result<()> {
        fs::remove_dir_all(&snapshot.dir)?;
        if let (Some(folder), Some(commit)) = (snapshot.repo_dir.file_name(), snapshot.dir.file_name()) {
            let record = self.root.join(".valkit/verified").join(folder).join(format!("{}.json", commit.to_string_lossy()));
            let _ = fs::remove_file(record);
        }
        let mut still_used = BTreeSet::new();
        if let Ok(entries) = fs::read_dir(snapshot.repo_dir.join("snapshots")) {
            for entry in entries.flatten() {
                still_used.extend(blobs_of(&entry.path())?);
            }
        }
        for blob in &snapshot.blobs {
            if !still_used.contains(blob) {
                let _ = fs::remove_file(blob);
            }
        }
        let snapshots_left = fs::read_dir(snapshot.repo_dir.join("snapshots")).map(|mut d| d.next().is_some()).unwrap_or(false);
        if !snapshots_left {
            fs::remove_dir_all(&snapshot.repo_dir)?;
        }
        Ok(())
    }
}

/// A snapshot directory and what removing it would free.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub repo_dir: PathBuf,
    pub dir: PathBuf,
    /// The files its entries resolve to (blobs, or plain files for a flattened snapshot).
    pub blobs: BTreeSet<PathBuf>,
    pub bytes: u64,
    pub newest: SystemTime,
}

/// The real files behind a snapshot's entries, recursively.
fn blobs_of(dir: &Path) -> io::Result<BTreeSet<PathBuf>> {
    let mut out = BTreeSet::new();
    let Ok(entries) = fs::read_dir(dir) else { return Ok(out) };
    for entry in entries {
        let path = entry?.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            out.extend(blobs_of(&path)?);
        } else if let Ok(real) = fs::canonicalize(&path) {
            out.insert(real);
        }
    }
    Ok(out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("a file in a directory");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.{}.tmp", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), std::process::id()));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    let resolved = link.parent().expect("snapshot dir").join(target);
    fs::copy(resolved, link).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_of_another_repository_is_linked_not_copied() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path().to_path_buf());
        let blob = cache.blob_path("a/x", "abc123");
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        fs::write(&blob, b"weights").unwrap();
        assert!(cache.link_blob_from_elsewhere("b/y", "abc123", 7).unwrap());
        let linked = cache.point("b/y", "c0ffee", "sub/model.safetensors", "abc123").unwrap();
        assert_eq!(linked, cache.snapshot_dir("b/y", "c0ffee").join("sub/model.safetensors"));
        assert_eq!(fs::read(&linked).unwrap(), b"weights");
        assert_eq!(fs::read_link(&linked).unwrap(), PathBuf::from("../../../blobs/abc123"), "relative, as huggingface_hub links");
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(fs::metadata(&blob).unwrap().ino(), fs::metadata(&linked).unwrap().ino());
        }
        // A size mismatch is not the same blob.
        assert!(!cache.link_blob_from_elsewhere("c/z", "abc123", 8).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn nothing_is_written_through_a_link_out_of_the_cache() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path().join("hub"));
        fs::create_dir_all(cache.root().join("models--a--x")).unwrap();
        std::os::unix::fs::symlink(outside.path(), cache.root().join("models--a--x/snapshots")).unwrap();
        let e = cache.point("a/x", "c0ffee", "config.json", "abc").unwrap_err();
        assert!(e.to_string().contains("outside the cache"), "{e}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0, "nothing created through the link");
        assert!(cache.contains(&cache.blob_path("a/x", "abc")));
        assert!(!cache.contains(&cache.root().join("models--a--x/snapshots/c0ffee")));
    }

    #[test]
    fn only_repositories_valkit_fetched_are_listed_for_gc() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path().to_path_buf());
        for repo in ["miner/model", "Xenova/gpt-4"] {
            let dir = cache.snapshot_dir(repo, "c1");
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("config.json"), b"{}").unwrap();
        }
        assert!(cache.snapshots().unwrap().is_empty(), "nothing valkit fetched");
        cache.record_fetched("miner/model").unwrap();
        cache.record_fetched("miner/model").unwrap();
        let listed: Vec<PathBuf> = cache.snapshots().unwrap().into_iter().map(|s| s.dir).collect();
        assert_eq!(listed, [cache.snapshot_dir("miner/model", "c1")], "the tokenizer is not ours to remove");
    }

    #[test]
    fn a_verified_record_holds_only_while_the_files_do() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path().to_path_buf());
        let dir = cache.snapshot_dir("a/x", "c1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.json"), b"{}").unwrap();
        let record = Verified { files: [("config.json".to_string(), 2)].into(), model_hash: "h".into(), facts: serde_json::json!({}) };
        cache.record_verified("a/x", "c1", &record).unwrap();
        assert_eq!(cache.verified("a/x", "c1"), Some(record));
        fs::write(dir.join("config.json"), b"{ }").unwrap();
        assert_eq!(cache.verified("a/x", "c1"), None);
    }
}
