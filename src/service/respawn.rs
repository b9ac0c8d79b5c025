//! Restart by respawn: SIGTERM to the daemon's main process, and the service manager
//! starts it again — on the switched binary — by itself (systemd `Restart=always`, a
//! launchd `KeepAlive` job). It needs no privilege over the manager (a system unit's
//! `systemctl restart` needs root or a polkit rule), only to be the daemon's user: a
//! process may signal the processes of its own user. Observing stays the manager's
//! (`systemctl show`, `launchctl print`), which any user may do.
//!
//! What is signalled: only the process the manager names as the unit's main process, and
//! only while it still is. Between the manager's answer and the signal that process may
//! exit and its PID go to another one, so the signal is not sent by PID: the process is
//! held first (a pidfd, [`super::held`]), then confirmed — it is in the unit's control
//! group (systemd's `ControlGroup`), or, where there is none (launchd), the manager asked
//! again still names it — and signalled through what holds it, which reaches that process
//! or none. Never PID 0 or 1 (which kill(2) would take as "every process of the group"
//! and init) nor ourselves. No program runs for the signal: the plan says it in words.
//!
//! A daemon that is not running is not signalled: when the manager is about to start it
//! anyway (`auto-restart`, `KeepAlive`), that start runs the switched binary and is watched
//! like any other; otherwise there is nothing respawn can do, and the restart fails (the
//! deploy takes that as "health unknown").
//!
//! After the signal the daemon is down while the manager waits (`RestartSec=`, launchd's
//! `ThrottleInterval`). That gap is no failure until the manager has started it again (its
//! restart counter, `NRestarts` or `runs`, moved): a new process that dies afterwards is
//! the release's failure. A daemon the manager does not start again at all (`Restart=` is
//! not `always`, no `KeepAlive`) is not the release's fault: observing it is then an error,
//! so its health is unknown rather than bad.

use std::cell::Cell;
use std::io::ErrorKind;

use anyhow::{Context, Result, anyhow, bail};

use super::held::{HeldProcess, Processes, within};
use super::{Observation, ServiceManager, ServiceManagerKind};
use crate::process::{Cmd, Runner};

/// The daemon's restart counter when it was handed to the manager to start again.
#[derive(Debug, Clone, Copy)]
struct HandOver {
    restarts: Option<u64>,
}

/// A service restarted by SIGTERM to its main process; observed through its manager.
pub struct Respawn {
    manager: Box<dyn ServiceManager>,
    processes: Box<dyn Processes>,
    kind: ServiceManagerKind,
    service: String,
    handed_over: Cell<Option<HandOver>>,
}

impl std::fmt::Debug for Respawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Respawn")
            .field("manager", &self.manager.describe())
            .field("kind", &self.kind)
            .field("service", &self.service)
            .field("handed_over", &self.handed_over.get())
            .finish_non_exhaustive()
    }
}

/// What became of the signal.
enum Signalled {
    /// The unit's main process got SIGTERM.
    Sent,
    /// It had exited by itself (its PID may be another process's now): nothing was sent.
    Gone(String),
}

