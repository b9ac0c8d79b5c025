//! Machine and report output on stdout, behind [`Out`] so tests can read it. A reader that
//! went away (`heph-selfupdate status | head -1`) is not an error worth a panic: the rest
//! of the output is dropped quietly, and a run in the middle of a switch carries on.

use std::io::Write;

/// Where commands write their results (stdout; logs go to stderr).
pub trait Out {
    /// Writes `text` as it is.
    fn text(&self, text: &str);

    /// Writes `text` and a newline.
    fn line(&self, text: &str) {
        self.text(&format!("{text}\n"));
    }
}

/// The process's stdout; a closed stdout is ignored.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdOut;

impl Out for StdOut {
    fn text(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// Output kept in memory (tests, the simulation).
#[derive(Debug, Default)]
pub struct Captured(pub std::cell::RefCell<String>);

impl Out for Captured {
    fn text(&self, text: &str) {
        self.0.borrow_mut().push_str(text);
    }
}
