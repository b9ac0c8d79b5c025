//! `heph-selfupdate check-and-apply`: the job the timer runs.
//!
//! Decide (the same code as `check`); when due, take the lock, re-read the state and
//! decide again; resolve the tag's commit; build into a new version root; switch
//! `current` to it in one rename; restart the service and prove it healthy; roll back
//! when it is not. Either the daemon ends on the new release, healthy, or exactly where it
//! was — and the state file and the log say which.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use semver::Version;
use time::OffsetDateTime;

use crate::build::{self, BuildFailure, Builder, FailureKind, Target, Tools};
use crate::cli::ApplyArgs;
use crate::config::{Config, ConfigError, Mode};
use crate::evaluate::{Evaluation, evaluate, redecide};
use crate::exit;
use crate::health::{Proof, Proven};
use crate::http::ForgeUnavailable;
use crate::installed::{Installed, ask_version};
use crate::layout::{Layout, root_version};
use crate::lock::RunLock;
use crate::notify::{self, Event, Notice};
use crate::output::outln;
use crate::policy::{Candidate, Decision, Overrides};
use crate::service::{self, ServiceManager};
use crate::state::{CheckRecord, Outcome, RunRecord, State, StateFile};
use crate::version::parse_tag;
use crate::world::World;

use super::preview;

/// Build logs kept in `<state dir>/logs`.
const KEEP_LOGS: usize = 10;

pub fn run(cfg: &Config, world: &World, args: &ApplyArgs) -> Result<i32> {
    let overrides = Overrides {
        force: args.force,
        to: args
            .to
            .as_deref()
            .map(|t| parse_tag(t).map_err(|e| ConfigError(format!("--to {t:?}: {e}"))))
            .transpose()?,
    };
    let state_file = StateFile::new(cfg.state_file());
    let eval = evaluate(cfg, world, &state_file.peek()?, &overrides, !args.dry_run)?;
    if args.dry_run {
        return preview::print(cfg, world, &eval, args.json);
    }
    if !eval.decision.due {
        log::info!("nothing to do: {}", eval.decision.summary());
        record_check_if_free(cfg, &state_file, &eval.decision, world.clock.now());
        print_result(
            args.json,
            Outcome::NothingDue,
            &eval.decision,
            &eval.decision.summary(),
        );
        return Ok(exit::OK);
    }
    let lock = RunLock::acquire(&cfg.state_dir)?;
    let mut state = state_file.load()?;
    let decision = redecide(
        &eval.installed,
        &eval.releases,
        cfg,
        &state,
        &overrides,
        world,
    );
    state.last_check = Some(check_record(&decision, world.clock.now()));
    // Saved before anything changes: a state that cannot be written stops the run here.
    state_file.save(&state, &lock)?;
    let Some(chosen) = decision.chosen.clone().filter(|_| decision.due) else {
        log::info!("nothing to do: {}", decision.summary());
        print_result(
            args.json,
            Outcome::NothingDue,
            &decision,
            &decision.summary(),
        );
        return Ok(exit::OK);
    };
    let mut job = Job::new(
        cfg,
        world,
        &state_file,
        &lock,
        &eval.installed,
        &decision,
        chosen,
    );
    if cfg.mode == Mode::Notify {
        let message = format!(
            "{} (mode = notify: nothing was changed)",
            decision.summary()
        );
        log::warn!("{message}");
        job.finish(
            &mut state,
            Outcome::Notified,
            &message,
            Some(Event::UpdateAvailable),
        )?;
        print_result(args.json, Outcome::Notified, &decision, &message);
        return Ok(exit::OK);
    }
    let (outcome, message, error) = job.update(&mut state);
    let event = match outcome {
        Outcome::Updated => Some(Event::Updated),
        Outcome::RolledBack => Some(Event::RolledBack),
        Outcome::RollbackFailed => Some(Event::RollbackFailed),
        Outcome::Failed | Outcome::Interrupted => Some(Event::Failed),
        _ => None,
    };
    job.finish(&mut state, outcome, &message, event)?;
    print_result(args.json, outcome, &decision, &message);
    match error {
        None => Ok(exit::OK),
        Some(e) => Err(e),
    }
}

