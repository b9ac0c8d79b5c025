//! cargo's install records (`<root>/.crates2.json`): which package, version, source and
//! commit put each binary in a root.

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

/// Reads `<root>/.crates2.json`; an absent file means no records.
pub fn read(root: &Path) -> Result<Vec<InstallRecord>> {
    let path = root.join(".crates2.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
    };
    parse(&text).with_context(|| {
        format!(
            "could not understand cargo's install records {}",
            path.display()
        )
    })
}

/// Parses the records. Keys look like `hephd 1.3.0 (git+<url>?tag=v1.3.0#<commit>)`.
pub fn parse(text: &str) -> Result<Vec<InstallRecord>> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let installs = value
        .get("installs")
        .and_then(serde_json::Value::as_object)
        .context("no `installs` table")?;
    let mut out = Vec::new();
    for (key, entry) in installs {
        let mut parts = key.splitn(3, ' ');
        let (Some(package), Some(version)) = (parts.next(), parts.next()) else {
            continue;
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
        let bins = entry
            .get("bins")
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|b| b.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        out.push(InstallRecord {
            package: package.to_owned(),
            version: Version::parse(version).ok(),
            source,
            commit,
            bins,
        });
    }
    Ok(out)
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
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("[]").is_err());
        assert!(parse("{").is_err());
        assert!(parse(r#"{"installs":{"oneword":{}}}"#).unwrap().is_empty());
    }
}
