//! A subnet's state as `SubtensorModule` stores it, read at one block and typed: existence,
//! hyperparameters, registration, permits, last updates, weights, the epoch state and the queues of
//! timelocked commits, and the drand pallet's pulses. The stages read the chain through this
//! module, so pallet item names and their decoding live in one place (chain.md §2.1,
//! chain-crv4.md).

use anyhow::{bail, Context};
use subxt::ext::codec::Decode;
use subxt::utils::AccountId32;

use super::client::Block;
use super::timelock::EpochState;
use super::weights_path::{Calls, Settings};

const M: &str = "SubtensorModule";
const DRAND: &str = "Drand";

/// A mechanism's storage index (subtensor `get_mechanism_storage_index`: `mecid * 4096 + netuid`,
/// `GLOBAL_MAX_SUBNET_COUNT`), the key of its `Weights`, `LastUpdate` and commit queues.
pub fn storage_index(netuid: u16, mechanism: u8) -> anyhow::Result<u16> {
    u16::from(mechanism)
        .checked_mul(4096)
        .and_then(|i| i.checked_add(netuid))
        .filter(|_| netuid < 4096)
        .with_context(|| format!("mechanism {mechanism} of netuid {netuid} has no storage index (mecid · 4096 + netuid overflows u16)"))
}

/// Refuses a netuid the chain does not have at this block.
pub async fn ensure_exists(at: &Block<'_>, netuid: u16) -> anyhow::Result<()> {
    if !at.value::<_, bool>(M, "NetworksAdded", (netuid,)).await? {
        bail!("netuid {netuid} does not exist on {} at block {}", at.endpoint(), at.number());
    }
    Ok(())
}

/// The hyperparameters setting weights depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hyperparameters {
    pub tempo: u16,
    pub weights_version_key: u64,
    pub weights_rate_limit: u64,
    pub commit_reveal: bool,
    /// `CommitRevealWeightsVersion`, on runtimes that have it (a plain item: read raw, since
    /// runtimes before timelocked commits do not declare it).
    pub commit_reveal_version: Option<u16>,
    pub reveal_period_epochs: u64,
    /// `MechanismCountCurrent`; `None` on runtimes that predate mechanisms.
    pub mechanisms: Option<u8>,
    pub min_allowed_weights: u16,
    pub max_weights_limit: u16,
}

impl Hyperparameters {
    pub async fn read(at: &Block<'_>, netuid: u16) -> anyhow::Result<Self> {
        let key = (netuid,);
        let commit_reveal_version = match at.raw_plain(M, "CommitRevealWeightsVersion").await? {
            Some(bytes) => Some(u16::decode(&mut &bytes[..]).context("CommitRevealWeightsVersion is not a u16")?),
            None => None,
        };
        let mechanisms = match at.has_storage(M, "MechanismCountCurrent") {
            true => Some(at.value(M, "MechanismCountCurrent", key).await?),
            false => None,
        };
        Ok(Self {
            tempo: at.value(M, "Tempo", key).await?,
            weights_version_key: at.value(M, "WeightsVersionKey", key).await?,
            weights_rate_limit: at.value(M, "WeightsSetRateLimit", key).await?,
            commit_reveal: at.value(M, "CommitRevealWeightsEnabled", key).await?,
            commit_reveal_version,
            reveal_period_epochs: at.value(M, "RevealPeriodEpochs", key).await?,
            mechanisms,
            min_allowed_weights: at.value(M, "MinAllowedWeights", key).await?,
            max_weights_limit: at.value(M, "MaxWeightsLimit", key).await?,
        })
    }

    /// The values as `key = value` pairs, for a table's provenance.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("tempo", self.tempo.to_string()),
            ("weights_version_key", self.weights_version_key.to_string()),
            ("weights_rate_limit", self.weights_rate_limit.to_string()),
            ("commit_reveal_weights_enabled", self.commit_reveal.to_string()),
            ("reveal_period_epochs", self.reveal_period_epochs.to_string()),
            ("min_allowed_weights", self.min_allowed_weights.to_string()),
            ("max_weights_limit", self.max_weights_limit.to_string()),
        ];
        if let Some(version) = self.commit_reveal_version {
            pairs.push(("commit_reveal_weights_version", version.to_string()));
        }
        pairs
    }

    pub fn settings(&self) -> Settings {
        Settings { commit_reveal: self.commit_reveal, version: self.commit_reveal_version }
    }
}

