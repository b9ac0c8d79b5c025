//! Versions: release tags, `--version` output, and their ordering.
//!
//! Ordering uses semver *precedence* (`cmp_precedence`), which ignores build metadata;
//! the derived `Ord` of `semver::Version` does not, and would order `1.0.0+b` after `1.0.0+a`.

use std::cmp::Ordering;

use semver::Version;

/// Longest tag we accept; anything longer is hostile or broken.
const MAX_TAG_LEN: usize = 128;

/// Why a tag was not accepted as a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagError {
    /// Characters that could be read as an option, a path or a shell word.
    Unsafe,
    /// Longer than we accept.
    TooLong,
    /// Not `X.Y.Z` (with optional pre-release and build), after one optional leading `v`.
    NotSemver(String),
}

impl std::fmt::Display for TagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsafe => f.write_str("tag has characters that are not allowed in a version tag"),
            Self::TooLong => write!(f, "tag is longer than {MAX_TAG_LEN} characters"),
            Self::NotSemver(e) => write!(f, "tag is not a semver version ({e})"),
        }
    }
}

/// Parses a release tag such as `v1.10.4` or `1.10.4-rc.1` into a version.
///
/// Exactly one leading `v` is allowed. Only the characters semver allows pass, so an
/// accepted tag can never start with `-`, contain `/`, `..`, spaces or control characters,
/// and is safe to pass to git and cargo and to use as a directory name.
pub fn parse_tag(tag: &str) -> Result<Version, TagError> {
    if tag.len() > MAX_TAG_LEN {
        return Err(TagError::TooLong);
    }
    let ok_chars = tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'));
    if !ok_chars || tag.starts_with(['-', '.', '+']) || tag.contains("..") {
        return Err(TagError::Unsafe);
    }
    let bare = tag.strip_prefix('v').unwrap_or(tag);
    Version::parse(bare).map_err(|e| TagError::NotSemver(e.to_string()))
}

/// Finds the version in a program's `--version` output.
///
/// hephd prints `hephd 1.8.1 (3fa9c2d)`; the version is the first word that parses as
/// semver (after one optional leading `v`). Only the first line is looked at.
pub fn parse_version_output(output: &str) -> Option<Version> {
    let first_line = output.lines().next()?;
    first_line
        .split_whitespace()
        .map(|word| word.trim_matches(|c: char| matches!(c, '(' | ')' | ',' | ';')))
        .find_map(|word| Version::parse(word.strip_prefix('v').unwrap_or(word)).ok())
}

/// Semver precedence: build metadata does not order versions.
pub fn precedence(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}

/// True when `a` and `b` have the same precedence (`1.0.0+a` equals `1.0.0+b`).
pub fn same_version(a: &Version, b: &Version) -> bool {
    precedence(a, b) == Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn accepts_tags_with_and_without_one_leading_v() {
        assert_eq!(parse_tag("v1.10.4"), Ok(v("1.10.4")));
        assert_eq!(parse_tag("1.10.4"), Ok(v("1.10.4")));
        assert_eq!(parse_tag("v0.9.0-rc.2"), Ok(v("0.9.0-rc.2")));
        assert_eq!(parse_tag("v1.0.0+build.5"), Ok(v("1.0.0+build.5")));
    }

    #[test]
    fn rejects_tags_that_are_not_plain_semver() {
        for tag in [
            "vv1.0.0",
            "v1.2",
            "v01.2.3",
            "release-1",
            "latest",
            "V1.0.0",
            "",
        ] {
            assert!(
                matches!(parse_tag(tag), Err(TagError::NotSemver(_))),
                "{tag:?} should not parse"
            );
        }
    }

    #[test]
    fn rejects_hostile_tags_before_parsing() {
        for tag in [
            "-v1.0.0",
            "--upload-pack=evil",
            "v1.0.0/../x",
            "../v1.0.0",
            "v1.0.0 x",
            "v1.0.0;rm",
            "v1.0.0\n",
            "v1.0.0\u{7}",
            "v1.0.0$(id)",
            "v1.0.0`id`",
            "v1.0.0..1",
            "v1.0.0\u{e9}",
        ] {
            assert_eq!(parse_tag(tag), Err(TagError::Unsafe), "{tag:?}");
        }
        assert_eq!(
            parse_tag(&format!("v1.0.0-{}", "a".repeat(200))),
            Err(TagError::TooLong)
        );
    }

    #[test]
    fn reads_the_version_from_hephd_version_output() {
        assert_eq!(
            parse_version_output("hephd 1.8.1 (3fa9c2d)\n"),
            Some(v("1.8.1"))
        );
        assert_eq!(parse_version_output("hephd v1.8.1"), Some(v("1.8.1")));
        assert_eq!(
            parse_version_output("hephd 0.9.0-rc.2 (abc)"),
            Some(v("0.9.0-rc.2"))
        );
        assert_eq!(parse_version_output("hephd (1.2.3)"), Some(v("1.2.3")));
    }

    #[test]
    fn version_output_without_a_version_is_unknown() {
        assert_eq!(parse_version_output(""), None);
        assert_eq!(parse_version_output("hephd dev build"), None);
        assert_eq!(
            parse_version_output("\n1.2.3"),
            None,
            "only the first line counts"
        );
        assert_eq!(parse_version_output(&"x".repeat(100_000)), None);
    }

    #[test]
    fn prerelease_identifiers_order_numerically_when_dot_separated() {
        assert_eq!(
            precedence(&v("1.0.0-rc.10"), &v("1.0.0-rc.9")),
            Ordering::Greater
        );
        // Without the dot the identifier is alphanumeric and compares as text.
        assert_eq!(
            precedence(&v("1.0.0-rc10"), &v("1.0.0-rc9")),
            Ordering::Less
        );
        assert_eq!(
            precedence(&v("1.0.0-RC.1"), &v("1.0.0-rc.1")),
            Ordering::Less
        );
        assert_eq!(precedence(&v("1.0.0-rc.1"), &v("1.0.0")), Ordering::Less);
    }

    #[test]
    fn build_metadata_does_not_order_versions() {
        assert!(same_version(&v("1.0.0+b"), &v("1.0.0+a")));
        assert_ne!(
            v("1.0.0+b").cmp(&v("1.0.0+a")),
            Ordering::Equal,
            "plain Ord would"
        );
    }
}
