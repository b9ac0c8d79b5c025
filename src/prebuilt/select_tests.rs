//! Unit tests, compiled only under `#[cfg(test)]` (see the end of `select.rs`).
//!
//! Tests of [`super`]: the naming convention, the host's preferences, checksum and
//! signature files, and the real output of cargo-dist (`tests/fixtures/cargo-dist/`).

use super::super::FailureKind;
use super::super::checksum::Sha256Digest;
use super::super::host::Candidate;
use super::super::manifest;
use super::super::unpack::{UnpackLimits, unpack};
use super::*;

const GNU: &str = "x86_64-unknown-linux-gnu";
const MUSL: &str = "x86_64-unknown-linux-musl";

fn assets(names: &[&str]) -> Vec<ReleaseAsset> {
    names
        .iter()
        .map(|n| ReleaseAsset {
            name: (*n).to_owned(),
            download_url: format!("https://forge.test/attachments/{n}"),
            api_url: None,
            size: Some(100),
        })
        .collect()
}

/// A host with the glibc loader (`gnu` then `musl`) or without it (`musl` only).
fn host(glibc: bool) -> HostTargets {
    let c = |t: &str, why: &str| Candidate {
        triple: t.to_owned(),
        why: why.to_owned(),
    };
    let candidates = if glibc {
        vec![c(GNU, "glibc here"), c(MUSL, "static")]
    } else {
        vec![c(MUSL, "no glibc loader")]
    };
    HostTargets {
        candidates,
        summary: "the host summary".to_owned(),
    }
}

