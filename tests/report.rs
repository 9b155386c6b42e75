//! `valkit report` on the demo SN9 step: what the page says, that it is self-contained and
//! byte-identical on a re-run, and that a real browser (headless Chromium) renders it with every
//! chart. Set VALKIT_SKIP_BROWSER_TESTS=1 on a machine without Chromium (CI installs it).

use std::path::Path;
use std::process::Command;

use crate::compute_wins::demo_args;
use crate::util::*;

/// The demo step of `make demo`'s second part, with its losses beside it as run-loop leaves them.
fn demo_step(dir: &TestDir) -> String {
    let step = dir.arg("step");
    assert_exit!(run_owned(&demo_args(&step)), 0);
    std::fs::copy(demo("losses.parquet"), dir.path("step/losses.parquet")).unwrap();
    std::fs::copy(demo("models.parquet"), dir.path("step/models.parquet")).unwrap();
    step
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn report_of_the_demo_step_says_who_won_and_why() {
    let dir = TestDir::new();
    let step = demo_step(&dir);
    let r = run(&["report", &step, "--json"]);
    assert_exit!(r, 0);
    let summary: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(summary["out"], format!("{step}/report.html"));
    assert_eq!(summary["top_uid"], 5);
    let html = std::fs::read_to_string(dir.path("step/report.html")).unwrap();
    // Scores, win rates, two per task (SN9 competition 4 has one text task in the demo losses),
    // the tracker and the subnet weights; no history with one step.
    let tasks = read_table::<valkit::tables::losses::Losses>(Path::new(&demo("losses.parquet")))
        .rows
        .iter()
        .map(|r| r.task.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(summary["charts"], 4 + 2 * tasks);
    assert_eq!(count(&html, "<figure class=\"chart\""), 4 + 2 * tasks);
    assert!(html.contains("uid 5 won competition 4"), "the headline names the winner");
    assert!(html.contains("competition 2 tracker"), "uid 13's weight is traced to competition 2's tracker");
    assert!(html.contains("load-failed"), "the failed model and its reason are listed");
    // Self-contained: no scripts, no stylesheets or images fetched from anywhere.
    assert_eq!(count(&html, "<script"), 0);
    for attribute in ["src=", "href=\"http", "url("] {
        assert_eq!(count(&html, attribute), 0, "{attribute}");
    }
    // The same tables give the same page.
    assert_exit!(run(&["report", &step, "-o", &dir.arg("again.html")]), 0);
    assert_eq!(std::fs::read(dir.path("again.html")).unwrap(), html.as_bytes());
}

#[test]
fn report_over_several_steps_draws_the_weights_over_time() {
    let dir = TestDir::new();
    let first = demo_step(&dir);
    // A second step, scored 100 blocks later from the first step's tracker.
    let mut args = demo_args(&dir.arg("step2"));
    let tracker_at = args.iter().position(|a| a == "--tracker").unwrap() + 1;
    args[tracker_at] = format!("{first}/tracker.parquet");
    args.extend(["--cur-block".to_string(), "5200100".to_string()]);
    assert_exit!(run_owned(&args), 0);
    // Given in any order, and with a `latest` link to a step already listed.
    std::os::unix::fs::symlink(dir.path("step2"), dir.path("latest")).unwrap();
    let r = run(&["report", &dir.arg("latest"), &dir.arg("step2"), &first, "-o", &dir.arg("r.html"), "--json"]);
    assert_exit!(r, 0);
    let summary: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(summary["steps"], 2);
    let html = std::fs::read_to_string(dir.path("r.html")).unwrap();
    assert!(html.contains("id=\"chart-weights-over-time\""));
    assert!(html.contains("block 5200100"), "the later step is the one reported");
    assert!(html.contains("before (step)"), "the tracker before comes from the earlier step");
}

/// The demo validator's hotkey (uid 0 of the demo SN9 metagraph).
const DEMO_VALIDATOR: &str = "56c1c771eaf998c6cd90b434313581f9180563b2fee04a9a";

#[test]
fn report_shows_the_predicted_epoch_of_the_steps_weights() {
    let dir = TestDir::new();
    let step = demo_step(&dir);
    let at = |name: &str| format!("{step}/{name}");
    let predicted = run(&[
        "consensus",
        "--metagraph",
        &demo("metagraph.parquet"),
        "--weights",
        &at("weights.parquet"),
        "--hotkey",
        DEMO_VALIDATOR,
        "-o",
        &at("consensus.parquet"),
        "--clips",
        &at("clips.parquet"),
    ]);
    assert_exit!(predicted, 0);
    assert!(predicted.stderr.contains("with your weights, uid 0: vTrust 1.000"), "{}", predicted.stderr);
    let r = run(&["report", &step, "--json"]);
    assert_exit!(r, 0);
    let html = std::fs::read_to_string(dir.path("step/report.html")).unwrap();
    assert!(html.contains("id=\"chart-consensus\""), "the chart of uid 0's weights against consensus");
    assert!(html.contains("With these weights uid 0 keeps a vTrust of 1.000"), "the section says what vTrust they keep");
    let clips = read_table::<valkit::tables::clips::Clips>(&dir.path("step/clips.parquet")).rows;
    let weights = read_table::<valkit::tables::weights::Weights>(&dir.path("step/weights.parquet")).rows;
    assert_eq!(clips.len(), weights.iter().filter(|w| w.weight_u16 > 0).count(), "one clip row per weight uid 0 sets");
}

#[test]
fn report_refuses_what_it_cannot_read() {
    let dir = TestDir::new();
    assert_bad_input(&run(&["report"]), "nothing to report");
    std::fs::create_dir(dir.path("empty")).unwrap();
    assert_bad_input(&run(&["report", &dir.arg("empty")]), "nothing to report");
    assert_bad_input(&run(&["report", &dir.arg("missing")]), "missing");
    std::fs::write(dir.path("wins.parquet"), b"not parquet").unwrap();
    assert_bad_input(&run(&["report", "--wins", &dir.arg("wins.parquet"), "--weights", &demo("tracker.parquet")]), "wins.parquet");
}

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()))
        .map(str::to_string)
}

