//! The process environment, read here and nowhere else (clippy.toml bans `std::env::var` and
//! `std::env::var_os` outside this module): the variables valkit honours, and where its files
//! live by default — one home, one cache and one state directory, whoever asks.
//!
//! An empty variable counts as unset, as the XDG base directory spec and huggingface_hub treat
//! them.

use std::ffi::OsString;
use std::path::PathBuf;

/// A variable's value, when set, non-empty and UTF-8.
pub fn var(name: &str) -> Option<String> {
    var_os(name).and_then(|v| v.into_string().ok())
}

/// A variable's raw value, when set and non-empty.
pub fn var_os(name: &str) -> Option<OsString> {
    #[allow(clippy::disallowed_methods)] // the one reader of the environment
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// Whether a variable is set (to anything, even empty): `RUST_BACKTRACE=` asks for backtraces.
pub fn is_set(name: &str) -> bool {
    #[allow(clippy::disallowed_methods)] // the one reader of the environment
    std::env::var_os(name).is_some()
}

/// `$HOME`, or the current directory when there is none (a bare service environment).
pub fn home() -> PathBuf {
    var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// `$XDG_CACHE_HOME`, else `~/.cache`.
pub fn cache_home() -> PathBuf {
    var_os("XDG_CACHE_HOME").map_or_else(|| home().join(".cache"), PathBuf::from)
}

/// valkit's state (set-weights' receipts and pending commits, the journals of outputs on object
/// stores): `$VALKIT_STATE_DIR`, else `$XDG_STATE_HOME/valkit`, else `~/.local/state/valkit`.
pub fn state_dir() -> PathBuf {
    var_os("VALKIT_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| var_os("XDG_STATE_HOME").map_or_else(|| home().join(".local").join("state"), PathBuf::from).join("valkit"))
}
