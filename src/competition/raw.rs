//! The serde view of a competition profile TOML file. Unknown keys are errors so that a typo in
//! a user's file is reported instead of silently falling back to a default.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub netuid: u16,
    pub subnet: Subnet,
    pub schedule: Vec<ScheduleEntry>,
    pub competitions: BTreeMap<String, Competition>,
    #[serde(default)]
    pub task_sets: BTreeMap<String, Vec<Task>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub alpha: f64,
    #[serde(default)]
    pub weight_threshold: f64,
    pub sample_min: usize,
    #[serde(default)]
    pub keep_fill_by_score: bool,
    pub weights_version_key: u64,
    pub sync_cadence: u64,
    #[serde(default)]
    pub sync_genesis: u64,
    /// Batches kept per task after the shuffle (upstream's MAX_BATCHES_PER_DATASET).
    #[serde(default = "default_max_batches")]
    pub max_batches_per_task: usize,
    /// Models evaluated at once across competitions (keep sets included); none: no cap.
    pub updated_models_limit: Option<usize>,
    #[serde(default)]
    pub top_miners: Option<TopMiners>,
    /// The transformers version the reference validators pin: it decides how losses are rounded
    /// in bf16 (whether logits are upcast to f32 after the lm_head).
    pub transformers: Option<String>,
}

/// Which other validators' favourites are fetched whatever the cap (upstream.md §1.3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopMiners {
    pub min_validator_stake: f64,
    pub min_weight_fraction: f64,
    pub retry_blocks: u64,
}

fn default_max_batches() -> usize {
    50
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    pub block: u64,
    pub competitions: Vec<ScheduledCompetition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledCompetition {
    pub competition: String,
    pub reward: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Competition {
    pub id: u16,
    #[serde(default)]
    pub min_params: u64,
    pub max_params: u64,
    pub max_bytes: u64,
    pub sequence_length: Option<u32>,
    pub tokenizer: Option<String>,
    pub architectures: Vec<String>,
    pub dtype: Option<String>,
    pub eval_block_delay: u64,
    pub epsilon: Epsilon,
    pub weighting: Weighting,
    #[serde(default)]
    pub sanity_check: bool,
    pub norm_validation: Option<NormValidation>,
    pub tasks: Tasks,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Epsilon {
    Fixed { value: f64 },
    LinearDecay { start: f64, end: f64, decay_blocks: u64 },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Weighting {
    Softmax { temperature: f64 },
    WinnerTakesAll,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormValidation {
    pub soft: f64,
    pub soft_fraction: f64,
    pub hard: f64,
}

/// A competition's tasks: inline, or the name of an entry of `[task_sets]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Tasks {
    Set(String),
    Inline(Vec<Task>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub name: String,
    pub method: String,
    pub weight: f64,
    #[serde(default)]
    pub pages: Option<u32>,
    #[serde(default)]
    pub normalization: Option<Normalization>,
    pub dataset: Dataset,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Normalization {
    None,
    InverseExponential { ceiling: f64 },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub loader: String,
    pub name: String,
    pub config: Option<String>,
    pub split: Option<String>,
    pub max_pages: Option<u64>,
    pub rows_per_page: Option<u32>,
    pub target_size: Option<u32>,
    #[serde(default)]
    pub auth: bool,
    /// stack-v2: where row contents live, `content/{blob_id}` under this URL prefix.
    pub content: Option<String>,
}
