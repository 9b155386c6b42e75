use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use valkit::tables::{batches, losses, models};

use crate::util::*;

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_path("testdata/models/reference.json")).unwrap()).unwrap()
}

pub fn model_row(uid: u16, path: Option<&Path>) -> models::Row {
    models::Row {
        uid,
        hotkey: format!("hotkey-{uid}"),
        competition_id: Some(1),
        repo_id: Some(format!("demo/model-{uid}")),
        revision: None,
        commit_block: Some(100),
        local_path: path.map(|p| p.display().to_string()),
        size_bytes: None,
        n_params: None,
        architecture: None,
        status: models::Status::Ok,
        reason: None,
        in_step: true,
        step_reason: None,
        model_hash: None,
    }
}

pub fn write_batches(dir: &TestDir) {
    let rows = reference()["batches"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, b)| batches::Row {
            competition_id: 1,
            task: if b["context_len"].as_u64().unwrap() > 0 { "MATH".into() } else { "WEB".into() },
            batch_index: i as u32,
            token_ids: b["token_ids"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect(),
            context_len: b["context_len"].as_u64().unwrap() as u32,
            source: format!("fixture:{i}"),
        })
        .collect();
    write_table::<batches::Batches>(&dir.path("batches.parquet"), rows, &[]);
}

/// A copy of a tiny model with `edit` applied to its directory.
fn broken(dir: &TestDir, name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let path = dir.path(name);
    std::fs::create_dir_all(&path).unwrap();
    let source = repo_path("testdata/models/llama");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(source.join(f), path.join(f)).unwrap();
    }
    edit(&path);
    path
}

pub fn good_models() -> Vec<(u16, String, PathBuf)> {
    reference()["models"]
        .as_object()
        .unwrap()
        .keys()
        .enumerate()
        .map(|(i, name)| (i as u16, name.clone(), repo_path(&format!("testdata/models/{name}"))))
        .collect()
}

pub fn losses_by_uid(path: &Path) -> BTreeMap<u16, Vec<losses::Row>> {
    let mut out: BTreeMap<u16, Vec<losses::Row>> = BTreeMap::new();
    for r in read_table::<losses::Losses>(path).rows {
        out.entry(r.uid).or_default().push(r);
    }
    for rows in out.values_mut() {
        rows.sort_by_key(|r| r.batch_index);
    }
    out
}

