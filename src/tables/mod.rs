//! The Parquet tables that stages exchange (SPEC §3): one module per table owns its schema, row
//! type and sort key; this module owns what they share — the pinned writer settings, the
//! key-value metadata (`valkit.table`, `valkit.schema_version`, `valkit.version`, provenance) and
//! the checks a reader makes before trusting a file.
//!
//! Files written by other tools (pyarrow, polars) are valid inputs when their metadata carries
//! `valkit.table` and `valkit.schema_version` and they hold the required columns: integer widths,
//! string flavours and list child names are converted on read; extra columns are ignored.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

use crate::files::{InputFile, Location};

/// A status column's enum with its one `as_str`/`FromStr` pair, so statuses are never compared
/// as strings outside the table module.
macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("unknown status {other:?} (expected {})", [$($text),+].join(", "))),
                }
            }
        }
    };
}

pub mod batches;
pub mod clips;
mod columns;
pub mod consensus;
pub mod losses;
pub mod metagraph;
pub mod models;
pub mod receipts;
pub mod tracker;
pub mod weights;
pub mod wins;

pub use columns::{list_of, Columns};

pub const KEY_TABLE: &str = "valkit.table";
pub const KEY_SCHEMA_VERSION: &str = "valkit.schema_version";
pub const KEY_VERSION: &str = "valkit.version";
/// Provenance keys are stored under this prefix, e.g. `valkit.block`.
pub const PROVENANCE_PREFIX: &str = "valkit.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{location}: not a readable Parquet file")]
    Parquet {
        location: Location,
        #[source]
        source: ParquetError,
    },
    #[error("{location}: not a valkit table (no `valkit.table` metadata), expected a {expected} table")]
    Unlabelled { location: Location, expected: &'static str },
    #[error("{location}: is a {found} table, expected a {expected} table")]
    WrongTable { location: Location, found: String, expected: &'static str },
    #[error("{location}: {table} table has schema version {found}, this valkit reads version {supported} (upgrade valkit to read it)")]
    SchemaVersion { location: Location, table: &'static str, found: String, supported: u32 },
    #[error("{location}: missing column `{column}` of the {table} table")]
    MissingColumn { location: Location, table: &'static str, column: String },
    #[error("{location}: column `{column}` has type {found}, expected {expected}")]
    ColumnType { location: Location, column: String, found: String, expected: &'static str },
    #[error("{location}: column `{column}`, row {row}: {problem}")]
    Value { location: Location, column: String, row: usize, problem: String },
    #[error("encoding the {table} table")]
    Encode {
        table: &'static str,
        #[source]
        source: ParquetError,
    },
}

/// One Parquet table of SPEC §3.
/// One column's entry in a table's legend (`inspect --describe`).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    /// Part of `inspect`'s default view, which fits 120 columns; the rest need `--columns`.
    pub shown: bool,
    pub about: &'static str,
}

/// The legend of the valkit table called `name`.
pub fn legend(name: &str) -> Option<&'static [Column]> {
    Some(match name {
        metagraph::Metagraph::NAME => metagraph::Metagraph::LEGEND,
        models::Models::NAME => models::Models::LEGEND,
        batches::Batches::NAME => batches::Batches::LEGEND,
        losses::Losses::NAME => losses::Losses::LEGEND,
        wins::Wins::NAME => wins::Wins::LEGEND,
        weights::Weights::NAME => weights::Weights::LEGEND,
        tracker::Tracker::NAME => tracker::Tracker::LEGEND,
        receipts::Receipts::NAME => receipts::Receipts::LEGEND,
        consensus::Consensus::NAME => consensus::Consensus::LEGEND,
        clips::Clips::NAME => clips::Clips::LEGEND,
        _ => return None,
    })
}

pub trait Table {
    /// The `valkit.table` value.
    const NAME: &'static str;
    /// Bumped whenever a column is added, changes meaning or is removed; readers refuse versions
    /// outside `OLDEST_READABLE..=SCHEMA_VERSION`.
    const SCHEMA_VERSION: u32;
    /// The oldest version `decode` still reads (its missing columns decode as absent).
    const OLDEST_READABLE: u32 = Self::SCHEMA_VERSION;
    /// What each column means, in `schema()` order, and whether `inspect` shows it by default.
    const LEGEND: &'static [Column];
    type Row;
    fn schema() -> SchemaRef;
    /// Columns in `schema()` order. Rows are already sorted.
    fn encode(rows: &[Self::Row]) -> Vec<ArrayRef>;
    fn decode(columns: &Columns) -> Result<Vec<Self::Row>, Error>;
    /// Puts rows in the table's documented order, so that equal rows give equal files.
    fn sort(rows: &mut [Self::Row]);
}

/// Key-value metadata of a table file, less the `valkit.` prefix on provenance keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    pub table: Option<String>,
    pub schema_version: Option<String>,
    pub valkit_version: Option<String>,
    pub provenance: BTreeMap<String, String>,
    /// Metadata outside the `valkit.` namespace (e.g. pandas' own), kept for `inspect`.
    pub other: BTreeMap<String, String>,
}

/// A decoded table file.
#[derive(Debug, Clone)]
pub struct TableFile<R> {
    pub rows: Vec<R>,
    pub meta: Meta,
    pub location: Location,
    pub sha256: String,
}

/// The writer settings every table uses. Pinned so that the same rows give the same bytes on any
/// machine: `created_by` carries no library version (that goes in `valkit.version`).
fn writer_properties(key_value: Vec<KeyValue>) -> WriterProperties {
    #[allow(clippy::disallowed_methods)]
    WriterProperties::builder()
        .set_created_by("valkit".to_string())
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("3 is a valid zstd level")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(None)
        .set_data_page_size_limit(1024 * 1024)
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_key_value_metadata(Some(key_value))
        .build()
}

const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Encodes sorted `rows` as a Parquet file with the table's metadata and `provenance`.
pub fn encode_file<T: Table>(mut rows: Vec<T::Row>, provenance: &BTreeMap<String, String>) -> Result<Vec<u8>, Error> {
    let enc = |source| Error::Encode { table: T::NAME, source };
    T::sort(&mut rows);
    let schema = T::schema();
    let batch = RecordBatch::try_new(schema.clone(), T::encode(&rows)).map_err(|e| enc(ParquetError::ArrowError(e.to_string())))?;
    let mut key_value: BTreeMap<String, String> = provenance.iter().map(|(k, v)| (format!("{PROVENANCE_PREFIX}{k}"), v.clone())).collect();
    key_value.insert(KEY_TABLE.into(), T::NAME.into());
    key_value.insert(KEY_SCHEMA_VERSION.into(), T::SCHEMA_VERSION.to_string());
    key_value.insert(KEY_VERSION.into(), crate::VERSION.into());
    let key_value = key_value.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(writer_properties(key_value))).map_err(enc)?;
    writer.write(&batch).map_err(enc)?;
    writer.close().map_err(enc)?;
    Ok(buf)
}

