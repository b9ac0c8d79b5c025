//! Unit tests, compiled only under `#[cfg(test)]` (see the end of `unpack.rs`).
//!
//! Tests of [`super`]: ordinary archives in each format, and hostile ones.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use tar::EntryType;

use super::super::FailureKind;
use super::*;

/// One tar entry, written byte for byte (no path checks, as an attacker's tool would).
struct Raw<'a> {
    path: &'a str,
    kind: EntryType,
    mode: u32,
    data: &'a [u8],
    link: &'a str,
}

fn file<'a>(path: &'a str, mode: u32, data: &'a [u8]) -> Raw<'a> {
    Raw {
        path,
        kind: EntryType::Regular,
        mode,
        data,
        link: "",
    }
}

fn dir(path: &str) -> Raw<'_> {
    Raw {
        path,
        kind: EntryType::Directory,
        mode: 0o755,
        data: b"",
        link: "",
    }
}

fn link<'a>(path: &'a str, kind: EntryType, target: &'a str) -> Raw<'a> {
    Raw {
        path,
        kind,
        mode: 0o777,
        data: b"",
        link: target,
    }
}

fn tar_bytes(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..e.path.len()].copy_from_slice(e.path.as_bytes());
        old.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut w =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).unwrap();
    w.write_all(bytes).unwrap();
    w.finish().unwrap()
}

/// A zip of `(name, unix mode with its type bits, data)`.
fn zip_bytes(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, mode, data) in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .external_attributes(mode << 16);
        w.start_file(*name, options).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A scratch directory with the archive written into it.
struct Case {
    dir: tempfile::TempDir,
    archive: PathBuf,
}

impl Case {
    fn new(bytes: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive");
        fs::write(&archive, bytes).unwrap();
        Self { dir, archive }
    }

