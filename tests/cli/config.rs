//! `heph-selfupdate config`, configuration errors and `--help`.

use crate::support::env::TestEnv;

#[test]
fn shows_each_value_with_its_source() {
    let mut env = TestEnv::new();
    let file = env.config_file("channel = \"prerelease\"\nrepo = \"o/from-file\"\n");
    env.var("HEPH_SELFUPDATE_REPO", "o/from-env");
    env.var("HEPH_SELFUPDATE_TOKEN", "s3cr3t-token");
    let run = env.run(&["config", "--json", "--set", "binary=hephd2"]);
    run.expect(0);
    let j = run.json();
    assert_eq!(j["file"], file.display().to_string());
    assert_eq!(j["values"]["repo"]["value"], "o/from-env");
    assert_eq!(j["values"]["repo"]["source"], "env HEPH_SELFUPDATE_REPO");
    assert_eq!(
        j["values"]["channel"]["source"],
        format!("file {}", file.display())
    );
    assert_eq!(j["values"]["binary"]["source"], "flag --set");
    assert_eq!(j["values"]["forge"]["source"], "default");
    assert_eq!(j["values"]["token"]["value"], "<redacted>");
    assert!(!run.all().contains("s3cr3t-token"));
    let text = env.run(&["config"]);
    assert!(
        text.stdout.contains("repo") && text.stdout.contains("# env HEPH_SELFUPDATE_REPO"),
        "{}",
        text.stdout
    );
}

#[test]
fn config_errors_exit_2_and_name_the_key_and_file() {
    let env = TestEnv::new();
    let file = env.config_file("chanel = \"stable\"\n");
    let run = env.run(&["check"]);
    run.expect(2);
    assert!(
        run.stderr.contains("`chanel`") && run.stderr.contains(&file.display().to_string()),
        "{}",
        run.stderr
    );
    env.config_file("packages = 3\n");
    let run = env.run(&["check"]);
    run.expect(2);
    assert!(
        run.stderr.contains("`packages`") && run.stderr.contains("list"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_config_flag_and_variable_pick_the_file() {
    let mut env = TestEnv::new();
    let other = env.dir.path().join("other.toml");
    std::fs::write(&other, "repo = \"o/other\"\n").unwrap();
    let run = env.run(&["config", "--json", "--config", other.to_str().unwrap()]);
    assert_eq!(run.json()["values"]["repo"]["value"], "o/other");
    env.var("HEPH_SELFUPDATE_CONFIG", other.to_str().unwrap());
    assert_eq!(
        env.run(&["config", "--json"]).json()["values"]["repo"]["value"],
        "o/other"
    );
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    env.run(&["frobnicate"]).expect(2);
    env.run(&["check", "--nope"]).expect(2);
}

/// Every subcommand a user can run.
const COMMANDS: [&str; 6] = [
    "check",
    "check-and-apply",
    "status",
    "rollback",
    "config",
    "doctor",
];

#[test]
fn help_texts_are_reviewed_snapshots() {
    let env = TestEnv::new();
    for cmd in std::iter::once("").chain(COMMANDS) {
        let args: Vec<&str> = [cmd, "--help"]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let run = env.run(&args);
        run.expect(0);
        let name = if cmd.is_empty() {
            "help.txt".to_owned()
        } else {
            format!("help-{cmd}.txt")
        };
        crate::support::assert_snapshot(&name, &run.stdout);
    }
}

#[test]
fn every_command_has_help_with_examples() {
    let env = TestEnv::new();
    for cmd in COMMANDS {
        let run = env.run(&[cmd, "--help"]);
        run.expect(0);
        assert!(
            run.stdout.contains("Example"),
            "{cmd} --help has no example:\n{}",
            run.stdout
        );
    }
    assert!(env.run(&["--help"]).stdout.contains("Exit codes"));
}
