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
use crate::format::{json_line, printable, shortest_f32, shortest_f64, significant};
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
    /// The table's columns and what each means.
    Describe,
}

/// Which columns to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Columns {
    /// The table view: the table's default set (fits 120 columns); JSON and CSV: all.
    Default,
    All,
    Named(Vec<String>),
}

pub struct Options {
    pub input: Location,
    pub format: Format,
    pub columns: Columns,
    pub limit: Option<usize>,
}

/// A value of one cell, independent of the Arrow type it came from.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    /// Kept apart from `Float` so that it prints as the f32 it is, not widened to f64 digits.
    Float32(f32),
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
            Cell::Float32(f) if f.is_finite() => serde_json::from_str(&shortest_f32(*f)).unwrap_or(Value::Null),
            Cell::Float32(f) => json!(f.to_string()),
            Cell::Str(s) => json!(s),
            Cell::List(items) => Value::Array(items.iter().map(Cell::to_json).collect()),
        }
    }

    /// Text for CSV (`digits` None: every digit) or for people (`digits` significant digits).
    fn to_text(&self, max_items: usize, digits: Option<usize>) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => match digits {
                Some(d) => significant(*f, d),
                None => shortest_f64(*f),
            },
            Cell::Float32(f) => shortest_f32(*f),
            Cell::Str(s) => s.clone(),
            Cell::List(items) => {
                let shown: Vec<String> = items.iter().take(max_items).map(|c| c.to_text(max_items, digits)).collect();
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
        DataType::Float32 => Cell::Float32(array.as_primitive::<Float32Type>().value(row)),
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
    let legend = meta.table.as_deref().and_then(tables::legend);
    let columns = select_columns(&batch, &opts.columns, opts.format, legend).with_context(|| format!("{}", opts.input))?;
    let rows = opts.limit.unwrap_or(usize::MAX).min(batch.num_rows());
    let write = |e| anyhow::Error::new(e).context("writing rows");
    let names: Vec<&str> = columns.iter().map(|&c| batch.schema_ref().field(c).name().as_str()).collect();
    match opts.format {
        Format::Meta => writeln!(out, "{}", json_line(&meta_json(&meta, &batch))?).map_err(write)?,
        Format::Describe => write_legend(out, &meta, &batch, legend).map_err(write)?,
        Format::Json => {
            for row in 0..rows {
                let object: Map<String, Value> =
                    columns.iter().zip(&names).map(|(&c, n)| (n.to_string(), cell(batch.column(c), row).to_json())).collect();
                writeln!(out, "{}", json_line(&Value::Object(object))?).map_err(write)?;
            }
        }
        Format::Csv => {
            // A newline inside a quoted field is legal CSV and rewrites nothing; every other
            // control (a CR overwrites the line a terminal shows) is shown escaped.
            let field = |s: &str| csv_field(&printable(s, &['\n']));
            writeln!(out, "{}", names.iter().map(|n| field(n)).collect::<Vec<_>>().join(",")).map_err(write)?;
            for row in 0..rows {
                let fields: Vec<String> = columns.iter().map(|&c| field(&cell(batch.column(c), row).to_text(usize::MAX, None))).collect();
                writeln!(out, "{}", fields.join(",")).map_err(write)?;
            }
        }
        Format::Table => {
            write_header(out, &meta, &batch).map_err(write)?;
            write_aligned(out, &batch, &columns, rows).map_err(write)?;
            let hidden = batch.num_columns() - columns.len();
            if hidden > 0 {
                writeln!(
                    out,
                    "({hidden} more column{}: --columns all; what each column means: --describe)",
                    if hidden == 1 { "" } else { "s" }
                )
                .map_err(write)?;
            }
        }
    }
    out.flush().map_err(write).context("flushing output")?;
    Ok(Outcome::Done)
}