/// The weight calls this block's runtime has.
pub fn calls(at: &Block<'_>) -> Calls {
    Calls::of(|call| at.has_call(M, call))
}

/// How many uids the subnet has (`SubnetworkN`).
pub async fn size(at: &Block<'_>, netuid: u16) -> anyhow::Result<u16> {
    at.value(M, "SubnetworkN", (netuid,)).await
}

/// A per-uid map of the subnet (`Keys`, `BlockAtRegistration`, `Weights`), uid → raw SCALE value.
pub async fn per_uid(at: &Block<'_>, item: &str, netuid: u16) -> anyhow::Result<std::collections::BTreeMap<u16, Vec<u8>>> {
    at.scan::<u16>(M, item, netuid).await
}

/// Every hotkey's commitment on the subnet (`Commitments.CommitmentOf`), raw.
pub async fn commitments(at: &Block<'_>, netuid: u16) -> anyhow::Result<std::collections::BTreeMap<AccountId32, Vec<u8>>> {
    at.scan::<AccountId32>("Commitments", "CommitmentOf", netuid).await
}

/// The coldkey that owns `hotkey` (`Owner`).
pub async fn owner(at: &Block<'_>, hotkey: &AccountId32) -> anyhow::Result<AccountId32> {
    at.value(M, "Owner", (*hotkey,)).await
}

/// `hotkey`'s uid on `netuid`, if registered.
pub async fn uid_of(at: &Block<'_>, netuid: u16, hotkey: &AccountId32) -> anyhow::Result<Option<u16>> {
    at.optional(M, "Uids", (netuid, *hotkey)).await
}

pub async fn validator_permits(at: &Block<'_>, netuid: u16) -> anyhow::Result<Vec<bool>> {
    at.value(M, "ValidatorPermit", (netuid,)).await
}

/// The block each uid last set (or committed) weights at, under a storage index.
pub async fn last_update(at: &Block<'_>, index: u16) -> anyhow::Result<Vec<u64>> {
    at.value(M, "LastUpdate", (index,)).await
}

/// `uid`'s weights as stored, `(uid, u16)` pairs, under a storage index.
pub async fn weights_of(at: &Block<'_>, index: u16, uid: u16) -> anyhow::Result<Vec<(u16, u16)>> {
    at.value(M, "Weights", (index, uid)).await
}

/// The stateful epoch items (subtensor since spec ~423), or `None` on runtimes that count epochs
/// by the block-number formula.
pub async fn epoch_state(at: &Block<'_>, netuid: u16) -> anyhow::Result<Option<EpochState>> {
    if !at.has_storage(M, "SubnetEpochIndex") {
        return Ok(None);
    }
    let key = (netuid,);
    Ok(Some(EpochState {
        last_epoch_block: at.value(M, "LastEpochBlock", key).await?,
        pending_epoch_at: at.value(M, "PendingEpochAt", key).await?,
        subnet_epoch_index: at.value(M, "SubnetEpochIndex", key).await?,
        tempo: at.value(M, "Tempo", key).await?,
        blocks_since_last_step: at.value(M, "BlocksSinceLastStep", key).await?,
        block: at.number(),
    }))
}

/// One entry of a timelocked commit queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCommit {
    /// The epoch the chain filed it under (the queue's second key).
    pub epoch: u64,
    pub who: AccountId32,
    /// The block it was committed in (CRv4 queues only).
    pub block: Option<u64>,
    pub ciphertext: Vec<u8>,
    pub reveal_round: u64,
}

