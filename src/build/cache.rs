//! What the build keeps in the cache dir besides the checkout: `build-stats.json` (the
//! last build's phases and sizes, so the next free-space check knows how much a build
//! needs; and when each fetch step first failed for network reasons, so a failure that
//! lasts a day stops being "try later"), the target dir's size, and keeping that target
//! dir under `cache_max_size`.
//!
//! Bounding: when the target dir is over the limit, the artefacts that do not belong to
//! the current toolchain and profile go (other profile and target directories; units whose
//! fingerprint names another rustc than the newest unit's); if it is still over, the whole
//! target dir goes, so the next build starts empty. Deleting artefacts can only make cargo
//! rebuild them, never install stale code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The stats file in the cache dir.
pub const STATS_FILE: &str = "build-stats.json";

/// How long one step may keep failing for network reasons before that is a failure
/// someone must look at (exit 1) rather than "try again later" (exit 75).
pub const NETWORK_GRACE: Duration = Duration::from_secs(24 * 3600);

/// One phase of a build and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    pub phase: String,
    pub seconds: f64,
}

/// The last successful build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastBuild {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub tag: String,
    /// `git` or `checkout`.
    pub mode: String,
    pub phases: Vec<PhaseTime>,
    /// The new version root.
    pub root_bytes: u64,
    /// The target dir after the build (checkout mode: the checkout's; git mode: the
    /// fresh one, removed afterwards).
    pub target_bytes: u64,
    /// What the target dir grew by (git mode: all of it, it started empty).
    pub target_growth: u64,
}

/// `build-stats.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildStats {
    pub last_build: Option<LastBuild>,
    /// Step name → when it first failed for network reasons (cleared when it succeeds).
    #[serde(default)]
    pub network_failures: BTreeMap<String, String>,
}

impl BuildStats {
    /// Reads the stats (empty when missing or unreadable: they are only hints).
    pub fn load(cache_dir: &Path) -> Self {
        std::fs::read(cache_dir.join(STATS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, cache_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).context("encoding the build stats")?;
        crate::fsutil::atomic_write(&cache_dir.join(STATS_FILE), &bytes)
    }

    /// Bytes the next build is expected to add to the disk, with the target dir at
    /// `target_now` bytes: a root like the last one, and the target dir growing like it
    /// did last time or back to its last size (after it was cleared), whichever is more.
    /// 0 when there was no build yet.
    pub fn expected_bytes(&self, target_now: u64) -> u64 {
        self.last_build.as_ref().map_or(0, |b| {
            b.root_bytes.saturating_add(
                b.target_growth
                    .max(b.target_bytes.saturating_sub(target_now)),
            )
        })
    }
}

/// Notes a network failure of `step` at `now`; returns when that step first failed (now,
/// unless it has failed since an earlier run without succeeding in between).
pub fn note_network_failure(cache_dir: &Path, step: &str, now: OffsetDateTime) -> OffsetDateTime {
    let mut stats = BuildStats::load(cache_dir);
    let first = stats
        .network_failures
        .get(step)
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .filter(|t| *t <= now)
        .unwrap_or(now);
    stats
        .network_failures
        .insert(step.to_owned(), crate::timefmt::rfc3339(first));
    if let Err(e) = stats.save(cache_dir) {
        log::debug!("could not note the network failure: {e:#}");
    }
    first
}

/// Forgets the network failures of `step` (it succeeded).
pub fn clear_network_failure(cache_dir: &Path, step: &str) {
    let mut stats = BuildStats::load(cache_dir);
    if stats.network_failures.remove(step).is_some()
        && let Err(e) = stats.save(cache_dir)
    {
        log::debug!("could not clear the network failure: {e:#}");
    }
}

/// Forgets every step's network failures: a run that had nothing to build breaks the
/// "failed in every run since" streak (changes nothing when there is none).
pub fn clear_network_failures(cache_dir: &Path) {
    let mut stats = BuildStats::load(cache_dir);
    if stats.network_failures.is_empty() {
        return;
    }
    stats.network_failures.clear();
    if let Err(e) = stats.save(cache_dir) {
        log::debug!("could not clear the network failures: {e:#}");
    }
}

/// True when a step that first failed at `first` has failed for long enough to be a
/// failure someone must look at.
pub fn network_failure_persists(first: OffsetDateTime, now: OffsetDateTime) -> bool {
    (now - first).whole_seconds() >= i64::try_from(NETWORK_GRACE.as_secs()).unwrap_or(i64::MAX)
}

/// Bytes under `path` (files' lengths; links not followed); 0 when it does not exist.
pub fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| dir_size(&e.path()))
            .sum()
    })
}