/// Headless Chromium with a throwaway profile; root needs --no-sandbox.
fn headless(browser: &str, profile: &Path) -> Command {
    let mut cmd = Command::new(browser);
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--mute-audio"])
        .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        if valkit::env::var("VALKIT_SKIP_BROWSER_TESTS").as_deref() == Some("1") {
            #[allow(clippy::print_stderr)] // the one line saying a test did not run
            {
                eprintln!("VALKIT_SKIP_BROWSER_TESTS=1: browser test skipped");
            }
            return;
        }
        panic!("Chromium is needed to render the report (apt-get install chromium), or set VALKIT_SKIP_BROWSER_TESTS=1");
    };
    let dir = TestDir::new();
    let step = demo_step(&dir);
    assert_exit!(run(&["report", &step]), 0);
    let page = format!("file://{step}/report.html");

    // The DOM Chromium built: every chart is an <svg> inside its figure.
    let dom = headless(&browser, &dir.path("profile")).args(["--dump-dom", &page]).output().unwrap();
    assert!(dom.status.success(), "chromium --dump-dom: {}", String::from_utf8_lossy(&dom.stderr));
    let dom = String::from_utf8_lossy(&dom.stdout);
    let figures: Vec<&str> = dom.split("<figure class=\"chart\"").skip(1).collect();
    assert!(figures.len() >= 6, "{} charts in the DOM", figures.len());
    for figure in &figures {
        let body = &figure[..figure.find("</figure>").expect("closed figure")];
        assert!(body.contains("<svg") && body.contains("<rect"), "an svg chart with shapes");
    }

    // The pixels: a screenshot that is not blank and has the charts' colours in it.
    let png = dir.path("report.png");
    let shot = headless(&browser, &dir.path("profile"))
        .args(["--window-size=1000,3000", &format!("--screenshot={}", png.display()), &page])
        .output()
        .unwrap();
    assert!(shot.status.success(), "chromium --screenshot: {}", String::from_utf8_lossy(&shot.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let inked = pixels.iter().filter(|p| p[..3].iter().any(|&c| c < 200)).count();
    let fraction = inked as f64 / pixels.len() as f64;
    assert!(fraction > 0.02, "the page is nearly blank: {:.3} of pixels inked", fraction);
    // The bars' blue (31,119,180) is drawn somewhere: the charts rendered, not just text.
    assert!(pixels.iter().any(|p| p[0] == 31 && p[1] == 119 && p[2] == 180), "chart colours on screen");
}
