//! Phased rollout: when a release becomes eligible on this host.
//!
//! A release becomes eligible at
//! `published_at + min_release_age + rollout_spread × wave`, where the host's *wave*
//! `w ∈ [0, 1)` is derived from a stable host id and the release tag. Hosts with a small
//! wave go first; because the tag is part of the hash, the canary changes from release to
//! release instead of always being the same machine. A configured `rollout_wave` pins the
//! wave (`0.0` = always first, `0.9` = cautious, `1.0` = always last).
//!
//! The idea follows Fedora CoreOS's Zincati (`rollout_wariness`, a per-node value in
//! `[0, 1]` that delays the node within a server-side rollout window) and Sparkle's phased
//! rollouts (each client falls in one of seven groups, one group a day), without a server:
//! every host computes its own place from the same public inputs.
//!
//! The hash is SHA-256 over a fixed, versioned domain string, the length of the host id
//! (8 bytes, big-endian), the host id and the tag; its first 53 bits, divided by 2^53, are
//! the wave. Unlike `std::hash::DefaultHasher`, whose output may change between Rust
//! releases, this stays the same across builds and platforms, so a host keeps its place in
//! a rollout when heph-selfupdate itself is updated.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Separates this use of SHA-256 from any other; bump the version to reshuffle every host.
const WAVE_DOMAIN: &[u8] = b"heph-selfupdate rollout wave v1\0";

/// 2^53: the number of distinct waves (every one of them exactly representable in `f64`).
const WAVE_STEPS: f64 = 9_007_199_254_740_992.0;

/// The host's place in the rollout of `tag`, in `[0, 1)`.
///
/// Deterministic: the same host id and tag give the same wave on every machine, every run
/// and every build. Pass the tag exactly as the forge names it (every host sees the same).
pub fn wave(host_id: &str, tag: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(WAVE_DOMAIN);
    hasher.update((host_id.len() as u64).to_be_bytes());
    hasher.update(host_id.as_bytes());
    hasher.update(tag.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let bits = u64::from_be_bytes(first) >> 11;
    // Lossless: `bits < 2^53`, and every integer below 2^53 is an exact `f64`.
    #[allow(clippy::cast_precision_loss)]
    let numerator = bits as f64;
    numerator / WAVE_STEPS
}

/// Checks a configured `rollout_wave`: a number from 0.0 (first) to 1.0 (last).
pub fn validate_wave(value: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "rollout_wave = {value} is outside 0.0..=1.0\nhelp: 0.0 takes a release first (a canary), 0.9 late (cautious), 1.0 last; leave it out to let the host id decide"
        ))
    }
}

/// The rollout settings of this host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rollout {
    /// How long after a release's earliest moment the last host takes it
    /// (`rollout_spread`; zero: every host at once).
    pub spread: Duration,
    /// A fixed wave instead of the hashed one (`rollout_wave`); see [`validate_wave`].
    pub pinned_wave: Option<f64>,
}

impl Rollout {
    /// This host's wave for `tag`: the pinned one if set, else the hashed one.
    ///
    /// A pinned wave outside `0.0..=1.0` (which [`validate_wave`] refuses) is clamped, and
    /// one that is not a number counts as unset, so this never fails.
    pub fn wave_for(&self, host_id: &str, tag: &str) -> (f64, bool) {
        match self.pinned_wave {
            Some(w) if !w.is_nan() => (w.clamp(0.0, 1.0), true),
            _ => (wave(host_id, tag), false),
        }
    }

