//! `set-weights`: sends a weights table to the chain as the bittensor SDK would (chain.md §3.5:
//! float32 → u16, round half to even, zeros dropped), after the checks the SDK and the pallet make,
//! each with its own message and exit code (SPEC §6): an unregistered hotkey, no validator permit
//! or a version key below the subnet's exit 2; the rate limit exits 3 with the blocks to go.
//!
//! Without a chain (`--dry-run` and no `--network`) it only converts, so an operator can preview a
//! table anywhere. With commit-reveal on, a run either reveals the commit an earlier run left in the
//! state directory (once its reveal epoch has come) or commits new weights, keeping the salt in a
//! state file written before the commit is sent. Timelocked commit-reveal is refused.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::chain::calls;
use crate::chain::client::{Block, Chain, Included, PalletError};
use crate::chain::wallet::Hotkey;
use crate::exit::Outcome;
use crate::files::{self, Location};
use crate::stages::compute_wins::PROVENANCE_VERSION_KEY;
use crate::tables::{self, receipts, weights};
use crate::weights::{convert_for_emit, epoch_index, first_block_of_epoch, weight_commit_hash};

const M: &str = "SubtensorModule";
/// The SDK (BT9) signs weights with a mortal era of 5 blocks: a stale transaction dies quickly.
pub const MORTAL_BLOCKS: u64 = 5;

pub struct Options {
    pub weights: Location,
    pub netuid: u16,
    /// `None`: the version key compute-wins recorded in the weights table.
    pub version_key: Option<u64>,
    pub dry_run: bool,
    /// Absent: convert only (needs `dry_run`).
    pub chain: Option<ChainOptions>,
}

pub struct ChainOptions {
    pub endpoint: String,
    pub rpc_timeout: Duration,
    pub hotkey: Hotkey,
    /// Appended with one row per submission.
    pub receipts: Location,
    /// Holds the pending commit-reveal salt between runs.
    pub state_dir: PathBuf,
}

/// What would be (or was) sent.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub netuid: u16,
    /// Sent with the weights; `None` when neither `--version-key` nor the table gives one.
    pub version_key: Option<u64>,
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    /// Uids with a positive weight that rounds to 0 and is therefore not sent.
    pub dropped_by_rounding: Vec<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `dry_run`, `set_weights`, `commit_weights` or `reveal_weights`.
    pub action: String,
    #[serde(flatten)]
    pub plan: Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub included: Option<Included>,
    /// For a commit: the first block at which a later run can reveal it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reveal_from_block: Option<u64>,
}

pub async fn run(opts: &Options) -> anyhow::Result<(Outcome, Summary)> {
    let input = files::read(&opts.weights)?;
    let table = tables::decode_file::<weights::Weights>(&input)?;
    if let Some(netuid) = table.meta.provenance.get("netuid") {
        if *netuid != opts.netuid.to_string() {
            bail!("{}: these weights are for netuid {netuid}, not --netuid {}", opts.weights, opts.netuid);
        }
    }
    let recorded = table.meta.provenance.get(PROVENANCE_VERSION_KEY).and_then(|k| k.parse().ok());
    let plan = plan(&table.rows, opts.netuid, opts.version_key.or(recorded)).with_context(|| format!("{}", opts.weights))?;
    let Some(chain_opts) = &opts.chain else {
        let summary = Summary { action: "dry_run".into(), plan, hotkey: None, uid: None, included: None, reveal_from_block: None };
        return Ok((Outcome::Done, summary));
    };
    if plan.uids.is_empty() {
        let why = "every weight is zero: nothing to send yet".to_string();
        let summary = Summary { action: "none".into(), plan, hotkey: None, uid: None, included: None, reveal_from_block: None };
        return Ok((Outcome::NothingToDo { why }, summary));
    }
    let chain = Chain::connect(&chain_opts.endpoint, chain_opts.rpc_timeout).await?;
    let mut submitter = Submitter { chain: &chain, opts, chain_opts, weights_sha256: input.sha256.clone() };
    submitter.run(plan).await
}

