//! Removing secrets from text before it is shown or logged.

/// A URL with any `user:password@` part replaced by `<redacted>@`.
pub fn url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
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
    }

    #[test]
    fn replaces_the_secret_everywhere() {
        assert_eq!(
            text("a tok b tok", Some("tok")),
            "a <redacted> b <redacted>"
        );
        assert_eq!(text("abc", Some("")), "abc");
    }
}
