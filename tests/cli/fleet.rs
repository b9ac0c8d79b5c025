//! Fleets and headless hosts, with the stand-ins: a phased rollout (`rollout_spread`,
//! `rollout_wave`, halted by turning a release into a draft), restart windows (build now,
//! switch in the window), the Prometheus metrics file (checked by promtool), and the
//! decision's honesty: the hold that matters, a pin the forge does not have, `--json` on
//! failure.

use std::io::Write as _;
use std::process::{Command, Stdio};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::forge::FakeRelease;
use crate::support::scenario::{assert_sound, calls_of, sandbox};

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn hours_ago(h: i64) -> String {
    rfc3339(OffsetDateTime::now_utc() - time::Duration::hours(h))
}

/// A window of local time (the tests run with TZ=UTC) that is closed now: it opens in
/// three hours and lasts one.
pub(crate) fn closed_window() -> String {
    let start = OffsetDateTime::now_utc() + time::Duration::hours(3);
    let end = start + time::Duration::hours(1);
    format!(
        "{:02}:{:02}-{:02}:{:02}",
        start.hour(),
        start.minute(),
        end.hour(),
        end.minute()
    )
}

#[test]
fn check_says_when_a_release_becomes_eligible_on_this_host() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.forge.set_releases(vec![
        FakeRelease::new("v0.2.0").published(&hours_ago(10)),
        FakeRelease::new("v0.1.0"),
    ]);
    s.env
        .var("HEPH_SELFUPDATE_ROLLOUT_SPREAD", "2d")
        .var("HEPH_SELFUPDATE_ROLLOUT_WAVE", "0.9")
        .var("HEPH_SELFUPDATE_HOST_ID", "web-1");
    let run = s.env.run(&["check"]);
    run.expect(0);
    assert!(
        run.stdout
            .contains("v0.2.0 is held: eligible on this host at")
            && run.stdout.contains("(pinned wave 0.90 of 2d)"),
        "{}",
        run.stdout
    );
    let j = s.env.run(&["check", "--json"]).json();
    assert_eq!(j["reason"], "rollout_wave");
    assert_eq!(j["wave"], 0.9);
    let at = OffsetDateTime::parse(j["wait_until"].as_str().unwrap(), &Rfc3339).unwrap();
    let hours = (at - OffsetDateTime::now_utc()).as_seconds_f64() / 3600.0;
    assert!(
        (32.0..34.0).contains(&hours),
        "43.2 h after publishing: {hours} h from now"
    );
    // The host's own wave (hashed from its id and the tag) when none is pinned.
    s.env.unset("HEPH_SELFUPDATE_ROLLOUT_WAVE");
    let j = s.env.run(&["check", "--json"]).json();
    let wave = j["wave"].as_f64().unwrap_or(-1.0);
    let expected = heph_selfupdate::rollout::wave("web-1", "v0.2.0");
    if j["update_available"] == false {
        assert!((wave - expected).abs() < 1e-12, "{j}");
    } else {
        assert!(
            expected * 48.0 <= 10.0,
            "due only when its wave came: {expected}"
        );
    }
    // The canary takes it at once.
    s.env.var("HEPH_SELFUPDATE_ROLLOUT_WAVE", "0");
    s.env.run(&["check"]).expect(100);
}

#[test]
fn a_release_turned_into_a_draft_is_never_installed_by_a_later_wave() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env
        .var("HEPH_SELFUPDATE_ROLLOUT_SPREAD", "2d")
        .var("HEPH_SELFUPDATE_ROLLOUT_WAVE", "0.9")
        .var("HEPH_SELFUPDATE_HOST_ID", "web-9");
    // Published 3 days ago: the cautious wave's turn has come…
    s.forge.set_releases(vec![
        FakeRelease::new("v0.2.0").published(&hours_ago(72)),
        FakeRelease::new("v0.1.0"),
    ]);
    s.env.run(&["check"]).expect(100);
    // …but the maintainers halted the rollout by turning it into a draft.
    s.forge.set_releases(vec![
        FakeRelease::new("v0.2.0").published(&hours_ago(72)).draft(),
        FakeRelease::new("v0.1.0"),
    ]);
    s.env.run(&["check-and-apply"]).expect(0);
    assert!(calls_of(&s.env, "cargo").is_empty());
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn outside_the_restart_window_a_release_is_built_and_staged_then_switched_in_the_window() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env
        .var("TZ", "UTC")
        .var("HEPH_SELFUPDATE_RESTART_WINDOW", &closed_window());
    let pid = s.env.daemon_pid();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("staged it as version root 0.2.0")
            && run.stderr.contains("restart window at"),
        "{}",
        run.stderr
    );
    assert_eq!(calls_of(&s.env, "cargo").len(), 1, "built now");
    assert_eq!(s.env.daemon_pid(), pid, "not restarted outside the window");
    assert_sound(&s.env, "0.1.0");
    let status = s.env.run(&["status"]).stdout;
    assert!(
        status.contains("staged:      0.2.0 (version root 0.2.0); restarts in the window at"),
        "{status}"
    );
    // The next run outside the window builds nothing and says what waits.
    s.env.clear_calls();
    let again = s.env.run(&["check-and-apply"]);
    again.expect(0);
    assert!(again.stderr.contains("staged 0.2.0"), "{}", again.stderr);
    assert!(calls_of(&s.env, "cargo").is_empty());
    let dry = s.env.run(&["check-and-apply", "--dry-run"]);
    assert!(
        dry.stdout.contains("nothing runs before then"),
        "{}",
        dry.stdout
    );
    // In the window (here: a window open all day), the staged root is switched to.
    s.env.var("HEPH_SELFUPDATE_RESTART_WINDOW", "00:00-24:00");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(calls_of(&s.env, "cargo").is_empty(), "no second build");
    assert!(
        run.stderr.contains("updated 0.1.0 -> 0.2.0"),
        "{}",
        run.stderr
    );
    assert_eq!(s.env.state()["staged"], serde_json::Value::Null);
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn now_switches_at_once_outside_the_restart_window() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env
        .var("TZ", "UTC")
        .var("HEPH_SELFUPDATE_RESTART_WINDOW", &closed_window());
    s.env.run(&["check-and-apply", "--now"]).expect(0);
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn the_metrics_file_is_written_after_each_run_and_promtool_accepts_it() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let path = s.env.dir.path().join("textfile/heph_selfupdate.prom");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    s.env
        .var("HEPH_SELFUPDATE_METRICS_FILE", &path.display().to_string());
    s.env.run(&["check-and-apply"]).expect(0);
    let text = std::fs::read_to_string(&path).unwrap();
    for expected in [
        "heph_selfupdate_installed_info{version=\"0.2.0\"} 1",
        "heph_selfupdate_last_run_outcome{outcome=\"updated\"} 1",
        "heph_selfupdate_consecutive_failures 0",
        "heph_selfupdate_last_build_seconds ",
        "heph_selfupdate_last_downtime_seconds ",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    // A broken release: the failure counts.
    s.release("v0.3.0");
    s.env.fake_mode("bad-0.3.0", "");
    s.env.run(&["check-and-apply"]).expect(1);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("heph_selfupdate_consecutive_failures 1")
            && text.contains("heph_selfupdate_bad_version_info{version=\"0.3.0\"} 1"),
        "{text}"
    );
    let Some(promtool) = promtool() else { return };
    let out = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// promtool, or `None` (after saying so) when it is absent and not required.
