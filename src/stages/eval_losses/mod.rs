//! `eval-losses`: every model's loss on every batch of its competition (upstream.md §5). Reads the
//! `models` table (snapshots fetched and checked by `fetch-models`; the uids in the step) and the
//! `batches` table;
//! writes one `losses` row per (uid, task, batch). A model that cannot be loaded, errors, runs out
//! of time or fails the sanity check becomes failed rows with the reason; the others go on.
//! Never touches the network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use candle_core::Device;

use crate::competition::{admission, Competition, EvalMethod, Profile};
use crate::exit::Outcome;
use crate::files::{self, Location};
use crate::model::numerics::{self, AttentionRounding, Precision, Upcast};
use crate::model::{self, Limits, Model};
use crate::tables::{self, batches, losses, models};

mod journal;
pub mod worker;

/// Which slice of the models this host evaluates: model i (in uid order) goes to shard i % count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("shard {s:?} is not K/N with 0 <= K < N");
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count): (usize, usize) = (k.trim().parse().map_err(|_| err())?, n.trim().parse().map_err(|_| err())?);
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Self { index, count })
    }
}

pub struct Options {
    pub models: Location,
    pub batches: Location,
    pub out: Location,
    /// Competition rules (architectures, parameter bounds, sanity check); None evaluates any
    /// supported model.
    pub profile: Option<Profile>,
    pub device: Device,
    pub device_name: String,
    /// f32, bf16 or f16; None: each competition's own (f32 without a profile).
    pub dtype: Option<String>,
    pub upcast: Upcast,
    pub attention: AttentionRounding,
    pub shard: Shard,
    pub resume: bool,
    pub model_timeout: Option<Duration>,
    /// Evaluate each model in a worker process (the default), so that a crash or hang costs
    /// only that model.
    pub isolate: bool,
    /// Evaluate every copy of a model again (upstream's way) instead of once per model hash; the
    /// table is the same either way, so this is for checking that and for benchmarks.
    pub evaluate_copies: bool,
    /// Start the next model's worker while the current one computes, when both fit in memory.
    pub load_ahead: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub models: usize,
    /// Distinct models among them (by model hash and competition); each is evaluated once.
    pub distinct_models: usize,
    pub failed_models: usize,
    pub rows: usize,
    pub resumed_rows: usize,
    pub tokens: u64,
    /// The whole stage, wall time.
    pub seconds: f64,
    /// Forward passes and losses only (model loading, workers and I/O excluded), summed.
    pub compute_seconds: f64,
}

/// The longest reason a losses row keeps.
const MAX_REASON_CHARS: usize = 300;

/// The batches one model is scored on, grouped by task in table order.
pub type TaskBatches<'a> = BTreeMap<&'a str, Vec<&'a batches::Row>>;

