//! Which uids a competition carries into its next step (upstream.md §6.7).

use std::collections::BTreeSet;

use super::WinCount;

/// Uids with a tracker weight of at least 0.001 rank first by `1 + weight`, the rest by win rate;
/// the first `sample_min` are kept (a stable sort: ties keep uid order). SN9 then tops the set up
/// with the lowest-scoring uids of the step (`fill_by_score`: every uid with its score).
pub fn keep_set(win_rates: &[WinCount], tracker_weights: &[f32], sample_min: usize, fill_by_score: Option<&[(u16, f64)]>) -> BTreeSet<u16> {
    let mut priority: Vec<(u16, f64)> = win_rates
        .iter()
        .map(|w| {
            // upstream reads the weight with `.item()`, so `1 + w` is computed in double.
            let weight = f64::from(tracker_weights.get(usize::from(w.uid)).copied().unwrap_or(0.0));
            (w.uid, if weight >= 0.001 { 1.0 + weight } else { w.win_rate })
        })
        .collect();
    priority.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut keep: BTreeSet<u16> = priority.iter().take(sample_min).map(|p| p.0).collect();
    if let Some(scores) = fill_by_score {
        let mut by_score = scores.to_vec();
        by_score.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (uid, _) in by_score {
            if keep.len() >= sample_min {
                break;
            }
            keep.insert(uid);
        }
    }
    keep
}
