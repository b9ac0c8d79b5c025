//! `heph-selfupdate check-and-apply`: the job the timer runs.
//!
//! Decide (the same code as `check`); when due — or when an earlier run left a switch
//! unfinished — take the lock, finish that switch first, probe what is installed again and
//! decide again from these fresh facts; then make the plan and execute it (`--dry-run`
//! renders the same plan). Either the daemon ends on the new release, healthy, or where it
//! was — and the state file and the log say which; a run that dies mid-switch leaves an
//! intent that the next run finishes.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use time::OffsetDateTime;

use crate::build::{Builder, Target, Tools};
use crate::cli::ApplyArgs;
use crate::config::{Config, ConfigError, Mode};
use crate::deploy::{Deployer, recover};
use crate::evaluate::{Evaluation, evaluate, redecide};
use crate::installed::{Installed, probe};
use crate::layout::Layout;
use crate::lock::RunLock;
use crate::notify::{Event, Notice};
use crate::plan::{Executor, Plan, RunSettings, Step, switch_cmds};
use crate::policy::{Decision, Overrides, Reason};
use crate::report::{Recovered, RunReport};
use crate::roots;
use crate::service::ServiceManager;
use crate::state::{CheckRecord, Outcome, Purpose, RunRecord, State, StateFile};
use crate::version::parse_tag;
use crate::window::WindowNow;
use crate::world::World;

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
    let settings = super::run_settings(cfg, world);
    let state_file = StateFile::new(cfg.state_file());
    let peek = state_file.peek()?;
    let eval = evaluate(cfg, world, &peek, &overrides, !args.dry_run)?;
    if args.dry_run {
        return preview(cfg, world, &settings, &eval, &peek, args);
    }
    if !eval.decision.due && peek.intent.is_none() && eval.decision.missing_target().is_none() {
        log::info!("nothing to do: {}", eval.decision.summary());
        record_check_if_free(cfg, &state_file, &eval.decision, world.clock.now());
        let mut report = RunReport::quiet(Outcome::NothingDue, eval.decision.summary());
        describe(&mut report, &eval.decision);
        return Ok(report.emit(world.out.as_ref(), args.json, true));
    }
    let lock = RunLock::acquire(&cfg.state_dir)?;
    let mut state = state_file.load()?;
    let started = world.clock.now();
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let deployer = Deployer::new(world, &settings.deploy, &layout, &state_file, &lock);

    // An earlier run's unfinished switch comes first: nothing is decided on top of it.
    let recovered = recover(&deployer, &mut state);
    if let Some(told) = recovered.as_ref().filter(|t| !t.ok()) {
        return Ok(RunReport::recovery(told, "update").emit(world.out.as_ref(), args.json, true));
    }

    // Fresh facts under the lock: another run may have updated since the check above.
    let installed = probe(
        world.runner.as_ref(),
        &cfg.layout(),
        &cfg.binary,
        &cfg.packages,
    );
    let decision = redecide(&installed, &eval.releases, cfg, &state, &overrides, world)?;
    state.last_check = Some(check_record(&decision, world.clock.now()));
    // Saved before anything changes: a state that cannot be written stops the run here.
    state_file.save(&state, &lock)?;
    if let Some((message, help)) = decision.missing_target() {
        // Recorded, so `status` shows it: a mistyped pin must not look healthy.
        state.record(RunRecord {
            started,
            duration_secs: 0.0,
            from: decision.installed.as_ref().map(ToString::to_string),
            to: None,
            outcome: Outcome::Failed,
            reason: message.clone(),
            log: None,
        });
        state_file.save(&state, &lock)?;
        let mut report = RunReport::new(&crate::deploy::Told {
            outcome: Outcome::Failed,
            message,
            help: vec![help],
            event: None,
            exit_code: crate::exit::FAILED,
        });
        describe(&mut report, &decision);
        return Ok(report.emit(world.out.as_ref(), args.json, false));
    }
    let Some(chosen) = decision.chosen.clone().filter(|_| decision.due) else {
        log::info!("nothing to do: {}", decision.summary());
        crate::build::cache::clear_network_failures(&settings.build.cache_dir);
        state.last_ok = Some(world.clock.now());
        drop_stale_staged(&mut state, &decision);
        state_file.save(&state, &lock)?;
        let mut report = RunReport::quiet(Outcome::NothingDue, decision.summary());
        describe(&mut report, &decision);
        report.recovered = recovered.as_ref().map(Recovered::from);
        return Ok(report.emit(world.out.as_ref(), args.json, true));
    };
    let from = decision.installed.as_ref().map(ToString::to_string);
    if cfg.mode == Mode::Notify {
        let message = format!(
            "{} (mode = notify: nothing was changed)",
            decision.summary()
        );
        log::warn!("{message}");
        let to = chosen.version.to_string();
        // In notify mode every hourly run finds the same pending update: one history
        // entry for it, not fifty that push the real history out.
        let repeat = state.history.last().is_some_and(|r| {
            r.outcome == Outcome::Notified && r.to.as_deref() == Some(to.as_str())
        });
        if !repeat {
            state.record(RunRecord {
                started,
                duration_secs: 0.0,
                from: from.clone(),
                to: Some(to.clone()),
                outcome: Outcome::Notified,
                reason: message.clone(),
                log: None,
            });
        }
        crate::notify::send(
            world.runner.as_ref(),
            cfg.notify_command.as_deref(),
            &mut state,
            &Notice {
                event: Event::UpdateAvailable,
                from: from.as_deref(),
                to: Some(&to),
                message: &message,
            },
        );
        state.last_ok = Some(started);
        state_file.save(&state, &lock)?;
        let mut report = RunReport::quiet(Outcome::Notified, message);
        describe(&mut report, &decision);
        return Ok(report.emit(world.out.as_ref(), args.json, true));
    }

    log::info!("{}", decision.summary());
    let log_file = open_log(cfg, started, &chosen.version.to_string());
    let tools = Tools::find(&settings.build, world.path_var());
    let builder = Builder {
        settings: &settings.build,
        runner: world.runner.as_ref(),
        clock: world.clock.as_ref(),
        tools,
        layout: layout.clone(),
        log_file: log_file.clone(),
    };
    let target = Target {
        tag: chosen.tag.clone(),
        version: chosen.version.clone(),
    };
    let planned = update_plan(&PlanInputs {
        settings: &settings,
        layout: &layout,
        state: &state,
        builder: &builder,
        manager: deployer.manager.as_deref(),
        installed: &installed,
        target: &target,
        requested: overrides.to.is_some(),
        window: WindowNow::at(
            settings.restart_window.as_ref(),
            world.clock.now(),
            args.now,
        ),
    });
    let plan = match planned {
        Planned::Plan(plan) => plan,
        Planned::Waiting { staged, opens } => {
            let message = waiting_message(&staged, opens);
            log::info!("{message}");
            state.last_ok = Some(world.clock.now());
            state_file.save(&state, &lock)?;
            let mut report = RunReport::quiet(Outcome::Staged, message);
            describe(&mut report, &decision);
            return Ok(report.emit(world.out.as_ref(), args.json, true));
        }
    };
    let executor = Executor {
        world,
        settings: &settings,
        layout: &layout,
        builder: &builder,
        deployer: &deployer,
        state_file: &state_file,
        lock: &lock,
        target: Some(target),
        force_now: args.now,
    };
    let told = executor.run(&plan, &mut state, from.as_deref());
    if told.ok() {
        state.last_ok = Some(world.clock.now());
    }
    let log = log_file.filter(|p| p.exists());
    state.record(RunRecord {
        started,
        duration_secs: (world.clock.now() - started).as_seconds_f64().max(0.0),
        from: from.clone(),
        to: Some(chosen.version.to_string()),
        outcome: told.outcome,
        reason: told.message.clone(),
        log: log.clone(),
    });
    state_file.save_record(&state, &lock);
    let mut report = RunReport::new(&told);
    describe(&mut report, &decision);
    report.recovered = recovered.as_ref().map(Recovered::from);
    report.log = log;
    Ok(report.emit(world.out.as_ref(), args.json, false))
}