impl Respawn {
    /// `manager` observes the service (its restart command is not used); `processes`
    /// holds and signals the daemon's process.
    pub fn new(
        manager: Box<dyn ServiceManager>,
        processes: Box<dyn Processes>,
        kind: ServiceManagerKind,
        service: &str,
    ) -> Self {
        Self {
            manager,
            processes,
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

    /// SIGTERM to `pid`, the main process `now` names, if it still is: held, confirmed,
    /// signalled through what holds it.
    fn signal(&self, runner: &dyn Runner, now: &Observation, pid: u32) -> Result<Signalled> {
        let held = match self.processes.hold(pid) {
            Ok(held) => held,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Signalled::Gone(format!("process {pid} had already exited")));
            }
            Err(e) => {
                return Err(anyhow!(e).context(format!(
                    "could not hold process {pid}, the main process of {}, to signal it",
                    self.service
                )));
            }
        };
        if let Some(gone) = self.confirm(runner, now, held.as_ref())? {
            return Ok(Signalled::Gone(gone));
        }
        match held.terminate() {
            Ok(()) => Ok(Signalled::Sent),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Signalled::Gone(format!(
                "process {pid} exited before the signal"
            ))),
            Err(e) => Err(anyhow!(
                "could not send SIGTERM to the main process {pid} of {}: {e}\n  respawn signals the daemon as this user: run heph-selfupdate as the user {} runs as, or set restart = \"manager\"",
                self.service,
                self.service
            )),
        }
    }

    /// Confirms that the held process is still the unit's main process: `None` when it
    /// is, else why it is not (it exited; its PID is another process's now). An error when
    /// the manager still names it but it is not in the unit's control group.
    fn confirm(
        &self,
        runner: &dyn Runner,
        now: &Observation,
        held: &dyn HeldProcess,
    ) -> Result<Option<String>> {
        let pid = held.pid();
        let Some(unit) = &now.control_group else {
            // No control group to compare with (launchd): the manager, asked while we hold
            // the process, must still name it (it is their parent: a PID it names is not
            // reused before it has seen the process end).
            let again = self.manager.observe(runner)?;
            return Ok((!(again.running && again.pid == Some(pid))).then(|| {
                format!(
                    "process {pid} is no longer the main process of {} ({})",
                    self.service, again.detail
                )
            }));
        };
        let cgroups = match held.cgroups() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Some(format!("process {pid} had already exited")));
            }
            Err(e) => {
                return Err(anyhow!(e).context(format!("reading the cgroup of process {pid}")));
            }
        };
        if cgroups.iter().any(|c| within(c, unit)) {
            return Ok(None);
        }
        let shown = if cgroups.is_empty() {
            "none".to_owned()
        } else {
            cgroups.join(", ")
        };
        // Either the daemon exited and its PID went to another process, or the manager
        // still names a process that is outside the unit: then refuse, do not guess.
        let again = self.manager.observe(runner)?;
        if again.running && again.pid == Some(pid) {
            bail!(
                "{} names {pid} as the main process of {}, but that process is in the cgroup {shown}, not in the unit's {unit}: refusing to signal it\nhelp: set restart = \"manager\"",
                self.manager.describe(),
                self.service
            );
        }
        Ok(Some(format!(
            "process {pid} had exited and its PID is another process's now (in {shown}, not in {unit})"
        )))
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
    /// No program restarts the daemon: heph-selfupdate signals it ([`Self::restart_signal`]).
    fn restart_cmd(&self) -> Option<Cmd> {
        None
    }

    fn restart_signal(&self) -> Option<String> {
        Some(format!(
            "by SIGTERM to the main process of {} through a pidfd, once it is confirmed to be still the unit's; {} starts it again",
            self.service,
            self.restarter()
        ))
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
                match self.signal(runner, &now, pid)? {
                    Signalled::Sent => log::info!(
                        "sent SIGTERM to {}'s main process {pid}; {} ({}) starts it again on the switched binary",
                        self.service,
                        self.restarter(),
                        self.setting()
                    ),
                    // It died by itself (a release dying at start): the manager is
                    // starting it again already, or the observations will say it is not.
                    Signalled::Gone(why) => log::info!(
                        "{why}: nothing signalled; {} starts {} again",
                        self.restarter(),
                        self.service
                    ),
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
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;
    use std::io;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::process::Output;
    use crate::process::fake::{Recorder, ok};
    use crate::service::{Launchd, Systemd};

    const UNIT_CG: &str = "/system.slice/hephd.service";
    const OTHER_CG: &str = "/user.slice/user-1000.slice/session-3.scope";

    /// Before which step on the way to the signal the daemon exits and another process
    /// gets its PID.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Reuse {
        Hold,
        CgroupRead,
        Signal,
    }

    /// A process table: PID → the process that has it now (a generation, and its cgroup).
    /// Records which process got SIGTERM.
    #[derive(Default)]
    struct Table {
        procs: RefCell<BTreeMap<u32, (u32, String)>>,
        reuse: Cell<Option<Reuse>>,
        /// The process of this PID belongs to another user.
        foreign: Cell<bool>,
        signalled: RefCell<Vec<(u32, u32)>>,
    }

    impl Table {
        fn with(pid: u32, cgroup: &str) -> Rc<Self> {
            let t = Rc::new(Self::default());
            t.procs.borrow_mut().insert(pid, (0, cgroup.to_owned()));
            t
        }

        /// At `at`, the process of every PID exits and another process (of another
        /// program, in another cgroup) gets the PID.
        fn reuse_at(&self, at: Reuse) {
            if self.reuse.get() == Some(at) {
                self.reuse.set(None);
                for (generation, cgroup) in self.procs.borrow_mut().values_mut() {
                    *generation += 1;
                    OTHER_CG.clone_into(cgroup);
                }
            }
        }
    }

    struct Held {
        table: Rc<Table>,
        pid: u32,
        generation: u32,
    }

    impl Held {
        fn alive(&self) -> bool {
            self.table
                .procs
                .borrow()
                .get(&self.pid)
                .is_some_and(|(g, _)| *g == self.generation)
        }
    }

    impl HeldProcess for Held {
        fn pid(&self) -> u32 {
            self.pid
        }

        fn cgroups(&self) -> io::Result<Vec<String>> {
            self.table.reuse_at(Reuse::CgroupRead);
            let now = self.table.procs.borrow().get(&self.pid).cloned();
            // As the real one: the file is read by PID, then the holder must still live.
            let read = now.map(|(_, c)| vec![c]);
            match read {
                Some(c) if self.alive() => Ok(c),
                _ => Err(io::ErrorKind::NotFound.into()),
            }
        }

        fn terminate(&self) -> io::Result<()> {
            self.table.reuse_at(Reuse::Signal);
            if !self.alive() {
                return Err(io::ErrorKind::NotFound.into());
            }
            if self.table.foreign.get() {
                return Err(io::ErrorKind::PermissionDenied.into());
            }
            self.table
                .signalled
                .borrow_mut()
                .push((self.pid, self.generation));
            Ok(())
        }
    }

    struct Fake(Rc<Table>);

    impl Processes for Fake {
        fn hold(&self, pid: u32) -> io::Result<Box<dyn HeldProcess>> {
            self.0.reuse_at(Reuse::Hold);
            let generation = self
                .0
                .procs
                .borrow()
                .get(&pid)
                .map(|(g, _)| *g)
                .ok_or(io::ErrorKind::NotFound)?;
            Ok(Box::new(Held {
                table: Rc::clone(&self.0),
                pid,
                generation,
            }))
        }
    }

    fn systemd_respawn(table: &Rc<Table>) -> Respawn {
        Respawn::new(
            Box::new(Systemd::new(
                Path::new("systemctl"),
                "hephd.service",
                false,
                Duration::from_secs(60),
            )),
            Box::new(Fake(Rc::clone(table))),
            ServiceManagerKind::SystemdSystem,
            "hephd.service",
        )
    }

    fn show(active: &str, sub: &str, pid: u32, restarts: u64) -> String {
        format!(
            "LoadState=loaded\nActiveState={active}\nSubState={sub}\nMainPID={pid}\nNRestarts={restarts}\nInvocationID=i{restarts}\nControlGroup={}\n",
            if pid == 0 { "" } else { UNIT_CG }
        )
    }

    /// A runner answering `systemctl show` (or `launchctl print`) from a queue.
    fn runner(shows: Vec<String>) -> Recorder<impl Fn(&Cmd) -> Output> {
        let shows = RefCell::new(shows.into_iter());
        Recorder::new(move |_: &Cmd| ok(&shows.borrow_mut().next().expect("an answer")))
    }

    use std::path::Path;

    #[test]
    fn the_plan_says_how_the_signal_is_sent_and_runs_no_program_for_it() {
        let m = systemd_respawn(&Table::with(4242, UNIT_CG));
        assert!(m.restart_cmd().is_none());
        let said = m.restart_signal().unwrap();
        assert!(
            said.contains("SIGTERM to the main process of hephd.service through a pidfd")
                && said.contains("systemd starts it again"),
            "{said}"
        );
        assert!(
            m.observe_cmd()
                .display()
                .starts_with("systemctl show --property=")
        );
    }

    #[test]
    fn signals_the_main_process_the_manager_names_when_it_is_in_the_units_cgroup() {
        let t = Table::with(4242, UNIT_CG);
        let r = runner(vec![show("active", "running", 4242, 0)]);
        systemd_respawn(&t).restart(&r).unwrap();
        assert_eq!(*t.signalled.borrow(), [(4242, 0)]);
        assert_eq!(
            r.lines(),
            [
                "systemctl show --property=LoadState,ActiveState,SubState,MainPID,NRestarts,InvocationID,ActiveEnterTimestamp,ControlGroup hephd.service"
            ]
        );
        // A process in a cgroup the unit delegated below its own counts as the unit's.
        let t = Table::with(4242, &format!("{UNIT_CG}/worker"));
        let r = runner(vec![show("active", "running", 4242, 0)]);
        systemd_respawn(&t).restart(&r).unwrap();
        assert_eq!(*t.signalled.borrow(), [(4242, 0)]);
    }

    #[test]
    fn a_pid_reused_by_a_process_outside_the_unit_is_not_signalled() {
        // systemd named 4242; its process exited at once, and 4242 is another program's.
        let t = Table::with(4242, OTHER_CG);
        let r = runner(vec![
            show("active", "running", 4242, 0),
            show("activating", "auto-restart", 0, 0),
        ]);
        systemd_respawn(&t).restart(&r).unwrap();
        assert!(t.signalled.borrow().is_empty());
        // The manager still names a process outside the unit: refused, not guessed at.
        let t = Table::with(4242, OTHER_CG);
        let r = runner(vec![
            show("active", "running", 4242, 0),
            show("active", "running", 4242, 0),
        ]);
        let err = format!("{:#}", systemd_respawn(&t).restart(&r).unwrap_err());
        assert!(
            err.contains(&format!(
                "in the cgroup {OTHER_CG}, not in the unit's {UNIT_CG}"
            )) && err.contains("refusing to signal it"),
            "{err}"
        );
        assert!(t.signalled.borrow().is_empty());
    }

    #[test]
    fn wherever_the_pid_is_reused_the_signal_goes_to_the_units_process_or_to_none() {
        for at in [
            None,
            Some(Reuse::Hold),
            Some(Reuse::CgroupRead),
            Some(Reuse::Signal),
        ] {
            let t = Table::with(4242, UNIT_CG);
            t.reuse.set(at);
            let r = runner(vec![
                show("active", "running", 4242, 0),
                show("activating", "auto-restart", 0, 0),
            ]);
            systemd_respawn(&t)
                .restart(&r)
                .unwrap_or_else(|e| panic!("{at:?}: {e:#}"));
            let expected: &[(u32, u32)] = if at.is_none() { &[(4242, 0)] } else { &[] };
            assert_eq!(
                *t.signalled.borrow(),
                expected,
                "{at:?}: only the unit's own process (generation 0) may be signalled"
            );
        }
    }

    #[test]
    fn a_process_that_exits_before_it_is_held_is_left_to_the_manager() {
        let t = Rc::new(Table::default());
        let r = runner(vec![show("active", "running", 4242, 0)]);
        let m = systemd_respawn(&t);
        m.restart(&r).unwrap();
        assert!(t.signalled.borrow().is_empty());
        // Handed over: the manager's restart of it is watched like one after a signal.
        let gap = m.parse(&show("activating", "auto-restart", 0, 0));
        assert!(!gap.failed, "{gap:?}");
    }

    #[test]
    fn a_daemon_that_is_not_running_is_not_signalled_and_the_restart_fails() {
        let t = Table::with(4242, UNIT_CG);
        let r = runner(vec![show("failed", "failed", 0, 0)]);
        let err = systemd_respawn(&t).restart(&r).unwrap_err();
        assert!(
            format!("{err:#}").contains("not running, so respawn has nothing to signal")
                && format!("{err:#}").contains("then run again"),
            "{err:#}"
        );
        assert!(t.signalled.borrow().is_empty());
        let r = runner(vec![show("inactive", "dead", 0, 0)]);
        assert!(systemd_respawn(&t).restart(&r).is_err());
        assert_eq!(r.lines().len(), 1);
    }

    #[test]
    fn pid_1_is_never_signalled() {
        let t = Table::with(1, UNIT_CG);
        let r = runner(vec![show("active", "running", 1, 0)]);
        let err = systemd_respawn(&t).restart(&r).unwrap_err();
        assert!(format!("{err:#}").contains("refusing"), "{err:#}");
        assert!(t.signalled.borrow().is_empty());
    }

    #[test]
    fn a_daemon_waiting_for_its_automatic_restart_is_left_to_the_manager() {
        let t = Table::with(4242, UNIT_CG);
        let r = runner(vec![show("activating", "auto-restart", 0, 3)]);
        systemd_respawn(&t).restart(&r).unwrap();
        assert_eq!(r.lines().len(), 1);
        assert!(t.signalled.borrow().is_empty());
    }

    #[test]
    fn a_daemon_of_another_user_is_an_error_that_says_whom_to_run_as() {
        let t = Table::with(4242, UNIT_CG);
        t.foreign.set(true);
        let r = runner(vec![show("active", "running", 4242, 0)]);
        let text = format!("{:#}", systemd_respawn(&t).restart(&r).unwrap_err());
        assert!(
            text.contains("could not send SIGTERM to the main process 4242")
                && text.contains("as the user"),
            "{text}"
        );
    }

    #[test]
    fn the_gap_after_the_signal_is_waiting_but_a_death_after_the_restart_is_a_failure() {
        let m = systemd_respawn(&Table::with(4242, UNIT_CG));
        let r = runner(vec![show("active", "running", 4242, 2)]);
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
        let m = systemd_respawn(&Table::with(4242, UNIT_CG));
        let r = runner(vec![show("active", "running", 4242, 0)]);
        m.restart(&r).unwrap();
        let r = runner(vec![show("inactive", "dead", 0, 0)]);
        let err = m.observe(&r).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not start it again")
                && format!("{err:#}").contains("Restart=always"),
            "{err:#}"
        );
    }

    #[test]
    fn before_any_restart_observations_are_the_managers_own() {
        let m = systemd_respawn(&Table::with(4242, UNIT_CG));
        let o = m.parse(&show("activating", "auto-restart", 0, 0));
        assert!(o.failed, "not our signal: a crash");
    }

    fn launchd_respawn(table: &Rc<Table>) -> Respawn {
        Respawn::new(
            Box::new(Launchd::new(
                Path::new("launchctl"),
                "mcquack.eblume.heph",
                501,
                Duration::from_secs(60),
            )),
            Box::new(Fake(Rc::clone(table))),
            ServiceManagerKind::Launchd,
            "mcquack.eblume.heph",
        )
    }

    #[test]
    fn a_launchd_keepalive_agent_is_confirmed_by_asking_launchd_again() {
        let t = Table::with(812, "/");
        let m = launchd_respawn(&t);
        let print = |state: &str, pid: Option<u32>, runs: u64, exit: &str| {
            format!(
                "gui/501/mcquack.eblume.heph = {{\n\tstate = {state}\n\tproperties = keepalive | runatload\n{}\truns = {runs}\n\tlast exit code = {exit}\n}}\n",
                pid.map(|p| format!("\tpid = {p}\n")).unwrap_or_default()
            )
        };
        assert!(m.restart_cmd().is_none());
        assert!(
            m.restart_signal()
                .unwrap()
                .contains("launchd starts it again")
        );
        let running = print("running", Some(812), 4, "(never exited)");
        let r = runner(vec![running.clone(), running.clone()]);
        m.restart(&r).unwrap();
        assert_eq!(*t.signalled.borrow(), [(812, 0)]);
        assert_eq!(
            r.lines(),
            [
                "launchctl print gui/501/mcquack.eblume.heph",
                "launchctl print gui/501/mcquack.eblume.heph"
            ]
        );
        // launchd no longer names it when asked again: not signalled.
        let t2 = Table::with(812, "/");
        let m2 = launchd_respawn(&t2);
        let r = runner(vec![running, print("not running", None, 4, "0")]);
        m2.restart(&r).unwrap();
        assert!(t2.signalled.borrow().is_empty());
        let gap = m.parse(&print("not running", None, 4, "1"));
        assert!(!gap.failed, "{gap:?}");
        let died = m.parse(&print("not running", None, 5, "1"));
        assert!(died.failed, "{died:?}");
    }
}
