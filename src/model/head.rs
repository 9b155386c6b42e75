//! What every architecture shares once it has hidden states: the causal mask, rotary tables,
//! key/value repetition, and the language-model head turned into losses a chunk of positions at a
//! time (so `[T × V]` logits never exist at once) or into the next greedy token.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::Linear;
use rayon::prelude::*;

use super::config::LOSS_CHUNK;

/// Additive mask: 0 where position i may attend to j (j <= i, within the window), -inf elsewhere.
pub fn causal_mask(t: usize, window: Option<usize>, dtype: DType, device: &Device) -> Result<Tensor> {
    let window = window.unwrap_or(usize::MAX);
    let values: Vec<f32> =
        (0..t).flat_map(|i| (0..t).map(move |j| if j <= i && i - j < window { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(values, (t, t), device)?.to_dtype(dtype)
}

/// The additive masks of the materialised attention path, built on first use: the CPU f32 path
/// never needs them, and at 4,096 tokens each is a 64 MiB `[t × t]` tensor.
pub struct Masks {
    t: usize,
    dtype: DType,
    device: Device,
    built: std::cell::RefCell<Vec<(Option<usize>, Tensor)>>,
}

impl Masks {
    pub fn new(t: usize, dtype: DType, device: &Device) -> Self {
        Self { t, dtype, device: device.clone(), built: Default::default() }
    }

    fn get(&self, window: Option<usize>) -> Result<Tensor> {
        if let Some((_, mask)) = self.built.borrow().iter().find(|(w, _)| *w == window) {
            return Ok(mask.clone());
        }
        let mask = causal_mask(self.t, window, self.dtype, &self.device)?;
        self.built.borrow_mut().push((window, mask.clone()));
        Ok(mask)
    }
}

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

/// Queries per block in the f32 CPU attention: each block only multiplies by the keys it can see.
const ATTENTION_BLOCK: usize = 256;

/// Causal attention of `q` `[1, heads, t, d]` over `k`, `v` `[1, kv_heads, t, d]`, as
/// `[1, t, heads * d]`, with an optional sliding window (a query sees the `window` latest
/// positions, itself included) and score soft-capping. On CPU in f32 the queries go in blocks
/// that multiply only by the keys they can see and the masked softmax runs in place, which is
/// about three times faster than materialising `[t × t]` scores and a mask; other devices and
/// dtypes take the materialised path with a mask from `masks`.
pub fn attention(
    q: &Tensor,
    k: Tensor,
    v: Tensor,
    scale: f64,
    softcap_at: Option<f64>,
    window: Option<usize>,
    masks: &Masks,
) -> Result<Tensor> {
    let (b, heads, t, d) = q.dims4()?;
    let groups = heads / k.dim(1)?;
    let (k, v) = (repeat_kv(k, groups)?, repeat_kv(v, groups)?);
    if !(b == 1 && q.dtype() == DType::F32 && q.device().is_cpu()) {
        let scores = softcap((q.matmul(&k.t()?)? * scale)?, softcap_at)?.broadcast_add(&masks.get(window)?)?;
        return candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?.transpose(1, 2)?.reshape((b, t, heads * d));
    }
    let mut blocks = Vec::with_capacity(t.div_ceil(ATTENTION_BLOCK));
    for first in (0..t).step_by(ATTENTION_BLOCK) {
        let rows = ATTENTION_BLOCK.min(t - first);
        let key_start = window.map_or(0, |w| (first + 1).saturating_sub(w));
        let keys = first + rows - key_start;
        let scores = q.narrow(2, first, rows)?.matmul(&k.narrow(2, key_start, keys)?.t()?)?;
        let scores = softcap((scores * scale)?, softcap_at)?;
        let mut values: Vec<f32> = scores.flatten_all()?.to_vec1()?;
        // Rows are independent: spread them over the cores (candle's matmuls already are).
        values.par_chunks_exact_mut(keys).enumerate().for_each(|(r, row)| {
            let position = first + r % rows;
            let lo = window.map_or(0, |w| (position + 1).saturating_sub(w)).max(key_start) - key_start;
            let hi = position - key_start;
            masked_softmax(row, lo, hi);
        });
        let probs = Tensor::from_vec(values, (1, heads, rows, keys), q.device())?;
        blocks.push(probs.matmul(&v.narrow(2, key_start, keys)?)?);
    }
    Tensor::cat(&blocks, 2)?.transpose(1, 2)?.reshape((b, t, heads * d))
}

/// Softmax of `row[lo..=hi]` in place (f32, max-subtracted); every other entry becomes 0.
fn masked_softmax(row: &mut [f32], lo: usize, hi: usize) {
    let max = row[lo..=hi].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for x in &mut row[lo..=hi] {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in &mut row[lo..=hi] {
        *x *= inv;
    }
    row[..lo].fill(0.0);
    row[hi + 1..].fill(0.0);
}

/// `[b, kv, t, d]` → `[b, kv * n, t, d]`, each key/value head repeated for its query group.
pub fn repeat_kv(x: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, kv, n, t, d))?.reshape((b, kv * n, t, d))
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

/// Gemma2's soft-capping: `tanh(x / cap) * cap`.
pub fn softcap(x: Tensor, cap: Option<f64>) -> Result<Tensor> {
    match cap {
        Some(cap) => (x / cap)?.tanh()? * cap,
        None => Ok(x),
    }
}

fn logits(lm_head: &Linear, hidden: &Tensor, cap: Option<f64>) -> Result<Tensor> {
    let h = hidden.to_dtype(DType::F32)?;
    let w = lm_head.weight().to_dtype(DType::F32)?;
    let b = lm_head.bias().map(|b| b.to_dtype(DType::F32)).transpose()?;
    softcap(Linear::new(w, b).forward(&h)?, cap)
}

/// Negative log-likelihood of each of `targets` given `hidden` (`[n, hidden]`): logits in f32 a
/// chunk of positions at a time, each row's stable log-sum-exp (`crate::loss::token_nll`) in f64.
/// One pass over the row instead of log-softmax's several.
pub fn token_nlls(lm_head: &Linear, cap: Option<f64>, hidden: &Tensor, targets: &[u32]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(targets.len());
    for start in (0..targets.len()).step_by(LOSS_CHUNK) {
        let len = LOSS_CHUNK.min(targets.len() - start);
        let rows = logits(lm_head, &hidden.narrow(0, start, len)?, cap)?;
        let vocab = rows.dim(D::Minus1)?;
        let values: Vec<f32> = rows.flatten_all()?.to_vec1()?;
        let targets = &targets[start..start + len];
        if let Some(bad) = targets.iter().find(|&&t| t as usize >= vocab) {
            candle_core::bail!("token {bad} is outside the vocabulary of {vocab}");
        }
        out.par_extend(values.par_chunks_exact(vocab).zip(targets.par_iter()).map(|(row, &t)| crate::loss::token_nll(row, t)));
    }
    Ok(out)
}

/// The sum of per-token NLLs, chunk by chunk in row order, so the total does not depend on threads.
pub fn nll_sum(nlls: &[f64]) -> f64 {
    nlls.chunks(LOSS_CHUNK).map(|chunk| chunk.iter().sum::<f64>()).fold(0.0, |total, chunk| total + chunk)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocked CPU path against plain materialised attention, across block boundaries.
    #[test]
    fn blocked_attention_matches_materialised() {
        let device = Device::Cpu;
        let (heads, kv, t, d) = (4, 2, 600, 16);
        let q = Tensor::randn(0f32, 1.0, (1, heads, t, d), &device).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, kv, t, d), &device).unwrap();
        let v = Tensor::randn(0f32, 1.0, (1, kv, t, d), &device).unwrap();
        for (window, cap) in [(None, None), (Some(100), None), (Some(300), Some(5.0))] {
            let mask = causal_mask(t, window, DType::F32, &device).unwrap();
            let got = attention(&q, k.clone(), v.clone(), 0.25, cap, window, &Masks::new(t, DType::F32, &device)).unwrap();
            let (k2, v2) = (repeat_kv(k.clone(), 2).unwrap(), repeat_kv(v.clone(), 2).unwrap());
            let scores = softcap((q.matmul(&k2.t().unwrap()).unwrap() * 0.25).unwrap(), cap).unwrap().broadcast_add(&mask).unwrap();
            let want = candle_nn::ops::softmax_last_dim(&scores)
                .unwrap()
                .matmul(&v2)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((1, t, heads * d))
                .unwrap();
            let diff: f32 = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(diff < 1e-5, "window {window:?}: max difference {diff}");
        }
    }
}
