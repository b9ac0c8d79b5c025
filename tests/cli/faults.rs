//! Faults and hostile input. Each test ends with the daemon on a known, working version,
//! the state file valid, the lock free, and a clear message (`assert_sound`).
//! docs/reliability.md lists every row with the test that shows it.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::env::{TestEnv, pid_alive};
use crate::support::forge::{FakeForge, FakeRelease, Fault, Flavour};
use crate::support::scenario::{assert_sound, calls_of, sandbox, version_of};
use crate::support::tls::{Answer, TlsServer};

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Waits (bounded) until `cond` holds; returns whether it did. Not a timing assertion:
/// the bound only stops a broken test from hanging.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Starts `check-and-apply` with a build that never ends; returns the run (stderr piped)
/// and the PIDs of the stand-in cargo and of its child.
fn start_hanging_build(env: &TestEnv) -> (std::process::Child, u32, u32) {
    env.fake_mode("cargo-mode", "hang");
    let run = env
        .command(&["check-and-apply"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(eventually(|| read_pid(env, "cargo-child.pid").is_some()));
    (
        run,
        read_pid(env, "cargo.pid").unwrap(),
        read_pid(env, "cargo-child.pid").unwrap(),
    )
}

fn read_pid(env: &TestEnv, name: &str) -> Option<u32> {
    std::fs::read_to_string(env.dir.path().join("fake-state").join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

// ---- the forge ----

#[test]
fn dns_failure_changes_nothing() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var(
        "HEPH_SELFUPDATE_FORGE_URL",
        "http://heph-selfupdate-test.invalid",
    );
    let run = s.env.run(&["check-and-apply"]);
    run.expect(75);
    assert!(
        run.stderr.contains("heph-selfupdate-test.invalid") && run.stderr.contains("unavailable"),
        "{}",
        run.stderr
    );
    s.env.run(&["check"]).expect(1);
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn server_errors_502_and_503_change_nothing() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    for code in [502, 503] {
        s.forge
            .set_fault(Some(Fault::Status(code, "<html>Bad Gateway</html>".into())));
        let run = s.env.run(&["check-and-apply"]);
        run.expect(75);
        assert!(
            run.stderr.contains(&format!("HTTP {code}")),
            "{}",
            run.stderr
        );
    }
    assert!(calls_of(&s.env, "cargo").is_empty());
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn a_forge_that_never_answers_is_cut_off_by_http_timeout() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HTTP_TIMEOUT", "1s");
    s.forge.set_fault(Some(Fault::Hang));
    let run = s.env.run(&["check-and-apply"]);
    run.expect(75);
    assert!(
        run.stderr.contains("no answer within http_timeout"),
        "{}",
        run.stderr
    );
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn truncated_and_non_json_bodies_change_nothing() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    for fault in [Fault::Truncated, Fault::Garbage] {
        s.forge.set_fault(Some(fault));
        let run = s.env.run(&["check-and-apply"]);
        run.expect(1);
        assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
    }
    assert!(calls_of(&s.env, "cargo").is_empty());
    assert_sound(&s.env, "0.1.0");
}

/// Runs the binary under `/usr/bin/time` and returns (exit code, peak resident memory in
/// KiB). Measured by a small intermediate process: a child forked from this (large) test
/// process would count the test's own memory in its peak.
fn run_measured(env: &TestEnv, args: &[&str]) -> Option<(i32, u64)> {
    if !std::path::Path::new("/usr/bin/time").exists() {
        return None;
    }
    let report = env.dir.path().join("time.out");
    let cmd = env.command(args);
    let program = cmd.get_program().to_owned();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(program)
        .args(args)
        .env_clear()
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let kib = std::fs::read_to_string(&report)
        .ok()?
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()?;
    Some((out.code().unwrap_or(-1), kib))
}

#[test]
fn a_body_far_over_the_limit_is_refused_without_reading_it_all() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.forge.set_fault(Some(Fault::Huge(64 * 1024 * 1024)));
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(run.stderr.contains("larger than 8 MiB"), "{}", run.stderr);
    // No length declared: read up to the limit, then refused; memory stays bounded.
    s.forge
        .set_fault(Some(Fault::HugeChunked(256 * 1024 * 1024)));
    match run_measured(&s.env, &["check-and-apply"]) {
        Some((code, peak_kib)) => {
            assert_eq!(code, 1);
            assert!(
                peak_kib < 64 * 1024,
                "peak memory {peak_kib} KiB for a 256 MiB answer"
            );
        }
        None => eprintln!("SKIPPED the memory measurement: no /usr/bin/time"),
    }
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn rate_limits_exit_75_with_the_reset_time() {
    let forge = FakeForge::start(Flavour::GitHub, vec![FakeRelease::new("v0.2.0")]);
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.forge(&forge);
    forge.set_fault(Some(Fault::GitHubRateLimit {
        reset: 1_900_000_000,
    }));
    let run = s.env.run(&["check-and-apply"]);
    run.expect(75);
    assert!(
        run.stderr.contains("resets at 2030-03-17T17:46:40Z"),
        "{}",
        run.stderr
    );
    forge.set_fault(Some(Fault::TooManyRequests));
    let run = s.env.run(&["check-and-apply"]);
    run.expect(75);
    assert!(
        run.stderr.contains("rate limiting") && run.stderr.contains("resets at"),
        "{}",
        run.stderr
    );
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn a_redirect_to_another_host_does_not_carry_the_token() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let other = FakeForge::start(
        Flavour::Forgejo,
        vec![FakeRelease::new("v0.2.0"), FakeRelease::new("v0.1.0")],
    );
    // Another origin: `localhost` and a different port.
    s.forge.set_fault(Some(Fault::RedirectTo(format!(
        "http://localhost:{}",
        other.addr.port()
    ))));
    s.env.var("HEPH_SELFUPDATE_TOKEN", "tok-stays-home");
    let run = s.env.run(&["check", "--json"]);
    run.expect(100);
    assert_eq!(
        s.forge.requests()[0].header("authorization"),
        Some("token tok-stays-home")
    );
    let there = other.requests();
    assert!(!there.is_empty());
    assert!(
        there.iter().all(|r| r.header("authorization").is_none()),
        "{there:?}"
    );
}

#[test]
fn a_redirect_loop_is_stopped() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.forge.set_fault(Some(Fault::RedirectLoop));
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(run.stderr.contains("too many redirects"), "{}", run.stderr);
    assert!(s.forge.requests().len() <= 6);
    assert_sound(&s.env, "0.1.0");
}

// ---- the build ----

#[test]
fn cargo_killed_mid_build_changes_nothing() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let (mut run, cargo, child) = start_hanging_build(&s.env);
    unsafe { libc::kill(cargo.cast_signed(), libc::SIGKILL) };
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("killed by a signal"), "{stderr}");
    assert!(!pid_alive(child), "the rest of its group is gone");
    assert!(!s.env.data_dir().join("versions/.partial-0.2.0").exists());
    assert_eq!(s.env.state()["history"][0]["outcome"], "failed");
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn the_run_killed_by_sigkill_takes_its_build_with_it_and_the_next_run_cleans_up() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let (mut run, cargo, child) = start_hanging_build(&s.env);
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(
        eventually(|| !pid_alive(cargo) && !pid_alive(child)),
        "cargo's process group outlived the run"
    );
    assert!(
        s.env
            .data_dir()
            .join("versions/.partial-0.2.0/bin/partial")
            .exists(),
        "the half-built root is left"
    );
    assert_sound(&s.env, "0.1.0");

    s.env.fake_mode("cargo-mode", "ok");
    let next = s.env.run(&["check-and-apply"]);
    next.expect(0);
    assert!(
        next.stderr.contains("removed what an interrupted run left"),
        "{}",
        next.stderr
    );
    assert!(!s.env.data_dir().join("versions/0.2.0/bin/partial").exists());
    assert_sound(&s.env, "0.2.0");
}

