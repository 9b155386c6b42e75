//! Float32 reductions in the order PyTorch's CPU kernels use, so that tracker and softmax
//! results match upstream bit for bit (upstream.md §10.3).
//!
//! torch sums a contiguous float32 vector in `cascade_sum` (ATen `SumKernel.cpp`): vectors of
//! `LANES` floats accumulated in 4 interleaved lane-wise partial sums (with a cascade every 16
//! steps for long inputs), the scalar tail added first, then the lanes one by one; inputs shorter
//! than one vector use the same 4-way interleave on scalars. Softmax (`_vec_softmax_lastdim`)
//! reduces with a lane-wise accumulation and a butterfly across lanes, then multiplies every
//! exponential by `1 / sum`. A naive left-to-right sum differs in the last bit on some inputs.
//! `LANES = 8` is the AVX2 kernel.

// Index loops mirror the C++ kernels line by line, and the SLEEF constants are kept verbatim.
#![allow(clippy::needless_range_loop, clippy::excessive_precision)]

const LANES: usize = 8;
const ILP: usize = 4;

/// `torch.sum` of a contiguous float32 vector on CPU.
pub fn sum(x: &[f32]) -> f32 {
    if x.len() >= LANES {
        let vectors = x.len() / LANES;
        let lanes = row_sum(vectors, LANES, |i, lane| x[i * LANES + lane]);
        let mut total = 0.0f32;
        for &tail in &x[vectors * LANES..] {
            total += tail;
        }
        for lane in lanes {
            total += lane;
        }
        total
    } else {
        row_sum(x.len(), 1, |i, _| x[i])[0]
    }
}

/// ATen's `row_sum`: `size` elements of `width` lanes each, summed with 4-way interleaving.
fn row_sum(size: usize, width: usize, load: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let rows = size / ILP;
    let mut partial = multi_row_sum(rows, width, |i, k, lane| load(i * ILP + k, lane));
    for i in rows * ILP..size {
        for lane in 0..width {
            partial[0][lane] += load(i, lane);
        }
    }
    for k in 1..ILP {
        for lane in 0..width {
            let add = partial[k][lane];
            partial[0][lane] += add;
        }
    }
    partial.swap_remove(0)
}

/// ATen's `multi_row_sum` with its 4-level cascade: `acc[level][row][lane]`.
fn multi_row_sum(size: usize, width: usize, load: impl Fn(usize, usize, usize) -> f32) -> Vec<Vec<f32>> {
    const LEVELS: usize = 4;
    let ceil_log2 = if size <= 2 { 1 } else { 64 - ((size - 1) as u64).leading_zeros() as usize };
    let level_power = 4.max(ceil_log2 / LEVELS);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = vec![vec![vec![0.0f32; width]; ILP]; LEVELS];
    let add_row = |acc: &mut Vec<Vec<Vec<f32>>>, i: usize| {
        for k in 0..ILP {
            for lane in 0..width {
                acc[0][k][lane] += load(i, k, lane);
            }
        }
    };
    let mut i = 0;
    while i + level_step <= size {
        for _ in 0..level_step {
            add_row(&mut acc, i);
            i += 1;
        }
        for j in 1..LEVELS {
            for k in 0..ILP {
                for lane in 0..width {
                    let moved = acc[j - 1][k][lane];
                    acc[j][k][lane] += moved;
                    acc[j - 1][k][lane] = 0.0;
                }
            }
            if i & (level_mask << (j * level_power)) != 0 {
                break;
            }
        }
    }
    while i < size {
        add_row(&mut acc, i);
        i += 1;
    }
    for j in 1..LEVELS {
        for k in 0..ILP {
            for lane in 0..width {
                let add = acc[j][k][lane];
                acc[0][k][lane] += add;
            }
        }
    }
    acc.swap_remove(0)
}

