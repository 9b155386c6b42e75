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
    /// Parameter tensors (buffers left out) → number of elements.
    pub tensors: Vec<(String, u64)>,
}

impl WeightFiles {
    /// Parameters as torch counts them: a tied `lm_head` shares the embedding and counts once.
    pub fn n_params(&self, tied: bool) -> u64 {
        count_parameters(&self.tensors, tied)
    }
}

/// `sum(p.numel() for p in model.parameters())` from a checkpoint's parameter tensors: a tied
/// `lm_head` shares the embedding and counts once.
pub fn count_parameters(tensors: &[(String, u64)], tied: bool) -> u64 {
    tensors.iter().filter(|(name, _)| !(tied && name == "lm_head.weight")).map(|(_, n)| n).sum()
}

/// Pickle protocols 2–5 start with 0x80 and the protocol byte; torch's zip format with "PK".
/// Asked only of a file whose safetensors header did not parse: a valid header length can start
/// with those bytes too.
fn looks_like_pickle(head: &[u8]) -> bool {
    matches!(head, [0x80, 2..=5, ..]) || head.starts_with(b"PK\x03\x04")
}

/// Tensors stored beside the weights that torch counts as buffers, not parameters: rotary
/// frequencies and the causal masks older GPT-NeoX/GPT-2 checkpoints saved.
fn is_buffer(name: &str) -> bool {
    let mut parts = name.rsplit('.');
    let (last, module) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    last == "inv_freq" || (matches!(module, "attention" | "attn") && matches!(last, "bias" | "masked_bias"))
}

/// The header length a file's first 8 bytes announce, checked against the file's size.
pub fn header_length(file: &str, prefix: &[u8], file_size: u64) -> Result<u64, Error> {
    let bad = |problem: String| Error::NotSafetensors { file: file.to_string(), problem };
    let bytes: [u8; 8] =
        prefix.get(..8).and_then(|p| p.try_into().ok()).ok_or_else(|| bad(format!("{file_size} bytes, too short for a header")))?;
    let header_len = u64::from_le_bytes(bytes);
    if header_len > MAX_HEADER_BYTES || header_len.saturating_add(8) > file_size {
        if looks_like_pickle(prefix) {
            return Err(Error::Pickle(file.to_string()));
        }
        return Err(bad(format!("header length {header_len} does not fit a {file_size}-byte file")));
    }
    Ok(header_len)
}

/// The parameter tensors a safetensors header describes, as (name, elements), after checking with
/// the `safetensors` crate that the tensors tile the data exactly and that the data fills the
/// rest of a `file_size`-byte file.
pub fn parameters_of_header(file: &str, header: &[u8], file_size: u64) -> Result<Vec<(String, u64)>, Error> {
    let bad = |problem: String| Error::NotSafetensors { file: file.to_string(), problem };
    let metadata: safetensors::tensor::Metadata = serde_json::from_slice(header).map_err(|e| bad(format!("header does not parse: {e}")))?;
    let data_len = file_size
        .checked_sub(8 + header.len() as u64)
        .ok_or_else(|| bad(format!("a {}-byte header does not fit a {file_size}-byte file", header.len())))?;
    if metadata.data_len() as u64 != data_len {
        return Err(bad(format!("the header describes {} data bytes, the file holds {data_len} (truncated?)", metadata.data_len())));
    }
    let mut tensors = Vec::new();
    for (name, info) in metadata.tensors() {
        if is_buffer(&name) || info.dtype == safetensors::Dtype::BOOL {
            continue;
        }
        let elements = info.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        let elements = elements.ok_or_else(|| bad(format!("tensor {name} has a shape {:?} whose size overflows", info.shape)))?;
        tensors.push((name, elements));
    }
    tensors.sort();
    Ok(tensors)
}

pub fn inspect_weights(dir: &Path) -> Result<WeightFiles, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        names.insert(entry.file_name().to_string_lossy().into_owned());
    }
    if let Some(name) = names.iter().find(|n| is_pickle_name(n)) {
        return Err(Error::Pickle(name.clone()));
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

/// A file name that holds pickled weights, which valkit never loads.
pub fn is_pickle_name(name: &str) -> bool {
    [".bin", ".pt", ".pth", ".ckpt", ".pkl"].iter().any(|ext| name.ends_with(ext))
}

fn shards(index: &Path) -> Result<Vec<String>, Error> {
    super::regular_file(index)?;
    let text = std::fs::read_to_string(index).map_err(|source| Error::Io { path: index.display().to_string(), source })?;
    shard_names(&text)
}

/// The shard names of a `model.safetensors.index.json`, sorted, each a plain `.safetensors` file
/// name (no directories, nothing hidden).
pub fn shard_names(index_json: &str) -> Result<Vec<String>, Error> {
    let value: serde_json::Value =
        serde_json::from_str(index_json).map_err(|e| Error::Config(format!("model.safetensors.index.json: {e}")))?;
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

/// Checks the header of one file and returns its parameter tensors' element counts.
fn check_safetensors(path: &Path) -> Result<Vec<(String, u64)>, Error> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let io = |source| Error::Io { path: path.display().to_string(), source };
    super::regular_file(path)?;
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut prefix = Vec::with_capacity(8);
    (&mut file).take(8).read_to_end(&mut prefix).map_err(io)?;
    let header_len = header_length(&file_name, &prefix, size)?;
    let mut header = vec![0u8; usize::try_from(header_len).expect("bounded by MAX_HEADER_BYTES")];
    file.read_exact(&mut header).map_err(io)?;
    parameters_of_header(&file_name, &header, size)
}
