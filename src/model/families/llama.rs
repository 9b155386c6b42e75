//! The Llama family (Llama 1–3, Mistral, Qwen2, Gemma, Gemma2, Phi3) with hidden states for
//! every position, written after transformers' modeling files: RMSNorm, rotary embeddings
//! (rotate-half form, Llama 3 frequency scaling), grouped-query attention with an optional
//! sliding window, gated MLP, optional biases and tied embeddings; Gemma's scaled embeddings and
//! `1 + w` norms, Gemma2's extra norms and logit soft-capping, Phi3's fused projections.

use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, linear_b, Embedding, Linear, VarBuilder};
use serde::Deserialize;

use super::{arch, Architecture, CausalLm, Family};
use crate::model::attention::{self, Masks};
use crate::model::config::{check_activation, fields, Dims, RopeScaling, Rotary};
use crate::model::head;
use crate::model::numerics::{in_f32, linear, rms_norm, Numerics};
use crate::model::Error;

pub const FAMILY: Family = Family {
    architectures: &[
        arch("llama", "LlamaForCausalLM", Some("LlamaTokenizerFast")),
        arch("mistral", "MistralForCausalLM", Some("LlamaTokenizerFast")),
        arch("qwen2", "Qwen2ForCausalLM", Some("Qwen2TokenizerFast")),
        arch("gemma", "GemmaForCausalLM", Some("GemmaTokenizerFast")),
        arch("gemma2", "Gemma2ForCausalLM", Some("GemmaTokenizerFast")),
        arch("phi3", "Phi3ForCausalLM", Some("LlamaTokenizerFast")),
    ],
    parse,
};

/// What a Llama-family config says beyond the shared dimensions.
#[derive(Debug, Clone)]
struct Settings {
    rms_norm_eps: f64,
    rotary: Rotary,
    attention_bias: bool,
    /// Qwen2 puts biases on q, k and v but not on o.
    qkv_bias_only: bool,
    mlp_bias: bool,
    sliding_window: Option<usize>,
    /// Layers that use the sliding window (all when None and a window is set).
    sliding_layers: Option<Vec<bool>>,
    /// Gemma: embeddings times sqrt(hidden), RMSNorm weights stored as `w - 1`, GELU (tanh) MLP.
    gemma: bool,
    /// Gemma2: norms after attention and around the MLP, logit soft-capping, attention scale
    /// from `query_pre_attn_scalar`.
    gemma2: bool,
    attn_logit_softcapping: Option<f64>,
    final_logit_softcapping: Option<f64>,
    query_pre_attn_scalar: Option<f64>,
    /// Phi3 stores q, k, v as one `qkv_proj` and gate, up as one `gate_up_proj`.
    fused_projections: bool,
}

#[derive(Deserialize)]
struct Fields {
    rms_norm_eps: Option<f64>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    sliding_window: Option<u64>,
    use_sliding_window: Option<bool>,
    layer_types: Option<Vec<String>>,
    attn_logit_softcapping: Option<f64>,
    final_logit_softcapping: Option<f64>,
    query_pre_attn_scalar: Option<f64>,
}

fn parse(class: &str, json: &mut serde_json::Value) -> std::result::Result<(Dims, Box<dyn Architecture>), Error> {
    let gemma = matches!(class, "GemmaForCausalLM" | "Gemma2ForCausalLM");
    let gemma2 = class == "Gemma2ForCausalLM";
    let mut dims = Dims::read(json, gemma)?;
    // Gemma ties its embeddings whatever the config says.
    dims.tie_word_embeddings |= gemma;
    if gemma {
        check_activation(json, class, "gelu_pytorch_tanh", &["gelu_pytorch_tanh", "gelu"])?;
    } else {
        check_activation(json, class, "silu", &["silu"])?;
    }
    let raw: Fields = fields(json)?;
    let sliding_window = match (class, raw.use_sliding_window) {
        ("Qwen2ForCausalLM", Some(true)) | ("MistralForCausalLM" | "Gemma2ForCausalLM" | "Phi3ForCausalLM", _) => {
            raw.sliding_window.map(|w| w as usize)
        }
        _ => None,
    };
    let layers = dims.num_hidden_layers;
    let sliding_layers = match (&raw.layer_types, gemma2) {
        (Some(types), _) if types.len() == layers => Some(types.iter().map(|t| t == "sliding_attention").collect()),
        (Some(types), _) => return Err(Error::Config(format!("layer_types lists {} layers, the model has {layers}", types.len()))),
        // transformers 4.x Gemma2: even layers slide.
        (None, true) => Some((0..layers).map(|i| i % 2 == 0).collect()),
        (None, false) => None,
    };
    let settings = Settings {
        rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
        rotary: Rotary::read(json, dims.head_dim, 1.0)?,
        attention_bias: raw.attention_bias,
        qkv_bias_only: class == "Qwen2ForCausalLM",
        mlp_bias: raw.mlp_bias,
        sliding_window,
        sliding_layers,
        gemma,
        gemma2,
        attn_logit_softcapping: raw.attn_logit_softcapping.filter(|_| gemma2),
        final_logit_softcapping: raw.final_logit_softcapping.filter(|_| gemma2),
        query_pre_attn_scalar: raw.query_pre_attn_scalar.filter(|_| gemma2),
        fused_projections: class == "Phi3ForCausalLM",
    };
    Ok((dims, Box::new(settings)))
}

