//! SIGTERM and SIGINT: counted, never acted on in the handler. What a signal means depends
//! on where the run is: during a build it stops the build (nothing changed yet); after the
//! switch the run finishes its transaction within a bounded grace, and a second signal
//! leaves the transaction's intent for the next run (see [`crate::deploy`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

/// How many SIGTERM/SIGINT arrived, and when the first was noticed. Cloned handles share
/// both, so the grace that the command runner enforces and the one the switch keeps end
/// together.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    count: AtomicUsize,
    noticed: Mutex<Option<Instant>>,
    /// What the run finishes before it stops (set by [`Interrupt::finishing`]).
    finishing: Mutex<Option<&'static str>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Interrupt {
    /// A handle no signal reaches (tests, or before [`install`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Signals received so far.
    pub fn count(&self) -> usize {
        self.0.count.load(Ordering::SeqCst)
    }

    /// True once a signal arrived.
    pub fn is_set(&self) -> bool {
        self.count() > 0
    }

    /// Records one signal (the handler, or a test standing in for one).
    pub fn raise(&self) {
        self.0.count.fetch_add(1, Ordering::SeqCst);
    }

    /// When the first signal was noticed: the first caller after it arrived records `now`
    /// (the handler itself only counts). `None` while no signal arrived. The first notice
    /// during [`Self::finishing`] logs one line saying what is finished first.
    pub fn noticed(&self, now: Instant) -> Option<Instant> {
        if !self.is_set() {
            return None;
        }
        let mut first = locked(&self.0.noticed);
        if first.is_none()
            && let Some(what) = *locked(&self.0.finishing)
        {
            log::warn!(
                "stop requested: finishing {what} first (at most {})",
                crate::timefmt::human_duration(GRACE)
            );
        }
        Some(*first.get_or_insert(now))
    }

    /// Says that a signal now lets `what` finish (within [`GRACE`]) instead of stopping
    /// it at once, until the returned guard is dropped.
    pub fn finishing(&self, what: &'static str) -> Finishing<'_> {
        *locked(&self.0.finishing) = Some(what);
        Finishing(self)
    }
}

/// While alive, signals let a step finish; see [`Interrupt::finishing`].
#[derive(Debug)]
pub struct Finishing<'a>(&'a Interrupt);

impl Drop for Finishing<'_> {
    fn drop(&mut self) {
        *locked(&self.0.0.finishing) = None;
    }
}

/// How long a switch may go on after the first SIGTERM/SIGINT before it is left to the
/// next run. A command that must not be cut in half ([`crate::process::OnSignal::Finish`])
/// is stopped when this grace ends, also one already running when the signal came. The
/// systemd unit's `TimeoutStopSec` and the plist's `ExitTimeOut` are above it.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(60);

static GLOBAL: OnceLock<Interrupt> = OnceLock::new();

/// Starts counting SIGTERM and SIGINT for the whole process; returns the shared handle.
/// Called once, at start; later calls return the same handle.
pub fn install() -> Interrupt {
    let mut fresh = false;
    let handle = GLOBAL
        .get_or_init(|| {
            fresh = true;
            Interrupt::new()
        })
        .clone();
    if fresh {
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let shared = Arc::clone(&handle.0);
            // SAFETY: the action only does an atomic add, which is async-signal-safe.
            let registered = unsafe {
                signal_hook::low_level::register(sig, move || {
                    shared.count.fetch_add(1, Ordering::SeqCst);
                })
            };
            if let Err(e) = registered {
                log::warn!("could not watch signal {sig}: {e}");
            }
        }
    }
    handle
}

/// True once SIGTERM or SIGINT arrived in this process (false before [`install`]).
pub fn interrupted() -> bool {
    GLOBAL.get().is_some_and(Interrupt::is_set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_one_count() {
        let a = Interrupt::new();
        let b = a.clone();
        assert!(!b.is_set());
        a.raise();
        a.raise();
        assert_eq!(b.count(), 2);
    }

    #[test]
    fn the_first_notice_of_a_signal_is_kept() {
        let a = Interrupt::new();
        let t0 = Instant::now();
        assert_eq!(a.noticed(t0), None);
        a.raise();
        assert_eq!(a.clone().noticed(t0), Some(t0));
        let later = t0 + std::time::Duration::from_secs(5);
        assert_eq!(a.noticed(later), Some(t0));
    }
}
