//! GitLab (`/api/v4`). No draft or pre-release flags: pre-releases are known by their
//! semver pre-release part, and releases dated in the future are `upcoming_release`.
//! `tag_name` is missing for callers without access to the code.

use anyhow::{Result, bail};
use serde::Deserialize;
use serde_json::Value;

use super::{Api, Page, parse_time};
use crate::http::Auth;
use crate::release::Release;
use crate::secret::Secret;

pub struct GitLab;

#[derive(Deserialize)]
struct Wire {
    tag_name: Option<String>,
    released_at: Option<String>,
    #[serde(default)]
    upcoming_release: bool,
}

impl Api for GitLab {
    fn releases_url(&self, base: &str, repo: &str) -> String {
        format!(
            "{base}/api/v4/projects/{}/releases?per_page=100",
            repo.replace('/', "%2F")
        )
    }

    fn headers(&self) -> &'static [(&'static str, &'static str)] {
        &[("Accept", "application/json")]
    }

    fn auth(&self, token: &Secret) -> Auth {
        Auth {
            header: "PRIVATE-TOKEN",
            value: token.clone(),
            token: token.clone(),
        }
    }

    fn read(&self, fields: Value) -> Option<Release> {
        let w: Wire = serde_json::from_value(fields).ok()?;
        Some(Release {
            tag: w.tag_name?,
            published_at: parse_time(w.released_at.as_deref()),
            draft: false,
            prerelease: false,
            upcoming: w.upcoming_release,
        })
    }

    fn check_page(&self, page: &Page) -> Result<()> {
        if page.releases.is_empty() && page.unreadable > 0 {
            bail!(
                "GitLab listed releases without their tags\nhelp: the token (or anonymous access) needs read access to the repository's code"
            );
        }
        Ok(())
    }
}