/// The result line (`--json`: one object on stdout).
fn print_result(json: bool, outcome: Outcome, decision: &Decision, message: &str) {
    if json {
        let out = serde_json::json!({
            "outcome": outcome.as_str(),
            "from": decision.installed.as_ref().map(ToString::to_string),
            "to": decision.chosen.as_ref().filter(|_| decision.due).map(|c| c.version.to_string()),
            "tag": decision.chosen.as_ref().filter(|_| decision.due).map(|c| c.tag.clone()),
            "reason": decision.reason.code(),
            "message": message,
        });
        outln!("{out}");
    }
}

fn check_record(decision: &Decision, at: OffsetDateTime) -> CheckRecord {
    CheckRecord {
        at,
        installed: decision.installed.as_ref().map(ToString::to_string),
        latest: decision.chosen.as_ref().map(|c| c.version.to_string()),
        update_available: decision.due,
        reason: decision.summary(),
    }
}

/// Notes the check in the state when no other run holds the lock (else that run will).
fn record_check_if_free(
    cfg: &Config,
    state_file: &StateFile,
    decision: &Decision,
    now: OffsetDateTime,
) {
    let Ok(lock) = RunLock::acquire(&cfg.state_dir) else {
        return;
    };
    let result = state_file.load().and_then(|mut state| {
        state.last_check = Some(check_record(decision, now));
        state_file.save(&state, &lock)
    });
    if let Err(e) = result {
        log::warn!("could not record the check: {e:#}");
    }
}

/// The service manager of the configuration, with its programs found on PATH.
pub fn manager(cfg: &Config, world: &World) -> Option<Box<dyn ServiceManager>> {
    let path = world.path_var();
    let systemctl =
        crate::process::find_on_path("systemctl", path).unwrap_or_else(|| "systemctl".into());
    let launchctl =
        crate::process::find_on_path("launchctl", path).unwrap_or_else(|| "/bin/launchctl".into());
    service::for_config(
        cfg.service_manager,
        &cfg.service,
        world.uid,
        &systemctl,
        &launchctl,
    )
}

/// Restarts the service and proves it healthy (`Ok(Err(why))` when unhealthy).
pub fn restart_and_prove(cfg: &Config, world: &World, manager: &dyn ServiceManager) -> Proven {
    let proof = Proof {
        manager,
        runner: world.runner.as_ref(),
        clock: world.clock.as_ref(),
        settle: cfg.health_settle,
        timeout: cfg.health_timeout,
        health_command: cfg.health_command.as_deref(),
    };
    log::info!(
        "restarting {} and watching it for {}",
        manager.describe(),
        crate::timefmt::human_duration(cfg.health_settle)
    );
    let proven = proof.restart_and_prove();
    if let Proven::Healthy(took) = proven {
        log::info!(
            "{} is healthy ({} after the restart)",
            manager.describe(),
            crate::timefmt::human_duration(took)
        );
    }
    proven
}

/// One update run, under the lock.
struct Job<'a> {
    cfg: &'a Config,
    world: &'a World,
    state_file: &'a StateFile,
    lock: &'a RunLock,
    installed: &'a Installed,
    decision: &'a Decision,
    chosen: Candidate,
    layout: Layout,
    started: OffsetDateTime,
    clock_start: Instant,
    log_file: Option<PathBuf>,
}

impl<'a> Job<'a> {
    fn new(
        cfg: &'a Config,
        world: &'a World,
        state_file: &'a StateFile,
        lock: &'a RunLock,
        installed: &'a Installed,
        decision: &'a Decision,
        chosen: Candidate,
    ) -> Self {
        Self {
            cfg,
            world,
            state_file,
            lock,
            installed,
            decision,
            chosen,
            layout: Layout::new(&cfg.data_dir, &cfg.bin_dir),
            started: world.clock.now(),
            clock_start: world.clock.instant(),
            log_file: None,
        }
    }

    fn from(&self) -> Option<String> {
        self.decision.installed.as_ref().map(ToString::to_string)
    }

