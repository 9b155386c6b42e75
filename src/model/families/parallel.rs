//! GPT-NeoX (Pythia), Phi (phi-1.5/2) and Falcon with hidden states for every position, after
//! transformers' modeling files: LayerNorm, (partial) rotary embeddings, attention and MLP
//! computed side by side and added (parallel residual) or one after the other, GELU MLP.
//! GPT-NeoX fuses q, k, v per head; Falcon in one of three layouts; Phi has separate projections
//! and a biased `lm_head`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear_b, Embedding, LayerNorm, LayerNormConfig, Linear, VarBuilder};
use serde::Deserialize;

use super::{arch, Architecture, CausalLm, Family};
use crate::model::attention::{self, Masks};
use crate::model::config::{check_activation, fields, rename, Dims, RopeScaling, Rotary};
use crate::model::head;
use crate::model::numerics::{self, in_f32, linear, Numerics};
use crate::model::Error;

pub const FAMILY: Family = Family {
    architectures: &[
        arch("gpt_neox", "GPTNeoXForCausalLM", Some("GPTNeoXTokenizerFast")),
        arch("phi", "PhiForCausalLM", Some("CodeGenTokenizerFast")),
        arch("falcon", "FalconForCausalLM", Some("PreTrainedTokenizerFast")),
    ],
    parse,
};

/// Which of the family's layouts a model has.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// GPT-NeoX: q, k, v fused per head, two norms, exact GELU, an `embed_out` head.
    NeoX,
    /// Phi: separate projections, one norm for both branches, GELU (tanh), a biased `lm_head`.
    Phi,
    /// Falcon: fused qkv in one of three layouts, exact GELU, optional biases.
    Falcon(Falcon),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Falcon {
    new_decoder_architecture: bool,
    multi_query: bool,
    parallel_attn: bool,
    bias: bool,
    /// New-architecture models with two norms per layer (one per branch) or one.
    two_norms: bool,
}

/// What a config of this family says beyond the shared dimensions.
#[derive(Debug, Clone)]
struct Settings {
    layout: Layout,
    rotary: Rotary,
    parallel_residual: bool,
    layer_norm_eps: f64,
}

impl Settings {
    fn neox(&self) -> bool {
        matches!(self.layout, Layout::NeoX)
    }

