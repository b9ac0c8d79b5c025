//! Restart by respawn: SIGTERM to the daemon's main process, and the service manager
//! starts it again — on the switched binary — by itself (systemd `Restart=always`, a
//! launchd `KeepAlive` job). It needs no privilege over the manager (a system unit's
//! `systemctl restart` needs root or a polkit rule), only to be the daemon's user: kill(2)
//! lets a process signal the processes of its own user. Observing stays the manager's
//! (`systemctl show`, `launchctl print`), which any user may do.
//!
//! The signal is sent by `kill -s TERM -- <pid>` as a child process, so it is a command the
//! plan shows and tests record. The PID is known only when the restart happens: the plan
//! shows `<MainPID of UNIT>` in its place.
//!
//! What is signalled: only the process the manager names as the unit's main process in the
//! observation made just before, never PID 0 or 1 (which kill(2) would take as "every
//! process of the group" and init) nor ourselves. A daemon that is not running is not
//! signalled: when the manager is about to start it anyway (`auto-restart`, `KeepAlive`),
//! that start runs the switched binary and is watched like any other; otherwise there is
//! nothing respawn can do, and the restart fails (the deploy takes that as "health
//! unknown").
//!
//! After the signal the daemon is down while the manager waits (`RestartSec=`, launchd's
//! `ThrottleInterval`). That gap is no failure until the manager has started it again (its
//! restart counter, `NRestarts` or `runs`, moved): a new process that dies afterwards is
//! the release's failure. A daemon the manager does not start again at all (`Restart=` is
//! not `always`, no `KeepAlive`) is not the release's fault: observing it is then an error,
//! so its health is unknown rather than bad.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::{Observation, ServiceManager, ServiceManagerKind};
use crate::process::{Cmd, CmdFailed, OnSignal, Runner};

/// The daemon's restart counter when it was handed to the manager to start again.
#[derive(Debug, Clone, Copy)]
struct HandOver {
    restarts: Option<u64>,
}

/// A service restarted by SIGTERM to its main process; observed through its manager.
pub struct Respawn {
    manager: Box<dyn ServiceManager>,
    kill: PathBuf,
    kind: ServiceManagerKind,
    service: String,
    handed_over: Cell<Option<HandOver>>,
}

impl std::fmt::Debug for Respawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Respawn")
            .field("manager", &self.manager.describe())
            .field("kill", &self.kill)
            .field("kind", &self.kind)
            .field("service", &self.service)
            .field("handed_over", &self.handed_over.get())
            .finish()
    }
}

impl Respawn {
    /// `manager` observes the service (its restart command is not used); `kill` is the
    /// kill(1) program.
    pub fn new(
        manager: Box<dyn ServiceManager>,
        kill: &Path,
        kind: ServiceManagerKind,
        service: &str,
    ) -> Self {
        Self {
            manager,
            kill: kill.to_path_buf(),
            kind,
            service: service.to_owned(),
            handed_over: Cell::new(None),
        }
    }

