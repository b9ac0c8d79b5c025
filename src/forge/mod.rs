//! Forges: list releases through each forge's API and turn them into neutral
//! [`Release`] values. One file per API flavour; all share paging, status handling and
//! the [`Fetcher`]'s redirect, credential and cache policy.
//!
//! "latest" endpoints are never used: they answer "newest by date", and a back-port
//! published after a newer line would become latest (see `../shared/notes/protocols.md`).

mod gitea;
mod github;
mod gitlab;

use anyhow::{Result, bail};
use time::OffsetDateTime;

use crate::http::{Auth, Fetched, Fetcher, RateLimited, body_hint, shown};
use crate::release::Release;
use crate::secret::Secret;

/// More pages than this are not read: lists are newest first, so the releases that
/// matter are on the first pages.
const MAX_PAGES: usize = 20;

/// Which forge API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeKind {
    Forgejo,
    Gitea,
    GitHub,
    GitLab,
}

impl ForgeKind {
    /// `forge_url` when none is configured.
    pub fn default_url(self) -> &'static str {
        match self {
            Self::Forgejo | Self::Gitea => "https://forge.eblu.me",
            Self::GitHub => "https://api.github.com",
            Self::GitLab => "https://gitlab.com",
        }
    }

    /// `git_url` derived from the forge URL and repository.
    pub fn git_url(self, forge_url: &str, repo: &str) -> String {
        match self {
            Self::GitHub if forge_url == "https://api.github.com" => {
                format!("https://github.com/{repo}.git")
            }
            // GitHub Enterprise serves its API below /api/v3 of the web host.
            Self::GitHub => format!("{}/{repo}.git", forge_url.trim_end_matches("/api/v3")),
            Self::Forgejo | Self::Gitea | Self::GitLab => format!("{forge_url}/{repo}.git"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Forgejo => "forgejo",
            Self::Gitea => "gitea",
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
        }
    }

    fn api(self) -> &'static dyn Api {
        match self {
            Self::Forgejo | Self::Gitea => &gitea::Gitea,
            Self::GitHub => &github::GitHub,
            Self::GitLab => &gitlab::GitLab,
        }
    }
}

/// What differs between forge APIs.
trait Api {
    /// The first page of the release list.
    fn releases_url(&self, base: &str, repo: &str) -> String;
    /// Headers every request carries (`Accept`, API version).
    fn headers(&self) -> &'static [(&'static str, &'static str)];
    /// The credential header for a token.
    fn auth(&self, token: &Secret) -> Auth;
    /// One page of the list; entries that cannot be read are counted, not fatal.
    fn parse_page(&self, body: &serde_json::Value) -> Result<Page>;
}

/// One parsed page.
#[derive(Debug, Default)]
struct Page {
    releases: Vec<Release>,
    unreadable: usize,
}

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct ForgeTarget<'a> {
    pub kind: ForgeKind,
    pub base_url: &'a str,
    pub repo: &'a str,
    pub token: Option<&'a Secret>,
}

/// One page of a release list as `kind` sends it (for tests and fuzzing).
pub fn parse_releases(kind: ForgeKind, body: &[u8]) -> Result<Vec<Release>> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    Ok(kind.api().parse_page(&value)?.releases)
}

