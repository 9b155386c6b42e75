//! `config.json`: the dimensions every family shares, each bounded before anything is
//! allocated; the bounds themselves (`Limits`). Each family reads its own fields
//! (`super::families`, which also holds `Config`: which family builds the model) with the
//! helpers here. transformers 5 writes
//! `rope_theta` inside `rope_parameters`; older versions at the top level. Either is read
//! (`Rotary::read`) — candle's own config silently falls back to 10000 (stack-notes §2).

use candle_core::DType;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::Error;

/// The dimensions every family has (some under their own names, mapped by the family first).
#[derive(Debug, Clone)]
pub struct Dims {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub tie_word_embeddings: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Llama 3's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// Bounds applied before loading: what the competition allows, and what the machine can hold.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_params: u64,
    pub min_params: u64,
    /// Bytes the weights and working set may use; from /proc/meminfo by default.
    pub memory_bytes: u64,
    pub max_sequence_length: usize,
}

impl Limits {
    /// No competition rule: anything that fits in memory.
    pub fn for_machine(max_sequence_length: usize) -> Self {
        Self { max_params: u64::MAX, min_params: 0, memory_bytes: available_memory(), max_sequence_length }
    }

    /// `for_machine`, with the memory of the device the model will live on: a GPU's free memory,
    /// the host's available memory for the CPU.
    pub fn for_device(device: &candle_core::Device, max_sequence_length: usize) -> Self {
        let memory_bytes = super::device::free_memory(device).unwrap_or_else(available_memory);
        Self { memory_bytes, ..Self::for_machine(max_sequence_length) }
    }

    /// A config's implied size refuses only what no model within the bounds could be: the
    /// estimate assumes a three-matrix MLP for every family and overcounts two-matrix ones
    /// (GPT-NeoX, Phi, Falcon) by up to a third. The exact count from the weight headers decides.
    pub fn check_estimate(&self, implied: u64) -> Result<(), Error> {
        if implied / ESTIMATE_SLACK > self.max_params {
            return Err(Error::Params(format!(
                "parameter-count: the config implies about {implied} parameters, far above the {} allowed",
                self.max_params
            )));
        }
        Ok(())
    }

    pub fn check_params(&self, n: u64) -> Result<(), Error> {
        crate::competition::admission::check_params(n, self.min_params, self.max_params).map_err(Error::Params)
    }

    /// Weights in `dtype` plus the largest working set of one forward.
    pub fn check_memory(&self, c: &Dims, n_params: u64, dtype: DType) -> Result<(), Error> {
        let need = self.memory_needed(c, n_params, dtype);
        if need > self.memory_bytes {
            return Err(Error::Memory(format!("needs about {:.1} GiB, {:.1} GiB available", gib(need), gib(self.memory_bytes))));
        }
        Ok(())
    }

    /// The bytes a model of these dimensions holds: its weights in `dtype` and one forward's
    /// largest working set for sequences of `max_sequence_length`.
    pub fn memory_needed(&self, c: &Dims, n_params: u64, dtype: DType) -> u64 {
        let t = self.max_sequence_length as u64;
        let elt = dtype.size_in_bytes() as u64;
        // Attention is tiled (`kernels::tiled`): f32 copies of q, k, v and a few blocks of scores,
        // nothing `[t × t]`.
        let heads = c.num_attention_heads as u64;
        let activations = t * (c.hidden_size as u64 * 8 + c.intermediate_size as u64 * 3) * 4
            + t * heads * c.head_dim as u64 * 4 * 4
            + heads * (super::attention::WIDE.queries * super::attention::WIDE.keys) as u64 * 4 * 4
            + crate::loss::LOSS_CHUNK as u64 * c.vocab_size as u64 * 4 * 3;
        n_params.saturating_mul(elt).saturating_add(activations)
    }
}

/// How far above the bound a config's estimate may go before it alone refuses a model.
pub const ESTIMATE_SLACK: u64 = 4;

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

fn available_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(u64::MAX, |kb| kb * 1024)
}

#[derive(Deserialize)]
struct CommonFields {
    vocab_size: u64,
    hidden_size: u64,
    intermediate_size: u64,
    num_hidden_layers: u64,
    num_attention_heads: u64,
    num_key_value_heads: Option<u64>,
    head_dim: Option<u64>,
    tie_word_embeddings: Option<bool>,
}

/// Upper bounds on a single dimension: far above any real model, far below an allocation bomb.
const MAX_VOCAB: u64 = 1 << 21;
const MAX_HIDDEN: u64 = 1 << 16;
const MAX_INTERMEDIATE: u64 = 1 << 18;
const MAX_LAYERS: u64 = 1 << 10;
const MAX_HEADS: u64 = 1 << 10;
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn bounded(name: &str, v: u64, max: u64) -> Result<usize, Error> {
    if v == 0 || v > max {
        return Err(Error::Config(format!("{name} = {v} is outside 1..={max}")));
    }
    Ok(v as usize)
}

/// A family's own fields of `config.json`, as its serde struct.
pub fn fields<T: DeserializeOwned>(json: &serde_json::Value) -> Result<T, Error> {
    T::deserialize(json).map_err(|e| Error::Config(format!("config.json: {e}")))
}

