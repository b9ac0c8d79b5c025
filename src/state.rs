//! The state file: what earlier runs did and learned (history, bad versions, build
//! backoff per version, which version roots were proven healthy, notifications) and the
//! write-ahead intent of a switch in progress. Written atomically, only under the run lock.
//!
//! A damaged file is never silently reset: it is moved aside with a warning and the
//! identical copy (`state.json.bak`) is used, so bad-version marks survive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use semver::Version;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::lock::RunLock;
use crate::policy::Holds;

/// The schema this build writes. A file with a higher one came from a newer release.
/// Schema 1 (one backoff slot, `current`/`previous` names) is read and converted.
pub const SCHEMA: u32 = 2;
/// Runs kept in the history.
pub const HISTORY_LEN: usize = 50;
/// Versions remembered per kind (bad marks, backoffs, proven roots); the oldest go first.
pub const MEMORY_LEN: usize = 32;
const BACKOFF_FIRST: Duration = Duration::from_secs(3600);
const BACKOFF_MAX: Duration = Duration::from_secs(24 * 3600);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Nothing was due.
    NothingDue,
    /// Updated and healthy.
    Updated,
    /// Notify mode: an update is due and was reported.
    Notified,
    /// The build (or something before the switch) failed; nothing changed.
    Failed,
    /// The new version was unhealthy and the old one is back.
    RolledBack,
    /// The new version was unhealthy and going back failed too.
    RollbackFailed,
    /// Rolled back on request (`heph-selfupdate rollback`).
    ManualRollback,
    /// Stopped by a signal (or killed). Before the switch nothing changed; during a switch
    /// the intent was left for the next run, which finished it.
    Interrupted,
    /// Built and verified outside `restart_window`: switched to in the next window.
    Staged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NothingDue => "nothing-due",
            Self::Updated => "updated",
            Self::Notified => "notified",
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
            Self::RollbackFailed => "rollback-failed",
            Self::ManualRollback => "manual-rollback",
            Self::Interrupted => "interrupted",
            Self::Staged => "staged",
        }
    }
}

/// One run of `check-and-apply` or `rollback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    pub duration_secs: f64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub outcome: Outcome,
    pub reason: String,
    /// The build log of this run, if one was written.
    #[serde(default)]
    pub log: Option<PathBuf>,
}

/// The last decision a run made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub installed: Option<String>,
    pub latest: Option<String>,
    pub update_available: bool,
    pub reason: String,
    /// The decision's reason code (`check --json`'s `reason`).
    #[serde(default)]
    pub reason_code: Option<String>,
}

/// Why a version is marked bad.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadMark {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub reason: String,
}

/// A version whose build (or health proof) failed, and when to try it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    pub failures: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub reason: String,
    /// For a release refused because the toolchain was too old: what `rustc --version`
    /// said then (empty: rustc could not run). The backoff ends early once the toolchain
    /// is another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rustc: Option<String>,
}

/// The last notification sent, so the same one is not sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notified {
    pub event: String,
    pub version: Option<String>,
}

/// Why a switch was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// The policy chose a newer (or pinned) release.
    Update,
    /// `check-and-apply --to`.
    Requested,
    /// `heph-selfupdate rollback`.
    Rollback,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::Requested => "requested",
            Self::Rollback => "rollback",
        }
    }
}

/// Where a switch stands. Each phase is saved before its action starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `current` is being pointed at `to`.
    Switching,
    /// The restart onto `to` is being asked for.
    Restarting,
    /// Watching `to` come up and settle.
    Proving,
    /// `to` failed; `current` is being pointed back at `from`.
    Reverting,
    /// The restart onto `from` is being asked for.
    RevertRestarting,
    /// Watching `from` come up and settle.
    RevertProving,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Switching => "switching",
            Self::Restarting => "restarting",
            Self::Proving => "proving",
            Self::Reverting => "reverting",
            Self::RevertRestarting => "revert-restarting",
            Self::RevertProving => "revert-proving",
        }
    }

    /// True once the switch has turned back towards `from`.
    pub fn reverting(self) -> bool {
        matches!(
            self,
            Self::Reverting | Self::RevertRestarting | Self::RevertProving
        )
    }
}

/// The daemon as seen just before a restart: a later process differs in PID or invocation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Seen {
    pub pid: Option<u32>,
    pub invocation: Option<String>,
}

