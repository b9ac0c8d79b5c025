//! The update as one transaction, end to end: the real binary, the stand-in service manager
//! that really runs the daemon, and the faults users meet after the first step — a run
//! killed or stopped mid-switch, a slow restart, a manual rollback after an automatic one,
//! `--to` a release whose root was adopted, backoffs of several versions, runs that
//! overlap, children that leave processes holding their output.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::env::{TestEnv, pid_alive};
use crate::support::scenario::{assert_sound, calls_of, sandbox, version_of};

/// Waits (bounded) until `cond` holds. Not a timing assertion: the bound only stops a
/// broken test from hanging.
pub(crate) fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The phase of the open intent, if there is one.
pub(crate) fn phase(env: &TestEnv) -> Option<String> {
    env.state()["intent"]["phase"].as_str().map(String::from)
}

pub(crate) fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    env.command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A `check-and-apply` that has switched and is proving the new release.
pub(crate) fn proving(env: &TestEnv) -> Child {
    let run = spawn(env, &["check-and-apply"]);
    assert!(eventually(|| phase(env).as_deref() == Some("proving")));
    run
}

/// A `check-and-apply` killed (SIGKILL: power loss, the OOM killer) while it proves the
/// new release: its intent is left open.
pub(crate) fn killed_while_proving(env: &TestEnv) {
    let mut run = proving(env);
    run.kill().unwrap();
    run.wait().unwrap();
    // A child the run was starting at the kill holds a copy of the lock's descriptor
    // until it execs (close-on-exec); on a loaded machine the next run could meet it.
    assert!(eventually(|| lock_is_free(env)), "the lock stays held");
}

/// True when nothing holds the run lock (tried as the tool takes it: `flock`, no wait).
fn lock_is_free(env: &TestEnv) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(env.state_dir().join("lock")) else {
        return true;
    };
    // SAFETY: flock(2) on a descriptor this function owns; released when `file` closes.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

pub(crate) fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut text).unwrap();
    text
}

pub(crate) fn signal(child: &Child, sig: i32) {
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), sig) };
}

pub(crate) fn outcomes(env: &TestEnv) -> Vec<String> {
    env.state()["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_run_killed_between_the_switch_and_the_proof_is_finished_by_the_next_run() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "8s");
    // 0.2.0 dies 3 s after it starts: only a finished proof can tell.
    s.env.fake_mode("bad-0.2.0", "3");
    killed_while_proving(&s.env);
    assert_eq!(
        phase(&s.env).as_deref(),
        Some("proving"),
        "the intent is left"
    );

    // The next run does not call 0.2.0 up to date: it finishes the switch first.
    let next = s.env.run(&["check-and-apply"]);
    next.expect(1);
    assert!(
        next.stderr.contains("finishing that switch first")
            && next.stderr.contains("rolled back to 0.1.0"),
        "{}",
        next.stderr
    );
    assert_eq!(s.env.state()["intent"], serde_json::Value::Null);
    assert!(s.env.is_bad("0.2.0"));
    let history = outcomes(&s.env);
    assert_eq!(
        history[history.len() - 2..],
        ["interrupted", "rolled-back"],
        "the dead run is in the history as such: {history:?}"
    );
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn a_run_killed_while_proving_a_good_release_is_committed_without_another_restart() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "6s");
    killed_while_proving(&s.env);
    let pid = s.env.daemon_pid();
    s.env.clear_calls();
    let status = s.env.run(&["status"]);
    status.expect(0);
    assert!(
        status.stdout.contains("finished:") && status.stdout.contains("updated 0.1.0 -> 0.2.0"),
        "status finishes it when no run is in progress: {}",
        status.stdout
    );
    assert_eq!(
        s.env.daemon_pid(),
        pid,
        "the new daemon was watched, not restarted"
    );
    assert!(
        !calls_of(&s.env, "systemctl")
            .iter()
            .any(|c| c.contains("restart"))
    );
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn sigterm_during_the_health_watch_finishes_the_switch_before_exiting() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "4s");
    let mut run = proving(&s.env);
    signal(&run, libc::SIGTERM);
    let status = run.wait().unwrap();
    let stderr = stderr_of(&mut run);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("finishing the switch first") && stderr.contains("updated 0.1.0 -> 0.2.0"),
        "{stderr}"
    );
    assert_eq!(s.env.state()["intent"], serde_json::Value::Null);
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn sigterm_during_the_health_watch_of_a_bad_release_rolls_back_with_its_restart() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "6s");
    s.env.fake_mode("bad-0.2.0", "2");
    let mut run = proving(&s.env);
    signal(&run, libc::SIGTERM);
    let status = run.wait().unwrap();
    let stderr = stderr_of(&mut run);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rolled back to 0.1.0, which is healthy")
            && !stderr.contains("ROLLBACK FAILED"),
        "{stderr}"
    );
    // The daemon runs what the links name: the old version, restarted for real.
    assert_sound(&s.env, "0.1.0");
    assert_eq!(s.env.state()["intent"], serde_json::Value::Null);
}

