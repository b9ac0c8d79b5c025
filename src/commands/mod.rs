//! One module per command. Each takes the validated configuration and the world.

pub mod apply;
pub mod check;
pub mod doctor;
pub mod preview;
pub mod rollback;
pub mod show_config;
pub mod status;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::{Config, Dirs, Inputs, Os};
use crate::exit::ForgeDown;
use crate::world::World;

/// Runs the command; returns its exit code, or an error (mapped by [`crate::exit`]).
pub fn dispatch(cli: &Cli, world: &World) -> Result<i32> {
    let cfg = load_config(cli, world)?;
    match &cli.command {
        Command::Check(args) => check::run(&cfg, world, args.json),
        Command::Config(args) => show_config::run(&cfg, args.json),
        Command::CheckAndApply(args) => apply::run(&cfg, world, args),
        Command::Status(args) => status::run(&cfg, world, args.json),
        Command::Rollback(args) => rollback::run(&cfg, world, args.json),
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
    let cfg = Config::load(&inputs)?;
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    Ok(cfg)
}
