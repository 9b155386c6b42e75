//! The fixed-point vector and sparse-matrix operations of the chain's epoch, each as subtensor
//! writes it (opentensor/subtensor@beda29a3, spec 293: `pallets/subtensor/src/epoch/math.rs`; the
//! line cited on each). Exactness depends on the same operations in the same order: a sum is a
//! plain left fold (`iter().sum()`, which wraps in the release runtime), a product or sum marked
//! saturating is saturating, a division by zero is zero (`safe_div`).
//!
//! A sparse matrix is one row per uid, each a list of `(column, value)` in column order.

use substrate_fixed::types::{I32F32, I64F64};

pub type Sparse = Vec<Vec<(u16, I32F32)>>;

pub fn zero() -> I32F32 {
    I32F32::from_num(0)
}

/// `safe_div` (primitives/safe-math): the quotient, or zero when it does not exist.
pub fn safe_div(a: I32F32, b: I32F32) -> I32F32 {
    a.checked_div(b).unwrap_or_default()
}

pub fn safe_div_64(a: I64F64, b: I64F64) -> I64F64 {
    a.checked_div(b).unwrap_or_default()
}

/// `x.iter().sum()`: the runtime's release build wraps on overflow (proportions never do).
pub fn sum(x: impl IntoIterator<Item = I32F32>) -> I32F32 {
    x.into_iter().fold(zero(), |a, b| a.wrapping_add(b))
}

/// `fixed_proportion_to_u16` (:64): truncates `x × 65535`, saturating at the bounds.
pub fn proportion_to_u16(x: I32F32) -> u16 {
    x.saturating_mul(I32F32::from_num(u16::MAX)).saturating_to_num::<u16>()
}

/// `u16_proportion_to_fixed` (:54) and `fixed_to_fixed_u16_proportion` (:59) of a u16.
pub fn u16_proportion(x: u16) -> I32F32 {
    safe_div(I32F32::from_num(x), I32F32::from_num(u16::MAX))
}

/// `vec_max_upscale_to_u16` (:95): the largest becomes 65535.
pub fn max_upscale_to_u16(vec: &[I32F32]) -> Vec<u16> {
    let u16_max = I32F32::from_num(u16::MAX);
    let threshold = I32F32::from_num(32768);
    let Some(max) = vec.iter().max().copied() else { return Vec::new() };
    if max == zero() {
        return vec.iter().map(|e| e.saturating_mul(u16_max).saturating_to_num::<u16>()).collect();
    }
    if max > threshold {
        return vec.iter().map(|e| e.saturating_mul(safe_div(u16_max, max)).round().saturating_to_num::<u16>()).collect();
    }
    vec.iter().map(|e| safe_div(e.saturating_mul(u16_max), max).round().saturating_to_num::<u16>()).collect()
}

/// `vec_u16_max_upscale_to_u16` (:141): how `set_weights` stores a row (its largest 65535).
pub fn u16_max_upscale(vec: &[u16]) -> Vec<u16> {
    let fixed: Vec<I32F32> = vec.iter().map(|v| I32F32::saturating_from_num(*v)).collect();
    max_upscale_to_u16(&fixed)
}

/// `is_topk_nonzero` (:251): true for the k largest (a stable ascending sort drops the first
/// n − k) that are not zero; all non-zero ones when there are fewer than k.
pub fn is_topk_nonzero(vector: &[I32F32], k: usize) -> Vec<bool> {
    let n = vector.len();
    let mut result: Vec<bool> = vector.iter().map(|&e| e != zero()).collect();
    if n < k {
        return result;
    }
    let mut idxs: Vec<usize> = (0..n).collect();
    idxs.sort_by_key(|&i| vector[i]);
    for &i in idxs.iter().take(n - k) {
        result[i] = false;
    }
    result
}

/// `inplace_normalize` (:278).
pub fn normalize(x: &mut [I32F32]) {
    let total = sum(x.iter().copied());
    if total == zero() {
        return;
    }
    x.iter_mut().for_each(|v| *v = safe_div(*v, total));
}

