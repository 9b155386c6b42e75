//! Competition profiles (SPEC §4): a schedule of competitions by activation block, each with its
//! model constraints, epsilon function, eval tasks and weighting rule, plus the subnet-level
//! tracker parameters. Built-in `sn9` and `sn37` reproduce upstream.md §3; a user's TOML file in
//! the same format defines any other subnet of the kind. Parses text handed to it; no chain, no hub.

use std::fmt;
use std::path::Path;

pub mod admission;
mod epsilon;
mod raw;

pub use epsilon::EpsilonFunc;

const BUILTIN: [(&str, &str); 2] = [("sn9", include_str!("profiles/sn9.toml")), ("sn37", include_str!("profiles/sn37.toml"))];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown profile {0:?} (built-in profiles: sn9, sn37)")]
    UnknownProfile(String),
    #[error("cannot read competitions file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {field}: {problem}")]
    Invalid { origin: String, field: String, problem: String },
    #[error("competition {id} is not defined in profile {profile} (ids: {known})")]
    UnknownCompetition { id: u16, profile: String, known: String },
    #[error("competition {id} is not scheduled at block {block} in profile {profile} (scheduled there: {active})")]
    NotScheduled { id: u16, block: u64, profile: String, active: String },
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// The directory of the profile file: `local` datasets are named relative to it.
    pub base_dir: Option<std::path::PathBuf>,
    pub netuid: u16,
    pub subnet: SubnetParams,
    /// Sorted by activation block, strictly increasing.
    pub schedule: Vec<ScheduleEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubnetParams {
    pub alpha: f64,
    pub weight_threshold: f64,
    pub sample_min: usize,
    pub keep_fill_by_score: bool,
    pub weights_version_key: u64,
    pub sync_cadence: u64,
    pub sync_genesis: u64,
    pub max_batches_per_task: usize,
    /// upstream.md §1.2's `updated_models_limit`: keep sets plus newly admitted models; None: no cap.
    pub updated_models_limit: Option<usize>,
    pub top_miners: Option<TopMinerRule>,
    /// The transformers version upstream's validators pin (`model::numerics` knows what it does).
    pub transformers: Option<String>,
}

/// upstream.md §1.3: a miner holding at least `min_weight_fraction` of the weight of a validator
/// with a permit and `min_validator_stake` is evaluated, bypassing the cap, once `retry_blocks`
/// have passed since its last evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopMinerRule {
    pub min_validator_stake: f64,
    pub min_weight_fraction: f64,
    pub retry_blocks: u64,
}

#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    pub block: u64,
    pub competitions: Vec<Competition>,
}

#[derive(Debug, Clone)]
pub struct Competition {
    pub id: u16,
    /// The key the profile defines it under, e.g. `B3_MODEL`.
    pub name: String,
    pub reward: f64,
    pub constraints: Constraints,
    pub epsilon: EpsilonFunc,
    pub weighting: Weighting,
    /// In profile order: task scores are summed in this order.
    pub tasks: Vec<EvalTask>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraints {
    pub min_params: u64,
    pub max_params: u64,
    pub max_bytes: u64,
    pub sequence_length: Option<u32>,
    /// None: each model brings its own tokenizer.
    pub tokenizer: Option<String>,
    pub architectures: Vec<String>,
    pub dtype: Option<String>,
    pub eval_block_delay: u64,
    /// SN9's greedy-generation check before text loss (upstream.md §5.2).
    pub sanity_check: bool,
    pub norm_validation: Option<NormValidation>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormValidation {
    pub soft: f64,
    pub soft_fraction: f64,
    pub hard: f64,
}

/// How a step's win rates become the competition's step weights (upstream.md §6.4, §6.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weighting {
    /// SN9: competitive filter, then softmax(win_rate / temperature); a lone uid has win rate 1.
    Softmax { temperature: f64 },
    /// SN37: weight 1 to every uid with the best win rate; a lone uid has win rate 0.
    WinnerTakesAll,
}

impl std::fmt::Display for Weighting {
    /// The profile TOML's inline-table form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Softmax { temperature } => write!(f, "{{ kind = \"softmax\", temperature = {temperature:?} }}"),
            Self::WinnerTakesAll => write!(f, "{{ kind = \"winner-takes-all\" }}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalTask {
    pub name: String,
    pub method: EvalMethod,
    pub weight: f64,
    pub pages: Option<u32>,
    pub normalization: Normalization,
    pub dataset: DatasetSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMethod {
    TextLoss,
    ReferenceLoss,
    MultipleChoice,
    IfEval,
    Wer,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalization {
    None,
    InverseExponential { ceiling: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    pub loader: String,
    pub name: String,
    pub config: Option<String>,
    pub split: String,
    pub max_pages: Option<u64>,
    pub rows_per_page: Option<u32>,
    pub target_size: Option<u32>,
    pub auth: bool,
    /// stack-v2: the object-store prefix holding each row's content as `{prefix}{blob_id}` (gzip).
    pub content: Option<String>,
}

const LOADERS: [&str; 8] =
    ["config-sampling", "row-offset", "stack-v2", "synthetic-1-sft", "codeforces-cots", "peoples-speech", "generated", "local"];

impl Profile {
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(name, _)| *name)
    }

    /// The TOML text of a built-in profile, comments included, for `profile show`.
    pub fn builtin_text(name: &str) -> Result<&'static str, Error> {
        BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, text)| *text).ok_or_else(|| Error::UnknownProfile(name.to_string()))
    }

