//! The state file: what earlier runs did and learned (history, bad versions, build
//! backoff, version roots, notifications). Written atomically, only under the run lock.
//!
//! A damaged file is never silently reset: it is moved aside with a warning and the
//! identical copy (`state.json.bak`) is used, so bad-version marks survive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use semver::Version;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::lock::RunLock;
use crate::policy::Holds;

/// The schema this build writes. A file with a higher one came from a newer release.
pub const SCHEMA: u32 = 1;
/// Runs kept in the history.
pub const HISTORY_LEN: usize = 50;
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
    /// Stopped by a signal before the switch; nothing changed.
    Interrupted,
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
}

/// A version that failed its health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadMark {
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub reason: String,
}

/// A version whose build failed, and when to try it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    pub version: String,
    pub failures: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub reason: String,
}

/// The last notification sent, so the same one is not sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notified {
    pub event: String,
    pub version: Option<String>,
}

/// Everything remembered between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub schema: u32,
    #[serde(default)]
    pub last_check: Option<CheckRecord>,
    #[serde(default)]
    pub history: Vec<RunRecord>,
    #[serde(default)]
    pub bad: Vec<BadMark>,
    #[serde(default)]
    pub backoff: Option<Backoff>,
    /// The version root `current` points at, as we last set it.
    #[serde(default)]
    pub current: Option<String>,
    /// The version root to roll back to.
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub last_notified: Option<Notified>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            schema: SCHEMA,
            last_check: None,
            history: Vec::new(),
            bad: Vec::new(),
            backoff: None,
            current: None,
            previous: None,
            last_notified: None,
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
    Ok(serde_json::from_value::<State>(value).map_err(|e| format!("unexpected content: {e}")))
}

impl State {
    /// The holds the decision must respect.
    pub fn holds(&self) -> Holds {
        Holds {
            bad: self
                .bad
                .iter()
                .filter_map(|b| Version::parse(&b.version).ok())
                .collect(),
            backoff: self
                .backoff
                .as_ref()
                .and_then(|b| Version::parse(&b.version).ok().map(|v| (v, b.until))),
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

    /// Marks `version` bad.
    pub fn mark_bad(&mut self, version: &Version, at: OffsetDateTime, reason: &str) {
        self.bad.retain(|b| b.version != version.to_string());
        self.bad.push(BadMark {
            version: version.to_string(),
            at,
            reason: reason.to_owned(),
        });
    }

    /// Notes a failed build of `version`: 1 h, 2 h, 4 h … at most 24 h before the next try.
    pub fn note_build_failure(
        &mut self,
        version: &Version,
        now: OffsetDateTime,
        reason: &str,
    ) -> OffsetDateTime {
        let failures = match &self.backoff {
            Some(b) if b.version == version.to_string() => b.failures + 1,
            _ => 1,
        };
        let factor = 2u32.saturating_pow(failures - 1);
        let delay = BACKOFF_FIRST.saturating_mul(factor).min(BACKOFF_MAX);
        let until = now + delay;
        self.backoff = Some(Backoff {
            version: version.to_string(),
            failures,
            until,
            reason: reason.to_owned(),
        });
        until
    }

    /// Forgets backoff and bad marks for `version` (after it was installed on purpose).
    pub fn clear_holds_for(&mut self, version: &Version) {
        let v = version.to_string();
        self.bad.retain(|b| b.version != v);
        if self.backoff.as_ref().is_some_and(|b| b.version == v) {
            self.backoff = None;
        }
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
            .map(|_| (s.note_build_failure(&v("1.1.0"), T, "x") - T).whole_hours())
            .collect();
        assert_eq!(hours, [1, 2, 4, 8, 16, 24, 24]);
        s.note_build_failure(&v("1.2.0"), T, "x");
        assert_eq!(
            s.backoff.as_ref().unwrap().failures,
            1,
            "a new version starts over"
        );
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
        s.mark_bad(&v("1.1.0"), T, "died");
        f.save(&s, &lock).unwrap();
        std::fs::write(f.path(), "{\"schema\": 1, \"bad\": [").unwrap();
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
        s.mark_bad(&v("1.1.0"), T, "x");
        let until = s.note_build_failure(&v("1.2.0"), T, "x");
        let h = s.holds();
        assert_eq!(h.bad, vec![v("1.1.0")]);
        assert_eq!(h.backoff, Some((v("1.2.0"), until)));
        s.clear_holds_for(&v("1.2.0"));
        assert!(s.backoff.is_none());
    }
}
