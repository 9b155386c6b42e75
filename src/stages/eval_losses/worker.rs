//! Per-model process isolation (upstream.md §5.1, §9: upstream scores each model in a spawned
//! subprocess). The parent runs `valkit eval-worker` (this binary, a hidden command), sends it one
//! model's job as a JSON line on stdin, then a `go` line when the worker may compute (it loads the
//! model meanwhile), and reads its results as JSON lines on stdout; it kills the child at the
//! model's deadline. A hang, an abort, a segfault, an out-of-memory kill or a poisoned GPU
//! context thus become that model's failed rows (`timeout`, `crashed: signal N`,
//! `out-of-memory`), and every other model goes on in a fresh process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::journal::JournalRow;
use super::{complete, load, row, score, Event, Options, Rules, TaskBatches};
use crate::model::device;
use crate::tables::{batches, losses, models};

/// Without `--model-timeout`, a model still may not hold the run forever.
pub const DEFAULT_MODEL_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// How a reason begins when a signal valkit did not send killed the worker: SIGKILL (most
/// likely the OOM killer), or another (a crash).
const KILLED: &str = "out-of-memory: the worker was killed";
const CRASHED_BY_SIGNAL: &str = "crashed: signal ";
/// The last bytes of a crashed worker's stderr kept for its reason.
const STDERR_TAIL: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Job {
    uid: u16,
    hotkey: String,
    local_path: Option<String>,
    device: String,
    /// The memory the admission check allows, in bytes.
    memory_bytes: u64,
    rules: Rules,
    batches: Vec<JobBatch>,
}

/// The line that lets a loaded worker compute.
const GO: &[u8] = b"go\n";

#[derive(Serialize, Deserialize)]
struct JobBatch {
    task: String,
    batch_index: u32,
    context_len: u32,
    token_ids: Vec<u32>,
}

/// One line of a worker's output.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Advance(u64),
    Row(JournalRow),
    /// The batches not reported fail with this reason (the model did not load, ...).
    Failed(String),
    /// Seconds of one batch's forward and loss.
    Computed(f64),
}

