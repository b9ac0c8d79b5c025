//! Machine output on stdout. A reader that went away (`heph-selfupdate status | head -1`)
//! is not an error worth a panic: the rest of the output is dropped quietly, and a run in
//! the middle of a switch carries on.

use std::io::Write;

/// Writes `text` and a newline to stdout; a closed stdout is ignored.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Writes `text` as it is to stdout; a closed stdout is ignored.
pub fn text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
