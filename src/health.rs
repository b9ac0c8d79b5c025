//! Proving the restarted daemon healthy. The restart command has its own limit
//! (`restart_timeout`: it blocks while the old daemon drains); the come-up clock starts when
//! it returns. The daemon must then run with a new main PID within `health_timeout`, and
//! once seen up it always gets the full `health_settle` without exiting or being
//! restarted; then `health_command` (if any) must exit 0. A restart command exiting 0
//! proves nothing by itself, and a daemon the manager reports `active (running)` is never
//! called bad for being slow: that is "unknown".

use std::time::Duration;

use crate::clock::Clock;
use crate::process::{Cmd, OnSignal, Runner, run_checked};
use crate::service::{Observation, ServiceManager};

/// How often the service manager is asked during the proof.
pub const POLL: Duration = Duration::from_millis(500);

/// The verdict so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    Healthy,
    Unhealthy(String),
    /// No proof either way (e.g. it runs, but no new process was seen in time).
    Unknown(String),
}

/// The pure part: feeds observations, tells when the daemon is proven healthy or not.
#[derive(Debug, Clone)]
pub struct Watch {
    before: Observation,
    settle: Duration,
    timeout: Duration,
    up: Option<(Duration, Observation)>,
}

impl Watch {
    /// `before` is the state just before the restart; `timeout` bounds only the coming up.
    pub fn new(before: Observation, settle: Duration, timeout: Duration) -> Self {
        Self {
            before,
            settle,
            timeout,
            up: None,
        }
    }

    /// Takes one observation made `elapsed` after the restart command returned.
    pub fn observe(&mut self, elapsed: Duration, obs: &Observation) -> Verdict {
        if let Some((since, first)) = &self.up {
            if !obs.running {
                return Verdict::Unhealthy(format!("it stopped while settling: {}", obs.detail));
            }
            if obs.pid != first.pid
                || obs.invocation != first.invocation
                || obs.restarts != first.restarts
            {
                return Verdict::Unhealthy(format!(
                    "it was restarted while settling (pid {} -> {})",
                    fmt_pid(first.pid),
                    fmt_pid(obs.pid)
                ));
            }
            // Once up, the full settle period, whatever health_timeout says.
            if elapsed.saturating_sub(*since) >= self.settle {
                return Verdict::Healthy;
            }
            return Verdict::Pending;
        }
        if obs.failed {
            return Verdict::Unhealthy(format!("it failed to start: {}", obs.detail));
        }
        let fresh = obs.running
            && (!self.before.running
                || obs.pid != self.before.pid
                || (obs.invocation.is_some() && obs.invocation != self.before.invocation));
        if fresh {
            self.up = Some((elapsed, obs.clone()));
            if self.settle.is_zero() {
                return Verdict::Healthy;
            }
            return Verdict::Pending;
        }
        if elapsed >= self.timeout {
            let limit = crate::timefmt::human_duration(self.timeout);
            return if obs.running {
                Verdict::Unknown(format!(
                    "it is running, but no new process was seen within health_timeout ({limit}): {}",
                    obs.detail
                ))
            } else {
                Verdict::Unhealthy(format!(
                    "it did not come up within health_timeout ({limit}): {}",
                    obs.detail
                ))
            };
        }
        Verdict::Pending
    }
}

fn fmt_pid(p: Option<u32>) -> String {
    p.map_or_else(|| "none".to_owned(), |p| p.to_string())
}

/// What a proof found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proven {
    /// Healthy; first seen up this long after the restart command returned.
    Healthy(Duration),
    /// Seen to be unhealthy: the release is to blame.
    Unhealthy(String),
    /// The service manager could not restart or be asked, or the daemon runs but was not
    /// seen to start anew: health is unknown.
    Unknown(String),
    /// Stopped waiting before a verdict (a signal's grace ended).
    Abandoned(String),
    /// Nothing was tried: the manager could not be asked before the restart.
    Untried(String),
}

/// Watches a restarted daemon until a verdict.
pub struct Watcher<'a> {
    pub manager: &'a dyn ServiceManager,
    pub runner: &'a dyn Runner,
    pub clock: &'a dyn Clock,
    pub settle: Duration,
    pub timeout: Duration,
    pub health_command: Option<&'a [String]>,
}

impl std::fmt::Debug for Watcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("settle", &self.settle)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The command `health_command` runs (also shown by `--dry-run`).
pub fn health_cmd(argv: &[String], limit: Duration) -> Option<Cmd> {
    let (program, args) = argv.split_first()?;
    Some(
        Cmd::new(program, "run health_command")
            .args(args)
            .timeout(limit)
            .on_signal(OnSignal::Finish),
    )
}

