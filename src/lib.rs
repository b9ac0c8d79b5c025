//! heph-selfupdate: keeps `hephd` current, safely and unattended.
//!
//! The decision is pure ([`policy`]); the world (HTTP, processes, clock) is passed in
//! ([`world`]); each command lives in [`commands`].

// stdout and stderr only through `World::out` (or `output::out!`) and the logger: `println!` panics when
// the reader has gone away (see `output`).
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod build;
pub mod cli;
pub mod clock;
pub mod colour;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod envfile;
pub mod envvars;
pub mod evaluate;
pub mod exit;
pub mod forge;
pub mod fsutil;
pub mod git;
pub mod health;
pub mod host_id;
pub mod http;
pub mod http_cache;
pub mod install_records;
pub mod installed;
pub mod layout;
pub mod lock;
pub mod logger;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod plan;
pub mod policy;
pub mod prebuilt;
pub mod process;
pub mod redact;
pub mod release;
pub mod render;
pub mod report;
pub mod rollout;
pub mod roots;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod setup;
pub mod signals;
pub mod state;
pub mod timefmt;
pub mod tool_path;
pub mod version;
pub mod window;
pub mod world;

use std::ffi::OsString;

use clap::Parser;

/// The JSON object for a usage error of a command given `--json` (`None` without it).
fn usage_error_json(args: &[OsString], e: &clap::Error) -> Option<serde_json::Value> {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    if !words.iter().any(|a| a == "--json") {
        return None;
    }
    let known = <cli::Cli as clap::CommandFactory>::command();
    let command = words
        .iter()
        .find(|w| known.get_subcommands().any(|c| c.get_name() == w.as_str()));
    let text = e.render().to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned();
    let mut help: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tip: "))
        .map(|t| format!("help: {t}"))
        .collect();
    help.push(match command {
        Some(c) => format!("help: `heph-selfupdate {c} --help` lists what it takes"),
        None => "help: `heph-selfupdate --help` lists the commands".to_owned(),
    });
    Some(serde_json::json!({
        "command": command,
        "error": message,
        "exit_code": exit::USAGE,
        "help": help,
    }))
}

/// Runs the program with these arguments; returns the process exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    // First, before the token is read: nothing of this process is readable by its children.
    let private = secret::keep_process_private();
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return exit::OK;
            }
            // `--json` promises one object on stdout, a usage error included.
            if let Some(out) = usage_error_json(&args, &e) {
                output::Out::line(&output::StdOut, &out.to_string());
            }
            return exit::USAGE;
        }
    };
    if let cli::Command::ReapGroup { pgid, parent } = cli.command {
        return process::reap_group(pgid, parent);
    }
    // The service's environment file, read as this user, into the environment before
    // anything reads it, while this is the only thread.
    let env_file = if matches!(cli.command, cli::Command::Setup(_)) {
        Ok(None)
    } else {
        // SAFETY: geteuid cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        envfile::read(std::env::var(envfile::VAR).ok().as_deref(), euid)
    };
    if let Ok(Some(file)) = &env_file {
        // SAFETY: no other thread runs yet.
        unsafe { file.apply() };
    }
    let world = world::World::real(signals::install());
    colour::init(&world.env);
    logger::init(cli.verbosity(), world.env.contains_key("JOURNAL_STREAM"));
    if let Err(e) = private {
        log::warn!(
            "could not make this process non-dumpable ({e}): a build step could read the token from its environment"
        );
    }
    // Needs no configuration: completions must work while the config file is broken.
    let result = match (&cli.command, env_file) {
        (cli::Command::Setup(cmd), _) => setup::run(cmd),
        (_, Err(e)) => Err(e.into()),
        (_, Ok(file)) => {
            if let Some(file) = file {
                file.log();
            }
            commands::dispatch(&cli, &world)
        }
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            logger::report_error(&err);
            let code = exit::for_error(&err, commands::forge_down(&cli));
            // `--json` promises one object on stdout, failures included.
            if cli.json() {
                let (message, help) = logger::split_help(&err);
                let out = serde_json::json!({
                    "command": cli.command_name(),
                    "error": message,
                    "exit_code": code,
                    "help": help,
                });
                world.out.line(&out.to_string());
            }
            code
        }
    };
    match output::failure() {
        Some(e) => {
            log::error!(
                "could not write the output to stdout: {e}\nhelp: check the file or pipe stdout goes to (a full disk?)"
            );
            exit::FAILED
        }
        None => code,
    }
}
