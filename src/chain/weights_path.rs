//! Which extrinsic carries a validator's weights, decided as the SDK of the runtime's own time
//! decided it (chain-crv4.md "SDK path"): from the calls the runtime has and the subnet's
//! commit-reveal settings, read at one block. Pure, so that every rule is tested on its own.

/// The weight calls a runtime's metadata has (`SubtensorModule`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub set_mechanism_weights: bool,
    pub commit_weights: bool,
    pub commit_crv3_weights: bool,
    pub commit_timelocked_weights: bool,
    pub commit_timelocked_mechanism_weights: bool,
}

impl Calls {
    /// The calls `has` (a runtime's `SubtensorModule` call names) says exist.
    pub fn of(has: impl Fn(&str) -> bool) -> Self {
        Self {
            set_mechanism_weights: has("set_mechanism_weights"),
            commit_weights: has("commit_weights"),
            commit_crv3_weights: has("commit_crv3_weights"),
            commit_timelocked_weights: has("commit_timelocked_weights"),
            commit_timelocked_mechanism_weights: has("commit_timelocked_mechanism_weights"),
        }
    }
}

/// A subnet's commit-reveal settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `CommitRevealWeightsEnabled`.
    pub commit_reveal: bool,
    /// `CommitRevealWeightsVersion`, on runtimes that have it.
    pub version: Option<u16>,
}

/// The commit-reveal version whose payload and checks valkit builds (subtensor `lib.rs:971`,
/// the default since spec 301).
pub const TIMELOCK_VERSION: u16 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `set_weights`, or `set_mechanism_weights` for a mechanism other than 0.
    Plain { mechanism: u8 },
    /// CRv4: `commit_timelocked_weights` (or its mechanism variant) with the chain's version and
    /// the payload that names the hotkey.
    Timelocked { mechanism: u8, version: u16 },
    /// `commit_crv3_weights` with the legacy payload: runtimes before spec 320 that have it.
    Crv3,
    /// `commit_weights` then `reveal_weights`: runtimes with no timelocked call.
    HashCommit,
}

impl Path {
    /// The name receipts and `--json` give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain { mechanism: 0 } => "set_weights",
            Self::Plain { .. } => "set_mechanism_weights",
            Self::Timelocked { mechanism: 0, .. } => "commit_timelocked_weights",
            Self::Timelocked { .. } => "commit_timelocked_mechanism_weights",
            Self::Crv3 => "commit_crv3_weights",
            Self::HashCommit => "commit_weights",
        }
    }
}

