//! `fetch-models` against the local hub: every row status and reason, checks made before the
//! weights are downloaded, the secure hash against the Python restatement, the shared cache
//! (one download per snapshot, copy-cat blobs stored once, no request on a warm cache),
//! offline mode, dead and rate-limiting hubs, an interrupted download, `gc`, and an in-step
//! uid whose model failed reaching `compute-wins` with score inf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use valkit::tables::{batches, metagraph, models, wins};

use crate::fixtures::hub::{self, HubServer};
use crate::util::*;

const BLOCK: u64 = 10_000;

/// A test subnet: its own cache, a hub fixture, and the competitions of `PROFILE`.
struct Subnet {
    dir: TestDir,
    hub: HubServer,
    rows: Vec<metagraph::Row>,
    /// What `commit` served, by repository.
    served: Vec<(String, BTreeMap<String, Vec<u8>>)>,
}

const PROFILE: &str = r#"
name = "fetch-test"
netuid = 7
[subnet]
alpha = 0.5
sample_min = 2
weights_version_key = 1
sync_cadence = 100

[[schedule]]
block = 0
competitions = [
  { competition = "A", reward = 0.4 }, { competition = "SMALL", reward = 0.2 },
  { competition = "LARGE", reward = 0.2 }, { competition = "MISTRAL", reward = 0.2 },
]

[task_sets]
WEB = [{ name = "WEB", method = "text-loss", weight = 1.0, pages = 1, dataset = { loader = "local", name = "web", rows_per_page = 20 } }]

[competitions.A]
id = 1
min_params = 100_000
max_params = 200_000
max_bytes = 1_000_000
tokenizer = "tok/shared"
architectures = ["LlamaForCausalLM"]
eval_block_delay = 100
epsilon = { kind = "fixed", value = 0.005 }
weighting = { kind = "softmax", temperature = 0.01 }
tasks = "WEB"

[competitions.SMALL]
id = 2
max_params = 150_000
max_bytes = 1_000_000
architectures = ["LlamaForCausalLM"]
eval_block_delay = 100
epsilon = { kind = "fixed", value = 0.005 }
weighting = { kind = "softmax", temperature = 0.01 }
tasks = "WEB"

[competitions.LARGE]
id = 3
min_params = 170_000
max_params = 300_000
max_bytes = 1_000_000
architectures = ["LlamaForCausalLM"]
eval_block_delay = 100
epsilon = { kind = "fixed", value = 0.005 }
weighting = { kind = "softmax", temperature = 0.01 }
tasks = "WEB"

[competitions.MISTRAL]
id = 4
max_params = 300_000
max_bytes = 1_000_000
architectures = ["MistralForCausalLM"]
eval_block_delay = 100
epsilon = { kind = "fixed", value = 0.005 }
weighting = { kind = "softmax", temperature = 0.01 }
tasks = "WEB"
"#;

/// The tiny Llama (159,040 parameters) with a tokenizer and files the hash must not cover.
fn llama_files() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for f in ["config.json", "generation_config.json", "model.safetensors"] {
        files.insert(f.to_string(), std::fs::read(repo_path(&format!("testdata/models/llama/{f}"))).unwrap());
    }
    files.insert("tokenizer.json".into(), std::fs::read(repo_path("testdata/tokenizer/tokenizer.json")).unwrap());
    files.insert("README.md".into(), b"# a model card the hash does not cover\n".to_vec());
    files.insert(".gitattributes".into(), b"*.safetensors filter=lfs\n".to_vec());
    files
}

/// The model hash of a repository's files: everything but README.md and .gitattributes.
fn model_hash(dir: &TestDir, files: &BTreeMap<String, Vec<u8>>) -> String {
    let src = dir.path(&format!("src-{}", hub::commit_of(&format!("{files:?}"))));
    let mut names = Vec::new();
    for (name, content) in files {
        if name == "README.md" || name == ".gitattributes" {
            continue;
        }
        std::fs::create_dir_all(src.join(name).parent().unwrap()).unwrap();
        std::fs::write(src.join(name), content).unwrap();
        names.push(name.clone());
    }
    valkit::hub::hash::hash_of_files(&src, &names).unwrap()
}

fn hotkey(uid: u16) -> String {
    format!("5Hotkey{uid:03}")
}

impl Subnet {
    fn new() -> Self {
        let dir = TestDir::new();
        std::fs::write(dir.path("profile.toml"), PROFILE).unwrap();
        let hub = hub::start();
        let tokenizer = std::fs::read(repo_path("testdata/tokenizer/tokenizer.json")).unwrap();
        hub.add("tok/shared", &hub::commit_of("tokenizer"), [("tokenizer.json".to_string(), tokenizer)].into());
        Self { dir, hub, rows: Vec::new(), served: Vec::new() }
    }

    fn profile(&self) -> String {
        self.dir.arg("profile.toml")
    }

