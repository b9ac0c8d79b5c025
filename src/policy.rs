//! The update decision: which release, if any, should be installed now, and why.
//!
//! Everything here is a pure function over plain values (installed version, releases,
//! policy, remembered failures, the current time). `check`, `check-and-apply` and
//! `--dry-run` all call [`decide`]; there is no second decision path.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use semver::{Version, VersionReq};
use time::OffsetDateTime;

use crate::release::Release;
use crate::rollout::Rollout;
use crate::version::{parse_tag, precedence, same_version};

/// Which releases count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Only releases without a pre-release part (and not flagged pre-release by the forge).
    Stable,
    /// Pre-releases count too.
    Prerelease,
}

/// The user's rules, from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    pub channel: Channel,
    /// An update must meet this requirement; `None` means any version.
    pub version_req: Option<VersionReq>,
    /// Converge to exactly this version, downward too. Overrides channel, requirement and age.
    pub pin: Option<Version>,
    /// A release younger than this (by its publish date) waits; when it is not zero, a
    /// release without a readable publish date waits too (its age cannot be known).
    pub min_release_age: Duration,
    /// Phased rollout across hosts: this host's place (`None`: every host at once).
    pub rollout: Option<HostRollout>,
}

/// This host's part in a phased rollout (see [`crate::rollout`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HostRollout {
    pub rollout: Rollout,
    /// The stable id the wave is hashed from.
    pub host_id: String,
}

/// A rollout wave in `[0, 1]`, comparable (its bits) so decisions stay `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct Wave(pub f64);

impl PartialEq for Wave {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Wave {}

/// What is on the machine now.
#[derive(Debug, Clone, Default)]
pub struct InstalledState {
    /// The installed daemon version, `None` when not installed or unknown.
    pub version: Option<Version>,
    /// Packages whose binary is missing from `bin_dir`.
    pub missing: Vec<String>,
}

/// What earlier runs learned, from the state file.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    /// Versions that failed their health check; not tried again until `--force`.
    pub bad: Vec<Version>,
    /// Versions whose build (or proof) failed, and when each may be tried again.
    pub backoff: Vec<(Version, OffsetDateTime)>,
}

/// One-off overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Ignore bad marks, backoff and `min_release_age`.
    pub force: bool,
    /// Install exactly this version (also an older one), like a pin for one run.
    pub to: Option<Version>,
}

/// The release a decision points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub tag: String,
    pub version: Version,
    pub published_at: Option<OffsetDateTime>,
}

/// Why one release was not considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    Draft,
    Upcoming,
    BadTag(String),
    Prerelease,
    Requirement(String),
    NotPinned(Version),
    MarkedBad,
    BackingOff(OffsetDateTime),
    TooYoung(OffsetDateTime),
    /// `min_release_age` is set but the forge gave no (readable) publish date.
    NoPublishDate,
    /// Not yet this host's turn in the rollout.
    RolloutWave {
        at: OffsetDateTime,
        wave: Wave,
        spread: Duration,
        pinned: bool,
    },
    Duplicate,
}

impl SkipReason {
    /// A stable identifier for JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Upcoming => "upcoming",
            Self::BadTag(_) => "bad_tag",
            Self::Prerelease => "prerelease",
            Self::Requirement(_) => "version_req",
            Self::NotPinned(_) => "pinned",
            Self::MarkedBad => "marked_bad",
            Self::BackingOff(_) => "backoff",
            Self::TooYoung(_) => "too_young",
            Self::NoPublishDate => "no_publish_date",
            Self::RolloutWave { .. } => "rollout_wave",
            Self::Duplicate => "duplicate",
        }
    }

    /// When the release stops being held, for time-based holds.
    pub fn until(&self) -> Option<OffsetDateTime> {
        match self {
            Self::BackingOff(t) | Self::TooYoung(t) | Self::RolloutWave { at: t, .. } => Some(*t),
            _ => None,
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Draft => f.write_str("draft"),
            Self::Upcoming => f.write_str("upcoming release, not yet released"),
            Self::BadTag(e) => f.write_str(e),
            Self::Prerelease => f.write_str("pre-release, and the channel is stable"),
            Self::Requirement(req) => write!(f, "does not meet version_req {req}"),
            Self::NotPinned(pin) => write!(f, "not the pinned version {pin}"),
            Self::MarkedBad => f.write_str("marked bad after a failed health check (use --force)"),
            Self::BackingOff(t) => write!(
                f,
                "its build failed; retry after {}",
                crate::timefmt::rfc3339(*t)
            ),
            Self::TooYoung(t) => write!(
                f,
                "younger than min_release_age; eligible at {}",
                crate::timefmt::rfc3339(*t)
            ),
            Self::NoPublishDate => f.write_str(
                "no publish date; its age cannot be checked (min_release_age, rollout_spread)",
            ),
            Self::RolloutWave {
                at,
                wave,
                spread,
                pinned,
            } => write!(
                f,
                "{}",
                crate::rollout::Eligibility {
                    at: *at,
                    wave: wave.0,
                    pinned: *pinned,
                    spread: *spread,
                }
            ),
            Self::Duplicate => f.write_str("same version as another release"),
        }
    }
}