/// The table's weights converted exactly as the SDK converts them; the table's own `weight_u16`
/// column must agree, or the file was edited by hand and is refused.
pub fn plan(rows: &[weights::Row], netuid: u16, version_key: Option<u64>) -> anyhow::Result<Plan> {
    // What the SDK's conversion would quietly turn into something else (a NaN into 0, a uid
    // twice into two weights) is refused before anything is shown or sent.
    let mut seen = std::collections::BTreeSet::new();
    for r in rows {
        if !r.weight.is_finite() || r.weight < 0.0 {
            bail!("uid {}: weight {} is not a finite, non-negative number", r.uid, r.weight);
        }
        if !seen.insert(r.uid) {
            bail!("uid {} has more than one row; each uid gets one weight", r.uid);
        }
    }
    let uids: Vec<i64> = rows.iter().map(|r| i64::from(r.uid)).collect();
    let floats: Vec<f64> = rows.iter().map(|r| f64::from(r.weight)).collect();
    let (sent_uids, values) = convert_for_emit(&uids, &floats)?;
    let sent: BTreeMap<u16, u16> = sent_uids.iter().copied().zip(values.iter().copied()).collect();
    for r in rows {
        let expected = sent.get(&r.uid).copied().unwrap_or(0);
        if r.weight_u16 != expected {
            bail!(
                "uid {}: weight_u16 is {} but its weight {} converts to {expected}; the table was not written by compute-wins",
                r.uid,
                r.weight_u16,
                r.weight
            );
        }
    }
    let dropped_by_rounding = rows.iter().filter(|r| r.weight > 0.0 && !sent.contains_key(&r.uid)).map(|r| r.uid).collect();
    Ok(Plan { netuid, version_key, uids: sent_uids, values, dropped_by_rounding })
}

/// A commit waiting for its reveal epoch, kept in the state directory between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingCommit {
    netuid: u16,
    hotkey: String,
    uids: Vec<u16>,
    values: Vec<u16>,
    salt: Vec<u16>,
    version_key: u64,
    /// Block the commit was made from (the finalized head when it was sent), and where it landed.
    commit_block: u64,
    hash: String,
    weights_sha256: String,
}

struct Submitter<'a> {
    chain: &'a Chain,
    opts: &'a Options,
    chain_opts: &'a ChainOptions,
    weights_sha256: String,
}

/// The subnet state the checks need, read at one block.
struct Subnet {
    uid: u16,
    block: u64,
    tempo: u16,
    commit_reveal: bool,
}

