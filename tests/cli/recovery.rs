//! Recovery at the edges of a switch: signals during a health command, a grace that ends
//! mid-restart, intents naming roots that are gone, resumes that cannot write, staged
//! releases and restart windows. Real binary, stand-in service manager that really runs
//! the daemon.

use std::time::{Duration, Instant};

use crate::support::scenario::{assert_sound, sandbox};
use crate::transaction::{
    eventually, killed_while_proving, outcomes, phase, proving, signal, spawn, stderr_of,
};

/// A health_command that says when it starts, then takes 5 s.
fn slow_health(s: &mut crate::support::scenario::Sandbox) -> std::path::PathBuf {
    let marker = s.env.dir.path().join("fake-state/health-started");
    let script = s.env.fake_bin(
        "slow-health",
        &format!(
            "#!/bin/sh\necho x >> {}\nsleep 5\nexit 0\n",
            marker.display()
        ),
    );
    s.env.var(
        "HEPH_SELFUPDATE_HEALTH_COMMAND",
        &script.display().to_string(),
    );
    marker
}

/// A person presses Ctrl-C twice while the proof's health_command runs on a GOOD release.
/// README: "An interruption is never recorded as a failed rollback, a bad release or a
/// backoff."
#[test]
fn a_second_signal_during_health_command_does_not_mark_a_good_release_bad() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let marker = slow_health(&mut s);
    let mut run = spawn(&s.env, &["check-and-apply"]);
    assert!(eventually(|| marker.exists()), "health_command never ran");
    signal(&run, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    signal(&run, libc::SIGINT);
    let status = run.wait().unwrap();
    let stderr = stderr_of(&mut run);
    eprintln!(
        "--- run stderr ---\n{stderr}\n--- state ---\n{:#}",
        s.env.state()
    );
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(
        !s.env.is_bad("0.2.0"),
        "0.2.0 (a good release) was marked bad by an interruption: {:#}",
        s.env.state()["bad"]
    );
}

/// The same, during the proof of the way back: the old release is healthy, the revert's
/// health_command is cut by the second signal.
/// README: "ROLLBACK FAILED is said only when going back did restart the old version and
/// it was seen to fail too".
#[test]
fn a_second_signal_during_the_reverts_health_command_is_not_rollback_failed() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("bad-0.2.0", "");
    let marker = slow_health(&mut s);
    let mut run = spawn(&s.env, &["check-and-apply"]);
    // 0.2.0 dies at start, so the first health_command is the revert's.
    assert!(eventually(|| marker.exists()), "health_command never ran");
    assert_eq!(phase(&s.env).as_deref(), Some("revert-proving"));
    signal(&run, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    signal(&run, libc::SIGTERM);
    let status = run.wait().unwrap();
    let stderr = stderr_of(&mut run);
    eprintln!(
        "--- run stderr ---\n{stderr}\n--- state ---\n{:#}",
        s.env.state()
    );
    assert!(
        !stderr.contains("ROLLBACK FAILED"),
        "a false ROLLBACK FAILED: {stderr}"
    );
    assert!(
        !outcomes(&s.env).contains(&"rollback-failed".to_owned()),
        "{:?}",
        outcomes(&s.env)
    );
    assert_eq!(status.code(), Some(75), "{stderr}");
}

/// Ctrl-C while the new build is being verified (`hephd --version` of the staged root):
/// README: "during a build it stops the build's process group and exits 75, nothing
/// changed", and never a backoff.
#[test]
fn a_signal_during_the_verification_of_the_build_is_no_backoff() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let marker = s.env.dir.path().join("fake-state/verifying");
    // cargo as before, then the installed hephd's --version takes 5 s (and says so).
    s.env
        .fake_bin("cargo-inner", &crate::support::fakes::cargo_script());
    s.env.fake_bin(
        "cargo",
        &format!(
            r#"#!/bin/sh
"$(dirname "$0")/cargo-inner" "$@" || exit $?
for a in "$@"; do case "$a" in --root=*) root="${{a#--root=}}";; esac; done
[ -n "$root" ] || exit 0
f="$root/bin/hephd"
{{ echo '#!/bin/sh'; echo '[ "$1" = --version ] && {{ echo x >> {m}; sleep 5; }}'; tail -n +2 "$f"; }} > "$f.tmp"
chmod +x "$f.tmp"; mv "$f.tmp" "$f"
"#,
            m = marker.display()
        ),
    );
    let mut run = spawn(&s.env, &["check-and-apply"]);
    assert!(eventually(|| marker.exists()), "the verification never ran");
    signal(&run, libc::SIGTERM);
    let status = run.wait().unwrap();
    let stderr = stderr_of(&mut run);
    eprintln!(
        "--- run stderr ---\n{stderr}\n--- state ---\n{:#}",
        s.env.state()
    );
    assert!(
        s.env.no_backoff(),
        "an interruption backed the release off: {:#}",
        s.env.state()["backoff"]
    );
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert_sound(&s.env, "0.1.0");
}

