//! Kernels for the hot spots of a forward pass, tested without models. On CPU in f32, on plain
//! slices: a vectorised `exp` and the reductions built on it (softmax, log-sum-exp), GEMM, and
//! causal attention that never leaves its per-block buffers. On any device and dtype, over
//! tensors: `tiled` attention in bounded memory with the validators' rounding points.
//!
//! Every lane does the same IEEE operations in the same order, and sums run over a fixed number of
//! lanes combined in a fixed order, so results do not depend on the vector width the CPU offers.

pub mod attention;
pub mod exp;
pub mod matmul;
pub mod tiled;

/// Runs `f` on the f32 values of a CPU tensor in row-major order, borrowed when the tensor is
/// contiguous, copied otherwise.
pub fn with_cpu_slice<R>(x: &candle_core::Tensor, f: impl FnOnce(&[f32]) -> candle_core::Result<R>) -> candle_core::Result<R> {
    let (storage, layout) = x.storage_and_layout();
    if let (candle_core::Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
        return f(&cpu.as_slice::<f32>()?[start..end]);
    }
    drop(storage);
    f(&x.flatten_all()?.to_vec1::<f32>()?)
}
