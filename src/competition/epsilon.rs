//! Epsilon functions: how much of a loss advantage an earlier-committed model gets
//! (upstream.md §3.3, taoverse `model/competition/epsilon.py`).

/// Blocks are `f64` because upstream uses `math.inf` for "no block" (a uid without metadata) and
/// for "fully decayed" (`current_block = inf` in the competitive filter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EpsilonFunc {
    Fixed { value: f64 },
    LinearDecay { start: f64, end: f64, decay_blocks: f64 },
}

impl EpsilonFunc {
    pub fn compute(&self, current_block: f64, model_block: f64) -> f64 {
        match *self {
            Self::Fixed { value } => value,
            Self::LinearDecay { start, end, decay_blocks } => {
                let blocks_since = py_max(current_block - model_block, 0.0);
                let fraction = py_min(blocks_since / decay_blocks, 1.0);
                start - fraction * (start - end)
            }
        }
    }
}

impl std::fmt::Display for EpsilonFunc {
    /// The profile TOML's inline-table form, e.g. `{ kind = "fixed", value = 0.005 }`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Fixed { value } => write!(f, "{{ kind = \"fixed\", value = {value:?} }}"),
            Self::LinearDecay { start, end, decay_blocks } => write!(
                f,
                "{{ kind = \"linear-decay\", start = {start:?}, end = {end:?}, decay_blocks = {} }}",
                if decay_blocks.fract() == 0.0 { format!("{decay_blocks:.0}") } else { format!("{decay_blocks:?}") }
            ),
        }
    }
}

/// Python's `max(a, b)`: keeps `a` unless `b > a` (so a NaN first argument survives).
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// Python's `min(a, b)`: keeps `a` unless `b < a`.
fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::vectors::{self, num};

    /// Parses the vector's function label, e.g. `"SN9 LinearDecay(0.005,0.0001,14400)"`.
    pub(crate) fn parse_label(label: &str) -> EpsilonFunc {
        let args = |s: &str| -> Vec<f64> {
            let inner = &s[s.find('(').unwrap() + 1..s.find(')').unwrap()];
            inner.split(',').map(|a| a.trim().parse().unwrap()).collect()
        };
        if let Some(pos) = label.find("LinearDecay(") {
            let a = args(&label[pos..]);
            EpsilonFunc::LinearDecay { start: a[0], end: a[1], decay_blocks: a[2] }
        } else {
            let pos = label.find("FixedEpsilon(").expect("known epsilon label");
            EpsilonFunc::Fixed { value: args(&label[pos..])[0] }
        }
    }

    #[test]
    fn displays_as_profile_toml() {
        let e = EpsilonFunc::LinearDecay { start: 0.005, end: 0.0001, decay_blocks: 14_400.0 };
        assert_eq!(e.to_string(), "{ kind = \"linear-decay\", start = 0.005, end = 0.0001, decay_blocks = 14400 }");
        assert_eq!(EpsilonFunc::Fixed { value: 0.005 }.to_string(), "{ kind = \"fixed\", value = 0.005 }");
    }

    #[test]
    fn epsilon_vectors() {
        let cases = vectors::section("epsilon")["cases"].as_array().unwrap().clone();
        assert_eq!(cases.len(), 78);
        for case in cases {
            let func = parse_label(case["func"].as_str().unwrap());
            let got = func.compute(num(&case["current_block"]), num(&case["model_block"]));
            assert_eq!(got.to_bits(), num(&case["epsilon"]).to_bits(), "{case}");
        }
    }
}
