//! `models`: one row per uid that `fetch-models` considered, with the local snapshot path or the
//! reason it was not usable (SPEC §3). A model failing a check is a row, never an abort.
//! `in_step` says whether the uid is evaluated in this step and `step_reason` why (keep, new,
//! changed, top-miner, retry, all); a table without these columns puts every `ok` row in the
//! step. Sorted by `uid`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, StringArray, UInt16Array, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef};

use super::{field, schema_of, Column, Columns, Error, Table};

status_enum!(
    /// `ok`: usable snapshot at `local_path`; `skipped`: not this step's business (e.g. eval delay);
    /// `rejected`: breaks a competition rule; `failed`: could not be fetched or checked.
    Status { Ok => "ok", Skipped => "skipped", Rejected => "rejected", Failed => "failed" }
);

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub uid: u16,
    pub hotkey: String,
    pub competition_id: Option<u16>,
    pub repo_id: Option<String>,
    pub revision: Option<String>,
    pub commit_block: Option<u64>,
    pub local_path: Option<String>,
    pub size_bytes: Option<u64>,
    pub n_params: Option<u64>,
    pub architecture: Option<String>,
    pub status: Status,
    pub reason: Option<String>,
    pub in_step: bool,
    pub step_reason: Option<String>,
    /// The snapshot's model hash (upstream's hash of the files it covers, config and weights
    /// included): two rows with the same hash are the same model, evaluated once. Absent in
    /// schema version 1.
    pub model_hash: Option<String>,
}

pub struct Models;

impl Table for Models {
    const NAME: &'static str = "models";
    /// 2 added `model_hash`.
    const SCHEMA_VERSION: u32 = 2;
    const OLDEST_READABLE: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "uid", shown: true, about: "the neuron's slot on the subnet" },
        Column { name: "hotkey", shown: false, about: "the neuron's hotkey" },
        Column { name: "competition_id", shown: true, about: "the competition the model entered" },
        Column { name: "repo_id", shown: true, about: "the Hugging Face repository" },
        Column { name: "revision", shown: false, about: "the commit downloaded (pinned)" },
        Column { name: "commit_block", shown: false, about: "the block of the commitment" },
        Column { name: "local_path", shown: false, about: "the snapshot directory in the Hugging Face cache" },
        Column { name: "size_bytes", shown: false, about: "bytes of the model's files" },
        Column { name: "n_params", shown: true, about: "parameter count from the safetensors headers" },
        Column { name: "architecture", shown: true, about: "the config's architecture" },
        Column { name: "status", shown: true, about: "ok, skipped, rejected (breaks a rule) or failed (fetch or check)" },
        Column { name: "reason", shown: true, about: "reason code and message when not ok" },
        Column { name: "in_step", shown: true, about: "whether the model is evaluated this step" },
        Column { name: "step_reason", shown: true, about: "why it is (or is not) in the step: keep, new, retry, top-miner, …" },
        Column { name: "model_hash", shown: false, about: "the snapshot's model hash: the same hash is the same model" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("uid", DataType::UInt16, false),
            field("hotkey", DataType::Utf8, false),
            field("competition_id", DataType::UInt16, true),
            field("repo_id", DataType::Utf8, true),
            field("revision", DataType::Utf8, true),
            field("commit_block", DataType::UInt64, true),
            field("local_path", DataType::Utf8, true),
            field("size_bytes", DataType::UInt64, true),
            field("n_params", DataType::UInt64, true),
            field("architecture", DataType::Utf8, true),
            field("status", DataType::Utf8, false),
            field("reason", DataType::Utf8, true),
            field("in_step", DataType::Boolean, false),
            field("step_reason", DataType::Utf8, true),
            field("model_hash", DataType::Utf8, true),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        let opt_str = |f: fn(&Row) -> Option<&str>| -> ArrayRef { Arc::new(StringArray::from_iter(rows.iter().map(f))) };
        vec![
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.uid))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.hotkey))),
            Arc::new(UInt16Array::from_iter(rows.iter().map(|r| r.competition_id))),
            opt_str(|r| r.repo_id.as_deref()),
            opt_str(|r| r.revision.as_deref()),
            Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.commit_block))),
            opt_str(|r| r.local_path.as_deref()),
            Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.size_bytes))),
            Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.n_params))),
            opt_str(|r| r.architecture.as_deref()),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.status.as_str()))),
            opt_str(|r| r.reason.as_deref()),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.in_step)))),
            opt_str(|r| r.step_reason.as_deref()),
            opt_str(|r| r.model_hash.as_deref()),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (uid, hotkey, competition_id) = (c.u16("uid")?, c.string("hotkey")?, c.opt_u16("competition_id")?);
        let (repo_id, revision, commit_block) = (c.opt_string("repo_id")?, c.opt_string("revision")?, c.opt_u64("commit_block")?);
        let (local_path, size_bytes, n_params) = (c.opt_string("local_path")?, c.opt_u64("size_bytes")?, c.opt_u64("n_params")?);
        let (architecture, status, reason) = (c.opt_string("architecture")?, c.string("status")?, c.opt_string("reason")?);
        let (in_step, step_reason, model_hash) = (c.opt_bool("in_step")?, c.opt_string("step_reason")?, c.opt_string("model_hash")?);
        (0..c.num_rows())
            .map(|i| {
                let status: Status = status[i].parse().map_err(|e: String| c.value_error("status", i, e))?;
                Ok(Row {
                    uid: uid[i],
                    hotkey: hotkey[i].clone(),
                    competition_id: competition_id[i],
                    repo_id: repo_id[i].clone(),
                    revision: revision[i].clone(),
                    commit_block: commit_block[i],
                    local_path: local_path[i].clone(),
                    size_bytes: size_bytes[i],
                    n_params: n_params[i],
                    architecture: architecture[i].clone(),
                    status,
                    reason: reason[i].clone(),
                    in_step: in_step[i].unwrap_or(status == Status::Ok),
                    step_reason: step_reason[i].clone(),
                    model_hash: model_hash[i].clone(),
                })
            })
            .collect::<Result<Vec<Row>, Error>>()
            .and_then(|rows| super::metagraph::check_unique_uids(c, rows.iter().map(|r| r.uid)).map(|()| rows))
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by_key(|r| r.uid);
    }
}