impl Watcher<'_> {
    /// Watches from the moment the restart command returned. `give_up` is asked between
    /// observations; `Some(why)` stops the watch without a verdict.
    pub fn watch(&self, before: &Observation, give_up: &dyn Fn() -> Option<String>) -> Proven {
        let start = self.clock.instant();
        let mut watch = Watch::new(before.clone(), self.settle, self.timeout);
        let mut up_after = None;
        let mut failures = 0;
        loop {
            if let Some(why) = give_up() {
                return Proven::Abandoned(why);
            }
            let elapsed = self.clock.instant().saturating_duration_since(start);
            let obs = match self.manager.observe(self.runner) {
                Ok(obs) => obs,
                // One failed look is not a verdict; the manager may be busy.
                Err(e) if failures < 2 => {
                    failures += 1;
                    log::debug!("could not observe the service ({e:#}); trying again");
                    self.clock.sleep(POLL);
                    continue;
                }
                Err(e) => return Proven::Unknown(format!("{e:#}")),
            };
            let verdict = watch.observe(elapsed, &obs);
            if up_after.is_none() {
                up_after = watch.up.as_ref().map(|(since, _)| *since);
            }
            match verdict {
                Verdict::Pending => self.clock.sleep(POLL),
                Verdict::Unhealthy(why) => return Proven::Unhealthy(why),
                Verdict::Unknown(why) => return Proven::Unknown(why),
                Verdict::Healthy => break,
            }
        }
        if let Some(cmd) = self
            .health_command
            .and_then(|argv| health_cmd(argv, self.timeout))
            && let Err(e) = run_checked(self.runner, &cmd)
        {
            // Cut short by a signal (or the end of its grace), it said nothing about the
            // release.
            let interrupted = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<crate::process::RunError>(),
                    Some(crate::process::RunError::Interrupted { .. })
                )
            });
            if let Some(why) = give_up() {
                return Proven::Abandoned(why);
            }
            if interrupted {
                return Proven::Abandoned(format!("health_command was stopped: {e:#}"));
            }
            return Proven::Unhealthy(format!("health_command failed: {e:#}"));
        }
        Proven::Healthy(up_after.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(pid: u32) -> Observation {
        Observation {
            running: true,
            pid: Some(pid),
            restarts: Some(0),
            invocation: Some(format!("i{pid}")),
            ..Default::default()
        }
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn watch() -> Watch {
        Watch::new(up(100), s(10), s(60))
    }

    #[test]
    fn healthy_after_a_new_pid_stays_up_for_the_settle_period() {
        let mut w = watch();
        assert_eq!(
            w.observe(s(0), &up(100)),
            Verdict::Pending,
            "still the old process"
        );
        assert_eq!(w.observe(s(1), &up(200)), Verdict::Pending);
        assert_eq!(w.observe(s(6), &up(200)), Verdict::Pending);
        assert_eq!(w.observe(s(11), &up(200)), Verdict::Healthy);
    }

    #[test]
    fn unhealthy_when_it_dies_while_settling() {
        let mut w = watch();
        w.observe(s(1), &up(200));
        let v = w.observe(
            s(3),
            &Observation {
                detail: "hephd.service: failed".into(),
                ..Default::default()
            },
        );
        assert!(matches!(v, Verdict::Unhealthy(m) if m.contains("stopped while settling")));
    }

    #[test]
    fn unhealthy_when_restarted_while_settling() {
        let mut w = watch();
        w.observe(s(1), &up(200));
        let mut again = up(300);
        again.restarts = Some(1);
        assert!(
            matches!(w.observe(s(4), &again), Verdict::Unhealthy(m) if m.contains("200 -> 300"))
        );
    }

    #[test]
    fn unhealthy_at_once_when_it_fails_to_start() {
        let mut w = watch();
        let failed = Observation {
            failed: true,
            detail: "failed (exit-code)".into(),
            ..Default::default()
        };
        assert!(
            matches!(w.observe(s(1), &failed), Verdict::Unhealthy(m) if m.contains("failed to start"))
        );
    }

    #[test]
    fn once_up_it_gets_the_full_settle_period_whatever_the_timeout() {
        let mut w = Watch::new(up(100), s(10), s(15));
        assert_eq!(w.observe(s(14), &up(200)), Verdict::Pending, "up at 14 s");
        assert_eq!(
            w.observe(s(20), &up(200)),
            Verdict::Pending,
            "past the timeout"
        );
        assert_eq!(w.observe(s(24), &up(200)), Verdict::Healthy);
    }

    #[test]
    fn a_running_daemon_that_was_not_seen_to_restart_is_unknown_not_bad() {
        let mut w = Watch::new(up(100), s(10), s(60));
        assert!(
            matches!(w.observe(s(61), &up(100)), Verdict::Unknown(m) if m.contains("running")),
            "same process, still active: no proof either way"
        );
    }

    #[test]
    fn unhealthy_when_it_never_comes_up_in_time() {
        let mut w = watch();
        let starting = Observation {
            detail: "activating (start)".into(),
            ..Default::default()
        };
        assert_eq!(w.observe(s(30), &starting), Verdict::Pending);
        assert!(
            matches!(w.observe(s(61), &starting), Verdict::Unhealthy(m) if m.contains("did not come up within health_timeout"))
        );
    }

    #[test]
    fn a_service_that_was_down_before_counts_once_it_runs() {
        let mut w = Watch::new(Observation::default(), s(0), s(60));
        assert_eq!(w.observe(s(1), &up(100)), Verdict::Healthy);
    }
}
