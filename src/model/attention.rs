//! Causal self-attention for the models: picks the kernel for the device, dtype and rounding
//! scheme. On CPU in f32, `kernels::attention` on the tensors' own memory; everywhere else
//! `kernels::tiled`, in blocks, with flash-attention 2's rounding points (what the validators
//! run) or transformers' eager ones in bf16/f16.

use candle_core::{DType, Device, Result, Tensor};

use super::numerics::AttentionRounding;
use crate::kernels::{self, tiled};

/// What one forward's attention layers share: the rounding scheme, and the masks of the blocks
/// that straddle the diagonal or a window's edge.
pub struct Masks {
    rounding: AttentionRounding,
    blocks: tiled::BlockMasks,
}

impl Masks {
    pub fn new(device: &Device, rounding: AttentionRounding) -> Self {
        Self { rounding, blocks: tiled::BlockMasks::new(device) }
    }
}

/// Queries per block in flash-attention's rounding: flash-attention 2's forward tiles
/// (`kBlockM`). The values do not depend on it (`kernels::tiled`'s tests); memory does.
const FLASH_BLOCK_M: usize = 128;

/// Keys per block in flash-attention's rounding: flash-attention 2's `kBlockN` on sm80/sm90
/// (A100, H100, H200) for this head size (`flash_fwd_launch_template.h`: 128 up to 64
/// dimensions, 64 above). The probabilities are rounded against the running max of the blocks
/// walked so far, so this one decides values.
fn flash_block_n(head_dim: usize) -> usize {
    if head_dim <= 64 {
        128
    } else {
        64
    }
}

/// Blocks of the exact f32 path off the CPU (512 × 512 scores per head, 32 MiB in f32 at 32
/// heads) and of eager attention (512 query rows against all the keys they see).
pub const WIDE: tiled::Tiling = tiled::Tiling { queries: 512, keys: 512 };

/// Causal attention of `q` `[1, heads, t, d]` over `k`, `v` `[1, kv_heads, t, d]`, as
/// `[1, t, heads * d]`, with an optional sliding window (a query sees the `window` latest
/// positions, itself included) and score soft-capping.
pub fn attention(
    q: &Tensor,
    k: Tensor,
    v: Tensor,
    scale: f64,
    softcap: Option<f64>,
    window: Option<usize>,
    masks: &Masks,
) -> Result<Tensor> {
    let (b, heads, t, d) = q.dims4()?;
    if q.dtype() == DType::F32 && b == 1 && q.device().is_cpu() {
        let shape = kernels::attention::Shape { heads, kv_heads: k.dim(1)?, t, d };
        let options = kernels::attention::Options { scale: scale as f32, softcap: softcap.map(|c| c as f32), window };
        let mut out = vec![0f32; t * heads * d];
        kernels::with_cpu_slice(q, |q| {
            kernels::with_cpu_slice(&k, |k| {
                kernels::with_cpu_slice(&v, |v| {
                    kernels::attention::causal(q, k, v, &mut out, &shape, &options);
                    Ok(())
                })
            })
        })?;
        return Tensor::from_vec(out, (b, t, heads * d), q.device());
    }
    let groups = heads / k.dim(1)?;
    let (k, v) = (repeat_kv(k, groups)?, repeat_kv(v, groups)?);
    let scores = tiled::Scores { scale, softcap, span: window };
    let out = match (q.dtype(), masks.rounding) {
        (DType::F32, _) => tiled::online(q, &k, &v, &scores, WIDE, None, &masks.blocks)?,
        (dtype, AttentionRounding::Flash) => {
            // A sliding window of `w` attends `w + 1` keys here, as transformers passes
            // `window_size=(w, w)` to flash-attn (huggingface/transformers#39408).
            let scores = tiled::Scores { span: window.map(|w| w + 1), ..scores };
            let tiling = tiled::Tiling { queries: FLASH_BLOCK_M, keys: flash_block_n(d) };
            let f32 = |x: &Tensor| x.to_dtype(DType::F32);
            tiled::online(&f32(q)?, &f32(&k)?, &f32(&v)?, &scores, tiling, Some(dtype), &masks.blocks)?.to_dtype(dtype)?
        }
        (_, AttentionRounding::Eager) => tiled::eager(q, &k, &v, &scores, WIDE, &masks.blocks)?,
    };
    out.transpose(1, 2)?.reshape((b, t, heads * d))
}

/// `[b, kv, t, d]` → `[b, kv * n, t, d]`, each key/value head repeated for its query group.
pub fn repeat_kv(x: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, kv, n, t, d))?.reshape((b, kv * n, t, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In f32 the CPU kernel and the tiled path every other device takes agree, grouped-query
    /// heads, windows and soft-capping included (each is checked against materialised attention
    /// in its own module).
    #[test]
    fn cpu_kernel_and_device_path_agree() {
        let device = Device::Cpu;
        let (heads, kv, t, d) = (4, 2, 600, 16);
        let q = Tensor::randn(0f32, 1.0, (1, heads, t, d), &device).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, kv, t, d), &device).unwrap();
        let v = Tensor::randn(0f32, 1.0, (1, kv, t, d), &device).unwrap();
        for (window, softcap) in [(None, None), (Some(100), None), (Some(300), Some(5.0))] {
            let masks = Masks::new(&device, AttentionRounding::Flash);
            let got = attention(&q, k.clone(), v.clone(), 0.25, softcap, window, &masks).unwrap();
            let (k, v) = (repeat_kv(k.clone(), 2).unwrap(), repeat_kv(v.clone(), 2).unwrap());
            let scores = tiled::Scores { scale: 0.25, softcap, span: window };
            let want = tiled::online(&q, &k, &v, &scores, WIDE, None, &masks.blocks).unwrap();
            let want = want.transpose(1, 2).unwrap().reshape((1, t, heads * d)).unwrap();
            let diff: f32 = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(diff < 1e-5, "window {window:?}: max difference {diff}");
        }
    }
}
