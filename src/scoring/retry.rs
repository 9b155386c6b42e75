//! `should_retry_model` (upstream.md §6.9): whether a model evaluated before deserves another
//! evaluation now, given its recent results (oldest first).

use super::EvalResult;
use crate::competition::EpsilonFunc;

pub fn should_retry_model(eps: &EpsilonFunc, current_block: f64, history: &[EvalResult]) -> bool {
    if history.is_empty() {
        return true;
    }
    match history.iter().rev().find(|r| r.score.is_finite()) {
        Some(last_ok) => {
            if last_ok.score > last_ok.winning_model_score {
                return false;
            }
            let e = eps.compute(current_block, last_ok.winning_model_block);
            last_ok.score < last_ok.winning_model_score * (1.0 - e)
        }
        // Only failures: one retry.
        None => history.len() < 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::{self, num};

    #[test]
    fn retry_vectors() {
        for case in vectors::section("should_retry_model")["cases"].as_array().unwrap() {
            let eps = match case.get("epsilon_fixed") {
                Some(v) => EpsilonFunc::Fixed { value: num(v) },
                None => EpsilonFunc::LinearDecay { start: 0.005, end: 0.0001, decay_blocks: 14_400.0 },
            };
            assert_eq!(case["epsilon"].as_str().unwrap_or("LinearDecay(0.005,0.0001,14400)"), "LinearDecay(0.005,0.0001,14400)");
            let history: Vec<EvalResult> = case["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| EvalResult {
                    block: h["block"].as_u64().unwrap(),
                    score: num(&h["score"]),
                    winning_model_block: num(&h["winning_model_block"]),
                    winning_model_score: num(&h["winning_model_score"]),
                })
                .collect();
            let got = should_retry_model(&eps, num(&case["curr_block"]), &history);
            assert_eq!(got, case["should_retry"].as_bool().unwrap(), "{case}");
        }
    }
}
