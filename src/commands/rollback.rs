//! `heph-selfupdate rollback`: back to the previous version root, with the same health
//! proof as an update. The version rolled back from is marked bad.

use anyhow::{Result, anyhow, bail};

use crate::config::Config;
use crate::exit;
use crate::layout::Layout;
use crate::lock::RunLock;
use crate::output::outln;
use crate::state::{Outcome, RunRecord, StateFile};
use crate::world::World;

use super::apply::{manager, restart_and_prove};
use crate::health::Proven;
use crate::layout::root_version;

pub fn run(cfg: &Config, world: &World, json: bool) -> Result<i32> {
    let lock = RunLock::acquire(&cfg.state_dir)?;
    let state_file = StateFile::new(cfg.state_file());
    let mut state = state_file.load()?;
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let started = world.clock.now();
    let clock_start = world.clock.instant();
    let Some(current) = layout.current() else {
        bail!(
            "nothing to roll back: {} is not managed by heph-selfupdate yet (no version roots)",
            cfg.bin_dir.display()
        );
    };
    let previous = state
        .previous
        .clone()
        .filter(|p| p != &current && layout.root(p).exists());
    let Some(previous) = previous else {
        bail!(
            "nothing to roll back to: no previous version root is recorded for {current}\nhelp: `heph-selfupdate check-and-apply --to <version>` installs a chosen release"
        );
    };
    log::info!("rolling back from {current} to {previous}");
    layout.set_current(&previous)?;
    layout.link_binaries(&cfg.packages)?;
    // Restart and prove; without a service manager the person restarts the daemon.
    let prove = |version: &str| -> Result<(), String> {
        let Some(m) = manager(cfg, world) else {
            log::warn!(
                "service_manager = none: restart {} yourself to run {version}",
                cfg.binary
            );
            return Ok(());
        };
        match restart_and_prove(cfg, world, m.as_ref()) {
            Proven::Healthy(_) => Ok(()),
            Proven::Unhealthy(why) | Proven::Unknown(why) => Err(why),
        }
    };
    let (outcome, message, result) = match prove(&previous) {
        Ok(()) => {
            if let Some(v) = root_version(&current) {
                state.mark_bad(&v, world.clock.now(), "rolled back by hand");
            }
            state.current = Some(previous.clone());
            state.previous = None;
            let message = format!(
                "rolled back from {current} to {previous}; {current} is marked bad (the timer will not reinstall it)"
            );
            log::info!("{message}");
            (Outcome::ManualRollback, message, Ok(exit::OK))
        }
        Err(why) => {
            log::error!("{previous} is unhealthy ({why}); switching back to {current}");
            layout.set_current(&current)?;
            layout.link_binaries(&cfg.packages)?;
            let message = match prove(&current) {
                Ok(()) => format!(
                    "{previous} was unhealthy ({why}); stayed on {current}, which is healthy"
                ),
                Err(back_why) => format!(
                    "ROLLBACK FAILED: {previous} was unhealthy ({why}) and {current} is unhealthy too ({back_why})"
                ),
            };
            (
                Outcome::RollbackFailed,
                message.clone(),
                Err(anyhow!(
                    "{message}\nhelp: `heph-selfupdate status` shows the version roots"
                )),
            )
        }
    };
    state.record(RunRecord {
        started,
        duration_secs: clock_start.elapsed().as_secs_f64(),
        from: root_version(&current).map(|v| v.to_string()),
        to: root_version(&previous).map(|v| v.to_string()),
        outcome,
        reason: message.clone(),
        log: None,
    });
    state_file.save(&state, &lock)?;
    if json {
        outln!(
            "{}",
            serde_json::json!({"outcome": outcome.as_str(), "from": current, "to": previous, "message": message})
        );
    }
    result
}