impl Submitter<'_> {
    async fn run(&mut self, plan: Plan) -> anyhow::Result<(Outcome, Summary)> {
        let hotkey = &self.chain_opts.hotkey;
        let version_key = plan.version_key.context("no version key to send: pass --version-key (the weights table does not record one)")?;
        // The finalized head: at most the best block, so the rate limit is never judged early.
        let at = self.chain.at(None).await?;
        let subnet = self.check(&at, &plan, version_key).await?;
        let summary = |action: &str, included, reveal_from_block| Summary {
            action: action.into(),
            plan: plan.clone(),
            hotkey: Some(hotkey.ss58()),
            uid: Some(subnet.uid),
            included,
            reveal_from_block,
        };
        if subnet.commit_reveal {
            return self
                .commit_reveal(&at, &subnet, &plan, version_key)
                .await
                .map(|(outcome, action, included, reveal)| (outcome, summary(action, included, reveal)));
        }
        if let Some(outcome) = rate_limited(&at, &subnet, self.opts.netuid).await? {
            return Ok((outcome, summary("none", None, None)));
        }
        if self.opts.dry_run {
            return Ok((Outcome::Done, summary("dry_run", None, None)));
        }
        let call = calls::set_weights(plan.netuid, &plan.uids, &plan.values, version_key);
        match self.submit(&call, receipts::Action::SetWeights, subnet.uid, &plan.uids, &plan.values, version_key).await {
            Ok(included) => Ok((Outcome::Done, summary("set_weights", Some(included), None))),
            Err(e) if too_soon(&e) => Ok((Outcome::NothingToDo { why: e.to_string() }, summary("none", None, None))),
            Err(e) => Err(e),
        }
    }

    /// The SDK's and the pallet's checks that do not depend on commit-reveal (chain.md §3.2).
    async fn check(&self, at: &Block<'_>, plan: &Plan, version_key: u64) -> anyhow::Result<Subnet> {
        let netuid = self.opts.netuid;
        let hotkey = &self.chain_opts.hotkey;
        let block = at.number();
        if !at.value::<_, bool>(M, "NetworksAdded", (netuid,)).await? {
            bail!("netuid {netuid} does not exist on {} at block {block}", self.chain.endpoint());
        }
        let uid: Option<u16> = at.optional(M, "Uids", (netuid, hotkey.account)).await?;
        let Some(uid) = uid else {
            bail!("hotkey {} is not registered on netuid {netuid} (block {block}); register it first", hotkey.ss58());
        };
        let chain_key: u64 = at.value(M, "WeightsVersionKey", (netuid,)).await?;
        if chain_key != 0 && version_key < chain_key {
            bail!(
                "version key {version_key} is lower than netuid {netuid}'s WeightsVersionKey {chain_key}: the chain would refuse the weights; update valkit or pass --version-key"
            );
        }
        let permits: Vec<bool> = at.value(M, "ValidatorPermit", (netuid,)).await?;
        let self_weight_only = plan.uids == [uid];
        if !self_weight_only && !permits.get(usize::from(uid)).copied().unwrap_or(false) {
            bail!(
                "uid {uid} ({}) has no validator permit on netuid {netuid} at block {block}; only validators may set weights",
                hotkey.ss58()
            );
        }
        let tempo: u16 = at.value(M, "Tempo", (netuid,)).await?;
        let commit_reveal: bool = at.value(M, "CommitRevealWeightsEnabled", (netuid,)).await?;
        Ok(Subnet { uid, block, tempo, commit_reveal })
    }

    /// Reveals the pending commit when its epoch has come, or commits these weights.
    async fn commit_reveal(
        &self,
        at: &Block<'_>,
        subnet: &Subnet,
        plan: &Plan,
        version_key: u64,
    ) -> anyhow::Result<(Outcome, &'static str, Option<Included>, Option<u64>)> {
        let netuid = self.opts.netuid;
        if let Some(reason) = timelocked(at, netuid).await? {
            bail!(reason);
        }
        let state = self.state_path();
        let reveal_period: u64 = at.value(M, "RevealPeriodEpochs", (netuid,)).await?;
        // A commit made in block b is revealed from the first block of its epoch + the period.
        let reveal_from = |block| first_block_of_epoch(epoch_index(block, netuid, subnet.tempo) + reveal_period, netuid, subnet.tempo);
        if let Some(pending) = read_pending(&state)? {
            let due = reveal_from(pending.commit_block);
            if subnet.block < due {
                let why =
                    format!("commit from block {} is revealed from block {due}: {} blocks to go", pending.commit_block, due - subnet.block);
                return Ok((Outcome::NothingToDo { why }, "none", None, Some(due)));
            }
            if self.opts.dry_run {
                return Ok((Outcome::Done, "dry_run", None, None));
            }
            let call = calls::reveal_weights(netuid, &pending.uids, &pending.values, &pending.salt, pending.version_key);
            let action = receipts::Action::RevealWeights;
            match self.submit(&call, action, subnet.uid, &pending.uids, &pending.values, pending.version_key).await {
                Ok(included) => {
                    remove_pending(&state)?;
                    return Ok((Outcome::Done, "reveal_weights", Some(included), None));
                }
                Err(e) => match e.downcast_ref::<PalletError>().map(|p| p.name.as_str()) {
                    Some("RevealTooEarly") => return Ok((Outcome::NothingToDo { why: e.to_string() }, "none", None, None)),
                    // The commit is gone or out of date: drop it and commit these weights instead.
                    Some("ExpiredWeightCommit" | "NoWeightsCommitFound" | "InvalidRevealCommitHashNotMatch") => {
                        tracing::warn!(error = %e, state = %state.display(), "pending commit cannot be revealed; committing anew");
                        remove_pending(&state)?;
                    }
                    _ => return Err(e),
                },
            }
        }
        if let Some(outcome) = rate_limited(at, subnet, netuid).await? {
            return Ok((outcome, "none", None, None));
        }
        if self.opts.dry_run {
            return Ok((Outcome::Done, "dry_run", None, Some(reveal_from(subnet.block))));
        }
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).context("reading random bytes for the commit salt")?;
        let salt: Vec<u16> = salt.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let hotkey = &self.chain_opts.hotkey;
        let hash = weight_commit_hash(&hotkey.account.0, netuid, &plan.uids, &plan.values, &salt, version_key);
        let pending = PendingCommit {
            netuid,
            hotkey: hotkey.ss58(),
            uids: plan.uids.clone(),
            values: plan.values.clone(),
            salt,
            version_key,
            commit_block: subnet.block,
            hash: format!("0x{}", hex::encode(hash)),
            weights_sha256: self.weights_sha256.clone(),
        };
        // Written before sending: a commit that lands must never lose its salt.
        write_pending(&state, &pending)?;
        let call = calls::commit_weights(netuid, hash);
        let result = self.submit(&call, receipts::Action::CommitWeights, subnet.uid, &plan.uids, &plan.values, version_key).await;
        match result {
            Ok(included) => {
                let pending = PendingCommit { commit_block: included.block, ..pending };
                write_pending(&state, &pending)?;
                let from = reveal_from(included.block);
                Ok((Outcome::Done, "commit_weights", Some(included), Some(from)))
            }
            Err(e) => {
                // Refused by the chain: nothing was committed, so nothing is pending.
                if e.downcast_ref::<PalletError>().is_some() {
                    remove_pending(&state)?;
                }
                if too_soon(&e) {
                    return Ok((Outcome::NothingToDo { why: e.to_string() }, "none", None, None));
                }
                Err(e)
            }
        }
    }

    fn state_path(&self) -> PathBuf {
        let name = format!("commit-reveal-{}-{}.json", self.opts.netuid, self.chain_opts.hotkey.ss58());
        self.chain_opts.state_dir.join(name)
    }

    /// Submits, then appends the receipt row.
    async fn submit(
        &self,
        call: &calls::Call,
        action: receipts::Action,
        uid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> anyhow::Result<Included> {
        let included = self.chain.submit(call, &self.chain_opts.hotkey.keypair, MORTAL_BLOCKS).await?;
        let row = receipts::Row {
            action,
            netuid: self.opts.netuid,
            hotkey: self.chain_opts.hotkey.ss58(),
            uid,
            version_key,
            block: included.block,
            block_hash: included.block_hash.clone(),
            extrinsic_hash: included.extrinsic_hash.clone(),
            endpoint: self.chain.endpoint().to_string(),
            uids: uids.to_vec(),
            values: values.to_vec(),
            weights_sha256: self.weights_sha256.clone(),
        };
        append_receipt(&self.chain_opts.receipts, row)
            .with_context(|| format!("the weights were sent (block {}) but the receipt was not written", included.block))?;
        Ok(included)
    }
}

