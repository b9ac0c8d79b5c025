//! The one deploy step, used by an update, `--to` and `rollback` alike: switch `current`
//! to a version root, restart the daemon, prove it healthy, then commit — or revert to
//! where it was and prove that.
//!
//! It is a transaction with a write-ahead [`Intent`] in the state file: saved before
//! `current` changes, advanced before each phase, removed only when a proven outcome is
//! recorded. A run that dies mid-way (SIGKILL, OOM, power loss) leaves the intent; the next
//! run — or `status`, `check`, `rollback` — finishes it with [`Deployer::resume`] before
//! deciding anything. A signal (SIGTERM, Ctrl-C) during a switch does not cut it in half:
//! the switch is finished within [`SIGNAL_GRACE`] (the proof completed, or the revert with
//! its restart), or left with its intent for the next run; a second signal leaves it at
//! once. An interruption is never recorded as a failed rollback, a bad release or a backoff.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::health::{Proven, Watcher};
use crate::installed::ask_version;
use crate::layout::Layout;
use crate::lock::RunLock;
use crate::notify::Event;
use crate::process::{Cmd, Output, RunError, Runner};
use crate::service::{Observation, ServiceManager, ServiceManagerKind, ServiceSpec};
use crate::state::{Intent, Outcome, Phase, Purpose, Seen, State, StateFile};
use crate::world::World;

pub use crate::signals::GRACE as SIGNAL_GRACE;

/// What a switch needs to know, from the configuration.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    pub packages: Vec<String>,
    /// The binary whose `--version` tells what runs.
    pub binary: String,
    pub service: ServiceSpec,
    pub health_settle: Duration,
    pub health_timeout: Duration,
    pub health_command: Option<Vec<String>>,
    pub notify_command: Option<Vec<String>>,
    /// The command a person runs to see the daemon (for help lines).
    pub status_command: String,
}

/// How a switch ended.
#[derive(Debug)]
pub enum Ending {
    /// `to` runs, proven healthy.
    Committed { took: Duration },
    /// `service_manager = none`: switched; the person restarts the daemon.
    Unmanaged,
    /// `to` failed; `from` runs again, proven healthy.
    Reverted {
        why: String,
        proven_bad: bool,
        /// The release was not at fault (its root was gone): no mark, no backoff.
        blameless: bool,
    },
    /// `to` failed and there is no earlier root: `to` stays.
    NoWayBack { why: String, proven_bad: bool },
    /// `to` failed, and after going back and restarting, `from` failed too.
    RevertFailed {
        why: String,
        back_why: String,
        proven_bad: bool,
    },
    /// No verdict: the intent stays, and the next run finishes the switch.
    Unfinished { why: String, interrupted: bool },
    /// The files could not be switched; nothing was restarted and `current` is back.
    SwitchFailed(anyhow::Error),
}

/// What a person (and the history, the notifier, the exit code) is told about an ending.
#[derive(Debug, Clone)]
pub struct Told {
    pub outcome: Outcome,
    pub message: String,
    /// `help:` lines.
    pub help: Vec<String>,
    pub event: Option<Event>,
    pub exit_code: i32,
}

impl Told {
    /// True when the ending is a success.
    pub fn ok(&self) -> bool {
        self.exit_code == crate::exit::OK
    }
}

/// Tracks the grace after the first signal (noticed once, shared with the runner).
struct Grace<'a> {
    world: &'a World,
}

impl Grace<'_> {
    /// `Some(why)` once the switch should be left to the next run.
    fn over(&self) -> Option<String> {
        match self.world.interrupt.count() {
            0 => None,
            1 => {
                let now = self.world.clock.instant();
                let deadline = self.deadline()?;
                (now >= deadline).then(|| {
                    format!(
                        "stopped by a signal; the switch did not finish within {}",
                        crate::timefmt::human_duration(SIGNAL_GRACE)
                    )
                })
            }
            _ => Some("stopped by a second signal".to_owned()),
        }
    }

    /// When the grace ends, once a signal arrived.
    fn deadline(&self) -> Option<Instant> {
        let noticed = self.world.interrupt.noticed(self.world.clock.instant())?;
        Some(noticed + SIGNAL_GRACE)
    }

    /// Time left before the grace ends, once a signal arrived.
    fn left(&self) -> Option<Duration> {
        self.over();
        self.deadline()
            .map(|d| d.saturating_duration_since(self.world.clock.instant()))
    }
}

