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
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    /// Truncates to `model_max_length`, as `tokenizer(text, truncation=True)`.
    truncating: HfTokenizer,
    /// Does not truncate, as `tokenizer.encode(text, truncation=False)`.
    inner: HfTokenizer,
    /// bos/eos/unk/pad token strings, passed to chat templates as transformers does.
    special_tokens: Vec<(String, String)>,
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
        let (dir, file) = if path.is_dir() {
            (path.to_path_buf(), path.join("tokenizer.json"))
        } else {
            (path.parent().map(Path::to_path_buf).unwrap_or_default(), path.to_path_buf())
        };
        let bytes = std::fs::read(&file).map_err(|source| Error::Read { path: file.clone(), source })?;
        let inner = HfTokenizer::from_bytes(&bytes).map_err(|e| Error::Parse { path: file.clone(), message: e.to_string() })?;
        let mut truncating = inner.clone();
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
            truncating.with_truncation(Some(params)).map_err(|e| Error::Config { path: config_path.clone(), message: e.to_string() })?;
        }
        let chat_template = match &config["chat_template"] {
            serde_json::Value::String(t) => Some(t.clone()),
            serde_json::Value::Array(named) => {
                named.iter().find(|t| t["name"] == "default").and_then(|t| t["template"].as_str()).map(str::to_string)
            }
            _ => None,
        };
        let special_tokens = ["bos_token", "eos_token", "unk_token", "pad_token"]
            .iter()
            .filter_map(|k| token_text(&config[*k]).map(|t| (k.to_string(), t)))
            .collect();
        Ok(Self {
            truncating,
            inner,
            special_tokens,
            eos_token_id,
            model_max_length,
            chat_template,
            sha256: hex::encode(Sha256::digest(&bytes)),
            path: file,
        })
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
        let encoding = self.truncating.encode(text, true).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// `tokenizer.encode(text, truncation=False)`: special tokens added, nothing cut.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Error> {
        let encoding = self.inner.encode(text, true).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// `apply_chat_template(messages, add_generation_prompt=…, tokenize=False)`: the template
    /// from tokenizer_config.json rendered as transformers renders it (Jinja with trim_blocks and
    /// lstrip_blocks, loop controls, `raise_exception`, Python string methods, the special tokens).
    pub fn apply_chat_template(&self, messages: &[(&str, &str)], add_generation_prompt: bool) -> Result<String, Error> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| Error::Config { path: self.path.clone(), message: "the tokenizer has no chat_template".into() })?;
        let render_error = |e: minijinja::Error| Error::Config { path: self.path.clone(), message: format!("chat template: {e}") };
        let mut env = minijinja::Environment::new();
        env.set_syntax(minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(render_error)?);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
        });
        env.add_template("chat", template).map_err(render_error)?;
        use minijinja::Value;
        use std::collections::BTreeMap;
        let messages: Vec<Value> = messages
            .iter()
            .map(|(role, content)| Value::from(BTreeMap::from([("role", Value::from(*role)), ("content", Value::from(*content))])))
            .collect();
        let mut context: BTreeMap<String, Value> = self.special_tokens.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        context.insert("messages".into(), Value::from(messages));
        context.insert("add_generation_prompt".into(), Value::from(add_generation_prompt));
        let context = Value::from(context);
        env.get_template("chat").and_then(|t| t.render(context)).map_err(render_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_template_renders_like_transformers() {
        let tok = Tokenizer::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tokenizer"))).unwrap();
        let text = tok.apply_chat_template(&[("system", "S"), ("user", "Q")], true).unwrap();
        assert_eq!(text, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
    }
}
