//! `fetch-models`: one `models` row per uid of the metagraph (SPEC §3). Each uid is triaged
//! (commitment, competition schedule, eval delay), the step's uids are chosen
//! (`scoring::selection`), and each model in the step is checked before its weights are
//! downloaded — file list and sizes, `config.json`'s architecture, the exact parameter count from
//! safetensors headers read with byte ranges — then downloaded pinned to its commit into the
//! standard Hugging Face cache, hashed over exactly the files upstream hashes, and bound to its
//! hotkey by the secure hash (upstream.md §2.3–2.4). A verified snapshot is recorded and never
//! asked for again. One model never aborts the run; a hub failing every request is exit 4.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::chain::commitment;
use crate::competition::admission::{self, ProjectionNorms};
use crate::competition::{Competition, Profile};
use crate::exit::{Outcome, Unreachable};
use crate::files::{self, Location};
use crate::hub::{self, files as repo_files, Hub, TreeFile, Verified};
use crate::model;
use crate::scoring::selection::{self, Eligible, Previous, StepReason, ValidatorWeights};
use crate::tables::{self, metagraph, models, tracker};

/// A `tokenizer_config.json` or shard index larger than this is not one.
const MAX_SMALL_JSON_BYTES: u64 = 16 << 20;

pub struct Options {
    pub metagraph: Location,
    pub tracker: Option<Location>,
    pub out: Location,
    pub profile: Profile,
    /// None: the block the metagraph was read at.
    pub current_block: Option<u64>,
    pub all: bool,
    pub jobs: usize,
    pub hub: hub::Config,
    pub policy: hub::Policy,
    /// The whole command's deadline; models not done by then are failed rows.
    pub deadline: Duration,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub uids: usize,
    pub in_step: usize,
    pub ok: usize,
    pub skipped: usize,
    pub rejected: usize,
    pub failed: usize,
    /// Distinct snapshots the step uses, and how many of them were verified by an earlier run.
    pub snapshots: usize,
    pub snapshots_cached: usize,
    pub bytes_downloaded: u64,
    /// Competition tokenizers that could not be fetched (sample-batches will miss them).
    pub tokenizers_failed: Vec<String>,
    pub seconds: f64,
}

/// Progress of the downloads: an overall bar over models and one bar per file.
pub trait DownloadReporter: Sync {
    fn begin(&self, models: u64);
    /// A handler for one file's download, or None when nothing is drawn.
    fn file(&self, label: &str) -> Option<Box<dyn hub::Progress>>;
    fn model_done(&self);
    fn end(&self);
}

pub struct NoDownloadProgress;

impl DownloadReporter for NoDownloadProgress {
    fn begin(&self, _: u64) {}
    fn file(&self, _: &str) -> Option<Box<dyn hub::Progress>> {
        None
    }
    fn model_done(&self) {}
    fn end(&self) {}
}

/// What is known of a verified snapshot; stored with its verification record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Facts {
    /// Every file of the revision, as listed: what `max_bytes` bounds.
    repo_bytes: u64,
    /// The files downloaded and hashed.
    snapshot_bytes: u64,
    architecture: String,
    n_params: u64,
    norms: Option<ProjectionNorms>,
}

impl Facts {
    fn snapshot(&self) -> admission::Snapshot<'_> {
        admission::Snapshot {
            repo_bytes: self.repo_bytes,
            architecture: &self.architecture,
            n_params: self.n_params,
            norms: self.norms.as_ref(),
        }
    }
}

/// (repository, revision, competition id): one fetch serves every hotkey that committed it.
type JobKey = (String, String, u16);

/// A snapshot ready for the competition's checks and each hotkey's secure hash.
struct Fetched {
    facts: Facts,
    model_hash: String,
    /// Verified by an earlier run: no request was made.
    verified_earlier: bool,
}

/// Why a model is not usable: `rejected` (it breaks a rule) or `failed` (it could not be fetched).
#[derive(Debug, Clone)]
struct Problem {
    status: models::Status,
    reason: String,
    hub_failure: bool,
}

impl Problem {
    fn rejected(reason: impl Into<String>) -> Self {
        Self { status: models::Status::Rejected, reason: reason.into(), hub_failure: false }
    }
    fn failed(reason: impl Into<String>) -> Self {
        Self { status: models::Status::Failed, reason: reason.into(), hub_failure: false }
    }
}

