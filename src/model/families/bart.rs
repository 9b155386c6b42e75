//! BART's decoder as a causal LM (`BartForCausalLM`), after transformers' modeling file: token
//! embeddings (times sqrt(d_model) with `scale_embedding`) plus learned positions offset by 2,
//! a LayerNorm, then post-norm layers (self-attention with biases, GELU feed-forward). The
//! cross-attention weights are present but unused without an encoder.

use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear_b, Embedding, LayerNorm, LayerNormConfig, Linear, VarBuilder};

use super::{arch, Architecture, CausalLm, Family};
use crate::model::attention::{self, Masks};
use crate::model::config::{check_activation, rename, Dims};
use crate::model::head;
use crate::model::numerics::{in_f32, layer_norm as norm, linear, Numerics};
use crate::model::Error;

pub const FAMILY: Family = Family { architectures: &[arch("bart", "BartForCausalLM", Some("BartTokenizerFast"))], parse };

/// What a BART config says beyond the shared dimensions.
#[derive(Debug, Clone, Copy)]
struct Settings {
    scale_embedding: bool,
    max_position_embeddings: usize,
}

/// BART names its decoder's fields after the encoder-decoder; they are mapped onto the common ones.
fn parse(class: &str, json: &mut serde_json::Value) -> std::result::Result<(Dims, Box<dyn Architecture>), Error> {
    if json["add_final_layer_norm"].as_bool() == Some(true) || json["normalize_before"].as_bool() == Some(true) {
        return Err(Error::Architecture("BartForCausalLM with mBART-style pre-norm layers".into()));
    }
    let settings = Settings {
        scale_embedding: json["scale_embedding"].as_bool().unwrap_or(false),
        max_position_embeddings: json["max_position_embeddings"].as_u64().unwrap_or(1024).min(1 << 20) as usize,
    };
    rename(
        json,
        &[
            ("hidden_size", "d_model"),
            ("num_hidden_layers", "decoder_layers"),
            ("num_attention_heads", "decoder_attention_heads"),
            ("intermediate_size", "decoder_ffn_dim"),
            ("hidden_act", "activation_function"),
        ],
    );
    // The decoder's heads are all key/value heads.
    json.as_object_mut().expect("config.json was checked to be an object").remove("num_key_value_heads");
    let dims = Dims::read(json, true)?;
    check_activation(json, class, "gelu", &["gelu"])?;
    Ok((dims, Box::new(settings)))
}

impl Architecture for Settings {
    fn load(&self, dims: &Dims, vb: VarBuilder, numerics: Numerics) -> Result<Box<dyn CausalLm>> {
        Ok(Box::new(Bart::load(dims, *self, vb, numerics)?))
    }
}

/// BART's learned positional embedding starts at row 2.
const POSITION_OFFSET: usize = 2;

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attention_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_norm: LayerNorm,
}

/// BART's LayerNorm epsilon (torch's default; the config has none).
const NORM_EPS: f64 = 1e-5;

struct Bart {
    embed: Embedding,
    positions: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    lm_head: Linear,
    heads: usize,
    head_dim: usize,
    embed_scale: f64,
    max_positions: usize,
    numerics: Numerics,
}

impl Bart {
    fn load(c: &Dims, b: Settings, vb: VarBuilder, numerics: Numerics) -> Result<Self> {
        let d = vb.pp("model").pp("decoder");
        let h = c.hidden_size;
        let eps = LayerNormConfig::default();
        let embed = embedding(c.vocab_size, h, d.pp("embed_tokens"))?;
        let positions = d.pp("embed_positions").get((b.max_position_embeddings + POSITION_OFFSET, h), "weight")?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = d.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            layers.push(Layer {
                q: linear_b(h, h, true, a.pp("q_proj"))?,
                k: linear_b(h, h, true, a.pp("k_proj"))?,
                v: linear_b(h, h, true, a.pp("v_proj"))?,
                o: linear_b(h, h, true, a.pp("out_proj"))?,
                attention_norm: layer_norm(h, eps, l.pp("self_attn_layer_norm"))?,
                fc1: linear_b(h, c.intermediate_size, true, l.pp("fc1"))?,
                fc2: linear_b(c.intermediate_size, h, true, l.pp("fc2"))?,
                final_norm: layer_norm(h, eps, l.pp("final_layer_norm"))?,
            });
        }
        let lm_head = head::tied_or_own(c.tie_word_embeddings, &embed, &vb, c.vocab_size, h)?;
        Ok(Self {
            embed_norm: layer_norm(h, eps, d.pp("layernorm_embedding"))?,
            embed,
            positions,
            layers,
            lm_head,
            heads: c.num_attention_heads,
            head_dim: c.head_dim,
            embed_scale: if b.scale_embedding { (h as f64).sqrt() } else { 1.0 },
            max_positions: b.max_position_embeddings,
            numerics,
        })
    }

    fn attention(&self, layer: &Layer, x: &Tensor, masks: &Masks) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let shape = |y: Tensor| y.reshape((b, t, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous();
        let q = shape(linear(&layer.q, x)?)?;
        let (k, v) = (shape(linear(&layer.k, x)?)?, shape(linear(&layer.v, x)?)?);
        let out = attention::attention(&q, k, v, (self.head_dim as f64).powf(-0.5), None, None, masks)?;
        linear(&layer.o, &out)
    }
}

impl CausalLm for Bart {
    fn lm_head(&self) -> (&Linear, Option<f64>) {
        (&self.lm_head, None)
    }

    fn hidden_states(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        if t > self.max_positions {
            candle_core::bail!("{t} tokens exceed BART's {} learned positions", self.max_positions);
        }
        let tokens = (self.embed.forward(ids)? * self.embed_scale)?;
        let positions = self.positions.narrow(0, POSITION_OFFSET, t)?.unsqueeze(0)?;
        let mut x = norm(&self.embed_norm, &tokens.broadcast_add(&positions)?, NORM_EPS)?;
        let masks = Masks::new(ids.device(), self.numerics.attention);
        for layer in &self.layers {
            x = norm(&layer.attention_norm, &(&x + self.attention(layer, &x, &masks)?)?, NORM_EPS)?;
            let ff = linear(&layer.fc2, &in_f32(&linear(&layer.fc1, &x)?, |u| u.gelu_erf())?)?;
            x = norm(&layer.final_norm, &(&x + ff)?, NORM_EPS)?;
        }
        Ok(x)
    }
}