    pub fn builtin(name: &str) -> Result<Self, Error> {
        Self::parse(Self::builtin_text(name)?, &format!("profile {name}"))
    }

    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        let mut profile = Self::parse(&text, &path.display().to_string())?;
        profile.base_dir = path.parent().map(Path::to_path_buf);
        Ok(profile)
    }

    /// Parses and validates profile TOML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        let raw: raw::Profile =
            toml::from_str(text).map_err(|e| Error::Parse { origin: origin.to_string(), message: one_line_toml_error(text, &e) })?;
        validate(raw, origin)
    }

    /// The schedule entry in force at `block`: the last whose activation block is `<= block`.
    pub fn schedule_at(&self, block: u64) -> Option<&ScheduleEntry> {
        self.schedule.iter().rev().find(|e| e.block <= block)
    }

    /// Competition `id` as scheduled at `block`.
    pub fn competition_at(&self, id: u16, block: u64) -> Result<&Competition, Error> {
        let scheduled = self.schedule_at(block).map(|e| e.competitions.as_slice()).unwrap_or(&[]);
        if let Some(c) = scheduled.iter().find(|c| c.id == id) {
            return Ok(c);
        }
        let mut known: Vec<u16> = self.schedule.iter().flat_map(|e| e.competitions.iter().map(|c| c.id)).collect();
        known.sort_unstable();
        known.dedup();
        if !known.contains(&id) {
            return Err(Error::UnknownCompetition { id, profile: self.name.clone(), known: join(&known) });
        }
        let active: Vec<u16> = scheduled.iter().map(|c| c.id).collect();
        Err(Error::NotScheduled { id, block, profile: self.name.clone(), active: join(&active) })
    }

    /// The sync block of `block` (upstream.md §1.1, §4.1): `(b - g) // c * c + g`, floor division.
    pub fn sync_block(&self, block: u64) -> i128 {
        let (b, g, c) = (block as i128, self.subnet.sync_genesis as i128, self.subnet.sync_cadence as i128);
        (b - g).div_euclid(c) * c + g
    }

    /// The first sync block strictly after `block` (upstream.md §1.1), when SN37 paces its steps.
    pub fn next_sync_block(&self, block: u64) -> i128 {
        let (b, g, c) = (block as i128, self.subnet.sync_genesis as i128, self.subnet.sync_cadence as i128);
        let next = (b - g + c - 1).div_euclid(c) * c + g;
        if next == b {
            next + c
        } else {
            next
        }
    }
}

fn join(ids: &[u16]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
}

/// A toml error as `line L, column C: message`, without the multi-line source snippet.
fn one_line_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Python's `math.isclose(a, b)` with its default relative tolerance, as upstream asserts sums.
pub fn is_close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

