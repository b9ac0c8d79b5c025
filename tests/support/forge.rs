//! A stand-in forge on 127.0.0.1 (or another loopback address, as "another host") speaking
//! the Forgejo/Gitea, GitHub or GitLab release API, with paging, ETags, auth checks and
//! injectable faults. It records every request. Like GitHub, its 304s carry no `Link`.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

/// Which API the stand-in speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Forgejo,
    GitHub,
    GitLab,
}

impl Flavour {
    pub fn config_name(self) -> &'static str {
        match self {
            Self::Forgejo => "forgejo",
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
        }
    }

    fn releases_path(self, repo: &str) -> String {
        match self {
            Self::Forgejo => format!("/api/v1/repos/{repo}/releases"),
            Self::GitHub => format!("/repos/{repo}/releases"),
            Self::GitLab => format!("/api/v4/projects/{}/releases", repo.replace('/', "%2F")),
        }
    }

    fn auth_header(self) -> (&'static str, &'static str) {
        match self {
            Self::Forgejo => ("authorization", "token "),
            Self::GitHub => ("authorization", "Bearer "),
            Self::GitLab => ("private-token", ""),
        }
    }
}

/// One release the forge lists.
#[derive(Debug, Clone)]
pub struct FakeRelease {
    pub tag: String,
    pub published: String,
    pub draft: bool,
    pub prerelease: bool,
    pub upcoming: bool,
}

impl FakeRelease {
    pub fn new(tag: &str) -> Self {
        Self {
            tag: tag.to_owned(),
            published: "2026-01-10T08:00:00Z".to_owned(),
            draft: false,
            prerelease: false,
            upcoming: false,
        }
    }

    pub fn published(mut self, when: &str) -> Self {
        when.clone_into(&mut self.published);
        self
    }

    pub fn draft(mut self) -> Self {
        self.draft = true;
        self
    }

    pub fn prerelease(mut self) -> Self {
        self.prerelease = true;
        self
    }

    pub fn upcoming(mut self) -> Self {
        self.upcoming = true;
        self
    }
}

/// Something going wrong on purpose.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer every request with this status and body.
    Status(u16, String),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with exactly these bytes (e.g. invalid UTF-8).
    Bytes(Vec<u8>),
    /// 200 with JSON cut off half-way.
    Truncated,
    /// Accept the connection, never answer.
    Hang,
    /// 429 with `retry-after`.
    TooManyRequests,
    /// GitHub's 403 with `x-ratelimit-remaining: 0` and a reset time.
    GitHubRateLimit { reset: i64 },
    /// Redirect every request to this absolute URL (path appended).
    RedirectTo(String),
    /// Redirect to itself forever.
    RedirectLoop,
    /// A 200 body of this many bytes (declared with Content-Length).
    Huge(usize),
    /// A 200 body of this many bytes sent chunked, with no length declared.
    HugeChunked(usize),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the stand-in serves; tests change it between runs.
#[derive(Debug)]
pub struct ForgeState {
    pub flavour: Flavour,
    pub repo: String,
    pub releases: Vec<FakeRelease>,
    pub page_size: usize,
    /// When set, requests without this token get 401.
    pub require_token: Option<String>,
    /// When set, `Link` points the next page here (`http://host:port`) instead of at
    /// the host the request was sent to: another origin serving the rest of the list.
    pub link_base: Option<String>,
    /// A hostile or careless forge: the credential a request carried comes back in the
    /// error body's message, in an `X-Echo` header and in the next page's URL.
    pub echo_credential: bool,
    /// Cursor paging, as forges that page by an opaque cursor do: each `Link: rel="next"`
    /// URL carries a `cursor=` never sent before, so no page URL ever repeats; the ETag
    /// covers the answer with its cursor, so no answer is ever "not modified".
    pub cursor_links: bool,
    /// Answers given so far (the cursor's source).
    pub answered: u64,
    /// Wait this long before answering each request.
    pub delay: Option<Duration>,
    pub fault: Option<Fault>,
    pub requests: Vec<Seen>,
}

/// The running stand-in.
pub struct FakeForge {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<ForgeState>>,
}

impl FakeForge {
    pub fn start(flavour: Flavour, releases: Vec<FakeRelease>) -> Self {
        Self::start_on("127.0.0.1", flavour, releases)
    }

