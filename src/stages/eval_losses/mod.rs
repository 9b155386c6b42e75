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
use candle_core::{DType, Device};

use crate::competition::{Competition, EvalMethod, Profile};
use crate::exit::Outcome;
use crate::files::{self, Location};
use crate::model::{self, Limits, Model};
use crate::tables::{self, batches, losses, models};

mod journal;

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
    pub dtype: DType,
    pub shard: Shard,
    pub resume: bool,
    pub model_timeout: Option<Duration>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub models: usize,
    pub failed_models: usize,
    pub rows: usize,
    pub resumed_rows: usize,
    pub tokens: u64,
    pub seconds: f64,
}

/// The batches one model is scored on, grouped by task in table order.
type TaskBatches<'a> = BTreeMap<&'a str, Vec<&'a batches::Row>>;

pub fn run(opts: &Options, reporter: &dyn super::Reporter) -> anyhow::Result<(Outcome, Summary)> {
    let started = Instant::now();
    let model_file = tables::decode_file::<models::Models>(&files::read(&opts.models)?)?;
    let batch_file = tables::decode_file::<batches::Batches>(&files::read(&opts.batches)?)?;
    // One writer per output: a second run on the same --out stops here instead of mixing rows.
    let _lock = match &opts.out {
        Location::Path(path) => Some(files::OutputLock::acquire(path)?),
        Location::Std => None,
    };
    let header = journal::Header {
        valkit_journal: 1,
        batches_sha256: batch_file.sha256.clone(),
        device: opts.device_name.clone(),
        dtype: format!("{:?}", opts.dtype).to_lowercase(),
        shard: format!("{}/{}", opts.shard.index, opts.shard.count),
    };
    let in_step: BTreeMap<u16, &models::Row> = model_file.rows.iter().filter(|m| m.in_step).map(|m| (m.uid, m)).collect();
    let current = |uid: u16, hotkey: &str| in_step.get(&uid).is_some_and(|m| m.hotkey == hotkey);
    // Rows of an earlier run are kept only for a uid that still has the same hotkey (and, from
    // the journal, the same snapshot); anything else is computed again.
    let mut previous: Vec<losses::Row> =
        previous_rows(opts, &batch_file.sha256)?.into_iter().filter(|r| current(r.uid, &r.hotkey)).collect();
    let mut journal = None;
    if let Location::Path(out) = &opts.out {
        let path = journal::path_for(out);
        let kept: Vec<journal::Entry> = if opts.resume {
            let same_model =
                |e: &journal::Entry| current(e.uid, &e.hotkey) && in_step.get(&e.uid).is_some_and(|m| m.local_path == e.local_path);
            journal::read(&path, &header)?.into_iter().filter(same_model).collect()
        } else {
            if path.exists() {
                tracing::warn!(journal = %path.display(), "an interrupted run's journal is discarded (pass --resume to keep its rows)");
            }
            Vec::new()
        };
        for entry in &kept {
            for r in &entry.rows {
                previous.push(r.to_row(entry.uid, &entry.hotkey)?);
            }
        }
        journal = Some(journal::Writer::create(&path, &header, &kept)?);
    }
    let mut by_competition: BTreeMap<u16, TaskBatches> = BTreeMap::new();
    for b in &batch_file.rows {
        by_competition.entry(b.competition_id).or_default().entry(b.task.as_str()).or_default().push(b);
    }
    // Every uid in the step reaches compute-wins: one fetch-models could not use becomes failed
    // rows (score inf, its commit block kept), as upstream scores a model that fails to load.
    let mut candidates: Vec<&models::Row> = model_file.rows.iter().filter(|m| m.in_step).collect();
    candidates.sort_by_key(|m| m.uid);
    let mine: Vec<&models::Row> =
        candidates.into_iter().enumerate().filter(|(i, _)| i % opts.shard.count == opts.shard.index).map(|(_, m)| m).collect();
    let done: BTreeSet<(u16, String, u32)> = previous.iter().map(|r| (r.uid, r.task.clone(), r.batch_index)).collect();
    let mut rows = previous.clone();
    let (mut failed_models, mut tokens) = (0, 0u64);
    for m in &mine {
        let Some(competition_id) = m.competition_id else {
            tracing::warn!(uid = m.uid, "model row has no competition id; skipped");
            continue;
        };
        let Some(tasks) = by_competition.get(&competition_id) else {
            tracing::warn!(uid = m.uid, competition_id, "no batches for this competition; skipped");
            continue;
        };
        let todo: TaskBatches = tasks
            .iter()
            .map(|(task, bs)| {
                (*task, bs.iter().copied().filter(|b| !done.contains(&(m.uid, b.task.clone(), b.batch_index))).collect::<Vec<_>>())
            })
            .filter(|(_, bs)| !bs.is_empty())
            .collect();
        if todo.is_empty() {
            continue;
        }
        if m.status != models::Status::Ok {
            let reason = format!("{}: {}", m.status.as_str(), m.reason.as_deref().unwrap_or("not usable"));
            let model_rows = failed_rows(m, competition_id, &todo, &reason);
            record(journal.as_mut(), m, &model_rows)?;
            rows.extend(model_rows);
            failed_models += 1;
            continue;
        }
        let competition = competition_rules(opts.profile.as_ref(), competition_id, &model_file.meta.provenance)?;
        let todo_tokens: u64 = todo.values().flatten().map(|b| b.token_ids.len() as u64).sum();
        reporter.start(&format!("uid {}", m.uid), todo.values().map(|b| b.len() as u64).sum(), todo_tokens);
        let model_rows = evaluate_model(opts, m, competition_id, &todo, competition, reporter);
        reporter.finish();
        if model_rows.iter().any(|r| r.status == losses::Status::Failed) {
            failed_models += 1;
        }
        tokens += model_rows.iter().map(|r| u64::from(r.n_tokens)).sum::<u64>();
        record(journal.as_mut(), m, &model_rows)?;
        rows.extend(model_rows);
    }
    let mut provenance = BTreeMap::new();
    provenance.insert("device".to_string(), opts.device_name.clone());
    provenance.insert("dtype".to_string(), format!("{:?}", opts.dtype).to_lowercase());
    provenance.insert("batches_sha256".to_string(), batch_file.sha256.clone());
    provenance.insert("models_sha256".to_string(), model_file.sha256.clone());
    provenance.insert("shard".to_string(), format!("{}/{}", opts.shard.index, opts.shard.count));
    let summary = Summary {
        models: mine.len(),
        failed_models,
        rows: rows.len(),
        resumed_rows: previous.len(),
        tokens,
        seconds: started.elapsed().as_secs_f64(),
    };
    let bytes = tables::encode_file::<losses::Losses>(rows, &provenance)?;
    files::write(&opts.out, &bytes)?;
    if let Some(journal) = journal {
        journal.finish()?;
    }
    let outcome = if failed_models > 0 { Outcome::Partial { failed: failed_models } } else { Outcome::Done };
    Ok((outcome, summary))
}

