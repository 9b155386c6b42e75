//! `config.json` of a Llama-family model, every dimension bounded before anything is allocated.
//! transformers 5 writes `rope_theta` inside `rope_parameters`; older versions at the top level.
//! Either is read here — candle's own config silently falls back to 10000 (stack-notes §2).

use std::path::Path;

use candle_core::DType;
use serde::Deserialize;

use super::Error;

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

#[derive(Debug, Clone)]
pub struct Config {
    pub architecture: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    /// Qwen2 puts biases on q, k and v but not on o.
    pub qkv_bias_only: bool,
    pub mlp_bias: bool,
    pub sliding_window: Option<usize>,
    /// Layers that use the sliding window (all when None and a window is set).
    pub sliding_layers: Option<Vec<bool>>,
    /// Gemma: embeddings times sqrt(hidden), RMSNorm weights stored as `w - 1`, GELU (tanh) MLP.
    pub gemma: bool,
    /// Gemma2: norms after attention and around the MLP, logit soft-capping, attention scale
    /// from `query_pre_attn_scalar`.
    pub gemma2: bool,
    pub attn_logit_softcapping: Option<f64>,
    pub final_logit_softcapping: Option<f64>,
    pub query_pre_attn_scalar: Option<f64>,
    /// Phi3 stores q, k, v as one `qkv_proj` and gate, up as one `gate_up_proj`.
    pub fused_projections: bool,
    /// Dimensions of each head that rotate (Phi3's `partial_rotary_factor`); the rest pass through.
    pub rotary_dim: usize,
    /// GPT-NeoX and Phi: LayerNorm with bias, attention and MLP side by side, GELU.
    pub neox: bool,
    pub phi: bool,
    pub parallel_residual: bool,
    pub layer_norm_eps: f64,
    /// Falcon: fused qkv (three layouts), LayerNorm, exact GELU, optional biases.
    pub falcon: Option<Falcon>,
    /// BART's decoder: learned positions, post-LayerNorm layers, no rotary embeddings.
    pub bart: Option<Bart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bart {
    pub scale_embedding: bool,
    pub max_position_embeddings: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Falcon {
    pub new_decoder_architecture: bool,
    pub multi_query: bool,
    pub parallel_attn: bool,
    pub bias: bool,
    /// New-architecture models with two norms per layer (one per branch) or one.
    pub two_norms: bool,
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
            return Err(Error::Params(format!("the config implies about {implied} parameters, far above the {} allowed", self.max_params)));
        }
        Ok(())
    }

    pub fn check_params(&self, n: u64) -> Result<(), Error> {
        if n > self.max_params || n < self.min_params {
            return Err(Error::Params(format!("{n} parameters, outside {}..={}", self.min_params, self.max_params)));
        }
        Ok(())
    }

    /// Weights in `dtype` plus the largest working set of one forward.
    pub fn check_memory(&self, c: &Config, n_params: u64, dtype: DType) -> Result<(), Error> {
        let t = self.max_sequence_length as u64;
        let elt = dtype.size_in_bytes() as u64;
        let activations = t * (c.hidden_size as u64 * 8 + c.intermediate_size as u64 * 3) * 4
            + c.num_attention_heads as u64 * t * t * 4 * 2
            + LOSS_CHUNK as u64 * c.vocab_size as u64 * 4 * 3;
        let need = n_params.saturating_mul(elt).saturating_add(activations);
        if need > self.memory_bytes {
            return Err(Error::Memory(format!("needs about {:.1} GiB, {:.1} GiB available", gib(need), gib(self.memory_bytes))));
        }
        Ok(())
    }
}

/// How far above the bound a config's estimate may go before it alone refuses a model.
pub const ESTIMATE_SLACK: u64 = 4;

/// Positions whose logits exist at once when computing a loss.
pub const LOSS_CHUNK: usize = 256;

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
struct Raw {
    architectures: Option<Vec<String>>,
    vocab_size: u64,
    hidden_size: u64,
    intermediate_size: u64,
    num_hidden_layers: u64,
    num_attention_heads: u64,
    num_key_value_heads: Option<u64>,
    head_dim: Option<u64>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    sliding_window: Option<u64>,
    use_sliding_window: Option<bool>,
    layer_types: Option<Vec<String>>,
    hidden_act: Option<String>,
    hidden_activation: Option<String>,
    attn_logit_softcapping: Option<f64>,
    final_logit_softcapping: Option<f64>,
    query_pre_attn_scalar: Option<f64>,
    partial_rotary_factor: Option<f64>,
    rotary_pct: Option<f64>,
    rotary_emb_base: Option<f64>,
    use_parallel_residual: Option<bool>,
    layer_norm_eps: Option<f64>,
    #[serde(default)]
    qk_layernorm: bool,
}

