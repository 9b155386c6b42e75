//! `metagraph`: one row per uid of a subnet as read from the chain, with the model each hotkey
//! committed (SPEC §3). File metadata carries the block read at and the sync block's hash, so no
//! later stage needs the chain. Sorted by `uid`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, ListArray, StringArray, UInt16Array, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef, UInt16Type};

use super::{field, list_of, schema_of, Column, Columns, Error, Table};

/// Provenance key holding the block the metagraph was read at (`compute-wins`' default current block).
pub const PROVENANCE_BLOCK: &str = "block";
/// Provenance keys of the profile's sync block and its hash, from which `sample-batches` derives
/// the data seed (upstream.md §4.1).
pub const PROVENANCE_SYNC_BLOCK: &str = "sync_block";
pub const PROVENANCE_SYNC_BLOCK_HASH: &str = "sync_block_hash";

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub netuid: u16,
    pub uid: u16,
    pub hotkey: String,
    pub coldkey: String,
    pub stake: f64,
    pub validator_permit: bool,
    pub registration_block: u64,
    pub commitment: Option<String>,
    pub commit_block: Option<u64>,
    pub repo_namespace: Option<String>,
    pub repo_name: Option<String>,
    pub revision: Option<String>,
    pub secure_hash: Option<String>,
    pub competition_id: Option<u16>,
    pub metadata_error: Option<String>,
    /// The weights this uid (a validator) has set: destination uids and u16 values, as the
    /// chain's `Weights` row holds them; empty for miners. fetch-models' top-miner rule reads them.
    pub weight_uids: Vec<u16>,
    pub weight_values: Vec<u16>,
}

impl Row {
    /// A registered uid with nothing else known yet: no stake, permit, commitment or weights.
    pub fn new(netuid: u16, uid: u16, hotkey: String, coldkey: String) -> Self {
        Self {
            netuid,
            uid,
            hotkey,
            coldkey,
            stake: 0.0,
            validator_permit: false,
            registration_block: 0,
            commitment: None,
            commit_block: None,
            repo_namespace: None,
            repo_name: None,
            revision: None,
            secure_hash: None,
            competition_id: None,
            metadata_error: None,
            weight_uids: Vec::new(),
            weight_values: Vec::new(),
        }
    }
}

pub struct Metagraph;