    /// Who starts the daemon again.
    fn restarter(&self) -> &'static str {
        match self.kind {
            ServiceManagerKind::Launchd => "launchd",
            _ => "systemd",
        }
    }

    /// The setting that makes it start the daemon again after SIGTERM.
    fn setting(&self) -> &'static str {
        match self.kind {
            ServiceManagerKind::Launchd => "KeepAlive",
            _ => "Restart=always",
        }
    }

    /// `kill -s TERM -- <pid>`; `pid` is a number, or the plan's placeholder.
    fn kill_cmd(&self, pid: &str) -> Cmd {
        Cmd::new(
            &self.kill,
            format!("send SIGTERM to the main process of {}", self.service),
        )
        .args(["-s", "TERM", "--", pid])
        .timeout(super::OBSERVE_TIMEOUT)
        .on_signal(OnSignal::Finish)
    }

    /// Takes an observation made after the hand-over: the gap while the manager waits to
    /// start the daemon again is not a failure; a daemon it will not start again is an
    /// error (no verdict on the release).
    fn judge(&self, mut obs: Observation) -> Result<Observation, String> {
        let Some(handed) = self.handed_over.get() else {
            return Ok(obs);
        };
        let started_again =
            matches!((obs.restarts, handed.restarts), (Some(now), Some(then)) if now > then);
        if obs.running || started_again {
            return Ok(obs);
        }
        if obs.restart_pending {
            obs.failed = false;
            obs.detail = format!("{}; {} starts it again", obs.detail, self.restarter());
            return Ok(obs);
        }
        if obs.failed {
            return Err(format!(
                "{}: it stopped after SIGTERM and {} does not start it again (respawn needs {} for {}, which `heph-selfupdate doctor` checks; or set restart = \"manager\")",
                obs.detail,
                self.restarter(),
                self.setting(),
                self.service
            ));
        }
        Ok(obs)
    }
}

/// PIDs that must never be signalled whatever a manager says: kill(2) takes 0 as "my
/// process group" and 1 is init; and never ourselves.
fn refuse(pid: u32) -> Option<&'static str> {
    match pid {
        0 | 1 => Some("PID 0 and 1 are never signalled"),
        p if p == std::process::id() => Some("that is heph-selfupdate itself"),
        _ => None,
    }
}

impl ServiceManager for Respawn {
    /// What the plan shows: the PID is read from the manager when the restart happens.
    fn restart_cmd(&self) -> Cmd {
        self.kill_cmd(&format!("<MainPID of {}>", self.service))
    }

    fn observe_cmd(&self) -> Cmd {
        self.manager.observe_cmd()
    }

    fn parse(&self, stdout: &str) -> Observation {
        let obs = self.manager.parse(stdout);
        self.judge(obs.clone()).unwrap_or(obs)
    }

    fn describe(&self) -> String {
        self.manager.describe()
    }

    fn restart(&self, runner: &dyn Runner) -> Result<()> {
        self.handed_over.set(None);
        let now = self
            .manager
            .observe(runner)
            .context("reading the main PID to send SIGTERM to")?;
        match now.pid.filter(|_| now.running) {
            Some(pid) => {
                if let Some(why) = refuse(pid) {
                    bail!(
                        "{} names {pid} as the main process of {}: refusing to signal it ({why})",
                        self.manager.describe(),
                        self.service
                    );
                }
                log::info!(
                    "sending SIGTERM to {}'s main process {pid}; {} ({}) starts it again on the switched binary",
                    self.service,
                    self.restarter(),
                    self.setting()
                );
                let cmd = self.kill_cmd(&pid.to_string());
                let out = runner.run(&cmd)?;
                if !out.success() {
                    // It may have exited by itself in between (a release dying at start), and
                    // then the manager is starting it again already. Still the same main
                    // process: the signal was refused.
                    let after = self.manager.observe(runner)?;
                    if after.running && after.pid == Some(pid) {
                        let failed = CmdFailed {
                            summary: cmd.summary.clone(),
                            command: cmd.display(),
                            output: out,
                        };
                        return Err(anyhow!(
                            "{failed}\n  respawn signals the daemon as this user: run heph-selfupdate as the user {} runs as, or set restart = \"manager\"",
                            self.service
                        ));
                    }
                    log::info!(
                        "process {pid} had already exited; {} is starting {} again",
                        self.restarter(),
                        self.service
                    );
                }
            }
            None if now.restart_pending => log::info!(
                "{} is not running, and {} is about to start it again (on the switched binary): nothing to signal",
                self.service,
                self.restarter()
            ),
            None => bail!(
                "{}: not running, so respawn has nothing to signal (it sends SIGTERM to the running daemon and lets {} start it again); start {}, as root for a system unit, then run again, or set restart = \"manager\"",
                now.detail,
                self.restarter(),
                self.service
            ),
        }
        self.handed_over.set(Some(HandOver {
            restarts: now.restarts,
        }));
        Ok(())
    }

