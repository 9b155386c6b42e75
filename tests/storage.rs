use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use valkit::tables::{metagraph, models};

use crate::eval_losses::{good_models, model_row, write_batches};
use crate::fixtures::s3::{S3Server, StallingProxy};
use crate::util::*;

fn start(buckets: &[&str]) -> S3Server {
    S3Server::start(buckets).unwrap_or_else(|e| panic!("the local S3 server (scripts/s3-server.sh, needs node and npm): {e}"))
}

/// valkit pointed at an S3 endpoint, its object journals under `dir`.
fn s3_command(endpoint: &str, dir: &TestDir, args: &[String]) -> std::process::Command {
    let mut cmd = valkit();
    cmd.envs(S3Server::env(endpoint)).env("VALKIT_STATE_DIR", dir.path("state")).args(args);
    cmd
}

fn s3_run(endpoint: &str, dir: &TestDir, args: &[String]) -> Run {
    run_command(&mut s3_command(endpoint, dir, args))
}

/// The eval-losses test models as one competition-1 step, with its metagraph.
fn write_step(dir: &TestDir) {
    let rows: Vec<models::Row> = good_models().iter().map(|(uid, _, path)| model_row(*uid, Some(path))).collect();
    let meta = rows
        .iter()
        .map(|m| metagraph::Row {
            commitment: Some("ns:name:rev:hash:1".into()),
            commit_block: m.commit_block,
            competition_id: Some(1),
            ..metagraph::Row::new(2, m.uid, m.hotkey.clone(), format!("coldkey-{}", m.uid))
        })
        .collect();
    write_table::<models::Models>(&dir.path("models.parquet"), rows, &[]);
    write_table::<metagraph::Metagraph>(&dir.path("metagraph.parquet"), meta, &[]);
    write_batches(dir);
}

fn compute_wins_args(dir: &TestDir, losses: &str, out_dir: &str) -> Vec<String> {
    let competitions = repo_path("testdata/demo/competitions.toml").display().to_string();
    let metagraph = dir.arg("metagraph.parquet");
    args(&[
        "compute-wins",
        "--competitions",
        &competitions,
        "--competition-id",
        "1",
        "--cur-block",
        "200",
        "--metagraph",
        &metagraph,
        "--losses",
        losses,
        "--out-dir",
        out_dir,
    ])
}

