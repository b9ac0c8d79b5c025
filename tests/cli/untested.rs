//! Behaviours that were built but not yet shown by a test of the real binary: `status`
//! saying since when the daemon runs, a staged root surviving pruning and giving way to a
//! newer release, the free-space check that counts what the last build took, and a long
//! build saying it is alive at a terminal.

use crate::fleet::closed_window;
use crate::support::scenario::{assert_sound, calls_of, sandbox};

/// `status` relays since when the manager says the daemon runs (systemd's
/// `ActiveEnterTimestamp`), in the daemon line and in `--json`.
#[test]
fn status_says_since_when_the_daemon_runs() {
    let s = sandbox("0.1.0", &["v0.1.0"]);
    let since = std::fs::read_to_string(s.env.dir.path().join("fake-state/since")).unwrap();
    let since = since.trim();
    assert!(!since.is_empty(), "the stand-in noted when it started");
    let pid = s.env.daemon_pid().unwrap();
    let run = s.env.run(&["status"]);
    run.expect(0);
    let expected =
        format!("daemon:      hephd.service: active (running), pid {pid}, since {since}");
    assert!(
        run.stdout.contains(&expected),
        "{expected}:\n{}",
        run.stdout
    );
    let j = s.env.run(&["status", "--json"]).json();
    assert_eq!(j["daemon"]["since"], since, "{j}");
    assert_eq!(j["daemon"]["running"], true, "{j}");
}

/// A root staged for the restart window is kept when pruning runs, even with
/// `keep_versions = 1` and two other roots protected (`current` and the way back). A newer
/// release outside the window is built and staged in its place; the root it replaced is
/// no longer protected and goes, and `status` and `check` name the new one.
#[test]
fn a_staged_root_survives_pruning_until_a_newer_release_replaces_it() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env
        .var("TZ", "UTC")
        .var("HEPH_SELFUPDATE_KEEP_VERSIONS", "1");
    s.env.run(&["check-and-apply"]).expect(0);
    assert_sound(&s.env, "0.2.0");
    let versions = s.env.data_dir().join("versions");
    assert!(versions.join("0.1.0").is_dir(), "the way back is kept");

    // Outside the window: 0.3.0 is built and staged; pruning (keep_versions = 1) runs.
    s.env
        .var("HEPH_SELFUPDATE_RESTART_WINDOW", &closed_window());
    s.release("v0.3.0");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("staged it as version root 0.3.0"),
        "{}",
        run.stderr
    );
    assert!(
        versions.join("0.3.0").is_dir(),
        "the staged root was pruned:\n{}",
        run.stderr
    );
    assert_eq!(s.env.state()["staged"]["root"], "0.3.0");
    assert_sound(&s.env, "0.2.0");

    // A newer release, still outside the window: built and staged instead.
    s.release("v0.4.0");
    s.env.clear_calls();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert_eq!(calls_of(&s.env, "cargo").len(), 1, "0.4.0 was built");
    assert!(
        run.stderr.contains("staged it as version root 0.4.0"),
        "{}",
        run.stderr
    );
    assert_eq!(s.env.state()["staged"]["version"], "0.4.0");
    assert!(
        versions.join("0.4.0").is_dir(),
        "the new staged root is kept"
    );
    assert!(
        !versions.join("0.3.0").exists(),
        "the replaced staged root is pruned:\n{}",
        run.stderr
    );
    assert_sound(&s.env, "0.2.0");
    let status = s.env.run(&["status"]).stdout;
    assert!(
        status.contains("staged:      0.4.0 (version root 0.4.0); restarts in the window at"),
        "{status}"
    );
    let check = s.env.run(&["check"]);
    assert!(
        check
            .stdout
            .contains("staged:    0.4.0 (version root 0.4.0); restarts in the window at"),
        "{}",
        check.stdout
    );
    let j = s.env.run(&["check", "--json"]).json();
    assert_eq!(j["staged"]["root"], "0.4.0", "{j}");
}

