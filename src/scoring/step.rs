//! One evaluation step of one competition, after every model has a score (upstream.md §6.4–§6.8):
//! wins → step weights → tracker EMA → subnet weights → keep set → eval results.

use std::collections::BTreeMap;

use super::{
    compute_competitive_uids, compute_wins, keep_set, torch, CompetitionTracker, Contender, EvalResult, SingleUidWinRate, WinCount,
};
use crate::competition::{EpsilonFunc, Weighting};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("no uid to score in competition {0}")]
    Empty(u16),
    #[error("no competitive uid in competition {competition_id}: uids {uids} tie on score and commit block (upstream's validator crashes here and sets no weights for the step)")]
    NoCompetitiveUid { competition_id: u16, uids: String },
    #[error("uid {uid} is outside the metagraph of {num_neurons} neurons")]
    UidOutOfRange { uid: u16, num_neurons: usize },
}

pub struct StepInput<'a> {
    pub competition_id: u16,
    /// In ascending uid order.
    pub contenders: &'a [Contender],
    pub epsilon: EpsilonFunc,
    pub weighting: Weighting,
    pub current_block: u64,
    /// The metagraph's size: step weights are a vector over uids 0..n.
    pub num_neurons: usize,
    /// Competitions scheduled at the current block with their reward shares, in schedule order.
    pub schedule: &'a [(u16, f64)],
    pub weight_threshold: f64,
    pub sample_min: usize,
    pub keep_fill_by_score: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UidOutcome {
    pub uid: u16,
    pub competitive: bool,
    pub wins: u32,
    /// 0 for a uid dropped by the competitive filter.
    pub win_rate: f64,
    pub step_weight: f32,
    /// This competition's tracker weight after the step.
    pub tracker_weight: f32,
    pub keep: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// In the order of the input contenders.
    pub uids: Vec<UidOutcome>,
    pub top_uid: u16,
    pub subnet_weights: Vec<f32>,
    /// Recorded for every uid of the step, as upstream's `_record_eval_results`.
    pub eval_results: Vec<(u16, EvalResult)>,
}

pub fn run_step(input: &StepInput, tracker: &mut CompetitionTracker) -> Result<Step, StepError> {
    let contenders = input.contenders;
    let id = input.competition_id;
    if contenders.is_empty() {
        return Err(StepError::Empty(id));
    }
    let size = input.num_neurons.max(tracker.num_neurons);
    if let Some(c) = contenders.iter().find(|c| usize::from(c.uid) >= size) {
        return Err(StepError::UidOutOfRange { uid: c.uid, num_neurons: size });
    }
    let cur = input.current_block as f64;
    let (counts, step_weights) = match input.weighting {
        Weighting::Softmax { temperature } => {
            let competitive = compute_competitive_uids(contenders, &input.epsilon);
            if competitive.is_empty() {
                let uids = contenders.iter().map(|c| c.uid.to_string()).collect::<Vec<_>>().join(", ");
                return Err(StepError::NoCompetitiveUid { competition_id: id, uids });
            }
            let kept: Vec<Contender> = contenders.iter().copied().filter(|c| competitive.contains(&c.uid)).collect();
            let counts = compute_wins(&kept, &input.epsilon, cur, SingleUidWinRate::One);
            let rates: BTreeMap<u16, f64> = counts.iter().map(|w| (w.uid, w.win_rate)).collect();
            let temperature = temperature as f32;
            let x: Vec<f32> = contenders.iter().map(|c| rates.get(&c.uid).copied().unwrap_or(0.0) as f32 / temperature).collect();
            (counts, torch::softmax(&x))
        }
        Weighting::WinnerTakesAll => {
            let counts = compute_wins(contenders, &input.epsilon, cur, SingleUidWinRate::Zero);
            let best = counts.iter().map(|w| w.win_rate).fold(f64::NEG_INFINITY, f64::max);
            let weights = counts.iter().map(|w| if w.win_rate == best { 1.0 } else { 0.0 }).collect();
            (counts, weights)
        }
    };
    let top_uid = first_best(&counts);
    let mut competition_weights = vec![0.0f32; size];
    for (c, &w) in contenders.iter().zip(&step_weights) {
        competition_weights[usize::from(c.uid)] = w;
    }
    tracker.record(id, &competition_weights);
    let active: Vec<u16> = input.schedule.iter().map(|s| s.0).collect();
    tracker.reset_competitions(&active);
    let subnet_weights = tracker.subnet_weights(input.schedule, input.weight_threshold);
    let tracker_weights = tracker.competition_weights(id).map(<[f32]>::to_vec).unwrap_or_else(|| vec![0.0; size]);
    let scores: Vec<(u16, f64)> = contenders.iter().map(|c| (c.uid, c.score)).collect();
    let fill = input.keep_fill_by_score.then_some(scores.as_slice());
    let keep = keep_set(&counts, &tracker_weights, input.sample_min, fill);
    let top = contenders.iter().find(|c| c.uid == top_uid).expect("top uid is a contender");
    let uids = contenders
        .iter()
        .zip(&step_weights)
        .map(|(c, &step_weight)| {
            let count = counts.iter().find(|w| w.uid == c.uid);
            UidOutcome {
                uid: c.uid,
                competitive: count.is_some(),
                wins: count.map_or(0, |w| w.wins),
                win_rate: count.map_or(0.0, |w| w.win_rate),
                step_weight,
                tracker_weight: tracker_weights.get(usize::from(c.uid)).copied().unwrap_or(0.0),
                keep: keep.contains(&c.uid),
            }
        })
        .collect();
    let eval_results = contenders
        .iter()
        .map(|c| {
            let result =
                EvalResult { block: input.current_block, score: c.score, winning_model_block: top.block, winning_model_score: top.score };
            (c.uid, result)
        })
        .collect();
    Ok(Step { uids, top_uid, subnet_weights, eval_results })
}

