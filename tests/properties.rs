//! No panic on any input (issue 23, item 5): generated and mutated tables, profiles, model
//! configs, safetensors headers, chain data and command lines go to the decoder or validator
//! that meets them in production, which must answer with its value or an error — never a panic.
//! What passes is then shown as a person would see it: no raw control reaches the terminal.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, Float64Array, LargeListArray, ListArray, RecordBatch, StringArray};
use arrow::array::{UInt16Array, UInt32Array, UInt64Array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use proptest::collection::vec;
use proptest::prelude::*;
use valkit::files::{InputFile, Location};
use valkit::stages::inspect;
use valkit::tables::{self, batches, clips, consensus, losses, metagraph, models, receipts, tracker, weights, wins, Table};

use crate::util::*;

/// Strings a miner or a foreign file could hold: controls, bidi overrides, numbers out of range,
/// paths that climb, nothing at all.
const HOSTILE: &[&str] = &[
    "",
    " ",
    "x\u{1b}[2J\u{1b}]8;;https://evil\u{7}click\u{1b}]8;;\u{7}\rfake\nline\u{202e}txt",
    "\u{0}",
    "\u{85}\u{9b}31m",
    "模型-é",
    "../../etc/passwd",
    "99999999999999999999999",
    "-1",
    "NaN",
    "inf",
    "1e309",
    "FINEWEB",
    "failed",
    "set_weights",
];

/// `cases` per property, or `PROPTEST_CASES` when set (a longer hunt: `PROPTEST_CASES=2000`).
/// Nothing is persisted: a failure prints its minimal input, to be kept as a test of its own.
fn config(cases: u32) -> ProptestConfig {
    let cases = valkit::env::var("PROPTEST_CASES").and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![proptest::sample::select(HOSTILE).prop_map(str::to_string), any::<String>(), "[a-z_]{1,12}"]
}

/// One value of a generated table; each column reads it as its own type (`column`).
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Int(u64),
    Float(f64),
    Text(String),
    Flag(bool),
    Many(Vec<u64>),
}

fn cell() -> impl Strategy<Value = Cell> {
    let float = prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0), 0.0..10.0];
    let int = prop_oneof![any::<u64>(), 0..300u64, Just(u64::from(u16::MAX)), Just(u64::MAX)];
    prop_oneof![
        Just(Cell::Null),
        int.prop_map(Cell::Int),
        float.prop_map(Cell::Float),
        text().prop_map(Cell::Text),
        any::<bool>().prop_map(Cell::Flag),
        vec(0..70_000u64, 0..5).prop_map(Cell::Many),
    ]
}

impl Cell {
    fn int(&self) -> Option<u64> {
        match self {
            Cell::Null => None,
            Cell::Int(v) => Some(*v),
            Cell::Float(f) => Some(*f as u64),
            Cell::Text(s) => Some(s.len() as u64),
            Cell::Flag(b) => Some(u64::from(*b)),
            Cell::Many(v) => v.first().copied(),
        }
    }

    fn float(&self) -> Option<f64> {
        match self {
            Cell::Float(f) => Some(*f),
            other => other.int().map(|v| v as f64),
        }
    }

    fn flag(&self) -> Option<bool> {
        self.int().map(|v| v % 2 == 1)
    }

    fn text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Text(s) => Some(s.clone()),
            Cell::Float(f) => Some(f.to_string()),
            other => other.int().map(|v| v.to_string()),
        }
    }

    fn many(&self) -> Option<Vec<Cell>> {
        match self {
            Cell::Null => None,
            Cell::Many(v) => Some(v.iter().map(|&x| Cell::Int(x)).collect()),
            Cell::Float(f) => Some(vec![Cell::Float(*f)]),
            other => Some(vec![other.clone()]),
        }
    }
}

