//! The extrinsics valkit sends (chain.md §3.1, `SubtensorModule`), built as dynamic calls so that
//! they are encoded against the metadata of the runtime they go to.

use subxt::dynamic::Value;
use subxt::ext::scale_value::Composite;
use subxt::tx::DynamicPayload;

pub type Call = DynamicPayload<Composite<()>>;

const PALLET: &str = "SubtensorModule";

fn u(v: impl Into<u128>) -> Value {
    Value::u128(v.into())
}

fn u16s(values: &[u16]) -> Value {
    Value::unnamed_composite(values.iter().map(|v| u(*v)))
}

/// `set_weights(netuid, dests, weights, version_key)`.
pub fn set_weights(netuid: u16, uids: &[u16], values: &[u16], version_key: u64) -> Call {
    subxt::dynamic::tx(PALLET, "set_weights", Composite::unnamed(vec![u(netuid), u16s(uids), u16s(values), u(version_key)]))
}

/// `set_mechanism_weights(netuid, mecid, dests, weights, version_key)` (call 119, runtimes with
/// mechanisms).
pub fn set_mechanism_weights(netuid: u16, mechanism: u8, uids: &[u16], values: &[u16], version_key: u64) -> Call {
    let args = vec![u(netuid), u(mechanism), u16s(uids), u16s(values), u(version_key)];
    subxt::dynamic::tx(PALLET, "set_mechanism_weights", Composite::unnamed(args))
}

/// `commit_weights(netuid, commit_hash)`.
pub fn commit_weights(netuid: u16, hash: [u8; 32]) -> Call {
    subxt::dynamic::tx(PALLET, "commit_weights", Composite::unnamed(vec![u(netuid), Value::from_bytes(hash)]))
}

/// `reveal_weights(netuid, uids, values, salt, version_key)`.
pub fn reveal_weights(netuid: u16, uids: &[u16], values: &[u16], salt: &[u16], version_key: u64) -> Call {
    subxt::dynamic::tx(PALLET, "reveal_weights", Composite::unnamed(vec![u(netuid), u16s(uids), u16s(values), u16s(salt), u(version_key)]))
}

/// `commit_crv3_weights(netuid, commit, reveal_round)`: a drand-timelocked commit of the
/// payload without hotkey (chain-crv4.md; call 99 up to spec 319, removed at 320).
pub fn commit_crv3_weights(netuid: u16, commit: &[u8], reveal_round: u64) -> Call {
    subxt::dynamic::tx(PALLET, "commit_crv3_weights", Composite::unnamed(vec![u(netuid), Value::from_bytes(commit), u(reveal_round)]))
}

/// `commit_timelocked_weights(netuid, commit, reveal_round, commit_reveal_version)` (CRv4,
/// call 113 since spec 301; the version must equal the chain's `CommitRevealWeightsVersion`).
pub fn commit_timelocked_weights(netuid: u16, commit: &[u8], reveal_round: u64, version: u16) -> Call {
    let args = vec![u(netuid), Value::from_bytes(commit), u(reveal_round), u(version)];
    subxt::dynamic::tx(PALLET, "commit_timelocked_weights", Composite::unnamed(args))
}