/// A runner whose commands end by the end of the grace, once a signal arrived.
struct Capped<'a> {
    inner: &'a dyn Runner,
    grace: &'a Grace<'a>,
}

impl Runner for Capped<'_> {
    fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
        match self.grace.left() {
            Some(left) => {
                let mut cmd = cmd.clone();
                cmd.timeout = Some(cmd.timeout.map_or(left, |t| t.min(left)));
                self.inner.run(&cmd)
            }
            None => self.inner.run(cmd),
        }
    }
}

/// Runs switches.
pub struct Deployer<'a> {
    pub world: &'a World,
    pub settings: &'a DeploySettings,
    pub layout: &'a Layout,
    pub manager: Option<Box<dyn ServiceManager>>,
    pub state_file: &'a StateFile,
    pub lock: &'a RunLock,
}

impl std::fmt::Debug for Deployer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The daemon as seen before a restart, for the intent.
fn seen(obs: &Observation) -> Seen {
    Seen {
        pid: obs.pid.filter(|_| obs.running),
        invocation: obs.invocation.clone(),
    }
}

impl<'a> Deployer<'a> {
    pub fn new(
        world: &'a World,
        settings: &'a DeploySettings,
        layout: &'a Layout,
        state_file: &'a StateFile,
        lock: &'a RunLock,
    ) -> Self {
        Self {
            world,
            settings,
            layout,
            manager: world.services.manager(&settings.service),
            state_file,
            lock,
        }
    }

    /// The service, in words.
    pub fn describe_service(&self) -> String {
        self.manager
            .as_ref()
            .map_or_else(|| self.settings.binary.clone(), |m| m.describe())
    }

    /// Switches from the root `current` names now to `to`, proves, commits or reverts.
    pub fn switch(
        &self,
        state: &mut State,
        to: &str,
        purpose: Purpose,
        log: Option<std::path::PathBuf>,
    ) -> (Intent, Ending) {
        let from = self.layout.current().filter(|c| c != to);
        let version_of = |name: &str| {
            self.layout
                .find(name)
                .and_then(|r| r.version())
                .map_or_else(|| name.to_owned(), |v| v.to_string())
        };
        let mut intent = Intent {
            from_version: from.as_deref().map(version_of),
            from,
            to_version: version_of(to),
            to: to.to_owned(),
            purpose,
            started: self.world.clock.now(),
            phase: Phase::Switching,
            pid: std::process::id(),
            before: None,
            revert_reason: None,
            to_proven_bad: false,
            blameless: false,
            log,
        };
        // Write-ahead: nothing changes before the intent is on disk.
        state.intent = Some(intent.clone());
        if let Err(e) = self.state_file.save(state, self.lock) {
            state.intent = None;
            return (
                intent,
                Ending::SwitchFailed(e.context("saving the switch's intent before it starts")),
            );
        }
        let ending = self.drive(state, &mut intent, false);
        self.leave_if_unfinished(state, &mut intent, &ending);
        (intent, ending)
    }

    /// Finishes a switch an earlier run left unfinished, if there is one. Returns the
    /// intent as it was found (for the history) and how the switch ended.
    pub fn resume(&self, state: &mut State) -> Option<(Intent, Ending)> {
        let found = state.intent.clone()?;
        let mut intent = found.clone();
        let (from, to) = (
            intent.from_version.as_deref().unwrap_or("nothing"),
            &intent.to_version,
        );
        if intent.pid == 0 {
            log::warn!(
                "a switch {from} -> {to} was left unfinished ({}); taking it up again",
                intent.phase.as_str()
            );
        } else {
            log::warn!(
                "an earlier run (pid {}) stopped while {} {from} -> {to} ({}); finishing that switch first",
                intent.pid,
                intent.phase.as_str(),
                intent.purpose.as_str()
            );
        }
        intent.pid = std::process::id();
        let ending = self.drive(state, &mut intent, true);
        self.leave_if_unfinished(state, &mut intent, &ending);
        Some((found, ending))
    }

