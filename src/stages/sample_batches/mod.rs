//! `sample-batches`: the token windows every model of a competition step is scored on, exactly
//! as the reference validators pick them (upstream.md §4): seed from the sync block's hash, one
//! loader per eval task re-seeding CPython's RNG, pages from the datasets server (or a local
//! directory), tokenise, pack, `Random(seed).shuffle`, keep the first 50. A task whose loader
//! fails is recorded in the metadata and skipped, as upstream skips it.

mod reasoning;
mod text;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::competition::{Competition, EvalMethod, EvalTask, Profile};
use crate::datasets::{Client, ClientOptions, LocalDataset, Source};
use crate::exit::{Outcome, Unreachable};
use crate::files::{self, Location};
use crate::hub;
use crate::sampling::{seed_from_block_hash, PyRandom, Seed};
use crate::tables::{self, batches, metagraph};
use crate::tokenizer::Tokenizer;

pub use text::TaskPlan;

/// Where the data seed comes from.
#[derive(Debug, Clone)]
pub enum SeedSource {
    /// The sync block hash `sync-metadata` recorded in a metagraph table.
    Metagraph(Location),
    BlockHash(String),
    /// A decimal integer of any size.
    Seed(String),
}

#[derive(Debug, Clone)]
pub enum TokenizerSource {
    Path(PathBuf),
    /// `repo@revision`, read from the Hugging Face cache.
    Repo {
        repo: String,
        revision: String,
    },
}

pub struct Options {
    pub profile: Profile,
    pub competition_id: u16,
    pub seed: SeedSource,
    /// Which schedule entry applies [default: the metagraph's block, else the latest entry].
    pub block: Option<u64>,
    pub datasets: ClientOptions,
    pub tokenizer: Option<TokenizerSource>,
    pub hub: hub::Config,
    pub out: Location,
    /// Upstream sleeps 5 s between retries of a failed request.
    pub retry_delay: Duration,
}

/// The seed and where it came from, for provenance.
pub struct ResolvedSeed {
    pub seed: Seed,
    pub provenance: BTreeMap<String, String>,
    pub block: Option<u64>,
}

pub fn resolve_seed(source: &SeedSource) -> anyhow::Result<ResolvedSeed> {
    let mut provenance = BTreeMap::new();
    let (seed, block) = match source {
        SeedSource::Seed(decimal) => {
            provenance.insert("seed_source".into(), "--seed".into());
            (Seed::from_decimal(decimal.trim())?, None)
        }
        SeedSource::BlockHash(hash) => {
            provenance.insert("seed_source".into(), "--block-hash".into());
            provenance.insert("sync_block_hash".into(), hash.clone());
            (seed_from_block_hash(hash)?, None)
        }
        SeedSource::Metagraph(location) => {
            let table = tables::read::<metagraph::Metagraph>(location)?;
            let p = &table.meta.provenance;
            let Some(hash) = p.get(metagraph::PROVENANCE_SYNC_BLOCK_HASH) else {
                bail!(
                    "{location}: no `valkit.{}` metadata to derive the seed from; pass --block-hash or --seed",
                    metagraph::PROVENANCE_SYNC_BLOCK_HASH
                )
            };
            provenance.insert("seed_source".into(), "metagraph".into());
            provenance.insert("metagraph_sha256".into(), table.sha256.clone());
            provenance.insert("sync_block_hash".into(), hash.clone());
            if let Some(sync) = p.get(metagraph::PROVENANCE_SYNC_BLOCK) {
                provenance.insert("sync_block".into(), sync.clone());
            }
            let block = p.get(metagraph::PROVENANCE_BLOCK).and_then(|b| b.parse().ok());
            (seed_from_block_hash(hash).with_context(|| format!("{location}: bad sync block hash"))?, block)
        }
    };
    provenance.insert("seed".into(), seed.to_decimal());
    Ok(ResolvedSeed { seed, provenance, block })
}

pub fn load_tokenizer(source: Option<&TokenizerSource>, competition: &Competition, hub: &hub::Config) -> anyhow::Result<Tokenizer> {
    let path = match source {
        Some(TokenizerSource::Path(path)) => path.clone(),
        Some(TokenizerSource::Repo { repo, revision }) => cached(hub, repo, revision)?,
        None => match &competition.constraints.tokenizer {
            Some(repo) => cached(hub, repo, "main")?,
            None => bail!("competition {} scores each model with its own tokenizer; pass --tokenizer PATH|REPO@REV", competition.id),
        },
    };
    Ok(Tokenizer::load(&path)?)
}

fn cached(hub: &hub::Config, repo: &str, revision: &str) -> anyhow::Result<PathBuf> {
    hub.cached_snapshot(repo, revision).with_context(|| {
        format!("tokenizer {repo}@{revision} is not in the Hugging Face cache at {} (download it with `huggingface-cli download {repo}` or pass --tokenizer PATH)", hub.cache_dir.display())
    })
}