struct Check<'a> {
    origin: &'a str,
}

impl Check<'_> {
    fn fail(&self, field: impl fmt::Display, problem: impl fmt::Display) -> Error {
        Error::Invalid { origin: self.origin.into(), field: field.to_string(), problem: problem.to_string() }
    }
    fn ensure(&self, ok: bool, field: impl fmt::Display, problem: impl fmt::Display) -> Result<(), Error> {
        if ok {
            Ok(())
        } else {
            Err(self.fail(field, problem))
        }
    }
}

fn validate(raw: raw::Profile, origin: &str) -> Result<Profile, Error> {
    let check = Check { origin };
    let s = &raw.subnet;
    check.ensure((0.0..=1.0).contains(&s.alpha), "subnet.alpha", format!("{} is not in [0, 1]", s.alpha))?;
    check.ensure(
        (0.0..1.0).contains(&s.weight_threshold),
        "subnet.weight_threshold",
        format!("{} is not in [0, 1)", s.weight_threshold),
    )?;
    check.ensure(s.sample_min >= 1, "subnet.sample_min", "must be at least 1")?;
    check.ensure(s.sync_cadence >= 1, "subnet.sync_cadence", "must be at least 1")?;
    check.ensure(s.max_batches_per_task >= 1, "subnet.max_batches_per_task", "must be at least 1")?;
    check.ensure(s.updated_models_limit != Some(0), "subnet.updated_models_limit", "must be at least 1")?;
    if let Some(t) = &s.top_miners {
        let stake = t.min_validator_stake.is_finite() && t.min_validator_stake >= 0.0;
        check.ensure(stake, "subnet.top_miners.min_validator_stake", format!("{} is not a finite stake >= 0", t.min_validator_stake))?;
        let fraction = (0.0..=1.0).contains(&t.min_weight_fraction);
        check.ensure(fraction, "subnet.top_miners.min_weight_fraction", format!("{} is not in [0, 1]", t.min_weight_fraction))?;
    }
    check.ensure(!raw.schedule.is_empty(), "schedule", "no schedule entries")?;
    let mut schedule = Vec::with_capacity(raw.schedule.len());
    let mut previous: Option<u64> = None;
    for (i, entry) in raw.schedule.iter().enumerate() {
        let at = format!("schedule[{i}] (block {})", entry.block);
        if let Some(p) = previous {
            check.ensure(entry.block > p, &at, format!("activation blocks must increase (previous entry is block {p})"))?;
        }
        previous = Some(entry.block);
        check.ensure(!entry.competitions.is_empty(), &at, "no competitions")?;
        let mut competitions = Vec::new();
        for sc in &entry.competitions {
            let def = raw.competitions.get(&sc.competition).ok_or_else(|| {
                check.fail(
                    &at,
                    format!(
                        "unknown competition {:?} (defined: {})",
                        sc.competition,
                        raw.competitions.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            check.ensure(sc.reward.is_finite() && sc.reward > 0.0, &at, format!("reward of {} must be > 0", sc.competition))?;
            check.ensure(
                competitions.iter().all(|c: &Competition| c.id != def.id),
                &at,
                format!("competition id {} appears twice", def.id),
            )?;
            competitions.push(competition(&check, &raw, &sc.competition, def, sc.reward)?);
        }
        let total: f64 = competitions.iter().map(|c| c.reward).sum();
        check.ensure(is_close(total, 1.0), &at, format!("reward shares sum to {total}, expected 1"))?;
        schedule.push(ScheduleEntry { block: entry.block, competitions });
    }
    Ok(Profile {
        name: raw.name.clone(),
        base_dir: None,
        netuid: raw.netuid,
        subnet: SubnetParams {
            alpha: s.alpha,
            weight_threshold: s.weight_threshold,
            sample_min: s.sample_min,
            keep_fill_by_score: s.keep_fill_by_score,
            weights_version_key: s.weights_version_key,
            sync_cadence: s.sync_cadence,
            sync_genesis: s.sync_genesis,
            max_batches_per_task: s.max_batches_per_task,
            updated_models_limit: s.updated_models_limit,
            top_miners: s.top_miners.as_ref().map(|t| TopMinerRule {
                min_validator_stake: t.min_validator_stake,
                min_weight_fraction: t.min_weight_fraction,
                retry_blocks: t.retry_blocks,
            }),
            transformers: s.transformers.clone(),
        },
        schedule,
    })
}

fn competition(check: &Check, raw: &raw::Profile, key: &str, def: &raw::Competition, reward: f64) -> Result<Competition, Error> {
    let at = format!("competitions.{key}");
    check.ensure(def.min_params <= def.max_params, &at, "min_params exceeds max_params")?;
    check.ensure(def.max_params >= 1, format!("{at}.max_params"), "must be at least 1")?;
    check.ensure(def.max_bytes >= 1, format!("{at}.max_bytes"), "must be at least 1")?;
    check.ensure(def.sequence_length != Some(0), format!("{at}.sequence_length"), "must be at least 1")?;
    if let Some(n) = &def.norm_validation {
        let limits = n.soft.is_finite() && n.soft > 0.0 && n.hard.is_finite() && n.hard >= n.soft;
        check.ensure(limits, format!("{at}.norm_validation"), format!("need 0 < soft <= hard, got soft {}, hard {}", n.soft, n.hard))?;
        let fraction = (0.0..=1.0).contains(&n.soft_fraction);
        check.ensure(fraction, format!("{at}.norm_validation.soft_fraction"), format!("{} is not in [0, 1]", n.soft_fraction))?;
    }
    let epsilon = match def.epsilon {
        raw::Epsilon::Fixed { value } => {
            check.ensure((0.0..1.0).contains(&value), format!("{at}.epsilon"), format!("value {value} is not in [0, 1)"))?;
            EpsilonFunc::Fixed { value }
        }
        raw::Epsilon::LinearDecay { start, end, decay_blocks } => {
            check.ensure(
                (0.0..1.0).contains(&start) && (0.0..=start).contains(&end),
                format!("{at}.epsilon"),
                format!("need 0 <= end <= start < 1, got start {start}, end {end}"),
            )?;
            check.ensure(decay_blocks > 0, format!("{at}.epsilon.decay_blocks"), "must be > 0")?;
            EpsilonFunc::LinearDecay { start, end, decay_blocks: decay_blocks as f64 }
        }
    };
    let weighting = match def.weighting {
        raw::Weighting::Softmax { temperature } => {
            check.ensure(temperature.is_finite() && temperature > 0.0, format!("{at}.weighting.temperature"), "must be > 0")?;
            Weighting::Softmax { temperature }
        }
        raw::Weighting::WinnerTakesAll => Weighting::WinnerTakesAll,
    };
    let raw_tasks = match &def.tasks {
        raw::Tasks::Inline(tasks) => tasks,
        raw::Tasks::Set(name) => {
            raw.task_sets.get(name).ok_or_else(|| check.fail(format!("{at}.tasks"), format!("unknown task set {name:?}")))?
        }
    };
    check.ensure(!raw_tasks.is_empty(), format!("{at}.tasks"), "no eval tasks")?;
    let mut tasks: Vec<EvalTask> = Vec::new();
    for t in raw_tasks {
        let tat = format!("{at}.tasks.{}", t.name);
        check.ensure(tasks.iter().all(|o| o.name != t.name), &tat, "task name appears twice")?;
        check.ensure(t.weight.is_finite() && t.weight > 0.0, format!("{tat}.weight"), "must be > 0")?;
        let method = match t.method.as_str() {
            "text-loss" => EvalMethod::TextLoss,
            "reference-loss" => EvalMethod::ReferenceLoss,
            "multiple-choice" => EvalMethod::MultipleChoice,
            "if-eval" => EvalMethod::IfEval,
            "wer" => EvalMethod::Wer,
            other => {
                return Err(check.fail(
                    format!("{tat}.method"),
                    format!("unknown method {other:?} (text-loss, reference-loss, multiple-choice, if-eval, wer)"),
                ))
            }
        };
        let normalization = match t.normalization {
            None | Some(raw::Normalization::None) => Normalization::None,
            Some(raw::Normalization::InverseExponential { ceiling }) => {
                check.ensure(ceiling.is_finite() && ceiling > 0.0, format!("{tat}.normalization.ceiling"), "must be > 0")?;
                Normalization::InverseExponential { ceiling }
            }
        };
        let d = &t.dataset;
        // Counts a sampler divides by or draws below: zero would panic there or draw nothing.
        let counts = [
            ("pages", t.pages.map(u64::from)),
            ("dataset.max_pages", d.max_pages),
            ("dataset.rows_per_page", d.rows_per_page.map(u64::from)),
            ("dataset.target_size", d.target_size.map(u64::from)),
        ];
        for (field, value) in counts {
            check.ensure(value != Some(0), format!("{tat}.{field}"), "must be at least 1")?;
        }
        check.ensure(
            LOADERS.contains(&d.loader.as_str()),
            format!("{tat}.dataset.loader"),
            format!("unknown loader {:?} ({})", d.loader, LOADERS.join(", ")),
        )?;
        check.ensure(
            d.loader != "stack-v2" || d.content.as_deref().is_some_and(|c| c.contains("://")),
            format!("{tat}.dataset.content"),
            "a stack-v2 dataset needs `content`, the object-store prefix of its blobs (e.g. \"s3://softwareheritage/content/\")"
                .to_string(),
        )?;
        tasks.push(EvalTask {
            name: t.name.clone(),
            method,
            weight: t.weight,
            pages: t.pages,
            normalization,
            dataset: DatasetSpec {
                loader: d.loader.clone(),
                name: d.name.clone(),
                config: d.config.clone(),
                split: d.split.clone().unwrap_or_else(|| "train".into()),
                max_pages: d.max_pages,
                rows_per_page: d.rows_per_page,
                target_size: d.target_size,
                auth: d.auth,
                content: d.content.clone(),
            },
        });
    }
    let total: f64 = tasks.iter().map(|t| t.weight).sum();
    check.ensure(is_close(total, 1.0), format!("{at}.tasks"), format!("task weights sum to {total}, expected 1"))?;
    Ok(Competition {
        id: def.id,
        name: key.to_string(),
        reward,
        constraints: Constraints {
            min_params: def.min_params,
            max_params: def.max_params,
            max_bytes: def.max_bytes,
            sequence_length: def.sequence_length,
            tokenizer: def.tokenizer.clone(),
            architectures: def.architectures.clone(),
            dtype: def.dtype.clone(),
            eval_block_delay: def.eval_block_delay,
            sanity_check: def.sanity_check,
            norm_validation: def.norm_validation.as_ref().map(|n| NormValidation {
                soft: n.soft,
                soft_fraction: n.soft_fraction,
                hard: n.hard,
            }),
        },
        epsilon,
        weighting,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sn9_reproduces_upstream_constants() {
        let p = Profile::builtin("sn9").unwrap();
        assert_eq!((p.netuid, p.subnet.alpha, p.subnet.sample_min, p.subnet.weights_version_key), (9, 0.5, 5, 4062));
        let now = p.schedule_at(5_200_000).unwrap();
        let ids: Vec<(u16, f64)> = now.competitions.iter().map(|c| (c.id, c.reward)).collect();
        assert_eq!(ids, [(6, 0.55), (2, 0.15), (4, 0.3)]);
        let b14 = p.competition_at(4, 5_200_000).unwrap();
        assert_eq!(b14.epsilon, EpsilonFunc::LinearDecay { start: 0.005, end: 0.0001, decay_blocks: 14_400.0 });
        assert_eq!(b14.constraints.max_bytes, 29 * 1024 * 1024 * 1024);
        assert_eq!(b14.weighting, Weighting::Softmax { temperature: 0.01 });
        let names: Vec<&str> = b14.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["FINEWEB", "FINEWEB_EDU2", "STACKV2_DEDUP", "PES2OX", "FINEMATH_3P", "INFIWEBMATH_3P"]);
        let before = p.competition_at(2, 5_177_980).unwrap();
        assert_eq!(before.epsilon, EpsilonFunc::LinearDecay { start: 0.005, end: 0.0005, decay_blocks: 50_400.0 });
        assert_eq!(p.sync_block(5_200_123), 5_200_050);
    }

    #[test]
    fn sn37_reproduces_upstream_constants() {
        let p = Profile::builtin("sn37").unwrap();
        assert_eq!((p.subnet.alpha, p.subnet.weight_threshold, p.subnet.sample_min), (0.9, 0.18, 3));
        let c = p.competition_at(4, 5_300_000).unwrap();
        assert_eq!(c.weighting, Weighting::WinnerTakesAll);
        assert_eq!(c.constraints.sequence_length, Some(16_384));
        assert!(matches!(p.competition_at(3, 5_300_000), Err(Error::NotScheduled { .. })));
        assert!(matches!(p.competition_at(9, 5_300_000), Err(Error::UnknownCompetition { .. })));
        // Genesis-aligned 360-block sync blocks (upstream.md §1.1), as in the `seeds` vectors.
        let v = &crate::scoring::vectors::section("seeds")["sn37"];
        let cur = v["current_block"].as_u64().unwrap();
        assert_eq!(p.sync_block(cur), i128::from(v["sync_block"].as_u64().unwrap()));
        assert_eq!(p.next_sync_block(cur), i128::from(v["next_sync_block"].as_u64().unwrap()));
        let on_boundary = v["sync_block"].as_u64().unwrap();
        assert_eq!(p.next_sync_block(on_boundary), i128::from(v["next_sync_block_when_on_boundary"].as_u64().unwrap()));
        let sn9 = &crate::scoring::vectors::section("seeds")["sn9"];
        let p9 = Profile::builtin("sn9").unwrap();
        assert_eq!(p9.sync_block(sn9["current_block"].as_u64().unwrap()), i128::from(sn9["sync_block"].as_u64().unwrap()));
    }

    #[test]
    fn counts_and_fractions_out_of_range_are_refused_naming_the_field() {
        let sn9 = Profile::builtin_text("sn9").unwrap();
        let sn37 = Profile::builtin_text("sn37").unwrap();
        let cases = [
            (sn9, "pages = 15", "pages = 0", "tasks.FINEWEB.pages: must be at least 1"),
            (sn9, "max_pages = 5_451_114_734", "max_pages = 0", "dataset.max_pages: must be at least 1"),
            (sn9, "sequence_length = 4096", "sequence_length = 0", "sequence_length: must be at least 1"),
            (sn9, "max_bytes = 16_106_127_360", "max_bytes = 0", "max_bytes: must be at least 1"),
            (sn37, "rows_per_page = 150", "rows_per_page = 0", "dataset.rows_per_page: must be at least 1"),
            (sn37, "target_size = 120", "target_size = 0", "dataset.target_size: must be at least 1"),
        ];
        for (text, from, to, expected) in cases {
            assert!(text.contains(from), "{from}");
            let err = Profile::parse(&text.replacen(from, to, 1), "p.toml").unwrap_err().to_string();
            assert!(err.contains(expected), "{to}: {err}");
        }
        assert!(Profile::parse(sn9, "p.toml").is_ok() && Profile::parse(sn37, "p.toml").is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let bad = Profile::builtin_text("sn9").unwrap().replace("reward = 0.55", "reward = 0.5");
        let err = Profile::parse(&bad, "my.toml").unwrap_err().to_string();
        assert!(err.starts_with("my.toml: schedule[1] (block 5177981): reward shares sum to 0.95"), "{err}");
        let typo = Profile::builtin_text("sn37").unwrap().replace("alpha = 0.9", "alpah = 0.9");
        let err = Profile::parse(&typo, "t.toml").unwrap_err().to_string();
        assert!(err.contains("line 9") && err.contains("alpah") && !err.contains('\n'), "{err}");
        let weights = Profile::builtin_text("sn9").unwrap().replace("weight = 0.02", "weight = 0.2");
        let err = Profile::parse(&weights, "w.toml").unwrap_err().to_string();
        assert!(err.contains("competitions.B3_MODEL_TMP.tasks: task weights sum to 1.18"), "{err}");
    }
}
