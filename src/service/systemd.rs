//! systemd: `systemctl [--user] restart` and `systemctl show`. A restart exiting 0 proves
//! nothing (the daemon may die a second later); health is read from `show`.

use std::path::{Path, PathBuf};

use super::{Observation, ServiceManager};
use std::time::Duration;

use crate::process::{Cmd, OnSignal};

/// A systemd unit, in the user's manager or the system's.
#[derive(Debug, Clone)]
pub struct Systemd {
    systemctl: PathBuf,
    unit: String,
    user: bool,
    restart_timeout: Duration,
}

impl Systemd {
    pub fn new(systemctl: &Path, unit: &str, user: bool, restart_timeout: Duration) -> Self {
        Self {
            systemctl: systemctl.to_path_buf(),
            unit: unit.to_owned(),
            user,
            restart_timeout,
        }
    }

    fn base(&self, summary: String) -> Cmd {
        // A switch must not be cut in half by a signal to us: these finish within their
        // own limits.
        let cmd = Cmd::new(&self.systemctl, summary).on_signal(OnSignal::Finish);
        if self.user { cmd.arg("--user") } else { cmd }
    }
}

impl ServiceManager for Systemd {
    fn restart_cmd(&self) -> Option<Cmd> {
        Some(
            self.base(format!("restart {}", self.unit))
                .arg("restart")
                .arg(&self.unit)
                .timeout(self.restart_timeout),
        )
    }

    fn observe_cmd(&self) -> Cmd {
        self.base(format!("read the state of {}", self.unit))
            .arg("show")
            .arg("--property=LoadState,ActiveState,SubState,MainPID,NRestarts,InvocationID,ActiveEnterTimestamp,ControlGroup")
            .arg(&self.unit)
            .timeout(super::OBSERVE_TIMEOUT)
    }

    fn parse(&self, stdout: &str) -> Observation {
        let get = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map_or("", str::trim)
        };
        let active = get("ActiveState");
        let sub = get("SubState");
        let load = get("LoadState");
        let pid = get("MainPID").parse::<u32>().ok().filter(|p| *p > 0);
        Observation {
            running: active == "active" && pid.is_some(),
            // `auto-restart`: it exited and systemd waits to start it again — it died.
            failed: active == "failed"
                || load == "not-found"
                || sub == "auto-restart"
                || (active == "inactive" && sub == "dead"),
            pid,
            restarts: get("NRestarts").parse().ok(),
            invocation: Some(get("InvocationID").to_owned()).filter(|s| !s.is_empty()),
            missing: load == "not-found",
            since: Some(get("ActiveEnterTimestamp").to_owned()).filter(|s| !s.is_empty()),
            control_group: Some(get("ControlGroup").to_owned()).filter(|s| !s.is_empty()),
            // systemd 254 and later add `auto-restart-queued` once the restart job is queued.
            restart_pending: sub.starts_with("auto-restart"),
            detail: format!(
                "{}: {}{}",
                self.unit,
                if load == "not-found" {
                    "not found"
                } else {
                    active
                },
                // "failed (failed)" says nothing twice.
                if sub.is_empty() || sub == active {
                    String::new()
                } else {
                    format!(" ({sub})")
                }
            ),
        }
    }

    fn describe(&self) -> String {
        format!(
            "systemd {} unit {}",
            if self.user { "user" } else { "system" },
            self.unit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> Systemd {
        Systemd::new(
            Path::new("systemctl"),
            "hephd.service",
            true,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn commands_use_the_user_manager() {
        assert_eq!(
            unit().restart_cmd().unwrap().display(),
            "systemctl --user restart hephd.service"
        );
        assert!(
            unit()
                .observe_cmd()
                .display()
                .starts_with("systemctl --user show --property=")
        );
        let system = Systemd::new(
            Path::new("systemctl"),
            "hephd.service",
            false,
            Duration::from_secs(60),
        );
        assert_eq!(
            system.restart_cmd().unwrap().display(),
            "systemctl restart hephd.service"
        );
    }

    #[test]
    fn reads_show_output() {
        let o = unit().parse("LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=4242\nNRestarts=3\nInvocationID=abc\nControlGroup=/user.slice/user-1000.slice/user@1000.service/app.slice/hephd.service\n");
        assert!(o.running && !o.failed);
        assert_eq!(
            o.control_group.as_deref(),
            Some("/user.slice/user-1000.slice/user@1000.service/app.slice/hephd.service")
        );
        assert_eq!(o.pid, Some(4242));
        assert_eq!(o.restarts, Some(3));
        assert_eq!(o.invocation.as_deref(), Some("abc"));
        let o = unit().parse("LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nMainPID=0\nNRestarts=4\n");
        assert!(!o.running && o.failed, "waiting to restart after a crash");
        assert!(o.restart_pending, "systemd starts it again by itself");
        let o =
            unit().parse("LoadState=loaded\nActiveState=activating\nSubState=start\nMainPID=0\n");
        assert!(!o.running && !o.failed, "still starting");
        let o = unit().parse("LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\n");
        assert!(o.failed && !o.restart_pending);
        assert_eq!(o.detail, "hephd.service: failed", "not \"failed (failed)\"");
        let o =
            unit().parse("LoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\n");
        assert!(o.failed && o.missing && o.detail.contains("not found"));
    }
}