    /// An unfinished switch stays on disk; marked as left by a run that said so (pid 0),
    /// so the next run does not record this one as dead.
    fn leave_if_unfinished(&self, state: &mut State, intent: &mut Intent, ending: &Ending) {
        if matches!(ending, Ending::Unfinished { .. }) {
            intent.pid = 0;
            state.intent = Some(intent.clone());
            if let Err(e) = self.state_file.save(state, self.lock) {
                log::warn!("could not save the unfinished switch: {e:#}");
            }
        }
    }

    /// Saves the intent at a new phase. Only the first save and the turn back are
    /// preconditions (see [`Self::switch`] and [`Self::drive`]): after a later save that
    /// fails, the previous phase on disk leads a next run to the same actions.
    fn advance(&self, state: &mut State, intent: &mut Intent, phase: Phase) -> Result<()> {
        intent.phase = phase;
        state.intent = Some(intent.clone());
        self.state_file
            .save(state, self.lock)
            .inspect_err(|e| log::warn!("could not save the switch's progress: {e:#}"))
    }

    /// Closes the intent: the outcome is proven (or as known as it can be).
    fn close(&self, state: &mut State) {
        state.intent = None;
        if let Err(e) = self.state_file.save(state, self.lock) {
            log::warn!("could not save the end of the switch: {e:#}");
        }
    }

    /// Points `current` at `root` and links every binary it holds (whatever `packages`
    /// says now). `with_daemon`: the root must hold `binary` (a release to switch to; the
    /// way back goes wherever the daemon ran before).
    fn point_at(&self, root: &str, with_daemon: bool) -> Result<()> {
        // A root that is gone (removed by hand) must never become `current`.
        let found = self.layout.find(root);
        let Some((found, binaries)) = found.and_then(|r| {
            let b = r.binaries()?;
            Some((r, b))
        }) else {
            anyhow::bail!(
                "the version root {root} is gone or incomplete ({})",
                self.layout.root(root).display()
            );
        };
        let binary = &self.settings.binary;
        if with_daemon && !binaries.contains(binary) {
            anyhow::bail!(
                "the version root {root} holds no `{binary}` (`binary`): {}\nhelp: set `binary` to the daemon's binary, one of: {}",
                found.describe(),
                binaries.join(", ")
            );
        }
        self.layout.set_current(root)?;
        self.layout.link_binaries(&binaries)
    }

