//! What runs heph-selfupdate unattended: the systemd timer or the launchd agent. Is it on,
//! and when does it run next? Asked of the manager itself; when it cannot be asked (no
//! user bus, say), the answer is "unknown" with the reason — never a guessed "off".

use std::time::Duration;

use serde::Serialize;

use crate::process::{Cmd, Runner};
use crate::service::ServiceManagerKind;
use crate::tool_path::ToolPath;

/// The systemd timer's name.
pub const TIMER: &str = "heph-selfupdate.timer";
/// The launchd agent's default label.
pub const AGENT: &str = "dev.hephaestus.selfupdate";
const ASK_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether updates run by themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// `Some(true)`: on; `Some(false)`: off; `None`: could not be asked.
    pub enabled: Option<bool>,
    /// When it runs next, as the manager says it.
    pub next: Option<String>,
    /// Words for people: "enabled; next run Fri 2026-11-27 10:23:00 UTC".
    pub detail: String,
}

/// The command that asks about the timer or agent, if there is one to ask (its program
/// found in `tools`).
pub fn ask_cmd(kind: ServiceManagerKind, uid: u32, tools: &ToolPath) -> Option<Cmd> {
    let (systemctl, launchctl) = (tools.find("systemctl").path, tools.find("launchctl").path);
    match kind {
        ServiceManagerKind::SystemdUser => Some(
            Cmd::new(systemctl, format!("ask about {TIMER}"))
                .args(["--user", "show", TIMER])
                .arg("--property=LoadState,UnitFileState,ActiveState,NextElapseUSecRealtime")
                .timeout(ASK_TIMEOUT),
        ),
        ServiceManagerKind::Launchd => Some(
            Cmd::new(launchctl, format!("ask about {AGENT}"))
                .arg("print")
                .arg(format!("gui/{uid}/{AGENT}"))
                .timeout(ASK_TIMEOUT),
        ),
        ServiceManagerKind::SystemdSystem | ServiceManagerKind::None => None,
    }
}

/// Reads `systemctl show` of the timer.
pub fn parse_systemd(stdout: &str) -> Schedule {
    let get = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map_or("", str::trim)
    };
    let (load, file, active, next) = (
        get("LoadState"),
        get("UnitFileState"),
        get("ActiveState"),
        get("NextElapseUSecRealtime"),
    );
    if load == "not-found" {
        return Schedule {
            enabled: Some(false),
            next: None,
            detail: format!("{TIMER} is not installed (updates are off; `make install enable`)"),
        };
    }
    let enabled = file == "enabled" || active == "active";
    let next = Some(next.to_owned()).filter(|n| !n.is_empty() && enabled);
    let states = [file, active]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    Schedule {
        enabled: Some(enabled),
        detail: match (&next, enabled) {
            (Some(n), true) => format!("{TIMER} is {states}; next run {n}"),
            (None, true) => format!("{TIMER} is {states}"),
            (_, false) => format!("{TIMER} is {states} (updates are off; `make enable`)"),
        },
        next,
    }
}

/// What the manager says, or "unknown" and why.
pub fn ask(runner: &dyn Runner, kind: ServiceManagerKind, cmd: Option<&Cmd>) -> Schedule {
    let Some(cmd) = cmd else {
        return Schedule {
            enabled: None,
            next: None,
            detail: match kind {
                ServiceManagerKind::SystemdSystem => {
                    "the system timer is not asked (see `systemctl list-timers`)".to_owned()
                }
                _ => "no timer with service_manager = none".to_owned(),
            },
        };
    };
    match runner.run(cmd) {
        Ok(out) if out.success() => match kind {
            ServiceManagerKind::Launchd => Schedule {
                enabled: Some(true),
                next: None,
                detail: format!("the agent {AGENT} is loaded (runs hourly)"),
            },
            _ => parse_systemd(&out.stdout),
        },
        // launchctl print fails for a label that is not loaded.
        Ok(_) if kind == ServiceManagerKind::Launchd => Schedule {
            enabled: Some(false),
            next: None,
            detail: format!("the agent {AGENT} is not loaded (updates are off; `make enable`)"),
        },
        Ok(out) => Schedule {
            enabled: None,
            next: None,
            detail: format!(
                "unknown: the timer could not be asked ({})",
                out.tail_text().lines().last().unwrap_or("").trim()
            ),
        },
        Err(e) => Schedule {
            enabled: None,
            next: None,
            detail: format!("unknown: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_enabled_timer_and_its_next_run() {
        let s = parse_systemd(
            "LoadState=loaded\nUnitFileState=enabled\nActiveState=active\nNextElapseUSecRealtime=Fri 2026-11-27 10:23:00 UTC\n",
        );
        assert_eq!(s.enabled, Some(true));
        assert_eq!(s.next.as_deref(), Some("Fri 2026-11-27 10:23:00 UTC"));
        assert!(s.detail.contains("next run Fri 2026-11-27 10:23:00 UTC"));
    }

    #[test]
    fn a_disabled_or_missing_timer_is_off() {
        let s = parse_systemd(
            "LoadState=loaded\nUnitFileState=disabled\nActiveState=inactive\nNextElapseUSecRealtime=\n",
        );
        assert_eq!(s.enabled, Some(false));
        let s = parse_systemd("LoadState=not-found\nUnitFileState=\nActiveState=inactive\n");
        assert_eq!(s.enabled, Some(false));
        assert!(s.detail.contains("not installed"));
    }

    #[test]
    fn a_manager_that_cannot_be_asked_is_unknown_not_off() {
        let r = crate::process::fake::Recorder::new(|_| crate::process::Output {
            code: Some(1),
            tail: vec!["Failed to connect to bus: No such file or directory".into()],
            ..Default::default()
        });
        let tools = ToolPath::new(vec!["/nonexistent".into()]);
        let cmd = ask_cmd(ServiceManagerKind::SystemdUser, 1000, &tools);
        let s = ask(&r, ServiceManagerKind::SystemdUser, cmd.as_ref());
        assert_eq!(s.enabled, None);
        assert!(s.detail.contains("unknown") && s.detail.contains("Failed to connect to bus"));
    }
}
