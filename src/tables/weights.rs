//! `weights`: the subnet weight of every uid after a step, as float32 and as the u16 value the
//! SDK conversion would send (0 = not sent) (SPEC §3). Sorted by `uid`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, StringArray, UInt16Array};
use arrow::datatypes::{DataType, SchemaRef};

use super::{field, schema_of, Column, Columns, Error, Table};

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub uid: u16,
    /// Null for a uid the tracker knows but the metagraph no longer has.
    pub hotkey: Option<String>,
    pub weight: f32,
    pub weight_u16: u16,
}

pub struct Weights;

impl Table for Weights {
    const NAME: &'static str = "weights";
    const SCHEMA_VERSION: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "uid", shown: true, about: "the neuron's slot on the subnet" },
        Column { name: "hotkey", shown: true, about: "the neuron's hotkey" },
        Column { name: "weight", shown: true, about: "the subnet weight (float32, sums to 1)" },
        Column { name: "weight_u16", shown: true, about: "the value set-weights sends: max-scaled to 65535 as the SDK converts" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("uid", DataType::UInt16, false),
            field("hotkey", DataType::Utf8, true),
            field("weight", DataType::Float32, false),
            field("weight_u16", DataType::UInt16, false),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        vec![
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.uid))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.hotkey.as_deref()))),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.weight))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.weight_u16))),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (uid, hotkey) = (c.u16("uid")?, c.opt_string("hotkey")?);
        let (weight, weight_u16) = (c.f32("weight")?, c.u16("weight_u16")?);
        Ok((0..c.num_rows())
            .map(|i| Row { uid: uid[i], hotkey: hotkey[i].clone(), weight: weight[i], weight_u16: weight_u16[i] })
            .collect())
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by_key(|r| r.uid);
    }
}