/// Python's `max(d, key=d.get)`: the first uid with the highest win rate.
fn first_best(counts: &[WinCount]) -> u16 {
    let mut best = &counts[0];
    for w in &counts[1..] {
        if w.win_rate > best.win_rate {
            best = w;
        }
    }
    best.uid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::{self, contenders, f32_bits, num, uid_map};

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn simulate(
        case: &serde_json::Value,
        weighting: Weighting,
        eps: EpsilonFunc,
        schedule: &[(u16, f64)],
        threshold: f64,
        sample_min: usize,
        fill: bool,
        tracker: &mut CompetitionTracker,
    ) {
        let n = case["num_neurons"].as_u64().unwrap() as usize;
        let steps = case["steps"].as_array().unwrap();
        let mut step_weights_checked = 0;
        for (i, step) in steps.iter().enumerate() {
            let all = contenders(step);
            let input = StepInput {
                competition_id: 4,
                contenders: &all,
                epsilon: eps,
                weighting,
                current_block: num(&step["current_block"]) as u64,
                num_neurons: n,
                schedule,
                weight_threshold: threshold,
                sample_min,
                keep_fill_by_score: fill,
            };
            let out = run_step(&input, tracker).unwrap();
            assert_eq!(out.top_uid as u64, step["top_uid"].as_u64().unwrap(), "step {i}");
            for u in &out.uids {
                assert_eq!(u.win_rate, uid_map(&step["win_rate"]).get(&u.uid).copied().unwrap_or(0.0), "step {i} uid {}", u.uid);
            }
            if let Some(expected) = step.get("step_weights_in_uids_order") {
                let order: Vec<u16> = step["uids"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap() as u16).collect();
                let expected = f32_bits(expected);
                assert_eq!(expected.len(), order.len(), "step {i}: one step weight per uid");
                for (uid, bits) in order.iter().zip(expected) {
                    let got = out.uids.iter().find(|u| u.uid == *uid).unwrap().step_weight;
                    assert_eq!(got.to_bits(), bits, "step {i} uid {uid}");
                }
                step_weights_checked += 1;
            }
            assert_eq!(bits(tracker.competition_weights(4).unwrap()), f32_bits(&step["tracker_competition_weights"]), "step {i}");
            assert_eq!(bits(&out.subnet_weights), f32_bits(&step["subnet_weights"]), "step {i}");
            let mut keep: Vec<u64> = step["models_to_keep"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap()).collect();
            keep.sort_unstable();
            let got: Vec<u64> = out.uids.iter().filter(|u| u.keep).map(|u| u64::from(u.uid)).collect();
            assert_eq!(got, keep, "step {i}");
        }
        // Softmax steps' weights are in the vectors for every step; winner-takes-all ones are not
        // (upstream records only the tracker there, which the EMA checks above pin bit for bit).
        if matches!(weighting, Weighting::Softmax { .. }) {
            assert_eq!(step_weights_checked, steps.len(), "every softmax step's weights were compared");
        } else {
            assert_eq!(step_weights_checked, 0);
        }
    }

    #[test]
    fn sn9_step_simulation() {
        let case = &vectors::section("step_simulations")["cases"][0];
        let eps = EpsilonFunc::LinearDecay { start: 0.005, end: 0.0001, decay_blocks: 14_400.0 };
        let schedule = [(6, 0.55), (2, 0.15), (4, 0.3)];
        let mut tracker = CompetitionTracker::new(12, 0.5);
        simulate(case, Weighting::Softmax { temperature: 0.01 }, eps, &schedule, 0.0, 5, true, &mut tracker);
    }

    #[test]
    fn sn37_step_simulation() {
        let case = &vectors::section("step_simulations")["cases"][1];
        let eps = EpsilonFunc::LinearDecay { start: 0.05, end: 0.01, decay_blocks: 21_600.0 };
        let mut tracker = CompetitionTracker::new(8, 0.9);
        tracker.record(4, &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        simulate(case, Weighting::WinnerTakesAll, eps, &[(4, 1.0)], 0.18, 3, false, &mut tracker);
    }

    #[test]
    fn exact_tie_on_the_same_block_is_a_clear_error() {
        let eps = EpsilonFunc::LinearDecay { start: 0.005, end: 0.0001, decay_blocks: 14_400.0 };
        let all = [Contender { uid: 1, score: 2.5, block: 100.0 }, Contender { uid: 2, score: 2.5, block: 100.0 }];
        let input = StepInput {
            competition_id: 4,
            contenders: &all,
            epsilon: eps,
            weighting: Weighting::Softmax { temperature: 0.01 },
            current_block: 1000,
            num_neurons: 4,
            schedule: &[(4, 1.0)],
            weight_threshold: 0.0,
            sample_min: 5,
            keep_fill_by_score: true,
        };
        let err = run_step(&input, &mut CompetitionTracker::new(4, 0.5)).unwrap_err();
        assert!(matches!(err, StepError::NoCompetitiveUid { .. }), "{err}");
    }
}
