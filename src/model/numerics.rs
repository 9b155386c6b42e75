//! How a forward pass rounds: the dtype, and where transformers and flash-attention round when
//! the validators evaluate in bf16 (upstream.md §5.2–5.3, §10.9). In f32 every helper here is the
//! plain operation; in bf16/f16 each one rounds where PyTorch does, once per operation:
//! elementwise ops and activations are computed in f32 and rounded (torch's "opmath"), a linear
//! layer accumulates in f32 and rounds after its bias, RMSNorm normalises in f32.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::Linear;

/// Whether logits are upcast to f32 after the lm_head before the cross entropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Upcast {
    /// As the transformers version the competition's validators pin does, per architecture.
    Auto,
    Always,
    Never,
}

impl Upcast {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Always => "always",
            Self::Never => "never",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Auto, Self::Always, Self::Never].into_iter().find(|u| u.name() == name)
    }
}

/// Where attention rounds in bf16/f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionRounding {
    /// flash-attention 2, as the validators run it: scores and softmax in f32 over blocks of
    /// keys, probabilities rounded to the model dtype before the product with V.
    Flash,
    /// transformers' eager attention: scores, softmax output and product rounded to the dtype.
    Eager,
}

impl AttentionRounding {
    pub fn name(self) -> &'static str {
        match self {
            Self::Flash => "flash",
            Self::Eager => "eager",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Flash, Self::Eager].into_iter().find(|a| a.name() == name)
    }
}

/// What a model is asked to compute in, before its architecture is known.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Precision {
    /// f32, bf16 or f16.
    pub dtype: String,
    pub upcast: Upcast,
    /// The transformers version `Upcast::Auto` follows.
    pub transformers: Option<String>,
    pub attention: AttentionRounding,
}

impl std::fmt::Display for Precision {
    /// `bf16, logits upcast by transformers 4.44.1's rule, flash-attention rounding`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let upcast = match (self.upcast, &self.transformers) {
            (Upcast::Auto, Some(v)) => format!("upcast as transformers {v}"),
            (Upcast::Auto, None) => "upcast auto".to_string(),
            (Upcast::Always, _) => "upcast always".to_string(),
            (Upcast::Never, _) => "upcast never".to_string(),
        };
        let attention = match self.attention {
            AttentionRounding::Flash => "flash-attention rounding",
            AttentionRounding::Eager => "eager-attention rounding",
        };
        if self.dtype == "f32" {
            write!(f, "f32")
        } else {
            write!(f, "{}, {upcast}, {attention}", self.dtype)
        }
    }
}

impl Precision {
    pub fn f32() -> Self {
        Self { dtype: "f32".into(), upcast: Upcast::Auto, transformers: None, attention: AttentionRounding::Flash }
    }

    /// The numerics for one architecture.
    pub fn resolve(&self, architecture: &str) -> std::result::Result<Numerics, String> {
        let dtype = parse_dtype(&self.dtype)?;
        let upcast_logits = match (dtype, self.upcast) {
            (DType::F32, _) | (_, Upcast::Always) => true,
            (_, Upcast::Never) => false,
            (_, Upcast::Auto) => {
                let Some(version) = &self.transformers else {
                    return Err(format!(
                        "bad-precision: {} losses need the transformers version the validators pin (the profile's subnet.transformers) or --upcast-logits always|never",
                        self.dtype
                    ));
                };
                upcasts_logits(version, architecture)?
            }
        };
        Ok(Numerics { dtype, upcast_logits, attention: self.attention })
    }
}

/// valkit's name for a dtype, from its own or torch's (`bfloat16`, as profiles write it).
pub fn dtype_name(name: &str) -> Option<&'static str> {
    match name {
        "f32" | "float32" => Some("f32"),
        "bf16" | "bfloat16" => Some("bf16"),
        "f16" | "float16" => Some("f16"),
        _ => None,
    }
}

pub fn parse_dtype(name: &str) -> std::result::Result<DType, String> {
    match dtype_name(name) {
        Some("f32") => Ok(DType::F32),
        Some("bf16") => Ok(DType::BF16),
        Some(_) => Ok(DType::F16),
        None => Err(format!("bad-precision: unknown dtype {name:?} (f32, bf16 or f16)")),
    }
}

/// transformers releases by major.minor, and the causal-LM classes whose forward upcasts logits
/// to f32 after the lm_head (`logits = logits.float()`), read from the wheels: 4.44 does it for
/// these six; by 4.48 no class does (the loss helper upcasts only when it computes the loss
/// itself, which the validators' code does not ask for).
const UPCASTING_CLASSES: &[(&str, &[&str])] = &[
    ("4.44", &["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM", "PhiForCausalLM"]),
    ("4.48", &[]),
];

fn upcasts_logits(version: &str, architecture: &str) -> std::result::Result<bool, String> {
    let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    UPCASTING_CLASSES.iter().find(|(v, _)| *v == minor).map(|(_, classes)| classes.contains(&architecture)).ok_or_else(|| {
        let known: Vec<&str> = UPCASTING_CLASSES.iter().map(|(v, _)| *v).collect();
        format!("bad-precision: no upcast rule for transformers {version} (known: {}); pass --upcast-logits always|never", known.join(", "))
    })
}

