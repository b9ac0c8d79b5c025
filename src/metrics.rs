//! Prometheus metrics for node_exporter's textfile collector (`metrics_file`).
//!
//! [`render`] turns a plain [`Snapshot`] into the text exposition format; [`write_textfile`]
//! puts it in place atomically, world-readable, so node_exporter never reads half a file.
//!
//! Every metric is a gauge named `heph_selfupdate_*`, with `HELP` and `TYPE` lines:
//!
//! | metric | value |
//! | --- | --- |
//! | `heph_selfupdate_installed_info{version}` | 1, for the installed version |
//! | `heph_selfupdate_newest_eligible_info{version}` | 1, for the release this host would take now |
//! | `heph_selfupdate_update_due` | 1 when an update is due |
//! | `heph_selfupdate_held{reason}` | 1 for each reason holding a newer release back, 0 for the other known reasons |
//! | `heph_selfupdate_staged` | 1 when a built release waits to be switched to (for a restart window) |
//! | `heph_selfupdate_staged_info{version}` | 1, for that release |
//! | `heph_selfupdate_last_run_timestamp_seconds` | when the last run ended (Unix time) |
//! | `heph_selfupdate_last_run_outcome{outcome}` | 1 for the last run's outcome, 0 for every other known outcome |
//! | `heph_selfupdate_last_success_timestamp_seconds` | when a run last ended well |
//! | `heph_selfupdate_consecutive_failures` | failed runs since the last good one |
//! | `heph_selfupdate_bad_versions` | how many versions are marked bad |
//! | `heph_selfupdate_bad_version_info{version}` | 1, for each version marked bad |
//! | `heph_selfupdate_last_build_seconds` | how long the last build took |
//! | `heph_selfupdate_last_build_phase_seconds{phase}` | the same, per phase (`fetch`, `compile`, …) |
//! | `heph_selfupdate_last_downtime_seconds` | how long the daemon was down in the last switch |
//!
//! The last outcome is a state set (as kube-state-metrics' `kube_pod_status_phase`): one
//! series per known outcome, so `heph_selfupdate_last_run_outcome{outcome="failed"} == 1`
//! is a plain alert expression and a change of outcome never leaves a stale series. Held
//! reasons work the same way. A value that is not known (no run yet, no build yet) leaves
//! its metric out rather than reporting 0, which would read as 1970 or as "took no time".

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use time::OffsetDateTime;

/// Every run outcome, as the state file names them (`state::Outcome::as_str`).
pub const OUTCOMES: [&str; 9] = [
    "nothing-due",
    "updated",
    "notified",
    "failed",
    "rolled-back",
    "rollback-failed",
    "manual-rollback",
    "interrupted",
    "staged",
];

/// Every reason a newer release can be held back: the policy's codes
/// (`policy::SkipReason::code`) and those of the phased rollout and the restart window.
pub const HOLD_REASONS: [&str; 8] = [
    "version_req",
    "pinned",
    "marked_bad",
    "backoff",
    "too_young",
    "no_publish_date",
    "rollout_wave",
    "restart_window",
];

/// What the metrics report: plain values, gathered by the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The installed version, if known.
    pub installed_version: Option<String>,
    /// The release this host would take now, if any.
    pub newest_eligible_version: Option<String>,
    /// Whether an update is due.
    pub update_due: bool,
    /// The reasons (see [`HOLD_REASONS`]) holding a newer release back.
    pub held: Vec<String>,
    /// A built release waiting to be switched to.
    pub staged_version: Option<String>,
    /// The last run, if there was one.
    pub last_run: Option<LastRun>,
    /// When a run last ended well (updated, nothing due, notified).
    pub last_success_at: Option<OffsetDateTime>,
    /// Failed runs since the last good one.
    pub consecutive_failures: u32,
    /// Versions marked bad.
    pub bad_versions: Vec<String>,
    /// The last build's duration, if there was one.
    pub last_build: Option<BuildTimes>,
    /// How long the daemon was down in the last switch.
    pub last_downtime: Option<Duration>,
}

/// When the last run ended and how.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub at: OffsetDateTime,
    /// One of [`OUTCOMES`] (another value is reported too, as one more series).
    pub outcome: String,
}