/// `inplace_normalize_64` (:299).
pub fn normalize_64(x: &mut [I64F64]) {
    let total = x.iter().fold(I64F64::from_num(0), |a, b| a.wrapping_add(*b));
    if total == I64F64::from_num(0) {
        return;
    }
    x.iter_mut().for_each(|v| *v = safe_div_64(*v, total));
}

/// `vecdiv` (:322): x / y, zero where y is zero.
pub fn vecdiv(x: &[I32F32], y: &[I32F32]) -> Vec<I32F32> {
    x.iter().zip(y).map(|(a, b)| if *b != zero() { safe_div(*a, *b) } else { zero() }).collect()
}

/// `vec_mul` (:1228): checked products, zero on overflow.
pub fn vec_mul(a: &[I32F32], b: &[I32F32]) -> Vec<I32F32> {
    a.iter().zip(b).map(|(x, y)| x.checked_mul(*y).unwrap_or_default()).collect()
}

/// `inplace_mask_vector` (:513): zero where the mask is true.
pub fn mask_vector(mask: &[bool], vector: &mut [I32F32]) {
    for (m, v) in mask.iter().zip(vector) {
        if *m {
            *v = zero();
        }
    }
}

/// `inplace_row_normalize_sparse` (:350): rows with a positive sum sum to one.
pub fn row_normalize(m: &mut Sparse) {
    for row in m.iter_mut() {
        let total = sum(row.iter().map(|(_, v)| *v));
        if total > zero() {
            row.iter_mut().for_each(|(_, v)| *v = safe_div(*v, total));
        }
    }
}

/// `row_sum_sparse` (:374).
pub fn row_sum(m: &Sparse) -> Vec<I32F32> {
    m.iter().map(|row| sum(row.iter().map(|(_, v)| *v))).collect()
}

/// `inplace_col_normalize_sparse` (:416): columns with a non-zero sum sum to one.
pub fn col_normalize(m: &mut Sparse, columns: u16) {
    let mut col_sum = vec![zero(); columns as usize];
    for row in m.iter() {
        for (j, v) in row {
            col_sum[*j as usize] = col_sum[*j as usize].saturating_add(*v);
        }
    }
    for row in m.iter_mut() {
        for (j, v) in row.iter_mut() {
            if col_sum[*j as usize] != zero() {
                *v = safe_div(*v, col_sum[*j as usize]);
            }
        }
    }
}

/// `inplace_col_max_upscale_sparse` (:463): each column's largest becomes one.
pub fn col_max_upscale(m: &mut Sparse, columns: u16) {
    let mut col_max = vec![zero(); columns as usize];
    for row in m.iter() {
        for (j, v) in row {
            if col_max[*j as usize] < *v {
                col_max[*j as usize] = *v;
            }
        }
    }
    for row in m.iter_mut() {
        for (j, v) in row.iter_mut() {
            if col_max[*j as usize] != zero() {
                *v = safe_div(*v, col_max[*j as usize]);
            }
        }
    }
}

/// `mask_rows_sparse` (:655): masked rows emptied.
pub fn mask_rows(mask: &[bool], m: &Sparse) -> Sparse {
    mask.iter().zip(m).map(|(masked, row)| if *masked { Vec::new() } else { row.clone() }).collect()
}

/// `mask_diag_sparse` (:674) and `mask_diag_sparse_except_index` (:691): self-weights dropped,
/// but the `except` uid's own.
pub fn mask_diag(m: &Sparse, except: Option<u16>) -> Sparse {
    m.iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter().filter(|(j, _)| i != *j as usize || except.is_some_and(|e| i == e as usize && *j == e)).copied().collect()
        })
        .collect()
}

/// `vec_mask_sparse_matrix` (:713): drops (i, j) where `drop(first[i], second[j])`.
pub fn vec_mask(m: &Sparse, first: &[u64], second: &[u64], drop: impl Fn(u64, u64) -> bool) -> Sparse {
    m.iter().enumerate().map(|(i, row)| row.iter().filter(|(j, _)| !drop(first[i], second[*j as usize])).copied().collect()).collect()
}

