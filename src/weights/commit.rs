//! The commit hash of commit-reveal weight setting (`generate_weight_hash`, chain.md §3.3):
//! blake2b-256 over the SCALE encoding of (account, netuid, uids, values, salt, version key).

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

/// SCALE compact length prefix (lengths below 2^30).
fn compact_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("vector length fits u32");
    match len {
        0..=63 => out.push((len << 2) as u8),
        64..=16_383 => out.extend_from_slice(&((len << 2 | 1) as u16).to_le_bytes()),
        _ => out.extend_from_slice(&(len << 2 | 2).to_le_bytes()),
    }
}

fn vec_u16(out: &mut Vec<u8>, items: &[u16]) {
    compact_len(out, items.len());
    for v in items {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

pub fn weight_commit_hash(account: &[u8; 32], netuid: u16, uids: &[u16], values: &[u16], salt: &[u16], version_key: u64) -> [u8; 32] {
    let mut data = Vec::with_capacity(64 + 2 * (uids.len() + values.len() + salt.len()));
    data.extend_from_slice(account);
    data.extend_from_slice(&netuid.to_le_bytes());
    vec_u16(&mut data, uids);
    vec_u16(&mut data, values);
    vec_u16(&mut data, salt);
    data.extend_from_slice(&version_key.to_le_bytes());
    Blake2b::<U32>::digest(&data).into()
}

/// The subnet epoch a block belongs to, as subtensor's `get_epoch_index` counts it (chain.md
/// §3.3–3.4): epochs are `tempo + 1` blocks long, offset by `netuid + 1`.
pub fn epoch_index(block: u64, netuid: u16, tempo: u16) -> u64 {
    (block + u64::from(netuid) + 1) / (u64::from(tempo) + 1)
}

/// The first block of `epoch` (the inverse of `epoch_index`).
pub fn first_block_of_epoch(epoch: u64, netuid: u16, tempo: u16) -> u64 {
    (epoch * (u64::from(tempo) + 1)).saturating_sub(u64::from(netuid) + 1)
}
