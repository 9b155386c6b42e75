//! Drand-timelocked weight commits (chain-crv4.md): the payload the chain decrypts and applies
//! at reveal, encrypted to a drand quicknet round as bittensor-drand encrypts it
//! (`encrypt_and_compress`, bittensor-drand 1.2 `src/drand.rs:63-123`) with the crate the chain
//! decrypts with (crates.io `timelock` 0.0.1 is the source of the chain's git `tle`), and the
//! reveal round as the SDK computes it. Pure: the caller brings the randomness and the clock.

use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use subxt::ext::codec::Encode;
use timelock::curves::drand::TinyBLS381;
use timelock::ibe::fullident::Identity;
use timelock::stream_ciphers::AESGCMStreamCipherProvider;
use timelock::tlock::{tld, tle, TLECiphertext};
use w3f_bls::EngineBLS;

/// Drand quicknet's public key (G2, compressed), genesis time and period (bittensor-drand
/// `src/drand.rs:17-19`; subtensor `pallets/drand/src/lib.rs`).
pub const QUICKNET_PUBLIC_KEY: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
pub const QUICKNET_GENESIS_SECS: u64 = 1_692_803_367;
pub const QUICKNET_PERIOD_SECS: u64 = 3;
/// The largest commit the chain takes (subtensor `MAX_CRV3_COMMIT_SIZE_BYTES`, lib.rs:60).
pub const MAX_COMMIT_BYTES: usize = 5000;
/// The SDK aims the pulse this many blocks into the reveal epoch (bittensor-drand
/// `SECURITY_BLOCK_OFFSET`).
pub const SECURITY_BLOCK_OFFSET: u64 = 3;

/// What a commit hides, SCALE-encoded as the chain decodes it at reveal (subtensor
/// `coinbase/reveal_commits.rs:28-34`): CRv4's `WeightsTlockPayload{hotkey, uids, values,
/// version_key}`, whose hotkey must be the committer's public key, or CRv3's legacy payload
/// without it.
pub fn payload(hotkey: Option<&[u8; 32]>, uids: &[u16], values: &[u16], version_key: u64) -> Vec<u8> {
    match hotkey {
        Some(key) => (key.to_vec(), uids.to_vec(), values.to_vec(), version_key).encode(),
        None => (uids.to_vec(), values.to_vec(), version_key).encode(),
    }
}

/// The identity a round's signature opens: sha256 of the round, big-endian (drand's unchained
/// scheme; bittensor-drand `encrypt_and_compress`).
fn identity(round: u64) -> Identity {
    Identity::new(b"", vec![Sha256::digest(round.to_be_bytes()).to_vec()])
}

/// `plaintext` encrypted so that quicknet's signature of `round` opens it, compressed as the
/// chain deserialises it. `seed` (32 random bytes) gives the ephemeral key and the cipher's
/// randomness; the same seed gives the same bytes.
pub fn encrypt(plaintext: &[u8], round: u64, seed: [u8; 32]) -> Result<Vec<u8>, String> {
    let key_bytes = hex::decode(QUICKNET_PUBLIC_KEY).expect("a hex constant");
    let public_key = <TinyBLS381 as EngineBLS>::PublicKeyGroup::deserialize_compressed(&*key_bytes)
        .map_err(|e| format!("quicknet's public key: {e}"))?;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let mut ephemeral = [0u8; 32];
    rng.fill_bytes(&mut ephemeral);
    let ciphertext = tle::<TinyBLS381, AESGCMStreamCipherProvider, _>(public_key, ephemeral, plaintext, identity(round), rng)
        .map_err(|e| format!("timelock encryption: {e:?}"))?;
    let mut bytes = Vec::new();
    ciphertext.serialize_compressed(&mut bytes).map_err(|e| format!("serialising the ciphertext: {e}"))?;
    Ok(bytes)
}

/// What the chain does at reveal: opens `ciphertext` with a round's signature (G1, compressed).
pub fn decrypt(ciphertext: &[u8], signature: &[u8]) -> Result<Vec<u8>, String> {
    let ciphertext =
        TLECiphertext::<TinyBLS381>::deserialize_compressed(ciphertext).map_err(|e| format!("not a timelock ciphertext: {e}"))?;
    let signature =
        <TinyBLS381 as EngineBLS>::SignatureGroup::deserialize_compressed(signature).map_err(|e| format!("not a drand signature: {e}"))?;
    tld::<TinyBLS381, AESGCMStreamCipherProvider>(ciphertext, signature).map_err(|e| format!("the signature does not open it: {e:?}"))
}

