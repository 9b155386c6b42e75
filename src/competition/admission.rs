//! Whether a committed model may compete (upstream.md §2.4), as pure rules. `triage` decides
//! before anything is fetched (a commitment that parsed, its competition scheduled at the commit
//! block and now, the eval delay, a plain repository id and a 40-hex commit); the `check_*`
//! functions hold what is known of a snapshot against its competition's limits, and `judge`
//! applies them all. fetch-models applies them to the hub's answers and eval-losses to the model
//! it loaded, so both refuse a model with the same reason.

use std::collections::BTreeMap;

use super::{Competition, NormValidation, Profile};

/// Per projection type (`self_attn.q_proj`, …), the Frobenius norm of each layer's weight, in
/// layer order.
pub type ProjectionNorms = BTreeMap<String, Vec<f64>>;

/// A uid's commitment as the metagraph holds it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Commitment<'a> {
    /// Why the commitment did not parse.
    pub parse_error: Option<&'a str>,
    /// Whether the hotkey committed anything.
    pub committed: bool,
    pub competition_id: Option<u16>,
    pub commit_block: Option<u64>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub revision: Option<&'a str>,
}

/// Why a model is not evaluated, each reason starting with its code (`too-recent: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not this time, through no fault of the model (no commitment, a competition not running,
    /// committed too recently).
    Skipped(String),
    /// The model breaks a rule.
    Rejected(String),
    /// What a rule needs could not be established.
    Failed(String),
}

impl Refusal {
    pub fn reason(&self) -> &str {
        match self {
            Self::Skipped(r) | Self::Rejected(r) | Self::Failed(r) => r,
        }
    }
}

/// A commitment that may be fetched, and the competition it is held to now.
#[derive(Debug)]
pub struct Admitted<'p> {
    pub competition: &'p Competition,
    pub competition_id: u16,
    pub commit_block: u64,
    /// `namespace/name`, both plain names.
    pub repo: String,
    /// The pinned commit, lower-case hex.
    pub revision: String,
}

/// upstream.md §2.4's checks that need no network, in its order.
pub fn triage<'p>(c: &Commitment, profile: &'p Profile, current_block: u64) -> Result<Admitted<'p>, Refusal> {
    let skipped = |reason: String| Refusal::Skipped(reason);
    if let Some(e) = c.parse_error {
        return Err(skipped(format!("bad-commitment: {e}")));
    }
    let (true, Some(competition_id), Some(commit_block)) = (c.committed, c.competition_id, c.commit_block) else {
        return Err(skipped("no-commitment: the hotkey has no model commitment".into()));
    };
    profile.competition_at(competition_id, commit_block).map_err(|e| skipped(format!("competition-inactive: at its commit block: {e}")))?;
    let competition = profile.competition_at(competition_id, current_block).map_err(|e| skipped(format!("competition-inactive: {e}")))?;
    let age = current_block.saturating_sub(commit_block);
    let delay = competition.constraints.eval_block_delay;
    if age < delay {
        return Err(skipped(format!("too-recent: committed at block {commit_block}, {} blocks before it may be evaluated", delay - age)));
    }
    let (Some(namespace), Some(name)) = (c.namespace, c.name) else {
        return Err(Refusal::Rejected("bad-commitment: no repository".into()));
    };
    let Some(revision) = c.revision.filter(|r| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit())) else {
        return Err(Refusal::Rejected(format!("bad-revision: {:?} is not a 40-hex commit", c.revision.unwrap_or("None"))));
    };
    let repo = format!("{namespace}/{name}");
    if !is_plain_name(namespace) || !is_plain_name(name) {
        return Err(Refusal::Rejected(format!("bad-commitment: {repo:?} is not a hub repository id")));
    }
    Ok(Admitted { competition, competition_id, commit_block, repo, revision: revision.to_ascii_lowercase() })
}

/// A hub namespace or repository name: letters, digits, `-`, `_` and `.`, never `.` or `..`.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// What is known of a fetched snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Every file of the revision, as listed: what `max_bytes` bounds.
    pub repo_bytes: u64,
    pub architecture: &'a str,
    pub n_params: u64,
    /// Computed only when the competition validates norms.
    pub norms: Option<&'a ProjectionNorms>,
}

