//! Where pipeline files come from and go to: a path, `-` (stdin/stdout), or an object store URL
//! (`s3://bucket/key`, see `storage`). Outputs are written to a temporary file beside the target
//! and renamed into place, or PUT whole to an object store, so an interrupted stage leaves the
//! previous output intact (SPEC §6). Bytes only: schemas live in `tables`.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::storage::{self, ObjectUrl};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {location}")]
    Read {
        location: Location,
        #[source]
        source: io::Error,
    },
    #[error("{location} is both an input and the output; writing it would destroy what is being read")]
    OutputIsInput { location: Location },
    #[error("{location} is being written by another valkit process; wait for it to finish")]
    Busy { location: Location },
    #[error("cannot write {location}")]
    Write {
        location: Location,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    BadLocation(String),
    #[error(transparent)]
    Remote(anyhow::Error),
}

impl Error {
    /// Why an object-store request failed, for the exit code (SPEC §6: unreachable is 4).
    pub fn remote_cause(&self) -> Option<&anyhow::Error> {
        match self {
            Self::Remote(cause) => Some(cause),
            _ => None,
        }
    }
}

/// The largest table read from an object store (tables are read whole into memory).
const MAX_REMOTE_TABLE_BYTES: u64 = 4 << 30;

/// A file argument: a path, `-` for stdin (inputs) / stdout (outputs), or an object URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Std,
    Path(PathBuf),
    Object(ObjectUrl),
}

impl Location {
    pub fn parse(arg: &str) -> Result<Self, Error> {
        if arg == "-" {
            return Ok(Self::Std);
        }
        if let Some(url) = arg.strip_prefix("file://") {
            return Ok(Self::Path(PathBuf::from(url)));
        }
        match ObjectUrl::parse(arg) {
            Some(Ok(url)) => Ok(Self::Object(url)),
            Some(Err(message)) => Err(Error::BadLocation(message)),
            None => Ok(Self::Path(PathBuf::from(arg))),
        }
    }

    /// `NAME` inside this location taken as a directory (`--out-dir`).
    pub fn join(&self, name: &str) -> Self {
        match self {
            Self::Std => Self::Path(PathBuf::from(name)),
            Self::Path(dir) => Self::Path(dir.join(name)),
            Self::Object(url) => Self::Object(url.join(name)),
        }
    }

    /// Whether something is there to read (`-` always is).
    pub fn exists(&self) -> Result<bool, Error> {
        match self {
            Self::Std => Ok(true),
            Self::Path(path) => Ok(path.exists()),
            Self::Object(url) => storage::exists(url).map_err(Error::Remote),
        }
    }

    /// The local file that stands for this output in locks and journals: the path itself, or
    /// for an object a file under `objects/` of valkit's state directory (`env::state_dir`), so
    /// that a resumed run on the same host finds its journal.
    pub fn local_anchor(&self) -> Option<PathBuf> {
        match self {
            Self::Std => None,
            Self::Path(path) => Some(path.clone()),
            Self::Object(url) => Some(crate::env::state_dir().join("objects").join(url.scheme()).join(url.bucket_and_key())),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Std => f.write_str("<stdio>"),
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Object(url) => write!(f, "{url}"),
        }
    }
}

/// An input read whole into memory, with its sha256 for provenance metadata.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub location: Location,
    pub bytes: Bytes,
    pub sha256: String,
}

