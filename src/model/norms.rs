//! SN37's weight-norm constraint (upstream.md §2.4, `norm_validation_constraints`): the Frobenius
//! norm of every layer's attention and MLP projections, read one tensor at a time from the
//! memory-mapped safetensors (`competition::admission::check_norms` judges them).

use std::path::Path;

use candle_core::{DType, Device};

use super::{inspect_weights, Error};

const PROJECTIONS: [&str; 6] =
    ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj"];

pub use crate::competition::admission::ProjectionNorms;

pub fn projection_norms(dir: &Path) -> Result<ProjectionNorms, Error> {
    let files = inspect_weights(dir)?;
    // SAFETY: inspect_weights checked every file is a complete safetensors file; the snapshot is
    // not modified while this function reads it.
    let tensors = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files.paths)? };
    let mut norms = ProjectionNorms::new();
    for projection in PROJECTIONS {
        let mut layer_norms = Vec::new();
        for layer in 0.. {
            let name = format!("model.layers.{layer}.{projection}.weight");
            if !files.tensors.iter().any(|(n, _)| *n == name) {
                break;
            }
            let weight = tensors.load(&name, &Device::Cpu)?.to_dtype(DType::F32)?;
            let sum_sq = weight.sqr()?.sum_all()?.to_scalar::<f32>()?;
            layer_norms.push(f64::from(sum_sq).sqrt());
        }
        norms.insert(projection.to_string(), layer_norms);
    }
    Ok(norms)
}