/// `commit_timelocked_mechanism_weights(netuid, mecid, commit, reveal_round, commit_reveal_version)`
/// (call 118): the same for one of a subnet's mechanisms.
pub fn commit_timelocked_mechanism_weights(netuid: u16, mechanism: u8, commit: &[u8], reveal_round: u64, version: u16) -> Call {
    let args = vec![u(netuid), u(mechanism), Value::from_bytes(commit), u(reveal_round), u(version)];
    subxt::dynamic::tx(PALLET, "commit_timelocked_mechanism_weights", Composite::unnamed(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec-293 runtime's metadata, as `state_getMetadata` returned it from ../shared/chain.
    fn encode(call: &Call) -> String {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/chain/spec293-metadata.scale")).unwrap();
        encode_with(call, &bytes).unwrap()
    }

    /// `call`'s call data against a runtime's metadata (a SCALE `RuntimeMetadataPrefixed`).
    fn encode_with(call: &Call, metadata: &[u8]) -> Result<String, String> {
        let metadata: subxt::metadata::Metadata = subxt::ext::codec::Decode::decode(&mut &metadata[..]).map_err(|e| e.to_string())?;
        let data = subxt::ext::frame_decode::extrinsics::encode_call_data(
            call.pallet_name(),
            call.call_name(),
            call.call_data(),
            &metadata,
            metadata.types(),
        )
        .map_err(|e| e.to_string())?;
        Ok(hex::encode(data))
    }

    /// ../shared/chain-next: the metadata of today's runtimes (finney 365, 393, 424, devnet 381,
    /// and the spec-293 one) with call data its generator encoded from each (`check-metadata.cjs`).
    #[test]
    fn timelocked_commits_encode_as_every_runtime_expects() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/chain-next");
        let vectors: serde_json::Value = serde_json::from_slice(&std::fs::read(format!("{dir}/metadata-vectors.json")).unwrap()).unwrap();
        let commit = [0xab; 16];
        let calls = [
            ("subtensorModule.commitTimelockedWeights", commit_timelocked_weights(2, &commit, 1_000_000, 4)),
            ("subtensorModule.commitTimelockedMechanismWeights", commit_timelocked_mechanism_weights(2, 0, &commit, 1_000_000, 4)),
            ("subtensorModule.commitCrv3Weights", commit_crv3_weights(2, &commit, 1_000_000)),
            ("subtensorModule.setWeights", set_weights(2, &[0, 1, 2, 3], &[65535, 32768, 16384, 1], 7)),
            ("subtensorModule.setMechanismWeights", set_mechanism_weights(2, 0, &[0, 1, 2, 3], &[65535, 32768, 16384, 1], 7)),
        ];
        let files = vectors["files"].as_array().unwrap();
        assert_eq!(files.len(), 5, "the five runtimes of chain-next");
        let mut checked = 0;
        for file in files {
            let metadata = std::fs::read(format!("{dir}/metadata/{}", file["file"].as_str().unwrap())).unwrap();
            let spec = &file["runtime"]["spec_version"];
            for (name, call) in &calls {
                let encoded = encode_with(call, &metadata);
                // An absent call is listed as null.
                match file["calls"].get(name).filter(|c| !c.is_null()) {
                    Some(expected) => {
                        // The vectors' example arguments are the ones used above.
                        assert_eq!(expected["example_args"][0], 2, "{name}");
                        assert_eq!(format!("0x{}", encoded.unwrap()), expected["call_data"].as_str().unwrap(), "{name} at spec {spec}");
                        checked += 1;
                    }
                    None => assert!(encoded.is_err(), "{name} does not exist at spec {spec}, yet it encoded"),
                }
            }
        }
        // 293 has set_weights and crv3; the four newer ones set_weights, set_mechanism_weights and
        // both CRv4 calls.
        assert_eq!(checked, 2 + 4 * 4);
    }

    #[test]
    fn call_data_is_what_chain_md_shows() {
        // chain.md §3.1: netuid 2, dests [0,1,2,3], weights [65535,32768,16384,1], version key 7.
        let expected = "0700 0200 10 0000 0100 0200 0300 10 ffff 0080 0040 0100 0700000000000000".replace(' ', "");
        assert_eq!(encode(&set_weights(2, &[0, 1, 2, 3], &[65535, 32768, 16384, 1], 7)), expected);
        // commit_weights is call 96, reveal_weights 97 (chain.md §3.1).
        assert_eq!(encode(&commit_weights(2, [0xab; 32])), format!("0760 0200 {}", "ab".repeat(32)).replace(' ', ""));
        let reveal = "0761 0200 04 0100 04 0200 08 0300 0400 0700000000000000".replace(' ', "");
        assert_eq!(encode(&reveal_weights(2, &[1], &[2], &[3, 4], 7)), reveal);
    }
}