/// Kills a run while it proves 0.2.0 (the intent is left), then deletes the root the
/// intent switches to (a person cleaning up, a disk tool).
fn killed_mid_proof_with_the_new_root_deleted(
    phase_to: Option<&str>,
) -> crate::support::scenario::Sandbox {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "8s");
    killed_while_proving(&s.env);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "1s");
    let root = s.env.data_dir().join("versions/0.2.0");
    std::fs::remove_dir_all(&root).unwrap();
    if let Some(p) = phase_to {
        let path = s.env.state_dir().join("state.json");
        let mut st = s.env.state();
        st["intent"]["phase"] = p.into();
        std::fs::write(&path, serde_json::to_vec_pretty(&st).unwrap()).unwrap();
        std::fs::write(
            s.env.state_dir().join("state.json.bak"),
            serde_json::to_vec_pretty(&st).unwrap(),
        )
        .unwrap();
    }
    s
}

/// An intent whose `to` root is gone must not be "finished" as a healthy update: the
/// links would point into nothing while the state says all is well.
#[test]
fn an_intent_naming_a_deleted_root_is_not_committed() {
    let s = killed_mid_proof_with_the_new_root_deleted(None);
    let st = s.env.run(&["status"]);
    eprintln!("--- status ---\n{}\n{}", st.stdout, st.stderr);
    let target = std::fs::canonicalize(s.env.bin_dir.join("hephd"));
    eprintln!(
        "hephd resolves to {target:?}; state intent {:#}",
        s.env.state()["intent"]
    );
    assert!(
        target.is_ok(),
        "~/.cargo/bin/hephd dangles after status finished the switch, and no intent says so: {}",
        st.stdout
    );
}

/// The same with the intent still at `switching`: the restart onto a missing binary fails,
/// which says nothing about the release; it must not be marked bad.
#[test]
fn an_intent_naming_a_deleted_root_does_not_mark_the_release_bad() {
    let s = killed_mid_proof_with_the_new_root_deleted(Some("switching"));
    let run = s.env.run(&["check-and-apply"]);
    eprintln!(
        "--- run ---\n{}\n{}\n{:#}",
        run.stdout,
        run.stderr,
        s.env.state()["bad"]
    );
    assert!(
        !s.env.is_bad("0.2.0"),
        "0.2.0 marked bad because its root was deleted: {}",
        run.stderr
    );
}

/// A switch left open while the service manager cannot be reached: every later run tries
/// again and fails, and says so; no retry claims that it finished the switch or that a run
/// was interrupted.
#[test]
fn retrying_an_unfinishable_switch_does_not_claim_it_was_finished() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "8s");
    killed_while_proving(&s.env);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "1s");
    s.env.fake_mode("manager-down", "");
    let before = outcomes(&s.env).len();
    for _ in 0..3 {
        let r = s.env.run(&["check-and-apply"]);
        eprintln!("--- exit {} ---\n{}", r.code, r.stderr);
    }
    let history = s.env.state()["history"].as_array().unwrap().clone();
    let new: Vec<String> = history[before..]
        .iter()
        .map(|r| format!("{}: {}", r["outcome"], r["reason"]))
        .collect();
    eprintln!(
        "{new:#?}\nintent: {:#}\nbackoff: {:#}",
        s.env.state()["intent"],
        s.env.state()["backoff"]
    );
    let claims = new
        .iter()
        .filter(|r| r.contains("a later run finished the switch"))
        .count();
    assert!(
        claims <= 1,
        "{claims} entries say a later run finished a switch that is still open: {new:#?}"
    );
}

fn window_closed_now() -> String {
    let start = time::OffsetDateTime::now_utc() + time::Duration::hours(3);
    let end = start + time::Duration::hours(1);
    format!(
        "{:02}:{:02}-{:02}:{:02}",
        start.hour(),
        start.minute(),
        end.hour(),
        end.minute()
    )
}