    fn observe(&self, runner: &dyn Runner) -> Result<Observation> {
        let obs = self.manager.observe(runner)?;
        self.judge(obs).map_err(|why| anyhow!(why))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;
    use crate::process::Output;
    use crate::process::fake::{Recorder, ok};
    use crate::service::{Launchd, Systemd};

    fn systemd_respawn() -> Respawn {
        Respawn::new(
            Box::new(Systemd::new(
                Path::new("systemctl"),
                "hephd.service",
                false,
                Duration::from_secs(60),
            )),
            Path::new("/bin/kill"),
            ServiceManagerKind::SystemdSystem,
            "hephd.service",
        )
    }

    fn show(active: &str, sub: &str, pid: u32, restarts: u64) -> String {
        format!(
            "LoadState=loaded\nActiveState={active}\nSubState={sub}\nMainPID={pid}\nNRestarts={restarts}\nInvocationID=i{restarts}\n"
        )
    }

    /// A runner answering `systemctl show` from a queue and `kill` with `kill_code`.
    fn runner(shows: Vec<String>, kill_code: i32) -> Recorder<impl Fn(&Cmd) -> Output> {
        let shows = RefCell::new(shows.into_iter());
        Recorder::new(move |cmd: &Cmd| {
            if cmd.program.ends_with("kill") {
                Output {
                    code: Some(kill_code),
                    tail: vec!["kill: (4242) - Operation not permitted".into()],
                    ..Output::default()
                }
            } else {
                ok(&shows.borrow_mut().next().expect("an answer for show"))
            }
        })
    }

    #[test]
    fn the_plan_shows_the_kill_with_a_placeholder_for_the_pid() {
        assert_eq!(
            systemd_respawn().restart_cmd().display(),
            "/bin/kill -s TERM -- '<MainPID of hephd.service>'"
        );
        assert!(
            systemd_respawn()
                .observe_cmd()
                .display()
                .starts_with("systemctl show --property=")
        );
    }

    #[test]
    fn signals_the_main_pid_the_manager_names() {
        let r = runner(vec![show("active", "running", 4242, 0)], 0);
        systemd_respawn().restart(&r).unwrap();
        assert_eq!(
            r.lines(),
            [
                "systemctl show --property=LoadState,ActiveState,SubState,MainPID,NRestarts,InvocationID,ActiveEnterTimestamp hephd.service",
                "/bin/kill -s TERM -- 4242"
            ]
        );
    }

    #[test]
    fn a_daemon_that_is_not_running_is_not_signalled_and_the_restart_fails() {
        let r = runner(vec![show("failed", "failed", 0, 0)], 0);
        let err = systemd_respawn().restart(&r).unwrap_err();
        assert!(
            format!("{err:#}").contains("not running, so respawn has nothing to signal")
                && format!("{err:#}").contains("then run again"),
            "{err:#}"
        );
        assert!(
            r.lines().iter().all(|l| !l.contains("kill")),
            "{:?}",
            r.lines()
        );
        let r = runner(vec![show("inactive", "dead", 0, 0)], 0);
        assert!(systemd_respawn().restart(&r).is_err());
        assert_eq!(r.lines().len(), 1);
    }

    #[test]
    fn pid_1_is_never_signalled() {
        let r = runner(vec![show("active", "running", 1, 0)], 0);
        let err = systemd_respawn().restart(&r).unwrap_err();
        assert!(format!("{err:#}").contains("refusing"), "{err:#}");
        assert_eq!(r.lines().len(), 1, "only the observation ran");
    }

    #[test]
    fn a_daemon_waiting_for_its_automatic_restart_is_left_to_the_manager() {
        let r = runner(vec![show("activating", "auto-restart", 0, 3)], 0);
        systemd_respawn().restart(&r).unwrap();
        assert_eq!(r.lines().len(), 1, "no signal: {:?}", r.lines());
    }

    #[test]
    fn a_refused_signal_fails_unless_the_process_had_exited_by_itself() {
        let m = systemd_respawn();
        let r = runner(
            vec![
                show("active", "running", 4242, 0),
                show("active", "running", 4242, 0),
            ],
            1,
        );
        let err = m.restart(&r).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("Operation not permitted") && text.contains("as the user"),
            "{text}"
        );
        let r = runner(
            vec![
                show("active", "running", 4242, 0),
                show("activating", "auto-restart", 0, 0),
            ],
            1,
        );
        m.restart(&r).unwrap();
    }

