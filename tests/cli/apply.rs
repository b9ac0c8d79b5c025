//! `check-and-apply`, `status` and `rollback` with recording stand-ins for cargo and the
//! service manager (which really starts and stops a stand-in daemon), a real git
//! repository for tag resolution, and the loopback forge.

use std::path::Path;

use crate::support::env::{TestEnv, pid_alive};
use crate::support::scenario::{calls_of, link_of, sandbox, still_plain, version_of};

#[test]
fn updates_by_building_switching_restarting_and_proving_health() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let env = &s.env;
    let old_pid = env.daemon_pid().unwrap();
    let run = env.run(&["check-and-apply"]);
    run.expect(0);
    let data = env.data_dir();
    let commit = s.repo.commit_of("v0.2.0");
    let cargo = calls_of(env, "cargo");
    assert_eq!(
        cargo,
        [format!(
            "cargo install --locked --force --git={} --rev={commit} --root={} --target-dir={} --profile=release heph hephd",
            s.repo.url(),
            data.join("versions/.partial-0.2.0").display(),
            data.join("tmp/target-0.2.0").display()
        )]
    );
    let systemctl = calls_of(env, "systemctl");
    assert!(
        systemctl.contains(&"systemctl --user restart hephd.service".to_owned()),
        "{systemctl:?}"
    );
    assert!(
        systemctl[0].starts_with("systemctl --user show --property="),
        "observed before the restart"
    );
    assert!(
        systemctl
            .last()
            .unwrap()
            .starts_with("systemctl --user show"),
        "observed after"
    );

    // bin_dir links into `current`, which names the new root.
    for p in ["heph", "hephd"] {
        assert_eq!(
            link_of(env, p),
            data.join("current/bin").join(p).display().to_string()
        );
    }
    assert_eq!(
        std::fs::read_link(data.join("current")).unwrap(),
        Path::new("versions/0.2.0")
    );
    assert_eq!(version_of(&env.bin_dir.join("hephd")), "hephd 0.2.0 (fake)");
    assert_eq!(
        version_of(&data.join("versions/0.1.0/bin/hephd")),
        "hephd 0.1.0 (fake)",
        "old binaries adopted"
    );
    assert!(
        !data.join("tmp").join("target-0.2.0").exists(),
        "fresh target dir removed"
    );

    // The daemon runs again, as a new process.
    let new_pid = env.daemon_pid().unwrap();
    assert_ne!(new_pid, old_pid);
    assert!(env.daemon_alive());
    assert!(!pid_alive(old_pid));

    let state = env.state();
    assert_eq!(env.current_root().as_deref(), Some("0.2.0"));
    assert!(
        state["proven"].get("0.2.0").is_some(),
        "the new root is recorded as proven healthy"
    );
    assert_eq!(
        state["intent"],
        serde_json::Value::Null,
        "the switch is closed"
    );
    let last = state["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["outcome"], "updated");
    assert_eq!(
        (last["from"].as_str(), last["to"].as_str()),
        (Some("0.1.0"), Some("0.2.0"))
    );
    let records = std::fs::read_to_string(data.join("versions/0.2.0/.crates2.json")).unwrap();
    assert!(
        records.contains(&format!("#{commit}")),
        "built from the commit the tag named: {records}"
    );
    assert!(
        !env.calls()
            .iter()
            .any(|c| c.contains("TOKEN-IN-ENVIRONMENT"))
    );

    // A second run has nothing to do.
    env.clear_calls();
    env.run(&["check-and-apply"]).expect(0);
    assert!(calls_of(env, "cargo").is_empty());
}

