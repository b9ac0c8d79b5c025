//! cargo's install records (`<root>/.crates2.json`): which package, version, source and
//! commit put each binary in a root. A root written only by cargo before 1.41 has
//! `.crates.toml` instead (its `[v1]` table: the same keys, each with its binaries); it is
//! read when `.crates2.json` is absent (later cargos write both, and keep them in step).

use std::path::Path;

use anyhow::{Context, Result};
use semver::Version;

/// One installed package, as cargo recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallRecord {
    pub package: String,
    pub version: Option<Version>,
    /// The source, e.g. `git+https://host/o/r.git?tag=v1.3.0#<commit>` or `path+file:///…`.
    pub source: String,
    /// The git commit cargo built, for git sources.
    pub commit: Option<String>,
    pub bins: Vec<String>,
}

/// Reads `<root>/.crates2.json`, else `<root>/.crates.toml`; no file means no records.
pub fn read(root: &Path) -> Result<Vec<InstallRecord>> {
    let read = |name: &str, parse: fn(&str) -> Result<Vec<InstallRecord>>| {
        let path = root.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("could not read {}", path.display()));
            }
        };
        parse(&text).map(Some).with_context(|| {
            format!(
                "could not understand cargo's install records {}",
                path.display()
            )
        })
    };
    match read(".crates2.json", parse)? {
        Some(records) => Ok(records),
        None => Ok(read(".crates.toml", parse_v1)?.unwrap_or_default()),
    }
}

/// Parses `.crates.toml`, as cargo before 1.41 wrote it: `[v1]`, key → binaries.
pub fn parse_v1(text: &str) -> Result<Vec<InstallRecord>> {
    let value: toml::Table = text.parse()?;
    let v1 = value
        .get("v1")
        .and_then(toml::Value::as_table)
        .context("no `v1` table")?;
    Ok(v1
        .iter()
        .filter_map(|(key, bins)| {
            let bins = bins
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|b| b.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            record(key, bins)
        })
        .collect())
}

/// A record from its key (`hephd 1.3.0 (git+<url>?tag=v1.3.0#<commit>)`) and binaries.
fn record(key: &str, bins: Vec<String>) -> Option<InstallRecord> {
    let mut parts = key.splitn(3, ' ');
    let (Some(package), Some(version)) = (parts.next(), parts.next()) else {
        return None;
    };
    let source = parts
        .next()
        .map(|s| s.trim_start_matches('(').trim_end_matches(')').to_owned())
        .unwrap_or_default();
    let commit = source
        .strip_prefix("git+")
        .and_then(|s| s.rsplit_once('#'))
        .map(|(_, c)| c.to_owned())
        .filter(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()));
    Some(InstallRecord {
        package: package.to_owned(),
        version: Version::parse(version).ok(),
        source,
        commit,
        bins,
    })
}

/// Parses the records. Keys look like `hephd 1.3.0 (git+<url>?tag=v1.3.0#<commit>)`.
pub fn parse(text: &str) -> Result<Vec<InstallRecord>> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let installs = value
        .get("installs")
        .and_then(serde_json::Value::as_object)
        .context("no `installs` table")?;
    Ok(installs
        .iter()
        .filter_map(|(key, entry)| {
            let bins = entry
                .get("bins")
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|b| b.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            record(key, bins)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_git_install_records_with_their_commit() {
        let text = r#"{"installs":{
            "hephd 1.3.0 (git+https://forge.eblu.me/eblume/hephaestus.git?tag=v1.3.0#0123456789abcdef0123456789abcdef01234567)":{"version_req":null,"bins":["hephd"],"features":[],"all_features":false,"no_default_features":false,"profile":"release","target":"x86_64-unknown-linux-gnu","rustc":"rustc 1.95.0"},
            "heph 1.3.0 (path+file:///home/u/src/heph)":{"bins":["heph"]}
        }}"#;
        let recs = parse(text).unwrap();
        let hephd = recs.iter().find(|r| r.package == "hephd").unwrap();
        assert_eq!(hephd.version, Some(Version::new(1, 3, 0)));
        assert_eq!(
            hephd.commit.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(hephd.bins, ["hephd"]);
        let heph = recs.iter().find(|r| r.package == "heph").unwrap();
        assert_eq!(heph.commit, None);
    }

    #[test]
    fn the_records_of_cargo_before_1_41_are_read_when_there_are_no_newer_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".crates.toml"),
            "[v1]\n\"pueue 4.0.3 (registry+https://github.com/rust-lang/crates.io-index)\" = [\"pueue\", \"pueued\"]\n",
        )
        .unwrap();
        let recs = read(dir.path()).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].package, "pueue");
        assert_eq!(recs[0].version, Some(Version::new(4, 0, 3)));
        assert_eq!(recs[0].bins, ["pueue", "pueued"]);
        // Later cargos write both files; .crates2.json speaks then.
        std::fs::write(
            dir.path().join(".crates2.json"),
            r#"{"installs":{"pueue 4.0.4 (registry+https://github.com/rust-lang/crates.io-index)":{"bins":["pueue","pueued"]}}}"#,
        )
        .unwrap();
        assert_eq!(
            read(dir.path()).unwrap()[0].version,
            Some(Version::new(4, 0, 4))
        );
        assert!(parse_v1("[v2]").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("[]").is_err());
        assert!(parse("{").is_err());
        assert!(parse(r#"{"installs":{"oneword":{}}}"#).unwrap().is_empty());
    }
}