/// A run killed in the middle of an atomic write leaves its temporary file (an
/// unpredictable `.NAME.tmp-<16 hex>` beside the file). The next update removes ours, in
/// our own directories and beside our links in `bin_dir`, once they are an hour old; it
/// leaves anything else, there or in a directory that is not ours.
#[test]
fn temporary_files_a_killed_write_left_are_removed_by_the_next_update_and_no_others() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let env = &s.env;
    let aged = |p: &std::path::Path| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "half").unwrap();
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
    };
    let stray = [
        env.state_dir().join(".state.json.tmp-0123456789abcdef"),
        env.data_dir().join(".current.tmp-0123456789abcdef"),
        env.home
            .join(".cache/heph-selfupdate/http/.page.json.tmp-0123456789abcdef"),
        env.bin_dir.join(".hephd.tmp-0123456789abcdef"),
    ];
    let others = [
        env.bin_dir.join(".cargo-tool.tmp-0123456789abcdef"),
        env.state_dir().join(".state.json.tmp-notours"),
        env.home.join(".other/.state.json.tmp-0123456789abcdef"),
    ];
    for p in stray.iter().chain(&others) {
        aged(p);
    }
    let run = env.run(&["check-and-apply"]);
    run.expect(0);
    for p in &stray {
        assert!(!p.exists(), "{} is left:\n{}", p.display(), run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "removed a temporary file a killed write left: {}",
                p.display()
            )),
            "{}",
            run.stderr
        );
    }
    for p in &others {
        assert!(p.exists(), "{} is not ours to remove", p.display());
    }
}