pub fn run(opts: &Options, reporter: &dyn super::Reporter) -> anyhow::Result<(Outcome, Summary)> {
    let started = Instant::now();
    files::ensure_not_input(&opts.out, &[&opts.models, &opts.batches])?;
    let model_file = tables::read::<models::Models>(&opts.models)?;
    let batch_file = tables::read::<batches::Batches>(&opts.batches)?;
    // One writer per output: a second run on the same --out stops here instead of mixing rows.
    // An object output is guarded (and journalled) through a local file that stands for it, so
    // the guarantee holds per host: give each host its own output, as `--shard` does.
    let anchor = opts.out.local_anchor();
    let _lock = anchor.as_deref().map(files::OutputLock::acquire).transpose()?;
    let header = journal::Header {
        // 2: shards split distinct models, no longer uids.
        valkit_journal: 2,
        batches_sha256: batch_file.sha256.clone(),
        device: opts.device_name.clone(),
        dtype: opts.numerics_label(),
        shard: format!("{}/{}", opts.shard.index, opts.shard.count),
    };
    let in_step: BTreeMap<u16, &models::Row> = model_file.rows.iter().filter(|m| m.in_step).map(|m| (m.uid, m)).collect();
    let current = |uid: u16, hotkey: &str| in_step.get(&uid).is_some_and(|m| m.hotkey == hotkey);
    // Rows of an earlier run are kept only for a uid that still has the same hotkey (and, from
    // the journal, the same snapshot); anything else is computed again.
    let mut previous: Vec<losses::Row> =
        previous_rows(opts, &batch_file.sha256)?.into_iter().filter(|r| current(r.uid, &r.hotkey)).collect();
    let journal_path = anchor.as_deref().map(journal::path_for);
    let mut kept: Vec<journal::Entry> = Vec::new();
    if let Some(path) = &journal_path {
        if opts.resume {
            let same_model =
                |e: &journal::Entry| current(e.uid, &e.hotkey) && in_step.get(&e.uid).is_some_and(|m| m.local_path == e.local_path);
            kept = journal::read(path, &header)?.into_iter().filter(same_model).collect();
        } else if path.exists() {
            tracing::warn!(journal = %path.display(), "an interrupted run's journal is discarded (pass --resume to keep its rows)");
        }
    }
    // The journal is newer than an output published before it: its models' rows replace those.
    let journaled: BTreeSet<u16> = kept.iter().map(|e| e.uid).collect();
    previous.retain(|r| !journaled.contains(&r.uid));
    for entry in &kept {
        for r in &entry.rows {
            previous.push(r.to_row(entry.uid, &entry.hotkey)?);
        }
    }
    // A worker killed by a signal valkit did not send may have died for the host's reasons (the
    // kernel's OOM killer choosing it while something else used the memory): on --resume such a
    // model is evaluated once more; the same death again stays its failure.
    let retried: BTreeSet<u16> =
        previous.iter().filter(|r| r.reason.as_deref().is_some_and(worker::retry_on_resume)).map(|r| r.uid).collect();
    if !retried.is_empty() {
        tracing::info!(uids = ?retried, "evaluating again the models whose worker a signal killed");
    }
    previous.retain(|r| !retried.contains(&r.uid));
    kept.retain(|e| !retried.contains(&e.uid));
    let mut journal = journal_path.as_deref().map(|path| journal::Writer::create(path, &header, &kept)).transpose()?;
    let mut by_competition: BTreeMap<u16, TaskBatches> = BTreeMap::new();
    for b in &batch_file.rows {
        by_competition.entry(b.competition_id).or_default().entry(b.task.as_str()).or_default().push(b);
    }
    // Every uid in the step reaches compute-wins: one fetch-models could not use becomes failed
    // rows (score inf, its commit block kept), as upstream scores a model that fails to load.
    let mut candidates: Vec<&models::Row> = model_file.rows.iter().filter(|m| m.in_step).collect();
    candidates.sort_by_key(|m| m.uid);
    // Shards split distinct models, so that a shard of copies is not a shard of one evaluation.
    let mine: Vec<Vec<&models::Row>> = same_models(&candidates)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % opts.shard.count == opts.shard.index)
        .map(|(_, g)| g)
        .collect();
    let done: BTreeSet<(u16, String, u32)> = previous.iter().map(|r| (r.uid, r.task.clone(), r.batch_index)).collect();
    let mut rows = previous.clone();
    let (mut tokens, mut compute_seconds) = (0u64, 0.0f64);
    // Recorded for every competition of this shard's models, evaluated now or resumed, so that a
    // resumed run writes the bytes an uninterrupted one does.
    let competition_ids: BTreeSet<u16> =
        mine.iter().flatten().filter_map(|m| m.competition_id).filter(|id| by_competition.contains_key(id)).collect();
    let precisions: BTreeMap<u16, Precision> = competition_ids
        .into_iter()
        .filter_map(|id| {
            let competition = competition_rules(opts.profile.as_ref(), id, &model_file.meta.provenance).ok()?;
            Some((id, opts.precision_for(competition)))
        })
        .collect();
    // Everything the step will evaluate is decided first, so that the next model's worker can
    // load while this one computes.
    let mut plans = Vec::new();
    for group in &mine {
        let first = group[0];
        let Some(competition_id) = first.competition_id else {
            tracing::warn!(uid = first.uid, "model row has no competition id; skipped");
            continue;
        };
        let Some(tasks) = by_competition.get(&competition_id) else {
            tracing::warn!(uid = first.uid, competition_id, "no batches for this competition; skipped");
            continue;
        };
        // What each uid of the group still lacks.
        let lacking = |m: &models::Row| -> TaskBatches {
            tasks
                .iter()
                .map(|(task, bs)| {
                    (*task, bs.iter().copied().filter(|b| !done.contains(&(m.uid, b.task.clone(), b.batch_index))).collect::<Vec<_>>())
                })
                .filter(|(_, bs)| !bs.is_empty())
                .collect()
        };
        let todos: Vec<(&models::Row, TaskBatches)> = group.iter().map(|m| (*m, lacking(m))).filter(|(_, todo)| !todo.is_empty()).collect();
        if todos.is_empty() {
            continue;
        }
        let work = if first.status != models::Status::Ok {
            Work::Unusable(format!("{}: {}", first.status.as_str(), first.reason.as_deref().unwrap_or("not usable")))
        } else {
            let competition = competition_rules(opts.profile.as_ref(), competition_id, &model_file.meta.provenance)?;
            let precision = precisions.get(&competition_id).expect("computed above for every competition with batches").clone();
            let rules = Rules::of(competition_id, competition, precision);
            if opts.evaluate_copies {
                Work::EachCopy(rules)
            } else {
                // One evaluation for the group: the batches some uid lacks and no uid of the
                // group has from an earlier run, under the lowest uid.
                let known: BTreeMap<(&str, u32), &losses::Row> = previous
                    .iter()
                    .filter(|r| group.iter().any(|m| m.uid == r.uid) && r.competition_id == competition_id)
                    .map(|r| ((r.task.as_str(), r.batch_index), r))
                    .collect();
                let lacked: BTreeSet<(&str, u32)> =
                    todos.iter().flat_map(|(_, todo)| todo.values().flatten().map(|b| (b.task.as_str(), b.batch_index))).collect();
                let mut needed = TaskBatches::new();
                for b in tasks.values().flatten() {
                    let key = (b.task.as_str(), b.batch_index);
                    if lacked.contains(&key) && !known.contains_key(&key) {
                        needed.entry(b.task.as_str()).or_default().push(b);
                    }
                }
                Work::Once { rules, needed, known }
            }
        };
        plans.push(Plan { group, competition_id, todos, work });
    }
    let queue: Vec<Evaluation> = plans.iter().flat_map(Plan::evaluations).collect();
    let mut runner = Runner::new(opts, &queue);
    let mut evaluate_next = |plan: &Plan| -> anyhow::Result<Vec<losses::Row>> {
        let (mut model_rows, model_compute) = runner.next(reporter)?;
        if plan.group.iter().any(|c| retried.contains(&c.uid)) {
            worker::mark_second_death(&mut model_rows);
        }
        compute_seconds += model_compute;
        tokens += model_rows.iter().map(|r| u64::from(r.n_tokens)).sum::<u64>();
        Ok(model_rows)
    };
    for plan in &plans {
        let first = plan.group[0];
        let evaluated_as = |m: &models::Row| (m.uid != first.uid).then_some(first.uid);
        match &plan.work {
            Work::Unusable(reason) => {
                let (m, todo) = &plan.todos[0];
                let model_rows = failed_rows(m, plan.competition_id, todo, reason);
                record(journal.as_mut(), m, &model_rows)?;
                rows.extend(model_rows);
            }
            Work::EachCopy(_) => {
                for (m, _) in &plan.todos {
                    let mut model_rows = evaluate_next(plan)?;
                    model_rows.iter_mut().for_each(|r| r.evaluated_as = evaluated_as(m));
                    record(journal.as_mut(), m, &model_rows)?;
                    rows.extend(model_rows);
                }
            }
            Work::Once { needed, known, .. } => {
                let fresh = if needed.is_empty() { Vec::new() } else { evaluate_next(plan)? };
                // Every uid of the group gets its own rows of that evaluation.
                let values: BTreeMap<(&str, u32), &losses::Row> =
                    known.iter().map(|(k, r)| (*k, *r)).chain(fresh.iter().map(|r| ((r.task.as_str(), r.batch_index), r))).collect();
                for (m, todo) in &plan.todos {
                    let model_rows: Vec<losses::Row> = todo
                        .values()
                        .flatten()
                        .map(|b| {
                            let value = values[&(b.task.as_str(), b.batch_index)];
                            losses::Row { uid: m.uid, hotkey: m.hotkey.clone(), evaluated_as: evaluated_as(m), ..value.clone() }
                        })
                        .collect();
                    record(journal.as_mut(), m, &model_rows)?;
                    rows.extend(model_rows);
                }
            }
        }
    }
    // Counted over the whole table, resumed rows included: the exit code says what it holds.
    let failed_models = rows.iter().filter(|r| r.status == losses::Status::Failed).map(|r| r.uid).collect::<BTreeSet<_>>().len();
    let mut provenance = BTreeMap::new();
    provenance.insert("device".to_string(), opts.device_name.clone());
    // What was computed, however it was asked for (`--dtype auto` and `--dtype f32` give the same
    // table when the competition's dtype is f32).
    let dtypes: BTreeSet<&str> = precisions.values().map(|p| p.dtype.as_str()).collect();
    let dtype = if dtypes.is_empty() {
        opts.dtype.clone().unwrap_or_else(|| "auto".into())
    } else {
        dtypes.into_iter().collect::<Vec<_>>().join(",")
    };
    provenance.insert("dtype".to_string(), dtype);
    provenance.insert("upcast_logits".to_string(), opts.upcast.name().to_string());
    provenance.insert("attention".to_string(), opts.attention.name().to_string());
    for (id, precision) in &precisions {
        provenance.insert(format!("precision.competition.{id}"), precision.to_string());
    }
    provenance.insert("batches_sha256".to_string(), batch_file.sha256.clone());
    provenance.insert("models_sha256".to_string(), model_file.sha256.clone());
    provenance.insert("shard".to_string(), format!("{}/{}", opts.shard.index, opts.shard.count));
    let summary = Summary {
        models: mine.iter().map(Vec::len).sum(),
        distinct_models: mine.len(),
        failed_models,
        rows: rows.len(),
        resumed_rows: previous.len(),
        tokens,
        seconds: started.elapsed().as_secs_f64(),
        compute_seconds,
    };
    let bytes = tables::encode_file::<losses::Losses>(rows, &provenance)?;
    files::write(&opts.out, &bytes)?;
    if let Some(journal) = journal {
        journal.finish()?;
    }
    let outcome = if failed_models > 0 { Outcome::Partial { failed: failed_models } } else { Outcome::Done };
    Ok((outcome, summary))
}