    /// Serves `files` as `repo@commit` and commits it for `uid` to `competition`, with the
    /// secure hash an honest miner would compute (or `secure` when given).
    fn commit(
        &mut self,
        uid: u16,
        repo: &str,
        files: &BTreeMap<String, Vec<u8>>,
        competition: u16,
        block: u64,
        secure: Option<&str>,
    ) -> String {
        let commit = hub::commit_of(&format!("{repo}{files:?}"));
        self.hub.add(repo, &commit, files.clone());
        self.served.push((repo.to_string(), files.clone()));
        let secure = secure
            .map(str::to_string)
            .unwrap_or_else(|| valkit::chain::commitment::secure_hash(&model_hash(&self.dir, files), &hotkey(uid)));
        self.commit_raw(uid, repo, &commit, &secure, competition, block);
        commit
    }

    fn commit_raw(&mut self, uid: u16, repo: &str, commit: &str, secure: &str, competition: u16, block: u64) {
        let (ns, name) = repo.split_once('/').unwrap();
        let mut row = bare_row(uid);
        row.commitment = Some(format!("{ns}:{name}:{commit}:{secure}:{competition}"));
        row.commit_block = Some(block);
        row.repo_namespace = Some(ns.into());
        row.repo_name = Some(name.into());
        row.revision = Some(commit.into());
        row.secure_hash = Some(secure.into());
        row.competition_id = Some(competition);
        self.rows.push(row);
    }

    fn write_metagraph(&self) -> String {
        let path = self.dir.path("metagraph.parquet");
        write_table::<metagraph::Metagraph>(&path, self.rows.clone(), &[("block", &BLOCK.to_string())]);
        path.display().to_string()
    }

    /// `fetch-models --all` under this subnet's profile.
    fn command(&self, extra: &[&str]) -> Command {
        let profile = self.profile();
        let mut args = vec!["--competitions", profile.as_str(), "--all"];
        args.extend(extra);
        self.command_with(&args)
    }

    fn command_with(&self, extra: &[&str]) -> Command {
        let mut cmd = valkit();
        cmd.env_remove("HF_HUB_OFFLINE")
            .env("HF_ENDPOINT", &self.hub.url)
            .env("HF_HUB_CACHE", self.dir.path("cache"))
            .env("HF_HOME", self.dir.path("hf-home"));
        cmd.args(["fetch-models", "--metagraph", &self.write_metagraph(), "--out", &self.dir.arg("models.parquet")]).args(extra);
        cmd
    }

    fn fetch(&self, extra: &[&str]) -> Run {
        output(self.command(extra))
    }

    /// The bytes `repo` serves as `file` (its only commit).
    fn hub_file(&self, repo: &str, file: &str) -> Vec<u8> {
        self.served.iter().find(|(r, _)| r == repo).map(|(_, files)| files[file].clone()).expect("a served repository")
    }

    fn models(&self) -> BTreeMap<u16, models::Row> {
        read_table::<models::Models>(&self.dir.path("models.parquet")).rows.into_iter().map(|r| (r.uid, r)).collect()
    }
}

