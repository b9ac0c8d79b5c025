//! Streaming an asset to disk while hashing it: a fixed 64 KiB buffer, so memory stays
//! flat whatever the archive's size, and a byte cap, so a forge cannot fill the disk.
//!
//! The bytes go to a temporary file beside the destination; only a complete download of
//! the expected size is handed back, and a dropped [`Downloaded`] leaves nothing behind.

use std::io::{Read, Write};
use std::path::Path;

use sha2::Digest;

use super::checksum::Sha256Digest;
use super::{Failure, Result};

/// Bytes read and hashed per step.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// The default cap on one archive's download (as much as an archive may unpack to).
pub const MAX_ARCHIVE_BYTES: u64 = 512 << 20;

/// What a download may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// More bytes than this are not read: the asset is not used.
    pub max_bytes: u64,
    /// The size the forge lists for the asset, if it lists one: a transfer that ends at
    /// another size was cut (or the asset replaced meanwhile) and is tried again later.
    pub expected: Option<u64>,
}

/// What a finished copy saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub bytes: u64,
    pub sha256: Sha256Digest,
}

/// Copies `reader` to `writer` in [`BUFFER_BYTES`] steps, hashing what passes, and calls
/// `progress` with the bytes so far after each step. `what` names the asset in messages.
pub fn copy_hashed(
    what: &str,
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    limits: Limits,
    progress: &mut dyn FnMut(u64),
) -> Result<Copied> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; BUFFER_BYTES];
    let mut bytes: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::interrupted(format!(
                    "the download of {what} failed after {bytes} bytes: {e}\nhelp: nothing was kept; the next run downloads it again"
                )));
            }
        };
        bytes += n as u64;
        if bytes > limits.max_bytes {
            return Err(Failure::unavailable(format!(
                "{what} is larger than the {} bytes an asset may be; it is not used\nhelp: raise the download size limit if the release's archives really are this large",
                limits.max_bytes
            )));
        }
        if let Some(expected) = limits.expected.filter(|e| bytes > *e) {
            return Err(Failure::interrupted(format!(
                "{what} sent more than the {expected} bytes the forge lists for it\nhelp: nothing was kept; the asset may have been replaced meanwhile: the next run tries again"
            )));
        }
        hasher.update(&buf[..n]);
        writer
            .write_all(&buf[..n])
            .map_err(|e| write_failed(what, &e))?;
        progress(bytes);
    }
    writer.flush().map_err(|e| write_failed(what, &e))?;
    if let Some(expected) = limits.expected.filter(|e| bytes != *e) {
        return Err(Failure::interrupted(format!(
            "the download of {what} ended after {bytes} of {expected} bytes\nhelp: nothing was kept; the next run downloads it again"
        )));
    }
    Ok(Copied {
        bytes,
        sha256: Sha256Digest(hasher.finalize().into()),
    })
}

fn write_failed(what: &str, e: &std::io::Error) -> Failure {
    Failure::interrupted(format!(
        "could not write the download of {what}: {e}\nhelp: check the free space of the cache directory; nothing was kept"
    ))
}

/// A complete download in a temporary file (removed when dropped).
#[derive(Debug)]
pub struct Downloaded {
    pub file: tempfile::NamedTempFile,
    pub copied: Copied,
}

