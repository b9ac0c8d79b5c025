//! Forges: list releases through each forge's API and turn them into neutral
//! [`Release`] values. One file per API flavour; all share paging, status handling and
//! the [`Fetcher`]'s redirect, credential and cache policy.
//!
//! "latest" endpoints are never used: they answer "newest by date", and a back-port
//! published after a newer line would become latest (see `../shared/notes/protocols.md`).

mod gitea;
mod github;
mod gitlab;

use std::fmt;

use anyhow::{Result, bail};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::http::{Auth, Fetched, Fetcher, RateLimited, Session};
use crate::release::Release;
use crate::secret::Secret;

/// More pages than this are not read: lists are newest first, so the releases that
/// matter are on the first pages.
const MAX_PAGES: usize = 20;
/// More releases than this are not kept from one listing (20 pages of GitHub's 100 are
/// 2 000), so a forge cannot fill our memory with millions of tiny entries.
pub const MAX_RELEASES: usize = 5_000;
/// Tags are cut to this many bytes when read: anything over 128 is refused as a version
/// anyway, and shown cut (with `…`), so kept tags stay small.
const KEPT_TAG_BYTES: usize = 256;

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
    /// One entry of the list, given its scalar fields; `None` when it cannot be read.
    fn read(&self, fields: Value) -> Option<Release>;
    /// A page that is wrong as a whole, beyond single unreadable entries.
    fn check_page(&self, _page: &Page) -> Result<()> {
        Ok(())
    }
}

/// One parsed page.
#[derive(Debug, Default)]
struct Page {
    releases: Vec<Release>,
    unreadable: usize,
    /// Entries past the listing's [`MAX_RELEASES`], not read.
    beyond: usize,
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
    match parse_page(kind.api(), body, usize::MAX, None) {
        Ok(page) => Ok(page.releases),
        Err(PageError::Json(e)) => Err(e.into()),
        Err(PageError::Content(e)) => Err(e),
    }
}

/// Every release the forge lists for the repository, following pagination.
///
/// One [`Session`] covers the whole listing: the token goes only to `forge_url`'s
/// origin, and the listing ends within `LISTING_TIMEOUTS` × `http_timeout` (see
/// [`crate::http`]). At most [`MAX_PAGES`] pages and [`MAX_RELEASES`] releases are read.
pub fn list_releases(
    fetcher: &Fetcher<'_>,
    target: &ForgeTarget<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Release>> {
    let api = target.kind.api();
    let secret = target.token.map(Secret::expose);
    let first = api.releases_url(target.base_url, target.repo);
    let mut session = fetcher.session(&first, api.headers(), target.token.map(|t| api.auth(t)))?;
    let mut url = Some(first);
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
        let fetched = session.get(&next)?;
        check_status(&fetched, target, &session, now)?;
        let shown = session.show(&fetched.url);
        let page = parse_page(
            api,
            &fetched.response.body,
            MAX_RELEASES - releases.len(),
            secret,
        )
        .map_err(|e| match e {
            PageError::Json(e) => anyhow::anyhow!(
                "the forge's answer from {shown} is not valid JSON ({})\nhelp: is `forge_url` the forge itself and `forge` the right kind?",
                session.redact(&e.to_string())
            ),
            PageError::Content(e) => e.context(format!("reading releases from {shown}")),
        })?;
        log::debug!(
            "{shown}: {} releases{}",
            page.releases.len(),
            if fetched.from_cache { " (cached)" } else { "" }
        );
        unreadable += page.unreadable;
        releases.extend(page.releases);
        if page.beyond > 0 {
            log::warn!(
                "the forge lists more than {MAX_RELEASES} releases; reading only the newest {MAX_RELEASES}"
            );
            break;
        }
        url = fetched.response.header("link").and_then(next_link);
    }
    if unreadable > 0 {
        log::warn!("ignored {unreadable} release entries the forge sent without a usable tag");
    }
    Ok(releases)
}