fn packages(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn pick(
    names: &[&str],
    pkgs: &[&str],
    glibc: bool,
    signatures: &[SignatureKind],
) -> Result<Selection> {
    pick_from(&assets(names), None, pkgs, glibc, signatures)
}

fn pick_from(
    release: &[ReleaseAsset],
    manifest: Option<&DistManifest>,
    pkgs: &[&str],
    glibc: bool,
    signatures: &[SignatureKind],
) -> Result<Selection> {
    let pkgs = packages(pkgs);
    let host = host(glibc);
    select(
        release,
        manifest,
        &Request {
            packages: &pkgs,
            version: "1.4.0",
            host: &host,
            signatures,
        },
    )
}

fn chosen_names(s: &Selection) -> Vec<&str> {
    s.archives.iter().map(|c| c.archive.name.as_str()).collect()
}

const RELEASE: [&str; 5] = [
    "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
    "hephd-1.4.0-x86_64-unknown-linux-musl.tar.xz",
    "heph-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
    "SHA256SUMS",
    "SHA256SUMS.sig",
];

#[test]
fn a_glibc_host_takes_the_gnu_archives_and_says_why() {
    let s = pick(&RELEASE, &["hephd", "heph"], true, &[]).unwrap();
    assert_eq!(s.target, GNU);
    assert_eq!(
        chosen_names(&s),
        [
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
            "heph-1.4.0-x86_64-unknown-linux-gnu.tar.xz"
        ]
    );
    assert_eq!(s.archives[0].checksum.asset.name, "SHA256SUMS");
    assert!(!s.archives[0].checksum.per_archive);
    assert_eq!(s.archives[0].format, ArchiveFormat::TarXz);
    assert_eq!(s.archives[0].executables, None);
    assert!(s.archives[0].signatures.is_empty());
    assert_eq!(
        s.reason,
        "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz, heph-1.4.0-x86_64-unknown-linux-gnu.tar.xz for x86_64-unknown-linux-gnu (glibc here); checked against SHA256SUMS"
    );
    assert_eq!(s.checksum_files().len(), 1);
}

#[test]
fn a_host_without_glibc_takes_musl_and_has_none_when_a_package_lacks_it() {
    let s = pick(&RELEASE, &["hephd"], false, &[]).unwrap();
    assert_eq!(s.target, MUSL);
    assert_eq!(
        chosen_names(&s),
        ["hephd-1.4.0-x86_64-unknown-linux-musl.tar.xz"]
    );
    assert!(s.reason.contains("no glibc loader"), "{}", s.reason);
    let err = pick(&RELEASE, &["hephd", "heph"], false, &[]).unwrap_err();
    assert_eq!(err.kind, FailureKind::Unavailable);
    assert!(
        err.message
            .contains("x86_64-unknown-linux-musl: no archive of heph"),
        "{}",
        err.message
    );
    assert!(err.message.contains("the host summary"), "{}", err.message);
}

#[test]
fn a_glibc_host_takes_musl_when_the_release_has_only_that() {
    let s = pick(
        &["hephd-1.4.0-x86_64-unknown-linux-musl.tar.gz", "SHA256SUMS"],
        &["hephd"],
        true,
        &[],
    )
    .unwrap();
    assert_eq!(s.target, MUSL);
    assert_eq!(s.archives[0].format, ArchiveFormat::TarGz);
}

#[test]
fn only_a_gnu_archive_on_a_host_without_glibc_is_no_asset() {
    let err = pick(
        &["hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz", "SHA256SUMS"],
        &["hephd"],
        false,
        &[],
    )
    .unwrap_err();
    assert_eq!(err.kind, FailureKind::Unavailable);
}

#[test]
fn every_naming_form_is_read_and_xz_is_preferred() {
    for name in [
        "hephd-1.4.0-x86_64-unknown-linux-gnu.zip",
        "hephd-v1.4.0-x86_64-unknown-linux-gnu.tar.gz",
        "hephd-x86_64-unknown-linux-gnu.tar.xz",
    ] {
        let s = pick(&[name, "SHA256SUMS"], &["hephd"], true, &[]).unwrap();
        assert_eq!(chosen_names(&s), [name]);
    }
    // `.tgz` is unpacked when a manifest names it, but is not a name the convention gives.
    let tgz = ["hephd-x86_64-unknown-linux-gnu.tgz", "SHA256SUMS"];
    assert!(pick(&tgz, &["hephd"], true, &[]).is_err());
    let s = pick(
        &[
            "hephd-1.4.0-x86_64-unknown-linux-gnu.zip",
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.gz",
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
            "SHA256SUMS",
        ],
        &["hephd"],
        true,
        &[],
    )
    .unwrap();
    assert_eq!(s.archives[0].format, ArchiveFormat::TarXz);
}

#[test]
fn a_package_is_not_matched_by_another_whose_name_it_begins() {
    let err = pick(
        &[
            "heph-tui-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
            "SHA256SUMS",
        ],
        &["heph"],
        true,
        &[],
    )
    .unwrap_err();
    assert!(
        err.message.contains("no archive of heph"),
        "{}",
        err.message
    );
    // Nor by another version.
    assert!(
        pick(
            &["hephd-1.3.9-x86_64-unknown-linux-gnu.tar.xz", "SHA256SUMS"],
            &["hephd"],
            true,
            &[]
        )
        .is_err()
    );
}

#[test]
fn an_archive_without_a_checksum_is_not_used() {
    let err = pick(
        &["hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz"],
        &["hephd"],
        true,
        &[],
    )
    .unwrap_err();
    assert_eq!(err.kind, FailureKind::Unavailable);
    assert!(err.message.contains("has no checksum"), "{}", err.message);
}

#[test]
fn a_per_archive_checksum_is_used_when_there_is_no_list() {
    let s = pick(
        &[
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz.sha256",
        ],
        &["hephd"],
        true,
        &[],
    )
    .unwrap();
    assert!(s.archives[0].checksum.per_archive);
    assert_eq!(
        s.archives[0].checksum.asset.name,
        "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz.sha256"
    );
}

#[test]
fn required_signatures_choose_the_signed_checksum_file() {
    let s = pick(
        &[
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
            "SHA256SUMS",
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz.sha256",
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz.sha256.sig",
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz.sha256.minisig",
        ],
        &["hephd"],
        true,
        &[SignatureKind::Ssh, SignatureKind::Minisign],
    )
    .unwrap();
    let c = &s.archives[0];
    assert!(c.checksum.per_archive);
    assert_eq!(
        c.signatures
            .iter()
            .map(|s| (s.kind, s.asset.name.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                SignatureKind::Ssh,
                "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz.sha256.sig"
            ),
            (
                SignatureKind::Minisign,
                "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz.sha256.minisig"
            )
        ]
    );
    assert!(
        s.reason.ends_with("signed (SSH and minisign)"),
        "{}",
        s.reason
    );
}

#[test]
fn a_missing_required_signature_leaves_no_usable_asset() {
    let err = pick(&RELEASE, &["hephd"], true, &[SignatureKind::Minisign]).unwrap_err();
    assert_eq!(err.kind, FailureKind::Unavailable);
    assert!(
        err.message.contains("SHA256SUMS.minisig missing"),
        "{}",
        err.message
    );
}

#[test]
fn an_openpgp_signature_beside_the_checksums_is_named_as_not_counting() {
    let err = pick(
        &[
            "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
            "SHA256SUMS",
            "SHA256SUMS.asc",
        ],
        &["hephd"],
        true,
        &[SignatureKind::Ssh],
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("SHA256SUMS.asc is an OpenPGP signature, which does not count"),
        "{}",
        err.message
    );
}

#[test]
fn a_host_with_no_known_target_has_no_asset_and_says_why() {
    let none = HostTargets {
        candidates: vec![],
        summary: "no prebuilt target is known for mips linux".into(),
    };
    let pkgs = packages(&["hephd"]);
    let err = select(
        &assets(&RELEASE),
        None,
        &Request {
            packages: &pkgs,
            version: "1.4.0",
            host: &none,
            signatures: &[],
        },
    )
    .unwrap_err();
    assert_eq!(err.message, "no prebuilt target is known for mips linux");
}

#[test]
fn a_checksum_file_that_does_not_list_the_archive_leaves_it_without_one() {
    let s = pick(&RELEASE, &["hephd"], true, &[]).unwrap();
    let sums =
        Checksums::parse("SHA256SUMS", &format!("{}  other.tar.xz\n", "a".repeat(64))).unwrap();
    let err = s.archives[0].expected_digest(&sums).unwrap_err();
    assert_eq!(err.kind, FailureKind::Unavailable);
    assert!(err.message.contains("does not list"), "{}", err.message);
}

#[test]
fn executables_are_the_top_level_ones_of_a_convention_archive() {
    let dir = tempfile::tempdir().unwrap();
    let unpacked = Unpacked {
        dir: dir.path().join("root"),
        files: vec![
            super::super::unpack::UnpackedFile {
                path: "hephd-1.4.0/hephd".into(),
                executable: true,
                bytes: 1,
            },
            super::super::unpack::UnpackedFile {
                path: "hephd-1.4.0/hephctl".into(),
                executable: true,
                bytes: 1,
            },
            super::super::unpack::UnpackedFile {
                path: "hephd-1.4.0/share/helper".into(),
                executable: true,
                bytes: 1,
            },
            super::super::unpack::UnpackedFile {
                path: "hephd-1.4.0/README.md".into(),
                executable: false,
                bytes: 1,
            },
        ],
        bytes: 4,
    };
    let s = pick(&RELEASE, &["hephd"], true, &[]).unwrap();
    let exes = executables(&s.archives[0], &unpacked).unwrap();
    assert_eq!(
        exes,
        [
            Executable {
                name: "hephd".into(),
                path: dir.path().join("root/hephd-1.4.0/hephd")
            },
            Executable {
                name: "hephctl".into(),
                path: dir.path().join("root/hephd-1.4.0/hephctl")
            },
        ]
    );
    let mut with_manifest = s.archives[0].clone();
    with_manifest.executables = Some(vec!["missing".into()]);
    let err = executables(&with_manifest, &unpacked).unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused);
    let empty = Unpacked {
        files: vec![],
        ..unpacked
    };
    assert_eq!(
        executables(&s.archives[0], &empty).unwrap_err().kind,
        FailureKind::Refused
    );
}

