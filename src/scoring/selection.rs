//! Which uids enter a step (upstream.md §1.2, §1.3, §6.7, §6.9). Upstream decides this in a
//! background thread over hours; valkit decides it at once from the metagraph and the previous
//! tracker, by the same rules:
//!
//! - **keep**: the uid is in its competition's keep set from the last step;
//! - **new** / **changed**: never evaluated under this hotkey, or committed again since its last
//!   evaluation (upstream clears the history when the metadata changes);
//! - **top-miner**: a validator with a permit and enough stake gives it at least the rule's share
//!   of its weight, and `retry_blocks` have passed since its last evaluation — never capped;
//! - **retry**: `should_retry_model` says its last result deserves another look.
//!
//! New, changed and retried models are admitted while keep sets plus admissions stay within
//! `updated_models_limit`. Upstream admits them in the order a randomly started cyclic iterator
//! meets them; valkit admits new and changed models before retries, then older commitments
//! first, then lower uids, so the choice is the same on every machine.

use std::collections::{BTreeMap, BTreeSet};

use super::{retry::should_retry_model, EvalResult};
use crate::competition::{EpsilonFunc, TopMinerRule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepReason {
    All,
    Keep,
    New,
    Changed,
    TopMiner,
    Retry,
}

impl StepReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Keep => "keep",
            Self::New => "new",
            Self::Changed => "changed",
            Self::TopMiner => "top-miner",
            Self::Retry => "retry",
        }
    }
}

/// A uid whose commitment is valid, scheduled and past the eval delay.
#[derive(Debug, Clone)]
pub struct Eligible {
    pub uid: u16,
    pub hotkey: String,
    pub competition_id: u16,
    pub commit_block: u64,
}

/// What the previous tracker says of a (competition, uid).
#[derive(Debug, Clone, Default)]
pub struct Previous {
    pub hotkey: Option<String>,
    pub keep: bool,
    /// Oldest first.
    pub history: Vec<EvalResult>,
}

/// A validator's weight row as the metagraph holds it.
#[derive(Debug, Clone)]
pub struct ValidatorWeights {
    pub uid: u16,
    pub stake: f64,
    pub permit: bool,
    /// (miner uid, weight) in any consistent unit.
    pub weights: Vec<(u16, f64)>,
}

pub struct Inputs<'a> {
    pub eligible: &'a [Eligible],
    pub previous: &'a BTreeMap<(u16, u16), Previous>,
    pub validators: &'a [ValidatorWeights],
    pub epsilon: &'a dyn Fn(u16) -> Option<EpsilonFunc>,
    pub current_block: u64,
    pub updated_models_limit: Option<usize>,
    pub top_miners: Option<TopMinerRule>,
}

/// The uids of each rule; `all` puts every eligible uid in the step.
pub fn select(inputs: &Inputs, all: bool) -> BTreeMap<u16, StepReason> {
    if all {
        return inputs.eligible.iter().map(|e| (e.uid, StepReason::All)).collect();
    }
    let top = top_miners(inputs.validators, inputs.top_miners);
    let mut chosen = BTreeMap::new();
    let mut capped: Vec<(StepReason, u64, u16)> = Vec::new();
    for e in inputs.eligible {
        let empty = Previous::default();
        let prev = inputs.previous.get(&(e.competition_id, e.uid)).unwrap_or(&empty);
        let same_hotkey = prev.hotkey.as_deref().is_none_or(|h| h == e.hotkey);
        let history: &[EvalResult] = if same_hotkey { &prev.history } else { &[] };
        let last_eval = history.last().map(|r| r.block);
        let reason = if same_hotkey && prev.keep {
            Some(StepReason::Keep)
        } else if history.is_empty() {
            Some(StepReason::New)
        } else if last_eval.is_some_and(|b| e.commit_block > b) {
            Some(StepReason::Changed)
        } else if top.contains(&e.uid)
            && inputs.top_miners.is_some_and(|r| inputs.current_block.saturating_sub(last_eval.unwrap_or(0)) >= r.retry_blocks)
        {
            Some(StepReason::TopMiner)
        } else if (inputs.epsilon)(e.competition_id).is_some_and(|eps| should_retry_model(&eps, inputs.current_block as f64, history)) {
            Some(StepReason::Retry)
        } else {
            None
        };
        match reason {
            Some(r @ (StepReason::New | StepReason::Changed | StepReason::Retry)) => capped.push((r, e.commit_block, e.uid)),
            Some(r) => {
                chosen.insert(e.uid, r);
            }
            None => {}
        }
    }
    // Retries after new and changed models; older commitments first.
    capped.sort_by_key(|&(r, block, uid)| (r == StepReason::Retry, block, uid));
    let kept = chosen.values().filter(|r| **r == StepReason::Keep).count();
    let room = inputs.updated_models_limit.map_or(usize::MAX, |limit| limit.saturating_sub(kept));
    for (reason, _, uid) in capped.into_iter().take(room) {
        chosen.insert(uid, reason);
    }
    chosen
}