#[test]
fn the_run_stopped_by_sigterm_stops_its_build_and_says_so() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let (mut run, cargo, child) = start_hanging_build(&s.env);
    unsafe { libc::kill(i32::try_from(run.id()).unwrap(), libc::SIGTERM) };
    let status = run.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(75), "try later: {stderr}");
    assert!(
        stderr.contains("interrupted; nothing was changed"),
        "{stderr}"
    );
    assert!(!pid_alive(cargo) && !pid_alive(child));
    assert_eq!(s.env.state()["history"][0]["outcome"], "interrupted");
    assert!(
        s.env.no_backoff(),
        "an interruption is not the release's fault"
    );
    assert_sound(&s.env, "0.1.0");
    s.env.fake_mode("cargo-mode", "ok");
    s.env.run(&["check-and-apply"]).expect(0);
    assert_sound(&s.env, "0.2.0");
}

/// A small tmpfs mounted at the data dir (root only).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_early_or_fails_cleanly() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs as the data dir needs root");
        return;
    }
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let Some(_fs) = Tmpfs::mount(&s.env.data_dir(), "16m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    };
    s.env.var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "2GiB");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("free at") && run.stderr.contains("min_free_space"),
        "{}",
        run.stderr
    );
    assert!(
        calls_of(&s.env, "cargo").is_empty(),
        "refused before building"
    );

    s.env.var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "1MiB");
    s.env.fake_mode("cargo-mode", "fill");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
    assert!(s.env.no_backoff(), "a full disk is not the release's fault");
    let free = heph_selfupdate::fsutil::free_space(&s.env.data_dir()).unwrap();
    assert!(
        free > 15 * 1024 * 1024,
        "the half-built root was removed ({free} bytes free)"
    );
    assert_sound(&s.env, "0.1.0");
}

// ---- switch and restart ----

