//! The Rust a release needs (`rust-version` of the packages to install, as `cargo
//! metadata` reports it) against the rustc the build would use, checked before anything
//! is compiled: a too-old toolchain fails in seconds, not after a long build.

use std::collections::BTreeMap;

use semver::Version;

/// The version in `rustc --version` output: `rustc 1.86.0 (05f9846f8 2025-03-31)`,
/// `rustc 1.92.0-nightly (abc 2025-09-01)`.
pub fn parse_rustc_version(output: &str) -> Option<Version> {
    let line = output.lines().find(|l| l.starts_with("rustc "))?;
    let word = line.split_whitespace().nth(1)?;
    Version::parse(word).ok()
}

/// A `rust-version` value (`1.90`, `1.90.1`, `1`) as a version (missing parts are 0).
pub fn parse_rust_version(value: &str) -> Option<Version> {
    let parts: Vec<u64> = value
        .trim()
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [major] => Some(Version::new(major, 0, 0)),
        [major, minor] => Some(Version::new(major, minor, 0)),
        [major, minor, patch] => Some(Version::new(major, minor, patch)),
        _ => None,
    }
}

/// True when rustc `found` satisfies `rust-version = required`. Like cargo, a pre-release
/// (nightly, beta) of the required version counts as that version.
pub fn satisfies(found: &Version, required: &Version) -> bool {
    (found.major, found.minor, found.patch) >= (required.major, required.minor, required.patch)
}

/// The `rust-version` of each of `packages` that declares one (from `cargo metadata`).
pub fn required_versions(
    rust_versions: &BTreeMap<String, String>,
    packages: &[String],
) -> Vec<(String, String)> {
    packages
        .iter()
        .filter_map(|p| rust_versions.get(p).map(|v| (p.clone(), v.clone())))
        .collect()
}

/// Checks the rustc that `rustc --version` printed against every package's requirement.
/// `Err`: the message for people (first line the problem, then a `help:` line).
pub fn check(
    tag: &str,
    required: &[(String, String)],
    rustc_output: &str,
    toolchain: Option<&str>,
) -> Result<Option<Version>, String> {
    let found = parse_rustc_version(rustc_output);
    let toolchain = toolchain.unwrap_or("default");
    let Some(found) = found else {
        if required.is_empty() {
            return Ok(None);
        }
        return Err(format!(
            "could not read the version of the rustc this build would use (toolchain: {toolchain}) from {:?}\nhelp: run `rustc --version` in the service's environment (`make doctor`)",
            rustc_output.trim()
        ));
    };
    // The highest requirement is the one to name.
    let worst = required
        .iter()
        .filter_map(|(p, v)| Some((p, v, parse_rust_version(v)?)))
        .filter(|(_, _, need)| !satisfies(&found, need))
        .max_by(|a, b| a.2.cmp(&b.2));
    match worst {
        None => Ok(Some(found)),
        Some((package, value, _)) => Err(format!(
            "{tag} needs Rust {value} (rust-version of {package}); this build would use rustc {found} (toolchain: {toolchain})\nhelp: set `toolchain = \"stable\"` and run `rustup update stable`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rustc_versions() {
        assert_eq!(
            parse_rustc_version("rustc 1.86.0 (05f9846f8 2025-03-31)\n"),
            Some(Version::new(1, 86, 0))
        );
        assert_eq!(
            parse_rustc_version("rustc 1.92.0-nightly (6d8e0e7d7 2025-09-01)")
                .unwrap()
                .to_string(),
            "1.92.0-nightly"
        );
        assert_eq!(
            parse_rustc_version("error: toolchain 'x' is not installed"),
            None
        );
    }

    #[test]
    fn reads_rust_version_values() {
        assert_eq!(parse_rust_version("1.90"), Some(Version::new(1, 90, 0)));
        assert_eq!(parse_rust_version("1.90.1"), Some(Version::new(1, 90, 1)));
        assert_eq!(parse_rust_version("1"), Some(Version::new(1, 0, 0)));
        assert_eq!(parse_rust_version("1.x"), None);
        assert_eq!(parse_rust_version("1.2.3.4"), None);
    }

    #[test]
    fn compares_like_cargo() {
        let v = |s: &str| Version::parse(s).unwrap();
        let need = |s: &str| parse_rust_version(s).unwrap();
        assert!(satisfies(&v("1.90.0"), &need("1.90")));
        assert!(satisfies(&v("1.95.0"), &need("1.90.1")));
        assert!(!satisfies(&v("1.90.0"), &need("1.90.1")));
        assert!(!satisfies(&v("1.86.0"), &need("1.90")));
        assert!(
            satisfies(&v("1.90.0-nightly"), &need("1.90")),
            "a nightly of 1.90 counts as 1.90"
        );
        assert!(!satisfies(&v("1.95.0"), &need("1.999")));
    }

    #[test]
    fn names_the_release_the_requirement_and_the_toolchain() {
        let required = vec![
            ("heph".to_owned(), "1.80".to_owned()),
            ("hephd".to_owned(), "1.90".to_owned()),
        ];
        let err = check(
            "v1.11.0",
            &required,
            "rustc 1.86.0 (05f9846f8 2025-03-31)",
            None,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "v1.11.0 needs Rust 1.90 (rust-version of hephd); this build would use rustc 1.86.0 (toolchain: default)\nhelp: set `toolchain = \"stable\"` and run `rustup update stable`"
        );
        assert_eq!(
            check(
                "v1.11.0",
                &required,
                "rustc 1.90.0 (x 2025-09-14)",
                Some("stable")
            ),
            Ok(Some(Version::new(1, 90, 0)))
        );
        assert_eq!(check("v1", &[], "garbage", None), Ok(None));
        assert!(check("v1", &required, "garbage", None).is_err());
    }

    #[test]
    fn only_the_packages_to_install_count() {
        let all: BTreeMap<String, String> = [("tool", "1.999"), ("hephd", "1.80")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        assert_eq!(
            required_versions(&all, &["hephd".to_owned(), "heph".to_owned()]),
            vec![("hephd".to_owned(), "1.80".to_owned())]
        );
    }
}