// --- cargo-dist's own output ------------------------------------------------------------

fn recorded(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cargo-dist")
        .join(name)
}

/// The release as a forge would list cargo-dist's files.
fn recorded_release() -> Vec<ReleaseAsset> {
    let mut names: Vec<String> = fs_names(&recorded(""));
    names.sort();
    assets(&names.iter().map(String::as_str).collect::<Vec<_>>())
}

fn recorded_manifest() -> DistManifest {
    manifest::parse(&std::fs::read(recorded("dist-manifest.json")).unwrap()).unwrap()
}

fn fs_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file() && e.file_name() != "README.md")
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn cargo_dist_output_is_chosen_verified_and_unpacked() {
    let m = recorded_manifest();
    let s = pick_from(&recorded_release(), Some(&m), &["hephd", "heph"], true, &[]).unwrap();
    assert_eq!(s.target, GNU);
    assert_eq!(
        chosen_names(&s),
        [
            "hephd-x86_64-unknown-linux-gnu.tar.xz",
            "heph-x86_64-unknown-linux-gnu.tar.xz"
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    for c in &s.archives {
        assert_eq!(c.executables.as_deref(), Some(&[c.package.clone()][..]));
        // The unified sha256.sum, and the per-archive .sha256, both vouch for it.
        assert_eq!(c.checksum.asset.name, "sha256.sum");
        let archive = recorded(&c.archive.name);
        let actual = Sha256Digest::of(&std::fs::read(&archive).unwrap());
        let sums = c
            .checksum
            .parse(&std::fs::read_to_string(recorded("sha256.sum")).unwrap())
            .unwrap();
        let expected = c.expected_digest(&sums).unwrap();
        super::super::checksum::check(&c.archive.name, &expected, &actual, "sha256.sum").unwrap();
        let per = format!("{}.sha256", c.archive.name);
        let single =
            Checksums::parse_single(&per, &std::fs::read_to_string(recorded(&per)).unwrap())
                .unwrap();
        assert_eq!(single.get(&c.archive.name), Some(&actual));

        let dest = dir.path().join(&c.package);
        let unpacked = unpack(
            &archive,
            &c.archive.name,
            c.format,
            &dest,
            &UnpackLimits::default(),
        )
        .unwrap();
        let exes = executables(c, &unpacked).unwrap();
        assert_eq!(exes.len(), 1);
        assert_eq!(exes[0].name, c.package);
        assert_eq!(
            exes[0].path,
            dest.join(format!("{}-{GNU}", c.package)).join(&c.package)
        );
        let out = std::process::Command::new(&exes[0].path).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{} 1.4.0\n", c.package)
        );
    }
}

#[test]
fn cargo_dist_output_is_found_by_name_without_its_manifest() {
    let s = pick_from(&recorded_release(), None, &["hephd"], true, &[]).unwrap();
    assert_eq!(chosen_names(&s), ["hephd-x86_64-unknown-linux-gnu.tar.xz"]);
    assert_eq!(s.archives[0].executables, None);
}

#[test]
fn a_cargo_dist_release_for_another_target_only_has_nothing_for_this_host() {
    let m = recorded_manifest();
    let err = pick_from(&recorded_release(), Some(&m), &["hephd"], false, &[]).unwrap_err();
    assert_eq!(err.kind, FailureKind::Unavailable);
    assert!(
        err.message.contains("no archive of hephd"),
        "{}",
        err.message
    );
}