/// The quicknet round whose pulse is due `seconds_ahead` after `now_secs`, rounded down so the
/// pulse is never asked for before it exists, and at least 1 (bittensor-drand 1.2
/// `generate_commit` step 3).
pub fn round_at(now_secs: f64, seconds_ahead: f64) -> u64 {
    let round = ((now_secs + seconds_ahead - QUICKNET_GENESIS_SECS as f64) / QUICKNET_PERIOD_SECS as f64).floor();
    if round < 1.0 {
        1
    } else {
        round as u64
    }
}

/// bittensor-drand 1.2's reveal round (`generate_commit`, `src/drand.rs:190-258`): epochs of
/// `tempo + 1` blocks offset by `netuid + 1`; the pulse aimed `SECURITY_BLOCK_OFFSET` blocks into
/// the first block of the epoch `reveal_period` after the current one. `netuid_index` is the
/// storage index (`mecid * 4096 + netuid` for a mechanism), as the SDK passes it.
pub fn reveal_round_v1(current_block: u64, netuid_index: u16, tempo: u64, reveal_period: u64, block_time: f64, now_secs: f64) -> u64 {
    let first = first_reveal_block_v1(current_block, netuid_index, tempo, reveal_period);
    let blocks_ahead = first.saturating_add(SECURITY_BLOCK_OFFSET).saturating_sub(current_block);
    round_at(now_secs, blocks_ahead as f64 * block_time)
}

fn first_reveal_block_v1(current_block: u64, netuid_index: u16, tempo: u64, reveal_period: u64) -> u64 {
    let tempo_plus_one = tempo.saturating_add(1);
    let netuid_plus_one = u64::from(netuid_index) + 1;
    let current_epoch = (current_block + netuid_plus_one) / tempo_plus_one;
    (current_epoch + reveal_period).saturating_mul(tempo_plus_one).saturating_sub(netuid_plus_one)
}

/// The epoch a commit included in block `b` is filed under on runtimes that count epochs by
/// the block number (spec 293 `do_commit_crv3_weights`, `subnets/weights.rs:262-266`): the
/// epoch index `(b + netuid + 1) / (tempo + 1)`, or the next when `b` itself runs the epoch.
pub fn commit_epoch_v1(b: u64, netuid: u16, tempo: u16) -> u64 {
    let (netuid_plus_one, tempo_plus_one) = (u64::from(netuid) + 1, u64::from(tempo) + 1);
    let index = (b + netuid_plus_one) / tempo_plus_one;
    // `should_run_epoch`: (b + netuid + 1) % (tempo + 1) == tempo (run_coinbase.rs:817-846).
    let runs = tempo != 0 && (b + netuid_plus_one) % tempo_plus_one == u64::from(tempo);
    index + u64::from(runs)
}

/// The block at which such a runtime reveals the commits filed under `epoch`: it reveals in the
/// block that runs an epoch, taking the queue of `current − (period − 1)` (spec 293
/// `reveal_commits.rs:28-40`, called from `run_coinbase.rs:218-220`), i.e. in the epoch block
/// that ends epoch `epoch + period − 1`. `None` for tempo 0 (no epoch ever runs) or when the
/// chain would call it too early (`cur_epoch < 2`).
pub fn reveal_block_v1(epoch: u64, netuid: u16, tempo: u16, reveal_period: u64) -> Option<u64> {
    let revealing = epoch + reveal_period.max(1) - 1;
    if tempo == 0 || revealing < 2 {
        return None;
    }
    // The epoch block B of epoch e has (B + netuid + 1) = e·(tempo + 1) + tempo.
    (revealing * (u64::from(tempo) + 1) + u64::from(tempo)).checked_sub(u64::from(netuid) + 1)
}

/// Blocks since the last epoch after which one runs whatever the tempo says (subtensor's
/// `MAX_TEMPO`; bittensor-drand 2.0 `src/constants.rs:6-9`).
const MAX_TEMPO: u64 = 50_400;

