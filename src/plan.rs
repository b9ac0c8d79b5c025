//! The plan of a run: one value holding every step, with the exact commands each step
//! runs, in order. `check-and-apply`, `--to` and `rollback` make a plan and execute it;
//! `--dry-run` renders the same value instead. There is no second list of steps to drift.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;
use semver::Version;
use serde_json::json;

use crate::build::{self, BuildFailure, BuildSettings, BuildStep, Builder, FailureKind, Target};
use crate::deploy::{DeploySettings, Deployer, Ending, Told, tell};
use crate::layout::Layout;
use crate::lock::RunLock;
use crate::notify::{self, Event, Notice};
use crate::process::Cmd;
use crate::roots;
use crate::service::ServiceManager;
use crate::state::{Intent, Outcome, Purpose, State, StateFile};
use crate::world::World;

/// What a run needs from the configuration.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub build: BuildSettings,
    pub deploy: DeploySettings,
    pub bin_dir: PathBuf,
    pub data_dir: PathBuf,
    pub keep_versions: usize,
    /// When the daemon may be restarted (`None`: any time).
    pub restart_window: Option<crate::window::Windows>,
}

/// One step of a plan.
#[derive(Debug, Clone)]
pub enum Step {
    /// Finish a switch an earlier run left (shown by the dry run; a run does it first).
    Resume { intent: Intent, cmds: Vec<Cmd> },
    /// `bin_dir` exists, our directories can be made, the service manager knows the unit:
    /// a build nobody can switch to or restart is wasted.
    Preflight { observe: Option<Cmd> },
    /// Removes what an interrupted run left (half-built roots, scratch dirs).
    CleanLeftovers,
    /// Enough free space where the build writes.
    CheckSpace { dirs: Vec<PathBuf>, need: u64 },
    /// A step of the build.
    Build(BuildStep),
    /// The new build becomes a version root (or a kept root of the same commit is used).
    Keep,
    /// A kept version root is used; nothing is built.
    UseRoot { name: String },
    /// What `bin_dir` holds that the switch would replace and heph-selfupdate did not
    /// link is kept in a version root of the installed version (the way back), with what
    /// runs now; one that cargo's records give to another package stops the run instead.
    /// `plain`: the plain binaries known when the plan was made (the new root's may add
    /// more).
    Adopt {
        version: Option<Version>,
        plain: Vec<String>,
    },
    /// Switch `current`, restart, prove; commit or revert. `signal`: how the daemon is
    /// restarted when no command does it (respawn).
    Switch {
        purpose: Purpose,
        cmds: Vec<Cmd>,
        signal: Option<String>,
    },
    /// Outside `restart_window`: keep the new root staged; the switch waits for the window
    /// (opening next at `opens`, if known).
    Stage { opens: Option<time::OffsetDateTime> },
    /// Tell `notify_command` how it went.
    Notify { cmd: Cmd },
    /// Remove old version roots.
    Prune { keep: usize },
}

