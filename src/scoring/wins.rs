//! `iswin`, `compute_wins` and SN9's `compute_competitive_uids` (upstream.md §6.1–§6.3).

use super::Contender;
use crate::competition::EpsilonFunc;

/// Whether model i beats model j: only the earlier-committed model gets its loss discounted by
/// its own epsilon; equal blocks give no advantage, and equal adjusted losses are a loss for both.
pub fn iswin(loss_i: f64, loss_j: f64, block_i: f64, block_j: f64, eps: &EpsilonFunc, current_block: f64) -> bool {
    let adjusted_i = if block_i < block_j { (1.0 - eps.compute(current_block, block_i)) * loss_i } else { loss_i };
    let adjusted_j = if block_j < block_i { (1.0 - eps.compute(current_block, block_j)) * loss_j } else { loss_j };
    adjusted_i < adjusted_j
}

/// The win rate of a uid that has nobody to play: SN9 says 1, SN37 says 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingleUidWinRate {
    One,
    Zero,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WinCount {
    pub uid: u16,
    pub wins: u32,
    pub win_rate: f64,
}

/// Wins of every contender against every other one, in input order.
pub fn compute_wins(contenders: &[Contender], eps: &EpsilonFunc, current_block: f64, single: SingleUidWinRate) -> Vec<WinCount> {
    contenders
        .iter()
        .map(|i| {
            let mut wins = 0u32;
            let mut matches = 0u32;
            for j in contenders.iter().filter(|j| j.uid != i.uid) {
                if iswin(i.score, j.score, i.block, j.block, eps, current_block) {
                    wins += 1;
                }
                matches += 1;
            }
            let win_rate = if matches > 0 {
                f64::from(wins) / f64::from(matches)
            } else {
                match single {
                    SingleUidWinRate::One => 1.0,
                    SingleUidWinRate::Zero => 0.0,
                }
            };
            WinCount { uid: i.uid, wins, win_rate }
        })
        .collect()
}

/// SN9's filter: keep a uid only if its score beats, at fully decayed epsilon, every model
/// committed at the same or an earlier block. Clones of a leader drop out; so do two models with
/// identical score and block (then nobody may be left: the caller reports that).
pub fn compute_competitive_uids(contenders: &[Contender], eps: &EpsilonFunc) -> Vec<u16> {
    let fully_decayed = 1.0 - eps.compute(f64::INFINITY, 0.0);
    contenders
        .iter()
        .filter(|u| contenders.iter().filter(|o| o.uid != u.uid && o.block <= u.block).all(|o| u.score < o.score * fully_decayed))
        .map(|u| u.uid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::{self, contenders, num, uid_map};

    fn linear(e: &serde_json::Value) -> EpsilonFunc {
        EpsilonFunc::LinearDecay { start: num(&e["start"]), end: num(&e["end"]), decay_blocks: num(&e["decay_blocks"]) }
    }

    #[test]
    fn pretraining_vectors() {
        for case in vectors::section("pretraining_compute_wins")["cases"].as_array().unwrap() {
            let eps = linear(&case["epsilon"]);
            let cur = num(&case["current_block"]);
            let all = contenders(case);
            let competitive = compute_competitive_uids(&all, &eps);
            let expected: Vec<u16> = case["competitive_uids"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap() as u16).collect();
            let mut sorted_expected = expected.clone();
            sorted_expected.sort_unstable();
            assert_eq!(competitive, sorted_expected, "{}", case["name"]);
            let kept: Vec<Contender> = all.iter().copied().filter(|c| competitive.contains(&c.uid)).collect();
            let wins = compute_wins(&kept, &eps, cur, SingleUidWinRate::One);
            assert_eq!(wins.len(), uid_map(&case["wins"]).len(), "{}", case["name"]);
            for w in &wins {
                assert_eq!(f64::from(w.wins), uid_map(&case["wins"])[&w.uid], "{}", case["name"]);
                assert_eq!(w.win_rate, uid_map(&case["win_rate"])[&w.uid], "{}", case["name"]);
            }
            for w in compute_wins(&all, &eps, cur, SingleUidWinRate::One) {
                assert_eq!(f64::from(w.wins), uid_map(&case["wins_without_filter"])[&w.uid]);
                if all.len() > 1 {
                    assert_eq!(w.win_rate, uid_map(&case["win_rate_without_filter"])[&w.uid], "{}", case["name"]);
                }
            }
        }
    }

    #[test]
    fn finetuning_vectors() {
        let eps = EpsilonFunc::LinearDecay { start: 0.05, end: 0.01, decay_blocks: 21_600.0 };
        for case in vectors::section("finetuning_compute_wins")["cases"].as_array().unwrap() {
            let all = contenders(case);
            let wins = compute_wins(&all, &eps, num(&case["current_block"]), SingleUidWinRate::Zero);
            for w in &wins {
                assert_eq!(f64::from(w.wins), uid_map(&case["wins"])[&w.uid], "{}", case["name"]);
                assert_eq!(w.win_rate, uid_map(&case["win_rate"])[&w.uid], "{}", case["name"]);
            }
        }
    }
}
