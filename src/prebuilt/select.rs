//! Choosing a release's archives for the configured packages and this host's target
//! triples, with the checksum file and signatures that vouch for each — and saying why,
//! in one line, for `-v`, `status` and the dry run.
//!
//! For each target triple the host runs, best first, every package needs an archive:
//! 1. from cargo-dist's manifest, when the release has one: an `executable-zip` of the
//!    app named like the package, for that triple;
//! 2. else by name: `{package}-{version}-{triple}`, `{package}-v{version}-{triple}` or
//!    `{package}-{triple}`, then `.tar.xz`, `.tar.gz` or `.zip` (in that order).
//!
//! and a checksum file that exists in the release: `SHA256SUMS`, `sha256.sum`, or
//! `<archive>.sha256` (the first there is; with signatures required, the first that has
//! every required signature, `<file>.sig` for SSH and `<file>.minisig` for minisign).
//! The first triple that has all of this for every package wins; none: the release has
//! no usable asset here ([`super::FailureKind::Unavailable`]).

use std::path::{Component, Path, PathBuf};

use super::asset::ReleaseAsset;
use super::checksum::{Checksums, Sha256Digest};
use super::host::HostTargets;
use super::manifest::DistManifest;
use super::signature::SignatureKind;
use super::unpack::{ArchiveFormat, Unpacked};
use super::{Failure, Result};

/// The checksum files looked for, in order, besides `<archive>.sha256`.
pub const CHECKSUM_FILES: [&str; 2] = ["SHA256SUMS", "sha256.sum"];

/// What to choose for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The configured packages (`hephd`, `heph`, …).
    pub packages: &'a [String],
    /// The release's version, without the tag's `v` (`1.4.0`).
    pub version: &'a str,
    pub host: &'a HostTargets,
    /// The signatures every checksum file must carry (empty: none required).
    pub signatures: &'a [SignatureKind],
}

/// The checksum file an archive is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumFile {
    pub asset: ReleaseAsset,
    /// `<archive>.sha256` (one file; may hold a bare digest) rather than a list.
    pub per_archive: bool,
}

impl ChecksumFile {
    /// Reads the downloaded checksum file.
    pub fn parse(&self, text: &str) -> Result<Checksums> {
        if self.per_archive {
            Checksums::parse_single(&self.asset.name, text)
        } else {
            Checksums::parse(&self.asset.name, text)
        }
    }
}

/// A signature over a checksum file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFile {
    pub kind: SignatureKind,
    pub asset: ReleaseAsset,
}

/// The archive chosen for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub package: String,
    pub archive: ReleaseAsset,
    pub format: ArchiveFormat,
    /// The executables' paths inside the archive's folder, when the manifest names them;
    /// `None`: every executable file at the top of the archive (or of its one folder).
    pub executables: Option<Vec<String>>,
    pub checksum: ChecksumFile,
    /// One per required kind.
    pub signatures: Vec<SignatureFile>,
}

impl Chosen {
    /// The digest `checksums` (the parsed [`Chosen::checksum`]) states for the archive;
    /// a checksum file that does not list it leaves the archive without a checksum.
    pub fn expected_digest(&self, checksums: &Checksums) -> Result<Sha256Digest> {
        checksums.get(&self.archive.name).copied().ok_or_else(|| {
            Failure::unavailable(format!(
                "{} does not list {}: the archive has no checksum and is not used",
                self.checksum.asset.name, self.archive.name
            ))
        })
    }
}

/// The archives to install, all for one target triple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub target: String,
    /// Why this host runs that target.
    pub target_why: String,
    /// One per package, in the order of the request.
    pub archives: Vec<Chosen>,
    /// One line: what was chosen and why.
    pub reason: String,
}

impl Selection {
    /// The distinct checksum files to download (several archives may share one).
    pub fn checksum_files(&self) -> Vec<&ChecksumFile> {
        let mut out: Vec<&ChecksumFile> = Vec::new();
        for c in &self.archives {
            if !out.iter().any(|f| f.asset.name == c.checksum.asset.name) {
                out.push(&c.checksum);
            }
        }
        out
    }
}