fn output(mut cmd: Command) -> Run {
    let out = cmd.output().expect("valkit runs");
    Run { code: out.status.code().expect("exit code"), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn bare_row(uid: u16) -> metagraph::Row {
    metagraph::Row { registration_block: 1, ..metagraph::Row::new(7, uid, hotkey(uid), format!("5Cold{uid}")) }
}

fn reason_code(row: &models::Row) -> &str {
    row.reason.as_deref().unwrap_or("").split(':').next().unwrap()
}

fn with(mut files: BTreeMap<String, Vec<u8>>, name: &str, content: Vec<u8>) -> BTreeMap<String, Vec<u8>> {
    files.insert(name.to_string(), content);
    files
}

fn without(mut files: BTreeMap<String, Vec<u8>>, name: &str) -> BTreeMap<String, Vec<u8>> {
    files.remove(name);
    files
}

/// Whether valkit put `repo`'s weights in its snapshot (downloaded or linked).
fn has_weights(s: &Subnet, repo: &str) -> bool {
    let snapshots = s.dir.path(&format!("cache/models--{}/snapshots", repo.replace('/', "--")));
    std::fs::read_dir(snapshots).map(|d| d.flatten().any(|e| e.path().join("model.safetensors").exists())).unwrap_or(false)
}

#[test]
fn every_status_and_reason() {
    let mut s = Subnet::new();
    let llama = llama_files();
    let old = BLOCK - 500;
    let ok_commit = s.commit(0, "miner/ok", &llama, 1, old, None);
    s.commit(1, "miner/big", &with(llama.clone(), "data.txt", vec![b'x'; 600_000]), 1, old, None);
    s.commit(2, "miner/ok", &llama, 2, old, None); // 159,040 > SMALL's 150,000
    s.commit(3, "miner/ok", &llama, 3, old, None); // 159,040 < LARGE's 170,000
    let huge = br#"{"model_type":"llama","architectures":["LlamaForCausalLM"],"vocab_size":2000000,"hidden_size":65536,"intermediate_size":262144,"num_hidden_layers":1024,"num_attention_heads":512,"max_position_embeddings":4096}"#;
    s.commit(4, "miner/huge", &with(llama.clone(), "config.json", huge.to_vec()), 1, old, None);
    let pickle_only = with(without(llama.clone(), "model.safetensors"), "pytorch_model.bin", b"\x80\x02}q\x00.".to_vec());
    s.commit(5, "miner/pickle", &pickle_only, 1, old, None);
    let mut renamed = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00".to_vec();
    renamed.resize(4096, 0);
    s.commit(6, "miner/renamed", &with(llama.clone(), "model.safetensors", renamed), 1, old, None);
    let mut oversized = (1u64 << 40).to_le_bytes().to_vec();
    oversized.resize(4096, b' ');
    s.commit(7, "miner/header", &with(llama.clone(), "model.safetensors", oversized), 1, old, None);
    s.commit(8, "miner/ok", &llama, 1, old, Some("bm90IHRoZSBoYXNoIG9mIHRoaXMgbW9kZWwgYXQgYWxsIQ=="));
    s.commit_raw(9, "miner/ok", &hub::commit_of("never pushed"), "x", 1, old);
    let mystery = String::from_utf8(llama["config.json"].clone()).unwrap().replace("\"llama\"", "\"mystery\"");
    s.commit(10, "miner/mystery", &with(llama.clone(), "config.json", mystery.into_bytes()), 1, old, None);
    s.commit(11, "miner/ok", &llama, 9, old, None); // competition 9 is not scheduled
    s.commit(12, "miner/ok", &llama, 1, BLOCK - 20, None); // eval delay 100
    s.commit(13, "miner/ok", &llama, 1, old, None); // same repo@commit as uid 0, another hotkey
    let copycat_commit = s.commit(14, "copycat/same", &with(llama.clone(), "README.md", b"# mine!\n".to_vec()), 1, old, None);
    s.rows.push(bare_row(15));
    s.commit(16, "miner/ok", &llama, 4, old, None); // Llama in the Mistral competition

    let r = s.fetch(&[]);
    assert_exit!(r, 1);
    let rows = s.models();
    let expect = [
        (0, models::Status::Ok, ""),
        (1, models::Status::Rejected, "too-large"),
        (2, models::Status::Rejected, "parameter-count"),
        (3, models::Status::Rejected, "parameter-count"),
        (4, models::Status::Rejected, "parameter-count"),
        (5, models::Status::Rejected, "pickle-file"),
        (6, models::Status::Rejected, "pickle-file"),
        (7, models::Status::Rejected, "not-safetensors"),
        (8, models::Status::Rejected, "hash-mismatch"),
        (9, models::Status::Failed, "not-found"),
        (10, models::Status::Rejected, "unknown-architecture"),
        (11, models::Status::Skipped, "competition-inactive"),
        (12, models::Status::Skipped, "too-recent"),
        (13, models::Status::Ok, ""),
        (14, models::Status::Ok, ""),
        (15, models::Status::Skipped, "no-commitment"),
        (16, models::Status::Rejected, "architecture-not-allowed"),
    ];
    for (uid, status, code) in expect {
        let row = &rows[&uid];
        assert_eq!((row.status, reason_code(row)), (status, code), "uid {uid}: {:?}", row.reason);
    }
    assert_eq!(rows.len(), expect.len());
    let ok = &rows[&0];
    assert_eq!((ok.n_params, ok.architecture.as_deref(), ok.in_step), (Some(159_040), Some("LlamaForCausalLM"), true));
    assert!(!rows[&12].in_step);

    // Rejected before any weights were downloaded: the huge config, the pickles, the bad header.
    for repo in ["miner/huge", "miner/pickle", "miner/renamed", "miner/header", "miner/mystery", "miner/big"] {
        assert!(!has_weights(&s, repo), "{repo}'s weights were downloaded");
    }
    for repo in ["miner/renamed", "miner/header"] {
        let content = &s.hub_file(repo, "model.safetensors");
        assert_eq!(blob_gets(&s.hub, content), 0, "{repo}'s weights were downloaded");
    }
    // Two hotkeys, one repo@commit, and a copy-cat's identical weights in another repository:
    // downloaded once, stored once (one inode).
    assert_eq!(blob_gets(&s.hub, &llama["model.safetensors"]), 1, "{:#?}", s.hub.switches.log.lock().unwrap());
    let original = PathBuf::from(ok.local_path.as_ref().unwrap()).join("model.safetensors");
    let copy = PathBuf::from(rows[&14].local_path.as_ref().unwrap()).join("model.safetensors");
    assert!(copy.ends_with(format!("models--copycat--same/snapshots/{copycat_commit}/model.safetensors")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&original).unwrap().ino(), std::fs::metadata(&copy).unwrap().ino());
    }
    // The snapshot holds exactly the hashed files, pinned to the commit.
    let snapshot = PathBuf::from(ok.local_path.as_ref().unwrap());
    assert!(snapshot.ends_with(format!("models--miner--ok/snapshots/{ok_commit}")));
    let mut names: Vec<String> =
        std::fs::read_dir(&snapshot).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]);
}

