//! Promises of the first-hour and fleet issues that a review found unkept, each now a
//! behaviour: holds named for the best release, restart windows written as one string,
//! `check` naming a staged release, JSON on usage errors, help on every failure, build
//! output printed once, defaults named in forge errors, one value per variable in traces.

use crate::support::forge::FakeRelease;
use crate::support::scenario::sandbox;

/// With `version_req` holding the best stable release and a newer pre-release on the
/// stable channel, `check` names the stable release and `version_req`, not the pre-release.
#[test]
fn the_hold_shown_with_version_req_is_the_one_on_the_best_stable_release() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.forge.set_releases(vec![
        FakeRelease::new("v0.3.0-rc.1"),
        FakeRelease::new("v0.2.0"),
        FakeRelease::new("v0.1.0"),
    ]);
    s.env.var("HEPH_SELFUPDATE_VERSION_REQ", "~0.1");
    let run = s.env.run(&["check", "--json"]);
    run.expect(0);
    let j = run.json();
    assert_eq!(j["reason"], "version_req", "{j}");
    assert!(
        j["message"].as_str().unwrap().starts_with("v0.2.0 is held"),
        "{j}"
    );
}

/// `restart_window` in config.toml may be one string (as the README writes it), several
/// windows separated by `;`, as well as a TOML list.
#[test]
fn a_restart_window_written_as_one_string_in_the_file_is_accepted() {
    let s = sandbox("0.1.0", &["v0.1.0"]);
    s.env
        .config_file("restart_window = \"Mon..Fri 02:00-05:00\"\n");
    let run = s.env.run(&["config", "--json"]);
    run.expect(0);
    // Several windows in one string, as in the environment and `--set`.
    s.env
        .config_file("restart_window = \"Mon..Fri 02:00-05:00; Sat,Sun 10:00-12:00\"\n");
    s.env.run(&["config"]).expect(0);
}

/// A release built and staged outside the restart window: `check` says it is staged and
/// when the window opens.
#[test]
fn check_says_a_release_is_staged_and_when_the_window_opens() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let start = time::OffsetDateTime::now_utc() + time::Duration::hours(3);
    let window = format!("{:02}:00-{:02}:59", start.hour(), start.hour());
    s.env
        .var("TZ", "UTC")
        .var("HEPH_SELFUPDATE_RESTART_WINDOW", &window);
    s.env.run(&["check-and-apply"]).expect(0);
    let run = s.env.run(&["check"]);
    assert!(
        run.stdout
            .contains("staged:    0.2.0 (version root 0.2.0); restarts in the window at"),
        "{}",
        run.stdout
    );
}

/// A usage error of a command given `--json` is one JSON object on stdout too (exit 2).
#[test]
fn a_usage_error_of_a_json_command_is_one_json_object_too() {
    let s = sandbox("0.1.0", &["v0.1.0"]);
    let run = s.env.run(&["check", "--json", "--bogus"]);
    run.expect(2);
    let j = run.json();
    assert_eq!(j["exit_code"], 2, "{j}");
}

/// `rollback --json` with nothing to roll back says what to do next in `help`.
#[test]
fn a_failed_rollback_json_says_what_to_do_next() {
    let s = sandbox("0.1.0", &["v0.1.0"]);
    let run = s.env.run(&["rollback", "--json"]);
    run.expect(1);
    let j = run.json();
    assert!(j["help"].as_array().is_some_and(|h| !h.is_empty()), "{j}");
}

/// A failed build's output is streamed once; the error names the first error, not the
/// output again.
#[test]
fn a_failed_build_prints_cargos_output_once() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "fail");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    let times = run
        .stderr
        .matches("error: could not compile `hephd`")
        .count();
    assert_eq!(times, 1, "{}", run.stderr);
}

/// A forge error about a repository nobody configured says it is the default and which
/// key changes it.
#[test]
fn a_forge_error_about_the_default_repository_says_it_is_the_default() {
    let s = sandbox("0.1.0", &["v0.1.0"]);
    s.forge.state.lock().unwrap().repo = "someone/else".to_owned();
    let run = s.env.run(&["check"]);
    run.expect(1);
    assert!(
        run.stderr.contains("eblume/hephaestus")
            && run
                .stderr
                .contains("(the default; set `repo` to change it)"),
        "{}",
        run.stderr
    );
}

/// `-vv`'s trace of a child's environment names each variable once.
#[test]
fn the_trace_of_a_childs_environment_names_each_variable_once() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let run = s.env.run(&["check-and-apply", "-vv"]);
    run.expect(0);
    for line in run
        .stderr
        .lines()
        .filter(|l| l.contains("trace:   environment:"))
    {
        assert_eq!(line.matches("GIT_TERMINAL_PROMPT=").count(), 1, "{line}");
    }
}
