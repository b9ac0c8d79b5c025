//! The files a release carries, as each forge lists them, turned into one neutral
//! [`ReleaseAsset`]. The forge modules hand in the release object of their wire JSON.
//!
//! - Forgejo/Gitea: `assets[]` with `name`, `size`, `browser_download_url`.
//! - GitHub: `assets[]` with `name`, `size`, `state`, `browser_download_url`, and the API
//!   `url`: a private repository's asset is downloaded from the API URL with
//!   `Accept: application/octet-stream` and the token, answered by a redirect to storage
//!   on another origin that must get no token. Assets still uploading (`state` other than
//!   `uploaded`) are not listed.
//! - GitLab: `assets.links[]` with `name` and `direct_asset_url` (else `url`); no size. A
//!   link's name must be the file's name (the publishing recipe makes it so).
//!
//! Entries that cannot be read (a missing name, a URL that is not http(s), a name that
//! is not a plain file name) are skipped, as unreadable releases are.

use serde_json::Value;

use crate::forge::ForgeKind;

/// GitHub's limit per release; more entries than this are not read.
pub const MAX_ASSETS: usize = 1000;
/// Longer names are not plain file names on any common file system.
const MAX_NAME_BYTES: usize = 255;

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseAsset {
    /// The file name (`hephd-1.2.0-x86_64-unknown-linux-musl.tar.xz`, `SHA256SUMS`).
    pub name: String,
    /// Where it is downloaded without credentials (public repositories).
    pub download_url: String,
    /// GitHub's API URL for the asset: with the token and `Accept:
    /// application/octet-stream` it serves private repositories' assets (by a redirect to
    /// another origin, which must get no token).
    pub api_url: Option<String>,
    /// The size the forge states, if it states one.
    pub size: Option<u64>,
}

/// The assets of one release object as `kind` sends it.
pub fn read_assets(kind: ForgeKind, release: &Value) -> Vec<ReleaseAsset> {
    match kind {
        ForgeKind::Forgejo | ForgeKind::Gitea => gitea_assets(&release["assets"]),
        ForgeKind::GitHub => github_assets(&release["assets"]),
        ForgeKind::GitLab => gitlab_links(&release["assets"]["links"]),
    }
}

/// Forgejo/Gitea `assets[]`.
pub fn gitea_assets(assets: &Value) -> Vec<ReleaseAsset> {
    entries(assets)
        .filter_map(|a| {
            Some(ReleaseAsset {
                name: name(a)?,
                download_url: url(&a["browser_download_url"])?,
                api_url: None,
                size: a["size"].as_u64(),
            })
        })
        .collect()
}

/// GitHub `assets[]`.
pub fn github_assets(assets: &Value) -> Vec<ReleaseAsset> {
    entries(assets)
        .filter(|a| a["state"].as_str().is_none_or(|s| s == "uploaded"))
        .filter_map(|a| {
            Some(ReleaseAsset {
                name: name(a)?,
                download_url: url(&a["browser_download_url"])?,
                api_url: url(&a["url"]),
                size: a["size"].as_u64(),
            })
        })
        .collect()
}

/// GitLab `assets.links[]`.
pub fn gitlab_links(links: &Value) -> Vec<ReleaseAsset> {
    entries(links)
        .filter_map(|l| {
            Some(ReleaseAsset {
                name: name(l)?,
                download_url: url(&l["direct_asset_url"]).or_else(|| url(&l["url"]))?,
                api_url: None,
                size: None,
            })
        })
        .collect()
}

fn entries(list: &Value) -> impl Iterator<Item = &Value> {
    list.as_array()
        .map(|a| a.iter().take(MAX_ASSETS))
        .into_iter()
        .flatten()
}

/// A plain file name: no directory, nothing a file system or a terminal would treat
/// specially.
fn name(entry: &Value) -> Option<String> {
    let n = entry["name"].as_str()?;
    let plain = !n.is_empty()
        && n.len() <= MAX_NAME_BYTES
        && n != "."
        && n != ".."
        && !n.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    plain.then(|| n.to_owned())
}

