//! `heph-selfupdate config`, configuration errors and `--help`.

use crate::support::env::TestEnv;

/// `config --json`'s values, each key's `value` alone.
fn values(run: &crate::support::env::Run) -> serde_json::Map<String, serde_json::Value> {
    run.json()["values"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["value"].clone()))
        .collect()
}

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

#[test]
fn a_string_where_a_number_belongs_in_the_file_exits_2_naming_key_file_and_type() {
    let env = TestEnv::new();
    let file = env.config_file("repo = \"o/r\"\nkeep_versions = \"3\"\n");
    let run = env.run(&["check"]);
    run.expect(2);
    assert!(
        run.stderr.contains(&format!(
            "`keep_versions` (file {}, line 2) must be a whole number of at least 1; found string \"3\"",
            file.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn toml_errors_say_line_and_column() {
    let env = TestEnv::new();
    let file = env.config_file("repo = \"o/r\"\n\nchannel = stable\n");
    let run = env.run(&["config"]);
    run.expect(2);
    assert!(
        run.stderr.contains(&format!(
            "the config file {} is not valid TOML at line 3, column 11: ",
            file.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn config_prints_toml_that_loads_back_to_the_same_values() {
    let mut env = TestEnv::new();
    env.config_file(
        "repo = \"o/from-file\"\npackages = [\"heph\", \"hephd\", \"heph-tui\"]\nhealth_command = [\"heph\", \"status\"]\nrollout_wave = 0.25\n",
    );
    env.var("HEPH_SELFUPDATE_MIN_RELEASE_AGE", "90");
    env.var("HEPH_SELFUPDATE_TOKEN", "s3cr3t-token");
    let sets = [
        "--set",
        "restart_window=Mon..Fri 02:00-05:00; Sat 10:00-12:00",
        "--set",
        "notify_command=notify-send \"heph\"",
    ];
    let shown = env.run(&[&["config"][..], &sets].concat());
    shown.expect(0);
    assert!(!shown.all().contains("s3cr3t-token"));
    let parsed: toml::Table = shown
        .stdout
        .parse()
        .unwrap_or_else(|e| panic!("config printed invalid TOML ({e}):\n{}", shown.stdout));
    assert_eq!(parsed["min_release_age"].as_str(), Some("1m 30s"));
    assert!(!parsed.contains_key("token") && !parsed.contains_key("pin"));

    let before = values(&env.run(&[&["config", "--json"][..], &sets].concat()));
    let pasted = env.dir.path().join("pasted.toml");
    std::fs::write(&pasted, &shown.stdout).unwrap();
    env.unset("HEPH_SELFUPDATE_MIN_RELEASE_AGE");
    env.unset("HEPH_SELFUPDATE_TOKEN");
    let again = env.run(&["config", "--json", "--config", pasted.to_str().unwrap()]);
    again.expect(0);
    let mut after = values(&again);
    let mut before = before;
    assert_eq!(before.remove("token").unwrap(), "<redacted>");
    after.remove("token");
    assert_eq!(before, after);
    assert_eq!(
        again.json()["values"]["min_release_age"]["source"],
        format!("file {}", pasted.display())
    );
}

#[test]
fn config_says_where_it_looked_and_shows_unset_keys() {
    let env = TestEnv::new();
    let run = env.run(&["config"]);
    run.expect(0);
    let path = env.home.join(".config/heph-selfupdate/config.toml");
    assert!(
        run.stdout.starts_with(&format!(
            "# config file: {} (not found; defaults and environment only)\n",
            path.display()
        )),
        "{}",
        run.stdout
    );
    for key in [
        "pin",
        "toolchain",
        "token_file",
        "health_command",
        "rollout_wave",
        "host_id",
        "metrics_file",
        "ca_file",
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&format!("# {key} ")) && l.ends_with("= (unset)")),
            "{key}:\n{}",
            run.stdout
        );
    }
    let json = env.run(&["config", "--json"]).json();
    assert_eq!(
        json["searched"],
        serde_json::json!([path.display().to_string()])
    );
    assert_eq!(json["file"], serde_json::Value::Null);
    assert_eq!(json["values"]["pin"]["value"], serde_json::Value::Null);
}

#[test]
fn config_shows_values_in_their_normal_form() {
    let mut env = TestEnv::new();
    env.config_file("min_free_space = 2147483648\nbuild_timeout = \"90min\"\n");
    env.var("HEPH_SELFUPDATE_MIN_RELEASE_AGE", "90");
    let run = env.run(&["config"]);
    run.expect(0);
    for line in [
        "min_release_age = \"1m 30s\"",
        "min_free_space  = \"2 GiB\"",
        "build_timeout   = \"1h 30m\"",
        "cache_max_size  = \"8 GiB\"",
        "keep_versions   = 2 ",
    ] {
        assert!(run.stdout.contains(line), "{line}:\n{}", run.stdout);
    }
}

#[test]
fn the_variables_a_hook_is_given_are_not_configuration() {
    let mut env = TestEnv::new();
    env.var("HEPH_SELFUPDATE_EVENT", "updated")
        .var("HEPH_SELFUPDATE_FROM", "0.1.0")
        .var("HEPH_SELFUPDATE_TO", "0.2.0")
        .var(
            "HEPH_SELFUPDATE_MESSAGE",
            "updated hephd from 0.1.0 to 0.2.0",
        );
    // What a notify_command that calls heph-selfupdate runs.
    let run = env.run(&["status"]);
    run.expect(0);
    assert!(
        !run.stderr.contains("unknown environment variable"),
        "{}",
        run.stderr
    );
}

#[test]
fn plain_http_to_another_host_is_accepted_with_a_warning() {
    let env = TestEnv::new();
    let run = env.run(&["config", "--set", "forge_url=http://forge.example"]);
    run.expect(0);
    assert!(
        run.stderr
            .contains("warning: `forge_url` http://forge.example is plain http")
            && run
                .stderr
                .contains("warning: `git_url` http://forge.example/eblume/hephaestus.git"),
        "{}",
        run.stderr
    );
    let json = env
        .run(&[
            "config",
            "--json",
            "--set",
            "git_url=http://git.example/o/r.git",
        ])
        .json();
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1, "{json}");
    let run = env.run(&["config", "--set", "forge_url=http://127.0.0.1:3000"]);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

#[test]
fn an_ssh_url_whose_host_could_be_an_option_is_refused() {
    let env = TestEnv::new();
    for url in [
        "ssh://-oProxyCommand=touch%20pwned/o/r.git",
        "ssh://git@-oProxyCommand=x/o/r.git",
        "ssh://-l@forge.example/o/r.git",
    ] {
        let run = env.run(&["check", "--set", &format!("git_url={url}")]);
        run.expect(2);
        assert!(run.stderr.contains("starting with `-`"), "{}", run.stderr);
    }
    assert!(!env.dir.path().join("pwned").exists());
}

#[test]
fn new_keys_have_defaults_and_are_checked() {
    let env = TestEnv::new();
    let run = env.run(&["config", "--json"]);
    run.expect(0);
    let v = values(&run);
    assert_eq!(v["restart_timeout"], "3m");
    assert_eq!(v["restart"], "manager");
    assert_eq!(v["rollout_spread"], "0s");
    assert_eq!(v["rollout_wave"], serde_json::Value::Null);
    assert_eq!(v["host_id"], serde_json::Value::Null);
    assert_eq!(v["restart_window"], serde_json::json!([]));
    assert_eq!(v["metrics_file"], serde_json::Value::Null);
    assert_eq!(v["cache_max_size"], "8 GiB");
    assert_eq!(v["ca_file"], serde_json::Value::Null);

    let run = env.run(&[
        "config",
        "--json",
        "--set",
        "restart=respawn",
        "--set",
        "restart_timeout=45",
        "--set",
        "rollout_spread=12h",
        "--set",
        "rollout_wave=0.5",
        "--set",
        "host_id=laptop-7",
        "--set",
        "restart_window=Mon..Fri 02:00-05:00; Sat,Sun 10:00-12:00",
        "--set",
        "metrics_file=~/metrics.prom",
        "--set",
        "cache_max_size=500MiB",
        "--set",
        "ca_file=/etc/ssl/forge.pem",
    ]);
    run.expect(0);
    let v = values(&run);
    assert_eq!(v["restart"], "respawn");
    assert_eq!(v["restart_timeout"], "45s");
    assert_eq!(v["rollout_spread"], "12h");
    assert_eq!(v["rollout_wave"], 0.5);
    assert_eq!(v["host_id"], "laptop-7");
    assert_eq!(
        v["restart_window"],
        serde_json::json!(["Mon..Fri 02:00-05:00", "Sat,Sun 10:00-12:00"])
    );
    assert_eq!(
        v["metrics_file"],
        env.home.join("metrics.prom").display().to_string()
    );
    assert_eq!(v["cache_max_size"], "500 MiB");
    assert_eq!(v["ca_file"], "/etc/ssl/forge.pem");

    for set in [
        "restart_timeout=0",
        "restart=reboot",
        "rollout_wave=1.0",
        "rollout_wave=-1",
        "host_id=tab\there",
        "metrics_file=metrics.prom",
        "ca_file=ca.pem",
        "cache_max_size=big",
        "rollout_spread=soon",
    ] {
        let run = env.run(&["config", "--set", set]);
        run.expect(2);
        let key = set.split('=').next().unwrap();
        assert!(
            run.stderr.contains(&format!("`{key}` (flag --set)")),
            "{set}: {}",
            run.stderr
        );
    }
    let env2 = TestEnv::new();
    env2.config_file("restart_window = 3\n");
    let run = env2.run(&["config"]);
    run.expect(2);
    assert!(
        run.stderr.contains("`restart_window`") && run.stderr.contains("a list of strings"),
        "{}",
        run.stderr
    );
}

#[test]
fn config_output_is_a_reviewed_snapshot() {
    let mut env = TestEnv::new();
    env.config_file(
        "forge = \"github\"\nrepo = \"o/x\"\nbin_dir = \"/opt/heph/bin\"\ndata_dir = \"/srv/heph/data\"\nstate_dir = \"/srv/heph/state\"\ncache_dir = \"/srv/heph/cache\"\npackages = [\"heph\", \"hephd\", \"heph-tui\"]\nmin_release_age = 172800\nhealth_command = [\"heph\", \"status\"]\n",
    );
    env.var("HEPH_SELFUPDATE_CHANNEL", "prerelease");
    env.var("HEPH_SELFUPDATE_TOKEN", "s3cr3t-token");
    // The default, not the stand-ins' (the harness puts them first in `tool_path`).
    env.unset("HEPH_SELFUPDATE_TOOL_PATH");
    let run = env.run(&[
        "config",
        "--set",
        "pin=v1.8.1",
        "--set",
        "restart_window=Mon..Fri 02:00-05:00",
    ]);
    run.expect(0);
    let sandbox = env.dir.path().display().to_string();
    crate::support::assert_snapshot(
        "config.toml.txt",
        &run.stdout.replace(&sandbox, "[SANDBOX]"),
    );
}
