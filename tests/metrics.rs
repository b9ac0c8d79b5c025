//! The metrics file and the sample alert rules, checked by Prometheus's own `promtool`
//! (Debian package `prometheus`): the exposition text must parse and pass its lint, the
//! rules must load and fire as the README says.
//!
//! Without promtool these tests print SKIPPED and pass, unless `CI_REQUIRE_TOOLS=1`
//! (set by `.ci/run`, which installs promtool), where a missing promtool fails them.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use heph_selfupdate::metrics::{BuildTimes, LastRun, Snapshot, render};
use heph_selfupdate::process::find_on_path;
use time::macros::datetime;

/// promtool, or `None` (after saying so) when it is absent and not required.
#[track_caller]
fn promtool() -> Option<PathBuf> {
    let found = find_on_path("promtool", std::env::var_os("PATH").as_deref());
    if found.is_none() {
        assert!(
            std::env::var("CI_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "promtool is not on PATH and CI_REQUIRE_TOOLS=1: install the Debian package `prometheus` (.ci/run does)"
        );
        // Straight to stderr, past the test harness's capture, so the skip is seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: promtool is not on PATH (Debian package `prometheus`), so this Prometheus check did not run"
        );
    }
    found
}

/// Runs `promtool check metrics` on `text`; its exit code and output.
fn check_metrics(promtool: &Path, text: &str) -> (Option<i32>, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), said)
}

#[track_caller]
fn assert_clean(promtool: &Path, text: &str) {
    let (code, said) = check_metrics(promtool, text);
    assert_eq!(
        code,
        Some(0),
        "promtool check metrics: {said}\n--- input ---\n{text}"
    );
    assert!(said.trim().is_empty(), "lint: {said}");
}

fn full() -> Snapshot {
    Snapshot {
        installed_version: Some("1.2.0".into()),
        newest_eligible_version: Some("1.3.0".into()),
        update_due: true,
        held: vec!["restart_window".into()],
        staged_version: Some("1.3.0".into()),
        last_run: Some(LastRun {
            at: datetime!(2026-12-01 10:00 UTC),
            outcome: "rolled-back".into(),
        }),
        last_success_at: Some(datetime!(2026-11-30 09:00 UTC)),
        consecutive_failures: 2,
        bad_versions: vec!["1.2.5".into(), "1.2.7".into()],
        last_build: Some(BuildTimes {
            total: Duration::from_millis(42_500),
            phases: vec![
                ("fetch".into(), Duration::from_millis(2_100)),
                ("compile".into(), Duration::from_millis(40_400)),
                ("install".into(), Duration::from_nanos(1)),
            ],
        }),
        last_downtime: Some(Duration::from_millis(430)),
    }
}

#[test]
fn promtool_accepts_a_full_snapshot_without_lint_warnings() {
    let Some(promtool) = promtool() else { return };
    assert_clean(&promtool, &render(&full()));
}

#[test]
fn promtool_accepts_the_metrics_of_a_host_that_never_ran() {
    let Some(promtool) = promtool() else { return };
    assert_clean(&promtool, &render(&Snapshot::default()));
}

#[test]
fn promtool_accepts_label_values_with_quotes_backslashes_and_newlines() {
    let Some(promtool) = promtool() else { return };
    let hostile = "1.0.0\"} 1\nfake{x=\"\\\\ é \u{7f}";
    let snapshot = Snapshot {
        installed_version: Some(hostile.into()),
        newest_eligible_version: Some("\\".into()),
        held: vec!["\"".into(), "\n".into()],
        staged_version: Some(String::new()),
        last_run: Some(LastRun {
            at: datetime!(1970-01-01 00:00 UTC),
            outcome: "a\\nb".into(),
        }),
        bad_versions: vec![hostile.into(), "x\"y".into()],
        last_build: Some(BuildTimes {
            total: Duration::MAX,
            phases: vec![("ph\"ase\n".into(), Duration::ZERO)],
        }),
        ..full()
    };
    assert_clean(&promtool, &render(&snapshot));
}

#[test]
fn the_check_rejects_what_node_exporter_would_reject() {
    // So that a pass above means something: promtool fails bad escapes and
    // lint problems.
    let Some(promtool) = promtool() else { return };
    let (code, _) = check_metrics(&promtool, "heph_x{version=\"a\\q\"} 1\n");
    assert_eq!(code, Some(1), "an invalid escape is a parse error");
    let (code, said) = check_metrics(&promtool, "heph_x 1\n");
    assert_ne!(
        code,
        Some(0),
        "a metric without HELP is a lint problem: {said}"
    );
}