#[test]
fn a_second_sigterm_leaves_the_switch_to_the_next_run_and_says_so() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "8s");
    let mut run = proving(&s.env);
    signal(&run, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    signal(&run, libc::SIGTERM);
    let status = run.wait().unwrap();
    let stderr = stderr_of(&mut run);
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("the switch is unfinished and the next run finishes it"),
        "{stderr}"
    );
    assert!(!stderr.contains("ROLLBACK FAILED"), "{stderr}");
    assert_eq!(phase(&s.env).as_deref(), Some("proving"));
    assert!(s.env.no_backoff(), "an interruption backs nothing off");
    let text = s.env.run(&["status", "--json"]).json();
    assert_eq!(
        text["switch"],
        serde_json::Value::Null,
        "status finished it"
    );
    assert_sound(&s.env, "0.2.0");
}

/// health_timeout bounds only the coming up, counted from when the restart command
/// returned: a restart that blocks 4 s (the old daemon drains) followed by a daemon that
/// takes 1 s more to come up passes a 3 s health_timeout. Counted from before the restart,
/// the new daemon would still be starting when 3 s had passed, and be called bad.
#[test]
fn a_slow_restart_does_not_count_against_health_timeout() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env
        .var("HEPH_SELFUPDATE_HEALTH_TIMEOUT", "3s")
        .var("HEPH_SELFUPDATE_HEALTH_SETTLE", "1s");
    // The old daemon takes longer to stop than health_timeout allows for coming up…
    s.env.fake_mode("restart-delay", "4");
    // …and the new one is still starting for a while after the restart returned.
    s.env.fake_mode("come-up-delay", "1");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(!s.env.is_bad("0.2.0"), "{}", run.stderr);
    assert_sound(&s.env, "0.2.0");
    // The stand-in's delays were in effect: from the restart to the daemon up, at least
    // the 4 s restart and the 1 s come-up (a lower bound the stand-in guarantees).
    let downtime = s.env.state()["last_downtime_secs"].as_f64().unwrap();
    assert!(downtime >= 4.99, "downtime {downtime} s\n{}", run.stderr);
}

#[test]
fn a_restart_beyond_restart_timeout_is_unknown_health_not_a_bad_release() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_RESTART_TIMEOUT", "1s");
    s.env.fake_mode("restart-delay", "3");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("did not finish within restart_timeout"),
        "{}",
        run.stderr
    );
    assert!(!s.env.is_bad("0.2.0"), "not proven bad");
    assert!(s.env.backoff_of("0.2.0").is_object(), "tried again later");
    s.env.clear_fake_mode("restart-delay");
    assert!(eventually(|| s.env.daemon_alive()));
}