    /// When the release `tag`, published at `published_at`, becomes eligible on this host.
    ///
    /// A time past the end of the calendar (an absurd spread) is capped at the calendar's
    /// last second, which in practice means "never".
    pub fn eligibility(
        &self,
        host_id: &str,
        tag: &str,
        published_at: OffsetDateTime,
        min_release_age: Duration,
    ) -> Eligibility {
        let (wave, pinned) = self.wave_for(host_id, tag);
        // Whole seconds: the time is shown and stored to the second.
        let share = Duration::try_from_secs_f64(self.spread.as_secs_f64() * wave)
            .map_or(Duration::MAX, |d| Duration::from_secs(d.as_secs()));
        let delay = min_release_age.saturating_add(share);
        let at = time::Duration::try_from(delay)
            .ok()
            .and_then(|d| published_at.checked_add(d))
            .unwrap_or_else(|| time::PrimitiveDateTime::MAX.assume_utc());
        Eligibility {
            at,
            wave,
            pinned,
            spread: self.spread,
        }
    }
}

/// When a release becomes eligible on this host, and why then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eligibility {
    /// The first moment this host may take the release.
    pub at: OffsetDateTime,
    /// The wave used, in `[0, 1]`.
    pub wave: f64,
    /// Whether the wave came from `rollout_wave` rather than the host id.
    pub pinned: bool,
    /// The rollout spread it was scaled by.
    pub spread: Duration,
}

impl Eligibility {
    /// Whether the release may be taken at `now`.
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        now >= self.at
    }
}

/// `eligible on this host at 2026-12-01T10:00:00Z (wave 0.37 of 2d)`.
impl fmt::Display for Eligibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "eligible on this host at {}",
            crate::timefmt::rfc3339(self.at)
        )?;
        if self.spread.is_zero() {
            f.write_str(" (no rollout spread)")
        } else {
            let pinned = if self.pinned { "pinned " } else { "" };
            write!(
                f,
                " ({pinned}wave {:.2} of {})",
                self.wave,
                compact_duration(self.spread)
            )
        }
    }
}

