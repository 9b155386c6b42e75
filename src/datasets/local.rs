//! A local dataset: a directory whose `*.jsonl` files are its configs (split `train`), one JSON
//! object per line — the rows a datasets-server would return. For custom subnets and offline
//! runs; sampled with the same RNG scheme as remote datasets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Error;
use crate::sampling::ConfigRows;

pub struct LocalDataset {
    dir: PathBuf,
    /// The name the profile gives it: what page provenance records (not the machine's path).
    name: String,
    /// config → rows, configs in name order.
    configs: BTreeMap<String, Vec<serde_json::Value>>,
}

impl LocalDataset {
    pub fn open(dir: &Path, name: &str) -> Result<Self, Error> {
        let err = |what: String| Error::Local { path: dir.display().to_string(), what };
        let entries = std::fs::read_dir(dir).map_err(|e| err(format!("cannot list: {e}")))?;
        let mut configs = BTreeMap::new();
        for entry in entries {
            let path = entry.map_err(|e| err(e.to_string()))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Local { path: path.display().to_string(), what: e.to_string() })?;
            let rows = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| serde_json::from_str(l).map_err(|e| Error::Local { path: path.display().to_string(), what: format!("line {}: {e}", i + 1) }))
                .collect::<Result<Vec<_>, _>>()?;
            configs.insert(name, rows);
        }
        if configs.is_empty() {
            return Err(err("no .jsonl files".into()));
        }
        Ok(Self { dir: dir.to_path_buf(), name: name.to_string(), configs })
    }

    pub fn name(&self) -> String {
        self.name.clone()
    }

    pub fn size(&self) -> Vec<ConfigRows> {
        self.configs.iter().map(|(config, rows)| ConfigRows { config: config.clone(), split: "train".into(), num_rows: rows.len() as u64 }).collect()
    }

    pub fn rows(&self, config: &str, split: &str, offset: u64, length: u64) -> Result<Vec<serde_json::Value>, Error> {
        let rows = self.configs.get(config).filter(|_| split == "train").ok_or_else(|| Error::Local { path: self.dir.display().to_string(), what: format!("no config {config:?} with split {split:?}") })?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(rows.len());
        let end = start.saturating_add(usize::try_from(length).unwrap_or(usize::MAX)).min(rows.len());
        Ok(rows[start..end].to_vec())
    }
}