/// A record of a build in `target_dir` dated after `now`, if there is one. cargo decides
/// what to rebuild by comparing the mtimes of sources with those records, so records
/// written while the clock was ahead would make newer sources look older than the
/// artefacts: stale code installed. Reads only cargo's fingerprint dirs
/// (`<profile>/.fingerprint`, `<triple>/<profile>/.fingerprint`).
pub fn future_dated(target_dir: &Path, now: std::time::SystemTime) -> Option<PathBuf> {
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir).map_or_else(
            |_| Vec::new(),
            |entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            },
        )
    };
    let later = |p: &Path| {
        std::fs::symlink_metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > now)
    };
    let mut fingerprint_dirs = Vec::new();
    for top in subdirs(target_dir) {
        fingerprint_dirs.push(top.join(".fingerprint"));
        fingerprint_dirs.extend(subdirs(&top).into_iter().map(|d| d.join(".fingerprint")));
    }
    for unit in fingerprint_dirs.iter().flat_map(|d| subdirs(d)) {
        if later(&unit) {
            return Some(unit);
        }
        let files = std::fs::read_dir(&unit)
            .into_iter()
            .flatten()
            .filter_map(Result::ok);
        if let Some(file) = files.map(|e| e.path()).find(|p| later(p)) {
            return Some(file);
        }
    }
    None
}

/// The size of the checkout's target dir in `cache_dir` (for `status` and `doctor`).
pub fn target_dir_size(cache_dir: &Path) -> u64 {
    dir_size(&crate::git::checkout_dir(cache_dir).join("target"))
}

/// What keeping the target dir under its limit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Within the limit: nothing to do.
    Within,
    /// Over; removing the artefacts of other toolchains and profiles brings it under.
    PruneStale,
    /// Still over without them: remove the whole target dir (the next build starts empty).
    Clear,
}

/// The decision for a target dir of `size` bytes, `stale` of them removable, under `max`.
pub fn bound(size: u64, stale: u64, max: u64) -> Bound {
    if size <= max {
        Bound::Within
    } else if size.saturating_sub(stale) <= max {
        Bound::PruneStale
    } else {
        Bound::Clear
    }
}

/// The directory of cargo profile `profile` in a target dir: `dev` and `test` build into
/// `debug`, `bench` into `release`, any other profile into its own name.
pub fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// The `-<16 hex>` suffix cargo gives a unit's files and directories.
fn unit_hash(name: &str) -> Option<&str> {
    let stem = name.split('.').next().unwrap_or(name);
    let (_, hash) = stem.rsplit_once('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

/// The rustc a unit was built with, from its fingerprint JSON files (`"rustc": <hash>`),
/// with the newest file's time.
fn unit_rustc(fingerprint_dir: &Path) -> Option<(u64, std::time::SystemTime)> {
    let mut best: Option<(u64, std::time::SystemTime)> = None;
    for entry in std::fs::read_dir(fingerprint_dir)
        .ok()?
        .filter_map(Result::ok)
    {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(rustc) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("rustc").and_then(serde_json::Value::as_u64))
        else {
            continue;
        };
        let modified = entry.metadata().and_then(|m| m.modified()).ok()?;
        if best.is_none_or(|(_, t)| modified > t) {
            best = Some((rustc, modified));
        }
    }
    best
}

/// What in `target` does not belong to the current toolchain and profile (whose directory
/// is `profile_dir`, see [`profile_dir`]): every entry beside the profile directory (other
/// profiles, `--target` triples, docs), and in the profile directory every file of a unit
/// whose fingerprint names another rustc than the most recently built unit.
pub fn stale_entries(target: &Path, profile_dir: &str) -> Vec<PathBuf> {
    let mut stale = Vec::new();
    let Ok(entries) = std::fs::read_dir(target) else {
        return stale;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        let keep = name == profile_dir || e.file_type().is_ok_and(|t| t.is_file());
        if !keep {
            stale.push(e.path());
        }
    }
    let profile = target.join(profile_dir);
    let units: Vec<(String, u64, std::time::SystemTime)> =
        std::fs::read_dir(profile.join(".fingerprint"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let hash = unit_hash(&name)?.to_owned();
                        let (rustc, t) = unit_rustc(&e.path())?;
                        Some((hash, rustc, t))
                    })
                    .collect()
            })
            .unwrap_or_default();
    let Some(current) = units.iter().max_by_key(|(_, _, t)| *t).map(|(_, r, _)| *r) else {
        return stale;
    };
    let old: BTreeSet<&str> = units
        .iter()
        .filter(|(_, r, _)| *r != current)
        .map(|(h, _, _)| h.as_str())
        .collect();
    if old.is_empty() {
        return stale;
    }
    for sub in [".fingerprint", "build", "deps", "incremental"] {
        let Ok(entries) = std::fs::read_dir(profile.join(sub)) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if unit_hash(&name).is_some_and(|h| old.contains(h)) {
                stale.push(e.path());
            }
        }
    }
    stale
}