/// A release that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub tag: String,
    pub version: Option<Version>,
    pub reason: SkipReason,
}

/// Why the decision came out as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Due: a newer eligible release exists.
    NewerRelease,
    /// Due: nothing is installed.
    NotInstalled,
    /// Due: the version matches but some package binaries are missing.
    MissingBinaries(Vec<String>),
    /// Due: the pin names another version than the installed one.
    Pinned,
    /// Due: `--to` asked for this version.
    Requested,
    /// Not due: the newest eligible release is installed.
    UpToDate,
    /// Not due: the pinned version is installed.
    AtPin,
    /// Not due: the installed version is newer than every eligible release.
    NewerInstalled,
    /// Not due: the pinned (or requested) version is not among the releases; the nearest
    /// listed versions below and above it, for the help line.
    TargetNotReleased(Version, Vec<Version>),
    /// Not due: the forge lists no eligible release at all.
    NoReleases,
    /// Not due: a newer release exists but is held for this reason.
    Held(Skipped),
}

impl Reason {
    /// A stable identifier for JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NewerRelease => "newer_release",
            Self::NotInstalled => "not_installed",
            Self::MissingBinaries(_) => "missing_binaries",
            Self::Pinned => "pinned",
            Self::Requested => "requested",
            Self::UpToDate => "up_to_date",
            Self::AtPin => "at_pin",
            Self::NewerInstalled => "newer_installed",
            Self::TargetNotReleased(..) => "target_not_released",
            Self::NoReleases => "no_releases",
            Self::Held(s) => s.reason.code(),
        }
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub installed: Option<Version>,
    /// The release the decision is about: the target when due, else the best eligible one.
    pub chosen: Option<Candidate>,
    /// True when an install should happen now.
    pub due: bool,
    pub reason: Reason,
    pub skipped: Vec<Skipped>,
}

impl Decision {
    /// One sentence for people.
    pub fn summary(&self) -> String {
        let installed = self
            .installed
            .as_ref()
            .map_or_else(|| "nothing".to_owned(), ToString::to_string);
        let chosen = self.chosen.as_ref().map(|c| c.version.to_string());
        let chosen = chosen.as_deref().unwrap_or("?");
        match &self.reason {
            Reason::NewerRelease => format!("update available: {installed} -> {chosen}"),
            Reason::NotInstalled => format!("not installed; {chosen} will be installed"),
            Reason::MissingBinaries(m) => {
                format!(
                    "{installed} is installed but {} missing; reinstall {chosen}",
                    m.join(", ")
                )
            }
            Reason::Pinned => format!("pinned to {chosen}; installed is {installed}"),
            Reason::Requested => format!("requested {chosen}; installed is {installed}"),
            Reason::UpToDate => format!("up to date ({installed})"),
            Reason::AtPin => format!("at the pinned version ({installed})"),
            Reason::NewerInstalled => {
                format!(
                    "installed {installed} is newer than the newest eligible release ({chosen})"
                )
            }
            Reason::TargetNotReleased(v, _) => {
                format!("version {v} is not among the forge's releases")
            }
            Reason::NoReleases => "the forge lists no eligible release".to_owned(),
            Reason::Held(s) => format!("{} is held: {}", s.tag, s.reason),
        }
    }
}

impl Decision {
    /// When the pinned (or requested) version is not among the forge's releases: the
    /// message and a help line naming the nearest listed versions. That is a mistake to
    /// fix (a typo looks healthy for ever otherwise), not "nothing due".
    pub fn missing_target(&self) -> Option<(String, String)> {
        let Reason::TargetNotReleased(v, nearest) = &self.reason else {
            return None;
        };
        let near = match nearest.as_slice() {
            [] => "the forge lists no release at all".to_owned(),
            [one] => format!("the nearest release is {one}"),
            [a, b, ..] => format!("the nearest releases are {a} and {b}"),
        };
        Some((
            format!("version {v} is not among the forge's releases"),
            format!("help: {near}; check the version (`pin`, or --to)"),
        ))
    }
}

