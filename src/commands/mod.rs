//! One module per command. Each takes the validated configuration and the world.

pub mod apply;
pub mod check;
pub mod doctor;
pub mod rollback;
pub mod show_config;
pub mod status;

use anyhow::Result;

use crate::build::BuildSettings;
use crate::cli::{Cli, Command};
use crate::config::{Config, Dirs, Inputs, Os};
use crate::deploy::DeploySettings;
use crate::exit::ForgeDown;
use crate::plan::RunSettings;
use crate::service::ServiceSpec;
use crate::world::World;

/// Runs the command; returns its exit code, or an error (mapped by [`crate::exit`]).
pub fn dispatch(cli: &Cli, world: &World) -> Result<i32> {
    let cfg = load_config(cli, world)?;
    match &cli.command {
        Command::Check(args) => check::run(&cfg, world, args.json),
        Command::Config(args) => show_config::run(&cfg, world.out.as_ref(), args.json),
        Command::CheckAndApply(args) => {
            let result = apply::run(&cfg, world, args);
            if !args.dry_run {
                write_metrics(&cfg, world);
            }
            result
        }
        Command::Status(args) => status::run(&cfg, world, args),
        Command::Rollback(args) => {
            let result = rollback::run(&cfg, world, args);
            if !args.dry_run {
                write_metrics(&cfg, world);
            }
            result
        }
        Command::Doctor(args) => doctor::run(&cfg, world, args.json),
        Command::ReapGroup { pgid, parent } => Ok(crate::process::reap_group(*pgid, *parent)),
        Command::Setup(cmd) => crate::setup::run(cmd),
    }
}

/// How an unreachable forge counts for this command.
pub fn forge_down(cli: &Cli) -> ForgeDown {
    match cli.command {
        Command::CheckAndApply(_) => ForgeDown::TryLater,
        _ => ForgeDown::Fails,
    }
}

fn load_config(cli: &Cli, world: &World) -> Result<Config> {
    let inputs = Inputs {
        config_flag: cli.global.config.clone(),
        sets: cli.global.set.clone(),
        env: world.env.clone(),
        dirs: Dirs::discover()?,
        os: Os::current(),
    };
    let mut cfg = Config::load(&inputs)?;
    // Who may change what `tool_path` runs, told once as the command starts (and by
    // `config` and `doctor`, which show the warnings).
    cfg.warnings.extend(cfg.tools().warnings(world.uid));
    if let Some(ca) = &cfg.ca_file {
        // The forge's TLS (rustls with the platform verifier) reads its roots from
        // SSL_CERT_FILE at the first connection. No child inherits it from here (the
        // runner gives each the value we started with, `envvars::OWN`): git and cargo
        // get the file through `build::build_env`. SAFETY: no other thread runs yet —
        // the first one is the first HTTP request's — so nothing reads the environment
        // while it changes.
        unsafe { std::env::set_var("SSL_CERT_FILE", ca) };
    }
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    Ok(cfg)
}

/// The narrow settings the middle layer needs, from the configuration.
pub fn run_settings(cfg: &Config, world: &World) -> RunSettings {
    RunSettings {
        build: BuildSettings {
            git_url: cfg.git_url.clone(),
            packages: cfg.packages.clone(),
            binary: cfg.binary.clone(),
            mode: cfg.build,
            profile: cfg.build_profile.clone(),
            toolchain: cfg.toolchain.clone(),
            cargo: cfg.cargo.clone(),
            rustc: world.env.get("RUSTC").map(std::path::PathBuf::from),
            verify_tag: cfg.verify_tag,
            allowed_signers: cfg.allowed_signers.clone(),
            build_timeout: cfg.build_timeout,
            retry_pause: cfg.retry_pause,
            min_free_space: cfg.min_free_space,
            // One small answer: a hung server must not hold the run for build_timeout.
            resolve_timeout: (cfg.http_timeout * 2).max(std::time::Duration::from_secs(30)),
            cache_max_size: cfg.cache_max_size,
            ca_file: cfg.ca_file.clone(),
            tool_path: cfg.tools(),
            cache_dir: cfg.cache_dir.clone(),
            data_dir: cfg.data_dir.clone(),
            home: cfg.home.clone(),
        },
        deploy: DeploySettings {
            packages: cfg.packages.clone(),
            binary: cfg.binary.clone(),
            service: service_spec(cfg),
            health_settle: cfg.health_settle,
            health_timeout: cfg.health_timeout,
            health_command: cfg.health_command.clone(),
            notify_command: cfg.notify_command.clone(),
            status_command: cfg.service_manager.status_command(&cfg.service, world.uid),
        },
        bin_dir: cfg.bin_dir.clone(),
        data_dir: cfg.data_dir.clone(),
        keep_versions: cfg.keep_versions,
        // Checked when the configuration was loaded; nothing left to fail here.
        restart_window: restart_windows(cfg).ok().flatten(),
    }
}

