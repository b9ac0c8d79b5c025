//! GitHub (and GitHub Enterprise, whose `forge_url` ends in `/api/v3`).

use serde::Deserialize;
use serde_json::Value;

use super::{Api, parse_time};
use crate::http::Auth;
use crate::release::Release;
use crate::secret::Secret;

pub struct GitHub;

#[derive(Deserialize)]
struct Wire {
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    published_at: Option<String>,
}

impl Api for GitHub {
    fn releases_url(&self, base: &str, repo: &str) -> String {
        format!("{base}/repos/{repo}/releases?per_page=100")
    }

    fn headers(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
        ]
    }

    fn auth(&self, token: &Secret) -> Auth {
        Auth {
            header: "Authorization",
            value: Secret::new(format!("Bearer {}", token.expose())),
            token: token.clone(),
        }
    }

    fn read(&self, fields: Value) -> Option<Release> {
        let w: Wire = serde_json::from_value(fields).ok()?;
        Some(Release {
            tag: w.tag_name,
            published_at: parse_time(w.published_at.as_deref()),
            draft: w.draft,
            prerelease: w.prerelease,
            upcoming: false,
        })
    }
}