/// The step's models grouped by what they are: uids whose snapshots have the same model hash in
/// the same competition (so the same rules, precision and batches) form one group, evaluated
/// once; any other uid (no hash, not usable) is a group of its own. In order of the lowest uid,
/// each group's uids in order.
fn same_models<'m>(candidates: &[&'m models::Row]) -> Vec<Vec<&'m models::Row>> {
    let mut groups: Vec<Vec<&models::Row>> = Vec::new();
    let mut by_hash: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    for m in candidates {
        let key = match (m.status, m.model_hash.as_deref(), m.competition_id) {
            (models::Status::Ok, Some(hash), Some(competition_id)) => Some((hash, competition_id)),
            _ => None,
        };
        match key.and_then(|k| by_hash.get(&k).copied()) {
            Some(i) => groups[i].push(m),
            None => {
                if let Some(k) = key {
                    by_hash.insert(k, groups.len());
                }
                groups.push(vec![m]);
            }
        }
    }
    groups
}

/// Makes one model's rows durable before the next model starts.
fn record(journal: Option<&mut journal::Writer>, m: &models::Row, rows: &[losses::Row]) -> anyhow::Result<()> {
    let Some(journal) = journal else { return Ok(()) };
    let rows = rows.iter().map(journal::JournalRow::from_row).collect();
    // A stop waits for the line: a checkpoint is written whole or not at all.
    let _whole = crate::interrupt::Critical::enter();
    journal.append(&journal::Entry { uid: m.uid, hotkey: m.hotkey.clone(), local_path: m.local_path.clone(), rows })
}