#[test]
fn a_daemon_that_dies_after_a_few_seconds_is_rolled_back() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_SETTLE", "4s");
    s.env.fake_mode("bad-0.2.0", "2");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("stopped while settling")
            && run.stderr.contains("rolled back to 0.1.0"),
        "{}",
        run.stderr
    );
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn a_daemon_that_never_becomes_ready_is_rolled_back() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_HEALTH_TIMEOUT", "3s");
    s.env.fake_mode("stuck-0.2.0", "");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("did not come up within health_timeout"),
        "{}",
        run.stderr
    );
    assert!(s.env.is_bad("0.2.0"));
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn an_unreachable_service_manager_stops_the_run_before_anything_changes() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("manager-down", "");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("cannot be read") && run.stderr.contains("Failed to connect to bus"),
        "{}",
        run.stderr
    );
    assert!(
        calls_of(&s.env, "cargo").is_empty(),
        "no build nobody can restart"
    );
    s.env.clear_fake_mode("manager-down");
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn a_refused_restart_rolls_back_without_blaming_the_release() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("restart-fails-once", "");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("the restart failed") && run.stderr.contains("rolled back to 0.1.0"),
        "{}",
        run.stderr
    );
    let state = s.env.state();
    assert_eq!(
        state["bad"],
        serde_json::json!({}),
        "health unknown is not proof of a bad release"
    );
    assert!(
        s.env.backoff_of("0.2.0").is_object(),
        "but it waits before the next try"
    );
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn a_failed_rollback_says_so_loudly_and_status_shows_the_state() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("bad-0.2.0", "");
    s.env.fake_mode("bad-0.1.0", "");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("ROLLBACK FAILED") && run.stderr.contains("needs a person"),
        "{}",
        run.stderr
    );
    let status = s.env.run(&["status", "--json"]).json();
    assert_eq!(status["last_apply"]["outcome"], "rollback-failed");
    assert_eq!(
        status["current"], "0.1.0",
        "the files are back on the old version"
    );
    assert_eq!(status["bad"][0]["version"], "0.2.0");
    let text = s.env.run(&["status"]).stdout;
    assert!(
        text.contains("next step:") && text.contains("systemctl --user status hephd.service"),
        "{text}"
    );
    // Once the old daemon can start again, everything is sound.
    s.env.clear_fake_mode("bad-0.1.0");
    s.env.start_daemon();
    assert_sound(&s.env, "0.1.0");
}

// ---- concurrency ----

#[test]
fn eight_runs_at_once_build_exactly_once() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "slow");
    let mut runs: Vec<_> = (0..8)
        .map(|_| {
            s.env
                .command(&["check-and-apply"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Exit codes in the order the runs ended.
    let mut ended: Vec<(usize, Option<i32>)> = Vec::new();
    while ended.len() < runs.len() {
        for (i, r) in runs.iter_mut().enumerate() {
            if ended.iter().any(|(j, _)| *j == i) {
                continue;
            }
            if let Some(st) = r.try_wait().unwrap() {
                ended.push((i, st.code()));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let codes: Vec<Option<i32>> = ended.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == Some(75)).count(),
        7,
        "{codes:?}"
    );
    assert_eq!(
        codes.last(),
        Some(&Some(0)),
        "the busy runs ended before the build did: {codes:?}"
    );
    assert_eq!(calls_of(&s.env, "cargo").len(), 1);
    assert_sound(&s.env, "0.2.0");
}

// ---- the state file and the cache ----

#[test]
fn a_truncated_state_file_is_recovered_with_its_bad_marks() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("bad-0.2.0", "");
    s.env.run(&["check-and-apply"]).expect(1);
    let path = s.env.state_dir().join("state.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    s.env.clear_calls();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("state file was damaged") && run.stderr.contains("backup copy"),
        "{}",
        run.stderr
    );
    assert!(
        calls_of(&s.env, "cargo").is_empty(),
        "0.2.0 is still marked bad"
    );
    assert!(s.env.is_bad("0.2.0"));
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn a_state_file_and_backup_of_garbage_are_moved_aside_with_a_warning() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    std::fs::create_dir_all(s.env.state_dir()).unwrap();
    std::fs::write(s.env.state_dir().join("state.json"), "not json {").unwrap();
    std::fs::write(s.env.state_dir().join("state.json.bak"), "[1, 2").unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("no good backup exists") && run.stderr.contains("state.json.corrupt-"),
        "{}",
        run.stderr
    );
    let aside = std::fs::read_dir(s.env.state_dir())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        });
    assert!(aside, "kept for inspection");
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn a_state_file_from_a_future_version_is_refused_and_left_alone() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    std::fs::create_dir_all(s.env.state_dir()).unwrap();
    let future = "{\"schema\": 9, \"bad\": [], \"feature_from_the_future\": true}\n";
    std::fs::write(s.env.state_dir().join("state.json"), future).unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("newer heph-selfupdate"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(s.env.state_dir().join("state.json")).unwrap(),
        future
    );
    assert!(calls_of(&s.env, "cargo").is_empty());
    let lock = heph_selfupdate::lock::RunLock::acquire(&s.env.state_dir());
    assert!(lock.is_ok());
}