impl From<admission::Refusal> for Problem {
    fn from(r: admission::Refusal) -> Self {
        let status = match &r {
            admission::Refusal::Skipped(_) => models::Status::Skipped,
            admission::Refusal::Rejected(_) => models::Status::Rejected,
            admission::Refusal::Failed(_) => models::Status::Failed,
        };
        Self { status, reason: r.reason().to_string(), hub_failure: false }
    }
}

impl From<hub::Error> for Problem {
    fn from(e: hub::Error) -> Self {
        let hub_failure = e.is_hub_failure();
        let status = if e.is_rejection() { models::Status::Rejected } else { models::Status::Failed };
        Self { status, reason: format!("{}: {e}", e.code()), hub_failure }
    }
}

impl From<model::Error> for Problem {
    fn from(e: model::Error) -> Self {
        match e {
            model::Error::Io { .. } | model::Error::Candle(_) => Self::failed(e.to_string()),
            _ => Self::rejected(e.to_string()),
        }
    }
}

/// A uid whose commitment names a model the step may evaluate.
struct Candidate<'a> {
    row: &'a metagraph::Row,
    eligible: Eligible,
    repo: String,
    revision: String,
    competition: &'a Competition,
}

pub async fn run(opts: &Options, reporter: &dyn DownloadReporter) -> anyhow::Result<(Outcome, Summary)> {
    let started = Instant::now();
    let inputs: Vec<&Location> = std::iter::once(&opts.metagraph).chain(&opts.tracker).collect();
    files::ensure_not_input(&opts.out, &inputs)?;
    let meta_file = tables::read::<metagraph::Metagraph>(&opts.metagraph)?;
    let tracker_file = match &opts.tracker {
        Some(t) => Some(tables::read::<tracker::Tracker>(t)?),
        None => None,
    };
    let current_block = match opts.current_block {
        Some(b) => b,
        None => meta_file
            .meta
            .provenance
            .get(metagraph::PROVENANCE_BLOCK)
            .and_then(|b| b.parse().ok())
            .with_context(|| format!("{}: no block recorded in the metagraph; pass --cur-block", opts.metagraph))?,
    };
    let mut rows: BTreeMap<u16, models::Row> = BTreeMap::new();
    let mut candidates = Vec::new();
    for m in &meta_file.rows {
        match triage(m, &opts.profile, current_block) {
            Ok(c) => candidates.push(c),
            Err(p) => {
                rows.insert(m.uid, row_for(m, p.status, Some(p.reason), None));
            }
        }
    }
    let step = choose_step(opts, &candidates, &meta_file.rows, tracker_file.as_ref().map(|t| t.rows.as_slice()), current_block);

    // One fetch per (repo, revision, competition): two hotkeys committing the same model share it.
    let mut jobs: BTreeMap<JobKey, Vec<&Candidate>> = BTreeMap::new();
    for c in &candidates {
        match step.get(&c.eligible.uid) {
            Some(_) => jobs.entry((c.repo.clone(), c.revision.clone(), c.competition.id)).or_default().push(c),
            None => {
                let reason = "not-in-step: kept by no rule this step (use --all to evaluate every eligible model)";
                rows.insert(c.row.uid, row_for(c.row, models::Status::Skipped, Some(reason.into()), Some(c)));
            }
        }
    }
    let hub = Hub::new(opts.hub.clone(), opts.policy)?;
    let cache = hub::Cache::new(opts.hub.cache_dir.clone());
    let downloaded = AtomicU64::new(0);
    let deadline = tokio::time::Instant::now() + opts.deadline;
    reporter.begin(jobs.len() as u64);
    let fetcher = Fetcher { hub: &hub, cache: &cache, downloaded: &downloaded, reporter };
    let results: Vec<(JobKey, Result<Fetched, Problem>)> = futures::stream::iter(jobs.keys().cloned().map(|key| {
        let fetcher = &fetcher;
        let competition = jobs[&key][0].competition;
        async move {
            let fetched = tokio::time::timeout_at(deadline, fetcher.fetch(&key.0, &key.1, competition)).await;
            fetcher.reporter.model_done();
            let result = fetched
                .unwrap_or_else(|_| Err(Problem::failed(format!("timeout: the command's {} s deadline passed", opts.deadline.as_secs()))));
            (key, result)
        }
    }))
    .buffer_unordered(opts.jobs.max(1))
    .collect()
    .await;
    reporter.end();
    let (tokenizers_failed, tokenizer_snapshots) = fetch_tokenizers(&hub, &opts.profile, current_block).await;

    let mut summary = Summary {
        uids: meta_file.rows.len(),
        bytes_downloaded: downloaded.load(Ordering::Relaxed),
        tokenizers_failed,
        ..Summary::default()
    };
    let (mut hub_failures, mut in_use) = (0, tokenizer_snapshots);
    for (key, result) in &results {
        if matches!(result, Err(p) if p.hub_failure) {
            hub_failures += 1;
        }
        if let Ok(fetched) = result {
            summary.snapshots += 1;
            summary.snapshots_cached += usize::from(fetched.verified_earlier);
        }
        for c in &jobs[key] {
            let verdict = result.as_ref().map_err(Clone::clone).and_then(|fetched| {
                admission::judge(&fetched.facts.snapshot(), c.competition)?;
                check_secure_hash(&fetched.model_hash, c)?;
                Ok(fetched)
            });
            let mut row = match verdict {
                Ok(fetched) => {
                    let facts = &fetched.facts;
                    in_use.insert((key.0.clone(), key.1.clone()));
                    let mut r = row_for(c.row, models::Status::Ok, None, Some(c));
                    r.local_path = Some(cache.snapshot_dir(&key.0, &key.1).display().to_string());
                    r.size_bytes = Some(facts.repo_bytes);
                    r.n_params = Some(facts.n_params);
                    r.architecture = Some(facts.architecture.clone());
                    r.model_hash = Some(fetched.model_hash.clone());
                    r
                }
                Err(p) => row_for(c.row, p.status, Some(p.reason), Some(c)),
            };
            row.in_step = true;
            row.step_reason = step.get(&c.row.uid).map(|r| r.as_str().to_string());
            rows.insert(c.row.uid, row);
        }
    }
    if !results.is_empty() && hub_failures == results.len() {
        let detail = results.iter().find_map(|(_, r)| r.as_ref().err()).map(|p| p.reason.clone()).unwrap_or_default();
        return Err(Unreachable { service: "Hugging Face hub", endpoint: opts.hub.endpoint.clone(), detail }.into());
    }
    cache.record_in_use(&in_use).with_context(|| format!("recording the snapshots in use under {}", cache.root().display()))?;

    let rows: Vec<models::Row> = rows.into_values().collect();
    for r in &rows {
        match r.status {
            models::Status::Ok => summary.ok += 1,
            models::Status::Skipped => summary.skipped += 1,
            models::Status::Rejected => summary.rejected += 1,
            models::Status::Failed => summary.failed += 1,
        }
    }
    summary.in_step = rows.iter().filter(|r| r.in_step).count();
    summary.seconds = started.elapsed().as_secs_f64();
    let mut provenance = BTreeMap::new();
    provenance.insert("profile".to_string(), opts.profile.name.clone());
    provenance.insert("block".to_string(), current_block.to_string());
    provenance.insert("metagraph_sha256".to_string(), meta_file.sha256.clone());
    if let Some(t) = &tracker_file {
        provenance.insert("tracker_sha256".to_string(), t.sha256.clone());
    }
    provenance.insert("selection".to_string(), if opts.all { "all" } else { "step" }.to_string());
    files::write(&opts.out, &tables::encode_file::<models::Models>(rows, &provenance)?)?;
    let bad = summary.rejected + summary.failed;
    Ok((if bad > 0 { Outcome::Partial { failed: bad } } else { Outcome::Done }, summary))
}