/// A column of `data_type` from `cells`; a null in a non-nullable column becomes the type's zero.
fn column(data_type: &DataType, nullable: bool, cells: &[Cell]) -> ArrayRef {
    fn each<T: Default>(nullable: bool, cells: &[Cell], f: impl Fn(&Cell) -> Option<T>) -> Vec<Option<T>> {
        cells.iter().map(|c| if nullable { f(c) } else { Some(f(c).unwrap_or_default()) }).collect()
    }
    fn lists(nullable: bool, cells: &[Cell]) -> (Vec<usize>, Vec<Cell>, Option<arrow::buffer::NullBuffer>) {
        let lists = each(nullable, cells, Cell::many);
        let lengths = lists.iter().map(|l| l.as_ref().map_or(0, Vec::len)).collect();
        let valid: Vec<bool> = lists.iter().map(Option::is_some).collect();
        let values = lists.into_iter().flatten().flatten().collect();
        (lengths, values, nullable.then(|| valid.into()))
    }
    match data_type {
        DataType::Boolean => Arc::new(BooleanArray::from(each(nullable, cells, Cell::flag))),
        DataType::UInt16 => Arc::new(UInt16Array::from(each(nullable, cells, |c| c.int().map(|v| v as u16)))),
        DataType::UInt32 => Arc::new(UInt32Array::from(each(nullable, cells, |c| c.int().map(|v| v as u32)))),
        DataType::UInt64 => Arc::new(UInt64Array::from(each(nullable, cells, Cell::int))),
        DataType::Float32 => Arc::new(Float32Array::from(each(nullable, cells, |c| c.float().map(|v| v as f32)))),
        DataType::Float64 => Arc::new(Float64Array::from(each(nullable, cells, Cell::float))),
        DataType::Utf8 => Arc::new(StringArray::from(each(nullable, cells, Cell::text))),
        DataType::List(item) => {
            let (lengths, values, nulls) = lists(nullable, cells);
            let values = column(item.data_type(), item.is_nullable(), &values);
            Arc::new(ListArray::new(item.clone(), OffsetBuffer::from_lengths(lengths), values, nulls))
        }
        DataType::LargeList(item) => {
            let (lengths, values, nulls) = lists(nullable, cells);
            let values = column(item.data_type(), item.is_nullable(), &values);
            Arc::new(LargeListArray::new(item.clone(), OffsetBuffer::from_lengths(lengths), values, nulls))
        }
        other => arrow::array::new_null_array(other, cells.len()),
    }
}

/// What a foreign or damaged file may do to a table's schema, column by column.
#[derive(Debug, Clone)]
enum Retype {
    Keep,
    Nullable,
    As(DataType),
    Drop,
    Rename(String),
}

fn retype() -> impl Strategy<Value = Retype> {
    let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
    let large = |t: DataType| DataType::LargeList(Arc::new(Field::new_list_field(t, true)));
    prop_oneof![
        12 => Just(Retype::Keep),
        2 => Just(Retype::Nullable),
        1 => Just(Retype::Drop),
        1 => text().prop_map(Retype::Rename),
        2 => proptest::sample::select(vec![
            DataType::Utf8,
            DataType::UInt16,
            DataType::UInt64,
            DataType::Float32,
            DataType::Float64,
            DataType::Boolean,
            list(DataType::UInt16),
            list(DataType::Utf8),
            large(DataType::UInt32),
            large(DataType::Float64),
        ])
        .prop_map(Retype::As),
    ]
}

/// A table file with `T`'s schema (bent by `retypes`), rows from `cells`, and valkit's labels.
fn generated_file<T: Table>(cells: &[Cell], rows: usize, retypes: &[Retype], labels: &[(String, String)]) -> Vec<u8> {
    let schema = T::schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let mut field = field.as_ref().clone();
        match retypes.get(i).unwrap_or(&Retype::Keep) {
            Retype::Keep => {}
            Retype::Nullable => field = field.with_nullable(true),
            Retype::As(t) => field = field.with_data_type(t.clone()).with_nullable(true),
            Retype::Drop => continue,
            Retype::Rename(name) if fields.iter().all(|f: &Field| f.name() != name) => field = field.with_name(name.clone()),
            Retype::Rename(_) => {}
        }
        let of_column: Vec<Cell> = (0..rows).map(|r| cells[(r * schema.fields().len() + i) % cells.len()].clone()).collect();
        columns.push(column(field.data_type(), field.is_nullable(), &of_column));
        fields.push(field);
    }
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .expect("a batch of the generated columns");
    let kv = labels.iter().map(|(k, v)| parquet::file::metadata::KeyValue::new(k.clone(), v.clone())).collect();
    #[allow(clippy::disallowed_methods)] // a foreign writer's settings, on purpose
    let props = parquet::file::properties::WriterProperties::builder().set_key_value_metadata(Some(kv)).build();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    out
}