    /// Runs the switch from the intent's phase to an ending.
    fn drive(&self, state: &mut State, intent: &mut Intent, resume: bool) -> Ending {
        let grace = Grace { world: self.world };
        let _finishing = self.world.interrupt.finishing("the switch");
        if !intent.phase.reverting() {
            if intent.phase == Phase::Switching || resume {
                if let Err(e) = self.point_at(&intent.to, true) {
                    if resume {
                        // Taken up again: the daemon may run either version. Go back (not
                        // the release's fault), or keep the intent for the next run.
                        return self.turn_back(state, intent, &format!("{e:#}"), &grace);
                    }
                    // Nothing was restarted: put `current` back where it was.
                    if let Some(from) = &intent.from {
                        let _ = self.point_at(from, false);
                    }
                    self.close(state);
                    return Ending::SwitchFailed(e.context("switching to the new version root"));
                }
                log::info!(
                    "switched {} to version root {}",
                    self.layout.bin_dir.display(),
                    intent.to
                );
                self.check_version(&intent.to_version);
            }
            let Some(manager) = self.manager.as_deref() else {
                state.clear_holds_for(&intent.to_version);
                self.close(state);
                return Ending::Unmanaged;
            };
            let resumed = resume && matches!(intent.phase, Phase::Restarting | Phase::Proving);
            let proven = self.restart_and_watch(
                state,
                intent,
                manager,
                (Phase::Restarting, Phase::Proving),
                resumed,
                &grace,
            );
            let now = self.world.clock.now();
            match proven {
                Proven::Healthy(took) => {
                    log::info!(
                        "{} is healthy (up {} after the restart, then settled)",
                        manager.describe(),
                        crate::timefmt::human_duration(took)
                    );
                    state.mark_proven(&intent.to, now);
                    state.last_from.clone_from(&intent.from);
                    state.clear_holds_for(&intent.to_version);
                    // A staged root of this version or an older one has had its turn.
                    let to = semver::Version::parse(&intent.to_version).ok();
                    if state.staged.as_ref().is_some_and(|st| {
                        st.root == intent.to
                            || semver::Version::parse(&st.version)
                                .ok()
                                .zip(to.as_ref())
                                .is_some_and(|(s, t)| s.cmp_precedence(t).is_le())
                    }) {
                        state.staged = None;
                    }
                    self.close(state);
                    return Ending::Committed { took };
                }
                Proven::Abandoned(why) => {
                    return Ending::Unfinished {
                        why,
                        interrupted: true,
                    };
                }
                Proven::Untried(why) => {
                    return Ending::Unfinished {
                        why,
                        interrupted: false,
                    };
                }
                Proven::Unhealthy(why) => {
                    log::error!("{} is unhealthy: {why}", intent.to_version);
                    state.mark_bad(&intent.to_version, now, &why);
                    intent.to_proven_bad = true;
                    intent.revert_reason = Some(why);
                }
                Proven::Unknown(why) => {
                    // Not proven bad: go back, and try the release again after a backoff.
                    log::error!("the health of {} is unknown: {why}", intent.to_version);
                    let until = state.note_build_failure(&intent.to_version, now, &why);
                    log::warn!(
                        "{} is not tried again before {} (backoff)",
                        intent.to_version,
                        crate::timefmt::rfc3339(until)
                    );
                    intent.revert_reason = Some(why);
                }
            }
            // The turn back must be on disk before `current` moves: a run resuming from
            // "proving" would take the old daemon the revert starts for the new one.
            if let Err(e) = self.advance(state, intent, Phase::Reverting) {
                return Ending::Unfinished {
                    why: format!("the turn back could not be saved: {e:#}"),
                    interrupted: false,
                };
            }
        }
        self.revert(state, intent, &grace, resume)
    }

    /// Goes back without blaming the release: its root could not be used again.
    fn turn_back(
        &self,
        state: &mut State,
        intent: &mut Intent,
        why: &str,
        grace: &Grace<'_>,
    ) -> Ending {
        log::error!(
            "the switch to {} cannot be finished: {why}",
            intent.to_version
        );
        intent.revert_reason = Some(why.to_owned());
        intent.to_proven_bad = false;
        intent.blameless = true;
        if let Err(e) = self.advance(state, intent, Phase::Reverting) {
            return Ending::Unfinished {
                why: format!("the turn back could not be saved: {e:#}"),
                interrupted: false,
            };
        }
        self.revert(state, intent, grace, false)
    }