/// With `--resume`, the rows of an earlier run of the same batches (never of other batches).
fn previous_rows(opts: &Options, batches_sha256: &str) -> anyhow::Result<Vec<losses::Row>> {
    if !opts.resume || matches!(opts.out, Location::Std) || !opts.out.exists()? {
        return Ok(Vec::new());
    }
    let old = tables::read::<losses::Losses>(&opts.out)?;
    match old.meta.provenance.get("batches_sha256") {
        Some(h) if h == batches_sha256 => Ok(old.rows),
        _ => bail!("{}: was computed on other batches; remove it or drop --resume", opts.out),
    }
}

fn competition_rules<'p>(
    profile: Option<&'p Profile>,
    id: u16,
    provenance: &BTreeMap<String, String>,
) -> anyhow::Result<Option<&'p Competition>> {
    let Some(profile) = profile else { return Ok(None) };
    let block = provenance.get("block").and_then(|b| b.parse().ok()).unwrap_or(u64::MAX);
    Ok(Some(profile.competition_at(id, block).with_context(|| format!("checking models of competition {id}"))?))
}

fn failed_rows(m: &models::Row, competition_id: u16, tasks: &TaskBatches, reason: &str) -> Vec<losses::Row> {
    complete(m, competition_id, tasks, Vec::new(), Some(reason.to_string()))
}

