//! `sync-metadata`: the subnet as the chain holds it at one block, written as the `metagraph`
//! table (SPEC §3). Every read is pinned to that block: uids and hotkeys, coldkeys, stake,
//! permits, registration blocks, the validators' weight rows (fetch-models' top-miner rule,
//! upstream.md §1.3) and each hotkey's model commitment (upstream.md §2.1–2.2). A commitment that
//! does not parse is that uid's `metadata_error`, never an abort. The file metadata carries the
//! block, its hash, the profile's sync block and its hash, and the hyperparameters set-weights
//! checks, so no later stage needs the chain.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use subxt::utils::AccountId32;

use crate::chain::client::{field_u128s, ss58, Chain};
use crate::chain::commitment::ModelId;
use crate::chain::registration;
use crate::chain::subnet::{self, Hyperparameters};
use crate::competition::Profile;
use crate::exit::Outcome;
use crate::files::{self, Location};
use crate::tables::{self, metagraph};

/// Owner lookups in flight at once (one RPC per hotkey).
const CONCURRENT_READS: usize = 16;
/// One TAO is 10^9 rao; the SDK's `metagraph.S` is in TAO.
const RAO_PER_TAO: f64 = 1e9;

pub struct Options {
    pub endpoint: String,
    pub netuid: u16,
    pub profile: Profile,
    /// Read at this block; `None` is the finalized head.
    pub block: Option<u64>,
    /// Bounds each RPC (and the connection).
    pub rpc_timeout: Duration,
    pub out: Location,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub netuid: u16,
    pub block: u64,
    pub block_hash: String,
    pub sync_block: u64,
    pub sync_block_hash: String,
    pub uids: usize,
    pub commitments: usize,
    pub metadata_errors: usize,
    pub validator_permits: usize,
    pub out: String,
}