/// Every release the forge lists for the repository, following pagination.
pub fn list_releases(
    fetcher: &Fetcher<'_>,
    target: &ForgeTarget<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Release>> {
    let api = target.kind.api();
    let auth = target.token.map(|t| api.auth(t));
    let mut url = Some(api.releases_url(target.base_url, target.repo));
    let mut releases = Vec::new();
    let mut unreadable = 0;
    let mut pages = 0;
    while let Some(next) = url.take() {
        if pages == MAX_PAGES {
            log::warn!(
                "the forge lists more than {MAX_PAGES} pages of releases; reading only the newest"
            );
            break;
        }
        pages += 1;
        let fetched = fetcher.get(&next, api.headers(), auth.as_ref())?;
        check_status(&fetched, target, now)?;
        let body: serde_json::Value = serde_json::from_slice(&fetched.response.body).map_err(|e| {
            anyhow::anyhow!(
                "the forge's answer from {} is not valid JSON ({e})\nhelp: is `forge_url` the forge itself and `forge` the right kind?",
                shown(&fetched.url)
            )
        })?;
        let page = api
            .parse_page(&body)
            .map_err(|e| e.context(format!("reading releases from {}", shown(&fetched.url))))?;
        log::debug!(
            "{}: {} releases{}",
            shown(&fetched.url),
            page.releases.len(),
            if fetched.from_cache { " (cached)" } else { "" }
        );
        unreadable += page.unreadable;
        releases.extend(page.releases);
        url = fetched.response.header("link").and_then(next_link);
    }
    if unreadable > 0 {
        log::warn!("ignored {unreadable} release entries the forge sent without a usable tag");
    }
    Ok(releases)
}

/// Turns error statuses into messages that say what to do.
fn check_status(fetched: &Fetched, target: &ForgeTarget<'_>, now: OffsetDateTime) -> Result<()> {
    let r = &fetched.response;
    let url = shown(&fetched.url);
    let rate_limited = r.status == 429
        || (r.status == 403
            && (r.header("x-ratelimit-remaining") == Some("0")
                || r.header("retry-after").is_some()));
    if rate_limited {
        return Err(RateLimited {
            url,
            until: reset_time(r, now),
        }
        .into());
    }
    let hint = body_hint(&r.body);
    match r.status {
        200 => Ok(()),
        401 if target.token.is_some() => bail!(
            "the forge rejected the token (HTTP 401{hint}) at {url}\nhelp: renew the token in token_file or {}",
            crate::envvars::TOKEN
        ),
        401 => bail!(
            "the forge requires authentication (HTTP 401{hint}) at {url}\nhelp: set token_file or {} to a token with read access",
            crate::envvars::TOKEN
        ),
        403 => bail!(
            "the forge refused access (HTTP 403{hint}) at {url}\nhelp: the token needs read access to the repository (e.g. scope read:repository)"
        ),
        404 => bail!(
            "repository {} not found (HTTP 404{hint}) at {url}\nhelp: check `forge`, `forge_url` and `repo`; a private repository needs a token",
            target.repo
        ),
        s => bail!("unexpected answer HTTP {s}{hint} from {url}"),
    }
}

/// When a rate limit ends: `x-ratelimit-reset` / `ratelimit-reset` (Unix seconds) or
/// `retry-after` (seconds).
fn reset_time(r: &crate::http::HttpResponse, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let unix = r
        .header("x-ratelimit-reset")
        .or_else(|| r.header("ratelimit-reset"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
    unix.or_else(|| {
        r.header("retry-after")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|s| now + time::Duration::seconds(s))
    })
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            matches!(
                p.trim().replace(' ', "").as_str(),
                "rel=\"next\"" | "rel=next"
            )
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

/// Shared by the flavours: a list body, each entry read with `read`.
fn parse_list<T: serde::de::DeserializeOwned>(
    body: &serde_json::Value,
    read: impl Fn(T) -> Option<Release>,
) -> Result<Page> {
    let Some(items) = body.as_array() else {
        bail!("expected a list of releases, got {}", json_kind(body));
    };
    let mut page = Page::default();
    for item in items {
        match serde_json::from_value::<T>(item.clone())
            .ok()
            .and_then(&read)
        {
            Some(r) => page.releases.push(r),
            None => page.unreadable += 1,
        }
    }
    Ok(page)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

fn parse_time(s: Option<&str>) -> Option<OffsetDateTime> {
    s.and_then(crate::timefmt::parse_rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link() {
        let h = r#"<https://f.example/api/v1/repos/o/r/releases?limit=2&page=2>; rel="next",<https://f.example/api/v1/repos/o/r/releases?limit=2&page=3>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://f.example/api/v1/repos/o/r/releases?limit=2&page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn git_urls_derive_from_the_forge() {
        assert_eq!(
            ForgeKind::Forgejo.git_url("https://forge.eblu.me", "eblume/hephaestus"),
            "https://forge.eblu.me/eblume/hephaestus.git"
        );
        assert_eq!(
            ForgeKind::GitHub.git_url("https://api.github.com", "o/r"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            ForgeKind::GitHub.git_url("https://ghe.example/api/v3", "o/r"),
            "https://ghe.example/o/r.git"
        );
    }

    #[test]
    fn every_flavour_reads_its_fixture() {
        for (kind, file) in [
            (
                ForgeKind::Forgejo,
                include_str!("../../tests/fixtures/forgejo-releases.json"),
            ),
            (
                ForgeKind::GitHub,
                include_str!("../../tests/fixtures/github-releases.json"),
            ),
            (
                ForgeKind::GitLab,
                include_str!("../../tests/fixtures/gitlab-releases.json"),
            ),
        ] {
            let body: serde_json::Value = serde_json::from_str(file).unwrap();
            let page = kind.api().parse_page(&body).unwrap();
            let tags: Vec<_> = page.releases.iter().map(|r| r.tag.as_str()).collect();
            assert_eq!(tags, ["v0.9.0", "v0.9.0-rc.2", "v0.8.3"], "{kind:?}");
            assert_eq!(page.unreadable, 0);
        }
    }

    #[test]
    fn a_non_list_body_is_an_error_naming_what_came() {
        let err = ForgeKind::Forgejo
            .api()
            .parse_page(&serde_json::json!({"message": "x"}))
            .unwrap_err();
        assert!(err.to_string().contains("an object"));
    }

    #[test]
    fn entries_without_a_tag_are_counted_not_fatal() {
        let body = serde_json::json!([{"tag_name": 5}, {"name": "x"}, {"tag_name": "v1.0.0", "draft": false, "prerelease": false}]);
        let page = ForgeKind::Gitea.api().parse_page(&body).unwrap();
        assert_eq!(page.releases.len(), 1);
        assert_eq!(page.unreadable, 2);
    }
}