/// The resolved numerics of one loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numerics {
    pub dtype: DType,
    pub upcast_logits: bool,
    pub attention: AttentionRounding,
}

impl Numerics {
    pub fn f32() -> Self {
        Self { dtype: DType::F32, upcast_logits: true, attention: AttentionRounding::Flash }
    }
}

/// `f` computed in f32 and rounded once to `x`'s dtype (torch's elementwise ops on bf16/f16).
pub fn in_f32(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    if x.dtype() == DType::F32 {
        return f(x);
    }
    f(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype())
}

/// Gemma2's soft-capping: `tanh(x / cap) * cap`, each operation rounded to `x`'s dtype as torch
/// rounds it.
pub fn softcap(x: Tensor, cap: Option<f64>) -> Result<Tensor> {
    match cap {
        Some(cap) => {
            let x = in_f32(&x, |x| x / cap)?;
            let x = in_f32(&x, |x| x.tanh())?;
            in_f32(&x, |x| x * cap)
        }
        None => Ok(x),
    }
}

/// A linear layer: products accumulated in f32, the bias added before the one rounding to the
/// dtype (as cuBLAS's bias epilogue and `addmm` do).
pub fn linear(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    // On a GPU cuBLAS already accumulates bf16/f16 products in f32 and rounds once (a bias is
    // then added with a second rounding); converting weights there would cost a copy per call.
    if dtype == DType::F32 || !x.device().is_cpu() {
        return layer.forward(x);
    }
    // candle's CPU bf16 matmul widens to f32 too; its f16 one (gemm's) rounds partial sums.
    let w = layer.weight().to_dtype(DType::F32)?;
    let bias = layer.bias().map(|b| b.to_dtype(DType::F32)).transpose()?;
    Linear::new(w, bias).forward(&x.to_dtype(DType::F32)?)?.to_dtype(dtype)
}

/// LayerNorm as torch computes it in bf16/f16: mean and variance in f32 (two passes, not
/// `E[x²] − E[x]²`), the affine in f32, one rounding.
pub fn layer_norm(norm: &candle_nn::LayerNorm, x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        return norm.forward(x);
    }
    let x32 = x.to_dtype(DType::F32)?;
    let centred = x32.broadcast_sub(&x32.mean_keepdim(candle_core::D::Minus1)?)?;
    let variance = centred.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    let mut y = centred.broadcast_mul(&(variance + eps)?.sqrt()?.recip()?)?.broadcast_mul(&norm.weight().to_dtype(DType::F32)?)?;
    if let Some(bias) = norm.bias() {
        y = y.broadcast_add(&bias.to_dtype(DType::F32)?)?;
    }
    y.to_dtype(dtype)
}

/// transformers' RMSNorm: the mean square and the scaling in f32. Llama-style (`gemma` false):
/// the normalised value rounded to the dtype, then multiplied by the weight in the dtype;
/// Gemma-style: multiplied by `1 + w` in f32 and rounded once (`weight` here is `1 + w`, in f32).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, gemma: bool) -> Result<Tensor> {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        return candle_nn::ops::rms_norm(x, weight, eps as f32);
    }
    let x32 = x.to_dtype(DType::F32)?;
    let mean_square = x32.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    let normalised = x32.broadcast_mul(&(mean_square + eps)?.sqrt()?.recip()?)?;
    if gemma {
        normalised.broadcast_mul(&weight.to_dtype(DType::F32)?)?.to_dtype(dtype)
    } else {
        normalised.to_dtype(dtype)?.broadcast_mul(weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upcast_follows_the_pinned_transformers() {
        let p = |upcast, transformers: Option<&str>| Precision {
            dtype: "bf16".into(),
            upcast,
            transformers: transformers.map(String::from),
            attention: AttentionRounding::Flash,
        };
        let sn9 = p(Upcast::Auto, Some("4.44.1"));
        assert!(sn9.resolve("LlamaForCausalLM").unwrap().upcast_logits);
        assert!(!sn9.resolve("FalconForCausalLM").unwrap().upcast_logits, "4.44.1 keeps Falcon's logits in bf16");
        assert!(!p(Upcast::Auto, Some("4.48.3")).resolve("LlamaForCausalLM").unwrap().upcast_logits);
        assert!(p(Upcast::Always, None).resolve("FalconForCausalLM").unwrap().upcast_logits);
        assert!(p(Upcast::Auto, None).resolve("LlamaForCausalLM").unwrap_err().contains("transformers"));
        assert!(p(Upcast::Auto, Some("4.40.0")).resolve("LlamaForCausalLM").unwrap_err().contains("4.40.0"));
        assert!(Precision::f32().resolve("FalconForCausalLM").unwrap().upcast_logits, "f32 logits are f32");
    }

    #[test]
    fn bf16_ops_round_once() {
        let x = Tensor::new(&[1.0f32, 3.0, -2.5, 7.0], &candle_core::Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
        // x / 30 in f32 then rounded, not x times bf16(1/30).
        let got: Vec<f32> = in_f32(&x, |x| x / 30.0).unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap();
        let want: Vec<f32> = [1.0f32, 3.0, -2.5, 7.0].iter().map(|v| half::bf16::from_f32(v / 30.0).to_f32()).collect();
        assert_eq!(got, want);
    }
}