pub async fn run(opts: &Options) -> anyhow::Result<(Outcome, Summary)> {
    let chain = Chain::connect(&opts.endpoint, opts.rpc_timeout).await?;
    let at = chain.at(opts.block).await?;
    let netuid = opts.netuid;
    let block = at.number();
    subnet::ensure_exists(&at, netuid).await?;
    let n = subnet::size(&at, netuid).await?;
    let keys = subnet::per_uid(&at, "Keys", netuid).await?;
    let registered = subnet::per_uid(&at, "BlockAtRegistration", netuid).await?;
    let weights = subnet::per_uid(&at, "Weights", netuid).await?;
    let bonds = subnet::per_uid(&at, "Bonds", netuid).await?;
    let commitments = subnet::commitments(&at, netuid).await?;
    let permits = subnet::validator_permits(&at, netuid).await?;

    let mut hotkeys = Vec::with_capacity(usize::from(n));
    for uid in 0..n {
        let raw =
            keys.get(&uid).with_context(|| format!("uid {uid} of netuid {netuid} has no hotkey at block {block} (SubnetworkN is {n})"))?;
        hotkeys.push(AccountId32(raw.as_slice().try_into().context("a Keys value is not a 32-byte account")?));
    }
    let coldkeys: Vec<AccountId32> =
        futures::stream::iter(hotkeys.iter()).map(|hotkey| subnet::owner(&at, hotkey)).buffered(CONCURRENT_READS).try_collect().await?;
    let stakes = Stakes::read(&at, netuid, usize::from(n)).await?;
    // What the epoch reads besides: the last update of each uid (mechanism 0's), and what the
    // last epoch stored.
    let last_update = subnet::last_update(&at, subnet::storage_index(netuid, 0)?).await?;
    let results = subnet::EpochResults::read(&at, netuid).await?;

    let mut rows = Vec::with_capacity(usize::from(n));
    for (uid, hotkey) in (0..n).zip(&hotkeys) {
        let registration_block = match registered.get(&uid) {
            Some(bytes) => decode_u64(bytes).with_context(|| format!("BlockAtRegistration of uid {uid}"))?,
            None => 0,
        };
        let (weight_uids, weight_values) = match weights.get(&uid) {
            Some(bytes) => registration::weight_pairs(bytes).with_context(|| format!("Weights of uid {uid}"))?,
            None => (Vec::new(), Vec::new()),
        };
        let (bond_uids, bond_values) = match bonds.get(&uid) {
            Some(bytes) => registration::weight_pairs(bytes).with_context(|| format!("Bonds of uid {uid}"))?,
            None => (Vec::new(), Vec::new()),
        };
        let i = usize::from(uid);
        let epoch = metagraph::UidEpoch {
            last_update: of_uid(&last_update, i),
            alpha_stake: stakes.alpha[i],
            root_stake: stakes.root[i],
            bond_uids,
            bond_values,
            consensus: of_uid(&results.consensus, i),
            validator_trust: of_uid(&results.validator_trust, i),
            incentive: of_uid(&results.incentive, i),
            dividends: of_uid(&results.dividends, i),
            trust: results.trust.as_deref().map(|t| of_uid(t, i)),
            rank: results.rank.as_deref().map(|r| of_uid(r, i)),
            emission: of_uid(&results.emission, i),
        };
        let mut row = metagraph::Row {
            stake: stakes.total[i] as f64 / RAO_PER_TAO,
            epoch: Some(epoch),
            validator_permit: of_uid(&permits, i),
            registration_block,
            weight_uids,
            weight_values,
            ..metagraph::Row::new(netuid, uid, ss58(hotkey), ss58(&coldkeys[usize::from(uid)]))
        };
        if let Some(bytes) = commitments.get(hotkey) {
            read_commitment(&mut row, bytes);
        }
        rows.push(row);
    }

    let sync_block = u64::try_from(opts.profile.sync_block(block).max(0)).expect("non-negative");
    let sync_block_hash = chain.block_hash(sync_block).await?;
    let mut provenance = BTreeMap::new();
    provenance.insert("endpoint".to_string(), chain.endpoint().to_string());
    provenance.insert("genesis_hash".to_string(), chain.genesis_hash());
    provenance.insert("netuid".to_string(), netuid.to_string());
    provenance.insert("profile".to_string(), opts.profile.name.clone());
    provenance.insert("spec_version".to_string(), at.spec_version().to_string());
    provenance.insert(metagraph::PROVENANCE_BLOCK.to_string(), block.to_string());
    provenance.insert("block_hash".to_string(), at.hash());
    provenance.insert(metagraph::PROVENANCE_SYNC_BLOCK.to_string(), sync_block.to_string());
    provenance.insert(metagraph::PROVENANCE_SYNC_BLOCK_HASH.to_string(), sync_block_hash.clone());
    provenance.insert("subnetwork_n".to_string(), n.to_string());
    let hyperparameters = Hyperparameters::read(&at, netuid).await?;
    for (key, value) in hyperparameters.pairs() {
        provenance.insert(key.to_string(), value);
    }
    for (key, value) in subnet::epoch_parameters(&at, netuid, hyperparameters.tempo).await?.pairs() {
        provenance.insert(key, value);
    }

    let summary = Summary {
        netuid,
        block,
        block_hash: at.hash(),
        sync_block,
        sync_block_hash,
        uids: rows.len(),
        commitments: rows.iter().filter(|r| r.commitment.is_some() || r.metadata_error.is_some()).count(),
        metadata_errors: rows.iter().filter(|r| r.metadata_error.is_some()).count(),
        validator_permits: rows.iter().filter(|r| r.validator_permit).count(),
        out: opts.out.to_string(),
    };
    files::write(&opts.out, &tables::encode_file::<metagraph::Metagraph>(rows, &provenance)?)?;
    Ok((Outcome::Done, summary))
}

/// Fills a row's commitment columns, or its `metadata_error` (upstream.md §2.1: anything that
/// does not parse means "no model" for this uid).
fn read_commitment(row: &mut metagraph::Row, bytes: &[u8]) {
    let registration = match registration::decode(bytes) {
        Ok(r) => r,
        Err(e) => {
            row.metadata_error = Some(e.to_string());
            return;
        }
    };
    row.commit_block = Some(u64::from(registration.block));
    let text = match registration::commitment_text(&registration) {
        Ok(text) => text,
        Err(e) => {
            row.metadata_error = Some(e);
            return;
        }
    };
    match ModelId::parse(&text) {
        Ok(id) => {
            row.repo_namespace = Some(id.namespace);
            row.repo_name = Some(id.name);
            row.revision = id.commit;
            row.secure_hash = id.secure_hash;
            row.competition_id = Some(id.competition_id);
        }
        Err(e) => row.metadata_error = Some(e.to_string()),
    }
    row.commitment = Some(text);
}