fn row(uid: u16, hotkey: &str, competition_id: u16, b: &batches::Row, loss: f64, n_tokens: u32, reason: Option<String>) -> losses::Row {
    let status = if reason.is_none() { losses::Status::Ok } else { losses::Status::Failed };
    // A reason is one short line: no backtraces (RUST_BACKTRACE) or build paths in a table that
    // must be byte-identical from run to run.
    let reason = reason.map(|r| r.lines().next().unwrap_or_default().chars().take(MAX_REASON_CHARS).collect());
    losses::Row {
        uid,
        hotkey: hotkey.to_string(),
        competition_id,
        task: b.task.clone(),
        batch_index: b.batch_index,
        loss,
        n_tokens,
        status,
        reason,
        evaluated_as: None,
    }
}

/// What a model is held to: its competition's parameter bounds, architectures, which tasks
/// run the sanity check, and the precision it is evaluated in. Plain data, so that it travels to
/// a worker process.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rules {
    pub competition_id: u16,
    pub min_params: Option<u64>,
    pub max_params: Option<u64>,
    pub architectures: Option<Vec<String>>,
    pub sanity_tasks: BTreeSet<String>,
    pub precision: Precision,
}

impl Options {
    /// The dtype and rounding rules for a competition's models: `--dtype` or the competition's
    /// dtype, the transformers version its validators pin, `--upcast-logits`, `--attention`.
    fn precision_for(&self, competition: Option<&Competition>) -> Precision {
        // A profile's dtype (torch's spelling) in valkit's; an unknown one is refused at load.
        let from_profile = competition
            .and_then(|c| c.constraints.dtype.as_deref())
            .map(|d| numerics::dtype_name(d).map_or_else(|| d.to_string(), String::from));
        Precision {
            dtype: self.dtype.clone().or(from_profile).unwrap_or_else(|| "f32".into()),
            upcast: self.upcast,
            transformers: self.profile.as_ref().and_then(|p| p.subnet.transformers.clone()),
            attention: self.attention,
        }
    }

    /// How the journal names this run's numerics (a resumed run must use the same).
    fn numerics_label(&self) -> String {
        format!("{} upcast={} attention={}", self.dtype.as_deref().unwrap_or("auto"), self.upcast.name(), self.attention.name())
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            competition_id: 0,
            min_params: None,
            max_params: None,
            architectures: None,
            sanity_tasks: BTreeSet::new(),
            precision: Precision::f32(),
        }
    }
}

