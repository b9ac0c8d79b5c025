//! Forgejo and Gitea (`/api/v1`). Drafts are listed only to callers with write access;
//! the list is newest-created first and paged with a `Link` header.

use serde::Deserialize;
use serde_json::Value;

use super::{Api, parse_time};
use crate::http::Auth;
use crate::release::Release;
use crate::secret::Secret;

pub struct Gitea;

#[derive(Deserialize)]
struct Wire {
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    published_at: Option<String>,
    created_at: Option<String>,
}

impl Api for Gitea {
    fn releases_url(&self, base: &str, repo: &str) -> String {
        // The instance caps `limit`; paging follows its Link header whatever the cap is.
        format!("{base}/api/v1/repos/{repo}/releases?limit=50")
    }

    fn headers(&self) -> &'static [(&'static str, &'static str)] {
        &[("Accept", "application/json")]
    }

    fn auth(&self, token: &Secret) -> Auth {
        Auth {
            header: "Authorization",
            value: Secret::new(format!("token {}", token.expose())),
            token: token.clone(),
        }
    }

    fn read(&self, fields: Value) -> Option<Release> {
        let w: Wire = serde_json::from_value(fields).ok()?;
        Some(Release {
            tag: w.tag_name,
            published_at: parse_time(w.published_at.as_deref())
                .or_else(|| parse_time(w.created_at.as_deref())),
            draft: w.draft,
            prerelease: w.prerelease,
            upcoming: false,
        })
    }
}