/// What [`keep_under`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded {
    pub decision: Bound,
    pub before: u64,
    pub after: u64,
}

/// Keeps `target` under `max` bytes ([`bound`]); the profile builds use is in
/// `profile_dir`.
pub fn keep_under(target: &Path, max: u64, profile_dir: &str) -> Result<Bounded> {
    let before = dir_size(target);
    let stale = stale_entries(target, profile_dir);
    let stale_bytes: u64 = stale.iter().map(|p| dir_size(p)).sum();
    let decision = bound(before, stale_bytes, max);
    match decision {
        Bound::Within => {}
        Bound::PruneStale => {
            for p in &stale {
                crate::fsutil::remove_all(p)?;
            }
        }
        Bound::Clear => crate::fsutil::remove_all(target)?,
    }
    Ok(Bounded {
        decision,
        before,
        after: dir_size(target),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_build_records_dated_after_now_in_any_profile() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        let unit = target.join("x86_64-unknown-linux-gnu/release/.fingerprint/heph-1");
        std::fs::create_dir_all(&unit).unwrap();
        let record = unit.join("dep-bin-heph");
        std::fs::write(&record, "").unwrap();
        let now = std::time::SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            future_dated(&target, now + hour),
            None,
            "written before then"
        );
        std::fs::File::options()
            .write(true)
            .open(&record)
            .unwrap()
            .set_modified(now + 2 * hour)
            .unwrap();
        assert_eq!(future_dated(&target, now + hour), Some(record));
        assert_eq!(future_dated(&tmp.path().join("none"), now), None);
    }

    #[test]
    fn decides_how_to_bound_the_target_dir() {
        const G: u64 = 1 << 30;
        assert_eq!(bound(7 * G, 0, 8 * G), Bound::Within);
        assert_eq!(bound(8 * G, 0, 8 * G), Bound::Within);
        assert_eq!(bound(10 * G, 3 * G, 8 * G), Bound::PruneStale);
        assert_eq!(bound(10 * G, 2 * G, 8 * G), Bound::PruneStale);
        assert_eq!(bound(10 * G, G, 8 * G), Bound::Clear);
        assert_eq!(bound(10 * G, 0, 0), Bound::Clear);
    }

    fn write(path: &Path, bytes: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![b'x'; bytes]).unwrap();
    }

    fn unit(target: &Path, name: &str, hash: &str, rustc: u64) {
        let p = target.join("release");
        let fp = p.join(".fingerprint").join(format!("{name}-{hash}"));
        std::fs::create_dir_all(&fp).unwrap();
        std::fs::write(
            fp.join(format!("lib-{name}.json")),
            format!("{{\"rustc\":{rustc},\"features\":\"[]\"}}"),
        )
        .unwrap();
        write(&p.join("deps").join(format!("lib{name}-{hash}.rlib")), 1000);
        write(&p.join("deps").join(format!("{name}-{hash}.d")), 10);
        write(
            &p.join("build")
                .join(format!("{name}-{hash}"))
                .join("output"),
            5,
        );
    }

    #[test]
    fn finds_the_artefacts_of_other_toolchains_and_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("target");
        unit(&t, "regex", "00000000000000aa", 1);
        unit(&t, "serde", "00000000000000bb", 1);
        // Built later, with the toolchain in use now.
        std::thread::sleep(Duration::from_millis(20));
        unit(&t, "regex", "00000000000000cc", 2);
        write(&t.join("debug/deps/libx-00000000000000dd.rlib"), 100);
        write(&t.join(".rustc_info.json"), 10);
        let mut stale: Vec<String> = stale_entries(&t, "release")
            .iter()
            .map(|p| p.strip_prefix(&t).unwrap().display().to_string())
            .collect();
        stale.sort();
        assert_eq!(
            stale,
            [
                "debug",
                "release/.fingerprint/regex-00000000000000aa",
                "release/.fingerprint/serde-00000000000000bb",
                "release/build/regex-00000000000000aa",
                "release/build/serde-00000000000000bb",
                "release/deps/libregex-00000000000000aa.rlib",
                "release/deps/libserde-00000000000000bb.rlib",
                "release/deps/regex-00000000000000aa.d",
                "release/deps/serde-00000000000000bb.d",
            ]
        );

        // Over the limit: the stale part goes, the current unit stays.
        let size = dir_size(&t);
        let b = keep_under(&t, size - 1500, "release").unwrap();
        assert_eq!(b.decision, Bound::PruneStale);
        assert!(
            t.join("release/deps/libregex-00000000000000cc.rlib")
                .exists()
        );
        assert!(
            !t.join("release/deps/libregex-00000000000000aa.rlib")
                .exists()
        );
        // Far over: everything goes.
        let b = keep_under(&t, 10, "release").unwrap();
        assert_eq!(b.decision, Bound::Clear);
        assert!(!t.exists());
        assert_eq!(b.after, 0);
    }

    #[test]
    fn one_toolchain_has_nothing_stale() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("target");
        unit(&t, "regex", "00000000000000aa", 7);
        unit(&t, "serde", "00000000000000bb", 7);
        assert!(stale_entries(&t, "release").is_empty());
        assert!(stale_entries(&dir.path().join("missing"), "release").is_empty());
    }

    #[test]
    fn the_directory_of_the_profile_in_use_is_kept_and_the_others_are_stale() {
        assert_eq!(profile_dir("release"), "release");
        assert_eq!(profile_dir("dev"), "debug");
        assert_eq!(profile_dir("bench"), "release");
        assert_eq!(profile_dir("quick-release"), "quick-release");
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("target");
        unit(&t, "regex", "00000000000000aa", 7);
        write(
            &t.join("quick-release/deps/libregex-00000000000000bb.rlib"),
            100,
        );
        write(&t.join("debug/deps/libregex-00000000000000cc.rlib"), 100);
        let stale = |profile: &str| {
            let mut s: Vec<String> = stale_entries(&t, profile_dir(profile))
                .iter()
                .map(|p| p.strip_prefix(&t).unwrap().display().to_string())
                .collect();
            s.sort();
            s
        };
        assert_eq!(stale("quick-release"), ["debug", "release"]);
        assert_eq!(stale("release"), ["debug", "quick-release"]);
        assert_eq!(stale("dev"), ["quick-release", "release"]);
    }

    #[test]
    fn a_network_failure_persists_only_after_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-01 00:00 UTC);
        assert_eq!(note_network_failure(dir.path(), "fetch", t0), t0);
        let later = t0 + time::Duration::hours(23);
        assert_eq!(note_network_failure(dir.path(), "fetch", later), t0);
        assert!(!network_failure_persists(t0, later));
        assert!(network_failure_persists(t0, t0 + time::Duration::hours(24)));
        // Other steps have their own memory; success forgets.
        assert_eq!(note_network_failure(dir.path(), "resolve", later), later);
        clear_network_failure(dir.path(), "fetch");
        let again = t0 + time::Duration::hours(30);
        assert_eq!(note_network_failure(dir.path(), "fetch", again), again);
    }

    #[test]
    fn stats_survive_a_round_trip_and_garbage_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(BuildStats::load(dir.path()), BuildStats::default());
        let stats = BuildStats {
            last_build: Some(LastBuild {
                at: time::macros::datetime!(2026-01-01 00:00 UTC),
                tag: "v1.0.0".into(),
                mode: "checkout".into(),
                phases: vec![PhaseTime {
                    phase: "compile".into(),
                    seconds: 12.5,
                }],
                root_bytes: 100,
                target_bytes: 1000,
                target_growth: 23,
            }),
            network_failures: BTreeMap::new(),
        };
        stats.save(dir.path()).unwrap();
        assert_eq!(BuildStats::load(dir.path()), stats);
        let loaded = BuildStats::load(dir.path());
        assert_eq!(loaded.expected_bytes(1000), 123, "an incremental build");
        assert_eq!(
            loaded.expected_bytes(0),
            1100,
            "after the target dir was cleared"
        );
        assert_eq!(BuildStats::default().expected_bytes(0), 0);
        std::fs::write(dir.path().join(STATS_FILE), "{").unwrap();
        assert_eq!(BuildStats::load(dir.path()), BuildStats::default());
    }
}
