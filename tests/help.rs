//! Every subcommand's `--help`: each argument described, global flags apart, and every example
//! copy-pasted into bash and run in a validator's working directory made of the demo data.
//! The datasets-server is the local fixture; examples that need the chain or the hub run against
//! a dead local endpoint and must get as far as it: exit 4, "unreachable".

use std::path::Path;
use std::process::Command;

use crate::util::*;

const DEAD: &str = "127.0.0.1:9";

/// The subcommands `valkit --help` lists (without `help`), and `profile`'s own.
fn subcommands() -> Vec<Vec<String>> {
    let top = run(&["--help"]).stdout_text();
    let listed = |help: &str| -> Vec<String> {
        help.split("Commands:\n")
            .nth(1)
            .unwrap_or("")
            .lines()
            .take_while(|l| l.starts_with("  "))
            // a wrapped description continues on a more indented line
            .filter(|l| !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| *name != "help")
            .map(str::to_string)
            .collect()
    };
    let mut all: Vec<Vec<String>> = listed(&top).into_iter().map(|s| vec![s]).collect();
    let profile = run(&["profile", "--help"]).stdout_text();
    all.extend(listed(&profile).into_iter().map(|s| vec!["profile".to_string(), s]));
    all
}

fn help_of(path: &[String]) -> String {
    let mut args: Vec<String> = path.to_vec();
    args.push("--help".into());
    let r = run_owned(&args);
    assert_exit!(r, 0, "{path:?} --help");
    r.stdout_text()
}

/// Examples: lines starting `valkit …` (perhaps after VAR=value), joined over `\` continuations.
fn examples(help: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let starts = line.starts_with("  ") && line.split_whitespace().find(|w| !w.contains('=')) == Some("valkit");
        match current.as_mut() {
            Some(command) => command.push_str(line.trim_start()),
            None if starts => current = Some(line.trim_start().to_string()),
            None => continue,
        }
        let command = current.as_mut().expect("set above");
        if command.ends_with('\\') {
            command.pop();
        } else {
            found.push(current.take().expect("set above"));
        }
    }
    assert!(current.is_none(), "an example ends in a continuation: {current:?}");
    found
}

/// The argument and option lines of a help text that have no description.
fn undescribed(help: &str) -> Vec<String> {
    // The flags come before the examples and notes of `after_help`.
    let lines: Vec<&str> = help.lines().take_while(|l| !l.starts_with("Example")).collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let spec = line.trim_start();
        let is_arg = line.starts_with("  ") && (spec.starts_with('-') || spec.starts_with('<') || spec.starts_with('['));
        if !is_arg || line.starts_with("      ") && !spec.starts_with("--") {
            continue;
        }
        // The description follows two spaces on the same line, or on the next, indented.
        let same_line = spec.split_once("  ").is_some_and(|(_, rest)| !rest.trim().is_empty());
        let next_line = lines.get(i + 1).is_some_and(|n| n.starts_with("          ") && !n.trim().is_empty());
        if !same_line && !next_line {
            missing.push(line.to_string());
        }
    }
    missing
}