impl Table for Metagraph {
    const NAME: &'static str = "metagraph";
    const SCHEMA_VERSION: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "netuid", shown: false, about: "the subnet" },
        Column { name: "uid", shown: true, about: "the neuron's slot on the subnet" },
        Column { name: "hotkey", shown: true, about: "the neuron's hotkey (SS58)" },
        Column { name: "coldkey", shown: false, about: "the hotkey's owner (SS58)" },
        Column { name: "stake", shown: true, about: "total stake in TAO" },
        Column { name: "validator_permit", shown: true, about: "whether the uid may set weights" },
        Column { name: "registration_block", shown: false, about: "the block the hotkey registered at" },
        Column { name: "commitment", shown: false, about: "the raw model commitment string" },
        Column { name: "commit_block", shown: true, about: "the block the commitment was made at" },
        Column { name: "repo_namespace", shown: false, about: "Hugging Face namespace of the committed model" },
        Column { name: "repo_name", shown: true, about: "Hugging Face repository name of the committed model" },
        Column { name: "revision", shown: false, about: "the committed commit hash" },
        Column { name: "secure_hash", shown: false, about: "the committed hash binding the model to the hotkey" },
        Column { name: "competition_id", shown: true, about: "the competition the model entered" },
        Column { name: "metadata_error", shown: true, about: "why the commitment did not parse, when it did not" },
        Column { name: "weight_uids", shown: false, about: "uids of this validator's weight row on chain" },
        Column { name: "weight_values", shown: false, about: "u16 values of this validator's weight row on chain" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("netuid", DataType::UInt16, false),
            field("uid", DataType::UInt16, false),
            field("hotkey", DataType::Utf8, false),
            field("coldkey", DataType::Utf8, false),
            field("stake", DataType::Float64, false),
            field("validator_permit", DataType::Boolean, false),
            field("registration_block", DataType::UInt64, false),
            field("commitment", DataType::Utf8, true),
            field("commit_block", DataType::UInt64, true),
            field("repo_namespace", DataType::Utf8, true),
            field("repo_name", DataType::Utf8, true),
            field("revision", DataType::Utf8, true),
            field("secure_hash", DataType::Utf8, true),
            field("competition_id", DataType::UInt16, true),
            field("metadata_error", DataType::Utf8, true),
            field("weight_uids", list_of(DataType::UInt16), true),
            field("weight_values", list_of(DataType::UInt16), true),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        let opt_str = |f: fn(&Row) -> Option<&str>| -> ArrayRef { Arc::new(StringArray::from_iter(rows.iter().map(f))) };
        vec![
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.netuid))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.uid))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.hotkey))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.coldkey))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.stake))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.validator_permit)))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.registration_block))),
            opt_str(|r| r.commitment.as_deref()),
            Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.commit_block))),
            opt_str(|r| r.repo_namespace.as_deref()),
            opt_str(|r| r.repo_name.as_deref()),
            opt_str(|r| r.revision.as_deref()),
            opt_str(|r| r.secure_hash.as_deref()),
            Arc::new(UInt16Array::from_iter(rows.iter().map(|r| r.competition_id))),
            opt_str(|r| r.metadata_error.as_deref()),
            Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(rows.iter().map(|r| Some(r.weight_uids.iter().map(|v| Some(*v)))))),
            Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(
                rows.iter().map(|r| Some(r.weight_values.iter().map(|v| Some(*v)))),
            )),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (netuid, uid, hotkey) = (c.u16("netuid")?, c.u16("uid")?, c.string("hotkey")?);
        let (coldkey, stake) = (c.string("coldkey")?, c.f64("stake")?);
        let (permit, registered) = (c.bool("validator_permit")?, c.u64("registration_block")?);
        let (commitment, commit_block) = (c.opt_string("commitment")?, c.opt_u64("commit_block")?);
        let (namespace, name) = (c.opt_string("repo_namespace")?, c.opt_string("repo_name")?);
        let (revision, secure_hash) = (c.opt_string("revision")?, c.opt_string("secure_hash")?);
        let (competition_id, error) = (c.opt_u16("competition_id")?, c.opt_string("metadata_error")?);
        let (weight_uids, weight_values) = (c.opt_list_u16("weight_uids")?, c.opt_list_u16("weight_values")?);
        let mut rows = Vec::with_capacity(c.num_rows());
        for i in 0..c.num_rows() {
            rows.push(Row {
                netuid: netuid[i],
                uid: uid[i],
                hotkey: hotkey[i].clone(),
                coldkey: coldkey[i].clone(),
                stake: stake[i],
                validator_permit: permit[i],
                registration_block: registered[i],
                commitment: commitment[i].clone(),
                commit_block: commit_block[i],
                repo_namespace: namespace[i].clone(),
                repo_name: name[i].clone(),
                revision: revision[i].clone(),
                secure_hash: secure_hash[i].clone(),
                competition_id: competition_id[i],
                metadata_error: error[i].clone(),
                weight_uids: weight_uids[i].clone().unwrap_or_default(),
                weight_values: weight_values[i].clone().unwrap_or_default(),
            });
            if rows[i].weight_uids.len() != rows[i].weight_values.len() {
                return Err(c.value_error("weight_values", i, "weight_uids and weight_values differ in length"));
            }
        }
        check_unique_uids(c, rows.iter().map(|r| r.uid))?;
        Ok(rows)
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by_key(|r| r.uid);
    }
}

/// A per-uid table holds each uid once; a second row would be evaluated or weighted twice.
pub(super) fn check_unique_uids(c: &Columns, uids: impl IntoIterator<Item = u16>) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, uid) in uids.into_iter().enumerate() {
        if !seen.insert(uid) {
            return Err(c.value_error("uid", i, format!("uid {uid} appears twice")));
        }
    }
    Ok(())
}
