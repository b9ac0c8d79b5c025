//! The ETag cache: the last answer per URL — its ETag, body and the headers a 304 does not
//! have to repeat (`Link`) — so a conditional request (`If-None-Match`) can be answered
//! by a 304 without a body, and paging goes on from the cached `Link`.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The entry layout written now. Entries of earlier layouts (without the kept headers)
/// are treated as a miss: the request is then simply unconditional, and its answer
/// replaces the entry.
const FORMAT: u32 = 2;

/// Headers kept with a cached answer, because a 304 need not repeat them (RFC 9110
/// §15.4.5 asks only for ETag, Cache-Control, Date, Vary and friends; GitHub sends no
/// `Link` with its 304s).
pub const KEPT_HEADERS: &[&str] = &["link"];

/// Cached answers, one small JSON file per URL.
#[derive(Debug, Clone)]
pub struct HttpCache {
    dir: PathBuf,
    read_only: bool,
}

/// One cached answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The entry layout; absent (0) in entries written before the kept headers existed.
    #[serde(default)]
    pub format: u32,
    pub url: String,
    pub etag: String,
    /// The [`KEPT_HEADERS`] the answer carried (names in lower case).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What is written: the same fields, borrowed, so an 8 MiB body is not copied to be saved.
#[derive(Serialize)]
struct CachedAnswerRef<'a> {
    format: u32,
    url: &'a str,
    etag: &'a str,
    headers: &'a [(String, String)],
    body: &'a str,
}

impl HttpCache {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            read_only: false,
        }
    }

    /// A cache that answers from what is stored but never writes or removes anything.
    pub fn read_only(dir: PathBuf) -> Self {
        Self {
            dir,
            read_only: true,
        }
    }

    /// 64-bit FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    fn file_for(&self, url: &str, authenticated: bool) -> PathBuf {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in url.bytes().chain([u8::from(authenticated)]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.dir.join(format!("{h:016x}.json"))
    }

    /// The cached answer for `url`, if there is a sound one of the current layout. A
    /// corrupt entry is removed with a warning (the request is then simply
    /// unconditional); an entry of an older layout is only a miss.
    pub fn load(&self, url: &str, authenticated: bool) -> Option<CachedAnswer> {
        // A cached body is believed on a 304: only from a directory nobody else can write.
        if let Err(e) = crate::fsutil::check_trusted_dir(&self.dir) {
            if self.dir.exists() {
                log::debug!("not using the HTTP cache: {e:#}");
            }
            return None;
        }
        let path = self.file_for(url, authenticated);
        let text = std::fs::read_to_string(&path).ok()?;
        match serde_json::from_str::<CachedAnswer>(&text) {
            Ok(a) if a.format != FORMAT && a.url == url => {
                log::debug!(
                    "HTTP cache entry {} is of an older layout; asking afresh",
                    path.display()
                );
                None
            }
            Ok(a)
                if a.url == url
                    && !a.etag.is_empty()
                    && a.etag.len() < 1024
                    && is_header_safe(&a.etag)
                    && a.headers
                        .iter()
                        .all(|(k, v)| KEPT_HEADERS.contains(&k.as_str()) && is_header_safe(v)) =>
            {
                Some(a)
            }
            _ => {
                log::warn!(
                    "ignoring a corrupt HTTP cache entry {} (removed)",
                    path.display()
                );
                if !self.read_only {
                    let _ = std::fs::remove_file(&path);
                }
                None
            }
        }
    }

    /// Remembers an answer with its [`KEPT_HEADERS`] (others in `headers` are ignored);
    /// failures only cost a full request next time, so they are logged.
    pub fn store(
        &self,
        url: &str,
        authenticated: bool,
        etag: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) {
        let Ok(body) = std::str::from_utf8(body) else {
            return;
        };
        let kept: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| KEPT_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if self.read_only || !is_header_safe(etag) || kept.iter().any(|(_, v)| !is_header_safe(v)) {
            return;
        }
        let answer = CachedAnswerRef {
            format: FORMAT,
            url,
            etag,
            headers: &kept,
            body,
        };
        let result = crate::fsutil::create_private_dir(&self.dir).and_then(|()| {
            crate::fsutil::atomic_write_with(&self.file_for(url, authenticated), |w| {
                let mut w = std::io::BufWriter::new(w);
                serde_json::to_writer(&mut w, &answer)?;
                w.flush()
            })
        });
        if let Err(e) = result {
            log::warn!("could not update the HTTP cache: {e:#}");
        }
    }
}

fn is_header_safe(v: &str) -> bool {
    v.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Vec<(String, String)> {
        vec![
            (
                "Link".to_owned(),
                "<https://a/x?page=2>; rel=\"next\"".to_owned(),
            ),
            ("x-total-count".to_owned(), "7".to_owned()),
        ]
    }

    #[test]
    fn stores_and_loads_per_url_and_auth() {
        let dir = tempfile::tempdir().unwrap();
        let c = HttpCache::new(dir.path().join("http"));
        c.store("https://a/x", false, "\"e\"", &[], b"[]");
        assert_eq!(c.load("https://a/x", false).unwrap().etag, "\"e\"");
        assert!(c.load("https://a/x", true).is_none());
        assert!(c.load("https://a/y", false).is_none());
    }

    #[test]
    fn keeps_the_link_header_with_the_body_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let c = HttpCache::new(dir.path().to_path_buf());
        c.store("https://a/x", true, "\"e\"", &link(), b"[1]");
        let a = c.load("https://a/x", true).unwrap();
        assert_eq!(
            a.headers,
            [(
                "link".to_owned(),
                "<https://a/x?page=2>; rel=\"next\"".to_owned()
            )]
        );
        assert_eq!(a.body, "[1]");
    }

    #[test]
    fn an_entry_of_the_older_layout_is_a_quiet_miss_and_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let c = HttpCache::new(dir.path().to_path_buf());
        c.store("https://a/x", false, "\"e\"", &link(), b"[]");
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // As written before links were kept: no format, no headers.
        std::fs::write(
            &file,
            "{\"url\": \"https://a/x\", \"etag\": \"\\\"e\\\"\", \"body\": \"[]\"}",
        )
        .unwrap();
        assert!(c.load("https://a/x", false).is_none());
        assert!(file.exists(), "not treated as corrupt");
        c.store("https://a/x", false, "\"f\"", &link(), b"[]");
        assert_eq!(c.load("https://a/x", false).unwrap().etag, "\"f\"");
    }

    #[test]
    fn a_corrupt_entry_is_dropped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let c = HttpCache::new(dir.path().to_path_buf());
        c.store("https://a/x", false, "\"e\"", &[], b"[]");
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(
            &file,
            "{\"format\": 2, \"url\": \"https://a/x\", \"etag\": \"bad\nvalue\", \"body\": \"\"}",
        )
        .unwrap();
        assert!(c.load("https://a/x", false).is_none());
        assert!(!file.exists());
        std::fs::write(&file, "garbage").unwrap();
        assert!(c.load("https://a/x", false).is_none());
    }
}