pub fn read(location: &Location) -> Result<InputFile, Error> {
    let err = |source| Error::Read { location: location.clone(), source };
    let bytes = match location {
        Location::Std => {
            let mut buf = Vec::new();
            io::stdin().lock().read_to_end(&mut buf).map_err(err)?;
            buf
        }
        Location::Path(path) => fs::read(path).map_err(err)?,
        Location::Object(url) => storage::get(url, MAX_REMOTE_TABLE_BYTES).map_err(Error::Remote)?.to_vec(),
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(InputFile { location: location.clone(), bytes: Bytes::from(bytes), sha256 })
}

/// A file being written: a temporary beside the target until `commit` renames it into place.
/// Dropped without `commit`, the temporary is removed and the target is untouched. Its bytes are
/// in memory already, so an operator's stop waits for it (no temporary is left behind).
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    /// Dropped last, after the temporary is renamed or removed.
    _whole: crate::interrupt::Critical,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<Self, Error> {
        Self::create_with_mode(target, None)
    }

    /// `create` for a secret (a pending commit's salt): readable by its owner only from the
    /// moment it exists, in a directory only its owner can enter.
    pub fn create_private(target: &Path) -> Result<Self, Error> {
        Self::create_with_mode(target, Some(0o600))
    }

    fn create_with_mode(target: &Path, mode: Option<u32>) -> Result<Self, Error> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let whole = crate::interrupt::Critical::enter();
        let err = |source| Error::Write { location: Location::Path(target.to_path_buf()), source };
        // Like `cargo build --target-dir`, a missing output directory is created.
        match mode {
            None => fs::create_dir_all(&dir).map_err(err)?,
            // Directories it creates are owner-only; an existing one (a home directory named
            // as --state-dir) keeps the mode its owner gave it, and the file is 0600 anyway.
            Some(_) => fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(err)?,
        }
        remove_stale_temps(&dir, &name);
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if let Some(mode) = mode {
            options.mode(mode);
        }
        let file = options.open(&temp).map_err(err)?;
        if let Some(mode) = mode {
            // A stale temporary of the same name keeps its old mode through `open`.
            file.set_permissions(fs::Permissions::from_mode(mode)).map_err(err)?;
        }
        Ok(Self { target: target.to_path_buf(), temp, file: Some(file), _whole: whole })
    }

    pub fn commit(mut self) -> Result<(), Error> {
        let err = |source| Error::Write { location: Location::Path(self.target.clone()), source };
        let file = self.file.take().expect("commit is called once");
        file.sync_all().map_err(err)?;
        drop(file);
        fs::rename(&self.temp, &self.target).map_err(err)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("not committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// The one writer of an output path: an exclusive lock on `dir/.NAME.lock`, held until dropped
/// (the OS releases it when the process dies, however it dies).
pub struct OutputLock {
    _file: File,
}

impl OutputLock {
    pub fn acquire(target: &Path) -> Result<Self, Error> {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let path = target.with_file_name(format!(".{name}.lock"));
        let err = |source| Error::Write { location: Location::Path(target.to_path_buf()), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(err)?;
        }
        Ok(Self { _file: try_lock(&path, Location::Path(target.to_path_buf()))? })
    }
}

/// An exclusive lock on the file at `path`, or `Busy` naming `guarded` when another process holds it.
fn try_lock(path: &Path, guarded: Location) -> Result<File, Error> {
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(path);
    let file = file.map_err(|source| Error::Write { location: guarded.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Busy { location: guarded }),
        Err(fs::TryLockError::Error(source)) => Err(Error::Write { location: guarded, source }),
    }
}

/// Refuses an output that is one of the inputs (the same file, by any path to it).
pub fn ensure_not_input(out: &Location, inputs: &[&Location]) -> Result<(), Error> {
    let Location::Path(out_path) = out else {
        return match inputs.contains(&out) {
            true if !matches!(out, Location::Std) => Err(Error::OutputIsInput { location: out.clone() }),
            _ => Ok(()),
        };
    };
    let resolved = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    for input in inputs {
        if let Location::Path(in_path) = input {
            if in_path == out_path || resolved(in_path) == resolved(out_path) {
                return Err(Error::OutputIsInput { location: out.clone() });
            }
        }
    }
    Ok(())
}

/// Where `publish_set` keeps the versions of a directory's file set.
pub const SETS_DIR: &str = ".valkit-sets";

/// Publishes several files in `dir` as one set (compute-wins' wins, weights and tracker): a
/// reader, a crash or a concurrent run sees the old complete set or the new one, never a mix.
///
/// The files are written into a new version directory `dir/.valkit-sets/<id>/`; each visible
/// name `dir/NAME` is a symlink to `.valkit-sets/current/NAME`, and the switch is one atomic
/// rename of the `current` symlink. Regular files left by an older valkit are first moved into a
/// version of their own, so that even that first switch is atomic. Versions older than the
/// previous one are removed, as are those a dead process left half-written.
#[cfg(unix)]
pub fn publish_set(dir: &Path, outputs: &[(&str, Vec<u8>)]) -> Result<(), Error> {
    use std::os::unix::fs::symlink;
    let location = || Location::Path(dir.to_path_buf());
    let err = |source| Error::Write { location: location(), source };
    let sets = dir.join(SETS_DIR);
    fs::create_dir_all(&sets).map_err(err)?;
    let _lock = try_lock(&sets.join(".lock"), location())?;
    remove_unfinished_versions(&sets).map_err(err)?;
    for (name, _) in outputs {
        remove_stale_temps(dir, name);
    }
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let id = format!("{stamp:032}-{}", std::process::id());
    let staging = sets.join(format!(".staging-{id}"));
    fs::create_dir(&staging).map_err(err)?;
    for (name, bytes) in outputs {
        let mut file = File::create(staging.join(name)).map_err(err)?;
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(err)?;
    }
    File::open(&staging).and_then(|d| d.sync_all()).map_err(err)?;
    fs::rename(&staging, sets.join(&id)).map_err(err)?;

    let current = sets.join("current");
    let switch_to = |version: &str| -> io::Result<()> {
        let temp = sets.join(format!(".current-{}", std::process::id()));
        let _ = fs::remove_file(&temp);
        symlink(version, &temp)?;
        fs::rename(&temp, &current)
    };
    // Files from before sets: they become a version of their own, then names turn into links.
    let legacy: Vec<&str> = outputs.iter().map(|(n, _)| *n).filter(|n| dir.join(n).symlink_metadata().is_ok_and(|m| m.is_file())).collect();
    if !legacy.is_empty() {
        let old = format!("{id}-before");
        fs::create_dir(sets.join(&old)).map_err(err)?;
        for name in &legacy {
            fs::hard_link(dir.join(name), sets.join(&old).join(name)).map_err(err)?;
        }
        switch_to(&old).map_err(err)?;
    }
    for (name, _) in outputs {
        let visible = dir.join(name);
        if visible.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        let temp = dir.join(format!(".{name}.{}.link", std::process::id()));
        let _ = fs::remove_file(&temp);
        symlink(Path::new(SETS_DIR).join("current").join(name), &temp).map_err(err)?;
        fs::rename(&temp, &visible).map_err(err)?;
    }
    let previous = fs::read_link(&current).ok();
    switch_to(&id).map_err(err)?;
    File::open(&sets).and_then(|d| d.sync_all()).map_err(err)?;
    // Keep the new version and the one before it (a reader may still be reading it).
    for entry in fs::read_dir(&sets).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let keep = name == *id.as_str()
            || Some(Path::new(&name)) == previous.as_deref()
            || name.to_string_lossy().starts_with('.')
            || name == "current";
        if !keep && entry.file_type().map_err(err)?.is_dir() {
            fs::remove_dir_all(entry.path()).map_err(err)?;
        }
    }
    Ok(())
}

/// `.NAME.PID.tmp` files of writers that died before renaming them (kill -9, power loss).
fn remove_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(".tmp")).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !process_alive(pid)) && fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a temporary file a dead process left");
        }
    }
}