/// ATen's `vec::reduce_all` for addition over a contiguous float32 slice.
fn reduce_all_sum(x: &[f32]) -> f32 {
    if x.len() < LANES {
        let mut acc = x.first().copied().unwrap_or(0.0);
        for &v in x.iter().skip(1) {
            acc += v;
        }
        return acc;
    }
    let mut acc = [0.0f32; LANES];
    acc.copy_from_slice(&x[..LANES]);
    let whole = x.len() - x.len() % LANES;
    for chunk in x[LANES..whole].chunks_exact(LANES) {
        for lane in 0..LANES {
            acc[lane] += chunk[lane];
        }
    }
    for (lane, &v) in x[whole..].iter().enumerate() {
        acc[lane] += v;
    }
    butterfly(acc)
}

/// The AVX2 horizontal reduction: swap 128-bit halves, then 64-bit pairs, then neighbours.
fn butterfly(v: [f32; LANES]) -> f32 {
    let a: [f32; LANES] = std::array::from_fn(|i| v[i] + v[i ^ 4]);
    let b: [f32; LANES] = std::array::from_fn(|i| a[i] + a[i ^ 2]);
    b[0] + b[1]
}

/// `torch.softmax(x, dim=0)` of a float32 vector on CPU.
pub fn softmax(x: &[f32]) -> Vec<f32> {
    if x.is_empty() {
        return Vec::new();
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = x.iter().map(|&v| exp_f32(v - max)).collect();
    let scale = 1.0f32 / reduce_all_sum(&exps);
    exps.into_iter().map(|e| e * scale).collect()
}

/// float32 exp as torch's vectorised kernels compute it: SLEEF's `expf_u10` (AVX2/AVX-512 build,
/// so every `mla` is a fused multiply-add). Correctly rounded `exp` differs from it in the last
/// bit for some inputs (e.g. `exp(-66.66667)`), which shows in the stored float32 weights.
fn exp_f32(d: f32) -> f32 {
    const R_LN2: f32 = std::f32::consts::LOG2_E;
    const L2U: f32 = 0.693_145_751_953_125;
    const L2L: f32 = 1.428_606_765_330_187e-6;
    // vrint: round half to even, as cvtps2dq does under the default rounding mode.
    let q = (d * R_LN2).round_ties_even();
    let mut s = q.mul_add(-L2U, d);
    s = q.mul_add(-L2L, s);
    let mut u = 0.000_198_527_617_612_853_646_278_381_f32;
    u = u.mul_add(s, 0.001_393_043_552_525_341_510_772_71);
    u = u.mul_add(s, 0.008_333_360_776_305_198_669_433_59);
    u = u.mul_add(s, 0.041_666_485_369_205_474_853_515_6);
    u = u.mul_add(s, 0.166_666_671_633_720_397_949_219);
    u = u.mul_add(s, 0.5);
    u = 1.0 + (s * s).mul_add(u, s);
    // ldexp2k: two multiplications so that results reach the denormal range.
    let q = q as i32;
    u = u * pow2i(q >> 1) * pow2i(q - (q >> 1));
    if d < -104.0 {
        0.0
    } else if d > 1e10 {
        f32::INFINITY
    } else {
        u
    }
}

/// 2^q for q in float32's normal exponent range.
fn pow2i(q: i32) -> f32 {
    f32::from_bits(((q + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::{self, f32_bits, num};

    #[test]
    fn small_sums_use_the_four_way_interleave() {
        // torch: ((x0 + x4) + x1) + x2 + x3 for five elements.
        let x = [1.0e8f32, 1.0, 1.0, 1.0, -1.0e8];
        assert_eq!(sum(&x), 3.0);
        assert_eq!(sum(&[]), 0.0);
    }

    #[test]
    fn softmax_vectors() {
        for case in vectors::section("pretraining_softmax")["cases"].as_array().unwrap() {
            let x: Vec<f32> = case["win_rates_in_uid_order"].as_array().unwrap().iter().map(|v| num(v) as f32 / 0.01f32).collect();
            let got: Vec<u32> = softmax(&x).iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, f32_bits(&case["softmax_f32"]), "{case}");
        }
    }
}