    /// The way back to `from`: switch, restart, prove.
    fn revert(
        &self,
        state: &mut State,
        intent: &mut Intent,
        grace: &Grace<'_>,
        resume: bool,
    ) -> Ending {
        let why = intent
            .revert_reason
            .clone()
            .unwrap_or_else(|| "it was not proven healthy".to_owned());
        let proven_bad = intent.to_proven_bad;
        let Some(from) = intent.from.clone() else {
            self.close(state);
            return Ending::NoWayBack { why, proven_bad };
        };
        if self.layout.find(&from).and_then(|r| r.binaries()).is_none() {
            // Nothing left to go back to: say so, instead of retrying for ever.
            self.close(state);
            return Ending::NoWayBack {
                why: format!("{why}; the version root {from} to go back to is gone too"),
                proven_bad,
            };
        }
        let Some(manager) = self.manager.as_deref() else {
            // Unreachable in practice (no manager means no proof, hence no revert).
            self.close(state);
            return Ending::NoWayBack { why, proven_bad };
        };
        log::warn!("rolling back to {from}");
        if let Err(e) = self.point_at(&from, false) {
            return Ending::Unfinished {
                why: format!("could not switch back to {from}: {e:#}"),
                interrupted: false,
            };
        }
        let resumed =
            resume && matches!(intent.phase, Phase::RevertRestarting | Phase::RevertProving);
        match self.restart_and_watch(
            state,
            intent,
            manager,
            (Phase::RevertRestarting, Phase::RevertProving),
            resumed,
            grace,
        ) {
            Proven::Healthy(_) => {
                state.mark_proven(&from, self.world.clock.now());
                self.close(state);
                Ending::Reverted {
                    why,
                    proven_bad,
                    blameless: intent.blameless,
                }
            }
            Proven::Unhealthy(back_why) => {
                self.close(state);
                Ending::RevertFailed {
                    why,
                    back_why,
                    proven_bad,
                }
            }
            // The way back could not be proven either way: keep the intent, so the next
            // run tries again, rather than call it a failed rollback.
            Proven::Unknown(back_why) | Proven::Untried(back_why) => Ending::Unfinished {
                why: format!(
                    "going back to {}: {back_why}",
                    intent.from_version.as_deref().unwrap_or(&from)
                ),
                interrupted: false,
            },
            Proven::Abandoned(why) => Ending::Unfinished {
                why,
                interrupted: true,
            },
        }
    }

    /// The restart (unless resuming a proof already under way) and the proof.
    fn restart_and_watch(
        &self,
        state: &mut State,
        intent: &mut Intent,
        manager: &dyn ServiceManager,
        (restarting, proving): (Phase, Phase),
        resumed: bool,
        grace: &Grace<'_>,
    ) -> Proven {
        let runner = Capped {
            inner: self.world.runner.as_ref(),
            grace,
        };
        let give_up = || grace.over();
        let watcher = Watcher {
            manager,
            runner: &runner,
            clock: self.world.clock.as_ref(),
            settle: self.settings.health_settle,
            timeout: self.settings.health_timeout,
            health_command: self.settings.health_command.as_deref(),
        };
        if let Some(why) = give_up() {
            return Proven::Abandoned(why);
        }
        let before = match manager.observe(&runner) {
            Ok(obs) => obs,
            // Nothing was restarted: no verdict on the release.
            Err(e) => {
                return match give_up() {
                    Some(why) => Proven::Abandoned(why),
                    None => Proven::Untried(format!(
                        "{} could not be asked before the restart: {e:#}",
                        manager.describe()
                    )),
                };
            }
        };
        // A run that died after asking for the restart: if the daemon runs as a process
        // started since, watch that one instead of restarting it again.
        if resumed
            && let Some(earlier) = &intent.before
            && before.running
            && (before.pid != earlier.pid
                || (before.invocation.is_some() && before.invocation != earlier.invocation))
        {
            log::info!(
                "{} runs as a new process since the switch; watching it",
                manager.describe()
            );
            let earlier = Observation {
                running: earlier.pid.is_some(),
                pid: earlier.pid,
                invocation: earlier.invocation.clone(),
                ..Observation::default()
            };
            return watcher.watch(&earlier, &give_up);
        }
        intent.before = Some(seen(&before));
        let _ = self.advance(state, intent, restarting);
        log::info!(
            "restarting {} and watching it for {}",
            manager.describe(),
            crate::timefmt::human_duration(self.settings.health_settle)
        );
        let restart_started = self.world.clock.instant();
        let restarted = manager.restart(&runner);
        let restart_took = self
            .world
            .clock
            .instant()
            .saturating_duration_since(restart_started);
        if let Err(e) = restarted {
            if let Some(why) = give_up() {
                return Proven::Abandoned(why);
            }
            let timed_out = e
                .chain()
                .any(|c| matches!(c.downcast_ref(), Some(RunError::TimedOut { .. })));
            return Proven::Unknown(if timed_out {
                format!(
                    "the restart did not finish within restart_timeout ({})",
                    crate::timefmt::human_duration(self.settings.service.restart_timeout)
                )
            } else {
                format!("the restart failed: {e:#}")
            });
        }
        let _ = self.advance(state, intent, proving);
        let proven = watcher.watch(&before, &give_up);
        if let Proven::Healthy(up_after) = &proven {
            state.last_downtime_secs = Some((restart_took + *up_after).as_secs_f64());
        }
        proven
    }

