//! The language-model head turned into per-token losses a chunk of positions at a time, so
//! `[T × V]` logits never exist at once: on CPU in f32 into one reused buffer through GEMM, on
//! a GPU where the logits are (only the NLLs come back), elsewhere row by row on the host.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::Linear;
use rayon::prelude::*;

use super::LOSS_CHUNK;
use crate::kernels::matmul::{a_bt, Matrix, Threads};
use crate::kernels::with_cpu_slice;
use crate::model::head::logits;

/// Negative log-likelihood of each of `targets` given `hidden` (`[n, hidden]`): logits a chunk of
/// positions at a time, each row's stable log-sum-exp (`super::token_nll`). One pass over
/// the row instead of log-softmax's several. With `rounded_to` (logits not upcast), each NLL is
/// rounded to that dtype, as a bf16 log-softmax output is.
pub fn token_nlls(lm_head: &Linear, cap: Option<f64>, hidden: &Tensor, targets: &[u32], rounded_to: Option<DType>) -> Result<Vec<f64>> {
    let vocab = lm_head.weight().dim(0)?;
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        candle_core::bail!("token {bad} is outside the vocabulary of {vocab}");
    }
    let nll = |(row, &t): (&[f32], &u32)| super::round_to(rounded_to, super::token_nll(row, t));
    let mut out = Vec::with_capacity(targets.len());
    if hidden.device().is_cpu() && hidden.dtype() == DType::F32 && cap.is_none() {
        // f32 on CPU: each chunk's logits go into one reused buffer (a fresh `[chunk × vocab]`
        // tensor per chunk costs its page faults again every time).
        let mut logits = vec![0f32; LOSS_CHUNK.min(targets.len()) * vocab];
        let (n, width) = hidden.dims2()?;
        with_cpu_slice(&lm_head.weight().to_dtype(DType::F32)?, |weight| {
            with_cpu_slice(hidden, |hidden| {
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
    if !hidden.device().is_cpu() {
        // Each chunk's NLLs stay on the device; one transfer per batch, no sync per chunk.
        let mut chunks = Vec::with_capacity(targets.len().div_ceil(LOSS_CHUNK));
        for start in (0..targets.len()).step_by(LOSS_CHUNK) {
            let len = LOSS_CHUNK.min(targets.len() - start);
            chunks.push(nlls_on_device(&logits(lm_head, &hidden.narrow(0, start, len)?, cap)?, &targets[start..start + len])?);
        }
        let nlls: Vec<f32> = Tensor::cat(&chunks, 0)?.to_vec1()?;
        return Ok(nlls.into_iter().map(|x| super::round_to(rounded_to, f64::from(x))).collect());
    }
    for start in (0..targets.len()).step_by(LOSS_CHUNK) {
        let len = LOSS_CHUNK.min(targets.len() - start);
        let rows = logits(lm_head, &hidden.narrow(0, start, len)?, cap)?;
        with_cpu_slice(&rows, |values| {
            out.par_extend(values.par_chunks_exact(vocab).zip(targets[start..start + len].par_iter()).map(nll));
            Ok(())
        })?;
    }
    Ok(out)
}

/// One chunk's NLLs `[n]`, computed where the logits are (a GPU): the log-sum-exp of each row
/// around its maximum and the target's logit gathered, in f32 as CUDA's cross entropy computes
/// them; the `[n × vocab]` logits never leave the device.
fn nlls_on_device(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?;
    let log_z = logits.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?.log()?.add(&max)?;
    let index = Tensor::new(targets, logits.device())?.unsqueeze(1)?;
    let target = logits.gather(&index, D::Minus1)?;
    (log_z - target)?.squeeze(1)
}

/// The sum of per-token NLLs, chunk by chunk in row order, so the total does not depend on threads.
pub fn nll_sum(nlls: &[f64]) -> f64 {
    nlls.chunks(LOSS_CHUNK).map(|chunk| chunk.iter().sum::<f64>()).fold(0.0, |total, chunk| total + chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The device path (f32 on the tensor's device) agrees with the host path (f64 per row).
    #[test]
    fn device_and_host_nlls_agree() {
        let device = candle_core::Device::Cpu;
        let logits = (Tensor::randn(0f32, 3.0, (37, 1000), &device).unwrap() + 5.0).unwrap();
        let targets: Vec<u32> = (0..37).map(|i| (i * 27 % 1000) as u32).collect();
        let on_device: Vec<f32> = nlls_on_device(&logits, &targets).unwrap().to_vec1().unwrap();
        let values: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
        for (i, (got, &t)) in on_device.iter().zip(&targets).enumerate() {
            let (got, want) = (f64::from(*got), crate::loss::token_nll(&values[i * 1000..(i + 1) * 1000], t));
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "row {i}: {got} vs {want}");
        }
    }
}
