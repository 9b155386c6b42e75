//! `inspect`: what a Parquet file holds — table name, schema version, provenance, and rows as an
//! aligned table, JSON lines or CSV. Reads any Parquet file; valkit's own tables show their
//! metadata, others show what they have.

use std::io::Write;

use anyhow::Context;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{json, Map, Value};

use crate::exit::Outcome;
use crate::files::{self, Location};
use crate::tables;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal, preceded by the metadata.
    Table,
    /// One JSON object per row.
    Json,
    Csv,
    /// Only the metadata, as one JSON object.
    Meta,
}

pub struct Options {
    pub input: Location,
    pub format: Format,
    pub limit: Option<usize>,
}

/// A value of one cell, independent of the Arrow type it came from.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Cell>),
}

impl Cell {
    fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(b) => json!(b),
            Cell::Int(i) => serde_json::Number::from_i128(*i).map_or_else(|| json!(i.to_string()), Value::Number),
            // JSON has no infinities: write them as strings Python's float() reads back.
            Cell::Float(f) if f.is_finite() => json!(f),
            Cell::Float(f) => json!(f.to_string()),
            Cell::Str(s) => json!(s),
            Cell::List(items) => Value::Array(items.iter().map(Cell::to_json).collect()),
        }
    }

    fn to_text(&self, max_items: usize) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            // Denormal tracker weights such as 3.7e-44 would print with 40 zeros otherwise.
            Cell::Float(f) if *f != 0.0 && f.is_finite() && (f.abs() < 1e-4 || f.abs() >= 1e15) => format!("{f:e}"),
            Cell::Float(f) => f.to_string(),
            Cell::Str(s) => s.clone(),
            Cell::List(items) => {
                let shown: Vec<String> = items.iter().take(max_items).map(|c| c.to_text(max_items)).collect();
                let more = if items.len() > max_items { format!(", … ({} items)", items.len()) } else { String::new() };
                format!("[{}{more}]", shown.join(", "))
            }
        }
    }
}

fn cell(array: &ArrayRef, row: usize) -> Cell {
    if array.is_null(row) {
        return Cell::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Cell::Int(i128::from(array.as_primitive::<$t>().value(row)))
        };
    }
    use arrow::datatypes::*;
    match array.data_type() {
        DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => Cell::Float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Cell::Str(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Cell::Str(array.as_string::<i64>().value(row).to_string()),
        DataType::List(_) => list(&array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => list(&array.as_list::<i64>().value(row)),
        _ => {
            let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default());
            Cell::Str(formatter.map(|f| f.value(row).to_string()).unwrap_or_default())
        }
    }
}

fn list(items: &ArrayRef) -> Cell {
    Cell::List((0..items.len()).map(|i| cell(items, i)).collect())
}

pub fn run(opts: &Options, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let input = files::read(&opts.input)?;
    let (meta, batch) = tables::read_any(&input)?;
    let rows = opts.limit.unwrap_or(usize::MAX).min(batch.num_rows());
    let write = |e| anyhow::Error::new(e).context("writing rows");
    match opts.format {
        Format::Meta => writeln!(out, "{}", meta_json(&meta, &batch)).map_err(write)?,
        Format::Json => {
            let names = column_names(&batch);
            for row in 0..rows {
                let object: Map<String, Value> =
                    names.iter().zip(batch.columns()).map(|(n, a)| (n.clone(), cell(a, row).to_json())).collect();
                writeln!(out, "{}", Value::Object(object)).map_err(write)?;
            }
        }
        Format::Csv => {
            let names = column_names(&batch);
            writeln!(out, "{}", names.iter().map(|n| csv_field(n)).collect::<Vec<_>>().join(",")).map_err(write)?;
            for row in 0..rows {
                let fields: Vec<String> = batch.columns().iter().map(|a| csv_field(&cell(a, row).to_text(usize::MAX))).collect();
                writeln!(out, "{}", fields.join(",")).map_err(write)?;
            }
        }
        Format::Table => {
            write_header(out, &meta, &batch).map_err(write)?;
            write_aligned(out, &batch, rows).map_err(write)?;
        }
    }
    out.flush().map_err(write).context("flushing output")?;
    Ok(Outcome::Done)
}

fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch.schema().fields().iter().map(|f| f.name().clone()).collect()
}

fn meta_json(meta: &tables::Meta, batch: &RecordBatch) -> Value {
    let columns: Vec<Value> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
        .collect();
    json!({
        "table": meta.table,
        "schema_version": meta.schema_version,
        "valkit_version": meta.valkit_version,
        "provenance": meta.provenance,
        "rows": batch.num_rows(),
        "columns": columns,
    })
}

fn write_header(out: &mut dyn Write, meta: &tables::Meta, batch: &RecordBatch) -> std::io::Result<()> {
    let table = meta.table.as_deref().unwrap_or("(not a valkit table)");
    let version = meta.schema_version.as_deref().unwrap_or("-");
    let valkit = meta.valkit_version.as_deref().unwrap_or("-");
    writeln!(out, "table: {table}  schema version: {version}  written by valkit {valkit}  rows: {}", batch.num_rows())?;
    for (key, value) in &meta.provenance {
        writeln!(out, "  {key}: {value}")?;
    }
    writeln!(out)
}

const MAX_WIDTH: usize = 48;

fn write_aligned(out: &mut dyn Write, batch: &RecordBatch, rows: usize) -> std::io::Result<()> {
    let names = column_names(batch);
    let mut grid: Vec<Vec<String>> = vec![names.clone()];
    for row in 0..rows {
        grid.push(batch.columns().iter().map(|a| truncate(&cell(a, row).to_text(6))).collect());
    }
    let widths: Vec<usize> = (0..names.len()).map(|c| grid.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for line in grid {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    if rows < batch.num_rows() {
        writeln!(out, "… {} more rows", batch.num_rows() - rows)?;
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_WIDTH {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(MAX_WIDTH - 1).collect::<String>())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
