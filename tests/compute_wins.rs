use std::collections::BTreeMap;

use valkit::tables::{losses, metagraph, tracker, weights, wins};

use crate::util::*;

pub fn demo_args(out: &str) -> Vec<String> {
    [
        "compute-wins",
        "--profile",
        "sn9",
        "--competition-id",
        "4",
        "--metagraph",
        &demo("metagraph.parquet"),
        "--losses",
        &demo("losses.parquet"),
        "--tracker",
        &demo("tracker.parquet"),
        "--out-dir",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn demo_step_pays_the_newcomer_that_beats_epsilon() {
    let dir = TestDir::new();
    let r = run_owned(&demo_args(&dir.arg("out")));
    assert_exit!(r, 0);
    let rows = read_table::<wins::Wins>(&dir.path("out/wins.parquet")).rows;
    let by_uid: BTreeMap<u16, &wins::Row> = rows.iter().map(|r| (r.uid, r)).collect();
    assert_eq!(by_uid.keys().copied().collect::<Vec<_>>(), (1..=12).collect::<Vec<u16>>());
    let top: Vec<u16> = rows.iter().filter(|r| r.top).map(|r| r.uid).collect();
    assert_eq!(top, [5], "the 1% better newcomer wins");
    let competitive: Vec<u16> = rows.iter().filter(|r| r.competitive).map(|r| r.uid).collect();
    assert_eq!(competitive, [1, 4, 5, 12], "clones and failures drop out; the oldest model stays");
    assert_eq!((by_uid[&1].wins, by_uid[&4].wins, by_uid[&5].wins), (2, 1, 3), "leader beats the 0.1% newcomer");
    for (uid, reason) in [(6, "failed: load-failed"), (7, "no-commitment"), (8, "other-competition")] {
        assert!(by_uid[&uid].score.is_infinite());
        assert!(by_uid[&uid].score_reason.as_deref().unwrap().starts_with(reason), "uid {uid}");
    }
    assert_eq!(by_uid[&6].commit_block, Some(5_150_000), "a failed model keeps its commit block");
    assert_eq!(by_uid[&7].commit_block, None);
    let weights = read_table::<weights::Weights>(&dir.path("out/weights.parquet")).rows;
    assert_eq!(weights.len(), 16, "every uid of the metagraph");
    let sent: Vec<(u16, u16)> = weights.iter().filter(|w| w.weight_u16 > 0).map(|w| (w.uid, w.weight_u16)).collect();
    assert_eq!(sent, [(1, 65535), (5, 65535), (13, 65535)], "B3 winner 0.15 == half of B14's 0.30");
    let tracker = read_table::<tracker::Tracker>(&dir.path("out/tracker.parquet")).rows;
    assert_eq!(tracker.len(), 32, "competitions 2 and 4, 16 uids each");
    let kept: Vec<u16> = tracker.iter().filter(|t| t.competition_id == 4 && t.keep).map(|t| t.uid).collect();
    assert_eq!(kept, [1, 2, 4, 5, 12]);
    let history = &tracker.iter().find(|t| t.competition_id == 4 && t.uid == 5).unwrap().history;
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].block, history[0].winning_model_block), (5_200_000, 5_199_000.0));
}

#[test]
fn rerun_gives_byte_identical_tables() {
    let dir = TestDir::new();
    assert_exit!(run_owned(&demo_args(&dir.arg("a"))), 0);
    assert_exit!(run_owned(&demo_args(&dir.arg("b"))), 0);
    for name in ["wins.parquet", "weights.parquet", "tracker.parquet"] {
        let a = std::fs::read(dir.path(&format!("a/{name}"))).unwrap();
        let b = std::fs::read(dir.path(&format!("b/{name}"))).unwrap();
        assert!(a == b, "{name} differs between runs");
    }
}

#[test]
fn json_summary_is_one_line() {
    let dir = TestDir::new();
    let mut args = demo_args(&dir.arg("out"));
    args.push("--json".to_string());
    let r = run_owned(&args);
    assert_exit!(r, 0);
    let text = r.stdout_text();
    assert_eq!(text.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["competition_id"].as_u64(), v["cur_block"].as_u64(), v["top_uid"].as_u64()), (Some(4), Some(5_200_000), Some(5)));
    assert_eq!(v["nonzero_weights"].as_object().unwrap().len(), 3);
}

