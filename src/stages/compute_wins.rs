//! `compute-wins`: one competition step from stored losses (upstream.md §5.5, §6). Reads the
//! losses (several shards concatenate), the metagraph and the previous tracker; writes the
//! `wins`, `weights` and new `tracker` tables into an output directory, all or nothing.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};

use crate::competition::{Competition, EpsilonFunc, Profile, Weighting};
use crate::exit::Outcome;
use crate::files::{self, Location};
use crate::scoring::{self, CompetitionTracker, Contender, EvalResult, StepInput, TaskScore};
use crate::tables::{self, losses, metagraph, tracker, weights, wins, TableFile};

/// Parameters a researcher may override to re-score stored losses.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub epsilon_start: Option<f64>,
    pub epsilon_end: Option<f64>,
    pub epsilon_decay_blocks: Option<u64>,
    pub alpha: Option<f64>,
    pub temperature: Option<f64>,
    pub weight_threshold: Option<f64>,
    pub sample_min: Option<usize>,
}

/// Provenance key of the weights version key set-weights sends.
pub const PROVENANCE_VERSION_KEY: &str = "version_key";

pub struct Options {
    pub profile: Profile,
    pub competition_id: u16,
    pub metagraph: Location,
    pub losses: Vec<Location>,
    pub tracker: Option<Location>,
    /// Defaults to the block the metagraph was read at.
    pub current_block: Option<u64>,
    pub out_dir: Location,
    pub overrides: Overrides,
}

/// The parameters a step actually ran with, after overrides.
#[derive(Debug, Clone)]
struct Params {
    epsilon: EpsilonFunc,
    weighting: Weighting,
    alpha: f64,
    weight_threshold: f64,
    sample_min: usize,
    keep_fill_by_score: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub competition_id: u16,
    pub cur_block: u64,
    pub top_uid: u16,
    pub uids: usize,
    /// The weights that survive the u16 conversion, i.e. what `set-weights` would send.
    pub nonzero_weights: BTreeMap<u16, f32>,
    /// For each of those uids, the competitions whose tracker holds its weight: a uid can be paid
    /// by a competition this step did not evaluate.
    pub weight_from: BTreeMap<u16, Vec<u16>>,
    pub out_dir: String,
}