/// Whether the chain refused because it is too early (exit 3, as the local rate-limit check):
/// the chain's view can be a block ahead of the finalized state the checks read.
fn too_soon(err: &anyhow::Error) -> bool {
    let name = err.downcast_ref::<PalletError>().map(|p| p.name.as_str());
    matches!(name, Some("SettingWeightsTooFast" | "CommittingWeightsTooFast" | "RevealTooEarly"))
}

/// The SDK's rate limit: weights go out only when more than `WeightsSetRateLimit` blocks have
/// passed since this uid's `LastUpdate` (chain.md §3.2; one block stricter than the pallet).
async fn rate_limited(at: &Block<'_>, subnet: &Subnet, netuid: u16) -> anyhow::Result<Option<Outcome>> {
    let limit: u64 = at.value(M, "WeightsSetRateLimit", (netuid,)).await?;
    let last_update: Vec<u64> = at.value(M, "LastUpdate", (netuid,)).await?;
    let last = last_update.get(usize::from(subnet.uid)).copied().unwrap_or(0);
    let since = subnet.block.saturating_sub(last);
    if last == 0 || since > limit {
        return Ok(None);
    }
    let to_go = limit - since + 1;
    let why = format!("too soon: uid {} set weights at block {last}, WeightsSetRateLimit is {limit}; {to_go} blocks to go", subnet.uid);
    Ok(Some(Outcome::NothingToDo { why }))
}

/// Why hash commit-reveal is not possible on this runtime, if it is not: weights are committed
/// with a drand timelock (chain.md §3.4) when `CommitRevealWeightsVersion` is 3 or more, and
/// there is nothing to do without the hash `commit_weights` / `reveal_weights` calls.
async fn timelocked(at: &Block<'_>, netuid: u16) -> anyhow::Result<Option<String>> {
    // Read raw: runtimes from before timelocked commits (spec 293) do not declare the item.
    let version = match at.raw_plain(M, "CommitRevealWeightsVersion").await? {
        Some(bytes) => {
            Some(u16::from_le_bytes(bytes.get(..2).and_then(|b| b.try_into().ok()).context("CommitRevealWeightsVersion is not a u16")?))
        }
        None => None,
    };
    let hash_calls = at.has_call(M, "commit_weights") && at.has_call(M, "reveal_weights");
    Ok(timelock_reason(netuid, version, hash_calls))
}

