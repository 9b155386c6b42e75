//! The on-chain model commitment (upstream.md §2.1, §2.3): `namespace:name:commit:secure_hash:competition_id`,
//! and the secure hash that binds a model's directory hash to the committing hotkey.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The chain accepts at most 128 raw bytes per commitment field.
pub const MAX_METADATA_BYTES: usize = 128;
/// `128 - 40 (commit) - 44 (secure hash) - 2 (separators) - 4 (competition id)`.
pub const MAX_REPO_ID_LENGTH: usize = MAX_METADATA_BYTES - 40 - 44 - 2 - 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("commitment {0:?} has fewer than 4 ':'-separated fields")]
    TooFewFields(String),
    #[error("commitment {commitment:?}: competition id {value:?} is not an integer in 0..=65535")]
    CompetitionId { commitment: String, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelId {
    pub namespace: String,
    pub name: String,
    pub commit: Option<String>,
    /// Only legacy 4-field commitments carry a plain hash.
    pub hash: Option<String>,
    pub secure_hash: Option<String>,
    pub competition_id: u16,
}

fn none_as_null(s: &str) -> Option<String> {
    (s != "None").then(|| s.to_string())
}

impl ModelId {
    /// `ModelId.from_compressed_str`: 5+ fields (extra ones ignored), or the legacy 4-field SN9
    /// form whose fourth field is both hash and secure hash and whose competition is 0. Upstream
    /// treats any parse failure as "no metadata".
    pub fn parse(commitment: &str) -> Result<Self, Error> {
        let tokens: Vec<&str> = commitment.split(':').collect();
        if tokens.len() < 4 {
            return Err(Error::TooFewFields(commitment.to_string()));
        }
        let (hash, competition_id) = if tokens.len() >= 5 {
            // Python's int() accepts surrounding whitespace and a sign; a miner's "+2" or " 2"
            // parses upstream, so it parses here.
            let value = tokens[4].trim();
            let parsed = value.strip_prefix('+').unwrap_or(value).parse::<u16>();
            let id = parsed.map_err(|_| Error::CompetitionId { commitment: commitment.to_string(), value: tokens[4].to_string() })?;
            (None, id)
        } else {
            (none_as_null(tokens[3]), 0)
        };
        Ok(Self {
            namespace: tokens[0].to_string(),
            name: tokens[1].to_string(),
            commit: none_as_null(tokens[2]),
            hash,
            secure_hash: none_as_null(tokens[3]),
            competition_id,
        })
    }

    /// `ModelId.to_compressed_str`, with absent fields written `None`.
    pub fn to_compressed(&self) -> String {
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".into());
        format!("{}:{}:{}:{}:{}", self.namespace, self.name, or_none(&self.commit), or_none(&self.secure_hash), self.competition_id)
    }

    pub fn repo_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `get_hash_of_two_strings`: base64 sha256 of the concatenation.
pub fn hash_of_two_strings(a: &str, b: &str) -> String {
    let mut h = Sha256::new();
    h.update(a.as_bytes());
    h.update(b.as_bytes());
    BASE64.encode(h.finalize())
}

/// The secure hash a miner commits: its model's directory hash bound to its hotkey.
pub fn secure_hash(model_hash: &str, hotkey_ss58: &str) -> String {
    hash_of_two_strings(model_hash, hotkey_ss58)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::section;

    fn expected(v: &serde_json::Value) -> ModelId {
        let s = |k: &str| v[k].as_str().map(str::to_string);
        ModelId {
            namespace: s("namespace").unwrap(),
            name: s("name").unwrap(),
            commit: s("commit"),
            hash: s("hash"),
            secure_hash: s("secure_hash"),
            competition_id: v["competition_id"].as_u64().unwrap() as u16,
        }
    }

    #[test]
    fn model_id_vectors() {
        let v = &section("hashes_and_model_id")["model_id"];
        let compressed = v["compressed"].as_str().unwrap();
        let id = ModelId::parse(compressed).unwrap();
        assert_eq!(id, expected(&v["parsed"]));
        assert_eq!(id.to_compressed(), compressed);
        assert_eq!(compressed.len() as u64, v["len_bytes"].as_u64().unwrap());
        let legacy = format!(
            "my-org:old-7b:{}:{}",
            v["legacy_4_token_parsed"]["commit"].as_str().unwrap(),
            v["legacy_4_token_parsed"]["hash"].as_str().unwrap()
        );
        assert_eq!(ModelId::parse(&legacy).unwrap(), expected(&v["legacy_4_token_parsed"]));
        assert_eq!(MAX_REPO_ID_LENGTH as u64, v["max_repo_id_length"].as_u64().unwrap());
        let none = ModelId::parse(v["none_fields_example"].as_str().unwrap()).unwrap();
        assert_eq!((none.commit, none.secure_hash, none.competition_id), (None, None, 4));
        assert!(matches!(ModelId::parse("a:b:c"), Err(Error::TooFewFields(_))));
        assert!(matches!(ModelId::parse("a:b:c:d:x"), Err(Error::CompetitionId { .. })));
    }

    #[test]
    fn secure_hash_vectors() {
        let v = &section("hashes_and_model_id")["secure_hash"];
        assert_eq!(hash_of_two_strings("hello", "world"), v["hello+world"].as_str().unwrap());
        assert_eq!(secure_hash(v["model_hash"].as_str().unwrap(), v["hotkey"].as_str().unwrap()), v["secure_hash"].as_str().unwrap());
    }
}
