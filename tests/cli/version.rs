//! `--version` names the commit the binary was built from.

use std::process::Command;

use crate::support::env::TestEnv;

/// `heph-selfupdate X.Y.Z` optionally followed by ` (abcdef1)` or ` (abcdef1, dirty)`.
fn parse(line: &str) -> Option<(&str, Option<(&str, bool)>)> {
    let rest = line.strip_prefix("heph-selfupdate ")?;
    let (version, build) = match rest.split_once(' ') {
        Some((v, b)) => (v, Some(b)),
        None => (rest, None),
    };
    let numeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| numeric(p)) {
        return None;
    }
    let Some(build) = build else {
        return Some((version, None));
    };
    let inner = build.strip_prefix('(')?.strip_suffix(')')?;
    let (commit, dirty) = match inner.strip_suffix(", dirty") {
        Some(c) => (c, true),
        None => (inner, false),
    };
    let hex = commit.len() >= 7
        && commit
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    hex.then_some((version, Some((commit, dirty))))
}

#[test]
fn the_version_line_parser_accepts_only_the_documented_shape() {
    assert!(parse("heph-selfupdate 0.1.0").is_some());
    assert_eq!(
        parse("heph-selfupdate 0.1.0 (8ca1415, dirty)"),
        Some(("0.1.0", Some(("8ca1415", true))))
    );
    for bad in [
        "heph-selfupdate 0.1",
        "heph-selfupdate 0.1.0 (8ca14)",
        "heph-selfupdate 0.1.0 (8CA1415)",
        "heph-selfupdate 0.1.0 (8ca1415, clean)",
        "heph-selfupdate 0.1.0 8ca1415",
    ] {
        assert!(parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn version_names_the_commit_of_this_checkout() {
    let env = TestEnv::new();
    let run = env.run(&["--version"]);
    run.expect(0);
    let line = run.stdout.trim_end_matches('\n');
    let parsed = parse(line).unwrap_or_else(|| panic!("unexpected --version: {line:?}"));
    assert_eq!(parsed.0, env!("CARGO_PKG_VERSION"));
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(parsed.1.map(|(c, _)| c), Some(head.as_str()), "{line}"),
        // Built from a source tarball: no commit to name.
        None => assert_eq!(parsed.1, None, "{line}"),
    }
}