impl Rules {
    fn of(competition_id: u16, competition: Option<&Competition>, precision: Precision) -> Self {
        let Some(c) = competition else { return Self { competition_id, precision, ..Self::default() } };
        let sanity_tasks =
            c.tasks.iter().filter(|t| c.constraints.sanity_check && t.method == EvalMethod::TextLoss).map(|t| t.name.clone()).collect();
        Self {
            competition_id,
            min_params: Some(c.constraints.min_params),
            max_params: Some(c.constraints.max_params),
            architectures: Some(c.constraints.architectures.clone()),
            sanity_tasks,
            precision,
        }
    }
}

/// What an evaluation reports as it goes.
pub enum Event<'a> {
    /// Tokens done (for the progress bar).
    Advance(u64),
    /// One batch scored, or failed with a reason.
    Row { batch: &'a batches::Row, loss: f64, n_tokens: u32, reason: Option<String> },
    /// Seconds one batch's forward and loss took (model loading excluded), for the summary.
    Computed(f64),
}

/// What the step does for one distinct model (a group of copies), decided before anything is
/// evaluated.
struct Plan<'a> {
    /// The uids of the model, lowest first: the evaluation is the first's.
    group: &'a [&'a models::Row],
    competition_id: u16,
    /// Each uid that lacks rows, and the batches it lacks.
    todos: Vec<(&'a models::Row, TaskBatches<'a>)>,
    work: Work<'a>,
}

enum Work<'a> {
    /// fetch-models could not use the model: failed rows with this reason, nothing evaluated.
    Unusable(String),
    /// Every uid's batches evaluated again under its own uid (`--evaluate-copies`).
    EachCopy(Rules),
    /// One evaluation of `needed` (what some uid lacks and none has from an earlier run) under
    /// the first uid; `known` are the rows an earlier run left.
    Once { rules: Rules, needed: TaskBatches<'a>, known: BTreeMap<(&'a str, u32), &'a losses::Row> },
}

/// One model evaluated on some batches.
struct Evaluation<'p> {
    m: &'p models::Row,
    rules: &'p Rules,
    tasks: &'p TaskBatches<'p>,
    label: String,
}

impl<'a> Plan<'a> {
    /// The evaluations this plan asks for, in the order it uses them.
    fn evaluations(&self) -> Vec<Evaluation<'_>> {
        match &self.work {
            Work::Unusable(_) => Vec::new(),
            Work::EachCopy(rules) => {
                self.todos.iter().map(|(m, tasks)| Evaluation { m, rules, tasks, label: format!("uid {}", m.uid) }).collect()
            }
            Work::Once { needed, .. } if needed.is_empty() => Vec::new(),
            Work::Once { rules, needed, .. } => {
                let m = self.group[0];
                let copies: Vec<String> = self.group[1..].iter().map(|c| c.uid.to_string()).collect();
                let label =
                    if copies.is_empty() { format!("uid {}", m.uid) } else { format!("uid {} (also {})", m.uid, copies.join(", ")) };
                vec![Evaluation { m, rules, tasks: needed, label }]
            }
        }
    }
}

/// Room kept beside two resident models for the second worker itself (its runtime, a CUDA
/// context of some hundred MiB).
const SECOND_WORKER_BYTES: u64 = 1 << 30;

/// Runs the step's evaluations in order, each in its worker (or in this process with
/// `--no-isolation`). With load-ahead, the next model's worker starts and loads while the
/// current one computes, when both models fit the memory the admission check allows; otherwise
/// it loads after, as one at a time. Either way the rows are the same.
struct Runner<'q, 'p> {
    opts: &'q Options,
    queue: &'q [Evaluation<'p>],
    next: usize,
    /// The worker of `queue[next]`, started while the one before computed.
    ahead: Option<worker::Running>,
    /// The memory a model's admission check allows: measured once for the step, so that no
    /// model's admission depends on what another worker holds when it loads.
    memory_bytes: u64,
    /// Each queued model's estimated residency, read from its headers when first asked for
    /// (`None` inside: its size cannot be told).
    needs: Vec<std::cell::OnceCell<Option<u64>>>,
}

