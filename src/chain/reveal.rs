//! Whether the chain revealed a timelocked commit. The chain reveals commits itself and only
//! logs a failure (chain-crv4.md "Chain side"), so a later run judges from what it stores: the
//! uid's `Weights` and `LastUpdate` at the reveal block, and for a commit that was not applied,
//! the likeliest of the causes the chain would have logged. Pure: the caller reads the facts.

/// What the chain showed about one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The `(uid, value)` pairs the commit hides, as sent.
    pub committed: Vec<(u16, u16)>,
    /// The validator's `Weights` row at the block judged at.
    pub on_chain: Vec<(u16, u16)>,
    /// Its `LastUpdate` there; a commit sets it to the commit block, a reveal to the reveal block.
    pub last_update: u64,
    pub commit_block: u64,
    /// The block by which the chain reveals the commit, and the block judged at.
    pub reveal_block: u64,
    pub judged_at: u64,
    pub round: u64,
    /// Whether the chain holds the round's pulse, and its newest round.
    pub pulse: bool,
    pub last_drand_round: u64,
    /// The version key committed, and the subnet's `WeightsVersionKey` now.
    pub version_key: u64,
    pub chain_version_key: u64,
    /// Whether the uid holds a validator permit now (checked again at reveal).
    pub permit: bool,
    /// Whether it sets weights only on itself (allowed without a permit).
    pub self_weight_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The chain applied exactly the committed weights after the commit.
    Revealed,
    /// The reveal block has not passed and the weights are not there yet.
    Waiting,
    /// The reveal block passed without the weights: the likely cause.
    Lost(String),
}

/// The chain stores revealed values max-upscaled (`vec_u16_max_upscale_to_u16`, subtensor
/// `weights.rs:833`), which leaves the SDK's conversion as it is (its largest value is 65535), and
/// in the order sent: equal as sets of pairs is equal.
pub fn judge(e: &Evidence) -> Verdict {
    let mut stored = e.committed.clone();
    let mut on_chain = e.on_chain.clone();
    stored.sort_unstable();
    on_chain.sort_unstable();
    if stored == on_chain && e.last_update > e.commit_block {
        return Verdict::Revealed;
    }
    if e.judged_at < e.reveal_block {
        return Verdict::Waiting;
    }
    let cause = if !e.pulse {
        format!(
            "the chain holds no drand pulse for round {} (its newest is {}), so it could not decrypt the commit{}",
            e.round,
            e.last_drand_round,
            if e.last_drand_round == 0 { "; this chain has never received a pulse (a local or dev chain reveals nothing)" } else { "" }
        )
    } else if e.version_key < e.chain_version_key {
        format!(
            "its version key {} is below the subnet's WeightsVersionKey {}: the chain refuses such weights at reveal",
            e.version_key, e.chain_version_key
        )
    } else if !e.permit && !e.self_weight_only {
        "the uid has no validator permit: the chain refuses its weights at reveal".to_string()
    } else if e.last_update > e.reveal_block {
        format!("weights set at block {} replaced whatever the reveal applied", e.last_update)
    } else {
        "the chain decrypted nothing it applied; it logs the reason only at trace level (a payload it could not decode, or a check at reveal)"
            .to_string()
    };
    Verdict::Lost(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence() -> Evidence {
        Evidence {
            committed: vec![(1, 65535), (0, 32768)],
            on_chain: vec![(0, 32768), (1, 65535)],
            last_update: 130,
            commit_block: 104,
            reveal_block: 129,
            judged_at: 129,
            round: 1000,
            pulse: true,
            last_drand_round: 2000,
            version_key: 7,
            chain_version_key: 7,
            permit: true,
            self_weight_only: false,
        }
    }

    #[test]
    fn applied_weights_after_the_commit_are_a_reveal() {
        assert_eq!(judge(&evidence()), Verdict::Revealed);
        // Revealed early: judged before the reveal block, still a reveal.
        assert_eq!(judge(&Evidence { judged_at: 110, ..evidence() }), Verdict::Revealed);
        // The same values, but set at the commit block itself (the commit's own LastUpdate).
        assert_eq!(judge(&Evidence { last_update: 104, judged_at: 110, ..evidence() }), Verdict::Waiting);
        assert_eq!(judge(&Evidence { on_chain: vec![(0, 32768), (1, 65534)], judged_at: 110, ..evidence() }), Verdict::Waiting);
    }

    #[test]
    fn a_lost_commit_names_its_likely_cause() {
        let lost = |e: Evidence| match judge(&e) {
            Verdict::Lost(cause) => cause,
            other => panic!("{other:?}"),
        };
        let unapplied = Evidence { on_chain: vec![], last_update: 104, ..evidence() };
        let cause = lost(Evidence { pulse: false, last_drand_round: 0, ..unapplied.clone() });
        assert!(cause.contains("no drand pulse for round 1000") && cause.contains("never received a pulse"), "{cause}");
        assert!(lost(Evidence { chain_version_key: 8, ..unapplied.clone() }).contains("WeightsVersionKey 8"));
        assert!(lost(Evidence { permit: false, ..unapplied.clone() }).contains("validator permit"));
        assert!(lost(Evidence { on_chain: vec![(0, 1)], last_update: 140, ..unapplied.clone() }).contains("block 140"));
        assert!(lost(unapplied).contains("trace level"));
    }
}