/// A model's worker process, from its start to its rows. It reads its job and loads the model
/// at once, then waits for the word to compute (`go`): so the next model can load while this one
/// computes (issue 24), and a worker that is dropped unstarted exits without computing anything.
pub struct Running {
    uid: u16,
    child: Option<std::process::Child>,
    _registered: crate::interrupt::Child,
    go: Option<mpsc::Sender<()>>,
    feeder: Option<std::thread::JoinHandle<()>>,
    lines: mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr_tail: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Starts the worker of `m` on `tasks`; it loads the model and waits for [`Running::go`].
    /// `memory_bytes` is the memory its admission check allows (measured once for the step, so
    /// that a model's admission does not depend on what another worker holds at that moment).
    pub fn spawn(opts: &Options, m: &models::Row, rules: &Rules, tasks: &TaskBatches, memory_bytes: u64) -> anyhow::Result<Self> {
        let job = Job {
            uid: m.uid,
            hotkey: m.hotkey.clone(),
            local_path: m.local_path.clone(),
            device: opts.device_name.clone(),
            memory_bytes,
            rules: rules.clone(),
            batches: tasks
                .values()
                .flatten()
                .map(|b| JobBatch {
                    task: b.task.clone(),
                    batch_index: b.batch_index,
                    context_len: b.context_len,
                    token_ids: b.token_ids.clone(),
                })
                .collect(),
        };
        // /proc/self/exe runs this very binary even after an upgrade replaced the file on disk
        // during a long run (the path current_exe() gives then no longer exists).
        let proc_self = std::path::Path::new("/proc/self/exe");
        let exe = if proc_self.exists() {
            proc_self.to_path_buf()
        } else {
            std::env::current_exe().context("finding the valkit binary to run a worker")?
        };
        let mut child = Command::new(exe)
            .arg("eval-worker")
            // Backtraces would land in reasons; the worker's errors are one line each.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting an eval-losses worker process")?;
        // A stop of this run kills the worker with it.
        let registered = crate::interrupt::Child::register(child.id());
        let mut stdin = child.stdin.take().expect("piped");
        let mut job_line = serde_json::to_vec(&job)?;
        job_line.push(b'\n');
        let (go, started) = mpsc::channel::<()>();
        // Written from a thread: a worker that dies early must not block the parent on a full
        // pipe. The go line follows when the parent sends it; without it, stdin closes unsent.
        let feeder = std::thread::spawn(move || {
            if stdin.write_all(&job_line).is_ok() && started.recv().is_ok() {
                let _ = stdin.write_all(GO);
            }
        });
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped");
        let stderr_tail = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            let text = String::from_utf8_lossy(&all).into_owned();
            let mut start = text.len().saturating_sub(STDERR_TAIL);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            text[start..].to_string()
        });
        Ok(Self {
            uid: m.uid,
            child: Some(child),
            _registered: registered,
            go: Some(go),
            feeder: Some(feeder),
            lines,
            reader: Some(reader),
            stderr_tail: Some(stderr_tail),
        })
    }

    /// Lets the worker compute as soon as it has loaded.
    pub fn go(&mut self) {
        if let Some(go) = self.go.take() {
            let _ = go.send(());
        }
    }

    /// Lets the worker compute (if [`Running::go`] has not) and waits for its rows: whatever
    /// happens becomes rows of `m`. The model's deadline runs from here.
    pub fn finish(
        mut self,
        opts: &Options,
        m: &models::Row,
        rules: &Rules,
        tasks: &TaskBatches,
        reporter: &dyn crate::stages::Reporter,
    ) -> anyhow::Result<(Vec<losses::Row>, f64)> {
        debug_assert_eq!(self.uid, m.uid, "a worker's rows are of its own model");
        self.go();
        let timeout = opts.model_timeout.unwrap_or(DEFAULT_MODEL_TIMEOUT);
        let deadline = Instant::now() + timeout;
        let by_key: BTreeMap<(&str, u32), &batches::Row> =
            tasks.values().flatten().map(|b| ((b.task.as_str(), b.batch_index), *b)).collect();
        let mut rows = Vec::new();
        let mut compute = 0.0;
        let mut failure = None;
        let mut killed_for_time = false;
        // Held in self until it is reaped: an early return kills and reaps it on drop.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(text) => match serde_json::from_str::<Line>(&text) {
                    Ok(Line::Advance(n)) => reporter.advance(n),
                    Ok(Line::Row(r)) => {
                        let got = r.to_row(m.uid, &m.hotkey)?;
                        if by_key.contains_key(&(got.task.as_str(), got.batch_index)) {
                            rows.push(got);
                        }
                    }
                    Ok(Line::Failed(reason)) => failure = Some(reason),
                    Ok(Line::Computed(seconds)) => compute += seconds,
                    Err(_) => tracing::debug!(uid = m.uid, line = %text, "unexpected worker output"),
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    killed_for_time = true;
                    if let Some(child) = self.child.as_mut() {
                        let _ = child.kill();
                    }
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut child = self.child.take().expect("a worker is finished once");
        let status = child.wait().context("waiting for an eval-losses worker")?;
        self.join_threads();
        let stderr_tail = self.stderr_tail.take().and_then(|t| t.join().ok()).unwrap_or_default();
        // valkit never sends these to a worker: someone is stopping the run (a service manager
        // whose signal reached the worker first, an operator's `kill`). Nothing of this model is
        // recorded.
        #[cfg(unix)]
        if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status).filter(|s| crate::interrupt::STOP_SIGNALS.contains(s))
        {
            if !killed_for_time {
                let what = format!("it killed the worker of uid {}", m.uid);
                return Err(crate::interrupt::Interrupted { signal, what }.into());
            }
        }
        let reason = if killed_for_time {
            Some(format!("timeout: over {:.0} s", timeout.as_secs_f64()))
        } else if status.success() {
            failure
        } else {
            Some(crash_reason(&status, &stderr_tail))
        };
        if let Some(r) = &reason {
            tracing::warn!(uid = m.uid, reason = %r, stderr = %stderr_tail.trim(), "model failed in its worker");
        }
        Ok((complete(m, rules.competition_id, tasks, rows, reason), compute))
    }

    fn join_threads(&mut self) {
        // Closing the go channel lets a feeder still waiting for it end.
        self.go.take();
        for handle in [self.feeder.take(), self.reader.take()].into_iter().flatten() {
            let _ = handle.join();
        }
    }
}

impl Drop for Running {
    /// A worker never told to compute (the run stopped or failed first) is killed and reaped.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.join_threads();
    }
}

/// A worker that exited without finishing: killed by a signal (SIGKILL the parent did not send:
/// the kernel's out-of-memory killer), or an exit code with its last error line.
fn crash_reason(status: &std::process::ExitStatus, stderr_tail: &str) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return if signal == 9 {
                format!("{KILLED} (SIGKILL, most likely the kernel's out-of-memory killer)")
            } else {
                format!("{CRASHED_BY_SIGNAL}{signal}")
            };
        }
    }
    let last = stderr_tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    // Keep reasons free of paths and backtraces: only the first line of the error.
    let last: String = last.chars().take(200).collect();
    format!("crashed: exit {}{}", status.code().unwrap_or(-1), if last.is_empty() { String::new() } else { format!(": {last}") })
}

/// Appended to the reason of a model that a signal killed again when `--resume` retried it.
const SAME_DEATH_AGAIN: &str = " (the same again when --resume evaluated it once more)";

