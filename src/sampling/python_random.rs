//! CPython's `random.Random` (3.11), on top of the reference MT19937 in `rand_mt`.
//!
//! `rand_mt::Mt::new_with_key` is MT19937's `init_by_array`, exactly what `random.seed(int)`
//! calls with the little-endian 32-bit words of the integer. Everything else here is CPython's
//! own helpers: `getrandbits`, `_randbelow` (rejection sampling on `getrandbits(bit_length)`),
//! `randint`, `choice`, `shuffle`, `random`. Upstream picks dataset pages with them, so any
//! divergence means a different evaluation set than every other validator.

use rand_mt::Mt;

use super::Seed;

pub struct PyRandom {
    mt: Mt,
}

impl PyRandom {
    /// `random.seed(n)` / `random.Random(n)` for a non-negative integer.
    pub fn new(seed: &Seed) -> Self {
        Self { mt: Mt::new_with_key(seed.words().iter().copied()) }
    }

    /// `getrandbits(k)` for `k <= 64`.
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(k <= 64, "getrandbits supports up to 64 bits here");
        if k == 0 {
            return 0;
        }
        if k <= 32 {
            return u64::from(self.mt.next_u32() >> (32 - k));
        }
        // Words are filled least significant first; the last one keeps its top bits.
        let low = u64::from(self.mt.next_u32());
        let high = u64::from(self.mt.next_u32() >> (64 - k));
        (high << 32) | low
    }

    /// `_randbelow(n)`: uniform in `[0, n)`; 0 for n = 0 as CPython returns.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randint(a, b)`, both ends included.
    pub fn randint(&mut self, a: u64, b: u64) -> u64 {
        assert!(a <= b, "randint needs a <= b");
        a + self.randbelow(b - a + 1)
    }

    /// `choice(seq)`; None for an empty sequence (CPython raises IndexError).
    pub fn choice<'a, T>(&mut self, seq: &'a [T]) -> Option<&'a T> {
        if seq.is_empty() {
            return None;
        }
        Some(&seq[self.randbelow(seq.len() as u64) as usize])
    }

    /// `shuffle(x)`: Fisher–Yates from the end.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            x.swap(i, j);
        }
    }

    /// `random()`: 53 random bits as a float in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        let a = self.mt.next_u32() >> 5;
        let b = self.mt.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) * (1.0 / 9_007_199_254_740_992.0)
    }
}