/// The competition's limits applied to a snapshot, in upstream's order.
pub fn judge(s: &Snapshot, c: &Competition) -> Result<(), Refusal> {
    check_bytes(s.repo_bytes, c)?;
    check_architecture(s.architecture, &c.constraints.architectures, c.id).map_err(Refusal::Rejected)?;
    check_params(s.n_params, c.constraints.min_params, c.constraints.max_params).map_err(Refusal::Rejected)?;
    match (c.constraints.norm_validation, s.norms) {
        (Some(rule), Some(norms)) => check_norms(norms, rule).map_err(Refusal::Rejected),
        (Some(_), None) => Err(Refusal::Failed("weight-norm: the norms were not computed".into())),
        (None, _) => Ok(()),
    }
}

pub fn check_bytes(repo_bytes: u64, c: &Competition) -> Result<(), Refusal> {
    if repo_bytes > c.constraints.max_bytes {
        return Err(Refusal::Rejected(format!(
            "too-large: the repository is {repo_bytes} bytes at this revision, over competition {}'s {}",
            c.id, c.constraints.max_bytes
        )));
    }
    Ok(())
}

pub fn check_architecture(architecture: &str, allowed: &[String], competition_id: u16) -> Result<(), String> {
    if !allowed.iter().any(|a| a == architecture) {
        return Err(format!("architecture-not-allowed: {architecture} is not allowed in competition {competition_id}"));
    }
    Ok(())
}

pub fn check_params(n: u64, min: u64, max: u64) -> Result<(), String> {
    if n < min || n > max {
        return Err(format!("parameter-count: {n} parameters, outside {min}..={max}"));
    }
    Ok(())
}

