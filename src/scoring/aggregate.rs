//! From per-batch losses to one score per model (upstream.md §5.1–§5.3): the mean over a task's
//! batches, the task's normalisation, and the weighted sum over the tasks that loaded, with the
//! weights renormalised when some task did not load.

use crate::competition::{is_close, Normalization};

pub fn normalize(raw: f64, normalization: &Normalization) -> f64 {
    match *normalization {
        Normalization::None => raw,
        Normalization::InverseExponential { ceiling } => {
            if raw >= ceiling {
                1.0
            } else {
                (1.0 - (-raw / ceiling).exp()) / (1.0 - (-1.0f64).exp())
            }
        }
    }
}

/// One task of a competition as seen by one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskScore {
    pub weight: f64,
    pub normalization: Normalization,
    /// The mean batch loss (`inf` if a batch failed); `None` when the task did not load this step.
    pub raw: Option<f64>,
}

/// upstream's `score_model` sum, in task order. Tasks that did not load are dropped and the
/// remaining weights divided by their sum unless it is already close to 1.
pub fn task_weighted_score(tasks: &[TaskScore]) -> f64 {
    let loaded: Vec<&TaskScore> = tasks.iter().filter(|t| t.raw.is_some()).collect();
    let total: f64 = loaded.iter().map(|t| t.weight).sum();
    let renormalize = !is_close(total, 1.0);
    let mut score = 0.0;
    for task in loaded {
        let weight = if renormalize { task.weight / total } else { task.weight };
        score += normalize(task.raw.expect("loaded"), &task.normalization) * weight;
    }
    score
}

/// Python's `sum(losses) / len(losses)` over a task's batches, in batch order.
pub fn mean(losses: &[f64]) -> f64 {
    if losses.is_empty() {
        return f64::INFINITY;
    }
    losses.iter().sum::<f64>() / losses.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::{self, num};

    #[test]
    fn inverse_exponential_vectors() {
        for case in vectors::section("normalize_inverse_exponential").as_array().unwrap() {
            let n = Normalization::InverseExponential { ceiling: num(&case["ceiling"]) };
            assert_eq!(normalize(num(&case["score"]), &n).to_bits(), num(&case["normalized"]).to_bits(), "{case}");
        }
    }

    #[test]
    fn missing_tasks_are_renormalised_away() {
        let none = Normalization::None;
        let tasks = [
            TaskScore { weight: 0.3, normalization: none, raw: Some(2.0) },
            TaskScore { weight: 0.5, normalization: none, raw: None },
            TaskScore { weight: 0.2, normalization: none, raw: Some(4.0) },
        ];
        assert_eq!(task_weighted_score(&tasks), 2.0 * (0.3 / 0.5) + 4.0 * (0.2 / 0.5));
        let all = [TaskScore { raw: Some(1.0), ..tasks[0] }, TaskScore { raw: Some(f64::INFINITY), ..tasks[1] }];
        assert_eq!(task_weighted_score(&all), f64::INFINITY);
    }
}
