//! Causal self-attention in f32 on CPU, for a block of queries at a time: scores against only the
//! keys the block can see, scaled, soft-capped and masked softmax in place, then the product with
//! V written straight into the output row layout. Tasks are (head, query block) pairs spread over
//! rayon's threads, each with one reused score buffer: nothing `[t × t]` exists, nothing is copied
//! out of a tensor, and grouped-query heads read their shared key/value head in place.

use rayon::prelude::*;

use super::exp;
use super::matmul::{a_b, a_bt, Matrix, Threads};

/// Queries per task. A 256 × 4,096 score block is 4 MiB (in L3); at the 100k-vocabulary 2 × 4,096
/// benchmark shape, 256 took 16.0 s of compute against 16.3 s for 128 and 16.5 s for 64: K and V
/// are packed once per block.
const QUERY_BLOCK: usize = 256;

pub struct Shape {
    pub heads: usize,
    pub kv_heads: usize,
    /// Positions.
    pub t: usize,
    /// Dimensions per head.
    pub d: usize,
}

pub struct Options {
    pub scale: f32,
    /// Gemma2's score soft-capping: `cap · tanh(s / cap)`.
    pub softcap: Option<f32>,
    /// A query sees the `window` latest positions, itself included.
    pub window: Option<usize>,
}

/// Causal attention of `q` `[heads, t, d]` over `k`, `v` `[kv_heads, t, d]` into `out`
/// `[t, heads · d]` (the layout the output projection reads).
pub fn causal(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], shape: &Shape, options: &Options) {
    let Shape { heads, kv_heads, t, d } = *shape;
    assert!(kv_heads > 0 && heads % kv_heads == 0, "{heads} heads over {kv_heads} key/value heads");
    assert_eq!(q.len(), heads * t * d);
    assert_eq!((k.len(), v.len()), (kv_heads * t * d, kv_heads * t * d));
    assert_eq!(out.len(), t * heads * d);
    let groups = heads / kv_heads;
    let blocks = t.div_ceil(QUERY_BLOCK);
    let width = heads * d;
    let out = SharedOut(out.as_mut_ptr());
    (0..heads * blocks).into_par_iter().for_each_init(Vec::new, |scores: &mut Vec<f32>, task| {
        let (head, block) = (task / blocks, task % blocks);
        let first = block * QUERY_BLOCK;
        let rows = QUERY_BLOCK.min(t - first);
        let key_start = options.window.map_or(0, |w| (first + 1).saturating_sub(w));
        let keys = first + rows - key_start;
        let kv = head / groups;
        let head_q = &q[(head * t + first) * d..(head * t + first + rows) * d];
        let head_k = &k[(kv * t + key_start) * d..(kv * t + first + rows) * d];
        let head_v = &v[(kv * t + key_start) * d..(kv * t + first + rows) * d];
        scores.resize(rows * keys, 0.0);
        a_bt(Matrix::new(head_q, rows, d, d), Matrix::new(head_k, keys, d, d), scores, keys, Threads::One);
        for (r, row) in scores.chunks_exact_mut(keys).enumerate() {
            let position = first + r;
            let lo = options.window.map_or(0, |w| (position + 1).saturating_sub(w)).max(key_start) - key_start;
            let hi = position - key_start;
            let visible = &mut row[lo..=hi];
            match options.softcap {
                Some(cap) => visible.iter_mut().for_each(|s| *s = cap * (*s * options.scale / cap).tanh()),
                None => exp::scale_in_place(visible, options.scale),
            }
            exp::softmax_in_place(visible);
            row[..lo].fill(0.0);
            row[hi + 1..].fill(0.0);
        }
        // SAFETY: this task alone writes rows first..first+rows, columns head·d..(head+1)·d of
        // `out`, which outlives the parallel loop; the slice below spans exactly those rows.
        let out_rows = unsafe { std::slice::from_raw_parts_mut(out.at(first * width + head * d), (rows - 1) * width + d) };
        a_b(Matrix::new(scores, rows, keys, keys), Matrix::new(head_v, keys, d, d), out_rows, width, Threads::One);
    });
}

/// The output pointer shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

impl SharedOut {
    /// # Safety
    /// `offset` must lie inside the output.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: per the caller.
        unsafe { self.0.add(offset) }
    }
}
// SAFETY: tasks write disjoint elements (see `causal`).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the definition in f64, across query blocks, with windows, soft-capping and groups.
    #[test]
    fn matches_the_definition() {
        let (heads, kv_heads, t, d) = (4, 2, 300, 8);
        let values =
            |n: usize, seed: usize| -> Vec<f32> { (0..n).map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0) - 1.0).collect() };
        let (q, k, v) = (values(heads * t * d, 1), values(kv_heads * t * d, 2), values(kv_heads * t * d, 3));
        for (window, softcap) in [(None, None), (Some(20), None), (Some(100), Some(0.5))] {
            let options = Options { scale: 0.7, softcap, window };
            let mut out = vec![f32::NAN; t * heads * d];
            causal(&q, &k, &v, &mut out, &Shape { heads, kv_heads, t, d }, &options);
            for h in 0..heads {
                let kv = h / 2;
                for i in 0..t {
                    let visible: Vec<usize> = (0..=i).filter(|&j| window.is_none_or(|w| i - j < w)).collect();
                    let score = |j: usize| {
                        let s: f64 =
                            (0..d).map(|x| f64::from(q[(h * t + i) * d + x]) * f64::from(k[(kv * t + j) * d + x])).sum::<f64>() * 0.7;
                        softcap.map_or(s, |c| f64::from(c) * (s / f64::from(c)).tanh())
                    };
                    let scores: Vec<f64> = visible.iter().map(|&j| score(j)).collect();
                    let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                    for x in 0..d {
                        let want: f64 =
                            visible.iter().zip(&scores).map(|(&j, s)| (s - m).exp() / z * f64::from(v[(kv * t + j) * d + x])).sum();
                        let got = f64::from(out[i * heads * d + h * d + x]);
                        assert!((got - want).abs() < 1e-5, "window {window:?} head {h} position {i}: {got} vs {want}");
                    }
                }
            }
        }
    }
}
