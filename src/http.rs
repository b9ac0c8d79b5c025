//! HTTP: one request per call behind [`HttpClient`], and a [`Fetcher`] on top that
//! follows redirects itself, decides where credentials may go, retries flaky
//! connections and answers from the ETag cache on 304.
//!
//! minreq would follow redirects itself and forward `Authorization` to another host, so
//! its redirect handling is off and ours decides (see `../shared/notes/protocols.md`).

use std::fmt;
use std::io::Read;
use std::time::Duration;

use anyhow::{Result, bail};
use time::OffsetDateTime;
use url::Url;

use crate::clock::Clock;
use crate::http_cache::HttpCache;
use crate::secret::Secret;

/// Answers larger than this are refused.
pub const MAX_BODY: u64 = 8 * 1024 * 1024;
const MAX_REDIRECTS: usize = 5;
/// Pauses before the 2nd and 3rd attempt of a request that could not connect or got a 5xx.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1500)];

/// One GET, exactly as sent.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_body: u64,
}

/// One answer.
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Could not connect (refused, DNS, reset).
    Unreachable(String),
    /// The TLS handshake failed: the certificate was not accepted. Not transient.
    Tls(String),
    /// No answer within the time limit.
    TimedOut,
    /// The body is larger than the limit.
    TooLarge,
    /// The answer was not valid HTTP.
    Protocol(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(e) => write!(f, "could not connect: {e}"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::TimedOut => f.write_str("no answer within http_timeout"),
            Self::TooLarge => write!(
                f,
                "the answer is larger than {} MiB",
                MAX_BODY / 1024 / 1024
            ),
            Self::Protocol(e) => write!(f, "not a valid HTTP answer: {e}"),
        }
    }
}

/// Sends one GET without following redirects.
pub trait HttpClient {
    fn get(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The real client (minreq, rustls with the platform's certificates).
#[derive(Debug, Default, Clone, Copy)]
pub struct MinreqClient;

impl HttpClient for MinreqClient {
    fn get(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let secs = req.timeout.as_secs_f64().ceil().max(1.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mut r = minreq::get(req.url.as_str())
            .with_follow_redirects(false)
            .with_timeout(secs as u64);
        for (k, v) in &req.headers {
            r = r.with_header(k.as_str(), v.as_str());
        }
        let mut lazy = r.send_lazy().map_err(classify)?;
        let status = lazy.status_code;
        let headers: Vec<(String, String)> = lazy
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let declared = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > req.max_body) {
            return Err(TransportError::TooLarge);
        }
        let mut body = Vec::new();
        if status != 304 && status != 204 {
            // Read one byte past the limit to tell "exactly the limit" from "more".
            (&mut lazy)
                .take(req.max_body + 1)
                .read_to_end(&mut body)
                .map_err(|e| classify(minreq::Error::IoError(e)))?;
            if body.len() as u64 > req.max_body {
                return Err(TransportError::TooLarge);
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

fn classify(e: minreq::Error) -> TransportError {
    match e {
        minreq::Error::IoError(io) => match io.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                TransportError::TimedOut
            }
            // rustls reports handshake failures as InvalidData.
            std::io::ErrorKind::InvalidData => TransportError::Tls(io.to_string()),
            _ => TransportError::Unreachable(io.to_string()),
        },
        minreq::Error::AddressNotFound => {
            TransportError::Unreachable("could not resolve the host name".into())
        }
        minreq::Error::RustlsCreateConnection(e) => TransportError::Tls(e.to_string()),
        other => TransportError::Protocol(other.to_string()),
    }
}

/// The forge could not be reached, did not answer, or answered 5xx (exit code 75 for
/// `check-and-apply`: nothing was changed, the next run tries again).
#[derive(Debug)]
pub struct ForgeUnavailable {
    pub url: String,
    pub detail: String,
}

impl fmt::Display for ForgeUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the forge is unavailable: {} ({})\nhelp: check the network and `forge_url`; run `heph-selfupdate doctor`",
            self.url, self.detail
        )
    }
}

impl std::error::Error for ForgeUnavailable {}

/// The forge is rate limiting us (exit code 75).
#[derive(Debug)]
pub struct RateLimited {
    pub url: String,
    pub until: Option<OffsetDateTime>,
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the forge is rate limiting requests to {}", self.url)?;
        match self.until {
            Some(t) => write!(f, "; the limit resets at {}", crate::timefmt::rfc3339(t))?,
            None => f.write_str("; it did not say until when")?,
        }
        f.write_str("\nhelp: wait, or set a token (token_file) for a higher limit")
    }
}

impl std::error::Error for RateLimited {}

/// Credentials for one forge, sent only to the origin they belong to.
#[derive(Debug, Clone)]
pub struct Auth {
    pub header: &'static str,
    pub value: Secret,
}

/// A final answer after redirects.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub response: HttpResponse,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// True when a 304 let us use the cached body.
    pub from_cache: bool,
}

