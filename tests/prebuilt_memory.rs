//! Issue 21: heph-selfupdate stays within 16 MiB while downloading and unpacking, so
//! archives are streamed, never held whole. A counting allocator measures the heap's
//! peak during each step (one test in this binary, so nothing else allocates meanwhile).
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use heph_selfupdate::prebuilt::download::{Limits, download_into};
use heph_selfupdate::prebuilt::unpack::{ArchiveFormat, UnpackLimits, unpack};

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        NOW.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LIMIT: usize = 16 << 20;

/// The heap's peak above what was in use before, while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = NOW.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

/// Bytes that compress well, without holding them.
struct Data {
    left: usize,
    state: u64,
}

impl Read for Data {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.left.min(buf.len());
        for b in &mut buf[..n] {
            self.state = self
                .state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            *b = if self.state >> 60 == 0 {
                self.state.to_le_bytes()[4]
            } else {
                b'a'
            };
        }
        self.left -= n;
        Ok(n)
    }
}

/// Larger than the xz dictionary (8 MiB), so its window is used in full.
const SIZE: usize = 12 << 20;
/// What the download streams.
const DOWNLOAD: usize = 48 << 20;
/// Unpacking gzip and zip needs a few buffers only: far below the archive's size.
const SMALL: usize = 1 << 20;

fn data() -> Data {
    Data {
        left: SIZE,
        state: 7,
    }
}

fn download_data() -> Data {
    Data {
        left: DOWNLOAD,
        state: 7,
    }
}

/// A tar of one 20 MiB file, streamed through `program` (gzip or xz, which are quick
/// where an unoptimised encoder in this test would not be) into `path`.
fn compressed(program: &str, args: &[&str], path: &std::path::Path) {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(path).unwrap())
        .spawn()
        .unwrap();
    let mut b = tar::Builder::new(child.stdin.take().unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_path("hephd-1.4.0/hephd").unwrap();
    h.set_mode(0o755);
    h.set_size(SIZE as u64);
    h.set_cksum();
    b.append(&h, data()).unwrap();
    drop(b.into_inner().unwrap());
    assert!(child.wait().unwrap().success());
}

#[test]
fn downloading_and_unpacking_a_large_archive_stays_within_16_mib() {
    let dir = tempfile::tempdir().unwrap();

    let download = peak_during(|| {
        let got = download_into(
            "big",
            &mut download_data(),
            dir.path(),
            Limits {
                max_bytes: 1 << 30,
                expected: Some(DOWNLOAD as u64),
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(got.copied.bytes, DOWNLOAD as u64);
    });
    assert!(download < SMALL, "the download peaked at {download} bytes");

    let gz = dir.path().join("a.tar.gz");
    compressed("gzip", &["-1", "-c"], &gz);
    // xz -6, what the publishing recipe writes: an 8 MiB dictionary.
    let xz = dir.path().join("a.tar.xz");
    compressed("xz", &["-6", "-T1", "-c"], &xz);
    let zip = dir.path().join("a.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip).unwrap());
    z.start_file(
        "hephd-1.4.0/hephd",
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(0o755),
    )
    .unwrap();
    std::io::copy(&mut data(), &mut z).unwrap();
    z.finish().unwrap();

    for (archive, format) in [
        (&gz, ArchiveFormat::TarGz),
        (&xz, ArchiveFormat::TarXz),
        (&zip, ArchiveFormat::Zip),
    ] {
        let dest = dir.path().join(format!("{format:?}"));
        let peak = peak_during(|| {
            let got = unpack(archive, "a", format, &dest, &UnpackLimits::default()).unwrap();
            assert_eq!(got.bytes, SIZE as u64);
        });
        let limit = if format == ArchiveFormat::TarXz {
            LIMIT
        } else {
            SMALL
        };
        assert!(peak < limit, "unpacking {format:?} peaked at {peak} bytes");
    }
}