#[test]
fn a_manual_rollback_after_an_automatic_one_goes_to_the_older_healthy_root() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    s.release("v0.3.0");
    s.env.fake_mode("bad-0.3.0", "");
    s.env.run(&["check-and-apply"]).expect(1);
    assert_sound(&s.env, "0.2.0");
    let dry = s.env.run(&["rollback", "--dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout.starts_with("# rollback: 0.2.0 -> 0.1.0"),
        "{}",
        dry.stdout
    );
    let run = s.env.run(&["rollback"]);
    run.expect(0);
    assert!(
        run.stderr.contains("rolled back from 0.2.0 to 0.1.0"),
        "{}",
        run.stderr
    );
    assert_sound(&s.env, "0.1.0");
    // And forward again, to a chosen kept root.
    s.env.run(&["rollback", "--to", "0.2.0"]).expect(0);
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn to_a_release_whose_root_was_adopted_reuses_that_root() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    s.env.clear_calls();
    let run = s.env.run(&["check-and-apply", "--to", "0.1.0"]);
    run.expect(0);
    assert!(
        calls_of(&s.env, "cargo").is_empty(),
        "nothing rebuilt: {}",
        run.stderr
    );
    assert_eq!(s.env.current_root().as_deref(), Some("0.1.0"));
    let mut roots: Vec<String> = std::fs::read_dir(s.env.data_dir().join("versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    roots.sort();
    assert_eq!(
        roots,
        ["0.1.0", "0.2.0"],
        "no 0.1.0~2, and the way back is kept"
    );
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn backoffs_are_kept_per_version() {
    let s = sandbox("0.1.0", &["v0.0.9", "v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "fail");
    s.env.run(&["check-and-apply"]).expect(1);
    assert!(s.env.backoff_of("0.2.0").is_object());
    // An unrelated failing run for another version.
    s.env.run(&["check-and-apply", "--to", "0.0.9"]).expect(1);
    assert!(s.env.backoff_of("0.0.9").is_object());
    s.env.fake_mode("cargo-mode", "ok");
    s.env.clear_calls();
    s.env.run(&["check-and-apply"]).expect(0);
    assert!(
        calls_of(&s.env, "cargo").is_empty(),
        "0.2.0 is still backed off: {:?}",
        s.env.calls()
    );
    let status = s.env.run(&["status"]).stdout;
    assert!(
        status.contains("backoff:     0.0.9") && status.contains("backoff:     0.2.0"),
        "{status}"
    );
}

#[test]
fn a_run_that_overlaps_another_update_decides_again_from_what_is_installed_then() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    // The first run learns what is installed, then waits on a slow forge answer…
    s.forge.state.lock().unwrap().delay = Some(Duration::from_secs(6));
    let mut slow = spawn(&s.env, &["check-and-apply"]);
    assert!(eventually(|| !s.forge.requests().is_empty()));
    // …while a second run updates.
    s.forge.state.lock().unwrap().delay = None;
    s.env.run(&["check-and-apply"]).expect(0);
    assert_eq!(calls_of(&s.env, "cargo").len(), 1);
    let pid = s.env.daemon_pid();
    let status = slow.wait().unwrap();
    let stderr = stderr_of(&mut slow);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        calls_of(&s.env, "cargo").len(),
        1,
        "no second build: {stderr}"
    );
    assert_eq!(s.env.daemon_pid(), pid, "no second restart");
    assert!(
        !s.env.data_dir().join("versions/0.2.0~2").exists(),
        "no duplicate root"
    );
    assert!(
        s.env.data_dir().join("versions/0.1.0").exists(),
        "the way back is kept"
    );
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn a_health_command_that_leaves_a_process_holding_its_output_cannot_hold_the_run() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let marker = s.env.dir.path().join("grandchild.pid");
    let wrapper = s.env.fake_bin(
        "health-wrapper",
        &format!(
            "#!/bin/sh\nsleep 60 &\necho $! > {}\necho healthy\nexit 0\n",
            marker.display()
        ),
    );
    s.env.var(
        "HEPH_SELFUPDATE_HEALTH_COMMAND",
        &wrapper.display().to_string(),
    );
    let started = Instant::now();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    // Correctness, not speed: the run must not wait for the 60 s grandchild.
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the run waited for a grandchild that kept the pipe: {:?}",
        started.elapsed()
    );
    let grandchild: u32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if pid_alive(grandchild) {
        unsafe { libc::kill(grandchild.cast_signed(), libc::SIGKILL) };
    }
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn a_git_server_that_accepts_and_never_answers_is_cut_off_by_the_build_limit() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    s.env
        .var(
            "HEPH_SELFUPDATE_GIT_URL",
            &format!("http://{addr}/eblume/hephaestus.git"),
        )
        .var("HEPH_SELFUPDATE_BUILD_TIMEOUT", "4s");
    let started = Instant::now();
    let run = s.env.run(&["check-and-apply"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "git's helpers held the run past its limit: {:?}\n{}",
        started.elapsed(),
        run.stderr
    );
    assert!(calls_of(&s.env, "cargo").is_empty());
    assert_sound(&s.env, "0.1.0");
    // The error line says what happened; the help line what to do.
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        error.contains("stopped after the time limit of"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "help: raise build_timeout if the build is just slow"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_version_probe_through_a_wrapper_that_leaves_a_child_holding_stdout_is_bounded() {
    // `hephd --version` through a wrapper that leaves a child holding stdout.
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let real = s.env.bin_dir.join("hephd.real");
    std::fs::rename(s.env.bin_dir.join("hephd"), &real).unwrap();
    crate::support::env::write_script(
        &s.env.bin_dir.join("hephd"),
        &format!(
            "#!/bin/sh\ncase \"$1\" in --version) sleep 60 & exec {} --version;; esac\nexec {} \"$@\"\n",
            real.display(),
            real.display()
        ),
    );
    let started = Instant::now();
    let run = s.env.run(&["check"]);
    run.expect(100);
    assert!(run.stdout.contains("installed: 0.1.0"), "{}", run.stdout);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the probe waited for the grandchild: {:?}",
        started.elapsed()
    );
    assert_eq!(version_of(&real), "hephd 0.1.0 (fake)");
}