/// Makes one model's rows durable before the next model starts.
fn record(journal: Option<&mut journal::Writer>, m: &models::Row, rows: &[losses::Row]) -> anyhow::Result<()> {
    let Some(journal) = journal else { return Ok(()) };
    let rows = rows.iter().map(journal::JournalRow::from_row).collect();
    journal.append(&journal::Entry { uid: m.uid, hotkey: m.hotkey.clone(), local_path: m.local_path.clone(), rows })
}

/// With `--resume`, the rows of an earlier run of the same batches (never of other batches).
fn previous_rows(opts: &Options, batches_sha256: &str) -> anyhow::Result<Vec<losses::Row>> {
    let Location::Path(path) = &opts.out else { return Ok(Vec::new()) };
    if !opts.resume || !path.exists() {
        return Ok(Vec::new());
    }
    let old = tables::decode_file::<losses::Losses>(&files::read(&opts.out)?)?;
    match old.meta.provenance.get("batches_sha256") {
        Some(h) if h == batches_sha256 => Ok(old.rows),
        _ => bail!("{}: was computed on other batches; remove it or drop --resume", path.display()),
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
    tasks.values().flatten().map(|b| row(m, competition_id, b, f64::INFINITY, 0, Some(reason.to_string()))).collect()
}

fn row(m: &models::Row, competition_id: u16, b: &batches::Row, loss: f64, n_tokens: u32, reason: Option<String>) -> losses::Row {
    let status = if reason.is_none() { losses::Status::Ok } else { losses::Status::Failed };
    losses::Row {
        uid: m.uid,
        hotkey: m.hotkey.clone(),
        competition_id,
        task: b.task.clone(),
        batch_index: b.batch_index,
        loss,
        n_tokens,
        status,
        reason,
    }
}

/// One model, isolated: a panic inside the numerics is a failed model, not a failed run.
fn evaluate_model(
    opts: &Options,
    m: &models::Row,
    competition_id: u16,
    tasks: &TaskBatches,
    competition: Option<&Competition>,
    reporter: &dyn super::Reporter,
) -> Vec<losses::Row> {
    let started = Instant::now();
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| evaluate(opts, m, competition_id, tasks, competition, started, reporter)));
    let rows = match result {
        Ok(Ok(rows)) => rows,
        Ok(Err(reason)) => failed_rows(m, competition_id, tasks, &format!("{reason} (after {:.1} s)", started.elapsed().as_secs_f64())),
        Err(_) => failed_rows(m, competition_id, tasks, "panic: the evaluation crashed"),
    };
    let failed = rows.iter().filter(|r| r.status == losses::Status::Failed).count();
    tracing::info!(uid = m.uid, rows = rows.len(), failed, seconds = started.elapsed().as_secs_f64(), "model evaluated");
    rows
}

