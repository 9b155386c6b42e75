//! `receipts`: what `set-weights` did on chain, one row per submission, appended run after run
//! (the operator's record of which weights went out, where and when), and one row per
//! timelocked commit once a later run has seen whether the chain revealed it. Sorted by
//! (`block`, `action`) so an append keeps the file in chain order.
//!
//! Version 2 added the mechanism, the reason and the timelocked commit's round, epoch, reveal
//! block and ciphertext hash; version-1 files read with those absent.

use std::sync::Arc;

use arrow::array::{ArrayRef, ListArray, StringArray, UInt16Array, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef, UInt16Type};

use super::{field, list_of, schema_of, Column, Columns, Error, Table};

status_enum!(
    /// Which extrinsic a receipt records; `revealed` and `lost` are a later run's judgement of a
    /// timelocked commit: the chain applied it, or its reveal block passed without that.
    Action {
        SetWeights => "set_weights",
        SetMechanismWeights => "set_mechanism_weights",
        CommitWeights => "commit_weights",
        RevealWeights => "reveal_weights",
        CommitCrv3Weights => "commit_crv3_weights",
        CommitTimelockedWeights => "commit_timelocked_weights",
        CommitTimelockedMechanismWeights => "commit_timelocked_mechanism_weights",
        Revealed => "revealed",
        Lost => "lost",
    }
);