fn labels<T: Table>(table: Option<String>, version: Option<String>) -> Vec<(String, String)> {
    vec![
        ("valkit.table".into(), table.unwrap_or_else(|| T::NAME.into())),
        ("valkit.schema_version".into(), version.unwrap_or_else(|| T::SCHEMA_VERSION.to_string())),
        ("valkit.seed".into(), HOSTILE[2].into()),
    ]
}

/// Damage done to a file's bytes: bytes overwritten at fractions of its length, then a cut.
#[derive(Debug, Clone)]
struct Damage {
    writes: Vec<(f64, u8)>,
    cut: Option<f64>,
}

fn damage() -> impl Strategy<Value = Damage> {
    (vec((0.0..1.0f64, any::<u8>()), 1..6), proptest::option::of(0.0..1.0f64)).prop_map(|(writes, cut)| Damage { writes, cut })
}

fn damaged(bytes: &[u8], d: &Damage) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, byte) in &d.writes {
        let i = ((out.len() as f64 * at) as usize).min(out.len() - 1);
        out[i] = byte;
    }
    if let Some(cut) = d.cut {
        out.truncate((out.len() as f64 * cut) as usize);
    }
    out
}

fn input(dir: &TestDir, bytes: &[u8]) -> InputFile {
    let path = dir.path("t.parquet");
    std::fs::write(&path, bytes).unwrap();
    InputFile { location: Location::Path(path), bytes: bytes.to_vec().into(), sha256: String::new() }
}

/// What `inspect` shows of a file in each view: an answer or an error, and nothing raw in the
/// human views (CSV may keep CR and LF inside a quoted field; JSON escapes by its own rules).
fn shown_safely(dir: &TestDir) {
    let views = [
        (inspect::Format::Table, &[][..]),
        (inspect::Format::Describe, &[]),
        (inspect::Format::Meta, &[]),
        (inspect::Format::Csv, &['\r', '\n'][..]),
        (inspect::Format::Json, &[]),
    ];
    for (format, kept) in views {
        let options =
            inspect::Options { input: Location::Path(dir.path("t.parquet")), format, columns: inspect::Columns::All, limit: None };
        let mut out = Vec::new();
        let Ok(_) = inspect::run(&options, &mut out) else { continue };
        let out = String::from_utf8(out).expect("inspect writes UTF-8");
        let raw = out.chars().find(|&c| valkit::format::printable(&c.to_string(), &['\n']) != c.to_string() && !kept.contains(&c));
        assert!(raw.is_none(), "{format:?} showed {raw:?} raw: {out:?}");
    }
}

fn decodes_or_refuses<T: Table>(
    dir: &TestDir,
    cells: &[Cell],
    rows: usize,
    retypes: &[Retype],
    table: Option<String>,
    version: Option<String>,
    d: &Damage,
) {
    let file = generated_file::<T>(cells, rows, retypes, &labels::<T>(table, version));
    let _ = tables::decode_file::<T>(&input(dir, &file));
    shown_safely(dir);
    let _ = tables::decode_file::<T>(&input(dir, &damaged(&file, d)));
    shown_safely(dir);
}

fn label() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.2, prop_oneof![text(), (0..5u32).prop_map(|v| v.to_string())])
}