#[test]
fn status_shows_versions_roots_the_daemon_the_timer_and_the_last_run() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env
        .fake_mode("timer-enabled", "Fri 2026-11-27 10:23:00 UTC");
    s.env.run(&["check-and-apply"]).expect(0);
    let run = s.env.run(&["status"]);
    run.expect(0);
    let pid = s.env.daemon_pid().unwrap();
    for expected in [
        "installed:   0.2.0".to_owned(),
        "roots:       0.2.0 (current, healthy), 0.1.0 (healthy, adopted)".to_owned(),
        format!("daemon:      hephd.service: active (running), pid {pid}"),
        "runs 0.2.0".to_owned(),
        "timer:       heph-selfupdate.timer is enabled, active; next run Fri 2026-11-27 10:23:00 UTC".to_owned(),
        "[updated] updated 0.1.0 -> 0.2.0".to_owned(),
        "running:     no (no update run in progress)".to_owned(),
    ] {
        assert!(run.stdout.contains(&expected), "{expected}:\n{}", run.stdout);
    }
    let j = s.env.run(&["status", "--json"]).json();
    assert_eq!(j["installed"]["managed"], true);
    assert_eq!(j["last_apply"]["outcome"], "updated");
    assert_eq!(j["running"], serde_json::Value::Null);
    assert_eq!(j["daemon"]["pid"], pid);
    assert_eq!(j["timer"]["enabled"], true);
    // The timer off, said as such.
    s.env.clear_fake_mode("timer-enabled");
    let off = s.env.run(&["status"]).stdout;
    assert!(
        off.contains("timer:       heph-selfupdate.timer is not installed (updates are off"),
        "{off}"
    );
}

#[test]
fn status_history_lists_the_runs_one_line_each_reading_forwards() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("bad-0.2.0", "");
    s.env.run(&["check-and-apply"]).expect(1);
    s.env.fake_mode("cargo-mode", "fail");
    s.env.run(&["check-and-apply", "--to", "0.1.0"]).expect(0);
    let run = s.env.run(&["status", "--history"]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].contains("ago")
            && lines[0].contains("rolled-back")
            && lines[0].contains("tried 0.2.0, back on 0.1.0"),
        "{}",
        run.stdout
    );
}

/// A command line as the stand-ins record it: the program's file name, then its arguments.
pub(crate) fn recorded_form(argv: &[String]) -> String {
    let program = Path::new(&argv[0])
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::iter::once(program)
        .chain(argv[1..].iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Consecutive repeats as one (an observation repeats while the daemon settles).
pub(crate) fn collapsed(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        if out.last() != Some(l) {
            out.push(l.clone());
        }
    }
    out
}

/// True when `ran` is the command `planned` showed: the same text, where a `<…>` in the
/// plan (a value known only when the step runs, like `<MainPID of hephd.service>`) stands
/// for one number, and a `<commit …>` for one 40-digit commit.
pub(crate) fn same_command(planned: &str, ran: &str) -> bool {
    let (Some(open), Some(close)) = (planned.find('<'), planned.find('>')) else {
        return planned == ran;
    };
    let (before, after) = (&planned[..open], &planned[close + 1..]);
    let Some(rest) = ran.strip_prefix(before) else {
        return false;
    };
    let len = if planned[open..].starts_with("<commit ") {
        let hex = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_hexdigit())
                .len();
        if hex != 40 {
            return false;
        }
        hex
    } else {
        rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len()
    };
    len > 0 && same_command(after, &rest[len..])
}

/// The run ran exactly the commands of the plan, in its order (see [`same_command`]).
#[track_caller]
pub(crate) fn assert_same_commands(ran: &[String], planned: &[String]) {
    assert!(
        ran.len() == planned.len() && planned.iter().zip(ran).all(|(p, r)| same_command(p, r)),
        "the dry run and the run disagree:\nplanned: {planned:#?}\nran: {ran:#?}"
    );
}

#[test]
fn a_placeholder_in_the_plan_stands_for_one_number_or_one_commit_only() {
    let planned = "kill -s TERM -- <MainPID of hephd.service>";
    assert!(same_command(planned, "kill -s TERM -- 4242"));
    assert!(!same_command(planned, "kill -s TERM -- "));
    assert!(!same_command(planned, "kill -s TERM -- 1 2"));
    assert!(!same_command(planned, "kill -s KILL -- 4242"));
    let planned = "cargo install --rev=<commit of v1, from ls-remote> hephd";
    let commit = "0123456789abcdef0123456789abcdef01234567";
    assert!(same_command(
        planned,
        &format!("cargo install --rev={commit} hephd")
    ));
    assert!(!same_command(planned, "cargo install --rev=01234567 hephd"));
    assert!(same_command("systemctl show x", "systemctl show x"));
    assert!(!same_command("systemctl show x", "systemctl show y"));
}

