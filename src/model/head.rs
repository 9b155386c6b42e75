//! What the architecture families share: rotary tables, the output projection and its logits,
//! and the next greedy token. The losses from those logits are `crate::loss::chunked`.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::Linear;

use super::numerics::{linear, softcap};

/// `1 / theta^(2i/d)` for the rotating dimensions.
pub fn plain_inverse_frequencies(dim: usize, theta: f64) -> Vec<f32> {
    (0..dim / 2).map(|i| (1.0 / theta.powf((2 * i) as f64 / dim as f64)) as f32).collect()
}

/// cos and sin of `position × inv_freq`, `[t, d/2]` each, as candle's `rope` wants them.
pub fn rotary_tables(inv_freq: &[f32], t: usize, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
    let inv = Tensor::from_vec(inv_freq.to_vec(), (1, inv_freq.len()), device)?;
    let positions = Tensor::arange(0u32, t as u32, device)?.to_dtype(DType::F32)?.reshape((t, 1))?;
    let freqs = positions.matmul(&inv)?;
    Ok((freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?))
}

/// RoPE on the first `rotary_dim` dimensions of each head of `x` `[b, heads, t, head_dim]`; the
/// rest pass through (partial rotary: Phi, Phi3, GPT-NeoX).
pub fn rope(x: Tensor, cos: &Tensor, sin: &Tensor, rotary_dim: usize) -> Result<Tensor> {
    let head_dim = x.dim(D::Minus1)?;
    if rotary_dim == head_dim {
        return candle_nn::rotary_emb::rope(&x, cos, sin);
    }
    let rotated = candle_nn::rotary_emb::rope(&x.narrow(D::Minus1, 0, rotary_dim)?.contiguous()?, cos, sin)?;
    let rest = x.narrow(D::Minus1, rotary_dim, head_dim - rotary_dim)?;
    Tensor::cat(&[&rotated, &rest], D::Minus1)?.contiguous()
}

/// The output projection: the input embeddings when tied, else `lm_head.weight`, without bias.
pub fn tied_or_own(tied: bool, embed: &candle_nn::Embedding, vb: &candle_nn::VarBuilder, vocab: usize, hidden: usize) -> Result<Linear> {
    let weight = if tied { embed.embeddings().clone() } else { vb.pp("lm_head").get((vocab, hidden), "weight")? };
    Ok(Linear::new(weight, None))
}

/// Logits as f32 values: in the model dtype through the lm_head (and soft-capping), as the
/// validators compute them, then widened (exactly) for the loss.
pub fn logits(lm_head: &Linear, hidden: &Tensor, cap: Option<f64>) -> Result<Tensor> {
    softcap(linear(lm_head, hidden)?, cap)?.to_dtype(DType::F32)
}

/// The most likely next token after the position `hidden` (`[1, hidden]`) holds: the first
/// maximum, as torch's argmax.
pub fn argmax_next(lm_head: &Linear, cap: Option<f64>, hidden: &Tensor) -> Result<u32> {
    let logits: Vec<f32> = logits(lm_head, hidden, cap)?.squeeze(0)?.to_vec1()?;
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    Ok(best as u32)
}