    /// A stand-in on another loopback address (e.g. `127.0.0.2`): another host.
    pub fn start_on(ip: &str, flavour: Flavour, releases: Vec<FakeRelease>) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(ForgeState {
            flavour,
            repo: "eblume/hephaestus".to_owned(),
            releases,
            page_size: 50,
            require_token: None,
            link_base: None,
            echo_credential: false,
            cursor_links: false,
            answered: 0,
            delay: None,
            fault: None,
            requests: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared, addr);
                });
            }
        });
        Self { addr, state }
    }

    /// The `forge_url` to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_releases(&self, releases: Vec<FakeRelease>) {
        self.state.lock().unwrap().releases = releases;
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().fault = fault;
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

fn serve(stream: TcpStream, shared: &Mutex<ForgeState>, addr: SocketAddr) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let seen = Seen {
        path: target.clone(),
        headers,
    };
    let (fault, answer, delay) = {
        let mut st = shared.lock().unwrap();
        st.requests.push(seen.clone());
        st.answered += 1;
        (st.fault.clone(), route(&st, &seen), st.delay)
    };
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
    let mut out = stream;
    match fault {
        Some(Fault::Hang) => {
            std::thread::sleep(Duration::from_secs(120));
            return Ok(());
        }
        Some(Fault::Status(code, body)) => return write(&mut out, code, &[], body.as_bytes()),
        Some(Fault::Bytes(bytes)) => return write(&mut out, 200, &[], &bytes),
        Some(Fault::Garbage) => {
            return write(
                &mut out,
                200,
                &[],
                b"<html>Service temporarily unavailable</html>",
            );
        }
        Some(Fault::Truncated) => {
            return write(
                &mut out,
                200,
                &[],
                br#"[{"tag_name": "v9.9.9", "draft": fal"#,
            );
        }
        Some(Fault::TooManyRequests) => {
            return write(&mut out, 429, &[("Retry-After", "120")], b"Retry later\n");
        }
        Some(Fault::GitHubRateLimit { reset }) => {
            let reset = reset.to_string();
            let body = br#"{"message":"API rate limit exceeded for 127.0.0.1.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}"#;
            return write(
                &mut out,
                403,
                &[
                    ("x-ratelimit-limit", "60"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset),
                ],
                body,
            );
        }
        Some(Fault::RedirectTo(base)) => {
            let loc = format!("{base}{target}");
            return write(&mut out, 302, &[("Location", &loc)], b"");
        }
        Some(Fault::RedirectLoop) => {
            let loc = format!("http://{addr}{target}");
            return write(&mut out, 302, &[("Location", &loc)], b"");
        }
        Some(Fault::Huge(n)) => {
            let body = vec![b' '; n];
            return write(&mut out, 200, &[], &body);
        }
        Some(Fault::HugeChunked(n)) => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")?;
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < n {
                write!(out, "{:x}\r\n", chunk.len())?;
                out.write_all(&chunk)?;
                out.write_all(b"\r\n")?;
                sent += chunk.len();
            }
            return out.write_all(b"0\r\n\r\n");
        }
        None => {}
    }
    let (status, extra, body) = answer;
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    write(&mut out, status, &extra, body.as_bytes())
}

type Answer = (u16, Vec<(String, String)>, String);

fn route(st: &ForgeState, seen: &Seen) -> Answer {
    let (status, mut headers, mut body) = route_plain(st, seen);
    if st.echo_credential {
        let (name, _) = st.flavour.auth_header();
        let credential = seen.header(name).unwrap_or("none").to_owned();
        headers.push(("X-Echo".to_owned(), credential.clone()));
        if status != 200 {
            body = json!({ "message": format!("credential {credential} is not valid here") })
                .to_string();
        }
        for (k, v) in &mut headers {
            if k == "Link" {
                *v = v.replacen(
                    ">; rel=\"next\"",
                    &format!("&echo={}>; rel=\"next\"", credential.replace(' ', "+")),
                    1,
                );
            }
        }
    }
    (status, headers, body)
}