/// A subnet's stateful epoch items at one block (subtensor since spec ~423): `LastEpochBlock`,
/// `PendingEpochAt`, `SubnetEpochIndex`, `Tempo` and `BlocksSinceLastStep`, with that block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochState {
    pub last_epoch_block: u64,
    pub pending_epoch_at: u64,
    pub subnet_epoch_index: u64,
    pub tempo: u16,
    pub blocks_since_last_step: u64,
    /// The block the items were read at (the chain's head when committing).
    pub block: u64,
}

impl EpochState {
    /// Whether an epoch runs at block `b` (bittensor-drand 2.0 `should_run_epoch`,
    /// `src/epoch_schedule.rs:43-57`): a pending epoch that is due, a subnet that has gone
    /// `MAX_TEMPO` blocks without one, or `tempo` blocks since the last.
    fn runs_at(&self, b: u64) -> bool {
        let tempo = u64::from(self.tempo);
        tempo != 0
            && ((self.pending_epoch_at > 0 && b >= self.pending_epoch_at)
                || self.blocks_since_last_step > MAX_TEMPO
                || b.saturating_sub(self.last_epoch_block) >= tempo)
    }

    /// The epoch index a commit included in block `b` is filed under: the current one, or the
    /// next when `b` itself runs an epoch (`current_epoch_pre_run_coinbase`, lines 61-68).
    fn epoch_at(&self, b: u64) -> u64 {
        self.subnet_epoch_index + u64::from(self.runs_at(b))
    }

    /// The state after block `b` (`simulate_run_coinbase`, lines 74-86: the counter moves
    /// first, then the epoch check sees it).
    fn after(mut self, b: u64) -> Self {
        self.blocks_since_last_step += 1;
        self.block = b;
        if self.runs_at(b) {
            self.last_epoch_block = b;
            self.pending_epoch_at = 0;
            self.subnet_epoch_index += 1;
            self.blocks_since_last_step = 0;
        }
        self
    }
}

/// The first block at which a commit included in the next block is revealed, `reveal_period`
/// epochs later, simulated block by block as bittensor-drand 2.0 does
/// (`predict_first_reveal_block`, `src/epoch_schedule.rs:106-141`).
pub fn first_reveal_block_v2(state: EpochState, reveal_period: u64) -> Result<u64, String> {
    if state.tempo == 0 {
        return Err("tempo is 0: the subnet runs no epochs, so nothing committed is ever revealed".into());
    }
    let included = state.block + 1;
    let target = state.epoch_at(included) + reveal_period;
    let last = included + reveal_period.saturating_mul(MAX_TEMPO) + MAX_TEMPO;
    let mut state = state;
    for b in included..=last {
        if state.epoch_at(b) == target {
            return Ok(b);
        }
        state = state.after(b);
    }
    Err(format!("no reveal epoch within {} blocks of block {included}", last - included))
}

/// The epoch a commit included in the block after `state.block` is filed under on runtimes
/// with stateful epochs (subtensor `current_epoch_with_lookahead`, `weights.rs:344-347`).
pub fn commit_epoch_v2(state: EpochState) -> u64 {
    state.epoch_at(state.block + 1)
}

/// The last block at which a runtime with stateful epochs can reveal a commit included in the
/// block after `state.block`: it tries every block of the reveal epoch until the pulse is there
/// (subtensor `reveal_commits.rs:37-80`), so this is the block before the epoch after it.
pub fn last_reveal_block_v2(state: EpochState, reveal_period: u64) -> Result<u64, String> {
    Ok(first_reveal_block_v2(state, reveal_period + 1)? - 1)
}

