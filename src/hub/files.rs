//! Which files of a model repository a validator downloads — and so which files the model hash
//! covers (upstream.md §2.3, §10.4): `config.json`; `generation_config.json` when present;
//! `model.safetensors`, or `model.safetensors.index.json` plus every shard it names; and the
//! tokenizer files `AutoTokenizer` asks for. Never README, `.gitattributes` or anything else:
//! a different set gives a different hash and rejects an honest miner. Pure: names in, names out.

use std::collections::BTreeSet;

use super::TreeFile;

pub const CONFIG: &str = "config.json";
pub const GENERATION_CONFIG: &str = "generation_config.json";
pub const SINGLE_WEIGHTS: &str = "model.safetensors";
pub const WEIGHTS_INDEX: &str = "model.safetensors.index.json";
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";

/// Files every tokenizer class asks for besides its vocabulary files
/// (`PreTrainedTokenizerBase.from_pretrained`'s additional files).
const TOKENIZER_COMMON: [&str; 4] = ["added_tokens.json", "special_tokens_map.json", TOKENIZER_CONFIG, "tokenizer.json"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weights {
    Single,
    Sharded,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("pickle-file: the repository has pickled weights ({0}) and no model.safetensors")]
    PickleOnly(String),
    #[error("no-weights: the repository has neither model.safetensors nor model.safetensors.index.json")]
    NoWeights,
    #[error("no-config: the repository has no config.json")]
    NoConfig,
}

/// The weights layout `from_pretrained(use_safetensors=True)` picks: the single file first.
pub fn weights_layout(tree: &[TreeFile]) -> Result<Weights, Error> {
    let has = |name: &str| tree.iter().any(|f| f.path == name);
    if !has(CONFIG) {
        return Err(Error::NoConfig);
    }
    if has(SINGLE_WEIGHTS) {
        Ok(Weights::Single)
    } else if has(WEIGHTS_INDEX) {
        Ok(Weights::Sharded)
    } else if let Some(pickle) = tree.iter().find(|f| crate::model::is_pickle_name(&f.path)) {
        Err(Error::PickleOnly(pickle.path.clone()))
    } else {
        Err(Error::NoWeights)
    }
}

/// The fast tokenizer class `AutoTokenizer` resolves: `tokenizer_config.json`'s
/// `tokenizer_class` (with `Fast` appended), else transformers' mapping of `model_type` (the
/// architectures' table, `model::families`).
pub fn tokenizer_class(tokenizer_config_class: Option<&str>, model_type: Option<&str>) -> Option<String> {
    if let Some(class) = tokenizer_config_class {
        return Some(format!("{}Fast", class.trim_end_matches("Fast")));
    }
    crate::model::families::by_model_type(model_type?)?.tokenizer.map(str::to_string)
}

/// The vocabulary files a fast tokenizer class names (`vocab_files_names`); an unknown class
/// takes every usual vocabulary file the repository has.
fn vocab_files(class: Option<&str>) -> &'static [&'static str] {
    match class {
        Some("LlamaTokenizerFast" | "GemmaTokenizerFast" | "CodeLlamaTokenizerFast" | "T5TokenizerFast") => &["tokenizer.model"],
        Some(
            "GPT2TokenizerFast"
            | "Qwen2TokenizerFast"
            | "GPTNeoXTokenizerFast"
            | "CodeGenTokenizerFast"
            | "BartTokenizerFast"
            | "RobertaTokenizerFast",
        ) => &["vocab.json", "merges.txt"],
        Some("PreTrainedTokenizerFast") => &[],
        _ => &["tokenizer.model", "vocab.json", "merges.txt", "vocab.txt"],
    }
}

/// Every file the model hash covers. `shards` are the index's shard names (empty for a single
/// file); `tokenizer` is the class from `tokenizer_class`.
pub fn hashed_files(tree: &[TreeFile], weights: &Weights, shards: &[String], tokenizer: Option<&str>) -> Vec<String> {
    let present: BTreeSet<&str> = tree.iter().map(|f| f.path.as_str()).collect();
    let mut out = BTreeSet::new();
    out.insert(CONFIG.to_string());
    let mut optional: Vec<&str> = vec![GENERATION_CONFIG];
    optional.extend(TOKENIZER_COMMON);
    optional.extend(vocab_files(tokenizer));
    out.extend(optional.into_iter().filter(|f| present.contains(f)).map(str::to_string));
    match weights {
        Weights::Single => {
            out.insert(SINGLE_WEIGHTS.to_string());
        }
        Weights::Sharded => {
            out.insert(WEIGHTS_INDEX.to_string());
            out.extend(shards.iter().cloned());
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(names: &[&str]) -> Vec<TreeFile> {
        names.iter().map(|n| TreeFile { path: n.to_string(), size: 1 }).collect()
    }

    #[test]
    fn the_hashed_set_is_what_transformers_downloads() {
        let t = tree(&[
            ".gitattributes",
            "README.md",
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "model.safetensors.index.json",
            "pytorch_model.bin",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.json",
            "merges.txt",
            "tokenizer.model",
        ]);
        let layout = weights_layout(&t).unwrap();
        assert_eq!(layout, Weights::Single);
        let llama = hashed_files(&t, &layout, &[], tokenizer_class(None, Some("llama")).as_deref());
        assert_eq!(
            llama,
            [
                "config.json",
                "generation_config.json",
                "model.safetensors",
                "special_tokens_map.json",
                "tokenizer.json",
                "tokenizer.model",
                "tokenizer_config.json"
            ]
        );
        let gpt2 = hashed_files(&t, &layout, &[], tokenizer_class(Some("GPT2Tokenizer"), Some("llama")).as_deref());
        assert!(gpt2.contains(&"vocab.json".to_string()) && gpt2.contains(&"merges.txt".to_string()));
        assert!(!gpt2.contains(&"tokenizer.model".to_string()));
    }

    #[test]
    fn shards_come_from_the_index_and_pickles_alone_are_refused() {
        let t = tree(&["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors"]);
        let shards = vec!["model-00001-of-00002.safetensors".to_string(), "model-00002-of-00002.safetensors".to_string()];
        let files = hashed_files(&t, &weights_layout(&t).unwrap(), &shards, None);
        assert_eq!(files.len(), 4);
        assert!(matches!(weights_layout(&tree(&["config.json", "pytorch_model.bin"])), Err(Error::PickleOnly(_))));
        assert_eq!(weights_layout(&tree(&["config.json", "adapter.safetensors"])), Err(Error::NoWeights));
        assert_eq!(weights_layout(&tree(&["model.safetensors"])), Err(Error::NoConfig));
    }
}
