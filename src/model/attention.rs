//! Causal self-attention kernels: the f32 path (exact, blocked on CPU), and in bf16/f16 the two
//! rounding schemes the reference validators can run — flash-attention 2's (what they run) and
//! transformers' eager attention.

use candle_core::{DType, Device, Result, Tensor};
use rayon::prelude::*;

use super::head::softcap;
use super::numerics::{in_f32, AttentionRounding};
use crate::kernels;

/// Additive mask: 0 where position i may attend to j (j <= i, within the window), -inf elsewhere.
pub fn causal_mask(t: usize, window: Option<usize>, dtype: DType, device: &Device) -> Result<Tensor> {
    let window = window.unwrap_or(usize::MAX);
    let values: Vec<f32> =
        (0..t).flat_map(|i| (0..t).map(move |j| if j <= i && i - j < window { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(values, (t, t), device)?.to_dtype(dtype)
}

/// What one forward's attention layers share: where bf16/f16 attention rounds, and the additive
/// masks of the materialised path, built on first use (the CPU f32 path and the flash path never
/// need them; at 4,096 tokens each is a 64 MiB `[t × t]` tensor).
pub struct Masks {
    t: usize,
    dtype: DType,
    device: Device,
    rounding: AttentionRounding,
    built: std::cell::RefCell<Vec<(Option<usize>, Tensor)>>,
}

impl Masks {
    pub fn new(t: usize, dtype: DType, device: &Device, rounding: AttentionRounding) -> Self {
        Self { t, dtype, device: device.clone(), rounding, built: Default::default() }
    }

    fn get(&self, window: Option<usize>) -> Result<Tensor> {
        if let Some((_, mask)) = self.built.borrow().iter().find(|(w, _)| *w == window) {
            return Ok(mask.clone());
        }
        let mask = causal_mask(self.t, window, self.dtype, &self.device)?;
        self.built.borrow_mut().push((window, mask.clone()));
        Ok(mask)
    }
}

/// Causal attention of `q` `[1, heads, t, d]` over `k`, `v` `[1, kv_heads, t, d]`, as
/// `[1, t, heads * d]`, with an optional sliding window (a query sees the `window` latest
/// positions, itself included) and score soft-capping. On CPU in f32 it is `kernels::attention`
/// (query blocks against only the keys they see, in reused buffers); other devices and dtypes
/// round as flash-attention or transformers' eager attention does (`masks.rounding`).
pub fn attention(
    q: &Tensor,
    k: Tensor,
    v: Tensor,
    scale: f64,
    softcap_at: Option<f64>,
    window: Option<usize>,
    masks: &Masks,
) -> Result<Tensor> {
    let (b, heads, t, d) = q.dims4()?;
    if q.dtype() == DType::F32 && b == 1 && q.device().is_cpu() {
        let shape = kernels::attention::Shape { heads, kv_heads: k.dim(1)?, t, d };
        let options = kernels::attention::Options { scale: scale as f32, softcap: softcap_at.map(|c| c as f32), window };
        let mut out = vec![0f32; t * heads * d];
        with_cpu_slice(q, |q| {
            with_cpu_slice(&k, |k| {
                with_cpu_slice(&v, |v| {
                    kernels::attention::causal(q, k, v, &mut out, &shape, &options);
                    Ok(())
                })
            })
        })?;
        return Tensor::from_vec(out, (b, t, heads * d), q.device());
    }
    let groups = heads / k.dim(1)?;
    let (k, v) = (repeat_kv(k, groups)?, repeat_kv(v, groups)?);
    if q.dtype() != DType::F32 {
        return match masks.rounding {
            AttentionRounding::Flash => flash(q, &k, &v, scale, softcap_at, window),
            AttentionRounding::Eager => eager(q, &k, &v, scale, softcap_at, &masks.get(window)?),
        };
    }
    let scores = softcap((q.matmul(&k.t()?)? * scale)?, softcap_at)?.broadcast_add(&masks.get(window)?)?;
    candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?.transpose(1, 2)?.reshape((b, t, heads * d))
}

/// Runs `f` on the f32 values of a CPU tensor in row-major order, borrowed when the tensor is
/// contiguous, copied otherwise.
pub fn with_cpu_slice<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = x.storage_and_layout();
    if let (candle_core::Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
        return f(&cpu.as_slice::<f32>()?[start..end]);
    }
    drop(storage);
    f(&x.flatten_all()?.to_vec1::<f32>()?)
}

/// `[b, kv, t, d]` → `[b, kv * n, t, d]`, each key/value head repeated for its query group.
pub fn repeat_kv(x: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, kv, n, t, d))?.reshape((b, kv * n, t, d))
}

