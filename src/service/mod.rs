//! The service manager that runs the daemon: restart it and observe it. `systemd`
//! (user or system scope) and `launchd` behind one trait; `none` when the user restarts
//! the daemon themselves. Either restarts through the manager's own command, or
//! ([`Respawn`]) sends SIGTERM to the daemon's main process and lets the manager start it
//! again, which needs no privilege over the manager.

pub mod held;
mod launchd;
mod respawn;
mod systemd;

use std::time::Duration;

use anyhow::Result;

use crate::process::{Cmd, Runner};

/// Time limit of one observation (`systemctl show`, `launchctl print`).
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(30);

pub use launchd::Launchd;
pub use respawn::Respawn;
pub use systemd::Systemd;

/// Which service manager restarts the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceManagerKind {
    SystemdUser,
    SystemdSystem,
    Launchd,
    None,
}

impl ServiceManagerKind {
    /// The default unit name or label.
    pub fn default_service(self) -> &'static str {
        match self {
            Self::SystemdUser | Self::SystemdSystem | Self::None => "hephd.service",
            Self::Launchd => "mcquack.eblume.heph",
        }
    }

    /// The command a person runs to see the daemon's state and log.
    pub fn status_command(self, service: &str, uid: u32) -> String {
        match self {
            Self::Launchd => format!("launchctl print gui/{uid}/{service}"),
            Self::SystemdUser => format!("systemctl --user status {service}"),
            Self::SystemdSystem | Self::None => format!("systemctl status {service}"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::SystemdUser => "systemd-user",
            Self::SystemdSystem => "systemd-system",
            Self::Launchd => "launchd",
            Self::None => "none",
        }
    }
}

/// What the service manager says about the daemon at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Up and running (not starting, not stopping, not failed).
    pub running: bool,
    /// Definitely failed or gone (not merely starting).
    pub failed: bool,
    pub pid: Option<u32>,
    /// How often the manager restarted it (systemd `NRestarts`, launchd `runs`).
    pub restarts: Option<u64>,
    /// Changes with every start (systemd `InvocationID`).
    pub invocation: Option<String>,
    /// The manager does not know the unit or label at all.
    pub missing: bool,
    /// Not running, and the manager starts it again by itself (systemd `auto-restart`, a
    /// launchd `KeepAlive` job).
    pub restart_pending: bool,
    /// A short description for messages.
    pub detail: String,
    /// Since when it is in its state, as the manager says it (systemd).
    pub since: Option<String>,
    /// The unit's control group (systemd `ControlGroup`): its processes are in it.
    pub control_group: Option<String>,
}

/// Restarting and observing the daemon's service.
pub trait ServiceManager {
    /// The command that restarts the service (also shown by `--dry-run`); `None` when no
    /// program restarts it (see [`ServiceManager::restart_signal`]).
    fn restart_cmd(&self) -> Option<Cmd>;
    /// What the restart does when heph-selfupdate signals the daemon itself instead of
    /// running a command, in words for `--dry-run`.
    fn restart_signal(&self) -> Option<String> {
        None
    }
    /// The command that reads the service's state.
    fn observe_cmd(&self) -> Cmd;
    /// Reads the service's state from `observe_cmd`'s output.
    fn parse(&self, stdout: &str) -> Observation;
    /// Human name: "systemd user unit hephd.service".
    fn describe(&self) -> String;

    /// Restarts the service; an error when the manager refuses.
    fn restart(&self, runner: &dyn Runner) -> Result<()> {
        let cmd = self
            .restart_cmd()
            .ok_or_else(|| anyhow::anyhow!("{} has no restart command", self.describe()))?;
        crate::process::run_checked(runner, &cmd)?;
        Ok(())
    }

    /// Observes the service; an error when the manager cannot be asked.
    fn observe(&self, runner: &dyn Runner) -> Result<Observation> {
        let cmd = self.observe_cmd();
        let out = runner.run(&cmd)?;
        if !out.success() {
            anyhow::bail!(
                "{} cannot be read: {}",
                self.describe(),
                out.tail_text().lines().last().unwrap_or("").trim()
            );
        }
        Ok(self.parse(&out.stdout))
    }
}

/// How the daemon is restarted after a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// The manager's restart command (`systemctl restart`, `launchctl kickstart -k`).
    #[default]
    Manager,
    /// SIGTERM to the main process; the manager starts it again (`Restart=always`,
    /// `KeepAlive`). Needs only to be the daemon's user.
    Respawn,
}

/// Which service runs the daemon, and the limits of talking to its manager.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub kind: ServiceManagerKind,
    /// The unit name or launchd label.
    pub name: String,
    /// Time limit of the restart command (it blocks while the old daemon stops).
    pub restart_timeout: Duration,
    /// How the restart is done.
    pub restart: Restart,
    /// Where the manager's programs (`systemctl`, `launchctl`, `kill`) come from.
    pub tools: crate::tool_path::ToolPath,
}

/// Makes the service manager for a [`ServiceSpec`]: the real programs, or a test's stand-in.
pub trait Services {
    /// `None` for `service_manager = "none"`.
    fn manager(&self, spec: &ServiceSpec) -> Option<Box<dyn ServiceManager>>;
}

/// The real service managers, their programs found in the spec's `tool_path`.
#[derive(Debug, Clone)]
pub struct SystemServices {
    pub uid: u32,
}

impl Services for SystemServices {
    fn manager(&self, spec: &ServiceSpec) -> Option<Box<dyn ServiceManager>> {
        let find = |name: &str| spec.tools.find(name).path;
        let systemctl = || find("systemctl");
        let manager: Box<dyn ServiceManager> = match spec.kind {
            ServiceManagerKind::SystemdUser => Box::new(Systemd::new(
                &systemctl(),
                &spec.name,
                true,
                spec.restart_timeout,
            )),
            ServiceManagerKind::SystemdSystem => Box::new(Systemd::new(
                &systemctl(),
                &spec.name,
                false,
                spec.restart_timeout,
            )),
            ServiceManagerKind::Launchd => Box::new(Launchd::new(
                &find("launchctl"),
                &spec.name,
                self.uid,
                spec.restart_timeout,
            )),
            ServiceManagerKind::None => return None,
        };
        Some(match spec.restart {
            Restart::Manager => manager,
            Restart::Respawn => Box::new(Respawn::new(
                manager,
                Box::new(held::SystemProcesses),
                spec.kind,
                &spec.name,
            )),
        })
    }
}
