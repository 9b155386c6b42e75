//! `consensus`: the chain's next epoch of a subnet, replayed offline from a `metagraph` table
//! (sync-metadata reads what the epoch reads, issue 25): each uid's consensus, vTrust, incentive
//! and dividends as the runtime will store them, beside what it stored at its last epoch, and
//! which weights the epoch clips. Never touches the network.

use anyhow::Context;

use crate::consensus::{self, math, Parameters, Subnet};
use crate::exit::Outcome;
use crate::files::{self, Location};
use crate::format::printable;
use crate::tables::{self, clips, consensus as table, metagraph};

pub struct Options {
    pub metagraph: Location,
    pub out: Option<Location>,
    pub clips: Option<Location>,
    /// A weights table this validator (its hotkey, SS58) is about to set: its row of the epoch
    /// is replaced by them, as `set-weights` would send them and the chain store them.
    pub mine: Option<(Location, String)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub netuid: u16,
    /// The block the metagraph was read at, and the block whose epoch is predicted.
    pub metagraph_block: u64,
    pub epoch_block: u64,
    pub spec_version: Option<String>,
    /// Set when the metagraph's runtime is not one whose epoch rules valkit implements (spec 293):
    /// the prediction follows spec 293's rules and may differ from what that runtime computes.
    pub rules_warning: Option<String>,
    pub uids: usize,
    /// Validators whose weights make consensus (a permit and active stake), by uid.
    pub validators: Vec<Validator>,
    /// With `--weights`: the validator whose row they replace, and what they give it.
    pub mine: Option<Mine>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Mine {
    /// Without one its weights count for nothing in the epoch.
    pub validator_permit: bool,
    #[serde(flatten)]
    pub validator: Validator,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Validator {
    pub uid: u16,
    pub hotkey: String,
    /// Predicted vTrust, and the chain's from its last epoch.
    pub validator_trust: f64,
    pub chain_validator_trust: Option<f64>,
    /// The weight clipped in all, and the miner where most of it is.
    pub clipped: f64,
    pub most_clipped: Option<clips::Row>,
}

pub fn run(opts: &Options) -> anyhow::Result<(Outcome, Summary)> {
    for out in [&opts.out, &opts.clips].into_iter().flatten() {
        files::ensure_not_input(out, &[&opts.metagraph])?;
    }
    let file = tables::read::<metagraph::Metagraph>(&opts.metagraph)?;
    let provenance = &file.meta.provenance;
    let parameters = Parameters::from_pairs(provenance)
        .map_err(|e| anyhow::anyhow!("{}: {e}", opts.metagraph))?
        .ok_or_else(|| stale(&opts.metagraph, "has no epoch parameters"))?;
    let rows = &file.rows;
    let netuid = rows.first().map(|r| r.netuid).or_else(|| provenance.get("netuid").and_then(|n| n.parse().ok())).unwrap_or(0);
    if let Some((i, r)) = rows.iter().enumerate().find(|(i, r)| usize::from(r.uid) != *i) {
        anyhow::bail!("{}: uid {} is row {i}: the epoch needs every uid of the subnet, 0 to n-1", opts.metagraph, r.uid);
    }
    let epochs: Vec<&metagraph::UidEpoch> = rows
        .iter()
        .map(|r| r.epoch.as_ref().ok_or_else(|| stale(&opts.metagraph, &format!("has no epoch columns for uid {}", r.uid))))
        .collect::<anyhow::Result<_>>()?;
    let metagraph_block: u64 = provenance
        .get(metagraph::PROVENANCE_BLOCK)
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{}: no block in its metadata", opts.metagraph))?;
    let epoch_block = consensus::next_epoch_block(netuid, parameters.tempo, metagraph_block)
        .ok_or_else(|| anyhow::anyhow!("netuid {netuid} has tempo 0: the chain runs no epoch for it"))?;
    let pairs = |uids: &[u16], values: &[u16]| uids.iter().copied().zip(values.iter().copied()).collect::<Vec<_>>();
    let mut subnet = Subnet {
        block: epoch_block,
        parameters,
        last_update: epochs.iter().map(|e| e.last_update).collect(),
        block_at_registration: rows.iter().map(|r| r.registration_block).collect(),
        alpha_stake: epochs.iter().map(|e| e.alpha_stake).collect(),
        root_stake: epochs.iter().map(|e| e.root_stake).collect(),
        validator_permit: rows.iter().map(|r| r.validator_permit).collect(),
        weights: rows.iter().map(|r| pairs(&r.weight_uids, &r.weight_values)).collect(),
        bonds: epochs.iter().map(|e| pairs(&e.bond_uids, &e.bond_values)).collect(),
    };
    let mine_uid = match &opts.mine {
        Some((weights, hotkey)) => Some(replace_row(&mut subnet, rows, weights, hotkey, netuid, metagraph_block)?),
        None => None,
    };
    let epoch = consensus::epoch(&subnet).map_err(|e| anyhow::anyhow!("{}: {e}", opts.metagraph))?;

    let (consensus_u16, vtrust, incentive, dividends) = (
        consensus::stored(&epoch.consensus),
        consensus::stored(&epoch.validator_trust),
        consensus::stored(&epoch.incentive),
        consensus::stored(&epoch.dividends),
    );
    let uid_rows: Vec<table::Row> = rows
        .iter()
        .zip(&epochs)
        .enumerate()
        .map(|(i, (r, e))| table::Row {
            uid: r.uid,
            hotkey: r.hotkey.clone(),
            stake: epoch.stake[i].to_num::<f64>(),
            active: epoch.active[i],
            validator_permit: r.validator_permit,
            next_validator_permit: epoch.validator_permit[i],
            consensus: consensus_u16[i],
            validator_trust: vtrust[i],
            incentive: incentive[i],
            dividends: dividends[i],
            emission_share: epoch.emission_share[i].to_num::<f64>(),
            bond_uids: epoch.bonds[i].iter().map(|(j, _)| *j).collect(),
            bond_values: epoch.bonds[i].iter().map(|(_, b)| *b).collect(),
            chain_consensus: Some(e.consensus),
            chain_validator_trust: Some(e.validator_trust),
            chain_incentive: Some(e.incentive),
            chain_dividends: Some(e.dividends),
        })
        .collect();
    let clip_rows: Vec<clips::Row> = epoch
        .weights
        .iter()
        .enumerate()
        .flat_map(|(i, row)| {
            let consensus = &epoch.consensus;
            row.iter().map(move |(j, w)| {
                let c = consensus[usize::from(*j)];
                clips::Row {
                    validator: i as u16,
                    miner: *j,
                    weight: w.to_num(),
                    consensus: c.to_num(),
                    clipped: w.saturating_sub((*w).min(c)).to_num(),
                }
            })
        })
        .collect();
    let validator = |i: usize| {
        let own: Vec<&clips::Row> = clip_rows.iter().filter(|c| usize::from(c.validator) == i).collect();
        Validator {
            uid: rows[i].uid,
            hotkey: rows[i].hotkey.clone(),
            validator_trust: f64::from(vtrust[i]) / f64::from(u16::MAX),
            chain_validator_trust: Some(f64::from(epochs[i].validator_trust) / f64::from(u16::MAX)),
            clipped: own.iter().map(|c| c.clipped).sum(),
            most_clipped: own.iter().filter(|c| c.clipped > 0.0).max_by(|a, b| a.clipped.total_cmp(&b.clipped)).map(|c| (*c).clone()),
        }
    };
    let validators: Vec<Validator> = (0..rows.len()).filter(|i| epoch.active_stake[*i] > math::zero()).map(validator).collect();
    let mine =
        mine_uid.map(|uid| Mine { validator_permit: rows[usize::from(uid)].validator_permit, validator: validator(usize::from(uid)) });
    let mut out_provenance = std::collections::BTreeMap::new();
    for key in ["endpoint", "genesis_hash", "netuid", "spec_version", metagraph::PROVENANCE_BLOCK, "block_hash"] {
        if let Some(v) = provenance.get(key) {
            out_provenance.insert(key.to_string(), v.clone());
        }
    }
    out_provenance.insert(table::PROVENANCE_EPOCH_BLOCK.to_string(), epoch_block.to_string());
    out_provenance.insert("metagraph_sha256".to_string(), file.sha256.clone());
    if let Some(uid) = mine_uid {
        out_provenance.insert(table::PROVENANCE_MINE_UID.to_string(), uid.to_string());
    }
    if let Some(out) = &opts.out {
        files::write(out, &tables::encode_file::<table::Consensus>(uid_rows, &out_provenance)?)?;
    }
    if let Some(out) = &opts.clips {
        files::write(out, &tables::encode_file::<clips::Clips>(clip_rows, &out_provenance)?)?;
    }
    let spec_version = provenance.get("spec_version").cloned();
    let rules_warning = match spec_version.as_deref() {
        Some(consensus::RULES_SPEC_VERSION) => None,
        other => {
            let runtime = other.map_or_else(|| "an unrecorded runtime".to_string(), |v| format!("runtime spec {v}"));
            let warning = format!(
                "the metagraph was read from {runtime}; valkit implements the epoch of spec {} (runtimes since change it: consensus.md), so this prediction may differ from what the chain stores",
                consensus::RULES_SPEC_VERSION
            );
            tracing::warn!("{warning}");
            Some(warning)
        }
    };
    let summary = Summary { netuid, metagraph_block, epoch_block, spec_version, rules_warning, uids: rows.len(), validators, mine };
    Ok((Outcome::Done, summary))
}

/// Puts the weights table at `location` in the row of `hotkey`'s uid, as the chain stores what
/// `set-weights` sends (max-upscaled u16 pairs), updated at the block after the metagraph's.
fn replace_row(
    subnet: &mut Subnet,
    rows: &[metagraph::Row],
    location: &Location,
    hotkey: &str,
    netuid: u16,
    metagraph_block: u64,
) -> anyhow::Result<u16> {
    let uid = rows
        .iter()
        .find(|r| r.hotkey == hotkey)
        .map(|r| r.uid)
        .ok_or_else(|| anyhow::anyhow!("hotkey {} is not registered on netuid {netuid} in the metagraph", printable(hotkey, &[])))?;
    let table = tables::read::<tables::weights::Weights>(location)?;
    if let Some(theirs) = table.meta.provenance.get("netuid").filter(|n| **n != netuid.to_string()) {
        anyhow::bail!("{location}: these weights are for netuid {theirs}, not the metagraph's {netuid}");
    }
    let plan = crate::stages::set_weights::plan(&table.rows, netuid, None).with_context(|| location.to_string())?;
    if let Some(beyond) = plan.uids.iter().find(|u| usize::from(**u) >= rows.len()) {
        anyhow::bail!("{location}: uid {beyond} is not a uid of netuid {netuid} (it has {})", rows.len());
    }
    let values = math::u16_max_upscale(&plan.values);
    let i = usize::from(uid);
    subnet.weights[i] = plan.uids.iter().copied().zip(values).collect();
    subnet.last_update[i] = metagraph_block + 1;
    Ok(uid)
}

/// A metagraph written before sync-metadata read the epoch's inputs.
fn stale(location: &Location, what: &str) -> anyhow::Error {
    anyhow::anyhow!("{location}: {what} (written before valkit read the epoch's inputs: run sync-metadata again)")
}
