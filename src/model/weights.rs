//! The weight files of a snapshot: `model.safetensors` or the shards a
//! `model.safetensors.index.json` names, each checked to be a complete safetensors file (bounded
//! header, every tensor inside the file) before it is memory-mapped. Pickles are refused whatever
//! their names: valkit never unpickles anything.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::Error;

/// A header larger than this is not a model header but an allocation attempt.
const MAX_HEADER_BYTES: u64 = 100 << 20;

pub struct WeightFiles {
    pub paths: Vec<PathBuf>,
    /// Tensor name → number of elements.
    pub tensors: Vec<(String, u64)>,
}

impl WeightFiles {
    /// Parameters as torch counts them: a tied `lm_head` shares the embedding and counts once.
    pub fn n_params(&self, tied: bool) -> u64 {
        self.tensors.iter().filter(|(name, _)| !(tied && name == "lm_head.weight")).map(|(_, n)| n).sum()
    }
}

/// Pickle protocols 2–5 start with 0x80 and the protocol byte; torch's zip format with "PK".
fn looks_like_pickle(head: &[u8]) -> bool {
    matches!(head, [0x80, 2..=5, ..]) || head.starts_with(b"PK\x03\x04")
}

pub fn inspect_weights(dir: &Path) -> Result<WeightFiles, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        names.insert(entry.file_name().to_string_lossy().into_owned());
    }
    for name in &names {
        if [".bin", ".pt", ".pth", ".ckpt", ".pkl"].iter().any(|ext| name.ends_with(ext)) {
            return Err(Error::Pickle(name.clone()));
        }
    }
    let files: Vec<String> = if names.contains("model.safetensors.index.json") {
        shards(&dir.join("model.safetensors.index.json"))?
    } else if names.contains("model.safetensors") {
        vec!["model.safetensors".into()]
    } else {
        return Err(Error::NoWeights(dir.display().to_string()));
    };
    let mut out = WeightFiles { paths: Vec::new(), tensors: Vec::new() };
    for name in files {
        let path = dir.join(&name);
        out.tensors.extend(check_safetensors(&path)?);
        out.paths.push(path);
    }
    Ok(out)
}

/// The shard names of an index, sorted, each a plain file name in the snapshot.
fn shards(index: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(index).map_err(|source| Error::Io { path: index.display().to_string(), source })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config(format!("model.safetensors.index.json: {e}")))?;
    let map = value["weight_map"].as_object().ok_or_else(|| Error::Config("model.safetensors.index.json has no weight_map".into()))?;
    let mut files = BTreeSet::new();
    for file in map.values() {
        let file = file.as_str().ok_or_else(|| Error::Config("weight_map values must be file names".into()))?;
        if file.contains('/') || file.contains('\\') || file.starts_with('.') || !file.ends_with(".safetensors") {
            return Err(Error::Config(format!("weight_map names {file:?}, not a .safetensors file of the snapshot")));
        }
        files.insert(file.to_string());
    }
    Ok(files.into_iter().collect())
}

/// Checks the header of one file and returns its tensors' element counts.
fn check_safetensors(path: &Path) -> Result<Vec<(String, u64)>, Error> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bad = |problem: String| Error::NotSafetensors { file: file_name.clone(), problem };
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 8];
    file.read_exact(&mut head).map_err(|_| bad(format!("{size} bytes, too short for a header")))?;
    if looks_like_pickle(&head) {
        return Err(Error::Pickle(file_name));
    }
    let header_len = u64::from_le_bytes(head);
    if header_len > MAX_HEADER_BYTES || header_len + 8 > size {
        return Err(bad(format!("header length {header_len} does not fit a {size}-byte file")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let data_len = size - 8 - header_len;
    let mut tensors = Vec::new();
    for (name, info) in header.as_object().ok_or_else(|| bad("header is not an object".into()))? {
        if name == "__metadata__" {
            continue;
        }
        let shape: Vec<u64> = info["shape"]
            .as_array()
            .map(|s| s.iter().filter_map(|d| d.as_u64()).collect())
            .ok_or_else(|| bad(format!("tensor {name} has no shape")))?;
        let offsets: Vec<u64> = info["data_offsets"].as_array().map(|s| s.iter().filter_map(|d| d.as_u64()).collect()).unwrap_or_default();
        let elt = match info["dtype"].as_str() {
            Some("F32" | "I32" | "U32") => 4,
            Some("F16" | "BF16" | "I16" | "U16") => 2,
            Some("F64" | "I64" | "U64") => 8,
            Some("I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2") => 1,
            other => return Err(bad(format!("tensor {name} has dtype {other:?}"))),
        };
        let elements =
            shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| bad(format!("tensor {name} shape overflows")))?;
        if offsets.len() != 2 || offsets[1] > data_len || offsets[1] < offsets[0] || offsets[1] - offsets[0] != elements * elt {
            return Err(bad(format!("tensor {name} lies outside the file (truncated?)")));
        }
        tensors.push((name.clone(), elements));
    }
    Ok(tensors)
}