impl Step {
    /// What the step does, in words.
    pub fn describe(&self) -> String {
        match self {
            Self::Resume { intent, .. } => {
                let (from, to) = (
                    intent.from_version.as_deref().unwrap_or("nothing"),
                    &intent.to_version,
                );
                let then = if intent.phase.reverting() {
                    format!("go back to {from} and prove it healthy")
                } else {
                    format!("prove {to} healthy, or go back to {from}")
                };
                format!(
                    "finish the switch {from} -> {to} an earlier run left while {}: {then}; then decide again",
                    intent.phase.as_str()
                )
            }
            Self::Preflight { .. } => {
                "check that bin_dir, the data dir and the service are ready".to_owned()
            }
            Self::CleanLeftovers => "remove what an interrupted run left".to_owned(),
            Self::CheckSpace { dirs, need } => format!(
                "check that {} {} free",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and "),
                if dirs.len() > 1 {
                    format!("each have {} (min_free_space)", bytesize::ByteSize::b(*need))
                } else {
                    format!("has {} (min_free_space)", bytesize::ByteSize::b(*need))
                }
            ),
            Self::Build(b) => b.cmd().summary.clone(),
            Self::Keep => {
                "keep the new build as a version root (a kept build of the same commit is used instead; with verify_tag, only when the signature kept with it verifies now)"
                    .to_owned()
            }
            Self::UseRoot { name } => format!("use the kept version root {name}; nothing is built"),
            Self::Adopt { version, plain } => {
                let root = version
                    .as_ref()
                    .map_or_else(|| "adopted".to_owned(), ToString::to_string);
                if plain.is_empty() {
                    format!(
                        "keep whatever the new root would replace in bin_dir that heph-selfupdate did not link in a version root {root} first (the way back); refuse if another package installed it"
                    )
                } else {
                    format!(
                        "take the plain binaries in bin_dir ({}, and any other the new root replaces) under management as version root {root} (the way back); refuse if another package installed one",
                        plain.join(", ")
                    )
                }
            }
            Self::Switch {
                purpose, signal, ..
            } => format!(
                "switch current to the {} root in one rename, restart the daemon{} and prove it healthy; go back if it is not",
                match purpose {
                    Purpose::Rollback => "older",
                    _ => "new",
                },
                signal
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ),
            Self::Stage { opens } => format!(
                "outside restart_window: keep the new root staged; switch and restart {}",
                opens.map_or_else(
                    || "in the next window".to_owned(),
                    |t| format!("in the window at {}", crate::timefmt::rfc3339(t))
                )
            ),
            Self::Notify { .. } => "tell notify_command how it went".to_owned(),
            Self::Prune { keep } => format!("remove old version roots (keep_versions = {keep})"),
        }
    }

    /// The commands the step runs, in order (an observation repeats while the daemon
    /// settles; a failed fetch is retried).
    pub fn commands(&self) -> Vec<&Cmd> {
        match self {
            Self::Resume { cmds, .. } | Self::Switch { cmds, .. } => cmds.iter().collect(),
            Self::Preflight { observe } => observe.iter().collect(),
            Self::Build(b) => vec![b.cmd()],
            Self::Notify { cmd } => vec![cmd],
            Self::CleanLeftovers
            | Self::CheckSpace { .. }
            | Self::Keep
            | Self::UseRoot { .. }
            | Self::Adopt { .. }
            | Self::Stage { .. }
            | Self::Prune { .. } => Vec::new(),
        }
    }
}