#[test]
fn shards_concatenate() {
    let dir = TestDir::new();
    let all = read_table::<losses::Losses>(std::path::Path::new(&demo("losses.parquet"))).rows;
    let (low, high): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.uid < 6);
    write_table::<losses::Losses>(&dir.path("shard0.parquet"), low, &[]);
    write_table::<losses::Losses>(&dir.path("shard1.parquet"), high, &[]);
    assert_exit!(run_owned(&demo_args(&dir.arg("one"))), 0);
    let mut args = demo_args(&dir.arg("two"));
    let at = args.iter().position(|a| a == "--losses").unwrap();
    args.splice(at + 1..at + 2, [dir.arg("shard0.parquet"), dir.arg("shard1.parquet")]);
    assert_exit!(run_owned(&args), 0);
    let one = read_table::<weights::Weights>(&dir.path("one/weights.parquet")).rows;
    let two = read_table::<weights::Weights>(&dir.path("two/weights.parquet")).rows;
    assert_eq!(one, two);
}

/// A profile with one task of weight 1, so a uid's score is exactly its single loss, and
/// the schedule of upstream's simulation.
fn simulation_profile(sn37: bool) -> String {
    let task = r#"tasks = [{ name = "LOSS", method = "text-loss", weight = 1.0, dataset = { loader = "local", name = "x" } }]"#;
    let common = format!("max_params = 1\nmax_bytes = 1\narchitectures = []\neval_block_delay = 0\n{task}\n");
    if sn37 {
        format!(
            "name = \"sim37\"\nnetuid = 37\n[subnet]\nalpha = 0.9\nweight_threshold = 0.18\nsample_min = 3\nweights_version_key = 1\nsync_cadence = 360\n\
             [[schedule]]\nblock = 0\ncompetitions = [{{ competition = \"C4\", reward = 1.0 }}]\n\
             [competitions.C4]\nid = 4\nepsilon = {{ kind = \"linear-decay\", start = 0.05, end = 0.01, decay_blocks = 21600 }}\nweighting = {{ kind = \"winner-takes-all\" }}\n{common}"
        )
    } else {
        let comp = |key: &str, id: u16| {
            format!("[competitions.{key}]\nid = {id}\nepsilon = {{ kind = \"linear-decay\", start = 0.005, end = 0.0001, decay_blocks = 14400 }}\nweighting = {{ kind = \"softmax\", temperature = 0.01 }}\n{common}")
        };
        format!(
            "name = \"sim9\"\nnetuid = 9\n[subnet]\nalpha = 0.5\nsample_min = 5\nkeep_fill_by_score = true\nweights_version_key = 1\nsync_cadence = 150\n\
             [[schedule]]\nblock = 0\ncompetitions = [{{ competition = \"C6\", reward = 0.55 }}, {{ competition = \"C2\", reward = 0.15 }}, {{ competition = \"C4\", reward = 0.3 }}]\n\
             {}{}{}",
            comp("C6", 6), comp("C2", 2), comp("C4", 4)
        )
    }
}

fn metagraph_row(uid: u16, block: Option<u64>) -> metagraph::Row {
    metagraph::Row {
        commitment: block.map(|_| "ns:name:rev:hash:4".into()),
        commit_block: block,
        competition_id: block.map(|_| 4),
        ..metagraph::Row::new(9, uid, format!("hotkey-{uid}"), format!("coldkey-{uid}"))
    }
}

