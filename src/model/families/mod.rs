//! Architecture families. Each module reads its own fields of `config.json` into its own
//! settings (an `Architecture`) and builds its forward pass (a `CausalLm`) from them, and names
//! the transformers architectures it implements (`model_type`, class, tokenizer); nothing
//! family-specific lives outside its module. A new family is one file here and one line in
//! `REGISTRY`; a new architecture of a family, one line in its file. `UNSUPPORTED` names what
//! transformers knows and valkit does not implement, so that refusals name the class.

mod bart;
mod llama;
mod parallel;

use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::config::{Dims, Limits, MAX_CONFIG_BYTES};
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
    /// The transformers architectures the family implements.
    pub architectures: &'static [Transformers],
    pub parse: Parse,
}

/// One architecture as transformers names it: the `model_type` of its config, the class
/// `AutoModelForCausalLM` builds for it, and the fast tokenizer class `AutoTokenizer` falls back
/// to when `tokenizer_config.json` names none.
#[derive(Debug, Clone, Copy)]
pub struct Transformers {
    pub model_type: &'static str,
    pub class: Option<&'static str>,
    pub tokenizer: Option<&'static str>,
}

const fn arch(model_type: &'static str, class: &'static str, tokenizer: Option<&'static str>) -> Transformers {
    Transformers { model_type, class: Some(class), tokenizer }
}

pub const REGISTRY: [Family; 3] = [llama::FAMILY, parallel::FAMILY, bart::FAMILY];

/// Architectures transformers builds and valkit does not implement (eval-losses refuses them by
/// class name), and `codegen`, whose tokenizer Phi models use.
pub const UNSUPPORTED: &[Transformers] = &[
    arch("mixtral", "MixtralForCausalLM", Some("LlamaTokenizerFast")),
    arch("qwen2_moe", "Qwen2MoeForCausalLM", Some("Qwen2TokenizerFast")),
    arch("gpt2", "GPT2LMHeadModel", Some("GPT2TokenizerFast")),
    arch("gptj", "GPTJForCausalLM", None),
    arch("opt", "OPTForCausalLM", None),
    arch("bloom", "BloomForCausalLM", None),
    arch("starcoder2", "Starcoder2ForCausalLM", None),
    arch("olmo", "OlmoForCausalLM", None),
    arch("stablelm", "StableLmForCausalLM", None),
    arch("cohere", "CohereForCausalLM", None),
    arch("mamba", "MambaForCausalLM", None),
    Transformers { model_type: "codegen", class: None, tokenizer: Some("CodeGenTokenizerFast") },
];

/// Every architecture transformers knows here: the families', then the unsupported.
fn all_architectures() -> impl Iterator<Item = &'static Transformers> {
    REGISTRY.iter().flat_map(|f| f.architectures.iter()).chain(UNSUPPORTED)
}

/// What transformers builds for `model_type`, if it knows it.
pub fn by_model_type(model_type: &str) -> Option<&'static Transformers> {
    all_architectures().find(|a| a.model_type == model_type)
}

/// The family that implements `class`.
pub fn find(class: &str) -> Option<&'static Family> {
    REGISTRY.iter().find(|f| f.architectures.iter().any(|a| a.class == Some(class)))
}

/// The class `AutoModelForCausalLM.from_pretrained` builds for a config, as upstream resolves it
/// (upstream.md §2.4): transformers maps `model_type`, whatever `architectures` says. A config
/// without `model_type` falls back to `architectures[0]`; an unknown `model_type` resolves to
/// nothing (transformers would refuse it without remote code, which validators never run).
pub fn causal_lm_class(config: &serde_json::Value) -> Option<String> {
    let Some(model_type) = config.get("model_type").and_then(|t| t.as_str()) else {
        return config.get("architectures")?.get(0)?.as_str().map(str::to_string);
    };
    by_model_type(model_type)?.class.map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one table of architectures: each model_type and each class once, each class of a
    /// family resolves to that family from its model_type, and the unsupported resolve to a
    /// class no family claims.
    #[test]
    fn every_architecture_is_named_once_and_resolves_to_its_family() {
        let all: Vec<&Transformers> = all_architectures().collect();
        for a in &all {
            assert_eq!(all.iter().filter(|b| b.model_type == a.model_type).count(), 1, "{} twice", a.model_type);
            if let Some(class) = a.class {
                assert_eq!(all.iter().filter(|b| b.class == Some(class)).count(), 1, "{class} twice");
            }
            let resolved = causal_lm_class(&serde_json::json!({ "model_type": a.model_type }));
            assert_eq!(resolved.as_deref(), a.class, "model_type {}", a.model_type);
        }
        for family in &REGISTRY {
            for a in family.architectures {
                let found = find(a.class.expect("a family's architectures have a class")).expect("a family");
                let same = |f: &Family| f.architectures.iter().map(|b| b.model_type).collect::<Vec<_>>();
                assert_eq!(same(found), same(family), "{}", a.model_type);
            }
        }
        for a in UNSUPPORTED {
            assert!(a.class.is_none_or(|c| find(c).is_none()), "{} is implemented", a.model_type);
        }
        assert_eq!(causal_lm_class(&serde_json::json!({ "model_type": "no-such" })), None);
        assert_eq!(causal_lm_class(&serde_json::json!({ "architectures": ["X"] })).as_deref(), Some("X"));
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
