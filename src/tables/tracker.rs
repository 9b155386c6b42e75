//! `tracker`: the only state carried between cycles (SPEC §3). One row per (competition, uid)
//! holding upstream's CompetitionTracker weight (float32, uids 0..n-1), whether the uid is in
//! that competition's keep set, and the uid's recent eval results (≤ 3, oldest first) for the
//! hotkey it had then. A file with only `competition_id, uid, weight` is valid: empty keep set
//! and history. Sorted by (`competition_id`, `uid`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, ListArray, StringArray, UInt16Array};
use arrow::datatypes::{DataType, Float64Type, SchemaRef, UInt64Type};

use super::{field, list_of, schema_of, Column, Columns, Error, Table};
use crate::scoring::EvalResult;

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub competition_id: u16,
    pub uid: u16,
    pub weight: f32,
    pub keep: bool,
    /// The hotkey the history belongs to; history is dropped when the uid changes hands.
    pub hotkey: Option<String>,
    pub history: Vec<EvalResult>,
}

pub struct Tracker;

impl Table for Tracker {
    const NAME: &'static str = "tracker";
    const SCHEMA_VERSION: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "competition_id", shown: true, about: "the competition" },
        Column { name: "uid", shown: true, about: "the neuron's slot on the subnet" },
        Column { name: "weight", shown: true, about: "the competition tracker's EMA weight" },
        Column { name: "keep", shown: true, about: "whether the uid is re-evaluated next step (keep set)" },
        Column { name: "hotkey", shown: false, about: "the hotkey the history belongs to" },
        Column { name: "eval_block", shown: true, about: "blocks of the uid's past evaluations" },
        Column { name: "eval_score", shown: false, about: "its scores at those evaluations" },
        Column { name: "winning_block", shown: false, about: "the winning model's commit block at each evaluation" },
        Column { name: "winning_score", shown: false, about: "the winning model's score at each evaluation" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("competition_id", DataType::UInt16, false),
            field("uid", DataType::UInt16, false),
            field("weight", DataType::Float32, false),
            field("keep", DataType::Boolean, false),
            field("hotkey", DataType::Utf8, true),
            field("eval_block", list_of(DataType::UInt64), false),
            field("eval_score", list_of(DataType::Float64), false),
            field("winning_block", list_of(DataType::Float64), false),
            field("winning_score", list_of(DataType::Float64), false),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        let f64_lists = |f: fn(&EvalResult) -> f64| -> ArrayRef {
            Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(rows.iter().map(|r| Some(r.history.iter().map(|e| Some(f(e)))))))
        };
        vec![
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.competition_id))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.uid))),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.weight))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.keep)))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.hotkey.as_deref()))),
            Arc::new(ListArray::from_iter_primitive::<UInt64Type, _, _>(
                rows.iter().map(|r| Some(r.history.iter().map(|e| Some(e.block)))),
            )),
            f64_lists(|e| e.score),
            f64_lists(|e| e.winning_model_block),
            f64_lists(|e| e.winning_model_score),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (competition_id, uid, weight) = (c.u16("competition_id")?, c.u16("uid")?, c.f32("weight")?);
        let (keep, hotkey) = (c.opt_bool("keep")?, c.opt_string("hotkey")?);
        let (blocks, scores) = (c.opt_list_u64("eval_block")?, c.opt_list_f64("eval_score")?);
        let (win_blocks, win_scores) = (c.opt_list_f64("winning_block")?, c.opt_list_f64("winning_score")?);
        let mut rows = Vec::with_capacity(c.num_rows());
        for i in 0..c.num_rows() {
            if !weight[i].is_finite() || weight[i] < 0.0 {
                return Err(c.value_error("weight", i, format!("invalid tracker weight {}", weight[i])));
            }
            let blocks = blocks[i].clone().unwrap_or_default();
            let lists = [&scores[i], &win_blocks[i], &win_scores[i]].map(|l| l.clone().unwrap_or_default());
            if lists.iter().any(|l| l.len() != blocks.len()) {
                return Err(c.value_error("eval_block", i, "eval history lists differ in length"));
            }
            let history = (0..blocks.len())
                .map(|j| EvalResult {
                    block: blocks[j],
                    score: lists[0][j],
                    winning_model_block: lists[1][j],
                    winning_model_score: lists[2][j],
                })
                .collect();
            rows.push(Row {
                competition_id: competition_id[i],
                uid: uid[i],
                weight: weight[i],
                keep: keep[i].unwrap_or(false),
                hotkey: hotkey[i].clone(),
                history,
            });
        }
        Ok(rows)
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by_key(|r| (r.competition_id, r.uid));
    }
}
