//! The clock, behind a trait so tests can control time.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// Wall-clock time, monotonic time and sleeping.
pub trait Clock {
    /// The current wall-clock time (for release ages, backoff, history).
    fn now(&self) -> OffsetDateTime;
    /// A monotonic instant (for timeouts and durations).
    fn instant(&self) -> Instant;
    /// Waits for `d`.
    fn sleep(&self, d: Duration);
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}
