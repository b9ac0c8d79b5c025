//! The ETag cache: the last answer per URL — its ETag, body and the headers a 304 does not
//! have to repeat (`Link`) — so a conditional request (`If-None-Match`) can be answered
//! by a 304 without a body, and paging goes on from the cached `Link`.
//!
//! It holds one listing: the entries the last listing read or wrote, nothing else
//! ([`HttpCache::keep_only_used`]), and at most [`MAX_BYTES`] of them. A forge whose page
//! URLs never repeat (an opaque cursor in each `Link`) would otherwise add a listing's
//! worth of files with every check.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The entry layout written now. Entries of earlier layouts (without the kept headers)
/// are treated as a miss: the request is then simply unconditional, and its answer
/// replaces the entry.
const FORMAT: u32 = 2;

/// Headers kept with a cached answer, because a 304 need not repeat them (RFC 9110
/// §15.4.5 asks only for ETag, Cache-Control, Date, Vary and friends; GitHub sends no
/// `Link` with its 304s).
pub const KEPT_HEADERS: &[&str] = &["link"];

/// The most one listing keeps in the cache (bytes on disk); pages past it are fetched
/// but not kept, and are asked unconditionally next time.
pub const MAX_BYTES: u64 = 32 * 1024 * 1024;

/// Cached answers, one small JSON file per URL.
#[derive(Debug)]
pub struct HttpCache {
    dir: PathBuf,
    read_only: bool,
    /// The entries this listing read or wrote, and their size on disk.
    used: Mutex<Used>,
    /// [`MAX_BYTES`], but in tests.
    max_bytes: u64,
}

#[derive(Debug, Default)]
struct Used {
    /// Entry file → its size on disk.
    files: BTreeMap<PathBuf, u64>,
}

impl Used {
    fn bytes(&self) -> u64 {
        self.files.values().sum()
    }
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
            used: Mutex::default(),
            max_bytes: MAX_BYTES,
        }
    }

    /// A cache that answers from what is stored but never writes or removes anything.
    pub fn read_only(dir: PathBuf) -> Self {
        Self {
            dir,
            read_only: true,
            used: Mutex::default(),
            max_bytes: MAX_BYTES,
        }
    }

    /// Notes that this listing uses the entry `path`, of `bytes` on disk (0: none).
    fn note_used(&self, path: PathBuf, bytes: u64) {
        if let Ok(mut used) = self.used.lock() {
            used.files.insert(path, bytes);
        }
    }

    /// The bytes this listing's entries hold, but for the entry `except` (about to be
    /// replaced).
    fn used_bytes(&self, except: &std::path::Path) -> u64 {
        self.used.lock().map_or(u64::MAX, |u| {
            u.bytes() - u.files.get(except).copied().unwrap_or(0)
        })
    }

    /// Removes every entry this listing neither read nor wrote: called when a listing
    /// ends (well or not), so the cache holds one listing's pages and never grows past
    /// that. Only files named as entries are removed.
    pub fn keep_only_used(&self) {
        if self.read_only || crate::fsutil::check_trusted_dir(&self.dir).is_err() {
            return;
        }
        let Ok(used) = self.used.lock() else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut removed = 0;
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            if is_entry_name(&e.file_name().to_string_lossy())
                && !used.files.contains_key(&path)
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
        if removed > 0 {
            log::debug!("HTTP cache: removed {removed} entries the last listing did not use");
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
        let size = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
        self.note_used(path.clone(), size);
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
                    self.note_used(path, 0);
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
        let path = self.file_for(url, authenticated);
        // The entry's size on disk, known before it is written (serialized twice rather
        // than held in memory twice).
        let mut size = Counter(0);
        if serde_json::to_writer(&mut size, &answer).is_err() {
            return;
        }
        let others = self.used_bytes(&path);
        if others.saturating_add(size.0) > self.max_bytes {
            log::debug!(
                "not caching {url}: this listing's pages already hold {} of the HTTP cache's {}",
                bytesize::ByteSize::b(others),
                bytesize::ByteSize::b(self.max_bytes)
            );
            // An entry left from an earlier listing is out of date: it goes too.
            let _ = std::fs::remove_file(&path);
            self.note_used(path, 0);
            return;
        }
        let result = crate::fsutil::create_private_dir(&self.dir).and_then(|()| {
            crate::fsutil::atomic_write_with(&path, |w| {
                let mut w = std::io::BufWriter::new(w);
                serde_json::to_writer(&mut w, &answer)?;
                w.flush()
            })
        });
        match result {
            Ok(()) => self.note_used(path, size.0),
            Err(e) => log::warn!("could not update the HTTP cache: {e:#}"),
        }
    }
}