/// Chooses the archives of `assets` (and `manifest`, if the release has a readable
/// `dist-manifest.json`) for `req`.
pub fn select(
    assets: &[ReleaseAsset],
    manifest: Option<&DistManifest>,
    req: &Request<'_>,
) -> Result<Selection> {
    if req.host.candidates.is_empty() {
        return Err(Failure::unavailable(req.host.summary.clone()));
    }
    let mut misses = Vec::new();
    for cand in &req.host.candidates {
        let mut archives = Vec::new();
        for package in req.packages {
            match choose(assets, manifest, req, package, &cand.triple) {
                Ok(c) => archives.push(c),
                Err(miss) => {
                    misses.push(format!("{}: {miss}", cand.triple));
                    break;
                }
            }
        }
        if archives.len() == req.packages.len() {
            let reason = reason(&archives, &cand.triple, &cand.why, req.signatures);
            return Ok(Selection {
                target: cand.triple.clone(),
                target_why: cand.why.clone(),
                archives,
                reason,
            });
        }
    }
    Err(Failure::unavailable(format!(
        "the release has no usable prebuilt asset for this host ({})\nhelp: {}; see docs/assets.md for the names and checksum files read",
        misses.join("; "),
        req.host.summary
    )))
}

fn reason(archives: &[Chosen], triple: &str, why: &str, kinds: &[SignatureKind]) -> String {
    let names: Vec<&str> = archives.iter().map(|c| c.archive.name.as_str()).collect();
    let mut sums: Vec<&str> = archives
        .iter()
        .map(|c| c.checksum.asset.name.as_str())
        .collect();
    sums.dedup();
    let signed = if kinds.is_empty() {
        String::new()
    } else {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        format!(", signed ({})", kinds.join(" and "))
    };
    format!(
        "{} for {triple} ({why}); checked against {}{signed}",
        names.join(", "),
        sums.join(", ")
    )
}

/// The archive of `package` for `triple`, or why there is none.
fn choose(
    assets: &[ReleaseAsset],
    manifest: Option<&DistManifest>,
    req: &Request<'_>,
    package: &str,
    triple: &str,
) -> Result<Chosen, String> {
    let find = |name: &str| assets.iter().find(|a| a.name == name);
    let from_manifest = manifest.into_iter().flat_map(|m| {
        m.archives_for(package, triple).filter_map(|d| {
            let asset = find(&d.name)?;
            let format = ArchiveFormat::from_name(&d.name)?;
            Some((
                asset,
                format,
                Some(d.executables.clone()),
                d.checksum.clone(),
            ))
        })
    });
    let by_name = naming_candidates(package, req.version, triple)
        .into_iter()
        .filter_map(|(name, format)| Some((find(&name)?, format, None, None)));
    let mut found = false;
    let mut unsigned = Vec::new();
    for (asset, format, executables, dist_checksum) in from_manifest.chain(by_name) {
        found = true;
        match checksum_for(
            assets,
            &asset.name,
            dist_checksum.as_deref(),
            req.signatures,
        ) {
            Ok((checksum, signatures)) => {
                return Ok(Chosen {
                    package: package.to_owned(),
                    archive: asset.clone(),
                    format,
                    executables,
                    checksum,
                    signatures,
                });
            }
            Err(why) => unsigned.push(why),
        }
    }
    if found {
        Err(unsigned.join("; "))
    } else {
        Err(format!(
            "no archive of {package} (looked for {package}-{}-{triple}.tar.xz and the other names in docs/assets.md)",
            req.version
        ))
    }
}

/// The names the convention allows for `package`'s archive, in order of preference.
pub fn naming_candidates(
    package: &str,
    version: &str,
    triple: &str,
) -> Vec<(String, ArchiveFormat)> {
    let stems = [
        format!("{package}-{version}-{triple}"),
        format!("{package}-v{version}-{triple}"),
        format!("{package}-{triple}"),
    ];
    stems
        .iter()
        .flat_map(|stem| {
            ArchiveFormat::ALL
                .into_iter()
                .map(move |f| (format!("{stem}{}", f.extension()), f))
        })
        .collect()
}

