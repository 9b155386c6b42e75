//! Weights as the chain receives them (chain.md §3.5), exactly as the bittensor SDK 9.0 computes
//! them with numpy 2 (NEP 50 promotion): `convert_weights_and_uids_for_emit` (float → u16,
//! round half to even, zeros dropped) and the optional `process_weights` /
//! `normalize_max_weight` pre-processing for the min-allowed-weights and max-weight-limit rules.
//! Pure: values in, values out.

mod commit;
mod numpy;

pub use commit::{epoch_index, first_block_of_epoch, weight_commit_hash};
use numpy::{pairwise_sum, Real};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("no weights to convert")]
    Empty,
    #[error("weight {value} of uid {uid} is negative and cannot exist on chain")]
    NegativeWeight { uid: i64, value: f64 },
    #[error("uid {0} is negative and cannot exist on chain")]
    NegativeUid(i64),
    #[error("uid {0} does not fit the chain's u16 uids")]
    UidTooLarge(i64),
    #[error("{uids} uids but {weights} weights")]
    LengthMismatch { uids: usize, weights: usize },
}

/// `convert_weights_and_uids_for_emit`: the (uid, u16) pairs sent in `set_weights`, in input
/// order. All-zero weights send nothing.
pub fn convert_for_emit(uids: &[i64], weights: &[f64]) -> Result<(Vec<u16>, Vec<u16>), Error> {
    if weights.is_empty() || uids.is_empty() {
        return Err(Error::Empty);
    }
    if let Some((i, &value)) = weights.iter().enumerate().find(|(_, w)| **w < 0.0) {
        return Err(Error::NegativeWeight { uid: uids.get(i).copied().unwrap_or(-1), value });
    }
    if let Some(&uid) = uids.iter().find(|u| **u < 0) {
        return Err(Error::NegativeUid(uid));
    }
    if uids.len() != weights.len() {
        return Err(Error::LengthMismatch { uids: uids.len(), weights: weights.len() });
    }
    // Python's builtin sum: left to right in double.
    if weights.iter().sum::<f64>() == 0.0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let max = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut out_uids = Vec::new();
    let mut out_values = Vec::new();
    for (&uid, &w) in uids.iter().zip(weights) {
        let value = ((w / max) * 65535.0).round_ties_even();
        if value != 0.0 {
            out_uids.push(u16::try_from(uid).map_err(|_| Error::UidTooLarge(uid))?);
            out_values.push(value as u16);
        }
    }
    Ok((out_uids, out_values))
}

/// `u16_normalized_float`: a u16 hyperparameter such as MaxWeightsLimit as a fraction.
pub fn u16_normalized_float(x: u16) -> f64 {
    f64::from(x) / 65535.0
}

/// `normalize_max_weight`: normalise to sum 1 with no entry above `limit`, in the input's float type.
pub fn normalize_max_weight<T: Real>(x: &[T], limit: f64) -> Vec<T> {
    const EPSILON: f64 = 1e-7;
    let n = x.len();
    let mut values = x.to_vec();
    values.sort_by(|a, b| a.partial_cmp(b).expect("weights are not NaN"));
    let total = pairwise_sum(x);
    if total == T::ZERO || (n as f64) * limit <= 1.0 {
        return vec![T::ONE / T::from_usize(n); n];
    }
    let values_sum = pairwise_sum(&values);
    let estimation: Vec<T> = values.iter().map(|&v| v / values_sum).collect();
    let limit_t = T::from_f64(limit);
    let max = estimation.iter().copied().fold(estimation[0], |a, b| if b > a { b } else { a });
    if max <= limit_t {
        return x.iter().map(|&v| v / total).collect();
    }
    let mut cumsum = Vec::with_capacity(n);
    let mut running = T::ZERO;
    for &e in &estimation {
        running = running + e;
        cumsum.push(running);
    }
    let eps_t = T::from_f64(EPSILON);
    let n_values = (0..n)
        .filter(|&i| {
            let estimation_sum = T::from_usize(n - i - 1) * estimation[i];
            estimation[i] / (estimation_sum + cumsum[i] + eps_t) < limit_t
        })
        .count();
    // numpy: cumsum[n_values - 1] wraps to the last element when n_values is 0.
    let at = if n_values == 0 { n - 1 } else { n_values - 1 };
    let numerator = (limit_t * cumsum[at] - eps_t).to_f64();
    let cutoff_scale = numerator / (1.0 - limit * (n as f64 - n_values as f64));
    let cutoff = cutoff_scale * values_sum.to_f64();
    let clipped: Vec<T> = x.iter().map(|&v| if v.to_f64() > cutoff { T::from_f64(cutoff) } else { v }).collect();
    let clipped_sum = pairwise_sum(&clipped);
    clipped.iter().map(|&v| v / clipped_sum).collect()
}

/// The result of `process_weights`: uids and weights, float32 or (in the fallback branches) float64
/// values, widened to f64 as `.tolist()` does before emitting.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub uids: Vec<i64>,
    pub weights: Vec<f64>,
    /// Whether numpy would hold the result as float32 (else float64).
    pub float32: bool,
}

/// `process_weights(uids, weights, num_neurons, min_allowed_weights, max_weight_limit, exclude_quantile)`.
pub fn process_weights(
    uids: &[i64],
    weights: &[f32],
    num_neurons: usize,
    min_allowed_weights: usize,
    max_weight_limit: f64,
    exclude_quantile: u16,
) -> Processed {
    let non_zero: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0.0).collect();
    if non_zero.is_empty() || num_neurons < min_allowed_weights {
        let weights = vec![1.0 / num_neurons as f64; num_neurons];
        return Processed { uids: (0..num_neurons as i64).collect(), weights, float32: false };
    }
    if non_zero.len() < min_allowed_weights {
        let mut padded = vec![1e-5f64; num_neurons];
        for &i in &non_zero {
            padded[i] += f64::from(weights[i]);
        }
        let weights = normalize_max_weight(&padded, max_weight_limit);
        return Processed { uids: (0..num_neurons as i64).collect(), weights, float32: false };
    }
    let quantile = f64::from(exclude_quantile) / 65535.0;
    let k = non_zero.len();
    let max_exclude = (k.saturating_sub(min_allowed_weights)) as f64 / k as f64;
    let q = quantile.min(max_exclude) as f32;
    let nz_weights: Vec<f32> = non_zero.iter().map(|&i| weights[i]).collect();
    let lowest = numpy::quantile_linear_f32(&nz_weights, q);
    let kept: Vec<usize> = non_zero.into_iter().filter(|&i| lowest <= weights[i]).collect();
    let kept_weights: Vec<f32> = kept.iter().map(|&i| weights[i]).collect();
    let normalized = normalize_max_weight(&kept_weights, max_weight_limit);
    Processed { uids: kept.iter().map(|&i| uids[i]).collect(), weights: normalized.iter().map(|&w| f64::from(w)).collect(), float32: true }
}

#[cfg(test)]
mod tests;
