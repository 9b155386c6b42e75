//! `receipts`: what `set-weights` did on chain, one row per submission, appended run after run
//! (the operator's record of which weights went out, where and when). Sorted by (`block`,
//! `action`) so an append keeps the file in chain order.

use std::sync::Arc;

use arrow::array::{ArrayRef, ListArray, StringArray, UInt16Array, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef, UInt16Type};

use super::{field, list_of, schema_of, Column, Columns, Error, Table};

status_enum!(
    /// Which extrinsic a receipt records.
    Action {
        SetWeights => "set_weights",
        CommitWeights => "commit_weights",
        RevealWeights => "reveal_weights",
    }
);

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub action: Action,
    pub netuid: u16,
    pub hotkey: String,
    pub uid: u16,
    pub version_key: u64,
    /// The block the transaction was included in, and its hash.
    pub block: u64,
    pub block_hash: String,
    pub extrinsic_hash: String,
    pub endpoint: String,
    /// The uids and u16 values sent (for a commit: the ones the hash commits to).
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    /// sha256 of the weights table the values came from.
    pub weights_sha256: String,
}

pub struct Receipts;

impl Table for Receipts {
    const NAME: &'static str = "receipts";
    const SCHEMA_VERSION: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "action", shown: true, about: "set_weights, commit_weights or reveal_weights" },
        Column { name: "netuid", shown: true, about: "the subnet" },
        Column { name: "hotkey", shown: false, about: "the validator's hotkey" },
        Column { name: "uid", shown: true, about: "the validator's uid" },
        Column { name: "version_key", shown: true, about: "the version key sent" },
        Column { name: "block", shown: true, about: "the block the extrinsic was included in" },
        Column { name: "block_hash", shown: false, about: "that block's hash" },
        Column { name: "extrinsic_hash", shown: true, about: "the extrinsic's hash" },
        Column { name: "endpoint", shown: false, about: "the chain endpoint used" },
        Column { name: "uids", shown: true, about: "uids sent" },
        Column { name: "values", shown: true, about: "u16 values sent" },
        Column { name: "weights_sha256", shown: false, about: "sha256 of the weights table sent" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("action", DataType::Utf8, false),
            field("netuid", DataType::UInt16, false),
            field("hotkey", DataType::Utf8, false),
            field("uid", DataType::UInt16, false),
            field("version_key", DataType::UInt64, false),
            field("block", DataType::UInt64, false),
            field("block_hash", DataType::Utf8, false),
            field("extrinsic_hash", DataType::Utf8, false),
            field("endpoint", DataType::Utf8, false),
            field("uids", list_of(DataType::UInt16), false),
            field("values", list_of(DataType::UInt16), false),
            field("weights_sha256", DataType::Utf8, false),
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
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.version_key))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.block))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.block_hash))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.extrinsic_hash))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.endpoint))),
            list(|r| &r.uids),
            list(|r| &r.values),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.weights_sha256))),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (action, netuid, hotkey, uid) = (c.string("action")?, c.u16("netuid")?, c.string("hotkey")?, c.u16("uid")?);
        let (version_key, block, block_hash) = (c.u64("version_key")?, c.u64("block")?, c.string("block_hash")?);
        let (extrinsic_hash, endpoint, sha) = (c.string("extrinsic_hash")?, c.string("endpoint")?, c.string("weights_sha256")?);
        let (uids, values) = (c.opt_list_u16("uids")?, c.opt_list_u16("values")?);
        let mut rows = Vec::with_capacity(c.num_rows());
        for i in 0..c.num_rows() {
            rows.push(Row {
                action: action[i].parse().map_err(|e: String| c.value_error("action", i, e))?,
                netuid: netuid[i],
                hotkey: hotkey[i].clone(),
                uid: uid[i],
                version_key: version_key[i],
                block: block[i],
                block_hash: block_hash[i].clone(),
                extrinsic_hash: extrinsic_hash[i].clone(),
                endpoint: endpoint[i].clone(),
                uids: uids[i].clone().unwrap_or_default(),
                values: values[i].clone().unwrap_or_default(),
                weights_sha256: sha[i].clone(),
            });
        }
        Ok(rows)
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by_key(|r| (r.block, r.action.as_str()));
    }
}
