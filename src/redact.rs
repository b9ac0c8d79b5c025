//! Removing secrets from text, and making text from outside (forge answers, headers,
//! URLs, tags) safe to show on a terminal or in a log.
//!
//! Everything the forge sends is outside text: it may echo the token back (an error body
//! that quotes the credential, a `Link` that carries it), and it may hold escape sequences,
//! carriage returns or newlines that would forge lines of our output. [`outside`] does
//! both steps; it is the one function every such message goes through.

use std::fmt::Write as _;

/// A URL with any `user:password@` part replaced by `<redacted>@` — over http(s) a user
/// name alone too (a token is often given as one); ssh's plain user (`git@`) is kept,
/// since ssh never takes a secret there.
pub fn url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, _)) if scheme.eq_ignore_ascii_case("ssh") && !user.contains(':') => {
            u.to_owned()
        }
        Some((_, host)) => format!("{scheme}://<redacted>@{host}{tail}"),
        None => u.to_owned(),
    }
}

/// Replaces every occurrence of `secret` in `text` (no-op for an empty secret).
pub fn text(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "<redacted>"),
        _ => text.to_owned(),
    }
}

/// The spellings of `secret` that can appear in outside text: as is, and percent-encoded
/// the way a URL query carries it (they differ when the token holds `+`, `/` or `=`).
pub fn forms(secret: &str) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let mut out = vec![secret.to_owned()];
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    if encoded != secret {
        out.push(encoded);
    }
    out
}

/// True when `haystack` holds `secret` in any of its [`forms`].
pub fn contains(haystack: &[u8], secret: Option<&str>) -> bool {
    let Some(secret) = secret else {
        return false;
    };
    // `str::contains` is a fast substring search; bytes that are not UTF-8 are searched
    // window by window.
    let text = std::str::from_utf8(haystack);
    forms(secret).iter().any(|f| match text {
        Ok(t) => t.contains(f.as_str()),
        Err(_) => haystack.windows(f.len()).any(|w| w == f.as_bytes()),
    })
}

/// Every form of `secret` ([`forms`]) in `text` replaced by `<redacted>`.
pub fn secret(text: &str, secret: Option<&str>) -> String {
    let mut redacted = text.to_owned();
    if let Some(s) = secret {
        for f in forms(s) {
            redacted = redacted.replace(&f, "<redacted>");
        }
    }
    redacted
}

/// Outside text made safe to show: every form of `secret` replaced by `<redacted>`, then
/// control characters escaped ([`escape`]).
pub fn outside(text: &str, secret: Option<&str>) -> String {
    escape(&self::secret(text, secret))
}

/// Escapes what could rewrite a terminal or forge a line: C0 and C1 control characters
/// (escape sequences, CR, LF, tab), DEL, the Unicode line and paragraph separators and the
/// bidirectional overrides. A backslash is doubled, so the escaping cannot be imitated.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_userinfo_from_urls() {
        assert_eq!(
            url("https://bob:pw@h.example/x?y"),
            "https://<redacted>@h.example/x?y"
        );
        assert_eq!(url("https://h.example/a@b"), "https://h.example/a@b");
        assert_eq!(url("not a url"), "not a url");
        assert_eq!(
            url("https://ghp_token@h.example/x"),
            "https://<redacted>@h.example/x"
        );
        assert_eq!(url("ssh://git@h.example:22/x"), "ssh://git@h.example:22/x");
        assert_eq!(
            url("ssh://git:pw@h.example/x"),
            "ssh://<redacted>@h.example/x"
        );
    }

    #[test]
    fn replaces_the_secret_everywhere() {
        assert_eq!(
            text("a tok b tok", Some("tok")),
            "a <redacted> b <redacted>"
        );
        assert_eq!(text("abc", Some("")), "abc");
    }

    #[test]
    fn outside_text_loses_the_token_in_every_spelling_and_its_control_characters() {
        let secret = "ab+c/d=";
        let shown = outside(
            "401: token ab+c/d= is invalid; see https://h/?t=ab%2Bc%2Fd%3D\x1b[31m\r\nerror: forged",
            Some(secret),
        );
        assert_eq!(
            shown,
            "401: token <redacted> is invalid; see https://h/?t=<redacted>\\u{1b}[31m\\r\\nerror: forged"
        );
        assert!(!shown.contains('\n') && !shown.contains('\x1b'));
        assert!(contains(b"x ab%2Bc%2Fd%3D y", Some(secret)));
        assert!(!contains(b"nothing here", Some(secret)));
        assert!(!contains(b"anything", None));
        assert!(
            contains(b"\xff ab+c/d= \xfe", Some(secret)),
            "also in bytes that are not UTF-8"
        );
    }

    #[test]
    fn escaping_is_unambiguous_and_leaves_plain_text_alone() {
        assert_eq!(escape("v1.2.3 (ok) ü"), "v1.2.3 (ok) ü");
        assert_eq!(
            escape("a\\nb"),
            "a\\\\nb",
            "a literal backslash-n stays distinct"
        );
        assert_eq!(escape("a\u{202e}b\u{85}"), "a\\u{202e}b\\u{85}");
        assert_eq!(escape("\t\x7f"), "\\t\\u{7f}");
    }
}