/// Tokenizer files a competition's shared tokenizer needs, when its repository has them.
const TOKENIZER_FILES: [&str; 3] = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

/// The competitions' shared tokenizers (e.g. `Xenova/gpt-4`) into the same cache at `main`, where
/// `sample-batches` looks for them. One already cached costs no request. Returns those that failed
/// (a warning here, an error in `sample-batches`) and the snapshots in use, which `gc` keeps.
async fn fetch_tokenizers(hub: &Hub, profile: &Profile, current_block: u64) -> (Vec<String>, BTreeSet<(String, String)>) {
    let repos: BTreeSet<String> = profile
        .schedule_at(current_block)
        .map(|e| e.competitions.iter().filter_map(|c| c.constraints.tokenizer.clone()).filter(|t| t.contains('/')).collect())
        .unwrap_or_default();
    let (mut failed, mut in_use) = (Vec::new(), BTreeSet::new());
    let cached = |repo: &str| hub.config().cached_snapshot(repo, "main").filter(|dir| dir.join("tokenizer.json").is_file());
    let commit_of = |dir: PathBuf| dir.file_name().map(|c| c.to_string_lossy().into_owned());
    for repo in repos {
        if let Some(commit) = cached(&repo).and_then(commit_of) {
            in_use.insert((repo, commit));
            continue;
        }
        let result = async {
            let tree = hub.tree(&repo, "main").await?;
            for f in tree.iter().filter(|f| TOKENIZER_FILES.contains(&f.path.as_str())) {
                hub.snapshot_file(&repo, "main", &f.path, f.size, None).await?;
            }
            Ok::<_, hub::Error>(())
        };
        match result.await {
            Ok(()) => in_use.extend(cached(&repo).and_then(commit_of).map(|commit| (repo, commit))),
            Err(e) => {
                tracing::warn!(tokenizer = %repo, error = %e, "could not fetch the competition's tokenizer");
                failed.push(repo);
            }
        }
    }
    (failed, in_use)
}