pub fn run(opts: &Options) -> anyhow::Result<(Outcome, Option<Summary>)> {
    // The previous tracker may live where the new one goes (`--tracker state/tracker.parquet
    // --out-dir state/`); the metagraph and the losses may not.
    let inputs: Vec<&Location> = std::iter::once(&opts.metagraph).chain(&opts.losses).collect();
    for name in ["wins.parquet", "weights.parquet"] {
        files::ensure_not_input(&opts.out_dir.join(name), &inputs)?;
    }
    let metagraph = tables::read::<metagraph::Metagraph>(&opts.metagraph)?;
    let current_block = match opts.current_block {
        Some(b) => b,
        None => metagraph_block(&metagraph)?,
    };
    let competition = opts.profile.competition_at(opts.competition_id, current_block)?;
    let params = resolve_params(&opts.profile, competition, &opts.overrides)?;
    let mut all_losses = Vec::new();
    for location in &opts.losses {
        let file = tables::read::<losses::Losses>(location)?;
        all_losses.extend(file.rows.into_iter().map(|r| (location.clone(), r)));
    }
    check_losses(&all_losses, &metagraph, competition)?;
    // The rows, not the files: shards scored together give the bytes one host's table gives.
    let losses_digest = losses::rows_digest(all_losses.iter().map(|(_, r)| r));
    let rows: Vec<losses::Row> = all_losses.into_iter().map(|(_, r)| r).filter(|r| r.competition_id == opts.competition_id).collect();
    if rows.is_empty() {
        let why = format!("no losses for competition {} in the given files", opts.competition_id);
        return Ok((Outcome::NothingToDo { why }, None));
    }
    let previous = match &opts.tracker {
        Some(location) => Some(tables::read::<tracker::Tracker>(location)?),
        None => None,
    };
    let (contenders, reasons) = score_uids(&rows, &metagraph.rows, competition);
    let mut state = TrackerState::load(previous.as_ref(), &metagraph.rows, params.alpha);
    let schedule: Vec<(u16, f64)> =
        opts.profile.schedule_at(current_block).map(|e| e.competitions.iter().map(|c| (c.id, c.reward)).collect()).unwrap_or_default();
    let input = StepInput {
        competition_id: opts.competition_id,
        contenders: &contenders,
        epsilon: params.epsilon,
        weighting: params.weighting,
        current_block,
        num_neurons: metagraph.rows.len(),
        schedule: &schedule,
        weight_threshold: params.weight_threshold,
        sample_min: params.sample_min,
        keep_fill_by_score: params.keep_fill_by_score,
    };
    let step = scoring::run_step(&input, &mut state.tracker)?;
    state.record(opts.competition_id, &step);

    let hotkeys: BTreeMap<u16, &str> = metagraph.rows.iter().map(|m| (m.uid, m.hotkey.as_str())).collect();
    let win_rows = wins_rows(opts.competition_id, &contenders, &step, &reasons, &hotkeys, &params.epsilon, current_block);
    let weight_rows = weights_rows(&step.subnet_weights, &hotkeys)?;
    let tracker_rows = state.rows(&hotkeys);

    let mut prov = BTreeMap::new();
    prov.insert("profile".to_string(), opts.profile.name.clone());
    prov.insert("netuid".to_string(), opts.profile.netuid.to_string());
    prov.insert("competition_id".to_string(), opts.competition_id.to_string());
    // The version key set-weights sends with these weights (upstream's spec version).
    prov.insert(PROVENANCE_VERSION_KEY.to_string(), opts.profile.subnet.weights_version_key.to_string());
    prov.insert("cur_block".to_string(), current_block.to_string());
    prov.insert("metagraph_sha256".to_string(), metagraph.sha256.clone());
    prov.insert("losses_rows_sha256".to_string(), losses_digest);
    if let Some(t) = &previous {
        prov.insert("previous_tracker_sha256".to_string(), t.sha256.clone());
    }
    prov.insert("epsilon".to_string(), params.epsilon.to_string());
    prov.insert("weighting".to_string(), params.weighting.to_string());
    prov.insert("alpha".to_string(), params.alpha.to_string());
    prov.insert("weight_threshold".to_string(), params.weight_threshold.to_string());
    prov.insert("sample_min".to_string(), params.sample_min.to_string());
    prov.insert("top_uid".to_string(), step.top_uid.to_string());

    let outputs = [
        ("wins.parquet", tables::encode_file::<wins::Wins>(win_rows, &prov)?),
        ("weights.parquet", tables::encode_file::<weights::Weights>(weight_rows.clone(), &prov)?),
        ("tracker.parquet", tables::encode_file::<tracker::Tracker>(tracker_rows, &prov)?),
    ];
    write_all(&opts.out_dir, &outputs)?;
    // The weights that survive the u16 conversion: what set-weights sends.
    let paid: Vec<&weights::Row> = weight_rows.iter().filter(|w| w.weight_u16 > 0).collect();
    let summary = Summary {
        competition_id: opts.competition_id,
        cur_block: current_block,
        top_uid: step.top_uid,
        uids: contenders.len(),
        nonzero_weights: paid.iter().map(|w| (w.uid, w.weight)).collect(),
        weight_from: paid
            .iter()
            .map(|w| {
                let held = |weights: &Vec<f32>| weights.get(usize::from(w.uid)).is_some_and(|&x| x > 0.0);
                (w.uid, state.tracker.weights.iter().filter(|(_, weights)| held(weights)).map(|(&c, _)| c).collect())
            })
            .collect(),
        out_dir: opts.out_dir.to_string(),
    };
    Ok((Outcome::Done, Some(summary)))
}

fn metagraph_block(metagraph: &TableFile<metagraph::Row>) -> anyhow::Result<u64> {
    let Some(value) = metagraph.meta.provenance.get(metagraph::PROVENANCE_BLOCK) else {
        bail!(
            "{}: no `valkit.{}` metadata to take the current block from; pass --cur-block",
            metagraph.location,
            metagraph::PROVENANCE_BLOCK
        )
    };
    value.parse().with_context(|| format!("{}: `valkit.block` is not a block number: {value:?}", metagraph.location))
}

