//! The ETag cache: the last answer and its ETag per URL, so a conditional request
//! (`If-None-Match`) can be answered by a 304 without a body.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Cached answers, one small JSON file per URL.
#[derive(Debug, Clone)]
pub struct HttpCache {
    dir: PathBuf,
    read_only: bool,
}

/// One cached answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedAnswer {
    pub url: String,
    pub etag: String,
    pub body: String,
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

    /// The cached answer for `url`, if there is a sound one. A corrupt entry is removed
    /// with a warning (the request is then simply unconditional).
    pub fn load(&self, url: &str, authenticated: bool) -> Option<CachedAnswer> {
        let path = self.file_for(url, authenticated);
        let text = std::fs::read_to_string(&path).ok()?;
        match serde_json::from_str::<CachedAnswer>(&text) {
            Ok(a)
                if a.url == url
                    && !a.etag.is_empty()
                    && a.etag.len() < 1024
                    && is_header_safe(&a.etag) =>
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

    /// Remembers an answer; failures only cost a full request next time, so they are logged.
    pub fn store(&self, url: &str, authenticated: bool, etag: &str, body: &[u8]) {
        let Ok(body) = std::str::from_utf8(body) else {
            return;
        };
        if self.read_only || !is_header_safe(etag) {
            return;
        }
        let answer = CachedAnswer {
            url: url.to_owned(),
            etag: etag.to_owned(),
            body: body.to_owned(),
        };
        let result = crate::fsutil::create_private_dir(&self.dir).and_then(|()| {
            let bytes = serde_json::to_vec(&answer)?;
            crate::fsutil::atomic_write(&self.file_for(url, authenticated), &bytes)
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

    #[test]
    fn stores_and_loads_per_url_and_auth() {
        let dir = tempfile::tempdir().unwrap();
        let c = HttpCache::new(dir.path().join("http"));
        c.store("https://a/x", false, "\"e\"", b"[]");
        assert_eq!(c.load("https://a/x", false).unwrap().etag, "\"e\"");
        assert!(c.load("https://a/x", true).is_none());
        assert!(c.load("https://a/y", false).is_none());
    }

    #[test]
    fn a_corrupt_entry_is_dropped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let c = HttpCache::new(dir.path().to_path_buf());
        c.store("https://a/x", false, "\"e\"", b"[]");
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(
            &file,
            "{\"url\": \"https://a/x\", \"etag\": \"bad\nvalue\", \"body\": \"\"}",
        )
        .unwrap();
        assert!(c.load("https://a/x", false).is_none());
        assert!(!file.exists());
        std::fs::write(&file, "garbage").unwrap();
        assert!(c.load("https://a/x", false).is_none());
    }
}