    #[test]
    fn the_gap_after_the_signal_is_waiting_but_a_death_after_the_restart_is_a_failure() {
        let m = systemd_respawn();
        let r = runner(vec![show("active", "running", 4242, 2)], 0);
        m.restart(&r).unwrap();
        let gap = m.parse(&show("activating", "auto-restart", 0, 2));
        assert!(!gap.failed && !gap.running, "{gap:?}");
        assert!(
            gap.detail.contains("systemd starts it again"),
            "{}",
            gap.detail
        );
        let up = m.parse(&show("active", "running", 5000, 3));
        assert!(up.running && up.pid == Some(5000));
        let died = m.parse(&show("activating", "auto-restart", 0, 3));
        assert!(died.failed, "the new process died: {died:?}");
    }

    #[test]
    fn a_daemon_the_manager_does_not_start_again_gives_no_verdict_but_an_error() {
        let m = systemd_respawn();
        let r = runner(vec![show("active", "running", 4242, 0)], 0);
        m.restart(&r).unwrap();
        let r = runner(vec![show("inactive", "dead", 0, 0)], 0);
        let err = m.observe(&r).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not start it again")
                && format!("{err:#}").contains("Restart=always"),
            "{err:#}"
        );
    }

    #[test]
    fn before_any_restart_observations_are_the_managers_own() {
        let m = systemd_respawn();
        let o = m.parse(&show("activating", "auto-restart", 0, 0));
        assert!(o.failed, "not our signal: a crash");
    }

    #[test]
    fn a_launchd_keepalive_agent_is_respawned_the_same_way() {
        let m = Respawn::new(
            Box::new(Launchd::new(
                Path::new("launchctl"),
                "mcquack.eblume.heph",
                501,
                Duration::from_secs(60),
            )),
            Path::new("/bin/kill"),
            ServiceManagerKind::Launchd,
            "mcquack.eblume.heph",
        );
        let print = |state: &str, pid: Option<u32>, runs: u64, exit: &str| {
            format!(
                "gui/501/mcquack.eblume.heph = {{\n\tstate = {state}\n\tproperties = keepalive | runatload\n{}\truns = {runs}\n\tlast exit code = {exit}\n}}\n",
                pid.map(|p| format!("\tpid = {p}\n")).unwrap_or_default()
            )
        };
        assert_eq!(
            m.restart_cmd().display(),
            "/bin/kill -s TERM -- '<MainPID of mcquack.eblume.heph>'"
        );
        let answer = print("running", Some(812), 4, "(never exited)");
        let r = Recorder::new(move |cmd: &Cmd| {
            ok(if cmd.program.ends_with("kill") {
                ""
            } else {
                &answer
            })
        });
        m.restart(&r).unwrap();
        assert_eq!(
            r.lines(),
            [
                "launchctl print gui/501/mcquack.eblume.heph",
                "/bin/kill -s TERM -- 812"
            ]
        );
        let gap = m.parse(&print("not running", None, 4, "1"));
        assert!(!gap.failed, "{gap:?}");
        let died = m.parse(&print("not running", None, 5, "1"));
        assert!(died.failed, "{died:?}");
    }
}