/// A duration as its non-zero whole units: `2d`, `1d 12h`, `1h 30m`, `45s`, `0s`.
pub fn compact_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_owned()
    } else {
        text.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const DAY: Duration = Duration::from_secs(86_400);

    fn hosts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("host-{i:04}")).collect()
    }

    /// Pearson's chi-square statistic of `waves` over `bins` equal bins of [0, 1).
    fn chi_square(waves: &[f64], bins: usize) -> f64 {
        let mut counts = vec![0u32; bins];
        for w in waves {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let bin = (w * bins as f64) as usize;
            counts[bin] += 1;
        }
        #[allow(clippy::cast_precision_loss)]
        let expected = waves.len() as f64 / bins as f64;
        counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn waves_of_a_thousand_hosts_are_uniform_by_a_chi_square_test() {
        // 10 bins = 9 degrees of freedom; the critical value at significance 0.001 is
        // 27.877. The hash is fixed, so this is a fixed check that the mapping spreads
        // sequential names evenly, for several tags.
        let hosts = hosts(1000);
        for tag in ["v1.2.0", "v1.2.1", "v2.0.0-rc.1", "1.0.0", "v10.4.7"] {
            let waves: Vec<f64> = hosts.iter().map(|h| wave(h, tag)).collect();
            let stat = chi_square(&waves, 10);
            assert!(
                stat < 27.877,
                "chi-square {stat:.2} for {tag} rejects uniformity at 0.001"
            );
        }
    }

    #[test]
    fn a_thousand_hosts_leave_no_large_gap_in_the_rollout() {
        // For n = 1000 uniform points the largest of the n + 1 gaps (the ends included)
        // exceeds g with probability about (n + 1)(1 - g)^n: for g = 0.015 that is 3e-4.
        // A gap of 1.5 % of the spread means no long pause with nobody updating.
        let mut waves: Vec<f64> = hosts(1000).iter().map(|h| wave(h, "v1.2.0")).collect();
        waves.sort_by(f64::total_cmp);
        assert!(waves.iter().all(|w| (0.0..1.0).contains(w)));
        let mut edges = vec![0.0];
        edges.extend(&waves);
        edges.push(1.0);
        let max_gap = edges.windows(2).map(|p| p[1] - p[0]).fold(0.0, f64::max);
        assert!(max_gap < 0.015, "largest gap {max_gap}");
    }

    #[test]
    fn waves_are_the_same_in_every_run_and_build() {
        // Golden values computed independently with Python's hashlib:
        //   import hashlib, struct
        //   def wave(h, t):
        //       d = hashlib.sha256(b"heph-selfupdate rollout wave v1\0"
        //           + struct.pack(">Q", len(h.encode())) + h.encode() + t.encode()).digest()
        //       return (int.from_bytes(d[:8], "big") >> 11) / 2**53
        let golden = [
            (
                "0123456789abcdef0123456789abcdef",
                "v1.2.0",
                0.678_083_783_664_655_7,
            ),
            (
                "0123456789abcdef0123456789abcdef",
                "v1.3.0",
                0.180_030_526_513_030_86,
            ),
            ("web-1", "v1.2.0", 0.407_714_498_107_990_65),
            (
                "A1B2C3D4-E5F6-7890-ABCD-EF1234567890",
                "v2.0.0",
                0.570_633_551_980_527_9,
            ),
        ];
        for (host, tag, expected) in golden {
            assert_eq!(
                wave(host, tag).to_bits(),
                f64::to_bits(expected),
                "{host} {tag}"
            );
        }
    }

    #[test]
    fn the_canary_changes_from_release_to_release() {
        let hosts = hosts(1000);
        let tags: Vec<String> = (0..20).map(|i| format!("v1.{i}.0")).collect();
        let canaries: std::collections::BTreeSet<&String> = tags
            .iter()
            .map(|tag| {
                hosts
                    .iter()
                    .min_by(|a, b| wave(a, tag).total_cmp(&wave(b, tag)))
                    .unwrap()
            })
            .collect();
        // 20 draws from 1000 hosts repeat a host with probability about 0.17; 15 distinct
        // canaries would need five repeats, which uniform draws essentially never give.
        assert!(canaries.len() >= 15, "only {} canaries", canaries.len());
    }

    #[test]
    fn orderings_for_two_tags_are_unrelated() {
        // Spearman's rank correlation of the two orderings: under independence its
        // standard deviation is 1/sqrt(999) ≈ 0.032; 0.15 is more than four of them.
        let hosts = hosts(1000);
        let ranks = |tag: &str| {
            let mut order: Vec<usize> = (0..hosts.len()).collect();
            order.sort_by(|&a, &b| wave(&hosts[a], tag).total_cmp(&wave(&hosts[b], tag)));
            let mut rank = vec![0f64; hosts.len()];
            for (r, &i) in order.iter().enumerate() {
                rank[i] = f64::from(u32::try_from(r).unwrap());
            }
            rank
        };
        let (a, b) = (ranks("v1.2.0"), ranks("v1.3.0"));
        let n = 1000.0_f64;
        let d2: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum();
        let rho = 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
        assert!(rho.abs() < 0.15, "rank correlation {rho}");
    }

    #[test]
    fn host_id_and_tag_cannot_be_shifted_into_each_other() {
        assert_ne!(wave("ab", "c").to_bits(), wave("a", "bc").to_bits());
        assert_ne!(
            wave("host", "v1.0.0").to_bits(),
            wave("host", "1.0.0").to_bits()
        );
    }

    #[test]
    fn eligibility_adds_the_minimum_age_and_the_waves_share_of_the_spread() {
        let rollout = Rollout {
            spread: 2 * DAY,
            pinned_wave: Some(0.25),
        };
        let published = datetime!(2026-12-01 10:00 UTC);
        let e = rollout.eligibility("any", "v1.2.0", published, DAY);
        assert_eq!(e.at, datetime!(2026-12-02 22:00 UTC));
        assert!(e.pinned);
        assert!(!e.is_due(datetime!(2026-12-02 21:59:59 UTC)));
        assert!(e.is_due(datetime!(2026-12-02 22:00 UTC)));
    }

    #[test]
    fn the_hashed_wave_decides_when_none_is_pinned() {
        let rollout = Rollout {
            spread: Duration::from_secs(1000),
            pinned_wave: None,
        };
        let published = datetime!(2026-12-01 10:00 UTC);
        let e = rollout.eligibility("web-1", "v1.2.0", published, Duration::ZERO);
        assert_eq!(e.wave.to_bits(), wave("web-1", "v1.2.0").to_bits());
        assert!(!e.pinned);
        // 0.4077… × 1000 s, to the whole second
        assert_eq!(e.at, datetime!(2026-12-01 10:06:47 UTC));
    }

    #[test]
    fn without_a_spread_every_host_is_eligible_after_the_minimum_age() {
        let rollout = Rollout {
            spread: Duration::ZERO,
            pinned_wave: None,
        };
        let published = datetime!(2026-12-01 10:00 UTC);
        for host in hosts(20) {
            let e = rollout.eligibility(&host, "v1.2.0", published, DAY);
            assert_eq!(e.at, datetime!(2026-12-02 10:00 UTC));
        }
    }

    #[test]
    fn pinned_waves_are_clamped_and_a_nan_pin_counts_as_unset() {
        let r = |w| Rollout {
            spread: DAY,
            pinned_wave: Some(w),
        };
        assert_eq!(r(1.7).wave_for("h", "t"), (1.0, true));
        assert_eq!(r(-0.5).wave_for("h", "t"), (0.0, true));
        assert_eq!(r(f64::NAN).wave_for("h", "t"), (wave("h", "t"), false));
    }

    #[test]
    fn an_absurd_spread_means_never_rather_than_a_panic() {
        let rollout = Rollout {
            spread: Duration::MAX,
            pinned_wave: Some(1.0),
        };
        let e = rollout.eligibility("h", "t", datetime!(2026-12-01 10:00 UTC), Duration::MAX);
        assert_eq!(e.at.year(), 9999);
    }

    #[test]
    fn validates_a_configured_wave_with_help() {
        assert_eq!(validate_wave(0.0), Ok(0.0));
        assert_eq!(validate_wave(1.0), Ok(1.0));
        let err = validate_wave(1.5).unwrap_err();
        assert!(
            err.contains("outside 0.0..=1.0") && err.contains("help:"),
            "{err}"
        );
        assert!(validate_wave(f64::NAN).is_err());
    }

    #[test]
    fn says_when_and_why_in_one_line() {
        let published = datetime!(2026-11-29 22:00 UTC);
        let e = Rollout {
            spread: 2 * DAY,
            pinned_wave: Some(0.25),
        }
        .eligibility("h", "v1.2.0", published, DAY)
        .to_string();
        assert_eq!(
            e,
            "eligible on this host at 2026-12-01T10:00:00Z (pinned wave 0.25 of 2d)"
        );
        let e = Rollout {
            spread: 36 * 3600 * Duration::from_secs(1),
            pinned_wave: None,
        }
        .eligibility("web-1", "v1.2.0", published, Duration::ZERO);
        assert_eq!(
            e.to_string(),
            format!(
                "eligible on this host at {} (wave 0.41 of 1d 12h)",
                crate::timefmt::rfc3339(e.at)
            )
        );
        let e = Rollout {
            spread: Duration::ZERO,
            pinned_wave: None,
        }
        .eligibility("h", "t", published, Duration::ZERO);
        assert_eq!(
            e.to_string(),
            "eligible on this host at 2026-11-29T22:00:00Z (no rollout spread)"
        );
    }

    #[test]
    fn durations_show_their_non_zero_units() {
        assert_eq!(compact_duration(2 * DAY), "2d");
        assert_eq!(
            compact_duration(DAY + Duration::from_secs(12 * 3600)),
            "1d 12h"
        );
        assert_eq!(compact_duration(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(compact_duration(Duration::from_secs(45)), "45s");
        assert_eq!(compact_duration(Duration::ZERO), "0s");
    }
}