/// GETs with our policy on redirects, credentials, retries and caching.
pub struct Fetcher<'a> {
    pub client: &'a dyn HttpClient,
    pub clock: &'a dyn Clock,
    pub cache: Option<&'a HttpCache>,
    pub timeout: Duration,
}

impl fmt::Debug for Fetcher<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The `User-Agent` every request carries.
pub fn user_agent() -> String {
    format!("heph-selfupdate/{}", env!("CARGO_PKG_VERSION"))
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A URL safe to show: no userinfo, no query values that could be secrets are added by us.
pub fn shown(u: &Url) -> String {
    crate::redact::url(u.as_str())
}

impl Fetcher<'_> {
    /// GETs `url` with `headers`, attaching `auth` only while the request stays on the
    /// origin of `url`, never over plain http except to loopback.
    pub fn get(&self, url: &str, headers: &[(&str, &str)], auth: Option<&Auth>) -> Result<Fetched> {
        let origin = Url::parse(url)
            .map_err(|e| anyhow::anyhow!("invalid URL {}: {e}", crate::redact::url(url)))?;
        if !matches!(origin.scheme(), "http" | "https") {
            bail!(
                "only http and https URLs are fetched, not {}",
                shown(&origin)
            );
        }
        if auth.is_some() && origin.scheme() == "http" && !is_loopback(&origin) {
            bail!(
                "refusing to send the forge token over plain http to {}\nhelp: use an https:// forge_url",
                shown(&origin)
            );
        }
        let mut current = origin.clone();
        for _hop in 0..=MAX_REDIRECTS {
            let send_auth = auth.filter(|_| same_origin(&current, &origin));
            let cached = self
                .cache
                .and_then(|c| c.load(current.as_str(), send_auth.is_some()));
            let mut req = HttpRequest {
                url: current.to_string(),
                headers: vec![("User-Agent".into(), user_agent())],
                timeout: self.timeout,
                max_body: MAX_BODY,
            };
            req.headers.extend(
                headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            if let Some(a) = send_auth {
                req.headers
                    .push((a.header.to_owned(), a.value.expose().to_owned()));
            }
            if let Some(c) = &cached {
                req.headers.push(("If-None-Match".into(), c.etag.clone()));
            }
            let response = self.send_with_retries(&req, &current)?;
            match response.status {
                301 | 302 | 303 | 307 | 308 => {
                    let location = response.header("location").ok_or_else(|| {
                        anyhow::anyhow!(
                            "{} redirected ({}) without a Location",
                            shown(&current),
                            response.status
                        )
                    })?;
                    let next = current.join(location).map_err(|e| {
                        anyhow::anyhow!(
                            "{} redirected to an invalid location: {e}",
                            shown(&current)
                        )
                    })?;
                    if !matches!(next.scheme(), "http" | "https") {
                        bail!(
                            "{} redirected to a non-http URL {}",
                            shown(&current),
                            shown(&next)
                        );
                    }
                    log::debug!("{} redirects to {}", shown(&current), shown(&next));
                    current = next;
                }
                304 => {
                    let Some(c) = cached else {
                        bail!(
                            "{} answered 304 Not Modified to a request that was not conditional",
                            shown(&current)
                        );
                    };
                    log::debug!("{} not modified; using the cached answer", shown(&current));
                    let response = HttpResponse {
                        status: 200,
                        headers: response.headers,
                        body: c.body.into_bytes(),
                    };
                    return Ok(Fetched {
                        response,
                        url: current,
                        from_cache: true,
                    });
                }
                _ => {
                    if let (Some(cache), 200, Some(etag)) =
                        (self.cache, response.status, response.header("etag"))
                    {
                        cache.store(current.as_str(), send_auth.is_some(), etag, &response.body);
                    }
                    return Ok(Fetched {
                        response,
                        url: current,
                        from_cache: false,
                    });
                }
            }
        }
        bail!(
            "too many redirects starting at {} (a redirect loop?)\nhelp: check `forge_url`",
            shown(&origin)
        )
    }

    fn send_with_retries(&self, req: &HttpRequest, url: &Url) -> Result<HttpResponse> {
        let mut attempt = 0;
        loop {
            let result = self.client.get(req);
            let retryable = match &result {
                Err(TransportError::Unreachable(_)) => true,
                Ok(r) => matches!(r.status, 500 | 502 | 503 | 504),
                Err(_) => false,
            };
            if retryable && attempt < RETRY_DELAYS.len() {
                log::debug!("{}: attempt {} failed; retrying", shown(url), attempt + 1);
                self.clock.sleep(RETRY_DELAYS[attempt]);
                attempt += 1;
                continue;
            }
            return match result {
                Ok(r) if (500..600).contains(&r.status) => Err(ForgeUnavailable {
                    url: shown(url),
                    detail: format!("HTTP {}{}", r.status, body_hint(&r.body)),
                }
                .into()),
                Ok(r) => Ok(r),
                Err(e @ (TransportError::Unreachable(_) | TransportError::TimedOut)) => {
                    Err(ForgeUnavailable {
                        url: shown(url),
                        detail: e.to_string(),
                    }
                    .into())
                }
                Err(TransportError::Tls(e)) => Err(anyhow::anyhow!(
                    "the TLS connection to {} failed: {e}\nhelp: the forge's certificate is not trusted here; install its CA in the system store (or point SSL_CERT_FILE at it)",
                    shown(url)
                )),
                Err(e) => Err(anyhow::anyhow!("{}: {e}", shown(url))),
            };
        }
    }
}

/// A short, printable excerpt of an error body.
pub fn body_hint(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from));
    let text = message.unwrap_or_else(|| text.trim().to_owned());
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
pub mod fake {
    //! A scripted [`HttpClient`] for unit tests.
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use super::*;

