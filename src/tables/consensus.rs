//! `consensus`: one row per uid of a subnet, the chain's next epoch as `valkit consensus` predicts
//! it (issue 25, consensus.md), with the values the chain stored at its last epoch beside each
//! prediction. u16 values are proportions of 65535 as the chain stores them. Sorted by `uid`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, ListArray, StringArray, UInt16Array};
use arrow::datatypes::{DataType, SchemaRef, UInt16Type};

use super::{field, list_of, schema_of, Column, Columns, Error, Table};

/// Provenance key of the block whose epoch the table predicts.
pub const PROVENANCE_EPOCH_BLOCK: &str = "epoch_block";
/// Provenance key of the validator whose row `--weights` replaced, when it did.
pub const PROVENANCE_MINE_UID: &str = "mine_uid";

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub uid: u16,
    pub hotkey: String,
    /// Share of the subnet's stake (after the stake threshold).
    pub stake: f64,
    pub active: bool,
    /// The permit the epoch uses (stored), and the one it gives for the next.
    pub validator_permit: bool,
    pub next_validator_permit: bool,
    pub consensus: u16,
    pub validator_trust: u16,
    pub incentive: u16,
    pub dividends: u16,
    /// Share of the subnet's emission.
    pub emission_share: f64,
    /// The bonds this epoch stores for the next (a validator's), uids and u16 values.
    pub bond_uids: Vec<u16>,
    pub bond_values: Vec<u16>,
    /// The chain's values from its last epoch (null when the metagraph has none).
    pub chain_consensus: Option<u16>,
    pub chain_validator_trust: Option<u16>,
    pub chain_incentive: Option<u16>,
    pub chain_dividends: Option<u16>,
}

pub struct Consensus;

impl Table for Consensus {
    const NAME: &'static str = "consensus";
    const SCHEMA_VERSION: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "uid", shown: true, about: "the neuron's slot on the subnet" },
        Column { name: "hotkey", shown: false, about: "the neuron's hotkey (SS58)" },
        Column { name: "stake", shown: true, about: "share of the subnet's stake the epoch counts" },
        Column { name: "active", shown: true, about: "set weights within the activity cutoff" },
        Column { name: "validator_permit", shown: true, about: "the permit this epoch uses" },
        Column { name: "next_validator_permit", shown: false, about: "the permit this epoch gives for the next" },
        Column { name: "consensus", shown: true, about: "predicted consensus weight on this uid, of 65535" },
        Column { name: "validator_trust", shown: true, about: "predicted vTrust: the part of its weights not clipped, of 65535" },
        Column { name: "incentive", shown: true, about: "predicted incentive, of 65535" },
        Column { name: "dividends", shown: true, about: "predicted dividends, of 65535" },
        Column { name: "emission_share", shown: false, about: "predicted share of the subnet's emission" },
        Column { name: "bond_uids", shown: false, about: "uids of the bonds this epoch stores for the validator" },
        Column { name: "bond_values", shown: false, about: "u16 values of the bonds this epoch stores for the validator" },
        Column { name: "chain_consensus", shown: false, about: "consensus the chain stored at its last epoch" },
        Column { name: "chain_validator_trust", shown: true, about: "vTrust the chain stored at its last epoch" },
        Column { name: "chain_incentive", shown: false, about: "incentive the chain stored at its last epoch" },
        Column { name: "chain_dividends", shown: false, about: "dividends the chain stored at its last epoch" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("uid", DataType::UInt16, false),
            field("hotkey", DataType::Utf8, false),
            field("stake", DataType::Float64, false),
            field("active", DataType::Boolean, false),
            field("validator_permit", DataType::Boolean, false),
            field("next_validator_permit", DataType::Boolean, false),
            field("consensus", DataType::UInt16, false),
            field("validator_trust", DataType::UInt16, false),
            field("incentive", DataType::UInt16, false),
            field("dividends", DataType::UInt16, false),
            field("emission_share", DataType::Float64, false),
            field("bond_uids", list_of(DataType::UInt16), false),
            field("bond_values", list_of(DataType::UInt16), false),
            field("chain_consensus", DataType::UInt16, true),
            field("chain_validator_trust", DataType::UInt16, true),
            field("chain_incentive", DataType::UInt16, true),
            field("chain_dividends", DataType::UInt16, true),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        let bools = |f: fn(&Row) -> bool| -> ArrayRef { Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(f(r))))) };
        let u16s = |f: fn(&Row) -> u16| -> ArrayRef { Arc::new(UInt16Array::from_iter_values(rows.iter().map(f))) };
        let opt_u16s = |f: fn(&Row) -> Option<u16>| -> ArrayRef { Arc::new(UInt16Array::from_iter(rows.iter().map(f))) };
        vec![
            u16s(|r| r.uid),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.hotkey))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.stake))),
            bools(|r| r.active),
            bools(|r| r.validator_permit),
            bools(|r| r.next_validator_permit),
            u16s(|r| r.consensus),
            u16s(|r| r.validator_trust),
            u16s(|r| r.incentive),
            u16s(|r| r.dividends),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.emission_share))),
            Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(rows.iter().map(|r| Some(r.bond_uids.iter().map(|v| Some(*v)))))),
            Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(rows.iter().map(|r| Some(r.bond_values.iter().map(|v| Some(*v)))))),
            opt_u16s(|r| r.chain_consensus),
            opt_u16s(|r| r.chain_validator_trust),
            opt_u16s(|r| r.chain_incentive),
            opt_u16s(|r| r.chain_dividends),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (uid, hotkey, stake) = (c.u16("uid")?, c.string("hotkey")?, c.f64("stake")?);
        let (active, permit, next_permit) = (c.bool("active")?, c.bool("validator_permit")?, c.bool("next_validator_permit")?);
        let (consensus, vtrust, incentive, dividends) =
            (c.u16("consensus")?, c.u16("validator_trust")?, c.u16("incentive")?, c.u16("dividends")?);
        let emission_share = c.f64("emission_share")?;
        let (bond_uids, bond_values) = (c.opt_list_u16("bond_uids")?, c.opt_list_u16("bond_values")?);
        let (chain_consensus, chain_vtrust) = (c.opt_u16("chain_consensus")?, c.opt_u16("chain_validator_trust")?);
        let (chain_incentive, chain_dividends) = (c.opt_u16("chain_incentive")?, c.opt_u16("chain_dividends")?);
        if let Some(i) = (0..c.num_rows()).find(|i| bond_uids[*i].as_ref().map(Vec::len) != bond_values[*i].as_ref().map(Vec::len)) {
            return Err(c.value_error("bond_values", i, "bond_uids and bond_values differ in length"));
        }
        let rows: Vec<Row> = (0..c.num_rows())
            .map(|i| Row {
                uid: uid[i],
                hotkey: hotkey[i].clone(),
                stake: stake[i],
                active: active[i],
                validator_permit: permit[i],
                next_validator_permit: next_permit[i],
                consensus: consensus[i],
                validator_trust: vtrust[i],
                incentive: incentive[i],
                dividends: dividends[i],
                emission_share: emission_share[i],
                bond_uids: bond_uids[i].clone().unwrap_or_default(),
                bond_values: bond_values[i].clone().unwrap_or_default(),
                chain_consensus: chain_consensus[i],
                chain_validator_trust: chain_vtrust[i],
                chain_incentive: chain_incentive[i],
                chain_dividends: chain_dividends[i],
            })
            .collect();
        super::metagraph::check_unique_uids(c, rows.iter().map(|r| r.uid))?;
        Ok(rows)
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by_key(|r| r.uid);
    }
}