/// Decides whether to install a release now.
///
/// Rules, in order: drafts and upcoming releases never count; tags must be plain semver
/// (one leading `v`); with a pin (or `--to`) only that version counts, downgrades allowed;
/// otherwise the channel, `version_req`, bad marks, build backoff and `min_release_age`
/// (which also holds a release without a publish date) filter the list, the highest
/// remaining version wins, and a downgrade is never offered.
pub fn decide(
    installed: &InstalledState,
    releases: &[Release],
    policy: &Policy,
    holds: &Holds,
    overrides: &Overrides,
    now: OffsetDateTime,
) -> Decision {
    let target = overrides.to.as_ref().or(policy.pin.as_ref());
    let mut skipped = Vec::new();
    let mut eligible: Vec<Candidate> = Vec::new();
    for release in releases {
        let outcome = filter(release, policy, holds, overrides, target, now);
        match outcome {
            Ok(candidate) => {
                if eligible
                    .iter()
                    .any(|c| same_version(&c.version, &candidate.version))
                {
                    skipped.push(Skipped {
                        tag: candidate.tag,
                        version: Some(candidate.version),
                        reason: SkipReason::Duplicate,
                    });
                } else {
                    eligible.push(candidate);
                }
            }
            Err(skip) => skipped.push(skip),
        }
    }
    let best = eligible
        .into_iter()
        .max_by(|a, b| precedence(&a.version, &b.version));
    let base = Decision {
        installed: installed.version.clone(),
        chosen: best.clone(),
        due: false,
        reason: Reason::NoReleases,
        skipped,
    };

    if let Some(target) = target {
        return decide_target(installed, base, target, overrides.to.is_some());
    }
    let Some(best) = best else {
        let reason =
            held_reason(&base.skipped, installed.version.as_ref()).unwrap_or(Reason::NoReleases);
        return Decision { reason, ..base };
    };
    let Some(current) = &installed.version else {
        return Decision {
            due: true,
            reason: Reason::NotInstalled,
            ..base
        };
    };
    match precedence(&best.version, current) {
        Ordering::Greater => Decision {
            due: true,
            reason: Reason::NewerRelease,
            ..base
        },
        Ordering::Equal if !installed.missing.is_empty() => Decision {
            due: true,
            reason: Reason::MissingBinaries(installed.missing.clone()),
            ..base
        },
        Ordering::Equal => {
            let reason = held_reason(&base.skipped, Some(current)).unwrap_or(Reason::UpToDate);
            Decision { reason, ..base }
        }
        Ordering::Less => {
            let reason =
                held_reason(&base.skipped, Some(current)).unwrap_or(Reason::NewerInstalled);
            Decision { reason, ..base }
        }
    }
}

fn decide_target(
    installed: &InstalledState,
    base: Decision,
    target: &Version,
    requested: bool,
) -> Decision {
    let Some(chosen) = &base.chosen else {
        // The pinned version may be listed but held (bad mark, backoff): say that.
        let held = base
            .skipped
            .iter()
            .find(|s| s.version.as_ref().is_some_and(|v| same_version(v, target)))
            .cloned();
        let reason = held.map_or_else(
            || Reason::TargetNotReleased(target.clone(), nearest(&base.skipped, target)),
            Reason::Held,
        );
        return Decision { reason, ..base };
    };
    let at_target = installed
        .version
        .as_ref()
        .is_some_and(|v| same_version(v, &chosen.version));
    if at_target && installed.missing.is_empty() {
        return Decision {
            reason: if requested {
                Reason::UpToDate
            } else {
                Reason::AtPin
            },
            ..base
        };
    }
    let reason = if at_target {
        Reason::MissingBinaries(installed.missing.clone())
    } else if requested {
        Reason::Requested
    } else {
        Reason::Pinned
    };
    Decision {
        due: true,
        reason,
        ..base
    }
}

/// The listed versions nearest to `target`: the highest below it and the lowest above it.
fn nearest(skipped: &[Skipped], target: &Version) -> Vec<Version> {
    let listed = skipped.iter().filter_map(|s| match s.reason {
        SkipReason::NotPinned(_) => s.version.clone(),
        _ => None,
    });
    let (mut below, mut above): (Option<Version>, Option<Version>) = (None, None);
    for v in listed {
        match precedence(&v, target) {
            Ordering::Less
                if below
                    .as_ref()
                    .is_none_or(|b| precedence(&v, b) == Ordering::Greater) =>
            {
                below = Some(v);
            }
            Ordering::Greater
                if above
                    .as_ref()
                    .is_none_or(|a| precedence(&v, a) == Ordering::Less) =>
            {
                above = Some(v);
            }
            _ => {}
        }
    }
    below.into_iter().chain(above).collect()
}

