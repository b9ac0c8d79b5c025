//! launchd: `launchctl kickstart -k gui/<uid>/<label>` restarts, `launchctl print` tells
//! the state. `print`'s format is not an API, so it is read defensively: only `state`,
//! `pid`, `runs`, `last exit code` and `properties` lines are used.

use std::path::{Path, PathBuf};

use super::{Observation, ServiceManager};
use std::time::Duration;

use crate::process::{Cmd, OnSignal};

/// A LaunchAgent in the user's GUI domain.
#[derive(Debug, Clone)]
pub struct Launchd {
    launchctl: PathBuf,
    label: String,
    uid: u32,
    restart_timeout: Duration,
}

impl Launchd {
    pub fn new(launchctl: &Path, label: &str, uid: u32, restart_timeout: Duration) -> Self {
        Self {
            launchctl: launchctl.to_path_buf(),
            label: label.to_owned(),
            uid,
            restart_timeout,
        }
    }

    /// `gui/<uid>/<label>`.
    pub fn target(&self) -> String {
        format!("gui/{}/{}", self.uid, self.label)
    }
}

impl ServiceManager for Launchd {
    fn restart_cmd(&self) -> Option<Cmd> {
        Some(
            Cmd::new(&self.launchctl, format!("restart {}", self.label))
                .args(["kickstart", "-k"])
                .arg(self.target())
                .timeout(self.restart_timeout)
                .on_signal(OnSignal::Finish),
        )
    }

    fn observe_cmd(&self) -> Cmd {
        Cmd::new(&self.launchctl, format!("read the state of {}", self.label))
            .arg("print")
            .arg(self.target())
            .timeout(super::OBSERVE_TIMEOUT)
            .on_signal(OnSignal::Finish)
    }

    fn parse(&self, stdout: &str) -> Observation {
        let get = |key: &str| {
            stdout.lines().find_map(|l| {
                let (k, v) = l.trim().split_once(" = ")?;
                (k == key).then(|| v.trim().to_owned())
            })
        };
        let state = get("state").unwrap_or_default();
        let pid = get("pid")
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|p| *p > 0);
        let last_exit = get("last exit code").unwrap_or_default();
        let exited_badly = !last_exit.is_empty() && last_exit != "0" && !last_exit.starts_with('(');
        // `properties = keepalive | runatload | …`: launchd spawns a KeepAlive job again
        // after it exits (after `ThrottleInterval`); `spawn scheduled` says so directly.
        let keepalive =
            get("properties").is_some_and(|p| p.split('|').any(|w| w.trim() == "keepalive"));
        let running = state == "running" && pid.is_some();
        Observation {
            running,
            failed: state != "running" && exited_badly,
            pid,
            restarts: get("runs").and_then(|r| r.parse().ok()),
            invocation: None,
            missing: false,
            since: None,
            control_group: None,
            restart_pending: !running && (keepalive || state == "spawn scheduled"),
            detail: format!(
                "{}: {}{}",
                self.label,
                if state.is_empty() {
                    "unknown state"
                } else {
                    &state
                },
                if last_exit.is_empty() {
                    String::new()
                } else {
                    format!(", last exit code {last_exit}")
                }
            ),
        }
    }

    fn describe(&self) -> String {
        format!("launchd agent {}", self.target())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Launchd {
        Launchd::new(
            Path::new("launchctl"),
            "mcquack.eblume.heph",
            501,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn commands_name_the_gui_domain() {
        assert_eq!(
            agent().restart_cmd().unwrap().display(),
            "launchctl kickstart -k gui/501/mcquack.eblume.heph"
        );
        assert_eq!(
            agent().observe_cmd().display(),
            "launchctl print gui/501/mcquack.eblume.heph"
        );
    }

    #[test]
    fn reads_print_output_defensively() {
        let text = "gui/501/mcquack.eblume.heph = {\n\tactive count = 1\n\tpath = /Users/u/Library/LaunchAgents/mcquack.eblume.heph.plist\n\tstate = running\n\n\tprogram = /Users/u/.cargo/bin/hephd\n\tpid = 812\n\truns = 4\n\tlast exit code = (never exited)\n\tendpoints = {\n\t}\n}\n";
        let o = agent().parse(text);
        assert!(o.running && !o.failed);
        assert_eq!((o.pid, o.restarts), (Some(812), Some(4)));
        let o =
            agent().parse("x = {\n\tstate = not running\n\truns = 5\n\tlast exit code = 1\n}\n");
        assert!(!o.running && o.failed);
        assert!(!o.restart_pending, "no KeepAlive: launchd leaves it");
        let o = agent().parse(
            "x = {\n\tstate = not running\n\tproperties = keepalive | runatload | inferred program\n\truns = 6\n\tlast exit code = 1\n}\n",
        );
        assert!(!o.running && o.failed && o.restart_pending);
        let o = agent().parse("something else entirely");
        assert!(!o.running && !o.failed && !o.restart_pending);
    }
}
