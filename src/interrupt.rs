//! An operator's stop. SIGTERM (systemd, Slurm, Kubernetes), SIGINT (Ctrl-C) and SIGHUP (a closed
//! terminal) stop every stage the same way: the workers it runs are killed, nothing is published
//! (outputs are only ever published whole, by rename), the checkpoints of finished work stay for
//! `--resume`, and the process exits 128 + the signal's number (SPEC §6, README). Work that must
//! not be cut in half — a checkpoint line being written, a transaction being sent and its receipt
//! — runs inside a [`Critical`] section, and the stop waits for its end.
//!
//! valkit never sends these three signals to its own workers, so a worker that dies of one was
//! stopped from outside: the run is being stopped ([`Interrupted`]), not the model failing.
//! `exit` maps an `Interrupted` to its code; this module imports nothing above it.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// A stop: by a stop signal this process received, or one that killed a worker.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {} ({what}): nothing was published; finished work is kept for --resume", signal_name(*.signal))]
pub struct Interrupted {
    pub signal: i32,
    pub what: String,
}

impl Interrupted {
    /// 128 + the signal's number, as a shell reports a process the signal ended.
    pub fn exit_code(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(255)
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Ends the process at once for a stop that came outside any `Result` (the signal thread): its
/// one line, then its exit code.
pub fn stopped_now(stop: Interrupted) -> ! {
    #[allow(clippy::print_stderr)] // the process ends here; the printer belongs to the main thread
    {
        eprintln!("error: {stop}");
    }
    #[allow(clippy::disallowed_methods)] // the one exit outside main's return, with the table's code
    std::process::exit(i32::from(stop.exit_code()))
}

/// The signals that mean "stop".
pub const STOP_SIGNALS: [i32; 3] = [SIGHUP, SIGINT, SIGTERM];

static REQUESTED: AtomicI32 = AtomicI32::new(0);
static CRITICAL: AtomicUsize = AtomicUsize::new(0);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Takes over the stop signals for this process (not for the workers, which keep the default
/// action so that their death tells the parent what happened).
pub fn install() -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new(STOP_SIGNALS)?;
    std::thread::Builder::new().name("valkit-signals".into()).spawn(move || {
        for signal in signals.forever() {
            // A second stop (Ctrl-C twice) does not wait for the critical section.
            if REQUESTED.swap(signal, Ordering::SeqCst) != 0 {
                stop(signal);
            }
            kill_children();
            if CRITICAL.load(Ordering::SeqCst) == 0 {
                stop(signal);
            }
            // Otherwise the critical section's end stops the process.
        }
    })?;
    Ok(())
}

/// The stop signal received, if any.
pub fn requested() -> Option<i32> {
    match REQUESTED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

fn stop(signal: i32) -> ! {
    stopped_now(Interrupted { signal, what: "sent to valkit".into() })
}

fn kill_children() {
    let children = CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
    for pid in children.iter() {
        if let Ok(pid) = i32::try_from(*pid) {
            // SAFETY: kill(2) has no memory effects; the pid is a worker this process spawned and
            // has not reaped (a registration ends before the wait that reaps it).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// While alive, a stop waits; when the last one ends, a stop that came meanwhile happens.
pub struct Critical(());

impl Critical {
    pub fn enter() -> Self {
        CRITICAL.fetch_add(1, Ordering::SeqCst);
        Self(())
    }
}

impl Drop for Critical {
    fn drop(&mut self) {
        if CRITICAL.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Some(signal) = requested() {
                stop(signal);
            }
        }
    }
}

/// A worker process that a stop kills with it (SIGKILL: the parent is going, and nothing the
/// worker would still do is kept).
pub struct Child(u32);

impl Child {
    pub fn register(pid: u32) -> Self {
        CHILDREN.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
        // A stop that came before the registration has already killed the others.
        if requested().is_some() {
            kill_children();
        }
        Self(pid)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        CHILDREN.lock().unwrap_or_else(|p| p.into_inner()).retain(|pid| *pid != self.0);
    }
}
