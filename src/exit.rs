//! Stage outcomes and the one mapping from results to process exit codes (SPEC §6).
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done (also: stdout closed early by a pipe reader such as `head`) |
//! | 1 | done, but some models failed; the failures are rows in the output |
//! | 2 | error: bad input, nothing written |
//! | 3 | nothing to do yet |
//! | 4 | a remote service is unreachable |
//! | 128+N | stopped by signal N (SIGHUP 129, SIGINT 130, SIGTERM 143): nothing published, finished work kept for `--resume` |

use std::process::ExitCode;

pub use crate::endpoint::Unreachable;
pub use crate::interrupt::Interrupted;

/// What a stage reports when it did not fail outright.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Partial { failed: usize },
    NothingToDo { why: String },
}

pub fn code(result: &anyhow::Result<Outcome>) -> ExitCode {
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Partial { .. }) => ExitCode::from(1),
        Ok(Outcome::NothingToDo { .. }) => ExitCode::from(3),
        Err(err) if is_broken_pipe(err) => ExitCode::SUCCESS,
        Err(err) => match err.chain().find_map(|e| e.downcast_ref::<Interrupted>()) {
            Some(stop) => ExitCode::from(stop.exit_code()),
            None if err.chain().any(is_unreachable) => ExitCode::from(4),
            None => ExitCode::from(2),
        },
    }
}

fn is_unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    // A table on an object store carries its cause inside files::Error (displayed once).
    let remote = e.downcast_ref::<crate::files::Error>().and_then(crate::files::Error::remote_cause);
    e.is::<Unreachable>() || remote.is_some_and(|cause| cause.chain().any(|c| c.is::<Unreachable>()))
}

/// A panic is a bug in valkit, never the input's fault (bad input is exit 2): it prints one line
/// saying so and where, not a backtrace (exit 101, as Rust's runtime gives it), unless
/// `RUST_BACKTRACE` asks for the whole story. A worker's line becomes its model's reason.
pub fn report_panics_as_bugs() {
    let backtrace = crate::env::is_set("RUST_BACKTRACE");
    let runtime_report = std::panic::take_hook();
    // The printer may be what panicked: this line is written on its own.
    #[allow(clippy::print_stderr)]
    std::panic::set_hook(Box::new(move |info| {
        if CONTAINED.get() {
            return;
        }
        if backtrace {
            return runtime_report(info);
        }
        let message = panic_message(info.payload());
        let at = info.location().map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        let message = crate::format::printable(message, &[]);
        eprintln!("error: valkit bug: panicked{at}: {message} (please report it; RUST_BACKTRACE=1 shows where it came from)");
    }));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str)).unwrap_or("")
}

thread_local! {
    /// Set while `contain_panics` runs a decoder on this thread: its panic is an answer, not a bug.
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a third-party decoder on untrusted bytes, a panic inside it becoming `Err(its message)`.
/// The parquet crate still asserts on some damaged files instead of returning an error (60.1:
/// "column start and length should not be negative" for a negative column offset, found by
/// tests/properties.rs; apache/arrow-rs#9705, #2855 for others); a damaged input is the
/// input's fault, so it must end as that input's error, not as valkit's crash. valkit's own code
/// never runs under it.
pub fn contain_panics<T>(decode: impl FnOnce() -> T) -> Result<T, String> {
    let was = CONTAINED.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode));
    CONTAINED.set(was);
    result.map_err(|payload| crate::format::printable(panic_message(payload.as_ref()), &[]).into_owned())
}

/// `valkit inspect x.parquet | head` closes our stdout; that is the reader's choice, not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_spec_section_6() {
        assert_eq!(code(&Ok(Outcome::Done)), ExitCode::SUCCESS);
        assert_eq!(code(&Ok(Outcome::Partial { failed: 2 })), ExitCode::from(1));
        let nothing = Outcome::NothingToDo { why: "rate limit".into() };
        assert_eq!(code(&Ok(nothing)), ExitCode::from(3));
        let bad: anyhow::Result<Outcome> = Err(anyhow::anyhow!("bad input"));
        assert_eq!(code(&bad), ExitCode::from(2));
        let down = Unreachable { service: "subtensor", endpoint: "ws://127.0.0.1:1".into(), detail: "connection refused".into() };
        let wrapped: anyhow::Result<Outcome> = Err(anyhow::Error::new(down).context("syncing"));
        assert_eq!(code(&wrapped), ExitCode::from(4));
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let piped: anyhow::Result<Outcome> = Err(anyhow::Error::new(pipe).context("writing rows"));
        assert_eq!(code(&piped), ExitCode::SUCCESS);
        let stopped = Interrupted { signal: 15, what: "it killed the worker of uid 2".into() };
        let stopped: anyhow::Result<Outcome> = Err(anyhow::Error::new(stopped).context("evaluating"));
        assert_eq!(code(&stopped), ExitCode::from(143));
    }
}