impl Architecture for Settings {
    fn load(&self, dims: &Dims, vb: VarBuilder, numerics: Numerics) -> Result<Box<dyn CausalLm>> {
        Ok(Box::new(Llama::load(dims, self, vb, numerics)?))
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f64,
    softcap: Option<f64>,
    sliding: bool,
    rotary_dim: usize,
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    gelu: bool,
}

struct Layer {
    attention: Attention,
    mlp: Mlp,
    input_norm: Tensor,
    post_attention_norm: Tensor,
    /// Gemma2's norms around the MLP.
    feedforward_norms: Option<(Tensor, Tensor)>,
}

struct Llama {
    embed: Embedding,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Linear,
    final_softcap: Option<f64>,
    inv_freq: Vec<f32>,
    eps: f32,
    sliding_window: Option<usize>,
    embed_scale: Option<f64>,
    /// Gemma's RMSNorm multiplies by `1 + w` in f32.
    gemma_norms: bool,
    numerics: Numerics,
}

/// Inverse rotary frequencies, with Llama 3's scaling of the low frequencies when asked.
fn inverse_frequencies(rotary: &Rotary) -> Vec<f32> {
    let d = rotary.dim;
    let base: Vec<f64> = (0..d / 2).map(|i| 1.0 / rotary.theta.powf((2 * i) as f64 / d as f64)).collect();
    match rotary.scaling {
        RopeScaling::None => base.into_iter().map(|f| f as f32).collect(),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings: old } => {
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            base.into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let scaled = if wavelen > low_wavelen { f / factor } else { f };
                    let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    let medium = (high_wavelen..=low_wavelen).contains(&wavelen);
                    (if medium { (1.0 - smooth) * scaled / factor + smooth * scaled } else { scaled }) as f32
                })
                .collect()
        }
    }
}

/// RMSNorm weight; Gemma stores `w - 1` and multiplies by `1 + w`, which is kept in f32 (as
/// transformers computes it) whatever the model dtype.
fn norm_weight(vb: &VarBuilder, size: usize, gemma: bool) -> Result<Tensor> {
    let w = vb.get(size, "weight")?;
    if gemma {
        w.to_dtype(candle_core::DType::F32)? + 1.0
    } else {
        Ok(w)
    }
}