#[test]
fn an_unwritable_state_stops_the_run_before_anything_changes() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let dir = s.env.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut mounts = Vec::new();
    if is_root() {
        // Root ignores permission bits: a read-only file system, with only the lock file
        // (bind-mounted from elsewhere) writable.
        let Some(fs) = Tmpfs::mount(&dir, "1m") else {
            eprintln!("SKIPPED: cannot mount a tmpfs here");
            return;
        };
        std::fs::write(dir.join("lock"), "").unwrap();
        let writable = s.env.dir.path().join("writable-lock");
        std::fs::write(&writable, "").unwrap();
        assert!(
            Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(&dir)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            Command::new("mount")
                .arg("--bind")
                .arg(&writable)
                .arg(dir.join("lock"))
                .status()
                .unwrap()
                .success()
        );
        mounts.push(Tmpfs(dir.join("lock")));
        mounts.push(fs);
        mounts.reverse();
    } else {
        heph_selfupdate::lock::RunLock::acquire(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("could not save the run's state"),
        "{}",
        run.stderr
    );
    assert!(calls_of(&s.env, "cargo").is_empty(), "nothing built");
    assert_eq!(
        version_of(&s.env.bin_dir.join("hephd")),
        "hephd 0.1.0 (fake)"
    );
    assert!(s.env.daemon_alive());
    if !is_root() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    // The lock file's mount goes first.
    mounts.reverse();
    drop(mounts);
}

#[test]
fn a_corrupt_http_cache_entry_is_dropped_with_a_warning() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check"]).expect(100);
    let cache = s.env.home.join(".cache/heph-selfupdate/http");
    for e in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(e.unwrap().path(), "{\"url\": 5").unwrap();
    }
    let run = s.env.run(&["check", "--json"]);
    run.expect(100);
    assert!(
        run.stderr.contains("corrupt HTTP cache entry"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json()["latest"], "0.2.0");
    assert!(
        s.forge
            .requests()
            .last()
            .unwrap()
            .header("if-none-match")
            .is_none(),
        "asked afresh"
    );
}

// ---- hostile input ----