pub fn eval(dir: &TestDir, out: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "eval-losses".to_string(),
        "--models".into(),
        dir.arg("models.parquet"),
        "--batches".into(),
        dir.arg("batches.parquet"),
        "--out".into(),
        dir.arg(out),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

#[test]
fn every_architecture_matches_pytorch_and_bad_models_become_failed_rows() {
    let dir = TestDir::new();
    write_batches(&dir);
    let mut rows: Vec<models::Row> = good_models().iter().map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    let pickled = broken(&dir, "pickle", |p| std::fs::write(p.join("pytorch_model.bin"), b"\x80\x02}q\x00.").unwrap());
    let renamed = broken(&dir, "renamed-pickle", |p| {
        std::fs::write(p.join("model.safetensors"), b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.").unwrap()
    });
    let huge = broken(&dir, "huge-config", |p| {
        let mut c: Value = serde_json::from_str(&std::fs::read_to_string(p.join("config.json")).unwrap()).unwrap();
        c["hidden_size"] = 65536.into();
        c["intermediate_size"] = 262144.into();
        c["num_hidden_layers"] = 1000.into();
        c["num_attention_heads"] = 512.into();
        c["num_key_value_heads"] = 512.into();
        c["head_dim"] = 128.into();
        std::fs::write(p.join("config.json"), c.to_string()).unwrap();
    });
    let big_header = broken(&dir, "big-header", |p| {
        let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        std::fs::write(p.join("model.safetensors"), bytes).unwrap();
    });
    let truncated = broken(&dir, "truncated", |p| {
        let bytes = std::fs::read(p.join("model.safetensors")).unwrap();
        std::fs::write(p.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    });
    let unknown = broken(&dir, "unknown-architecture", |p| {
        let text = std::fs::read_to_string(p.join("config.json"))
            .unwrap()
            .replace("LlamaForCausalLM", "MambaForCausalLM")
            .replace("\"llama\"", "\"mamba\"");
        std::fs::write(p.join("config.json"), text).unwrap();
    });
    let bad = [
        (100, Some(pickled), "pickle-file"),
        (101, Some(renamed), "pickle-file"),
        (102, Some(huge), "out-of-memory"),
        (103, Some(big_header), "not-safetensors"),
        (104, Some(truncated), "not-safetensors"),
        (105, Some(unknown), "unsupported-architecture"),
        (106, None, "missing-local-path"),
    ];
    for (uid, path, _) in &bad {
        rows.push(model_row(*uid, path.as_deref()));
    }
    let mut skipped = model_row(200, None);
    (skipped.status, skipped.in_step) = (models::Status::Skipped, false);
    rows.push(skipped);
    // Rejected by fetch-models but in the step: it still reaches compute-wins, as failed rows.
    let mut rejected = model_row(201, None);
    (rejected.status, rejected.reason) = (models::Status::Rejected, Some("hash-mismatch: not this hotkey's".into()));
    rows.push(rejected);
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);

    let r = eval(&dir, "losses.parquet", &[]);
    assert_exit!(r, 1);
    let got = losses_by_uid(&dir.path("losses.parquet"));
    let reference = reference();
    for (uid, name, _) in good_models() {
        let want: Vec<f64> = reference["models"][&name]["losses"].as_array().unwrap().iter().map(|l| l.as_f64().unwrap()).collect();
        let rows = &got[&uid];
        assert_eq!(rows.len(), 3, "{name}");
        for (row, want) in rows.iter().zip(&want) {
            assert_eq!(row.status, losses::Status::Ok, "{name}: {:?}", row.reason);
            assert!((row.loss - want).abs() / want < 1e-4, "{name} batch {}: {} vs torch {want}", row.batch_index, row.loss);
        }
        assert_eq!(rows[2].n_tokens, 30, "{name}: reference loss scores only the reference tokens");
    }
    for (uid, _, code) in bad {
        let rows = &got[&uid];
        assert_eq!(rows.len(), 3);
        for row in rows {
            assert!(row.loss.is_infinite() && row.status == losses::Status::Failed);
            assert!(row.reason.as_deref().unwrap().starts_with(code), "uid {uid}: {:?}", row.reason);
        }
    }
    assert!(!got.contains_key(&200), "models outside the step are not evaluated");
    assert!(got[&201].iter().all(|r| r.loss.is_infinite() && r.reason.as_deref().unwrap().starts_with("rejected: hash-mismatch")));
}

#[test]
fn shards_concatenate_and_resume_skips_done_rows() {
    let dir = TestDir::new();
    write_batches(&dir);
    let rows = good_models().iter().map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    assert_exit!(eval(&dir, "all.parquet", &[]), 0);
    assert_exit!(eval(&dir, "s0.parquet", &["--shard", "0/2"]), 0);
    assert_exit!(eval(&dir, "s1.parquet", &["--shard", "1/2"]), 0);
    let mut shards = read_table::<losses::Losses>(&dir.path("s0.parquet")).rows;
    shards.extend(read_table::<losses::Losses>(&dir.path("s1.parquet")).rows);
    shards.sort_by_key(|r| (r.uid, r.batch_index));
    let mut all = read_table::<losses::Losses>(&dir.path("all.parquet")).rows;
    all.sort_by_key(|r| (r.uid, r.batch_index));
    assert_eq!(shards, all);
    let r = eval(&dir, "all.parquet", &["--resume", "--json"]);
    assert_exit!(r, 0);
    let summary: Value = serde_json::from_str(&r.stdout_text()).unwrap();
    let expected_rows = good_models().len() as u64 * 3;
    assert_eq!((summary["resumed_rows"].as_u64(), summary["tokens"].as_u64()), (Some(expected_rows), Some(0)), "nothing recomputed");
    assert_eq!(summary["compute_seconds"].as_f64(), Some(0.0), "no forward pass when everything is resumed");
    // Without resume, the forward passes are timed apart from the stage (worker start, loading).
    let r = eval(&dir, "timed.parquet", &["--json"]);
    assert_exit!(r, 0);
    let summary: Value = serde_json::from_str(&r.stdout_text()).unwrap();
    let (compute, whole) = (summary["compute_seconds"].as_f64().unwrap(), summary["seconds"].as_f64().unwrap());
    assert!(compute > 0.0 && compute < whole, "compute {compute} s of a {whole} s stage");
    let r = eval(&dir, "x.parquet", &["--shard", "2/2"]);
    assert_exit!(r, 2);
    assert!(r.stderr.contains("shard \"2/2\" is not K/N with 0 <= K < N"), "{}", r.stderr);
}

#[test]
fn competition_rules_apply_with_a_profile() {
    let dir = TestDir::new();
    write_batches(&dir);
    let rows = good_models().iter().map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    let demo = repo_path("testdata/demo/competitions.toml").display().to_string();
    let text = std::fs::read_to_string(&demo).unwrap().replace("min_params = 1_000", "min_params = 150_000");
    std::fs::write(dir.path("rules.toml"), text).unwrap();
    let r = eval(&dir, "losses.parquet", &["--competitions", &dir.arg("rules.toml")]);
    assert_exit!(r, 1);
    let got = losses_by_uid(&dir.path("losses.parquet"));
    for (uid, name, _) in good_models() {
        let n_params = reference()["models"][&name]["n_params"].as_u64().unwrap();
        let failed = got[&uid].iter().all(|r| r.reason.as_deref().is_some_and(|x| x.starts_with("parameter-count")));
        assert_eq!(failed, n_params < 150_000, "{name} with {n_params} parameters");
    }
}

/// Copies (the same model hash in the same competition) are evaluated once, under the lowest
/// uid; each uid keeps its own rows (hotkey, uid) with `evaluated_as` naming that uid, and the
/// table is byte for byte the one of evaluating every copy again — a model that fails to load
/// fails for each of its copies. Shards split distinct models; --resume reuses them per model.
#[test]
fn copies_of_a_model_are_evaluated_once_and_give_the_table_of_evaluating_each() {
    let dir = TestDir::new();
    write_batches(&dir);
    let models = good_models();
    let llama = models.iter().find(|(_, name, _)| name == "llama").map(|(_, _, p)| p.clone()).unwrap();
    let gemma = models.iter().find(|(_, name, _)| name == "gemma").map(|(_, _, p)| p.clone()).unwrap();
    // uid 3 re-uploads uid 1's model under its own repository (another snapshot directory).
    let copy = broken(&dir, "copy-of-llama", |_| {});
    let torn = |p: &Path| std::fs::write(p.join("model.safetensors"), b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let (bad, bad_copy) = (broken(&dir, "bad", torn), broken(&dir, "bad-copy", torn));
    let with_hash = |uid: u16, path: &Path, hash: &str| models::Row { model_hash: Some(hash.into()), ..model_row(uid, Some(path)) };
    let rows = vec![
        with_hash(1, &llama, "llama-hash"),
        with_hash(2, &gemma, "gemma-hash"),
        with_hash(3, &copy, "llama-hash"),
        with_hash(4, &bad, "bad-hash"),
        with_hash(5, &llama, "llama-hash"),
        with_hash(6, &bad_copy, "bad-hash"),
    ];
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);

    let once = eval(&dir, "once.parquet", &["--json"]);
    assert_exit!(once, 1, "uids 4 and 6 fail");
    let summary: Value = serde_json::from_str(once.stdout_text().trim()).unwrap();
    assert_eq!((summary["models"].as_u64(), summary["distinct_models"].as_u64()), (Some(6), Some(3)));
    let each = eval(&dir, "each.parquet", &["--evaluate-copies", "--json"]);
    assert_exit!(each, 1);
    let each_summary: Value = serde_json::from_str(each.stdout_text().trim()).unwrap();
    assert!(summary["tokens"].as_u64() < each_summary["tokens"].as_u64(), "fewer tokens evaluated: {summary} / {each_summary}");
    assert!(std::fs::read(dir.path("once.parquet")).unwrap() == std::fs::read(dir.path("each.parquet")).unwrap(), "the same table");

    let by_uid = losses_by_uid(&dir.path("once.parquet"));
    for (uid, of) in [(3, 1), (5, 1), (6, 4)] {
        let (copy, model) = (&by_uid[&uid], &by_uid[&of]);
        assert!(copy.iter().all(|r| r.evaluated_as == Some(of) && r.hotkey == format!("hotkey-{uid}")), "uid {uid}: {copy:?}");
        let values = |rows: &[valkit::tables::losses::Row]| rows.iter().map(|r| (r.loss.to_bits(), r.reason.clone())).collect::<Vec<_>>();
        assert_eq!(values(copy), values(model), "uid {uid} has uid {of}'s losses");
    }
    assert!(by_uid[&1].iter().chain(&by_uid[&2]).chain(&by_uid[&4]).all(|r| r.evaluated_as.is_none()));
    assert!(by_uid[&6].iter().all(|r| r.status == valkit::tables::losses::Status::Failed), "a failed model fails for its copies");

    // Shards split the three distinct models, not the six uids: 0/2 gets llama (uids 1, 3, 5)
    // and the bad model (4, 6), 1/2 gemma; together they are the whole table.
    let shard = |k: &str, out: &str| {
        let r = eval(&dir, out, &["--shard", k, "--json"]);
        serde_json::from_str::<Value>(r.stdout_text().trim()).unwrap()["distinct_models"].as_u64()
    };
    assert_eq!((shard("0/2", "s0.parquet"), shard("1/2", "s1.parquet")), (Some(2), Some(1)));
    let mut shards = losses_by_uid(&dir.path("s0.parquet"));
    shards.extend(losses_by_uid(&dir.path("s1.parquet")));
    assert_eq!(shards, by_uid);

    // A resumed run reuses the rows, and a new copy takes its rows from its model's.
    let mut rows = read_table::<models::Models>(&dir.path("models.parquet")).rows;
    rows.push(with_hash(7, &copy, "llama-hash"));
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    let r = eval(&dir, "once.parquet", &["--resume", "--json"]);
    let summary: Value = serde_json::from_str(r.stdout_text().trim()).unwrap();
    assert_eq!(summary["tokens"], 0, "nothing evaluated again: {summary}");
    let by_uid = losses_by_uid(&dir.path("once.parquet"));
    assert_eq!(
        by_uid[&7].iter().map(|r| (r.loss.to_bits(), r.evaluated_as)).collect::<Vec<_>>(),
        by_uid[&1].iter().map(|r| (r.loss.to_bits(), Some(1))).collect::<Vec<_>>()
    );
}

/// The next model's worker loads while the current one computes (issue 24): the table is byte
/// for byte the one of loading one model at a time, and of evaluating every uid one after the
/// other as upstream does. A model whose size cannot be told from its headers (here torn
/// weights) is never loaded ahead: it loads after, and fails alone.
#[test]
fn the_next_model_loads_while_one_computes_and_the_table_is_that_of_one_at_a_time() {
    let dir = TestDir::new();
    write_batches(&dir);
    let models = good_models();
    let path = |wanted: &str| models.iter().find(|(_, name, _)| name == wanted).map(|(_, _, p)| p.clone()).unwrap();
    let torn = broken(&dir, "torn", |p| std::fs::write(p.join("model.safetensors"), b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap());
    let copy = broken(&dir, "copy-of-llama", |_| {});
    let with_hash = |uid: u16, path: &Path, hash: &str| models::Row { model_hash: Some(hash.into()), ..model_row(uid, Some(path)) };
    let rows = vec![
        with_hash(1, &path("llama"), "llama-hash"),
        with_hash(2, &path("gemma"), "gemma-hash"),
        with_hash(3, &torn, "torn-hash"),
        with_hash(4, &copy, "llama-hash"),
        with_hash(5, &path("qwen2"), "qwen2-hash"),
    ];
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    let eval_logged = |out: &str, extra: &[&str]| {
        let mut list = args(&["eval-losses", "--models", &dir.arg("models.parquet"), "--batches", &dir.arg("batches.parquet")]);
        list.extend(args(&["--out", &dir.arg(out)]));
        list.extend(args(extra));
        let r = run_command(valkit().args(&list).env("RUST_LOG", "valkit=debug"));
        assert_exit!(r, 1, "uid 3 fails");
        let loaded_ahead: Vec<String> = r
            .stderr
            .lines()
            .filter_map(|l| l.split_once("loading while uid ").map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>().join(" ")))
            .collect();
        (std::fs::read(dir.path(out)).unwrap(), loaded_ahead)
    };
    let (ahead, loaded_ahead) = eval_logged("ahead.parquet", &[]);
    // Evaluations in order: 1 (for 1 and 4), 2, 3, 5. Uid 3's size cannot be told: nothing loads
    // beside it, neither it while 2 computes nor 5 while it does.
    assert_eq!(loaded_ahead, ["1 computes uid=2"], "which workers loaded ahead");
    let (one_at_a_time, none) = eval_logged("one-at-a-time.parquet", &["--no-load-ahead"]);
    assert_eq!(none, Vec::<String>::new());
    let (each_uid, _) = eval_logged("each-uid.parquet", &["--no-load-ahead", "--evaluate-copies"]);
    assert!(ahead == one_at_a_time && ahead == each_uid, "the same table whichever order models load in");
    let by_uid = losses_by_uid(&dir.path("ahead.parquet"));
    assert!(by_uid[&3].iter().all(|r| r.status == losses::Status::Failed));
    assert!(by_uid[&5].iter().all(|r| r.status == losses::Status::Ok), "the model after a failed one is evaluated");
}