fn resolve_params(profile: &Profile, competition: &Competition, o: &Overrides) -> anyhow::Result<Params> {
    let epsilon = match (competition.epsilon, o.epsilon_start, o.epsilon_end, o.epsilon_decay_blocks) {
        (e, None, None, None) => e,
        (EpsilonFunc::Fixed { value }, start, None, None) => EpsilonFunc::Fixed { value: start.unwrap_or(value) },
        (base, start, end, decay) => {
            let (s0, e0, d0) = match base {
                EpsilonFunc::LinearDecay { start, end, decay_blocks } => (Some(start), Some(end), Some(decay_blocks)),
                EpsilonFunc::Fixed { .. } => (None, None, None),
            };
            let (Some(start), Some(end), Some(decay_blocks)) = (start.or(s0), end.or(e0), decay.map(|d| d as f64).or(d0)) else {
                bail!("a linear-decay epsilon needs --epsilon-start, --epsilon-end and --epsilon-decay-blocks (competition {} uses a fixed epsilon)", competition.id)
            };
            if !(0.0..1.0).contains(&start) || !(0.0..=start).contains(&end) || decay_blocks <= 0.0 {
                bail!(
                    "epsilon needs 0 <= end <= start < 1 and decay blocks > 0 (got start {start}, end {end}, decay blocks {decay_blocks})"
                );
            }
            EpsilonFunc::LinearDecay { start, end, decay_blocks }
        }
    };
    let weighting = match (competition.weighting, o.temperature) {
        (Weighting::Softmax { .. }, Some(t)) if t.is_finite() && t > 0.0 => Weighting::Softmax { temperature: t },
        (_, Some(t)) if !(t.is_finite() && t > 0.0) => bail!("--temperature must be > 0, got {t}"),
        (Weighting::WinnerTakesAll, Some(_)) => {
            bail!("--temperature applies to softmax weighting; competition {} is winner-takes-all", competition.id)
        }
        (w, _) => w,
    };
    let alpha = o.alpha.unwrap_or(profile.subnet.alpha);
    if !(0.0..=1.0).contains(&alpha) {
        bail!("--alpha must be in [0, 1], got {alpha}");
    }
    let weight_threshold = o.weight_threshold.unwrap_or(profile.subnet.weight_threshold);
    if !(0.0..1.0).contains(&weight_threshold) {
        bail!("--weight-threshold must be in [0, 1), got {weight_threshold}");
    }
    let sample_min = o.sample_min.unwrap_or(profile.subnet.sample_min);
    if sample_min == 0 {
        bail!("--sample-min must be at least 1");
    }
    Ok(Params { epsilon, weighting, alpha, weight_threshold, sample_min, keep_fill_by_score: profile.subnet.keep_fill_by_score })
}

/// Refuses inputs that would silently score the wrong thing: duplicated rows, uids the metagraph
/// does not know, tasks the competition does not have.
fn check_losses(rows: &[(Location, losses::Row)], metagraph: &TableFile<metagraph::Row>, competition: &Competition) -> anyhow::Result<()> {
    let uids: BTreeSet<u16> = metagraph.rows.iter().map(|m| m.uid).collect();
    let mut seen: BTreeMap<(u16, u16, &str, u32), &Location> = BTreeMap::new();
    for (location, r) in rows {
        if let Some(first) = seen.insert((r.competition_id, r.uid, r.task.as_str(), r.batch_index), location) {
            bail!("{location}: duplicate loss row for uid {} task {} batch {} (also in {first})", r.uid, r.task, r.batch_index);
        }
        if !uids.contains(&r.uid) {
            bail!("{location}: uid {} has losses but is not in the metagraph {}", r.uid, metagraph.location);
        }
        if r.competition_id == competition.id && !competition.tasks.iter().any(|t| t.name == r.task) {
            let known: Vec<&str> = competition.tasks.iter().map(|t| t.name.as_str()).collect();
            bail!("{location}: task {:?} is not an eval task of competition {} ({})", r.task, competition.id, known.join(", "));
        }
    }
    Ok(())
}

/// Each uid's aggregate score and commit block as upstream's validator would have them
/// (upstream.md §5.5), with the reason when the score is `inf`.
fn score_uids(rows: &[losses::Row], metagraph: &[metagraph::Row], competition: &Competition) -> (Vec<Contender>, BTreeMap<u16, String>) {
    // task -> every batch index any uid was scored on: a task with no rows did not load.
    let mut batches_of_task: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    let mut by_uid: BTreeMap<u16, BTreeMap<&str, BTreeMap<u32, &losses::Row>>> = BTreeMap::new();
    for r in rows {
        batches_of_task.entry(&r.task).or_default().insert(r.batch_index);
        by_uid.entry(r.uid).or_default().entry(&r.task).or_default().insert(r.batch_index, r);
    }
    let graph: BTreeMap<u16, &metagraph::Row> = metagraph.iter().map(|m| (m.uid, m)).collect();
    let mut contenders = Vec::new();
    let mut reasons = BTreeMap::new();
    for (&uid, tasks) in &by_uid {
        let m = graph[&uid];
        let (score, block, reason) = match (m.competition_id, m.commit_block) {
            (Some(c), Some(block)) if c == competition.id => {
                let (score, reason) = uid_score(m, tasks, &batches_of_task, competition);
                (score, block as f64, reason)
            }
            (Some(c), Some(_)) => (f64::INFINITY, f64::INFINITY, Some(format!("other-competition: committed to competition {c}"))),
            _ => (
                f64::INFINITY,
                f64::INFINITY,
                Some(m.metadata_error.clone().map_or("no-commitment".into(), |e| format!("no-commitment: {e}"))),
            ),
        };
        if let Some(r) = reason {
            reasons.insert(uid, r);
        }
        contenders.push(Contender { uid, score, block });
    }
    (contenders, reasons)
}