proptest! {
    #![proptest_config(config(32))]

    /// Every table's decoder, and inspect's views, on generated files (any value in any column,
    /// columns retyped, renamed, dropped or made nullable, wrong labels) and on their bytes damaged.
    #[test]
    fn table_decoders_answer_every_generated_or_damaged_file(
        cells in vec(cell(), 1..40),
        rows in 0..6usize,
        retypes in vec(retype(), 0..14),
        table in label(),
        version in label(),
        d in damage(),
    ) {
        let dir = TestDir::new();
        decodes_or_refuses::<metagraph::Metagraph>(&dir, &cells, rows, &retypes, table.clone(), version.clone(), &d);
        decodes_or_refuses::<models::Models>(&dir, &cells, rows, &retypes, table.clone(), version.clone(), &d);
        decodes_or_refuses::<batches::Batches>(&dir, &cells, rows, &retypes, table.clone(), version.clone(), &d);
        decodes_or_refuses::<losses::Losses>(&dir, &cells, rows, &retypes, table.clone(), version.clone(), &d);
        decodes_or_refuses::<wins::Wins>(&dir, &cells, rows, &retypes, table.clone(), version.clone(), &d);
        decodes_or_refuses::<weights::Weights>(&dir, &cells, rows, &retypes, table.clone(), version.clone(), &d);
        decodes_or_refuses::<tracker::Tracker>(&dir, &cells, rows, &retypes, table.clone(), version.clone(), &d);
        decodes_or_refuses::<receipts::Receipts>(&dir, &cells, rows, &retypes, table.clone(), version.clone(), &d);
        decodes_or_refuses::<consensus::Consensus>(&dir, &cells, rows, &retypes, table.clone(), version.clone(), &d);
        decodes_or_refuses::<clips::Clips>(&dir, &cells, rows, &retypes, table, version, &d);
    }
}

/// The demo's own tables, damaged byte by byte: each decoder refuses or reads them.
#[test]
fn damaged_demo_tables_are_refused_or_read_never_panicked_on() {
    fn each<T: Table>(dir: &TestDir, name: &str) {
        let bytes = std::fs::read(demo(name)).unwrap();
        proptest!(config(48), |(d in damage())| {
            let _ = tables::decode_file::<T>(&input(dir, &damaged(&bytes, &d)));
            shown_safely(dir);
        });
    }
    let dir = TestDir::new();
    each::<metagraph::Metagraph>(&dir, "metagraph.parquet");
    each::<models::Models>(&dir, "models.parquet");
    each::<losses::Losses>(&dir, "losses.parquet");
    each::<tracker::Tracker>(&dir, "tracker.parquet");
}

/// Every string column of every table, and the file's metadata, holding a miner's hostile text:
/// shown escaped in inspect's table view.
#[test]
fn every_string_column_of_every_table_is_shown_escaped() {
    fn each<T: Table>(dir: &TestDir) {
        let strings = T::schema().fields().iter().filter(|f| f.data_type() == &DataType::Utf8).count();
        let cells = [Cell::Text(HOSTILE[2].into())];
        let file = generated_file::<T>(&cells, 1, &[], &labels::<T>(None, None));
        std::fs::write(dir.path("t.parquet"), file).unwrap();
        shown_safely(dir);
        for format in [inspect::Format::Table, inspect::Format::Meta] {
            let options =
                inspect::Options { input: Location::Path(dir.path("t.parquet")), format, columns: inspect::Columns::All, limit: None };
            let mut out = Vec::new();
            inspect::run(&options, &mut out).unwrap();
            let out = String::from_utf8(out).unwrap();
            // The table view escapes as Rust does, the metadata's JSON as JSON does.
            let (escape, expected) = if format == inspect::Format::Meta { ("\\u001b[2J", 1) } else { ("\\x1b[2J", strings) };
            let escaped = out.matches(escape).count();
            assert!(escaped >= expected, "{}: {escaped} of {expected} strings shown escaped in {format:?}: {out}", T::NAME);
        }
    }
    let dir = TestDir::new();
    each::<metagraph::Metagraph>(&dir);
    each::<models::Models>(&dir);
    each::<batches::Batches>(&dir);
    each::<losses::Losses>(&dir);
    each::<wins::Wins>(&dir);
    each::<weights::Weights>(&dir);
    each::<tracker::Tracker>(&dir);
    each::<receipts::Receipts>(&dir);
    each::<consensus::Consensus>(&dir);
}

/// A change to one leaf of a TOML or JSON document: another value of any type, or the key gone.
#[derive(Debug, Clone)]
enum Edit {
    Int(i64),
    Float(f64),
    Text(String),
    Flag(bool),
    Empty,
    Remove,
}

