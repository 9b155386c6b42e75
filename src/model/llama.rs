//! The Llama family (Llama 1–3, Mistral, Qwen2) with hidden states for every position, written
//! after transformers' modeling files: RMSNorm, rotary embeddings (rotate-half form, Llama 3
//! frequency scaling), grouped-query attention with an optional sliding window, SwiGLU MLP,
//! optional biases and tied embeddings. Logits are never built for the whole sequence: the loss
//! takes them `LOSS_CHUNK` positions at a time.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{embedding, linear_b, Embedding, Linear, VarBuilder};

use super::config::{Config, RopeScaling, LOSS_CHUNK};

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

struct Layer {
    attention: Attention,
    mlp: Mlp,
    input_norm: Tensor,
    post_attention_norm: Tensor,
}

pub struct Llama {
    embed: Embedding,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Vec<f32>,
    eps: f32,
    sliding_window: Option<usize>,
    device: Device,
}

/// Inverse rotary frequencies, with Llama 3's scaling of the low frequencies when asked.
fn inverse_frequencies(c: &Config) -> Vec<f32> {
    let d = c.head_dim;
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

fn norm_weight(vb: &VarBuilder, size: usize) -> Result<Tensor> {
    vb.get(size, "weight")
}

impl Llama {
    pub fn load(c: &Config, vb: VarBuilder) -> Result<Self> {
        let m = vb.pp("model");
        let embed = embedding(c.vocab_size, c.hidden_size, m.pp("embed_tokens"))?;
        let (q_dim, kv_dim) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let qkv_bias = c.attention_bias || c.qkv_bias_only;
        let o_bias = c.attention_bias && !c.qkv_bias_only;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = m.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let f = l.pp("mlp");
            layers.push(Layer {
                attention: Attention {
                    q: linear_b(c.hidden_size, q_dim, qkv_bias, a.pp("q_proj"))?,
                    k: linear_b(c.hidden_size, kv_dim, qkv_bias, a.pp("k_proj"))?,
                    v: linear_b(c.hidden_size, kv_dim, qkv_bias, a.pp("v_proj"))?,
                    o: linear_b(q_dim, c.hidden_size, o_bias, a.pp("o_proj"))?,
                    heads: c.num_attention_heads,
                    kv_heads: c.num_key_value_heads,
                    head_dim: c.head_dim,
                },
                mlp: Mlp {
                    gate: linear_b(c.hidden_size, c.intermediate_size, c.mlp_bias, f.pp("gate_proj"))?,
                    up: linear_b(c.hidden_size, c.intermediate_size, c.mlp_bias, f.pp("up_proj"))?,
                    down: linear_b(c.intermediate_size, c.hidden_size, c.mlp_bias, f.pp("down_proj"))?,
                },
                input_norm: norm_weight(&l.pp("input_layernorm"), c.hidden_size)?,
                post_attention_norm: norm_weight(&l.pp("post_attention_layernorm"), c.hidden_size)?,
            });
        }
        let norm = norm_weight(&m.pp("norm"), c.hidden_size)?;
        let lm_head = if c.tie_word_embeddings { embed.embeddings().clone() } else { vb.pp("lm_head").get((c.vocab_size, c.hidden_size), "weight")? };
        Ok(Self { device: embed.embeddings().device().clone(), embed, layers, norm, lm_head, inv_freq: inverse_frequencies(c), eps: c.rms_norm_eps as f32, sliding_window: c.sliding_window })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Additive mask: 0 where position i may attend to j (j <= i, within the window), -inf elsewhere.
    fn mask(&self, t: usize, dtype: DType) -> Result<Tensor> {
        let window = self.sliding_window.unwrap_or(usize::MAX);
        let values: Vec<f32> = (0..t).flat_map(|i| (0..t).map(move |j| if j <= i && i - j < window { 0.0 } else { f32::NEG_INFINITY })).collect();
        Tensor::from_vec(values, (t, t), &self.device)?.to_dtype(dtype)
    }

    fn rotary(&self, t: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let inv = Tensor::from_vec(self.inv_freq.clone(), (1, half), &self.device)?;
        let positions = Tensor::arange(0u32, t as u32, &self.device)?.to_dtype(DType::F32)?.reshape((t, 1))?;
        let freqs = positions.matmul(&inv)?;
        Ok((freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?))
    }

    /// Final-norm hidden states for every position: `[1, T, hidden]`.
    pub fn hidden_states(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let mut x = self.embed.forward(ids)?;
        let dtype = x.dtype();
        let mask = self.mask(t, dtype)?;
        let (cos, sin) = self.rotary(t, dtype)?;
        for layer in &self.layers {
            let h = candle_nn::ops::rms_norm(&x, &layer.input_norm, self.eps)?;
            x = (x + layer.attention.forward(&h, &cos, &sin, &mask)?)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.post_attention_norm, self.eps)?;
            x = (x + layer.mlp.forward(&h)?)?;
        }
        candle_nn::ops::rms_norm(&x, &self.norm, self.eps)
    }

    /// The most likely next token after the position `hidden` (`[1, hidden]`) holds: the first
    /// maximum, as torch's argmax.
    pub fn argmax_next(&self, hidden: &Tensor) -> Result<u32> {
        let logits: Vec<f32> = hidden.to_dtype(DType::F32)?.matmul(&self.lm_head.to_dtype(DType::F32)?.t()?)?.squeeze(0)?.to_vec1()?;
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        Ok(best as u32)
    }

    /// Sum of negative log-likelihoods of `targets` given `hidden` (`[n, hidden]`), computed in
    /// f32 with a stable log-softmax over chunks of positions.
    pub fn nll_sum(&self, hidden: &Tensor, targets: &[u32]) -> Result<f64> {
        let mut total = 0.0f64;
        for start in (0..targets.len()).step_by(LOSS_CHUNK) {
            let len = LOSS_CHUNK.min(targets.len() - start);
            let h = hidden.narrow(0, start, len)?.to_dtype(DType::F32)?;
            let logits = h.matmul(&self.lm_head.to_dtype(DType::F32)?.t()?)?;
            let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let index = Tensor::new(&targets[start..start + len], &self.device)?.unsqueeze(1)?;
            let picked: Vec<f32> = log_probs.gather(&index, 1)?.squeeze(1)?.to_vec1()?;
            total -= picked.iter().map(|&p| f64::from(p)).sum::<f64>();
        }
        Ok(total)
    }
}

impl Attention {
    fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let shape = |y: Tensor, heads: usize| y.reshape((b, t, heads, self.head_dim))?.transpose(1, 2)?.contiguous();
        let q = candle_nn::rotary_emb::rope(&shape(self.q.forward(x)?, self.heads)?, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&shape(self.k.forward(x)?, self.kv_heads)?, cos, sin)?;
        let v = shape(self.v.forward(x)?, self.kv_heads)?;
        let groups = self.heads / self.kv_heads;
        let (k, v) = (repeat_kv(k, groups)?, repeat_kv(v, groups)?);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, self.heads * self.head_dim))?;
        self.o.forward(&out)
    }
}

/// `[b, kv, t, d]` → `[b, kv * n, t, d]`, each key/value head repeated for its query group.
fn repeat_kv(x: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, kv, n, t, d))?.reshape((b, kv * n, t, d))
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate.forward(x)?)?;
        self.down.forward(&(gate * self.up.forward(x)?)?)
    }
}
