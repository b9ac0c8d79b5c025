//! Standard output that a closed pipe cannot kill.
//!
//! `println!` panics when a write fails, so `heph-selfupdate status | head -1` used to end
//! in "failed printing to stdout: Broken pipe" and, with `panic = "abort"`, in SIGABRT.
//! Restoring SIGPIPE's default disposition would make such runs die quietly like `ls`, but
//! it would kill a run that holds the lock at whatever step it is in — between switching
//! the binaries and proving the daemon healthy, say — as soon as a reader of stdout or
//! stderr goes away. So SIGPIPE stays ignored (Rust's default) and every write to stdout
//! goes through [`Out`] (the world's) or [`out!`]: a broken pipe means nobody reads any more, so later
//! output is dropped and the run finishes its work with its own exit code. Any other write
//! error (a full disk behind `> file`) is kept; [`failure`] reports it at the end, so the
//! run does not pretend its output was written.

use std::fmt;
use std::io::{self, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// One output stream's fate: open, or closed by a failed write (and why, unless the
/// reader merely went away).
#[derive(Debug, Default)]
struct Sink {
    closed: AtomicBool,
    failure: OnceLock<io::Error>,
}

impl Sink {
    const fn new() -> Self {
        Self {
            closed: AtomicBool::new(false),
            failure: OnceLock::new(),
        }
    }

    /// Runs `write` on `w` and flushes, unless an earlier write failed. Never panics.
    fn write(&self, w: &mut dyn Write, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = write(w).and_then(|()| w.flush()) {
            self.closed.store(true, Ordering::Relaxed);
            if e.kind() != io::ErrorKind::BrokenPipe {
                let _ = self.failure.set(e);
            }
        }
    }
}

static STDOUT: Sink = Sink::new();

/// Writes formatted text to stdout (what [`out!`] calls).
pub fn print(args: fmt::Arguments<'_>) {
    STDOUT.write(&mut io::stdout().lock(), |w| w.write_fmt(args));
}

/// Writes bytes to stdout, as [`print`] does.
pub fn print_bytes(bytes: &[u8]) {
    STDOUT.write(&mut io::stdout().lock(), |w| w.write_all(bytes));
}

/// The error that stopped stdout, unless it was a reader going away (a broken pipe is
/// not a failure: `| head` is a normal way to read).
pub fn failure() -> Option<&'static io::Error> {
    STDOUT.failure.get()
}

/// Where commands write their results (stdout; logs go to stderr). The world holds one,
/// so tests and the simulation can read what a command printed.
pub trait Out {
    /// Writes `text` as it is.
    fn text(&self, text: &str);

    /// Writes `text` and a newline.
    fn line(&self, text: &str) {
        self.text(&format!("{text}\n"));
    }
}

/// The process's stdout, through the same sink as [`out!`] (a closed pipe is dropped
/// quietly, another write error reported at the end).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdOut;

impl Out for StdOut {
    fn text(&self, text: &str) {
        print_bytes(text.as_bytes());
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

/// `print!` that survives a closed stdout (see the module documentation).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::print(format_args!($($arg)*))
    };
}

pub(crate) use out;

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts `room` bytes, then fails with `kind`.
    struct Failing {
        room: usize,
        kind: io::ErrorKind,
        written: Vec<u8>,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from(self.kind));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn failing(room: usize, kind: io::ErrorKind) -> Failing {
        Failing {
            room,
            kind,
            written: Vec::new(),
        }
    }

    #[test]
    fn a_broken_pipe_stops_the_output_quietly_and_is_no_failure() {
        let sink = Sink::new();
        let mut w = failing(3, io::ErrorKind::BrokenPipe);
        sink.write(&mut w, |w| w.write_all(b"first line\n"));
        sink.write(&mut w, |w| w.write_all(b"second line\n"));
        assert_eq!(w.written, b"fir");
        assert!(sink.closed.load(Ordering::Relaxed));
        assert!(sink.failure.get().is_none());
    }

    #[test]
    fn any_other_write_error_is_kept_for_the_end() {
        let sink = Sink::new();
        let mut w = failing(0, io::ErrorKind::StorageFull);
        sink.write(&mut w, |w| w.write_all(b"x\n"));
        sink.write(&mut w, |w| w.write_all(b"y\n"));
        assert_eq!(
            sink.failure.get().map(io::Error::kind),
            Some(io::ErrorKind::StorageFull)
        );
    }

    #[test]
    fn writes_pass_through_while_the_reader_reads() {
        let sink = Sink::new();
        let mut w = failing(100, io::ErrorKind::BrokenPipe);
        sink.write(&mut w, |w| write!(w, "{} {}", 1, 2.5));
        sink.write(&mut w, |w| w.write_all(b"\n"));
        assert_eq!(w.written, b"1 2.5\n");
        assert!(!sink.closed.load(Ordering::Relaxed));
    }
}