/// A validator's working directory: the demo SN9 step's tables, a custom subnet profile with its
/// corpora and tokenizer, the tiny models, a wallet.
fn working_directory(dir: &TestDir) -> std::path::PathBuf {
    let root = dir.path("work");
    let at = |p: &str| root.join(p);
    for sub in ["state", "steps", "home/.bittensor/wallets"] {
        std::fs::create_dir_all(at(sub)).unwrap();
    }
    for name in ["metagraph.parquet", "losses.parquet", "models.parquet"] {
        std::fs::copy(demo(name), at(name)).unwrap();
    }
    std::fs::copy(demo("tracker.parquet"), at("state/tracker.parquet")).unwrap();
    std::fs::copy(demo("competitions.toml"), at("my-subnet.toml")).unwrap();
    // models.parquet names the tiny models as testdata/models/…; corpora sit beside the profile.
    std::os::unix::fs::symlink(repo_path("testdata"), at("testdata")).unwrap();
    std::os::unix::fs::symlink(repo_path("testdata/demo/corpora"), at("corpora")).unwrap();
    std::os::unix::fs::symlink(repo_path("testdata/tokenizer"), at("tokenizer")).unwrap();
    // SN9's tokenizer, as a validator has it cached (here: the test tokenizer under its name).
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let tokenizer = at("hf-cache/models--Xenova--gpt-4");
    std::fs::create_dir_all(tokenizer.join("refs")).unwrap();
    std::fs::write(tokenizer.join("refs/main"), commit).unwrap();
    std::fs::create_dir_all(tokenizer.join("snapshots").join(commit)).unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(repo_path(&format!("testdata/tokenizer/{file}")), tokenizer.join("snapshots").join(commit).join(file)).unwrap();
    }
    crate::fixtures::chain::write_wallet(&at("home/.bittensor/wallets"), "validator", crate::fixtures::chain::VALIDATOR_PHRASE, 0o600)
        .unwrap();
    let in_dir = |args: &[&str]| {
        let out = valkit().current_dir(&root).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    in_dir(&[
        "compute-wins",
        "--profile",
        "sn9",
        "--competition-id",
        "4",
        "--metagraph",
        "metagraph.parquet",
        "--losses",
        "losses.parquet",
        "--tracker",
        "state/tracker.parquet",
        "--out-dir",
        "step",
    ]);
    in_dir(&[
        "sample-batches",
        "--competitions",
        "my-subnet.toml",
        "--competition-id",
        "1",
        "--seed",
        "42",
        "--tokenizer",
        "tokenizer",
        "-o",
        "batches.parquet",
    ]);
    for name in ["losses.parquet", "models.parquet"] {
        std::fs::copy(at(name), at(&format!("step/{name}"))).unwrap();
    }
    for step in ["steps/20261130T000000Z", "steps/20261130T002000Z"] {
        copy_dir(&at("step"), &at(step));
    }
    root
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

/// What an example must exit with: 4 where it needs the chain or the hub; 1 for SN9's batches,
/// whose Stack v2 task is skipped without AWS credentials (the other tasks are written); else 0.
fn expected_exit(example: &str) -> i32 {
    if (example.contains("--network ") && !example.contains("--dry-run")) || example.contains("fetch-models") {
        4
    } else if example.contains("sample-batches --profile sn9") && !example.contains("--plan") {
        1
    } else {
        0
    }
}

#[test]
fn every_example_in_help_runs_against_the_demo_data() {
    let dir = TestDir::new();
    let work = working_directory(&dir);
    let datasets = crate::fixtures::datasets::start();
    let bin = dir.path("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_valkit"), bin.join("valkit")).unwrap();
    #[allow(clippy::disallowed_methods)] // the test's own PATH, with the binary under test first
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    let top = run(&["--help"]).stdout_text();
    let subcommands = subcommands();
    assert!(subcommands.len() >= 14, "{subcommands:?}");
    let mut ran = 0;
    for sub in &subcommands {
        let help = help_of(sub);
        assert_eq!(undescribed(&help), Vec::<String>::new(), "{sub:?}: arguments without a description");
        assert!(help.contains("Global options:\n  -v, --verbose"), "{sub:?}: global flags under their own heading");
        if sub.len() == 2 {
            continue; // `profile show` & co. share `profile --help`'s examples
        }
        assert!(top.contains(&format!("  {}", sub[0])));
        let examples = examples(&help);
        assert!(!examples.is_empty(), "{sub:?} --help has no example");
        let after_help = help.lines().skip_while(|l| !l.starts_with("Example"));
        for line in after_help.filter(|l| l.starts_with("  ")) {
            assert!(line.chars().count() <= 80, "{sub:?}: an example line over 80 columns wraps: {line}");
        }
        for example in examples {
            // Each in a fresh copy, so that no example sees another's output.
            let cwd = dir.path(&format!("run-{ran}"));
            copy_dir(&work, &cwd);
            let command = example
                .replace("--network finney", &format!("--network ws://{DEAD}"))
                .replace("--network local", &format!("--network ws://{DEAD}"));
            let out = Command::new("bash")
                .args(["-c", &command])
                .current_dir(&cwd)
                .env("PATH", &path)
                .env("HOME", cwd.join("home"))
                .env("HF_ENDPOINT", format!("http://{DEAD}"))
                .env("HF_HUB_CACHE", cwd.join("hf-cache"))
                .env("VALKIT_DATASETS_ENDPOINT", &datasets.url)
                .env_remove("HF_HUB_OFFLINE")
                .env_remove("RUST_LOG")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let expected = expected_exit(&example);
            assert_eq!(out.status.code(), Some(expected), "`{command}` exited {:?}; stderr:\n{stderr}", out.status.code());
            if expected == 4 {
                assert!(stderr.contains("unreachable"), "`{command}`: {stderr}");
            }
            ran += 1;
        }
    }
    assert!(ran >= 25, "{ran} examples ran");
}

#[test]
fn json_is_offered_where_it_is_honoured() {
    for sub in subcommands() {
        let help = help_of(&sub);
        let offers = help.contains("      --json");
        let summarises = !matches!(sub[0].as_str(), "profile");
        assert_eq!(offers, summarises, "{sub:?}: --json offered: {offers}");
    }
}

#[test]
fn negative_numbers_reach_the_check_that_refuses_them() {
    let dir = TestDir::new();
    let mut args = crate::compute_wins::demo_args(&dir.arg("out"));
    args.extend(["--epsilon-start".to_string(), "-1".to_string()]);
    assert_bad_input(&run_owned(&args), "epsilon needs 0 <= end <= start < 1");
}

#[test]
fn a_mistyped_rust_log_is_one_message() {
    let out = valkit().env("RUST_LOG", "valkit=loud").args(["profile", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid RUST_LOG value \"valkit=loud\""), "{stderr}");
    assert_eq!(stderr.matches("error parsing level filter").count(), 1, "{stderr}");
}
