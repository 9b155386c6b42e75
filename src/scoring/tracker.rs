//! upstream's `CompetitionTracker` (taoverse `model/competition/competition_tracker.py`,
//! upstream.md §6.6): per competition a float32 weight per uid, moved by an EMA at every step,
//! merged across competitions by reward share into the subnet weights. float32 throughout, with
//! torch's summation order (see `torch`).

use std::collections::BTreeMap;

use super::torch;

#[derive(Debug, Clone, PartialEq)]
pub struct CompetitionTracker {
    pub num_neurons: usize,
    pub alpha: f64,
    pub weights: BTreeMap<u16, Vec<f32>>,
}

/// `w / w.sum()` then `nan_to_num(0)`: an all-zero vector stays all zeros.
fn normalized(w: &[f32]) -> Vec<f32> {
    let total = torch::sum(w);
    w.iter().map(|&v| nan_to_zero(v / total)).collect()
}

fn nan_to_zero(v: f32) -> f32 {
    // torch.nan_to_num(0.0) also maps ±inf to the largest finite floats; a division of
    // non-negative weights by their sum can only produce NaN (0/0), never inf.
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

impl CompetitionTracker {
    pub fn new(num_neurons: usize, alpha: f64) -> Self {
        Self { num_neurons, alpha, weights: BTreeMap::new() }
    }

    /// Grows every stored vector with zeros (the tracker never shrinks).
    pub fn resize(&mut self, num_neurons: usize) {
        if num_neurons > self.num_neurons {
            for w in self.weights.values_mut() {
                w.resize(num_neurons, 0.0);
            }
            self.num_neurons = num_neurons;
        }
    }

    pub fn record(&mut self, competition_id: u16, new_weights: &[f32]) {
        if new_weights.len() != self.num_neurons {
            self.resize(new_weights.len());
        }
        let new = normalized(new_weights);
        // torch casts the Python scalars to float32 before multiplying a float32 tensor.
        let alpha = self.alpha as f32;
        let beta = (1.0 - self.alpha) as f32;
        let merged = match self.weights.get(&competition_id) {
            None => new,
            Some(old) => old.iter().zip(&new).map(|(&o, &n)| alpha * o + beta * n).collect(),
        };
        self.weights.insert(competition_id, merged);
    }

    pub fn reset_competitions(&mut self, active: &[u16]) {
        self.weights.retain(|id, _| active.contains(id));
    }

    /// Subnet weights across `schedule` (competition id, reward share), in schedule order.
    /// With a threshold, each stored competition vector is first normalised *in place*, as
    /// upstream does, so the tracker saved after this call holds the normalised weights.
    pub fn subnet_weights(&mut self, schedule: &[(u16, f64)], threshold: f64) -> Vec<f32> {
        let mut subnet = vec![0.0f32; self.num_neurons];
        for &(id, reward) in schedule {
            let Some(stored) = self.weights.get_mut(&id) else { continue };
            let mut weights = stored.clone();
            if threshold > 0.0 {
                let total = torch::sum(stored);
                for v in stored.iter_mut() {
                    *v /= total;
                }
                let cut = threshold as f32;
                weights = stored.iter().map(|&v| nan_to_zero(v)).map(|v| if v < cut { 0.0 } else { v }).collect();
                weights = normalized(&weights);
            }
            let reward = reward as f32;
            for (s, w) in subnet.iter_mut().zip(&weights) {
                *s += w * reward;
            }
        }
        normalized(&subnet)
    }

    pub fn competition_weights(&self, competition_id: u16) -> Option<&[f32]> {
        self.weights.get(&competition_id).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::{self, f32_bits, num};

    fn vector(v: &serde_json::Value) -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| num(x) as f32).collect()
    }
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn sn9_multi_competition_sequence() {
        let case = &vectors::section("competition_tracker")["cases"][0];
        let mut tracker = CompetitionTracker::new(6, 0.5);
        let schedule = [(6, 0.55), (2, 0.15), (4, 0.30)];
        for step in case["steps"].as_array().unwrap() {
            let id = step["recorded_competition"].as_u64().unwrap() as u16;
            tracker.record(id, &vector(&step["new_weights_in"]));
            for (cid, expected) in step["tracker_after"].as_object().unwrap() {
                assert_eq!(bits(tracker.competition_weights(cid.parse().unwrap()).unwrap()), f32_bits(expected));
            }
            assert_eq!(bits(&tracker.subnet_weights(&schedule, 0.0)), f32_bits(&step["subnet_weights_all3_comps"]));
        }
    }

    #[test]
    fn sn37_threshold_sequence() {
        let case = &vectors::section("competition_tracker")["cases"][1];
        let mut tracker = CompetitionTracker::new(4, 0.9);
        for step in case["steps"].as_array().unwrap() {
            tracker.record(4, &vector(&step["new_weights_in"]));
            assert_eq!(bits(tracker.competition_weights(4).unwrap()), f32_bits(&step["tracker_after"]), "step {}", step["step"]);
            let subnet = tracker.subnet_weights(&[(4, 1.0)], 0.18);
            assert_eq!(bits(&subnet), f32_bits(&step["subnet_weights_threshold_0.18"]), "step {}", step["step"]);
        }
    }

    #[test]
    fn upstream_unit_tests() {
        let cases = vectors::section("competition_tracker")["cases"].as_array().unwrap();
        // Two competitions, threshold 0.4, rewards 0.6/0.4 (taoverse's own test).
        let mut tracker = CompetitionTracker::new(4, 0.5);
        tracker.record(1, &[1.0, 2.0, 0.0, 0.0]);
        tracker.record(2, &[0.0, 0.0, 5.0, 5.0]);
        let got = tracker.subnet_weights(&[(1, 0.6), (2, 0.4)], 0.4);
        assert_eq!(bits(&got), f32_bits(&cases[2]["result"]));
        // Resize pads the earlier competition with zeros.
        let mut tracker = CompetitionTracker::new(4, 0.5);
        tracker.record(1, &[0.1, 0.2, 0.3, 0.4]);
        tracker.record(2, &[0.1, 0.2, 0.3, 0.2, 0.2]);
        assert_eq!(bits(tracker.competition_weights(1).unwrap()), f32_bits(&cases[3]["comp1"]));
        assert_eq!(bits(tracker.competition_weights(2).unwrap()), f32_bits(&cases[3]["comp2"]));
    }
}
