//! Proving the restarted daemon healthy: running with a new main PID, staying up without
//! a restart for `health_settle`, all within `health_timeout`, then `health_command` (if
//! any) exits 0. A restart command exiting 0 proves nothing by itself.

use std::time::Duration;

use crate::clock::Clock;
use crate::process::{Cmd, Runner, run_checked};
use crate::service::{Observation, ServiceManager};

/// How often the service manager is asked during the proof.
const POLL: Duration = Duration::from_millis(500);

/// The verdict so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    Healthy,
    Unhealthy(String),
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
    /// `before` is the state just before the restart.
    pub fn new(before: Observation, settle: Duration, timeout: Duration) -> Self {
        Self {
            before,
            settle,
            timeout,
            up: None,
        }
    }

    /// Takes one observation made `elapsed` after the restart.
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
            if elapsed.saturating_sub(*since) >= self.settle {
                return Verdict::Healthy;
            }
        } else {
            if obs.failed {
                return Verdict::Unhealthy(format!("it failed to start: {}", obs.detail));
            }
            let fresh = obs.running && (obs.pid != self.before.pid || !self.before.running);
            if fresh {
                self.up = Some((elapsed, obs.clone()));
                if self.settle.is_zero() {
                    return Verdict::Healthy;
                }
            }
        }
        if elapsed >= self.timeout {
            return Verdict::Unhealthy(format!(
                "it did not stay up within health_timeout ({}): {}",
                crate::timefmt::human_duration(self.timeout),
                obs.detail
            ));
        }
        Verdict::Pending
    }
}

fn fmt_pid(p: Option<u32>) -> String {
    p.map_or_else(|| "none".to_owned(), |p| p.to_string())
}

/// What the proof needs.
pub struct Proof<'a> {
    pub manager: &'a dyn ServiceManager,
    pub runner: &'a dyn Runner,
    pub clock: &'a dyn Clock,
    pub settle: Duration,
    pub timeout: Duration,
    pub health_command: Option<&'a [String]>,
}

impl std::fmt::Debug for Proof<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proof")
            .field("settle", &self.settle)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What the proof found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proven {
    /// Healthy, this long after the restart.
    Healthy(Duration),
    /// Seen to be unhealthy: the release is to blame.
    Unhealthy(String),
    /// The service manager could not restart or be asked: health is unknown.
    Unknown(String),
}

impl Proof<'_> {
    /// Restarts the service and proves it healthy.
    pub fn restart_and_prove(&self) -> Proven {
        let before = self.manager.observe(self.runner).unwrap_or_default();
        let start = self.clock.instant();
        if let Err(e) = self.manager.restart(self.runner) {
            return Proven::Unknown(format!("the restart failed: {e:#}"));
        }
        let mut watch = Watch::new(before, self.settle, self.timeout);
        loop {
            let elapsed = self.clock.instant().saturating_duration_since(start);
            let obs = match self.manager.observe(self.runner) {
                Ok(obs) => obs,
                Err(e) => return Proven::Unknown(format!("{e:#}")),
            };
            match watch.observe(elapsed, &obs) {
                Verdict::Pending => self.clock.sleep(POLL),
                Verdict::Unhealthy(why) => return Proven::Unhealthy(why),
                Verdict::Healthy => break,
            }
        }
        if let Some(argv) = self.health_command.filter(|a| !a.is_empty()) {
            let elapsed = self.clock.instant().saturating_duration_since(start);
            let left = self
                .timeout
                .saturating_sub(elapsed)
                .max(Duration::from_secs(10));
            let cmd = Cmd::new(&argv[0], "run health_command")
                .args(&argv[1..])
                .timeout(left);
            if let Err(e) = run_checked(self.runner, &cmd) {
                return Proven::Unhealthy(format!("health_command failed: {e:#}"));
            }
        }
        Proven::Healthy(self.clock.instant().saturating_duration_since(start))
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
    fn unhealthy_when_it_never_comes_up_in_time() {
        let mut w = watch();
        let starting = Observation {
            detail: "activating (start)".into(),
            ..Default::default()
        };
        assert_eq!(w.observe(s(30), &starting), Verdict::Pending);
        assert!(
            matches!(w.observe(s(61), &starting), Verdict::Unhealthy(m) if m.contains("health_timeout"))
        );
    }

    #[test]
    fn a_service_that_was_down_before_counts_once_it_runs() {
        let mut w = Watch::new(Observation::default(), s(0), s(60));
        assert_eq!(w.observe(s(1), &up(100)), Verdict::Healthy);
    }
}