impl Dims {
    /// The shared dimensions, bounded; `tie_default` when the config does not say whether the
    /// head shares the embedding.
    pub fn read(json: &serde_json::Value, tie_default: bool) -> Result<Self, Error> {
        let raw: CommonFields = fields(json)?;
        let heads = bounded("num_attention_heads", raw.num_attention_heads, MAX_HEADS)?;
        let kv_heads = bounded("num_key_value_heads", raw.num_key_value_heads.unwrap_or(raw.num_attention_heads), MAX_HEADS)?;
        if heads % kv_heads != 0 {
            return Err(Error::Config(format!("{heads} attention heads are not a multiple of {kv_heads} key/value heads")));
        }
        let hidden = bounded("hidden_size", raw.hidden_size, MAX_HIDDEN)?;
        let head_dim = match raw.head_dim {
            Some(d) => bounded("head_dim", d, 4096)?,
            None if hidden % heads == 0 => hidden / heads,
            None => return Err(Error::Config(format!("hidden_size {hidden} is not a multiple of {heads} heads"))),
        };
        if head_dim % 2 != 0 {
            return Err(Error::Config(format!("head_dim {head_dim} is odd")));
        }
        Ok(Self {
            vocab_size: bounded("vocab_size", raw.vocab_size, MAX_VOCAB)?,
            hidden_size: hidden,
            intermediate_size: bounded("intermediate_size", raw.intermediate_size, MAX_INTERMEDIATE)?,
            num_hidden_layers: bounded("num_hidden_layers", raw.num_hidden_layers, MAX_LAYERS)?,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(tie_default),
        })
    }

    /// Parameters the dimensions imply, checked before reading any weight: a three-matrix MLP
    /// and two norms per layer, whatever the family (`Limits::check_estimate` allows for it).
    pub fn implied_params(&self) -> u64 {
        let (h, i, v) = (self.hidden_size as u64, self.intermediate_size as u64, self.vocab_size as u64);
        let (q, kv) = ((self.num_attention_heads * self.head_dim) as u64, (self.num_key_value_heads * self.head_dim) as u64);
        let layer = h * q * 2 + h * kv * 2 + h * i * 3 + 2 * h;
        let embeddings = if self.tie_word_embeddings { v * h } else { 2 * v * h };
        layer.saturating_mul(self.num_hidden_layers as u64).saturating_add(embeddings + h)
    }
}

/// Rotary embeddings as a config describes them: the base, how many dimensions of each head
/// rotate (`partial_rotary_factor`, GPT-NeoX's `rotary_pct`), and Llama 3's frequency scaling.
#[derive(Debug, Clone)]
pub struct Rotary {
    pub theta: f64,
    pub dim: usize,
    pub scaling: RopeScaling,
}

#[derive(Deserialize)]
struct RotaryFields {
    rope_theta: Option<f64>,
    rotary_emb_base: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<serde_json::Value>,
    partial_rotary_factor: Option<f64>,
    rotary_pct: Option<f64>,
}

impl Rotary {
    /// `default_factor`: the share of each head that rotates when the config does not say.
    pub fn read(json: &serde_json::Value, head_dim: usize, default_factor: f64) -> Result<Self, Error> {
        let raw: RotaryFields = fields(json)?;
        let params = raw.rope_parameters.as_ref();
        let theta = raw.rope_theta.or(raw.rotary_emb_base).or_else(|| params.and_then(|p| p["rope_theta"].as_f64())).unwrap_or(10_000.0);
        let scaling = rope_scaling_of(raw.rope_scaling.as_ref().filter(|s| !s.is_null()).or(params))?;
        let factor = raw
            .partial_rotary_factor
            .or(raw.rotary_pct)
            .or_else(|| params.and_then(|p| p["partial_rotary_factor"].as_f64()))
            .unwrap_or(default_factor);
        let dim = (head_dim as f64 * factor) as usize;
        if !(factor > 0.0 && factor <= 1.0 && dim > 0 && dim.is_multiple_of(2)) {
            return Err(Error::Config(format!("partial_rotary_factor {factor} gives {dim} rotary dimensions of {head_dim}")));
        }
        Ok(Self { theta, dim, scaling })
    }
}

/// Refuses an activation other than the ones the family implements (`hidden_activation`, else
/// `hidden_act`, else `default`).
pub fn check_activation(json: &serde_json::Value, class: &str, default: &str, implemented: &[&str]) -> Result<(), Error> {
    let activation = json["hidden_activation"].as_str().or(json["hidden_act"].as_str()).unwrap_or(default);
    if !implemented.contains(&activation) {
        return Err(Error::Architecture(format!("{class} with activation {activation:?}")));
    }
    Ok(())
}

/// Copies each of a family's own field names onto the common one (`(common, own)` pairs).
pub fn rename(json: &mut serde_json::Value, pairs: &[(&str, &str)]) {
    let map = json.as_object_mut().expect("config.json was checked to be an object");
    for (common, own) in pairs {
        if let Some(value) = map.get(*own).cloned() {
            map.insert((*common).into(), value);
        }
    }
}

fn rope_scaling_of(value: Option<&serde_json::Value>) -> Result<RopeScaling, Error> {
    let Some(v) = value else { return Ok(RopeScaling::None) };
    let kind = v["rope_type"].as_str().or_else(|| v["type"].as_str()).unwrap_or("default");
    match kind {
        "default" => Ok(RopeScaling::None),
        "llama3" => {
            let f = |k: &str| v[k].as_f64().ok_or_else(|| Error::Config(format!("llama3 rope scaling lacks {k}")));
            Ok(RopeScaling::Llama3 {
                factor: f("factor")?,
                low_freq_factor: f("low_freq_factor")?,
                high_freq_factor: f("high_freq_factor")?,
                original_max_position_embeddings: f("original_max_position_embeddings")?,
            })
        }
        other => Err(Error::Architecture(format!("rope scaling {other:?}"))),
    }
}