/// The path for `netuid`'s `mechanism`, and why; an error says why none can be taken.
pub fn choose(calls: Calls, settings: Settings, netuid: u16, mechanism: u8) -> Result<(Path, String), String> {
    let mechanisms = |has: bool, call: &str| {
        if mechanism != 0 && !has {
            return Err(format!("mechanism {mechanism} of netuid {netuid}: this runtime has no {call} (it predates mechanisms)"));
        }
        Ok(())
    };
    if !settings.commit_reveal {
        mechanisms(calls.set_mechanism_weights, "set_mechanism_weights")?;
        return Ok((Path::Plain { mechanism }, format!("commit-reveal is off on netuid {netuid}: weights are set directly")));
    }
    let timelocked = if mechanism == 0 { calls.commit_timelocked_weights } else { calls.commit_timelocked_mechanism_weights };
    if calls.commit_timelocked_weights || calls.commit_timelocked_mechanism_weights {
        mechanisms(calls.commit_timelocked_mechanism_weights, "commit_timelocked_mechanism_weights")?;
        if !timelocked {
            return Err(format!("netuid {netuid} has commit-reveal on, and this runtime has no commit_timelocked_weights"));
        }
        // The version the chain checks every commit against (`IncorrectCommitRevealVersion`).
        let version = settings.version.unwrap_or(TIMELOCK_VERSION);
        if version != TIMELOCK_VERSION {
            return Err(format!(
                "netuid {netuid}'s chain asks for commit-reveal version {version} (CommitRevealWeightsVersion); valkit builds version {TIMELOCK_VERSION} commits, which the chain would refuse"
            ));
        }
        let why = format!(
            "commit-reveal is on on netuid {netuid}: a drand-timelocked commit (CRv4, version {version}) that the chain reveals itself"
        );
        return Ok((Path::Timelocked { mechanism, version }, why));
    }
    mechanisms(false, "timelocked mechanism commit")?;
    if calls.commit_crv3_weights {
        let why = format!(
            "commit-reveal is on on netuid {netuid}: a drand-timelocked commit (CRv3, the legacy payload; this runtime predates CRv4)"
        );
        return Ok((Path::Crv3, why));
    }
    if calls.commit_weights {
        let why = format!(
            "commit-reveal is on on netuid {netuid}: a hash commit, revealed by a later run (this runtime has no timelocked commits)"
        );
        return Ok((Path::HashCommit, why));
    }
    Err(format!("netuid {netuid} has commit-reveal on, and this runtime has no commit call valkit knows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calls of the runtimes in ../shared/chain-next (their README's table).
    const SPEC_293: Calls = Calls { commit_weights: true, commit_crv3_weights: true, ..NONE };
    const SPEC_365_TO_424: Calls = Calls {
        set_mechanism_weights: true,
        commit_weights: true,
        commit_crv3_weights: false,
        commit_timelocked_weights: true,
        commit_timelocked_mechanism_weights: true,
    };
    /// Spec 301-319: CRv4 and CRv3 side by side, no mechanisms yet.
    const SPEC_301: Calls = Calls { commit_weights: true, commit_crv3_weights: true, commit_timelocked_weights: true, ..NONE };
    const NONE: Calls = Calls {
        set_mechanism_weights: false,
        commit_weights: false,
        commit_crv3_weights: false,
        commit_timelocked_weights: false,
        commit_timelocked_mechanism_weights: false,
    };

    fn on(version: Option<u16>) -> Settings {
        Settings { commit_reveal: true, version }
    }
    const OFF: Settings = Settings { commit_reveal: false, version: Some(4) };

    fn path(calls: Calls, settings: Settings, mechanism: u8) -> Result<&'static str, String> {
        choose(calls, settings, 2, mechanism).map(|(p, _)| p.name())
    }

    #[test]
    fn each_runtime_gets_the_call_its_sdk_sent() {
        assert_eq!(path(SPEC_365_TO_424, OFF, 0), Ok("set_weights"));
        assert_eq!(path(SPEC_365_TO_424, OFF, 1), Ok("set_mechanism_weights"));
        assert_eq!(path(SPEC_365_TO_424, on(Some(4)), 0), Ok("commit_timelocked_weights"));
        assert_eq!(path(SPEC_365_TO_424, on(Some(4)), 1), Ok("commit_timelocked_mechanism_weights"));
        // The storage item's default is 4 where the runtime has no value stored.
        assert_eq!(choose(SPEC_365_TO_424, on(None), 2, 0).unwrap().0, Path::Timelocked { mechanism: 0, version: 4 });
        assert_eq!(path(SPEC_301, on(Some(4)), 0), Ok("commit_timelocked_weights"));
        assert_eq!(path(SPEC_293, on(None), 0), Ok("commit_crv3_weights"));
        assert_eq!(path(SPEC_293, OFF, 0), Ok("set_weights"));
        assert_eq!(path(Calls { commit_weights: true, ..NONE }, on(None), 0), Ok("commit_weights"));
    }

    /// The tables above are what the metadata of those runtimes really lists.
    #[test]
    fn the_runtimes_calls_are_read_from_their_metadata() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/chain-next/metadata");
        for (file, expected) in [
            ("subtensor-auradev-spec293.scale", SPEC_293),
            ("subtensor-finney-spec365.scale", SPEC_365_TO_424),
            ("subtensor-devnet-spec381.scale", SPEC_365_TO_424),
            ("subtensor-finney-spec393.scale", SPEC_365_TO_424),
            ("subtensor-finney-spec424.scale", SPEC_365_TO_424),
        ] {
            let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
            let metadata: subxt::metadata::Metadata = subxt::ext::codec::Decode::decode(&mut &bytes[..]).unwrap();
            let pallet = metadata.pallet_by_name("SubtensorModule").unwrap();
            assert_eq!(Calls::of(|call| pallet.call_variant_by_name(call).is_some()), expected, "{file}");
        }
    }

    #[test]
    fn what_the_chain_would_refuse_is_refused_with_its_reason() {
        let err = path(SPEC_365_TO_424, on(Some(5)), 0).unwrap_err();
        assert!(err.contains("version 5") && err.contains("CommitRevealWeightsVersion"), "{err}");
        let err = path(SPEC_293, OFF, 1).unwrap_err();
        assert!(err.contains("mechanism 1") && err.contains("set_mechanism_weights"), "{err}");
        let err = path(SPEC_293, on(None), 1).unwrap_err();
        assert!(err.contains("mechanism 1"), "{err}");
        assert!(path(SPEC_301, on(Some(4)), 1).unwrap_err().contains("commit_timelocked_mechanism_weights"));
        assert!(path(NONE, on(None), 0).unwrap_err().contains("no commit call"));
    }
}