fn edit() -> impl Strategy<Value = Edit> {
    let ints = prop_oneof![Just(0i64), Just(-1), Just(1), Just(i64::MAX), Just(i64::MIN), Just(1 << 40), any::<i64>()];
    let floats =
        prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0), Just(1e308), Just(5e-324), any::<f64>()];
    prop_oneof![
        3 => ints.prop_map(Edit::Int),
        2 => floats.prop_map(Edit::Float),
        2 => text().prop_map(Edit::Text),
        1 => any::<bool>().prop_map(Edit::Flag),
        1 => Just(Edit::Empty),
        2 => Just(Edit::Remove),
    ]
}

/// Edits as (where among the document's leaves, what).
fn edits() -> impl Strategy<Value = Vec<(f64, Edit)>> {
    vec((0.0..1.0f64, edit()), 1..5)
}

/// A TOML or JSON document as a tree whose leaves `edited` can change: a table or array that is
/// not empty has children, anything else is a leaf.
trait Document: Sized {
    fn children(&self) -> Vec<&Self>;
    fn children_mut(&mut self) -> Vec<&mut Self>;
    /// Removes child `i` (a key of a table, an element of an array).
    fn remove(&mut self, i: usize);
    fn of(edit: &Edit) -> Self;

    fn leaves(&self) -> usize {
        let children = self.children();
        if children.is_empty() {
            1
        } else {
            children.into_iter().map(Document::leaves).sum()
        }
    }

    /// Applies `edit` to the `k`-th leaf below `self`; true once applied.
    fn apply(&mut self, k: &mut usize, edit: &Edit) -> bool {
        let leaves: Vec<bool> = self.children().iter().map(|c| c.children().is_empty()).collect();
        for (i, leaf) in leaves.into_iter().enumerate() {
            if !leaf {
                if self.children_mut().swap_remove(i).apply(k, edit) {
                    return true;
                }
            } else if *k == 0 {
                match edit {
                    Edit::Remove => self.remove(i),
                    e => *self.children_mut().swap_remove(i) = Self::of(e),
                }
                return true;
            } else {
                *k -= 1;
            }
        }
        false
    }
}

impl Document for toml::Value {
    fn children(&self) -> Vec<&Self> {
        match self {
            toml::Value::Table(t) => t.values().collect(),
            toml::Value::Array(a) => a.iter().collect(),
            _ => Vec::new(),
        }
    }
    fn children_mut(&mut self) -> Vec<&mut Self> {
        match self {
            toml::Value::Table(t) => t.iter_mut().map(|(_, v)| v).collect(),
            toml::Value::Array(a) => a.iter_mut().collect(),
            _ => Vec::new(),
        }
    }
    fn remove(&mut self, i: usize) {
        match self {
            toml::Value::Table(t) => {
                let key = t.keys().nth(i).cloned().expect("a child's key");
                t.remove(&key);
            }
            toml::Value::Array(a) => drop(a.remove(i)),
            _ => {}
        }
    }
    fn of(edit: &Edit) -> Self {
        match edit {
            Edit::Int(i) => toml::Value::Integer(*i),
            Edit::Float(f) => toml::Value::Float(*f),
            Edit::Text(s) => toml::Value::String(s.clone()),
            Edit::Flag(b) => toml::Value::Boolean(*b),
            Edit::Empty | Edit::Remove => toml::Value::Array(Vec::new()),
        }
    }
}

impl Document for serde_json::Value {
    fn children(&self) -> Vec<&Self> {
        match self {
            serde_json::Value::Object(o) => o.values().collect(),
            serde_json::Value::Array(a) => a.iter().collect(),
            _ => Vec::new(),
        }
    }
    fn children_mut(&mut self) -> Vec<&mut Self> {
        match self {
            serde_json::Value::Object(o) => o.values_mut().collect(),
            serde_json::Value::Array(a) => a.iter_mut().collect(),
            _ => Vec::new(),
        }
    }
    fn remove(&mut self, i: usize) {
        match self {
            serde_json::Value::Object(o) => {
                let key = o.keys().nth(i).cloned().expect("a child's key");
                o.remove(&key);
            }
            serde_json::Value::Array(a) => drop(a.remove(i)),
            _ => {}
        }
    }
    fn of(edit: &Edit) -> Self {
        match edit {
            Edit::Int(i) => serde_json::Value::from(*i),
            Edit::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
            Edit::Text(s) => serde_json::Value::String(s.clone()),
            Edit::Flag(b) => serde_json::Value::Bool(*b),
            Edit::Empty | Edit::Remove => serde_json::Value::Array(Vec::new()),
        }
    }
}

