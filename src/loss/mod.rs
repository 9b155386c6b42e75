//! Cross entropy as upstream scores a model (upstream.md §5.2, §5.3): targets are the input ids
//! shifted by one; text loss averages every shifted position, reference loss only the positions
//! predicting the reference tokens after the context. Pure and per-row, so a caller can stream
//! logits in chunks of positions and never hold `[T × V]` at once (`chunked` does, from a
//! model's hidden states).

pub mod chunked;

/// Positions whose logits exist at once when computing a loss.
pub const LOSS_CHUNK: usize = 256;

/// Negative log-likelihood of `target` under one row of logits, with a stable log-softmax: the
/// exponentials in vectorised f32 around the row's maximum, summed in f64.
pub fn token_nll(logits: &[f32], target: u32) -> f64 {
    crate::kernels::exp::log_sum_exp(logits) - f64::from(logits[target as usize])
}

/// `x` rounded to a half-precision dtype (and widened back), or unchanged for `None`/f32: how a
/// bf16 log-softmax output or loss holds a value.
pub fn round_to(dtype: Option<candle_core::DType>, x: f64) -> f64 {
    match dtype {
        // Through f32, where torch computes the value before rounding it.
        Some(candle_core::DType::BF16) => f64::from(half::bf16::from_f32(x as f32).to_f32()),
        Some(candle_core::DType::F16) => f64::from(half::f16::from_f32(x as f32).to_f32()),
        _ => x,
    }
}

/// The mean of NLLs that are bf16/f16 values, as CUDA's `nll_loss` reduces them: summed in f32,
/// divided by the count, rounded once to the dtype.
pub fn rounded_mean(nlls: &[f64], dtype: candle_core::DType) -> f64 {
    let sum: f32 = nlls.iter().map(|&x| x as f32).sum();
    round_to(Some(dtype), f64::from(sum / nlls.len() as f32))
}

/// Per-position NLLs of a `[T × vocab]` logits block against `ids[1..]`.
pub fn shifted_nlls(logits: &[f32], vocab: usize, ids: &[u32]) -> Vec<f64> {
    assert_eq!(logits.len(), ids.len() * vocab, "logits must be [T x vocab]");
    (0..ids.len().saturating_sub(1)).map(|t| token_nll(&logits[t * vocab..(t + 1) * vocab], ids[t + 1])).collect()
}

/// Mean NLL over the scored positions: all of them for text loss (`context_len` 0), else the
/// positions predicting tokens at `context_len..` (the first from the last context token).
pub fn mean_loss(nlls: &[f64], context_len: usize) -> f64 {
    let scored = &nlls[context_len.saturating_sub(1).min(nlls.len())..];
    if scored.is_empty() {
        return f64::INFINITY;
    }
    scored.iter().sum::<f64>() / scored.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::{f32_bits, section};

    #[test]
    fn cross_entropy_vectors() {
        let v = section("cross_entropy");
        let vocab = v["vocab"].as_u64().unwrap() as usize;
        let ids: Vec<u32> = v["input_ids"][0].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let logits: Vec<f32> = f32_bits(&v["logits_f32"]).into_iter().map(f32::from_bits).collect();
        let nlls = shifted_nlls(&logits, vocab, &ids);
        for (got, bits) in nlls.iter().zip(f32_bits(&v["per_token_nll_f32"])) {
            let want = f64::from(f32::from_bits(bits));
            assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
        }
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b;
        assert!(close(mean_loss(&nlls, 0), v["text_loss"].as_f64().unwrap()));
        // Reference loss over the last `ref_len` tokens: context is everything before them.
        let ref_len = v["ref_len"].as_u64().unwrap() as usize;
        assert!(close(mean_loss(&nlls, ids.len() - ref_len), v["reference_loss"].as_f64().unwrap()));
    }
}