/// Reads the metadata and every row of any Parquet file, without checking which table it is.
pub fn read_any(input: &InputFile) -> Result<(Meta, RecordBatch), Error> {
    let parquet = |source| Error::Parquet { location: input.location.clone(), source };
    crate::exit::contain_panics(|| read_parquet(input))
        .unwrap_or_else(|panic| Err(parquet(ParquetError::General(format!("damaged beyond what the reader checks ({panic})")))))
}

fn read_parquet(input: &InputFile) -> Result<(Meta, RecordBatch), Error> {
    let parquet = |source| Error::Parquet { location: input.location.clone(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(input.bytes.clone()).map_err(parquet)?;
    let meta = meta_of(builder.metadata().file_metadata().key_value_metadata());
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(parquet)?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| parquet(ParquetError::ArrowError(e.to_string())))?;
    let batch = arrow::compute::concat_batches(&schema, &batches).map_err(|e| parquet(ParquetError::ArrowError(e.to_string())))?;
    Ok((meta, batch))
}

fn meta_of(key_value: Option<&Vec<KeyValue>>) -> Meta {
    let mut meta = Meta::default();
    for kv in key_value.into_iter().flatten() {
        let value = kv.value.clone().unwrap_or_default();
        match kv.key.as_str() {
            KEY_TABLE => meta.table = Some(value),
            KEY_SCHEMA_VERSION => meta.schema_version = Some(value),
            KEY_VERSION => meta.valkit_version = Some(value),
            key => match key.strip_prefix(PROVENANCE_PREFIX) {
                Some(k) => {
                    meta.provenance.insert(k.to_string(), value);
                }
                None => {
                    meta.other.insert(key.to_string(), value);
                }
            },
        }
    }
    meta
}

/// Reads and decodes the table file at `location`.
pub fn read<T: Table>(location: &Location) -> anyhow::Result<TableFile<T::Row>> {
    Ok(decode_file::<T>(&crate::files::read(location)?)?)
}

/// Reads a table file, refusing a file of another table or of an unknown schema version.
pub fn decode_file<T: Table>(input: &InputFile) -> Result<TableFile<T::Row>, Error> {
    let location = &input.location;
    let (meta, batch) = read_any(input)?;
    match meta.table.as_deref() {
        None => return Err(Error::Unlabelled { location: location.clone(), expected: T::NAME }),
        Some(found) if found != T::NAME => {
            return Err(Error::WrongTable { location: location.clone(), found: found.to_string(), expected: T::NAME })
        }
        Some(_) => {}
    }
    let version = meta.schema_version.as_deref().unwrap_or("(missing)");
    if !version.trim().parse::<u32>().is_ok_and(|v| (T::OLDEST_READABLE..=T::SCHEMA_VERSION).contains(&v)) {
        return Err(Error::SchemaVersion {
            location: location.clone(),
            table: T::NAME,
            found: version.to_string(),
            supported: T::SCHEMA_VERSION,
        });
    }
    let columns = Columns::new(location, T::NAME, &batch);
    let rows = T::decode(&columns)?;
    Ok(TableFile { rows, meta, location: location.clone(), sha256: input.sha256.clone() })
}

/// A field list helper for schemas: `field("uid", UInt16, false)`.
pub(crate) fn field(name: &str, data_type: arrow::datatypes::DataType, nullable: bool) -> arrow::datatypes::Field {
    arrow::datatypes::Field::new(name, data_type, nullable)
}

pub(crate) fn schema_of(fields: Vec<arrow::datatypes::Field>) -> SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_properties_are_pinned() {
        let props = writer_properties(vec![]);
        assert_eq!(props.created_by(), "valkit");
        assert_eq!(props.writer_version(), WriterVersion::PARQUET_1_0);
        let col = parquet::schema::types::ColumnPath::from("uid");
        assert_eq!(props.compression(&col), Compression::ZSTD(ZstdLevel::try_new(3).unwrap()));
        assert_eq!(props.max_row_group_row_count(), Some(ROW_GROUP_ROWS));
        assert_eq!(props.data_page_size_limit(), 1024 * 1024);
        assert!(props.dictionary_enabled(&col));
        assert_eq!(props.statistics_enabled(&col), EnabledStatistics::Chunk);
    }

    fn legend_matches_schema<T: Table>() {
        let legend: Vec<&str> = legend(T::NAME).expect("registered").iter().map(|c| c.name).collect();
        let schema: Vec<String> = T::schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(legend, schema, "{}", T::NAME);
        assert!(T::LEGEND.iter().all(|c| !c.about.is_empty()));
    }

    #[test]
    fn every_column_has_a_legend_entry() {
        legend_matches_schema::<metagraph::Metagraph>();
        legend_matches_schema::<models::Models>();
        legend_matches_schema::<batches::Batches>();
        legend_matches_schema::<losses::Losses>();
        legend_matches_schema::<wins::Wins>();
        legend_matches_schema::<weights::Weights>();
        legend_matches_schema::<tracker::Tracker>();
        legend_matches_schema::<receipts::Receipts>();
        legend_matches_schema::<consensus::Consensus>();
        legend_matches_schema::<clips::Clips>();
    }
}
