//! Architecture families. Each module reads its own fields of `config.json` into its own
//! settings (an `Architecture`) and builds its forward pass (a `CausalLm`) from them; nothing
//! family-specific lives outside its module. A new family is one file here and one line in
//! `REGISTRY`.

mod bart;
mod llama;
mod parallel;

use candle_core::{Device, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::config::Dims;
use super::numerics::Numerics;
use super::Error;

/// A family's settings for one model, read from its config.
pub trait Architecture: std::fmt::Debug + Send + Sync {
    /// The network, from the weights `vb` holds.
    fn load(&self, dims: &Dims, vb: VarBuilder, numerics: Numerics) -> Result<Box<dyn CausalLm>>;
}

/// A loaded network: hidden states for every position, and the head that turns them into logits.
pub trait CausalLm: Send + Sync {
    fn device(&self) -> &Device;
    /// Final-norm hidden states for every position: `[1, T, hidden]`.
    fn hidden_states(&self, ids: &Tensor) -> Result<Tensor>;
    /// The output projection, and the soft-capping of its logits (Gemma2).
    fn lm_head(&self) -> (&Linear, Option<f64>);
}

/// Reads a config of one of the family's classes: its own field names mapped onto the common
/// ones first where they differ, then the shared dimensions and the family's settings, all
/// checked before any weight is opened.
pub type Parse = fn(class: &str, json: &mut serde_json::Value) -> std::result::Result<(Dims, Box<dyn Architecture>), Error>;

pub struct Family {
    /// The transformers classes the family implements.
    pub classes: &'static [&'static str],
    pub parse: Parse,
}

pub const REGISTRY: [Family; 3] = [llama::FAMILY, parallel::FAMILY, bart::FAMILY];

/// The family that implements `class`.
pub fn find(class: &str) -> Option<&'static Family> {
    REGISTRY.iter().find(|f| f.classes.contains(&class))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each class belongs to one family, and is a class transformers builds for some
    /// `model_type` (as `causal_lm_class` resolves it), so every family is reachable.
    #[test]
    fn every_class_has_one_family_and_is_reachable() {
        let classes: Vec<&str> = REGISTRY.iter().flat_map(|f| f.classes.iter().copied()).collect();
        for class in &classes {
            assert_eq!(classes.iter().filter(|c| *c == class).count(), 1, "{class} is in two families");
            let model_type = class.trim_end_matches("ForCausalLM").to_lowercase().replace("gptneox", "gpt_neox");
            let resolved = crate::model::causal_lm_class(&serde_json::json!({ "model_type": model_type }));
            assert_eq!(resolved.as_deref(), Some(*class), "model_type {model_type}");
        }
    }

    /// A class no family implements is refused by name before any dimension is read.
    #[test]
    fn unknown_classes_are_named() {
        let limits = crate::model::Limits::for_machine(16);
        let err = crate::model::Config::parse(r#"{"model_type": "gpt2", "n_embd": 768}"#, &limits).unwrap_err();
        assert_eq!(err.to_string(), "unsupported-architecture: GPT2LMHeadModel is not supported by eval-losses yet");
    }
}