/// Before building, the free-space check asks for `min_free_space` plus what the last
/// build took (from `build-stats.json` in the cache dir): with a last build that took
/// 1 PiB, no disk here has room, so the run stops before cargo runs, with the documented
/// message and exit code 1 (failed), and without blaming the release (no backoff).
#[test]
fn a_build_stops_before_it_starts_when_the_disk_cannot_hold_what_the_last_build_took() {
    use std::os::unix::fs::PermissionsExt;
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let cache = s.env.home.join(".cache/heph-selfupdate");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let pib: u64 = 1 << 50;
    let stats = serde_json::json!({
        "last_build": {
            "at": "2026-01-01T00:00:00Z",
            "tag": "v0.1.0",
            "mode": "git",
            "phases": [],
            "root_bytes": pib,
            "target_bytes": 0,
            "target_growth": 0,
        },
    });
    std::fs::write(cache.join("build-stats.json"), stats.to_string()).unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("the build is expected to take 1.0 PiB (as much as the last one did) and min_free_space = 1.0 MiB must stay free")
            && run.stderr.contains("help: free some space, lower cache_max_size, or lower min_free_space"),
        "{}",
        run.stderr
    );
    assert!(
        calls_of(&s.env, "cargo").is_empty(),
        "stopped before building"
    );
    assert!(s.env.no_backoff(), "a full disk is not the release's fault");
    assert!(!s.env.is_bad("0.2.0"));
    assert_sound(&s.env, "0.1.0");
}

/// At a terminal, a build that takes longer than 30 s says every 30 s that it is still
/// running and for how long, so a 15-minute build does not look hung. (Takes 33 s.)
#[test]
fn a_long_build_at_a_terminal_says_every_30_s_that_it_is_still_running() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "long");
    let (code, shown) = crate::support::pty::run_at_a_terminal(s.env.command(&["check-and-apply"]));
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("build heph hephd v0.2.0: 30s"),
        "no progress line: {shown}"
    );
    assert_sound(&s.env, "0.2.0");
}

/// Replaces what changes from run to run in `status` output with placeholders: the
/// sandbox's path, times (`[TIME]`, `[DATE]`, `[CLOCK]`, the weekday after "since"),
/// durations (`[DUR]`) and the daemon's PID.
fn normalised(text: &str, sandbox: &str) -> String {
    let is_duration = |w: &str| {
        let n = w.trim_end_matches('s');
        w.ends_with('s') && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    let is_time = |w: &str| w.len() == 20 && w.as_bytes()[10] == b'T' && w.ends_with('Z');
    let is_date = |w: &str| w.len() == 10 && w.as_bytes()[4] == b'-' && w.as_bytes()[7] == b'-';
    let is_clock = |w: &str| w.len() == 8 && w.as_bytes()[2] == b':' && w.as_bytes()[5] == b':';
    let text = text.replace(sandbox, "[SANDBOX]");
    let mut out = String::new();
    for line in text.lines() {
        let mut prev = "";
        let words: Vec<String> = line
            .split(' ')
            .map(|w| {
                let core = w
                    .trim_start_matches('(')
                    .trim_end_matches([')', ',', ';', ':']);
                let placeholder = if is_time(core) {
                    Some("[TIME]")
                } else if is_date(core) {
                    Some("[DATE]")
                } else if is_clock(core) {
                    Some("[CLOCK]")
                } else if is_duration(core) {
                    Some("[DUR]")
                } else if prev == "pid" || prev == "since" {
                    Some(if prev == "pid" { "[PID]" } else { "[DAY]" })
                } else {
                    None
                };
                prev = core;
                placeholder.map_or_else(|| w.to_owned(), |p| w.replacen(core, p, 1))
            })
            .collect();
        let line = words.join(" ");
        // A right-aligned duration's padding depends on its width.
        let line = match line.trim_start().strip_prefix("[DUR]") {
            Some(rest) => format!("    [DUR]{rest}"),
            None => line,
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `status` and `status --history` after an update and a failed one, as a person reads
/// them: reviewed snapshots (times, durations, PIDs and paths replaced).
#[test]
fn status_and_its_history_are_reviewed_snapshots() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    s.forge.set_releases(vec![
        crate::support::forge::FakeRelease::new("v0.3.0"),
        crate::support::forge::FakeRelease::new("v0.2.0"),
        crate::support::forge::FakeRelease::new("v0.1.0"),
    ]);
    // v0.3.0 is listed, but the repository has no such tag: the build fails.
    s.env.run(&["check-and-apply"]).expect(1);
    let sandbox_dir = s.env.dir.path().display().to_string();
    let status = s.env.run(&["status"]);
    let history = s.env.run(&["status", "--history"]);
    crate::support::assert_snapshot("status.txt", &normalised(&status.stdout, &sandbox_dir));
    crate::support::assert_snapshot(
        "status-history.txt",
        &normalised(&history.stdout, &sandbox_dir),
    );
}
