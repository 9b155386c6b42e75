//! Causal attention over candle tensors on any device — a GPU's, or the CPU's in bf16/f16 — a
//! block of queries against a block of keys at a time, so no `[heads × t × t]` tensor exists:
//! at 16,384 tokens and 32 heads that would be 32 GiB per layer in f32. Memory grows with `t`
//! times a block, never with `t²`.
//!
//! Two schemes, after the two attentions the reference validators can run:
//! - `online`: flash-attention 2's online softmax over key blocks walked from the diagonal back,
//!   scores, running max, row sums and the output accumulator in f32; with `round_probs`, the
//!   probabilities are rounded to the model dtype before the product with V, where flash-attention
//!   rounds them. In f32 it is plain exact attention in bounded memory.
//! - `eager`: transformers' eager attention (every op rounded to the model dtype), a block of
//!   query rows at a time against only the keys they can see. Each row's softmax is independent
//!   and masked keys contribute exact zeros, so blocking changes no value.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor, D};

use crate::model::numerics::{in_f32, softcap};

/// What a query attends to and how its scores are formed.
#[derive(Debug, Clone, Copy)]
pub struct Scores {
    pub scale: f64,
    /// Gemma2's soft-capping: `cap · tanh(s / cap)`.
    pub softcap: Option<f64>,
    /// How many of the latest positions a query sees, itself included (all when None).
    pub span: Option<usize>,
}

impl Scores {
    fn visible(&self, query: usize, key: usize) -> bool {
        key <= query && self.span.is_none_or(|s| query - key < s)
    }

    /// The first key any of the queries from `first` on can see.
    fn first_key(&self, first: usize) -> usize {
        self.span.map_or(0, |s| (first + 1).saturating_sub(s))
    }
}

/// Block sizes: queries per block, keys per block.
#[derive(Debug, Clone, Copy)]
pub struct Tiling {
    pub queries: usize,
    pub keys: usize,
}

/// Additive masks (0 where visible, -inf elsewhere) for the blocks that straddle the diagonal or
/// the window's edge, built on the host once per distinct offset and kept on the device for the
/// rest of the forward pass; fully visible blocks get none.
pub struct BlockMasks {
    device: Device,
    built: RefCell<HashMap<MaskKey, Tensor>>,
}

/// A block's mask depends only on where its queries start relative to its keys.
#[derive(PartialEq, Eq, Hash)]
struct MaskKey {
    offset: isize,
    rows: usize,
    keys: usize,
    span: Option<usize>,
    dtype: DType,
}

impl BlockMasks {
    pub fn new(device: &Device) -> Self {
        Self { device: device.clone(), built: RefCell::default() }
    }

    /// The mask of queries `first..first + rows` against keys `key_start..key_start + keys`, or
    /// None when every query sees every key.
    fn get(&self, scores: &Scores, first: usize, rows: usize, key_start: usize, keys: usize, dtype: DType) -> Result<Option<Tensor>> {
        let all_visible = scores.visible(first, key_start + keys - 1) && scores.visible(first + rows - 1, key_start);
        if all_visible {
            return Ok(None);
        }
        let key = MaskKey { offset: first as isize - key_start as isize, rows, keys, span: scores.span, dtype };
        if let Some(mask) = self.built.borrow().get(&key) {
            return Ok(Some(mask.clone()));
        }
        let values = additive_mask(scores, first..first + rows, key_start..key_start + keys);
        let mask = Tensor::from_vec(values, (rows, keys), &self.device)?.to_dtype(dtype)?;
        self.built.borrow_mut().insert(key, mask.clone());
        Ok(Some(mask))
    }
}

/// 0 where a query sees a key, -inf elsewhere, row by row.
fn additive_mask(scores: &Scores, queries: std::ops::Range<usize>, keys: std::ops::Range<usize>) -> Vec<f32> {
    queries.flat_map(|q| keys.clone().map(move |k| if scores.visible(q, k) { 0.0 } else { f32::NEG_INFINITY })).collect()
}

/// `[1, heads, t, d]` queries against keys and values with as many heads (grouped-query heads
/// already repeated), all f32, by online softmax; the result is `[1, heads, t, d]` in f32.
/// `round_probs` rounds the probabilities to that dtype before the product with V.
pub fn online(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scores: &Scores,
    tiling: Tiling,
    round_probs: Option<DType>,
    masks: &BlockMasks,
) -> Result<Tensor> {
    let (b, heads, t, d) = q.dims4()?;
    let mut out = Vec::with_capacity(t.div_ceil(tiling.queries));
    for first in (0..t).step_by(tiling.queries) {
        let rows = tiling.queries.min(t - first);
        let queries = q.narrow(2, first, rows)?;
        // The running max starts at f32::MIN, not -inf: a row that has seen no visible key yet
        // then gets exp(-inf - MIN) = 0 for its masked scores and a rescale of exp(0) = 1.
        let mut max = Tensor::full(f32::MIN, (b, heads, rows, 1), q.device())?;
        let mut sum = Tensor::zeros((b, heads, rows, 1), DType::F32, q.device())?;
        let mut acc = Tensor::zeros((b, heads, rows, d), DType::F32, q.device())?;
        let lowest = scores.first_key(first) / tiling.keys;
        for block in (lowest..=(first + rows - 1) / tiling.keys).rev() {
            let key_start = block * tiling.keys;
            let keys = tiling.keys.min(t - key_start);
            let mut s = softcap((queries.matmul(&k.narrow(2, key_start, keys)?.t()?)? * scores.scale)?, scores.softcap)?;
            if let Some(mask) = masks.get(scores, first, rows, key_start, keys, DType::F32)? {
                s = s.broadcast_add(&mask)?;
            }
            let new_max = max.maximum(&s.max_keepdim(D::Minus1)?)?;
            let rescale = (&max - &new_max)?.exp()?;
            let e = s.broadcast_sub(&new_max)?.exp()?;
            sum = ((sum * &rescale)? + e.sum_keepdim(D::Minus1)?)?;
            let probs = match round_probs {
                Some(dtype) => e.to_dtype(dtype)?.to_dtype(DType::F32)?,
                None => e,
            };
            acc = (acc.broadcast_mul(&rescale)? + probs.matmul(&v.narrow(2, key_start, keys)?)?)?;
            max = new_max;
        }
        // Multiplied by the reciprocal of the row sum, as flash-attention does.
        out.push(acc.broadcast_mul(&sum.recip()?)?);
    }
    Tensor::cat(&out, 2)
}

