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

#[test]
fn every_subcommand_has_help_with_an_example() {
    let top = run(&["--help"]);
    assert_exit!(top, 0);
    for sub in ["compute-wins", "inspect", "profile"] {
        assert!(top.stdout_text().contains(sub), "--help lists {sub}");
        let help = run(&[sub, "--help"]);
        assert_exit!(help, 0);
        assert!(help.stdout_text().contains("Example"), "{sub} --help has an example");
    }
    assert_exit!(run(&["compute-wins"]), 2);
}

#[test]
fn a_mistyped_rust_log_fails_loudly() {
    let out = valkit().env("RUST_LOG", "valkit=loud").args(["profile", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid RUST_LOG"));
}