/// `admission::triage` of a metagraph row.
fn triage<'p>(m: &'p metagraph::Row, profile: &'p Profile, current_block: u64) -> Result<Candidate<'p>, Problem> {
    let commitment = admission::Commitment {
        parse_error: m.metadata_error.as_deref(),
        committed: m.commitment.is_some(),
        competition_id: m.competition_id,
        commit_block: m.commit_block,
        namespace: m.repo_namespace.as_deref(),
        name: m.repo_name.as_deref(),
        revision: m.revision.as_deref(),
    };
    let admitted = admission::triage(&commitment, profile, current_block)?;
    let eligible =
        Eligible { uid: m.uid, hotkey: m.hotkey.clone(), competition_id: admitted.competition_id, commit_block: admitted.commit_block };
    Ok(Candidate { row: m, eligible, repo: admitted.repo, revision: admitted.revision, competition: admitted.competition })
}

fn choose_step(
    opts: &Options,
    candidates: &[Candidate],
    metagraph: &[metagraph::Row],
    tracker: Option<&[tracker::Row]>,
    current_block: u64,
) -> BTreeMap<u16, StepReason> {
    let eligible: Vec<Eligible> = candidates.iter().map(|c| c.eligible.clone()).collect();
    let previous: BTreeMap<(u16, u16), Previous> = tracker
        .unwrap_or_default()
        .iter()
        .map(|t| ((t.competition_id, t.uid), Previous { hotkey: t.hotkey.clone(), keep: t.keep, history: t.history.clone() }))
        .collect();
    let validators: Vec<ValidatorWeights> = metagraph
        .iter()
        .filter(|m| !m.weight_uids.is_empty())
        .map(|m| ValidatorWeights {
            uid: m.uid,
            stake: m.stake,
            permit: m.validator_permit,
            weights: m.weight_uids.iter().zip(&m.weight_values).map(|(u, w)| (*u, f64::from(*w))).collect(),
        })
        .collect();
    let epsilon = |id: u16| opts.profile.competition_at(id, current_block).ok().map(|c| c.epsilon);
    let inputs = selection::Inputs {
        eligible: &eligible,
        previous: &previous,
        validators: &validators,
        epsilon: &epsilon,
        current_block,
        updated_models_limit: opts.profile.subnet.updated_models_limit,
        top_miners: opts.profile.subnet.top_miners,
    };
    selection::select(&inputs, opts.all)
}

fn row_for(m: &metagraph::Row, status: models::Status, reason: Option<String>, c: Option<&Candidate>) -> models::Row {
    models::Row {
        uid: m.uid,
        hotkey: m.hotkey.clone(),
        competition_id: m.competition_id,
        repo_id: c.map(|c| c.repo.clone()).or_else(|| Some(format!("{}/{}", m.repo_namespace.as_ref()?, m.repo_name.as_ref()?))),
        revision: m.revision.clone(),
        commit_block: m.commit_block,
        local_path: None,
        size_bytes: None,
        n_params: None,
        architecture: None,
        status,
        reason,
        in_step: false,
        step_reason: None,
        model_hash: None,
    }
}

fn check_secure_hash(model_hash: &str, c: &Candidate) -> Result<(), Problem> {
    let expected = commitment::secure_hash(model_hash, &c.row.hotkey);
    match c.row.secure_hash.as_deref() {
        Some(committed) if committed == expected => Ok(()),
        committed => Err(Problem::rejected(format!(
            "hash-mismatch: the snapshot's secure hash for this hotkey is {expected}, the commitment says {}",
            committed.unwrap_or("None")
        ))),
    }
}

struct Fetcher<'a> {
    hub: &'a Hub,
    cache: &'a hub::Cache,
    downloaded: &'a AtomicU64,
    reporter: &'a dyn DownloadReporter,
}

