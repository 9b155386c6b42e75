//! CPU f32 kernels for the hot spots of a forward pass, on plain slices: a vectorised `exp` and
//! the reductions built on it (softmax, log-sum-exp), and causal attention that never leaves its
//! per-block buffers. Pure and tested without models; `model` and `loss` call them on CPU in f32.
//!
//! Every lane does the same IEEE operations in the same order, and sums run over a fixed number of
//! lanes combined in a fixed order, so results do not depend on the vector width the CPU offers.

pub mod attention;
pub mod exp;
pub mod matmul;