/// The daemon's service, from the configuration.
pub fn service_spec(cfg: &Config) -> ServiceSpec {
    ServiceSpec {
        kind: cfg.service_manager,
        name: cfg.service.clone(),
        restart_timeout: cfg.restart_timeout,
        restart: cfg.restart,
        tools: cfg.tools(),
    }
}

/// Writes `metrics_file` (if set) from the state after a run; a failure is a warning.
pub fn write_metrics(cfg: &Config, world: &World) {
    let Some(path) = &cfg.metrics_file else {
        return;
    };
    let state = match crate::state::StateFile::new(cfg.state_file()).peek() {
        Ok(s) => s,
        Err(e) => {
            log::warn!("no metrics written: {e:#}");
            return;
        }
    };
    let installed = crate::installed::probe(
        world.runner.as_ref(),
        &cfg.layout(),
        &cfg.binary,
        &cfg.packages,
    );
    let snapshot = metrics_snapshot(&state, installed.version.map(|v| v.to_string()));
    if let Err(e) = crate::metrics::write_textfile(path, &crate::metrics::render(&snapshot)) {
        log::warn!("could not write metrics_file: {e:#}");
    }
}

/// The metrics of a state (plain values; see [`crate::metrics`]).
pub fn metrics_snapshot(
    state: &crate::state::State,
    installed: Option<String>,
) -> crate::metrics::Snapshot {
    use crate::state::Outcome;
    let check = state.last_check.as_ref();
    let mut held: Vec<String> = check
        .filter(|c| !c.update_available)
        .and_then(|c| c.reason_code.clone())
        .filter(|code| crate::metrics::HOLD_REASONS.contains(&code.as_str()))
        .into_iter()
        .collect();
    if state.staged.is_some() {
        held.push("restart_window".to_owned());
    }
    let last = state.history.last();
    let failures = state
        .history
        .iter()
        .rev()
        .filter(|r| r.outcome != Outcome::Interrupted)
        .take_while(|r| {
            matches!(
                r.outcome,
                Outcome::Failed | Outcome::RolledBack | Outcome::RollbackFailed
            )
        })
        .count();
    crate::metrics::Snapshot {
        installed_version: installed,
        newest_eligible_version: check.and_then(|c| c.latest.clone()),
        update_due: check.is_some_and(|c| c.update_available),
        held,
        staged_version: state.staged.as_ref().map(|s| s.version.clone()),
        last_run: last.map(|r| crate::metrics::LastRun {
            at: r.started + std::time::Duration::from_secs_f64(r.duration_secs.max(0.0)),
            outcome: r.outcome.as_str().to_owned(),
        }),
        last_success_at: state.last_ok,
        consecutive_failures: u32::try_from(failures).unwrap_or(u32::MAX),
        bad_versions: state.bad.keys().cloned().collect(),
        last_build: state
            .last_build
            .as_ref()
            .map(|b| crate::metrics::BuildTimes {
                total: std::time::Duration::from_secs_f64(b.total_secs.max(0.0)),
                phases: b
                    .phases
                    .iter()
                    .map(|(n, s)| (n.clone(), std::time::Duration::from_secs_f64(s.max(0.0))))
                    .collect(),
            }),
        last_downtime: state
            .last_downtime_secs
            .map(|s| std::time::Duration::from_secs_f64(s.max(0.0))),
    }
}

/// The restart windows of the configuration (validated when it was loaded).
pub fn restart_windows(cfg: &Config) -> Result<Option<crate::window::Windows>> {
    if cfg.restart_window.is_empty() {
        return Ok(None);
    }
    crate::window::Windows::parse_list(&cfg.restart_window)
        .map(Some)
        .map_err(|e| crate::config::ConfigError(format!("`restart_window`: {e}")).into())
}
