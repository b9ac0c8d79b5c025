//! SHA-256 digests and the checksum files releases publish: `SHA256SUMS` and cargo-dist's
//! `sha256.sum` (one line per file), and a per-archive `<archive>.sha256`.
//!
//! Lines are read in the two formats `sha256sum` writes: GNU (`<hex>  name`, or
//! `<hex> *name` in binary mode, with a leading `\` when the name is escaped) and BSD
//! (`SHA256 (name) = <hex>`, `sha256sum --tag`). A `.sha256` file may also hold the bare
//! hex digest of the file it is named after. Blank lines and `#` comments are skipped.
//! Anything else, or one name listed with two different digests, makes the whole file
//! unreadable: a checksum file is the release's word and is read strictly.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::{Failure, Result};

/// Checksum files larger than this are not read (a few hundred archives fit in 64 KiB).
pub const MAX_CHECKSUM_FILE_BYTES: u64 = 1 << 20;
/// Lines past this many are not read.
const MAX_LINES: usize = 10_000;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes` (small inputs; archives go through
    /// [`super::download::copy_hashed`]).
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// Lower-case hex, as `sha256sum` prints it.
    pub fn hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = String;

    /// 64 hex digits, either case.
    fn from_str(s: &str) -> Result<Self, String> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(format!(
                "a SHA-256 digest has 64 hex digits, not {}",
                bytes.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]);
            let lo = hex_value(pair[1]);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out[i] = hi << 4 | lo,
                _ => return Err("a SHA-256 digest is hex digits only".to_owned()),
            }
        }
        Ok(Self(out))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// File name → digest, as one checksum file states them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checksums {
    entries: BTreeMap<String, Sha256Digest>,
}

impl Checksums {
    /// A `SHA256SUMS` or `sha256.sum` file named `source` (for messages).
    pub fn parse(source: &str, text: &str) -> Result<Self> {
        let mut sums = Self::default();
        for (n, line) in text.lines().enumerate() {
            if n == MAX_LINES {
                return Err(unreadable(source, &format!("more than {MAX_LINES} lines")));
            }
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, digest) = parse_line(line)
                .map_err(|why| unreadable(source, &format!("line {}: {why}", n + 1)))?;
            sums.insert(source, name, digest)?;
        }
        Ok(sums)
    }

    /// A per-archive `<archive>.sha256` file named `file_name`: lines as in
    /// [`Checksums::parse`], or the bare digest of `<archive>`.
    pub fn parse_single(file_name: &str, text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if let Ok(digest) = trimmed.parse::<Sha256Digest>() {
            let Some(archive) = file_name.strip_suffix(".sha256") else {
                return Err(unreadable(
                    file_name,
                    "a bare digest names no file, and the file name does not end in `.sha256`",
                ));
            };
            let mut sums = Self::default();
            sums.insert(file_name, archive.to_owned(), digest)?;
            return Ok(sums);
        }
        Self::parse(file_name, text)
    }

    fn insert(&mut self, source: &str, name: String, digest: Sha256Digest) -> Result<()> {
        match self.entries.get(&name) {
            Some(old) if *old != digest => Err(Failure::refused(format!(
                "{source} lists {name} twice with different SHA-256 digests ({old} and {digest})\nhelp: the release's checksum file contradicts itself; ask its publisher to fix the release"
            ))),
            _ => {
                self.entries.insert(name, digest);
                Ok(())
            }
        }
    }

    /// The digest stated for the file `name`.
    pub fn get(&self, name: &str) -> Option<&Sha256Digest> {
        self.entries.get(name)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every (name, digest), by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Sha256Digest)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

fn unreadable(source: &str, why: &str) -> Failure {
    Failure::refused(format!(
        "the checksum file {source} is not in a format heph-selfupdate reads ({why})\nhelp: a line is `<sha256 hex>  <file name>` (`sha256sum` output) or `SHA256 (<file name>) = <hex>`; see docs/assets.md"
    ))
}

/// One line: `(file name, digest)`.
fn parse_line(line: &str) -> Result<(String, Sha256Digest), String> {
    if let Some(rest) = line.strip_prefix("SHA256 (") {
        let (name, hex) = rest
            .rsplit_once(") = ")
            .ok_or("a BSD-style line is `SHA256 (name) = hex`")?;
        let digest = hex.trim().parse()?;
        return Ok((file_name(name)?, digest));
    }
    // GNU: a leading backslash means the name has `\\` and `\n` escapes.
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let hex = line.get(..64).ok_or("too short for a SHA-256 line")?;
    let digest: Sha256Digest = hex.parse()?;
    let rest = &line[64..];
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))
        .ok_or("the digest is followed by two spaces or ` *`, then the file name")?;
    let name = if escaped {
        unescape(name)?
    } else {
        name.to_owned()
    };
    Ok((file_name(&name)?, digest))
}

fn unescape(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                _ => return Err("an unknown `\\` escape in the file name".to_owned()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The name as it is matched against asset names: `./` dropped. Names with a directory
/// (`dist/x.tar.xz`) keep it and so match no asset.
fn file_name(name: &str) -> Result<String, String> {
    let name = name.strip_prefix("./").unwrap_or(name);
    if name.is_empty() {
        return Err("an empty file name".to_owned());
    }
    Ok(name.to_owned())
}

/// Compares the digest of what was downloaded with the one the release states.
///
/// A difference is [`super::FailureKind::Refused`]: the caller only compares after a
/// download that ended normally, so it is tampering or a broken release, never a
/// dropped connection.
pub fn check(
    file: &str,
    expected: &Sha256Digest,
    actual: &Sha256Digest,
    source: &str,
) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(Failure::refused(format!(
        "the SHA-256 of {file} is {actual}, but {source} says {expected}\nhelp: the downloaded archive is not the one the release's checksums describe (tampering, or a release whose assets were replaced); the release is held until a person looks: compare the assets on the forge, and ask the publisher"
    )))
}

#[cfg(test)]
mod tests {
    use super::super::FailureKind;
    use super::*;

    const A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    fn digest(hex: &str) -> Sha256Digest {
        hex.parse().unwrap()
    }

    #[test]
    fn the_digest_of_test_is_the_known_one() {
        assert_eq!(Sha256Digest::of(b"test").hex(), A);
    }

    #[test]
    fn reads_sha256sum_output_in_text_and_binary_mode() {
        let text = format!(
            "{A}  hephd-1.2.0-x86_64-unknown-linux-gnu.tar.xz\n{B} *heph-1.2.0-x86_64-unknown-linux-gnu.tar.xz\n"
        );
        let sums = Checksums::parse("SHA256SUMS", &text).unwrap();
        assert_eq!(sums.len(), 2);
        assert_eq!(
            sums.get("hephd-1.2.0-x86_64-unknown-linux-gnu.tar.xz"),
            Some(&digest(A))
        );
        assert_eq!(
            sums.get("heph-1.2.0-x86_64-unknown-linux-gnu.tar.xz"),
            Some(&digest(B))
        );
    }

    #[test]
    fn reads_upper_case_hex_crlf_comments_and_a_leading_dot_slash() {
        let text = format!(
            "# made by the release job\r\n\r\n{}  ./hephd.tar.gz\r\n",
            A.to_uppercase()
        );
        let sums = Checksums::parse("SHA256SUMS", &text).unwrap();
        assert_eq!(sums.get("hephd.tar.gz"), Some(&digest(A)));
    }

    #[test]
    fn reads_bsd_tag_lines() {
        let text = format!("SHA256 (hephd.zip) = {A}\n");
        let sums = Checksums::parse("SHA256SUMS", &text).unwrap();
        assert_eq!(sums.get("hephd.zip"), Some(&digest(A)));
    }

    #[test]
    fn reads_escaped_gnu_names() {
        let text = format!("\\{A}  odd\\\\name\\nx\n");
        let sums = Checksums::parse("SHA256SUMS", &text).unwrap();
        assert_eq!(sums.get("odd\\name\nx"), Some(&digest(A)));
    }

    #[test]
    fn a_per_file_sha256_may_hold_a_line_or_the_bare_digest() {
        let line = Checksums::parse_single("x.tar.xz.sha256", &format!("{A} *x.tar.xz\n")).unwrap();
        assert_eq!(line.get("x.tar.xz"), Some(&digest(A)));
        let bare = Checksums::parse_single("x.tar.xz.sha256", &format!("{A}\n")).unwrap();
        assert_eq!(bare.get("x.tar.xz"), Some(&digest(A)));
    }

    #[test]
    fn a_bare_digest_in_a_file_not_named_sha256_is_refused() {
        let err = Checksums::parse_single("CHECKSUM", A).unwrap_err();
        assert_eq!(err.kind, FailureKind::Refused);
    }

    #[test]
    fn lines_in_other_formats_make_the_file_unreadable() {
        for text in [
            "not a checksum line\n".to_owned(),
            format!("{}  x.tar.xz\n", &A[..63]),
            format!("{A} x.tar.xz\n"),
            format!("{A}{A}  x.tar.xz\n"),
            format!("{A}  \n"),
            "SHA512 (x) = 00\n".to_owned(),
            format!("\\{A}  bad\\escape\n"),
        ] {
            let err = Checksums::parse("SHA256SUMS", &text).unwrap_err();
            assert_eq!(err.kind, FailureKind::Refused, "{text:?}");
            assert!(err.message.contains("SHA256SUMS"), "{}", err.message);
        }
    }

    #[test]
    fn one_name_with_two_digests_is_refused_and_a_repeat_is_not() {
        let twice = format!("{A}  x.tar.xz\n{A}  x.tar.xz\n");
        assert!(Checksums::parse("SHA256SUMS", &twice).is_ok());
        let differ = format!("{A}  x.tar.xz\n{B}  x.tar.xz\n");
        let err = Checksums::parse("SHA256SUMS", &differ).unwrap_err();
        assert_eq!(err.kind, FailureKind::Refused);
        assert!(err.message.contains("twice"), "{}", err.message);
    }

    #[test]
    fn a_mismatch_is_refused_and_names_both_digests() {
        assert!(check("x.tar.xz", &digest(A), &digest(A), "SHA256SUMS").is_ok());
        let err = check("x.tar.xz", &digest(A), &digest(B), "SHA256SUMS").unwrap_err();
        assert_eq!(err.kind, FailureKind::Refused);
        assert!(err.message.contains(A) && err.message.contains(B));
        assert!(err.message.contains("held"), "{}", err.message);
    }

    #[test]
    fn digests_parse_only_from_64_hex_digits() {
        assert!("".parse::<Sha256Digest>().is_err());
        assert!(A[..62].parse::<Sha256Digest>().is_err());
        assert!(A.replace('a', "g").parse::<Sha256Digest>().is_err());
        // Multi-byte characters must not split a pair or panic.
        assert!("é".repeat(32).parse::<Sha256Digest>().is_err());
        assert_eq!(digest(A).to_string(), A);
    }
}