/// transformers' eager attention in the model dtype, `tiling.queries` rows at a time: `q·kᵀ`
/// rounded, times the scale (rounded), soft-capped op by op, masked, the softmax in f32 rounded
/// to the dtype, the product with V rounded. Keys and values have as many heads as `q`.
pub fn eager(q: &Tensor, k: &Tensor, v: &Tensor, scores: &Scores, tiling: Tiling, masks: &BlockMasks) -> Result<Tensor> {
    let t = q.dim(2)?;
    let mut out = Vec::with_capacity(t.div_ceil(tiling.queries));
    for first in (0..t).step_by(tiling.queries) {
        let rows = tiling.queries.min(t - first);
        let key_start = scores.first_key(first);
        let keys = first + rows - key_start;
        let s = in_f32(&q.narrow(2, first, rows)?.matmul(&k.narrow(2, key_start, keys)?.t()?)?, |s| s * scores.scale)?;
        let mut s = softcap(s, scores.softcap)?;
        if let Some(mask) = masks.get(scores, first, rows, key_start, keys, s.dtype())? {
            s = s.broadcast_add(&mask)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&s.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
        out.push(probs.matmul(&v.narrow(2, key_start, keys)?)?);
    }
    Tensor::cat(&out, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: (usize, usize, usize, usize)) -> Tensor {
        Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
    }

    /// Plain materialised attention: the whole `[heads × t × t]` score tensor, masked and softmaxed.
    fn materialised(q: &Tensor, k: &Tensor, v: &Tensor, scores: &Scores) -> Tensor {
        let t = q.dim(2).unwrap();
        let mask = Tensor::from_vec(additive_mask(scores, 0..t, 0..t), (t, t), &Device::Cpu).unwrap();
        let s = softcap((q.matmul(&k.t().unwrap()).unwrap() * scores.scale).unwrap(), scores.softcap).unwrap();
        candle_nn::ops::softmax_last_dim(&s.broadcast_add(&mask).unwrap()).unwrap().matmul(v).unwrap()
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// In f32, both schemes equal materialised attention across query and key block boundaries,
    /// with blocks that do not divide each other or the length, windows and soft-capping.
    #[test]
    fn tiled_attention_matches_materialised() {
        let (heads, t, d) = (3, 300, 16);
        let (q, k, v) = (random((1, heads, t, d)), random((1, heads, t, d)), random((1, heads, t, d)));
        let cases = [(None, None), (Some(40), None), (Some(129), Some(5.0)), (Some(1), None)];
        for (span, softcap) in cases {
            let scores = Scores { scale: 0.3, softcap, span };
            let want = materialised(&q, &k, &v, &scores);
            for tiling in [Tiling { queries: 128, keys: 64 }, Tiling { queries: 50, keys: 77 }, Tiling { queries: 512, keys: 512 }] {
                let masks = BlockMasks::new(&Device::Cpu);
                let got = online(&q, &k, &v, &scores, tiling, None, &masks).unwrap();
                assert!(max_difference(&got, &want) < 1e-5, "online, span {span:?}, {tiling:?}");
                let got = eager(&q, &k, &v, &scores, tiling, &masks).unwrap();
                assert!(max_difference(&got, &want) < 1e-5, "eager, span {span:?}, {tiling:?}");
            }
        }
    }

    /// With rounded probabilities, how many queries share a block does not matter: the blocks a
    /// row cannot see are exact no-ops of the online softmax. What remains is GEMM's own
    /// rounding for another row count (an ulp), far below what bf16 probabilities change.
    #[test]
    fn rounded_probabilities_do_not_depend_on_query_blocks() {
        let (heads, t, d) = (2, 260, 8);
        let (q, k, v) = (random((1, heads, t, d)), random((1, heads, t, d)), random((1, heads, t, d)));
        let scores = Scores { scale: 0.5, softcap: None, span: Some(100) };
        let masks = BlockMasks::new(&Device::Cpu);
        let run = |queries| online(&q, &k, &v, &scores, Tiling { queries, keys: 64 }, Some(DType::BF16), &masks).unwrap();
        let (a, b) = (run(128), run(37));
        let blocking = max_difference(&a, &b);
        let exact = online(&q, &k, &v, &scores, Tiling { queries: 128, keys: 64 }, None, &masks).unwrap();
        let rounding = max_difference(&a, &exact);
        assert!(blocking <= 1e-6 && rounding > 100.0 * blocking && rounding < 2e-2, "blocks {blocking}, bf16 probabilities {rounding}");
    }
}