/// flash-attention 2's forward, with its rounding points: for each block of `FLASH_BLOCK_M`
/// queries, the blocks of keys from the diagonal back to the window's start (flash-attention
/// walks them in that order); scores, the running max, the softmax and the output accumulator in
/// f32; the probabilities rounded to the model dtype before the product with V; the output
/// divided by the row sum and rounded once. A sliding window of `w` attends `w + 1` keys here, as
/// transformers passes `window_size=(w, w)` to flash-attn (huggingface/transformers#39408).
fn flash(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, softcap_at: Option<f64>, window: Option<usize>) -> Result<Tensor> {
    let dtype = q.dtype();
    let (b, heads, t, d) = q.dims4()?;
    let round: fn(f32) -> f32 = match dtype {
        DType::BF16 => |x| half::bf16::from_f32(x).to_f32(),
        DType::F16 => |x| half::f16::from_f32(x).to_f32(),
        _ => |x| x,
    };
    let (q, k, v) = (q.to_dtype(DType::F32)?, k.to_dtype(DType::F32)?.contiguous()?, v.to_dtype(DType::F32)?.contiguous()?);
    let block_n = flash_block_n(d);
    let (scale, cap) = (scale as f32, softcap_at.map(|c| c as f32));
    let mut out = Vec::with_capacity(t.div_ceil(FLASH_BLOCK_M));
    for first in (0..t).step_by(FLASH_BLOCK_M) {
        let rows = FLASH_BLOCK_M.min(t - first);
        let last = first + rows;
        let queries = q.narrow(2, first, rows)?.contiguous()?;
        let (mut max, mut sum) = (vec![f32::NEG_INFINITY; heads * rows], vec![0f32; heads * rows]);
        let mut acc = vec![0f32; heads * rows * d];
        let lowest = window.map_or(0, |w| first.saturating_sub(w) / block_n);
        for block in (lowest..last.div_ceil(block_n)).rev() {
            let key_start = block * block_n;
            let keys = block_n.min(t - key_start);
            let scores: Vec<f32> = queries.matmul(&k.narrow(2, key_start, keys)?.t()?)?.flatten_all()?.to_vec1()?;
            let mut probs = vec![0f32; heads * rows * keys];
            let mut rescale = vec![0f32; heads * rows];
            probs
                .par_chunks_exact_mut(keys)
                .zip(scores.par_chunks_exact(keys))
                .zip(max.par_iter_mut().zip(sum.par_iter_mut()))
                .zip(rescale.par_iter_mut())
                .enumerate()
                .for_each(|(row, (((p, s), (m, l)), alpha))| {
                    let position = first + row % rows;
                    let visible = |key: usize| key <= position && window.is_none_or(|w| key + w >= position);
                    let x = |j: usize| -> f32 {
                        if !visible(key_start + j) {
                            return f32::NEG_INFINITY;
                        }
                        match cap {
                            Some(c) => c * (s[j] * scale / c).tanh(),
                            None => s[j] * scale,
                        }
                    };
                    let block_max = (0..keys).map(x).fold(f32::NEG_INFINITY, f32::max);
                    let new_max = m.max(block_max);
                    let shift = if new_max == f32::NEG_INFINITY { 0.0 } else { new_max };
                    *alpha = (*m - shift).exp();
                    let mut block_sum = 0f32;
                    for (j, pj) in p.iter_mut().enumerate() {
                        let e = (x(j) - shift).exp();
                        block_sum += e;
                        *pj = round(e);
                    }
                    *l = *l * *alpha + block_sum;
                    *m = new_max;
                });
            let probs = Tensor::from_vec(probs, (1, heads, rows, keys), q.device())?;
            let pv: Vec<f32> = probs.matmul(&v.narrow(2, key_start, keys)?)?.flatten_all()?.to_vec1()?;
            acc.par_chunks_exact_mut(d).zip(pv.par_chunks_exact(d)).zip(rescale.par_iter()).for_each(|((a, pv), alpha)| {
                for (a, pv) in a.iter_mut().zip(pv) {
                    *a = *a * alpha + pv;
                }
            });
        }
        acc.par_chunks_exact_mut(d).zip(sum.par_iter()).for_each(|(a, l)| {
            let inv = 1.0 / l;
            a.iter_mut().for_each(|x| *x *= inv);
        });
        out.push(Tensor::from_vec(acc, (1, heads, rows, d), q.device())?);
    }
    Tensor::cat(&out, 2)?.to_dtype(dtype)?.transpose(1, 2)?.reshape((b, t, heads * d))
}

