//! HTTP: one request per call behind [`HttpClient`], and a [`Fetcher`] on top whose
//! [`Session`]s follow redirects and pages themselves, decide where credentials may go,
//! retry flaky connections, bound the whole listing in time and answer from the ETag cache
//! on 304.
//!
//! minreq would follow redirects itself and forward `Authorization` to another host, so
//! its redirect handling is off and ours decides (see `../shared/notes/protocols.md`).
//! Credentials belong to the origin (scheme, host, port) of the configured `forge_url`
//! for a whole listing: a redirect or a `Link: rel="next"` page on any other origin is
//! fetched anonymously, and no step from https to plain http is taken at all (unless
//! `forge_url` itself is plain http on loopback, as in tests).

use std::fmt;
use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use time::OffsetDateTime;
use url::Url;

use crate::clock::Clock;
use crate::http_cache::{HttpCache, KEPT_HEADERS};
use crate::secret::Secret;

/// Answers larger than this are refused.
pub const MAX_BODY: u64 = 8 * 1024 * 1024;
const MAX_REDIRECTS: usize = 5;
/// Pauses before the 2nd and 3rd attempt of a request that could not connect or got a 5xx.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1500)];
/// A whole listing (every page, redirect and retry) must end within this many
/// `http_timeout`s: `http_timeout` bounds one request, and 20 pages each just under it
/// would otherwise take 20 times as long.
pub const LISTING_TIMEOUTS: u32 = 4;
/// How often a waiting request looks at the interrupt flag.
const POLL: Duration = Duration::from_millis(100);

/// One GET, exactly as sent.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Time limit of this request (http_timeout, or less when the listing's deadline is near).
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
    /// SIGINT or SIGTERM arrived while waiting.
    Interrupted,
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
            Self::Interrupted => f.write_str("interrupted by a signal"),
        }
    }
}

/// Sends one GET without following redirects.
pub trait HttpClient {
    fn get(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The real client (minreq, rustls with the platform's certificates).
///
/// Each request runs on a thread of its own while the caller waits for at most
/// `req.timeout`, looking at the interrupt flag ([`crate::signals::interrupted`]) every
/// 100 ms: a person's Ctrl-C (or `systemctl stop`) ends the wait at once even while the
/// forge stalls. A thread given up on is abandoned; minreq's own timeout ends it.
#[derive(Debug, Default, Clone, Copy)]
pub struct MinreqClient;

impl HttpClient for MinreqClient {
    fn get(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let owned = req.clone();
        wait_for(
            move || send(&owned),
            req.timeout,
            &crate::signals::interrupted,
        )
    }
}

/// Runs `work` on a thread of its own and waits for its result for at most `limit`,
/// giving up as soon as `stop()` turns true (looked at every [`POLL`]).
fn wait_for<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TransportError> + Send + 'static,
    limit: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<T, TransportError> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            // The receiver may be gone (we stopped waiting): nothing to do then.
            let _ = tx.send(work());
        })
        .map_err(|e| TransportError::Unreachable(format!("could not start a thread: {e}")))?;
    let started = Instant::now();
    loop {
        if stop() {
            return Err(TransportError::Interrupted);
        }
        let Some(left) = limit
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero())
        else {
            return Err(TransportError::TimedOut);
        };
        match rx.recv_timeout(left.min(POLL)) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(TransportError::Protocol(
                    "the request thread ended without an answer".into(),
                ));
            }
        }
    }
}

/// One GET with minreq, on the calling thread.
fn send(req: &HttpRequest) -> Result<HttpResponse, TransportError> {
    // A second more than the caller waits, so the caller's limit is the one that shows;
    // minreq only takes whole seconds.
    let secs = req.timeout.as_secs_f64().ceil().max(1.0) + 1.0;
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
        // A declared length (already known to be within the limit) is reserved at once,
        // so the buffer does not grow by doubling past it.
        if let Some(n) = declared.and_then(|n| usize::try_from(n).ok()) {
            body.reserve_exact(n);
        }
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

/// A person stopped us (SIGINT or SIGTERM) while a request was waiting for the forge.
#[derive(Debug)]
pub struct Interrupted {
    pub url: String,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interrupted by a signal (SIGINT or SIGTERM) while waiting for the forge at {}",
            self.url
        )
    }
}