/// Upper bounds on a single dimension: far above any real model, far below an allocation bomb.
const MAX_VOCAB: u64 = 1 << 21;
const MAX_HIDDEN: u64 = 1 << 16;
const MAX_INTERMEDIATE: u64 = 1 << 18;
const MAX_LAYERS: u64 = 1 << 10;
const MAX_HEADS: u64 = 1 << 10;
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The class `AutoModelForCausalLM.from_pretrained` builds for a config, as upstream resolves it
/// (upstream.md §2.4): transformers maps `model_type`, whatever `architectures` says. A config
/// without `model_type` falls back to `architectures[0]`; an unknown `model_type` resolves to
/// nothing (transformers would refuse it without remote code, which validators never run).
pub fn causal_lm_class(config: &serde_json::Value) -> Option<String> {
    let Some(model_type) = config.get("model_type").and_then(|t| t.as_str()) else {
        return config.get("architectures")?.get(0)?.as_str().map(str::to_string);
    };
    let class = match model_type {
        "llama" => "LlamaForCausalLM",
        "mistral" => "MistralForCausalLM",
        "mixtral" => "MixtralForCausalLM",
        "qwen2" => "Qwen2ForCausalLM",
        "qwen2_moe" => "Qwen2MoeForCausalLM",
        "gemma" => "GemmaForCausalLM",
        "gemma2" => "Gemma2ForCausalLM",
        "phi" => "PhiForCausalLM",
        "phi3" => "Phi3ForCausalLM",
        "gpt_neox" => "GPTNeoXForCausalLM",
        "falcon" => "FalconForCausalLM",
        "bart" => "BartForCausalLM",
        "gpt2" => "GPT2LMHeadModel",
        "gptj" => "GPTJForCausalLM",
        "opt" => "OPTForCausalLM",
        "bloom" => "BloomForCausalLM",
        "starcoder2" => "Starcoder2ForCausalLM",
        "olmo" => "OlmoForCausalLM",
        "stablelm" => "StableLmForCausalLM",
        "cohere" => "CohereForCausalLM",
        "mamba" => "MambaForCausalLM",
        _ => return None,
    };
    Some(class.to_string())
}

fn bounded(name: &str, v: u64, max: u64) -> Result<usize, Error> {
    if v == 0 || v > max {
        return Err(Error::Config(format!("{name} = {v} is outside 1..={max}")));
    }
    Ok(v as usize)
}

