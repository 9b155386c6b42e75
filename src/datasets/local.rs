//! A local dataset: a directory whose `*.jsonl` or `*.parquet` files are its configs (split
//! `train`): one JSON object per line, or one row per Parquet row (its string, number and boolean
//! columns) — the rows a datasets-server would return. For custom subnets and offline runs;
//! sampled with the same RNG scheme as remote datasets.

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

fn jsonl_rows(path: &Path) -> Result<Vec<serde_json::Value>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Local { path: path.display().to_string(), what: e.to_string() })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Local { path: path.display().to_string(), what: format!("line {}: {e}", i + 1) })
        })
        .collect()
}

/// Each row as a JSON object of its string, integer, float and boolean columns.
fn parquet_rows(path: &Path) -> Result<Vec<serde_json::Value>, Error> {
    crate::exit::contain_panics(|| decode_parquet_rows(path)).unwrap_or_else(|panic| {
        Err(Error::Local {
            path: path.display().to_string(),
            what: format!("not a readable Parquet file: damaged beyond what the reader checks ({panic})"),
        })
    })
}

fn decode_parquet_rows(path: &Path) -> Result<Vec<serde_json::Value>, Error> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Float64Type, Int64Type};
    let err = |what: String| Error::Local { path: path.display().to_string(), what };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| err(format!("not a readable Parquet file: {e}")))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        let mut columns: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let cast = |to: &DataType| arrow::compute::cast(array, to).map_err(|e| err(e.to_string()));
            let values: Vec<serde_json::Value> = match array.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    cast(&DataType::Utf8)?.as_string::<i32>().iter().map(|v| v.map_or(serde_json::Value::Null, |s| s.into())).collect()
                }
                t if t.is_integer() => cast(&DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.map_or(serde_json::Value::Null, |n| n.into()))
                    .collect(),
                t if t.is_floating() => cast(&DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map_or(serde_json::Value::Null, |n| n.into()))
                    .collect(),
                DataType::Boolean => array.as_boolean().iter().map(|v| v.map_or(serde_json::Value::Null, |b| b.into())).collect(),
                _ => continue,
            };
            columns.push((field.name().clone(), values));
        }
        for i in 0..batch.num_rows() {
            rows.push(serde_json::Value::Object(columns.iter().map(|(name, values)| (name.clone(), values[i].clone())).collect()));
        }
    }
    Ok(rows)
}

impl LocalDataset {
    pub fn open(dir: &Path, name: &str) -> Result<Self, Error> {
        let err = |what: String| Error::Local { path: dir.display().to_string(), what };
        let entries = std::fs::read_dir(dir).map_err(|e| err(format!("cannot list: {e}")))?;
        let mut configs = BTreeMap::new();
        for entry in entries {
            let path = entry.map_err(|e| err(e.to_string()))?.path();
            let rows = match path.extension().and_then(|e| e.to_str()) {
                Some("jsonl") => jsonl_rows(&path)?,
                Some("parquet") => parquet_rows(&path)?,
                _ => continue,
            };
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            configs.insert(name, rows);
        }
        if configs.is_empty() {
            return Err(err("no .jsonl or .parquet files".into()));
        }
        Ok(Self { dir: dir.to_path_buf(), name: name.to_string(), configs })
    }

    pub fn name(&self) -> String {
        self.name.clone()
    }

    pub fn size(&self) -> Vec<ConfigRows> {
        self.configs
            .iter()
            .map(|(config, rows)| ConfigRows { config: config.clone(), split: "train".into(), num_rows: rows.len() as u64 })
            .collect()
    }

    pub fn rows(&self, config: &str, split: &str, offset: u64, length: u64) -> Result<Vec<serde_json::Value>, Error> {
        let rows = self.configs.get(config).filter(|_| split == "train").ok_or_else(|| Error::Local {
            path: self.dir.display().to_string(),
            what: format!("no config {config:?} with split {split:?}"),
        })?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(rows.len());
        let end = start.saturating_add(usize::try_from(length).unwrap_or(usize::MAX)).min(rows.len());
        Ok(rows[start..end].to_vec())
    }
}
