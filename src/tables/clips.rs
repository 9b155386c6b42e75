//! `clips`: one row per (validator, miner) weight the chain's next epoch uses, as `valkit
//! consensus` predicts it (issue 25): the validator's weight (its row normalized), the miner's
//! consensus, and how much of the weight is clipped above it. A validator's vTrust is one minus
//! the sum of its clipped amounts. Sorted by validator, then miner.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, UInt16Array};
use arrow::datatypes::{DataType, SchemaRef};

use super::{field, schema_of, Column, Columns, Error, Table};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub validator: u16,
    pub miner: u16,
    pub weight: f64,
    pub consensus: f64,
    /// `weight − min(weight, consensus)`.
    pub clipped: f64,
}

pub struct Clips;

impl Table for Clips {
    const NAME: &'static str = "clips";
    const SCHEMA_VERSION: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "validator", shown: true, about: "the validator's uid" },
        Column { name: "miner", shown: true, about: "the uid it weights" },
        Column { name: "weight", shown: true, about: "its weight, its row normalized to one" },
        Column { name: "consensus", shown: true, about: "the miner's consensus weight" },
        Column { name: "clipped", shown: true, about: "the part of the weight above consensus, lost to vTrust" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("validator", DataType::UInt16, false),
            field("miner", DataType::UInt16, false),
            field("weight", DataType::Float64, false),
            field("consensus", DataType::Float64, false),
            field("clipped", DataType::Float64, false),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        let f64s = |f: fn(&Row) -> f64| -> ArrayRef { Arc::new(Float64Array::from_iter_values(rows.iter().map(f))) };
        vec![
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.validator))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.miner))),
            f64s(|r| r.weight),
            f64s(|r| r.consensus),
            f64s(|r| r.clipped),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (validator, miner) = (c.u16("validator")?, c.u16("miner")?);
        let (weight, consensus, clipped) = (c.f64("weight")?, c.f64("consensus")?, c.f64("clipped")?);
        Ok((0..c.num_rows())
            .map(|i| Row { validator: validator[i], miner: miner[i], weight: weight[i], consensus: consensus[i], clipped: clipped[i] })
            .collect())
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by_key(|r| (r.validator, r.miner));
    }
}