/// The write-ahead record of a switch: saved before `current` changes, advanced by each
/// phase, removed only when a proven outcome is recorded. A run that finds one left by a
/// run that died finishes it before deciding anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// The version root `current` pointed at before (none: nothing was managed).
    pub from: Option<String>,
    /// The version root being switched to.
    pub to: String,
    pub from_version: Option<String>,
    pub to_version: String,
    pub purpose: Purpose,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    pub phase: Phase,
    /// The run that wrote it.
    pub pid: u32,
    /// The daemon just before the last restart this switch asked for.
    #[serde(default)]
    pub before: Option<Seen>,
    /// Why the switch turned back, once it did.
    #[serde(default)]
    pub revert_reason: Option<String>,
    /// True when `to` was proven unhealthy (not merely of unknown health).
    #[serde(default)]
    pub to_proven_bad: bool,
    /// True when the switch turned back for a reason not the release's (its root gone).
    #[serde(default)]
    pub blameless: bool,
    /// The build log of the run, if any.
    #[serde(default)]
    pub log: Option<PathBuf>,
}

/// Everything remembered between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub schema: u32,
    #[serde(default)]
    pub last_check: Option<CheckRecord>,
    #[serde(default)]
    pub history: Vec<RunRecord>,
    /// Versions that failed their health proof (or were rolled back from by hand).
    #[serde(default)]
    pub bad: BTreeMap<String, BadMark>,
    /// Versions whose build or proof failed, and when to try each again.
    #[serde(default)]
    pub backoff: BTreeMap<String, Backoff>,
    /// Version roots proven healthy, and when last.
    #[serde(default)]
    pub proven: BTreeMap<String, ProvenRoot>,
    /// A switch in progress (or left by a run that died).
    #[serde(default)]
    pub intent: Option<Intent>,
    /// A root built outside `restart_window`, waiting for the window to be switched to.
    #[serde(default)]
    pub staged: Option<Staged>,
    /// The root the last proven switch came from: what ran before it, kept by pruning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_from: Option<String>,
    /// When a `check-and-apply` last ended well (updated, nothing due, notified, staged).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_ok: Option<OffsetDateTime>,
    /// The last build: how long in all and per phase.
    #[serde(default)]
    pub last_build: Option<BuildTimes>,
    /// How long the daemon was down in the last switch (restart until seen up).
    #[serde(default)]
    pub last_downtime_secs: Option<f64>,
    #[serde(default)]
    pub last_notified: Option<Notified>,
}

/// A version root that ran healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenRoot {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Default for State {
    fn default() -> Self {
        Self {
            schema: SCHEMA,
            last_check: None,
            history: Vec::new(),
            bad: BTreeMap::new(),
            backoff: BTreeMap::new(),
            proven: BTreeMap::new(),
            intent: None,
            staged: None,
            last_from: None,
            last_ok: None,
            last_build: None,
            last_downtime_secs: None,
            last_notified: None,
        }
    }
}

/// How long a build took, in all and per phase (seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildTimes {
    pub total_secs: f64,
    #[serde(default)]
    pub phases: Vec<(String, f64)>,
}

/// A built, verified root waiting for the restart window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    pub root: String,
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Schema 1, as written by the first releases: read and converted, never written.
#[derive(Deserialize)]
struct StateV1 {
    #[serde(default)]
    last_check: Option<CheckRecord>,
    #[serde(default)]
    history: Vec<RunRecord>,
    #[serde(default)]
    bad: Vec<BadMarkV1>,
    #[serde(default)]
    backoff: Option<BackoffV1>,
    #[serde(default)]
    current: Option<String>,
    #[serde(default)]
    previous: Option<String>,
    #[serde(default)]
    last_notified: Option<Notified>,
}

#[derive(Deserialize)]
struct BadMarkV1 {
    version: String,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    reason: String,
}

#[derive(Deserialize)]
struct BackoffV1 {
    version: String,
    failures: u32,
    #[serde(with = "time::serde::rfc3339")]
    until: OffsetDateTime,
    reason: String,
}

impl StateV1 {
    fn upgrade(self) -> State {
        // Schema 1 named the root it switched to and the one before; both ran healthy then.
        let at = self
            .history
            .last()
            .map_or(OffsetDateTime::UNIX_EPOCH, |r| r.started);
        State {
            schema: SCHEMA,
            last_check: self.last_check,
            history: self.history,
            bad: self
                .bad
                .into_iter()
                .map(|b| {
                    (
                        b.version,
                        BadMark {
                            at: b.at,
                            reason: b.reason,
                        },
                    )
                })
                .collect(),
            backoff: self
                .backoff
                .into_iter()
                .map(|b| {
                    (
                        b.version,
                        Backoff {
                            failures: b.failures,
                            until: b.until,
                            reason: b.reason,
                            rustc: None,
                        },
                    )
                })
                .collect(),
            proven: [self.current, self.previous]
                .into_iter()
                .flatten()
                .map(|r| (r, ProvenRoot { at }))
                .collect(),
            intent: None,
            staged: None,
            last_from: None,
            last_ok: None,
            last_build: None,
            last_downtime_secs: None,
            last_notified: self.last_notified,
        }
    }
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn backup(&self) -> PathBuf {
        self.path.with_extension("json.bak")
    }