fn promtool() -> Option<std::path::PathBuf> {
    let found =
        heph_selfupdate::process::find_on_path("promtool", std::env::var_os("PATH").as_deref());
    if found.is_none() {
        assert!(
            std::env::var("CI_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "promtool is not on PATH and CI_REQUIRE_TOOLS=1"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: promtool is not on PATH, so the metrics file was not checked by it"
        );
    }
    found
}

#[test]
fn the_hold_shown_is_the_one_on_the_best_release_this_channel_could_get() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.forge.set_releases(vec![
        FakeRelease::new("v0.3.0-rc.1").published(&hours_ago(48)),
        FakeRelease::new("v0.2.0").published(&hours_ago(2)),
        FakeRelease::new("v0.1.0"),
    ]);
    s.env.var("HEPH_SELFUPDATE_MIN_RELEASE_AGE", "1d");
    let j = s.env.run(&["check", "--json"]).json();
    assert_eq!(j["reason"], "too_young", "{j}");
    assert!(j["wait_until"].is_string(), "{j}");
    assert!(
        j["message"].as_str().unwrap().starts_with("v0.2.0 is held"),
        "{j}"
    );
}

#[test]
fn a_pin_the_forge_does_not_have_is_an_error_naming_the_nearest_releases() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.var("HEPH_SELFUPDATE_PIN", "0.1.5");
    let run = s.env.run(&["check"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("version 0.1.5 is not among the forge's releases")
            && run
                .stderr
                .contains("the nearest releases are 0.1.0 and 0.2.0"),
        "{}",
        run.stderr
    );
    let j = s.env.run(&["check", "--json"]);
    j.expect(1);
    assert_eq!(j.json()["exit_code"], 1);
    assert!(j.json()["error"].as_str().unwrap().contains("0.1.5"));
    let apply = s.env.run(&["check-and-apply"]);
    apply.expect(1);
    assert_eq!(
        s.env.state()["history"].as_array().unwrap().last().unwrap()["outcome"],
        "failed",
        "recorded, so status shows it"
    );
    assert!(calls_of(&s.env, "cargo").is_empty());
}

#[test]
fn json_commands_print_one_object_with_the_error_when_they_fail() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    s.env
        .var("HEPH_SELFUPDATE_FORGE_URL", &format!("http://{closed}"));
    for (args, code) in [
        (vec!["check", "--json"], 1),
        (vec!["check-and-apply", "--json"], 75),
        (vec!["check-and-apply", "--dry-run", "--json"], 75),
    ] {
        let run = s.env.run(&args);
        run.expect(code);
        let j = run.json();
        assert_eq!(j["exit_code"], code, "{args:?}: {j}");
        assert!(j["error"].as_str().unwrap().contains("could not"), "{j}");
        assert!(j["help"].is_array(), "{j}");
    }
    // A failure of the update itself: the report carries the error.
    s.env.unset("HEPH_SELFUPDATE_FORGE_URL");
    s.env.forge(&s.forge);
    s.env.fake_mode("cargo-mode", "fail");
    let run = s.env.run(&["check-and-apply", "--json"]);
    run.expect(1);
    let j = run.json();
    assert_eq!(
        (j["outcome"].as_str(), j["exit_code"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("error[E0425]: cannot find value `x` in this scope"),
        "the compiler's first error: {j}"
    );
    // A configuration error too.
    let run = s.env.run(&["status", "--json", "--set", "keep_versions=0"]);
    run.expect(2);
    assert_eq!(run.json()["exit_code"], 2);
}
