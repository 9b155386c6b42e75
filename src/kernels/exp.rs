//! `exp` for arguments at most 0 (softmax after subtracting the maximum), vectorised: Cephes'
//! `expf` (range reduction by ln 2 in two parts, a degree-5 polynomial, scaling by 2^n through the
//! exponent bits), within 2 ulp of the exact value. Written with plain multiplies and adds that
//! the compiler vectorises for whatever width `dispatch!` selects at run time.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this, `exp` is under f32's smallest normal: the result is 0.
const LOWEST: f32 = -87.336_55;
/// Adding 1.5 × 2^23 rounds to an integer held in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;
/// Lanes of the fixed-shape sums below (16 f32 = one AVX-512 register).
const LANES: usize = 16;

/// `e^x` for `x <= 0` (larger arguments are treated as 0); `-inf` gives 0 and NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Comparisons rather than `f32::clamp`: the same result (NaN passes through) in a form
    // that vectorises plainly.
    #[allow(clippy::manual_clamp)]
    let clamped = if x < LOWEST {
        LOWEST
    } else if x > 0.0 {
        0.0
    } else {
        x
    };
    let shifted = clamped * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_2e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r + 0.5;
    let p = p * r * r + r + 1.0;
    // n is in [-126, 0]: its two's complement sits in the low bits of `shifted`.
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    let scale = f32::from_bits((n_bits.wrapping_add(127) << 23) as u32);
    if x < LOWEST {
        0.0
    } else {
        p * scale
    }
}

/// Runs `$body` (an expression over its arguments) compiled for AVX-512, AVX2 or the baseline,
/// whichever this CPU has.
macro_rules! dispatch {
    (fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        pub fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) -> $ret { body($($arg),*) }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) -> $ret { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

dispatch! {
    fn max(xs: &[f32]) -> f32 {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let chunks = xs.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (m, &x) in lanes.iter_mut().zip(chunk) {
                *m = if x > *m { x } else { *m };
            }
        }
        rest.iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
    }
}

dispatch! {
    fn sum_exp_f64(xs: &[f32], shift: f32) -> f64 {
        let mut lanes = [0f64; LANES];
        let chunks = xs.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (s, &x) in lanes.iter_mut().zip(chunk) {
                *s += f64::from(exp(x - shift));
            }
        }
        let tail: f64 = rest.iter().map(|&x| f64::from(exp(x - shift))).sum();
        lanes.iter().sum::<f64>() + tail
    }
}

dispatch! {
    fn exp_in_place_sum(xs: &mut [f32], shift: f32) -> f32 {
        let mut lanes = [0f32; LANES];
        let mut chunks = xs.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            for (s, x) in lanes.iter_mut().zip(chunk) {
                *x = exp(*x - shift);
                *s += *x;
            }
        }
        let mut tail = 0f32;
        for x in chunks.into_remainder() {
            *x = exp(*x - shift);
            tail += *x;
        }
        lanes.iter().sum::<f32>() + tail
    }
}

dispatch! {
    fn scale_in_place(xs: &mut [f32], factor: f32) -> () {
        for x in xs {
            *x *= factor;
        }
    }
}

/// Softmax of `row` in place (max-subtracted, f32).
pub fn softmax_in_place(row: &mut [f32]) {
    let shift = max(row);
    let sum = exp_in_place_sum(row, shift);
    scale_in_place(row, 1.0 / sum);
}

/// `ln Σ e^x` of a row, the exponentials in f32 around the row's maximum and summed in f64.
pub fn log_sum_exp(row: &[f32]) -> f64 {
    let shift = max(row);
    if !shift.is_finite() {
        return f64::from(shift);
    }
    f64::from(shift) + sum_exp_f64(row, shift).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within 2 ulp of libm's `exp` in f64 over the whole range used, and exact at the edges.
    #[test]
    fn exp_is_within_two_ulp() {
        let mut x = -100.0f32;
        while x <= 0.0 {
            let want = (f64::from(x)).exp() as f32;
            let got = exp(x);
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2 || (want < f32::MIN_POSITIVE && got < 2.0 * f32::MIN_POSITIVE), "exp({x}) = {got}, want {want}");
            x += 0.000_37;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    /// The dispatched reductions equal the scalar formula's value (and each other across widths:
    /// they run the same lanes).
    #[test]
    fn reductions_match_their_definitions() {
        let row: Vec<f32> = (0..1003).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(max(&row), m);
        let want = f64::from(m) + row.iter().map(|&x| (f64::from(x) - f64::from(m)).exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&row) - want).abs() < 1e-6 * want.abs());
        let mut probs = row.clone();
        softmax_in_place(&mut probs);
        let total: f64 = probs.iter().map(|&p| f64::from(p)).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f64::NEG_INFINITY);
    }
}