/// bittensor-drand 2.0's reveal round (`generate_commit_v2`, `src/drand.rs:160-204`): the pulse
/// aimed `SECURITY_BLOCK_OFFSET` blocks after the first reveal block, counted from the head.
pub fn reveal_round_v2(state: EpochState, reveal_period: u64, block_time: f64, now_secs: f64) -> Result<u64, String> {
    let first = first_reveal_block_v2(state, reveal_period)?;
    let blocks_ahead = (first + SECURITY_BLOCK_OFFSET).saturating_sub(state.block);
    Ok(round_at(now_secs, blocks_ahead as f64 * block_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quicknet's signature of round 1000, as subtensor's own tests quote it
    /// (`pallets/drand/src/tests.rs` `DRAND_PULSE`).
    const ROUND_1000_SIGNATURE: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";
    /// Quicknet's signature of another round (12,040,883): a valid G1 point that is not the key.
    const ROUND_12040883_SIGNATURE: &str =
        "929906c959032ab363c9f26570d215d66f5c06cb0c44fe508c12bb5839f04ec895bb6868e5b9ff13ab289bdb5266b394";

    #[test]
    fn payloads_are_scale_as_the_chain_decodes_them() {
        let hotkey = [7u8; 32];
        let v4 = payload(Some(&hotkey), &[1, 300], &[65535, 2], 4062);
        let expected =
            [vec![0x80], vec![7; 32], vec![0x08, 1, 0, 0x2c, 1], vec![0x08, 0xff, 0xff, 2, 0], 4062u64.to_le_bytes().to_vec()].concat();
        assert_eq!(v4, expected);
        let legacy = payload(None, &[1, 300], &[65535, 2], 4062);
        assert_eq!(legacy, expected[33..]);
    }

    #[test]
    fn a_commit_for_round_1000_opens_with_quicknets_round_1000_signature_only() {
        let plaintext = payload(Some(&[9u8; 32]), &[0, 1, 2], &[65535, 32768, 1], 7);
        let ciphertext = encrypt(&plaintext, 1000, [2; 32]).unwrap();
        assert!(ciphertext.len() <= MAX_COMMIT_BYTES, "{} bytes", ciphertext.len());
        assert_eq!(encrypt(&plaintext, 1000, [2; 32]).unwrap(), ciphertext, "a seed gives one ciphertext");
        assert_ne!(encrypt(&plaintext, 1000, [3; 32]).unwrap(), ciphertext);
        let opened = decrypt(&ciphertext, &hex::decode(ROUND_1000_SIGNATURE).unwrap()).unwrap();
        assert_eq!(opened, plaintext);
        assert!(decrypt(&ciphertext, &hex::decode(ROUND_12040883_SIGNATURE).unwrap()).is_err());
        // Encrypted to round 1001, round 1000's signature does not open it.
        let later = encrypt(&plaintext, 1001, [2; 32]).unwrap();
        assert!(decrypt(&later, &hex::decode(ROUND_1000_SIGNATURE).unwrap()).is_err());
        assert!(decrypt(&ciphertext[1..], &hex::decode(ROUND_1000_SIGNATURE).unwrap()).is_err());
    }

    /// A reveal round as a function of the clock.
    type RoundAt = Box<dyn Fn(f64) -> Result<u64, String>>;

    /// `testdata/chain/reveal-rounds.json`: rounds computed by bittensor-drand 1.2.0 (v1) and
    /// 2.0.0 (v2) themselves (`scripts/reveal_round_vectors.py`). The package reads the clock
    /// itself, so each case brackets it; the round is nondecreasing in time, so it must lie
    /// between ours at the bracket's two ends.
    #[test]
    fn reveal_rounds_equal_the_python_packages() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/chain/reveal-rounds.json")).unwrap();
        let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
        let (mut v1, mut v2, mut errors) = (0, 0, 0);
        for case in vectors["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let i = &case["inputs"];
            let n = |k: &str| i[k].as_u64().unwrap_or_else(|| panic!("{name}: {k}"));
            let block_time = i["block_time"].as_f64().unwrap();
            let (before, after) =
                (case["now_before_ns"].as_u64().unwrap() as f64 / 1e9, case["now_after_ns"].as_u64().unwrap() as f64 / 1e9);
            let (round, first): (RoundAt, Result<u64, String>) = match case["rule"].as_str().unwrap() {
                "v1" => {
                    v1 += 1;
                    let (block, netuid, tempo, period) = (n("current_block"), n("netuid") as u16, n("tempo"), n("reveal_period"));
                    (
                        Box::new(move |now| Ok(reveal_round_v1(block, netuid, tempo, period, block_time, now))),
                        Ok(first_reveal_block_v1(block, netuid, tempo, period)),
                    )
                }
                _ => {
                    v2 += 1;
                    let state = EpochState {
                        last_epoch_block: n("last_epoch_block"),
                        pending_epoch_at: n("pending_epoch_at"),
                        subnet_epoch_index: n("subnet_epoch_index"),
                        tempo: n("tempo") as u16,
                        blocks_since_last_step: n("blocks_since_last_step"),
                        block: n("current_block"),
                    };
                    let period = n("reveal_period");
                    (Box::new(move |now| reveal_round_v2(state, period, block_time, now)), first_reveal_block_v2(state, period))
                }
            };
            if !case["error"].is_null() {
                errors += 1;
                assert!(first.is_err() && round(before).is_err(), "{name}: the package refused it");
                continue;
            }
            let expected = case["round"].as_u64().unwrap();
            let (low, high) = (round(before).unwrap(), round(after).unwrap());
            assert!(low <= expected && expected <= high, "{name}: the package's round {expected}, ours {low}..={high}");
            if let Some(block) = case["derived_first_reveal_block"].as_u64() {
                assert_eq!(first.unwrap(), block, "{name}: first reveal block");
            }
        }
        assert_eq!((v1, v2, errors), (13, 27, 1), "every case was checked");
    }

    #[test]
    fn spec_293_files_and_reveals_commits_by_the_block_number() {
        // netuid 2, tempo 10: epochs of 11 blocks; block B runs an epoch when (B + 3) % 11 == 10,
        // i.e. B = 7, 18, 29, …; epoch index (B + 3) / 11.
        assert_eq!(commit_epoch_v1(8, 2, 10), 1);
        assert_eq!(commit_epoch_v1(17, 2, 10), 1);
        assert_eq!(commit_epoch_v1(18, 2, 10), 2, "an epoch block files under the next epoch");
        assert_eq!(commit_epoch_v1(19, 2, 10), 2);
        // Period 1: epoch 2's commits are revealed by the epoch block that ends epoch 2, 29.
        assert_eq!(reveal_block_v1(2, 2, 10, 1), Some(29));
        assert_eq!(reveal_block_v1(2, 2, 10, 0), Some(29), "period 0 acts as 1");
        assert_eq!(reveal_block_v1(2, 2, 10, 2), Some(40));
        assert_eq!(reveal_block_v1(1, 2, 10, 1), None, "the chain skips epochs below 2");
        assert_eq!(reveal_block_v1(5, 2, 0, 1), None);
        // The SDK's v1 first reveal block is the block after it (the first of epoch 3).
        assert_eq!(first_reveal_block_v1(19, 2, 10, 1), 30);
    }

    #[test]
    fn stateful_epochs_reveal_through_the_whole_reveal_epoch() {
        // Tempo 10, last epoch at block 100, index 9, read at block 103: epochs run at 110, 120…
        let state = EpochState {
            last_epoch_block: 100,
            pending_epoch_at: 0,
            subnet_epoch_index: 9,
            tempo: 10,
            blocks_since_last_step: 3,
            block: 103,
        };
        assert_eq!(commit_epoch_v2(state), 9);
        // Period 1: epoch 10 starts at the look-ahead of block 110 and ends before 120.
        assert_eq!(first_reveal_block_v2(state, 1), Ok(110));
        assert_eq!(last_reveal_block_v2(state, 1), Ok(119));
        let at_epoch = EpochState { block: 109, blocks_since_last_step: 9, ..state };
        assert_eq!(commit_epoch_v2(at_epoch), 10, "included in an epoch block: the next epoch");
    }

    #[test]
    fn the_v1_reveal_round_follows_bittensor_drand_1_2() {
        // netuid 2, tempo 360: epochs of 361 blocks offset by 3. Block 1000 is in epoch
        // (1000 + 3) / 361 = 2; period 1 reveals in epoch 3, whose first block is 3·361 − 3 =
        // 1080; the pulse is aimed at 1083, 83 blocks (996 s) ahead.
        let now = 1_700_000_000.5;
        let expected = ((now + 83.0 * 12.0 - QUICKNET_GENESIS_SECS as f64) / 3.0).floor() as u64;
        assert_eq!(reveal_round_v1(1000, 2, 360, 1, 12.0, now), expected);
        // Before genesis, round 1.
        assert_eq!(reveal_round_v1(1000, 2, 360, 1, 12.0, 0.0), 1);
        assert_eq!(round_at(QUICKNET_GENESIS_SECS as f64 + 2999.9, 0.0), 999);
        assert_eq!(round_at(QUICKNET_GENESIS_SECS as f64 + 3000.0, 0.0), 1000);
    }
}