/// `scalar_vec_mask_sparse_matrix` (:608): drops (i, j) where `drop(scalar, vector[j])`.
pub fn scalar_vec_mask(m: &Sparse, scalar: u64, vector: &[u64], drop: impl Fn(u64, u64) -> bool) -> Sparse {
    m.iter().map(|row| row.iter().filter(|(j, _)| !drop(scalar, vector[*j as usize])).copied().collect()).collect()
}

/// `row_hadamard_sparse` (:753): row i times vector[i].
pub fn row_hadamard(m: &Sparse, vector: &[I32F32]) -> Sparse {
    m.iter().zip(vector).map(|(row, x)| row.iter().map(|(j, v)| (*j, v.saturating_mul(*x))).collect()).collect()
}

/// `matmul_sparse` (:850): result_j = Σ_i vector_i · m_ij, in row order.
pub fn matmul(m: &Sparse, vector: &[I32F32], columns: u16) -> Vec<I32F32> {
    let mut result = vec![zero(); columns as usize];
    for (i, row) in m.iter().enumerate() {
        for (j, v) in row {
            result[*j as usize] = result[*j as usize].saturating_add(vector[i].saturating_mul(*v));
        }
    }
    result
}

/// `matmul_transpose_sparse` (:870): result_i = Σ_j vector_j · m_ij.
pub fn matmul_transpose(m: &Sparse, vector: &[I32F32]) -> Vec<I32F32> {
    m.iter().map(|row| row.iter().fold(zero(), |acc, (j, v)| acc.saturating_add(vector[*j as usize].saturating_mul(*v)))).collect()
}

/// `mat_vec_mul_sparse` (:1248): m_ij · vector_j, zeros dropped.
pub fn mat_vec_mul(m: &Sparse, vector: &[I32F32]) -> Sparse {
    m.iter()
        .map(|row| {
            row.iter()
                .filter_map(|(j, v)| vector.get(*j as usize).map(|x| (*j, v.saturating_mul(*x))))
                .filter(|(_, v)| *v != zero())
                .collect()
        })
        .collect()
}

/// `col_clip_sparse` (:900): values above their column's threshold become it, and are dropped
/// when the threshold is zero.
pub fn col_clip(m: &Sparse, threshold: &[I32F32]) -> Sparse {
    m.iter()
        .map(|row| {
            row.iter()
                .filter_map(|(j, v)| {
                    let t = threshold[*j as usize];
                    if t < *v {
                        (zero() < t).then_some((*j, t))
                    } else {
                        Some((*j, *v))
                    }
                })
                .collect()
        })
        .collect()
}

/// `weighted_median` (:999): the stake-weighted median of `score` over `partition`, by a
/// mid-point pivot (deterministic) binary search.
fn weighted_median(stake: &[I32F32], score: &[I32F32], partition: &[usize], minority: I32F32, lo: I32F32, hi: I32F32) -> I32F32 {
    let n = partition.len();
    if n == 0 {
        return zero();
    }
    if n == 1 {
        return score[partition[0]];
    }
    let pivot = score[partition[n / 2]];
    let (mut lo_stake, mut hi_stake) = (zero(), zero());
    let (mut lower, mut upper) = (Vec::new(), Vec::new());
    for &i in partition {
        if score[i] == pivot {
            continue;
        }
        if score[i] < pivot {
            lo_stake = lo_stake.saturating_add(stake[i]);
            lower.push(i);
        } else {
            hi_stake = hi_stake.saturating_add(stake[i]);
            upper.push(i);
        }
    }
    if lo.saturating_add(lo_stake) <= minority && minority < hi.saturating_sub(hi_stake) {
        pivot
    } else if minority < lo.saturating_add(lo_stake) && !lower.is_empty() {
        weighted_median(stake, score, &lower, minority, lo, lo.saturating_add(lo_stake))
    } else if hi.saturating_sub(hi_stake) <= minority && !upper.is_empty() {
        weighted_median(stake, score, &upper, minority, hi.saturating_sub(hi_stake), hi)
    } else {
        pivot
    }
}

