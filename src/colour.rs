//! Colour for labels (`error:`, `warning:`, `[FAIL]`, `[ ok ]`) on a terminal, and
//! nowhere else.
//!
//! Decided once per stream at start ([`init`]): stdout and stderr separately, since either
//! may be a pipe while the other is a terminal. Never in a pipe, a file or the journal,
//! never with `NO_COLOR` set to anything non-empty (<https://no-color.org>), never for
//! `TERM=dumb`. Before [`init`] (unit tests, library use) nothing is coloured.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// An output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Failed: bold red.
    Error,
    /// Needs attention: bold yellow.
    Warning,
    /// Fine: green.
    Success,
    /// Left as it is.
    Plain,
}

impl Style {
    /// The SGR parameters, or none for plain text.
    fn sgr(self) -> Option<&'static str> {
        match self {
            Self::Error => Some("1;31"),
            Self::Warning => Some("1;33"),
            Self::Success => Some("32"),
            Self::Plain => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Choice {
    stdout: bool,
    stderr: bool,
}

static CHOICE: OnceLock<Choice> = OnceLock::new();

/// Whether to colour one stream, from everything that decides it.
///
/// `no_color` and `term` are the values of `NO_COLOR` and `TERM`; `journal` is true when
/// `JOURNAL_STREAM` is set (our output goes to the journal, which keeps escape codes as
/// they are).
pub fn wanted(
    is_terminal: bool,
    no_color: Option<&str>,
    term: Option<&str>,
    journal: bool,
) -> bool {
    is_terminal && !journal && no_color.is_none_or(str::is_empty) && term != Some("dumb")
}

/// Decides, once, whether stdout and stderr get colour, from the environment read at start.
pub fn init(env: &BTreeMap<String, String>) {
    let decide = |is_terminal: bool| {
        wanted(
            is_terminal,
            env.get("NO_COLOR").map(String::as_str),
            env.get("TERM").map(String::as_str),
            env.contains_key("JOURNAL_STREAM"),
        )
    };
    let _ = CHOICE.set(Choice {
        stdout: decide(std::io::stdout().is_terminal()),
        stderr: decide(std::io::stderr().is_terminal()),
    });
}

/// True when text for `stream` is coloured.
pub fn enabled(stream: Stream) -> bool {
    CHOICE.get().is_some_and(|c| match stream {
        Stream::Stdout => c.stdout,
        Stream::Stderr => c.stderr,
    })
}

/// `text` in `style` when `stream` gets colour, else `text` as it is.
pub fn paint(stream: Stream, style: Style, text: &str) -> String {
    paint_if(enabled(stream), style, text)
}

/// `text` in `style` when `on`, else `text` as it is.
pub fn paint_if(on: bool, style: Style, text: &str) -> String {
    match style.sgr() {
        Some(sgr) if on => format!("\x1b[{sgr}m{text}\x1b[0m"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_colour_when_nothing_says_otherwise() {
        assert!(wanted(true, None, Some("xterm-256color"), false));
        assert!(wanted(true, None, None, false));
    }

    #[test]
    fn pipes_files_and_the_journal_never_get_colour() {
        assert!(!wanted(false, None, Some("xterm-256color"), false));
        assert!(!wanted(true, None, Some("xterm-256color"), true));
    }

    #[test]
    fn no_color_with_any_non_empty_value_turns_colour_off() {
        assert!(!wanted(true, Some("1"), Some("xterm"), false));
        assert!(!wanted(true, Some("0"), Some("xterm"), false));
        assert!(!wanted(true, Some("false"), Some("xterm"), false));
        // An empty NO_COLOR is the same as none (no-color.org).
        assert!(wanted(true, Some(""), Some("xterm"), false));
    }

    #[test]
    fn a_dumb_terminal_gets_no_colour() {
        assert!(!wanted(true, None, Some("dumb"), false));
    }

    #[test]
    fn painting_wraps_the_text_in_sgr_codes_only_when_on() {
        assert_eq!(
            paint_if(true, Style::Error, "[FAIL]"),
            "\x1b[1;31m[FAIL]\x1b[0m"
        );
        assert_eq!(
            paint_if(true, Style::Success, "[ ok ]"),
            "\x1b[32m[ ok ]\x1b[0m"
        );
        assert_eq!(paint_if(false, Style::Error, "[FAIL]"), "[FAIL]");
        assert_eq!(paint_if(true, Style::Plain, "[info]"), "[info]");
    }

    #[test]
    fn nothing_is_coloured_before_init() {
        // Unit tests never call init.
        assert_eq!(paint(Stream::Stderr, Style::Error, "error:"), "error:");
    }
}
