//! Prebuilt release assets: the pure building blocks of installing a release from its
//! archives instead of building it (issue 21; the contract is `docs/assets.md`).
//!
//! Owns: reading the assets a forge lists ([`asset`]), cargo-dist's manifest
//! ([`manifest`]) and checksum files ([`checksum`]), the host's target triples
//! ([`host`]), choosing the archives ([`select`]) and the path a run takes ([`mode`]),
//! hashing while downloading ([`download`]), unpacking safely ([`unpack`]) and checking
//! signatures ([`signature`]). Imports only plain helpers (`process::Cmd`,
//! `forge::ForgeKind`); it performs no HTTP and runs no program itself: the transaction
//! passes in readers, files and program outputs.
//!
//! Every failure is a [`Failure`] whose [`FailureKind`] says what the run does next: build
//! instead, hold the release, or try again.

pub mod asset;
pub mod checksum;
pub mod download;
pub mod host;
pub mod manifest;
pub mod mode;
pub mod select;
pub mod signature;
pub mod unpack;

use std::fmt;

pub use asset::ReleaseAsset;
pub use checksum::{Checksums, Sha256Digest};
pub use host::{HostProbe, HostTargets, RealHost};
pub use mode::{PrebuiltMode, Route};
pub use select::{Chosen, Selection};

/// What a failure on the prebuilt path means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The release has nothing this host can use: no archive for its target, no checksum
    /// for the archive, no signature where one is required, a format or size outside the
    /// contract, or a binary that cannot run here. The run builds instead
    /// (`prebuilt = "prefer"`) or waits (`"only"`); nothing is marked bad.
    Unavailable,
    /// The asset is not what the release says it is: a checksum or a signature that does
    /// not match, or an archive that tries to leave its root, explode, or is cut short
    /// under a matching checksum. Never a reason to build instead: the release is held
    /// until a person looks (tampering and a broken release both need one).
    Refused,
    /// The transfer or the local disk failed part-way (a dropped connection, a full disk):
    /// nothing is kept and the next run starts the download again.
    Interrupted,
}

impl FailureKind {
    /// The word `status`, the metrics and JSON use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Refused => "refused",
            Self::Interrupted => "interrupted",
        }
    }
}

/// A failure on the prebuilt path: what happened (first line) and what to do (`help:`
/// lines), and its [`FailureKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Unavailable, message)
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Refused, message)
    }

    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Interrupted, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Shorthand for results on the prebuilt path.
pub type Result<T, E = Failure> = std::result::Result<T, E>;
