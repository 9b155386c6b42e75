//! `scripts/run-loop.sh` as cron runs it (no terminal, stdin closed): whole cycles of the demo
//! subnet against the demo hub, the tracker carried from one completed step to the next, and the
//! lock that keeps a second cycle from starting while one runs. (With a chain: `chain.rs`.)

use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use valkit::tables::weights;

use crate::fixtures::demo;
use crate::util::{read_table, repo_path, TestDir};

pub struct LoopRun {
    pub code: i32,
    pub log: String,
}

/// One cycle, with `env` on top of the demo settings; stdin closed and output captured, as cron.
pub fn run_loop(workdir: &Path, hub_url: &str, cache: &Path, env: &[(&str, String)]) -> LoopRun {
    let mut cmd = Command::new(repo_path("scripts/run-loop.sh"));
    for (key, _) in std::env::vars() {
        if key.starts_with("HF_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("VALKIT", env!("CARGO_BIN_EXE_valkit"))
        .env("WORKDIR", workdir)
        .env("NETUID", "2")
        .env("COMPETITIONS", repo_path("testdata/demo/competitions.toml"))
        .env("HF_ENDPOINT", hub_url)
        .env("HF_HUB_CACHE", cache)
        .env("SAMPLE_ARGS", format!("--tokenizer {}", repo_path("testdata/tokenizer").display()))
        .env("SET_WEIGHTS_RETRY_DELAY", "0");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run-loop.sh runs");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    LoopRun { code: out.status.code().expect("exit code"), log }
}

/// Step directories in start order (`latest` excluded).
pub fn steps(workdir: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(workdir.join("steps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "latest" && p.is_dir() && !p.is_symlink())
        .collect();
    dirs.sort();
    dirs
}

pub fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn two_cycles_from_cron_complete_two_steps_carrying_the_tracker() {
    let dir = TestDir::new();
    let demo = demo::serve(&repo_path(""), &dir.path("demo"), 2, None).unwrap();
    let workdir = dir.path("run");
    let stored = [("METAGRAPH", dir.arg("demo/metagraph.parquet"))];
    let first = run_loop(&workdir, &demo.hub.url, &dir.path("cache"), &stored);
    assert_eq!(first.code, 0, "{}", first.log);
    assert!(first.log.contains("starting without a tracker") && first.log.contains("only previewed"), "{}", first.log);
    let second = run_loop(&workdir, &demo.hub.url, &dir.path("cache"), &stored);
    assert_eq!(second.code, 0, "{}", second.log);

    let steps = steps(&workdir);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(std::fs::read_link(workdir.join("steps/latest")).unwrap(), Path::new(steps[1].file_name().unwrap()));
    assert_eq!(std::fs::read_to_string(workdir.join("state/step")).unwrap().trim(), "2");
    assert!(second.log.contains(&format!("carrying the tracker of {}", steps[0].file_name().unwrap().to_string_lossy())), "{}", second.log);
    // The second step's compute-wins read the first step's tracker, byte for byte.
    let weights = read_table::<weights::Weights>(&steps[1].join("weights.parquet"));
    assert_eq!(weights.meta.provenance["previous_tracker_sha256"], sha256_of(&steps[0].join("tracker.parquet")));
    for stage in ["fetch-models", "sample-batches", "eval-losses", "compute-wins", "set-weights"] {
        assert!(second.log.contains(&format!("{stage}: exit 0 in ")), "{stage}: {}", second.log);
    }

    // A cycle started while another holds the lock steps aside at once, touching nothing.
    let lock = workdir.join("state/run-loop.lock");
    let mut holder = Command::new("flock").arg(&lock).args(["sleep", "60"]).spawn().expect("flock runs");
    // Held once a non-blocking try of our own fails; a fixed sleep would only assume it.
    let held = || !Command::new("flock").arg("-n").arg(&lock).arg("true").status().expect("flock runs").success();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !held() {
        assert!(std::time::Instant::now() < deadline, "flock never took {}", lock.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let third = run_loop(&workdir, &demo.hub.url, &dir.path("cache"), &stored);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(third.code, 0, "{}", third.log);
    assert!(third.log.contains("another cycle holds"), "{}", third.log);
    assert_eq!(self::steps(&workdir).len(), 2);
}
