//! The Llama family (Llama 1–3, Mistral, Qwen2, Gemma, Gemma2) with hidden states for every
//! position, written after transformers' modeling files: RMSNorm, rotary embeddings (rotate-half
//! form, Llama 3 frequency scaling), grouped-query attention with an optional sliding window,
//! gated MLP, optional biases and tied embeddings; Gemma's scaled embeddings and `1 + w` norms,
//! Gemma2's extra norms and logit soft-capping. Logits are never built for the whole sequence: the loss
//! takes them `LOSS_CHUNK` positions at a time.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{embedding, linear_b, Embedding, Linear, VarBuilder};

use super::attention::{self, Masks};
use super::config::{Config, RopeScaling};
use super::head;
use super::numerics::{in_f32, linear, rms_norm, Numerics};

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

pub struct Llama {
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
    device: Device,
}

/// Inverse rotary frequencies, with Llama 3's scaling of the low frequencies when asked.
fn inverse_frequencies(c: &Config) -> Vec<f32> {
    let d = c.rotary_dim;
    let base: Vec<f64> = (0..d / 2).map(|i| 1.0 / c.rope_theta.powf((2 * i) as f64 / d as f64)).collect();
    match c.rope_scaling {
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
    pub fn load(c: &Config, vb: VarBuilder, numerics: Numerics) -> Result<Self> {
        let m = vb.pp("model");
        let embed = embedding(c.vocab_size, c.hidden_size, m.pp("embed_tokens"))?;
        let (q_dim, kv_dim) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let qkv_bias = c.attention_bias || c.qkv_bias_only;
        let o_bias = c.attention_bias && !c.qkv_bias_only;
        // Phi3's fused projections, split into the usual ones once at load.
        let split = |vb: &VarBuilder, name: &str, parts: &[usize]| -> Result<Vec<Linear>> {
            let w = vb.pp(name).get((parts.iter().sum::<usize>(), c.hidden_size), "weight")?;
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
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = m.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let f = l.pp("mlp");
            let (q, k, v, gate, up) = if c.fused_projections {
                let [q, k, v]: [Linear; 3] =
                    split(&a, "qkv_proj", &[q_dim, kv_dim, kv_dim])?.try_into().map_err(|_| candle_core::Error::Msg("qkv split".into()))?;
                let [gate, up]: [Linear; 2] = split(&f, "gate_up_proj", &[c.intermediate_size, c.intermediate_size])?
                    .try_into()
                    .map_err(|_| candle_core::Error::Msg("gate_up split".into()))?;
                (q, k, v, gate, up)
            } else {
                (
                    linear_b(c.hidden_size, q_dim, qkv_bias, a.pp("q_proj"))?,
                    linear_b(c.hidden_size, kv_dim, qkv_bias, a.pp("k_proj"))?,
                    linear_b(c.hidden_size, kv_dim, qkv_bias, a.pp("v_proj"))?,
                    linear_b(c.hidden_size, c.intermediate_size, c.mlp_bias, f.pp("gate_proj"))?,
                    linear_b(c.hidden_size, c.intermediate_size, c.mlp_bias, f.pp("up_proj"))?,
                )
            };
            layers.push(Layer {
                attention: Attention {
                    q,
                    k,
                    v,
                    o: linear_b(q_dim, c.hidden_size, o_bias, a.pp("o_proj"))?,
                    heads: c.num_attention_heads,
                    kv_heads: c.num_key_value_heads,
                    head_dim: c.head_dim,
                    scale: 1.0 / c.query_pre_attn_scalar.unwrap_or(c.head_dim as f64).sqrt(),
                    softcap: c.attn_logit_softcapping,
                    sliding: c.sliding_layers.as_ref().is_none_or(|s| s[i]),
                    rotary_dim: c.rotary_dim,
                },
                mlp: Mlp { gate, up, down: linear_b(c.intermediate_size, c.hidden_size, c.mlp_bias, f.pp("down_proj"))?, gelu: c.gemma },
                input_norm: norm_weight(&l.pp("input_layernorm"), c.hidden_size, c.gemma)?,
                post_attention_norm: norm_weight(&l.pp("post_attention_layernorm"), c.hidden_size, c.gemma)?,
                feedforward_norms: match c.gemma2 {
                    true => Some((
                        norm_weight(&l.pp("pre_feedforward_layernorm"), c.hidden_size, true)?,
                        norm_weight(&l.pp("post_feedforward_layernorm"), c.hidden_size, true)?,
                    )),
                    false => None,
                },
            });
        }
        let norm = norm_weight(&m.pp("norm"), c.hidden_size, c.gemma)?;
        let lm_head = head::tied_or_own(c.tie_word_embeddings, &embed, &vb, c.vocab_size, c.hidden_size)?;
        Ok(Self {
            device: embed.embeddings().device().clone(),
            embed,
            layers,
            norm,
            lm_head,
            inv_freq: inverse_frequencies(c),
            eps: c.rms_norm_eps as f32,
            sliding_window: c.sliding_window,
            // transformers multiplies by sqrt(hidden) rounded to the activation dtype.
            embed_scale: c.gemma.then(|| f64::from((c.hidden_size as f32).sqrt())),
            final_softcap: c.final_logit_softcapping,
            gemma_norms: c.gemma,
            numerics,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn lm_head(&self) -> (&Linear, Option<f64>) {
        (&self.lm_head, self.final_softcap)
    }

    /// Final-norm hidden states for every position: `[1, T, hidden]`.
    pub fn hidden_states(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let mut x = self.embed.forward(ids)?;
        if let Some(scale) = self.embed_scale {
            x = (x * scale)?;
        }
        let dtype = x.dtype();
        let masks = Masks::new(&self.device, self.numerics.attention);
        let (cos, sin) = head::rotary_tables(&self.inv_freq, t, dtype, &self.device)?;
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