    /// Reads the state. Missing means fresh. Damaged is moved aside (with a warning) and
    /// the backup copy used. A newer schema is refused: overwriting it would lose data.
    pub fn load(&self) -> Result<State> {
        match read(&self.path)? {
            Read::Missing => Ok(State::default()),
            Read::Good(s) => Ok(*s),
            Read::Damaged(why) => {
                let aside = self.path.with_extension(format!(
                    "json.corrupt-{}",
                    OffsetDateTime::now_utc().unix_timestamp()
                ));
                std::fs::rename(&self.path, &aside).with_context(|| {
                    format!(
                        "the state file {} is damaged ({why}) and could not be moved aside",
                        self.path.display()
                    )
                })?;
                if let Read::Good(s) = read(&self.backup())? {
                    log::warn!(
                        "the state file was damaged ({why}); moved it to {} and restored its backup copy",
                        aside.display()
                    );
                    Ok(*s)
                } else {
                    {
                        log::warn!(
                            "the state file was damaged ({why}) and no good backup exists; moved it to {} and starting fresh: bad-version marks and backoff in it are no longer applied (inspect it, then delete it)",
                            aside.display()
                        );
                        Ok(State::default())
                    }
                }
            }
        }
    }

    /// Reads the state without repairing anything (for `status` and `check`).
    pub fn peek(&self) -> Result<State> {
        match read(&self.path)? {
            Read::Good(s) => Ok(*s),
            Read::Missing => Ok(State::default()),
            Read::Damaged(why) => {
                log::warn!(
                    "the state file {} is damaged ({why}); the next run will repair it",
                    self.path.display()
                );
                match read(&self.backup())? {
                    Read::Good(s) => Ok(*s),
                    _ => Ok(State::default()),
                }
            }
        }
    }

    /// Writes the state atomically, twice: the file and its backup copy.
    pub fn save(&self, state: &State, _lock: &RunLock) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            crate::fsutil::create_private_dir(dir)?;
        }
        let mut bytes = serde_json::to_vec_pretty(state).context("could not encode the state")?;
        bytes.push(b'\n');
        let help = "could not save the run's state\nhelp: check that the state directory is writable and the disk not full";
        crate::fsutil::atomic_write(&self.path, &bytes).context(help)?;
        // A second, identical copy: if the file is damaged later (disk, editor, another
        // program), the bad-version marks and backoff survive in the copy.
        crate::fsutil::atomic_write(&self.backup(), &bytes).context(help)
    }

    /// Saves the record of a run that already acted: a failure is logged, not returned,
    /// so that what the run did is still reported.
    pub fn save_record(&self, state: &State, lock: &RunLock) {
        if let Err(e) = self.save(state, lock) {
            log::error!("the record of this run was not saved: {e:#}");
        }
    }
}

enum Read {
    Missing,
    Good(Box<State>),
    Damaged(String),
}

fn read(path: &Path) -> Result<Read> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Missing),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("could not read the state file {}", path.display()));
        }
    };
    match decode(&bytes) {
        Ok(Ok(s)) => Ok(Read::Good(Box::new(s))),
        Ok(Err(why)) => Ok(Read::Damaged(why)),
        Err(e) => Err(e.context(format!("reading {}", path.display()))),
    }
}

/// Decodes a state file's bytes: `Ok(Err(why))` when damaged, `Err` when written by a
/// newer release (which must not be overwritten).
pub fn decode(bytes: &[u8]) -> Result<Result<State, String>> {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("not valid JSON: {e}"))),
    };
    let schema = value.get("schema").and_then(serde_json::Value::as_u64);
    if let Some(s) = schema.filter(|s| *s > u64::from(SCHEMA)) {
        bail!(
            "the state file was written by a newer heph-selfupdate (schema {s}, this one knows {SCHEMA})\nhelp: upgrade heph-selfupdate, or move the file aside to start over"
        );
    }
    if schema == Some(1) {
        return Ok(serde_json::from_value::<StateV1>(value)
            .map(StateV1::upgrade)
            .map_err(|e| format!("unexpected content: {e}")));
    }
    Ok(serde_json::from_value::<State>(value).map_err(|e| format!("unexpected content: {e}")))
}