#[test]
fn the_secure_hash_matches_the_python_restatement_and_a_warm_cache_asks_nothing() {
    let mut s = Subnet::new();
    let llama = llama_files();
    s.commit(0, "miner/ok", &llama, 1, BLOCK - 500, None);
    s.commit(1, "miner/ok", &llama, 1, BLOCK - 400, None);
    let cold = s.fetch(&["--json"]);
    assert_exit!(cold, 0);
    let summary: serde_json::Value = serde_json::from_slice(&cold.stdout).unwrap();
    let weights_bytes = llama["model.safetensors"].len() as u64;
    assert_eq!(summary["bytes_downloaded"].as_u64().unwrap(), model_bytes(&llama));
    assert!(s.hub.body_bytes() < weights_bytes + 70_000, "downloaded {} bytes", s.hub.body_bytes());
    let cold_requests = s.hub.requests();
    assert!(cold_requests > 0);

    let rows = s.models();
    let snapshot = rows[&0].local_path.clone().unwrap();
    let python =
        Command::new("python3").arg(repo_path("scripts/snapshot_hash.py")).arg(&snapshot).arg(hotkey(0)).output().expect("python3 runs");
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));
    let lines: Vec<String> = String::from_utf8(python.stdout).unwrap().lines().map(String::from).collect();
    assert_eq!(lines[0], model_hash(&s.dir, &llama));
    assert_eq!(Some(lines[1].as_str()), s.rows[0].secure_hash.as_deref());

    // The competition's tokenizer is in the cache at `main`, where sample-batches looks.
    let tokenizer = s.dir.path("cache/models--tok--shared");
    let main = std::fs::read_to_string(tokenizer.join("refs/main")).unwrap();
    assert!(tokenizer.join("snapshots").join(main.trim()).join("tokenizer.json").is_file());

    let warm = s.fetch(&["--json"]);
    assert_exit!(warm, 0);
    assert_eq!(s.hub.requests(), cold_requests, "a warm run asked the hub: {:?}", &s.hub.switches.log.lock().unwrap()[cold_requests..]);
    let summary: serde_json::Value = serde_json::from_slice(&warm.stdout).unwrap();
    assert_eq!((summary["snapshots_cached"].as_u64(), summary["bytes_downloaded"].as_u64()), (Some(1), Some(0)));
    assert_eq!(s.models(), rows);

    // Offline: the verified snapshot is fine; a model never fetched is a failed row.
    s.commit(2, "other/model", &with(llama.clone(), "extra.json", b"{}".to_vec()), 1, BLOCK - 500, None);
    let offline = output({
        let mut c = s.command(&[]);
        c.env("HF_HUB_OFFLINE", "1");
        c
    });
    assert_exit!(offline, 1);
    let rows = s.models();
    assert_eq!(rows[&0].status, models::Status::Ok);
    assert_eq!((rows[&2].status, reason_code(&rows[&2])), (models::Status::Failed, "offline"));
    assert_eq!(s.hub.requests(), cold_requests);
}

fn model_bytes(files: &BTreeMap<String, Vec<u8>>) -> u64 {
    files.iter().filter(|(n, _)| *n != "README.md" && *n != ".gitattributes").map(|(_, c)| c.len() as u64).sum()
}

#[test]
fn a_dead_or_rate_limiting_hub_is_exit_4_and_a_failing_repo_is_one_row() {
    let mut s = Subnet::new();
    let llama = llama_files();
    s.commit(0, "miner/ok", &llama, 1, BLOCK - 500, None);
    s.commit(1, "miner/broken", &with(llama.clone(), "x.json", b"{}".to_vec()), 1, BLOCK - 500, None);

    *s.hub.switches.failing_repo.lock().unwrap() = Some("miner/broken".into());
    let r = s.fetch(&[]);
    assert_exit!(r, 1);
    let rows = s.models();
    assert_eq!(rows[&0].status, models::Status::Ok);
    assert_eq!((rows[&1].status, reason_code(&rows[&1])), (models::Status::Failed, "hub-error"));

    std::fs::remove_file(s.dir.path("models.parquet")).unwrap();
    std::fs::remove_dir_all(s.dir.path("cache")).unwrap();
    *s.hub.switches.rate_limit_storm.lock().unwrap() = Some(1);
    let r = s.fetch(&["--max-rate-limit-wait", "2"]);
    assert_exit!(r, 4);
    assert_one_error_line(&r, "429");
    assert!(!s.dir.path("models.parquet").exists());

    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let r = output({
        let mut c = s.command(&["--request-timeout", "5"]);
        c.env("HF_ENDPOINT", format!("http://{dead}"));
        c
    });
    assert_exit!(r, 4);
    assert_one_error_line(&r, "unreachable");
}