/// Runs upstream's step simulation `case` through the CLI, one process per step, carrying the
/// tracker file, and compares tracker and subnet weights bit for bit.
fn simulate_through_cli(case: &serde_json::Value, sn37: bool, seed: Option<Vec<f32>>) {
    let dir = TestDir::new();
    std::fs::write(dir.path("profile.toml"), simulation_profile(sn37)).unwrap();
    let n = case["num_neurons"].as_u64().unwrap() as u16;
    let mut tracker_arg: Option<String> = None;
    if let Some(weights) = seed {
        let rows = weights
            .iter()
            .enumerate()
            .map(|(uid, &w)| tracker::Row { competition_id: 4, uid: uid as u16, weight: w, keep: false, hotkey: None, history: vec![] })
            .collect();
        write_table::<tracker::Tracker>(&dir.path("seed.parquet"), rows, &[]);
        tracker_arg = Some(dir.arg("seed.parquet"));
    }
    for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
        let blocks: BTreeMap<u16, f64> =
            step["uid_to_block"].as_object().unwrap().iter().map(|(k, v)| (k.parse().unwrap(), num(v))).collect();
        let rows = (0..n).map(|uid| metagraph_row(uid, blocks.get(&uid).map(|&b| b as u64))).collect();
        write_table::<metagraph::Metagraph>(&dir.path("metagraph.parquet"), rows, &[]);
        let losses: Vec<losses::Row> = step["uid_to_score"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(uid, score)| {
                let (uid, loss) = (uid.parse::<u16>().unwrap(), num(score));
                let status = if loss.is_finite() { losses::Status::Ok } else { losses::Status::Failed };
                losses::Row {
                    uid,
                    hotkey: format!("hotkey-{uid}"),
                    competition_id: 4,
                    task: "LOSS".into(),
                    batch_index: 0,
                    loss,
                    n_tokens: 1,
                    status,
                    reason: None,
                    evaluated_as: None,
                }
            })
            .collect();
        write_table::<losses::Losses>(&dir.path("losses.parquet"), losses, &[]);
        let out = dir.arg(&format!("step{i}"));
        let cur = (num(&step["current_block"]) as u64).to_string();
        let mut args = vec!["compute-wins", "--competitions", &*dir.arg("profile.toml").leak(), "--competition-id", "4"];
        let (m, l) = (dir.arg("metagraph.parquet"), dir.arg("losses.parquet"));
        args.extend(["--metagraph", &m, "--losses", &l, "--cur-block", &cur, "--out-dir", &out]);
        if let Some(t) = &tracker_arg {
            args.extend(["--tracker", t]);
        }
        let r = run(&args);
        assert_exit!(r, 0);
        let tracker = read_table::<tracker::Tracker>(&dir.path(&format!("step{i}/tracker.parquet"))).rows;
        let comp4: Vec<u32> = tracker.iter().filter(|t| t.competition_id == 4).map(|t| t.weight.to_bits()).collect();
        assert_eq!(comp4, f32_bits(&step["tracker_competition_weights"]), "step {i} tracker");
        let weights = read_table::<weights::Weights>(&dir.path(&format!("step{i}/weights.parquet"))).rows;
        let subnet: Vec<u32> = weights.iter().map(|w| w.weight.to_bits()).collect();
        assert_eq!(subnet, f32_bits(&step["subnet_weights"]), "step {i} subnet weights");
        let wins = read_table::<wins::Wins>(&dir.path(&format!("step{i}/wins.parquet"))).rows;
        let mut expected_keep: Vec<u64> = step["models_to_keep"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap()).collect();
        expected_keep.sort_unstable();
        let keep: Vec<u64> = wins.iter().filter(|w| w.keep).map(|w| u64::from(w.uid)).collect();
        assert_eq!(keep, expected_keep, "step {i} keep set");
        let top: Vec<u64> = wins.iter().filter(|w| w.top).map(|w| u64::from(w.uid)).collect();
        assert_eq!(top, [step["top_uid"].as_u64().unwrap()], "step {i} top uid");
        tracker_arg = Some(dir.arg(&format!("step{i}/tracker.parquet")));
    }
}

#[test]
fn sn9_step_simulation_through_parquet() {
    simulate_through_cli(&vectors("step_simulations")["cases"][0], false, None);
}

#[test]
fn sn37_step_simulation_through_parquet() {
    let mut seed = vec![0.0f32; 8];
    seed[1] = 1.0;
    simulate_through_cli(&vectors("step_simulations")["cases"][1], true, Some(seed));
}

/// Writes a copy of the demo losses with `edit` applied, returns its path.
fn edited_losses(dir: &TestDir, edit: impl FnOnce(&mut Vec<losses::Row>)) -> String {
    let mut rows = read_table::<losses::Losses>(std::path::Path::new(&demo("losses.parquet"))).rows;
    edit(&mut rows);
    write_table::<losses::Losses>(&dir.path("edited.parquet"), rows, &[]);
    dir.arg("edited.parquet")
}

fn with_losses(out: &str, losses: &str) -> Vec<String> {
    let mut args = demo_args(out);
    let at = args.iter().position(|a| a == "--losses").unwrap();
    args[at + 1] = losses.to_string();
    args
}

fn assert_refused(dir: &TestDir, args: &[String], culprit: &str) {
    let r = run_owned(args);
    assert_bad_input(&r, culprit);
    assert!(files_in(&dir.path("out")).is_empty(), "nothing written");
}