    /// Answers requests from a queue and records what was sent.
    #[derive(Debug, Default)]
    pub struct ScriptedClient {
        pub answers: RefCell<VecDeque<Result<HttpResponse, TransportError>>>,
        pub sent: RefCell<Vec<HttpRequest>>,
    }

    impl ScriptedClient {
        pub fn push(&self, status: u16, headers: &[(&str, &str)], body: &str) {
            self.answers.borrow_mut().push_back(Ok(HttpResponse {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                body: body.as_bytes().to_vec(),
            }));
        }
    }

    impl HttpClient for ScriptedClient {
        fn get(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
            self.sent.borrow_mut().push(req.clone());
            self.answers
                .borrow_mut()
                .pop_front()
                .unwrap_or(Err(TransportError::Unreachable(
                    "no scripted answer".into(),
                )))
        }
    }

    /// A clock that never sleeps.
    #[derive(Debug)]
    pub struct NoSleep;

    impl Clock for NoSleep {
        fn now(&self) -> OffsetDateTime {
            OffsetDateTime::UNIX_EPOCH
        }
        fn instant(&self) -> std::time::Instant {
            std::time::Instant::now()
        }
        fn sleep(&self, _: Duration) {}
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{NoSleep, ScriptedClient};
    use super::*;

    fn fetcher<'a>(client: &'a ScriptedClient, cache: Option<&'a HttpCache>) -> Fetcher<'a> {
        Fetcher {
            client,
            clock: &NoSleep,
            cache,
            timeout: Duration::from_secs(5),
        }
    }

    fn auth() -> Auth {
        Auth {
            header: "Authorization",
            value: Secret::new("token s3cret"),
        }
    }

    fn has_auth(req: &HttpRequest) -> bool {
        req.headers
            .iter()
            .any(|(k, v)| k == "Authorization" && v.contains("s3cret"))
    }