/// How long a build took, in all and per phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildTimes {
    pub total: Duration,
    /// Phases in order, e.g. `("fetch", 2.1 s)`, `("compile", 40 s)`; names should be
    /// unique (a repeated name keeps its first value).
    pub phases: Vec<(String, Duration)>,
}

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: &str) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn family<'a>(out: &'a mut String, name: &'static str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} gauge");
    Family { out, name }
}

/// A label value as the exposition format wants it: `\`, `"` and newline escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: `\` and newline escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

fn seconds(d: Duration) -> String {
    // `{}` on f64 never uses an exponent and gives the shortest exact form: 0.43, 12.5.
    format!("{}", d.as_secs_f64())
}

/// `first` in order, then the values of `extra` not in it, each once.
fn known_then_extra<'a>(first: &[&'a str], extra: &'a [String]) -> Vec<&'a str> {
    let mut all: Vec<&str> = first.to_vec();
    for e in extra {
        if !all.contains(&e.as_str()) {
            all.push(e);
        }
    }
    all
}

fn unique(values: &[String]) -> Vec<&str> {
    known_then_extra(&[], values)
}

/// The exposition text for `s` (ends with a newline, as node_exporter requires).
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    if let Some(v) = &s.installed_version {
        family(
            &mut out,
            "heph_selfupdate_installed_info",
            "The installed hephd version, as its --version reports it.",
        )
        .sample(&[("version", v)], "1");
    }
    if let Some(v) = &s.newest_eligible_version {
        family(
            &mut out,
            "heph_selfupdate_newest_eligible_info",
            "The release this host would install now, by its policy and rollout wave.",
        )
        .sample(&[("version", v)], "1");
    }
    family(
        &mut out,
        "heph_selfupdate_update_due",
        "1 when an update is due on this host.",
    )
    .sample(&[], flag(s.update_due));
    let mut f = family(
        &mut out,
        "heph_selfupdate_held",
        "1 for each reason holding a newer release back from this host, 0 for the other reasons.",
    );
    for reason in known_then_extra(&HOLD_REASONS, &s.held) {
        let held = s.held.iter().any(|h| h == reason);
        f.sample(&[("reason", reason)], flag(held));
    }
    family(
        &mut out,
        "heph_selfupdate_staged",
        "1 when a built release waits to be switched to.",
    )
    .sample(&[], flag(s.staged_version.is_some()));
    if let Some(v) = &s.staged_version {
        family(
            &mut out,
            "heph_selfupdate_staged_info",
            "The release that is built and waits to be switched to.",
        )
        .sample(&[("version", v)], "1");
    }
    if let Some(run) = &s.last_run {
        family(
            &mut out,
            "heph_selfupdate_last_run_timestamp_seconds",
            "When the last run of heph-selfupdate ended, in Unix time.",
        )
        .sample(&[], &run.at.unix_timestamp().to_string());
        let mut f = family(
            &mut out,
            "heph_selfupdate_last_run_outcome",
            "1 for the outcome of the last run, 0 for the other outcomes.",
        );
        let last = std::slice::from_ref(&run.outcome);
        for outcome in known_then_extra(&OUTCOMES, last) {
            f.sample(&[("outcome", outcome)], flag(outcome == run.outcome));
        }
    }
    if let Some(at) = s.last_success_at {
        family(
            &mut out,
            "heph_selfupdate_last_success_timestamp_seconds",
            "When a run last ended well (updated, nothing due, notified or staged), in Unix time.",
        )
        .sample(&[], &at.unix_timestamp().to_string());
    }
    family(
        &mut out,
        "heph_selfupdate_consecutive_failures",
        "Runs that failed or rolled back since the last one that ended well.",
    )
    .sample(&[], &s.consecutive_failures.to_string());
    let bad = unique(&s.bad_versions);
    family(
        &mut out,
        "heph_selfupdate_bad_versions",
        "How many versions are marked bad (not tried again).",
    )
    .sample(&[], &bad.len().to_string());
    if !bad.is_empty() {
        let mut f = family(
            &mut out,
            "heph_selfupdate_bad_version_info",
            "A version marked bad after it failed its health check.",
        );
        for v in bad {
            f.sample(&[("version", v)], "1");
        }
    }
    if let Some(build) = &s.last_build {
        family(
            &mut out,
            "heph_selfupdate_last_build_seconds",
            "How long the last build took, in seconds.",
        )
        .sample(&[], &seconds(build.total));
        if !build.phases.is_empty() {
            let mut f = family(
                &mut out,
                "heph_selfupdate_last_build_phase_seconds",
                "How long each phase of the last build took, in seconds.",
            );
            let mut seen: Vec<&str> = Vec::new();
            for (phase, d) in &build.phases {
                if !seen.contains(&phase.as_str()) {
                    seen.push(phase);
                    f.sample(&[("phase", phase)], &seconds(*d));
                }
            }
        }
    }
    if let Some(d) = s.last_downtime {
        family(
            &mut out,
            "heph_selfupdate_last_downtime_seconds",
            "How long hephd was down while switching to the last release, in seconds.",
        )
        .sample(&[], &seconds(d));
    }
    out
}