/// Every program a run starts records its call, a `health_command` and a
/// `notify_command` included.
pub(crate) fn record_with_hooks(env: &mut TestEnv) {
    env.record_everything();
    let health = env.fake_bin("healthcheck", &crate::support::fakes::recording_script(0));
    let notify = env.fake_bin("notifier", &crate::support::fakes::recording_script(0));
    env.var(
        "HEPH_SELFUPDATE_HEALTH_COMMAND",
        &format!("{} --ping", health.display()),
    )
    .var(
        "HEPH_SELFUPDATE_NOTIFY_COMMAND",
        &notify.display().to_string(),
    );
}

#[test]
fn the_dry_run_names_exactly_the_commands_the_run_then_runs() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    record_with_hooks(&mut s.env);
    let plan = s.env.run(&["check-and-apply", "--dry-run", "--json"]);
    plan.expect(0);
    let planned: Vec<Vec<String>> =
        serde_json::from_value(plan.json()["commands"].clone()).unwrap();
    let planned: Vec<String> = planned.iter().map(|a| recorded_form(a)).collect();
    assert_eq!(
        s.env.calls(),
        ["hephd --version"],
        "the dry run only asked what is installed"
    );
    s.env.clear_calls();

    s.env.run(&["check-and-apply"]).expect(0);
    let ran = s.env.calls();
    // What runs before the plan is made: the installed version, probed before and again
    // under the lock.
    assert_eq!(ran[..2], ["hephd --version", "hephd --version"], "{ran:#?}");
    assert_same_commands(&collapsed(&ran[2..]), &collapsed(&planned));
    for expected in [
        "git -c core.hooksPath=/dev/null -c core.fsmonitor=false ls-remote",
        "cargo install",
        "systemctl --user restart hephd.service",
        "healthcheck --ping",
        "notifier",
    ] {
        assert!(
            planned.iter().any(|p| p.starts_with(expected)),
            "{expected} is planned: {planned:#?}"
        );
    }
}

#[test]
fn dry_run_changes_nothing_and_shows_each_step() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let env = &s.env;
    let run = env.run(&["check-and-apply", "--dry-run", "--json"]);
    run.expect(0);
    let j = run.json();
    assert_eq!(j["action"], "update");
    assert_eq!(
        (j["from"].as_str(), j["to"].as_str(), j["tag"].as_str()),
        (Some("0.1.0"), Some("0.2.0"), Some("v0.2.0"))
    );
    let steps: Vec<String> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_owned())
        .collect();
    for step in [
        "check that",
        "remove what an interrupted run left",
        "free",
        "take the plain binaries",
        "switch current",
    ] {
        assert!(steps.iter().any(|s| s.contains(step)), "{step}: {steps:#?}");
    }
    let install = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["commands"].as_array().unwrap().clone())
        .find(|c| c["argv"][1] == "install")
        .unwrap();
    assert_eq!(install["env"]["CARGO_NET_GIT_FETCH_WITH_CLI"], "true");
    assert!(env.calls().is_empty(), "nothing ran: {:?}", env.calls());
    assert!(!env.state_dir().exists(), "no lock, no state");
    assert!(!env.data_dir().exists(), "no version roots");
    assert!(
        !env.home.join(".cache/heph-selfupdate").exists(),
        "no cache written"
    );
    let text = env.run(&["check-and-apply", "--dry-run"]);
    text.expect(0);
    assert!(
        text.stdout
            .lines()
            .any(|l| l.contains(" install --locked --force --git=")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .starts_with("# update: update available: 0.1.0 -> 0.2.0"),
        "{}",
        text.stdout
    );
    assert_eq!(
        text.stdout.matches("GIT_TERMINAL_PROMPT=0").count(),
        2,
        "once per git or cargo command that needs it, not twice on one: {}",
        text.stdout
    );
}