/// A build that fails is told to notify_command inside the restart window; outside it the
/// same failure must be told too (the build runs at once either way).
#[test]
fn a_failed_build_outside_the_restart_window_is_notified() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let notify = s
        .env
        .fake_bin("notifier", &crate::support::fakes::recording_script(0));
    s.env
        .var("TZ", "UTC")
        .var(
            "HEPH_SELFUPDATE_NOTIFY_COMMAND",
            &notify.display().to_string(),
        )
        .var("HEPH_SELFUPDATE_RESTART_WINDOW", &window_closed_now());
    s.env.fake_mode("cargo-mode", "fail");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    let told = crate::support::scenario::calls_of(&s.env, "notifier");
    assert!(
        !told.is_empty(),
        "the failed build was not notified outside the window: {}",
        run.stderr
    );
}

/// `rollback --to` a newer kept root (forward again after a rollback) marks nothing bad:
/// a plain `rollback` afterwards goes back to the older root, which is kept and ran
/// healthy.
#[test]
fn rollback_forward_does_not_make_the_old_root_unreachable() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    s.env.run(&["rollback"]).expect(0);
    assert_sound(&s.env, "0.1.0");
    let fwd = s.env.run(&["rollback", "--to", "0.2.0"]);
    fwd.expect(0);
    eprintln!("--- rollback --to 0.2.0 ---\n{}", fwd.stderr);
    assert_sound(&s.env, "0.2.0");
    let back = s.env.run(&["rollback"]);
    eprintln!("--- rollback ---\n{}", back.stderr);
    back.expect(0);
    assert_sound(&s.env, "0.1.0");
}

/// One SIGTERM while a good release settles; the health_command (slow, 90 s, within its
/// own limit of 5 min) starts after it. The grace cuts the command at the end of the 60 s,
/// which is no verdict on the release: the switch is left to the next run, nothing is
/// marked bad. Takes about 65 s.
#[test]
fn the_end_of_the_grace_during_health_command_does_not_mark_a_good_release_bad() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let marker = s.env.dir.path().join("fake-state/health-started");
    let script = s.env.fake_bin(
        "slow-health",
        &format!(
            "#!/bin/sh\necho x >> {}\nsleep 90\nexit 0\n",
            marker.display()
        ),
    );
    s.env
        .var(
            "HEPH_SELFUPDATE_HEALTH_COMMAND",
            &script.display().to_string(),
        )
        .var("HEPH_SELFUPDATE_HEALTH_TIMEOUT", "5min")
        .var("HEPH_SELFUPDATE_HEALTH_SETTLE", "4s");
    let mut run = proving(&s.env);
    signal(&run, libc::SIGTERM);
    let signalled = Instant::now();
    let status = run.wait().unwrap();
    let took = signalled.elapsed();
    let stderr = stderr_of(&mut run);
    eprintln!(
        "--- run stderr (exit {:?} {took:?} after the signal) ---\n{stderr}\n--- bad ---\n{:#}",
        status.code(),
        s.env.state()["bad"]
    );
    assert!(marker.exists(), "health_command ran after the signal");
    assert!(
        !s.env.is_bad("0.2.0"),
        "0.2.0 (a good release) was marked bad when the grace ended: {stderr}"
    );
}

/// SIGTERM while a slow restart blocks (the old daemon drains; restart_timeout is 3 min by
/// default): the run ends within 60 s of the signal (`TimeoutStopSec=2min` is above it),
/// leaving the switch to the next run, which finishes it. Takes about 65 s.
#[test]
fn a_switch_ends_within_the_grace_when_the_signal_comes_during_a_slow_restart() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("restart-delay", "90");
    s.env.var("HEPH_SELFUPDATE_RESTART_TIMEOUT", "3min");
    let mut run = spawn(&s.env, &["check-and-apply"]);
    assert!(eventually(|| phase(&s.env).as_deref() == Some("restarting")));
    std::thread::sleep(Duration::from_millis(500));
    signal(&run, libc::SIGTERM);
    let signalled = Instant::now();
    let status = run.wait().unwrap();
    let took = signalled.elapsed();
    let stderr = stderr_of(&mut run);
    eprintln!("--- run stderr (exit {:?}) ---\n{stderr}", status.code());
    s.env.clear_fake_mode("restart-delay");
    assert!(
        took < Duration::from_secs(75),
        "the run went on {took:?} after SIGTERM (grace 60 s)"
    );
    // Left for the next run, blaming nothing; that run finishes the switch.
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("the next run finishes it"), "{stderr}");
    assert!(!s.env.is_bad("0.2.0"), "{stderr}");
    assert!(s.env.state()["intent"]["phase"].is_string(), "{stderr}");
    let next = s.env.run(&["check-and-apply"]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert_sound(&s.env, "0.2.0");
}