#[test]
fn hostile_tags_are_skipped_and_never_reach_a_program() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let hostile = [
        "-v9.0.0",
        "--upload-pack=touch /tmp/pwned",
        "v9.0.0 --force",
        "v9.0.0;rm -rf ~",
        "v9.0.0$(id)",
        "../../v9.0.0",
        "v9.0.0/../../etc",
        "v9.0.0\u{1b}[31m",
        "v9.0.0\n",
    ];
    let long = format!("v9.0.0-{}", "a".repeat(5000));
    let mut releases: Vec<FakeRelease> = hostile.iter().map(|t| FakeRelease::new(t)).collect();
    releases.push(FakeRelease::new(&long));
    releases.push(FakeRelease::new("v0.2.0"));
    s.forge.set_releases(releases);
    let j = s.env.run(&["check", "--json"]).json();
    assert_eq!(j["latest"], "0.2.0");
    let skipped = j["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), hostile.len() + 1);
    assert!(
        skipped.iter().all(|s| s["reason"] == "bad_tag"),
        "{skipped:?}"
    );
    s.env.run(&["check-and-apply"]).expect(0);
    let calls = s.env.calls().join("\n");
    assert!(
        !calls.contains("9.0.0") && !calls.contains("pwned"),
        "{calls}"
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let roots: Vec<String> = std::fs::read_dir(s.env.data_dir().join("versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(roots.iter().all(|r| !r.contains("9.0.0")), "{roots:?}");
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn malformed_release_json_never_panics() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let wide = format!(
        "[{}]",
        vec!["{\"tag_name\": \"nightly\"}"; 100_000].join(",")
    );
    let cases: Vec<(String, i32)> = vec![
        ("[{\"name\": \"no tag\"}, {\"tag_name\": 7}, {\"tag_name\": \"v0.2.0\", \"draft\": \"no\"}]".into(), 0),
        ("{\"releases\": []}".into(), 1),
        ("[\"v0.2.0\"]".into(), 0),
        (deep, 1),
        (wide, 0),
        (r#"[{"tag_name": "v0.2.0\ud800"}]"#.into(), 1),
    ];
    for (body, code) in cases {
        s.forge.set_fault(Some(Fault::Status(200, body.clone())));
        let run = s.env.run(&["check-and-apply"]);
        assert_eq!(run.code, code, "body {:.80}: {}", body, run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    s.forge.set_fault(Some(Fault::Bytes(
        b"[{\"tag_name\": \"v0.2.0\xff\xfe\"}]".to_vec(),
    )));
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn version_output_that_is_empty_or_huge_counts_as_unknown() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_bin("empty-version", "#!/bin/sh\nexit 0\n");
    std::fs::copy(
        s.env.fakes.join("empty-version"),
        s.env.bin_dir.join("heph"),
    )
    .unwrap();
    crate::support::env::write_script(
        &s.env.bin_dir.join("hephd"),
        "#!/bin/sh\ncase \"$1\" in --version) exit 0;; esac\nexec sleep 100000\n",
    );
    let j = s.env.run(&["check", "--json"]).json();
    assert_eq!(j["installed"], serde_json::Value::Null);
    assert_eq!(j["reason"], "not_installed");
    crate::support::env::write_script(
        &s.env.bin_dir.join("hephd"),
        "#!/bin/sh\nhead -c 5000000 /dev/zero | tr '\\0' x\n",
    );
    let run = s.env.run(&["check", "--json"]);
    assert_eq!(run.json()["installed"], serde_json::Value::Null);
    assert!(run.stderr.contains("printed no version"), "{}", run.stderr);
    let text = s.env.run(&["check"]).stdout;
    assert!(
        text.contains("installed: unknown (") && text.contains("printed no version"),
        "{text}"
    );
}

#[test]
fn a_git_url_with_credentials_is_refused_and_never_echoed() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var(
        "HEPH_SELFUPDATE_GIT_URL",
        "https://bob:hunter2@forge.example/eblume/hephaestus.git",
    );
    for args in [
        &["check-and-apply"][..],
        &["check"],
        &["config"],
        &["status"],
    ] {
        let run = s.env.run(args);
        run.expect(2);
        assert!(
            run.stderr.contains("credentials") && !run.all().contains("hunter2"),
            "{}",
            run.all()
        );
    }
}

#[test]
fn a_bin_dir_that_does_not_exist_is_reported_not_created() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let missing = s.env.home.join("no/such/bin");
    s.env
        .var("HEPH_SELFUPDATE_BIN_DIR", missing.to_str().unwrap());
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(!missing.exists());
    assert!(calls_of(&s.env, "cargo").is_empty());
}

// ---- security properties ----

#[test]
fn the_token_appears_nowhere() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let token = "tok-0123456789-secret";
    s.env.var("HEPH_SELFUPDATE_TOKEN", token);
    s.forge.state.lock().unwrap().require_token = Some(token.to_owned());
    let mut printed = String::new();
    for args in [
        &["check", "-vv"][..],
        &["check", "--json", "-vv"],
        &["check-and-apply", "--dry-run", "-vv"],
        &["check-and-apply", "--dry-run", "--json"],
        &["config"],
        &["config", "--json"],
        &["check-and-apply", "-vv"],
        &["check-and-apply", "--json"],
        &["status", "-vv"],
        &["status", "--json"],
        &["doctor", "-vv"],
        &["rollback", "-vv"],
    ] {
        printed.push_str(&s.env.run(args).all());
    }
    assert!(!printed.contains(token));
    let calls = s.env.calls().join("\n");
    assert!(
        !calls.contains(token) && !calls.contains("TOKEN-IN-ENVIRONMENT"),
        "{calls}"
    );
    for dir in [
        s.env.state_dir(),
        s.env.home.join(".cache/heph-selfupdate"),
        s.env.data_dir(),
    ] {
        for entry in walk(&dir) {
            if let Ok(bytes) = std::fs::read(&entry) {
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(token),
                    "{} holds the token",
                    entry.display()
                );
            }
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_token_file_others_can_read_gets_a_warning() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let file = s.env.home.join("token");
    std::fs::write(&file, "tok\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.env
        .var("HEPH_SELFUPDATE_TOKEN_FILE", file.to_str().unwrap());
    let run = s.env.run(&["check"]);
    assert!(
        run.stderr.contains("readable by other users") && run.stderr.contains("chmod 600"),
        "{}",
        run.stderr
    );
}

#[test]
fn state_cache_and_data_are_private() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for dir in [
        s.env.state_dir(),
        s.env.home.join(".cache/heph-selfupdate"),
        s.env.data_dir(),
        s.env.data_dir().join("versions"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in ["lock", "state.json", "state.json.bak"] {
        assert_eq!(mode(&s.env.state_dir().join(file)), 0o600, "{file}");
    }
    for log in std::fs::read_dir(s.env.state_dir().join("logs")).unwrap() {
        assert_eq!(mode(&log.unwrap().path()), 0o600);
    }
}

#[test]
fn plain_http_forges_get_no_token_except_on_loopback() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env
        .var("HEPH_SELFUPDATE_TOKEN", "tok-x")
        .var("HEPH_SELFUPDATE_FORGE_URL", "http://forge.example.invalid");
    let run = s.env.run(&["check"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("refusing to send the forge token over plain http"),
        "{}",
        run.stderr
    );
    s.env
        .var("HEPH_SELFUPDATE_FORGE_URL", "ftp://forge.example");
    s.env.run(&["check"]).expect(2);
}

#[test]
fn no_shell_runs_anywhere_in_the_tool() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in walk(&src) {
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text.split("#[cfg(test)]").next().unwrap().to_owned();
        for needle in ["\"sh\"", "\"/bin/sh\"", "\"bash\"", "\"zsh\""] {
            assert!(
                !code.contains(needle),
                "{} mentions {needle} outside tests",
                file.display()
            );
        }
        // Every child process goes through the one runner, which passes argv only.
        if !file.ends_with("process.rs") {
            assert!(
                !code.contains("Command::new("),
                "{} starts a process outside the runner",
                file.display()
            );
        }
    }
}

#[test]
fn an_untrusted_tls_certificate_fails_loudly_and_a_trusted_one_connects() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let Some(tls) = TlsServer::start(&s.env.dir.path().join("tls"), Answer::StatusPage) else {
        eprintln!("SKIPPED: openssl is not installed");
        return;
    };
    s.env.var(
        "HEPH_SELFUPDATE_FORGE_URL",
        &format!("https://localhost:{}", tls.port),
    );
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("TLS connection") && run.stderr.contains("not trusted"),
        "{}",
        run.stderr
    );
    // With its CA trusted the handshake succeeds; openssl's page is then not a release list.
    s.env.var("SSL_CERT_FILE", tls.ca.to_str().unwrap());
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
    // The same through `ca_file`, the one setting the forge, git and cargo share.
    s.env.unset("SSL_CERT_FILE");
    s.env
        .var("HEPH_SELFUPDATE_CA_FILE", tls.ca.to_str().unwrap());
    let run = s.env.run(&["check"]);
    run.expect(1);
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
    assert_sound(&s.env, "0.1.0");
}