    /// Records the run, notifies, prunes, saves.
    fn finish(
        &self,
        state: &mut State,
        outcome: Outcome,
        message: &str,
        event: Option<Event>,
    ) -> Result<()> {
        let to = self.chosen.version.to_string();
        // In notify mode every hourly run finds the same pending update: one history entry
        // for it, not fifty that push the real history out.
        let repeat = outcome == Outcome::Notified
            && state.history.last().is_some_and(|r| {
                r.outcome == Outcome::Notified && r.to.as_deref() == Some(to.as_str())
            });
        if !repeat {
            state.record(RunRecord {
                started: self.started,
                duration_secs: self.clock_start.elapsed().as_secs_f64(),
                from: self.from(),
                to: Some(to.clone()),
                outcome,
                reason: message.to_owned(),
                log: self.log_file.clone(),
            });
        }
        if let Some(event) = event {
            let from = self.from();
            let notice = Notice {
                event,
                from: from.as_deref(),
                to: Some(&to),
                message,
            };
            notify::send(
                self.world.runner.as_ref(),
                self.cfg.notify_command.as_deref(),
                state,
                &notice,
            );
        }
        if outcome == Outcome::Updated {
            let protect: Vec<&str> = [state.current.as_deref(), state.previous.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            match self
                .layout
                .prune(self.cfg.keep_versions, &protect, &state.holds().bad)
            {
                Ok(removed) if !removed.is_empty() => {
                    log::info!("removed old version roots: {}", removed.join(", "));
                }
                Ok(_) => {}
                Err(e) => log::warn!("could not remove old version roots: {e:#}"),
            }
        }
        self.state_file.save(state, self.lock)
    }

    fn open_log(&mut self) {
        let dir = self.cfg.state_dir.join("logs");
        if let Err(e) = crate::fsutil::create_private_dir(&dir) {
            log::warn!("no build log: {e:#}");
            return;
        }
        let stamp = self.started.unix_timestamp();
        self.log_file = Some(dir.join(format!("{stamp}-{}.log", self.chosen.version)));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut logs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            logs.sort();
            let excess = logs.len().saturating_sub(KEEP_LOGS - 1);
            for old in logs.into_iter().take(excess) {
                let _ = std::fs::remove_file(old);
            }
        }
    }

    /// Where to look after a failure.
    fn log_hint(&self) -> String {
        let journal = match self.cfg.service_manager {
            crate::service::ServiceManagerKind::Launchd => {
                "~/Library/Logs/heph-selfupdate.log".to_owned()
            }
            _ => "journalctl --user -u heph-selfupdate".to_owned(),
        };
        match &self.log_file {
            Some(p) => format!(
                "help: the build log is {}; the run's log is in {journal}; `heph-selfupdate status` shows the state",
                p.display()
            ),
            None => format!(
                "help: the run's log is in {journal}; `heph-selfupdate status` shows the state"
            ),
        }
    }

    /// Builds, switches, restarts, proves, rolls back. Returns the outcome, a message, and
    /// the error to exit with (None for success).
    fn update(&mut self, state: &mut State) -> (Outcome, String, Option<anyhow::Error>) {
        let (tag, version) = (self.chosen.tag.clone(), self.chosen.version.clone());
        log::info!("{}", self.decision.summary());
        if let Err(e) = self.preflight() {
            return self.failed(state, &version, FailureKind::Environment, e);
        }
        match self.layout.clean_leftovers() {
            Ok(removed) => {
                for p in removed {
                    log::info!("removed what an interrupted run left: {}", p.display());
                }
            }
            Err(e) => {
                return self.failed(
                    state,
                    &version,
                    FailureKind::Environment,
                    e.context("cleaning up an earlier run"),
                );
            }
        }
        self.open_log();
        let tools = Tools::find(self.cfg, self.world.path_var());
        let clock = self.world.clock.as_ref();
        let sleep = |d| clock.sleep(d);
        let builder = Builder {
            cfg: self.cfg,
            runner: self.world.runner.as_ref(),
            sleep: &sleep,
            tools,
            layout: self.layout.clone(),
            log_file: self.log_file.clone(),
        };
        let commit = match builder.resolve(&tag) {
            Ok(c) => c,
            Err(f) => return self.failed(state, &version, f.kind, f.into()),
        };
        log::info!("{tag} is commit {commit}");
        let target = Target {
            tag: tag.clone(),
            version: version.clone(),
            commit,
        };
        let root = match self.reuse_or_build(&builder, &target) {
            Ok(name) => name,
            Err(f) => return self.failed(state, &version, f.kind, f.into()),
        };
        self.switch_and_restart(state, &root, &version)
    }