/// Checks a configured `metrics_file`: an absolute path ending in `.prom`, the only files
/// node_exporter's textfile collector reads.
pub fn check_path(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!(
            "metrics_file {} is not an absolute path\nhelp: e.g. metrics_file = \"/var/lib/prometheus/node-exporter/heph-selfupdate.prom\"",
            path.display()
        ));
    }
    if path.extension().is_none_or(|e| e != "prom") {
        return Err(format!(
            "metrics_file {} does not end in .prom, so node_exporter's textfile collector would not read it\nhelp: e.g. metrics_file = \"/var/lib/prometheus/node-exporter/heph-selfupdate.prom\"",
            path.display()
        ));
    }
    Ok(())
}

/// Writes `text` to `path` atomically, mode 0644 whatever the umask (node_exporter runs as
/// another user), through [`crate::fsutil::atomic_write_mode`]: the directory is shared
/// with node_exporter and maybe others, so the temporary file has an unpredictable name
/// and is created new, never through a link planted there. Its name does not end in
/// `.prom`, so the collector skips it.
pub fn write_textfile(path: &Path, text: &str) -> Result<()> {
    write_textfile_via(path, text, &mut crate::fsutil::temp_names(path))
}

/// [`write_textfile`] with the temporary names taken from `names`.
fn write_textfile_via(
    path: &Path,
    text: &str,
    names: &mut dyn Iterator<Item = std::path::PathBuf>,
) -> Result<()> {
    crate::fsutil::atomic_write_via(path, 0o644, |f| f.write_all(text.as_bytes()), names)
        .with_context(|| {
            format!(
                "could not write the metrics file {}\nhelp: its directory (node_exporter's --collector.textfile.directory) must exist and be writable by this user",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use time::macros::datetime;

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
                ],
            }),
            last_downtime: Some(Duration::from_millis(430)),
        }
    }

    #[test]
    fn renders_every_metric_of_a_full_snapshot() {
        let expected = r#"# HELP heph_selfupdate_installed_info The installed hephd version, as its --version reports it.
# TYPE heph_selfupdate_installed_info gauge
heph_selfupdate_installed_info{version="1.2.0"} 1
# HELP heph_selfupdate_newest_eligible_info The release this host would install now, by its policy and rollout wave.
# TYPE heph_selfupdate_newest_eligible_info gauge
heph_selfupdate_newest_eligible_info{version="1.3.0"} 1
# HELP heph_selfupdate_update_due 1 when an update is due on this host.
# TYPE heph_selfupdate_update_due gauge
heph_selfupdate_update_due 1
# HELP heph_selfupdate_held 1 for each reason holding a newer release back from this host, 0 for the other reasons.
# TYPE heph_selfupdate_held gauge
heph_selfupdate_held{reason="version_req"} 0
heph_selfupdate_held{reason="pinned"} 0
heph_selfupdate_held{reason="marked_bad"} 0
heph_selfupdate_held{reason="backoff"} 0
heph_selfupdate_held{reason="too_young"} 0
heph_selfupdate_held{reason="no_publish_date"} 0
heph_selfupdate_held{reason="rollout_wave"} 0
heph_selfupdate_held{reason="restart_window"} 1
# HELP heph_selfupdate_staged 1 when a built release waits to be switched to.
# TYPE heph_selfupdate_staged gauge
heph_selfupdate_staged 1
# HELP heph_selfupdate_staged_info The release that is built and waits to be switched to.
# TYPE heph_selfupdate_staged_info gauge
heph_selfupdate_staged_info{version="1.3.0"} 1
# HELP heph_selfupdate_last_run_timestamp_seconds When the last run of heph-selfupdate ended, in Unix time.
# TYPE heph_selfupdate_last_run_timestamp_seconds gauge
heph_selfupdate_last_run_timestamp_seconds 1796119200
# HELP heph_selfupdate_last_run_outcome 1 for the outcome of the last run, 0 for the other outcomes.
# TYPE heph_selfupdate_last_run_outcome gauge
heph_selfupdate_last_run_outcome{outcome="nothing-due"} 0
heph_selfupdate_last_run_outcome{outcome="updated"} 0
heph_selfupdate_last_run_outcome{outcome="notified"} 0
heph_selfupdate_last_run_outcome{outcome="failed"} 0
heph_selfupdate_last_run_outcome{outcome="rolled-back"} 1
heph_selfupdate_last_run_outcome{outcome="rollback-failed"} 0
heph_selfupdate_last_run_outcome{outcome="manual-rollback"} 0
heph_selfupdate_last_run_outcome{outcome="interrupted"} 0
heph_selfupdate_last_run_outcome{outcome="staged"} 0
# HELP heph_selfupdate_last_success_timestamp_seconds When a run last ended well (updated, nothing due, notified or staged), in Unix time.
# TYPE heph_selfupdate_last_success_timestamp_seconds gauge
heph_selfupdate_last_success_timestamp_seconds 1796029200
# HELP heph_selfupdate_consecutive_failures Runs that failed or rolled back since the last one that ended well.
# TYPE heph_selfupdate_consecutive_failures gauge
heph_selfupdate_consecutive_failures 2
# HELP heph_selfupdate_bad_versions How many versions are marked bad (not tried again).
# TYPE heph_selfupdate_bad_versions gauge
heph_selfupdate_bad_versions 2
# HELP heph_selfupdate_bad_version_info A version marked bad after it failed its health check.
# TYPE heph_selfupdate_bad_version_info gauge
heph_selfupdate_bad_version_info{version="1.2.5"} 1
heph_selfupdate_bad_version_info{version="1.2.7"} 1
# HELP heph_selfupdate_last_build_seconds How long the last build took, in seconds.
# TYPE heph_selfupdate_last_build_seconds gauge
heph_selfupdate_last_build_seconds 42.5
# HELP heph_selfupdate_last_build_phase_seconds How long each phase of the last build took, in seconds.
# TYPE heph_selfupdate_last_build_phase_seconds gauge
heph_selfupdate_last_build_phase_seconds{phase="fetch"} 2.1
heph_selfupdate_last_build_phase_seconds{phase="compile"} 40.4
# HELP heph_selfupdate_last_downtime_seconds How long hephd was down while switching to the last release, in seconds.
# TYPE heph_selfupdate_last_downtime_seconds gauge
heph_selfupdate_last_downtime_seconds 0.43
"#;
        assert_eq!(render(&full()), expected);
    }

    #[test]
    fn unknown_values_leave_their_metrics_out_instead_of_reporting_zero() {
        let text = render(&Snapshot::default());
        let names: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("# TYPE "))
            .map(|l| l.split(' ').nth(2).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "heph_selfupdate_update_due",
                "heph_selfupdate_held",
                "heph_selfupdate_staged",
                "heph_selfupdate_consecutive_failures",
                "heph_selfupdate_bad_versions",
            ]
        );
        assert!(text.contains("\nheph_selfupdate_staged 0\n"));
        assert!(text.contains("\nheph_selfupdate_bad_versions 0\n"));
        assert!(!text.contains("} 1\n"), "nothing held: {text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("line\nbreak"), r"line\nbreak");
        assert_eq!(escape_label_value("1.2.0+build.5"), "1.2.0+build.5");
        let text = render(&Snapshot {
            installed_version: Some("1.0.0\"} 1\nfake_metric{x=\"".into()),
            ..Snapshot::default()
        });
        assert!(
            text.contains(
                r#"heph_selfupdate_installed_info{version="1.0.0\"} 1\nfake_metric{x=\""} 1"#
            ),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.starts_with("fake_metric")));
    }

    #[test]
    fn an_unknown_outcome_or_hold_reason_still_gets_its_series() {
        let text = render(&Snapshot {
            held: vec![
                "maintenance".into(),
                "too_young".into(),
                "maintenance".into(),
            ],
            last_run: Some(LastRun {
                at: datetime!(2026-12-01 10:00 UTC),
                outcome: "exploded".into(),
            }),
            ..Snapshot::default()
        });
        assert!(text.contains("heph_selfupdate_held{reason=\"too_young\"} 1\n"));
        assert_eq!(text.matches("{reason=\"maintenance\"} 1\n").count(), 1);
        assert!(text.contains("heph_selfupdate_last_run_outcome{outcome=\"exploded\"} 1\n"));
        assert!(text.contains("heph_selfupdate_last_run_outcome{outcome=\"failed\"} 0\n"));
    }

    #[test]
    fn repeated_versions_and_phases_are_reported_once() {
        let text = render(&Snapshot {
            bad_versions: vec!["1.2.5".into(), "1.2.5".into()],
            last_build: Some(BuildTimes {
                total: Duration::from_secs(3),
                phases: vec![
                    ("compile".into(), Duration::from_secs(1)),
                    ("compile".into(), Duration::from_secs(2)),
                ],
            }),
            ..Snapshot::default()
        });
        assert!(text.contains("heph_selfupdate_bad_versions 1\n"));
        assert_eq!(text.matches("{version=\"1.2.5\"}").count(), 1);
        assert_eq!(text.matches("{phase=\"compile\"} 1\n").count(), 1);
        assert!(!text.contains("{phase=\"compile\"} 2\n"));
    }

    #[test]
    fn every_outcome_of_the_state_file_is_a_known_outcome() {
        use crate::state::Outcome;
        let all = [
            Outcome::NothingDue,
            Outcome::Updated,
            Outcome::Notified,
            Outcome::Failed,
            Outcome::RolledBack,
            Outcome::RollbackFailed,
            Outcome::ManualRollback,
            Outcome::Interrupted,
            Outcome::Staged,
        ];
        for o in all {
            // Exhaustive: a new variant stops this from compiling until it is listed above.
            match o {
                Outcome::NothingDue
                | Outcome::Updated
                | Outcome::Notified
                | Outcome::Failed
                | Outcome::RolledBack
                | Outcome::RollbackFailed
                | Outcome::ManualRollback
                | Outcome::Interrupted
                | Outcome::Staged => {}
            }
            assert!(OUTCOMES.contains(&o.as_str()), "{}", o.as_str());
        }
        assert_eq!(OUTCOMES.len(), all.len());
    }

    #[test]
    fn every_hold_of_the_policy_is_a_known_hold_reason() {
        use crate::policy::SkipReason;
        let t = datetime!(2026-12-01 10:00 UTC);
        let v = semver::Version::new(1, 0, 0);
        let all = [
            SkipReason::Draft,
            SkipReason::Upcoming,
            SkipReason::BadTag(String::new()),
            SkipReason::Prerelease,
            SkipReason::Requirement(String::new()),
            SkipReason::NotPinned(v),
            SkipReason::MarkedBad,
            SkipReason::BackingOff(t),
            SkipReason::TooYoung(t),
            SkipReason::NoPublishDate,
            SkipReason::RolloutWave {
                at: t,
                wave: crate::policy::Wave(0.5),
                spread: std::time::Duration::from_secs(3600),
                pinned: false,
            },
            SkipReason::Duplicate,
        ];
        for reason in all {
            // Exhaustive: a new variant must be sorted into holds and non-holds here.
            let is_hold = match reason {
                SkipReason::Requirement(_)
                | SkipReason::NotPinned(_)
                | SkipReason::MarkedBad
                | SkipReason::BackingOff(_)
                | SkipReason::TooYoung(_)
                | SkipReason::NoPublishDate
                | SkipReason::RolloutWave { .. } => true,
                SkipReason::Draft
                | SkipReason::Upcoming
                | SkipReason::BadTag(_)
                | SkipReason::Prerelease
                | SkipReason::Duplicate => false,
            };
            assert_eq!(
                HOLD_REASONS.contains(&reason.code()),
                is_hold,
                "{}",
                reason.code()
            );
        }
    }

    #[test]
    fn metrics_files_are_absolute_and_end_in_prom() {
        assert!(check_path(Path::new("/var/lib/node-exporter/heph.prom")).is_ok());
        let err = check_path(Path::new("heph.prom")).unwrap_err();
        assert!(
            err.contains("not an absolute path") && err.contains("help:"),
            "{err}"
        );
        let err = check_path(Path::new("/var/lib/node-exporter/heph.txt")).unwrap_err();
        assert!(
            err.contains("does not end in .prom") && err.contains("help:"),
            "{err}"
        );
        assert!(check_path(Path::new("/var/lib/node-exporter/prom")).is_err());
    }

    #[test]
    fn the_textfile_is_replaced_whole_and_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heph-selfupdate.prom");
        write_textfile(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        write_textfile(&path, &render(&full())).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), render(&full()));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["heph-selfupdate.prom"], "no temporary file left");
    }

    /// Run by the test below in a child process whose umask is 077.
    #[test]
    #[ignore = "run by the_textfile_is_world_readable_under_a_strict_umask"]
    #[allow(clippy::print_stderr)] // says why the test did nothing, past the harness
    fn write_under_the_inherited_umask() {
        let Some(path) = std::env::var_os("HEPH_TEST_METRICS_FILE") else {
            eprintln!(
                "SKIPPED: runs as a child of the_textfile_is_world_readable_under_a_strict_umask"
            );
            return;
        };
        write_textfile(Path::new(&path), "heph_selfupdate_update_due 0\n").unwrap();
    }

    #[test]
    fn the_textfile_is_world_readable_under_a_strict_umask() {
        // The umask is per process: set it in a child, not in this multi-threaded one.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("umask 077 && exec \"$0\" --exact metrics::tests::write_under_the_inherited_umask --ignored")
            .arg(std::env::current_exe().unwrap())
            .env("HEPH_TEST_METRICS_FILE", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn a_link_planted_at_every_temporary_name_the_writer_could_use_leaves_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("authorized_keys");
        fs::write(&victim, "ssh-ed25519 AAAA precious\n").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("heph-selfupdate.prom");
        let untouched = || {
            assert_eq!(
                fs::read_to_string(&victim).unwrap(),
                "ssh-ed25519 AAAA precious\n"
            );
            assert_eq!(
                fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
                0o600
            );
        };
        // The name earlier versions used, `.NAME.tmp-<PID>`: not one the writer uses now.
        let predictable = dir
            .path()
            .join(format!(".heph-selfupdate.prom.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &predictable).unwrap();
        write_textfile(&path, "heph_selfupdate_update_due 0\n").unwrap();
        untouched();
        // Links at every name the writer is given: it writes nothing and says why.
        let names: Vec<_> = (0..8)
            .map(|i| {
                dir.path()
                    .join(format!(".heph-selfupdate.prom.tmp-{i:016x}"))
            })
            .collect();
        for n in &names {
            std::os::unix::fs::symlink(&victim, n).unwrap();
        }
        let err =
            write_textfile_via(&path, "changed\n", &mut names.clone().into_iter()).unwrap_err();
        assert!(format!("{err:#}").contains("were taken"), "{err:#}");
        untouched();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "heph_selfupdate_update_due 0\n"
        );
        for n in names.iter().chain([&predictable]) {
            assert!(fs::symlink_metadata(n).unwrap().file_type().is_symlink());
        }
    }

    #[test]
    fn a_missing_directory_is_an_error_with_help() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/heph.prom");
        let err = format!("{:#}", write_textfile(&path, "x\n").unwrap_err());
        assert!(err.contains("could not write the metrics file"), "{err}");
        assert!(err.contains("help: its directory"), "{err}");
    }
}
