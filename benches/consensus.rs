//! `cargo bench --bench consensus`: one epoch of a full subnet — 256 uids, 64 validators each
//! weighting and bonded to 192 miners — predicted by `valkit consensus`: in this process (the
//! epoch alone, and the stage with its Parquet read and writes), and as a whole process
//! (`target/release/valkit consensus`, built by `cargo bench`'s profile when present). Prints
//! min and median of repeated runs.

#![allow(clippy::print_stdout)] // the report is the benchmark's output

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use valkit::consensus::{self, Parameters, Subnet};
use valkit::files::Location;
use valkit::stages::consensus::{run, Options};
use valkit::tables::{encode_file, metagraph};

const UIDS: u16 = 256;
const VALIDATORS: u16 = 64;
const RUNS: usize = 20;

/// A deterministic pseudo-random u16 (SplitMix-style), so the subnet is the same every run.
fn draw(i: u64) -> u16 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u16
}

fn row(v: u16, salt: u64) -> Vec<(u16, u16)> {
    let mut row: Vec<(u16, u16)> = (VALIDATORS..UIDS).map(|j| (j, draw(salt + u64::from(v) * 1000 + u64::from(j)))).collect();
    let max = row.iter().map(|(_, w)| *w).max().unwrap_or(1).max(1);
    row.iter_mut().for_each(|(_, w)| *w = (u32::from(*w) * 65535 / u32::from(max)) as u16);
    row
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let block = 1_000_000u64;
    let parameters = Parameters {
        tempo: 360,
        activity_cutoff: 5000,
        max_allowed_validators: 64,
        kappa: 32767,
        bonds_penalty: 65535,
        bonds_moving_average: 900_000,
        ..Parameters::default()
    };
    let graph: Vec<metagraph::Row> = (0..UIDS)
        .map(|uid| {
            let validator = uid < VALIDATORS;
            let (weights, bonds) = if validator { (row(uid, 1), row(uid, 2)) } else { (Vec::new(), Vec::new()) };
            metagraph::Row {
                validator_permit: validator,
                registration_block: u64::from(uid),
                weight_uids: weights.iter().map(|(j, _)| *j).collect(),
                weight_values: weights.iter().map(|(_, w)| *w).collect(),
                epoch: Some(metagraph::UidEpoch {
                    last_update: block - 10,
                    alpha_stake: if validator { 1_000_000_000 * u64::from(1 + draw(u64::from(uid)) % 5000) } else { 0 },
                    root_stake: 0,
                    bond_uids: bonds.iter().map(|(j, _)| *j).collect(),
                    bond_values: bonds.iter().map(|(_, b)| *b).collect(),
                    ..metagraph::UidEpoch::default()
                }),
                ..metagraph::Row::new(9, uid, format!("hotkey-{uid}"), format!("coldkey-{uid}"))
            }
        })
        .collect();
    let mut provenance: BTreeMap<String, String> = parameters.pairs().into_iter().collect();
    provenance.insert("block".into(), block.to_string());
    let subnet = Subnet {
        block: consensus::next_epoch_block(9, 360, block).unwrap(),
        parameters: parameters.clone(),
        last_update: graph.iter().map(|r| r.epoch.as_ref().unwrap().last_update).collect(),
        block_at_registration: graph.iter().map(|r| r.registration_block).collect(),
        alpha_stake: graph.iter().map(|r| r.epoch.as_ref().unwrap().alpha_stake).collect(),
        root_stake: vec![0; usize::from(UIDS)],
        validator_permit: graph.iter().map(|r| r.validator_permit).collect(),
        weights: (0..UIDS).map(|v| if v < VALIDATORS { row(v, 1) } else { Vec::new() }).collect(),
        bonds: (0..UIDS).map(|v| if v < VALIDATORS { row(v, 2) } else { Vec::new() }).collect(),
    };
    let path = dir.path().join("metagraph.parquet");
    std::fs::write(&path, encode_file::<metagraph::Metagraph>(graph, &provenance).unwrap()).unwrap();

    let time = |f: &mut dyn FnMut()| -> Vec<Duration> {
        let mut times: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        times.sort();
        times
    };
    let report = |what: &str, times: &[Duration]| {
        println!(
            "  {what:<44} min {:>8.2} ms  median {:>8.2} ms",
            times[0].as_secs_f64() * 1e3,
            times[times.len() / 2].as_secs_f64() * 1e3
        );
    };
    println!("one epoch of {UIDS} uids, {VALIDATORS} validators x {} miners (weights and bonds), {RUNS} runs:", UIDS - VALIDATORS);
    report("the epoch alone (consensus::epoch)", &time(&mut || drop(consensus::epoch(&subnet).unwrap())));
    let options = Options {
        metagraph: Location::Path(path.clone()),
        out: Some(Location::Path(dir.path().join("consensus.parquet"))),
        clips: Some(Location::Path(dir.path().join("clips.parquet"))),
        mine: None,
    };
    report("the stage in process (read, epoch, two tables)", &time(&mut || drop(run(&options).unwrap())));
    let target = valkit::env::var_os("CARGO_TARGET_DIR").map_or_else(|| std::path::PathBuf::from("target"), std::path::PathBuf::from);
    let binary = target.join("release/valkit");
    if binary.exists() {
        let times = time(&mut || {
            let status = std::process::Command::new(&binary)
                .args(["consensus", "--metagraph"])
                .arg(&path)
                .arg("-o")
                .arg(dir.path().join("c.parquet"))
                .arg("--clips")
                .arg(dir.path().join("k.parquet"))
                .arg("-q")
                .status()
                .unwrap();
            assert!(status.success());
        });
        report("whole process (target/release/valkit consensus)", &times);
    } else {
        println!("  whole process: no {} (cargo build --release first)", binary.display());
    }
}