/// The reason a newer release was held: the hold on the best release this channel could
/// get (not a pre-release on the stable channel, not one outside `version_req`), above the
/// installed version (any version when nothing is installed). Only when no such release
/// is held, the highest one `version_req` leaves out is named, else the highest one the
/// channel leaves out. Drafts, bad tags and upcoming releases are never candidates.
fn held_reason(skipped: &[Skipped], installed: Option<&Version>) -> Option<Reason> {
    let above = |s: &&Skipped| {
        s.version
            .as_ref()
            .is_some_and(|v| installed.is_none_or(|i| precedence(v, i) == Ordering::Greater))
    };
    let best = |pred: &dyn Fn(&SkipReason) -> bool| {
        skipped
            .iter()
            .filter(above)
            .filter(|s| pred(&s.reason))
            .max_by(|a, b| {
                precedence(
                    a.version.as_ref().unwrap_or(&Version::new(0, 0, 0)),
                    b.version.as_ref().unwrap_or(&Version::new(0, 0, 0)),
                )
            })
            .map(|s| Reason::Held(s.clone()))
    };
    let never = |r: &SkipReason| {
        matches!(
            r,
            SkipReason::Draft
                | SkipReason::BadTag(_)
                | SkipReason::Duplicate
                | SkipReason::Upcoming
        )
    };
    let not_for_this_channel =
        |r: &SkipReason| matches!(r, SkipReason::Prerelease | SkipReason::Requirement(_));
    // Then the release `version_req` leaves out (a setting one may change) before a
    // pre-release the stable channel never takes.
    best(&|r| !never(r) && !not_for_this_channel(r))
        .or_else(|| best(&|r| matches!(r, SkipReason::Requirement(_))))
        .or_else(|| best(&|r| !never(r)))
}

fn filter(
    release: &Release,
    policy: &Policy,
    holds: &Holds,
    overrides: &Overrides,
    target: Option<&Version>,
    now: OffsetDateTime,
) -> Result<Candidate, Skipped> {
    let skip = |version: Option<&Version>, reason| Skipped {
        tag: release.tag.clone(),
        version: version.cloned(),
        reason,
    };
    if release.draft {
        return Err(skip(None, SkipReason::Draft));
    }
    if release.upcoming {
        return Err(skip(None, SkipReason::Upcoming));
    }
    let version =
        parse_tag(&release.tag).map_err(|e| skip(None, SkipReason::BadTag(e.to_string())))?;
    let v = Some(&version);
    if let Some(target) = target {
        if !same_version(&version, target) {
            return Err(skip(v, SkipReason::NotPinned(target.clone())));
        }
    } else {
        let is_pre = release.prerelease || !version.pre.is_empty();
        if is_pre && policy.channel == Channel::Stable {
            return Err(skip(v, SkipReason::Prerelease));
        }
        if let Some(req) = &policy.version_req
            && !requirement_allows(req, &version)
        {
            return Err(skip(v, SkipReason::Requirement(req.to_string())));
        }
    }
    // `--to` is a person's explicit choice for this run: it overrides every hold.
    let forced = overrides.force || overrides.to.is_some();
    if !forced {
        if holds.bad.iter().any(|b| same_version(b, &version)) {
            return Err(skip(v, SkipReason::MarkedBad));
        }
        if let Some((_, until)) = holds
            .backoff
            .iter()
            .find(|(b, until)| same_version(b, &version) && now < *until)
        {
            return Err(skip(v, SkipReason::BackingOff(*until)));
        }
        // A release whose age cannot be known is held, not let through: the rule exists to
        // wait out releases that turn out bad in their first days.
        let timed = !policy.min_release_age.is_zero() || policy.rollout.is_some();
        if target.is_none() && timed {
            let Some(published) = release.published_at else {
                return Err(skip(v, SkipReason::NoPublishDate));
            };
            match &policy.rollout {
                Some(r) => {
                    let e = r.rollout.eligibility(
                        &r.host_id,
                        &release.tag,
                        published,
                        policy.min_release_age,
                    );
                    if !e.is_due(now) {
                        return Err(skip(
                            v,
                            SkipReason::RolloutWave {
                                at: e.at,
                                wave: Wave(e.wave),
                                spread: e.spread,
                                pinned: e.pinned,
                            },
                        ));
                    }
                }
                None if now < published + policy.min_release_age => {
                    return Err(skip(
                        v,
                        SkipReason::TooYoung(published + policy.min_release_age),
                    ));
                }
                None => {}
            }
        }
    }
    Ok(Candidate {
        tag: release.tag.clone(),
        version,
        published_at: release.published_at,
    })
}