#[test]
fn dry_run_with_nothing_due_has_no_commands() {
    let s = sandbox("0.2.0", &["v0.1.0", "v0.2.0"]);
    let j = s
        .env
        .run(&["check-and-apply", "--dry-run", "--json"])
        .json();
    assert_eq!(j["action"], "none");
    assert_eq!(j["commands"], serde_json::json!([]));
}

#[test]
fn a_busy_lock_exits_75_and_builds_nothing() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let held = heph_selfupdate::lock::RunLock::acquire(&s.env.state_dir()).unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(75);
    assert!(
        run.stderr.contains(&format!("pid {}", std::process::id())),
        "{}",
        run.stderr
    );
    assert!(calls_of(&s.env, "cargo").is_empty());
    drop(held);
    s.env.run(&["check-and-apply"]).expect(0);
}

#[test]
fn a_second_run_during_a_build_exits_75_and_status_still_answers() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "slow");
    let mut first = s
        .env
        .command(&["check-and-apply"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run is building.
    for _ in 0..100 {
        if !calls_of(&s.env, "cargo").is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = s.env.run(&["check-and-apply"]);
    second.expect(75);
    assert!(second.stderr.contains("holds"), "{}", second.stderr);
    let status = s.env.run(&["status", "--json"]);
    status.expect(0);
    assert_eq!(status.json()["running"]["pid"], first.id());
    s.env.run(&["check"]).expect(100);
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert_eq!(calls_of(&s.env, "cargo").len(), 1, "exactly one build");
}

#[test]
fn a_failed_build_leaves_bin_dir_untouched_and_backs_off() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let env = &s.env;
    env.fake_mode("cargo-mode", "fail");
    let before = std::fs::read(env.bin_dir.join("hephd")).unwrap();
    let pid = env.daemon_pid();
    let run = env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(run.stderr.contains("could not compile"), "{}", run.stderr);
    assert!(
        run.stderr.contains("build log"),
        "says where the log is: {}",
        run.stderr
    );
    assert!(still_plain(env), "still the plain binary");
    assert_eq!(std::fs::read(env.bin_dir.join("hephd")).unwrap(), before);
    assert_eq!(env.daemon_pid(), pid, "no restart");
    assert!(
        !calls_of(env, "systemctl")
            .iter()
            .any(|c| c.contains("restart"))
    );
    assert!(
        !env.data_dir().join("versions/.partial-0.2.0").exists(),
        "half-built root removed"
    );
    let state = env.state();
    assert_eq!(env.backoff_of("0.2.0")["failures"], 1);
    assert_eq!(state["history"][0]["outcome"], "failed");

    // Within the backoff nothing is tried; check and status say why.
    env.clear_calls();
    env.fake_mode("cargo-mode", "ok");
    env.run(&["check-and-apply"]).expect(0);
    assert!(calls_of(env, "cargo").is_empty());
    assert_eq!(env.run(&["check", "--json"]).json()["reason"], "backoff");
    let status = env.run(&["status"]).stdout;
    assert!(
        status.contains("backoff:     0.2.0 failed 1 time(s)"),
        "{status}"
    );
    assert!(
        status.contains("error:       error[E0425]: cannot find value `x` in this scope"),
        "the compiler's first error, not cargo's command line: {status}"
    );
    assert!(
        !status.contains("--target-dir="),
        "no 300-character cargo command: {status}"
    );

    // --force ignores the backoff.
    env.run(&["check-and-apply", "--force"]).expect(0);
    assert_eq!(calls_of(env, "cargo").len(), 1);
    assert!(env.no_backoff(), "cleared by the success");
}

#[test]
fn a_network_failure_is_retried_then_exits_75_without_backoff() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "network");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(75);
    assert_eq!(calls_of(&s.env, "cargo").len(), 3, "three attempts");
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert!(s.env.no_backoff());
}

#[test]
fn a_too_old_toolchain_is_not_retried_and_gets_a_hint() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "rustc");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert_eq!(calls_of(&s.env, "cargo").len(), 1);
    assert!(
        run.stderr.contains("toolchain = \"stable\""),
        "{}",
        run.stderr
    );
}