/// Whether `reason` says a signal valkit did not send killed the worker (SIGKILL, a crash
/// signal), and `--resume` has not retried it yet.
pub fn retry_on_resume(reason: &str) -> bool {
    let by_signal = reason.starts_with(CRASHED_BY_SIGNAL) || reason.starts_with(KILLED);
    by_signal && !reason.ends_with(SAME_DEATH_AGAIN)
}

/// Marks the rows of a retried model that died the same way, so no later `--resume` retries it.
pub fn mark_second_death(rows: &mut [losses::Row]) {
    for r in rows {
        if let Some(reason) = r.reason.as_mut().filter(|reason| retry_on_resume(reason)) {
            reason.push_str(SAME_DEATH_AGAIN);
        }
    }
}

/// The worker's side (`valkit eval-worker`): its job line from stdin, the model loaded, then on
/// the parent's `go` its results on stdout. Without `go` (stdin closed: the parent stopped or
/// no longer needs this model) it exits having written nothing.
pub fn serve() -> anyhow::Result<()> {
    let mut input = std::io::stdin().lock();
    let mut job_line = String::new();
    input.read_line(&mut job_line).context("reading the worker's job")?;
    let job: Job = serde_json::from_str(&job_line).context("the worker's job is not valid")?;
    inject_fault(job.uid);
    let batch_rows: Vec<batches::Row> = job
        .batches
        .into_iter()
        .map(|b| batches::Row {
            competition_id: job.rules.competition_id,
            task: b.task,
            batch_index: b.batch_index,
            token_ids: b.token_ids,
            context_len: b.context_len,
            source: String::new(),
        })
        .collect();
    let mut tasks: TaskBatches = BTreeMap::new();
    for b in &batch_rows {
        tasks.entry(b.task.as_str()).or_default().push(b);
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut write = |line: &Line| -> std::io::Result<()> {
        serde_json::to_writer(&mut out, line)?;
        out.write_all(b"\n")?;
        out.flush()
    };
    let row_of = |b: &batches::Row, loss, n_tokens, reason| {
        JournalRow::from_row(&row(job.uid, &job.hotkey, job.rules.competition_id, b, loss, n_tokens, reason))
    };
    let loaded = device::select(&job.device)
        .map_err(|e| e.to_string())
        .and_then(|device| load(job.local_path.as_deref(), &job.rules, &device, &tasks, job.memory_bytes));
    let mut word = String::new();
    input.read_line(&mut word).context("waiting for the word to compute")?;
    if word.as_bytes() != GO {
        return Ok(());
    }
    let result = loaded.and_then(|model| {
        let mut io_error = None;
        let mut emit = |event: Event| {
            let line = match event {
                Event::Advance(n) => Line::Advance(n),
                Event::Row { batch, loss, n_tokens, reason } => Line::Row(row_of(batch, loss, n_tokens, reason)),
                Event::Computed(seconds) => Line::Computed(seconds),
            };
            if let Err(e) = write(&line) {
                io_error.get_or_insert(e);
            }
        };
        let result = score(&model, &job.rules, &tasks, None, None, &mut emit);
        if let Some(e) = io_error {
            return Err(format!("worker output: {e}"));
        }
        result
    });
    if let Err(reason) = result {
        write(&Line::Failed(reason)).context("writing the worker's result")?;
    }
    Ok(())
}

/// Without the `fault-injection` feature (every build but the tests'), there is no hook.
#[cfg(not(feature = "fault-injection"))]
fn inject_fault(_uid: u16) {}

/// Test hook (the fault suite): `VALKIT_TEST_FAULT=UID:KIND` makes the worker of that uid abort,
/// panic, hang, or die of SIGSEGV or SIGKILL, as a bug, a broken kernel or the OOM killer would.
#[cfg(feature = "fault-injection")]
fn inject_fault(uid: u16) {
    let Some(spec) = crate::env::var_os("VALKIT_TEST_FAULT") else { return };
    let spec = spec.to_string_lossy();
    let Some((target, kind)) = spec.split_once(':') else { return };
    if target.parse::<u16>().ok() != Some(uid) {
        return;
    }
    // Sent twice: Rust's runtime answers the first SIGSEGV itself (its stack-overflow check),
    // resetting the default action that the second one then takes.
    let signal = |name: &str| {
        for _ in 0..2 {
            let _ = Command::new("kill").args([&format!("-{name}"), &std::process::id().to_string()]).status();
            std::thread::sleep(Duration::from_millis(500));
        }
        std::thread::sleep(Duration::from_secs(5));
    };
    match kind {
        "abort" => std::process::abort(),
        "panic" => panic!("injected by VALKIT_TEST_FAULT"),
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "segv" => signal("SEGV"),
        "sigkill" => signal("KILL"),
        "sigterm" => signal("TERM"),
        "sighup" => signal("HUP"),
        _ => {}
    }
}