/// Staging directories whose writer is gone (a crash before the rename).
#[cfg(unix)]
fn remove_unfinished_versions(sets: &Path) -> io::Result<()> {
    for entry in fs::read_dir(sets)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(".staging-").and_then(|rest| rest.rsplit('-').next()).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !process_alive(pid) {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Whether a process still runs (Linux: /proc; elsewhere assume it does, and keep its files).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Writes `bytes` to `location` atomically (or to stdout for `-`).
pub fn write(location: &Location, bytes: &[u8]) -> Result<(), Error> {
    match location {
        Location::Std => {
            let mut out = io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush()).map_err(|source| Error::Write { location: location.clone(), source })
        }
        Location::Path(path) => {
            let mut file = AtomicFile::create(path)?;
            file.write_all(bytes).map_err(|source| Error::Write { location: location.clone(), source })?;
            file.commit()
        }
        Location::Object(url) => storage::put(url, Bytes::copy_from_slice(bytes)).map_err(Error::Remote),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_owner_only_from_the_start_in_an_owner_only_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("state/secret.json");
        let mut file = AtomicFile::create_private(&target).unwrap();
        let temp_mode = fs::metadata(&file.temp).unwrap().permissions().mode() & 0o777;
        file.write_all(b"{}").unwrap();
        file.commit().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((temp_mode, mode(&target), mode(&dir.path().join("state"))), (0o600, 0o600, 0o700));
    }

    #[test]
    fn uncommitted_file_leaves_target_intact() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.parquet");
        fs::write(&target, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&target).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "temporary removed");
        write(&Location::Path(target.clone()), b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }
}
