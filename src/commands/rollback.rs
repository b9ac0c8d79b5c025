//! `heph-selfupdate rollback`: back to the newest healthy version root of another version
//! that holds `binary` (or `--to` a chosen kept root), through the same switch, proof and
//! messages as an update. The version rolled back from is marked bad, so the timer does not
//! reinstall it. `--dry-run` shows the plan.

use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::build::{Builder, Tools};
use crate::cli::RollbackArgs;
use crate::config::{Config, ConfigError};
use crate::deploy::{Deployer, recover};
use crate::layout::{Layout, Root};
use crate::lock::RunLock;
use crate::notify::Event;
use crate::plan::{Executor, Plan, Step, switch_cmds};
use crate::report::{Recovered, RunReport};
use crate::roots;
use crate::service::ServiceManager;
use crate::state::{Outcome, Purpose, RunRecord, State, StateFile};
use crate::version::{parse_tag, same_version};
use crate::world::World;

/// The root to go back to. With `verify_tag`, never one whose kept signature is refused
/// now (`builder`, [`Builder::may_roll_back_to`]).
fn choose(
    cfg: &Config,
    layout: &Layout,
    state: &State,
    to: Option<&str>,
    builder: &Builder<'_>,
) -> Result<Root> {
    let Some(current) = layout.current() else {
        bail!(
            "nothing to roll back: {} is not managed by heph-selfupdate yet (no version roots)\nhelp: version roots are kept from the first update on: run `heph-selfupdate check-and-apply` (or `check-and-apply --to <version>` to install a chosen release)",
            cfg.bin_dir.display()
        );
    };
    let listing = || {
        layout
            .roots()
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(to) = to {
        let version =
            parse_tag(to).map_err(|e| ConfigError(format!("rollback --to {to:?}: {e}")))?;
        let root = layout
            .roots()
            .into_iter()
            // A root without `binary` is refused by the switch, which says what it holds.
            .filter(|r| r.name != current && r.binaries().is_some())
            .filter(|r| r.version().is_some_and(|v| same_version(&v, &version)))
            .min_by_key(|r| (!r.holds(&cfg.binary), !roots::is_healthy(r, state)));
        return match root {
            Some(r) => match builder.may_roll_back_to(&r) {
                Ok(()) => Ok(r),
                Err(why) => bail!(
                    "refusing to roll back to {}: {why}\nhelp: verify_tag switches only to builds whose tag's signature counts today; `heph-selfupdate rollback --to <version>` picks another kept root, `check-and-apply --to <version>` builds a release afresh",
                    r.name
                ),
            },
            None => bail!(
                "no kept version root of {version} other than the current one ({current}); kept: {}\nhelp: `heph-selfupdate check-and-apply --to {version}` builds it",
                listing()
            ),
        };
    }
    let candidates = roots::rollback_candidates(layout, state, Some(&current), &cfg.binary);
    let mut refused = Vec::new();
    for r in candidates {
        match builder.may_roll_back_to(&r) {
            Ok(()) => return Ok(r),
            Err(why) => {
                log::warn!("not rolling back to {}: {why}", r.name);
                refused.push(r.name);
            }
        }
    }
    let refused = if refused.is_empty() {
        String::new()
    } else {
        format!(
            "; refused by verify_tag: {} (their tag's signature does not count today)",
            refused.join(", ")
        )
    };
    bail!(
        "nothing to roll back to: no healthy version root of another version than {current}'s that holds `{}` (kept: {}){refused}\nhelp: `heph-selfupdate rollback --to <version>` picks a kept root; `check-and-apply --to <version>` installs a chosen release",
        cfg.binary,
        listing()
    )
}

fn plan(
    settings: &crate::plan::RunSettings,
    manager: Option<&dyn ServiceManager>,
    root: &Root,
    state: &State,
) -> Plan {
    let mut steps = Vec::new();
    if let Some(intent) = &state.intent {
        steps.push(Step::Resume {
            intent: intent.clone(),
            cmds: switch_cmds(settings, manager, !intent.phase.reverting()),
        });
    }
    steps.push(Step::Preflight {
        observe: manager.map(ServiceManager::observe_cmd),
    });
    steps.push(Step::UseRoot {
        name: root.name.clone(),
    });
    steps.push(Step::Switch {
        purpose: Purpose::Rollback,
        cmds: switch_cmds(settings, manager, true),
        signal: manager.and_then(ServiceManager::restart_signal),
    });
    if let Some(cmd) = crate::plan::notify_cmd(settings, Event::Updated) {
        steps.push(Step::Notify { cmd });
    }
    Plan { steps }
}

pub fn run(cfg: &Config, world: &World, args: &RollbackArgs) -> Result<i32> {
    let settings = super::run_settings(cfg, world);
    let state_file = StateFile::new(cfg.state_file());
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let builder = Builder {
        settings: &settings.build,
        runner: world.runner.as_ref(),
        clock: world.clock.as_ref(),
        tools: Tools::find(&settings.build, world.path_var()),
        layout: layout.clone(),
        log_file: None,
    };
    if args.dry_run {
        let state = state_file.peek()?;
        let root = choose(cfg, &layout, &state, args.to.as_deref(), &builder)?;
        let manager = world.services.manager(&settings.deploy.service);
        let plan = plan(&settings, manager.as_deref(), &root, &state);
        if args.json {
            let mut out = plan.to_json();
            out["action"] = "rollback".into();
            out["from"] = layout.current().into();
            out["to"] = root.name.clone().into();
            world.out.line(&serde_json::to_string_pretty(&out)?);
        } else {
            world.out.text(&format!(
                "# rollback: {} -> {}\n{}",
                layout.current().unwrap_or_default(),
                root.name,
                plan.render()
            ));
        }
        return Ok(crate::exit::OK);
    }
    let lock = RunLock::acquire(&cfg.state_dir)?;
    let mut state = state_file.load()?;
    let started = world.clock.now();
    let deployer = Deployer::new(world, &settings.deploy, &layout, &state_file, &lock);
    let recovered = recover(&deployer, &mut state);
    if let Some(told) = recovered.as_ref().filter(|t| !t.ok()) {
        return Ok(RunReport::recovery(told, "rollback").emit(world.out.as_ref(), args.json, true));
    }
    let root = choose(cfg, &layout, &state, args.to.as_deref(), &builder)?;
    let current = layout.current().unwrap_or_default();
    let from_version = layout
        .find(&current)
        .and_then(|r| r.version())
        .map(|v| v.to_string());
    log::info!("rolling back from {current} to {}", root.name);
    let plan = plan(&settings, deployer.manager.as_deref(), &root, &state);
    let executor = Executor {
        world,
        settings: &settings,
        layout: &layout,
        builder: &builder,
        deployer: &deployer,
        state_file: &state_file,
        lock: &lock,
        target: None,
        force_now: true,
    };
    let mut told = executor.run(&plan, &mut state, from_version.as_deref());
    // Going back marks the version left bad (the timer must not reinstall it); going
    // forward to a newer kept root marks nothing.
    let backwards = root
        .version()
        .zip(
            from_version
                .as_deref()
                .and_then(|v| semver::Version::parse(v).ok()),
        )
        .is_none_or(|(to, from)| to.cmp_precedence(&from).is_lt());
    if told.outcome == Outcome::ManualRollback
        && backwards
        && let Some(v) = &from_version
    {
        state.mark_bad(v, world.clock.now(), "rolled back by hand");
        let _ = write!(
            told.message,
            "; {v} is marked bad (the timer will not reinstall it)"
        );
    }
    let to_version = root.version().map(|v| v.to_string());
    state.record(RunRecord {
        started,
        duration_secs: (world.clock.now() - started).as_seconds_f64().max(0.0),
        from: from_version.clone(),
        to: to_version.clone(),
        outcome: told.outcome,
        reason: told.message.clone(),
        log: None,
    });
    state_file.save_record(&state, &lock);
    let mut report = RunReport::new(&told);
    report.from = from_version;
    report.to = to_version;
    report.recovered = recovered.as_ref().map(Recovered::from);
    Ok(report.emit(world.out.as_ref(), args.json, false))
}