/// `doc` with each edit applied to the leaf at its fraction of the leaves.
fn edited<D: Document>(mut doc: D, edits: &[(f64, Edit)]) -> D {
    for (at, e) in edits {
        let mut k = (doc.leaves() as f64 * at) as usize;
        doc.apply(&mut k, e);
    }
    doc
}

fn edited_toml(text: &str, edits: &[(f64, Edit)]) -> String {
    let doc: toml::Value = toml::from_str(text).expect("a valid document to start from");
    toml::to_string(&edited(doc, edits)).expect("TOML of a TOML value")
}

fn edited_json(text: &str, edits: &[(f64, Edit)]) -> String {
    let doc: serde_json::Value = serde_json::from_str(text).expect("a valid document to start from");
    edited(doc, edits).to_string()
}

/// The generator changes what it says it changes: the k-th leaf, depth first.
#[test]
fn edits_land_on_the_leaf_they_name() {
    let doc = r#"{"a":1,"b":[2,{"c":3}]}"#;
    assert_eq!(edited_json(doc, &[(0.0, Edit::Remove)]), r#"{"b":[2,{"c":3}]}"#);
    assert_eq!(edited_json(doc, &[(0.9, Edit::Flag(true))]), r#"{"a":1,"b":[2,{"c":true}]}"#);
    assert_eq!(edited_toml("a = 1\n[t]\nb = 2\n", &[(0.6, Edit::Text("x".into()))]), "a = 1\n\n[t]\nb = \"x\"\n");
}

/// The model configs of every architecture the tests evaluate.
fn model_configs() -> Vec<String> {
    let mut dirs: Vec<_> = std::fs::read_dir(repo_path("testdata/models")).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    dirs.into_iter().filter_map(|d| std::fs::read_to_string(d.join("config.json")).ok()).collect()
}

proptest! {
    #![proptest_config(config(64))]

    /// A profile with any field changed or removed is accepted or refused by the validator that
    /// `profile check` and every stage share; an accepted one answers the stages' questions.
    #[test]
    fn profiles_with_any_field_changed_are_accepted_or_refused(which in 0..2usize, edits in edits(), block in any::<u64>()) {
        let name = ["sn9", "sn37"][which];
        let text = edited_toml(valkit::competition::Profile::builtin_text(name).unwrap(), &edits);
        if let Ok(profile) = valkit::competition::Profile::parse(&text, "generated.toml") {
            let _ = (profile.sync_block(block), profile.next_sync_block(block));
            if let Some(entry) = profile.schedule_at(block) {
                let _ = format!("{entry:?}");
            }
            for id in 0..8 {
                let _ = profile.competition_at(id, block);
            }
        }
    }

    /// A miner's config.json with any field changed or removed parses within the limits or is
    /// refused; so is any text at all.
    #[test]
    fn model_configs_with_any_field_changed_are_parsed_or_refused(which in any::<prop::sample::Index>(), edits in edits(), noise in text()) {
        let configs = model_configs();
        let limits = valkit::model::Limits { max_params: 1 << 34, min_params: 0, memory_bytes: 1 << 33, max_sequence_length: 8192 };
        let text = edited_json(which.get::<String>(&configs), &edits);
        let _ = valkit::model::Config::parse(&text, &limits);
        let _ = valkit::model::Config::parse(&noise, &limits);
        let _ = valkit::model::shard_names(&text);
    }

    /// A safetensors file's first bytes and header as a miner may upload them: any length, any
    /// JSON, any size claimed.
    #[test]
    fn safetensors_headers_are_read_or_refused(prefix in vec(any::<u8>(), 0..16), edits in edits(), file_size in prop_oneof![any::<u64>(), 0..400u64]) {
        let _ = valkit::model::header_length("model.safetensors", &prefix, file_size);
        let header = r#"{"__metadata__":{"format":"pt"},"model.embed_tokens.weight":{"dtype":"F32","shape":[4,2],"data_offsets":[0,32]},"lm_head.weight":{"dtype":"BF16","shape":[2,4],"data_offsets":[32,48]}}"#;
        let header = edited_json(header, &edits);
        let _ = valkit::model::parameters_of_header("model.safetensors", header.as_bytes(), file_size);
        let _ = valkit::model::parameters_of_header("model.safetensors", &prefix, file_size);
    }

    /// What the chain hands over: commitments (a miner's text), raw registration and weight
    /// bytes, block hashes and decimal seeds.
    #[test]
    fn chain_data_is_decoded_or_refused(commitment in text(), fields in vec(text(), 0..8), bytes in vec(any::<u8>(), 0..96), hash in text()) {
        let _ = valkit::chain::commitment::ModelId::parse(&commitment);
        let _ = valkit::chain::commitment::ModelId::parse(&fields.join(":"));
        if let Ok(registration) = valkit::chain::registration::decode(&bytes) {
            let _ = valkit::chain::registration::commitment_text(&registration);
        }
        let _ = valkit::chain::registration::weight_pairs(&bytes);
        let _ = valkit::sampling::seed_from_block_hash(&hash);
        let _ = valkit::sampling::Seed::from_decimal(&hash);
        let _ = valkit::hub::names::repo_id(&commitment);
        let _ = valkit::hub::names::file_path(&commitment);
        let _ = valkit::hub::names::blob(&hash);
    }

    /// Dataset bodies as a server may send them: any bytes, any declared encoding.
    #[test]
    fn dataset_bodies_are_decoded_or_refused(bytes in vec(any::<u8>(), 0..256), label in text()) {
        let _ = valkit::datasets::encoding::decode(&bytes, &label);
        let _ = valkit::datasets::stack_v2::decode_blob(&bytes, &label);
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut encoder = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            encoder.write_all(&bytes).unwrap();
        }
        let _ = valkit::datasets::stack_v2::decode_blob(&gz, &label);
    }
}

/// Values a user or a script may put after any flag: numbers out of range, endpoints that are not
/// base URLs, paths to tables of another kind, nothing.
fn argument_value() -> impl Strategy<Value = String> {
    let odd = proptest::sample::select(vec![
        "0",
        "-1",
        "1",
        "65536",
        "18446744073709551616",
        "nan",
        "inf",
        "-inf",
        "1e309",
        "0.5",
        "-0.0",
        "",
        "-",
        "mailto:x",
        "http://[::1",
        "ws://",
        "s3://",
        "s3://bucket",
        "file:///etc/passwd",
        "http://127.0.0.1:1",
        "ws://127.0.0.1:1",
        "a,b,,c",
        "all",
        "sn9",
        "sn37",
        "4",
        "2",
    ]);
    let paths =
        proptest::sample::select(vec!["metagraph.parquet", "losses.parquet", "models.parquet", "tracker.parquet", "competitions.toml"]);
    prop_oneof![
        4 => odd.prop_map(str::to_string),
        2 => paths.prop_map(demo),
        1 => text(),
    ]
}

/// A plausible value for a required argument, so that a drawn line gets past clap to the checks
/// behind it: the demo's tables, the SN9 profile, a fresh output.
fn plausible(name: &str) -> Option<String> {
    Some(match name {
        "metagraph" => demo("metagraph.parquet"),
        "losses" | "file" | "FILE" => demo("losses.parquet"),
        "models" => demo("models.parquet"),
        "tracker" => demo("tracker.parquet"),
        "profile" => "sn9".into(),
        "competition-id" | "competition_id" => "4".into(),
        "netuid" => "9".into(),
        "out" | "out-dir" | "out_dir" => "out".into(),
        _ => return None,
    })
}

/// One argument as clap describes it: `--long` or a positional (`None`), whether it takes a
/// value, whether it is required.
type ArgShape = (Option<String>, String, bool, bool);

/// A command line for one subcommand, from clap's description of it: its required arguments
/// (mostly plausible values, sometimes drawn ones), then some of its flags with drawn values.
/// Endpoints the subcommand has are pointed at a dead local port first, so nothing leaves this
/// machine whatever the draw.
fn command_line() -> impl Strategy<Value = Vec<String>> {
    use clap::CommandFactory;
    /// Where each endpoint flag points: a port nothing listens on.
    const DEAD: [(&str, &str); 2] = [("network", "ws://127.0.0.1:1"), ("datasets-endpoint", "http://127.0.0.1:1")];
    type Leaf = (Vec<String>, Vec<ArgShape>, Vec<String>);
    fn leaves(command: &clap::Command, path: &[String], out: &mut Vec<Leaf>) {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let path: Vec<String> = path.iter().cloned().chain([sub.get_name().to_string()]).collect();
            if sub.has_subcommands() {
                leaves(sub, &path, out);
            } else {
                let endpoint = |a: &clap::Arg| DEAD.iter().any(|(flag, _)| a.get_long() == Some(flag));
                let mut dead = Vec::new();
                for (flag, url) in DEAD.iter().filter(|(flag, _)| sub.get_arguments().any(|a| a.get_long() == Some(flag))) {
                    dead.extend([format!("--{flag}"), url.to_string()]);
                }
                let args = sub
                    .get_arguments()
                    .filter(|a| !endpoint(a) && !["help", "version"].contains(&a.get_id().as_str()))
                    .map(|a| {
                        let name = a.get_long().map_or_else(|| a.get_id().to_string(), str::to_string);
                        (a.get_long().map(str::to_string), name, a.get_action().takes_values(), a.is_required_set())
                    })
                    .collect();
                out.push((path, args, dead));
            }
        }
    }
    let mut subcommands = Vec::new();
    leaves(&valkit::cli::Cli::command(), &[], &mut subcommands);
    let picks = vec((any::<prop::sample::Index>(), argument_value()), 0..5);
    let required = vec((any::<bool>(), argument_value()), 8);
    (proptest::sample::select(subcommands), required, picks).prop_map(|((path, args, dead), required, picks)| {
        let mut line = path.clone();
        line.extend(dead);
        let push = |line: &mut Vec<String>, (long, _, takes_value, _): &ArgShape, value: String| {
            // An argument cannot hold a NUL byte (execve's strings end at one).
            let value = value.replace('\0', "");
            if let Some(long) = long {
                line.push(format!("--{long}"));
            }
            if *takes_value || long.is_none() {
                line.push(value);
            }
        };
        for (arg, (keep, drawn)) in args.iter().filter(|a| a.3).zip(required.into_iter().cycle()) {
            let value = plausible(&arg.1).filter(|_| keep).unwrap_or(drawn);
            push(&mut line, arg, value);
        }
        for (which, value) in picks.into_iter().filter(|_| !args.is_empty()) {
            push(&mut line, which.get(&args), value);
        }
        line
    })
}