/// The run died while proving 0.2.0 (which dies 3 s after it starts); when the next run
/// finishes the switch, `current` cannot be rewritten (here: `current` became a directory;
/// a full disk or a read-only data dir take the same path). The intent stays open (the
/// dead run had restarted the daemon onto 0.2.0), and the run says the switch is
/// unfinished.
#[test]
fn a_resume_that_cannot_rewrite_current_does_not_close_the_intent() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "8s");
    s.env.fake_mode("bad-0.2.0", "3");
    killed_while_proving(&s.env);
    let current = s.env.data_dir().join("current");
    std::fs::remove_file(&current).unwrap();
    std::fs::create_dir_all(current.join("bin")).unwrap();
    for p in ["heph", "hephd"] {
        std::os::unix::fs::symlink(
            s.env.data_dir().join("versions/0.2.0/bin").join(p),
            current.join("bin").join(p),
        )
        .unwrap();
    }
    let next = s.env.run(&["check-and-apply"]);
    eprintln!("--- next run (exit {}) ---\n{}", next.code, next.stderr);
    std::thread::sleep(Duration::from_secs(4));
    eprintln!(
        "intent: {:#}\ndaemon alive: {}\nlast: {:#}",
        s.env.state()["intent"],
        s.env.daemon_alive(),
        s.env.state()["history"].as_array().unwrap().last().unwrap()
    );
    assert!(
        !next.stderr.contains("nothing was restarted"),
        "the dead run had restarted the daemon: {}",
        next.stderr
    );
    assert!(
        s.env.state()["intent"].is_object() || s.env.daemon_alive(),
        "the daemon is down on an unproven release and no intent says so"
    );
}

/// A release staged outside the restart window, then halted by the maintainers (turned
/// into a draft, as the README's "Halting a rollout" says). It is never switched to, and
/// status and the metrics stop announcing it.
#[test]
fn a_staged_release_that_was_halted_is_no_longer_announced() {
    use crate::support::forge::FakeRelease;
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let metrics = s.env.dir.path().join("heph_selfupdate.prom");
    s.env
        .var("TZ", "UTC")
        .var(
            "HEPH_SELFUPDATE_METRICS_FILE",
            &metrics.display().to_string(),
        )
        .var("HEPH_SELFUPDATE_RESTART_WINDOW", &window_closed_now());
    s.env.run(&["check-and-apply"]).expect(0);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(text.contains("heph_selfupdate_staged 1"), "{text}");
    s.forge.set_releases(vec![
        FakeRelease::new("v0.2.0").draft(),
        FakeRelease::new("v0.1.0"),
    ]);
    s.env.run(&["check-and-apply"]).expect(0);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(text.contains("heph_selfupdate_staged 0"), "{text}");
    s.env.var("HEPH_SELFUPDATE_RESTART_WINDOW", "00:00-24:00");
    s.env.run(&["check-and-apply"]).expect(0);
    assert_sound(&s.env, "0.1.0");
    let status = s.env.run(&["status"]).stdout;
    assert!(
        !status.contains("staged:"),
        "status still announces the halted release: {status}"
    );
}

/// With an open intent (killed while proving a release that dies 3 s after it starts), the
/// dry run shows only the step that finishes the switch (it cannot know how the proof
/// ends); the run then rolls back.
#[test]
fn the_dry_run_over_an_unfinished_switch() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "8s");
    s.env.fake_mode("bad-0.2.0", "3");
    killed_while_proving(&s.env);
    s.env.record_everything();
    s.env.clear_calls();
    let dry = s.env.run(&["check-and-apply", "--dry-run"]);
    eprintln!(
        "--- dry run ---\n{}\n--- calls ---\n{:#?}",
        dry.stdout,
        s.env.calls()
    );
    s.env.clear_calls();
    let real = s.env.run(&["check-and-apply"]);
    eprintln!(
        "--- run (exit {}) ---\n{}\n--- calls ---\n{:#?}",
        real.code,
        real.stderr,
        s.env.calls()
    );
    assert_ne!(real.code, 0, "the run rolled back");
    assert!(
        dry.stdout
            .starts_with("# finish-switch: an earlier run left a switch unfinished\n")
            && dry
                .stdout
                .contains("finish the switch 0.1.0 -> 0.2.0 an earlier run left while proving"),
        "the dry run shows the finishing step, and decides nothing on top of it: {}",
        dry.stdout
    );
    assert!(
        real.stderr.contains("rolled back to 0.1.0"),
        "{}",
        real.stderr
    );
}

