//! `set-weights`: sends a weights table to the chain as the bittensor SDK would (chain.md §3.5:
//! float32 → u16, round half to even, zeros dropped), after the checks the SDK and the pallet make,
//! each with its own message and exit code (SPEC §6): an unregistered hotkey, no validator permit
//! or a version key below the subnet's exit 2; the rate limit exits 3 with the blocks to go.
//!
//! Without a chain (`--dry-run` and no `--network`) it only converts, so an operator can preview a
//! table anywhere. With a chain, the extrinsic is the one the SDK of that runtime's time sent
//! (`chain::weights_path`): `set_weights` with commit-reveal off; with it on, a drand-timelocked
//! commit that the chain decrypts and applies itself at the reveal (CRv4, or CRv3 on runtimes
//! before spec 301), after the checks the chain makes at commit; on runtimes with no timelocked
//! call, a hash commit whose salt waits in the state directory for a later run's reveal. Every run
//! first judges the earlier timelocked commits whose reveal block has passed (`revealed` or `lost`,
//! rows of the receipts table), so the cron cycle confirms its own reveals.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chain::calls;
use crate::chain::client::{Block, Chain, Included, PalletError};
use crate::chain::reveal::{self, Evidence, Verdict};
use crate::chain::subnet::{self, Hyperparameters};
use crate::chain::timelock::{self, EpochState};
use crate::chain::wallet::Hotkey;
use crate::chain::weights_path::{self, Path as WeightsPath};
use crate::exit::Outcome;
use crate::files::{self, Location};
use crate::stages::compute_wins::PROVENANCE_VERSION_KEY;
use crate::tables::{self, receipts, weights};
use crate::weights::{convert_for_emit, epoch_index, first_block_of_epoch, weight_commit_hash};

/// The chain keeps at most this many unrevealed commits per hotkey and epoch (subtensor
/// `TooManyUnrevealedCommits`, `weights.rs:353-360`; spec 293 the same).
pub const MAX_UNREVEALED_COMMITS: usize = 10;
/// The SDK (BT9) signs weights with a mortal era of 5 blocks: a stale transaction dies quickly.
pub const MORTAL_BLOCKS: u64 = 5;

pub struct Options {
    pub weights: Location,
    pub netuid: u16,
    /// The subnet's mechanism (0: its main one).
    pub mechanism: u8,
    /// `None`: the version key compute-wins recorded in the weights table.
    pub version_key: Option<u64>,
    /// Pins a timelocked commit's drand round instead of computing it as the SDK does.
    pub reveal_round: Option<u64>,
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub netuid: u16,
    /// Sent with the weights; `None` when neither `--version-key` nor the table gives one.
    pub version_key: Option<u64>,
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    /// Uids with a positive weight that rounds to 0 and is therefore not sent.
    pub dropped_by_rounding: Vec<u16>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// What was sent (`set_weights`, `commit_timelocked_weights`, …), `dry_run` or `none`.
    pub action: String,
    #[serde(flatten)]
    pub plan: Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u16>,
    /// The extrinsic this runtime and subnet call for, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub included: Option<Included>,
    /// A timelocked commit: its round, epoch, reveal block and ciphertext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<TimelockedCommit>,
    /// For a hash commit: the first block at which a later run can reveal it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reveal_from_block: Option<u64>,
    /// Earlier timelocked commits judged by this run (and those still waiting).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reconciled: Vec<Reconciled>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelockedCommit {
    pub reveal_round: u64,
    /// How the round was chosen: the SDK rule used, or pinned.
    pub round_rule: String,
    /// The epoch the chain filed it under (before sending: the one it will be filed under).
    pub commit_epoch: u64,
    /// The block by which the chain reveals it.
    pub reveal_block: u64,
    pub ciphertext_bytes: usize,
    pub ciphertext_sha256: String,
}