#[test]
fn a_build_cargo_records_from_another_commit_than_the_one_asked_for_is_refused() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "wrong-commit");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains(&format!(
            "cargo built `heph` from commit 0123456789abcdef0123456789abcdef01234567 but was asked for {}",
            s.repo.commit_of("v0.2.0")
        )),
        "{}",
        run.stderr
    );
    assert!(still_plain(&s.env), "still the plain binary");
}

#[test]
fn a_build_that_lies_about_its_version_is_refused() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "lie");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("reports version 0.0.1"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unhealthy_release_is_rolled_back_marked_bad_and_not_retried() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let env = &s.env;
    env.fake_mode("bad-0.2.0", "");
    let run = env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("rolled back to 0.1.0"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_link(env.data_dir().join("current")).unwrap(),
        Path::new("versions/0.1.0")
    );
    assert_eq!(version_of(&env.bin_dir.join("hephd")), "hephd 0.1.0 (fake)");
    assert!(env.daemon_alive(), "the old daemon runs again");
    let state = env.state();
    assert!(env.is_bad("0.2.0"));
    assert_eq!(state["history"][0]["outcome"], "rolled-back");
    assert_eq!(env.current_root().as_deref(), Some("0.1.0"));
    let status = env.run(&["status"]).stdout;
    assert!(status.contains("bad:         0.2.0"), "{status}");

    env.clear_calls();
    env.run(&["check-and-apply"]).expect(0);
    assert!(
        calls_of(env, "cargo").is_empty(),
        "a bad version is not tried again"
    );
    assert_eq!(env.run(&["check", "--json"]).json()["reason"], "marked_bad");

    // A newer release is tried.
    s.release("v0.3.0");
    env.run(&["check-and-apply"]).expect(0);
    assert_eq!(version_of(&env.bin_dir.join("hephd")), "hephd 0.3.0 (fake)");
}

#[test]
fn notify_mode_reports_once_and_changes_nothing() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let script = s.env.fake_bin("notify", "#!/bin/sh\necho \"notify $HEPH_SELFUPDATE_EVENT $HEPH_SELFUPDATE_FROM $HEPH_SELFUPDATE_TO\" >> \"$FAKE_LOG\"\n");
    s.env.var("HEPH_SELFUPDATE_MODE", "notify").var(
        "HEPH_SELFUPDATE_NOTIFY_COMMAND",
        &script.display().to_string(),
    );
    let pid = s.env.daemon_pid();
    s.env.run(&["check-and-apply"]).expect(0);
    s.env.run(&["check-and-apply"]).expect(0);
    assert_eq!(s.env.calls(), ["notify update-available 0.1.0 0.2.0"]);
    assert!(!s.env.data_dir().exists());
    assert_eq!(s.env.daemon_pid(), pid);
    assert_eq!(s.env.state()["history"][0]["outcome"], "notified");
    assert_eq!(
        s.env.state()["history"].as_array().unwrap().len(),
        1,
        "one entry per pending update"
    );
    assert!(
        s.env
            .run(&["status"])
            .stdout
            .contains("pending:     update to 0.2.0 available")
    );
}

#[test]
fn a_notify_command_hears_of_updates_and_its_failure_is_not_fatal() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let script = s.env.fake_bin("notify", "#!/bin/sh\necho \"notify $HEPH_SELFUPDATE_EVENT $HEPH_SELFUPDATE_TO\" >> \"$FAKE_LOG\"\nexit 3\n");
    s.env.var(
        "HEPH_SELFUPDATE_NOTIFY_COMMAND",
        &script.display().to_string(),
    );
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(s.env.calls().contains(&"notify updated 0.2.0".to_owned()));
    assert!(
        run.stderr.contains("notify_command failed"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unreachable_forge_exits_75_and_changes_nothing() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    s.env
        .var("HEPH_SELFUPDATE_FORGE_URL", &format!("http://{closed}"));
    s.env.run(&["check-and-apply"]).expect(75);
    assert!(s.env.calls().is_empty());
    assert!(!s.env.data_dir().exists());
}

#[test]
fn a_git_server_that_vanishes_before_the_build_changes_nothing() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var(
        "HEPH_SELFUPDATE_GIT_URL",
        "http://127.0.0.1:9/eblume/hephaestus.git",
    );
    let run = s.env.run(&["check-and-apply"]);
    run.expect(75);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert!(calls_of(&s.env, "cargo").is_empty());
    assert!(still_plain(&s.env), "still the plain binary");
}