/// The checksum file (and its signatures) for the archive `archive`, or why none will do.
fn checksum_for(
    assets: &[ReleaseAsset],
    archive: &str,
    dist_checksum: Option<&str>,
    kinds: &[SignatureKind],
) -> Result<(ChecksumFile, Vec<SignatureFile>), String> {
    let per_archive = format!("{archive}.sha256");
    let mut names: Vec<(&str, bool)> = CHECKSUM_FILES.iter().map(|n| (*n, false)).collect();
    names.push((&per_archive, true));
    if let Some(d) = dist_checksum.filter(|d| *d != per_archive) {
        names.push((d, true));
    }
    let mut present = Vec::new();
    for (name, per) in names {
        let Some(asset) = assets.iter().find(|a| a.name == name) else {
            continue;
        };
        present.push(name);
        let signatures: Option<Vec<SignatureFile>> = kinds
            .iter()
            .map(|kind| {
                let sig = format!("{name}{}", kind.suffix());
                assets
                    .iter()
                    .find(|a| a.name == sig)
                    .map(|a| SignatureFile {
                        kind: *kind,
                        asset: a.clone(),
                    })
            })
            .collect();
        if let Some(signatures) = signatures {
            return Ok((
                ChecksumFile {
                    asset: asset.clone(),
                    per_archive: per,
                },
                signatures,
            ));
        }
    }
    if present.is_empty() {
        return Err(format!(
            "{archive} has no checksum (looked for SHA256SUMS, sha256.sum, {per_archive})"
        ));
    }
    let wanted: Vec<String> = kinds
        .iter()
        .map(|k| format!("{}{}", present[0], k.suffix()))
        .collect();
    let mut why = format!(
        "{archive}'s checksum file {} has no required signature ({} missing)",
        present.join(", "),
        wanted.join(", ")
    );
    if let Some(pgp) = present.iter().find_map(|p| {
        [".asc", ".gpg"]
            .iter()
            .map(|s| format!("{p}{s}"))
            .find(|n| assets.iter().any(|a| &a.name == n))
    }) {
        why = format!(
            "{why}; {pgp} is an OpenPGP signature, which does not count: only SSH signatures from allowed_signers or minisign"
        );
    }
    Err(why)
}

/// An executable an archive brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    /// Its file name: what it is installed as.
    pub name: String,
    /// Where it was unpacked.
    pub path: PathBuf,
}

/// The executables of `chosen` in its unpacked archive: the manifest's, or every
/// executable file at the top of the content (the archive's one folder, when everything
/// is inside one).
pub fn executables(chosen: &Chosen, unpacked: &Unpacked) -> Result<Vec<Executable>> {
    let base = content_root(unpacked);
    let at_top = |p: &Path| -> Option<String> {
        let rest = p.strip_prefix(&base).ok()?;
        let mut parts = rest.components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(n)), None) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        }
    };
    let found: Vec<Executable> = match &chosen.executables {
        Some(paths) => paths
            .iter()
            .map(|p| {
                let rel = base.join(p);
                let file = unpacked.files.iter().find(|f| f.path == rel && f.executable);
                let name = rel.file_name().map(|n| n.to_string_lossy().into_owned());
                match (file, name) {
                    (Some(_), Some(name)) => Ok(Executable {
                        name,
                        path: unpacked.dir.join(&rel),
                    }),
                    _ => Err(Failure::refused(format!(
                        "{} does not hold the executable {p} its dist-manifest.json names\nhelp: the release's manifest and archive disagree; the release is held until a person looks",
                        chosen.archive.name
                    ))),
                }
            })
            .collect::<Result<_>>()?,
        None => unpacked
            .executables()
            .filter_map(|p| {
                Some(Executable {
                    name: at_top(p)?,
                    path: unpacked.dir.join(p),
                })
            })
            .collect(),
    };
    if found.is_empty() {
        return Err(Failure::refused(format!(
            "{} holds no executable\nhelp: the release's archive is not what docs/assets.md describes; the release is held until a person looks",
            chosen.archive.name
        )));
    }
    Ok(found)
}

/// The one folder every file is in (cargo-dist's `<app>-<triple>/`), else the top.
fn content_root(unpacked: &Unpacked) -> PathBuf {
    let mut firsts = unpacked.files.iter().map(|f| {
        let mut c = f.path.components();
        // A file at the top has no folder above it.
        match (c.next(), c.next()) {
            (Some(first), Some(_)) => Some(first.as_os_str().to_owned()),
            _ => None,
        }
    });
    match firsts.next() {
        Some(Some(first)) if firsts.all(|f| f.as_ref() == Some(&first)) => PathBuf::from(first),
        _ => PathBuf::new(),
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
