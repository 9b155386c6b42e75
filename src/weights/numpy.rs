//! The few numpy behaviours the SDK's weight processing depends on: pairwise summation,
//! NEP 50 scalar promotion (a Python float meeting a float32 array becomes float32), and
//! `np.quantile`'s linear interpolation in the array's dtype.

use std::ops::{Add, Div, Mul, Sub};

pub trait Real: Copy + PartialOrd + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> {
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn from_usize(v: usize) -> Self;
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn from_usize(v: usize) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn from_usize(v: usize) -> Self {
        v as f64
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// numpy's `pairwise_sum` (`add.reduce` on a contiguous array), accumulating in the array's type.
pub fn pairwise_sum<T: Real>(a: &[T]) -> T {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = T::ZERO;
        for &v in a {
            res = res + v;
        }
        res
    } else if n <= BLOCK {
        let mut r: [T; 8] = std::array::from_fn(|j| a[j]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] = r[j] + a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res = res + a[i];
            i += 1;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

/// `np.quantile(a, q)` (method "linear") for a float32 array and a float32 `q`.
pub fn quantile_linear_f32(a: &[f32], q: f32) -> f32 {
    let mut sorted = a.to_vec();
    sorted.sort_by(|x, y| x.partial_cmp(y).expect("weights are not NaN"));
    let n = sorted.len();
    let virtual_index = (n - 1) as f32 * q;
    let previous = (virtual_index.floor() as usize).min(n - 1);
    let next = (previous + 1).min(n - 1);
    let gamma = virtual_index - previous as f32;
    let (below, above) = (sorted[previous], sorted[next]);
    let diff = above - below;
    if gamma >= 0.5 {
        above - diff * (1.0 - gamma)
    } else {
        below + diff * gamma
    }
}