fn rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.yml")
}

#[test]
fn the_sample_alert_rules_load() {
    let Some(promtool) = promtool() else { return };
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(rules_file())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("SUCCESS: 2 rules found"), "{said}");
}

/// `promtool test rules` input: series over time and the alerts expected.
/// Host a takes 1.3.0 at 1h; host b, whose wave makes 1.3.0 eligible at 10h, never does;
/// host c waits for 1.4.0, which no host runs yet; host d is pinned to 1.1.0.
/// Series are sampled every minute: an instant query looks back only 5 minutes, so
/// sparser samples would leave gaps that reset the 3-day `for`.
/// Host a takes 1.3.0 at 1h; host b, whose wave makes 1.3.0 eligible at 10h, never does;
/// host c waits for 1.4.0, which no host runs yet; host d is pinned to 1.1.0.
const RULE_TESTS: &str = r#"
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'heph_selfupdate_consecutive_failures{instance="a",job="node"}'
        values: '0 1 2 3 0'
      - series: 'heph_selfupdate_consecutive_failures{instance="b",job="node"}'
        values: '1 1 1 1 1'
    alert_rule_test:
      - eval_time: 1m
        alertname: HephSelfupdateFailedTwice
        exp_alerts: []
      - eval_time: 2m
        alertname: HephSelfupdateFailedTwice
        exp_alerts:
          - exp_labels: {severity: warning, instance: a, job: node}
            exp_annotations:
              summary: "heph-selfupdate failed 2 times in a row on a"
              description: "Run `heph-selfupdate status` on the host; the log is in `journalctl --user -u heph-selfupdate`."
      - eval_time: 3m
        alertname: HephSelfupdateFailedTwice
        exp_alerts:
          - exp_labels: {severity: warning, instance: a, job: node}
            exp_annotations:
              summary: "heph-selfupdate failed 3 times in a row on a"
              description: "Run `heph-selfupdate status` on the host; the log is in `journalctl --user -u heph-selfupdate`."
      - eval_time: 4m
        alertname: HephSelfupdateFailedTwice
        exp_alerts: []

  - interval: 1m
    input_series:
      - series: 'heph_selfupdate_installed_info{instance="a",job="node",version="1.2.0"}'
        values: '1x59 stale'
      - series: 'heph_selfupdate_installed_info{instance="a",job="node",version="1.3.0"}'
        values: '_x60 1x6000'
      - series: 'heph_selfupdate_newest_eligible_info{instance="a",job="node",version="1.3.0"}'
        values: '1x6000'
      - series: 'heph_selfupdate_installed_info{instance="b",job="node",version="1.2.0"}'
        values: '1x6000'
      - series: 'heph_selfupdate_newest_eligible_info{instance="b",job="node",version="1.2.0"}'
        values: '1x599 stale'
      - series: 'heph_selfupdate_newest_eligible_info{instance="b",job="node",version="1.3.0"}'
        values: '_x600 1x5400'
      - series: 'heph_selfupdate_installed_info{instance="c",job="node",version="1.3.0"}'
        values: '1x6000'
      - series: 'heph_selfupdate_newest_eligible_info{instance="c",job="node",version="1.4.0"}'
        values: '1x6000'
      - series: 'heph_selfupdate_installed_info{instance="d",job="node",version="1.1.0"}'
        values: '1x6000'
      - series: 'heph_selfupdate_newest_eligible_info{instance="d",job="node",version="1.1.0"}'
        values: '1x6000'
    alert_rule_test:
      - eval_time: 9h
        alertname: HephSelfupdateBehindFleet
        exp_alerts: []
      - eval_time: 81h
        alertname: HephSelfupdateBehindFleet
        exp_alerts: []
      - eval_time: 83h
        alertname: HephSelfupdateBehindFleet
        exp_alerts:
          - exp_labels: {severity: warning, instance: b, job: node, version: 1.3.0}
            exp_annotations:
              summary: "b has not installed hephd 1.3.0 in 3 days, while other hosts run it"
              description: "Run `heph-selfupdate check` on the host to see what holds the update back."
"#;

#[test]
fn the_sample_alerts_fire_as_documented() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path().join("alerts.test.yml");
    let rules = rules_file();
    let text = format!("rule_files:\n  - {}\n{RULE_TESTS}", rules.to_str().unwrap());
    std::fs::write(&tests, text).unwrap();
    let out = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&tests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_readme_quotes_the_checked_alert_rules() {
    let rules = std::fs::read_to_string(rules_file()).unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```yaml\n{rules}```")),
        "README.md must quote docs/alerts.yml exactly"
    );
}
