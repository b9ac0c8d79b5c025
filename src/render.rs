//! Install-time rendering of the systemd unit and the launchd plist templates (`make
//! install` runs `heph-selfupdate __render`).
//!
//! A template names values as `@NAME@`; each value is escaped for the place it lands in,
//! so a HOME or PREFIX with a space, `&`, `%`, `|` or a quote cannot change what the file
//! means (a `sed` replacement took `&` as "the matched text" and `|` as its delimiter, and
//! an unquoted `ExecStart=` path split at a space). A placeholder without a value, and a
//! value that cannot be written in the file's syntax at all (a control character), is an
//! error rather than a broken file.

use std::collections::BTreeMap;
use std::fmt;

/// The syntax of a template, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Syntax {
    /// A systemd unit: every placeholder sits inside a double-quoted word (e.g.
    /// `ExecStart="@BINDIR@/heph-selfupdate" check-and-apply`), so a space does not split
    /// it, and `%` is doubled (systemd expands `%` specifiers after unquoting). Quotes and
    /// backslashes are refused: systemd rejects an executable path holding them
    /// ("Executable name contains special characters"), however they are escaped. The one
    /// exception to the quotes: a directive whose whole value is one path that systemd
    /// takes verbatim, neither unquoted nor split ([`VERBATIM_PATH_KEYS`], e.g.
    /// `EnvironmentFile=-@HOME@/.config/x/env`), where quotes would become part of the path.
    Systemd,
    /// A property list (XML): `&`, `<` and `>` become entities. A line that is only
    /// `<string>@NAME@</string>` with an empty value is dropped together with the `<key>`
    /// line before it: the entry is left out rather than set to an empty string.
    Plist,
}

/// Directives whose value systemd takes as one path, verbatim (after `%` specifiers; an
/// optional leading `-` means "may be missing"): a placeholder right after `KEY=` or
/// `KEY=-` needs no quotes there (systemd's `config_parse_unit_env_file`).
pub const VERBATIM_PATH_KEYS: &[&str] = &["EnvironmentFile"];

/// True when `before` (a line up to a placeholder) is `KEY=` or `KEY=-` of a
/// [`VERBATIM_PATH_KEYS`] directive.
fn starts_verbatim_path(before: &str) -> bool {
    VERBATIM_PATH_KEYS.iter().any(|key| {
        before
            .strip_prefix(key)
            .is_some_and(|rest| rest == "=" || rest == "=-")
    })
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// The template names a placeholder that no value was given for.
    MissingValue { line: usize, name: String },
    /// A value holds a character that the syntax cannot carry.
    Unwritable {
        name: String,
        value: String,
        what: &'static str,
    },
    /// A systemd placeholder outside a double-quoted word.
    Unquoted { line: usize, name: String },
    /// A plist entry to drop is not preceded by its `<key>` line.
    NoKey { line: usize, name: String },
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingValue { line, name } => write!(
                f,
                "line {line} names @{name}@, but no value was given\nhelp: pass --var={name}=VALUE"
            ),
            Self::Unwritable { name, value, what } => write!(
                f,
                "the value of {name} ({value:?}) holds {what}, which the file cannot carry\nhelp: choose a path (PREFIX, HOME) without {what}"
            ),
            Self::Unquoted { line, name } => write!(
                f,
                "line {line}: @{name}@ is not inside a double-quoted word, so a space in its value would split it\nhelp: write it as \"…@{name}@…\" in the template"
            ),
            Self::NoKey { line, name } => write!(
                f,
                "line {line}: @{name}@ is empty, but the line before is not the <key> of its entry\nhelp: put the <key> line right before the <string>@{name}@</string> line"
            ),
        }
    }
}

impl std::error::Error for RenderError {}