/// Counts what is written to it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An entry's file name: 16 hex digits and `.json`.
fn is_entry_name(name: &str) -> bool {
    name.strip_suffix(".json")
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
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

    /// The entry files in `dir` and their total size.
    fn entries(dir: &std::path::Path) -> (Vec<PathBuf>, u64) {
        let mut files = Vec::new();
        let mut bytes = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            bytes += e.metadata().unwrap().len();
            files.push(e.path());
        }
        files.sort();
        (files, bytes)
    }

    #[test]
    fn a_listing_keeps_only_the_entries_it_read_or_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let first = HttpCache::new(dir.path().to_path_buf());
        for page in [
            "https://a/x",
            "https://a/x?cursor=1",
            "https://a/x?cursor=2",
        ] {
            first.store(page, false, "\"e\"", &link(), b"[1]");
        }
        first.keep_only_used();
        assert_eq!(entries(dir.path()).0.len(), 3);
        // The next listing reads the first page again; its other pages have new cursors.
        let next = HttpCache::new(dir.path().to_path_buf());
        assert!(next.load("https://a/x", false).is_some());
        next.store("https://a/x?cursor=3", false, "\"f\"", &link(), b"[2]");
        assert!(next.load("https://a/x?cursor=4", false).is_none(), "a miss");
        std::fs::write(dir.path().join("not-an-entry"), "kept").unwrap();
        next.keep_only_used();
        let (files, _) = entries(dir.path());
        assert_eq!(files.len(), 3, "{files:?}");
        let again = HttpCache::new(dir.path().to_path_buf());
        assert!(again.load("https://a/x", false).is_some());
        assert!(again.load("https://a/x?cursor=3", false).is_some());
        assert!(
            again.load("https://a/x?cursor=1", false).is_none(),
            "removed"
        );
        // A cache that may not write removes nothing either.
        HttpCache::read_only(dir.path().to_path_buf()).keep_only_used();
        assert_eq!(entries(dir.path()).0.len(), 3);
    }

    #[test]
    fn one_listing_keeps_no_more_than_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = HttpCache::new(dir.path().to_path_buf());
        c.max_bytes = 10_000;
        let page = vec![b'x'; 3_000];
        for i in 0..10 {
            c.store(&format!("https://a/x?page={i}"), false, "\"e\"", &[], &page);
        }
        let (files, bytes) = entries(dir.path());
        assert!(bytes <= 10_000, "{bytes} bytes in {} files", files.len());
        assert_eq!(
            files.len(),
            3,
            "the first pages are kept, the rest asked afresh"
        );
        // Storing a kept page again replaces it: its old size does not count twice.
        c.store("https://a/x?page=0", false, "\"f\"", &[], &page);
        assert_eq!(c.load("https://a/x?page=0", false).unwrap().etag, "\"f\"");
        // An old entry of a page past the cap is out of date: removed, not left.
        std::fs::write(c.file_for("https://a/x?page=9", false), "{}").unwrap();
        c.store("https://a/x?page=9", false, "\"g\"", &[], &page);
        assert!(!c.file_for("https://a/x?page=9", false).exists());
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