/// The timelocked commits waiting under a storage index: `TimelockedWeightCommits` (CRv4,
/// `(who, block, commit, round)`) where the runtime has it, else `CRV3WeightCommits`
/// (`(who, commit, round)`, spec 293 `lib.rs:1646`).
pub async fn timelocked_commits(at: &Block<'_>, index: u16) -> anyhow::Result<Vec<QueuedCommit>> {
    let v4 = at.has_storage(M, "TimelockedWeightCommits");
    let item = if v4 { "TimelockedWeightCommits" } else { "CRV3WeightCommits" };
    let mut out = Vec::new();
    for (epoch, bytes) in at.scan::<u64>(M, item, index).await? {
        let what = || format!("{M}.{item}[{index}][{epoch}]");
        if v4 {
            let entries = <Vec<([u8; 32], u64, Vec<u8>, u64)>>::decode(&mut &bytes[..]).with_context(what)?;
            out.extend(entries.into_iter().map(|(who, block, ciphertext, reveal_round)| QueuedCommit {
                epoch,
                who: AccountId32(who),
                block: Some(block),
                ciphertext,
                reveal_round,
            }));
        } else {
            let entries = <Vec<([u8; 32], Vec<u8>, u64)>>::decode(&mut &bytes[..]).with_context(what)?;
            out.extend(entries.into_iter().map(|(who, ciphertext, reveal_round)| QueuedCommit {
                epoch,
                who: AccountId32(who),
                block: None,
                ciphertext,
                reveal_round,
            }));
        }
    }
    Ok(out)
}

/// The newest drand round the chain holds a pulse for (`Drand.LastStoredRound`; 0 on a chain
/// that never received one, as the local test chain).
pub async fn last_drand_round(at: &Block<'_>) -> anyhow::Result<u64> {
    at.value(DRAND, "LastStoredRound", ()).await
}

/// Whether the chain holds the pulse of `round` (`Drand.Pulses`), which a reveal needs.
pub async fn has_pulse(at: &Block<'_>, round: u64) -> anyhow::Result<bool> {
    let pulse: Option<subxt::dynamic::Value> = at.optional(DRAND, "Pulses", (round,)).await?;
    Ok(pulse.is_some())
}

/// Seconds per block: the runtime's Aura slot duration (`AuraApi_slot_duration`, in ms).
pub async fn block_time(at: &Block<'_>) -> anyhow::Result<f64> {
    let ms: u64 = at.runtime_api("AuraApi", "slot_duration", ()).await?;
    if ms == 0 {
        bail!("the runtime's slot duration is 0 ms at block {}", at.number());
    }
    Ok(ms as f64 / 1000.0)
}

/// The subnet-wide values the chain's epoch reads (consensus.md; spec 293 `lib.rs`), at this
/// block. `tempo` is the subnet's; the owner is `SubnetOwnerHotkey`'s uid, if registered.
pub async fn epoch_parameters(at: &Block<'_>, netuid: u16, tempo: u16) -> anyhow::Result<crate::consensus::Parameters> {
    let key = (netuid,);
    let owner_hotkey: AccountId32 = at.value(M, "SubnetOwnerHotkey", key).await?;
    let (alpha_low, alpha_high): (u16, u16) = at.value(M, "AlphaValues", key).await?;
    let alpha_sigmoid_steepness = match at.has_storage(M, "AlphaSigmoidSteepness") {
        true => at.value(M, "AlphaSigmoidSteepness", key).await?,
        false => 0,
    };
    Ok(crate::consensus::Parameters {
        tempo,
        activity_cutoff: at.value(M, "ActivityCutoff", key).await?,
        owner_uid: uid_of(at, netuid, &owner_hotkey).await?,
        tao_weight: at.value(M, "TaoWeight", ()).await?,
        stake_threshold: at.value(M, "StakeThreshold", ()).await?,
        max_allowed_validators: at.value(M, "MaxAllowedValidators", key).await?,
        kappa: at.value(M, "Kappa", key).await?,
        bonds_penalty: at.value(M, "BondsPenalty", key).await?,
        bonds_moving_average: at.value(M, "BondsMovingAverage", key).await?,
        yuma3: at.value(M, "Yuma3On", key).await?,
        liquid_alpha: at.value(M, "LiquidAlphaOn", key).await?,
        alpha_low,
        alpha_high,
        alpha_sigmoid_steepness,
    })
}