impl State {
    /// The holds the decision must respect.
    pub fn holds(&self) -> Holds {
        self.holds_with_rustc(None)
    }

    /// True when a backoff ends once the toolchain changes (see [`Self::holds_with_rustc`]).
    pub fn waits_for_a_toolchain(&self) -> bool {
        self.backoff.values().any(|b| b.rustc.is_some())
    }

    /// The holds, given what `rustc --version` says now (when asked): a backoff for a
    /// too-old toolchain does not hold once the toolchain is another one.
    pub fn holds_with_rustc(&self, rustc_now: Option<&str>) -> Holds {
        let changed = |b: &Backoff| matches!((b.rustc.as_deref(), rustc_now), (Some(then), Some(now)) if then != now);
        Holds {
            bad: self
                .bad
                .keys()
                .filter_map(|v| Version::parse(v).ok())
                .collect(),
            backoff: self
                .backoff
                .iter()
                .filter(|(_, b)| !changed(b))
                .filter_map(|(v, b)| Some((Version::parse(v).ok()?, b.until)))
                .collect(),
        }
    }

    /// Appends a run, keeping the newest [`HISTORY_LEN`].
    pub fn record(&mut self, run: RunRecord) {
        self.history.push(run);
        let excess = self.history.len().saturating_sub(HISTORY_LEN);
        self.history.drain(..excess);
    }

    /// The most recent apply (anything but "nothing due").
    pub fn last_apply(&self) -> Option<&RunRecord> {
        self.history
            .iter()
            .rev()
            .find(|r| r.outcome != Outcome::NothingDue)
    }

    /// True when `version` is marked bad.
    pub fn is_bad(&self, version: &str) -> bool {
        self.bad.contains_key(version)
    }

    /// Marks `version` bad.
    pub fn mark_bad(&mut self, version: &str, at: OffsetDateTime, reason: &str) {
        self.bad.insert(
            version.to_owned(),
            BadMark {
                at,
                reason: reason.to_owned(),
            },
        );
        bound(&mut self.bad, |b| b.at);
    }

    /// Notes a failed attempt at `version`: 1 h, 2 h, 4 h … at most 24 h before the next
    /// try. Other versions' backoffs are kept.
    pub fn note_build_failure(
        &mut self,
        version: &str,
        now: OffsetDateTime,
        reason: &str,
    ) -> OffsetDateTime {
        let failures = self.backoff.get(version).map_or(1, |b| b.failures + 1);
        let factor = 2u32.saturating_pow(failures - 1);
        let delay = BACKOFF_FIRST.saturating_mul(factor).min(BACKOFF_MAX);
        let until = now + delay;
        self.backoff.insert(
            version.to_owned(),
            Backoff {
                failures,
                until,
                reason: reason.to_owned(),
                rustc: None,
            },
        );
        bound(&mut self.backoff, |b| b.until);
        until
    }

    /// Forgets backoff and bad marks for `version` (after it was installed on purpose).
    pub fn clear_holds_for(&mut self, version: &str) {
        self.bad.remove(version);
        self.backoff.remove(version);
    }

    /// Notes that the version root `root` ran healthy.
    pub fn mark_proven(&mut self, root: &str, at: OffsetDateTime) {
        self.proven.insert(root.to_owned(), ProvenRoot { at });
        bound(&mut self.proven, |p| p.at);
    }

    /// Forgets roots that no longer exist.
    pub fn forget_roots_except(&mut self, existing: &[String]) {
        self.proven.retain(|name, _| existing.contains(name));
        if self
            .last_from
            .as_ref()
            .is_some_and(|f| !existing.contains(f))
        {
            self.last_from = None;
        }
    }
}