/// Queries per block in `flash`: flash-attention 2's forward tiles (`kBlockM`).
const FLASH_BLOCK_M: usize = 128;

/// Keys per block in `flash`: flash-attention 2's `kBlockN` on sm80/sm90 (A100, H100, H200) for
/// this head size (`flash_fwd_launch_template.h`: 128 up to 64 dimensions, 64 above).
fn flash_block_n(head_dim: usize) -> usize {
    if head_dim <= 64 {
        128
    } else {
        64
    }
}

/// transformers' eager attention in bf16/f16: `q·kᵀ` rounded, times the scale (rounded), soft-capped
/// op by op, the mask added, the softmax in f32 rounded to the dtype, the product with V rounded.
fn eager(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, softcap_at: Option<f64>, mask: &Tensor) -> Result<Tensor> {
    let (b, heads, t, d) = q.dims4()?;
    let mut scores = in_f32(&q.matmul(&k.t()?)?, |s| s * scale)?;
    if let Some(cap) = softcap_at {
        scores = in_f32(&scores, |s| s / cap)?;
        scores = in_f32(&scores, |s| s.tanh())?;
        scores = in_f32(&scores, |s| s * cap)?;
    }
    let scores = scores.broadcast_add(mask)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
    probs.matmul(v)?.transpose(1, 2)?.reshape((b, t, heads * d))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocked CPU path against plain materialised attention, across block boundaries.
    #[test]
    fn blocked_attention_matches_materialised() {
        let device = Device::Cpu;
        let (heads, kv, t, d) = (4, 2, 600, 16);
        let q = Tensor::randn(0f32, 1.0, (1, heads, t, d), &device).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, kv, t, d), &device).unwrap();
        let v = Tensor::randn(0f32, 1.0, (1, kv, t, d), &device).unwrap();
        for (window, cap) in [(None, None), (Some(100), None), (Some(300), Some(5.0))] {
            let mask = causal_mask(t, window, DType::F32, &device).unwrap();
            let masks = Masks::new(t, DType::F32, &device, AttentionRounding::Flash);
            let got = attention(&q, k.clone(), v.clone(), 0.25, cap, window, &masks).unwrap();
            let (k2, v2) = (repeat_kv(k.clone(), 2).unwrap(), repeat_kv(v.clone(), 2).unwrap());
            let scores = softcap((q.matmul(&k2.t().unwrap()).unwrap() * 0.25).unwrap(), cap).unwrap().broadcast_add(&mask).unwrap();
            let want = candle_nn::ops::softmax_last_dim(&scores)
                .unwrap()
                .matmul(&v2)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((1, t, heads * d))
                .unwrap();
            let diff: f32 = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(diff < 1e-5, "window {window:?}: max difference {diff}");
        }
    }
}