/// The schedule entry's competition, by the metagraph's block, `--block`, or the latest entry.
fn competition(opts: &Options, seed_block: Option<u64>) -> anyhow::Result<&Competition> {
    let block = opts.block.or(seed_block).unwrap_or(u64::MAX);
    Ok(opts.profile.competition_at(opts.competition_id, block)?)
}

/// What a task reads rows from.
enum TaskSource {
    Server { dataset: String, auth: bool },
    Local(LocalDataset),
}

fn task_source(profile: &Profile, task: &EvalTask) -> anyhow::Result<TaskSource> {
    let d = &task.dataset;
    Ok(match d.loader.as_str() {
        "local" => {
            let dir = match &profile.base_dir {
                Some(base) => base.join(&d.name),
                None => PathBuf::from(&d.name),
            };
            TaskSource::Local(LocalDataset::open(&dir, &d.name)?)
        }
        _ => TaskSource::Server { dataset: d.name.clone(), auth: d.auth },
    })
}

fn source<'a>(client: &'a Client, task_source: &'a TaskSource) -> Source<'a> {
    match task_source {
        TaskSource::Server { dataset, auth } => Source::Server { client, dataset, auth: *auth },
        TaskSource::Local(local) => Source::Local(local),
    }
}

/// Why `--plan` cannot list a task's pages: its data is generated, not paged.
fn unplannable(task: &EvalTask) -> Option<String> {
    (task.dataset.loader == "generated").then(|| format!("{} data is generated by the validator, not read from pages", task.name))
}

