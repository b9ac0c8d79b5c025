//! `notify_command`: tells a person what happened (updated, update available, failed,
//! rolled back). Never repeated for the same event and version; its failure is logged,
//! never fatal.

use crate::process::{Cmd, OnSignal, Runner, run_checked};
use crate::state::{Notified, State};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Updated,
    UpdateAvailable,
    Failed,
    RolledBack,
    RollbackFailed,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Updated => "updated",
            Self::UpdateAvailable => "update-available",
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
            Self::RollbackFailed => "rollback-failed",
        }
    }
}

/// One notification.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub event: Event,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub message: &'a str,
}

/// The command for a notice (argv from `notify_command`, details in its environment).
pub fn command(argv: &[String], notice: &Notice<'_>) -> Option<Cmd> {
    let (program, args) = argv.split_first()?;
    Some(
        Cmd::new(program, format!("notify ({})", notice.event.as_str()))
            .args(args)
            .env("HEPH_SELFUPDATE_EVENT", notice.event.as_str())
            .env("HEPH_SELFUPDATE_FROM", notice.from.unwrap_or(""))
            .env("HEPH_SELFUPDATE_TO", notice.to.unwrap_or(""))
            .env("HEPH_SELFUPDATE_MESSAGE", notice.message)
            .timeout(std::time::Duration::from_secs(60))
            // A switch finished after SIGTERM is still worth telling.
            .on_signal(OnSignal::Finish),
    )
}

/// Sends the notice unless the same event for the same version was the last one sent.
pub fn send(runner: &dyn Runner, argv: Option<&[String]>, state: &mut State, notice: &Notice<'_>) {
    let key = Notified {
        event: notice.event.as_str().to_owned(),
        version: notice.to.map(String::from),
    };
    if state.last_notified.as_ref() == Some(&key) {
        log::debug!(
            "already notified: {} {}",
            key.event,
            key.version.as_deref().unwrap_or("")
        );
        return;
    }
    let Some(cmd) = argv.and_then(|a| command(a, notice)) else {
        return;
    };
    match run_checked(runner, &cmd) {
        Ok(_) => state.last_notified = Some(key),
        Err(e) => log::warn!("notify_command failed (the run goes on): {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::fake::{Recorder, ok};

    #[test]
    fn the_same_notice_is_sent_once() {
        let r = Recorder::new(|_| ok(""));
        let argv = vec!["notify-send".to_owned(), "heph".to_owned()];
        let mut state = State::default();
        let n = Notice {
            event: Event::UpdateAvailable,
            from: Some("0.1.0"),
            to: Some("0.2.0"),
            message: "m",
        };
        send(&r, Some(&argv), &mut state, &n);
        send(&r, Some(&argv), &mut state, &n);
        assert_eq!(r.seen.borrow().len(), 1);
        let sent_to = r.seen.borrow()[0]
            .env
            .iter()
            .any(|(k, v)| k == "HEPH_SELFUPDATE_TO" && v == "0.2.0");
        assert!(sent_to);
        let next = Notice {
            to: Some("0.3.0"),
            ..n
        };
        send(&r, Some(&argv), &mut state, &next);
        assert_eq!(r.seen.borrow().len(), 2);
    }

    #[test]
    fn a_failing_notifier_is_not_fatal_and_is_retried_next_time() {
        let r = Recorder::new(|_| crate::process::Output {
            code: Some(1),
            ..Default::default()
        });
        let argv = vec!["false".to_owned()];
        let mut state = State::default();
        let n = Notice {
            event: Event::Failed,
            from: None,
            to: Some("0.2.0"),
            message: "m",
        };
        send(&r, Some(&argv), &mut state, &n);
        assert!(state.last_notified.is_none());
    }
}