impl Fetcher<'_> {
    /// The facts of `repo@revision` and its model hash. Rejects what breaks `c`'s limits before
    /// downloading the weights.
    async fn fetch(&self, repo: &str, revision: &str, c: &Competition) -> Result<Fetched, Problem> {
        if let Some(record) = self.cache.verified(repo, revision) {
            if let Ok(mut facts) = serde_json::from_value::<Facts>(record.facts.clone()) {
                if c.constraints.norm_validation.is_some() && facts.norms.is_none() {
                    facts.norms = Some(self.norms(repo, revision).await?);
                    let record = Verified { facts: serde_json::to_value(&facts).expect("facts serialise"), ..record.clone() };
                    self.record(repo, revision, &record)?;
                }
                tracing::debug!(repo, revision, "verified earlier; no request");
                return Ok(Fetched { facts, model_hash: record.model_hash, verified_earlier: true });
            }
        }
        let tree = self.hub.tree(repo, revision).await?;
        let size_of = |name: &str| tree.iter().find(|f| f.path == name).map(|f| f.size);
        let repo_bytes: u64 = tree.iter().map(|f| f.size).sum();
        admission::check_bytes(repo_bytes, c)?;
        let layout = repo_files::weights_layout(&tree).map_err(|e| Problem::rejected(e.to_string()))?;
        let config_text = self.small_file(repo, revision, repo_files::CONFIG, size_of(repo_files::CONFIG), model::MAX_CONFIG_BYTES).await?;
        let config: serde_json::Value =
            serde_json::from_str(&config_text).map_err(|e| Problem::rejected(format!("bad-config: config.json: {e}")))?;
        let model_type = config.get("model_type").and_then(|t| t.as_str()).map(str::to_string);
        let architecture = model::causal_lm_class(&config).ok_or_else(|| {
            Problem::rejected(format!(
                "unknown-architecture: model_type {:?} maps to no causal language model",
                model_type.as_deref().unwrap_or("")
            ))
        })?;
        admission::check_architecture(&architecture, &c.constraints.architectures, c.id).map_err(Problem::rejected)?;
        let tied = self.tied_embeddings(&config_text, &config, c)?;
        let shards = match layout {
            repo_files::Weights::Single => vec![repo_files::SINGLE_WEIGHTS.to_string()],
            repo_files::Weights::Sharded => {
                let index = self
                    .small_file(repo, revision, repo_files::WEIGHTS_INDEX, size_of(repo_files::WEIGHTS_INDEX), MAX_SMALL_JSON_BYTES)
                    .await?;
                shard_names(&index, &tree)?
            }
        };
        let mut tensors = Vec::new();
        for shard in &shards {
            tensors.extend(self.header(repo, revision, shard, size_of(shard).unwrap_or(0)).await?);
        }
        let n_params = model::count_parameters(&tensors, tied);
        admission::check_params(n_params, c.constraints.min_params, c.constraints.max_params).map_err(Problem::rejected)?;
        let tokenizer_class = match size_of(repo_files::TOKENIZER_CONFIG) {
            Some(size) => {
                let text = self.small_file(repo, revision, repo_files::TOKENIZER_CONFIG, Some(size), MAX_SMALL_JSON_BYTES).await?;
                let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                repo_files::tokenizer_class(value.get("tokenizer_class").and_then(|c| c.as_str()), model_type.as_deref())
            }
            None => repo_files::tokenizer_class(None, model_type.as_deref()),
        };
        let sharded: &[String] = if layout == repo_files::Weights::Sharded { &shards } else { &[] };
        let hashed = repo_files::hashed_files(&tree, &layout, sharded, tokenizer_class.as_deref());
        let mut snapshot_bytes = 0;
        for file in &hashed {
            let size =
                size_of(file).ok_or_else(|| Problem::rejected(format!("missing-file: {file} is named but not in the repository")))?;
            self.download(repo, revision, file, size).await?;
            snapshot_bytes += size;
        }
        let dir = self.cache.snapshot_dir(repo, revision);
        let files_to_hash = hashed.clone();
        let model_hash = tokio::task::spawn_blocking(move || hub::hash::hash_of_files(&dir, &files_to_hash))
            .await
            .map_err(|e| Problem::failed(format!("hash: {e}")))?
            .map_err(|e| Problem::failed(format!("io: hashing the snapshot: {e}")))?;
        let norms = match c.constraints.norm_validation {
            Some(_) => Some(self.norms(repo, revision).await?),
            None => None,
        };
        let facts = Facts { repo_bytes, snapshot_bytes, architecture, n_params, norms };
        let files = hashed.iter().map(|f| (f.clone(), size_of(f).unwrap_or(0))).collect();
        let record = Verified { files, model_hash: model_hash.clone(), facts: serde_json::to_value(&facts).expect("facts serialise") };
        self.record(repo, revision, &record)?;
        Ok(Fetched { facts, model_hash, verified_earlier: false })
    }

    fn record(&self, repo: &str, revision: &str, record: &Verified) -> Result<(), Problem> {
        self.cache.record_verified(repo, revision, record).map_err(|e| Problem::failed(format!("io: recording the verification: {e}")))
    }

    /// Whether the head shares the embedding (then torch counts it once). A config valkit's
    /// model code does not support may still be a valid model: only its bounds can refuse it.
    fn tied_embeddings(&self, text: &str, config: &serde_json::Value, c: &Competition) -> Result<bool, Problem> {
        let limits = model::Limits { max_params: c.constraints.max_params, min_params: 0, memory_bytes: u64::MAX, max_sequence_length: 1 };
        match model::Config::parse(text, &limits) {
            Ok(parsed) => Ok(parsed.dims.tie_word_embeddings),
            Err(e @ (model::Error::Params(_) | model::Error::Config(_))) => Err(Problem::rejected(e.to_string())),
            Err(_) => Ok(config.get("tie_word_embeddings").and_then(|t| t.as_bool()).unwrap_or(false)),
        }
    }

    /// A small file of the hashed set, downloaded into the snapshot and read back, its listed
    /// size bounded first.
    async fn small_file(&self, repo: &str, revision: &str, name: &str, size: Option<u64>, max: u64) -> Result<String, Problem> {
        let size = size.ok_or_else(|| Problem::rejected(format!("missing-file: {name}")))?;
        if size > max {
            return Err(Problem::rejected(format!("too-large: {name} is {size} bytes, over {max}")));
        }
        let path = self.download(repo, revision, name, size).await?;
        // `download` checked the file is exactly its listed size, which is within `max`.
        let text = std::fs::read(&path).map_err(|e| Problem::failed(format!("io: {}: {e}", path.display())))?;
        String::from_utf8(text).map_err(|_| Problem::rejected(format!("bad-config: {name} is not UTF-8")))
    }

    /// A safetensors file's parameter tensors, from two bounded range requests.
    async fn header(&self, repo: &str, revision: &str, file: &str, size: u64) -> Result<Vec<(String, u64)>, Problem> {
        if size < 8 {
            return Err(Problem::rejected(format!("not-safetensors: {file}: {size} bytes, too short for a header")));
        }
        let prefix = self.hub.read_range(repo, revision, file, 0..8).await?;
        let header_len = model::header_length(file, &prefix, size)?;
        let header = if header_len == 0 { Vec::new() } else { self.hub.read_range(repo, revision, file, 8..8 + header_len).await? };
        if header.len() as u64 != header_len {
            return Err(Problem::failed(format!("hub-error: {file}: asked for {header_len} header bytes, got {}", header.len())));
        }
        Ok(model::parameters_of_header(file, &header, size)?)
    }

    /// One file into the snapshot (`hub::Hub::snapshot_file`), counted and drawn.
    async fn download(&self, repo: &str, revision: &str, file: &str, size: u64) -> Result<PathBuf, Problem> {
        let progress = self.reporter.file(&format!("{repo}/{file}"));
        let fetched = self.hub.snapshot_file(repo, revision, file, size, progress).await?;
        self.downloaded.fetch_add(fetched.downloaded_bytes, Ordering::Relaxed);
        Ok(fetched.path)
    }

    async fn norms(&self, repo: &str, revision: &str) -> Result<ProjectionNorms, Problem> {
        let dir = self.cache.snapshot_dir(repo, revision);
        tokio::task::spawn_blocking(move || model::norms::projection_norms(&dir))
            .await
            .map_err(|e| Problem::failed(format!("weight-norm: {e}")))?
            .map_err(Problem::from)
    }
}

/// The shard names of an index (`model::shard_names`), each listed in the repository.
fn shard_names(index: &str, tree: &[TreeFile]) -> Result<Vec<String>, Problem> {
    let shards = model::shard_names(index)?;
    if let Some(missing) = shards.iter().find(|shard| !tree.iter().any(|f| f.path == **shard)) {
        return Err(Problem::rejected(format!("missing-file: shard {missing} is not in the repository")));
    }
    Ok(shards)
}