fn url(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let parsed = url::Url::parse(s).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fixture(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/assets")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn names(assets: &[ReleaseAsset]) -> Vec<&str> {
        assets.iter().map(|a| a.name.as_str()).collect()
    }

    #[test]
    fn reads_forgejo_assets_with_their_download_url_and_size() {
        let assets = read_assets(ForgeKind::Forgejo, &fixture("forgejo-release.json"));
        assert_eq!(
            names(&assets),
            [
                "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
                "hephd-1.4.0-x86_64-unknown-linux-musl.tar.xz",
                "heph-1.4.0-x86_64-unknown-linux-gnu.tar.xz",
                "SHA256SUMS",
                "SHA256SUMS.sig",
            ]
        );
        assert_eq!(
            assets[3],
            ReleaseAsset {
                name: "SHA256SUMS".into(),
                download_url: "https://forge.test/attachments/8e314f55-bd72-40a1-8f6e-424d5e6f7081"
                    .into(),
                api_url: None,
                size: Some(297),
            }
        );
        assert_eq!(
            read_assets(ForgeKind::Gitea, &fixture("forgejo-release.json")),
            assets
        );
    }

    #[test]
    fn reads_github_assets_with_their_api_url_and_skips_unfinished_uploads() {
        let assets = read_assets(ForgeKind::GitHub, &fixture("github-release.json"));
        assert_eq!(
            names(&assets),
            [
                "hephd-x86_64-unknown-linux-musl.tar.xz",
                "hephd-x86_64-unknown-linux-musl.tar.xz.sha256"
            ]
        );
        assert_eq!(
            assets[0],
            ReleaseAsset {
                name: "hephd-x86_64-unknown-linux-musl.tar.xz".into(),
                download_url: "https://github.com/eblume/hephaestus/releases/download/v1.4.0/hephd-x86_64-unknown-linux-musl.tar.xz".into(),
                api_url: Some(
                    "https://api.github.com/repos/eblume/hephaestus/releases/assets/265000101"
                        .into()
                ),
                size: Some(3_104_377),
            }
        );
    }

    #[test]
    fn reads_gitlab_links_by_their_direct_url_and_not_the_source_archives() {
        let assets = read_assets(ForgeKind::GitLab, &fixture("gitlab-release.json"));
        assert_eq!(
            names(&assets),
            [
                "hephd-1.4.0-x86_64-unknown-linux-gnu.tar.gz",
                "SHA256SUMS",
                "SHA256SUMS.minisig"
            ]
        );
        assert_eq!(
            assets[1].download_url,
            "https://gitlab.test/eblume/hephaestus/-/releases/v1.4.0/downloads/SHA256SUMS"
        );
        assert_eq!(assets[1].size, None);
        // No direct URL: the link's own.
        assert_eq!(
            assets[2].download_url,
            "https://gitlab.test/eblume/hephaestus/-/package_files/70213/download"
        );
    }

    #[test]
    fn entries_with_hostile_or_missing_fields_are_skipped() {
        let assets = json!([
            { "name": "../../etc/passwd", "browser_download_url": "https://h.test/a" },
            { "name": "a/b", "browser_download_url": "https://h.test/a" },
            { "name": "..", "browser_download_url": "https://h.test/a" },
            { "name": "", "browser_download_url": "https://h.test/a" },
            { "name": "x\u{1b}[2J", "browser_download_url": "https://h.test/a" },
            { "name": "x".repeat(300), "browser_download_url": "https://h.test/a" },
            { "name": "file-url", "browser_download_url": "file:///etc/passwd" },
            { "name": "no-url" },
            { "name": 7, "browser_download_url": "https://h.test/a" },
            "not an object",
            { "name": "ok.tar.xz", "browser_download_url": "https://h.test/ok", "size": -1 },
        ]);
        let read = gitea_assets(&assets);
        assert_eq!(read.len(), 1, "{read:?}");
        assert_eq!(read[0].name, "ok.tar.xz");
        assert_eq!(read[0].size, None);
        assert!(gitea_assets(&json!({"not": "a list"})).is_empty());
        assert!(read_assets(ForgeKind::GitLab, &json!({"assets": 3})).is_empty());
    }

    #[test]
    fn at_most_a_thousand_assets_are_read() {
        let many: Vec<Value> = (0..1500)
            .map(|i| json!({ "name": format!("a{i}"), "browser_download_url": "https://h.test/a" }))
            .collect();
        assert_eq!(gitea_assets(&Value::Array(many)).len(), MAX_ASSETS);
    }
}
