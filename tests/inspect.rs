use std::io::{BufRead, BufReader};
use std::process::Stdio;

use valkit::tables::losses;

use crate::util::*;

#[test]
fn json_lines_one_object_per_row() {
    let r = run(&["inspect", &demo("losses.parquet"), "--json"]);
    assert_exit!(r, 0);
    let rows: Vec<serde_json::Value> = r.stdout_text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 12 * 6 * 4);
    assert_eq!(rows[0]["uid"], 1);
    let failed = rows.iter().find(|r| r["status"] == "failed").unwrap();
    assert_eq!(failed["loss"], "inf", "JSON has no infinity: written as a string");
}

#[test]
fn table_csv_and_meta() {
    let r = run(&["inspect", &demo("metagraph.parquet")]);
    assert_exit!(r, 0);
    let text = r.stdout_text();
    assert!(text.starts_with("table: metagraph  schema version: 2"), "{text}");
    assert!(text.contains("  block = 5200000"), "provenance in TOML form");
    let csv = run(&["inspect", &demo("tracker.parquet"), "--csv"]);
    assert_exit!(csv, 0);
    let text = csv.stdout_text();
    assert_eq!(text.lines().next().unwrap(), "competition_id,uid,weight,keep");
    assert_eq!(text.lines().count(), 33);
    let meta = run(&["inspect", &demo("losses.parquet"), "--meta"]);
    let v: serde_json::Value = serde_json::from_str(&meta.stdout_text()).unwrap();
    assert_eq!((v["table"].as_str(), v["rows"].as_u64()), (Some("losses"), Some(288)));
}

#[test]
fn corrupt_input_is_one_error_line() {
    let dir = TestDir::new();
    std::fs::write(dir.path("x.parquet"), b"not parquet").unwrap();
    assert_bad_input(&run(&["inspect", &dir.arg("x.parquet")]), "x.parquet");
}

