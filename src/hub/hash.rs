//! The model hash upstream computes over a downloaded snapshot (upstream.md §2.3): per file the
//! base64 sha256 of its bytes; the directory hash is the base64 sha256 of those strings
//! concatenated in `os.walk` order — a directory's own files sorted by name, then each
//! subdirectory, sorted, recursively. Names are not hashed; empty directories add nothing.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

pub fn hash_of_bytes(bytes: &[u8]) -> String {
    BASE64.encode(Sha256::digest(bytes))
}

pub fn hash_of_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(BASE64.encode(hasher.finalize()))
}

/// The files of `dir` in upstream's hashing order.
pub fn walk_order(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        // os.walk does not descend into symlinked directories; a symlinked file is read through.
        let kind = entry.file_type()?;
        if kind.is_dir() {
            dirs.push(entry.path());
        } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
            files.push(entry.path());
        }
    }
    for sub in dirs {
        files.extend(walk_order(&sub)?);
    }
    Ok(files)
}

/// `files` (paths relative to a snapshot, `/`-separated) in the order `os.walk` would visit them
/// in a directory holding exactly those files: a directory's own files by name, then its
/// subdirectories by name, recursively.
pub fn walk_order_of(files: &[String]) -> Vec<String> {
    fn visit(prefix: &str, paths: &[Vec<&str>], out: &mut Vec<String>) {
        let mut here: Vec<&str> = paths.iter().filter(|p| p.len() == 1).map(|p| p[0]).collect();
        here.sort_unstable();
        out.extend(here.iter().map(|f| format!("{prefix}{f}")));
        let mut dirs: Vec<&str> = paths.iter().filter(|p| p.len() > 1).map(|p| p[0]).collect();
        dirs.sort_unstable();
        dirs.dedup();
        for d in dirs {
            let inner: Vec<Vec<&str>> = paths.iter().filter(|p| p.len() > 1 && p[0] == d).map(|p| p[1..].to_vec()).collect();
            visit(&format!("{prefix}{d}/"), &inner, out);
        }
    }
    let split: Vec<Vec<&str>> = files.iter().map(|f| f.split('/').collect()).collect();
    let mut out = Vec::with_capacity(files.len());
    visit("", &split, &mut out);
    out
}

/// The directory hash of a snapshot directory holding exactly `files` (other files there, left
/// by other tools, are not part of what upstream downloads and hashes).
pub fn hash_of_files(dir: &Path, files: &[String]) -> io::Result<String> {
    let mut hasher = Sha256::new();
    for file in walk_order_of(files) {
        hasher.update(hash_of_file(&dir.join(file))?.as_bytes());
    }
    Ok(BASE64.encode(hasher.finalize()))
}

pub fn hash_of_directory(dir: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    for file in walk_order(dir)? {
        hasher.update(hash_of_file(&file)?.as_bytes());
    }
    Ok(BASE64.encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::section;

    #[test]
    fn hash_vectors() {
        let v = section("hashes_and_model_id");
        assert_eq!(hash_of_bytes(b"test text."), v["get_hash_of_file('test text.')"].as_str().unwrap());
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in v["directory"]["files"].as_object().unwrap() {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, BASE64.decode(content.as_str().unwrap()).unwrap()).unwrap();
        }
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let order: Vec<String> =
            walk_order(dir.path()).unwrap().iter().map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string()).collect();
        let expected: Vec<&str> = v["directory"]["walk_order"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        assert_eq!(order, expected);
        assert_eq!(hash_of_directory(dir.path()).unwrap(), v["directory"]["get_hash_of_directory"].as_str().unwrap());
        // The same order from the names alone, however they are listed.
        let mut names = expected.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        names.reverse();
        assert_eq!(walk_order_of(&names), expected);
        assert_eq!(hash_of_files(dir.path(), &names).unwrap(), v["directory"]["get_hash_of_directory"].as_str().unwrap());
    }
}
