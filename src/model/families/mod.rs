//! Architecture families. Each module reads its own fields of `config.json` into its own
//! settings (an `Architecture`) and builds its forward pass (a `CausalLm`) from them; nothing
//! family-specific lives outside its module. A new family is one file here and one line in
//! `REGISTRY`.

mod bart;
mod llama;
mod parallel;

use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::config::{causal_lm_class, Dims, Limits, MAX_CONFIG_BYTES};
use super::numerics::Numerics;
use super::Error;

/// A parsed `config.json`: the class transformers would build, the shared dimensions, and what
/// the class's family read of its own fields.
#[derive(Debug)]
pub struct Config {
    pub architecture: String,
    pub dims: Dims,
    pub family: Box<dyn Architecture>,
}

impl Config {
    pub fn read(dir: &std::path::Path, limits: &Limits) -> std::result::Result<Self, Error> {
        let path = dir.join("config.json");
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let len = super::regular_file(&path)?;
        if len > MAX_CONFIG_BYTES {
            return Err(Error::Config(format!("config.json is {len} bytes")));
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        Self::parse(&text, limits)
    }

    /// A `config.json`'s text, every dimension bounded. An architecture no family implements is
    /// `Error::Architecture`: it may still be a valid model, only not one valkit evaluates.
    pub fn parse(text: &str, limits: &Limits) -> std::result::Result<Self, Error> {
        let mut json: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Config(format!("config.json: {e}")))?;
        if !json.is_object() {
            return Err(Error::Config("config.json is not an object".into()));
        }
        let architecture = causal_lm_class(&json)
            .or_else(|| json["architectures"][0].as_str().map(str::to_string))
            .ok_or_else(|| Error::Config("config.json names no architecture".into()))?;
        let family = find(&architecture).ok_or_else(|| Error::Architecture(architecture.clone()))?;
        let (dims, family) = (family.parse)(&architecture, &mut json)?;
        limits.check_estimate(dims.implied_params())?;
        Ok(Self { architecture, dims, family })
    }
}

/// A family's settings for one model, read from its config.
pub trait Architecture: std::fmt::Debug + Send + Sync {
    /// The network, from the weights `vb` holds.
    fn load(&self, dims: &Dims, vb: VarBuilder, numerics: Numerics) -> Result<Box<dyn CausalLm>>;
}

/// A loaded network: hidden states for every position, and the head that turns them into logits.
pub trait CausalLm: Send + Sync {
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

    fn parse(json: serde_json::Value) -> std::result::Result<crate::model::Config, Error> {
        crate::model::Config::parse(&json.to_string(), &crate::model::Limits::for_machine(16))
    }

    fn refusal(json: serde_json::Value) -> String {
        parse(json).unwrap_err().to_string()
    }

    /// A small config of `model_type`, with `extra` fields on top.
    fn config(model_type: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut json = serde_json::json!({
            "model_type": model_type, "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4,
        });
        json.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json
    }

    /// Each family reads its own fields: its defaults, the names it maps, what it refuses.
    #[test]
    fn each_family_reads_its_own_fields() {
        use serde_json::json;
        // Llama: SiLU only; Gemma ties its embeddings whatever the config says, GELU accepted.
        assert_eq!(
            refusal(config("llama", json!({"hidden_act": "gelu"}))),
            r#"unsupported-architecture: LlamaForCausalLM with activation "gelu" is not supported by eval-losses yet"#
        );
        let gemma = parse(config("gemma", json!({"tie_word_embeddings": false, "hidden_act": "gelu"}))).unwrap();
        assert!(gemma.dims.tie_word_embeddings);
        let layers = refusal(config("gemma2", json!({"layer_types": ["sliding_attention"]})));
        assert_eq!(layers, "bad-config: layer_types lists 1 layers, the model has 2");
        // Falcon: its own names mapped, multi-query by default, ALiBi refused.
        let falcon = parse(config("falcon", json!({"ffn_hidden_size": null, "layer_norm_epsilon": 1e-3}))).unwrap();
        assert_eq!((falcon.dims.num_key_value_heads, falcon.dims.intermediate_size), (1, 256));
        assert!(falcon.dims.tie_word_embeddings);
        assert!(format!("{:?}", falcon.family).contains("layer_norm_eps: 0.001"));
        assert_eq!(
            refusal(config("falcon", json!({"alibi": true}))),
            "unsupported-architecture: FalconForCausalLM with ALiBi is not supported by eval-losses yet"
        );
        // GPT-NeoX rotates a quarter of each head by default; rope scaling it does not implement is refused.
        let neox = parse(config("gpt_neox", json!({"hidden_act": "gelu"}))).unwrap();
        assert!(format!("{:?}", neox.family).contains("dim: 4"), "{:?}", neox.family);
        let scaled = config(
            "gpt_neox",
            json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}),
        );
        assert_eq!(refusal(scaled), "unsupported-architecture: GPTNeoXForCausalLM with rope scaling is not supported by eval-losses yet");
        assert_eq!(
            refusal(config("phi", json!({"qk_layernorm": true}))),
            "unsupported-architecture: PhiForCausalLM with qk_layernorm is not supported by eval-losses yet"
        );
        // BART: the decoder's names mapped onto the common ones; mBART's pre-norm refused.
        let bart = json!({"model_type": "bart", "vocab_size": 100, "d_model": 32, "decoder_ffn_dim": 64, "decoder_layers": 3, "decoder_attention_heads": 2, "activation_function": "gelu"});
        let dims = parse(bart.clone()).unwrap().dims;
        assert_eq!((dims.hidden_size, dims.intermediate_size, dims.num_hidden_layers, dims.num_key_value_heads), (32, 64, 3, 2));
        let mut mbart = bart;
        mbart["normalize_before"] = json!(true);
        assert!(refusal(mbart).contains("mBART-style pre-norm"));
    }

    /// A class no family implements is refused by name before any dimension is read.
    #[test]
    fn unknown_classes_are_named() {
        let limits = crate::model::Limits::for_machine(16);
        let err = crate::model::Config::parse(r#"{"model_type": "gpt2", "n_embd": 768}"#, &limits).unwrap_err();
        assert_eq!(err.to_string(), "unsupported-architecture: GPT2LMHeadModel is not supported by eval-losses yet");
    }
}
