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
        Command::Config(args) => show_config::run(&cfg, args.json),
        Command::CheckAndApply(args) => apply::run(&cfg, world, args),
        Command::Status(args) => status::run(&cfg, world, args.json),
        Command::Rollback(args) => rollback::run(&cfg, world, args),
        Command::Doctor(args) => doctor::run(&cfg, world, args.json),
        Command::ReapGroup { pgid, parent } => Ok(crate::process::reap_group(*pgid, *parent)),
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
    let cfg = Config::load(&inputs)?;
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
        },
        bin_dir: cfg.bin_dir.clone(),
        data_dir: cfg.data_dir.clone(),
        keep_versions: cfg.keep_versions,
        notify_command: cfg.notify_command.clone(),
        status_command: cfg.service_manager.status_command(&cfg.service, world.uid),
    }
}

/// The daemon's service, from the configuration.
pub fn service_spec(cfg: &Config) -> ServiceSpec {
    ServiceSpec {
        kind: cfg.service_manager,
        name: cfg.service.clone(),
        restart_timeout: cfg.restart_timeout,
    }
}
