//! `losses`: long format, one row per (uid, task, batch) (SPEC §3). A failed evaluation is a row
//! with `loss = inf` and a reason. Shards from several hosts concatenate.
//! Sorted by (`competition_id`, `uid`, `task`, `batch_index`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt16Array, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};

use super::{field, schema_of, Column, Columns, Error, Table};

status_enum!(Status { Ok => "ok", Failed => "failed" });

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub uid: u16,
    pub hotkey: String,
    pub competition_id: u16,
    pub task: String,
    pub batch_index: u32,
    /// Mean cross entropy over the scored tokens of the batch; `inf` when the evaluation failed.
    pub loss: f64,
    pub n_tokens: u32,
    pub status: Status,
    pub reason: Option<String>,
    /// The uid whose evaluation these values are: a copy (same model hash, competition and
    /// batches) is evaluated once, under the lowest uid holding it. `None`: its own evaluation.
    pub evaluated_as: Option<u16>,
}

impl Row {
    /// Whether this row counts as a successful evaluation (upstream scores anything else `inf`).
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok && self.loss.is_finite()
    }
}

/// sha256 of loss rows in (uid, competition, task, batch) order, every field written out: the
/// same rows give the same digest however they were split into files (shards, hosts).
pub fn rows_digest<'a>(rows: impl IntoIterator<Item = &'a Row>) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&Row> = rows.into_iter().collect();
    sorted.sort_by(|a, b| (a.uid, a.competition_id, &a.task, a.batch_index).cmp(&(b.uid, b.competition_id, &b.task, b.batch_index)));
    let mut hash = Sha256::new();
    for r in sorted {
        let reason = r.reason.as_deref().unwrap_or("\u{0}");
        let line = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:016x}\u{1f}{}\u{1f}{}\u{1f}{reason}\u{1e}",
            r.uid,
            r.hotkey,
            r.competition_id,
            r.task,
            r.batch_index,
            r.loss.to_bits(),
            r.n_tokens,
            r.status.as_str()
        );
        hash.update(line.as_bytes());
        // Written only when set, so that rows without copies keep the digest they always had.
        if let Some(uid) = r.evaluated_as {
            hash.update(format!("evaluated_as={uid}\u{1e}").as_bytes());
        }
    }
    hex::encode(hash.finalize())
}

pub struct Losses;

impl Table for Losses {
    const NAME: &'static str = "losses";
    /// 2 added `evaluated_as`.
    const SCHEMA_VERSION: u32 = 2;
    const OLDEST_READABLE: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "uid", shown: true, about: "the neuron's slot on the subnet" },
        Column { name: "hotkey", shown: false, about: "the neuron's hotkey" },
        Column { name: "competition_id", shown: true, about: "the competition" },
        Column { name: "task", shown: true, about: "the eval task" },
        Column { name: "batch_index", shown: true, about: "the batch" },
        Column { name: "loss", shown: true, about: "mean cross-entropy over the scored tokens (inf when failed)" },
        Column { name: "n_tokens", shown: true, about: "tokens scored" },
        Column { name: "status", shown: true, about: "ok or failed" },
        Column { name: "reason", shown: true, about: "reason code and message when failed" },
        Column { name: "evaluated_as", shown: false, about: "the uid of the same model whose evaluation this row shares (empty: its own)" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("uid", DataType::UInt16, false),
            field("hotkey", DataType::Utf8, false),
            field("competition_id", DataType::UInt16, false),
            field("task", DataType::Utf8, false),
            field("batch_index", DataType::UInt32, false),
            field("loss", DataType::Float64, false),
            field("n_tokens", DataType::UInt32, false),
            field("status", DataType::Utf8, false),
            field("reason", DataType::Utf8, true),
            field("evaluated_as", DataType::UInt16, true),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        vec![
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.uid))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.hotkey))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.competition_id))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.task))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.batch_index))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.loss))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.n_tokens))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.status.as_str()))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.reason.as_deref()))),
            Arc::new(UInt16Array::from_iter(rows.iter().map(|r| r.evaluated_as))),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (uid, hotkey, competition_id) = (c.u16("uid")?, c.string("hotkey")?, c.u16("competition_id")?);
        let (task, batch_index, loss) = (c.string("task")?, c.u32("batch_index")?, c.f64("loss")?);
        let (n_tokens, status, reason) = (c.u32("n_tokens")?, c.string("status")?, c.opt_string("reason")?);
        let evaluated_as = c.opt_u16("evaluated_as")?;
        (0..c.num_rows())
            .map(|i| {
                // NaN cannot be ranked and a negative cross entropy cannot happen: both mean the
                // producer of this file is broken, and scoring it would pay the wrong miner.
                if loss[i].is_nan() || loss[i] < 0.0 {
                    return Err(c.value_error("loss", i, format!("invalid loss {} for uid {} (must be >= 0 or inf)", loss[i], uid[i])));
                }
                Ok(Row {
                    uid: uid[i],
                    hotkey: hotkey[i].clone(),
                    competition_id: competition_id[i],
                    task: task[i].clone(),
                    batch_index: batch_index[i],
                    loss: loss[i],
                    n_tokens: n_tokens[i],
                    status: status[i].parse().map_err(|e: String| c.value_error("status", i, e))?,
                    reason: reason[i].clone(),
                    evaluated_as: evaluated_as[i],
                })
            })
            .collect()
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by(|a, b| (a.competition_id, a.uid, &a.task, a.batch_index).cmp(&(b.competition_id, b.uid, &b.task, b.batch_index)));
    }
}