    /// Logs what the switched binary reports (a mismatch is worth a warning, not a stop:
    /// the health proof decides).
    fn check_version(&self, expected: &str) {
        let binary = self.layout.bin_dir.join(&self.settings.binary);
        match ask_version(self.world.runner.as_ref(), &binary) {
            Ok(v) if v.to_string() == expected => {}
            Ok(v) => log::warn!(
                "{} reports {v} after the switch, expected {expected}",
                binary.display()
            ),
            Err(e) => log::debug!("{e}"),
        }
    }
}

/// How the history names the end of a switch an earlier run left.
pub const RESUMED: &str = "finishing an earlier switch: ";

/// Finishes a switch an earlier run left open, if there is one: records the dead run as
/// interrupted, then how its switch ended (and tells `notify_command`). `None` when there
/// was nothing to finish.
pub fn recover(deployer: &Deployer<'_>, state: &mut State) -> Option<Told> {
    let settings = deployer.settings;
    let (intent, ending) = deployer.resume(state)?;
    let now = deployer.world.clock.now();
    let versions = (intent.from_version.clone(), Some(intent.to_version.clone()));
    // The run that died is in the history once, as such (a run that left the switch
    // unfinished on purpose recorded itself).
    if intent.pid != 0 {
        state.record(crate::state::RunRecord {
            started: intent.started,
            duration_secs: (now - intent.started).as_seconds_f64().max(0.0),
            from: versions.0.clone(),
            to: versions.1.clone(),
            outcome: Outcome::Interrupted,
            reason: format!(
                "the run (pid {}) stopped while {} {} -> {}",
                intent.pid,
                intent.phase.as_str(),
                intent.from_version.as_deref().unwrap_or("nothing"),
                intent.to_version
            ),
            log: intent.log.clone(),
        });
    }
    let told = tell(
        &intent,
        &ending,
        &deployer.describe_service(),
        settings.service.kind,
        &settings.status_command,
    );
    state.record(crate::state::RunRecord {
        started: now,
        duration_secs: 0.0,
        from: versions.0.clone(),
        to: versions.1.clone(),
        outcome: told.outcome,
        reason: format!("{RESUMED}{}", told.message),
        log: None,
    });
    if let Some(event) = told.event {
        crate::notify::send(
            deployer.world.runner.as_ref(),
            settings.notify_command.as_deref(),
            state,
            &crate::notify::Notice {
                event,
                from: versions.0.as_deref(),
                to: versions.1.as_deref(),
                message: &told.message,
            },
        );
    }
    if let Err(e) = deployer.state_file.save(state, deployer.lock) {
        log::warn!("could not save the state: {e:#}");
    }
    if told.ok() {
        log::info!("{}", told.message);
    } else {
        log::error!("{}", told.message);
    }
    Some(told)
}

