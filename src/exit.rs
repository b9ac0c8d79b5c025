//! Exit codes, documented in the README, decided in one place.

use crate::config::ConfigError;
use crate::http::{ForgeUnavailable, Interrupted, RateLimited};
use crate::lock::LockBusy;

/// Nothing due, updated, or notified.
pub const OK: i32 = 0;
/// Failed (the state says what; the daemon is on a known version), or `check` could not
/// find out.
pub const FAILED: i32 = 1;
/// Usage or configuration error.
pub const USAGE: i32 = 2;
/// Try again later: the lock is busy, or (for `check-and-apply`) the forge could not be
/// reached or is rate limiting. Nothing was changed. (`EX_TEMPFAIL`.)
pub const TEMPFAIL: i32 = 75;
/// `check`: an update is due (the dnf convention).
pub const UPDATE_AVAILABLE: i32 = 100;

/// Whether an unreachable forge is a failure or a "try later".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeDown {
    /// `check` could not find out: 1.
    Fails,
    /// The timer's run: 75, nothing changed.
    TryLater,
}

/// The exit code for an error.
pub fn for_error(err: &anyhow::Error, forge_down: ForgeDown) -> i32 {
    for cause in err.chain() {
        if cause.is::<ConfigError>() {
            return USAGE;
        }
        if cause.is::<LockBusy>() {
            return TEMPFAIL;
        }
        // A person's interrupt while asking the forge: nothing was changed.
        if cause.is::<ForgeUnavailable>() || cause.is::<RateLimited>() || cause.is::<Interrupted>()
        {
            return match forge_down {
                ForgeDown::Fails => FAILED,
                ForgeDown::TryLater => TEMPFAIL,
            };
        }
    }
    FAILED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_error_kind() {
        let cfg: anyhow::Error = ConfigError("x".into()).into();
        assert_eq!(for_error(&cfg, ForgeDown::Fails), USAGE);
        let down: anyhow::Error = ForgeUnavailable {
            url: "u".into(),
            detail: "d".into(),
        }
        .into();
        let down = down.context("listing releases");
        assert_eq!(for_error(&down, ForgeDown::Fails), FAILED);
        assert_eq!(for_error(&down, ForgeDown::TryLater), TEMPFAIL);
        let busy: anyhow::Error = LockBusy {
            path: "l".into(),
            holder: None,
        }
        .into();
        assert_eq!(for_error(&busy, ForgeDown::Fails), TEMPFAIL);
        assert_eq!(
            for_error(&anyhow::anyhow!("other"), ForgeDown::TryLater),
            FAILED
        );
    }
}