impl std::error::Error for Interrupted {}

/// Credentials for one forge: the header that carries them, and the token itself (so
/// anything the forge echoes can be redacted). They go only to the origin of the
/// configured `forge_url` (see [`Session`]).
#[derive(Debug, Clone)]
pub struct Auth {
    pub header: &'static str,
    pub value: Secret,
    /// The bare token, for redaction.
    pub token: Secret,
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
    /// The time limit of one request (`http_timeout`); a whole [`Session`] gets
    /// [`LISTING_TIMEOUTS`] times this.
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

/// The requests of one listing: every page and redirect, under one set of rules.
///
/// - Credentials go only to the origin (scheme, host, port) of the URL the session
///   started at — the configured `forge_url` — for the whole listing: a page or redirect
///   on another origin is fetched anonymously, and a URL to another origin that carries
///   the token is refused.
/// - No step from https to plain http, by redirect or by page link, unless the start URL
///   is plain http on loopback; a token never goes over plain http except to loopback.
/// - The whole session ends by a deadline of [`LISTING_TIMEOUTS`] × `http_timeout`;
///   each request is bounded by `http_timeout` or what is left of that.
/// - Every URL, header or body text in a message goes through [`crate::redact::outside`].
pub struct Session<'f> {
    fetcher: &'f Fetcher<'f>,
    origin: Url,
    auth: Option<Auth>,
    headers: &'f [(&'f str, &'f str)],
    deadline: Instant,
    /// The URL that answered last: where the next page's link was found.
    last: Url,
}

impl fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("origin", &self.origin.as_str())
            .field("auth", &self.auth.as_ref().map(|a| a.header))
            .finish_non_exhaustive()
    }
}

impl Fetcher<'_> {
    /// Starts a listing at `start` (the configured forge's URL): `auth` belongs to its
    /// origin, `headers` go with every request.
    pub fn session<'f>(
        &'f self,
        start: &str,
        headers: &'f [(&'f str, &'f str)],
        auth: Option<Auth>,
    ) -> Result<Session<'f>> {
        let secret = auth.as_ref().map(|a| a.token.expose().to_owned());
        let origin = Url::parse(start).map_err(|e| {
            anyhow::anyhow!(
                "invalid URL {}: {e}",
                crate::redact::outside(&crate::redact::url(start), secret.as_deref())
            )
        })?;
        let session = Session {
            fetcher: self,
            last: origin.clone(),
            origin,
            auth,
            headers,
            deadline: self.clock.instant() + self.timeout * LISTING_TIMEOUTS,
        };
        if !matches!(session.origin.scheme(), "http" | "https") {
            bail!(
                "only http and https URLs are fetched, not {}",
                session.show(&session.origin)
            );
        }
        if session.auth.is_some() && !session.token_may_go_to_origin() {
            bail!(
                "refusing to send the forge token over plain http to {}\nhelp: use an https:// forge_url",
                session.show(&session.origin)
            );
        }
        Ok(session)
    }
}

