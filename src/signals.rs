//! SIGTERM and SIGINT: counted, never acted on in the handler. What a signal means depends
//! on where the run is: during a build it stops the build (nothing changed yet); after the
//! switch the run finishes its transaction within a bounded grace, and a second signal
//! leaves the transaction's intent for the next run (see [`crate::deploy`]).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many SIGTERM/SIGINT arrived. Cloned handles share the count.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicUsize>);

impl Interrupt {
    /// A handle no signal reaches (tests, or before [`install`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Signals received so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// True once a signal arrived.
    pub fn is_set(&self) -> bool {
        self.count() > 0
    }

    /// Records one signal (the handler, or a test standing in for one).
    pub fn raise(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

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
            let counter = Arc::clone(&handle.0);
            // SAFETY: the action only does an atomic add, which is async-signal-safe.
            let registered = unsafe {
                signal_hook::low_level::register(sig, move || {
                    counter.fetch_add(1, Ordering::SeqCst);
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
}