/// The state cannot be written from the moment 0.2.0 is seen to fail (a full disk, say)
/// until the run ends. Going back without the turn back on disk would let a next run,
/// resuming at `proving`, take the old daemon the revert started for the new one and commit
/// 0.2.0. So the run leaves 0.2.0 switched and says so; the next run (the disk has room
/// again) goes back to 0.1.0 and marks 0.2.0 bad.
#[test]
fn a_turn_back_that_cannot_be_saved_is_left_to_the_next_run_which_rolls_back() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("bad-0.2.0", "");
    let fakes = s.env.fakes.clone();
    std::fs::create_dir_all(fakes.join("inner")).unwrap();
    std::fs::rename(fakes.join("systemctl"), fakes.join("inner/systemctl")).unwrap();
    let state_dir = s.env.state_dir();
    // Once the stand-in service manager reports the failure, the state file is held aside
    // and a directory takes its name: every later save fails (a rename cannot replace a
    // directory that holds something).
    s.env.fake_bin(
        "systemctl",
        &format!(
            r#"#!/bin/sh
out=$("$(dirname "$0")/inner/systemctl" "$@"); rc=$?
printf '%s\n' "$out"
case "$out" in *ActiveState=failed*)
  if [ -f "$FAKE_STATE/block-state" ]; then rm -f "$FAKE_STATE/block-state"; mv "{dir}/state.json" "{dir}/state.json.held"; mkdir -p "{dir}/state.json/x"; fi;;
esac
exit $rc
"#,
            dir = state_dir.display()
        ),
    );
    s.env.fake_mode("block-state", "");
    let first = s.env.run(&["check-and-apply"]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(
        first.stderr.contains("the turn back could not be saved")
            && first.stderr.contains("the next run tries again"),
        "{}",
        first.stderr
    );
    // The disk has room again: the state file is what it was when saves began to fail.
    std::fs::remove_dir_all(state_dir.join("state.json")).unwrap();
    std::fs::rename(
        state_dir.join("state.json.held"),
        state_dir.join("state.json"),
    )
    .unwrap();
    // Nothing moved back: what is on disk (proving 0.2.0) is still true.
    assert_eq!(s.env.current_root().as_deref(), Some("0.2.0"));
    assert_eq!(phase(&s.env).as_deref(), Some("proving"));
    let next = s.env.run(&["check-and-apply"]);
    assert!(
        !next.stderr.contains("updated 0.1.0 -> 0.2.0"),
        "0.2.0 (dies at start) was committed as healthy: {}",
        next.stderr
    );
    assert!(
        next.stderr.contains("rolled back to 0.1.0"),
        "{}",
        next.stderr
    );
    assert_sound(&s.env, "0.1.0");
    assert!(s.env.is_bad("0.2.0"), "{}", next.stderr);
    assert_eq!(s.env.state()["intent"], serde_json::Value::Null);
}

/// The window is checked again when the switch comes: a build that ends after the window
/// closed is staged, the daemon is not restarted. (Starts the run 3 s before a minute ends,
/// with a window of that one minute and a 5 s build.)
#[test]
fn a_build_that_outlasts_the_restart_window_does_not_restart_outside_it() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "slow");
    while time::OffsetDateTime::now_utc().second() != 57 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let now = time::OffsetDateTime::now_utc();
    let end = now + time::Duration::minutes(1);
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        now.hour(),
        now.minute(),
        end.hour(),
        end.minute()
    );
    s.env
        .var("TZ", "UTC")
        .var("HEPH_SELFUPDATE_RESTART_WINDOW", &window);
    let pid = s.env.daemon_pid();
    let run = s.env.run(&["check-and-apply"]);
    let ended = time::OffsetDateTime::now_utc();
    eprintln!("window {window}; run ended {ended}\n{}", run.stderr);
    assert_eq!(
        s.env.daemon_pid(),
        pid,
        "the daemon was restarted at {ended}, after the window {window} closed"
    );
}