type TaskRows<'a> = BTreeMap<&'a str, BTreeMap<u32, &'a losses::Row>>;

fn uid_score(
    m: &metagraph::Row,
    tasks: &TaskRows,
    batches_of_task: &BTreeMap<&str, BTreeSet<u32>>,
    competition: &Competition,
) -> (f64, Option<String>) {
    let all_rows = || tasks.values().flat_map(|b| b.values());
    if let Some(r) = all_rows().find(|r| r.hotkey != m.hotkey) {
        return (f64::INFINITY, Some(format!("hotkey-changed: losses are for {} but uid {} is now {}", r.hotkey, m.uid, m.hotkey)));
    }
    // A model that failed everywhere never loaded: upstream scores it inf whatever the tasks'
    // normalisation.
    if all_rows().all(|r| !r.is_ok()) {
        let first = all_rows().next().expect("uid has rows");
        return (f64::INFINITY, Some(format!("failed: {}", first.reason.as_deref().unwrap_or("no reason recorded"))));
    }
    let mut scores = Vec::with_capacity(competition.tasks.len());
    let mut reason = None;
    for task in &competition.tasks {
        let raw = match batches_of_task.get(task.name.as_str()) {
            None => None,
            Some(expected) => {
                let got = tasks.get(task.name.as_str());
                let have = got.map_or(0, BTreeMap::len);
                if have != expected.len() || got.is_some_and(|b| !b.keys().eq(expected.iter())) {
                    reason.get_or_insert(format!("incomplete: task {} has {have} of {} batches", task.name, expected.len()));
                    Some(f64::INFINITY)
                } else {
                    let batches = got.expect("complete task");
                    if let Some(bad) = batches.values().find(|r| !r.is_ok()) {
                        reason.get_or_insert(format!(
                            "failed: task {} batch {}: {}",
                            task.name,
                            bad.batch_index,
                            bad.reason.as_deref().unwrap_or("no reason recorded")
                        ));
                        Some(f64::INFINITY)
                    } else {
                        let losses: Vec<f64> = batches.values().map(|r| r.loss).collect();
                        Some(scoring::mean(&losses))
                    }
                }
            }
        };
        scores.push(TaskScore { weight: task.weight, normalization: task.normalization, raw });
    }
    let score = scoring::task_weighted_score(&scores);
    (score, if score.is_finite() { None } else { reason })
}

/// The competition tracker plus, per (competition, uid), the keep flag and the eval history.
struct TrackerState {
    tracker: CompetitionTracker,
    keep: BTreeMap<(u16, u16), bool>,
    history: BTreeMap<(u16, u16), Vec<EvalResult>>,
}

/// upstream keeps the 3 most recent eval results per (hotkey, competition).
const HISTORY_LEN: usize = 3;

impl TrackerState {
    fn load(previous: Option<&TableFile<tracker::Row>>, metagraph: &[metagraph::Row], alpha: f64) -> Self {
        let num_neurons = metagraph.len();
        let mut state = Self { tracker: CompetitionTracker::new(num_neurons, alpha), keep: BTreeMap::new(), history: BTreeMap::new() };
        let Some(previous) = previous else { return state };
        let size = previous.rows.iter().map(|r| usize::from(r.uid) + 1).max().unwrap_or(0).max(num_neurons);
        state.tracker = CompetitionTracker::new(size, alpha);
        let hotkeys: BTreeMap<u16, &str> = metagraph.iter().map(|m| (m.uid, m.hotkey.as_str())).collect();
        for r in &previous.rows {
            state.tracker.weights.entry(r.competition_id).or_insert_with(|| vec![0.0; size])[usize::from(r.uid)] = r.weight;
            state.keep.insert((r.competition_id, r.uid), r.keep);
            // A uid that changed hands starts with a clean history, as upstream's model tracker
            // forgets hotkeys that left the metagraph.
            if r.hotkey.as_deref() == hotkeys.get(&r.uid).copied() && !r.history.is_empty() {
                state.history.insert((r.competition_id, r.uid), r.history.clone());
            }
        }
        state
    }