impl Config {
    pub fn read(dir: &Path, limits: &Limits) -> Result<Self, Error> {
        let path = dir.join("config.json");
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let len = super::regular_file(&path)?;
        if len > MAX_CONFIG_BYTES {
            return Err(Error::Config(format!("config.json is {len} bytes")));
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        Self::parse(&text, limits)
    }

    /// A `config.json`'s text, every dimension bounded.
    pub fn parse(text: &str, limits: &Limits) -> Result<Self, Error> {
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Config(format!("config.json: {e}")))?;
        let resolved = causal_lm_class(&value);
        let falcon = falcon_fields(&mut value)?;
        let bart = bart_fields(&mut value)?;
        let raw: Raw = serde_json::from_value(value).map_err(|e| Error::Config(format!("config.json: {e}")))?;
        let architecture = resolved
            .or_else(|| raw.architectures.as_ref().and_then(|a| a.first()).cloned())
            .ok_or_else(|| Error::Config("config.json names no architecture".into()))?;
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
        let params = raw.rope_parameters.as_ref();
        let rope_theta =
            raw.rope_theta.or(raw.rotary_emb_base).or_else(|| params.and_then(|p| p["rope_theta"].as_f64())).unwrap_or(10_000.0);
        let scaling = raw.rope_scaling.as_ref().filter(|s| !s.is_null()).or(params);
        let rope_scaling = rope_scaling_of(scaling)?;
        let sliding_window = match (architecture.as_str(), raw.use_sliding_window) {
            ("Qwen2ForCausalLM", Some(true)) | ("MistralForCausalLM" | "Gemma2ForCausalLM" | "Phi3ForCausalLM", _) => {
                raw.sliding_window.map(|w| w as usize)
            }
            _ => None,
        };
        let gemma = matches!(architecture.as_str(), "GemmaForCausalLM" | "Gemma2ForCausalLM");
        let phi3 = architecture == "Phi3ForCausalLM";
        let neox = architecture == "GPTNeoXForCausalLM";
        let phi = architecture == "PhiForCausalLM";
        if phi && raw.qk_layernorm {
            return Err(Error::Architecture("PhiForCausalLM with qk_layernorm".into()));
        }
        let default_factor = if neox {
            0.25
        } else if phi {
            0.5
        } else {
            1.0
        };
        let rotary_factor = raw
            .partial_rotary_factor
            .or(raw.rotary_pct)
            .or_else(|| params.and_then(|p| p["partial_rotary_factor"].as_f64()))
            .unwrap_or(default_factor);
        let rotary_dim = (head_dim as f64 * rotary_factor) as usize;
        let usable = rotary_factor > 0.0 && rotary_factor <= 1.0 && rotary_dim > 0 && rotary_dim.is_multiple_of(2);
        if !usable {
            return Err(Error::Config(format!("partial_rotary_factor {rotary_factor} gives {rotary_dim} rotary dimensions of {head_dim}")));
        }
        let gemma2 = architecture == "Gemma2ForCausalLM";
        let activation = raw.hidden_activation.as_deref().or(raw.hidden_act.as_deref()).unwrap_or(if gemma {
            "gelu_pytorch_tanh"
        } else if neox {
            "gelu"
        } else if phi {
            "gelu_new"
        } else {
            "silu"
        });
        let expected = if gemma {
            "gelu_pytorch_tanh"
        } else if neox || falcon.is_some() || bart.is_some() {
            "gelu"
        } else if phi {
            "gelu_new"
        } else {
            "silu"
        };
        if activation != expected && !(gemma && activation == "gelu") {
            return Err(Error::Architecture(format!("{architecture} with activation {activation:?}")));
        }
        let layers = bounded("num_hidden_layers", raw.num_hidden_layers, MAX_LAYERS)?;
        let sliding_layers = match (&raw.layer_types, gemma2) {
            (Some(types), _) if types.len() == layers => Some(types.iter().map(|t| t == "sliding_attention").collect()),
            (Some(types), _) => return Err(Error::Config(format!("layer_types lists {} layers, the model has {layers}", types.len()))),
            // transformers 4.x Gemma2: even layers slide.
            (None, true) => Some((0..layers).map(|i| i % 2 == 0).collect()),
            (None, false) => None,
        };
        let config = Self {
            qkv_bias_only: architecture == "Qwen2ForCausalLM",
            architecture,
            vocab_size: bounded("vocab_size", raw.vocab_size, MAX_VOCAB)?,
            hidden_size: hidden,
            intermediate_size: bounded("intermediate_size", raw.intermediate_size, MAX_INTERMEDIATE)?,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            // Gemma ties its embeddings whatever the config says.
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(gemma) || gemma,
            // GPT-NeoX and Phi always carry attention biases; Falcon when `bias` says so.
            attention_bias: falcon.map_or(raw.attention_bias || neox || phi, |f| f.bias),
            mlp_bias: raw.mlp_bias,
            sliding_window,
            sliding_layers,
            gemma,
            gemma2,
            attn_logit_softcapping: raw.attn_logit_softcapping.filter(|_| gemma2),
            final_logit_softcapping: raw.final_logit_softcapping.filter(|_| gemma2),
            query_pre_attn_scalar: raw.query_pre_attn_scalar.filter(|_| gemma2),
            fused_projections: phi3,
            rotary_dim,
            neox,
            phi,
            parallel_residual: falcon
                .map_or(phi || (neox && raw.use_parallel_residual.unwrap_or(true)), |f| f.parallel_attn || f.new_decoder_architecture),
            layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-5),
            falcon,
            bart,
        };
        limits.check_estimate(config.implied_params())?;
        Ok(config)
    }

    /// Parameters the dimensions imply, checked before reading any weight.
    pub fn implied_params(&self) -> u64 {
        let (h, i, v) = (self.hidden_size as u64, self.intermediate_size as u64, self.vocab_size as u64);
        let (q, kv) = ((self.num_attention_heads * self.head_dim) as u64, (self.num_key_value_heads * self.head_dim) as u64);
        let norms = if self.gemma2 { 4 * h } else { 2 * h };
        let layer = h * q * 2 + h * kv * 2 + h * i * 3 + norms;
        let embeddings = if self.tie_word_embeddings { v * h } else { 2 * v * h };
        layer.saturating_mul(self.num_hidden_layers as u64).saturating_add(embeddings + h)
    }
}