impl<'q, 'p> Runner<'q, 'p> {
    fn new(opts: &'q Options, queue: &'q [Evaluation<'p>]) -> Self {
        let memory_bytes = Limits::for_device(&opts.device, 0).memory_bytes;
        let needs = queue.iter().map(|_| std::cell::OnceCell::new()).collect();
        Self { opts, queue, next: 0, ahead: None, memory_bytes, needs }
    }

    /// Evaluates the next model of the queue: a crash, a hang past the deadline or a panic
    /// becomes its failed rows with the reason, never a failed run.
    fn next(&mut self, reporter: &dyn super::Reporter) -> anyhow::Result<(Vec<losses::Row>, f64)> {
        let i = self.next;
        let e = &self.queue[i];
        self.next += 1;
        reporter.start(
            &e.label,
            e.tasks.values().map(|b| b.len() as u64).sum(),
            e.tasks.values().flatten().map(|b| b.token_ids.len() as u64).sum(),
        );
        let started = Instant::now();
        let (rows, compute) = if self.opts.isolate {
            let mut current = match self.ahead.take() {
                Some(loaded) => loaded,
                None => worker::Running::spawn(self.opts, e.m, e.rules, e.tasks, self.memory_bytes)?,
            };
            current.go();
            if let Some(following) = self.queue.get(i + 1).filter(|_| self.opts.load_ahead && self.fit_together(i, i + 1)) {
                tracing::debug!(uid = following.m.uid, "loading while uid {} computes", e.m.uid);
                self.ahead = Some(worker::Running::spawn(self.opts, following.m, following.rules, following.tasks, self.memory_bytes)?);
            }
            current.finish(self.opts, e.m, e.rules, e.tasks, reporter)?
        } else {
            self.in_process(e, reporter)
        };
        reporter.finish();
        let failed = rows.iter().filter(|r| r.status == losses::Status::Failed).count();
        tracing::info!(uid = e.m.uid, rows = rows.len(), failed, seconds = started.elapsed().as_secs_f64(), compute, "model evaluated");
        Ok((rows, compute))
    }

    /// Whether queued models `a` and `b` fit the memory together, weights and working sets, from
    /// their configs and weight headers; a model whose size cannot be told (it will fail to
    /// load) never does.
    fn fit_together(&self, a: usize, b: usize) -> bool {
        let need = |i: usize| {
            *self.needs[i].get_or_init(|| {
                let e = &self.queue[i];
                let dir = e.m.local_path.as_deref()?;
                let limits = limits_for(e.rules, e.tasks, self.memory_bytes);
                Model::memory_needed(Path::new(dir), &limits, &e.rules.precision).ok()
            })
        };
        match (need(a), need(b)) {
            (Some(a), Some(b)) => a.saturating_add(b).saturating_add(SECOND_WORKER_BYTES) <= self.memory_bytes,
            _ => false,
        }
    }

    fn in_process(&self, e: &Evaluation, reporter: &dyn super::Reporter) -> (Vec<losses::Row>, f64) {
        let (m, rules, tasks) = (e.m, e.rules, e.tasks);
        let mut rows = Vec::new();
        let mut compute = 0.0;
        let deadline = self.opts.model_timeout.map(|t| Instant::now() + t);
        let mut emit = |event: Event| match event {
            Event::Advance(n) => reporter.advance(n),
            Event::Row { batch, loss, n_tokens, reason } => {
                rows.push(row(m.uid, &m.hotkey, rules.competition_id, batch, loss, n_tokens, reason))
            }
            Event::Computed(seconds) => compute += seconds,
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let model = load(m.local_path.as_deref(), rules, &self.opts.device, tasks, self.memory_bytes)?;
            score(&model, rules, tasks, deadline, self.opts.model_timeout, &mut emit)
        }));
        let reason = match result {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason),
            Err(_) => Some("panic: the evaluation crashed".to_string()),
        };
        (complete(m, rules.competition_id, tasks, rows, reason), compute)
    }
}