    #[test]
    fn sends_user_agent_and_auth_to_the_origin() {
        let c = ScriptedClient::default();
        c.push(200, &[], "[]");
        fetcher(&c, None)
            .get(
                "https://forge.example/api",
                &[("Accept", "application/json")],
                Some(&auth()),
            )
            .unwrap();
        let sent = c.sent.borrow();
        assert!(
            sent[0]
                .headers
                .iter()
                .any(|(k, v)| k == "User-Agent" && v.starts_with("heph-selfupdate/"))
        );
        assert!(has_auth(&sent[0]));
    }

    #[test]
    fn drops_credentials_when_a_redirect_changes_host() {
        let c = ScriptedClient::default();
        c.push(302, &[("location", "https://cdn.example/x")], "");
        c.push(200, &[], "[]");
        let f = fetcher(&c, None)
            .get("https://forge.example/api", &[], Some(&auth()))
            .unwrap();
        assert_eq!(f.url.as_str(), "https://cdn.example/x");
        let sent = c.sent.borrow();
        assert!(has_auth(&sent[0]));
        assert!(!has_auth(&sent[1]), "token must not go to another host");
    }

    #[test]
    fn keeps_credentials_on_a_same_origin_relative_redirect() {
        let c = ScriptedClient::default();
        c.push(308, &[("location", "/api/v1/other")], "");
        c.push(200, &[], "[]");
        fetcher(&c, None)
            .get("https://forge.example/api", &[], Some(&auth()))
            .unwrap();
        assert!(has_auth(&c.sent.borrow()[1]));
        assert_eq!(c.sent.borrow()[1].url, "https://forge.example/api/v1/other");
    }

    #[test]
    fn stops_a_redirect_loop() {
        let c = ScriptedClient::default();
        for _ in 0..=MAX_REDIRECTS {
            c.push(302, &[("location", "/loop")], "");
        }
        let err = fetcher(&c, None)
            .get("https://forge.example/loop", &[], None)
            .unwrap_err();
        assert!(err.to_string().contains("too many redirects"), "{err}");
    }

    #[test]
    fn refuses_a_token_over_plain_http_except_to_loopback() {
        let c = ScriptedClient::default();
        let err = fetcher(&c, None)
            .get("http://forge.example/api", &[], Some(&auth()))
            .unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        assert!(c.sent.borrow().is_empty());
        c.push(200, &[], "[]");
        fetcher(&c, None)
            .get("http://127.0.0.1:9/api", &[], Some(&auth()))
            .unwrap();
        assert!(has_auth(&c.sent.borrow()[0]));
    }

    #[test]
    fn retries_a_flaky_connection_then_reports_unavailable() {
        let c = ScriptedClient::default();
        c.answers
            .borrow_mut()
            .push_back(Err(TransportError::Unreachable("refused".into())));
        c.push(200, &[], "[]");
        assert!(
            fetcher(&c, None)
                .get("https://f.example/", &[], None)
                .is_ok()
        );
        let c = ScriptedClient::default();
        for _ in 0..3 {
            c.push(503, &[], "{\"message\":\"maintenance\"}");
        }
        let err = fetcher(&c, None)
            .get("https://f.example/", &[], None)
            .unwrap_err();
        let u = err.downcast_ref::<ForgeUnavailable>().expect("typed");
        assert!(
            u.detail.contains("503") && u.detail.contains("maintenance"),
            "{}",
            u.detail
        );
        assert_eq!(c.sent.borrow().len(), 3);
    }

    #[test]
    fn a_304_answers_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HttpCache::new(dir.path().to_path_buf());
        let c = ScriptedClient::default();
        c.push(200, &[("etag", "\"v1\"")], "[1]");
        c.push(304, &[], "");
        let f = fetcher(&c, Some(&cache));
        assert!(!f.get("https://f.example/r", &[], None).unwrap().from_cache);
        let second = f.get("https://f.example/r", &[], None).unwrap();
        assert!(second.from_cache);
        assert_eq!(second.response.body, b"[1]");
        assert!(
            c.sent.borrow()[1]
                .headers
                .iter()
                .any(|(k, v)| k == "If-None-Match" && v == "\"v1\"")
        );
    }
}
