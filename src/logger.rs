//! Log lines on stderr: plain for a terminal, with `<N>` priority prefixes when stderr is
//! the journal (`JOURNAL_STREAM` set), so `journalctl -p warning` works.

use std::fmt::Write as _;
use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    journal: bool,
}

fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Formats one record as the lines we print.
fn format_lines(level: Level, message: &str, journal: bool) -> String {
    let label = match level {
        Level::Error => "error: ",
        Level::Warn => "warning: ",
        Level::Info => "",
        Level::Debug => "debug: ",
        Level::Trace => "trace: ",
    };
    let mut out = String::new();
    for (i, line) in message.lines().enumerate() {
        if journal {
            let _ = write!(out, "<{}>", priority(level));
        }
        if i == 0 || !line.starts_with("help:") {
            out.push_str(if i == 0 { label } else { "  " });
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
            let text = format_lines(record.level(), &record.args().to_string(), self.journal);
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Starts logging. `verbosity`: -1 quiet (warnings and errors), 0 normal, 1 debug, 2+ trace.
pub fn init(verbosity: i8, journal: bool) {
    let level = match verbosity {
        i8::MIN..=-1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if log::set_boxed_logger(Box::new(StderrLogger { journal })).is_ok() {
        log::set_max_level(level);
    }
}

/// Prints a final error: the chain on one line, then its `help:` lines.
pub fn report_error(err: &anyhow::Error) {
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
    let mut text = main.join(": ").replace(": \n", "\n");
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
            format_lines(Level::Error, "boom\nhelp: fix", true),
            "<3>error: boom\n<3>help: fix\n"
        );
        assert_eq!(format_lines(Level::Info, "building", true), "<6>building\n");
        assert_eq!(
            format_lines(Level::Warn, "careful", false),
            "warning: careful\n"
        );
    }
}