/// What an update's plan is made from.
#[allow(missing_debug_implementations)] // borrows a service manager, which has none
pub struct PlanInputs<'a> {
    pub settings: &'a RunSettings,
    pub layout: &'a Layout,
    pub state: &'a State,
    pub builder: &'a Builder<'a>,
    pub manager: Option<&'a dyn ServiceManager>,
    pub installed: &'a Installed,
    pub target: &'a Target,
    /// `--to`: a person's choice (a kept root of it is used as it is).
    pub requested: bool,
    pub window: WindowNow,
}

/// An update's plan, or the wait for the restart window with a root already staged.
#[derive(Debug)]
pub enum Planned {
    Plan(Plan),
    Waiting {
        staged: crate::state::Staged,
        opens: Option<OffsetDateTime>,
    },
}

/// The plan of an update to the target: a root staged for it or (for `--to`) a kept root
/// of it, else a build; then the switch — or, outside `restart_window`, staging.
pub fn update_plan(i: &PlanInputs<'_>) -> Planned {
    let (settings, layout, state, target) = (i.settings, i.layout, i.state, i.target);
    let (packages, binary) = (&settings.build.packages, &settings.build.binary);
    let staged = state.staged.clone().filter(|st| {
        st.version == target.version.to_string()
            && layout
                .find(&st.root)
                .is_some_and(|r| r.serves(packages, binary))
    });
    if let (Some(staged), WindowNow::Closed(opens)) = (&staged, i.window) {
        return Planned::Waiting {
            staged: staged.clone(),
            opens,
        };
    }
    let mut steps = vec![
        Step::Preflight {
            observe: i.manager.map(ServiceManager::observe_cmd),
        },
        Step::CleanLeftovers,
    ];
    // A root staged for this release, or (`--to`) a kept root of it: nothing to build.
    let kept = staged.map(|st| st.root).or_else(|| {
        i.requested
            .then(|| roots::kept_root(layout, state, &target.version, None, packages, binary))
            .flatten()
            .map(|r| r.name)
    });
    // With `verify_tag`, only when the signature kept with it verifies now; else built.
    let kept = kept
        .filter(|name| Some(name) != layout.current().as_ref())
        .filter(|name| {
            layout
                .find(name)
                .is_some_and(|root| i.builder.reusable(&root, target))
        });
    if let Some(name) = kept {
        steps.push(Step::UseRoot { name });
    } else {
        steps.push(Step::CheckSpace {
            dirs: crate::build::space_needed(&settings.build),
            need: settings.build.min_free_space,
        });
        let members = i.builder.known_members();
        steps.extend(
            i.builder
                .steps(target, &members)
                .into_iter()
                .map(Step::Build),
        );
        steps.push(Step::Keep);
    }
    if let WindowNow::Closed(opens) = i.window {
        steps.push(Step::Stage { opens });
        // A failed build is told, staged or not.
        if let Some(cmd) = crate::plan::notify_cmd(settings, Event::Failed) {
            steps.push(Step::Notify { cmd });
        }
        steps.push(Step::Prune {
            keep: settings.keep_versions,
        });
        return Planned::Plan(Plan { steps });
    }
    // Every switch: what the new root would replace is kept first (or the run stops).
    steps.push(Step::Adopt {
        version: i.installed.version.clone(),
        plain: layout.management(binary, packages).plain,
    });
    steps.push(Step::Switch {
        purpose: if i.requested {
            Purpose::Requested
        } else {
            Purpose::Update
        },
        cmds: switch_cmds(settings, i.manager, true),
        signal: i.manager.and_then(ServiceManager::restart_signal),
    });
    if let Some(cmd) = crate::plan::notify_cmd(settings, Event::Updated) {
        steps.push(Step::Notify { cmd });
    }
    steps.push(Step::Prune {
        keep: settings.keep_versions,
    });
    Planned::Plan(Plan { steps })
}

