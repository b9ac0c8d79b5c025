//! git's smart HTTP on loopback: a small CGI host in front of the real
//! `git http-backend`, with one access rule — while `forbid` is set, every request is
//! answered `403 Forbidden` (as a forge does for a token without read access). Otherwise
//! the real backend answers, so a client sees a real git server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A running server; stops accepting when dropped.
pub struct GitHttp {
    pub port: u16,
    forbid: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl GitHttp {
    /// Serves the repositories under `root` (`http://127.0.0.1:PORT/<dir name>`).
    pub fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let forbid = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (root, f, s) = (root.to_path_buf(), Arc::clone(&forbid), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (root, forbid) = (root.clone(), f.load(Ordering::SeqCst));
                std::thread::spawn(move || {
                    let _ = serve(conn, &root, forbid);
                });
            }
        });
        Self { port, forbid, stop }
    }

    /// The URL of repository directory `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// While set, every request gets `403 Forbidden`.
    pub fn forbid(&self, yes: bool) {
        self.forbid.store(yes, Ordering::SeqCst);
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn http_backend() -> PathBuf {
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Path::new(&exec_path).join("git-http-backend")
}

/// One request: read it, answer it (403, or the backend's CGI answer), close.
fn serve(conn: TcpStream, root: &Path, forbid: bool) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(n) = header("content-length").and_then(|n| n.parse::<u64>().ok()) {
        reader.by_ref().take(n).read_to_end(&mut body)?;
    }
    let mut out = conn;
    if forbid {
        let text = "Forbidden: this token may not read the repository\n";
        return write!(
            out,
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new(http_backend());
    cgi.env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(t) = header("content-type") {
        cgi.env("CONTENT_TYPE", t);
    }
    if let Some(p) = header("git-protocol") {
        cgi.env("GIT_PROTOCOL", p);
    }
    let mut child = cgi.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&body)?;
    }
    let answer = child.wait_with_output()?.stdout;
    // CGI: headers, a blank line, the body; `Status:` sets the status line.
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| answer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head, rest) = match split {
        Some((i, n)) => (
            String::from_utf8_lossy(&answer[..i]).into_owned(),
            &answer[i + n..],
        ),
        None => (String::new(), &answer[..]),
    };
    let mut status = "200 OK".to_owned();
    let mut lines = Vec::new();
    for l in head.lines() {
        match l.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => v.trim().clone_into(&mut status),
            Some(_) => lines.push(l.trim_end().to_owned()),
            None => {}
        }
    }
    write!(out, "HTTP/1.1 {status}\r\n")?;
    for l in lines {
        write!(out, "{l}\r\n")?;
    }
    write!(
        out,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        rest.len()
    )?;
    out.write_all(rest)?;
    out.flush()
}
