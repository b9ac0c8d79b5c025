//! `prebuilt = "prefer" | "only" | "never"` and the path one release takes on this host.
//!
//! Rules (docs/assets.md, "Policy"):
//! - `never`: always build, as before prebuilt assets existed.
//! - `prefer` (default): a verified asset when the release has one for this host, else
//!   the build.
//! - `only`: never compile on this host; a release without a usable asset is "nothing to
//!   do yet", with a hold reason.
//! - Whatever the mode, an asset that is present but does not verify (a checksum or a
//!   signature that does not match, a hostile archive) holds the release: building
//!   instead would hide tampering or a broken release from the person who must look.
//! - A transfer that broke off is tried again in the next run, from the start.

use std::fmt;
use std::str::FromStr;

use super::{Failure, FailureKind};

/// How a host uses prebuilt assets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrebuiltMode {
    #[default]
    Prefer,
    Only,
    Never,
}

impl PrebuiltMode {
    pub const ALL: [Self; 3] = [Self::Prefer, Self::Only, Self::Never];

    /// The word in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prefer => "prefer",
            Self::Only => "only",
            Self::Never => "never",
        }
    }
}

impl fmt::Display for PrebuiltMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PrebuiltMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("`prebuilt = \"{s}\"`: expected \"prefer\", \"only\" or \"never\"")
            })
    }
}

/// What a run does with one release on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Download, verify and unpack the chosen assets.
    Asset,
    /// Build from the tag; `why` is for `-v`, `status`, `doctor` and the dry run.
    Build { why: String },
    /// Nothing to do yet (`only` without a usable asset); `why` is the hold reason.
    Wait { why: String },
    /// The release is held until a person looks; `why` says what did not match.
    Hold { why: String },
    /// Stop this run; the next one starts the download again.
    Retry { why: String },
}

/// The route before anything is downloaded: `selection` is the outcome of
/// [`super::select::select`] (an `Unavailable` failure when the release has nothing for
/// this host).
pub fn route<T>(mode: PrebuiltMode, selection: &Result<T, Failure>) -> Route {
    if mode == PrebuiltMode::Never {
        return Route::Build {
            why: "prebuilt = \"never\": releases are built on this host".to_owned(),
        };
    }
    match selection {
        Ok(_) => Route::Asset,
        Err(f) => after_failure(mode, f),
    }
}

/// The route after a failure on the asset path (choosing, downloading, verifying,
/// unpacking, or the staged binary's `--version` when it [cannot run
/// here](super::host::cannot_run_here), which the caller reports as `Unavailable`).
pub fn after_failure(mode: PrebuiltMode, failure: &Failure) -> Route {
    let why = failure
        .message
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    match (failure.kind, mode) {
        (FailureKind::Refused, _) => Route::Hold { why },
        (FailureKind::Interrupted, _) => Route::Retry { why },
        (FailureKind::Unavailable, PrebuiltMode::Only) => Route::Wait {
            why: format!("{why}; prebuilt = \"only\" never builds on this host"),
        },
        (FailureKind::Unavailable, PrebuiltMode::Prefer | PrebuiltMode::Never) => {
            Route::Build { why }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> Result<(), Failure> {
        Err(Failure::unavailable(
            "no archive of hephd for x86_64-unknown-linux-musl\nhelp: …",
        ))
    }

    #[test]
    fn the_mode_reads_and_prints_its_three_words_and_defaults_to_prefer() {
        for m in PrebuiltMode::ALL {
            assert_eq!(m.name().parse::<PrebuiltMode>(), Ok(m));
        }
        assert_eq!(PrebuiltMode::default(), PrebuiltMode::Prefer);
        let err = "always".parse::<PrebuiltMode>().unwrap_err();
        assert!(err.contains("\"prefer\", \"only\" or \"never\""), "{err}");
    }

    #[test]
    fn never_builds_even_when_an_asset_is_there() {
        assert!(matches!(
            route(PrebuiltMode::Never, &Ok::<(), Failure>(())),
            Route::Build { .. }
        ));
    }

    #[test]
    fn prefer_and_only_take_an_asset_when_there_is_one() {
        for m in [PrebuiltMode::Prefer, PrebuiltMode::Only] {
            assert_eq!(route(m, &Ok::<(), Failure>(())), Route::Asset);
        }
    }

    #[test]
    fn without_a_usable_asset_prefer_builds_and_only_waits_with_a_reason() {
        match route(PrebuiltMode::Prefer, &unavailable()) {
            Route::Build { why } => assert!(why.starts_with("no archive of hephd"), "{why}"),
            other => panic!("{other:?}"),
        }
        match route(PrebuiltMode::Only, &unavailable()) {
            Route::Wait { why } => {
                assert!(why.contains("no archive of hephd"), "{why}");
                assert!(why.contains("never builds"), "{why}");
                assert!(!why.contains("help:"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_asset_holds_the_release_in_every_mode_and_never_builds() {
        let refused = Failure::refused("the SHA-256 of x is a, but SHA256SUMS says b");
        for m in PrebuiltMode::ALL {
            assert!(
                matches!(after_failure(m, &refused), Route::Hold { .. }),
                "{m}"
            );
        }
    }

    #[test]
    fn a_broken_transfer_is_retried_next_run_not_built() {
        let cut = Failure::interrupted("the download of x ended after 10 of 20 bytes");
        for m in [PrebuiltMode::Prefer, PrebuiltMode::Only] {
            assert!(matches!(after_failure(m, &cut), Route::Retry { .. }));
        }
    }
}