/// A file damaged where the parquet crate asserts instead of erring is the file's fault: exit 2,
/// one line naming it, with or without RUST_BACKTRACE — not a panic (exit 101).
#[test]
fn a_file_that_makes_the_parquet_reader_panic_is_one_error_line() {
    let damaged = repo_path("testdata/damaged/negative-column-start.parquet").display().to_string();
    assert_bad_input(&run(&["inspect", &damaged]), "negative-column-start.parquet: not a readable Parquet file");
    let out = TestDir::new();
    let compute_wins: Vec<String> = crate::compute_wins::demo_args(&out.arg("out"))
        .into_iter()
        .map(|a| if a == demo("losses.parquet") { damaged.clone() } else { a })
        .collect();
    let mut cmd = valkit();
    cmd.args(&compute_wins);
    cmd.env("RUST_BACKTRACE", "1");
    let r = run_command(&mut cmd);
    assert_bad_input(&r, "negative-column-start.parquet");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn stdin_works() {
    let bytes = std::fs::read(demo("tracker.parquet")).unwrap();
    let mut child = valkit().args(["inspect", "-", "--json"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 32);
}

#[test]
fn a_reader_closing_the_pipe_is_not_an_error() {
    let dir = TestDir::new();
    let rows: Vec<losses::Row> = (0..20_000u32)
        .map(|i| losses::Row {
            uid: (i % 200) as u16,
            hotkey: "h".into(),
            competition_id: 4,
            task: "FINEWEB".into(),
            batch_index: i / 200,
            loss: 2.0,
            n_tokens: 4095,
            status: losses::Status::Ok,
            reason: None,
            evaluated_as: None,
        })
        .collect();
    write_table::<losses::Losses>(&dir.path("big.parquet"), rows, &[]);
    let mut child =
        valkit().args(["inspect", &dir.arg("big.parquet"), "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    // The reader (like `head -1`) is gone now.
    let out = child.wait_with_output().unwrap();
    assert!(first.starts_with('{'));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty());
}

#[test]
fn readable_by_default_exact_on_request() {
    let dir = TestDir::new();
    assert_exit!(run_owned(&crate::compute_wins::demo_args(&dir.arg("out"))), 0);
    let wins = dir.arg("out/wins.parquet");
    let r = run(&["inspect", &wins]);
    assert_exit!(r, 0);
    let text = r.stdout_text();
    assert!(text.contains("  epsilon = { kind = \"linear-decay\", start = 0.005, end = 0.0001, decay_blocks = 14400 }"), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 120, "line over 120 columns: {line}");
    }
    assert!(!text.contains("0.00010000000000000026"), "f64 noise is rounded in the table view");
    assert!(text.contains("(4 more columns: --columns all"));
    // f32 columns print as f32 everywhere: 1/3 is 0.33333334, not 0.3333333432674408.
    let weights = dir.arg("out/weights.parquet");
    let json = run(&["inspect", &weights, "--json", "--columns", "uid,weight"]).stdout_text();
    let uid1: serde_json::Value = serde_json::from_str(json.lines().nth(1).unwrap()).unwrap();
    assert_eq!(uid1.to_string(), r#"{"uid":1,"weight":0.33333334}"#);
    assert_eq!(uid1["weight"].as_f64().unwrap() as f32, 1.0f32 / 3.0);
    let csv = run(&["inspect", &wins, "--csv", "--columns", "score,uid", "--limit", "1"]).stdout_text();
    assert_eq!(csv, "score,uid\n2.287703721300777,1\n", "CSV keeps every digit, in the asked order");
    let legend = run(&["inspect", &wins, "--describe"]);
    assert_exit!(legend, 0);
    assert!(legend.stdout_text().contains("* epsilon_adv"));
    assert_bad_input(&run(&["inspect", &wins, "--columns", "uid,nope"]), "no column \"nope\"");
    assert_exit!(run(&["inspect", &wins, "--csv", "--json"]), 2);
}

/// A miner's strings (here a hotkey and a failure reason) and a file's own metadata never reach
/// the terminal raw: no ESC, BEL, CR or bidi override in any human view.
#[test]
fn hostile_strings_are_shown_escaped_in_every_view() {
    let dir = TestDir::new();
    let hostile = "x\u{1b}[2J\u{1b}]8;;https://evil\u{7}click\u{1b}]8;;\u{7}\rfake\u{202e}txt";
    let row = losses::Row {
        uid: 1,
        hotkey: hostile.into(),
        competition_id: 4,
        task: "FINEWEB".into(),
        batch_index: 0,
        loss: f64::INFINITY,
        n_tokens: 0,
        status: losses::Status::Failed,
        reason: Some(format!("load-failed: {hostile}\nsecond line")),
        evaluated_as: None,
    };
    write_table::<losses::Losses>(&dir.path("l.parquet"), vec![row], &[("note", hostile)]);
    let raw = |s: &str| s.contains(['\u{1b}', '\u{7}', '\r', '\u{202e}']);
    let file = dir.arg("l.parquet");
    for view in [&["--columns", "all"][..], &[], &["--csv"], &["--describe"]] {
        let mut a = vec!["inspect", file.as_str()];
        a.extend(view);
        let r = run(&a);
        assert_exit!(r, 0);
        let shown = r.stdout_text();
        assert!(!raw(&shown), "{view:?} printed a raw control: {shown:?}");
        if view != ["--describe"] {
            assert!(shown.contains("\\x1b[2J") && shown.contains("\\u{202e}txt"), "{view:?}: {shown}");
        }
    }
    // CSV keeps the reason's newline inside its quoted field, as CSV allows.
    assert!(run(&["inspect", &dir.arg("l.parquet"), "--csv", "--columns", "reason"]).stdout_text().contains("\nsecond line\""));
    // JSON escapes by its own rules and keeps the exact string.
    let json = run(&["inspect", &dir.arg("l.parquet"), "--json", "--columns", "hotkey"]);
    let value: serde_json::Value = serde_json::from_str(json.stdout_text().trim()).unwrap();
    assert_eq!(value["hotkey"], hostile);
}

/// Error lines quote what they were given (paths, names, server answers): escaped too.
#[test]
fn an_error_line_shows_controls_escaped() {
    let dir = TestDir::new();
    let path = dir.arg("gone\u{1b}[2J\u{202e}.parquet");
    let r = run(&["inspect", &path]);
    assert_bad_input(&r, "gone\\x1b[2J\\u{202e}.parquet");
    assert!(!r.stderr.contains(['\u{1b}', '\u{202e}']), "{:?}", r.stderr);
}

/// Logs and summaries quote a miner's text too (a failure reason, the worker's stderr, the
/// model's path) and the operator's (the output path): shown escaped, one log line per event.
#[test]
fn logs_and_summaries_show_a_miners_text_escaped() {
    let dir = TestDir::new();
    crate::eval_losses::write_batches(&dir);
    let hostile = "x\u{1b}[2J\u{1b}]8;;https://evil\u{7}click\u{1b}]8;;\u{7}\rfake\nline\u{202e}txt";
    let model = dir.path(&format!("model-{hostile}"));
    std::fs::create_dir_all(&model).unwrap();
    let config = serde_json::json!({ "model_type": hostile, "architectures": [hostile] });
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(repo_path("testdata/models/llama/model.safetensors"), model.join("model.safetensors")).unwrap();
    let mut row = crate::eval_losses::model_row(3, Some(&model));
    row.hotkey = hostile.into();
    write_table::<valkit::tables::models::Models>(&dir.path("models.parquet"), vec![row], &[]);
    let out = dir.arg(&format!("losses-{hostile}.parquet"));
    let mut cmd = valkit();
    cmd.args(["eval-losses", "--models", &dir.arg("models.parquet"), "--batches", &dir.arg("batches.parquet"), "--out", &out]);
    let r = run_command(cmd.env("RUST_LOG", "valkit=info"));
    assert_exit!(r, 1, "the model fails, the run goes on");
    let failed = r.stderr.lines().find(|l| l.contains("model failed")).unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(failed.contains("\\x1b[2J") && failed.contains("\\x0aline\\u{202e}txt"), "{failed}");
    assert!(
        r.stderr.contains(&format!(
            "wrote {}",
            out.replace('\u{1b}', "\\x1b")
                .replace('\u{7}', "\\x07")
                .replace('\r', "\\x0d")
                .replace('\n', "\\x0a")
                .replace('\u{202e}', "\\u{202e}")
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(['\u{1b}', '\u{7}', '\r', '\u{202e}']), "{:?}", r.stderr);
    assert!(r.stderr.lines().all(|l| !l.starts_with("line")), "a miner's newline forged no line: {}", r.stderr);
}
