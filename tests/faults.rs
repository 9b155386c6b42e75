//! The fault suite: what an operator's night throws at valkit — kill -9 at any moment, a second
//! writer of the same output — and what must come of it: nothing lost, nothing mixed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use valkit::tables::models;

use crate::eval_losses::{eval, good_models, model_row, write_batches};
use crate::util::*;

/// One line per fault class for `scripts/faults.sh`: reached only when every fault of the class
/// was handled (a crash, hang, lost or mixed output fails the test before it).
pub(crate) fn report(class: &str, faults: usize) {
    #[allow(clippy::print_stdout)]
    {
        println!("fault-suite: {class}: {faults} faults, all handled");
    }
}

/// A fixed sequence of kill delays in [0, 1): the same 20 moments on every run.
fn fractions(n: u64) -> Vec<f64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn eval_command(dir: &TestDir, out: &str, extra: &[&str]) -> Command {
    let mut cmd = valkit();
    cmd.args(["eval-losses", "--models", &dir.arg("models.parquet"), "--batches", &dir.arg("batches.parquet"), "--out", &dir.arg(out)]);
    cmd.args(extra).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

#[test]
fn eval_losses_killed_at_20_random_moments_resumes_to_the_same_bytes() {
    let dir = TestDir::new();
    write_batches(&dir);
    let rows: Vec<models::Row> = good_models().iter().map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    let n_models = rows.len();
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    let started = Instant::now();
    assert_exit!(eval(&dir, "reference.parquet", &[]), 0);
    let full = started.elapsed();
    let reference = std::fs::read(dir.path("reference.parquet")).unwrap();

    let mut journaled_models = Vec::new();
    for (i, fraction) in fractions(20).into_iter().enumerate() {
        let out = format!("killed-{i}.parquet");
        let mut child = eval_command(&dir, &out, &[]).spawn().unwrap();
        std::thread::sleep(full.mul_f64(fraction));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let journal = dir.path(&format!(".{out}.journal"));
        let models_in_journal = std::fs::read_to_string(&journal).map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0);
        // Killed after it had published: everything is resumed from the table itself.
        let finished = dir.path(&out).exists();
        let r = eval(&dir, &out, &["--resume", "--json"]);
        assert_exit!(r, 0, "kill {i} after {:.2} of the run", fraction);
        let summary: Value = serde_json::from_str(&r.stdout_text()).unwrap();
        // Only what the journal holds is kept; everything else is computed again, once.
        let resumed = summary["resumed_rows"].as_u64().unwrap() as usize;
        let expected = if finished { n_models * 3 } else { models_in_journal * 3 };
        assert!(
            resumed <= expected && resumed + 3 >= expected,
            "kill {i}: {resumed} rows resumed, journal {models_in_journal}, finished {finished}"
        );
        assert_eq!(std::fs::read(dir.path(&out)).unwrap(), reference, "kill {i} after {fraction:.2} of the run: resumed table differs");
        assert!(!journal.exists(), "the journal is consumed by the published table");
        journaled_models.push(models_in_journal);
    }
    // The kill points landed all over the run, not only before or after it.
    assert!(journaled_models.iter().any(|&m| m > 0 && m < n_models), "{journaled_models:?}");
    report("eval-losses kill -9 then --resume (byte-identical)", 20);
}

#[test]
fn a_second_writer_of_the_same_output_stops_at_once() {
    let dir = TestDir::new();
    write_batches(&dir);
    let rows: Vec<models::Row> = good_models().iter().map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    let mut first = eval_command(&dir, "losses.parquet", &[]).spawn().unwrap();
    // Wait until the first run holds the output (its journal exists).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path(".losses.parquet.journal").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = eval(&dir, "losses.parquet", &["--resume"]);
    let first_code = first.wait().unwrap().code();
    assert_bad_input(&second, "is being written by another valkit process");
    assert_eq!(first_code, Some(0));
    assert!(dir.path("losses.parquet").exists());
    report("a second writer of the same eval-losses output", 1);
}