fn timelock_reason(netuid: u16, version: Option<u16>, hash_calls: bool) -> Option<String> {
    match version {
        Some(v) if v >= 3 => Some(format!(
            "netuid {netuid} has commit-reveal on and CommitRevealWeightsVersion is {v}: weights must be drand-timelocked, which valkit does not do (turn CommitRevealWeightsEnabled off or set weights with the bittensor SDK)"
        )),
        _ if !hash_calls => Some(format!("netuid {netuid} has commit-reveal on, but this runtime has no commit_weights/reveal_weights calls (timelocked commits only)")),
        _ => None,
    }
}

fn read_pending(path: &Path) -> anyhow::Result<Option<PendingCommit>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("{}: not a pending commit", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The salt and the weights stay secret until the reveal: 0600 in a 0700 state directory.
fn write_pending(path: &Path, pending: &PendingCommit) -> anyhow::Result<()> {
    let mut file = files::AtomicFile::create_private(path)?;
    file.write_all(&serde_json::to_vec_pretty(pending)?).with_context(|| format!("writing {}", path.display()))?;
    file.commit()?;
    Ok(())
}

fn remove_pending(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", path.display())),
        _ => Ok(()),
    }
}

/// Reads the receipts table (when there is one), adds the row and replaces the file atomically.
fn append_receipt(location: &Location, row: receipts::Row) -> anyhow::Result<()> {
    let mut rows = match location {
        Location::Path(p) if p.exists() => tables::read::<receipts::Receipts>(location)?.rows,
        _ => Vec::new(),
    };
    rows.push(row);
    files::write(location, &tables::encode_file::<receipts::Receipts>(rows, &BTreeMap::new())?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uid: u16, weight: f32, weight_u16: u16) -> weights::Row {
        weights::Row { uid, hotkey: None, weight, weight_u16 }
    }

    #[test]
    fn plans_what_the_sdk_sends_and_names_the_uids_rounding_drops() {
        // [2, 1, 1e-6, 0] → max-scaled [65535, 32768 (32767.5 to even), 0 (dropped), 0 (not sent)].
        let rows = [row(0, 2.0, 65535), row(1, 1.0, 32768), row(2, 1e-6 * 2.0, 0), row(3, 0.0, 0)];
        let plan = plan(&rows, 9, Some(4062)).unwrap();
        assert_eq!((plan.uids, plan.values), (vec![0, 1], vec![65535, 32768]));
        assert_eq!(plan.dropped_by_rounding, vec![2]);
        let edited = [row(0, 2.0, 65535), row(1, 1.0, 30000)];
        assert!(plan_err(&edited).contains("uid 1: weight_u16 is 30000"));
    }

    #[test]
    fn weights_the_conversion_would_bend_are_refused_naming_the_uid() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.5] {
            let err = plan_err(&[row(0, 1.0, 65535), row(7, bad, 0)]);
            assert!(err.starts_with("uid 7: weight") && err.contains("not a finite, non-negative number"), "{bad}: {err}");
        }
        let twice = plan_err(&[row(0, 1.0, 65535), row(3, 0.5, 32768), row(3, 0.5, 32768)]);
        assert_eq!(twice, "uid 3 has more than one row; each uid gets one weight");
        // Zero and negative zero are weights like any other.
        assert!(plan(&[row(0, 1.0, 65535), row(1, -0.0, 0)], 9, Some(1)).is_ok());
    }

    #[test]
    fn timelocked_commit_reveal_is_named_by_its_hyperparameter() {
        assert_eq!(timelock_reason(2, None, true), None);
        assert_eq!(timelock_reason(2, Some(2), true), None);
        assert!(timelock_reason(2, Some(4), true).unwrap().contains("CommitRevealWeightsVersion is 4"));
        assert!(timelock_reason(2, None, false).unwrap().contains("no commit_weights"));
    }

    #[test]
    fn the_chains_own_too_early_refusals_mean_not_yet() {
        let refusal =
            |name: &str| anyhow::Error::new(PalletError { pallet: "SubtensorModule".into(), name: name.into(), docs: String::new() });
        assert!(too_soon(&refusal("SettingWeightsTooFast").context("sending")));
        assert!(too_soon(&refusal("RevealTooEarly")));
        assert!(!too_soon(&refusal("NeuronNoValidatorPermit")));
        assert!(!too_soon(&anyhow::anyhow!("SettingWeightsTooFast")));
    }

    fn plan_err(rows: &[weights::Row]) -> String {
        plan(rows, 9, Some(1)).unwrap_err().to_string()
    }
}