fn route_plain(st: &ForgeState, seen: &Seen) -> Answer {
    let (path, query) = seen.path.split_once('?').unwrap_or((&seen.path, ""));
    if path != st.flavour.releases_path(&st.repo) {
        let body = match st.flavour {
            Flavour::Forgejo => {
                r#"{"message":"The target couldn't be found.","url":"http://forge.test/api/swagger","errors":[]}"#
            }
            Flavour::GitHub => {
                r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest/releases/releases#list-releases","status":"404"}"#
            }
            Flavour::GitLab => r#"{"message":"404 Project Not Found"}"#,
        };
        return (404, vec![], body.to_owned());
    }
    if let Some(token) = &st.require_token {
        let (name, prefix) = st.flavour.auth_header();
        if seen.header(name) != Some(format!("{prefix}{token}").as_str()) {
            let body = match st.flavour {
                Flavour::Forgejo => {
                    r#"{"message":"token is required","url":"http://forge.test/api/swagger"}"#
                }
                Flavour::GitHub => {
                    r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}"#
                }
                Flavour::GitLab => r#"{"message":"401 Unauthorized"}"#,
            };
            return (401, vec![], body.to_owned());
        }
    }
    let page: usize = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    // GitLab has no drafts: an unpublished release simply is not listed.
    let listed: Vec<&FakeRelease> = st
        .releases
        .iter()
        .filter(|r| !(r.draft && st.flavour == Flavour::GitLab))
        .collect();
    let total = listed.len();
    let start = (page - 1) * st.page_size;
    let items: Vec<serde_json::Value> = listed
        .into_iter()
        .skip(start)
        .take(st.page_size)
        .enumerate()
        .map(|(i, r)| wire(st.flavour, &st.repo, r, start + i))
        .collect();
    let body = serde_json::to_string(&items).unwrap();
    let mut headers = vec![("X-Total-Count".to_owned(), total.to_string())];
    if start + st.page_size < total {
        let base = st.flavour.releases_path(&st.repo);
        let size_param = match st.flavour {
            Flavour::Forgejo => "limit",
            Flavour::GitHub | Flavour::GitLab => "per_page",
        };
        let cursor = if st.cursor_links {
            format!("&cursor={:016x}", st.answered)
        } else {
            String::new()
        };
        headers.push((
            "Link".to_owned(),
            format!(
                "<http://{{host}}{base}?{size_param}={}&page={}{cursor}>; rel=\"next\", <http://{{host}}{base}?page={}>; rel=\"last\"",
                st.page_size,
                page + 1,
                total.div_ceil(st.page_size)
            ),
        ));
    }
    // A weak validator over the body, so If-None-Match can be answered with 304.
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    if st.cursor_links {
        st.answered.hash(&mut h);
    }
    let etag = format!("\"{:016x}\"", h.finish());
    if seen.header("if-none-match") == Some(etag.as_str()) {
        return (304, vec![("ETag".to_owned(), etag)], String::new());
    }
    headers.push(("ETag".to_owned(), etag));
    let base = st
        .link_base
        .clone()
        .unwrap_or_else(|| format!("http://{}", seen.header("host").unwrap_or("127.0.0.1")));
    for (_, v) in &mut headers {
        *v = v.replace("http://{host}", &base);
    }
    (200, headers, body)
}

fn wire(flavour: Flavour, repo: &str, r: &FakeRelease, i: usize) -> serde_json::Value {
    let id = 1000 - i;
    match flavour {
        Flavour::Forgejo => json!({
            "id": id, "tag_name": r.tag, "target_commitish": "main", "name": format!("hephaestus {}", r.tag),
            "body": "notes", "url": format!("http://forge.test/api/v1/repos/{repo}/releases/{id}"),
            "html_url": format!("http://forge.test/{repo}/releases/tag/{}", r.tag),
            "draft": r.draft, "prerelease": r.prerelease,
            "created_at": r.published, "published_at": r.published,
            "author": {"id": 1, "login": "eblume", "username": "eblume"}, "assets": [],
        }),
        Flavour::GitHub => json!({
            "url": format!("https://api.github.com/repos/{repo}/releases/{id}"), "id": id, "node_id": "RE_x",
            "tag_name": r.tag, "target_commitish": "main", "name": format!("hephaestus {}", r.tag),
            "draft": r.draft, "immutable": false, "prerelease": r.prerelease,
            "created_at": r.published, "published_at": if r.draft { serde_json::Value::Null } else { json!(r.published) },
            "assets": [], "body": "notes",
        }),
        Flavour::GitLab => json!({
            "name": format!("hephaestus {}", r.tag), "tag_name": r.tag, "description": "notes",
            "created_at": r.published, "released_at": r.published,
            "upcoming_release": r.upcoming, "historical_release": false,
            "commit": {"id": "0000000000000000000000000000000000000000"},
            "assets": {"count": 0, "sources": [], "links": []},
        }),
    }
}

fn write(
    out: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        302 => "Found",
        304 => "Not Modified",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    );
    if status != 304 {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if status != 304 {
        // The client may hang up early (e.g. refusing a huge body); that is fine.
        let _ = out.write_all(body);
    }
    out.flush()
}