/// The `alpha` each of compute-wins' three outputs was written with, or `None` for a missing
/// file: a consistent directory has one value (or nothing) for all three.
fn set_of(dir: &std::path::Path) -> Vec<Option<String>> {
    ["wins.parquet", "weights.parquet", "tracker.parquet"]
        .iter()
        .map(|name| {
            let path = dir.join(name);
            path.exists().then(|| {
                let input = valkit::files::read(&valkit::files::Location::Path(path)).unwrap();
                let (meta, _) = valkit::tables::read_any(&input).unwrap();
                meta.provenance["alpha"].clone()
            })
        })
        .collect()
}

fn assert_one_set(dir: &std::path::Path, context: &str) {
    let set = set_of(dir);
    assert!(set.iter().all(|a| *a == set[0]), "{context}: mixed outputs {set:?}");
}

fn compute_wins(out: &str, alpha: &str) -> Command {
    let mut cmd = valkit();
    cmd.args(crate::compute_wins::demo_args(out)).args(["--alpha", alpha]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

#[test]
fn compute_wins_outputs_change_only_as_a_set_under_kills_and_concurrent_runs() {
    let dir = TestDir::new();
    let out = dir.arg("out");
    let started = Instant::now();
    assert_eq!(compute_wins(&out, "0.5").status().unwrap().code(), Some(0));
    let full = started.elapsed();
    assert_one_set(&dir.path("out"), "first run");
    // 60 kills at pseudo-random moments, alternating between two outcomes.
    for (i, fraction) in fractions(60).into_iter().enumerate() {
        let alpha = if i % 2 == 0 { "0.8" } else { "0.5" };
        let mut child = compute_wins(&out, alpha).spawn().unwrap();
        std::thread::sleep(full.mul_f64(fraction * 1.2));
        let _ = child.kill();
        child.wait().unwrap();
        assert_one_set(&dir.path("out"), &format!("kill {i} after {fraction:.2}"));
        assert!(set_of(&dir.path("out"))[0].is_some(), "kill {i}: the previous set is gone");
    }
    // 30 pairs of concurrent runs with different outcomes: each exits 0 or stops with "being
    // written", and the directory holds one run's set.
    for i in 0..30 {
        let mut a = compute_wins(&out, "0.5").spawn().unwrap();
        let b = compute_wins(&out, "0.8").status().unwrap().code();
        let a = a.wait().unwrap().code();
        assert!(matches!(a, Some(0 | 2)) && matches!(b, Some(0 | 2)) && (a == Some(0) || b == Some(0)), "pair {i}: {a:?} {b:?}");
        assert_one_set(&dir.path("out"), &format!("pair {i}"));
    }
    // Versions are pruned: the current one and the one before.
    let versions =
        std::fs::read_dir(dir.path("out/.valkit-sets")).unwrap().filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir()).count();
    assert!(versions <= 2, "{versions} versions kept");
    report("compute-wins kill -9 at random moments", 60);
    report("concurrent compute-wins runs on one directory", 30);
}

#[test]
fn outputs_from_before_sets_are_replaced_atomically_and_stale_temp_files_removed() {
    let dir = TestDir::new();
    let out = dir.path("out");
    std::fs::create_dir_all(&out).unwrap();
    // Regular files as an older valkit wrote them, and temp files of a process that died.
    assert_eq!(compute_wins(&dir.arg("old"), "0.8").status().unwrap().code(), Some(0));
    for name in ["wins.parquet", "weights.parquet", "tracker.parquet"] {
        std::fs::copy(dir.path("old").join(name), out.join(name)).unwrap();
    }
    std::fs::write(out.join(".weights.parquet.4000000.tmp"), b"half").unwrap();
    std::fs::create_dir_all(out.join(".valkit-sets/.staging-1-4000000")).unwrap();
    assert_eq!(compute_wins(&dir.arg("out"), "0.5").status().unwrap().code(), Some(0));
    assert_eq!(set_of(&out), vec![Some("0.5".to_string()); 3]);
    assert!(!out.join(".valkit-sets/.staging-1-4000000").exists());
    let leftovers: Vec<String> = files_in(&out).into_iter().filter(|n| n.ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    report("stale temp files and half-written versions of dead processes", 2);
}

/// Four good models (uids 0..4) and, for uids 4 and 5, a FIFO and a directory where
/// `model.safetensors` should be.
fn isolation_fixture(dir: &TestDir) -> Vec<models::Row> {
    write_batches(dir);
    let mut rows: Vec<models::Row> = good_models().iter().take(4).map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    for (uid, kind) in [(4u16, "fifo"), (5, "dir")] {
        let model = dir.path(&format!("special-{kind}"));
        std::fs::create_dir_all(&model).unwrap();
        std::fs::copy(repo_path("testdata/models/llama/config.json"), model.join("config.json")).unwrap();
        let weights = model.join("model.safetensors");
        if kind == "fifo" {
            assert!(Command::new("mkfifo").arg(&weights).status().unwrap().success());
        } else {
            std::fs::create_dir(&weights).unwrap();
        }
        rows.push(model_row(uid, Some(&model)));
    }
    write_table::<models::Models>(&dir.path("models.parquet"), rows.clone(), &[]);
    rows
}

#[test]
#[cfg_attr(not(feature = "fault-injection"), ignore = "needs the workers' fault hook: --features fault-injection, as make test builds")]
fn a_crashing_or_hanging_model_fails_alone_and_special_files_are_refused() {
    let dir = TestDir::new();
    isolation_fixture(&dir);
    let reference_dir = TestDir::new();
    write_batches(&reference_dir);
    let good: Vec<models::Row> = good_models().iter().take(4).map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    write_table::<models::Models>(&reference_dir.path("models.parquet"), good, &[]);
    assert_exit!(eval(&reference_dir, "losses.parquet", &[]), 0);
    let reference = crate::eval_losses::losses_by_uid(&reference_dir.path("losses.parquet"));

    for (fault, expected) in [
        ("abort", "crashed: signal 6"),
        // A bug's panic is one line, which becomes the reason (not the runtime's backtrace note).
        ("panic", "crashed: exit 101: error: valkit bug: panicked at src/stages/eval_losses/worker.rs"),
        ("segv", "crashed: signal 11"),
        ("sigkill", "out-of-memory: the worker was killed"),
        ("hang", "timeout: over 3 s"),
    ] {
        let out = format!("{fault}.parquet");
        let started = Instant::now();
        let r = eval_with_env(&dir, &out, &["--model-timeout", "3"], &[("VALKIT_TEST_FAULT", &format!("2:{fault}"))]);
        assert_exit!(r, 1, "fault {fault}");
        assert!(started.elapsed() < Duration::from_secs(60), "{fault}: the run took {:?}", started.elapsed());
        let got = crate::eval_losses::losses_by_uid(&dir.path(&out));
        for uid in [0u16, 1, 3] {
            assert_eq!(got[&uid], reference[&uid], "{fault}: uid {uid} is unaffected");
        }
        for r in &got[&2] {
            assert_eq!((r.loss, r.status), (f64::INFINITY, valkit::tables::losses::Status::Failed), "{fault}");
            assert!(r.reason.as_deref().unwrap_or("").starts_with(expected), "{fault}: {:?}", r.reason);
        }
        for (uid, kind) in [(4u16, "FIFO"), (5, "directory")] {
            let reason = got[&uid][0].reason.clone().unwrap_or_default();
            assert_eq!(reason, format!("not-a-file: model.safetensors is a {kind}, not a regular file"), "{fault}");
        }
    }
    report("a model's worker aborting, panicking, segfaulting, OOM-killed or hanging", 5);
    report("a FIFO or a directory as model.safetensors", 8);
}

fn eval_with_env(dir: &TestDir, out: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = valkit();
    cmd.args(["eval-losses", "--models", &dir.arg("models.parquet"), "--batches", &dir.arg("batches.parquet"), "--out", &dir.arg(out)]);
    cmd.args(extra).envs(env.iter().copied());
    let out = cmd.output().unwrap();
    Run { code: out.status.code().unwrap(), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

#[test]
fn bad_inputs_are_clear_errors_and_reasons_stay_one_line() {
    let dir = TestDir::new();
    write_batches(&dir);
    let mut rows: Vec<models::Row> = good_models().iter().take(2).map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    // A truncated model: its reason must not carry a backtrace, whatever RUST_BACKTRACE says.
    let truncated = dir.path("truncated");
    std::fs::create_dir_all(&truncated).unwrap();
    std::fs::copy(repo_path("testdata/models/llama/config.json"), truncated.join("config.json")).unwrap();
    let weights = std::fs::read(repo_path("testdata/models/llama/model.safetensors")).unwrap();
    std::fs::write(truncated.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    rows.push(model_row(7, Some(&truncated)));
    write_table::<models::Models>(&dir.path("models.parquet"), rows.clone(), &[]);
    assert_exit!(eval_with_env(&dir, "plain.parquet", &[], &[]), 1);
    assert_exit!(eval_with_env(&dir, "traced.parquet", &[], &[("RUST_BACKTRACE", "1")]), 1);
    assert_eq!(std::fs::read(dir.path("plain.parquet")).unwrap(), std::fs::read(dir.path("traced.parquet")).unwrap());
    let failed = &crate::eval_losses::losses_by_uid(&dir.path("plain.parquet"))[&7];
    assert!(failed.iter().all(|r| !r.reason.as_deref().unwrap_or("\n").contains('\n')), "{:?}", failed[0].reason);

    // The output named as an input, by another path to the same file.
    let r = eval(&dir, "./models.parquet", &[]);
    assert_bad_input(&r, "is both an input and the output");
    assert_eq!(read_table::<models::Models>(&dir.path("models.parquet")).rows.len(), 3, "the input is intact");

    // A uid twice in the models table would be evaluated twice.
    rows.push(rows[0].clone());
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    assert_bad_input(&eval(&dir, "dup.parquet", &[]), "uid 0 appears twice");
    report("bad inputs (backtrace in a reason, output = input, duplicate uid)", 3);
}

/// Runs `args`, sampling the process's resident memory until it exits: (run, peak RSS in MiB).
fn run_measured(args: &[String]) -> (Run, f64) {
    let mut child = valkit().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Drained while it runs: a chatty process must not block on a full pipe.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let rss = text.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
            peak_kib = peak_kib.max(rss.unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = child.wait().unwrap();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let run = Run { code: status.code().unwrap(), stdout, stderr: String::from_utf8_lossy(&stderr).into_owned() };
    (run, peak_kib as f64 / 1024.0)
}

#[test]
fn a_broken_datasets_server_is_exit_4_soon_and_bodies_stay_bounded() {
    use crate::fixtures::datasets;
    use std::sync::atomic::Ordering;
    let dir = TestDir::new();
    let args = |server: &datasets::DatasetsServer, out: &str| crate::sample_batches::sn9_args(server, &dir.arg(out));
    for (name, switch) in [("HTTP 500", 0), ("not JSON", 1), ("a 4 GiB Content-Length", 2), ("an endless body", 3), ("a 429 storm", 4)] {
        let server = datasets::start();
        let s = &server.switches;
        [&s.fail_everything, &s.not_json_everything, &s.huge_rows, &s.endless_rows, &s.rate_limit_storm][switch]
            .store(true, Ordering::SeqCst);
        let started = Instant::now();
        let (r, peak_mib) = run_measured(&args(&server, "b.parquet"));
        assert_exit!(r, 4, "{name}");
        assert_one_error_line(&r, &server.url);
        assert!(started.elapsed() < Duration::from_secs(120), "{name}: {:?}", started.elapsed());
        assert!(peak_mib < 400.0, "{name}: peak RSS {peak_mib:.0} MiB");
        assert!(!dir.path("b.parquet").exists());
    }
    report("a datasets server failing every request, oversized or endless bodies, a 429 storm", 5);
}

/// Sends `signal` to a process, or to its whole process group with a negative pid.
fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a process (group) this test spawned.
    let _ = unsafe { libc::kill(pid, signal) };
}

/// eval-losses in a process group of its own, as a service manager starts it.
fn eval_in_group(dir: &TestDir, out: &str, extra: &[&str]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = eval_command(dir, out, extra);
    cmd.process_group(0).stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// What a stopped run may end as: finished (0), or stopped (128 + N), or — a signal before the
/// handler was in place, in the first milliseconds — killed by it.
fn stopped_or_finished(status: std::process::ExitStatus, signal: i32) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.code() == Some(0) || status.code() == Some(128 + signal) || status.signal() == Some(signal)
}

#[test]
fn a_stop_signal_to_the_job_the_parent_or_a_worker_stops_the_run_and_resume_gives_the_same_bytes() {
    let dir = TestDir::new();
    write_batches(&dir);
    let rows: Vec<models::Row> = good_models().iter().map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    let started = Instant::now();
    assert_exit!(eval(&dir, "reference.parquet", &[]), 0);
    let full = started.elapsed();
    let reference = std::fs::read(dir.path("reference.parquet")).unwrap();
    let mut stopped = 0;

    // The whole group (systemd's stop, Ctrl-C) and the parent alone, at several moments; the
    // output of an earlier run stays as it was until a run finishes.
    for (i, fraction) in fractions(12).into_iter().enumerate() {
        let (signal, group) = [(libc::SIGTERM, true), (libc::SIGINT, true), (libc::SIGHUP, false), (libc::SIGTERM, false)][i % 4];
        let out = format!("stopped-{i}.parquet");
        std::fs::write(dir.path(&out), &reference).unwrap();
        let child = eval_in_group(&dir, &out, &[]);
        std::thread::sleep(full.mul_f64(0.1 + fraction * 0.8));
        let pid = i32::try_from(child.id()).unwrap();
        send_signal(if group { -pid } else { pid }, signal);
        let result = child.wait_with_output().unwrap();
        assert!(stopped_or_finished(result.status, signal), "stop {i}: {:?} {}", result.status, String::from_utf8_lossy(&result.stderr));
        if result.status.code() == Some(128 + signal) {
            stopped += 1;
            assert!(String::from_utf8_lossy(&result.stderr).contains("nothing was published"), "stop {i}");
        }
        assert!(std::fs::read(dir.path(&out)).unwrap() == reference, "stop {i}: the earlier output is intact");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path(""))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "stop {i}: {leftovers:?}");
        let resumed = eval(&dir, &out, &["--resume"]);
        assert_exit!(resumed, 0, "stop {i}");
        assert!(std::fs::read(dir.path(&out)).unwrap() == reference, "stop {i} after {fraction:.2}: resumed table differs");
    }
    assert!(stopped >= 6, "the stops landed while the run was going: {stopped} of 12");
    report("eval-losses SIGTERM/SIGINT/SIGHUP to the job or the parent, then --resume (byte-identical)", 12);
}

#[test]
#[cfg_attr(not(feature = "fault-injection"), ignore = "needs the workers' fault hook: --features fault-injection, as make test builds")]
fn a_worker_alone_stopped_by_sigterm_or_sighup_stops_the_run_and_resume_gives_the_same_bytes() {
    let dir = TestDir::new();
    write_batches(&dir);
    let rows: Vec<models::Row> = good_models().iter().map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    assert_exit!(eval(&dir, "reference.parquet", &[]), 0);
    let reference = std::fs::read(dir.path("reference.parquet")).unwrap();

    // A worker alone, by a signal valkit never sends to it: the run stops (128 + N), records
    // nothing for that model and publishes nothing; --resume finishes it to the same bytes.
    for (fault, code) in [("sigterm", 143), ("sighup", 129)] {
        let out = format!("worker-{fault}.parquet");
        let r = eval_with_env(&dir, &out, &[], &[("VALKIT_TEST_FAULT", &format!("2:{fault}"))]);
        assert_eq!(r.code, code, "{fault}: {}", r.stderr);
        assert!(r.stderr.contains("it killed the worker of uid 2") && r.stderr.contains("nothing was published"), "{}", r.stderr);
        assert!(!dir.path(&out).exists(), "{fault}: nothing published");
        let journal = std::fs::read_to_string(dir.path(&format!(".{out}.journal"))).unwrap();
        assert_eq!(journal.lines().count(), 1 + 2, "{fault}: the header and the two models before uid 2");
        assert_exit!(eval(&dir, &out, &["--resume"]), 0);
        assert!(std::fs::read(dir.path(&out)).unwrap() == reference, "{fault}: resumed table differs");
    }
    report("a worker alone stopped by SIGTERM or SIGHUP: the run stops, then --resume (byte-identical)", 2);
}

#[test]
#[cfg_attr(not(feature = "fault-injection"), ignore = "needs the workers' fault hook: --features fault-injection, as make test builds")]
fn a_worker_killed_by_a_signal_valkit_did_not_send_is_evaluated_again_once_on_resume() {
    let dir = TestDir::new();
    write_batches(&dir);
    let rows: Vec<models::Row> = good_models().iter().take(3).map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    assert_exit!(eval(&dir, "reference.parquet", &[]), 0);
    let reference = std::fs::read(dir.path("reference.parquet")).unwrap();
    let sigkill = [("VALKIT_TEST_FAULT", "2:sigkill")];
    let reasons = |out: &str| -> Vec<String> {
        crate::eval_losses::losses_by_uid(&dir.path(out))[&2].iter().map(|r| r.reason.clone().unwrap_or_default()).collect()
    };

    // Killed once (the OOM killer, an operator's kill -9): a failure, which --resume retries.
    let once = eval_with_env(&dir, "once.parquet", &[], &sigkill);
    assert_eq!(once.code, 1, "{}", once.stderr);
    assert!(reasons("once.parquet").iter().all(|r| r.starts_with("out-of-memory: the worker was killed")));
    assert_exit!(eval(&dir, "once.parquet", &["--resume"]), 0);
    assert!(std::fs::read(dir.path("once.parquet")).unwrap() == reference, "retried to the reference");

    // Killed again when retried: it stays a failure, and no later --resume retries it.
    assert_eq!(eval_with_env(&dir, "twice.parquet", &[], &sigkill).code, 1);
    assert_eq!(eval_with_env(&dir, "twice.parquet", &["--resume"], &sigkill).code, 1);
    let second = reasons("twice.parquet");
    assert!(second.iter().all(|r| r.ends_with("(the same again when --resume evaluated it once more)")), "{second:?}");
    let before = std::fs::read(dir.path("twice.parquet")).unwrap();
    let r = eval_with_env(&dir, "twice.parquet", &["--resume", "--json"], &sigkill);
    assert_eq!(r.code, 1);
    let summary: Value = serde_json::from_str(&r.stdout_text()).unwrap();
    assert_eq!(summary["resumed_rows"], 9, "nothing evaluated again");
    assert!(std::fs::read(dir.path("twice.parquet")).unwrap() == before, "not evaluated again");
    report("a worker SIGKILLed once (retried by --resume) or twice (kept a failure)", 2);
}

/// `args` as a job of its own process group, stopped at `n` moments of a run that takes `full`
/// by `signal` to the whole group; each run ends finished (`finished_code`) or stopped (128 + N,
/// or killed by it in its first milliseconds), and `check` holds after each. Returns the stops.
fn stop_jobs(args: &[String], n: usize, full: Duration, signal: i32, finished_code: i32, check: &dyn Fn(usize)) -> usize {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut stopped = 0;
    for (i, fraction) in fractions(n as u64).into_iter().enumerate() {
        let mut cmd = valkit();
        cmd.args(args).process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(full.mul_f64(0.1 + fraction * 0.8));
        send_signal(-i32::try_from(child.id()).unwrap(), signal);
        let status = child.wait().unwrap();
        let code = status.code();
        assert!(
            code == Some(finished_code) || code == Some(128 + signal) || status.signal() == Some(signal),
            "{:?} stop {i}: {status:?}",
            args[0]
        );
        stopped += usize::from(code == Some(128 + signal));
        check(i);
    }
    stopped
}

#[test]
fn sample_batches_and_compute_wins_stopped_by_a_signal_publish_nothing_half_done() {
    let server = crate::fixtures::datasets::start();
    let dir = TestDir::new();
    let args = crate::sample_batches::sn9_args(&server, &dir.arg("b.parquet"));
    let started = Instant::now();
    assert_exit!(run_owned(&args), 1); // The Stack v2 needs AWS credentials: recorded, exit 1.
    let full = started.elapsed();
    let reference = std::fs::read(dir.path("b.parquet")).unwrap();
    let intact = |i: usize| {
        assert!(std::fs::read(dir.path("b.parquet")).unwrap() == reference, "sample-batches stop {i}: the batches differ");
        let names: Vec<String> =
            std::fs::read_dir(dir.path("")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "sample-batches stop {i}: {names:?}");
    };
    let stopped = stop_jobs(&args, 6, full, libc::SIGTERM, 1, &intact) + stop_jobs(&args, 4, full, libc::SIGINT, 1, &intact);
    assert!(stopped >= 3, "the stops landed while sampling: {stopped} of 10");
    report("sample-batches SIGTERM/SIGINT to the job at several moments", 10);

    let out = dir.arg("out");
    let args: Vec<String> = crate::compute_wins::demo_args(&out);
    let started = Instant::now();
    assert_exit!(run_owned(&args), 0);
    let full = started.elapsed();
    let one_set = |i: usize| {
        assert_one_set(&dir.path("out"), &format!("compute-wins stop {i}"));
        assert!(set_of(&dir.path("out"))[0].is_some(), "compute-wins stop {i}: the previous set is gone");
    };
    stop_jobs(&args, 10, full, libc::SIGTERM, 0, &one_set);
    stop_jobs(&args, 5, full, libc::SIGHUP, 0, &one_set);
    report("compute-wins SIGTERM/SIGHUP to the job at several moments", 15);
}

/// set-weights in a job of its own, stopped by SIGTERM or SIGINT at 10 moments of a send: the
/// weights reach the chain and their receipt the state directory together, or neither does (a
/// receipt lost would have the next run send again blind; one without weights, lie).
#[test]
fn set_weights_stopped_by_a_signal_records_exactly_what_reached_the_chain() {
    use crate::fixtures::chain::{account, validator_key, Hyper, Seeder, VALIDATOR_PHRASE};
    use valkit::tables::receipts;
    let Some((chain, _one)) = crate::chain::chain() else { return };
    let validator = validator_key();
    let miners = [account(&subxt_signer::sr25519::dev::bob()), account(&subxt_signer::sr25519::dev::charlie())];
    let netuid = crate::chain::block_on(async {
        let s = Seeder::connect(&chain.url).await?;
        s.fund(&[account(&validator)]).await?;
        let netuid = s.subnet(&account(&validator), &miners, &Hyper::default()).await?;
        s.permits(netuid, &[true, false, false]).await?;
        Ok::<_, String>(netuid)
    })
    .expect("seeding the subnet");
    let dir = TestDir::new();
    crate::chain::weights_table(&dir.path("weights.parquet"), netuid, &[0.5, 0.3, 0.2]);
    let wallets = crate::chain::wallet(&dir, VALIDATOR_PHRASE, 0o600);
    let n = netuid.to_string();
    let mut send = args(&["set-weights", "--network", &chain.url, "--netuid", &n, "--wallet", "validator", "--wallet-path", &wallets]);
    send.extend(args(&["--weights", &dir.arg("weights.parquet"), "--state-dir", &dir.arg("state"), "--rpc-timeout", "20"]));
    let started = Instant::now();
    assert_exit!(run_owned(&send), 0);
    let full = started.elapsed();

    // uid 0's LastUpdate: the block of its last weights, which its last receipt must name.
    let last_update = || crate::chain::block_on(async { Seeder::connect(&chain.url).await?.last_update(netuid).await }).unwrap()[0];
    let receipts = || read_table::<receipts::Receipts>(&dir.path("state/receipts.parquet")).rows;
    let seen = std::cell::RefCell::new((receipts(), last_update()));
    assert_eq!(seen.borrow().0.last().map(|r| r.block), Some(seen.borrow().1));
    let together = |i: usize| {
        let (rows, block) = (receipts(), last_update());
        let (before, block_before) = seen.borrow().clone();
        assert!(rows[..before.len()] == before[..], "stop {i}: earlier receipts changed");
        match rows.len() - before.len() {
            0 => assert_eq!(block, block_before, "stop {i}: weights reached the chain without a receipt"),
            1 => assert_eq!(rows.last().unwrap().block, block, "stop {i}: the receipt names another block than the chain's"),
            more => panic!("stop {i}: {more} receipts for one send"),
        }
        let names: Vec<String> =
            std::fs::read_dir(dir.path("state")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "stop {i}: {names:?}");
        *seen.borrow_mut() = (rows, block);
        // The next send must not be too soon: more than WeightsSetRateLimit (0) blocks later.
        crate::chain::block_on(async { Seeder::connect(&chain.url).await?.new_blocks(1).await }).unwrap();
    };
    crate::chain::block_on(async { Seeder::connect(&chain.url).await?.new_blocks(1).await }).unwrap();
    let stopped = stop_jobs(&send, 6, full, libc::SIGTERM, 0, &together) + stop_jobs(&send, 4, full, libc::SIGINT, 0, &together);
    let sent = seen.borrow().0.len() - 1;
    assert!(stopped >= 2 && sent >= 1, "the stops landed before and after sends: {stopped} stopped, {sent} sent of 10");
    report("set-weights SIGTERM/SIGINT to the job: weights on chain and receipt together or neither", 10);
}
