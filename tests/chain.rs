//! `sync-metadata` and `set-weights` against a real subtensor runtime (spec 293 under chopsticks,
//! `../shared/chain/`), started once for this test binary on a port of its own and stopped when
//! it exits. Each test builds its own subnet; they run one at a time, since every seeding
//! transaction is signed by Alice. Without node and npm these tests fail (CI installs them); set
//! VALKIT_SKIP_CHAIN_TESTS=1 to skip them knowingly on a machine that has neither.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

use sha2::Digest;
use subxt::utils::AccountId32;
use subxt_signer::sr25519::{dev, Keypair};
use valkit::tables::{metagraph, receipts, weights};

use crate::fixtures::chain::{account, free_port, validator_key, write_wallet, Hyper, LocalChain, Seeder, VALIDATOR_PHRASE};
use crate::util::{args, assert_bad_input, read_table, repo_path, run_owned, write_table, TestDir};

static CHAIN: OnlineChain = OnlineChain::new();
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct OnlineChain(OnceLock<Result<LocalChain, String>>);

impl OnlineChain {
    const fn new() -> Self {
        Self(OnceLock::new())
    }
}

/// The shared chain, with Alice's networks rate limit lifted; `None` when skipping knowingly.
pub(crate) fn chain() -> Option<(&'static LocalChain, MutexGuard<'static, ()>)> {
    if valkit::env::var("VALKIT_SKIP_CHAIN_TESTS").as_deref() == Some("1") {
        #[allow(clippy::print_stderr)] // the one line saying a test did not run
        {
            eprintln!("VALKIT_SKIP_CHAIN_TESTS=1: chain test skipped");
        }
        return None;
    }
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let chain = CHAIN.0.get_or_init(|| {
        let chain = LocalChain::start_on_a_free_port(&repo_path(""))?;
        block_on(async { Seeder::connect(&chain.url).await?.allow_networks().await })?;
        Ok(chain)
    });
    match chain {
        Ok(c) => Some((c, guard)),
        Err(e) => panic!("the local chain did not start (set VALKIT_SKIP_CHAIN_TESTS=1 to skip chain tests knowingly): {e}"),
    }
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

/// `valkit sync-metadata` of `netuid` at `url` under `profile` into `out`, with `extra` flags.
fn sync_metadata(url: &str, netuid: u16, profile: &str, out: &str, extra: &[&str]) -> crate::util::Run {
    let mut a = args(&["sync-metadata", "--network", url, "--netuid", &netuid.to_string(), "--profile", profile, "--out", out]);
    a.extend(args(extra));
    run_owned(&a)
}

/// A bittensor wallet holding the validator's hotkey, `wallets/validator/hotkeys/default`.
pub(crate) fn wallet(dir: &TestDir, phrase: &str, mode: u32) -> String {
    write_wallet(&dir.path("wallets"), "validator", phrase, mode).unwrap();
    dir.arg("wallets")
}

/// A weights table as compute-wins writes it, for `netuid`, with the SDK's u16 column.
pub(crate) fn weights_table(path: &Path, netuid: u16, weights: &[f32]) -> Vec<(u16, u16)> {
    let uids: Vec<i64> = (0..weights.len() as i64).collect();
    let floats: Vec<f64> = weights.iter().map(|w| f64::from(*w)).collect();
    let (sent_uids, values) = valkit::weights::convert_for_emit(&uids, &floats).unwrap();
    let sent: Vec<(u16, u16)> = sent_uids.into_iter().zip(values).collect();
    let rows = weights
        .iter()
        .enumerate()
        .map(|(uid, w)| {
            let uid = uid as u16;
            weights::Row { uid, hotkey: None, weight: *w, weight_u16: sent.iter().find(|(u, _)| *u == uid).map_or(0, |(_, v)| *v) }
        })
        .collect();
    let netuid = netuid.to_string();
    write_table::<weights::Weights>(path, rows, &[("netuid", &netuid), ("version_key", "7")]);
    sent
}

#[test]
fn sync_metadata_reads_uids_commitments_permits_and_weights_at_one_block() {
    let Some((chain, _one)) = chain() else { return };
    let validator = validator_key();
    let miners = [dev::bob(), dev::charlie(), dev::dave(), dev::eve(), dev::ferdie()];
    let good = "my-org:model-a:0123456789abcdef0123456789abcdef01234567:N9f5Lh4r+SSjh4W3l7WVXsj0l+MnW9E9/lLawFhGYYM=:2";
    let legacy = "my-org:old-7b:0123456789abcdef0123456789abcdef01234567:aGFzaA==";
    let commitments: [&[u8]; 5] = [good.as_bytes(), legacy.as_bytes(), b"org:name:abc:def:\xff\xfe", b"org:name:abc:def:two", b"org:name"];
    let (netuid, before_commits, weight_block) = block_on(async {
        let s = Seeder::connect(&chain.url).await?;
        let hotkeys: Vec<AccountId32> = miners.iter().map(account).collect();
        s.fund(&[account(&validator)]).await?;
        let netuid = s.subnet(&account(&validator), &hotkeys, &Hyper::default()).await?;
        let before = s.head().await?;
        for (key, bytes) in miners.iter().zip(commitments) {
            s.commit(netuid, key, bytes).await?;
        }
        s.permits(netuid, &[true, false, false, false, false, false]).await?;
        // 60,000 TAO of alpha stake: what fetch-models' top-miner rule compares with 50,000.
        let stake = serde_json::json!([[account(&validator).to_string(), netuid], "60000000000000"]);
        s.set_storage(serde_json::json!({"SubtensorModule": {"TotalHotkeyAlpha": [stake]}})).await?;
        let set = subxt::dynamic::tx(
            "SubtensorModule",
            "set_weights",
            subxt::ext::scale_value::Composite::unnamed(vec![
                subxt::dynamic::Value::u128(u128::from(netuid)),
                subxt::dynamic::Value::unnamed_composite([1u128, 2].map(subxt::dynamic::Value::u128)),
                subxt::dynamic::Value::unnamed_composite([100u128, 300].map(subxt::dynamic::Value::u128)),
                subxt::dynamic::Value::u128(7),
            ]),
        );
        s.submit(&set, &validator).await?;
        let head = s.head().await?;
        Ok::<_, String>((netuid, before, head))
    })
    .expect("seeding the subnet");

    let dir = TestDir::new();
    let sync = |block: Option<u64>, out: &str| {
        let block = block.map(|b| b.to_string());
        let at: Vec<&str> = block.iter().flat_map(|b| ["--block", b.as_str()]).collect();
        sync_metadata(&chain.url, netuid, "sn9", &dir.arg(out), &at)
    };
    assert_exit!(sync(None, "m.parquet"), 0);
    let table = read_table::<metagraph::Metagraph>(&dir.path("m.parquet"));
    let rows = &table.rows;
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0].hotkey, account(&validator).to_string());
    assert_eq!(rows[1].hotkey, account(&dev::bob()).to_string());
    assert!(rows.iter().all(|r| r.coldkey == account(&dev::alice()).to_string() && r.netuid == netuid));
    assert!(rows.iter().all(|r| r.registration_block > 0 && r.registration_block <= before_commits));
    assert_eq!(rows.iter().map(|r| r.validator_permit).collect::<Vec<_>>(), [true, false, false, false, false, false]);
    assert_eq!(rows.iter().map(|r| r.stake).collect::<Vec<_>>(), [60_000.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    // The pallet max-upscales [100, 300] to [21845, 65535].
    assert_eq!((rows[0].weight_uids.clone(), rows[0].weight_values.clone()), (vec![1, 2], vec![21845, 65535]));
    assert!(rows[1].weight_uids.is_empty());

    assert_eq!(rows[0].commitment, None);
    assert_eq!((rows[0].commit_block, rows[0].metadata_error.clone()), (None, None));
    let commit_blocks: Vec<u64> = rows[1..].iter().map(|r| r.commit_block.expect("commit block")).collect();
    assert!(commit_blocks.windows(2).all(|w| w[0] < w[1]) && commit_blocks[0] > before_commits, "{commit_blocks:?}");
    assert_eq!(rows[1].commitment.as_deref(), Some(good));
    assert_eq!(
        (rows[1].repo_namespace.as_deref(), rows[1].repo_name.as_deref(), rows[1].competition_id),
        (Some("my-org"), Some("model-a"), Some(2))
    );
    assert_eq!(rows[1].secure_hash.as_deref(), Some("N9f5Lh4r+SSjh4W3l7WVXsj0l+MnW9E9/lLawFhGYYM="));
    assert_eq!((rows[2].competition_id, rows[2].secure_hash.as_deref(), rows[2].metadata_error.clone()), (Some(0), Some("aGFzaA=="), None));
    for (row, expected) in rows[3..].iter().zip(["not UTF-8", "competition id", "fewer than 4"]) {
        let error = row.metadata_error.clone().unwrap_or_default();
        assert!(error.contains(expected), "uid {}: {error:?}", row.uid);
        assert_eq!((row.repo_name.clone(), row.competition_id), (None, None));
    }

    // Provenance: the block, the SN9 sync block (block // 150 * 150) and its hash, hyperparameters.
    let p = &table.meta.provenance;
    let block: u64 = p["block"].parse().unwrap();
    assert!(block >= weight_block);
    assert_eq!(p["sync_block"], (block / 150 * 150).to_string());
    assert_eq!(p["sync_block_hash"].len(), 66);
    assert_eq!(
        (p["weights_version_key"].as_str(), p["commit_reveal_weights_enabled"].as_str(), p["tempo"].as_str()),
        ("7", "false", "360")
    );
    assert_eq!(p["genesis_hash"], format!("0x{}", "45".repeat(32)));

    // Pinned to an earlier block: no commitments yet; and the same block reads byte-identically.
    assert_exit!(sync(Some(before_commits), "early.parquet"), 0);
    assert_exit!(sync(Some(before_commits), "early-again.parquet"), 0);
    let early = read_table::<metagraph::Metagraph>(&dir.path("early.parquet"));
    assert!(early.rows.iter().all(|r| r.commitment.is_none() && r.commit_block.is_none()));
    assert_eq!(early.meta.provenance["block"], before_commits.to_string());
    assert_eq!(std::fs::read(dir.path("early.parquet")).unwrap(), std::fs::read(dir.path("early-again.parquet")).unwrap());

    // Errors: a netuid that does not exist, and a dead endpoint (exit 4).
    let missing = sync_metadata(&chain.url, 77, "sn9", &dir.arg("x.parquet"), &[]);
    assert_bad_input(&missing, "netuid 77 does not exist");
    let dead = format!("ws://127.0.0.1:{}", free_port());
    let r = sync_metadata(&dead, 2, "sn9", &dir.arg("x.parquet"), &["--rpc-timeout", "5"]);
    assert_exit!(r, 4);
    assert!(r.stderr.contains(&dead), "{}", r.stderr);
    assert!(!dir.path("x.parquet").exists());
}

#[test]
fn set_weights_sends_the_sdks_values_after_each_check() {
    let Some((chain, _one)) = chain() else { return };
    let validator = validator_key();
    let miners = [dev::bob(), dev::charlie(), dev::dave()];
    let netuid = block_on(async {
        let s = Seeder::connect(&chain.url).await?;
        s.fund(&[account(&validator)]).await?;
        s.subnet(&account(&validator), &miners.iter().map(account).collect::<Vec<_>>(), &Hyper::default()).await
    })
    .expect("seeding the subnet");
    let dir = TestDir::new();
    // uid 3's weight rounds to 0 and is not sent.
    let sent = weights_table(&dir.path("weights.parquet"), netuid, &[0.5, 0.3, 0.2, 1e-6]);
    let n = netuid.to_string();
    let wallets = wallet(&dir, VALIDATOR_PHRASE, 0o600);
    let state = dir.arg("state");
    let send = |extra: &[&str]| {
        let mut a = args(&["set-weights", "--network", &chain.url, "--netuid", &n, "--wallet", "validator", "--wallet-path", &wallets]);
        a.extend(args(&["--weights", &dir.arg("weights.parquet"), "--state-dir", &state, "--rpc-timeout", "20"]));
        a.extend(args(extra));
        run_owned(&a)
    };

    // The conversion alone, without a chain.
    let preview = run_owned(&args(&["set-weights", "--weights", &dir.arg("weights.parquet"), "--netuid", &n, "--dry-run", "--json"]));
    assert_exit!(preview, 0);
    let json: serde_json::Value = serde_json::from_str(preview.stdout_text().trim()).unwrap();
    assert_eq!(json["uids"], serde_json::json!(sent.iter().map(|p| p.0).collect::<Vec<_>>()));
    assert_eq!(json["values"], serde_json::json!(sent.iter().map(|p| p.1).collect::<Vec<_>>()));
    assert_eq!(json["dropped_by_rounding"], serde_json::json!([3]));

    // No permit yet (the epoch grants none without stake).
    assert_bad_input(&send(&[]), "no validator permit");
    block_on(async { Seeder::connect(&chain.url).await?.permits(netuid, &[true, false, false, false]).await }).unwrap();
    assert_bad_input(&send(&["--version-key", "3"]), "version key 3 is lower than netuid");
    let stranger = TestDir::new();
    let other = wallet(&stranger, "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about", 0o600);
    let mut a = args(&["set-weights", "--network", &chain.url, "--netuid", &n, "--wallet", "validator", "--wallet-path", &other]);
    a.extend(args(&["--weights", &dir.arg("weights.parquet"), "--state-dir", &state]));
    assert_bad_input(&run_owned(&a), "is not registered on netuid");
    let open = TestDir::new();
    let open_wallets = wallet(&open, VALIDATOR_PHRASE, 0o644);
    let mut a = args(&["set-weights", "--network", &chain.url, "--netuid", &n, "--wallet", "validator", "--wallet-path", &open_wallets]);
    a.extend(args(&["--weights", &dir.arg("weights.parquet")]));
    assert_bad_input(&run_owned(&a), "chmod 600");
    // A call the pallet refuses comes back by the pallet error's name: five uids on a 4-uid subnet.
    weights_table(&dir.path("five.parquet"), netuid, &[0.2; 5]);
    let mut a = args(&["set-weights", "--network", &chain.url, "--netuid", &n, "--wallet", "validator", "--wallet-path", &wallets]);
    a.extend(args(&["--weights", &dir.arg("five.parquet"), "--state-dir", &state]));
    assert_bad_input(&run_owned(&a), "SubtensorModule::UidsLengthExceedUidsInSubNet");
    assert!(!dir.path("state/receipts.parquet").exists());
    let dry = send(&["--dry-run", "--json"]);
    assert_exit!(dry, 0);
    assert_eq!(block_on(async { Seeder::connect(&chain.url).await?.weights(netuid, 0).await }).unwrap(), vec![]);

    let ok = send(&["--json"]);
    assert_exit!(ok, 0);
    let receipt: serde_json::Value = serde_json::from_str(ok.stdout_text().trim()).unwrap();
    assert_eq!(receipt["action"], "set_weights");
    let stored = block_on(async { Seeder::connect(&chain.url).await?.weights(netuid, 0).await }).unwrap();
    // The SDK's values already peak at 65535, so the pallet's max-upscaling keeps them as sent.
    assert_eq!(stored, sent);
    let receipts = read_table::<receipts::Receipts>(&dir.path("state/receipts.parquet"));
    assert_eq!(receipts.rows.len(), 1);
    let r = &receipts.rows[0];
    assert_eq!(
        (r.action, r.uid, r.version_key, r.block),
        (receipts::Action::SetWeights, 0, 7, receipt["included"]["block"].as_u64().unwrap())
    );
    assert_eq!(r.uids.iter().copied().zip(r.values.iter().copied()).collect::<Vec<_>>(), sent);

    // The rate limit: too soon is exit 3 with the blocks to go, and nothing is sent.
    block_on(async { Seeder::connect(&chain.url).await?.set_weights_rate_limit(netuid, 100).await }).unwrap();
    let soon = send(&[]);
    assert_exit!(soon, 3);
    assert!(soon.stderr.contains("too soon") && soon.stderr.contains("blocks to go"), "{}", soon.stderr);
    assert_eq!(read_table::<receipts::Receipts>(&dir.path("state/receipts.parquet")).rows.len(), 1);

    let dead = format!("ws://127.0.0.1:{}", free_port());
    let mut a = args(&["set-weights", "--network", &dead, "--netuid", &n, "--wallet", "validator", "--wallet-path", &wallets]);
    a.extend(args(&["--weights", &dir.arg("weights.parquet"), "--state-dir", &state, "--rpc-timeout", "5"]));
    assert_exit!(run_owned(&a), 4);
}

/// Needs no chain: a table the SDK's conversion would bend is refused before the preview.
#[test]
fn set_weights_refuses_nan_infinite_negative_or_repeated_weights() {
    let dir = TestDir::new();
    let cases: [(&str, Vec<weights::Row>); 3] = [
        ("uid 1: weight NaN is not a finite, non-negative number", vec![row(0, 1.0), row(1, f32::NAN)]),
        ("uid 2: weight -1 is not a finite, non-negative number", vec![row(0, 1.0), row(2, -1.0)]),
        ("uid 0 has more than one row", vec![row(0, 1.0), row(0, 1.0)]),
    ];
    for (culprit, rows) in cases {
        write_table::<weights::Weights>(&dir.path("weights.parquet"), rows, &[("netuid", "2"), ("version_key", "7")]);
        let preview = run_owned(&args(&["set-weights", "--weights", &dir.arg("weights.parquet"), "--netuid", "2", "--dry-run", "--json"]));
        assert_bad_input(&preview, culprit);
        assert!(preview.stdout.is_empty(), "nothing previewed");
    }
}

fn row(uid: u16, weight: f32) -> weights::Row {
    weights::Row { uid, hotkey: None, weight, weight_u16: if weight == 1.0 { 65535 } else { 0 } }
}

/// Quicknet's signature of round 1000 (subtensor `pallets/drand/src/tests.rs` `DRAND_PULSE`): it
/// opens what was timelocked to round 1000, as the chain would at the reveal.
const ROUND_1000_SIGNATURE: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";

#[test]
fn timelocked_commit_reveal_commits_and_a_later_run_judges_the_reveal() {
    let Some((chain, _one)) = chain() else { return };
    let validator = validator_key();
    let miners: Vec<Keypair> = vec![dev::bob(), dev::charlie()];
    // Tempo 10: the reveal comes within two epochs of 11 blocks (an epoch wipes the planted
    // permits, which are planted again before the next run, as the chain README says).
    let hyper = Hyper { tempo: 10, commit_reveal: true, ..Hyper::default() };
    let netuid = block_on(async {
        let s = Seeder::connect(&chain.url).await?;
        s.fund(&[account(&validator)]).await?;
        let netuid = s.subnet(&account(&validator), &miners.iter().map(account).collect::<Vec<_>>(), &hyper).await?;
        // Spec 293 reveals nothing filed under epochs 0 and 1 (`reveal_crv3_commits`: cur_epoch < 2).
        // Planted right after this subnet's epoch block, whatever the head other tests left:
        // the permits then hold for the whole first part (the next epoch recomputes them).
        let head = s.head().await?;
        let epoch_block = valkit::consensus::next_epoch_block(netuid, hyper.tempo, head.max(30)).unwrap();
        s.new_blocks(u32::try_from(epoch_block - head).unwrap()).await?;
        s.permits(netuid, &[true, false, false]).await?;
        Ok::<_, String>(netuid)
    })
    .expect("seeding the subnet");
    let dir = TestDir::new();
    let sent = weights_table(&dir.path("weights.parquet"), netuid, &[0.2, 0.5, 0.3]);
    let n = netuid.to_string();
    let wallets = wallet(&dir, VALIDATOR_PHRASE, 0o600);
    let send = |extra: &[&str]| {
        let mut a = args(&["set-weights", "--network", &chain.url, "--netuid", &n, "--wallet", "validator", "--wallet-path", &wallets]);
        a.extend(args(&["--weights", &dir.arg("weights.parquet"), "--state-dir", &dir.arg("state"), "--json"]));
        a.extend(args(extra));
        run_owned(&a)
    };
    let json = |r: &crate::util::Run| -> serde_json::Value { serde_json::from_str(r.stdout_text().trim()).unwrap() };
    let receipts = || read_table::<receipts::Receipts>(&dir.path("state/receipts.parquet")).rows;

    // Spec 293 has commit_crv3_weights: the SDK of its time sent a CRv3 commit.
    let dry = send(&["--dry-run"]);
    assert_exit!(dry, 0);
    let preview = json(&dry);
    assert_eq!((preview["action"].as_str(), preview["path"].as_str()), (Some("dry_run"), Some("commit_crv3_weights")), "{preview}");
    assert!(preview["commit"]["round_rule"].as_str().unwrap().contains("bittensor-drand 1.2"), "{preview}");
    assert!(!dir.path("state/receipts.parquet").exists());

    let commit = send(&["--reveal-round", "1000"]);
    assert_exit!(commit, 0);
    let summary = json(&commit);
    assert_eq!(summary["action"], "commit_crv3_weights", "{summary}");
    assert!(summary["path_reason"].as_str().unwrap().contains("CRv3"), "{summary}");
    let c = &summary["commit"];
    assert_eq!(c["reveal_round"], 1000);
    let (epoch, reveal_block) = (c["commit_epoch"].as_u64().unwrap(), c["reveal_block"].as_u64().unwrap());
    let commit_block = summary["included"]["block"].as_u64().unwrap();
    assert_eq!(epoch, valkit::chain::timelock::commit_epoch_v1(commit_block, netuid, 10));
    assert_eq!(Some(reveal_block), valkit::chain::timelock::reveal_block_v1(epoch, netuid, 10, 1));

    // What the chain keeps opens with round 1000's signature to the legacy payload of the SDK's
    // values; no plain weights were written.
    let queued = block_on(async { Seeder::connect(&chain.url).await?.crv3_commits(netuid, epoch).await }).unwrap();
    assert_eq!(queued.len(), 1);
    let (who, ciphertext, round) = &queued[0];
    assert_eq!((who, *round), (&account(&validator), 1000));
    assert_eq!(hex::encode(sha2::Sha256::digest(ciphertext)), c["ciphertext_sha256"].as_str().unwrap());
    let opened = valkit::chain::timelock::decrypt(ciphertext, &hex::decode(ROUND_1000_SIGNATURE).unwrap()).unwrap();
    let (uids, values): (Vec<u16>, Vec<u16>) = sent.iter().copied().unzip();
    assert_eq!(opened, valkit::chain::timelock::payload(None, &uids, &values, 7));
    assert_eq!(block_on(async { Seeder::connect(&chain.url).await?.weights(netuid, 0).await }).unwrap(), vec![]);
    let rows = receipts();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].action, rows[0].reveal_round, rows[0].commit_epoch),
        (receipts::Action::CommitCrv3Weights, Some(1000), Some(epoch))
    );
    assert_eq!(rows[0].reveal_block, Some(reveal_block));

    // The commit set LastUpdate: the rate limit holds at commit time (exit 3, nothing sent).
    block_on(async { Seeder::connect(&chain.url).await?.set_weights_rate_limit(netuid, 100).await }).unwrap();
    let soon = send(&["--reveal-round", "1000"]);
    assert_exit!(soon, 3);
    assert!(soon.stdout_text().contains("too soon"), "{}", soon.stdout_text());
    block_on(async { Seeder::connect(&chain.url).await?.set_weights_rate_limit(netuid, 0).await }).unwrap();

    // A round older than the chain's newest pulse is refused before sending.
    let drand_key =
        format!("0x{}{}", hex::encode(sp_crypto_hashing::twox_128(b"Drand")), hex::encode(sp_crypto_hashing::twox_128(b"LastStoredRound")));
    let newest = serde_json::json!([[drand_key, format!("0x{}", hex::encode(2000u64.to_le_bytes()))]]);
    block_on(async { Seeder::connect(&chain.url).await?.set_storage(newest).await }).unwrap();
    assert_bad_input(&send(&["--reveal-round", "1000"]), "older than the chain's newest drand round 2000");
    block_on(async { Seeder::connect(&chain.url).await?.set_storage(serde_json::json!([[drand_key, serde_json::Value::Null]])).await })
        .unwrap();

    // Past the reveal block: this chain has no drand pulses, so the chain could not reveal it; the
    // next run says so, records it, and commits anew.
    block_on(async {
        let s = Seeder::connect(&chain.url).await?;
        let head = s.head().await?;
        s.new_blocks(u32::try_from(reveal_block + 1 - head.min(reveal_block)).unwrap()).await?;
        s.permits(netuid, &[true, false, false]).await
    })
    .unwrap();
    assert_eq!(
        block_on(async { Seeder::connect(&chain.url).await?.crv3_commits(netuid, epoch).await }).unwrap(),
        vec![],
        "the chain took the queue at its reveal block"
    );
    let next = send(&["--reveal-round", "1000"]);
    assert_exit!(next, 0);
    let summary = json(&next);
    let judged = &summary["reconciled"][0];
    assert_eq!((judged["status"].as_str(), judged["commit_block"].as_u64()), (Some("lost"), Some(commit_block)), "{summary}");
    assert!(judged["cause"].as_str().unwrap().contains("no drand pulse for round 1000"), "{judged}");
    let actions: Vec<_> = receipts().iter().map(|r| r.action).collect();
    assert_eq!(actions, [receipts::Action::CommitCrv3Weights, receipts::Action::Lost, receipts::Action::CommitCrv3Weights]);
    let lost = &receipts()[1];
    assert_eq!((lost.extrinsic_hash.as_str(), lost.block), (rows[0].extrinsic_hash.as_str(), reveal_block), "judged at the reveal block");
    // Judged once: the run after does not judge it again (a block later: the SDK's rate limit
    // wants more than WeightsSetRateLimit = 0 blocks since the last commit).
    block_on(async { Seeder::connect(&chain.url).await?.new_blocks(1).await }).unwrap();
    let again = send(&["--reveal-round", "1000", "--dry-run"]);
    assert_exit!(again, 0);
    assert!(json(&again)["reconciled"].as_array().is_none_or(|r| r.iter().all(|j| j["status"] == "waiting")), "{}", again.stdout_text());

    // More uids than a 5,000-byte commit holds: refused before anything is sent.
    weights_table(&dir.path("wide.parquet"), netuid, &vec![0.5; 1300]);
    let mut a = args(&["set-weights", "--network", &chain.url, "--netuid", &n, "--wallet", "validator", "--wallet-path", &wallets]);
    a.extend(args(&["--weights", &dir.arg("wide.parquet"), "--state-dir", &dir.arg("state"), "--reveal-round", "1000"]));
    assert_bad_input(&run_owned(&a), "the chain stores at most 5000");

    // Ten unrevealed commits in the epoch the next commit would join: the chain's limit, refused first.
    let head = block_on(async { Seeder::connect(&chain.url).await?.head().await }).unwrap();
    let next_epoch = valkit::chain::timelock::commit_epoch_v1(head + 1, netuid, 10);
    let ten: Vec<serde_json::Value> = (0..10).map(|_| serde_json::json!([account(&validator).to_string(), "0x00", 1000])).collect();
    block_on(async {
        Seeder::connect(&chain.url)
            .await?
            .set_storage(serde_json::json!({"SubtensorModule": {"CRV3WeightCommits": [[[netuid, next_epoch], ten]]}}))
            .await
    })
    .unwrap();
    let full = send(&["--reveal-round", "1000"]);
    assert_exit!(full, 3);
    assert!(full.stdout_text().contains("TooManyUnrevealedCommits"), "{}", full.stdout_text());
}