/// What the subnet's last epoch stored, per uid (u16 proportions; emission in rao).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochResults {
    pub consensus: Vec<u16>,
    pub validator_trust: Vec<u16>,
    pub incentive: Vec<u16>,
    pub dividends: Vec<u16>,
    /// `None` on runtimes that no longer store them (spec 424 dropped `Trust` and `Rank`).
    pub trust: Option<Vec<u16>>,
    pub rank: Option<Vec<u16>>,
    pub emission: Vec<u64>,
}

impl EpochResults {
    pub async fn read(at: &Block<'_>, netuid: u16) -> anyhow::Result<Self> {
        let key = (netuid,);
        let if_stored = |item: &'static str| async move {
            match at.has_storage(M, item) {
                true => at.value(M, item, key).await.map(Some),
                false => Ok(None),
            }
        };
        Ok(Self {
            consensus: at.value(M, "Consensus", key).await?,
            validator_trust: at.value(M, "ValidatorTrust", key).await?,
            incentive: at.value(M, "Incentive", key).await?,
            dividends: at.value(M, "Dividends", key).await?,
            trust: if_stored("Trust").await?,
            rank: if_stored("Rank").await?,
            emission: at.value(M, "Emission", key).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    /// The storage items sync-metadata reads with `value`, which fails on an item the runtime
    /// does not declare, in SubtensorModule: the metagraph's, then the epoch's.
    const READ_ITEMS: [&str; 33] = [
        "NetworksAdded",
        "SubnetworkN",
        "Keys",
        "Uids",
        "Owner",
        "BlockAtRegistration",
        "Weights",
        "ValidatorPermit",
        "LastUpdate",
        "Tempo",
        "WeightsVersionKey",
        "WeightsSetRateLimit",
        "CommitRevealWeightsEnabled",
        "RevealPeriodEpochs",
        "MinAllowedWeights",
        "MaxWeightsLimit",
        "SubnetOwnerHotkey",
        "AlphaValues",
        "ActivityCutoff",
        "TaoWeight",
        "StakeThreshold",
        "MaxAllowedValidators",
        "Kappa",
        "BondsPenalty",
        "BondsMovingAverage",
        "Yuma3On",
        "LiquidAlphaOn",
        "Consensus",
        "ValidatorTrust",
        "Incentive",
        "Dividends",
        "Emission",
        "Bonds",
    ];

    /// Each runtime of ../shared/chain-next declares them (`Trust` and `Rank`, gone in spec 424,
    /// are read only where declared).
    #[test]
    fn the_epoch_items_exist_in_every_runtime() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/chain-next/metadata");
        let mut missing = Vec::new();
        for file in [
            "subtensor-auradev-spec293.scale",
            "subtensor-finney-spec365.scale",
            "subtensor-devnet-spec381.scale",
            "subtensor-finney-spec393.scale",
            "subtensor-finney-spec424.scale",
        ] {
            let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
            let metadata: subxt::metadata::Metadata = subxt::ext::codec::Decode::decode(&mut &bytes[..]).unwrap();
            let storage = metadata.pallet_by_name("SubtensorModule").unwrap().storage().unwrap();
            for item in READ_ITEMS {
                if storage.entry_by_name(item).is_none() {
                    missing.push(format!("{file}: {item}"));
                }
            }
            // Stake comes from the runtime's own metagraph.
            let api = metadata.runtime_api_trait_by_name("SubnetInfoRuntimeApi");
            let Some(method) = api.and_then(|a| a.method_by_name("get_metagraph")) else {
                missing.push(format!("{file}: SubnetInfoRuntimeApi.get_metagraph"));
                continue;
            };
            // Option<Metagraph>: the fields valkit reads by name.
            let types = metadata.types();
            let mut ty = types.resolve(method.output_ty()).unwrap();
            if let scale_info::TypeDef::Variant(option) = &ty.type_def {
                let some = option.variants.iter().find(|v| v.name == "Some").unwrap();
                ty = types.resolve(some.fields[0].ty.id).unwrap();
            }
            let scale_info::TypeDef::Composite(metagraph) = &ty.type_def else { panic!("{file}: get_metagraph is not a struct") };
            for field in ["total_stake", "alpha_stake", "tao_stake"] {
                if !metagraph.fields.iter().any(|f| f.name.as_deref() == Some(field)) {
                    missing.push(format!("{file}: get_metagraph's {field}"));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
