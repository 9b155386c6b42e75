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

    /// `LinearDecay(0.005,0.0001,14400)`, as the vectors print upstream's epsilon function.
    fn linear_decay(text: &str) -> EpsilonFunc {
        let args = text.strip_prefix("LinearDecay(").and_then(|t| t.strip_suffix(')')).unwrap_or_else(|| panic!("{text}"));
        let n: Vec<f64> = args.split(',').map(|a| a.trim().parse().unwrap_or_else(|_| panic!("{text}"))).collect();
        let [start, end, decay_blocks] = n[..] else { panic!("{text}: three arguments") };
        EpsilonFunc::LinearDecay { start, end, decay_blocks }
    }

    #[test]
    fn retry_vectors() {
        for case in vectors::section("should_retry_model")["cases"].as_array().unwrap() {
            // Each vector names its epsilon: a fixed value, or upstream's LinearDecay(start,end,blocks).
            let eps = match (case.get("epsilon_fixed"), case["epsilon"].as_str()) {
                (Some(v), None) => EpsilonFunc::Fixed { value: num(v) },
                (None, Some(text)) => linear_decay(text),
                _ => panic!("a vector names exactly one epsilon: {case}"),
            };
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
