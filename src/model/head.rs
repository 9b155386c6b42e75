//! What every architecture shares once it has hidden states: the causal mask, rotary tables,
//! key/value repetition, and the language-model head turned into losses a chunk of positions at a
//! time (so `[T × V]` logits never exist at once) or into the next greedy token.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::Linear;
use rayon::prelude::*;

use super::attention;
use super::config::LOSS_CHUNK;
use super::numerics::{in_f32, linear};
use crate::kernels::matmul::{a_bt, Matrix, Threads};

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

/// Gemma2's soft-capping: `tanh(x / cap) * cap`, each operation rounded to `x`'s dtype as torch
/// rounds it.
pub fn softcap(x: Tensor, cap: Option<f64>) -> Result<Tensor> {
    match cap {
        Some(cap) => {
            let x = in_f32(&x, |x| x / cap)?;
            let x = in_f32(&x, |x| x.tanh())?;
            in_f32(&x, |x| x * cap)
        }
        None => Ok(x),
    }
}

/// Logits as f32 values: in the model dtype through the lm_head (and soft-capping), as the
/// validators compute them, then widened (exactly) for the loss.
fn logits(lm_head: &Linear, hidden: &Tensor, cap: Option<f64>) -> Result<Tensor> {
    softcap(linear(lm_head, hidden)?, cap)?.to_dtype(DType::F32)
}

/// Negative log-likelihood of each of `targets` given `hidden` (`[n, hidden]`): logits a chunk of
/// positions at a time, each row's stable log-sum-exp (`crate::loss::token_nll`). One pass over
/// the row instead of log-softmax's several. With `rounded_to` (logits not upcast), each NLL is
/// rounded to that dtype, as a bf16 log-softmax output is.
pub fn token_nlls(lm_head: &Linear, cap: Option<f64>, hidden: &Tensor, targets: &[u32], rounded_to: Option<DType>) -> Result<Vec<f64>> {
    let vocab = lm_head.weight().dim(0)?;
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        candle_core::bail!("token {bad} is outside the vocabulary of {vocab}");
    }
    let nll = |(row, &t): (&[f32], &u32)| crate::loss::round_to(rounded_to, crate::loss::token_nll(row, t));
    let mut out = Vec::with_capacity(targets.len());
    if hidden.device().is_cpu() && hidden.dtype() == DType::F32 && cap.is_none() {
        // f32 on CPU: each chunk's logits go into one reused buffer (a fresh `[chunk × vocab]`
        // tensor per chunk costs its page faults again every time).
        let mut logits = vec![0f32; LOSS_CHUNK.min(targets.len()) * vocab];
        let (n, width) = hidden.dims2()?;
        attention::with_cpu_slice(&lm_head.weight().to_dtype(DType::F32)?, |weight| {
            attention::with_cpu_slice(hidden, |hidden| {
                for start in (0..n).step_by(LOSS_CHUNK) {
                    let len = LOSS_CHUNK.min(n - start);
                    let rows = Matrix::new(&hidden[start * width..(start + len) * width], len, width, width);
                    let logits = &mut logits[..len * vocab];
                    a_bt(rows, Matrix::new(weight, vocab, width, width), logits, vocab, Threads::Pool);
                    out.par_extend(logits.par_chunks_exact(vocab).zip(targets[start..start + len].par_iter()).map(nll));
                }
                Ok(())
            })
        })?;
        return Ok(out);
    }
    for start in (0..targets.len()).step_by(LOSS_CHUNK) {
        let len = LOSS_CHUNK.min(targets.len() - start);
        let rows = logits(lm_head, &hidden.narrow(0, start, len)?, cap)?;
        let targets = &targets[start..start + len];
        if !rows.device().is_cpu() {
            out.extend(nlls_on_device(&rows, targets)?.into_iter().map(|x| crate::loss::round_to(rounded_to, x)));
            continue;
        }
        attention::with_cpu_slice(&rows, |values| {
            out.par_extend(values.par_chunks_exact(vocab).zip(targets.par_iter()).map(nll));
            Ok(())
        })?;
    }
    Ok(out)
}

/// One chunk's NLLs computed where the logits are (a GPU): the log-sum-exp of each row around
/// its maximum and the target's logit gathered, in f32 as CUDA's cross entropy computes them;
/// only the `n` NLLs come back to the host, never the `[n × vocab]` logits.
fn nlls_on_device(logits: &Tensor, targets: &[u32]) -> Result<Vec<f64>> {
    let max = logits.max_keepdim(D::Minus1)?;
    let log_z = logits.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?.log()?.add(&max)?;
    let index = Tensor::new(targets, logits.device())?.unsqueeze(1)?;
    let target = logits.gather(&index, D::Minus1)?;
    let nll: Vec<f32> = (log_z - target)?.squeeze(1)?.to_vec1()?;
    Ok(nll.into_iter().map(f64::from).collect())
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

    /// The device path (f32 on the tensor's device) agrees with the host path (f64 per row).
    #[test]
    fn device_and_host_nlls_agree() {
        let device = Device::Cpu;
        let logits = (Tensor::randn(0f32, 3.0, (37, 1000), &device).unwrap() + 5.0).unwrap();
        let targets: Vec<u32> = (0..37).map(|i| (i * 27 % 1000) as u32).collect();
        let on_device = nlls_on_device(&logits, &targets).unwrap();
        let values: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
        for (i, (got, &t)) in on_device.iter().zip(&targets).enumerate() {
            let want = crate::loss::token_nll(&values[i * 1000..(i + 1) * 1000], t);
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "row {i}: {got} vs {want}");
        }
    }
}