/// SN37's rule (`norm_validation_constraints`): any norm above `hard` fails; otherwise the mean
/// over projection types of the fraction of layers above `soft` must not exceed `soft_fraction`.
pub fn check_norms(norms: &ProjectionNorms, rule: NormValidation) -> Result<(), String> {
    let NormValidation { soft, soft_fraction, hard } = rule;
    if let Some((projection, n)) = norms.iter().flat_map(|(p, ns)| ns.iter().map(move |n| (p, *n))).find(|(_, n)| *n > hard) {
        return Err(format!("weight-norm: a {projection} weight has norm {n:.3}, over the hard limit {hard}"));
    }
    let fractions: Vec<f64> =
        norms.values().filter(|ns| !ns.is_empty()).map(|ns| ns.iter().filter(|n| **n > soft).count() as f64 / ns.len() as f64).collect();
    if fractions.is_empty() {
        return Ok(());
    }
    let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
    if mean > soft_fraction {
        return Err(format!(
            "weight-norm: {:.1}% of projection weights have norms over {soft}, more than {:.1}%",
            mean * 100.0,
            soft_fraction * 100.0
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 5_200_000;
    const COMMIT: &str = "AbCdEf0123456789abcdef0123456789ABCDEF01";

    fn commitment(block: u64) -> Commitment<'static> {
        Commitment {
            committed: true,
            competition_id: Some(4),
            commit_block: Some(block),
            namespace: Some("miner"),
            name: Some("model-1.b"),
            revision: Some(COMMIT),
            ..Commitment::default()
        }
    }

    fn code(r: &Refusal) -> (&'static str, &str) {
        let kind = match r {
            Refusal::Skipped(_) => "skipped",
            Refusal::Rejected(_) => "rejected",
            Refusal::Failed(_) => "failed",
        };
        (kind, r.reason().split(':').next().unwrap())
    }

    #[test]
    fn triage_refuses_in_upstreams_order_and_pins_the_commit() {
        let p = Profile::builtin("sn9").unwrap();
        let delay = p.competition_at(4, NOW).unwrap().constraints.eval_block_delay;
        let ok = triage(&commitment(NOW - delay), &p, NOW).unwrap();
        assert_eq!(
            (ok.repo.as_str(), ok.revision.as_str(), ok.competition.id),
            ("miner/model-1.b", "abcdef0123456789abcdef0123456789abcdef01", 4)
        );
        let cases: Vec<(Commitment, (&str, &str))> = vec![
            // A parse error wins over everything the row also says.
            (Commitment { parse_error: Some("bad json"), ..commitment(NOW - delay) }, ("skipped", "bad-commitment")),
            (Commitment { committed: false, ..commitment(NOW - delay) }, ("skipped", "no-commitment")),
            (Commitment { competition_id: Some(99), ..commitment(NOW - delay) }, ("skipped", "competition-inactive")),
            // Competition 6 (TTS_V0) runs now, but not at block 1, before it began.
            (Commitment { competition_id: Some(6), ..commitment(1) }, ("skipped", "competition-inactive")),
            (commitment(NOW - delay + 1), ("skipped", "too-recent")),
            (Commitment { name: None, ..commitment(NOW - delay) }, ("rejected", "bad-commitment")),
            (Commitment { revision: Some("main"), ..commitment(NOW - delay) }, ("rejected", "bad-revision")),
            (Commitment { revision: None, ..commitment(NOW - delay) }, ("rejected", "bad-revision")),
            (Commitment { namespace: Some(".."), ..commitment(NOW - delay) }, ("rejected", "bad-commitment")),
            (Commitment { name: Some("a/../../b"), ..commitment(NOW - delay) }, ("rejected", "bad-commitment")),
            // Too recent is decided before the repository is looked at.
            (Commitment { name: Some("x y"), ..commitment(NOW) }, ("skipped", "too-recent")),
        ];
        for (c, expected) in cases {
            let refusal = triage(&c, &p, NOW).unwrap_err();
            assert_eq!(code(&refusal), expected, "{c:?}: {refusal:?}");
        }
    }

    #[test]
    fn judge_applies_the_limits_in_order() {
        let p = Profile::builtin("sn9").unwrap();
        let c = p.competition_at(4, NOW).unwrap();
        let k = &c.constraints;
        let good = Snapshot { repo_bytes: k.max_bytes, architecture: "LlamaForCausalLM", n_params: k.min_params, norms: None };
        assert_eq!(judge(&good, c), Ok(()));
        assert_eq!(judge(&Snapshot { n_params: k.max_params, ..good }, c), Ok(()));
        let cases = [
            (Snapshot { repo_bytes: k.max_bytes + 1, architecture: "GPT2LMHeadModel", ..good }, "too-large"),
            (Snapshot { architecture: "GPT2LMHeadModel", n_params: 0, ..good }, "architecture-not-allowed"),
            (Snapshot { n_params: k.min_params - 1, ..good }, "parameter-count"),
            (Snapshot { n_params: k.max_params + 1, ..good }, "parameter-count"),
        ];
        for (s, expected) in cases {
            assert_eq!(code(&judge(&s, c).unwrap_err()), ("rejected", expected), "{s:?}");
        }
    }

    #[test]
    fn norms_are_judged_as_sn37_judges_them() {
        let p = Profile::builtin("sn9").unwrap();
        let mut c = p.competition_at(4, NOW).unwrap().clone();
        let rule = NormValidation { soft: 10.0, soft_fraction: 0.25, hard: 100.0 };
        c.constraints.norm_validation = Some(rule);
        let norms = |q: &[f64], v: &[f64]| {
            ProjectionNorms::from([("self_attn.q_proj".into(), q.to_vec()), ("self_attn.v_proj".into(), v.to_vec())])
        };
        let snapshot = |n| Snapshot { repo_bytes: 1, architecture: "LlamaForCausalLM", n_params: c.constraints.min_params, norms: n };
        assert_eq!(code(&judge(&snapshot(None), &c).unwrap_err()), ("failed", "weight-norm"));
        // Fractions over soft: q 1/2, v 0/2, mean 0.25, not more than 0.25.
        let within = norms(&[11.0, 1.0], &[1.0, 1.0]);
        assert_eq!(judge(&snapshot(Some(&within)), &c), Ok(()));
        // q 2/2, v 0/2: mean 0.5.
        let over = norms(&[11.0, 11.0], &[1.0, 1.0]);
        let err = judge(&snapshot(Some(&over)), &c).unwrap_err();
        assert_eq!(err, Refusal::Rejected("weight-norm: 50.0% of projection weights have norms over 10, more than 25.0%".into()));
        let err = check_norms(&norms(&[1.0], &[100.5]), rule).unwrap_err();
        assert_eq!(err, "weight-norm: a self_attn.v_proj weight has norm 100.500, over the hard limit 100");
        assert_eq!(check_norms(&ProjectionNorms::new(), rule), Ok(()));
    }
}