#[test]
fn sync_metadata_reads_a_256_uid_subnet() {
    let Some((chain, _one)) = chain() else { return };
    let validator = validator_key();
    let planted: Vec<(AccountId32, String)> = (1..256u16)
        .map(|uid| {
            let hotkey = AccountId32(sha2::Sha256::digest(format!("hotkey {uid}")).into());
            (hotkey, format!("org-{uid}:model:{:040x}:c2VjdXJl:{}", uid, uid % 3))
        })
        .collect();
    let netuid = block_on(async {
        let s = Seeder::connect(&chain.url).await?;
        let netuid = s.subnet(&account(&validator), &[], &Hyper::default()).await?;
        s.plant_uids(netuid, 1, &planted).await?;
        s.new_blocks(1).await?;
        Ok::<_, String>(netuid)
    })
    .expect("planting 256 uids");
    let dir = TestDir::new();
    let started = std::time::Instant::now();
    let r = sync_metadata(&chain.url, netuid, "sn37", &dir.arg("m.parquet"), &[]);
    let seconds = started.elapsed().as_secs_f64();
    assert_exit!(r, 0);
    let rows = read_table::<metagraph::Metagraph>(&dir.path("m.parquet")).rows;
    assert_eq!(rows.len(), 256);
    for (row, (hotkey, commitment)) in rows[1..].iter().zip(&planted) {
        assert_eq!((&row.hotkey, row.commitment.as_ref()), (&hotkey.to_string(), Some(commitment)));
        assert_eq!((row.registration_block, row.commit_block), (1 + u64::from(row.uid), Some(2 + u64::from(row.uid))));
        assert_eq!(row.competition_id, Some(row.uid % 3));
    }
    #[allow(clippy::print_stdout)] // the figure README quotes (run with --nocapture)
    {
        println!("sync-metadata of a 256-uid subnet: {seconds:.2} s (debug build, whole command)");
    }
}

