//! GPT-NeoX (Pythia) and Phi (phi-1.5/2) with hidden states for every position, after
//! transformers' modeling files: LayerNorm with bias, partial rotary embeddings, attention and
//! MLP computed from the same input and added together (parallel residual), GELU MLP with biases.
//! GPT-NeoX fuses q, k, v per head (`[heads, 3, head_dim]` rows); Phi has separate projections
//! and a biased `lm_head`.

use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{embedding, layer_norm, linear_b, Embedding, LayerNorm, LayerNormConfig, Linear, VarBuilder};

use super::config::Config;
use super::head;

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

pub struct Parallel {
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
    device: Device,
}

impl Parallel {
    pub fn load(c: &Config, vb: VarBuilder) -> Result<Self> {
        let eps = LayerNormConfig { eps: c.layer_norm_eps, ..Default::default() };
        let h = c.hidden_size;
        let (q_dim, kv_dim) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let (root, layers_at, embed_name, norm_name) = if c.neox { ("gpt_neox", "layers", "embed_in", "final_layer_norm") } else { ("model", "layers", "embed_tokens", "final_layernorm") };
        let m = vb.pp(root);
        let embed = embedding(c.vocab_size, h, m.pp(embed_name))?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = m.pp(format!("{layers_at}.{i}"));
            let layer = if c.neox {
                let a = l.pp("attention");
                // Rows of query_key_value are grouped per head: [q_h, k_h, v_h] for each head.
                let w = a.pp("query_key_value").get((3 * q_dim, h), "weight")?.reshape((c.num_attention_heads, 3, c.head_dim, h))?;
                let b = a.pp("query_key_value").get(3 * q_dim, "bias")?.reshape((c.num_attention_heads, 3, c.head_dim))?;
                let part = |j: usize| -> Result<Linear> {
                    let w = w.narrow(1, j, 1)?.reshape((q_dim, h))?;
                    let b = b.narrow(1, j, 1)?.reshape(q_dim)?;
                    Ok(Linear::new(w, Some(b)))
                };
                Layer {
                    input_norm: layer_norm(h, eps, l.pp("input_layernorm"))?,
                    mlp_norm: Some(layer_norm(h, eps, l.pp("post_attention_layernorm"))?),
                    q: part(0)?,
                    k: part(1)?,
                    v: part(2)?,
                    o: linear_b(q_dim, h, true, a.pp("dense"))?,
                    up: linear_b(h, c.intermediate_size, true, l.pp("mlp").pp("dense_h_to_4h"))?,
                    down: linear_b(c.intermediate_size, h, true, l.pp("mlp").pp("dense_4h_to_h"))?,
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
                    up: linear_b(h, c.intermediate_size, true, l.pp("mlp").pp("fc1"))?,
                    down: linear_b(c.intermediate_size, h, true, l.pp("mlp").pp("fc2"))?,
                }
            };
            layers.push(layer);
        }
        let norm = layer_norm(h, eps, m.pp(norm_name))?;
        let lm_head = if c.neox {
            Linear::new(vb.pp("embed_out").get((c.vocab_size, h), "weight")?, None)
        } else {
            linear_b(h, c.vocab_size, true, vb.pp("lm_head"))?
        };
        Ok(Self {
            device: embed.embeddings().device().clone(),
            embed,
            layers,
            norm,
            lm_head,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            rotary_dim: c.rotary_dim,
            rope_theta: c.rope_theta,
            parallel_residual: c.parallel_residual,
            exact_gelu: c.neox,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn lm_head(&self) -> &Linear {
        &self.lm_head
    }

    fn attention(&self, layer: &Layer, x: &Tensor, cos: &Tensor, sin: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let shape = |y: Tensor, heads: usize| y.reshape((b, t, heads, self.head_dim))?.transpose(1, 2)?.contiguous();
        let rotate = |x: Tensor| -> Result<Tensor> {
            let rotated = candle_nn::rotary_emb::rope(&x.narrow(D::Minus1, 0, self.rotary_dim)?.contiguous()?, cos, sin)?;
            let rest = x.narrow(D::Minus1, self.rotary_dim, self.head_dim - self.rotary_dim)?;
            Tensor::cat(&[&rotated, &rest], D::Minus1)?.contiguous()
        };
        let q = rotate(shape(layer.q.forward(x)?, self.heads)?)?;
        let k = rotate(shape(layer.k.forward(x)?, self.kv_heads)?)?;
        let v = shape(layer.v.forward(x)?, self.kv_heads)?;
        let groups = self.heads / self.kv_heads;
        let (k, v) = (head::repeat_kv(k, groups)?, head::repeat_kv(v, groups)?);
        let scores = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?.broadcast_add(mask)?;
        let out = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?.transpose(1, 2)?.reshape((b, t, self.heads * self.head_dim))?;
        layer.o.forward(&out)
    }

    fn mlp(&self, layer: &Layer, x: &Tensor) -> Result<Tensor> {
        let up = layer.up.forward(x)?;
        let act = if self.exact_gelu { up.gelu_erf()? } else { up.gelu()? };
        layer.down.forward(&act)
    }

    /// Final-norm hidden states for every position: `[1, T, hidden]`.
    pub fn hidden_states(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let mut x = self.embed.forward(ids)?;
        let mask = head::causal_mask(t, None, x.dtype(), &self.device)?;
        let (cos, sin) = head::rotary_tables(&head::plain_inverse_frequencies(self.rotary_dim, self.rope_theta), t, x.dtype(), &self.device)?;
        for layer in &self.layers {
            let normed = layer.input_norm.forward(&x)?;
            let attended = self.attention(layer, &normed, &cos, &sin, &mask)?;
            if self.parallel_residual {
                let mlp_in = match &layer.mlp_norm {
                    Some(norm) => norm.forward(&x)?,
                    None => normed,
                };
                x = ((x + attended)? + self.mlp(layer, &mlp_in)?)?;
            } else {
                x = (x + attended)?;
                let mlp_in = layer.mlp_norm.as_ref().expect("sequential residual has a second norm").forward(&x)?;
                x = (&x + self.mlp(layer, &mlp_in)?)?;
            }
        }
        self.norm.forward(&x)
    }
}