/// upstream.md §1.3 `get_top_miners`: miners holding at least the rule's fraction of the total
/// weight of a permitted validator with enough stake.
pub fn top_miners(validators: &[ValidatorWeights], rule: Option<TopMinerRule>) -> BTreeSet<u16> {
    let Some(rule) = rule else { return BTreeSet::new() };
    let mut out = BTreeSet::new();
    for v in validators.iter().filter(|v| v.permit && v.stake >= rule.min_validator_stake) {
        let total: f64 = v.weights.iter().map(|(_, w)| w).sum();
        if total <= 0.0 {
            continue;
        }
        out.extend(v.weights.iter().filter(|(_, w)| *w >= total * rule.min_weight_fraction).map(|(m, _)| *m));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eligible(uid: u16, commit_block: u64) -> Eligible {
        Eligible { uid, hotkey: format!("hk{uid}"), competition_id: 1, commit_block }
    }

    fn evaluated(uid: u16, block: u64, score: f64, winning: f64, keep: bool) -> ((u16, u16), Previous) {
        let r = EvalResult { block, score, winning_model_block: 100.0, winning_model_score: winning };
        ((1, uid), Previous { hotkey: Some(format!("hk{uid}")), keep, history: vec![r] })
    }

    fn run(
        eligible: &[Eligible],
        previous: &BTreeMap<(u16, u16), Previous>,
        validators: &[ValidatorWeights],
        limit: Option<usize>,
    ) -> BTreeMap<u16, StepReason> {
        let eps = |_| Some(EpsilonFunc::Fixed { value: 0.01 });
        let rule = TopMinerRule { min_validator_stake: 1000.0, min_weight_fraction: 0.05, retry_blocks: 300 };
        let inputs = Inputs {
            eligible,
            previous,
            validators,
            epsilon: &eps,
            current_block: 10_000,
            updated_models_limit: limit,
            top_miners: Some(rule),
        };
        select(&inputs, false)
    }

    #[test]
    fn each_rule_and_the_cap() {
        let e: Vec<Eligible> =
            vec![eligible(1, 50), eligible(2, 60), eligible(3, 70), eligible(4, 9_000), eligible(5, 40), eligible(6, 80), eligible(7, 30)];
        let previous: BTreeMap<_, _> = [
            evaluated(1, 5_000, 2.0, 2.0, true),  // keep
            evaluated(3, 5_000, 2.0, 1.0, false), // lost clearly: no retry
            evaluated(4, 5_000, 2.0, 1.0, false), // committed again since: changed
            evaluated(5, 5_000, 1.0, 2.0, false), // beat the winner by more than epsilon: retry
            evaluated(6, 9_800, 3.0, 1.0, false), // top miner, evaluated 200 blocks ago: not yet
            evaluated(7, 9_000, 3.0, 1.0, false), // top miner, 1000 blocks ago
        ]
        .into();
        let validators = vec![
            ValidatorWeights { uid: 0, stake: 5000.0, permit: true, weights: vec![(6, 50.0), (7, 50.0), (3, 1.0)] },
            ValidatorWeights { uid: 9, stake: 10.0, permit: true, weights: vec![(3, 100.0)] }, // too little stake
        ];
        let chosen = run(&e, &previous, &validators, None);
        let expect =
            [(1, StepReason::Keep), (2, StepReason::New), (4, StepReason::Changed), (5, StepReason::Retry), (7, StepReason::TopMiner)];
        assert_eq!(chosen, expect.into_iter().collect());
        // A cap of 3: the keep set takes one place, new and changed come before the retry; the
        // top miner is not capped.
        let capped = run(&e, &previous, &validators, Some(3));
        let expect = [(1, StepReason::Keep), (2, StepReason::New), (4, StepReason::Changed), (7, StepReason::TopMiner)];
        assert_eq!(capped, expect.into_iter().collect());
    }

    #[test]
    fn a_uid_that_changed_hands_starts_afresh() {
        let mut previous: BTreeMap<_, _> = [evaluated(1, 5_000, 2.0, 1.0, true)].into();
        previous.get_mut(&(1, 1)).unwrap().hotkey = Some("someone-else".into());
        assert_eq!(run(&[eligible(1, 50)], &previous, &[], None), [(1, StepReason::New)].into_iter().collect());
    }
}
