//! Audit of issues 11, 12 and 13 on main (audit_b): each test here reproduces a gap
//! between what an issue asks (or the README claims) and what the code does. They are
//! ignored so the suite stays green; each fails on the code it was written against
//! (`cargo test --test cli audit_b -- --ignored`).

use crate::support::forge::FakeRelease;
use crate::support::scenario::sandbox;

/// Issue 11 item 4: "The reason shown (and `reason`/`wait_until` in JSON) is the one that
/// holds the best release this channel could get" — "the same with `version_req`".
/// With `version_req = "~0.1"`, a stable v0.2.0 and a newer v0.3.0-rc.1 on the stable
/// channel, `check` says "v0.3.0-rc.1 is held: pre-release" (`reason: prerelease`), hiding
/// that v0.2.0, the best release the stable channel could get, is held by `version_req`.
/// Only `min_release_age` was fixed (the hold is chosen in `src/policy.rs` /
/// `src/commands/check.rs`).
#[test]
#[ignore = "audit: reproduces a gap"]
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

/// Issue 12 §3 gives `restart_window` as a string (`"Mon..Fri 02:00-05:00"`), and the
/// README's table says "`"Mon..Fri 02:00-05:00"`, several separated by `;` (or a TOML
/// list)". In the config file a plain string is refused (exit 2: "must be a list of
/// strings; found string"): only a TOML list is accepted there (`src/config/raw.rs`,
/// `Windows`). A person who copies the README's value into config.toml gets a
/// configuration error.
#[test]
#[ignore = "audit: reproduces a gap"]
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

/// Issue 12 §3: "`check`/`status` show "staged 0.4.0; restarts in the window at …"".
/// `status` does; `check` with a staged release says only "update available: 0.1.0 ->
/// 0.2.0" (exit 100) and its JSON has no word of the staged root or the window
/// (`src/commands/check.rs` does not read `state.staged`).
#[test]
#[ignore = "audit: reproduces a gap"]
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
        run.stdout.contains("staged 0.2.0") && run.stdout.contains("window at"),
        "{}",
        run.stdout
    );
}

/// Issue 11 item 2: "On every failure a `--json` command prints one JSON object on stdout
/// with `error`, `exit_code`, `help`". A usage error of a `--json` command (an unknown
/// option, exit 2) prints clap's text on stderr and nothing on stdout, so
/// `check --json --bogus | jq` still sees empty input (clap errors are printed before
/// the JSON error path in `src/cli.rs` / `src/lib.rs` is reached).
#[test]
#[ignore = "audit: reproduces a gap"]
fn a_usage_error_of_a_json_command_is_one_json_object_too() {
    let s = sandbox("0.1.0", &["v0.1.0"]);
    let run = s.env.run(&["check", "--json", "--bogus"]);
    run.expect(2);
    let j = run.json();
    assert_eq!(j["exit_code"], 2, "{j}");
}

/// Issue 11 item 2 asks for `help` with every `--json` failure, and the common standard
/// for every failure a `help:` line. `rollback --json` with nothing to roll back gives
/// `"help": []` (and no `help:` line on stderr), though the next step is known: run
/// `check-and-apply` first (`src/commands/rollback.rs`).
#[test]
#[ignore = "audit: reproduces a gap"]
fn a_failed_rollback_json_says_what_to_do_next() {
    let s = sandbox("0.1.0", &["v0.1.0"]);
    let run = s.env.run(&["rollback", "--json"]);
    run.expect(1);
    let j = run.json();
    assert!(j["help"].as_array().is_some_and(|h| !h.is_empty()), "{j}");
}

/// Issue 11 item 9: "A failed build prints cargo's output twice (streamed, then again in
/// the error)". It still does: each cargo line streamed as `  | …` comes again in the
/// error's tail (`    | …`), and the first error a third time in the headline
/// (`src/commands/apply.rs` renders the build failure with the stderr tail that
/// `src/process.rs` already streamed).
#[test]
#[ignore = "audit: reproduces a gap"]
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

/// Issue 11 item 16: "Errors that fall back to the default forge say it is a default and
/// which key changes it", and the README: "every error that names the forge or
/// repository says when it is such a default and which key changes it". With `repo` left
/// at its default and a forge that has no such repository (or cannot be reached), the
/// error names `eblume/hephaestus` and never says it is the default or that `repo`
/// changes it (`Config::default_note` is used only for config errors and `pin`).
#[test]
#[ignore = "audit: reproduces a gap"]
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

/// Issue 11 item 9: "the dry run lists `GIT_TERMINAL_PROMPT=0` twice". The dry run no
/// longer does, but `-vv`'s trace of the environment given to `git ls-remote` still
/// lists it twice ("GIT_TERMINAL_PROMPT=0 CARGO_NET_GIT_FETCH_WITH_CLI=true
/// GIT_TERMINAL_PROMPT=0"): the command carries the variable twice and only the dry-run
/// rendering removes the repeat.
#[test]
#[ignore = "audit: reproduces a gap"]
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