impl Session<'_> {
    /// A token may go to the origin: it is https, or plain http on loopback.
    fn token_may_go_to_origin(&self) -> bool {
        self.origin.scheme() == "https" || is_loopback(&self.origin)
    }

    /// The token, for redaction.
    fn secret(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.token.expose())
    }

    /// A URL safe to show: no userinfo, no token, no control characters.
    pub fn show(&self, u: &Url) -> String {
        self.redact(&crate::redact::url(u.as_str()))
    }

    /// Outside text safe to show: no token, no control characters.
    pub fn redact(&self, text: &str) -> String {
        crate::redact::outside(text, self.secret())
    }

    /// A short, printable excerpt of an error body.
    pub fn body_hint(&self, body: &[u8]) -> String {
        body_hint(body, self.secret())
    }

    /// GETs `url` (the first page, or a `Link` found on the page that answered last),
    /// following redirects under the session's rules.
    pub fn get(&mut self, url: &str) -> Result<Fetched> {
        let mut current = self.last.join(url).map_err(|e| {
            anyhow::anyhow!(
                "{} named an invalid next page {}: {e}",
                self.show(&self.last),
                self.redact(url)
            )
        })?;
        let mut previous = self.last.clone();
        for _hop in 0..=MAX_REDIRECTS {
            self.check_step(&previous, &current)?;
            let send_auth = self
                .auth
                .as_ref()
                .filter(|_| same_origin(&current, &self.origin));
            let cached = self
                .fetcher
                .cache
                .and_then(|c| c.load(current.as_str(), send_auth.is_some()));
            let mut req = HttpRequest {
                url: current.to_string(),
                headers: vec![("User-Agent".into(), user_agent())],
                timeout: self.fetcher.timeout,
                max_body: MAX_BODY,
            };
            req.headers.extend(
                self.headers
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
            let response = self.send_with_retries(req, &current)?;
            match response.status {
                301 | 302 | 303 | 307 | 308 => {
                    let location = response.header("location").ok_or_else(|| {
                        anyhow::anyhow!(
                            "{} redirected ({}) without a Location",
                            self.show(&current),
                            response.status
                        )
                    })?;
                    let next = current.join(location).map_err(|e| {
                        anyhow::anyhow!(
                            "{} redirected to an invalid location {}: {e}",
                            self.show(&current),
                            self.redact(location)
                        )
                    })?;
                    log::debug!("{} redirects to {}", self.show(&current), self.show(&next));
                    previous = std::mem::replace(&mut current, next);
                }
                304 => {
                    let Some(c) = cached else {
                        bail!(
                            "{} answered 304 Not Modified to a request that was not conditional",
                            self.show(&current)
                        );
                    };
                    log::debug!(
                        "{} not modified; using the cached answer",
                        self.show(&current)
                    );
                    // The stored answer's headers, updated by those the 304 carried
                    // (RFC 9111 §4.3.4); a 304 without `Link` keeps the cached one.
                    let mut headers = c.headers;
                    headers.retain(|(k, _)| response.header(k).is_none());
                    headers.extend(response.headers);
                    let response = HttpResponse {
                        status: 200,
                        headers,
                        body: c.body.into_bytes(),
                    };
                    self.last = current.clone();
                    return Ok(Fetched {
                        response,
                        url: current,
                        from_cache: true,
                    });
                }
                _ => {
                    if let (Some(cache), 200, Some(etag)) =
                        (self.fetcher.cache, response.status, response.header("etag"))
                    {
                        self.store(cache, &current, send_auth.is_some(), etag, &response);
                    }
                    self.last = current.clone();
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
            self.show(&self.last)
        )
    }

    /// May we go from `from` to `to` at all?
    fn check_step(&self, from: &Url, to: &Url) -> Result<()> {
        if !matches!(to.scheme(), "http" | "https") {
            bail!(
                "{} led to a non-http URL {}",
                self.show(from),
                self.show(to)
            );
        }
        let loopback_http_forge = self.origin.scheme() == "http" && is_loopback(&self.origin);
        if from.scheme() == "https" && to.scheme() == "http" && !loopback_http_forge {
            bail!(
                "refusing to go from https to plain http: {} led to {}\nhelp: the forge (or something between us and it) sends us off https; check `forge_url` and the forge's configured root URL",
                self.show(from),
                self.show(to)
            );
        }
        if !same_origin(to, &self.origin)
            && crate::redact::contains(to.as_str().as_bytes(), self.secret())
        {
            bail!(
                "refusing to follow {} to {}: that URL on another origin carries the forge token\nhelp: check the forge's configured root URL",
                self.show(from),
                self.show(to)
            );
        }
        Ok(())
    }

    /// Keeps a 200 for the next conditional request, unless it holds the token (a forge
    /// that echoes it must not make us write it to disk).
    fn store(
        &self,
        cache: &HttpCache,
        url: &Url,
        authenticated: bool,
        etag: &str,
        response: &HttpResponse,
    ) {
        let secret = self.secret();
        let holds_token = crate::redact::contains(url.as_str().as_bytes(), secret)
            || crate::redact::contains(&response.body, secret)
            || response.headers.iter().any(|(k, v)| {
                KEPT_HEADERS.contains(&k.as_str()) && crate::redact::contains(v.as_bytes(), secret)
            });
        if holds_token {
            log::debug!(
                "not caching the answer of {}: it holds the token",
                self.show(url)
            );
            return;
        }
        cache.store(
            url.as_str(),
            authenticated,
            etag,
            &response.headers,
            &response.body,
        );
    }

    /// What is left of the session's time, or an error when nothing is.
    fn time_left(&self, url: &Url) -> Result<Duration> {
        let left = self
            .deadline
            .saturating_duration_since(self.fetcher.clock.instant());
        if left.is_zero() {
            return Err(self.listing_too_slow(url));
        }
        Ok(left)
    }

    fn listing_too_slow(&self, url: &Url) -> anyhow::Error {
        ForgeUnavailable {
            url: self.show(url),
            detail: format!(
                "the listing did not finish within {} ({LISTING_TIMEOUTS} × http_timeout)",
                humantime::format_duration(self.fetcher.timeout * LISTING_TIMEOUTS)
            ),
        }
        .into()
    }

    fn interrupted(&self, url: &Url) -> anyhow::Error {
        Interrupted {
            url: self.show(url),
        }
        .into()
    }

    /// Waits `d` before a retry, in steps, so an interrupt or the deadline ends the wait.
    fn pause(&self, d: Duration, url: &Url) -> Result<()> {
        let clock = self.fetcher.clock;
        let mut left = d.min(self.time_left(url)?);
        while !left.is_zero() {
            if crate::signals::interrupted() {
                return Err(self.interrupted(url));
            }
            let step = left.min(POLL);
            clock.sleep(step);
            left -= step;
        }
        Ok(())
    }

    fn send_with_retries(&self, mut req: HttpRequest, url: &Url) -> Result<HttpResponse> {
        let mut attempt = 0;
        loop {
            if crate::signals::interrupted() {
                return Err(self.interrupted(url));
            }
            req.timeout = self.fetcher.timeout.min(self.time_left(url)?);
            log::trace!(
                "GET {} (headers: {})",
                self.show(url),
                req.headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let result = self.fetcher.client.get(&req);
            match &result {
                Ok(r) => log::trace!(
                    "  HTTP {} ({} bytes{})",
                    r.status,
                    r.body.len(),
                    r.header("etag")
                        .map(|e| format!(", etag {}", self.redact(e)))
                        .unwrap_or_default()
                ),
                Err(e) => log::trace!("  no answer: {}", self.redact(&e.to_string())),
            }
            let retryable = match &result {
                Err(TransportError::Unreachable(_)) => true,
                Ok(r) => matches!(r.status, 500 | 502 | 503 | 504),
                Err(_) => false,
            };
            if retryable && attempt < RETRY_DELAYS.len() {
                log::debug!(
                    "{}: attempt {} failed; retrying",
                    self.show(url),
                    attempt + 1
                );
                self.pause(RETRY_DELAYS[attempt], url)?;
                attempt += 1;
                continue;
            }
            return match result {
                Ok(r) if (500..600).contains(&r.status) => Err(ForgeUnavailable {
                    url: self.show(url),
                    detail: format!("HTTP {}{}", r.status, self.body_hint(&r.body)),
                }
                .into()),
                Ok(r) => Ok(r),
                Err(TransportError::Interrupted) => Err(self.interrupted(url)),
                Err(TransportError::TimedOut) if self.time_left(url).is_err() => {
                    Err(self.listing_too_slow(url))
                }
                Err(e @ (TransportError::Unreachable(_) | TransportError::TimedOut)) => {
                    Err(ForgeUnavailable {
                        url: self.show(url),
                        detail: self.redact(&e.to_string()),
                    }
                    .into())
                }
                Err(TransportError::Tls(e)) => Err(anyhow::anyhow!(
                    "the TLS connection to {} failed: {}\nhelp: the forge's certificate is not trusted here; install its CA in the system store, or set `ca_file` to a PEM bundle with it (the forge, git and cargo then all trust it)",
                    self.show(url),
                    self.redact(&e)
                )),
                Err(e) => Err(anyhow::anyhow!(
                    "{}: {}",
                    self.show(url),
                    self.redact(&e.to_string())
                )),
            };
        }
    }
}

/// A short, printable excerpt of an error body: its JSON `message` if it has one, at most
/// 200 characters, the token redacted and control characters escaped.
pub fn body_hint(body: &[u8], secret: Option<&str>) -> String {
    /// Larger bodies are not parsed for a `message`: an error page needs no JSON tree
    /// of up to 8 MiB.
    const PARSED: usize = 64 * 1024;
    let head = &body[..body.len().min(PARSED)];
    let text = String::from_utf8_lossy(head);
    let message = (body.len() <= PARSED)
        .then(|| serde_json::from_str::<serde_json::Value>(&text).ok())
        .flatten()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from));
    let text = message.unwrap_or_else(|| text.trim().to_owned());
    // Redacted and escaped before it is cut, so a cut cannot leave part of the token.
    let text: String = crate::redact::outside(&text, secret)
        .chars()
        .take(200)
        .collect();
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

    /// One GET in a session of its own.
    fn get(
        f: &Fetcher<'_>,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<Auth>,
    ) -> Result<Fetched> {
        f.session(url, headers, auth)?.get(url)
    }

    fn auth() -> Auth {
        Auth {
            header: "Authorization",
            value: Secret::new("token s3cret"),
            token: Secret::new("s3cret"),
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
        get(
            &fetcher(&c, None),
            "https://forge.example/api",
            &[("Accept", "application/json")],
            Some(auth()),
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
        let f = get(
            &fetcher(&c, None),
            "https://forge.example/api",
            &[],
            Some(auth()),
        )
        .unwrap();
        assert_eq!(f.url.as_str(), "https://cdn.example/x");
        let sent = c.sent.borrow();
        assert!(has_auth(&sent[0]));
        assert!(!has_auth(&sent[1]), "token must not go to another host");
    }

    #[test]
    fn drops_credentials_when_a_redirect_changes_port_and_does_not_regain_them_there() {
        let c = ScriptedClient::default();
        c.push(302, &[("location", "https://forge.example:8443/x")], "");
        c.push(302, &[("location", "/y")], "");
        c.push(200, &[], "[]");
        get(
            &fetcher(&c, None),
            "https://forge.example/api",
            &[],
            Some(auth()),
        )
        .unwrap();
        let sent = c.sent.borrow();
        assert_eq!(sent[2].url, "https://forge.example:8443/y");
        assert!(!has_auth(&sent[1]) && !has_auth(&sent[2]));
    }

    #[test]
    fn keeps_credentials_on_a_same_origin_relative_redirect() {
        let c = ScriptedClient::default();
        c.push(308, &[("location", "/api/v1/other")], "");
        c.push(200, &[], "[]");
        get(
            &fetcher(&c, None),
            "https://forge.example/api",
            &[],
            Some(auth()),
        )
        .unwrap();
        assert!(has_auth(&c.sent.borrow()[1]));
        assert_eq!(c.sent.borrow()[1].url, "https://forge.example/api/v1/other");
    }

    #[test]
    fn never_follows_https_to_plain_http_even_without_a_token() {
        let c = ScriptedClient::default();
        c.push(302, &[("location", "http://forge.example/api")], "");
        let err = get(&fetcher(&c, None), "https://forge.example/api", &[], None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("refusing to go from https to plain http")
                && text.contains("https://forge.example/api led to http://forge.example/api"),
            "{text}"
        );
        assert_eq!(c.sent.borrow().len(), 1);
    }

    #[test]
    fn a_redirect_location_is_shown_redacted_and_escaped() {
        let c = ScriptedClient::default();
        c.push(302, &[("location", "ftp://x/?t=s3cret\u{1b}[2J")], "");
        let err = get(
            &fetcher(&c, None),
            "https://forge.example/api",
            &[],
            Some(auth()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("non-http URL"), "{err}");
        assert!(!err.contains("s3cret") && !err.contains('\x1b'), "{err}");
    }

    #[test]
    fn stops_a_redirect_loop() {
        let c = ScriptedClient::default();
        for _ in 0..=MAX_REDIRECTS {
            c.push(302, &[("location", "/loop")], "");
        }
        let err = get(&fetcher(&c, None), "https://forge.example/loop", &[], None).unwrap_err();
        assert!(err.to_string().contains("too many redirects"), "{err}");
    }

    #[test]
    fn refuses_a_token_over_plain_http_except_to_loopback() {
        let c = ScriptedClient::default();
        let err = get(
            &fetcher(&c, None),
            "http://forge.example/api",
            &[],
            Some(auth()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        assert!(c.sent.borrow().is_empty());
        c.push(200, &[], "[]");
        get(
            &fetcher(&c, None),
            "http://127.0.0.1:9/api",
            &[],
            Some(auth()),
        )
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
        assert!(get(&fetcher(&c, None), "https://f.example/", &[], None).is_ok());
        let c = ScriptedClient::default();
        for _ in 0..3 {
            c.push(503, &[], "{\"message\":\"maintenance\"}");
        }
        let err = get(&fetcher(&c, None), "https://f.example/", &[], None).unwrap_err();
        let u = err.downcast_ref::<ForgeUnavailable>().expect("typed");
        assert!(
            u.detail.contains("503") && u.detail.contains("maintenance"),
            "{}",
            u.detail
        );
        assert_eq!(c.sent.borrow().len(), 3);
    }

    #[test]
    fn an_interrupted_request_is_not_retried_and_says_so() {
        let c = ScriptedClient::default();
        c.answers
            .borrow_mut()
            .push_back(Err(TransportError::Interrupted));
        let err = get(&fetcher(&c, None), "https://f.example/", &[], None).unwrap_err();
        assert!(err.downcast_ref::<Interrupted>().is_some(), "{err:#}");
        assert!(err.to_string().contains("interrupted"), "{err}");
        assert_eq!(c.sent.borrow().len(), 1);
    }

    #[test]
    fn a_waiting_request_gives_up_at_once_when_stopped_or_out_of_time() {
        let stalled = || -> Result<(), TransportError> {
            std::thread::sleep(Duration::from_secs(30));
            Ok(())
        };
        assert_eq!(
            wait_for(stalled, Duration::from_secs(30), &|| true),
            Err(TransportError::Interrupted)
        );
        assert_eq!(
            wait_for(stalled, Duration::from_millis(50), &|| false),
            Err(TransportError::TimedOut)
        );
        assert_eq!(
            wait_for(|| Ok(7), Duration::from_secs(30), &|| false),
            Ok(7)
        );
    }

    #[test]
    fn body_hints_are_short_redacted_and_escaped() {
        assert_eq!(
            body_hint(
                b"{\"message\": \"bad s3cret\\r\\nerror: forged\"}",
                Some("s3cret")
            ),
            ": bad <redacted>\\r\\nerror: forged"
        );
        let long = format!("{}s3cret", "x".repeat(195));
        let hint = body_hint(long.as_bytes(), Some("s3cret"));
        assert!(!hint.contains("s3c"), "{hint}");
        // A huge error body is not parsed as JSON (no tree of it is built).
        let huge = format!(
            "{{\"message\": \"m\", \"pad\": \"{}\"}}",
            "y".repeat(100_000)
        );
        assert!(body_hint(huge.as_bytes(), None).starts_with(": {\"message\""));
    }

    #[test]
    fn a_304_answers_from_the_cache_with_the_cached_link() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HttpCache::new(dir.path().to_path_buf());
        let c = ScriptedClient::default();
        c.push(
            200,
            &[
                ("etag", "\"v1\""),
                ("link", "<https://f.example/r?page=2>; rel=\"next\""),
            ],
            "[1]",
        );
        c.push(304, &[("etag", "\"v1\"")], "");
        let f = fetcher(&c, Some(&cache));
        assert!(
            !get(&f, "https://f.example/r", &[], None)
                .unwrap()
                .from_cache
        );
        let second = get(&f, "https://f.example/r", &[], None).unwrap();
        assert!(second.from_cache);
        assert_eq!(second.response.body, b"[1]");
        assert_eq!(
            second.response.header("link"),
            Some("<https://f.example/r?page=2>; rel=\"next\"")
        );
        assert!(
            c.sent.borrow()[1]
                .headers
                .iter()
                .any(|(k, v)| k == "If-None-Match" && v == "\"v1\"")
        );
    }
}
