//! cargo-dist's `dist-manifest.json`: which archive holds which app's executables for
//! which target triples, where inside, and which `.sha256` artifact has its checksum.
//!
//! Read fields (cargo-dist 0.34; a recording is in `tests/fixtures/cargo-dist/`):
//! `artifacts.<name>` with `kind` (`executable-zip` is an archive of executables),
//! `target_triples`, `assets[]` (`kind: executable`, `path` relative to the one folder
//! inside the archive), `checksum` (the name of the `.sha256` artifact); `releases[]`
//! with `app_name`, `app_version` and the `artifacts` each app ships. Everything else is
//! ignored, so newer manifests read as long as these keep their meaning.
//!
//! The manifest carries no checksums itself and need not be signed: it only chooses
//! among the release's archives, each of which must still match a (signed) checksum.

use std::path::{Component, Path};

use serde_json::Value;

use super::{Failure, Result};

/// The asset name cargo-dist gives its manifest.
pub const MANIFEST_NAME: &str = "dist-manifest.json";
/// Manifests larger than this are not read.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// More artifacts than this are not read.
const MAX_ARTIFACTS: usize = 5_000;

/// The parts of a `dist-manifest.json` that choose an archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistManifest {
    pub dist_version: Option<String>,
    /// `announcement_tag`: the tag the manifest was made for.
    pub tag: Option<String>,
    /// The `executable-zip` artifacts.
    pub archives: Vec<DistArchive>,
}

/// One `executable-zip` artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistArchive {
    /// The asset name (`hephd-x86_64-unknown-linux-gnu.tar.xz`).
    pub name: String,
    /// The app (`releases[].app_name`) that lists it, if one does.
    pub app: Option<String>,
    pub target_triples: Vec<String>,
    /// The executables' paths, relative to the folder inside the archive.
    pub executables: Vec<String>,
    /// The name of the artifact holding its checksum (`<name>.sha256`).
    pub checksum: Option<String>,
}

/// Reads a manifest. An unreadable one is [`super::FailureKind::Unavailable`]: the
/// caller goes on without it (the naming convention may still find the archives).
pub fn parse(bytes: &[u8]) -> Result<DistManifest> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        Failure::unavailable(format!(
            "{MANIFEST_NAME} is not readable JSON ({e}); archives are looked for by name instead"
        ))
    })?;
    let Some(artifacts) = v["artifacts"].as_object() else {
        return Err(Failure::unavailable(format!(
            "{MANIFEST_NAME} has no `artifacts` object; archives are looked for by name instead"
        )));
    };
    let apps: Vec<(&str, Vec<&str>)> = v["releases"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            let name = r["app_name"].as_str()?;
            let listed = strings(&r["artifacts"]);
            Some((name, listed))
        })
        .collect();
    let archives = artifacts
        .iter()
        .take(MAX_ARTIFACTS)
        .filter(|(_, a)| a["kind"] == "executable-zip")
        .filter_map(|(key, a)| {
            let name = a["name"].as_str().unwrap_or(key).to_owned();
            let executables: Option<Vec<String>> = a["assets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|asset| asset["kind"] == "executable")
                .map(|asset| {
                    asset["path"]
                        .as_str()
                        .filter(|p| safe_path(p))
                        .map(str::to_owned)
                })
                .collect();
            // An archive naming an executable outside itself is not used at all.
            let executables = executables?;
            let app = apps
                .iter()
                .find(|(_, listed)| listed.contains(&name.as_str()))
                .map(|(app, _)| (*app).to_owned());
            Some(DistArchive {
                app,
                target_triples: strings(&a["target_triples"])
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                executables,
                checksum: a["checksum"].as_str().map(str::to_owned),
                name,
            })
        })
        .collect();
    Ok(DistManifest {
        dist_version: v["dist_version"].as_str().map(str::to_owned),
        tag: v["announcement_tag"].as_str().map(str::to_owned),
        archives,
    })
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// A relative path that stays inside (`bin/hephd`, not `../x` or `/x`).
fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

impl DistManifest {
    /// The archives of `app` for `triple`.
    pub fn archives_for<'a>(
        &'a self,
        app: &'a str,
        triple: &'a str,
    ) -> impl Iterator<Item = &'a DistArchive> + 'a {
        self.archives.iter().filter(move |a| {
            a.app.as_deref() == Some(app) && a.target_triples.iter().any(|t| t == triple)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::FailureKind;
    use super::*;

    fn recorded() -> DistManifest {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/cargo-dist/dist-manifest.json"),
        )
        .unwrap();
        parse(&bytes).unwrap()
    }

    #[test]
    fn reads_the_archives_of_a_manifest_cargo_dist_wrote() {
        let m = recorded();
        assert_eq!(m.dist_version.as_deref(), Some("0.34.0"));
        assert_eq!(m.tag.as_deref(), Some("v1.4.0"));
        let hephd: Vec<_> = m
            .archives_for("hephd", "x86_64-unknown-linux-gnu")
            .collect();
        assert_eq!(
            hephd,
            [&DistArchive {
                name: "hephd-x86_64-unknown-linux-gnu.tar.xz".into(),
                app: Some("hephd".into()),
                target_triples: vec!["x86_64-unknown-linux-gnu".into()],
                executables: vec!["hephd".into()],
                checksum: Some("hephd-x86_64-unknown-linux-gnu.tar.xz.sha256".into()),
            }]
        );
        assert_eq!(
            m.archives.len(),
            2,
            "checksums and the source tarball are not archives"
        );
        assert_eq!(
            m.archives_for("hephd", "x86_64-unknown-linux-musl").count(),
            0
        );
        assert_eq!(
            m.archives_for("heph-tui", "x86_64-unknown-linux-gnu")
                .count(),
            0
        );
    }

    #[test]
    fn an_archive_naming_an_executable_outside_itself_is_not_used() {
        let m = parse(
            json!({
                "releases": [{"app_name": "hephd", "artifacts": ["a.tar.xz", "b.tar.xz"]}],
                "artifacts": {
                    "a.tar.xz": {"kind": "executable-zip", "target_triples": ["t"],
                        "assets": [{"kind": "executable", "path": "../../usr/bin/hephd"}]},
                    "b.tar.xz": {"kind": "executable-zip", "target_triples": ["t"],
                        "assets": [{"kind": "executable", "path": "/usr/bin/hephd"},
                                   {"kind": "readme", "path": "README.md"}]},
                }
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert!(m.archives.is_empty(), "{m:?}");
    }

    #[test]
    fn an_archive_no_release_lists_belongs_to_no_app() {
        let m = parse(
            json!({"artifacts": {"x.zip": {"kind": "executable-zip", "target_triples": ["t"]}}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.archives[0].app, None);
        assert_eq!(m.archives[0].name, "x.zip");
    }

    #[test]
    fn an_unreadable_manifest_is_unavailable_not_refused() {
        for bytes in [&b"{not json"[..], b"[]", b"{\"artifacts\": 3}"] {
            let err = parse(bytes).unwrap_err();
            assert_eq!(err.kind, FailureKind::Unavailable);
        }
    }
}