/// `VersionReq` never matches a pre-release unless a comparator names the same
/// `major.minor.patch` with a pre-release; on the pre-release channel that would hide
/// every pre-release, so a pre-release also passes when its release version matches.
fn requirement_allows(req: &VersionReq, version: &Version) -> bool {
    if req.matches(version) {
        return true;
    }
    if version.pre.is_empty() {
        return false;
    }
    let mut released = version.clone();
    released.pre = semver::Prerelease::EMPTY;
    released.build = semver::BuildMetadata::EMPTY;
    req.matches(&released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-10 12:00 UTC);

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn rel(tag: &str) -> Release {
        Release::published(tag, datetime!(2026-01-01 00:00 UTC))
    }

    fn stable() -> Policy {
        Policy {
            channel: Channel::Stable,
            version_req: None,
            pin: None,
            min_release_age: Duration::ZERO,
            rollout: None,
        }
    }

    fn installed(s: &str) -> InstalledState {
        InstalledState {
            version: Some(v(s)),
            missing: vec![],
        }
    }

    fn run(inst: &InstalledState, releases: &[Release], policy: &Policy) -> Decision {
        decide(
            inst,
            releases,
            policy,
            &Holds::default(),
            &Overrides::default(),
            NOW,
        )
    }

    fn chosen(d: &Decision) -> String {
        d.chosen
            .as_ref()
            .map(|c| c.version.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn offers_the_highest_version_not_the_newest_release() {
        // A back-port published after the newer line must not win.
        let mut backport = rel("v1.9.5");
        backport.published_at = Some(datetime!(2026-03-01 00:00 UTC));
        let d = run(
            &installed("1.9.0"),
            &[backport, rel("v1.10.0"), rel("v1.9.4")],
            &stable(),
        );
        assert!(d.due);
        assert_eq!(chosen(&d), "1.10.0");
        assert_eq!(d.reason, Reason::NewerRelease);
    }

    #[test]
    fn up_to_date_when_the_best_is_installed() {
        let d = run(
            &installed("1.10.0"),
            &[rel("v1.10.0"), rel("v1.9.0")],
            &stable(),
        );
        assert!(!d.due);
        assert_eq!(d.reason, Reason::UpToDate);
    }

    #[test]
    fn refuses_to_downgrade_without_a_pin() {
        let d = run(&installed("2.0.0"), &[rel("v1.10.0")], &stable());
        assert!(!d.due);
        assert_eq!(d.reason, Reason::NewerInstalled);
    }

    #[test]
    fn skips_drafts_upcoming_and_non_semver_tags_with_reasons() {
        let mut draft = rel("v3.0.0");
        draft.draft = true;
        let mut upcoming = rel("v2.0.0");
        upcoming.upcoming = true;
        let d = run(
            &installed("1.0.0"),
            &[draft, upcoming, rel("nightly"), rel("v1.1"), rel("v1.1.0")],
            &stable(),
        );
        assert_eq!(chosen(&d), "1.1.0");
        let codes: Vec<_> = d
            .skipped
            .iter()
            .map(|s| (s.tag.as_str(), s.reason.code()))
            .collect();
        assert_eq!(
            codes,
            [
                ("v3.0.0", "draft"),
                ("v2.0.0", "upcoming"),
                ("nightly", "bad_tag"),
                ("v1.1", "bad_tag")
            ]
        );
    }

    #[test]
    fn prereleases_only_on_the_prerelease_channel() {
        let mut flagged = rel("v1.2.0");
        flagged.prerelease = true;
        let releases = [rel("v1.0.0"), rel("v1.1.0-rc.1"), flagged];
        let d = run(&installed("1.0.0"), &releases, &stable());
        assert!(!d.due);
        assert_eq!(d.reason.code(), "prerelease", "{}", d.summary());

        let pre = Policy {
            channel: Channel::Prerelease,
            ..stable()
        };
        let d = run(&installed("1.0.0"), &releases, &pre);
        assert!(d.due);
        assert_eq!(chosen(&d), "1.2.0");
    }

    #[test]
    fn rc_10_is_newer_than_rc_9() {
        let pre = Policy {
            channel: Channel::Prerelease,
            ..stable()
        };
        let d = run(
            &installed("1.0.0-rc.9"),
            &[rel("v1.0.0-rc.9"), rel("v1.0.0-rc.10")],
            &pre,
        );
        assert!(d.due);
        assert_eq!(chosen(&d), "1.0.0-rc.10");
    }

    #[test]
    fn a_stable_release_supersedes_its_installed_prerelease() {
        let d = run(&installed("1.0.0-rc.2"), &[rel("v1.0.0")], &stable());
        assert!(d.due);
        assert_eq!(chosen(&d), "1.0.0");
    }

    #[test]
    fn build_metadata_does_not_make_an_update() {
        let d = run(&installed("1.0.0+nixos"), &[rel("v1.0.0+ci.7")], &stable());
        assert!(!d.due);
        assert_eq!(d.reason, Reason::UpToDate);
    }

    #[test]
    fn equal_versions_with_different_build_metadata_are_one_release() {
        let d = run(
            &installed("0.9.0"),
            &[rel("v1.0.0+a"), rel("v1.0.0+b")],
            &stable(),
        );
        assert_eq!(chosen(&d), "1.0.0+a");
        assert_eq!(d.skipped[0].reason, SkipReason::Duplicate);
    }

    #[test]
    fn version_requirement_holds_back_a_major_upgrade() {
        let policy = Policy {
            version_req: Some(VersionReq::parse("<2").unwrap()),
            ..stable()
        };
        let d = run(
            &installed("1.5.0"),
            &[rel("v1.6.0"), rel("v2.0.0")],
            &policy,
        );
        assert_eq!(chosen(&d), "1.6.0");
        assert!(d.due);
        let d = run(
            &installed("1.6.0"),
            &[rel("v1.6.0"), rel("v2.0.0")],
            &policy,
        );
        assert!(!d.due);
        assert_eq!(d.reason.code(), "version_req");
        assert!(d.summary().contains("v2.0.0 is held"), "{}", d.summary());
    }

    #[test]
    fn tilde_requirement_allows_patches_only() {
        let policy = Policy {
            version_req: Some(VersionReq::parse("~1.10").unwrap()),
            ..stable()
        };
        let d = run(
            &installed("1.10.1"),
            &[rel("v1.10.4"), rel("v1.11.0")],
            &policy,
        );
        assert_eq!(chosen(&d), "1.10.4");
    }

    #[test]
    fn requirement_admits_prereleases_of_matching_versions_on_the_prerelease_channel() {
        let policy = Policy {
            channel: Channel::Prerelease,
            version_req: Some(VersionReq::parse("<2").unwrap()),
            ..stable()
        };
        let d = run(
            &installed("1.0.0"),
            &[rel("v1.1.0-rc.1"), rel("v2.0.0-rc.1")],
            &policy,
        );
        assert_eq!(chosen(&d), "1.1.0-rc.1");
    }

    #[test]
    fn pin_converges_downward() {
        let policy = Policy {
            pin: Some(v("1.8.1")),
            ..stable()
        };
        let d = run(
            &installed("1.10.4"),
            &[rel("v1.10.4"), rel("v1.8.1")],
            &policy,
        );
        assert!(d.due);
        assert_eq!(d.reason, Reason::Pinned);
        assert_eq!(chosen(&d), "1.8.1");
    }

    #[test]
    fn pin_above_installed_upgrades_even_past_requirement_channel_and_age() {
        let mut young = rel("v2.0.0-rc.1");
        young.published_at = Some(NOW);
        let policy = Policy {
            pin: Some(v("2.0.0-rc.1")),
            version_req: Some(VersionReq::parse("<2").unwrap()),
            min_release_age: Duration::from_secs(86_400),
            ..stable()
        };
        let d = run(&installed("1.0.0"), &[rel("v1.0.0"), young], &policy);
        assert!(d.due);
        assert_eq!(chosen(&d), "2.0.0-rc.1");
    }

    #[test]
    fn at_the_pin_nothing_is_due_even_when_newer_exists() {
        let policy = Policy {
            pin: Some(v("1.8.1")),
            ..stable()
        };
        let d = run(
            &installed("1.8.1"),
            &[rel("v1.10.4"), rel("v1.8.1")],
            &policy,
        );
        assert!(!d.due);
        assert_eq!(d.reason, Reason::AtPin);
    }

    #[test]
    fn a_pin_that_was_never_released_is_reported() {
        let policy = Policy {
            pin: Some(v("9.9.9")),
            ..stable()
        };
        let d = run(&installed("1.0.0"), &[rel("v1.0.0")], &policy);
        assert!(!d.due);
        assert_eq!(
            d.reason,
            Reason::TargetNotReleased(v("9.9.9"), vec![v("1.0.0")])
        );
    }

    #[test]
    fn a_missing_pin_names_the_nearest_releases_on_both_sides() {
        let policy = Policy {
            pin: Some(v("1.8.2")),
            ..stable()
        };
        let d = run(
            &installed("1.0.0"),
            &[rel("v1.9.0"), rel("v1.8.1"), rel("v1.8.0"), rel("v2.0.0")],
            &policy,
        );
        assert_eq!(
            d.reason,
            Reason::TargetNotReleased(v("1.8.2"), vec![v("1.8.1"), v("1.9.0")])
        );
    }

    #[test]
    fn the_hold_shown_is_the_one_on_the_best_release_this_channel_could_get() {
        // A newer pre-release exists; the stable 1.1.0 is only too young.
        let mut young = rel("v1.1.0");
        young.published_at = Some(NOW - Duration::from_secs(3600));
        let policy = Policy {
            min_release_age: Duration::from_secs(86_400),
            ..stable()
        };
        let d = run(&installed("1.0.0"), &[rel("v1.2.0-rc.1"), young], &policy);
        let Reason::Held(s) = &d.reason else {
            panic!("{:?}", d.reason)
        };
        assert_eq!((s.tag.as_str(), s.reason.code()), ("v1.1.0", "too_young"));
        assert!(s.reason.until().is_some(), "wait_until is known");
        // The same with version_req: 2.0.0 is outside it, 1.1.0 waits.
        let mut young = rel("v1.1.0");
        young.published_at = Some(NOW - Duration::from_secs(3600));
        let policy = Policy {
            min_release_age: Duration::from_secs(86_400),
            version_req: Some(VersionReq::parse("<2").unwrap()),
            ..stable()
        };
        let d = run(&installed("1.0.0"), &[rel("v2.0.0"), young], &policy);
        assert_eq!(d.reason.code(), "too_young");
        // With nothing else held, the release outside version_req is named.
        let d = run(
            &installed("1.0.0"),
            &[rel("v2.0.0"), rel("v1.0.0")],
            &policy,
        );
        assert_eq!(d.reason.code(), "version_req");
        // A newer pre-release on the stable channel does not hide it.
        let d = run(
            &installed("1.0.0"),
            &[rel("v3.0.0-rc.1"), rel("v2.0.0"), rel("v1.0.0")],
            &policy,
        );
        let Reason::Held(s) = &d.reason else {
            panic!("{:?}", d.reason)
        };
        assert_eq!((s.tag.as_str(), s.reason.code()), ("v2.0.0", "version_req"));
    }

    fn rollout(spread_hours: u64, wave: Option<f64>) -> Policy {
        Policy {
            rollout: Some(HostRollout {
                rollout: Rollout {
                    spread: Duration::from_secs(spread_hours * 3600),
                    pinned_wave: wave,
                },
                host_id: "host-a".into(),
            }),
            ..stable()
        }
    }

    #[test]
    fn a_release_waits_for_this_hosts_wave_of_the_rollout() {
        let mut r = rel("v1.1.0");
        r.published_at = Some(NOW - Duration::from_secs(10 * 3600));
        // Wave 0.9 of 48 h: eligible 43.2 h after publishing; 10 h have passed.
        let d = run(
            &installed("1.0.0"),
            std::slice::from_ref(&r),
            &rollout(48, Some(0.9)),
        );
        assert!(!d.due);
        let Reason::Held(s) = &d.reason else {
            panic!("{:?}", d.reason)
        };
        assert_eq!(s.reason.code(), "rollout_wave");
        let at = s.reason.until().unwrap();
        assert_eq!((at - r.published_at.unwrap()).whole_minutes(), 43 * 60 + 12);
        assert!(
            s.reason.to_string().contains("(pinned wave 0.90 of 2d)"),
            "{}",
            s.reason
        );
        // The canary (wave 0) takes it at once; --force skips the wait.
        assert!(
            run(
                &installed("1.0.0"),
                std::slice::from_ref(&r),
                &rollout(48, Some(0.0))
            )
            .due
        );
        let forced = decide(
            &installed("1.0.0"),
            std::slice::from_ref(&r),
            &rollout(48, Some(0.9)),
            &Holds::default(),
            &Overrides {
                force: true,
                to: None,
            },
            NOW,
        );
        assert!(forced.due);
    }

    #[test]
    fn a_draft_is_never_taken_whatever_the_wave() {
        let mut r = rel("v1.1.0");
        r.published_at = Some(NOW - Duration::from_secs(100 * 3600));
        r.draft = true;
        let d = run(&installed("1.0.0"), &[r], &rollout(48, Some(0.9)));
        assert!(!d.due, "halting a rollout: the release became a draft");
    }

    #[test]
    fn a_young_release_waits_for_min_release_age() {
        let mut young = rel("v1.1.0");
        young.published_at = Some(NOW - time::Duration::hours(2));
        let policy = Policy {
            min_release_age: Duration::from_secs(86_400),
            ..stable()
        };
        let d = run(
            &installed("1.0.0"),
            &[rel("v1.0.0"), young.clone()],
            &policy,
        );
        assert!(!d.due);
        assert_eq!(d.reason.code(), "too_young");
        let Reason::Held(s) = &d.reason else { panic!() };
        assert_eq!(s.reason.until(), Some(NOW + time::Duration::hours(22)));

        // Once aged, it is due.
        let later = decide(
            &installed("1.0.0"),
            &[young],
            &policy,
            &Holds::default(),
            &Overrides::default(),
            NOW + time::Duration::hours(22),
        );
        assert!(later.due);
    }

    #[test]
    fn a_release_without_a_publish_date_is_held_by_min_release_age() {
        let mut undated = rel("v1.1.0");
        undated.published_at = None;
        let policy = Policy {
            min_release_age: Duration::from_secs(86_400),
            ..stable()
        };
        let d = run(
            &installed("1.0.0"),
            &[rel("v1.0.0"), undated.clone()],
            &policy,
        );
        assert!(!d.due);
        assert_eq!(d.reason.code(), "no_publish_date");
        assert!(
            d.summary()
                .contains("v1.1.0 is held: no publish date; its age cannot be checked"),
            "{}",
            d.summary()
        );
        // Without min_release_age a date is not needed.
        assert!(
            run(
                &installed("1.0.0"),
                std::slice::from_ref(&undated),
                &stable()
            )
            .due
        );
        // --force, a pin and --to are a person's choice and are not held by age.
        let forced = Overrides {
            force: true,
            to: None,
        };
        let d = decide(
            &installed("1.0.0"),
            std::slice::from_ref(&undated),
            &policy,
            &Holds::default(),
            &forced,
            NOW,
        );
        assert!(d.due);
        let pinned = Policy {
            pin: Some(v("1.1.0")),
            ..policy.clone()
        };
        assert!(run(&installed("1.0.0"), std::slice::from_ref(&undated), &pinned).due);
        let to = Overrides {
            force: false,
            to: Some(v("1.1.0")),
        };
        let d = decide(
            &installed("1.0.0"),
            &[undated],
            &policy,
            &Holds::default(),
            &to,
            NOW,
        );
        assert!(d.due);
    }

    #[test]
    fn an_older_aged_release_is_still_offered_while_the_newest_waits() {
        let mut young = rel("v1.2.0");
        young.published_at = Some(NOW);
        let policy = Policy {
            min_release_age: Duration::from_secs(3600),
            ..stable()
        };
        let d = run(&installed("1.0.0"), &[young, rel("v1.1.0")], &policy);
        assert!(d.due);
        assert_eq!(chosen(&d), "1.1.0");
    }

    #[test]
    fn nothing_installed_means_due() {
        let d = run(&InstalledState::default(), &[rel("v1.0.0")], &stable());
        assert!(d.due);
        assert_eq!(d.reason, Reason::NotInstalled);
    }

    #[test]
    fn a_missing_package_binary_makes_an_update_due_at_the_same_version() {
        let inst = InstalledState {
            version: Some(v("1.0.0")),
            missing: vec!["heph-tui".into()],
        };
        let d = run(&inst, &[rel("v1.0.0")], &stable());
        assert!(d.due);
        assert_eq!(d.reason, Reason::MissingBinaries(vec!["heph-tui".into()]));
    }

    #[test]
    fn bad_versions_are_skipped_until_forced() {
        let holds = Holds {
            bad: vec![v("1.1.0")],
            backoff: Vec::new(),
        };
        let d = decide(
            &installed("1.0.0"),
            &[rel("v1.1.0")],
            &stable(),
            &holds,
            &Overrides::default(),
            NOW,
        );
        assert!(!d.due);
        assert_eq!(d.reason.code(), "marked_bad");
        let forced = Overrides {
            force: true,
            to: None,
        };
        let d = decide(
            &installed("1.0.0"),
            &[rel("v1.1.0")],
            &stable(),
            &holds,
            &forced,
            NOW,
        );
        assert!(d.due);
    }

    #[test]
    fn a_newer_release_than_the_bad_one_is_offered() {
        let holds = Holds {
            bad: vec![v("1.1.0")],
            backoff: Vec::new(),
        };
        let d = decide(
            &installed("1.0.0"),
            &[rel("v1.1.0"), rel("v1.2.0")],
            &stable(),
            &holds,
            &Overrides::default(),
            NOW,
        );
        assert!(d.due);
        assert_eq!(chosen(&d), "1.2.0");
    }

    #[test]
    fn a_failed_build_waits_for_its_backoff() {
        let until = NOW + time::Duration::hours(1);
        let holds = Holds {
            bad: vec![],
            backoff: vec![(v("1.1.0"), until)],
        };
        let d = decide(
            &installed("1.0.0"),
            &[rel("v1.1.0")],
            &stable(),
            &holds,
            &Overrides::default(),
            NOW,
        );
        assert!(!d.due);
        assert_eq!(d.reason.code(), "backoff");
        let d = decide(
            &installed("1.0.0"),
            &[rel("v1.1.0")],
            &stable(),
            &holds,
            &Overrides::default(),
            until,
        );
        assert!(d.due, "due again when the backoff ends");
    }

    #[test]
    fn to_installs_an_older_release_and_ignores_holds() {
        let holds = Holds {
            bad: vec![v("1.0.0")],
            backoff: Vec::new(),
        };
        let over = Overrides {
            force: false,
            to: Some(v("1.0.0")),
        };
        let d = decide(
            &installed("1.2.0"),
            &[rel("v1.2.0"), rel("v1.0.0")],
            &stable(),
            &holds,
            &over,
            NOW,
        );
        assert!(d.due);
        assert_eq!(d.reason, Reason::Requested);
        assert_eq!(chosen(&d), "1.0.0");
    }

    #[test]
    fn a_bad_pinned_version_is_not_retried_every_run() {
        let policy = Policy {
            pin: Some(v("1.1.0")),
            ..stable()
        };
        let holds = Holds {
            bad: vec![v("1.1.0")],
            backoff: Vec::new(),
        };
        let d = decide(
            &installed("1.0.0"),
            &[rel("v1.1.0")],
            &policy,
            &holds,
            &Overrides::default(),
            NOW,
        );
        assert!(!d.due);
        assert_eq!(d.reason.code(), "marked_bad");
    }

    #[test]
    fn no_releases_at_all() {
        let d = run(&installed("1.0.0"), &[], &stable());
        assert!(!d.due);
        assert_eq!(d.reason, Reason::NoReleases);
    }
}