/// The demo profile for a subnet at `netuid`, its corpora found from anywhere.
fn demo_profile(dir: &TestDir, netuid: u16) -> String {
    let text = std::fs::read_to_string(repo_path("testdata/demo/competitions.toml")).unwrap();
    let corpora = repo_path("testdata/demo/corpora");
    let text = text.replace("name = \"corpora/", &format!("name = \"{}/", corpora.display()));
    let text = text
        .lines()
        .map(|l| if l.starts_with("netuid = ") { format!("netuid = {netuid}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path("competitions.toml"), text).unwrap();
    dir.arg("competitions.toml")
}

#[test]
fn run_loop_sets_weights_on_chain_and_retries_only_what_may_pass() {
    let Some((chain, _one)) = chain() else { return };
    let dir = TestDir::new();
    let demo = crate::fixtures::demo::serve(&repo_path(""), &dir.path("demo"), 2, Some(&chain.url)).expect("demo subnet");
    let netuid = demo.netuid.unwrap();
    let workdir = dir.path("run");
    let env = [
        ("NETWORK", chain.url.clone()),
        ("NETUID", netuid.to_string()),
        ("COMPETITIONS", demo_profile(&dir, netuid)),
        ("WALLET", "validator".to_string()),
        ("WALLET_PATH", dir.arg("demo/wallets")),
        ("SET_WEIGHTS_RETRIES", "2".to_string()),
    ];
    let cycle = || crate::run_loop::run_loop(&workdir, &demo.hub.url, &dir.path("cache"), &env);
    let first = cycle();
    assert_eq!(first.code, 0, "{}", first.log);
    // The demo subnet has commit-reveal on: the cycle's weights went out as a timelocked commit.
    let receipts = read_table::<receipts::Receipts>(&workdir.join("state/receipts.parquet")).rows;
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].action, receipts::Action::CommitCrv3Weights);
    let sent: Vec<(u16, u16)> = receipts[0].uids.iter().copied().zip(receipts[0].values.iter().copied()).collect();
    let step = crate::run_loop::steps(&workdir)[0].clone();
    let table = read_table::<weights::Weights>(&step.join("weights.parquet"));
    let expected: Vec<(u16, u16)> = table.rows.iter().filter(|r| r.weight_u16 > 0).map(|r| (r.uid, r.weight_u16)).collect();
    assert_eq!(sent, expected);
    let epoch = receipts[0].commit_epoch.unwrap();
    let queued = block_on(async { Seeder::connect(&chain.url).await?.crv3_commits(netuid, epoch).await }).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(Some(hex::encode(sha2::Sha256::digest(&queued[0].1))), receipts[0].commit_sha256);
    assert!(first.log.contains("set-weights: exit 0"), "{}", first.log);
    assert_eq!(block_on(async { Seeder::connect(&chain.url).await?.weights(netuid, 0).await }).unwrap(), vec![]);

    // Too soon (exit 3) is retried, up to SET_WEIGHTS_RETRIES; the step itself completed.
    block_on(async { Seeder::connect(&chain.url).await?.set_weights_rate_limit(netuid, 100).await }).unwrap();
    let soon = cycle();
    assert_eq!(soon.code, 3, "{}", soon.log);
    assert_eq!(soon.log.matches("set-weights: exit 3").count(), 2, "{}", soon.log);
    assert!(soon.log.contains("carrying the tracker"), "{}", soon.log);
    assert_eq!(std::fs::read_to_string(workdir.join("state/step")).unwrap().trim(), "2");

    // Bad input (exit 2: a key file others can read) is not retried.
    write_wallet(&dir.path("demo/wallets"), "validator", VALIDATOR_PHRASE, 0o644).unwrap();
    let refused = cycle();
    assert_eq!(refused.code, 2, "{}", refused.log);
    assert_eq!(refused.log.matches("set-weights: exit 2").count(), 1, "{}", refused.log);
}

/// The runtime is the reference for `valkit consensus` (issue 25): a subnet planted with five
/// validators of different stakes (one with root stake weighted by a planted `TaoWeight`, one
/// inactive), eight miners, weights that disagree, bonds from an earlier epoch, a miner
/// registered after one validator's last update and one since the last tempo, and a non-default
/// `Kappa` and `BondsPenalty`. Synced the block before its epoch, predicted offline, then the
/// runtime runs the epoch: what it stores equals the prediction u16 for u16. Yuma2 (the
/// default), then the same subnet under Yuma3 with liquid alpha.
#[test]
fn the_runtime_stores_the_epoch_that_valkit_consensus_predicts() {
    let Some((chain, _one)) = chain() else { return };
    epoch_scenario(chain, false);
    epoch_scenario(chain, true);
}

fn epoch_scenario(chain: &LocalChain, yuma3: bool) {
    let validator = validator_key();
    let hotkeys: Vec<(AccountId32, String)> =
        (1..14u16).map(|uid| (AccountId32(sha2::Sha256::digest(format!("epoch hotkey {uid}")).into()), String::from("x"))).collect();
    let tempo = 40u16;
    let (netuid, epoch_block) = block_on(async {
        let s = Seeder::connect(&chain.url).await?;
        let netuid = s.subnet(&account(&validator), &[], &Hyper { tempo, ..Hyper::default() }).await?;
        // Planted two blocks before the epoch block (an epoch over uids planted without their
        // per-uid vectors would panic the block), far enough from the start for the blocks
        // below. Blocks are built ten at a time (a long dev_newBlock outlives its request).
        let head = s.head().await?;
        let epoch_block = valkit::consensus::next_epoch_block(netuid, tempo, head.max(60) + 2).unwrap();
        loop {
            let head = s.head().await?;
            if head >= epoch_block - 2 {
                break;
            }
            s.new_blocks(u32::try_from((epoch_block - 2 - head).min(10)).unwrap()).await?;
            if s.head().await? == head {
                return Err(format!("no block was built after {head}"));
            }
        }
        s.plant_uids(netuid, 1, &hotkeys).await?;
        Ok::<_, String>((netuid, epoch_block))
    })
    .expect("a subnet two blocks before its epoch");
    let e = epoch_block;
    let n = 14usize;
    let ss58 = |uid: usize| hotkeys[uid - 1].0.to_string();
    // uids 1-5 validators (4 inactive), 6-13 miners; uid 0 the owner, with nothing.
    let stakes = [0u64, 3_000, 2_000, 1_500, 4_000, 800].map(|tao| tao * 1_000_000_000);
    let mut last_update = vec![e - 30; n];
    last_update[1..6].copy_from_slice(&[e - 2, e - 5, e - 3, e - 35, e - 4]);
    let mut registered: Vec<u64> = (0..n as u64).map(|uid| 1 + uid).collect();
    // Miner 12 registered after validators 2 and 3 last set weights, miner 13 within the last
    // tempo (its bonds are dropped).
    registered[12] = e - 4;
    registered[13] = e - 10;
    // Rows as set_weights stores them, max-upscaled to 65535 (subnets/weights.rs :764).
    let weights: [&[(u16, u16)]; 5] = [
        &[(6, 65535), (7, 30000), (8, 10000), (12, 20000), (13, 5000)],
        &[(6, 40000), (7, 65535), (9, 12000), (12, 30000)],
        &[(6, 65535), (8, 50000), (10, 20000), (11, 1000), (12, 9000), (13, 9000)],
        &[(11, 65535)],
        &[(6, 50000), (7, 50000), (9, 65535), (13, 30000)],
    ];
    // As the spec-293 epoch stores Yuma2 bonds: each column's largest 65535 (run_epoch.rs
    // :718, column max-upscaled); Yuma3 reads the same u16s as proportions.
    let bonds: [&[(u16, u16)]; 5] = [
        &[(6, 65535), (7, 20000), (8, 4000), (13, 1000)],
        &[(6, 30000), (7, 65535), (9, 65535)],
        &[(6, 50000), (8, 65535), (10, 65535), (11, 200)],
        &[(11, 65535)],
        &[(6, 40000), (7, 10000), (9, 3000), (13, 65535)],
    ];
    let pairs = |rows: &[&[(u16, u16)]; 5]| -> Vec<serde_json::Value> {
        rows.iter()
            .enumerate()
            .map(|(i, row)| serde_json::json!([[netuid, i + 1], row.iter().map(|(j, v)| [*j, *v]).collect::<Vec<_>>()]))
            .collect()
    };
    let alpha: Vec<serde_json::Value> = (1..6).map(|uid| serde_json::json!([[ss58(uid), netuid], stakes[uid].to_string()])).collect();
    let mut permits = vec![false; n];
    permits[1..6].iter_mut().for_each(|p| *p = true);
    block_on(async {
        let s = Seeder::connect(&chain.url).await?;
        s.set_storage(serde_json::json!({"SubtensorModule": {
            "LastUpdate": [[[netuid], last_update]],
            "ValidatorPermit": [[[netuid], permits]],
            "BlockAtRegistration": (0..n).map(|uid| serde_json::json!([[netuid, uid], registered[uid]])).collect::<Vec<_>>(),
            "Weights": pairs(&weights),
            "Bonds": pairs(&bonds),
            "TotalHotkeyAlpha": alpha,
            "Kappa": [[[netuid], 40000]],
            "BondsPenalty": [[[netuid], 30000]],
            "ActivityCutoff": [[[netuid], 20]],
            "TaoWeight": (u64::MAX / 5).to_string(),
            "Yuma3On": [[[netuid], yuma3]],
            "LiquidAlphaOn": [[[netuid], yuma3]],
        }}))
        .await?;
        // Validator 2 also holds root stake, which TaoWeight brings in.
        s.set_storage(serde_json::json!({"SubtensorModule": {"TotalHotkeyAlpha": [[[ss58(2), 0], "5000000000000"]]}})).await?;
        s.new_blocks(1).await
    })
    .expect("planting the epoch's inputs");
    let dir = TestDir::new();
    let sync =
        |block: u64, out: &str| assert_exit!(sync_metadata(&chain.url, netuid, "sn37", &dir.arg(out), &["--block", &block.to_string()]), 0);
    sync(e - 1, "before.parquet");
    let predicted = run_owned(&args(&[
        "consensus",
        "--metagraph",
        &dir.arg("before.parquet"),
        "-o",
        &dir.arg("consensus.parquet"),
        "--clips",
        &dir.arg("clips.parquet"),
        "--json",
    ]));
    assert_exit!(predicted, 0);
    let summary: serde_json::Value = serde_json::from_str(predicted.stdout_text().trim()).unwrap();
    assert_eq!(summary["epoch_block"], e, "{summary}");
    block_on(async { Seeder::connect(&chain.url).await?.new_blocks(1).await }).expect("the epoch block");
    sync(e, "after.parquet");

    let prediction = read_table::<valkit::tables::consensus::Consensus>(&dir.path("consensus.parquet")).rows;
    let stored = read_table::<metagraph::Metagraph>(&dir.path("after.parquet")).rows;
    let column = |f: fn(&metagraph::UidEpoch) -> u16| stored.iter().map(|r| f(r.epoch.as_ref().unwrap())).collect::<Vec<_>>();
    let got = |f: fn(&valkit::tables::consensus::Row) -> u16| prediction.iter().map(f).collect::<Vec<_>>();
    assert_eq!(got(|r| r.consensus), column(|e| e.consensus), "Consensus, Yuma3 {yuma3}");
    assert_eq!(got(|r| r.validator_trust), column(|e| e.validator_trust), "ValidatorTrust, Yuma3 {yuma3}");
    assert_eq!(got(|r| r.incentive), column(|e| e.incentive), "Incentive, Yuma3 {yuma3}");
    assert_eq!(got(|r| r.dividends), column(|e| e.dividends), "Dividends, Yuma3 {yuma3}");
    let bonds = |uids: &[u16], values: &[u16]| uids.iter().copied().zip(values.iter().copied()).collect::<Vec<_>>();
    assert_eq!(
        prediction.iter().map(|r| bonds(&r.bond_uids, &r.bond_values)).collect::<Vec<_>>(),
        stored.iter().map(|r| r.epoch.as_ref().map(|e| bonds(&e.bond_uids, &e.bond_values)).unwrap()).collect::<Vec<_>>(),
        "Bonds, Yuma3 {yuma3}"
    );
    assert_eq!(
        prediction.iter().map(|r| r.next_validator_permit).collect::<Vec<_>>(),
        stored.iter().map(|r| r.validator_permit).collect::<Vec<_>>(),
        "ValidatorPermit, Yuma3 {yuma3}"
    );
    // Not a trivial epoch: weights disagree, so some are clipped and vTrusts differ.
    let vtrust = got(|r| r.validator_trust);
    let distinct: std::collections::BTreeSet<u16> = vtrust[1..6].iter().copied().collect();
    assert!(distinct.len() == 5 && vtrust[1..6].iter().all(|v| *v < 65000), "{vtrust:?}");
    assert!(got(|r| r.dividends).iter().filter(|d| **d > 0).count() >= 3, "{:?}", got(|r| r.dividends));
    assert!(!prediction[4].active, "validator 4 is inactive");
    let clips = read_table::<valkit::tables::clips::Clips>(&dir.path("clips.parquet")).rows;
    assert!(clips.iter().any(|c| c.clipped > 0.0) && clips.iter().all(|c| c.clipped <= c.weight));
    assert!(!clips.iter().any(|c| c.validator == 2 && c.miner == 12), "validator 2's weight on miner 12 predates its registration");
}