/// Renders `template` with `vars` (name → value, names without the `@`).
pub fn render(
    template: &str,
    syntax: Syntax,
    vars: &BTreeMap<String, String>,
) -> Result<String, RenderError> {
    for (name, value) in vars {
        let what = if value.chars().any(char::is_control) {
            Some("a control character (a newline, a tab)")
        } else if syntax == Syntax::Systemd && value.contains(['"', '\'', '\\']) {
            Some("a quote or a backslash")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(RenderError::Unwritable {
                name: name.clone(),
                value: value.clone(),
                what,
            });
        }
    }
    let mut out: Vec<String> = Vec::new();
    for (index, line) in template.lines().enumerate() {
        let number = index + 1;
        if let Some(name) = (syntax == Syntax::Plist)
            .then(|| lone_string_placeholder(line))
            .flatten()
            .filter(|name| vars.get(*name).is_some_and(String::is_empty))
        {
            if !out
                .pop()
                .is_some_and(|l| l.trim_start().starts_with("<key>"))
            {
                return Err(RenderError::NoKey {
                    line: number,
                    name: name.to_owned(),
                });
            }
            continue;
        }
        let mut rendered = String::new();
        let mut rest = line;
        while let Some((before, name, after)) = next_placeholder(rest) {
            rendered.push_str(before);
            let value = vars.get(name).ok_or_else(|| RenderError::MissingValue {
                line: number,
                name: name.to_owned(),
            })?;
            match syntax {
                Syntax::Systemd
                    if !inside_double_quotes(&rendered) && !starts_verbatim_path(&rendered) =>
                {
                    return Err(RenderError::Unquoted {
                        line: number,
                        name: name.to_owned(),
                    });
                }
                Syntax::Systemd => rendered.push_str(&systemd_quoted(value)),
                Syntax::Plist => rendered.push_str(&xml_escaped(value)),
            }
            rest = after;
        }
        rendered.push_str(rest);
        out.push(rendered);
    }
    let mut text = out.join("\n");
    if template.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The text before the first `@NAME@` (NAME: `A-Z`, `0-9`, `_`, starting with a letter),
/// the name, and the text after it.
fn next_placeholder(s: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    while let Some(start) = s[from..].find('@').map(|i| i + from) {
        let tail = &s[start + 1..];
        if let Some(end) = tail.find('@') {
            let name = &tail[..end];
            let well_formed = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if well_formed {
                return Some((&s[..start], name, &tail[end + 1..]));
            }
        }
        from = start + 1;
    }
    None
}

/// The NAME of a line that is only `<string>@NAME@</string>`.
fn lone_string_placeholder(line: &str) -> Option<&str> {
    let inner = line
        .trim()
        .strip_prefix("<string>")?
        .strip_suffix("</string>")?;
    match next_placeholder(inner)? {
        ("", name, "") => Some(name),
        _ => None,
    }
}

/// True when `s` ends inside a double-quoted word (systemd's unquoting: `\` escapes the next
/// character).
fn inside_double_quotes(s: &str) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => inside = !inside,
            _ => {}
        }
    }
    inside
}

/// `value` (without quotes or backslashes) for the inside of a double-quoted word in a unit
/// file.
pub fn systemd_quoted(value: &str) -> String {
    value.replace('%', "%%")
}