/// An earlier commit and what this run found.
#[derive(Debug, Clone, Serialize)]
pub struct Reconciled {
    pub commit_block: u64,
    pub extrinsic_hash: String,
    pub reveal_round: Option<u64>,
    pub reveal_block: u64,
    /// `revealed`, `lost` or `waiting`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl Reconciled {
    /// One line for the operator.
    pub fn line(&self) -> String {
        let round = self.reveal_round.map_or(String::new(), |r| format!(", round {r}"));
        let what = format!("commit of block {}{round}", self.commit_block);
        match (self.status.as_str(), &self.cause) {
            ("revealed", _) => format!("{what}: revealed (the chain holds its weights; reveal block {})", self.reveal_block),
            ("lost", Some(cause)) => format!("{what}: lost at reveal block {}: {cause}", self.reveal_block),
            _ => format!("{what}: waiting for its reveal by block {}", self.reveal_block),
        }
    }
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
        return Ok((Outcome::Done, Summary { action: "dry_run".into(), plan, ..Summary::default() }));
    };
    if plan.uids.is_empty() {
        let why = "every weight is zero: nothing to send yet".to_string();
        return Ok((Outcome::NothingToDo { why }, Summary { action: "none".into(), plan, ..Summary::default() }));
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

/// A hash commit waiting for its reveal epoch, kept in the state directory between runs.
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
    /// The storage index of the mechanism (`Weights`, `LastUpdate`, commit queues).
    index: u16,
    hyper: Hyperparameters,
    permit: bool,
}

/// What a run did, before it becomes a summary.
struct Sent {
    outcome: Outcome,
    action: &'static str,
    included: Option<Included>,
    commit: Option<TimelockedCommit>,
    reveal_from_block: Option<u64>,
}

impl Sent {
    fn nothing(why: String) -> Self {
        Self { outcome: Outcome::NothingToDo { why }, action: "none", included: None, commit: None, reveal_from_block: None }
    }

    fn done(action: &'static str, included: Option<Included>) -> Self {
        Self { outcome: Outcome::Done, action, included, commit: None, reveal_from_block: None }
    }
}

