//! Promises of the transaction and trust issues that had no test of their own: the
//! rollback's dry run, `check` and `rollback` finishing an open intent, notification of
//! a release that died during an interrupted watch, the group watcher's environment, and
//! a reused PID in the lock file.

use crate::apply::{assert_same_commands, collapsed, record_with_hooks, recorded_form};
use crate::support::scenario::{assert_sound, sandbox};
use crate::transaction::{
    eventually, killed_while_proving, outcomes, proving, signal, spawn, stderr_of,
};

/// Issue 9, "one plan": `rollback --dry-run` names exactly the commands `rollback` runs.
#[test]
fn the_rollback_dry_run_names_exactly_the_commands_the_rollback_then_runs() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    record_with_hooks(&mut s.env);
    s.env.clear_calls();
    let plan = s.env.run(&["rollback", "--dry-run", "--json"]);
    plan.expect(0);
    let planned: Vec<Vec<String>> =
        serde_json::from_value(plan.json()["commands"].clone()).unwrap();
    let planned: Vec<String> = planned.iter().map(|a| recorded_form(a)).collect();
    s.env.clear_calls();
    let run = s.env.run(&["rollback"]);
    run.expect(0);
    let ran = s.env.calls();
    assert_same_commands(&collapsed(&ran), &collapsed(&planned));
}

/// Issue 9: `check` and `rollback` first finish a switch a killed run left (here: roll
/// back a dying release), before they decide anything.
#[test]
fn check_and_rollback_finish_a_switch_a_killed_run_left_before_deciding() {
    for command in ["check", "rollback"] {
        let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
        s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "8s");
        s.env.fake_mode("bad-0.2.0", "3");
        killed_while_proving(&s.env);
        let next = s.env.run(&[command]);
        next.expect(1);
        assert!(
            next.stderr.contains("finishing that switch first")
                && next.stderr.contains("rolled back to 0.1.0"),
            "{command}: {}",
            next.stderr
        );
        assert_eq!(
            s.env.state()["intent"],
            serde_json::Value::Null,
            "{command}"
        );
        assert!(s.env.is_bad("0.2.0"), "{command}");
        let history = outcomes(&s.env);
        assert_eq!(
            history,
            ["interrupted", "rolled-back"],
            "{command}: {history:?}"
        );
        assert_sound(&s.env, "0.1.0");
    }
}

/// Issue 9 item 2: a SIGTERM during the watch of a dying release still notifies and marks it bad.
#[test]
fn sigterm_during_the_watch_of_a_dying_release_still_notifies_and_marks_it_bad() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let notify = s
        .env
        .fake_bin("notifier", &crate::support::fakes::recording_script(0));
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "6s").var(
        "HEPH_SELFUPDATE_NOTIFY_COMMAND",
        &notify.display().to_string(),
    );
    s.env.fake_mode("bad-0.2.0", "2");
    let mut run = proving(&s.env);
    signal(&run, libc::SIGTERM);
    let status = run.wait().unwrap();
    let stderr = stderr_of(&mut run);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        s.env.calls().iter().any(|c| c.starts_with("notifier")),
        "{stderr}\n{:?}",
        s.env.calls()
    );
    assert!(s.env.is_bad("0.2.0"));
}

/// Every child of `parent` whose command line is `<bin> __reap-group …`, with its
/// environment.
fn reapers(parent: u32) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let ppid = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|st| {
                st.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
            });
        if ppid == Some(parent)
            && cmdline.split(|b| *b == 0).any(|a| a == b"__reap-group")
            && let Ok(env) = std::fs::read(e.path().join("environ"))
        {
            out.push((pid, env));
        }
    }
    out
}

/// Issue 10 item 3: the `__reap-group` watcher of a build does not inherit the token.
#[test]
fn the_process_group_watcher_of_a_build_does_not_inherit_the_token() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_TOKEN", "tok-audit-a-watcher");
    s.env.fake_mode("cargo-mode", "slow");
    let mut run = spawn(&s.env, &["check-and-apply"]);
    let mut seen = Vec::new();
    assert!(eventually(|| {
        seen = reapers(run.id());
        !seen.is_empty()
    }));
    for (pid, env) in &seen {
        let text = String::from_utf8_lossy(env);
        assert!(text.contains("HOME="), "read the environment of {pid}");
        assert!(
            !text.contains("tok-audit-a-watcher"),
            "watcher {pid} has the token"
        );
    }
    run.wait().unwrap();
}

/// Issue 10 item 12: a live PID left in the lock file by a dead run is not "running".
#[test]
fn status_does_not_call_a_reused_pid_in_the_lock_file_a_running_update() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    std::fs::write(
        s.env.state_dir().join("lock"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let run = s.env.run(&["status"]);
    assert!(run.stdout.contains("running:") && run.stdout.contains("no (no update run"));
}