#[test]
fn a_download_killed_halfway_is_completed_by_the_next_run() {
    let mut s = Subnet::new();
    let llama = llama_files();
    s.commit(0, "miner/ok", &llama, 1, BLOCK - 500, None);
    *s.hub.switches.stall_file.lock().unwrap() = Some("model.safetensors".into());
    let mut child = s.command(&[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    while blob_gets(&s.hub, &llama["model.safetensors"]) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!s.dir.path("models.parquet").exists());

    *s.hub.switches.stall_file.lock().unwrap() = None;
    let r = s.fetch(&[]);
    assert_exit!(r, 0);
    assert_eq!(s.models()[&0].status, models::Status::Ok);
}

#[test]
fn gc_frees_what_the_latest_models_table_does_not_use() {
    let mut s = Subnet::new();
    let llama = llama_files();
    s.commit(0, "miner/first", &llama, 1, BLOCK - 500, None);
    s.commit(1, "miner/second", &with(llama.clone(), "generation_config.json", b"{}".to_vec()), 1, BLOCK - 500, None);
    let r = s.fetch(&[]);
    assert_exit!(r, 0, "{:?}", s.models());
    // Miner 1 is gone from the next metagraph.
    s.rows.truncate(1);
    assert_exit!(s.fetch(&[]), 0);
    let gc = |args: &[&str]| {
        let mut c = valkit();
        c.env("HF_HUB_CACHE", s.dir.path("cache")).args(["gc", "--json"]).args(args);
        let r = output(c);
        assert_exit!(r, 0);
        serde_json::from_slice::<serde_json::Value>(&r.stdout).unwrap()
    };
    let second = s.dir.path("cache/models--miner--second");
    assert_eq!(gc(&["--dry-run"])["removed"].as_array().unwrap().len(), 0, "within the grace period");
    let dry = gc(&["--dry-run", "--grace", "0"]);
    assert_eq!(dry["removed"].as_array().unwrap().len(), 1);
    assert!(dry["freed_bytes"].as_u64().unwrap() > 600_000);
    assert!(second.exists());
    gc(&["--grace", "0"]);
    assert!(!second.exists());
    assert!(Path::new(s.models()[&0].local_path.as_ref().unwrap()).join("model.safetensors").exists());
}

#[test]
fn an_in_step_model_that_failed_scores_inf_with_its_commit_block() {
    let mut s = Subnet::new();
    let demo = demo("competitions.toml");
    s.commit(0, "miner/ok", &llama_files(), 1, BLOCK - 500, None);
    s.commit_raw(1, "miner/gone", &hub::commit_of("gone"), "x", 1, BLOCK - 300);
    let meta = s.write_metagraph();
    // No --all and no tracker: both uids are new, so both are in the step.
    let r = output(s.command_with(&["--competitions", &demo]));
    assert_exit!(r, 1);
    let rows = s.models();
    assert_eq!((rows[&1].in_step, rows[&1].status), (true, models::Status::Failed));
    assert_eq!(rows[&0].step_reason.as_deref(), Some("new"));

    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path("testdata/models/reference.json")).unwrap()).unwrap();
    let batch_rows = reference["batches"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .enumerate()
        .map(|(i, b)| batches::Row {
            competition_id: 1,
            task: "WEB".into(),
            batch_index: i as u32,
            token_ids: b["token_ids"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect(),
            context_len: 0,
            source: format!("fixture:{i}"),
        })
        .collect();
    write_table::<batches::Batches>(&s.dir.path("batches.parquet"), batch_rows, &[]);
    let losses = s.dir.arg("losses.parquet");
    let r = run(&["eval-losses", "--models", &s.dir.arg("models.parquet"), "--batches", &s.dir.arg("batches.parquet"), "--out", &losses]);
    assert_exit!(r, 1);
    let r = run(&[
        "compute-wins",
        "--competitions",
        &demo,
        "--competition-id",
        "1",
        "--metagraph",
        &meta,
        "--losses",
        &losses,
        "--out-dir",
        &s.dir.arg("step"),
    ]);
    assert_exit!(r, 0);
    let wins = read_table::<wins::Wins>(&s.dir.path("step/wins.parquet")).rows;
    let failed = wins.iter().find(|w| w.uid == 1).expect("the failed uid is in the step");
    assert_eq!((failed.score, failed.commit_block), (f64::INFINITY, Some(BLOCK - 300)));
    let ok = wins.iter().find(|w| w.uid == 0).unwrap();
    assert!(ok.score.is_finite());
}

/// A safetensors file of one F32 tensor of `elements` zeros.
fn safetensors_of(elements: usize) -> Vec<u8> {
    let mut header =
        format!(r#"{{"model.embed_tokens.weight":{{"dtype":"F32","shape":[{elements}],"data_offsets":[0,{}]}}}}"#, elements * 4)
            .into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.resize(out.len() + elements * 4, 0);
    out
}

/// Not a test: download throughput against the local hub and the request counts of a cold and a
/// warm run; with VALKIT_HF_PYTHON (an interpreter with huggingface_hub), the same work done the
/// way upstream does it (`scripts/bench/fetch_python.py`), each run side by side.
/// `VALKIT_HF_PYTHON=python3 cargo test --release --test integration bench_fetch_throughput -- --ignored --nocapture`
#[test]
#[ignore]
#[allow(clippy::print_stdout)] // a benchmark's report
fn bench_fetch_throughput() {
    let profile = PROFILE.replace("max_params = 200_000\nmax_bytes = 1_000_000", "max_params = 1_000_000_000\nmax_bytes = 10_000_000_000");
    let weights = safetensors_of(64 << 20); // 256 MiB
    let files = with(llama_files(), "model.safetensors", weights);
    let hashed = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"];
    #[allow(clippy::disallowed_methods)] // the benchmark's own switch, not a valkit setting
    let python = std::env::var("VALKIT_HF_PYTHON").ok();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for run in 0..3 {
        let mut s = Subnet::new();
        std::fs::write(s.dir.path("profile.toml"), &profile).unwrap();
        let repo = format!("bench/model{run}");
        let commit = s.commit(0, &repo, &files, 1, BLOCK - 500, None);
        let started = std::time::Instant::now();
        let cold = s.fetch(&["--json"]);
        let seconds = started.elapsed().as_secs_f64();
        assert_exit!(cold, 0);
        let summary: serde_json::Value = serde_json::from_slice(&cold.stdout).unwrap();
        let bytes = summary["bytes_downloaded"].as_u64().unwrap();
        let cold_requests = s.hub.requests();
        assert_exit!(s.fetch(&[]), 0);
        let warm_requests = s.hub.requests() - cold_requests;
        let rate = bytes as f64 / 1e6 / seconds;
        println!("run {run}: valkit {bytes} bytes in {seconds:.2} s = {rate:.0} MB/s (whole command); requests: cold {cold_requests}, warm {warm_requests}");
        ours.push(rate);
        if let Some(python) = &python {
            let started = std::time::Instant::now();
            let out = Command::new(python)
                .arg(repo_path("scripts/bench/fetch_python.py"))
                .args([s.hub.url.as_str(), repo.as_str(), commit.as_str()])
                .arg(s.dir.path("python-cache"))
                .args(hashed)
                .env("HF_HOME", s.dir.path("python-home"))
                .output()
                .unwrap();
            let seconds = started.elapsed().as_secs_f64();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), model_hash(&s.dir, &files), "the same files were hashed");
            let rate = bytes as f64 / 1e6 / seconds;
            println!("run {run}: huggingface_hub {bytes} bytes in {seconds:.2} s = {rate:.0} MB/s (whole process)");
            theirs.push(rate);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ours = median(&mut ours);
    println!("median valkit {ours:.0} MB/s");
    if !theirs.is_empty() {
        let theirs = median(&mut theirs);
        println!("median huggingface_hub {theirs:.0} MB/s; ratio {:.2}x", ours / theirs);
    }
}

/// The tiny Llama's weights split over two shards with an index, as `save_pretrained` shards.
fn sharded_llama_files() -> BTreeMap<String, Vec<u8>> {
    let mut files = llama_files();
    let weights = files.remove("model.safetensors").unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&weights).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(str::to_string).collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (i, part) in [first, second].into_iter().enumerate() {
        let shard = format!("model-{:05}-of-00002.safetensors", i + 1);
        let views: Vec<(String, safetensors::tensor::TensorView)> = part.iter().map(|n| (n.clone(), tensors.tensor(n).unwrap())).collect();
        files.insert(shard.clone(), safetensors::serialize(views, None).unwrap());
        for n in part {
            weight_map.insert(n.clone(), serde_json::Value::String(shard.clone()));
        }
    }
    let index = serde_json::json!({ "metadata": { "total_size": weights.len() }, "weight_map": weight_map });
    files.insert("model.safetensors.index.json".into(), index.to_string().into_bytes());
    files
}

/// Full-body GETs of the blob with this content, on either listener (ranges excluded).
fn blob_gets(hub: &HubServer, content: &[u8]) -> usize {
    let sha = hub::etag_of(content);
    hub.switches.log.lock().unwrap().iter().filter(|l| l.starts_with("CDN GET") && l.contains(&sha) && !l.contains("[bytes=")).count()
}

#[test]
fn lfs_xet_and_plain_files_come_through_the_hubs_redirects_and_the_token_stays_on_the_hub() {
    let mut s = Subnet::new();
    let llama = llama_files();
    let old = BLOCK - 500;
    s.commit(0, "miner/lfs", &llama, 1, old, None);
    // The same model stored as Xet in another repository (its config differs, so its hash does).
    let xet_files = with(llama.clone(), "generation_config.json", b"{\"xet\": true}".to_vec());
    let xet_commit = hub::commit_of("xet model");
    s.hub.add_xet("miner/xet", &xet_commit, xet_files.clone());
    let secure = valkit::chain::commitment::secure_hash(&model_hash(&s.dir, &xet_files), &hotkey(1));
    s.commit_raw(1, "miner/xet", &xet_commit, &secure, 1, old);
    let sharded = sharded_llama_files();
    s.commit(2, "miner/sharded", &sharded, 1, old, None);
    let mut cmd = s.command(&["--json"]);
    cmd.env("HF_TOKEN", "hf_test_token_that_must_stay_on_the_hub");
    let cold = output(cmd);
    assert_exit!(cold, 0, "{:?}", s.models());
    let rows = s.models();
    for uid in 0..3 {
        assert_eq!(rows[&uid].status, models::Status::Ok, "uid {uid}: {:?}", rows[&uid].reason);
    }
    assert_eq!(s.hub.switches.cdn_authorized.load(std::sync::atomic::Ordering::SeqCst), 0, "the token leaked to the CDN");
    assert!(s.hub.switches.hub_authorized.load(std::sync::atomic::Ordering::SeqCst) > 0, "the hub never got the token");
    // Every weights file came from the CDN (LFS) or the Xet bridge, once.
    assert_eq!(blob_gets(&s.hub, &llama["model.safetensors"]), 1, "{:#?}", s.hub.switches.log.lock().unwrap());
    for shard in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
        assert_eq!(blob_gets(&s.hub, &sharded[shard]), 1, "{shard}");
    }
    // Blobs are named as huggingface_hub names them: sha256 for LFS/Xet, the git oid otherwise.
    let lfs_dir = PathBuf::from(rows[&0].local_path.as_ref().unwrap());
    let weights = std::fs::read_link(lfs_dir.join("model.safetensors")).unwrap();
    assert_eq!(weights, PathBuf::from("../../blobs").join(hub::etag_of(&llama["model.safetensors"])));
    let config = std::fs::read_link(lfs_dir.join("config.json")).unwrap();
    assert_eq!(config, PathBuf::from("../../blobs").join(git_oid(&llama["config.json"])));
    let xet_dir = PathBuf::from(rows[&1].local_path.as_ref().unwrap());
    assert_eq!(std::fs::read(xet_dir.join("model.safetensors")).unwrap(), llama["model.safetensors"]);

    let cold_requests = s.hub.requests();
    assert_exit!(s.fetch(&[]), 0);
    assert_eq!(s.hub.requests(), cold_requests, "a warm run asked the hub");
    let offline = output({
        let mut c = s.command(&[]);
        c.env("HF_HUB_OFFLINE", "1");
        c
    });
    assert_exit!(offline, 0);
    assert_eq!(s.hub.requests(), cold_requests, "an offline run asked the hub");
}

