//! Typed column access over a decoded record batch, tolerant of how other writers spell types
//! (int64 for a u16 column, large strings, a list child named `element`) and strict about values
//! (a null in a required column or an out-of-range integer is an error naming column and row).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, UInt16Type, UInt32Type, UInt64Type};

use super::Error;
use crate::files::Location;

/// The list type valkit writes: `list<item: T>` with a nullable child, as arrow builds by default.
pub fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Str,
    Bool,
}

fn kind_of(dt: &DataType) -> Option<Kind> {
    use DataType::*;
    match dt {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Some(Kind::Int),
        Float16 | Float32 | Float64 => Some(Kind::Float),
        Utf8 | LargeUtf8 | Utf8View => Some(Kind::Str),
        Boolean => Some(Kind::Bool),
        Dictionary(_, value) => kind_of(value),
        _ => None,
    }
}

/// One optional list per row.
type NullableLists<N> = Vec<Option<Vec<N>>>;

pub struct Columns<'a> {
    location: &'a Location,
    table: &'static str,
    batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    pub fn new(location: &'a Location, table: &'static str, batch: &'a RecordBatch) -> Self {
        Self { location, table, batch }
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn location(&self) -> &Location {
        self.location
    }

    /// An error about one value, for checks the table module makes after decoding.
    pub fn value_error(&self, column: &str, row: usize, problem: impl Into<String>) -> Error {
        Error::Value { location: self.location.clone(), column: column.to_string(), row, problem: problem.into() }
    }

    fn find(&self, name: &str) -> Option<&ArrayRef> {
        self.batch.schema().index_of(name).ok().map(|i| self.batch.column(i))
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingColumn { location: self.location.clone(), table: self.table, column: name.into() }
    }

    /// The column cast to `target`, if present; `kind` is what the source type must be.
    fn cast(&self, name: &str, kind: Kind, target: &DataType, expected: &'static str) -> Result<Option<ArrayRef>, Error> {
        let Some(array) = self.find(name) else { return Ok(None) };
        let source_kind = match (array.data_type(), target) {
            (DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _), DataType::List(_)) => kind_of(f.data_type()),
            (_, DataType::List(_)) => None,
            (dt, _) => kind_of(dt),
        };
        if source_kind != Some(kind) {
            return Err(Error::ColumnType {
                location: self.location.clone(),
                column: name.into(),
                found: array.data_type().to_string(),
                expected,
            });
        }
        let options = CastOptions { safe: false, ..Default::default() };
        cast_with_options(array, target, &options).map(Some).map_err(|e| Error::Value {
            location: self.location.clone(),
            column: name.into(),
            row: 0,
            problem: format!("cannot convert to {expected}: {e}"),
        })
    }

    fn primitive<T: ArrowPrimitiveType>(
        &self,
        name: &str,
        kind: Kind,
        expected: &'static str,
    ) -> Result<Option<Vec<Option<T::Native>>>, Error> {
        Ok(self.cast(name, kind, &T::DATA_TYPE, expected)?.map(|a| a.as_primitive::<T>().iter().collect()))
    }

    fn required<V>(&self, name: &str, values: Option<Vec<Option<V>>>) -> Result<Vec<V>, Error> {
        let values = values.ok_or_else(|| self.missing(name))?;
        values.into_iter().enumerate().map(|(row, v)| v.ok_or_else(|| self.value_error(name, row, "null in a required column"))).collect()
    }

    fn optional<V: Clone>(&self, values: Option<Vec<Option<V>>>) -> Vec<Option<V>> {
        values.unwrap_or_else(|| vec![None; self.num_rows()])
    }

    pub fn u16(&self, name: &str) -> Result<Vec<u16>, Error> {
        self.required(name, self.primitive::<UInt16Type>(name, Kind::Int, "uint16")?)
    }
    pub fn opt_u16(&self, name: &str) -> Result<Vec<Option<u16>>, Error> {
        Ok(self.optional(self.primitive::<UInt16Type>(name, Kind::Int, "uint16")?))
    }
    pub fn u32(&self, name: &str) -> Result<Vec<u32>, Error> {
        self.required(name, self.primitive::<UInt32Type>(name, Kind::Int, "uint32")?)
    }
    pub fn u64(&self, name: &str) -> Result<Vec<u64>, Error> {
        self.required(name, self.primitive::<UInt64Type>(name, Kind::Int, "uint64")?)
    }
    pub fn opt_u64(&self, name: &str) -> Result<Vec<Option<u64>>, Error> {
        Ok(self.optional(self.primitive::<UInt64Type>(name, Kind::Int, "uint64")?))
    }
    pub fn f32(&self, name: &str) -> Result<Vec<f32>, Error> {
        self.required(name, self.primitive::<Float32Type>(name, Kind::Float, "float32")?)
    }
    pub fn f64(&self, name: &str) -> Result<Vec<f64>, Error> {
        self.required(name, self.primitive::<Float64Type>(name, Kind::Float, "float64")?)
    }
    pub fn opt_f64(&self, name: &str) -> Result<Vec<Option<f64>>, Error> {
        Ok(self.optional(self.primitive::<Float64Type>(name, Kind::Float, "float64")?))
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<Option<String>>>, Error> {
        Ok(self
            .cast(name, Kind::Str, &DataType::Utf8, "utf8")?
            .map(|a| a.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect()))
    }
    pub fn string(&self, name: &str) -> Result<Vec<String>, Error> {
        self.required(name, self.strings(name)?)
    }
    pub fn opt_string(&self, name: &str) -> Result<Vec<Option<String>>, Error> {
        Ok(self.optional(self.strings(name)?))
    }

    fn bools(&self, name: &str) -> Result<Option<Vec<Option<bool>>>, Error> {
        Ok(self.cast(name, Kind::Bool, &DataType::Boolean, "bool")?.map(|a| a.as_boolean().iter().collect()))
    }
    pub fn bool(&self, name: &str) -> Result<Vec<bool>, Error> {
        self.required(name, self.bools(name)?)
    }
    pub fn opt_bool(&self, name: &str) -> Result<Vec<Option<bool>>, Error> {
        Ok(self.optional(self.bools(name)?))
    }

    fn lists<T: ArrowPrimitiveType>(
        &self,
        name: &str,
        kind: Kind,
        expected: &'static str,
    ) -> Result<Option<NullableLists<T::Native>>, Error> {
        let Some(array) = self.cast(name, kind, &list_of(T::DATA_TYPE), expected)? else {
            return Ok(None);
        };
        let lists = array.as_list::<i32>();
        let mut out = Vec::with_capacity(lists.len());
        for row in 0..lists.len() {
            if lists.is_null(row) {
                out.push(None);
                continue;
            }
            let items = lists.value(row);
            let items = items.as_primitive::<T>();
            if items.null_count() > 0 {
                return Err(self.value_error(name, row, "null inside a list"));
            }
            out.push(Some(items.values().to_vec()));
        }
        Ok(Some(out))
    }
    pub fn list_u32(&self, name: &str) -> Result<Vec<Vec<u32>>, Error> {
        self.required(name, self.lists::<UInt32Type>(name, Kind::Int, "list<uint32>")?)
    }
    pub fn opt_list_u16(&self, name: &str) -> Result<Vec<Option<Vec<u16>>>, Error> {
        Ok(self.optional(self.lists::<UInt16Type>(name, Kind::Int, "list<uint16>")?))
    }
    pub fn opt_list_u64(&self, name: &str) -> Result<Vec<Option<Vec<u64>>>, Error> {
        Ok(self.optional(self.lists::<UInt64Type>(name, Kind::Int, "list<uint64>")?))
    }
    pub fn opt_list_f64(&self, name: &str) -> Result<Vec<Option<Vec<f64>>>, Error> {
        Ok(self.optional(self.lists::<Float64Type>(name, Kind::Float, "list<float64>")?))
    }
}
