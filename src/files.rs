//! Where pipeline files come from and go to: a path or `-` (stdin/stdout). Outputs are written to
//! a temporary file beside the target and renamed into place, so an interrupted stage leaves the
//! previous output intact (SPEC §6). Bytes only: schemas live in `tables`.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {location}")]
    Read {
        location: Location,
        #[source]
        source: io::Error,
    },
    #[error("{location} is being written by another valkit process; wait for it to finish")]
    Busy { location: Location },
    #[error("cannot write {location}")]
    Write {
        location: Location,
        #[source]
        source: io::Error,
    },
}

/// A file argument: a path, or `-` for stdin (inputs) / stdout (outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Std,
    Path(PathBuf),
}

impl Location {
    pub fn parse(arg: &str) -> Self {
        if arg == "-" {
            Self::Std
        } else {
            Self::Path(PathBuf::from(arg))
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Std => f.write_str("<stdio>"),
            Self::Path(p) => write!(f, "{}", p.display()),
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
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(InputFile { location: location.clone(), bytes: Bytes::from(bytes), sha256 })
}

/// A file being written: a temporary beside the target until `commit` renames it into place.
/// Dropped without `commit`, the temporary is removed and the target is untouched.
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<Self, Error> {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        // Like `cargo build --target-dir`, a missing output directory is created.
        fs::create_dir_all(&dir).map_err(|source| Error::Write { location: Location::Path(target.to_path_buf()), source })?;
        let file = File::create(&temp).map_err(|source| Error::Write { location: Location::Path(target.to_path_buf()), source })?;
        Ok(Self { target: target.to_path_buf(), temp, file: Some(file) })
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
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(err)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::Busy { location: Location::Path(target.to_path_buf()) }),
            Err(fs::TryLockError::Error(e)) => Err(err(e)),
        }
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