/// git's blob oid of `content` (`git hash-object`).
fn git_oid(content: &[u8]) -> String {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_renamed_repository_is_followed_to_its_new_name() {
    let mut s = Subnet::new();
    let llama = llama_files();
    let commit = s.commit(0, "miner/new-name", &llama, 1, BLOCK - 500, None);
    s.hub.rename("miner/old-name", "miner/new-name");
    s.rows.clear();
    let secure = valkit::chain::commitment::secure_hash(&model_hash(&s.dir, &llama), &hotkey(0));
    s.commit_raw(0, "miner/old-name", &commit, &secure, 1, BLOCK - 500);
    let r = s.fetch(&[]);
    assert_exit!(r, 0, "{:?}", s.models());
    assert!(s.models()[&0].local_path.as_ref().unwrap().contains("models--miner--old-name"), "cached under the committed name");
}

#[test]
fn rate_limits_are_waited_out_as_retry_after_says() {
    for retry_after in [hub::RetryAfter::Seconds(1), hub::RetryAfter::HttpDate(2)] {
        let mut s = Subnet::new();
        s.commit(0, "miner/ok", &llama_files(), 1, BLOCK - 500, None);
        *s.hub.switches.rate_limit_first.lock().unwrap() = Some((3, retry_after));
        let r = s.fetch(&[]);
        assert_exit!(r, 0, "{:?}", s.models());
        assert_eq!(s.models()[&0].status, models::Status::Ok);
        // Each refused request came back no sooner than Retry-After allowed (an HTTP date has
        // one-second resolution, so it allows at least one second).
        let arrivals = s.hub.switches.arrivals.lock().unwrap().clone();
        for pair in arrivals.windows(2).take(3) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(gap >= Duration::from_millis(950), "came back after {gap:?}");
        }
    }
}