/// The message for a release staged and waiting for the window.
fn waiting_message(staged: &crate::state::Staged, opens: Option<OffsetDateTime>) -> String {
    format!(
        "staged {} (version root {}); it restarts in the window {}",
        staged.version,
        staged.root,
        opens.map_or_else(
            || "when one opens".to_owned(),
            |t| format!("at {}", crate::timefmt::rfc3339(t))
        )
    )
}

/// `--dry-run`: the plan, rendered; nothing runs that changes anything.
fn preview(
    cfg: &Config,
    world: &World,
    settings: &RunSettings,
    eval: &Evaluation,
    state: &State,
    args: &ApplyArgs,
) -> Result<i32> {
    let (json, force_now) = (args.json, args.now);
    let mut waiting = None;
    let d = &eval.decision;
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let manager = world.services.manager(&settings.deploy.service);
    let mut plan = Plan::default();
    if let Some(intent) = &state.intent {
        // A run finishes that switch first and then decides from what it finds: what it
        // would decide cannot be known before.
        plan.steps.push(Step::Resume {
            intent: intent.clone(),
            cmds: switch_cmds(settings, manager.as_deref(), !intent.phase.reverting()),
        });
        if json {
            let mut out = plan.to_json();
            out["action"] = "finish-switch".into();
            out["unfinished_switch"] = true.into();
            out["message"] = plan.steps[0].describe().into();
            world.out.line(&serde_json::to_string_pretty(&out)?);
        } else {
            world.out.text(&format!(
                "# finish-switch: an earlier run left a switch unfinished\n{}",
                plan.render()
            ));
        }
        return Ok(crate::exit::OK);
    }
    let action = match (d.due, cfg.mode) {
        (false, _) => "none",
        (true, Mode::Apply) => "update",
        (true, Mode::Notify) => "notify",
    };
    let target = d.chosen.as_ref().filter(|_| d.due);
    match (action, target) {
        ("update", Some(chosen)) => {
            let builder = Builder {
                settings: &settings.build,
                runner: world.runner.as_ref(),
                clock: world.clock.as_ref(),
                tools: Tools::find(&settings.build, world.path_var()),
                layout: layout.clone(),
                log_file: None,
            };
            let target = Target {
                tag: chosen.tag.clone(),
                version: chosen.version.clone(),
            };
            match update_plan(&PlanInputs {
                settings,
                layout: &layout,
                state,
                builder: &builder,
                manager: manager.as_deref(),
                installed: &eval.installed,
                target: &target,
                requested: matches!(d.reason, Reason::Requested),
                window: WindowNow::at(
                    settings.restart_window.as_ref(),
                    world.clock.now(),
                    force_now,
                ),
            }) {
                Planned::Plan(update) => plan.steps.extend(update.steps),
                Planned::Waiting { staged, opens } => {
                    waiting = Some(waiting_message(&staged, opens));
                }
            }
        }
        ("notify", _) => {
            if let Some(cmd) = crate::plan::notify_cmd(settings, Event::UpdateAvailable) {
                plan.steps.push(Step::Notify { cmd });
            }
        }
        _ => {}
    }
    let from = d.installed.as_ref().map(ToString::to_string);
    if json {
        let mut out = plan.to_json();
        out["action"] = action.into();
        out["from"] = from.into();
        out["to"] = target.map(|c| c.version.to_string()).into();
        out["tag"] = target.map(|c| c.tag.clone()).into();
        out["reason"] = d.reason.code().into();
        out["message"] = d.summary().into();
        out["unfinished_switch"] = state.intent.is_some().into();
        out["waiting"] = waiting.clone().into();
        world.out.line(&serde_json::to_string_pretty(&out)?);
        return Ok(crate::exit::OK);
    }
    let mut text = format!("# {action}: {}\n", d.summary());
    if let Some(w) = &waiting {
        let _ = writeln!(text, "# {w}: nothing runs before then");
    }
    text.push_str(&plan.render());
    if action == "update" && waiting.is_none() {
        let _ = writeln!(
            text,
            "# afterwards: {} -> versions/<new root>, one rename; a failed health check switches it back",
            layout.current_link().display()
        );
    }
    world.out.text(&text);
    Ok(crate::exit::OK)
}

