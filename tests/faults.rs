//! The fault suite: what an operator's night throws at valkit — kill -9 at any moment, a second
//! writer of the same output — and what must come of it: nothing lost, nothing mixed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use valkit::tables::models;

use crate::eval_losses::{eval, good_models, model_row, write_batches};
use crate::util::*;

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
        let r = eval(&dir, &out, &["--resume", "--json"]);
        assert_exit!(r, 0, "kill {i} after {:.2} of the run", fraction);
        let summary: Value = serde_json::from_str(&r.stdout_text()).unwrap();
        // Only what the journal holds is kept; everything else is computed again, once.
        let resumed = summary["resumed_rows"].as_u64().unwrap() as usize;
        assert!(
            resumed <= models_in_journal * 3 && resumed + 3 >= models_in_journal * 3,
            "kill {i}: {resumed} rows resumed, journal {models_in_journal}"
        );
        assert_eq!(std::fs::read(dir.path(&out)).unwrap(), reference, "kill {i} after {fraction:.2} of the run: resumed table differs");
        assert!(!journal.exists(), "the journal is consumed by the published table");
        journaled_models.push(models_in_journal);
    }
    // The kill points landed all over the run, not only before or after it.
    assert!(journaled_models.iter().any(|&m| m > 0 && m < n_models), "{journaled_models:?}");
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
}