    fn falcon(&self) -> Option<Falcon> {
        match self.layout {
            Layout::Falcon(f) => Some(f),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Fields {
    use_parallel_residual: Option<bool>,
    layer_norm_eps: Option<f64>,
    #[serde(default)]
    qk_layernorm: bool,
}

fn parse(class: &str, json: &mut serde_json::Value) -> std::result::Result<(Dims, Box<dyn Architecture>), Error> {
    let (layout, default_rotary, activation) = match class {
        "GPTNeoXForCausalLM" => (Layout::NeoX, 0.25, "gelu"),
        "PhiForCausalLM" => (Layout::Phi, 0.5, "gelu_new"),
        _ => (Layout::Falcon(falcon_fields(json)?), 1.0, "gelu"),
    };
    let dims = Dims::read(json, false)?;
    check_activation(json, class, activation, &[activation])?;
    let raw: Fields = fields(json)?;
    if matches!(layout, Layout::Phi) && raw.qk_layernorm {
        return Err(Error::Architecture("PhiForCausalLM with qk_layernorm".into()));
    }
    let rotary = Rotary::read(json, dims.head_dim, default_rotary)?;
    if rotary.scaling != RopeScaling::None {
        return Err(Error::Architecture(format!("{class} with rope scaling")));
    }
    let parallel_residual = match layout {
        Layout::NeoX => raw.use_parallel_residual.unwrap_or(true),
        Layout::Phi => true,
        Layout::Falcon(f) => f.parallel_attn || f.new_decoder_architecture,
    };
    let settings = Settings { layout, rotary, parallel_residual, layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-5) };
    Ok((dims, Box::new(settings)))
}

/// Falcon names its fields its own way; they are mapped onto the common ones (kv heads, FFN
/// size, norm epsilon) and its layout switches returned. ALiBi models are refused.
fn falcon_fields(v: &mut serde_json::Value) -> std::result::Result<Falcon, Error> {
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
    rename(v, &[("layer_norm_eps", "layer_norm_epsilon")]);
    let map = v.as_object_mut().expect("config.json was checked to be an object");
    map.insert("num_key_value_heads".into(), kv.into());
    // Saturating: the dimensions are bounded only after this mapping (Dims::read).
    let ffn = map.get("ffn_hidden_size").and_then(|f| f.as_u64()).unwrap_or(hidden.saturating_mul(4));
    map.insert("intermediate_size".into(), ffn.into());
    map.entry("tie_word_embeddings").or_insert(true.into());
    map.insert("hidden_act".into(), "gelu".into());
    Ok(falcon)
}

impl Architecture for Settings {
    fn load(&self, dims: &Dims, vb: VarBuilder, numerics: Numerics) -> Result<Box<dyn CausalLm>> {
        Ok(Box::new(Parallel::load(dims, self, vb, numerics)?))
    }
}

struct Layer {
    input_norm: LayerNorm,
    /// GPT-NeoX's second norm for the MLP branch (Phi feeds both branches the same norm).
    mlp_norm: Option<LayerNorm>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    up: Linear,
    down: Linear,
}

struct Parallel {
    embed: Embedding,
    layers: Vec<Layer>,
    norm: LayerNorm,
    lm_head: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    rotary_dim: usize,
    rope_theta: f64,
    parallel_residual: bool,
    /// GPT-NeoX's exact GELU; Phi's tanh approximation otherwise.
    exact_gelu: bool,
    norm_eps: f64,
    numerics: Numerics,
}

/// How a fused `query_key_value` weight orders its rows.
#[derive(Clone, Copy)]
enum QkvLayout {
    /// `[heads, 3, head_dim]`: GPT-NeoX and Falcon without multi-query.
    PerHead,
    /// `[heads + 2, head_dim]`: all queries, then the one key and the one value (Falcon-7B).
    MultiQuery,
    /// `[kv_heads, heads / kv_heads + 2, head_dim]`: each group's queries, key, value (Falcon-40B).
    Grouped,
}

/// Splits a fused projection (and its bias) into q, k, v.
fn split_qkv(d: &Dims, vb: &VarBuilder, layout: QkvLayout, bias: bool) -> Result<(Linear, Linear, Linear)> {
    let (h, d, heads, kv) = (d.hidden_size, d.head_dim, d.num_attention_heads, d.num_key_value_heads);
    let rows = (heads + 2 * kv) * d;
    let w = vb.get((rows, h), "weight")?;
    let b = if bias { Some(vb.get(rows, "bias")?) } else { None };
    // Each part as (weight, bias) from a view of the rows with `cols` trailing dimensions.
    let take = |t: &Tensor, trailing: &[usize]| -> Result<[Tensor; 3]> {
        let with = |shape: Vec<usize>| -> Vec<usize> { shape.into_iter().chain(trailing.iter().copied()).collect() };
        let parts = match layout {
            QkvLayout::PerHead => {
                let t = t.reshape(with(vec![heads, 3, d]))?;
                [0, 1, 2].map(|j| t.narrow(1, j, 1))
            }
            QkvLayout::MultiQuery => {
                let t = t.reshape(with(vec![heads + 2, d]))?;
                [t.narrow(0, 0, heads), t.narrow(0, heads, 1), t.narrow(0, heads + 1, 1)]
            }
            QkvLayout::Grouped => {
                let per = heads / kv;
                let t = t.reshape(with(vec![kv, per + 2, d]))?;
                [t.narrow(1, 0, per), t.narrow(1, per, 1), t.narrow(1, per + 1, 1)]
            }
        };
        let [q, k, v] = parts;
        let flat = |x: Result<Tensor>, n: usize| x?.reshape(with(vec![n * d]));
        Ok([flat(q, heads)?, flat(k, kv)?, flat(v, kv)?])
    };
    let [wq, wk, wv] = take(&w, &[h])?;
    let (bq, bk, bv) = match &b {
        Some(b) => {
            let [q, k, v] = take(b, &[])?;
            (Some(q), Some(k), Some(v))
        }
        None => (None, None, None),
    };
    Ok((Linear::new(wq, bq), Linear::new(wk, bk), Linear::new(wv, bv)))
}

fn falcon_layer(d: &Dims, f: Falcon, l: &VarBuilder, eps: LayerNormConfig) -> Result<Layer> {
    let h = d.hidden_size;
    let layout = if f.new_decoder_architecture {
        QkvLayout::Grouped
    } else if f.multi_query {
        QkvLayout::MultiQuery
    } else {
        QkvLayout::PerHead
    };
    let a = l.pp("self_attention");
    let (q, k, v) = split_qkv(d, &a.pp("query_key_value"), layout, f.bias)?;
    let (input_norm, mlp_norm) = match (f.new_decoder_architecture, f.two_norms, f.parallel_attn) {
        (true, true, _) => (layer_norm(h, eps, l.pp("ln_attn"))?, Some(layer_norm(h, eps, l.pp("ln_mlp"))?)),
        (true, false, _) | (false, _, true) => (layer_norm(h, eps, l.pp("input_layernorm"))?, None),
        (false, _, false) => (layer_norm(h, eps, l.pp("input_layernorm"))?, Some(layer_norm(h, eps, l.pp("post_attention_layernorm"))?)),
    };
    Ok(Layer {
        input_norm,
        mlp_norm,
        q,
        k,
        v,
        o: linear_b(d.num_attention_heads * d.head_dim, h, f.bias, a.pp("dense"))?,
        up: linear_b(h, d.intermediate_size, f.bias, l.pp("mlp").pp("dense_h_to_4h"))?,
        down: linear_b(d.intermediate_size, h, f.bias, l.pp("mlp").pp("dense_4h_to_h"))?,
    })
}

impl Parallel {
    fn load(d: &Dims, s: &Settings, vb: VarBuilder, numerics: Numerics) -> Result<Self> {
        let eps = LayerNormConfig { eps: s.layer_norm_eps, ..Default::default() };
        let h = d.hidden_size;
        let (q_dim, kv_dim) = (d.num_attention_heads * d.head_dim, d.num_key_value_heads * d.head_dim);
        let (root, layers_at, embed_name, norm_name) = match (s.neox(), s.falcon()) {
            (true, _) => ("gpt_neox", "layers", "embed_in", "final_layer_norm"),
            (_, Some(_)) => ("transformer", "h", "word_embeddings", "ln_f"),
            _ => ("model", "layers", "embed_tokens", "final_layernorm"),
        };
        let m = vb.pp(root);
        let embed = embedding(d.vocab_size, h, m.pp(embed_name))?;
        let mut layers = Vec::with_capacity(d.num_hidden_layers);
        for i in 0..d.num_hidden_layers {
            let l = m.pp(format!("{layers_at}.{i}"));
            let layer = if let Some(f) = s.falcon() {
                falcon_layer(d, f, &l, eps)?
            } else if s.neox() {
                let a = l.pp("attention");
                let (q, k, v) = split_qkv(d, &a.pp("query_key_value"), QkvLayout::PerHead, true)?;
                Layer {
                    input_norm: layer_norm(h, eps, l.pp("input_layernorm"))?,
                    mlp_norm: Some(layer_norm(h, eps, l.pp("post_attention_layernorm"))?),
                    q,
                    k,
                    v,
                    o: linear_b(q_dim, h, true, a.pp("dense"))?,
                    up: linear_b(h, d.intermediate_size, true, l.pp("mlp").pp("dense_h_to_4h"))?,
                    down: linear_b(d.intermediate_size, h, true, l.pp("mlp").pp("dense_4h_to_h"))?,
                }
            } else {
                let a = l.pp("self_attn");
                Layer {
                    input_norm: layer_norm(h, eps, l.pp("input_layernorm"))?,
                    mlp_norm: None,
                    q: linear_b(h, q_dim, true, a.pp("q_proj"))?,
                    k: linear_b(h, kv_dim, true, a.pp("k_proj"))?,
                    v: linear_b(h, kv_dim, true, a.pp("v_proj"))?,
                    o: linear_b(q_dim, h, true, a.pp("dense"))?,
                    up: linear_b(h, d.intermediate_size, true, l.pp("mlp").pp("fc1"))?,
                    down: linear_b(d.intermediate_size, h, true, l.pp("mlp").pp("fc2"))?,
                }
            };
            layers.push(layer);
        }
        let norm = layer_norm(h, eps, m.pp(norm_name))?;
        let lm_head = if s.neox() {
            Linear::new(vb.pp("embed_out").get((d.vocab_size, h), "weight")?, None)
        } else if s.falcon().is_some() {
            head::tied_or_own(d.tie_word_embeddings, &embed, &vb, d.vocab_size, h)?
        } else {
            linear_b(h, d.vocab_size, true, vb.pp("lm_head"))?
        };
        Ok(Self {
            embed,
            layers,
            norm,
            lm_head,
            heads: d.num_attention_heads,
            kv_heads: d.num_key_value_heads,
            head_dim: d.head_dim,
            rotary_dim: s.rotary.dim,
            rope_theta: s.rotary.theta,
            parallel_residual: s.parallel_residual,
            exact_gelu: s.neox() || s.falcon().is_some(),
            norm_eps: s.layer_norm_eps,
            numerics,
        })
    }

    fn attention(&self, layer: &Layer, x: &Tensor, cos: &Tensor, sin: &Tensor, masks: &Masks) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let shape = |y: Tensor, heads: usize| y.reshape((b, t, heads, self.head_dim))?.transpose(1, 2)?.contiguous();
        let q = head::rope(shape(linear(&layer.q, x)?, self.heads)?, cos, sin, self.rotary_dim)?;
        let k = head::rope(shape(linear(&layer.k, x)?, self.kv_heads)?, cos, sin, self.rotary_dim)?;
        let v = shape(linear(&layer.v, x)?, self.kv_heads)?;
        let out = attention::attention(&q, k, v, 1.0 / (self.head_dim as f64).sqrt(), None, None, masks)?;
        linear(&layer.o, &out)
    }

    fn mlp(&self, layer: &Layer, x: &Tensor) -> Result<Tensor> {
        let up = linear(&layer.up, x)?;
        let act = if self.exact_gelu { in_f32(&up, |u| u.gelu_erf())? } else { in_f32(&up, |u| u.gelu())? };
        linear(&layer.down, &act)
    }
}

impl CausalLm for Parallel {
    fn lm_head(&self) -> (&Linear, Option<f64>) {
        (&self.lm_head, None)
    }

    fn hidden_states(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let mut x = self.embed.forward(ids)?;
        let masks = Masks::new(ids.device(), self.numerics.attention);
        let (cos, sin) =
            head::rotary_tables(&head::plain_inverse_frequencies(self.rotary_dim, self.rope_theta), t, x.dtype(), ids.device())?;
        let norm = |n: &LayerNorm, x: &Tensor| numerics::layer_norm(n, x, self.norm_eps);
        for layer in &self.layers {
            let normed = norm(&layer.input_norm, &x)?;
            let attended = self.attention(layer, &normed, &cos, &sin, &masks)?;
            if self.parallel_residual {
                let mlp_in = match &layer.mlp_norm {
                    Some(n) => norm(n, &x)?,
                    None => normed,
                };
                // (attention + MLP) + residual, the order transformers adds them in: in bf16 the
                // order of the two roundings matters.
                x = ((attended + self.mlp(layer, &mlp_in)?)? + x)?;
            } else {
                x = (x + attended)?;
                let mlp_in = norm(layer.mlp_norm.as_ref().expect("sequential residual has a second norm"), &x)?;
                x = (&x + self.mlp(layer, &mlp_in)?)?;
            }
        }
        norm(&self.norm, &x)
    }
}