/// A run's steps, in order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// Environment assignments of a command, for people (the token is never among them).
fn env_text(cmd: &Cmd) -> String {
    let mut seen = std::collections::BTreeSet::new();
    cmd.env
        .iter()
        .filter(|(k, _)| !k.to_string_lossy().starts_with(crate::envvars::PREFIX))
        .filter(|(k, _)| seen.insert(k.clone()))
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Plan {
    /// Every command, in order.
    pub fn commands(&self) -> Vec<&Cmd> {
        self.steps.iter().flat_map(Step::commands).collect()
    }

    /// The plan for people: each step, then its commands.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(out, "# {}. {}", i + 1, step.describe());
            for cmd in step.commands() {
                let env = env_text(cmd);
                if !env.is_empty() {
                    let _ = writeln!(out, "#    env: {env}");
                }
                let _ = writeln!(out, "{}", cmd.display());
            }
        }
        out
    }

    /// The plan as JSON: the steps with their commands, and every command's argv.
    pub fn to_json(&self) -> serde_json::Value {
        let cmd_json = |c: &Cmd| {
            json!({
                "summary": c.summary,
                "argv": c.argv(),
                "stdin": c.stdin.as_ref().map(|f| f.to_string_lossy().into_owned()),
                "env": c.env.iter()
                    .filter(|(k, _)| !k.to_string_lossy().starts_with(crate::envvars::PREFIX))
                    .map(|(k, v)| (k.to_string_lossy().into_owned(), serde_json::Value::String(v.to_string_lossy().into_owned())))
                    .collect::<serde_json::Map<_, _>>(),
            })
        };
        json!({
            "steps": self.steps.iter().map(|s| json!({
                "step": s.describe(),
                "commands": s.commands().into_iter().map(cmd_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "commands": self.commands().into_iter().map(Cmd::argv).collect::<Vec<_>>(),
        })
    }
}

/// The commands a switch runs (in the order [`Deployer`] runs them); `to_the_new_root`:
/// it points `current` at the new root first (and asks the binary its version), which the
/// way back does not.
pub fn switch_cmds(
    settings: &RunSettings,
    manager: Option<&dyn ServiceManager>,
    to_the_new_root: bool,
) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    if to_the_new_root {
        cmds.push(crate::installed::version_cmd(
            &settings.bin_dir.join(&settings.deploy.binary),
        ));
    }
    if let Some(m) = manager {
        cmds.push(m.observe_cmd());
        // Respawn signals the daemon itself: the step says so (`restart_signal`).
        cmds.extend(m.restart_cmd());
        cmds.push(m.observe_cmd());
        if let Some(cmd) = settings
            .deploy
            .health_command
            .as_deref()
            .and_then(|argv| crate::health::health_cmd(argv, settings.deploy.health_timeout))
        {
            cmds.push(cmd);
        }
    }
    cmds
}

/// The `notify_command` a plan shows for `event` (the run gives it the real details).
pub fn notify_cmd(settings: &RunSettings, event: Event) -> Option<Cmd> {
    settings.deploy.notify_command.as_deref().and_then(|argv| {
        notify::command(
            argv,
            &Notice {
                event,
                from: None,
                to: None,
                message: "",
            },
        )
    })
}

/// Everything executing a plan needs.
pub struct Executor<'a> {
    pub world: &'a World,
    pub settings: &'a RunSettings,
    pub layout: &'a Layout,
    pub builder: &'a Builder<'a>,
    pub deployer: &'a Deployer<'a>,
    pub state_file: &'a StateFile,
    pub lock: &'a RunLock,
    /// The release being built, when the plan builds one.
    pub target: Option<Target>,
    /// `--now`: switch even outside `restart_window`.
    pub force_now: bool,
}

impl std::fmt::Debug for Executor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Where the run's build log is, as a help line (only when one was written).
pub fn log_hint(log: Option<&std::path::Path>) -> Option<String> {
    log.filter(|p| p.exists())
        .map(|p| format!("help: the build log is {}", p.display()))
}

impl Executor<'_> {
    /// Executes `plan`. `from`: the installed version, for messages.
    pub fn run(&self, plan: &Plan, state: &mut State, from: Option<&str>) -> Told {
        let mut root: Option<String> = None;
        let mut told: Option<Told> = None;
        let mut progress = build::Progress::default();
        let mut prepared = false;
        let mut reused = false;
        let mut build_started = None;
        let deadline = self.world.clock.instant() + self.settings.build.build_timeout;
        for step in &plan.steps {
            match step {
                Step::Notify { .. } => {
                    if let Some(t) = &told {
                        self.notify(state, t, from, root.as_deref());
                    }
                    continue;
                }
                Step::Prune { .. } => {
                    if told.as_ref().is_some_and(Told::ok) {
                        self.prune(state);
                    }
                    continue;
                }
                _ if told.is_some() => continue,
                _ => {}
            }
            // Before the switch a signal stops the run: nothing has changed yet.
            if self.world.interrupt.is_set() && !matches!(step, Step::Switch { .. }) {
                told = Some(self.failure(
                    state,
                    FailureKind::Interrupted,
                    &anyhow!("stopped by a signal"),
                ));
                continue;
            }
            let result = match step {
                Step::Preflight { .. } => self.preflight(),
                Step::CleanLeftovers => self.clean_leftovers(),
                Step::CheckSpace { dirs, need } => build::check_space(dirs, *need),
                Step::Build(b) => {
                    if reused {
                        continue;
                    }
                    build_started.get_or_insert_with(|| self.world.clock.instant());
                    self.build_step(
                        b,
                        &mut progress,
                        &mut prepared,
                        &mut reused,
                        &mut root,
                        state,
                        deadline,
                    )
                }
                Step::Keep => {
                    if reused {
                        continue;
                    }
                    let began = build_started.unwrap_or_else(|| self.world.clock.instant());
                    state.last_build = Some(crate::state::BuildTimes {
                        total_secs: self
                            .world
                            .clock
                            .instant()
                            .saturating_duration_since(began)
                            .as_secs_f64(),
                        phases: progress
                            .phases
                            .iter()
                            .map(|(name, d)| ((*name).to_owned(), d.as_secs_f64()))
                            .collect(),
                    });
                    self.keep(&progress).map(|name| root = Some(name))
                }
                Step::UseRoot { name } => {
                    root = Some(name.clone());
                    Ok(())
                }
                Step::Adopt { version, .. } => self.adopt(root.as_deref(), version.as_ref()),
                Step::Stage { opens } => {
                    told = Some(self.stage(state, root.as_deref(), *opens));
                    continue;
                }
                Step::Switch { purpose, .. } => {
                    // The window is asked again at the switch: a long build may have run
                    // past its end. Then the new root waits, staged, for the next one.
                    if *purpose != Purpose::Rollback
                        && let crate::window::WindowNow::Closed(opens) =
                            crate::window::WindowNow::at(
                                self.settings.restart_window.as_ref(),
                                self.world.clock.now(),
                                self.force_now,
                            )
                    {
                        told = Some(self.stage(state, root.as_deref(), opens));
                        continue;
                    }
                    let Some(to) = root.clone() else {
                        told = Some(self.failure(
                            state,
                            FailureKind::Environment,
                            &anyhow!("there is no version root to switch to"),
                        ));
                        continue;
                    };
                    let (intent, ending) =
                        self.deployer
                            .switch(state, &to, *purpose, self.builder.log_file.clone());
                    told = Some(self.tell(&intent, &ending));
                    Ok(())
                }
                Step::Resume { .. } | Step::Notify { .. } | Step::Prune { .. } => Ok(()),
            };
            if let Err(f) = result {
                if prepared && let Some(target) = &self.target {
                    self.builder.discard(target, Some(f.kind));
                }
                told = Some(self.failure(state, f.kind, &f.error));
            }
        }
        told.unwrap_or_else(|| Told {
            outcome: Outcome::NothingDue,
            message: "nothing to do".to_owned(),
            help: Vec::new(),
            event: None,
            exit_code: crate::exit::OK,
        })
    }

    fn tell(&self, intent: &Intent, ending: &Ending) -> Told {
        let mut told = tell(
            intent,
            ending,
            &self.deployer.describe_service(),
            self.settings.deploy.service.kind,
            &self.settings.deploy.status_command,
        );
        if !told.ok()
            && let Some(h) = log_hint(self.builder.log_file.as_deref())
        {
            told.help.push(h);
        }
        told
    }

    fn preflight(&self) -> Result<(), BuildFailure> {
        let env = |e: anyhow::Error| BuildFailure {
            kind: FailureKind::Environment,
            error: e,
        };
        if !self.settings.bin_dir.is_dir() {
            return Err(env(anyhow!(
                "bin_dir {} does not exist\nhelp: create it, or set bin_dir to where the service runs hephd from",
                self.settings.bin_dir.display()
            )));
        }
        crate::fsutil::create_private_dir(&self.settings.data_dir).map_err(env)?;
        crate::fsutil::create_private_dir(&self.layout.versions_dir()).map_err(env)?;
        if let Some(m) = self.deployer.manager.as_deref() {
            let help =
                "help: run `heph-selfupdate doctor` in the service's environment (`make doctor`)";
            match m.observe(self.world.runner.as_ref()) {
                Err(e) => return Err(env(anyhow!("{e:#}\n{help}"))),
                Ok(o) if o.missing => {
                    return Err(env(anyhow!(
                        "{} does not exist\nhelp: set `service` to the unit that runs hephd",
                        m.describe()
                    )));
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    fn clean_leftovers(&self) -> Result<(), BuildFailure> {
        for p in self.stray_temporaries() {
            log::info!(
                "removed a temporary file a killed write left: {}",
                p.display()
            );
        }
        match self.layout.clean_leftovers() {
            Ok(removed) => {
                for p in removed {
                    log::info!("removed what an interrupted run left: {}", p.display());
                }
                Ok(())
            }
            Err(e) => Err(BuildFailure {
                kind: FailureKind::Environment,
                error: e.context("cleaning up an earlier run"),
            }),
        }
    }

    /// Removes the temporary files a killed atomic write left in our own directories (the
    /// state, data and cache dirs, the HTTP cache, the build checkout's git dir) and, in
    /// `bin_dir`, beside our binaries' links: only our own unpredictable names, at least
    /// an hour old (a `check` may be writing the HTTP cache without the lock).
    fn stray_temporaries(&self) -> Vec<PathBuf> {
        const MIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);
        let cache = &self.settings.build.cache_dir;
        let checkout_git = crate::git::checkout_dir(cache).join(".git");
        let mut removed = Vec::new();
        for dir in [
            self.state_file.path().parent().map(PathBuf::from),
            Some(self.settings.data_dir.clone()),
            Some(cache.clone()),
            Some(cache.join("http")),
            Some(checkout_git.clone()),
            Some(checkout_git.join("info")),
        ]
        .into_iter()
        .flatten()
        {
            removed.extend(crate::fsutil::remove_stray_temporaries(
                &dir,
                |_| true,
                MIN_AGE,
            ));
        }
        // Ours in bin_dir: what cargo's records say the packages install, and `binary`
        // (a plain install may have no records).
        let mut binaries = self.layout.expected_binaries(&self.settings.build.packages);
        binaries.push(self.settings.build.binary.clone());
        removed.extend(crate::fsutil::remove_stray_temporaries(
            &self.settings.bin_dir,
            |name| binaries.iter().any(|b| b == name),
            MIN_AGE,
        ));
        removed
    }

    #[allow(clippy::too_many_arguments)]
    fn build_step(
        &self,
        step: &BuildStep,
        progress: &mut build::Progress,
        prepared: &mut bool,
        reused: &mut bool,
        root: &mut Option<String>,
        state: &State,
        deadline: Instant,
    ) -> Result<(), BuildFailure> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        if !*prepared && !matches!(step, BuildStep::Resolve(_)) {
            self.builder.prepare(target, progress)?;
            *prepared = true;
        }
        self.builder.run_step(step, target, progress, deadline)?;
        if let BuildStep::Resolve(_) = step {
            // A kept root of exactly this build (version and commit) is used as it is.
            let kept = roots::kept_root(
                self.layout,
                state,
                &target.version,
                progress.commit.as_deref(),
                &self.settings.build.packages,
                &self.settings.build.binary,
            )
            .filter(|r| Some(&r.name) != self.layout.current().as_ref())
            // With `verify_tag` only a build whose tag's signature, kept with it, verifies
            // now: one kept from before, or signed by a key removed since, would be
            // switched to without a signature that counts today.
            .filter(|r| self.builder.reusable(r, target));
            if let Some(kept) = kept {
                log::info!("reusing the kept build {} of {}", kept.name, target.tag);
                *root = Some(kept.name);
                *reused = true;
            }
        }
        Ok(())
    }

    fn keep(&self, progress: &build::Progress) -> Result<String, BuildFailure> {
        let target = self.target.as_ref().ok_or_else(|| BuildFailure {
            kind: FailureKind::Environment,
            error: anyhow!("no build to keep"),
        })?;
        let staging = self.builder.finish(target, progress)?;
        let name = self.layout.free_name(&target.version.to_string());
        std::fs::rename(&staging, self.layout.root(&name)).map_err(|e| BuildFailure {
            kind: FailureKind::Environment,
            error: anyhow::Error::new(e)
                .context(format!("could not move {} into place", staging.display())),
        })?;
        if self.settings.build.mode == build::BuildMode::Git {
            let _ = crate::fsutil::remove_all(&self.layout.target_dir(&target.version));
        }
        Ok(name)
    }

    /// Keeps the built root for the restart window.
    fn stage(
        &self,
        state: &mut State,
        root: Option<&str>,
        opens: Option<time::OffsetDateTime>,
    ) -> Told {
        let (Some(root), Some(target)) = (root, self.target.as_ref()) else {
            return self.failure(
                state,
                FailureKind::Environment,
                &anyhow!("there is no built root to stage"),
            );
        };
        state.staged = Some(crate::state::Staged {
            root: root.to_owned(),
            version: target.version.to_string(),
            at: self.world.clock.now(),
        });
        Told {
            outcome: Outcome::Staged,
            message: format!(
                "built {} and staged it as version root {root}; {}",
                target.version,
                opens.map_or_else(
                    || "it is switched to in the next restart window".to_owned(),
                    |t| format!(
                        "it is switched to in the restart window at {}",
                        crate::timefmt::rfc3339(t)
                    )
                )
            ),
            help: vec!["help: `check-and-apply --now` switches at once".to_owned()],
            event: None,
            exit_code: crate::exit::OK,
        }
    }

    /// Keeps what the switch to `root` would replace (see [`Layout::adoption`]), or
    /// stops when another package installed some of it: nothing is changed then.
    fn adopt(&self, root: Option<&str>, version: Option<&Version>) -> Result<(), BuildFailure> {
        let env = |error: anyhow::Error| BuildFailure {
            kind: FailureKind::Environment,
            error,
        };
        let Some(to) = root.and_then(|r| self.layout.find(r)) else {
            return Ok(());
        };
        let build = &self.settings.build;
        let adoption = self
            .layout
            .adoption(&to, &build.binary, &build.packages)
            .map_err(|e| env(e.context("looking at what bin_dir holds")))?;
        if !adoption.refused.is_empty() {
            return Err(env(refusal(self.layout, &to, &adoption.refused)));
        }
        // Adoption changes where the running binaries live, not what they are.
        match self.layout.adopt(&adoption, version) {
            Ok(Some(adopted)) => {
                log::info!(
                    "took the installed binaries under management as version root {adopted} (for rollback): {}",
                    adoption
                        .take
                        .iter()
                        .map(|(b, _)| b.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(env(
                e.context("taking the installed binaries under management")
            )),
        }
    }

    /// A failure before the switch: nothing changed. Records a backoff where retrying at
    /// once cannot help.
    fn failure(&self, state: &mut State, kind: FailureKind, error: &anyhow::Error) -> Told {
        use crate::exit::{FAILED, TEMPFAIL};
        let version = self.target.as_ref().map(|t| t.version.to_string());
        let first = format!("{error:#}");
        let first = first.lines().next().unwrap_or("").to_owned();
        let mut help: Vec<String> = format!("{error:#}")
            .lines()
            .filter(|l| l.starts_with("help:"))
            .map(String::from)
            .collect();
        let body: Vec<String> = format!("{error:#}")
            .lines()
            .filter(|l| !l.starts_with("help:"))
            .map(String::from)
            .collect();
        let body = body.join("\n");
        let (outcome, message, exit_code, event) = match kind {
            FailureKind::Interrupted => (
                Outcome::Interrupted,
                "interrupted; nothing was changed".to_owned(),
                TEMPFAIL,
                None,
            ),
            FailureKind::Network => (
                Outcome::Failed,
                format!(
                    "the forge or network is unavailable; nothing was changed and the next run tries again: {body}"
                ),
                TEMPFAIL,
                None,
            ),
            _ => (
                Outcome::Failed,
                match &version {
                    Some(v) => format!("could not update to {v}; nothing was changed: {body}"),
                    None => format!("nothing was changed: {body}"),
                },
                FAILED,
                Some(Event::Failed),
            ),
        };
        if kind.backs_off()
            && let Some(v) = &version
        {
            let until = state.note_build_failure(v, self.world.clock.now(), &first);
            if kind == FailureKind::Toolchain
                && let Some(b) = state.backoff.get_mut(v)
            {
                // Tried again as soon as the toolchain is another one; "" when rustc
                // could not run at all (a missing toolchain): any answer ends it.
                b.rustc = Some(self.builder.rustc_now().unwrap_or_default());
            }
            help.push(format!(
                "help: {v} is not tried again before {} (backoff; --force skips it)",
                crate::timefmt::rfc3339(until)
            ));
        }
        if let Some(h) = log_hint(self.builder.log_file.as_deref()) {
            help.push(h);
        }
        Told {
            outcome,
            message,
            help,
            event,
            exit_code,
        }
    }

    fn notify(&self, state: &mut State, told: &Told, from: Option<&str>, root: Option<&str>) {
        let Some(event) = told.event else {
            return;
        };
        let to = self
            .target
            .as_ref()
            .map(|t| t.version.to_string())
            .or_else(|| {
                root.and_then(|r| self.layout.find(r))
                    .and_then(|r| r.version())
                    .map(|v| v.to_string())
            });
        notify::send(
            self.world.runner.as_ref(),
            self.settings.deploy.notify_command.as_deref(),
            state,
            &Notice {
                event,
                from,
                to: to.as_deref(),
                message: &told.message,
            },
        );
    }

    fn prune(&self, state: &mut State) {
        match roots::prune(
            self.layout,
            state,
            self.settings.keep_versions,
            &self.settings.build.binary,
        ) {
            Ok(removed) if !removed.is_empty() => {
                log::info!("removed old version roots: {}", removed.join(", "));
            }
            Ok(_) => {}
            Err(e) => log::warn!("could not remove old version roots: {e:#}"),
        }
    }
}

/// Why a switch to `to` is refused: it would replace binaries in `bin_dir` that cargo's
/// records give to other packages (`cargo install` refuses that too, without `--force`).
fn refusal(
    layout: &Layout,
    to: &crate::layout::Root,
    refused: &[crate::layout::Owned],
) -> anyhow::Error {
    let which: Vec<String> = refused
        .iter()
        .map(|o| format!("`{}` (installed by {})", o.binary, o.owner))
        .collect();
    let mut owners: Vec<&str> = Vec::new();
    for o in refused {
        let package = o.owner.split(' ').next().unwrap_or(&o.owner);
        if !owners.contains(&package) {
            owners.push(package);
        }
    }
    let version = to
        .version()
        .map_or_else(|| to.name.clone(), |v| v.to_string());
    let (them, are) = if refused.len() == 1 {
        ("it", "is")
    } else {
        ("them", "are")
    };
    anyhow!(
        "{version} would replace {} in {}, which cargo's records give to another package; {them} {are} left alone and nothing was switched ({version}: {})\nhelp: heph-selfupdate replaces no binary another package installed, as `cargo install` does not without --force: to let {version}'s take {} place, `cargo uninstall {}` (or move {them} out of {}); the next run switches then",
        which.join(", "),
        layout.bin_dir.display(),
        to.describe(),
        if refused.len() == 1 { "its" } else { "their" },
        owners.join(" "),
        layout.bin_dir.display(),
    )
}
