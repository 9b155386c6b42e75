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
    /// What the chain's epoch reads of this uid and what its last epoch stored (v2; `None` when
    /// read from a v1 table).
    pub epoch: Option<UidEpoch>,
}

/// One uid's part of the epoch (consensus.md): its inputs at the block read, and the chain's own
/// results of the last epoch beside them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UidEpoch {
    /// `LastUpdate`: the block of its last weights.
    pub last_update: u64,
    /// Stake in rao as the epoch counts it (inherited through child keys): alpha on this subnet,
    /// and TAO on the root subnet (weighted by `TaoWeight` in the epoch).
    pub alpha_stake: u64,
    pub root_stake: u64,
    /// `Bonds`: this validator's bonds, destination uids and u16 values as stored.
    pub bond_uids: Vec<u16>,
    pub bond_values: Vec<u16>,
    /// The last epoch's results as stored (u16 proportions of 65535; emission in rao).
    pub consensus: u16,
    pub validator_trust: u16,
    pub incentive: u16,
    pub dividends: u16,
    /// Null where the runtime no longer stores them (spec 424 dropped `Trust` and `Rank`).
    pub trust: Option<u16>,
    pub rank: Option<u16>,
    pub emission: u64,
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
            epoch: None,
        }
    }
}

pub struct Metagraph;

impl Table for Metagraph {
    const NAME: &'static str = "metagraph";
    // 2: the epoch's inputs and the chain's last results per uid (issue 25).
    const SCHEMA_VERSION: u32 = 2;
    const OLDEST_READABLE: u32 = 1;
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
        Column { name: "last_update", shown: false, about: "the block of the uid's last weights (LastUpdate)" },
        Column { name: "alpha_stake", shown: false, about: "alpha stake in rao on this subnet, as the epoch counts it" },
        Column { name: "root_stake", shown: false, about: "TAO stake in rao on the root subnet, as the epoch counts it" },
        Column { name: "bond_uids", shown: false, about: "uids of this validator's bonds on chain" },
        Column { name: "bond_values", shown: false, about: "u16 values of this validator's bonds on chain" },
        Column { name: "consensus", shown: false, about: "the last epoch's consensus, of 65535" },
        Column { name: "validator_trust", shown: false, about: "the last epoch's validator trust (vTrust), of 65535" },
        Column { name: "incentive", shown: false, about: "the last epoch's incentive, of 65535" },
        Column { name: "dividends", shown: false, about: "the last epoch's dividends, of 65535" },
        Column { name: "trust", shown: false, about: "the last epoch's trust, of 65535" },
        Column { name: "rank", shown: false, about: "the last epoch's rank, of 65535" },
        Column { name: "emission", shown: false, about: "the last epoch's emission in rao" },
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
            field("last_update", DataType::UInt64, true),
            field("alpha_stake", DataType::UInt64, true),
            field("root_stake", DataType::UInt64, true),
            field("bond_uids", list_of(DataType::UInt16), true),
            field("bond_values", list_of(DataType::UInt16), true),
            field("consensus", DataType::UInt16, true),
            field("validator_trust", DataType::UInt16, true),
            field("incentive", DataType::UInt16, true),
            field("dividends", DataType::UInt16, true),
            field("trust", DataType::UInt16, true),
            field("rank", DataType::UInt16, true),
            field("emission", DataType::UInt64, true),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        let opt_str = |f: fn(&Row) -> Option<&str>| -> ArrayRef { Arc::new(StringArray::from_iter(rows.iter().map(f))) };
        let epoch_u64 =
            |f: fn(&UidEpoch) -> u64| -> ArrayRef { Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.epoch.as_ref().map(f)))) };
        let epoch_u16 = |f: fn(&UidEpoch) -> Option<u16>| -> ArrayRef {
            Arc::new(UInt16Array::from_iter(rows.iter().map(|r| r.epoch.as_ref().and_then(f))))
        };
        let epoch_list = |f: fn(&UidEpoch) -> &Vec<u16>| -> ArrayRef {
            Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(
                rows.iter().map(|r| r.epoch.as_ref().map(|e| f(e).iter().map(|v| Some(*v)))),
            ))
        };
        let mut columns: Vec<ArrayRef> = vec![
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
        ];
        columns.extend([
            epoch_u64(|e| e.last_update),
            epoch_u64(|e| e.alpha_stake),
            epoch_u64(|e| e.root_stake),
            epoch_list(|e| &e.bond_uids),
            epoch_list(|e| &e.bond_values),
            epoch_u16(|e| Some(e.consensus)),
            epoch_u16(|e| Some(e.validator_trust)),
            epoch_u16(|e| Some(e.incentive)),
            epoch_u16(|e| Some(e.dividends)),
            epoch_u16(|e| e.trust),
            epoch_u16(|e| e.rank),
            epoch_u64(|e| e.emission),
        ]);
        columns
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
        let epochs = EpochColumns::read(c)?;
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
                // Trust and rank only where the runtime still stores them.
                epoch: epochs.row(c, i)?,
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