/// Indices of the columns to print, in the table's order for the default set, in the asked
/// order for named ones.
fn select_columns(batch: &RecordBatch, columns: &Columns, format: Format, legend: Option<&[tables::Column]>) -> anyhow::Result<Vec<usize>> {
    let all: Vec<usize> = (0..batch.num_columns()).collect();
    let schema = batch.schema();
    Ok(match (columns, format, legend) {
        (Columns::Default, Format::Table, Some(legend)) => {
            all.into_iter().filter(|&c| legend.iter().any(|l| l.shown && l.name == schema.field(c).name())).collect()
        }
        (Columns::Named(names), _, _) => names
            .iter()
            .map(|name| {
                schema.index_of(name).map_err(|_| {
                    let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    anyhow::anyhow!("no column {name:?}; the columns are {}", known.join(", "))
                })
            })
            .collect::<anyhow::Result<_>>()?,
        _ => all,
    })
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
    // The metadata is the file's say, not valkit's: shown escaped like every cell.
    let shown = |s: Option<&str>, absent| printable(s.unwrap_or(absent), &[]).into_owned();
    let table = shown(meta.table.as_deref(), "(not a valkit table)");
    let version = shown(meta.schema_version.as_deref(), "-");
    let valkit = shown(meta.valkit_version.as_deref(), "-");
    writeln!(out, "table: {table}  schema version: {version}  written by valkit {valkit}  rows: {}", batch.num_rows())?;
    for (key, value) in &meta.provenance {
        writeln!(out, "  {} = {}", printable(key, &[]), printable(&toml_value(value), &[]))?;
    }
    writeln!(out)
}

/// A provenance value as the profile TOML would write it: numbers, booleans and inline tables
/// as they are, anything else quoted.
fn toml_value(value: &str) -> String {
    match format!("v = {value}").parse::<toml::Table>() {
        Ok(_) => value.to_string(),
        Err(_) => toml::Value::String(value.to_string()).to_string(),
    }
}

/// `--describe`: each column with its type and meaning; `*` marks the default view's columns.
fn write_legend(out: &mut dyn Write, meta: &tables::Meta, batch: &RecordBatch, legend: Option<&[tables::Column]>) -> std::io::Result<()> {
    let table = printable(meta.table.as_deref().unwrap_or("(not a valkit table)"), &[]).into_owned();
    writeln!(out, "table: {table}  ({} columns; * = shown by default, the rest with --columns)", batch.num_columns())?;
    let schema = batch.schema();
    let width = schema.fields().iter().map(|f| f.name().len()).max().unwrap_or(0);
    for field in schema.fields() {
        let entry = legend.and_then(|l| l.iter().find(|c| c.name == field.name()));
        let mark = if entry.is_some_and(|c| c.shown) { "*" } else { " " };
        let about = entry.map_or("", |c| c.about);
        writeln!(out, "{mark} {:<width$}  {:<10}  {about}", printable(field.name(), &[]), short_type(field.data_type()))?;
    }
    Ok(())
}

fn short_type(t: &arrow::datatypes::DataType) -> String {
    use arrow::datatypes::DataType;
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", short_type(f.data_type())),
        other => other.to_string().to_lowercase(),
    }
}

const MAX_WIDTH: usize = 48;
/// The table view's line width, and the narrowest a column is squeezed to reach it.
const LINE_WIDTH: usize = 120;
const MIN_WIDTH: usize = 12;

/// Significant digits of f64 values in the table view (losses differ from the 5th digit on;
/// JSON and CSV keep every digit).
const DIGITS: usize = 7;

fn write_aligned(out: &mut dyn Write, batch: &RecordBatch, columns: &[usize], rows: usize) -> std::io::Result<()> {
    let names: Vec<String> = columns.iter().map(|&c| printable(batch.schema_ref().field(c).name(), &[]).into_owned()).collect();
    let mut grid: Vec<Vec<String>> = vec![names.clone()];
    for row in 0..rows {
        let text = |c: usize| printable(&cell(batch.column(c), row).to_text(6, Some(DIGITS)), &[]).into_owned();
        grid.push(columns.iter().map(|&c| truncate(&text(c), MAX_WIDTH)).collect());
    }
    let mut widths: Vec<usize> = (0..names.len()).map(|c| grid.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    // Fit the terminal width the README promises by narrowing the widest columns, never below
    // their header.
    while widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1) > LINE_WIDTH {
        let (widest, width) = widths.iter().copied().enumerate().max_by_key(|&(i, w)| (w, usize::MAX - i)).expect("columns");
        if width <= MIN_WIDTH.max(names[widest].chars().count()) {
            break;
        }
        widths[widest] = width - 1;
    }
    for row in &mut grid {
        for (value, &w) in row.iter_mut().zip(&widths) {
            *value = truncate(value, w);
        }
    }
    for line in grid {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    if rows < batch.num_rows() {
        writeln!(out, "… {} more rows", batch.num_rows() - rows)?;
    }
    Ok(())
}

/// `s` cut to `width` characters, the last one an ellipsis when anything was cut.
fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(width - 1).collect::<String>())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