impl Llama {
    fn load(d: &Dims, s: &Settings, vb: VarBuilder, numerics: Numerics) -> Result<Self> {
        let m = vb.pp("model");
        let embed = embedding(d.vocab_size, d.hidden_size, m.pp("embed_tokens"))?;
        let (q_dim, kv_dim) = (d.num_attention_heads * d.head_dim, d.num_key_value_heads * d.head_dim);
        let qkv_bias = s.attention_bias || s.qkv_bias_only;
        let o_bias = s.attention_bias && !s.qkv_bias_only;
        // Phi3's fused projections, split into the usual ones once at load.
        let split = |vb: &VarBuilder, name: &str, parts: &[usize]| -> Result<Vec<Linear>> {
            let w = vb.pp(name).get((parts.iter().sum::<usize>(), d.hidden_size), "weight")?;
            let mut start = 0;
            parts
                .iter()
                .map(|&n| {
                    let l = Linear::new(w.narrow(0, start, n)?, None);
                    start += n;
                    Ok(l)
                })
                .collect()
        };
        let mut layers = Vec::with_capacity(d.num_hidden_layers);
        for i in 0..d.num_hidden_layers {
            let l = m.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let f = l.pp("mlp");
            let (q, k, v, gate, up) = if s.fused_projections {
                let [q, k, v]: [Linear; 3] =
                    split(&a, "qkv_proj", &[q_dim, kv_dim, kv_dim])?.try_into().map_err(|_| candle_core::Error::Msg("qkv split".into()))?;
                let [gate, up]: [Linear; 2] = split(&f, "gate_up_proj", &[d.intermediate_size, d.intermediate_size])?
                    .try_into()
                    .map_err(|_| candle_core::Error::Msg("gate_up split".into()))?;
                (q, k, v, gate, up)
            } else {
                (
                    linear_b(d.hidden_size, q_dim, qkv_bias, a.pp("q_proj"))?,
                    linear_b(d.hidden_size, kv_dim, qkv_bias, a.pp("k_proj"))?,
                    linear_b(d.hidden_size, kv_dim, qkv_bias, a.pp("v_proj"))?,
                    linear_b(d.hidden_size, d.intermediate_size, s.mlp_bias, f.pp("gate_proj"))?,
                    linear_b(d.hidden_size, d.intermediate_size, s.mlp_bias, f.pp("up_proj"))?,
                )
            };
            layers.push(Layer {
                attention: Attention {
                    q,
                    k,
                    v,
                    o: linear_b(q_dim, d.hidden_size, o_bias, a.pp("o_proj"))?,
                    heads: d.num_attention_heads,
                    kv_heads: d.num_key_value_heads,
                    head_dim: d.head_dim,
                    scale: 1.0 / s.query_pre_attn_scalar.unwrap_or(d.head_dim as f64).sqrt(),
                    softcap: s.attn_logit_softcapping,
                    sliding: s.sliding_layers.as_ref().is_none_or(|s| s[i]),
                    rotary_dim: s.rotary.dim,
                },
                mlp: Mlp { gate, up, down: linear_b(d.intermediate_size, d.hidden_size, s.mlp_bias, f.pp("down_proj"))?, gelu: s.gemma },
                input_norm: norm_weight(&l.pp("input_layernorm"), d.hidden_size, s.gemma)?,
                post_attention_norm: norm_weight(&l.pp("post_attention_layernorm"), d.hidden_size, s.gemma)?,
                feedforward_norms: match s.gemma2 {
                    true => Some((
                        norm_weight(&l.pp("pre_feedforward_layernorm"), d.hidden_size, true)?,
                        norm_weight(&l.pp("post_feedforward_layernorm"), d.hidden_size, true)?,
                    )),
                    false => None,
                },
            });
        }
        let norm = norm_weight(&m.pp("norm"), d.hidden_size, s.gemma)?;
        let lm_head = head::tied_or_own(d.tie_word_embeddings, &embed, &vb, d.vocab_size, d.hidden_size)?;
        Ok(Self {
            embed,
            layers,
            norm,
            lm_head,
            inv_freq: inverse_frequencies(&s.rotary),
            eps: s.rms_norm_eps as f32,
            sliding_window: s.sliding_window,
            // transformers multiplies by sqrt(hidden) rounded to the activation dtype.
            embed_scale: s.gemma.then(|| f64::from((d.hidden_size as f32).sqrt())),
            final_softcap: s.final_logit_softcapping,
            gemma_norms: s.gemma,
            numerics,
        })
    }
}

impl CausalLm for Llama {
    fn lm_head(&self) -> (&Linear, Option<f64>) {
        (&self.lm_head, self.final_softcap)
    }

    fn hidden_states(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let mut x = self.embed.forward(ids)?;
        if let Some(scale) = self.embed_scale {
            x = (x * scale)?;
        }
        let dtype = x.dtype();
        let masks = Masks::new(ids.device(), self.numerics.attention);
        let (cos, sin) = head::rotary_tables(&self.inv_freq, t, dtype, ids.device())?;
        let norm = |x: &Tensor, w: &Tensor| rms_norm(x, w, f64::from(self.eps), self.gemma_norms);
        for layer in &self.layers {
            let window = self.sliding_window.filter(|_| layer.attention.sliding);
            let attended = layer.attention.forward(&norm(&x, &layer.input_norm)?, &cos, &sin, window, &masks)?;
            if let Some((pre, post)) = &layer.feedforward_norms {
                x = (x + norm(&attended, &layer.post_attention_norm)?)?;
                x = (&x + norm(&layer.mlp.forward(&norm(&x, pre)?)?, post)?)?;
            } else {
                x = (x + attended)?;
                x = (&x + layer.mlp.forward(&norm(&x, &layer.post_attention_norm)?)?)?;
            }
        }
        norm(&x, &self.norm)
    }
}

impl Attention {
    fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, window: Option<usize>, masks: &Masks) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let shape = |y: Tensor, heads: usize| y.reshape((b, t, heads, self.head_dim))?.transpose(1, 2)?.contiguous();
        let q = head::rope(shape(linear(&self.q, x)?, self.heads)?, cos, sin, self.rotary_dim)?;
        let k = head::rope(shape(linear(&self.k, x)?, self.kv_heads)?, cos, sin, self.rotary_dim)?;
        let v = shape(linear(&self.v, x)?, self.kv_heads)?;
        let out = attention::attention(&q, k, v, self.scale, self.softcap, window, masks)?;
        linear(&self.o, &out)
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = linear(&self.gate, x)?;
        // gelu_pytorch_tanh for Gemma (candle's gelu is the tanh approximation), SiLU otherwise;
        // computed in f32 and rounded once, as torch does for bf16.
        let gate = if self.gelu { in_f32(&gate, |g| g.gelu())? } else { in_f32(&gate, candle_nn::ops::silu)? };
        linear(&self.down, &(gate * linear(&self.up, x)?)?)
    }
}