#[allow(clippy::too_many_arguments)]
fn evaluate(
    opts: &Options,
    m: &models::Row,
    competition_id: u16,
    tasks: &TaskBatches,
    competition: Option<&Competition>,
    started: Instant,
    reporter: &dyn super::Reporter,
) -> Result<Vec<losses::Row>, String> {
    let dir = m.local_path.as_deref().ok_or("missing-local-path: the models table gives no snapshot directory")?;
    if !Path::new(dir).is_dir() {
        return Err(format!("missing-local-path: {dir} is not a directory"));
    }
    let longest = tasks.values().flatten().map(|b| b.token_ids.len()).max().unwrap_or(0);
    let mut limits = Limits::for_machine(longest);
    if let Some(c) = competition {
        limits.max_params = c.constraints.max_params;
        limits.min_params = c.constraints.min_params;
    }
    let model = Model::load(Path::new(dir), &limits, &opts.device, opts.dtype).map_err(|e| e.to_string())?;
    if let Some(c) = competition {
        if !c.constraints.architectures.contains(&model.architecture) {
            return Err(format!("architecture-not-allowed: {} is not allowed in competition {}", model.architecture, c.id));
        }
    }
    let mut rows = Vec::new();
    for (task, batches) in tasks {
        let sanity = competition
            .and_then(|c| c.tasks.iter().find(|t| t.name == *task).map(|t| c.constraints.sanity_check && t.method == EvalMethod::TextLoss))
            .unwrap_or(false);
        if sanity {
            if let Err(reason) = sanity_check(&model, batches) {
                rows.extend(batches.iter().map(|b| row(m, competition_id, b, f64::INFINITY, 0, Some(reason.clone()))));
                continue;
            }
        }
        for b in batches {
            if opts.model_timeout.is_some_and(|limit| started.elapsed() > limit) {
                let reason = format!("timeout: over {:.0} s", opts.model_timeout.unwrap_or_default().as_secs_f64());
                rows.push(row(m, competition_id, b, f64::INFINITY, 0, Some(reason)));
                continue;
            }
            let result = model.loss(&b.token_ids, b.context_len as usize);
            reporter.advance(b.token_ids.len() as u64);
            match result {
                Ok((loss, n)) if loss.is_finite() => rows.push(row(m, competition_id, b, loss, n, None)),
                Ok((loss, _)) => rows.push(row(m, competition_id, b, f64::INFINITY, 0, Some(format!("non-finite-loss: {loss}")))),
                Err(e) => rows.push(row(m, competition_id, b, f64::INFINITY, 0, Some(e.to_string()))),
            }
        }
    }
    Ok(rows)
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