/// Turns error statuses into messages that say what to do.
fn check_status(
    fetched: &Fetched,
    target: &ForgeTarget<'_>,
    session: &Session<'_>,
    now: OffsetDateTime,
) -> Result<()> {
    let r = &fetched.response;
    let url = session.show(&fetched.url);
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
    let hint = session.body_hint(&r.body);
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

/// Why a page could not be read.
#[derive(Debug)]
enum PageError {
    /// Not JSON (or nested too deeply).
    Json(serde_json::Error),
    /// JSON, but not a release list.
    Content(anyhow::Error),
}

/// Reads one page straight from its bytes, without building a JSON tree of it: each
/// entry's scalar fields are collected, read by `api` and dropped, so memory stays near
/// the body's size whatever the page holds. At most `limit` releases are kept; the
/// entries past it are only counted. Tags are redacted (`secret`) and cut to
/// [`KEPT_TAG_BYTES`].
fn parse_page(
    api: &dyn Api,
    body: &[u8],
    limit: usize,
    secret: Option<&str>,
) -> Result<Page, PageError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let is_list = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if !is_list {
        // Read (and checked) like any nested value: no tree, only its kind.
        let value = Shallow { fields: false }
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(PageError::Json)?;
        return Err(PageError::Content(anyhow::anyhow!(
            "expected a list of releases, got {}",
            json_kind(&value)
        )));
    }
    let page = PageSeed { api, limit, secret }
        .deserialize(&mut de)
        .map_err(PageError::Json)?;
    de.end().map_err(PageError::Json)?;
    api.check_page(&page).map_err(PageError::Content)?;
    Ok(page)
}

/// A tag as kept: without the token, and cut to [`KEPT_TAG_BYTES`].
fn kept_tag(tag: String, secret: Option<&str>) -> String {
    let mut tag = if crate::redact::contains(tag.as_bytes(), secret) {
        crate::redact::secret(&tag, secret)
    } else {
        tag
    };
    if tag.len() > KEPT_TAG_BYTES {
        let mut cut = KEPT_TAG_BYTES;
        while !tag.is_char_boundary(cut) {
            cut -= 1;
        }
        tag.truncate(cut);
        tag.push('…');
    }
    tag
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The list of a page, read entry by entry.
struct PageSeed<'a> {
    api: &'a dyn Api,
    limit: usize,
    secret: Option<&'a str>,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = Page;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Page, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = Page;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of releases")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Page, A::Error> {
        let mut page = Page::default();
        while let Some(entry) = seq.next_element_seed(Shallow { fields: true })? {
            if page.releases.len() >= self.limit {
                page.beyond += 1;
                continue;
            }
            let read = match entry {
                Value::Object(_) => self.api.read(entry),
                _ => None,
            };
            match read {
                Some(mut r) => {
                    r.tag = kept_tag(r.tag, self.secret);
                    page.releases.push(r);
                }
                None => page.unreadable += 1,
            }
        }
        Ok(page)
    }
}

/// One value, read shallowly: scalars as they are; arrays and objects empty, their content
/// consumed and dropped — except, with `fields`, an object's own fields (each read
/// shallowly). No wire field we read is nested, so a wrongly nested field still fails its
/// entry by its kind. Unlike `IgnoredAny` this goes through `deserialize_any` at every
/// level, so serde_json's nesting limit still turns 10 000 brackets into an error.
#[derive(Clone, Copy)]
struct Shallow {
    fields: bool,
}

const NESTED: Shallow = Shallow { fields: false };

impl<'de> DeserializeSeed<'de> for Shallow {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shallow {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(NESTED)?;
            if self.fields {
                fields.insert(key, value);
            }
        }
        Ok(Value::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element_seed(NESTED)?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
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

    fn page(kind: ForgeKind, body: &str) -> Page {
        parse_page(kind.api(), body.as_bytes(), usize::MAX, None).unwrap()
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
            let page = page(kind, file);
            let tags: Vec<_> = page.releases.iter().map(|r| r.tag.as_str()).collect();
            assert_eq!(tags, ["v0.9.0", "v0.9.0-rc.2", "v0.8.3"], "{kind:?}");
            assert_eq!(page.unreadable, 0);
            assert!(page.releases[2].published_at.is_some());
        }
    }