    /// What must hold before anything is built: a build nobody can switch to or restart
    /// is wasted, and a half-done switch is worse.
    fn preflight(&self) -> Result<()> {
        if !self.cfg.bin_dir.is_dir() {
            anyhow::bail!(
                "bin_dir {} does not exist\nhelp: create it, or set bin_dir to where the service runs hephd from",
                self.cfg.bin_dir.display()
            );
        }
        crate::fsutil::create_private_dir(&self.cfg.data_dir)?;
        crate::fsutil::create_private_dir(&self.layout.versions_dir())?;
        if let Some(m) = manager(self.cfg, self.world) {
            let help =
                "help: run `heph-selfupdate doctor` in the service's environment (`make doctor`)";
            match m.observe(self.world.runner.as_ref()) {
                Err(e) => anyhow::bail!("{e:#}\n{help}"),
                Ok(o) if o.missing => anyhow::bail!(
                    "{} does not exist\nhelp: set `service` to the unit that runs hephd",
                    m.describe()
                ),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// A kept root of this exact build is reused; otherwise the release is built.
    fn reuse_or_build(
        &self,
        builder: &Builder<'_>,
        target: &Target,
    ) -> Result<String, BuildFailure> {
        let current = self.layout.current();
        for root in self.layout.roots() {
            let same = root_version(&root.name).is_some_and(|v| v == target.version);
            if !same || current.as_deref() == Some(root.name.as_str()) {
                continue;
            }
            if self.root_matches(&root.path, target) {
                log::info!("reusing the kept build {} of {}", root.name, target.tag);
                return Ok(root.name);
            }
        }
        let staging = builder.build(target)?;
        let name = self.layout.free_name(&target.version.to_string());
        std::fs::rename(&staging, self.layout.root(&name))
            .with_context(|| format!("could not move {} into place", staging.display()))
            .map_err(|e| BuildFailure {
                kind: FailureKind::Environment,
                error: e,
            })?;
        Ok(name)
    }

    fn root_matches(&self, root: &std::path::Path, target: &Target) -> bool {
        let bins_ok = self
            .cfg
            .packages
            .iter()
            .all(|p| root.join("bin").join(p).exists());
        let records = crate::install_records::read(root).unwrap_or_default();
        let commits_ok = self.cfg.packages.iter().all(|p| {
            records
                .iter()
                .any(|r| &r.package == p && r.commit.as_deref() == Some(target.commit.as_str()))
        });
        bins_ok && commits_ok
    }

    fn failed(
        &self,
        state: &mut State,
        version: &Version,
        kind: FailureKind,
        error: anyhow::Error,
    ) -> (Outcome, String, Option<anyhow::Error>) {
        let message = format!("{error:#}");
        let (outcome, error) = match kind {
            FailureKind::Network => {
                let e = ForgeUnavailable {
                    url: crate::redact::url(&self.cfg.git_url),
                    detail: first_line(&message),
                };
                (
                    Outcome::Failed,
                    anyhow::Error::new(e).context("nothing was changed; the next run tries again"),
                )
            }
            FailureKind::Interrupted => {
                (Outcome::Interrupted, error.context("nothing was changed"))
            }
            _ => (
                Outcome::Failed,
                error.context(format!(
                    "could not update to {version}; nothing was changed\n{}",
                    self.log_hint()
                )),
            ),
        };
        if kind.backs_off() {
            let until =
                state.note_build_failure(version, self.world.clock.now(), &first_line(&message));
            log::warn!(
                "{version} is not tried again before {} (backoff; --force skips it)",
                crate::timefmt::rfc3339(until)
            );
        }
        (outcome, message, Some(error))
    }

    fn switch_and_restart(
        &self,
        state: &mut State,
        root: &str,
        version: &Version,
    ) -> (Outcome, String, Option<anyhow::Error>) {
        // Adoption changes where the running binaries live, not what they are.
        match self
            .layout
            .adopt(&self.cfg.packages, self.installed.version.as_ref())
        {
            Ok(Some(adopted)) => log::info!(
                "took the installed binaries under management as version root {adopted} (for rollback)"
            ),
            Ok(None) => {}
            Err(e) => {
                return self.failed(
                    state,
                    version,
                    FailureKind::Environment,
                    e.context("taking the installed binaries under management"),
                );
            }
        }
        let previous = self.layout.current();
        let switched = self
            .layout
            .set_current(root)
            .and_then(|()| self.layout.link_binaries(&self.cfg.packages));
        if let Err(e) = switched {
            // Nothing was restarted: put `current` back where it was.
            if let Some(prev) = &previous {
                let _ = self.layout.set_current(prev);
            }
            return self.failed(
                state,
                version,
                FailureKind::Environment,
                e.context("switching to the new version root"),
            );
        }
        state.previous.clone_from(&previous);
        state.current = Some(root.to_owned());
        state.clear_holds_for(version);
        if let Err(e) = self.state_file.save(state, self.lock) {
            log::warn!("could not save the state before the restart: {e:#}");
        }
        log::info!(
            "switched {} to version root {root}",
            self.cfg.bin_dir.display()
        );
        let binary = self.cfg.bin_dir.join(&self.cfg.binary);
        match ask_version(self.world.runner.as_ref(), &binary) {
            Ok(v) if crate::version::same_version(&v, version) => {}
            Ok(v) => log::warn!(
                "{} reports {v} after the switch, expected {version}",
                binary.display()
            ),
            Err(e) => log::warn!("{e}"),
        }
        let Some(manager) = manager(self.cfg, self.world) else {
            let message = format!(
                "installed {version}; service_manager = none: restart {} yourself to run it",
                self.cfg.binary
            );
            log::warn!("{message}");
            return (Outcome::Updated, message, None);
        };
        let why = match restart_and_prove(self.cfg, self.world, manager.as_ref()) {
            Proven::Healthy(_) => {
                let message = format!(
                    "updated {} -> {version}; {} is healthy",
                    self.from().unwrap_or_else(|| "nothing".into()),
                    manager.describe()
                );
                log::info!("{message}");
                return (Outcome::Updated, message, None);
            }
            Proven::Unhealthy(why) => {
                log::error!("{version} is unhealthy: {why}");
                state.mark_bad(version, self.world.clock.now(), &why);
                why
            }
            Proven::Unknown(why) => {
                // Not proven bad: go back, and try the release again after a backoff.
                log::error!("the health of {version} is unknown: {why}");
                let until = state.note_build_failure(version, self.world.clock.now(), &why);
                log::warn!(
                    "{version} is not tried again before {} (backoff)",
                    crate::timefmt::rfc3339(until)
                );
                why
            }
        };
        self.roll_back(state, previous.as_deref(), version, &why, manager.as_ref())
    }

    fn roll_back(
        &self,
        state: &mut State,
        previous: Option<&str>,
        version: &Version,
        why: &str,
        manager: &dyn ServiceManager,
    ) -> (Outcome, String, Option<anyhow::Error>) {
        let v = version.to_string();
        let marked = if state.bad.iter().any(|b| b.version == v) {
            format!("; {version} is marked bad")
        } else {
            String::new()
        };
        let Some(previous) = previous else {
            let message = format!(
                "{version} is unhealthy ({why}) and there is no earlier version to roll back to{marked}"
            );
            let help = format!(
                "help: fix the daemon's environment, then run `heph-selfupdate check-and-apply --force`\n{}",
                self.log_hint()
            );
            return (
                Outcome::RollbackFailed,
                message.clone(),
                Some(anyhow!("{message}\n{help}")),
            );
        };
        log::warn!("rolling back to {previous}");
        let back = self
            .layout
            .set_current(previous)
            .and_then(|()| self.layout.link_binaries(&self.cfg.packages))
            .map(|()| restart_and_prove(self.cfg, self.world, manager));
        state.current = Some(previous.to_owned());
        state.previous = None;
        match back {
            Ok(Proven::Healthy(_)) => {
                let message = format!(
                    "{version} was unhealthy ({why}); rolled back to {previous}, which is healthy{marked}"
                );
                let help = format!(
                    "help: {version} is not tried again {}; --force skips that\n{}",
                    if marked.is_empty() {
                        "before its backoff ends"
                    } else {
                        "until a newer release appears"
                    },
                    self.log_hint()
                );
                (
                    Outcome::RolledBack,
                    message.clone(),
                    Some(anyhow!("{message}\n{help}")),
                )
            }
            Ok(Proven::Unhealthy(back_why) | Proven::Unknown(back_why)) => {
                self.rollback_failed(version, why, previous, &back_why)
            }
            Err(e) => self.rollback_failed(version, why, previous, &format!("{e:#}")),
        }
    }

    fn rollback_failed(
        &self,
        version: &Version,
        why: &str,
        previous: &str,
        back_why: &str,
    ) -> (Outcome, String, Option<anyhow::Error>) {
        let message = format!(
            "ROLLBACK FAILED: {version} was unhealthy ({why}); {} now points at {previous} again, but the daemon is not healthy on it either ({back_why})",
            self.layout.current_link().display()
        );
        let help = format!(
            "help: the daemon needs a person: check `{}` and the service's own log; `heph-selfupdate status` shows the version roots\n{}",
            self.cfg
                .service_manager
                .status_command(&self.cfg.service, self.world.uid),
            self.log_hint()
        );
        (
            Outcome::RollbackFailed,
            message.clone(),
            Some(anyhow!("{message}\n{help}")),
        )
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_owned()
}

/// The commands `--dry-run` shows: exactly what the run would execute, in order.
pub fn planned_commands(
    cfg: &Config,
    world: &World,
    eval: &Evaluation,
) -> Vec<crate::process::Cmd> {
    let Some(chosen) = eval.decision.chosen.as_ref().filter(|_| eval.decision.due) else {
        return Vec::new();
    };
    let tools = Tools::find(cfg, world.path_var());
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let (tag, version) = (&chosen.tag, &chosen.version);
    let commands = build::Commands {
        cfg,
        tools: &tools,
        layout: &layout,
    };
    let mut cmds = vec![build::build_env(
        crate::git::ls_remote(&tools.git, &cfg.git_url, tag),
        cfg,
    )];
    match cfg.build {
        build::BuildMode::Git => cmds.push(commands.git_install(tag, version)),
        build::BuildMode::Checkout => {
            let co = crate::git::Checkout {
                git: tools.git.clone(),
                dir: cfg.cache_dir.join("checkout"),
            };
            if !co.exists() {
                cmds.push(co.init());
            }
            cmds.push(build::build_env(co.fetch_tag(&cfg.git_url, tag), cfg));
            cmds.push(co.tag_commit(tag));
            if let (true, Some(signers)) = (cfg.verify_tag, &cfg.allowed_signers) {
                cmds.push(co.verify_tag(tag, signers));
            }
            cmds.push(co.checkout(tag));
            cmds.push(co.clean());
            cmds.push(commands.metadata(&co));
            // Member directories come from `cargo metadata` after the checkout; the preview
            // reads them from the checkout at hand (read-only), if there is one.
            let members = preview::member_dirs(&commands, &co, world);
            for p in &cfg.packages {
                let dir = members.get(p).cloned().unwrap_or_else(|| {
                    co.dir
                        .join(format!("<directory of {p}, from cargo metadata>"))
                });
                cmds.push(commands.path_install(&co, p, &dir, tag, version));
            }
        }
    }
    cmds.push(crate::installed::version_cmd(
        &layout.staging(version).join("bin").join(&cfg.binary),
    ));
    cmds.push(crate::installed::version_cmd(
        &cfg.bin_dir.join(&cfg.binary),
    ));
    if let Some(m) = manager(cfg, world) {
        cmds.push(m.observe_cmd());
        cmds.push(m.restart_cmd());
        cmds.push(m.observe_cmd());
        if let Some(argv) = cfg.health_command.as_ref().filter(|a| !a.is_empty()) {
            cmds.push(crate::process::Cmd::new(&argv[0], "run health_command").args(&argv[1..]));
        }
    }
    cmds
}