/// Each uid's stake in rao, from the runtime's own metagraph (read by field name, so new fields
/// do not matter): the total as the SDK's `metagraph.S` (alpha plus weighted root TAO), and the
/// alpha and root TAO the epoch counts (`get_stake_weights_for_network`, child keys applied).
struct Stakes {
    total: Vec<u128>,
    alpha: Vec<u64>,
    root: Vec<u64>,
}

impl Stakes {
    async fn read(at: &crate::chain::client::Block<'_>, netuid: u16, n: usize) -> anyhow::Result<Self> {
        let metagraph: subxt::dynamic::Value = at.runtime_api("SubnetInfoRuntimeApi", "get_metagraph", (netuid,)).await?;
        let field = |name: &str| -> anyhow::Result<Vec<u128>> {
            let values = field_u128s(&metagraph, name)
                .or_else(|| subxt::dynamic::At::at(&metagraph, 0).and_then(|inner| field_u128s(inner, name)))
                .with_context(|| format!("SubnetInfoRuntimeApi.get_metagraph has no {name} field"))?;
            if values.len() != n {
                bail!("SubnetInfoRuntimeApi.get_metagraph gives {} values of {name} for {n} uids", values.len());
            }
            Ok(values)
        };
        let rao = |values: Vec<u128>, name: &str| -> anyhow::Result<Vec<u64>> {
            values.into_iter().map(|v| u64::try_from(v).with_context(|| format!("a {name} of {v} rao"))).collect()
        };
        Ok(Self {
            total: field("total_stake")?,
            alpha: rao(field("alpha_stake")?, "alpha_stake")?,
            root: rao(field("tao_stake")?, "tao_stake")?,
        })
    }
}

/// Entry `i` of a per-uid vector, or its default (0, false) where the chain has not extended the
/// vector to that uid yet.
fn of_uid<T: Copy + Default>(values: &[T], i: usize) -> T {
    values.get(i).copied().unwrap_or_default()
}

fn decode_u64(bytes: &[u8]) -> anyhow::Result<u64> {
    Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| anyhow::anyhow!("{} bytes, expected 8", bytes.len()))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> metagraph::Row {
        metagraph::Row::new(2, 0, String::new(), String::new())
    }

    fn raw(text: &[u8]) -> Vec<u8> {
        let mut out = [0u8; 8].to_vec();
        out.extend_from_slice(&77u32.to_le_bytes());
        out.push(1 << 2);
        out.push(text.len() as u8 + 1);
        out.extend_from_slice(text);
        out
    }

    #[test]
    fn commitments_parse_or_become_the_uids_metadata_error() {
        let mut ok = row();
        read_commitment(&mut ok, &raw(b"org:model:None:abc=:3"));
        assert_eq!((ok.commit_block, ok.competition_id, ok.revision.clone()), (Some(77), Some(3), None));
        assert_eq!((ok.repo_namespace.as_deref(), ok.secure_hash.as_deref(), ok.metadata_error.clone()), (Some("org"), Some("abc="), None));

        let mut legacy = row();
        read_commitment(&mut legacy, &raw(b"org:old:0123:hash"));
        assert_eq!((legacy.competition_id, legacy.secure_hash.as_deref()), (Some(0), Some("hash")));

        for (bytes, expected) in [
            (&b"org:model:abc"[..], "fewer than 4"),
            (&b"org:model:abc:def:x"[..], "competition id"),
            (&b"org:m\xff:abc:def:1"[..], "not UTF-8"),
        ] {
            let mut bad = row();
            read_commitment(&mut bad, &raw(bytes));
            let error = bad.metadata_error.clone().unwrap();
            assert!(error.contains(expected), "{error}");
            assert_eq!((bad.commit_block, bad.repo_name, bad.competition_id), (Some(77), None, None));
        }
        let mut truncated = row();
        read_commitment(&mut truncated, &[1, 2, 3]);
        assert!(truncated.metadata_error.unwrap().contains("ends after"));
    }
}
