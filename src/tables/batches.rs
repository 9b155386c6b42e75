//! `batches`: the token windows every model is scored on, with where each came from (SPEC §3).
//! File metadata: seed, sync block, tokenizer repo and revision, sequence length.
//! Sorted by (`competition_id`, `task`, `batch_index`).

use std::sync::Arc;

use arrow::array::{ArrayRef, ListArray, StringArray, UInt16Array, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef, UInt32Type};

use super::{field, list_of, schema_of, Column, Columns, Error, Table};

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub competition_id: u16,
    pub task: String,
    pub batch_index: u32,
    pub token_ids: Vec<u32>,
    /// Leading tokens that are context, not scored (0 for plain text loss).
    pub context_len: u32,
    /// `dataset:config:split:offset` of the page(s) the window came from.
    pub source: String,
}

pub struct Batches;

impl Table for Batches {
    const NAME: &'static str = "batches";
    const SCHEMA_VERSION: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "competition_id", shown: true, about: "the competition the batch belongs to" },
        Column { name: "task", shown: true, about: "the eval task" },
        Column { name: "batch_index", shown: true, about: "the batch's position within its task" },
        Column { name: "token_ids", shown: true, about: "the tokens of the window or sample" },
        Column { name: "context_len", shown: true, about: "prompt tokens not scored (reference-loss tasks), else 0" },
        Column { name: "source", shown: true, about: "dataset, config, split and page (or corpus file) the text came from" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("competition_id", DataType::UInt16, false),
            field("task", DataType::Utf8, false),
            field("batch_index", DataType::UInt32, false),
            field("token_ids", list_of(DataType::UInt32), false),
            field("context_len", DataType::UInt32, false),
            field("source", DataType::Utf8, false),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        vec![
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.competition_id))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.task))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.batch_index))),
            Arc::new(ListArray::from_iter_primitive::<UInt32Type, _, _>(rows.iter().map(|r| Some(r.token_ids.iter().copied().map(Some))))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.context_len))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.source))),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (competition_id, task, batch_index) = (c.u16("competition_id")?, c.string("task")?, c.u32("batch_index")?);
        let (token_ids, context_len, source) = (c.list_u32("token_ids")?, c.u32("context_len")?, c.string("source")?);
        let mut rows = Vec::with_capacity(c.num_rows());
        for (i, tokens) in token_ids.into_iter().enumerate() {
            if context_len[i] as usize >= tokens.len() && !tokens.is_empty() {
                return Err(c.value_error(
                    "context_len",
                    i,
                    format!("{} leaves no token to score in a window of {}", context_len[i], tokens.len()),
                ));
            }
            rows.push(Row {
                competition_id: competition_id[i],
                task: task[i].clone(),
                batch_index: batch_index[i],
                token_ids: tokens,
                context_len: context_len[i],
                source: source[i].clone(),
            });
        }
        Ok(rows)
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by(|a, b| (a.competition_id, &a.task, a.batch_index).cmp(&(b.competition_id, &b.task, b.batch_index)));
    }
}