    fn dest(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn unpack(&self, format: ArchiveFormat) -> Result<Unpacked> {
        self.unpack_with(format, &UnpackLimits::default())
    }

    fn unpack_with(&self, format: ArchiveFormat, limits: &UnpackLimits) -> Result<Unpacked> {
        unpack(&self.archive, "hephd.tar", format, &self.dest(), limits)
    }

    /// Unpacking failed as refused, and left neither the destination nor a temporary
    /// directory behind; returns the message.
    #[track_caller]
    fn refused(&self, format: ArchiveFormat) -> String {
        let err = self.unpack(format).unwrap_err();
        assert_eq!(err.kind, FailureKind::Refused, "{}", err.message);
        self.assert_nothing_left();
        err.message
    }

    #[track_caller]
    fn assert_nothing_left(&self) {
        let left: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "archive")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn ordinary() -> Vec<u8> {
    tar_bytes(&[
        dir("hephd-1.4.0/"),
        file(
            "hephd-1.4.0/hephd",
            0o4777,
            b"#!/bin/sh\necho hephd 1.4.0\n",
        ),
        file("hephd-1.4.0/README.md", 0o666, b"read me"),
        link("hephd-1.4.0/hephd-link", EntryType::Symlink, "hephd"),
        link(
            "hephd-1.4.0/hephd-hard",
            EntryType::Link,
            "hephd-1.4.0/README.md",
        ),
    ])
}

#[test]
fn ordinary_tar_gz_and_tar_xz_archives_unpack_with_sane_modes() {
    for (format, bytes) in [
        (ArchiveFormat::TarGz, gz(&ordinary())),
        (ArchiveFormat::TarXz, xz(&ordinary())),
    ] {
        let case = Case::new(&bytes);
        let got = case.unpack(format).unwrap();
        let root = case.dest();
        assert_eq!(got.dir, root);
        assert_eq!(
            fs::read(root.join("hephd-1.4.0/hephd")).unwrap(),
            b"#!/bin/sh\necho hephd 1.4.0\n"
        );
        // setuid and world-writable bits are dropped.
        assert_eq!(mode(&root.join("hephd-1.4.0/hephd")), 0o755);
        assert_eq!(mode(&root.join("hephd-1.4.0/README.md")), 0o644);
        assert_eq!(mode(&root.join("hephd-1.4.0")), 0o755);
        assert_eq!(mode(&root), 0o755);
        assert_eq!(
            fs::read_link(root.join("hephd-1.4.0/hephd-link")).unwrap(),
            Path::new("hephd")
        );
        assert_eq!(
            fs::read(root.join("hephd-1.4.0/hephd-hard")).unwrap(),
            b"read me"
        );
        let exes: Vec<_> = got.executables().collect();
        assert_eq!(exes, [Path::new("hephd-1.4.0/hephd")]);
        assert_eq!(got.files.len(), 3, "{:?}", got.files);
        assert_eq!(got.bytes, 27 + 7);
        // Only the destination is left, no temporary directory.
        let names: Vec<_> = fs::read_dir(case.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}

#[test]
fn an_ordinary_zip_unpacks_with_its_executable_bit() {
    let case = Case::new(&zip_bytes(&[
        ("hephd/", 0o040_755, b""),
        ("hephd/hephd", 0o100_755, b"binary"),
        ("hephd/LICENSE", 0o100_600, b"MIT"),
        ("no-mode.txt", 0, b"plain"),
    ]));
    let got = case.unpack(ArchiveFormat::Zip).unwrap();
    let root = case.dest();
    assert_eq!(fs::read(root.join("hephd/hephd")).unwrap(), b"binary");
    assert_eq!(mode(&root.join("hephd/hephd")), 0o755);
    assert_eq!(mode(&root.join("hephd/LICENSE")), 0o644);
    assert_eq!(mode(&root.join("no-mode.txt")), 0o644);
    assert_eq!(
        got.executables().collect::<Vec<_>>(),
        [Path::new("hephd/hephd")]
    );
}

#[test]
fn a_parent_dir_entry_is_refused_and_nothing_escapes() {
    let case = Case::new(&gz(&tar_bytes(&[
        file("ok", 0o644, b"x"),
        file("../escaped", 0o644, b"evil"),
    ])));
    let msg = case.refused(ArchiveFormat::TarGz);
    assert!(msg.contains("`..`"), "{msg}");
    assert!(msg.contains("held"), "{msg}");
    assert!(!case.dir.path().parent().unwrap().join("escaped").exists());
    let case = Case::new(&gz(&tar_bytes(&[file("a/../../b", 0o644, b"evil")])));
    case.refused(ArchiveFormat::TarGz);
}

#[test]
fn an_absolute_path_is_refused() {
    let case = Case::new(&gz(&tar_bytes(&[file(
        "/tmp/heph-absolute",
        0o644,
        b"evil",
    )])));
    let msg = case.refused(ArchiveFormat::TarGz);
    assert!(msg.contains("absolute"), "{msg}");
    assert!(!Path::new("/tmp/heph-absolute").exists());
}

#[test]
fn symlinks_pointing_out_are_refused() {
    for target in ["../outside", "a/../../..", "/etc/passwd"] {
        let case = Case::new(&gz(&tar_bytes(&[link("l", EntryType::Symlink, target)])));
        let msg = case.refused(ArchiveFormat::TarGz);
        assert!(msg.contains("symlink"), "{target}: {msg}");
    }
    // Lexically inside, really outside: `d` is the root, so `d/..` is its parent.
    let case = Case::new(&gz(&tar_bytes(&[
        link("d", EntryType::Symlink, "."),
        link("x", EntryType::Symlink, "d/.."),
    ])));
    let msg = case.refused(ArchiveFormat::TarGz);
    assert!(msg.contains("pointing out"), "{msg}");
}

#[test]
fn a_symlink_inside_may_point_up_within_the_archive() {
    let case = Case::new(&gz(&tar_bytes(&[
        file("lib/real", 0o755, b"x"),
        link("bin/tool", EntryType::Symlink, "../lib/real"),
    ])));
    case.unpack(ArchiveFormat::TarGz).unwrap();
    assert_eq!(fs::read(case.dest().join("bin/tool")).unwrap(), b"x");
}

#[test]
fn nothing_is_written_through_a_symlink() {
    let outside = tempfile::tempdir().unwrap();
    let case = Case::new(&gz(&tar_bytes(&[
        dir("sub/"),
        link("inside", EntryType::Symlink, "sub"),
        file("inside/file", 0o644, b"through"),
    ])));
    let msg = case.refused(ArchiveFormat::TarGz);
    assert!(msg.contains("through a symlink"), "{msg}");
    // A dangling link is refused too, whatever it names.
    let case = Case::new(&gz(&tar_bytes(&[link(
        "gone",
        EntryType::Symlink,
        "nothing",
    )])));
    case.refused(ArchiveFormat::TarGz);
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn hard_links_out_or_to_nothing_unpacked_are_refused() {
    for target in ["../outside", "/etc/passwd", "later", "dir"] {
        let case = Case::new(&gz(&tar_bytes(&[
            dir("dir/"),
            link("h", EntryType::Link, target),
            file("later", 0o644, b"x"),
        ])));
        let msg = case.refused(ArchiveFormat::TarGz);
        assert!(msg.contains("hard link"), "{target}: {msg}");
    }
}

#[test]
fn device_files_and_fifos_are_refused() {
    for (kind, word) in [
        (EntryType::Char, "device"),
        (EntryType::Block, "device"),
        (EntryType::Fifo, "fifo"),
    ] {
        let case = Case::new(&gz(&tar_bytes(&[Raw {
            path: "dev",
            kind,
            mode: 0o666,
            data: b"",
            link: "",
        }])));
        let msg = case.refused(ArchiveFormat::TarGz);
        assert!(msg.contains(word), "{msg}");
    }
    let case = Case::new(&zip_bytes(&[("dev", 0o020_666, b"")]));
    let msg = case.refused(ArchiveFormat::Zip);
    assert!(msg.contains("device"), "{msg}");
}

#[test]
fn a_decompression_bomb_stops_at_the_size_cap() {
    // 64 MiB of zeros compress to about 64 KiB.
    let zeros = vec![0u8; 64 << 20];
    let bomb = gz(&tar_bytes(&[file("bomb", 0o644, &zeros)]));
    assert!(bomb.len() < 1 << 20);
    let case = Case::new(&bomb);
    let limits = UnpackLimits {
        max_bytes: 8 << 20,
        ..UnpackLimits::default()
    };
    let err = case.unpack_with(ArchiveFormat::TarGz, &limits).unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused);
    assert!(
        err.message.contains("decompression bomb"),
        "{}",
        err.message
    );
    case.assert_nothing_left();
}

#[test]
fn too_many_entries_are_refused() {
    let names: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let entries: Vec<Raw<'_>> = names.iter().map(|n| file(n, 0o644, b"")).collect();
    let case = Case::new(&gz(&tar_bytes(&entries)));
    let limits = UnpackLimits {
        max_entries: 20,
        ..UnpackLimits::default()
    };
    let err = case.unpack_with(ArchiveFormat::TarGz, &limits).unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused);
    assert!(err.message.contains("20 entries"), "{}", err.message);
    case.assert_nothing_left();
}

#[test]
fn a_truncated_archive_is_refused_and_leaves_nothing() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let whole = tar_bytes(&[file("hephd", 0o755, &data)]);
    for (format, bytes) in [
        (ArchiveFormat::TarGz, gz(&whole)),
        (ArchiveFormat::TarXz, xz(&whole)),
        (
            ArchiveFormat::Zip,
            zip_bytes(&[("hephd", 0o100_755, &data)]),
        ),
    ] {
        let case = Case::new(&bytes[..bytes.len() / 2]);
        let msg = case.refused(format);
        assert!(msg.contains("cannot be unpacked"), "{format:?}: {msg}");
    }
    // Cut at a tar block boundary inside the file's data, then compressed whole.
    let case = Case::new(&gz(&whole[..512 * 100]));
    let msg = case.refused(ArchiveFormat::TarGz);
    assert!(msg.contains("cannot be unpacked"), "{msg}");
}

#[test]
fn an_entry_named_twice_is_refused() {
    let case = Case::new(&gz(&tar_bytes(&[
        file("hephd", 0o755, b"checked"),
        file("hephd", 0o755, b"replaced"),
    ])));
    let msg = case.refused(ArchiveFormat::TarGz);
    assert!(msg.contains("twice"), "{msg}");
    // A file over a directory made as a parent, too.
    let case = Case::new(&gz(&tar_bytes(&[
        file("d/x", 0o644, b""),
        file("d", 0o644, b""),
    ])));
    case.refused(ArchiveFormat::TarGz);
}

#[test]
fn zip_entries_escaping_or_linking_out_are_refused() {
    let case = Case::new(&zip_bytes(&[("../evil", 0o100_644, b"x")]));
    assert!(case.refused(ArchiveFormat::Zip).contains("`..`"));
    let case = Case::new(&zip_bytes(&[("/abs", 0o100_644, b"x")]));
    assert!(case.refused(ArchiveFormat::Zip).contains("absolute"));
    let case = Case::new(&zip_bytes(&[("l", 0o120_777, b"../../etc")]));
    assert!(case.refused(ArchiveFormat::Zip).contains("symlink"));
    let case = Case::new(&zip_bytes(&[("a\\..\\b", 0o100_644, b"x")]));
    assert!(case.refused(ArchiveFormat::Zip).contains('\\'));
}

#[test]
fn an_xz_stream_needing_more_memory_than_allowed_is_refused() {
    let case = Case::new(&xz(&ordinary()));
    let limits = UnpackLimits {
        xz_memory_kib: 1024,
        ..UnpackLimits::default()
    };
    let err = case.unpack_with(ArchiveFormat::TarXz, &limits).unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused, "{}", err.message);
    case.assert_nothing_left();
}

#[test]
fn an_existing_destination_is_not_unpacked_over() {
    let case = Case::new(&gz(&ordinary()));
    fs::create_dir(case.dest()).unwrap();
    let err = case.unpack(ArchiveFormat::TarGz).unwrap_err();
    assert_eq!(err.kind, FailureKind::Interrupted);
    assert_eq!(fs::read_dir(case.dest()).unwrap().count(), 0);
}

#[test]
fn leftovers_of_an_interrupted_unpack_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join(".heph-unpack-abc/sub")).unwrap();
    fs::create_dir(dir.path().join("1.4.0")).unwrap();
    assert_eq!(remove_leftovers(dir.path()).unwrap(), 1);
    assert!(dir.path().join("1.4.0").exists());
    assert!(!dir.path().join(".heph-unpack-abc").exists());
}

#[test]
fn formats_are_known_by_their_names() {
    assert_eq!(
        ArchiveFormat::from_name("hephd-x86_64-unknown-linux-gnu.tar.xz"),
        Some(ArchiveFormat::TarXz)
    );
    assert_eq!(
        ArchiveFormat::from_name("x.TGZ"),
        Some(ArchiveFormat::TarGz)
    );
    assert_eq!(ArchiveFormat::from_name("x.zip"), Some(ArchiveFormat::Zip));
    assert_eq!(ArchiveFormat::from_name("x.tar.bz2"), None);
    assert_eq!(ArchiveFormat::from_name("SHA256SUMS"), None);
}