/// Keeps a memory map at [`MEMORY_LEN`] entries, dropping the oldest by `time`.
fn bound<T>(map: &mut BTreeMap<String, T>, time: impl Fn(&T) -> OffsetDateTime) {
    while map.len() > MEMORY_LEN {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| time(v))
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        map.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2026-03-10 12:00 UTC);

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn backoff_doubles_and_caps_at_a_day() {
        let mut s = State::default();
        let hours: Vec<i64> = (0..7)
            .map(|_| (s.note_build_failure("1.1.0", T, "x") - T).whole_hours())
            .collect();
        assert_eq!(hours, [1, 2, 4, 8, 16, 24, 24]);
        s.note_build_failure("1.2.0", T, "x");
        assert_eq!(s.backoff["1.2.0"].failures, 1, "a new version starts over");
    }

    #[test]
    fn backoff_is_kept_per_version() {
        let mut s = State::default();
        let until = s.note_build_failure("0.4.0", T, "compile error");
        s.note_build_failure("0.5.0", T, "another failure");
        assert_eq!(
            s.holds().backoff,
            vec![(v("0.4.0"), until), (v("0.5.0"), until)],
            "an unrelated failure does not replace the first backoff"
        );
    }

    #[test]
    fn memory_is_bounded_and_drops_the_oldest() {
        let mut s = State::default();
        for i in 0..(MEMORY_LEN + 5) {
            let at = T + Duration::from_secs(u64::try_from(i).unwrap());
            s.mark_bad(&format!("0.{i}.0"), at, "x");
        }
        assert_eq!(s.bad.len(), MEMORY_LEN);
        assert!(!s.is_bad("0.0.0") && s.is_bad(&format!("0.{}.0", MEMORY_LEN + 4)));
    }

    #[test]
    fn a_schema_1_file_is_read_and_converted() {
        let text = r#"{"schema": 1, "history": [], "bad": [{"version": "0.3.0", "at": "2026-03-10T12:00:00Z", "reason": "died"}],
            "backoff": {"version": "0.4.0", "failures": 2, "until": "2026-03-10T14:00:00Z", "reason": "compile"},
            "current": "0.2.0", "previous": "0.1.0"}"#;
        let s = decode(text.as_bytes()).unwrap().unwrap();
        assert_eq!(s.schema, SCHEMA);
        assert!(s.is_bad("0.3.0"));
        assert_eq!(s.backoff["0.4.0"].failures, 2);
        assert!(s.proven.contains_key("0.2.0") && s.proven.contains_key("0.1.0"));
    }

    #[test]
    fn history_keeps_the_newest_fifty() {
        let mut s = State::default();
        for i in 0..60 {
            s.record(RunRecord {
                started: T,
                duration_secs: 0.0,
                from: None,
                to: Some(i.to_string()),
                outcome: Outcome::Updated,
                reason: String::new(),
                log: None,
            });
        }
        assert_eq!(s.history.len(), 50);
        assert_eq!(s.history[0].to.as_deref(), Some("10"));
    }

    #[test]
    fn a_damaged_file_is_moved_aside_and_the_backup_restored() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        let f = StateFile::new(dir.path().join("state.json"));
        let mut s = State::default();
        s.mark_bad("1.1.0", T, "died");
        f.save(&s, &lock).unwrap();
        std::fs::write(f.path(), "{\"schema\": 2, \"bad\": {").unwrap();
        let loaded = f.load().unwrap();
        assert_eq!(loaded.bad.len(), 1, "bad marks survive");
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("state.json.corrupt-")
            });
        assert!(aside);
    }

    #[test]
    fn a_state_file_from_a_newer_release_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path().join("state.json"));
        std::fs::write(f.path(), "{\"schema\": 7}").unwrap();
        let err = format!("{:#}", f.load().unwrap_err());
        assert!(err.contains("newer heph-selfupdate"), "{err}");
        assert!(f.path().exists(), "left in place");
    }

    #[test]
    fn holds_come_from_marks_and_backoff() {
        let mut s = State::default();
        s.mark_bad("1.1.0", T, "x");
        let until = s.note_build_failure("1.2.0", T, "x");
        let h = s.holds();
        assert_eq!(h.bad, vec![v("1.1.0")]);
        assert_eq!(h.backoff, vec![(v("1.2.0"), until)]);
        s.clear_holds_for("1.2.0");
        assert!(s.backoff.is_empty());
    }

    #[test]
    fn a_toolchain_backoff_ends_when_the_toolchain_changes() {
        let mut s = State::default();
        let until = s.note_build_failure("1.2.0", T, "needs Rust 1.90");
        s.note_build_failure("1.3.0", T, "does not compile");
        s.backoff.get_mut("1.2.0").unwrap().rustc = Some("rustc 1.86.0".into());
        assert!(s.waits_for_a_toolchain());
        let held = |h: Holds| h.backoff.into_iter().map(|(v, _)| v).collect::<Vec<_>>();
        assert_eq!(
            held(s.holds_with_rustc(Some("rustc 1.86.0"))),
            vec![v("1.2.0"), v("1.3.0")]
        );
        assert_eq!(
            held(s.holds_with_rustc(Some("rustc 1.91.0"))),
            vec![v("1.3.0")]
        );
        // Not knowing the toolchain now keeps the backoff.
        assert_eq!(s.holds_with_rustc(None).backoff[0], (v("1.2.0"), until));
    }
}
