//! What every architecture shares once it has hidden states: the causal mask, rotary tables,
//! key/value repetition, and the language-model head turned into losses a chunk of positions at a
//! time (so `[T × V]` logits never exist at once) or into the next greedy token.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::Linear;

use super::config::LOSS_CHUNK;

/// Additive mask: 0 where position i may attend to j (j <= i, within the window), -inf elsewhere.
pub fn causal_mask(t: usize, window: Option<usize>, dtype: DType, device: &Device) -> Result<Tensor> {
    let window = window.unwrap_or(usize::MAX);
    let values: Vec<f32> = (0..t).flat_map(|i| (0..t).map(move |j| if j <= i && i - j < window { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(values, (t, t), device)?.to_dtype(dtype)
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

/// `[b, kv, t, d]` → `[b, kv * n, t, d]`, each key/value head repeated for its query group.
pub fn repeat_kv(x: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, kv, n, t, d))?.reshape((b, kv * n, t, d))
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

/// Sum of negative log-likelihoods of `targets` given `hidden` (`[n, hidden]`), in f32 with a
/// stable log-softmax over chunks of positions, accumulated in f64.
pub fn nll_sum(lm_head: &Linear, cap: Option<f64>, hidden: &Tensor, targets: &[u32]) -> Result<f64> {
    let mut total = 0.0f64;
    for start in (0..targets.len()).step_by(LOSS_CHUNK) {
        let len = LOSS_CHUNK.min(targets.len() - start);
        let log_probs = candle_nn::ops::log_softmax(&logits(lm_head, &hidden.narrow(0, start, len)?, cap)?, D::Minus1)?;
        let index = Tensor::new(&targets[start..start + len], hidden.device())?.unsqueeze(1)?;
        let picked: Vec<f32> = log_probs.gather(&index, 1)?.squeeze(1)?.to_vec1()?;
        total -= picked.iter().map(|&p| f64::from(p)).sum::<f64>();
    }
    Ok(total)
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