/// Why a task cannot be sampled by valkit at all (not a data problem).
fn unsupported(task: &EvalTask) -> Option<String> {
    match (task.method, task.dataset.loader.as_str()) {
        (EvalMethod::TextLoss, "config-sampling" | "row-offset" | "local") => None,
        (EvalMethod::ReferenceLoss, "synthetic-1-sft" | "codeforces-cots") => None,
        (EvalMethod::TextLoss, "stack-v2") => {
            let on_s3 = task.dataset.content.as_deref().is_some_and(|c| c.starts_with("s3"));
            let missing = if on_s3 { crate::storage::missing_aws_credentials() } else { Vec::new() };
            (!missing.is_empty()).then(|| {
                format!(
                    "stack-v2 contents are read from {} with AWS credentials, as upstream's validators read them: set {}",
                    task.dataset.content.as_deref().unwrap_or("S3"),
                    missing.join(" and ")
                )
            })
        }
        (method, loader) => Some(format!("{method:?} tasks with the {loader} loader are not supported by sample-batches yet")),
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskSummary {
    pub task: String,
    pub batches: usize,
    pub pages: usize,
    pub failed_pages: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub competition_id: u16,
    pub seed: String,
    pub tasks: Vec<TaskSummary>,
    pub out: String,
}

/// One task's rows (token ids, context length, source) and the pages they came from.
struct TaskRows {
    rows: Vec<(Vec<u32>, u32, String)>,
    pages: Vec<String>,
    failed_pages: Vec<String>,
}

struct TaskEnv<'a> {
    opts: &'a Options,
    client: &'a Client,
    seed: &'a Seed,
    tokenizer: &'a Tokenizer,
    sequence_length: usize,
}

async fn sample_task(cx: &TaskEnv<'_>, task: &EvalTask) -> anyhow::Result<TaskRows> {
    if let Some(why) = unsupported(task) {
        bail!(why);
    }
    let ts = task_source(&cx.opts.profile, task)?;
    let source = source(cx.client, &ts);
    if task.method == EvalMethod::ReferenceLoss {
        let sampled = reasoning::sample(&source, task, cx.seed, cx.tokenizer, cx.opts.retry_delay).await?;
        let rows = sampled
            .samples
            .into_iter()
            .map(|s| {
                let context_len = u32::try_from(s.context.len()).expect("a prompt fits u32 tokens");
                ([s.context, s.reference].concat(), context_len, s.source)
            })
            .collect();
        return Ok(TaskRows { rows, pages: sampled.pages, failed_pages: sampled.failed_pages });
    }
    let sampled = text::sample(&source, task, cx.seed, cx.tokenizer, cx.sequence_length, cx.opts.retry_delay).await?;
    let windows = text::shuffle_and_keep(sampled.windows, cx.seed, cx.opts.profile.subnet.max_batches_per_task);
    let rows = windows.into_iter().map(|w| (w.tokens, 0, w.source)).collect();
    Ok(TaskRows { rows, pages: sampled.pages, failed_pages: sampled.failed_pages })
}

pub async fn run(opts: &Options) -> anyhow::Result<(Outcome, Summary)> {
    if let SeedSource::Metagraph(metagraph) = &opts.seed {
        files::ensure_not_input(&opts.out, &[metagraph])?;
    }
    let seed = resolve_seed(&opts.seed)?;
    let competition = competition(opts, seed.block)?;
    let tokenizer = load_tokenizer(opts.tokenizer.as_ref(), competition, &opts.hub)?;
    let sequence_length =
        competition.constraints.sequence_length.with_context(|| format!("competition {} has no sequence_length", competition.id))? as usize;
    let client = Client::new(opts.datasets.clone())?;
    let cx = TaskEnv { opts, client: &client, seed: &seed.seed, tokenizer: &tokenizer, sequence_length };
    let mut rows = Vec::new();
    let mut provenance = seed.provenance.clone();
    let mut summaries = Vec::new();
    let mut first_error: Option<anyhow::Error> = None;
    for task in &competition.tasks {
        let prefix = format!("task.{}.", task.name);
        match sample_task(&cx, task).await {
            Ok(sampled) => {
                provenance.insert(format!("{prefix}pages"), serde_json::to_string(&sampled.pages)?);
                provenance.insert(format!("{prefix}failed_pages"), serde_json::to_string(&sampled.failed_pages)?);
                summaries.push(TaskSummary {
                    task: task.name.clone(),
                    batches: sampled.rows.len(),
                    pages: sampled.pages.len(),
                    failed_pages: sampled.failed_pages.len(),
                    error: None,
                });
                for (i, (token_ids, context_len, source)) in sampled.rows.into_iter().enumerate() {
                    rows.push(batches::Row {
                        competition_id: competition.id,
                        task: task.name.clone(),
                        batch_index: u32::try_from(i)?,
                        token_ids,
                        context_len,
                        source,
                    });
                }
            }
            Err(e) => {
                tracing::warn!(task = %task.name, "task skipped: {e:#}");
                provenance.insert(format!("{prefix}error"), format!("{e:#}"));
                summaries.push(TaskSummary {
                    task: task.name.clone(),
                    batches: 0,
                    pages: 0,
                    failed_pages: 0,
                    error: Some(format!("{e:#}")),
                });
                first_error.get_or_insert(e.context(format!("task {}", task.name)));
            }
        }
    }
    let failed = summaries.iter().filter(|s| s.error.is_some()).count();
    if failed == summaries.len() {
        let error = first_error.expect("a failed task").context(format!("every task of competition {} failed", competition.id));
        // Nothing but failures from the server: it is the server that is down (exit 4).
        if let Some(failures) = client.failed_every_request() {
            let detail = format!("all {failures} requests failed ({error:#})");
            return Err(anyhow::Error::new(Unreachable { service: "datasets server", endpoint: client.endpoint().to_string(), detail }));
        }
        return Err(error);
    }
    provenance.insert("profile".into(), opts.profile.name.clone());
    provenance.insert("competition_id".into(), competition.id.to_string());
    provenance.insert("sequence_length".into(), sequence_length.to_string());
    // The path differs between machines; the content hash (and a repo@revision) does not.
    if let Some(TokenizerSource::Repo { repo, revision }) = &opts.tokenizer {
        provenance.insert("tokenizer".into(), format!("{repo}@{revision}"));
    } else if opts.tokenizer.is_none() {
        provenance.insert("tokenizer".into(), format!("{}@main", competition.constraints.tokenizer.as_deref().unwrap_or_default()));
    }
    provenance.insert("tokenizer_sha256".into(), tokenizer.sha256.clone());
    provenance.insert("datasets_endpoint".into(), client.endpoint().to_string());
    let bytes = tables::encode_file::<batches::Batches>(rows, &provenance)?;
    files::write(&opts.out, &bytes)?;
    let outcome = if failed > 0 { Outcome::Partial { failed } } else { Outcome::Done };
    Ok((outcome, Summary { competition_id: competition.id, seed: seed.seed.to_decimal(), tasks: summaries, out: opts.out.to_string() }))
}

/// `--plan`: the pages each task would request, from the seed and `/size` alone.
pub async fn plan(opts: &Options) -> anyhow::Result<Vec<TaskPlan>> {
    let seed = resolve_seed(&opts.seed)?;
    let competition = competition(opts, seed.block)?;
    let client = Client::new(opts.datasets.clone())?;
    let mut plans = Vec::new();
    for task in &competition.tasks {
        let plan = match unplannable(task) {
            Some(why) => TaskPlan::unsupported(task, why),
            None => {
                let ts = task_source(&opts.profile, task)?;
                text::plan(&source(&client, &ts), task, &seed.seed).await.with_context(|| format!("task {}", task.name))?
            }
        };
        plans.push(plan);
    }
    Ok(plans)
}

/// A fresh `random.Random(seed)`, as each upstream loader re-seeds the global RNG.
fn rng(seed: &Seed) -> PyRandom {
    PyRandom::new(seed)
}