/// The one set of messages for how a switch ended.
pub fn tell(
    intent: &Intent,
    ending: &Ending,
    service: &str,
    kind: ServiceManagerKind,
    status_command: &str,
) -> Told {
    use crate::exit::{FAILED, OK, TEMPFAIL};
    let from = intent.from_version.as_deref().unwrap_or("nothing");
    let to = intent.to_version.as_str();
    let marked = |proven_bad: bool| {
        if proven_bad {
            format!("; {to} is marked bad")
        } else {
            format!("; {to} is tried again after its backoff")
        }
    };
    let told = |outcome, message: String, help: Vec<String>, event, exit_code| Told {
        outcome,
        message,
        help,
        event,
        exit_code,
    };
    match ending {
        Ending::Committed { .. } => {
            let forward = semver::Version::parse(to)
                .ok()
                .zip(semver::Version::parse(from).ok())
                .is_some_and(|(t, f)| t.cmp_precedence(&f).is_gt());
            let message = match intent.purpose {
                Purpose::Rollback if forward => {
                    format!("switched from {from} to {to} (a kept root); {service} is healthy")
                }
                Purpose::Rollback => {
                    format!("rolled back from {from} to {to}; {service} is healthy")
                }
                Purpose::Update | Purpose::Requested => {
                    format!("updated {from} -> {to}; {service} is healthy")
                }
            };
            let outcome = match intent.purpose {
                Purpose::Rollback => Outcome::ManualRollback,
                _ => Outcome::Updated,
            };
            told(outcome, message, Vec::new(), Some(Event::Updated), OK)
        }
        Ending::Unmanaged => told(
            Outcome::Updated,
            format!(
                "installed {to}; service_manager = {}: restart {service} yourself to run it",
                kind.name()
            ),
            Vec::new(),
            Some(Event::Updated),
            OK,
        ),
        Ending::Reverted {
            why,
            blameless: true,
            ..
        } => told(
            Outcome::RolledBack,
            format!("the switch to {to} could not be finished ({why}); back on {from}, which is healthy"),
            vec![format!("help: `heph-selfupdate check-and-apply --to {to}` builds {to} again")],
            Some(Event::RolledBack),
            FAILED,
        ),
        Ending::Reverted {
            why, proven_bad, ..
        } => {
            let (what, help) = match intent.purpose {
                Purpose::Rollback => (
                    format!("rolling back to {to} failed: {to} was unhealthy ({why}); stayed on {from}, which is healthy"),
                    "help: `heph-selfupdate status` lists the version roots; `rollback --to <version>` picks another".to_owned(),
                ),
                _ => (
                    format!("{to} was unhealthy ({why}); rolled back to {from}, which is healthy{}", marked(*proven_bad)),
                    format!(
                        "help: {to} is not tried again {}; --force skips that",
                        if *proven_bad { "until a newer release appears" } else { "before its backoff ends" }
                    ),
                ),
            };
            let (outcome, event) = match intent.purpose {
                Purpose::Rollback => (Outcome::Failed, Event::Failed),
                _ => (Outcome::RolledBack, Event::RolledBack),
            };
            told(outcome, what, vec![help], Some(event), FAILED)
        }
        Ending::NoWayBack { why, proven_bad } => told(
            Outcome::Failed,
            format!(
                "{to} is unhealthy ({why}) and there is no earlier version root to go back to{}",
                marked(*proven_bad)
            ),
            vec!["help: fix the daemon's environment, then run `heph-selfupdate check-and-apply --force`".to_owned()],
            Some(Event::Failed),
            FAILED,
        ),
        Ending::RevertFailed {
            why,
            back_why,
            proven_bad,
        } => told(
            Outcome::RollbackFailed,
            format!(
                "ROLLBACK FAILED: {to} was unhealthy ({why}); current points at {from} again, but the daemon is not healthy on it either ({back_why}){}",
                marked(*proven_bad)
            ),
            vec![format!(
                "help: the daemon needs a person: check `{status_command}` and the service's own log; `heph-selfupdate status` shows the version roots"
            )],
            Some(Event::RollbackFailed),
            FAILED,
        ),
        Ending::Unfinished { why, interrupted } => {
            let phase = intent.phase.as_str();
            if *interrupted {
                told(
                    Outcome::Interrupted,
                    format!("interrupted while {phase} {from} -> {to} ({why}); the switch is unfinished and the next run finishes it"),
                    vec!["help: `heph-selfupdate status` shows the unfinished switch; any run finishes it".to_owned()],
                    None,
                    TEMPFAIL,
                )
            } else {
                told(
                    Outcome::Failed,
                    format!("the switch {from} -> {to} is unfinished ({why}); the next run tries again"),
                    vec![format!("help: check `{status_command}`; `heph-selfupdate status` shows the unfinished switch")],
                    Some(Event::Failed),
                    FAILED,
                )
            }
        }
        Ending::SwitchFailed(e) => told(
            Outcome::Failed,
            format!("could not switch to {to}; nothing was restarted: {e:#}"),
            vec!["help: check that the data dir and bin_dir are writable and the disk not full".to_owned()],
            Some(Event::Failed),
            FAILED,
        ),
    }
}
