//! SIGTERM and SIGINT: noted, so a long build can be stopped cleanly (its process group
//! killed, the half-built version root left for the next run to remove).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Starts noting SIGTERM and SIGINT. Called once, at start.
pub fn install() {
    let flag = FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(flag)) {
            log::warn!("could not watch signal {sig}: {e}");
        }
    }
}

/// True once SIGTERM or SIGINT arrived.
pub fn interrupted() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