impl Action {
    /// A drand-timelocked commit, which the chain reveals itself.
    pub fn is_timelocked_commit(self) -> bool {
        matches!(self, Self::CommitCrv3Weights | Self::CommitTimelockedWeights | Self::CommitTimelockedMechanismWeights)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub action: Action,
    pub netuid: u16,
    pub hotkey: String,
    pub uid: u16,
    /// The subnet's mechanism (0 for its main one; absent in version-1 files).
    pub mechanism: Option<u16>,
    pub version_key: u64,
    /// The block the transaction was included in, and its hash; for `revealed`/`lost`, the
    /// block the judgement was read at.
    pub block: u64,
    pub block_hash: String,
    /// The extrinsic's hash; for `revealed`/`lost`, the commit's.
    pub extrinsic_hash: String,
    pub endpoint: String,
    /// The uids and u16 values sent (for a commit: the ones it hides).
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    /// sha256 of the weights table the values came from.
    pub weights_sha256: String,
    /// Why this call (the path's reason), or for `lost` the likely cause.
    pub reason: Option<String>,
    /// A timelocked commit's drand round, the epoch the chain filed it under, the block by
    /// which the chain reveals it, and the sha256 of the ciphertext sent.
    pub reveal_round: Option<u64>,
    pub commit_epoch: Option<u64>,
    pub reveal_block: Option<u64>,
    pub commit_sha256: Option<String>,
}

pub struct Receipts;

impl Table for Receipts {
    const NAME: &'static str = "receipts";
    const SCHEMA_VERSION: u32 = 2;
    const OLDEST_READABLE: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column {
            name: "action",
            shown: true,
            about: "the extrinsic sent (set_weights, commit_timelocked_weights, …), or revealed/lost for a commit judged later",
        },
        Column { name: "netuid", shown: true, about: "the subnet" },
        Column { name: "hotkey", shown: false, about: "the validator's hotkey" },
        Column { name: "uid", shown: true, about: "the validator's uid" },
        Column { name: "mechanism", shown: false, about: "the subnet mechanism (0: the main one)" },
        Column { name: "version_key", shown: true, about: "the version key sent" },
        Column { name: "block", shown: true, about: "the block the extrinsic was included in (revealed/lost: the block judged at)" },
        Column { name: "block_hash", shown: false, about: "that block's hash" },
        Column { name: "extrinsic_hash", shown: true, about: "the extrinsic's hash (revealed/lost: the commit's)" },
        Column { name: "endpoint", shown: false, about: "the chain endpoint used" },
        Column { name: "uids", shown: true, about: "uids sent" },
        Column { name: "values", shown: true, about: "u16 values sent" },
        Column { name: "weights_sha256", shown: false, about: "sha256 of the weights table sent" },
        Column { name: "reason", shown: true, about: "why this call; for lost, the likely cause" },
        Column { name: "reveal_round", shown: false, about: "a timelocked commit's drand round" },
        Column { name: "commit_epoch", shown: false, about: "the epoch the chain filed the commit under" },
        Column { name: "reveal_block", shown: true, about: "the block by which the chain reveals the commit" },
        Column { name: "commit_sha256", shown: false, about: "sha256 of the ciphertext sent" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("action", DataType::Utf8, false),
            field("netuid", DataType::UInt16, false),
            field("hotkey", DataType::Utf8, false),
            field("uid", DataType::UInt16, false),
            field("mechanism", DataType::UInt16, true),
            field("version_key", DataType::UInt64, false),
            field("block", DataType::UInt64, false),
            field("block_hash", DataType::Utf8, false),
            field("extrinsic_hash", DataType::Utf8, false),
            field("endpoint", DataType::Utf8, false),
            field("uids", list_of(DataType::UInt16), false),
            field("values", list_of(DataType::UInt16), false),
            field("weights_sha256", DataType::Utf8, false),
            field("reason", DataType::Utf8, true),
            field("reveal_round", DataType::UInt64, true),
            field("commit_epoch", DataType::UInt64, true),
            field("reveal_block", DataType::UInt64, true),
            field("commit_sha256", DataType::Utf8, true),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        let list = |f: fn(&Row) -> &Vec<u16>| -> ArrayRef {
            Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(rows.iter().map(|r| Some(f(r).iter().map(|v| Some(*v))))))
        };
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.action.as_str()))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.netuid))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.hotkey))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.uid))),
            Arc::new(rows.iter().map(|r| r.mechanism).collect::<UInt16Array>()),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.version_key))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.block))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.block_hash))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.extrinsic_hash))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.endpoint))),
            list(|r| &r.uids),
            list(|r| &r.values),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.weights_sha256))),
            Arc::new(rows.iter().map(|r| r.reason.as_deref()).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| r.reveal_round).collect::<UInt64Array>()),
            Arc::new(rows.iter().map(|r| r.commit_epoch).collect::<UInt64Array>()),
            Arc::new(rows.iter().map(|r| r.reveal_block).collect::<UInt64Array>()),
            Arc::new(rows.iter().map(|r| r.commit_sha256.as_deref()).collect::<StringArray>()),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (action, netuid, hotkey, uid) = (c.string("action")?, c.u16("netuid")?, c.string("hotkey")?, c.u16("uid")?);
        let (version_key, block, block_hash) = (c.u64("version_key")?, c.u64("block")?, c.string("block_hash")?);
        let (extrinsic_hash, endpoint, sha) = (c.string("extrinsic_hash")?, c.string("endpoint")?, c.string("weights_sha256")?);
        let (uids, values) = (c.opt_list_u16("uids")?, c.opt_list_u16("values")?);
        let (mechanism, reason, commit_sha256) = (c.opt_u16("mechanism")?, c.opt_string("reason")?, c.opt_string("commit_sha256")?);
        let (reveal_round, commit_epoch, reveal_block) =
            (c.opt_u64("reveal_round")?, c.opt_u64("commit_epoch")?, c.opt_u64("reveal_block")?);
        let mut rows = Vec::with_capacity(c.num_rows());
        for i in 0..c.num_rows() {
            rows.push(Row {
                action: action[i].parse().map_err(|e: String| c.value_error("action", i, e))?,
                netuid: netuid[i],
                hotkey: hotkey[i].clone(),
                uid: uid[i],
                mechanism: mechanism[i],
                version_key: version_key[i],
                block: block[i],
                block_hash: block_hash[i].clone(),
                extrinsic_hash: extrinsic_hash[i].clone(),
                endpoint: endpoint[i].clone(),
                uids: uids[i].clone().unwrap_or_default(),
                values: values[i].clone().unwrap_or_default(),
                weights_sha256: sha[i].clone(),
                reason: reason[i].clone(),
                reveal_round: reveal_round[i],
                commit_epoch: commit_epoch[i],
                reveal_block: reveal_block[i],
                commit_sha256: commit_sha256[i].clone(),
            });
        }
        Ok(rows)
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by_key(|r| (r.block, r.action.as_str()));
    }
}