/// The flags clap knows, as clap's own debug checks want them.
#[test]
fn the_command_line_definition_is_consistent() {
    use clap::CommandFactory;
    valkit::cli::Cli::command().debug_assert();
}

proptest! {
    #![proptest_config(config(64))]

    /// The binary on a drawn command line: it finishes (0, 1 or 3), refuses (2) or finds a
    /// service down (4) in one error line — never a panic (101), a signal or a hang.
    #[test]
    fn any_command_line_ends_in_an_exit_code_of_spec_section_6(line in command_line()) {
        let dir = TestDir::new();
        let mut cmd = valkit();
        cmd.args(&line).current_dir(dir.path("")).env("HOME", dir.path("")).env("HF_HOME", dir.path("hf"));
        cmd.env("HF_ENDPOINT", "http://127.0.0.1:1").env("AWS_ENDPOINT_URL", "http://127.0.0.1:1");
        let (stdout, stderr) = (std::fs::File::create(dir.path(".stdout")).unwrap(), std::fs::File::create(dir.path(".stderr")).unwrap());
        cmd.stdin(std::process::Stdio::null()).stdout(stdout).stderr(stderr);
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{line:?}: still running after 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let stderr = std::fs::read_to_string(dir.path(".stderr")).unwrap_or_default();
        prop_assert!(matches!(status.code(), Some(0..=4)), "{line:?}: {status:?}\n{stderr}");
        prop_assert!(!stderr.contains("panicked"), "{line:?}: {stderr}");
        prop_assert!(stderr.lines().filter(|l| l.starts_with("error")).count() <= 1, "{line:?}: {stderr}");
    }
}
