//! Log lines on stderr: plain for a terminal, with `<N>` priority prefixes when stderr is
//! the journal (`JOURNAL_STREAM` set), so `journalctl -p warning` works. On a terminal
//! the `error:` and `warning:` labels are coloured (see [`crate::colour`]).

use std::fmt::Write as _;
use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::colour::{self, Style};

struct StderrLogger {
    journal: bool,
    colour: bool,
}

fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Formats one record as the lines we print; `coloured` paints the label.
fn format_lines(level: Level, message: &str, journal: bool, coloured: bool) -> String {
    let (label, style) = match level {
        Level::Error => ("error:", Style::Error),
        Level::Warn => ("warning:", Style::Warning),
        Level::Info => ("", Style::Plain),
        Level::Debug => ("debug:", Style::Plain),
        Level::Trace => ("trace:", Style::Plain),
    };
    let mut out = String::new();
    for (i, line) in message.lines().enumerate() {
        if journal {
            let _ = write!(out, "<{}>", priority(level));
        }
        if i == 0 && !label.is_empty() {
            out.push_str(&colour::paint_if(coloured, style, label));
            out.push(' ');
        } else if i > 0 && !line.starts_with("help:") {
            out.push_str("  ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("heph_selfupdate") && metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let text = format_lines(
                record.level(),
                &record.args().to_string(),
                self.journal,
                self.colour,
            );
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Starts logging. `verbosity`: -1 quiet (warnings and errors), 0 normal, 1 debug, 2+ trace.
/// Call [`colour::init`] first: it decides whether stderr gets colour.
pub fn init(verbosity: i8, journal: bool) {
    let level = match verbosity {
        i8::MIN..=-1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if log::set_boxed_logger(Box::new(StderrLogger {
        journal,
        colour: colour::enabled(colour::Stream::Stderr),
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
}

/// An error's chain as one message, and its `help:` lines apart.
pub fn split_help(err: &anyhow::Error) -> (String, Vec<String>) {
    let mut main = Vec::new();
    let mut help = Vec::new();
    for cause in err.chain() {
        for (i, line) in cause.to_string().lines().enumerate() {
            if line.starts_with("help:") {
                help.push(line.to_owned());
            } else if i == 0 {
                main.push(line.to_owned());
            } else {
                main.push(format!("\n{line}"));
            }
        }
    }
    // Contexts often repeat their cause's text; keep the first of duplicates.
    main.dedup();
    help.dedup();
    (main.join(": ").replace(": \n", "\n"), help)
}

/// Prints a final error: the chain on one line, then its `help:` lines.
pub fn report_error(err: &anyhow::Error) {
    let (mut text, help) = split_help(err);
    for h in help {
        text.push('\n');
        text.push_str(&h);
    }
    log::error!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_carry_priorities() {
        assert_eq!(
            format_lines(Level::Error, "boom\nhelp: fix", true, false),
            "<3>error: boom\n<3>help: fix\n"
        );
        assert_eq!(
            format_lines(Level::Info, "building", true, false),
            "<6>building\n"
        );
        assert_eq!(
            format_lines(Level::Warn, "careful", false, false),
            "warning: careful\n"
        );
    }

    #[test]
    fn on_a_terminal_only_the_labels_are_coloured() {
        assert_eq!(
            format_lines(Level::Error, "boom\nmore\nhelp: fix", false, true),
            "\x1b[1;31merror:\x1b[0m boom\n  more\nhelp: fix\n"
        );
        assert_eq!(
            format_lines(Level::Warn, "careful", false, true),
            "\x1b[1;33mwarning:\x1b[0m careful\n"
        );
        assert_eq!(
            format_lines(Level::Info, "building", false, true),
            "building\n"
        );
    }
}