#[test]
fn tables_round_trip_through_s3_byte_for_byte_and_resume_there() {
    let server = start(&["tables"]);
    let endpoint = server.endpoint();
    let dir = TestDir::new();
    write_step(&dir);
    let eval_args = |out: &str, extra: &[&str]| {
        let mut command =
            args(&["eval-losses", "--models", &dir.arg("models.parquet"), "--batches", &dir.arg("batches.parquet"), "--out", out]);
        command.extend(args(extra));
        command
    };
    let local = run_owned(&eval_args(&dir.arg("losses.parquet"), &[]));
    assert_eq!(local.code, 0, "{}", local.stderr);
    let remote = s3_run(&endpoint, &dir, &eval_args("s3://tables/step/losses.parquet", &[]));
    assert_eq!(remote.code, 0, "{}", remote.stderr);
    let local_bytes = std::fs::read(dir.path("losses.parquet")).unwrap();
    assert_eq!(server.object("tables", "step/losses.parquet").as_ref(), Some(&local_bytes), "the same table, byte for byte");

    // --resume against the remote output keeps every row and computes nothing again.
    let resumed = s3_run(&endpoint, &dir, &eval_args("s3://tables/step/losses.parquet", &["--resume", "--json"]));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let summary: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(summary["resumed_rows"], summary["rows"], "{summary}");
    assert_eq!(summary["tokens"], 0, "nothing evaluated again: {summary}");
    assert_eq!(server.object("tables", "step/losses.parquet").as_ref(), Some(&local_bytes));

    // compute-wins reads its losses from the store and publishes its set there.
    let local = run_owned(&compute_wins_args(&dir, &dir.arg("losses.parquet"), &dir.arg("step")));
    assert_eq!(local.code, 0, "{}", local.stderr);
    let remote = s3_run(&endpoint, &dir, &compute_wins_args(&dir, "s3://tables/step/losses.parquet", "s3://tables/step/"));
    assert_eq!(remote.code, 0, "{}", remote.stderr);
    for name in ["wins.parquet", "weights.parquet", "tracker.parquet"] {
        let local = std::fs::read(dir.path("step").join(name)).unwrap();
        assert_eq!(server.object("tables", &format!("step/{name}")), Some(local), "{name}");
    }
    let shown = s3_run(&endpoint, &dir, &args(&["inspect", "s3://tables/step/wins.parquet", "--json"]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert_eq!(shown.stdout_text().lines().count(), good_models().len(), "one JSON line per uid");
}

#[test]
fn a_writer_killed_during_an_upload_leaves_the_previous_objects() {
    let server = start(&["tables"]);
    let dir = TestDir::new();
    write_step(&dir);
    let eval = run_owned(&args(&[
        "eval-losses",
        "--models",
        &dir.arg("models.parquet"),
        "--batches",
        &dir.arg("batches.parquet"),
        "--out",
        &dir.arg("losses.parquet"),
    ]));
    assert_eq!(eval.code, 0, "{}", eval.stderr);
    let first = s3_run(&server.endpoint(), &dir, &compute_wins_args(&dir, &dir.arg("losses.parquet"), "s3://tables/step"));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before: Vec<Option<Vec<u8>>> =
        ["wins", "weights", "tracker"].iter().map(|n| server.object("tables", &format!("step/{n}.parquet"))).collect();

    // A re-scoring with other numbers, through a proxy that forwards only the start of the first
    // upload (its headers and a few hundred bytes of the table), killed while it waits.
    let proxy = StallingProxy::start(server.port, 1500);
    let mut rescore = compute_wins_args(&dir, &dir.arg("losses.parquet"), "s3://tables/step");
    rescore.extend(args(&["--epsilon-start", "0.5", "--epsilon-decay-blocks", "10"]));
    let mut child = s3_command(&format!("http://127.0.0.1:{}", proxy.port), &dir, &rescore).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.stalled.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the upload never reached the proxy");
        assert!(child.try_wait().unwrap().is_none(), "compute-wins ended before its upload was cut");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Give the server time to notice the dropped connection and settle.
    std::thread::sleep(Duration::from_millis(500));
    let after: Vec<Option<Vec<u8>>> =
        ["wins", "weights", "tracker"].iter().map(|n| server.object("tables", &format!("step/{n}.parquet"))).collect();
    assert_eq!(after, before, "no object was replaced by a partial upload");
    assert_eq!(server.keys("tables"), ["step/tracker.parquet", "step/weights.parquet", "step/wins.parquet"]);
}

#[test]
fn wrong_credentials_exit_2_and_a_dead_endpoint_exits_4() {
    let server = start(&["tables"]);
    let dir = TestDir::new();
    let (batches, out) = (dir.arg("batches.parquet"), dir.arg("unused.parquet"));
    let inspect = args(&["inspect", "s3://tables/any.parquet"]);
    let wrong = run_command(
        s3_command(&server.endpoint(), &dir, &inspect)
            .env("AWS_ACCESS_KEY_ID", "AKIANOBODY")
            .env("AWS_SECRET_ACCESS_KEY", "hunter2-secret"),
    );
    let stderr = &wrong.stderr;
    assert_eq!(wrong.code, 2, "{stderr}");
    assert!(stderr.contains("s3://tables/any.parquet") && stderr.contains("access denied"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the secret never reaches a message: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let dead = format!("http://127.0.0.1:{}", crate::fixtures::chain::free_port());
    let started = Instant::now();
    let down = s3_run(&dead, &dir, &args(&["eval-losses", "--models", "s3://tables/models.parquet", "--batches", &batches, "--out", &out]));
    assert_eq!(down.code, 4, "{}", down.stderr);
    assert!(down.stderr.contains("unreachable") && down.stderr.contains("s3://tables/models.parquet"), "{}", down.stderr);
    assert!(started.elapsed() < Duration::from_secs(60), "retries are bounded");

    let missing = s3_run(&server.endpoint(), &dir, &inspect);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("no such object"), "{}", missing.stderr);
    let bad = run(&["inspect", "s3://bucket-without-key"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

/// Object-store throughput against the local s3rver: valkit's client (`storage::put`/`get`, the
/// multipart upload every table write uses) against boto3's `put_object`/`get_object` on the same
/// server, 3 alternating rounds of 256 MiB each way. Run alone (it sets AWS_* in this process):
///   VALKIT_BOTO3_PYTHON=python3 cargo test --release --test integration bench_s3_throughput \
///       -- --ignored --nocapture
#[test]
#[ignore = "a benchmark"]
#[allow(clippy::print_stdout)] // a benchmark's report
fn bench_s3_throughput() {
    let server = start(&["bench"]);
    for (key, value) in S3Server::env(&server.endpoint()) {
        std::env::set_var(key, value);
    }
    let size = 256usize << 20;
    let payload: bytes::Bytes = (0..size).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>().into();
    let url = match valkit::storage::ObjectUrl::parse("s3://bench/valkit.bin") {
        Some(Ok(url)) => url,
        _ => unreachable!(),
    };
    #[allow(clippy::disallowed_methods)] // the benchmark's own switch, not a valkit setting
    let python = std::env::var("VALKIT_BOTO3_PYTHON").ok();
    let boto = |op: &str| -> Option<f64> {
        let script = format!(
            "import boto3,time,os\ns3=boto3.client('s3',endpoint_url='{}',aws_access_key_id='S3RVER',aws_secret_access_key='S3RVER',region_name='us-east-1')\n\
             data=bytes((i*31%251) for i in range({size})) if '{op}'=='put' else None\nt=time.perf_counter()\n\
             if '{op}'=='put': s3.put_object(Bucket='bench',Key='boto.bin',Body=data)\nelse: assert len(s3.get_object(Bucket='bench',Key='boto.bin')['Body'].read())=={size}\n\
             print(time.perf_counter()-t)",
            server.endpoint()
        );
        let out = std::process::Command::new(python.as_ref()?).args(["-c", &script]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let mb = size as f64 / 1e6;
    let (mut put, mut get, mut boto_put, mut boto_get) = (vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        let t = Instant::now();
        valkit::storage::put(&url, payload.clone()).unwrap();
        put.push(mb / t.elapsed().as_secs_f64());
        let t = Instant::now();
        assert_eq!(valkit::storage::get(&url, u64::MAX).unwrap().len(), size);
        get.push(mb / t.elapsed().as_secs_f64());
        if let (Some(p), Some(g)) = (boto("put"), boto("get")) {
            boto_put.push(mb / p);
            boto_get.push(mb / g);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    println!("256 MiB objects, local s3rver, 3 rounds (MB/s; every run: put {put:.0?} get {get:.0?} boto3 put {boto_put:.0?} get {boto_get:.0?})");
    println!("valkit put (multipart, 16 MiB parts): median {:.0?}", median(&mut put));
    println!("valkit get: median {:.0?}", median(&mut get));
    println!("boto3 put_object: median {:?}", median(&mut boto_put).map(|v| v.round()));
    println!("boto3 get_object: median {:?}", median(&mut boto_get).map(|v| v.round()));
}
