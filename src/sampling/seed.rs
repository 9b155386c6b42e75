//! The data seed: `int(sha256(block_hash_string).hexdigest(), 16)`, a 256-bit integer, held as
//! little-endian 32-bit words — the form CPython's `random.seed(int)` feeds to `init_by_array`.

use std::fmt;

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("block hash {0:?} is not 0x followed by 64 hex digits")]
    BlockHash(String),
    #[error("seed {0:?} is not a non-negative decimal integer")]
    Decimal(String),
}

/// A non-negative integer seed of any size: little-endian 32-bit words, no high zero words
/// (a single zero word for 0), as CPython's `random_seed` builds its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed {
    words: Vec<u32>,
}

impl Seed {
    pub fn from_u64(n: u64) -> Self {
        Self::from_words(vec![n as u32, (n >> 32) as u32])
    }

    fn from_words(mut words: Vec<u32>) -> Self {
        while words.len() > 1 && words.last() == Some(&0) {
            words.pop();
        }
        if words.is_empty() {
            words.push(0);
        }
        Self { words }
    }

    /// Parses a decimal string such as the 77-digit seeds in the vectors.
    pub fn from_decimal(s: &str) -> Result<Self, SeedError> {
        let err = || SeedError::Decimal(s.to_string());
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let mut words: Vec<u32> = vec![0];
        for digit in s.bytes().map(|b| u64::from(b - b'0')) {
            let mut carry = digit;
            for w in words.iter_mut() {
                let v = u64::from(*w) * 10 + carry;
                *w = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                words.push(carry as u32);
            }
        }
        Ok(Self::from_words(words))
    }

    /// From a big-endian byte string, as `int(hexdigest, 16)` reads a digest.
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        let words = bytes.rchunks(4).map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))).collect();
        Self::from_words(words)
    }

    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// The decimal digits, for provenance metadata and logs.
    pub fn to_decimal(&self) -> String {
        let mut words = self.words.clone();
        let mut digits = Vec::new();
        while words.iter().any(|&w| w != 0) {
            let mut rem = 0u64;
            for w in words.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*w);
                *w = (v / 10) as u32;
                rem = v % 10;
            }
            digits.push(b'0' + rem as u8);
        }
        if digits.is_empty() {
            digits.push(b'0');
        }
        digits.reverse();
        String::from_utf8(digits).expect("ascii digits")
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seed({})", self.to_decimal())
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal())
    }
}

/// upstream.md §4.1: sha256 of the `0x…` lowercase hex string (its UTF-8 bytes, not the hash bytes).
pub fn seed_from_block_hash(block_hash: &str) -> Result<Seed, SeedError> {
    let hex = block_hash.strip_prefix("0x").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if hex.is_none() {
        return Err(SeedError::BlockHash(block_hash.to_string()));
    }
    // Substrate returns lowercase; hashing the text means case matters, so normalise as upstream sees it.
    let text = block_hash.to_ascii_lowercase();
    Ok(Seed::from_be_bytes(&Sha256::digest(text.as_bytes())))
}
