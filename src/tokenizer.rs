//! A competition tokenizer as transformers' `AutoTokenizer` would load it from a snapshot:
//! `tokenizer.json` (run by the same Rust `tokenizers` library transformers' fast tokenizers use)
//! plus `tokenizer_config.json` for the EOS token, `model_max_length` and the chat template.
//! Never runs code from the repository.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer as HfTokenizer, TruncationParams};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}")]
    Read { path: PathBuf, #[source] source: std::io::Error },
    #[error("{path} is not a tokenizer.json that parses: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("tokenizer {path} has no EOS token (set eos_token in tokenizer_config.json)")]
    NoEos { path: PathBuf },
    #[error("tokenizing failed: {0}")]
    Encode(String),
}

/// Above this, `model_max_length` is transformers' "no limit" sentinel (1e30) in practice.
const UNLIMITED: u64 = 1 << 40;

pub struct Tokenizer {
    inner: HfTokenizer,
    eos_token_id: u32,
    model_max_length: Option<usize>,
    chat_template: Option<String>,
    /// sha256 of tokenizer.json, for provenance.
    pub sha256: String,
    pub path: PathBuf,
}

impl Tokenizer {
    /// Loads from a snapshot directory (tokenizer.json + optional tokenizer_config.json) or
    /// from a tokenizer.json file with its config beside it.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let (dir, file) = if path.is_dir() { (path.to_path_buf(), path.join("tokenizer.json")) } else { (path.parent().map(Path::to_path_buf).unwrap_or_default(), path.to_path_buf()) };
        let bytes = std::fs::read(&file).map_err(|source| Error::Read { path: file.clone(), source })?;
        let mut inner = HfTokenizer::from_bytes(&bytes).map_err(|e| Error::Parse { path: file.clone(), message: e.to_string() })?;
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = match std::fs::read(&config_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Config { path: config_path.clone(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
            Err(source) => return Err(Error::Read { path: config_path, source }),
        };
        let token_text = |v: &serde_json::Value| v.as_str().map(str::to_string).or_else(|| v["content"].as_str().map(str::to_string));
        let eos = token_text(&config["eos_token"]).unwrap_or_else(|| "<|endoftext|>".into());
        let eos_token_id = inner.token_to_id(&eos).ok_or_else(|| Error::NoEos { path: file.clone() })?;
        let model_max_length = config["model_max_length"].as_f64().filter(|&m| m >= 1.0 && m < UNLIMITED as f64).map(|m| m as usize);
        if let Some(max_length) = model_max_length {
            // transformers' `truncation=True`: keep the first model_max_length tokens.
            let params = TruncationParams { max_length, ..Default::default() };
            inner.with_truncation(Some(params)).map_err(|e| Error::Config { path: config_path.clone(), message: e.to_string() })?;
        }
        let chat_template = match &config["chat_template"] {
            serde_json::Value::String(t) => Some(t.clone()),
            serde_json::Value::Array(named) => named.iter().find(|t| t["name"] == "default").and_then(|t| t["template"].as_str()).map(str::to_string),
            _ => None,
        };
        Ok(Self { inner, eos_token_id, model_max_length, chat_template, sha256: hex::encode(Sha256::digest(&bytes)), path: file })
    }

    pub fn eos_token_id(&self) -> u32 {
        self.eos_token_id
    }

    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// `tokenizer(text, truncation=True)["input_ids"]`: special tokens added as the tokenizer's
    /// post-processor says, truncated to `model_max_length`.
    pub fn encode_truncated(&self, text: &str) -> Result<Vec<u32>, Error> {
        let encoding = self.inner.encode(text, true).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }
}