fn describe(report: &mut RunReport, decision: &Decision) {
    report.from = decision.installed.as_ref().map(ToString::to_string);
    let target = decision.chosen.as_ref().filter(|_| decision.due);
    report.to = target.map(|c| c.version.to_string());
    report.tag = target.map(|c| c.tag.clone());
    report.reason = Some(decision.reason.code());
}

fn check_record(decision: &Decision, at: OffsetDateTime) -> CheckRecord {
    CheckRecord {
        at,
        installed: decision.installed.as_ref().map(ToString::to_string),
        latest: decision.chosen.as_ref().map(|c| c.version.to_string()),
        update_available: decision.due,
        reason: decision.summary(),
        reason_code: Some(decision.reason.code().to_owned()),
    }
}

/// Drops a staged root whose release is no longer the one due (the rollout was halted, or
/// the release went away): `status` and the metrics stop announcing it, and pruning may
/// remove its root.
fn drop_stale_staged(state: &mut State, decision: &Decision) {
    let due = decision
        .chosen
        .as_ref()
        .filter(|_| decision.due)
        .map(|c| c.version.to_string());
    if let Some(st) = &state.staged
        && due.as_deref() != Some(st.version.as_str())
    {
        log::info!(
            "the staged {} is no longer due; it will not be switched to",
            st.version
        );
        state.staged = None;
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
    // Under the lock: a build of another run may be noting a failure now.
    crate::build::cache::clear_network_failures(&cfg.cache_dir);
    let result = state_file.load().and_then(|mut state| {
        state.last_check = Some(check_record(decision, now));
        state.last_ok = Some(now);
        drop_stale_staged(&mut state, decision);
        state_file.save(&state, &lock)
    });
    if let Err(e) = result {
        log::warn!("could not record the check: {e:#}");
    }
}

/// A new build log in `<state dir>/logs`, keeping the newest [`KEEP_LOGS`].
fn open_log(cfg: &Config, started: OffsetDateTime, version: &str) -> Option<PathBuf> {
    let dir = cfg.state_dir.join("logs");
    if let Err(e) = crate::fsutil::create_private_dir(&dir) {
        log::warn!("no build log: {e:#}");
        return None;
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut logs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        logs.sort();
        let excess = logs.len().saturating_sub(KEEP_LOGS - 1);
        for old in logs.into_iter().take(excess) {
            let _ = std::fs::remove_file(old);
        }
    }
    Some(dir.join(format!("{}-{version}.log", started.unix_timestamp())))
}