impl Submitter<'_> {
    async fn run(&mut self, plan: Plan) -> anyhow::Result<(Outcome, Summary)> {
        let hotkey = &self.chain_opts.hotkey;
        let version_key = plan.version_key.context("no version key to send: pass --version-key (the weights table does not record one)")?;
        // The finalized head: at most the best block, so the rate limit is never judged early.
        let at = self.chain.at(None).await?;
        let subnet = self.check(&at, &plan, version_key).await?;
        let (path, path_reason) = weights_path::choose(subnet::calls(&at), subnet.hyper.settings(), self.opts.netuid, self.opts.mechanism)
            .map_err(anyhow::Error::msg)?;
        let reconciled = self.reconcile(&at, &subnet).await?;
        let sent = match path {
            WeightsPath::Plain { mechanism } => self.set(&at, &subnet, &plan, version_key, mechanism, path_reason.clone()).await?,
            WeightsPath::Timelocked { .. } | WeightsPath::Crv3 => {
                self.commit_timelocked(&at, &subnet, &plan, version_key, path, path_reason.clone()).await?
            }
            WeightsPath::HashCommit => self.commit_reveal(&at, &subnet, &plan, version_key).await?,
        };
        let summary = Summary {
            action: sent.action.into(),
            plan,
            hotkey: Some(hotkey.ss58()),
            uid: Some(subnet.uid),
            path: Some(path.name().into()),
            path_reason: Some(path_reason),
            included: sent.included,
            commit: sent.commit,
            reveal_from_block: sent.reveal_from_block,
            reconciled,
        };
        Ok((sent.outcome, summary))
    }

    /// The SDK's and the pallet's checks that do not depend on the path (chain.md §3.2).
    async fn check(&self, at: &Block<'_>, plan: &Plan, version_key: u64) -> anyhow::Result<Subnet> {
        let (netuid, mechanism) = (self.opts.netuid, self.opts.mechanism);
        let hotkey = &self.chain_opts.hotkey;
        let block = at.number();
        subnet::ensure_exists(at, netuid).await?;
        let hyper = Hyperparameters::read(at, netuid).await?;
        // Runtimes without mechanisms are left to the path's choice, which names the missing call.
        if let Some(count) = hyper.mechanisms.filter(|count| mechanism >= *count) {
            bail!("netuid {netuid} has {count} mechanism(s) at block {block}; there is no mechanism {mechanism} (MechanismDoesNotExist)");
        }
        let index = subnet::storage_index(netuid, mechanism)?;
        let Some(uid) = subnet::uid_of(at, netuid, &hotkey.account).await? else {
            bail!("hotkey {} is not registered on netuid {netuid} (block {block}); register it first", hotkey.ss58());
        };
        let chain_key = hyper.weights_version_key;
        if chain_key != 0 && version_key < chain_key {
            bail!(
                "version key {version_key} is lower than netuid {netuid}'s WeightsVersionKey {chain_key}: the chain would refuse the weights; update valkit or pass --version-key"
            );
        }
        let permit = subnet::validator_permits(at, netuid).await?.get(usize::from(uid)).copied().unwrap_or(false);
        if !permit && plan.uids != [uid] {
            bail!(
                "uid {uid} ({}) has no validator permit on netuid {netuid} at block {block}; only validators may set weights",
                hotkey.ss58()
            );
        }
        Ok(Subnet { uid, block, index, hyper, permit })
    }

    /// Plain `set_weights` (or `set_mechanism_weights`), after the rate limit.
    async fn set(
        &self,
        at: &Block<'_>,
        subnet: &Subnet,
        plan: &Plan,
        version_key: u64,
        mechanism: u8,
        why: String,
    ) -> anyhow::Result<Sent> {
        if let Some(round) = self.opts.reveal_round {
            tracing::warn!(round, "--reveal-round is ignored: commit-reveal is off, the weights are set directly");
        }
        if let Some(why) = rate_limited(at, subnet).await? {
            return Ok(Sent::nothing(why));
        }
        if self.opts.dry_run {
            return Ok(Sent::done("dry_run", None));
        }
        let (call, action) = match mechanism {
            0 => (calls::set_weights(plan.netuid, &plan.uids, &plan.values, version_key), receipts::Action::SetWeights),
            m => {
                (calls::set_mechanism_weights(plan.netuid, m, &plan.uids, &plan.values, version_key), receipts::Action::SetMechanismWeights)
            }
        };
        let (_sending, sent) = self.send(&call).await;
        match sent {
            Ok(included) => {
                let row =
                    receipts::Row { reason: Some(why), ..self.receipt(action, subnet, &included, &plan.uids, &plan.values, version_key) };
                self.record(&[row], &included)?;
                Ok(Sent::done(action.as_str(), Some(included)))
            }
            Err(e) if too_soon(&e) => Ok(Sent::nothing(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// A drand-timelocked commit (CRv4, or CRv3's legacy payload), after the chain's own checks
    /// at commit (`internal_commit_timelocked_weights`, subtensor `weights.rs:297-410`; spec 293
    /// `do_commit_crv3_weights`): the rate limit, the unrevealed-commit limit, a round the chain
    /// still takes, a ciphertext it can store.
    async fn commit_timelocked(
        &self,
        at: &Block<'_>,
        subnet: &Subnet,
        plan: &Plan,
        version_key: u64,
        path: WeightsPath,
        why: String,
    ) -> anyhow::Result<Sent> {
        let (netuid, hotkey) = (self.opts.netuid, &self.chain_opts.hotkey);
        let (tempo, period) = (subnet.hyper.tempo, subnet.hyper.reveal_period_epochs);
        if let Some(why) = rate_limited(at, subnet).await? {
            return Ok(Sent::nothing(why));
        }
        let epochs = subnet::epoch_state(at, netuid).await?;
        let commit_epoch = match epochs {
            Some(state) => timelock::commit_epoch_v2(state),
            None => timelock::commit_epoch_v1(subnet.block + 1, netuid, tempo),
        };
        let queued = subnet::timelocked_commits(at, subnet.index).await?;
        let mine = queued.iter().filter(|c| c.epoch == commit_epoch && c.who == hotkey.account).count();
        if mine >= MAX_UNREVEALED_COMMITS {
            return Ok(Sent::nothing(format!(
                "uid {} already has {mine} unrevealed commits in epoch {commit_epoch}, the chain's limit (TooManyUnrevealedCommits): commit again once they are revealed",
                subnet.uid
            )));
        }
        let reveal_block = predicted_reveal_block(epochs, commit_epoch, netuid, tempo, period)?;
        let (round, round_rule) = match (self.opts.reveal_round, epochs) {
            (Some(round), _) => (round, "pinned by --reveal-round".to_string()),
            (None, state) => {
                let block_time = subnet::block_time(at).await?;
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).context("the clock is before 1970")?.as_secs_f64();
                match state {
                    Some(state) => (
                        timelock::reveal_round_v2(state, period, block_time, now).map_err(anyhow::Error::msg)?,
                        format!("bittensor-drand 2.0: stateful epochs, {block_time} s blocks"),
                    ),
                    None => (
                        timelock::reveal_round_v1(subnet.block, subnet.index, u64::from(tempo), period, block_time, now),
                        format!("bittensor-drand 1.2: epochs by block number, {block_time} s blocks"),
                    ),
                }
            }
        };
        let newest = subnet::last_drand_round(at).await?;
        if round < newest {
            bail!("reveal round {round} is older than the chain's newest drand round {newest}: the chain refuses it (InvalidRevealRound)");
        }
        // CRv4's payload names the signer, which the chain checks at reveal; CRv3's does not.
        let signer = matches!(path, WeightsPath::Timelocked { .. }).then_some(&hotkey.account.0);
        let plaintext = timelock::payload(signer, &plan.uids, &plan.values, version_key);
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).context("reading random bytes for the timelock encryption")?;
        let ciphertext = timelock::encrypt(&plaintext, round, seed).map_err(anyhow::Error::msg)?;
        if ciphertext.len() > timelock::MAX_COMMIT_BYTES {
            bail!(
                "the timelocked commit of {} uids is {} bytes; the chain stores at most {} (MAX_CRV3_COMMIT_SIZE_BYTES): send fewer uids",
                plan.uids.len(),
                ciphertext.len(),
                timelock::MAX_COMMIT_BYTES
            );
        }
        let mut commit = TimelockedCommit {
            reveal_round: round,
            round_rule,
            commit_epoch,
            reveal_block,
            ciphertext_bytes: ciphertext.len(),
            ciphertext_sha256: hex::encode(Sha256::digest(&ciphertext)),
        };
        if self.opts.dry_run {
            return Ok(Sent { commit: Some(commit), ..Sent::done("dry_run", None) });
        }
        let (call, action) = match path {
            WeightsPath::Timelocked { mechanism: 0, version } => {
                (calls::commit_timelocked_weights(netuid, &ciphertext, round, version), receipts::Action::CommitTimelockedWeights)
            }
            WeightsPath::Timelocked { mechanism, version } => (
                calls::commit_timelocked_mechanism_weights(netuid, mechanism, &ciphertext, round, version),
                receipts::Action::CommitTimelockedMechanismWeights,
            ),
            _ => (calls::commit_crv3_weights(netuid, &ciphertext, round), receipts::Action::CommitCrv3Weights),
        };
        let (_sending, sent) = self.send(&call).await;
        let included = match sent {
            Ok(included) => included,
            Err(e) if too_soon(&e) => return Ok(Sent::nothing(e.to_string())),
            Err(e) => return Err(e),
        };
        // Where the chain filed it: the queue at the inclusion block, which has the last word.
        let landed = self.chain.at(Some(included.block)).await?;
        let filed = subnet::timelocked_commits(&landed, subnet.index).await?;
        match filed.iter().find(|c| c.who == hotkey.account && c.ciphertext == ciphertext) {
            Some(entry) => commit.commit_epoch = entry.epoch,
            None => tracing::warn!(block = included.block, "the commit is not in the chain's queue at its inclusion block"),
        }
        let before = subnet::epoch_state(&self.chain.at(Some(included.block - 1)).await?, netuid).await?;
        commit.reveal_block = predicted_reveal_block(before, commit.commit_epoch, netuid, tempo, period)?;
        let row = receipts::Row {
            reason: Some(why),
            reveal_round: Some(round),
            commit_epoch: Some(commit.commit_epoch),
            reveal_block: Some(commit.reveal_block),
            commit_sha256: Some(commit.ciphertext_sha256.clone()),
            ..self.receipt(action, subnet, &included, &plan.uids, &plan.values, version_key)
        };
        self.record(&[row], &included)?;
        Ok(Sent { commit: Some(commit), ..Sent::done(action.as_str(), Some(included)) })
    }

    /// Judges the earlier timelocked commits of this hotkey and mechanism that no run has judged:
    /// `revealed` when the chain holds their weights, `lost` (with the likely cause) once their
    /// reveal block has passed without them. Judged at the reveal block when the node still has
    /// its state, so a later commit's reveal is not mistaken for this one's.
    async fn reconcile(&self, at: &Block<'_>, subnet: &Subnet) -> anyhow::Result<Vec<Reconciled>> {
        let location = &self.chain_opts.receipts;
        let rows = match location {
            Location::Path(p) if p.exists() => tables::read::<receipts::Receipts>(location)?.rows,
            _ => return Ok(Vec::new()),
        };
        let hotkey = self.chain_opts.hotkey.ss58();
        let judged: std::collections::BTreeSet<&str> = rows
            .iter()
            .filter(|r| matches!(r.action, receipts::Action::Revealed | receipts::Action::Lost))
            .map(|r| r.extrinsic_hash.as_str())
            .collect();
        let open = rows.iter().filter(|r| {
            r.action.is_timelocked_commit()
                && r.netuid == self.opts.netuid
                && r.hotkey == hotkey
                && r.mechanism.unwrap_or(0) == u16::from(self.opts.mechanism)
                && r.endpoint == self.chain.endpoint()
                && !judged.contains(r.extrinsic_hash.as_str())
        });
        let (mut out, mut new_rows) = (Vec::new(), Vec::new());
        let newest = subnet::last_drand_round(at).await?;
        for commit in open {
            let (Some(reveal_block), Some(round)) = (commit.reveal_block, commit.reveal_round) else { continue };
            let judged_at = match at.number() >= reveal_block {
                true => self.chain.at(Some(reveal_block)).await.ok(),
                false => None,
            };
            let judged_at = judged_at.as_ref().unwrap_or(at);
            let last_update = subnet::last_update(judged_at, subnet.index).await?.get(usize::from(commit.uid)).copied().unwrap_or(0);
            let evidence = Evidence {
                committed: commit.uids.iter().copied().zip(commit.values.iter().copied()).collect(),
                on_chain: subnet::weights_of(judged_at, subnet.index, commit.uid).await?,
                last_update,
                commit_block: commit.block,
                reveal_block,
                judged_at: judged_at.number(),
                round,
                pulse: subnet::has_pulse(at, round).await?,
                last_drand_round: newest,
                version_key: commit.version_key,
                chain_version_key: subnet.hyper.weights_version_key,
                permit: subnet.permit,
                self_weight_only: commit.uids == [commit.uid],
            };
            let verdict = reveal::judge(&evidence);
            let (status, action, cause) = match verdict {
                Verdict::Revealed => ("revealed", Some(receipts::Action::Revealed), None),
                Verdict::Lost(cause) => ("lost", Some(receipts::Action::Lost), Some(cause)),
                Verdict::Waiting => ("waiting", None, None),
            };
            if let Some(action) = action {
                new_rows.push(receipts::Row {
                    action,
                    block: judged_at.number(),
                    block_hash: judged_at.hash(),
                    endpoint: self.chain.endpoint().to_string(),
                    reason: cause.clone(),
                    ..commit.clone()
                });
            }
            let reconciled = Reconciled {
                commit_block: commit.block,
                extrinsic_hash: commit.extrinsic_hash.clone(),
                reveal_round: Some(round),
                reveal_block,
                status: status.into(),
                cause,
            };
            tracing::info!(netuid = self.opts.netuid, "{}", reconciled.line());
            out.push(reconciled);
        }
        if !new_rows.is_empty() && !self.opts.dry_run {
            append_receipts(location, new_rows).context("recording which earlier commits the chain revealed")?;
        }
        Ok(out)
    }

    /// Hash commit-reveal, on runtimes with no timelocked call: reveals the pending commit when its
    /// epoch has come, or commits these weights.
    async fn commit_reveal(&self, at: &Block<'_>, subnet: &Subnet, plan: &Plan, version_key: u64) -> anyhow::Result<Sent> {
        let netuid = self.opts.netuid;
        let (tempo, reveal_period) = (subnet.hyper.tempo, subnet.hyper.reveal_period_epochs);
        let state = self.state_path();
        // A commit made in block b is revealed from the first block of its epoch + the period.
        let reveal_from = |block| first_block_of_epoch(epoch_index(block, netuid, tempo) + reveal_period, netuid, tempo);
        if let Some(pending) = read_pending(&state)? {
            let due = reveal_from(pending.commit_block);
            if subnet.block < due {
                let why =
                    format!("commit from block {} is revealed from block {due}: {} blocks to go", pending.commit_block, due - subnet.block);
                return Ok(Sent { reveal_from_block: Some(due), ..Sent::nothing(why) });
            }
            if self.opts.dry_run {
                return Ok(Sent::done("dry_run", None));
            }
            let call = calls::reveal_weights(netuid, &pending.uids, &pending.values, &pending.salt, pending.version_key);
            let action = receipts::Action::RevealWeights;
            let (_sending, sent) = self.send(&call).await;
            match sent {
                Ok(included) => {
                    self.record(
                        &[self.receipt(action, subnet, &included, &pending.uids, &pending.values, pending.version_key)],
                        &included,
                    )?;
                    remove_pending(&state)?;
                    return Ok(Sent::done("reveal_weights", Some(included)));
                }
                Err(e) => match e.downcast_ref::<PalletError>().map(|p| p.name.as_str()) {
                    Some("RevealTooEarly") => return Ok(Sent::nothing(e.to_string())),
                    // The commit is gone or out of date: drop it and commit these weights instead.
                    Some("ExpiredWeightCommit" | "NoWeightsCommitFound" | "InvalidRevealCommitHashNotMatch") => {
                        tracing::warn!(error = %e, state = %state.display(), "pending commit cannot be revealed; committing anew");
                        remove_pending(&state)?;
                    }
                    _ => return Err(e),
                },
            }
        }
        if let Some(why) = rate_limited(at, subnet).await? {
            return Ok(Sent::nothing(why));
        }
        if self.opts.dry_run {
            return Ok(Sent { reveal_from_block: Some(reveal_from(subnet.block)), ..Sent::done("dry_run", None) });
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
        let (_sending, sent) = self.send(&call).await;
        match sent {
            Ok(included) => {
                let pending = PendingCommit { commit_block: included.block, ..pending };
                write_pending(&state, &pending)?;
                let action = receipts::Action::CommitWeights;
                self.record(&[self.receipt(action, subnet, &included, &plan.uids, &plan.values, version_key)], &included)?;
                Ok(Sent { reveal_from_block: Some(reveal_from(included.block)), ..Sent::done("commit_weights", Some(included)) })
            }
            Err(e) => {
                // Refused by the chain: nothing was committed, so nothing is pending.
                if e.downcast_ref::<PalletError>().is_some() {
                    remove_pending(&state)?;
                }
                if too_soon(&e) {
                    return Ok(Sent::nothing(e.to_string()));
                }
                Err(e)
            }
        }
    }

    fn state_path(&self) -> PathBuf {
        let name = format!("commit-reveal-{}-{}.json", self.opts.netuid, self.chain_opts.hotkey.ss58());
        self.chain_opts.state_dir.join(name)
    }

    /// Signs `call` with the hotkey and sends it. The guard holds an operator's stop off until the
    /// caller drops it, once the receipt is written: a transaction that lands keeps its receipt.
    async fn send(&self, call: &calls::Call) -> (crate::interrupt::Critical, anyhow::Result<Included>) {
        let guard = crate::interrupt::Critical::enter();
        (guard, self.chain.submit(call, &self.chain_opts.hotkey.keypair, MORTAL_BLOCKS).await)
    }

    /// The receipt of a submission; the caller adds what its path knows.
    fn receipt(
        &self,
        action: receipts::Action,
        subnet: &Subnet,
        included: &Included,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> receipts::Row {
        receipts::Row {
            action,
            netuid: self.opts.netuid,
            hotkey: self.chain_opts.hotkey.ss58(),
            uid: subnet.uid,
            mechanism: Some(u16::from(self.opts.mechanism)),
            version_key,
            block: included.block,
            block_hash: included.block_hash.clone(),
            extrinsic_hash: included.extrinsic_hash.clone(),
            endpoint: self.chain.endpoint().to_string(),
            uids: uids.to_vec(),
            values: values.to_vec(),
            weights_sha256: self.weights_sha256.clone(),
            reason: None,
            reveal_round: None,
            commit_epoch: None,
            reveal_block: None,
            commit_sha256: None,
        }
    }

    fn record(&self, rows: &[receipts::Row], included: &Included) -> anyhow::Result<()> {
        append_receipts(&self.chain_opts.receipts, rows.to_vec())
            .with_context(|| format!("the weights were sent (block {}) but the receipt was not written", included.block))
    }
}

/// The block by which the chain reveals a commit filed under `commit_epoch`, from the epoch
/// state before its inclusion block (stateful epochs) or the block-number formula (spec 293);
/// an error when the chain would never reveal it.
fn predicted_reveal_block(epochs: Option<EpochState>, commit_epoch: u64, netuid: u16, tempo: u16, period: u64) -> anyhow::Result<u64> {
    let never = || {
        anyhow::anyhow!("netuid {netuid} (tempo {tempo}) runs no epoch that would reveal a commit of epoch {commit_epoch}: the chain would never apply it")
    };
    match epochs {
        Some(state) => timelock::last_reveal_block_v2(state, period).map_err(|_| never()),
        None => timelock::reveal_block_v1(commit_epoch, netuid, tempo, period).ok_or_else(never),
    }
}

/// Whether the chain refused because it is too early (exit 3, as the local rate-limit check):
/// the chain's view can be a block ahead of the finalized state the checks read.
fn too_soon(err: &anyhow::Error) -> bool {
    let name = err.downcast_ref::<PalletError>().map(|p| p.name.as_str());
    matches!(name, Some("SettingWeightsTooFast" | "CommittingWeightsTooFast" | "RevealTooEarly" | "TooManyUnrevealedCommits"))
}

/// The SDK's rate limit: weights go out only when more than `WeightsSetRateLimit` blocks have
/// passed since this uid's `LastUpdate` (chain.md §3.2; one block stricter than the pallet). On
/// the commit-reveal paths the chain applies it at commit time (`CommittingWeightsTooFast`).
async fn rate_limited(at: &Block<'_>, subnet: &Subnet) -> anyhow::Result<Option<String>> {
    let limit = subnet.hyper.weights_rate_limit;
    let last = subnet::last_update(at, subnet.index).await?.get(usize::from(subnet.uid)).copied().unwrap_or(0);
    let since = subnet.block.saturating_sub(last);
    if last == 0 || since > limit {
        return Ok(None);
    }
    let to_go = limit - since + 1;
    Ok(Some(format!("too soon: uid {} set weights at block {last}, WeightsSetRateLimit is {limit}; {to_go} blocks to go", subnet.uid)))
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

/// Reads the receipts table (when there is one), adds the rows and replaces the file atomically.
fn append_receipts(location: &Location, new: Vec<receipts::Row>) -> anyhow::Result<()> {
    let mut rows = match location {
        Location::Path(p) if p.exists() => tables::read::<receipts::Receipts>(location)?.rows,
        _ => Vec::new(),
    };
    rows.extend(new);
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
