use valkit::competition::Profile;

use crate::util::*;

#[test]
fn show_prints_a_profile_that_loads_back() {
    for name in ["sn9", "sn37"] {
        let r = run(&["profile", "show", name]);
        assert_exit!(r, 0);
        let dir = TestDir::new();
        std::fs::write(dir.path("copy.toml"), &r.stdout).unwrap();
        let check = run(&["profile", "check", &dir.arg("copy.toml")]);
        assert_exit!(check, 0);
        let copy = Profile::from_file(&dir.path("copy.toml")).unwrap();
        let builtin = Profile::builtin(name).unwrap();
        assert_eq!(copy.subnet, builtin.subnet);
        assert_eq!(copy.schedule.len(), builtin.schedule.len());
    }
    assert_bad_input(&run(&["profile", "show", "sn99"]), "unknown profile \"sn99\"");
}

#[test]
fn check_names_the_field_in_error() {
    let dir = TestDir::new();
    let text = Profile::builtin_text("sn37").unwrap().replace(
        "weight = 0.5, pages = 1, dataset = { loader = \"codeforces-cots\"",
        "weight = 0.4, pages = 1, dataset = { loader = \"codeforces-cots\"",
    );
    std::fs::write(dir.path("p.toml"), text).unwrap();
    assert_bad_input(&run(&["profile", "check", &dir.arg("p.toml")]), "competitions.DISTILLED_REASONING_3B.tasks: task weights sum to 0.9");
}

/// A zero count used to pass `profile check` and panic later in sample-batches.
#[test]
fn check_refuses_a_zero_count() {
    let dir = TestDir::new();
    let text = Profile::builtin_text("sn37").unwrap().replacen("rows_per_page = 150", "rows_per_page = 0", 1);
    std::fs::write(dir.path("p.toml"), text).unwrap();
    assert_bad_input(&run(&["profile", "check", &dir.arg("p.toml")]), "dataset.rows_per_page: must be at least 1");
}