/// The rows an evaluation produced, plus failed rows (with `reason`) for every batch it did not
/// reach, in the table's batch order.
fn complete(
    m: &models::Row,
    competition_id: u16,
    tasks: &TaskBatches,
    mut rows: Vec<losses::Row>,
    reason: Option<String>,
) -> Vec<losses::Row> {
    let Some(reason) = reason else { return rows };
    let done: BTreeSet<(String, u32)> = rows.iter().map(|r| (r.task.clone(), r.batch_index)).collect();
    for b in tasks.values().flatten() {
        if !done.contains(&(b.task.clone(), b.batch_index)) {
            rows.push(row(m.uid, &m.hotkey, competition_id, b, f64::INFINITY, 0, Some(reason.clone())));
        }
    }
    rows
}

/// Loads the snapshot in `dir` for `tasks`, held to `rules` within `memory_bytes`. `Err` is a
/// reason that fails every batch.
pub fn load(dir: Option<&str>, rules: &Rules, device: &Device, tasks: &TaskBatches, memory_bytes: u64) -> Result<Model, String> {
    let dir = dir.ok_or("missing-local-path: the models table gives no snapshot directory")?;
    if !Path::new(dir).is_dir() {
        return Err(format!("missing-local-path: {dir} is not a directory"));
    }
    let limits = limits_for(rules, tasks, memory_bytes);
    let model = Model::load(Path::new(dir), &limits, device, &rules.precision).map_err(|e| e.to_string())?;
    if let Some(allowed) = &rules.architectures {
        admission::check_architecture(&model.architecture, allowed, rules.competition_id)?;
    }
    Ok(model)
}

/// What a model of `rules` is held to at load, for batches as long as the longest of `tasks`.
fn limits_for(rules: &Rules, tasks: &TaskBatches, memory_bytes: u64) -> Limits {
    Limits {
        max_params: rules.max_params.unwrap_or(u64::MAX),
        min_params: rules.min_params.unwrap_or(0),
        memory_bytes,
        max_sequence_length: tasks.values().flatten().map(|b| b.token_ids.len()).max().unwrap_or(0),
    }
}

/// Scores every batch with a loaded model, reporting each as it is done. `Err` is a reason that
/// fails the batches not reported.
pub fn score(
    model: &Model,
    rules: &Rules,
    tasks: &TaskBatches,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    emit: &mut dyn FnMut(Event),
) -> Result<(), String> {
    for (task, batches) in tasks {
        if rules.sanity_tasks.contains(*task) {
            if let Err(reason) = sanity_check(model, batches) {
                for b in batches {
                    emit(Event::Row { batch: b, loss: f64::INFINITY, n_tokens: 0, reason: Some(reason.clone()) });
                }
                continue;
            }
        }
        for b in batches {
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(format!("timeout: over {:.0} s", timeout.unwrap_or_default().as_secs_f64()));
            }
            let computing = Instant::now();
            let result = model.loss(&b.token_ids, b.context_len as usize);
            emit(Event::Computed(computing.elapsed().as_secs_f64()));
            emit(Event::Advance(b.token_ids.len() as u64));
            let (loss, n_tokens, reason) = match result {
                Ok((loss, n)) if loss.is_finite() => (loss, n, None),
                Ok((loss, _)) => (f64::INFINITY, 0, Some(format!("non-finite-loss: {loss}"))),
                Err(e) => (f64::INFINITY, 0, Some(e.to_string())),
            };
            emit(Event::Row { batch: b, loss, n_tokens, reason });
        }
    }
    Ok(())
}

/// upstream.md §5.2: greedy 20 tokens after the first 100 of the task's first two batches.
fn sanity_check(model: &Model, batches: &[&batches::Row]) -> Result<(), String> {
    if batches.len() < 2 {
        return Ok(());
    }
    let continuation =
        |b: &batches::Row| model.greedy(&b.token_ids[..100.min(b.token_ids.len())], 20).map_err(|e| format!("sanity-check: {e}"));
    let (a, b) = (continuation(batches[0])?, continuation(batches[1])?);
    model::sanity_check(&a, &b)
}