#[test]
fn to_installs_a_chosen_older_release() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    let run = s.env.run(&["check-and-apply", "--to", "v0.1.0"]);
    run.expect(0);
    assert_eq!(
        version_of(&s.env.bin_dir.join("hephd")),
        "hephd 0.1.0 (fake)"
    );
    s.env
        .run(&["check-and-apply", "--to", "not-a-version"])
        .expect(2);
}

#[test]
fn keeps_only_keep_versions_roots() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0", "v0.3.0"]);
    s.env.run(&["check-and-apply", "--to", "0.2.0"]).expect(0);
    s.env.run(&["check-and-apply"]).expect(0);
    let mut roots: Vec<String> = std::fs::read_dir(s.env.data_dir().join("versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    roots.sort();
    assert_eq!(roots, ["0.2.0", "0.3.0"]);
}

#[test]
fn a_package_added_to_packages_is_installed_with_the_next_release() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_PACKAGES", "heph,hephd,heph-tui");
    // Not a missing binary: nothing records what heph-tui installs.
    let check = s.env.run(&["check", "--json"]);
    check.expect(100);
    assert_eq!(check.json()["reason"], "newer_release");
    s.env.run(&["check-and-apply"]).expect(0);
    assert!(calls_of(&s.env, "cargo")[0].ends_with("heph hephd heph-tui"));
    assert_eq!(
        version_of(&s.env.bin_dir.join("heph-tui")),
        "heph-tui 0.2.0 (fake)"
    );
}

#[test]
fn rollback_returns_to_the_previous_root_and_marks_the_other_bad() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    let pid = s.env.daemon_pid();
    let run = s.env.run(&["rollback"]);
    run.expect(0);
    assert_eq!(
        version_of(&s.env.bin_dir.join("hephd")),
        "hephd 0.1.0 (fake)"
    );
    assert_ne!(s.env.daemon_pid(), pid, "restarted");
    assert!(s.env.daemon_alive());
    assert!(s.env.is_bad("0.2.0"));
    assert_eq!(
        s.env.run(&["check", "--json"]).json()["reason"],
        "marked_bad"
    );
    let again = s.env.run(&["rollback"]);
    again.expect(1);
    assert!(
        again.stderr.contains("nothing to roll back to"),
        "{}",
        again.stderr
    );
}

#[test]
fn launchd_is_driven_through_its_gui_domain() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "launchd")
        .var("HEPH_SELFUPDATE_SERVICE", "mcquack.eblume.heph");
    s.env.run(&["check-and-apply"]).expect(0);
    let uid = unsafe { libc::getuid() };
    let target = format!("gui/{uid}/mcquack.eblume.heph");
    let calls = calls_of(&s.env, "launchctl");
    assert!(
        calls.contains(&format!("launchctl kickstart -k {target}")),
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!("launchctl print {target}")),
        "{calls:?}"
    );
    assert!(calls_of(&s.env, "systemctl").is_empty());
    assert!(s.env.daemon_alive());
}

#[test]
fn without_a_service_manager_it_installs_and_says_a_restart_is_needed() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_SERVICE_MANAGER", "none");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("restart hephd yourself"),
        "{}",
        run.stderr
    );
    assert!(calls_of(&s.env, "systemctl").is_empty());
    assert_eq!(
        version_of(&s.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (fake)"
    );
}

#[test]
fn the_token_reaches_no_child_process() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_TOKEN", "tok-never-in-children");
    let run = s.env.run(&["check-and-apply", "-vv"]);
    run.expect(0);
    assert!(!run.all().contains("tok-never-in-children"));
    let calls = s.env.calls();
    assert!(!calls.is_empty());
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("TOKEN-IN-ENVIRONMENT") || c.contains("tok-never")),
        "{calls:?}"
    );
    let state = std::fs::read_to_string(s.env.state_dir().join("state.json")).unwrap();
    assert!(!state.contains("tok-never"));
}