    fn record(&mut self, competition_id: u16, step: &scoring::Step) {
        for u in &step.uids {
            self.keep.insert((competition_id, u.uid), u.keep);
        }
        self.keep.retain(|(c, uid), _| *c != competition_id || step.uids.iter().any(|u| u.uid == *uid));
        for (uid, result) in &step.eval_results {
            let history = self.history.entry((competition_id, *uid)).or_default();
            history.push(*result);
            if history.len() > HISTORY_LEN {
                history.drain(..history.len() - HISTORY_LEN);
            }
        }
    }

    fn rows(&self, hotkeys: &BTreeMap<u16, &str>) -> Vec<tracker::Row> {
        let mut rows = Vec::new();
        for (&competition_id, weights) in &self.tracker.weights {
            for (uid, &weight) in weights.iter().enumerate() {
                let uid = u16::try_from(uid).expect("tracker sizes come from u16 uids");
                rows.push(tracker::Row {
                    competition_id,
                    uid,
                    weight,
                    keep: self.keep.get(&(competition_id, uid)).copied().unwrap_or(false),
                    hotkey: hotkeys.get(&uid).map(|h| h.to_string()),
                    history: self.history.get(&(competition_id, uid)).cloned().unwrap_or_default(),
                });
            }
        }
        rows
    }
}

fn wins_rows(
    competition_id: u16,
    contenders: &[Contender],
    step: &scoring::Step,
    reasons: &BTreeMap<u16, String>,
    hotkeys: &BTreeMap<u16, &str>,
    epsilon: &EpsilonFunc,
    current_block: u64,
) -> Vec<wins::Row> {
    contenders
        .iter()
        .zip(&step.uids)
        .map(|(c, o)| wins::Row {
            uid: c.uid,
            hotkey: hotkeys.get(&c.uid).map(|h| h.to_string()).unwrap_or_default(),
            competition_id,
            commit_block: c.block.is_finite().then_some(c.block as u64),
            score: c.score,
            epsilon_adv: epsilon.compute(current_block as f64, c.block),
            competitive: o.competitive,
            wins: o.wins,
            win_rate: o.win_rate,
            step_weight: o.step_weight,
            tracker_weight: o.tracker_weight,
            keep: o.keep,
            top: c.uid == step.top_uid,
            score_reason: reasons.get(&c.uid).cloned(),
        })
        .collect()
}

fn weights_rows(subnet_weights: &[f32], hotkeys: &BTreeMap<u16, &str>) -> anyhow::Result<Vec<weights::Row>> {
    let uids: Vec<i64> = (0..subnet_weights.len() as i64).collect();
    let widened: Vec<f64> = subnet_weights.iter().map(|&w| f64::from(w)).collect();
    let (sent_uids, sent_values) = crate::weights::convert_for_emit(&uids, &widened).context("converting subnet weights to u16")?;
    let sent: BTreeMap<u16, u16> = sent_uids.into_iter().zip(sent_values).collect();
    Ok(subnet_weights
        .iter()
        .enumerate()
        .map(|(uid, &weight)| {
            let uid = u16::try_from(uid).expect("tracker sizes come from u16 uids");
            weights::Row { uid, hotkey: hotkeys.get(&uid).map(|h| h.to_string()), weight, weight_u16: sent.get(&uid).copied().unwrap_or(0) }
        })
        .collect())
}

/// Publishes the outputs as one set in a directory (`files::publish_set`). Under an object
/// prefix each table is replaced whole by its own PUT, the tracker last: object stores have no
/// rename, so a reader between two PUTs can see a new wins table beside the previous tracker
/// (every table records the step's block and competition in its provenance to tell them apart).
fn write_all(dir: &Location, outputs: &[(&str, Vec<u8>)]) -> anyhow::Result<()> {
    let names = || outputs.iter().map(|o| o.0).collect::<Vec<_>>().join(", ");
    match dir {
        Location::Object(_) => {
            for (name, bytes) in outputs {
                files::write(&dir.join(name), bytes)?;
            }
            Ok(())
        }
        Location::Path(path) => files::publish_set(path, outputs).with_context(|| format!("publishing {} in {dir}", names())),
        Location::Std => anyhow::bail!("--out-dir cannot be `-`: compute-wins writes {}", names()),
    }
}
