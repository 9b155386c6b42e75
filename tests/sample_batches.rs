use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};
use valkit::tables::batches;

use crate::fixtures::datasets::{self, DatasetsServer};
use crate::fixtures::s3::S3Server;
use crate::util::*;

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_path("testdata/expected/sample_batches_sn9.json")).unwrap()).unwrap()
}

fn tokenizer() -> String {
    repo_path("testdata/tokenizer").display().to_string()
}

/// `sample-batches` for competition 4 of `profile` against the fixture server, seeded by the
/// reference block hash.
fn fixture_args(server: &DatasetsServer, profile: &str, out: &str) -> Vec<String> {
    let hash = reference()["block_hash"].as_str().unwrap().to_string();
    [
        "sample-batches",
        "--profile",
        profile,
        "--competition-id",
        "4",
        "--block-hash",
        &hash,
        "--datasets-endpoint",
        &server.url,
        "--tokenizer",
        &tokenizer(),
        "--retry-delay",
        "0",
        "-o",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn sn9_args(server: &DatasetsServer, out: &str) -> Vec<String> {
    fixture_args(server, "sn9", out)
}

/// `--json sample-batches … --plan` for `profile`: pages only, one JSON object per task.
fn plan_args(server: &DatasetsServer, profile: &str) -> Vec<String> {
    let mut args = fixture_args(server, profile, "-");
    args.truncate(args.len() - 2);
    args.push("--json".into());
    args.push("--plan".into());
    args
}

/// sha256 of a window as Python's `json.dumps(list)` writes it.
fn window_hash(tokens: &[u32]) -> String {
    let text = format!("[{}]", tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn by_task(path: &Path) -> BTreeMap<String, Vec<batches::Row>> {
    let mut out: BTreeMap<String, Vec<batches::Row>> = BTreeMap::new();
    for row in read_table::<batches::Batches>(path).rows {
        out.entry(row.task.clone()).or_default().push(row);
    }
    out
}

/// A Software Heritage bucket on a local S3 server holding the gzip blobs of every row of the
/// reference's Stack v2 pages.
fn software_heritage() -> S3Server {
    let server = S3Server::start(&["softwareheritage"]).unwrap_or_else(|e| panic!("the local S3 server (scripts/s3-server.sh): {e}"));
    let words = datasets::words();
    let mut blobs = Vec::new();
    for page in reference()["tasks"]["STACKV2_DEDUP"]["pages"].as_array().unwrap() {
        let offset: u64 = page.as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
        for idx in offset..offset + 50 {
            let (key, bytes) = datasets::stack_v2_blob(&words, "default", "train", idx);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &bytes).unwrap();
            blobs.push((key, gz.finish().unwrap()));
        }
    }
    server.put_objects("softwareheritage", blobs);
    server
}

#[test]
fn sn9_windows_match_the_python_reference_all_six_tasks() {
    let server = datasets::start();
    let s3 = software_heritage();
    let dir = TestDir::new();
    let r = run_command(valkit().args(sn9_args(&server, &dir.arg("b.parquet"))).envs(S3Server::env(&s3.endpoint())));
    assert_exit!(r, 0);
    let got = by_task(&dir.path("b.parquet"));
    let expected = reference();
    assert_eq!(got.len(), 6, "every text task sampled, The Stack v2 included");
    for (task, want) in expected["tasks"].as_object().unwrap() {
        let rows = &got[task];
        let hashes: Vec<String> = rows.iter().map(|r| window_hash(&r.token_ids)).collect();
        let want_hashes: Vec<&str> = want["windows_sha256"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
        assert_eq!(hashes, want_hashes, "{task}: windows differ from the reference");
        assert!(rows.iter().all(|r| r.token_ids.len() == 4096 && r.context_len == 0));
        let pages: Vec<&str> = want["pages"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        for row in rows {
            assert!(row.source.split(';').all(|p| pages.contains(&p)), "{task}: {} not among the pages", row.source);
        }
    }
    let meta = read_table::<batches::Batches>(&dir.path("b.parquet")).meta;
    assert_eq!(meta.provenance["seed"], expected["seed"].as_str().unwrap());
    let pages: Vec<String> = serde_json::from_str(&meta.provenance["task.FINEWEB.pages"]).unwrap();
    assert_eq!(
        pages,
        expected["tasks"]["FINEWEB"]["pages"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn stack_v2_without_aws_credentials_is_a_recorded_failure_naming_them() {
    let server = datasets::start();
    let dir = TestDir::new();
    let r = run_owned(&sn9_args(&server, &dir.arg("b.parquet")));
    assert_exit!(r, 1);
    let got = by_task(&dir.path("b.parquet"));
    assert!(!got.contains_key("STACKV2_DEDUP") && got.len() == 5, "the other five tasks are sampled");
    let meta = read_table::<batches::Batches>(&dir.path("b.parquet")).meta;
    let error = &meta.provenance["task.STACKV2_DEDUP.error"];
    assert!(error.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), "{error}");
}

#[test]
fn stack_v2_missing_blobs_are_retried_then_fail_the_task_alone() {
    let server = datasets::start();
    let s3 = S3Server::start(&["softwareheritage"]).unwrap();
    let dir = TestDir::new();
    let r = run_command(valkit().args(sn9_args(&server, &dir.arg("b.parquet"))).envs(S3Server::env(&s3.endpoint())));
    assert_exit!(r, 1);
    let meta = read_table::<batches::Batches>(&dir.path("b.parquet")).meta;
    let error = &meta.provenance["task.STACKV2_DEDUP.error"];
    assert!(error.contains("failed 15 times") && error.contains("no such object"), "{error}");
    assert!(meta.provenance.contains_key("task.PES2OX.pages"), "the other tasks are sampled");
}

#[test]
fn same_seed_gives_byte_identical_batches() {
    let server = datasets::start();
    let dir = TestDir::new();
    // Without AWS credentials: five tasks, The Stack v2 recorded as failed.
    assert_exit!(run_owned(&sn9_args(&server, &dir.arg("a.parquet"))), 1);
    assert_exit!(run_owned(&sn9_args(&server, &dir.arg("b.parquet"))), 1);
    assert!(std::fs::read(dir.path("a.parquet")).unwrap() == std::fs::read(dir.path("b.parquet")).unwrap());
}

#[test]
fn plan_lists_the_reference_pages_without_fetching_rows() {
    let server = datasets::start();
    let r = run_owned(&plan_args(&server, "sn9"));
    assert_exit!(r, 0);
    let plans: Vec<Value> = r.stdout_text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(plans.len(), 6);
    let expected = reference();
    for plan in &plans {
        let task = plan["task"].as_str().unwrap();
        let want = &expected["tasks"][task];
        if want.is_null() {
            let offsets: Vec<u64> = plan["pages"].as_array().unwrap().iter().map(|p| p["offset"].as_u64().unwrap()).collect();
            let want: Vec<u64> = expected["stack_v2_plan"].as_array().unwrap().iter().map(|o| o.as_u64().unwrap()).collect();
            assert_eq!(offsets, want, "{task}");
            continue;
        }
        let dataset = plan["dataset"].as_str().unwrap();
        let names: Vec<String> = plan["pages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{dataset}:{}:{}:{}", p["config"].as_str().unwrap(), p["split"].as_str().unwrap(), p["offset"]))
            .collect();
        let want: Vec<String> = want["pages"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
        assert_eq!(names, want[..names.len()].to_vec(), "{task}");
    }
    assert!(server.switches.log.lock().unwrap().iter().all(|p| !p.starts_with("/rows")), "plan fetched rows");
}

#[test]
fn sn37_plan_matches_finetuning_loaders() {
    let server = datasets::start();
    let r = run_owned(&plan_args(&server, "sn37"));
    assert_exit!(r, 0);
    let expected = &reference()["sn37_plans"];
    for line in r.stdout_text().lines() {
        let plan: Value = serde_json::from_str(line).unwrap();
        let task = plan["task"].as_str().unwrap();
        let page = &plan["pages"][0];
        let name = format!(
            "{}:{}:{}:{}",
            plan["dataset"].as_str().unwrap(),
            page["config"].as_str().unwrap(),
            page["split"].as_str().unwrap(),
            page["offset"]
        );
        assert_eq!(name, expected[task]["pages"][0].as_str().unwrap(), "{task}");
        assert_eq!(plan["initial_offset"], expected[task]["initial_offset"], "{task}");
        assert_eq!(page["length"], 100, "{task}: the server's default page, as upstream's ignored `limit` gets");
    }
}

#[test]
fn rate_limits_are_waited_out_without_changing_the_pages() {
    let server = datasets::start();
    let dir = TestDir::new();
    assert_exit!(run_owned(&sn9_args(&server, &dir.arg("a.parquet"))), 1);
    server.switches.rate_limited_rows.store(5, std::sync::atomic::Ordering::SeqCst);
    assert_exit!(run_owned(&sn9_args(&server, &dir.arg("b.parquet"))), 1);
    assert_eq!(by_task(&dir.path("a.parquet")), by_task(&dir.path("b.parquet")));
}

#[test]
fn a_failing_page_is_replaced_and_recorded() {
    let server = datasets::start();
    let expected = reference();
    let first = expected["tasks"]["FINEWEB"]["pages"][0].as_str().unwrap();
    let offset: u64 = first.rsplit(':').next().unwrap().parse().unwrap();
    server.switches.failing_offsets.lock().unwrap().insert(offset);
    let dir = TestDir::new();
    assert_exit!(run_owned(&sn9_args(&server, &dir.arg("b.parquet"))), 1);
    let meta = read_table::<batches::Batches>(&dir.path("b.parquet")).meta;
    let failed: Vec<String> = serde_json::from_str(&meta.provenance["task.FINEWEB.failed_pages"]).unwrap();
    assert!(failed[0].starts_with(first) && failed[0].contains("HTTP 500"), "{failed:?}");
    let pages: Vec<String> = serde_json::from_str(&meta.provenance["task.FINEWEB.pages"]).unwrap();
    assert!(!pages.contains(&first.to_string()), "the failed page is not used");
    assert_eq!(pages.len(), 15, "a new page was drawn in its place");
}

#[test]
fn a_hanging_page_times_out_and_is_replaced() {
    let server = datasets::start();
    let first = reference()["tasks"]["PES2OX"]["pages"][0].as_str().unwrap().to_string();
    let offset: u64 = first.rsplit(':').next().unwrap().parse().unwrap();
    server.switches.hang_once_offsets.lock().unwrap().insert(offset);
    let dir = TestDir::new();
    let mut args = sn9_args(&server, &dir.arg("b.parquet"));
    args.extend(["--request-timeout".into(), "0.3".into()]);
    assert_exit!(run_owned(&args), 1);
    let meta = read_table::<batches::Batches>(&dir.path("b.parquet")).meta;
    let failed: Vec<String> = serde_json::from_str(&meta.provenance["task.PES2OX.failed_pages"]).unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].starts_with(&first) && failed[0].contains("no answer within"), "{failed:?}");
    // A row-offset loader retries the same page, so once it answers the windows are upstream's.
    let hashes: Vec<String> = by_task(&dir.path("b.parquet"))["PES2OX"].iter().map(|r| window_hash(&r.token_ids)).collect();
    let want: Vec<String> =
        reference()["tasks"]["PES2OX"]["windows_sha256"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect();
    assert_eq!(hashes, want);
}

#[test]
fn a_rate_limit_storm_or_a_dead_endpoint_is_exit_4() {
    let server = datasets::start();
    server.switches.rate_limit_storm.store(true, std::sync::atomic::Ordering::SeqCst);
    let dir = TestDir::new();
    let r = run_owned(&sn9_args(&server, &dir.arg("b.parquet")));
    assert_exit!(r, 4);
    assert!(r.stderr.contains("rate limited"), "{}", r.stderr);
    assert!(!dir.path("b.parquet").exists());
    drop(server);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut args = sn9_args(&datasets::start(), &dir.arg("b.parquet"));
    let at = args.iter().position(|a| a == "--datasets-endpoint").unwrap();
    args[at + 1] = url.clone();
    let r = run_owned(&args);
    assert_exit!(r, 4);
    assert_one_error_line(&r, &url);
}

#[test]
fn an_endpoint_that_cannot_be_a_base_url_is_refused_in_one_line() {
    let dir = TestDir::new();
    for bad in ["mailto:x", "file:///tmp/x", "localhost:8080"] {
        let mut args = sn9_args(&datasets::start(), &dir.arg("b.parquet"));
        let at = args.iter().position(|a| a == "--datasets-endpoint").unwrap();
        args[at + 1] = bad.to_string();
        let r = run_owned(&args);
        assert_bad_input(&r, &format!("the datasets endpoint {bad:?} is not"));
        assert!(!dir.path("b.parquet").exists());
    }
}

#[test]
fn malformed_rows_fail_every_task_with_a_clear_error() {
    let server = datasets::start();
    server.switches.malformed_rows.store(true, std::sync::atomic::Ordering::SeqCst);
    let dir = TestDir::new();
    let r = run_owned(&sn9_args(&server, &dir.arg("b.parquet")));
    assert_bad_input(&r, "malformed response: no rows list");
}

#[test]
fn bad_tokenizer_and_missing_seed_are_refused() {
    let server = datasets::start();
    let dir = TestDir::new();
    std::fs::write(dir.path("tokenizer.json"), "{ not json").unwrap();
    let mut args = sn9_args(&server, &dir.arg("b.parquet"));
    let at = args.iter().position(|a| a == "--tokenizer").unwrap();
    args[at + 1] = dir.arg("tokenizer.json");
    assert_bad_input(&run_owned(&args), "tokenizer.json is not a tokenizer.json that parses");
    let r = run(&["sample-batches", "--profile", "sn9", "--competition-id", "4", "-o", &dir.arg("b.parquet")]);
    assert_exit!(r, 2);
    // A metagraph without the sync block hash (not written by sync-metadata) cannot seed anything.
    let args = [
        "sample-batches",
        "--profile",
        "sn9",
        "--competition-id",
        "4",
        "--metagraph",
        &demo("subnet-metagraph.parquet"),
        "--tokenizer",
        &tokenizer(),
        "-o",
        &dir.arg("b.parquet"),
    ];
    assert_bad_input(&run(&args), "no `valkit.sync_block_hash` metadata");
}

#[test]
fn local_corpora_give_the_same_bytes_from_any_directory() {
    let dir = TestDir::new();
    let profile = repo_path("testdata/demo/competitions.toml");
    let args = |out: &str| {
        vec![
            "sample-batches".to_string(),
            "--competitions".into(),
            profile.display().to_string(),
            "--competition-id".into(),
            "1".into(),
            "--seed".into(),
            "42".into(),
            "--tokenizer".into(),
            tokenizer(),
            "-o".into(),
            out.to_string(),
        ]
    };
    let refs = |a: &[String]| a.iter().map(String::clone).collect::<Vec<_>>();
    let first = refs(&args(&dir.arg("a.parquet")));
    let out = valkit().args(&first).current_dir(repo_path(".")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let second = refs(&args(&dir.arg("b.parquet")));
    let out = valkit().args(&second).current_dir(dir.path("")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(dir.path("a.parquet")).unwrap() == std::fs::read(dir.path("b.parquet")).unwrap());
    let rows = read_table::<batches::Batches>(&dir.path("a.parquet")).rows;
    assert_eq!(rows.len(), 16, "8 windows per task, as the demo profile keeps");
    assert!(rows.iter().all(|r| r.token_ids.len() == 256 && r.source.starts_with("corpora/")));
}

#[test]
fn batches_stream_to_stdout() {
    let profile = repo_path("testdata/demo/competitions.toml").display().to_string();
    let r = run(&[
        "sample-batches",
        "--competitions",
        &profile,
        "--competition-id",
        "1",
        "--seed",
        "42",
        "--tokenizer",
        &tokenizer(),
        "-o",
        "-",
    ]);
    assert_exit!(r, 0);
    assert_eq!(&r.stdout[..4], b"PAR1", "stdout carries the Parquet file");
}

#[test]
fn sn37_samples_match_the_python_reference() {
    let server = datasets::start();
    let dir = TestDir::new();
    let r = run_owned(&fixture_args(&server, "sn37", &dir.arg("b.parquet")));
    assert_exit!(r, 0);
    let got = by_task(&dir.path("b.parquet"));
    let file = read_table::<batches::Batches>(&dir.path("b.parquet"));
    for (task, want) in reference()["sn37_batches"].as_object().unwrap() {
        let rows = &got[task];
        let want_samples = want["samples"].as_array().unwrap();
        assert_eq!(rows.len(), want_samples.len(), "{task}: number of samples");
        for (row, w) in rows.iter().zip(want_samples) {
            assert_eq!(row.source, w["source"].as_str().unwrap(), "{task}");
            assert_eq!(u64::from(row.context_len), w["context_len"].as_u64().unwrap(), "{task} {}", row.source);
            assert_eq!(window_hash(&row.token_ids), w["sha256"].as_str().unwrap(), "{task} {}", row.source);
        }
        let pages: Vec<String> = serde_json::from_str(&file.meta.provenance[&format!("task.{task}.pages")]).unwrap();
        assert_eq!(pages, want["pages"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect::<Vec<_>>(), "{task}");
    }
}

#[test]
fn parquet_corpora_sample_like_jsonl() {
    let dir = TestDir::new();
    for dataset in ["web", "math"] {
        let source = repo_path(&format!("testdata/demo/corpora/{dataset}"));
        std::fs::create_dir_all(dir.path(&format!("corpora/{dataset}"))).unwrap();
        for entry in std::fs::read_dir(&source).unwrap() {
            let path = entry.unwrap().path();
            let texts: Vec<String> = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["text"].as_str().unwrap().to_string())
                .collect();
            let ids: Vec<i64> = (0..texts.len() as i64).collect();
            let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
                arrow::datatypes::Field::new("text", arrow::datatypes::DataType::Utf8, false),
            ]));
            let batch = arrow::array::RecordBatch::try_new(
                schema,
                vec![std::sync::Arc::new(arrow::array::Int64Array::from(ids)), std::sync::Arc::new(arrow::array::StringArray::from(texts))],
            )
            .unwrap();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            write_foreign(&dir.path(&format!("corpora/{dataset}/{stem}.parquet")), &batch, &[]);
        }
    }
    std::fs::copy(repo_path("testdata/demo/competitions.toml"), dir.path("competitions.toml")).unwrap();
    let args = |profile: String, out: String| {
        vec![
            "sample-batches".to_string(),
            "--competitions".into(),
            profile,
            "--competition-id".into(),
            "1".into(),
            "--seed".into(),
            "7".into(),
            "--tokenizer".into(),
            tokenizer(),
            "-o".into(),
            out,
        ]
    };
    assert_exit!(run_owned(&args(repo_path("testdata/demo/competitions.toml").display().to_string(), dir.arg("jsonl.parquet"))), 0);
    assert_exit!(run_owned(&args(dir.arg("competitions.toml"), dir.arg("parquet.parquet"))), 0);
    assert_eq!(by_task(&dir.path("jsonl.parquet")), by_task(&dir.path("parquet.parquet")));
}