/// `weighted_median_col_sparse` (:1101): per column, the median over the rows with stake,
/// their stake renormalized, at `majority` (κ).
pub fn weighted_median_col(stake: &[I32F32], score: &Sparse, columns: u16, majority: I32F32) -> Vec<I32F32> {
    let mut use_stake: Vec<I32F32> = stake.iter().copied().filter(|s| *s > zero()).collect();
    normalize(&mut use_stake);
    let stake_sum = sum(use_stake.iter().copied());
    let idx: Vec<usize> = (0..use_stake.len()).collect();
    let minority = stake_sum.saturating_sub(majority);
    let mut use_score = vec![vec![zero(); use_stake.len()]; columns as usize];
    let mut k = 0;
    for (r, s) in stake.iter().enumerate() {
        if *s <= zero() {
            continue;
        }
        for (c, v) in &score[r] {
            use_score[*c as usize][k] = *v;
        }
        k += 1;
    }
    use_score.iter().map(|col| weighted_median(&use_stake, col, &idx, minority, zero(), stake_sum)).collect()
}

/// `interpolate_sparse` (:1179): a + ratio · (b − a), positive entries kept.
pub fn interpolate(a: &Sparse, b: &Sparse, columns: u16, ratio: I32F32) -> Sparse {
    if ratio == zero() {
        return a.clone();
    }
    if ratio == I32F32::from_num(1) {
        return b.clone();
    }
    let dense = |row: &[(u16, I32F32)]| {
        let mut d = vec![zero(); columns as usize];
        for (j, v) in row {
            if let Some(e) = d.get_mut(*j as usize) {
                *e = *v;
            }
        }
        d
    };
    a.iter()
        .zip(b)
        .map(|(ra, rb)| {
            let (da, db) = (dense(ra), dense(rb));
            (0..columns as usize)
                .filter_map(|j| {
                    let v = da[j].saturating_add(ratio.saturating_mul(db[j].saturating_sub(da[j])));
                    (zero() < v).then_some((j as u16, v))
                })
                .collect()
        })
        .collect()
}

/// `mat_ema_sparse` (:1366): alpha · new + (1 − alpha) · old, positive entries kept, on an
/// n × n grid (n = rows).
pub fn mat_ema(new: &Sparse, old: &Sparse, alpha: I32F32) -> Sparse {
    let n = new.len();
    let one_minus_alpha = I32F32::from_num(1).saturating_sub(alpha);
    new.iter()
        .zip(old)
        .map(|(rn, ro)| {
            let mut row = vec![zero(); n];
            for (j, v) in rn {
                row[*j as usize] = row[*j as usize].saturating_add(alpha.saturating_mul(*v));
            }
            for (j, v) in ro {
                row[*j as usize] = row[*j as usize].saturating_add(one_minus_alpha.saturating_mul(*v));
            }
            row.into_iter().enumerate().filter(|(_, v)| *v > zero()).map(|(j, v)| (j as u16, v)).collect()
        })
        .collect()
}

/// `mat_ema_alpha_sparse` (:1396): per entry, old decays by (1 − α) and new buys α of itself,
/// capped at one; only the columns of `new` are kept.
pub fn mat_ema_alpha(new: &Sparse, old: &Sparse, alpha: &[Vec<I32F32>]) -> Sparse {
    let one = I32F32::from_num(1);
    new.iter()
        .zip(old)
        .zip(alpha)
        .map(|((rn, ro), ra)| {
            let mut decayed = vec![zero(); ra.len()];
            for (j, v) in ro {
                if let (Some(a), Some(d)) = (ra.get(*j as usize), decayed.get_mut(*j as usize)) {
                    *d = one.saturating_sub(*a).saturating_mul(*v);
                }
            }
            rn.iter()
                .filter_map(|(j, v)| {
                    let (a, d) = (ra.get(*j as usize)?, decayed.get(*j as usize)?);
                    let value = d.saturating_add(a.saturating_mul(*v).max(zero())).min(one);
                    (value > zero()).then_some((*j, value))
                })
                .collect()
        })
        .collect()
}

/// `clamp_value` (:1322): at most `high`, then at least `low`.
pub fn clamp(value: I32F32, low: I32F32, high: I32F32) -> I32F32 {
    value.min(high).max(low)
}

/// `safe_exp` (:1561): substrate-fixed's series, zero when it overflows.
pub fn safe_exp(value: I32F32) -> I32F32 {
    substrate_fixed::transcendental::exp(value).unwrap_or(zero())
}