/// `value` for XML character data.
pub fn xml_escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_unit_path_keeps_its_spaces_inside_the_quotes_and_doubles_percent_signs() {
        let t = "[Service]\nExecStart=\"@BINDIR@/heph-selfupdate\" check-and-apply\n";
        let v = vars(&[("BINDIR", "/home/a b/100% & z|w $x")]);
        assert_eq!(
            render(t, Syntax::Systemd, &v).unwrap(),
            "[Service]\nExecStart=\"/home/a b/100%% & z|w $x/heph-selfupdate\" check-and-apply\n"
        );
    }

    #[test]
    fn a_unit_path_with_quotes_or_backslashes_is_refused_as_systemd_would() {
        let t = "ExecStart=\"@BINDIR@/heph-selfupdate\"\n";
        for bad in ["/a\"b", "/a'b", "/a\\b"] {
            assert!(
                matches!(
                    render(t, Syntax::Systemd, &vars(&[("BINDIR", bad)])),
                    Err(RenderError::Unwritable { .. })
                ),
                "{bad}"
            );
        }
        // A plist carries them.
        assert_eq!(
            render(
                "<string>@X@</string>\n",
                Syntax::Plist,
                &vars(&[("X", "/a\"b'c\\d")])
            )
            .unwrap(),
            "<string>/a\"b'c\\d</string>\n"
        );
    }

    #[test]
    fn a_unit_placeholder_outside_quotes_is_refused() {
        let t = "ExecStart=@BINDIR@/heph-selfupdate\n";
        assert_eq!(
            render(t, Syntax::Systemd, &vars(&[("BINDIR", "/b")])),
            Err(RenderError::Unquoted {
                line: 1,
                name: "BINDIR".into()
            })
        );
        // An escaped quote does not open a quoted word.
        assert!(render("X=\"a\\\"\" @B@\n", Syntax::Systemd, &vars(&[("B", "b")])).is_err());
    }

    #[test]
    fn a_whole_value_path_directive_takes_its_path_without_quotes() {
        let t = "EnvironmentFile=-@HOME@/.config/heph-selfupdate/env\nEnvironmentFile=@HOME@/e\n";
        let v = vars(&[("HOME", "/home/a b/100%")]);
        assert_eq!(
            render(t, Syntax::Systemd, &v).unwrap(),
            "EnvironmentFile=-/home/a b/100%%/.config/heph-selfupdate/env\nEnvironmentFile=/home/a b/100%%/e\n"
        );
        // Only at the start of the value, and only for such directives.
        for t in [
            "EnvironmentFile=-/x/@HOME@\n",
            "Environment=PATH=@HOME@/bin\n",
            "ReadWritePaths=-@HOME@/x\n",
        ] {
            assert!(
                matches!(
                    render(t, Syntax::Systemd, &v),
                    Err(RenderError::Unquoted { .. })
                ),
                "{t}"
            );
        }
    }

    #[test]
    fn plist_values_become_xml_character_data() {
        let t = "<string>@HOME@/Library</string>\n";
        let v = vars(&[("HOME", "/Users/a & b <c> 100% | d")]);
        assert_eq!(
            render(t, Syntax::Plist, &v).unwrap(),
            "<string>/Users/a &amp; b &lt;c&gt; 100% | d/Library</string>\n"
        );
    }

    #[test]
    fn an_empty_plist_value_drops_its_whole_entry() {
        let t = "<dict>\n\t<key>PATH</key>\n\t<string>@P@</string>\n\t<key>RUSTUP_TOOLCHAIN</key>\n\t<string>@TOOLCHAIN@</string>\n</dict>\n";
        let dropped = render(t, Syntax::Plist, &vars(&[("P", "/bin"), ("TOOLCHAIN", "")])).unwrap();
        assert_eq!(
            dropped,
            "<dict>\n\t<key>PATH</key>\n\t<string>/bin</string>\n</dict>\n"
        );
        let kept = render(
            t,
            Syntax::Plist,
            &vars(&[("P", "/bin"), ("TOOLCHAIN", "stable")]),
        )
        .unwrap();
        assert!(kept.contains("<key>RUSTUP_TOOLCHAIN</key>\n\t<string>stable</string>"));
        assert!(matches!(
            render("<string>@T@</string>\n", Syntax::Plist, &vars(&[("T", "")])),
            Err(RenderError::NoKey { .. })
        ));
    }

    #[test]
    fn a_missing_value_and_a_control_character_are_errors() {
        assert_eq!(
            render("a\n\"@X@\"\n", Syntax::Systemd, &vars(&[])),
            Err(RenderError::MissingValue {
                line: 2,
                name: "X".into()
            })
        );
        assert!(matches!(
            render("\"@X@\"", Syntax::Systemd, &vars(&[("X", "/a\nb")])),
            Err(RenderError::Unwritable { .. })
        ));
    }

    #[test]
    fn text_that_only_looks_like_a_placeholder_stays() {
        let t = "mail me@example.org @@ @lower@ \"@X@\"\n";
        assert_eq!(
            render(t, Syntax::Systemd, &vars(&[("X", "v")])).unwrap(),
            "mail me@example.org @@ @lower@ \"v\"\n"
        );
    }
}