impl Downloaded {
    /// The temporary file's path (for unpacking or checking a signature).
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// [`copy_hashed`] into a new temporary file in `dir` (which should be on the file
/// system of where the archive is unpacked), synced to disk before it is handed back.
pub fn download_into(
    what: &str,
    reader: &mut dyn Read,
    dir: &Path,
    limits: Limits,
    progress: &mut dyn FnMut(u64),
) -> Result<Downloaded> {
    let mut file = tempfile::Builder::new()
        .prefix(".heph-download-")
        .tempfile_in(dir)
        .map_err(|e| {
            Failure::interrupted(format!(
                "could not create a file in {} for the download of {what}: {e}\nhelp: check that the directory exists and is writable",
                dir.display()
            ))
        })?;
    let copied = copy_hashed(what, reader, file.as_file_mut(), limits, progress)?;
    file.as_file()
        .sync_all()
        .map_err(|e| write_failed(what, &e))?;
    Ok(Downloaded { file, copied })
}

/// Reads a small asset (a checksum file, a signature, a manifest) into memory, refusing
/// more than `max_bytes`.
pub fn read_small(what: &str, reader: &mut dyn Read, max_bytes: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let limits = Limits {
        max_bytes,
        expected: None,
    };
    copy_hashed(what, reader, &mut out, limits, &mut |_| {})?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::super::FailureKind;
    use super::*;

    /// `len` bytes of a repeating pattern, without holding them.
    struct Pattern {
        left: u64,
    }

    impl Read for Pattern {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = u8::try_from(i % 251).unwrap_or(0);
            }
            self.left -= n as u64;
            Ok(n)
        }
    }

    /// Fails after `ok` bytes, like a dropped connection.
    struct Drops {
        ok: usize,
    }

    impl Read for Drops {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.ok == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by peer",
                ));
            }
            let n = self.ok.min(buf.len());
            buf[..n].fill(b'x');
            self.ok -= n;
            Ok(n)
        }
    }

    fn open(max: u64) -> Limits {
        Limits {
            max_bytes: max,
            expected: None,
        }
    }

    #[test]
    fn hashes_what_it_copies_and_reports_progress() {
        let data = b"hello archive".repeat(20_000);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let copied = copy_hashed(
            "x.tar.xz",
            &mut Cursor::new(&data),
            &mut out,
            open(1 << 30),
            &mut |n| seen.push(n),
        )
        .unwrap();
        assert_eq!(out, data);
        assert_eq!(copied.bytes, data.len() as u64);
        assert_eq!(copied.sha256, Sha256Digest::of(&data));
        assert_eq!(seen.last(), Some(&(data.len() as u64)));
        assert!(seen.len() > 1, "progress after each step: {seen:?}");
    }

    #[test]
    fn streams_an_archive_larger_than_memory_would_hold_in_steps() {
        // 40 MiB through a sink: the copy never asks for more than one buffer at a time.
        let mut sink = std::io::sink();
        let copied = copy_hashed(
            "big",
            &mut Pattern { left: 40 << 20 },
            &mut sink,
            open(1 << 30),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(copied.bytes, 40 << 20);
    }

    #[test]
    fn more_than_the_cap_is_not_used() {
        let err = copy_hashed(
            "x",
            &mut Pattern { left: 1 << 20 },
            &mut std::io::sink(),
            open(1000),
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(err.kind, FailureKind::Unavailable);
        assert!(err.message.contains("1000 bytes"), "{}", err.message);
    }

    #[test]
    fn a_transfer_shorter_or_longer_than_listed_is_interrupted_not_refused() {
        for (len, expected) in [(100u64, 200u64), (300, 200)] {
            let err = copy_hashed(
                "x",
                &mut Pattern { left: len },
                &mut std::io::sink(),
                Limits {
                    max_bytes: 1 << 20,
                    expected: Some(expected),
                },
                &mut |_| {},
            )
            .unwrap_err();
            assert_eq!(err.kind, FailureKind::Interrupted, "{}", err.message);
        }
        let exact = copy_hashed(
            "x",
            &mut Pattern { left: 200 },
            &mut std::io::sink(),
            Limits {
                max_bytes: 1 << 20,
                expected: Some(200),
            },
            &mut |_| {},
        );
        assert!(exact.is_ok());
    }

    #[test]
    fn a_dropped_connection_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = download_into(
            "x.tar.gz",
            &mut Drops { ok: 200_000 },
            dir.path(),
            open(1 << 30),
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(err.kind, FailureKind::Interrupted);
        assert!(err.message.contains("connection reset"), "{}", err.message);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_complete_download_is_in_a_file_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let got = download_into(
            "x",
            &mut Cursor::new(b"abc".to_vec()),
            dir.path(),
            open(10),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(std::fs::read(got.path()).unwrap(), b"abc");
        assert_eq!(got.copied.sha256, Sha256Digest::of(b"abc"));
        drop(got);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn small_reads_are_capped() {
        assert_eq!(
            read_small("s", &mut Cursor::new(b"abc".to_vec()), 3).unwrap(),
            b"abc"
        );
        assert!(read_small("s", &mut Cursor::new(b"abcd".to_vec()), 3).is_err());
    }
}
