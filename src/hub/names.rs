//! What the hub's answers and a miner's commitment may name, checked before any of it becomes
//! a path: repository ids (huggingface_hub's `validate_repo_id`), commits and blob names (git
//! oids and sha256s, nothing else), and file paths inside a repository (plain relative names).
//! A hostile mirror behind `HF_ENDPOINT` or a miner's repository name can then never steer a
//! write outside the cache. Pure.

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("repository id {0:?} is not namespace/name of letters, digits, '-', '_' and '.'")]
    RepoId(String),
    #[error("{what} {value:?} is not a 40-hex git commit")]
    Commit { what: &'static str, value: String },
    #[error("ETag {0:?} is neither a 40-hex git oid nor a 64-hex sha256")]
    Blob(String),
    #[error("file path {0:?} is not a plain relative path")]
    FilePath(String),
}

/// huggingface_hub `utils/_validators.py` `validate_repo_id`: `REPO_ID_REGEX`
/// (`^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$`), no `--` or `..`, no trailing `.git`; valkit also
/// requires the namespace, as every commitment has one.
pub fn repo_id(repo: &str) -> Result<(), Refused> {
    let refused = || Refused::RepoId(repo.to_string());
    let (namespace, name) = repo.split_once('/').ok_or_else(refused)?;
    let segment_ok = |s: &str, max: usize| {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        !s.is_empty()
            && s.len() <= max
            && s.chars().all(|c| word(c) || c == '-' || c == '.')
            && s.chars().next().is_some_and(word)
            && s.chars().last().is_some_and(word)
    };
    if !segment_ok(namespace, 96) || !segment_ok(name, 96) || repo.contains("--") || repo.contains("..") || repo.ends_with(".git") {
        return Err(refused());
    }
    Ok(())
}

pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A commit named by the hub (`X-Repo-Commit`), which must be the pinned one when the revision
/// is a commit.
pub fn commit(value: &str, pinned: &str) -> Result<String, Refused> {
    if !is_commit(value) {
        return Err(Refused::Commit { what: "X-Repo-Commit", value: value.to_string() });
    }
    if is_commit(pinned) && value != pinned {
        return Err(Refused::Commit { what: "the hub answered for another commit:", value: value.to_string() });
    }
    Ok(value.to_string())
}

/// How a blob's content is checked: its name is the sha256 of an LFS or Xet file, or the git
/// blob oid of a plain one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Sha256,
    GitOid,
}

/// A blob name from an `ETag`: huggingface_hub `_normalize_etag` (drop `W/` and the quotes),
/// then only lowercase hex of a git oid's or a sha256's length.
pub fn blob(etag: &str) -> Result<(String, BlobKind), Refused> {
    let name = etag.trim().trim_start_matches("W/").trim_matches('"');
    let hex = name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match name.len() {
        64 if hex => Ok((name.to_string(), BlobKind::Sha256)),
        40 if hex => Ok((name.to_string(), BlobKind::GitOid)),
        _ => Err(Refused::Blob(etag.to_string())),
    }
}

/// A file path inside a repository: `/`-separated plain segments, none empty, `.` or `..`, no
/// backslash, NUL or drive prefix.
pub fn file_path(path: &str) -> Result<(), Refused> {
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['\\', '\0', ':']);
    if path.len() > 1024 || !path.split('/').all(plain) {
        return Err(Refused::FilePath(path.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_follow_huggingface_hub() {
        for ok in ["gpt2/gpt2", "Xenova/gpt-4", "a_b/c.d-e", "tinyfoundry/llama-gqa-3b"] {
            assert_eq!(repo_id(ok), Ok(()), "{ok}");
        }
        for bad in ["gpt2", "../x/y", "a/../b", "a/b/c", "a--b/c", "a/b..c", "a/.hidden", "a/b.git", "a/", "/b", "a/b c", "a/b\u{202e}"] {
            assert!(repo_id(bad).is_err(), "{bad}");
        }
        assert!(repo_id(&format!("a/{}", "x".repeat(97))).is_err());
    }

    #[test]
    fn blob_names_are_hex_of_two_lengths_only() {
        let sha = "a".repeat(64);
        assert_eq!(blob(&format!("\"{sha}\"")), Ok((sha.clone(), BlobKind::Sha256)));
        assert_eq!(blob(&format!("W/\"{}\"", "0".repeat(40))), Ok(("0".repeat(40), BlobKind::GitOid)));
        for bad in ["\"../../../../tmp/x\"", "", "\"\"", &"A".repeat(64), &"a".repeat(63), "\"abc\"", &format!("{}/x", "a".repeat(40))] {
            assert!(blob(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commits_must_be_hex_and_the_pinned_one() {
        let pinned = "1".repeat(40);
        assert_eq!(commit(&pinned, &pinned), Ok(pinned.clone()));
        assert!(commit(&"2".repeat(40), &pinned).is_err(), "another commit than the pinned one");
        assert_eq!(commit(&"2".repeat(40), "main"), Ok("2".repeat(40)), "a branch resolves to any commit");
        for bad in ["../../x", "main", &"G".repeat(40), ""] {
            assert!(commit(bad, "main").is_err(), "{bad}");
        }
    }

    #[test]
    fn file_paths_are_plain_and_relative() {
        for ok in ["config.json", "sub/dir/model-00001-of-00002.safetensors", ".gitattributes"] {
            assert_eq!(file_path(ok), Ok(()), "{ok}");
        }
        for bad in ["", "/etc/passwd", "a/../../b", "./a", "a//b", "..", "a\\b", "C:x", "a/\0"] {
            assert!(file_path(bad).is_err(), "{bad:?}");
        }
    }
}