#[test]
fn corrupt_and_truncated_parquet_are_refused() {
    let dir = TestDir::new();
    std::fs::write(dir.path("garbage.parquet"), b"PAR1 this is not parquet at all PAR1").unwrap();
    assert_refused(&dir, &with_losses(&dir.arg("out"), &dir.arg("garbage.parquet")), "garbage.parquet");
    let bytes = std::fs::read(demo("losses.parquet")).unwrap();
    std::fs::write(dir.path("truncated.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&dir, &with_losses(&dir.arg("out"), &dir.arg("truncated.parquet")), "truncated.parquet");
    assert_refused(&dir, &with_losses(&dir.arg("out"), &dir.arg("missing.parquet")), "missing.parquet");
}

#[test]
fn a_losses_file_given_as_metagraph_is_refused() {
    let dir = TestDir::new();
    let mut args = demo_args(&dir.arg("out"));
    let at = args.iter().position(|a| a == "--metagraph").unwrap();
    args[at + 1] = demo("losses.parquet");
    assert_refused(&dir, &args, "is a losses table, expected a metagraph table");
}

#[test]
fn a_schema_version_from_the_future_is_refused() {
    let dir = TestDir::new();
    let batch = read_batch(std::path::Path::new(&demo("losses.parquet")));
    write_foreign(&dir.path("future.parquet"), &batch, &[("valkit.table", "losses"), ("valkit.schema_version", "99")]);
    assert_refused(&dir, &with_losses(&dir.arg("out"), &dir.arg("future.parquet")), "schema version 99");
}

#[test]
fn nan_and_negative_losses_are_refused() {
    let dir = TestDir::new();
    let nan = edited_losses(&dir, |rows| rows[3].loss = f64::NAN);
    assert_refused(&dir, &with_losses(&dir.arg("out"), &nan), "invalid loss NaN");
    let negative = edited_losses(&dir, |rows| rows[5].loss = -0.5);
    assert_refused(&dir, &with_losses(&dir.arg("out"), &negative), "invalid loss -0.5");
}

#[test]
fn a_uid_missing_from_the_metagraph_is_refused() {
    let dir = TestDir::new();
    let path = edited_losses(&dir, |rows| {
        let mut extra = rows[0].clone();
        extra.uid = 400;
        rows.push(extra);
    });
    assert_refused(&dir, &with_losses(&dir.arg("out"), &path), "uid 400 has losses but is not in the metagraph");
}

#[test]
fn duplicate_rows_are_refused() {
    let dir = TestDir::new();
    let args = {
        let mut a = demo_args(&dir.arg("out"));
        let at = a.iter().position(|x| x == "--losses").unwrap();
        a.insert(at + 2, demo("losses.parquet"));
        a
    };
    assert_refused(&dir, &args, "duplicate loss row for uid 1 task FINEWEB batch 0");
}

#[test]
fn unknown_competition_and_bad_profile_are_refused() {
    let dir = TestDir::new();
    let mut args = demo_args(&dir.arg("out"));
    let at = args.iter().position(|a| a == "--competition-id").unwrap();
    args[at + 1] = "99".into();
    assert_refused(&dir, &args, "competition 99 is not defined in profile sn9");
    args[at + 1] = "3".into();
    assert_refused(&dir, &args, "competition 3 is not defined");
    std::fs::write(dir.path("bad.toml"), valkit::competition::Profile::builtin_text("sn9").unwrap().replace("alpha = 0.5", "alpha = 1.5"))
        .unwrap();
    let mut args = demo_args(&dir.arg("out"));
    let at = args.iter().position(|a| a == "--profile").unwrap();
    args[at] = "--competitions".into();
    args[at + 1] = dir.arg("bad.toml");
    assert_refused(&dir, &args, "subnet.alpha: 1.5 is not in [0, 1]");
}

#[test]
fn an_unknown_task_is_refused() {
    let dir = TestDir::new();
    let path = edited_losses(&dir, |rows| rows[0].task = "MY_TASK".into());
    assert_refused(&dir, &with_losses(&dir.arg("out"), &path), "task \"MY_TASK\" is not an eval task of competition 4");
}

#[test]
fn losses_of_another_competition_are_nothing_to_do() {
    let dir = TestDir::new();
    let path = edited_losses(&dir, |rows| rows.iter_mut().for_each(|r| r.competition_id = 2));
    let r = run_owned(&with_losses(&dir.arg("out"), &path));
    assert_exit!(r, 3);
    assert!(files_in(&dir.path("out")).is_empty());
}

#[test]
fn overrides_change_the_outcome() {
    let dir = TestDir::new();
    // With a 1% starting epsilon decaying over a week, the leader's head start outweighs the
    // newcomer's 1% advantage.
    let mut args = demo_args(&dir.arg("out"));
    args.extend(["--epsilon-start", "0.02", "--epsilon-decay-blocks", "50400"].map(String::from));
    assert_exit!(run_owned(&args), 0);
    let rows = read_table::<wins::Wins>(&dir.path("out/wins.parquet")).rows;
    assert_eq!(rows.iter().find(|r| r.top).unwrap().uid, 1);
    let bad = [demo_args(&dir.arg("out2")), vec!["--alpha".into(), "2".into()]].concat();
    assert_bad_input(&run_owned(&bad), "--alpha must be in [0, 1]");
}

#[test]
fn first_step_without_a_tracker() {
    let dir = TestDir::new();
    let mut args = demo_args(&dir.arg("out"));
    let at = args.iter().position(|a| a == "--tracker").unwrap();
    args.drain(at..at + 2);
    assert_exit!(run_owned(&args), 0);
    let weights = read_table::<weights::Weights>(&dir.path("out/weights.parquet")).rows;
    let sent: Vec<u16> = weights.iter().filter(|w| w.weight_u16 > 0).map(|w| w.uid).collect();
    assert_eq!(sent, [5], "alone in the tracker, the step winner takes everything");
}