/// Falcon names its fields its own way; they are mapped onto the common ones (kv heads, FFN
/// size, norm epsilon) and its layout switches returned. ALiBi models are refused.
fn falcon_fields(v: &mut serde_json::Value) -> Result<Option<Falcon>, Error> {
    if v["architectures"][0].as_str() != Some("FalconForCausalLM") {
        return Ok(None);
    }
    if v["alibi"].as_bool() == Some(true) || v["rotary"].as_bool() == Some(false) {
        return Err(Error::Architecture("FalconForCausalLM with ALiBi".into()));
    }
    let flag = |v: &serde_json::Value, k: &str, default: bool| v[k].as_bool().unwrap_or(default);
    let falcon = Falcon {
        new_decoder_architecture: flag(v, "new_decoder_architecture", false),
        multi_query: flag(v, "multi_query", true),
        parallel_attn: flag(v, "parallel_attn", true),
        bias: flag(v, "bias", false),
        two_norms: v["num_ln_in_parallel_attn"].as_u64().unwrap_or(2) == 2,
    };
    let heads = v["num_attention_heads"].as_u64().unwrap_or(0);
    let hidden = v["hidden_size"].as_u64().unwrap_or(0);
    let kv = if falcon.new_decoder_architecture {
        v["num_kv_heads"].as_u64().unwrap_or(heads)
    } else if falcon.multi_query {
        1
    } else {
        heads
    };
    let map = v.as_object_mut().ok_or_else(|| Error::Config("config.json is not an object".into()))?;
    map.insert("num_key_value_heads".into(), kv.into());
    let ffn = map.get("ffn_hidden_size").and_then(|f| f.as_u64()).unwrap_or(4 * hidden);
    map.insert("intermediate_size".into(), ffn.into());
    if let Some(eps) = map.get("layer_norm_epsilon").cloned() {
        map.insert("layer_norm_eps".into(), eps);
    }
    map.entry("tie_word_embeddings").or_insert(true.into());
    map.insert("hidden_act".into(), "gelu".into());
    Ok(Some(falcon))
}

/// BART names its decoder's fields after the encoder-decoder; they are mapped onto the common ones.
fn bart_fields(v: &mut serde_json::Value) -> Result<Option<Bart>, Error> {
    if v["architectures"][0].as_str() != Some("BartForCausalLM") {
        return Ok(None);
    }
    let bart = Bart {
        scale_embedding: v["scale_embedding"].as_bool().unwrap_or(false),
        max_position_embeddings: v["max_position_embeddings"].as_u64().unwrap_or(1024).min(1 << 20) as usize,
    };
    if v["add_final_layer_norm"].as_bool() == Some(true) || v["normalize_before"].as_bool() == Some(true) {
        return Err(Error::Architecture("BartForCausalLM with mBART-style pre-norm layers".into()));
    }
    let map = v.as_object_mut().ok_or_else(|| Error::Config("config.json is not an object".into()))?;
    for (common, own) in [
        ("hidden_size", "d_model"),
        ("num_hidden_layers", "decoder_layers"),
        ("num_attention_heads", "decoder_attention_heads"),
        ("intermediate_size", "decoder_ffn_dim"),
        ("hidden_act", "activation_function"),
    ] {
        if let Some(value) = map.get(own).cloned() {
            map.insert(common.into(), value);
        }
    }
    map.remove("num_key_value_heads");
    map.entry("tie_word_embeddings").or_insert(true.into());
    Ok(Some(bart))
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
