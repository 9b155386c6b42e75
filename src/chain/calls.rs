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

/// `commit_weights(netuid, commit_hash)`.
pub fn commit_weights(netuid: u16, hash: [u8; 32]) -> Call {
    subxt::dynamic::tx(PALLET, "commit_weights", Composite::unnamed(vec![u(netuid), Value::from_bytes(hash)]))
}

/// `reveal_weights(netuid, uids, values, salt, version_key)`.
pub fn reveal_weights(netuid: u16, uids: &[u16], values: &[u16], salt: &[u16], version_key: u64) -> Call {
    subxt::dynamic::tx(PALLET, "reveal_weights", Composite::unnamed(vec![u(netuid), u16s(uids), u16s(values), u16s(salt), u(version_key)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec-293 runtime's metadata, as `state_getMetadata` returned it from ../shared/chain.
    fn encode(call: &Call) -> String {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/chain/spec293-metadata.scale")).unwrap();
        let metadata: subxt::metadata::Metadata = subxt::ext::codec::Decode::decode(&mut &bytes[..]).unwrap();
        let data = subxt::ext::frame_decode::extrinsics::encode_call_data(
            call.pallet_name(),
            call.call_name(),
            call.call_data(),
            &metadata,
            metadata.types(),
        )
        .unwrap();
        hex::encode(data)
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