/// The epoch columns of a metagraph (all null in a v1 table).
struct EpochColumns {
    last_update: Vec<Option<u64>>,
    alpha_stake: Vec<Option<u64>>,
    root_stake: Vec<Option<u64>>,
    bond_uids: Vec<Option<Vec<u16>>>,
    bond_values: Vec<Option<Vec<u16>>>,
    consensus: Vec<Option<u16>>,
    validator_trust: Vec<Option<u16>>,
    incentive: Vec<Option<u16>>,
    dividends: Vec<Option<u16>>,
    trust: Vec<Option<u16>>,
    rank: Vec<Option<u16>>,
    emission: Vec<Option<u64>>,
}

impl EpochColumns {
    fn read(c: &Columns) -> Result<Self, Error> {
        Ok(Self {
            last_update: c.opt_u64("last_update")?,
            alpha_stake: c.opt_u64("alpha_stake")?,
            root_stake: c.opt_u64("root_stake")?,
            bond_uids: c.opt_list_u16("bond_uids")?,
            bond_values: c.opt_list_u16("bond_values")?,
            consensus: c.opt_u16("consensus")?,
            validator_trust: c.opt_u16("validator_trust")?,
            incentive: c.opt_u16("incentive")?,
            dividends: c.opt_u16("dividends")?,
            trust: c.opt_u16("trust")?,
            rank: c.opt_u16("rank")?,
            emission: c.opt_u64("emission")?,
        })
    }

    /// Row i's epoch: every column but trust and rank (which runtimes since spec 424 do not
    /// store) set, or none of them.
    fn row(&self, c: &Columns, i: usize) -> Result<Option<UidEpoch>, Error> {
        let required = (
            self.last_update[i],
            self.alpha_stake[i],
            self.root_stake[i],
            self.bond_uids[i].clone(),
            self.bond_values[i].clone(),
            self.consensus[i],
            self.validator_trust[i],
            self.incentive[i],
            self.dividends[i],
            self.emission[i],
        );
        match required {
            (None, None, None, None, None, None, None, None, None, None) => Ok(None),
            (
                Some(last_update),
                Some(alpha_stake),
                Some(root_stake),
                Some(bond_uids),
                Some(bond_values),
                Some(consensus),
                Some(validator_trust),
                Some(incentive),
                Some(dividends),
                Some(emission),
            ) => {
                if bond_uids.len() != bond_values.len() {
                    return Err(c.value_error("bond_values", i, "bond_uids and bond_values differ in length"));
                }
                Ok(Some(UidEpoch {
                    last_update,
                    alpha_stake,
                    root_stake,
                    bond_uids,
                    bond_values,
                    consensus,
                    validator_trust,
                    incentive,
                    dividends,
                    trust: self.trust[i],
                    rank: self.rank[i],
                    emission,
                }))
            }
            _ => Err(c.value_error("last_update", i, "the epoch columns are set only in part")),
        }
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
