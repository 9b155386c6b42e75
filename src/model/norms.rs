//! SN37's weight-norm constraint (upstream.md §2.4, `norm_validation_constraints`): the Frobenius
//! norm of every layer's attention and MLP projections, read one tensor at a time from the
//! memory-mapped safetensors, and the rule that judges them.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device};

use super::{inspect_weights, Error};

const PROJECTIONS: [&str; 6] =
    ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj"];

/// Per projection type, the norm of each layer's weight in layer order (`model.layers.{i}.…`).
pub type ProjectionNorms = BTreeMap<String, Vec<f64>>;

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

/// Any norm above `hard` fails; otherwise the mean over projection types of the fraction of
/// layers above `soft` must not exceed `soft_fraction`.
pub fn check_norms(norms: &ProjectionNorms, soft: f64, soft_fraction: f64, hard: f64) -> Result<(), String> {
    if let Some((projection, n)) = norms.iter().flat_map(|(p, ns)| ns.iter().map(move |n| (p, *n))).find(|(_, n)| *n > hard) {
        return Err(format!("weight-norm: a {projection} weight has norm {n:.3}, over the hard limit {hard}"));
    }
    let fractions: Vec<f64> =
        norms.values().filter(|ns| !ns.is_empty()).map(|ns| ns.iter().filter(|n| **n > soft).count() as f64 / ns.len() as f64).collect();
    if fractions.is_empty() {
        return Ok(());
    }
    let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
    if mean > soft_fraction {
        return Err(format!(
            "weight-norm: {:.1}% of projection weights have norms over {soft}, more than {:.1}%",
            mean * 100.0,
            soft_fraction * 100.0
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_and_soft_limits() {
        let norms: ProjectionNorms = [("mlp.up_proj".to_string(), vec![1.0, 5.0]), ("self_attn.q_proj".to_string(), vec![1.0, 1.0])].into();
        assert!(check_norms(&norms, 2.0, 0.5, 10.0).is_ok()); // fractions 0.5 and 0 -> mean 0.25
        assert!(check_norms(&norms, 2.0, 0.2, 10.0).is_err());
        assert!(check_norms(&norms, 2.0, 1.0, 4.0).unwrap_err().contains("hard limit"));
    }
}