#[test]
fn an_hf_endpoint_that_cannot_be_a_base_url_is_refused_in_one_line() {
    let mut s = Subnet::new();
    s.commit(0, "miner/ok", &llama_files(), 1, BLOCK - 500, None);
    let mut cmd = s.command(&[]);
    cmd.env("HF_ENDPOINT", "mailto:x");
    let r = output(cmd);
    assert_bad_input(&r, "HF_ENDPOINT: \"mailto:x\" is not an http(s) URL");
    assert_eq!(s.hub.requests(), 0);
}

#[test]
fn hostile_etags_and_commits_write_nothing_outside_the_cache() {
    let outside = TestDir::new();
    for (switch, code) in [("etag", "untrusted-answer"), ("commit", "untrusted-answer")] {
        let mut s = Subnet::new();
        s.commit(0, "miner/ok", &llama_files(), 1, BLOCK - 500, None);
        let target = format!("../../../../../../../../../..{}", outside.path("x").display());
        match switch {
            "etag" => *s.hub.switches.hostile_etag.lock().unwrap() = Some(format!("\"{target}\"")),
            _ => *s.hub.switches.hostile_commit.lock().unwrap() = Some(target),
        }
        let r = s.fetch(&[]);
        assert_exit!(r, 1);
        let row = &s.models()[&0];
        assert_eq!((row.status, reason_code(row)), (models::Status::Failed, code), "{switch}: {:?}", row.reason);
        let left: Vec<_> = std::fs::read_dir(outside.path("")).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(left.is_empty(), "{switch}: written outside the cache: {left:?}");
    }
}

