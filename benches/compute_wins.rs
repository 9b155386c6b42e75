//! `cargo bench --bench compute_wins`: one SN9 competition step end to end — read the metagraph,
//! 256 uids × 6 tasks × 50 batches of losses and the previous tracker from Parquet, score, write
//! the three output tables — timed over repeated runs in this process. Prints min and median.

#![allow(clippy::print_stdout)] // the report is the benchmark's output

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use valkit::competition::Profile;
use valkit::files::Location;
use valkit::stages::compute_wins::{run, Options, Overrides};
use valkit::tables::{encode_file, losses, metagraph, tracker};

const UIDS: u16 = 256;
const BATCHES: u32 = 50;
const TASKS: [&str; 6] = ["FINEWEB", "FINEWEB_EDU2", "STACKV2_DEDUP", "PES2OX", "FINEMATH_3P", "INFIWEBMATH_3P"];
const RUNS: usize = 30;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name);
    let mut prov = BTreeMap::new();
    prov.insert("block".to_string(), "5200000".to_string());
    let graph: Vec<metagraph::Row> = (0..UIDS)
        .map(|uid| metagraph::Row {
            netuid: 9,
            uid,
            hotkey: format!("hotkey-{uid}"),
            coldkey: format!("coldkey-{uid}"),
            stake: 1.0,
            validator_permit: uid == 0,
            registration_block: 0,
            commitment: Some(format!("ns:m{uid}:rev:hash:4")),
            commit_block: Some(5_000_000 + u64::from(uid) * 700),
            repo_namespace: None,
            repo_name: None,
            revision: None,
            secure_hash: None,
            competition_id: Some(4),
            metadata_error: None,
            weight_uids: vec![],
            weight_values: vec![],
            epoch: None,
        })
        .collect();
    std::fs::write(path("metagraph.parquet"), encode_file::<metagraph::Metagraph>(graph, &prov).unwrap()).unwrap();
    let mut rows = Vec::new();
    for uid in 0..UIDS {
        for (t, task) in TASKS.iter().enumerate() {
            for b in 0..BATCHES {
                // Deterministic, distinct losses: a per-model quality times a per-batch difficulty.
                let loss = (2.0 + f64::from(uid % 97) * 1e-3) * (1.0 + 0.1 * t as f64 + 0.01 * f64::from(b % 7));
                rows.push(losses::Row {
                    uid,
                    hotkey: format!("hotkey-{uid}"),
                    competition_id: 4,
                    task: task.to_string(),
                    batch_index: b,
                    loss,
                    n_tokens: 4095,
                    status: losses::Status::Ok,
                    reason: None,
                    evaluated_as: None,
                });
            }
        }
    }
    std::fs::write(path("losses.parquet"), encode_file::<losses::Losses>(rows, &BTreeMap::new()).unwrap()).unwrap();
    let previous: Vec<tracker::Row> = [2u16, 4]
        .iter()
        .flat_map(|&c| {
            (0..UIDS).map(move |uid| tracker::Row {
                competition_id: c,
                uid,
                weight: if uid == 7 { 1.0 } else { 0.0 },
                keep: uid == 7,
                hotkey: Some(format!("hotkey-{uid}")),
                history: vec![],
            })
        })
        .collect();
    std::fs::write(path("tracker.parquet"), encode_file::<tracker::Tracker>(previous, &BTreeMap::new()).unwrap()).unwrap();

    let options = Options {
        profile: Profile::builtin("sn9").unwrap(),
        competition_id: 4,
        metagraph: Location::Path(path("metagraph.parquet")),
        losses: vec![Location::Path(path("losses.parquet"))],
        tracker: Some(Location::Path(path("tracker.parquet"))),
        current_block: None,
        out_dir: valkit::files::Location::Path(path("out")),
        overrides: Overrides::default(),
    };
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run(&options).expect("compute-wins runs");
            start.elapsed()
        })
        .collect();
    times.sort();
    let rows = usize::from(UIDS) * TASKS.len() * BATCHES as usize;
    println!("compute-wins, {UIDS} uids x {} tasks x {BATCHES} batches ({rows} loss rows), {RUNS} runs:", TASKS.len());
    println!("  min    {:>8.2} ms", times[0].as_secs_f64() * 1e3);
    println!("  median {:>8.2} ms", times[RUNS / 2].as_secs_f64() * 1e3);
    println!("  max    {:>8.2} ms", times[RUNS - 1].as_secs_f64() * 1e3);
}