    #[test]
    fn a_non_list_body_is_an_error_naming_what_came() {
        for (body, kind) in [
            (r#"{"message": {"deep": [1]}}"#, "an object"),
            ("null", "null"),
            ("\"x\"", "a string"),
            ("7", "a number"),
        ] {
            let Err(PageError::Content(err)) =
                parse_page(ForgeKind::Forgejo.api(), body.as_bytes(), 10, None)
            else {
                panic!("{body} was read");
            };
            assert!(err.to_string().contains(kind), "{body}: {err}");
        }
    }

    #[test]
    fn entries_without_a_tag_are_counted_not_fatal() {
        let page = page(
            ForgeKind::Gitea,
            r#"[{"tag_name": 5}, {"name": "x"}, {"tag_name": "v1.0.0", "draft": false, "prerelease": false}]"#,
        );
        assert_eq!(page.releases.len(), 1);
        assert_eq!(page.unreadable, 2);
    }

    #[test]
    fn a_wrongly_typed_field_spoils_its_entry_even_when_nested() {
        // Nested values are skipped, not read, but keep their kind: a draft flag that is
        // an object is not "no draft".
        let page = page(
            ForgeKind::Gitea,
            r#"[{"tag_name": "v3.0.0", "draft": {"x": [1, 2]}}, {"tag_name": ["v2.0.0"]}, "v1.0.0", [1], {"tag_name": "v0.9.0", "assets": [{"a": {"b": []}}], "author": {"login": "x"}}]"#,
        );
        let tags: Vec<_> = page.releases.iter().map(|r| r.tag.as_str()).collect();
        assert_eq!(tags, ["v0.9.0"]);
        assert_eq!(page.unreadable, 4);
    }

    #[test]
    fn deep_nesting_anywhere_is_an_error() {
        for body in [
            "[".repeat(10_000) + &"]".repeat(10_000),
            format!(
                "[{{\"tag_name\": \"v1.0.0\", \"x\": {}{}}}]",
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
        ] {
            assert!(matches!(
                parse_page(ForgeKind::Forgejo.api(), body.as_bytes(), 10, None),
                Err(PageError::Json(_))
            ));
        }
    }

    #[test]
    fn past_the_limit_entries_are_counted_not_kept() {
        let body = format!("[{}]", vec![r#"{"tag_name": "v1.0.0"}"#; 30].join(","));
        let page = parse_page(ForgeKind::Forgejo.api(), body.as_bytes(), 10, None).unwrap();
        assert_eq!((page.releases.len(), page.beyond), (10, 20));
    }

    #[test]
    fn tags_are_kept_without_the_token_and_cut_short() {
        let long = format!("v1.0.0-{}", "é".repeat(400));
        let body =
            serde_json::json!([{"tag_name": "v1.0.0-sekrit"}, {"tag_name": long}]).to_string();
        let page = parse_page(
            ForgeKind::Forgejo.api(),
            body.as_bytes(),
            10,
            Some("sekrit"),
        )
        .unwrap();
        assert_eq!(page.releases[0].tag, "v1.0.0-<redacted>");
        let cut = &page.releases[1].tag;
        assert!(cut.len() <= KEPT_TAG_BYTES + '…'.len_utf8() && cut.ends_with('…'));
        assert!(crate::version::parse_tag(cut).is_err());
    }

    mod listing {
        use std::time::Duration;

        use super::*;
        use crate::http::fake::{NoSleep, ScriptedClient};
        use crate::http::{Fetcher, HttpRequest};
        use crate::http_cache::HttpCache;

        const TOKEN: &str = "tok-s3cret";

        fn target(base: &str) -> ForgeTarget<'_> {
            static SECRET: std::sync::OnceLock<Secret> = std::sync::OnceLock::new();
            ForgeTarget {
                kind: ForgeKind::Forgejo,
                base_url: base,
                repo: "o/r",
                token: Some(SECRET.get_or_init(|| Secret::new(TOKEN))),
            }
        }

        fn list(
            client: &ScriptedClient,
            cache: Option<&HttpCache>,
            base: &str,
        ) -> Result<Vec<Release>> {
            let fetcher = Fetcher {
                client,
                clock: &NoSleep,
                cache,
                timeout: Duration::from_secs(5),
            };
            list_releases(&fetcher, &target(base), OffsetDateTime::UNIX_EPOCH)
        }

        fn carries_token(req: &HttpRequest) -> bool {
            req.headers.iter().any(|(_, v)| v.contains(TOKEN))
        }

        fn next(url: &str) -> String {
            format!("<{url}>; rel=\"next\"")
        }

        #[test]
        fn a_next_page_on_another_origin_gets_no_token() {
            for other in [
                "https://other.example/page2",
                "https://forge.example:8443/page2",
                "https://127.0.0.2/page2",
            ] {
                let c = ScriptedClient::default();
                c.push(
                    200,
                    &[("link", &next(other))],
                    r#"[{"tag_name": "v2.0.0"}]"#,
                );
                c.push(200, &[], r#"[{"tag_name": "v1.0.0"}]"#);
                let releases = list(&c, None, "https://forge.example").unwrap();
                assert_eq!(releases.len(), 2, "{other}");
                let sent = c.sent.borrow();
                assert!(carries_token(&sent[0]));
                assert_eq!(sent[1].url, other);
                assert!(!carries_token(&sent[1]), "{other} got the token");
            }
        }

        #[test]
        fn a_host_the_forge_redirected_to_gets_no_token_for_its_own_next_page() {
            let c = ScriptedClient::default();
            c.push(
                302,
                &[(
                    "location",
                    "https://mirror.example/api/v1/repos/o/r/releases?limit=50",
                )],
                "",
            );
            c.push(
                200,
                &[("link", &next("https://mirror.example/page2"))],
                r#"[{"tag_name": "v2.0.0"}]"#,
            );
            c.push(200, &[], r#"[{"tag_name": "v1.0.0"}]"#);
            assert_eq!(list(&c, None, "https://forge.example").unwrap().len(), 2);
            let sent = c.sent.borrow();
            assert!(carries_token(&sent[0]));
            assert!(!carries_token(&sent[1]) && !carries_token(&sent[2]));
        }

        #[test]
        fn a_same_origin_next_page_keeps_the_token() {
            let c = ScriptedClient::default();
            c.push(
                200,
                &[("link", &next("/api/v1/repos/o/r/releases?page=2"))],
                r#"[{"tag_name": "v2.0.0"}]"#,
            );
            c.push(200, &[], r#"[{"tag_name": "v1.0.0"}]"#);
            list(&c, None, "https://forge.example").unwrap();
            let sent = c.sent.borrow();
            assert_eq!(
                sent[1].url,
                "https://forge.example/api/v1/repos/o/r/releases?page=2"
            );
            assert!(carries_token(&sent[1]));
        }

        #[test]
        fn an_https_forge_cannot_send_us_to_plain_http_by_page_or_redirect() {
            let c = ScriptedClient::default();
            c.push(
                200,
                &[("link", &next("http://forge.example/page2"))],
                r#"[{"tag_name": "v2.0.0"}]"#,
            );
            let err = list(&c, None, "https://forge.example").unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains("from https to plain http")
                    && text.contains("https://forge.example/api/v1/repos/o/r/releases?limit=50")
                    && text.contains("http://forge.example/page2"),
                "{text}"
            );
            assert_eq!(c.sent.borrow().len(), 1, "page 2 was not asked for");

            let c = ScriptedClient::default();
            c.push(302, &[("location", "http://127.0.0.1:9/x")], "");
            let err = list(&c, None, "https://forge.example").unwrap_err();
            assert!(
                format!("{err:#}").contains("from https to plain http"),
                "{err:#}"
            );
            assert_eq!(c.sent.borrow().len(), 1);
        }

        #[test]
        fn a_loopback_http_forge_may_page_over_http() {
            let c = ScriptedClient::default();
            c.push(
                200,
                &[("link", &next("http://127.0.0.1:9/page2"))],
                r#"[{"tag_name": "v2.0.0"}]"#,
            );
            c.push(200, &[], "[]");
            list(&c, None, "http://127.0.0.1:9").unwrap();
            assert!(carries_token(&c.sent.borrow()[1]));
        }

        #[test]
        fn a_url_to_another_origin_carrying_the_token_is_refused() {
            let c = ScriptedClient::default();
            c.push(
                200,
                &[("link", &next(&format!("https://evil.example/p2?t={TOKEN}")))],
                "[]",
            );
            let err = format!("{:#}", list(&c, None, "https://forge.example").unwrap_err());
            assert!(err.contains("carries the forge token"), "{err}");
            assert!(!err.contains(TOKEN), "{err}");
            assert_eq!(c.sent.borrow().len(), 1);
        }

        #[test]
        fn a_token_echoed_in_an_error_body_is_redacted() {
            let c = ScriptedClient::default();
            c.push(
                401,
                &[],
                &format!("{{\"message\": \"token {TOKEN} is not valid\\u001b[2J\"}}"),
            );
            let err = format!("{:#}", list(&c, None, "https://forge.example").unwrap_err());
            assert!(
                err.contains("token <redacted> is not valid\\u{1b}[2J"),
                "{err}"
            );
            assert!(!err.contains(TOKEN) && !err.contains('\x1b'));
        }

        #[test]
        fn a_304_without_link_pages_on_from_the_cached_link() {
            let dir = tempfile::tempdir().unwrap();
            let cache = HttpCache::new(dir.path().to_path_buf());
            let page2 = "https://forge.example/api/v1/repos/o/r/releases?page=2";
            let c = ScriptedClient::default();
            c.push(
                200,
                &[("etag", "\"p1\""), ("link", &next(page2))],
                r#"[{"tag_name": "v2.0.0"}]"#,
            );
            c.push(200, &[("etag", "\"p2\"")], r#"[{"tag_name": "v1.0.0"}]"#);
            assert_eq!(
                list(&c, Some(&cache), "https://forge.example")
                    .unwrap()
                    .len(),
                2
            );
            // GitHub's 304s carry no Link.
            c.push(304, &[("etag", "\"p1\"")], "");
            c.push(304, &[("etag", "\"p2\"")], "");
            let again = list(&c, Some(&cache), "https://forge.example").unwrap();
            let tags: Vec<_> = again.iter().map(|r| r.tag.as_str()).collect();
            assert_eq!(tags, ["v2.0.0", "v1.0.0"]);
            let sent = c.sent.borrow();
            assert_eq!(sent.len(), 4);
            assert_eq!(sent[3].url, page2);
            assert!(
                sent[3]
                    .headers
                    .iter()
                    .any(|(k, v)| k == "If-None-Match" && v == "\"p2\"")
            );
        }

        #[test]
        fn an_answer_holding_the_token_is_not_cached() {
            let dir = tempfile::tempdir().unwrap();
            let cache = HttpCache::new(dir.path().to_path_buf());
            let c = ScriptedClient::default();
            c.push(
                200,
                &[("etag", "\"p1\"")],
                &format!(r#"[{{"tag_name": "v2.0.0", "body": "by {TOKEN}"}}]"#),
            );
            list(&c, Some(&cache), "https://forge.example").unwrap();
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }

        #[test]
        fn the_whole_listing_has_a_deadline_of_a_few_request_timeouts() {
            /// A clock whose every look moves time on by `step`.
            struct Racing {
                at: std::cell::Cell<std::time::Instant>,
                step: Duration,
            }
            impl crate::clock::Clock for Racing {
                fn now(&self) -> OffsetDateTime {
                    OffsetDateTime::UNIX_EPOCH
                }
                fn instant(&self) -> std::time::Instant {
                    let t = self.at.get();
                    self.at.set(t + self.step);
                    t
                }
                fn sleep(&self, _: Duration) {}
            }
            let c = ScriptedClient::default();
            for i in 0..20 {
                c.push(
                    200,
                    &[("link", &next(&format!("/p{}", i + 2)))],
                    r#"[{"tag_name": "v1.0.0"}]"#,
                );
            }
            let clock = Racing {
                at: std::cell::Cell::new(std::time::Instant::now()),
                step: Duration::from_millis(1900),
            };
            let fetcher = Fetcher {
                client: &c,
                clock: &clock,
                cache: None,
                timeout: Duration::from_secs(2),
            };
            let err = list_releases(
                &fetcher,
                &target("https://forge.example"),
                OffsetDateTime::UNIX_EPOCH,
            )
            .unwrap_err();
            assert!(
                err.downcast_ref::<crate::http::ForgeUnavailable>()
                    .is_some(),
                "{err:#}"
            );
            assert!(
                format!("{err:#}").contains("within 8s (4 × http_timeout)"),
                "{err:#}"
            );
            let sent = c.sent.borrow();
            assert!(sent.len() < 8, "{} pages asked for", sent.len());
            assert!(sent.iter().all(|r| r.timeout <= Duration::from_secs(2)));
        }
    }
}