/// A stop (SIGTERM or SIGINT to the whole job, as systemd or Ctrl-C send it) while models
/// download publishes no half table and leaves nothing half-written in the cache; the next run
/// gives the same table.
#[test]
fn a_stop_while_downloading_publishes_nothing_half_done() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut s = Subnet::new();
    let llama = llama_files();
    let old = BLOCK - 500;
    for uid in 0..4u16 {
        s.commit(uid, &format!("miner/m{uid}"), &llama, 1, old, None);
    }
    let started = std::time::Instant::now();
    assert_exit!(s.fetch(&[]), 0);
    let full = started.elapsed();
    let reference = std::fs::read(s.dir.path("models.parquet")).unwrap();
    let mut stopped = 0;
    for (i, fraction) in [0.15, 0.3, 0.45, 0.6, 0.75, 0.9].into_iter().enumerate() {
        let signal = if i % 2 == 0 { libc::SIGTERM } else { libc::SIGINT };
        let _ = std::fs::remove_dir_all(s.dir.path("cache"));
        let mut cmd = s.command(&[]);
        cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(full.mul_f64(fraction));
        // SAFETY: kill(2) on the process group this test just started.
        let _ = unsafe { libc::kill(-i32::try_from(child.id()).unwrap(), signal) };
        let status = child.wait().unwrap();
        let code = status.code();
        assert!(code == Some(0) || code == Some(128 + signal) || status.signal() == Some(signal), "stop {i}: {status:?}");
        stopped += usize::from(code == Some(128 + signal));
        assert!(std::fs::read(s.dir.path("models.parquet")).unwrap() == reference, "stop {i}: the earlier table is intact");
        let names: Vec<String> =
            std::fs::read_dir(s.dir.path("")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "stop {i}: {names:?}");
        assert_exit!(s.fetch(&[]), 0, "after stop {i}");
        assert!(std::fs::read(s.dir.path("models.parquet")).unwrap() == reference, "after stop {i}: the same table");
    }
    assert!(stopped >= 2, "the stops landed while downloading: {stopped} of 6");
    crate::faults::report("fetch-models SIGTERM/SIGINT to the job while downloading, then a rerun (the same table)", 6);
}

/// A miner re-uploading another's model under its own repository: fetch-models records the same
/// model hash for both, so eval-losses evaluates it once and gives both uids the same losses
/// (each its own rows), as evaluating each copy again would.
#[test]
fn a_copy_cat_repository_has_the_model_hash_of_the_original_and_is_evaluated_once() {
    let mut s = Subnet::new();
    let llama = llama_files();
    let mut other = llama.clone();
    other.insert("generation_config.json".into(), br#"{"max_new_tokens": 7}"#.to_vec());
    let old = BLOCK - 500;
    s.commit(0, "leader/model", &llama, 1, old, None);
    s.commit(1, "copycat/model", &llama, 1, old + 10, None);
    s.commit(2, "honest/model", &other, 1, old + 20, None);
    assert_exit!(s.fetch(&[]), 0);
    let models = s.models();
    let hash = |uid: u16| models[&uid].model_hash.clone().expect("an ok row has its model hash");
    assert_eq!(hash(0), model_hash(&s.dir, &llama));
    assert_eq!((hash(1) == hash(0), hash(2) == hash(0)), (true, false));
    assert_ne!(models[&0].local_path, models[&1].local_path, "two snapshots");

    crate::eval_losses::write_batches(&s.dir);
    let eval = |out: &str, extra: &[&str]| {
        let (models, batches, out) = (s.dir.arg("models.parquet"), s.dir.arg("batches.parquet"), s.dir.arg(out));
        let mut a = vec!["eval-losses", "--models", &models, "--batches", &batches, "--out", &out];
        a.extend(extra);
        run(&a)
    };
    let once = eval("once.parquet", &["--json"]);
    assert_exit!(once, 0);
    let summary: serde_json::Value = serde_json::from_str(once.stdout_text().trim()).unwrap();
    assert_eq!((summary["models"].as_u64(), summary["distinct_models"].as_u64()), (Some(3), Some(2)));
    assert_exit!(eval("each.parquet", &["--evaluate-copies"]), 0);
    assert!(std::fs::read(s.dir.path("once.parquet")).unwrap() == std::fs::read(s.dir.path("each.parquet")).unwrap());
    let by_uid = crate::eval_losses::losses_by_uid(&s.dir.path("once.parquet"));
    assert!(by_uid[&1].iter().all(|r| r.evaluated_as == Some(0) && r.hotkey == hotkey(1)));
    assert!(by_uid[&0].iter().chain(&by_uid[&2]).all(|r| r.evaluated_as.is_none()));
    let losses = |uid: u16| by_uid[&uid].iter().map(|r| r.loss.to_bits()).collect::<Vec<_>>();
    assert_eq!(losses(1), losses(0));
}
