//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::render::Syntax;

/// What `--version` prints after the name: the package version and, when built from a git
/// checkout, the commit and whether the work tree had changes: `0.1.0 (8ca1415, dirty)`.
/// Set by the crate's build script (`build.rs`).
pub const VERSION: &str = env!("HEPH_BUILD_VERSION");

/// Keeps hephd current, safely: checks the forge for a newer release, rebuilds it with
/// cargo into a new version root, switches to it, restarts the daemon, proves it healthy
/// and rolls back if it is not.
///
/// Nothing updates until you enable the timer (`make enable`). Use `check` to see what
/// would happen, `check-and-apply --dry-run` to see every command an update would run.
#[derive(Debug, Parser)]
#[command(
    name = "heph-selfupdate",
    version = VERSION,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 ok/nothing due, 1 failed, 2 usage or configuration error,\n75 try later (lock busy, forge unreachable), 100 update available (check).\n\nConfiguration: ~/.config/heph-selfupdate/config.toml, HEPH_SELFUPDATE_<KEY>, --set KEY=VALUE.\nRun `heph-selfupdate config` to see every value and where it came from."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after its name.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Read the configuration from this TOML file [env: HEPH_SELFUPDATE_CONFIG]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Set a configuration key for this run (beats file and environment); repeatable
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// More detail in the log: -v debug, -vv trace
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors in the log
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Is there an update? Changes nothing.
    ///
    /// Asks the forge for its releases, finds the installed version, applies the policy
    /// (channel, version_req, pin, min_release_age, bad marks, backoff) and says whether an
    /// update is due and why. Exit 0: no update due; 100: an update is due; 1: could not
    /// find out; 2: configuration error.
    #[command(
        after_help = "Examples:\n  heph-selfupdate check\n  heph-selfupdate check --json | jq .reason\n  heph-selfupdate check --set channel=prerelease"
    )]
    Check(CheckArgs),

    /// Update now if an update is due (what the timer runs).
    ///
    /// Takes the run lock, builds the release into a new version root, switches the
    /// binaries in bin_dir to it in one step, restarts the service, proves it healthy
    /// and rolls back if it is not. With --dry-run, prints the commands it would run and
    /// changes nothing.
    #[command(
        after_help = "Examples:\n  heph-selfupdate check-and-apply --dry-run\n  heph-selfupdate check-and-apply --dry-run --json\n  heph-selfupdate check-and-apply --to 1.8.1     # install a chosen release, also an older one\n  heph-selfupdate check-and-apply --force        # ignore backoff, bad marks and min_release_age"
    )]
    CheckAndApply(ApplyArgs),

    /// What is installed, where, and what the last runs did.
    #[command(
        after_help = "Examples:\n  heph-selfupdate status\n  heph-selfupdate status --history\n  heph-selfupdate status --json"
    )]
    Status(StatusArgs),

    /// Switch back to an older version root and restart the daemon.
    ///
    /// Goes to the newest healthy version root other than the current one (or --to a
    /// chosen kept root), restarts the daemon and proves it healthy; if it is not, it
    /// stays where it was. The version rolled back from is marked bad, so the timer does
    /// not reinstall it until a newer release appears (or --force / --to is used).
    #[command(
        after_help = "Examples:\n  heph-selfupdate rollback\n  heph-selfupdate rollback --dry-run\n  heph-selfupdate rollback --to 1.8.1"
    )]
    Rollback(RollbackArgs),

    /// The effective configuration, each value with where it came from.
    #[command(
        after_help = "Examples:\n  heph-selfupdate config\n  heph-selfupdate --set pin=1.8.1 config --json"
    )]
    Config(JsonArgs),

    /// Check the environment an update needs: cargo, git, forge, disk, service manager.
    ///
    /// Run it the way the timer runs (`make doctor` does that): the service's PATH and
    /// toolchain are where updates usually fail.
    #[command(
        after_help = "Examples:\n  heph-selfupdate doctor\n  make doctor        # inside the service's own environment"
    )]
    Doctor(JsonArgs),

    /// Internal: kills a build's process group when the run that started it dies.
    #[command(name = "__reap-group", hide = true)]
    ReapGroup { pgid: i32, parent: u32 },

    #[command(flatten)]
    Setup(SetupCommand),
}

/// Commands that produce files for installing heph-selfupdate itself (`make install` runs
/// them); they read no configuration.
#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// Print the shell completion script for bash, zsh or fish (also elvish, powershell).
    ///
    /// `make install` installs them where each shell looks (under PREFIX/share); to load
    /// one by hand, e.g. for bash: `source <(heph-selfupdate completions bash)`.
    #[command(
        after_help = "Examples:\n  heph-selfupdate completions bash > ~/.local/share/bash-completion/completions/heph-selfupdate\n  heph-selfupdate completions zsh > ~/.zfunc/_heph-selfupdate\n  heph-selfupdate completions fish > ~/.config/fish/completions/heph-selfupdate.fish"
    )]
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Internal: writes the man pages (section 1, roff) into a directory: one for the
    /// program and one per command, from the same definition as `--help`.
    #[command(name = "__man", hide = true)]
    Man {
        /// Where to write heph-selfupdate.1 and heph-selfupdate-<command>.1
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },

    /// Internal: renders the systemd unit or launchd plist template for `make install`.
    #[command(name = "__render", hide = true)]
    Render(RenderArgs),
}

#[derive(Debug, Args, Clone)]
pub struct RenderArgs {
    /// How values are escaped
    #[arg(long, value_enum)]
    pub syntax: Syntax,
    /// The template, with @NAME@ placeholders
    #[arg(long, value_name = "PATH")]
    pub template: PathBuf,
    /// A placeholder's value; repeatable
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct JsonArgs {
    /// One JSON object on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct CheckArgs {
    /// One JSON object on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct StatusArgs {
    /// One JSON object on stdout instead of text
    #[arg(long)]
    pub json: bool,
    /// The recent runs, one line each
    #[arg(long)]
    pub history: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RollbackArgs {
    /// Print the commands the rollback would run, in order; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object on stdout instead of text
    #[arg(long)]
    pub json: bool,
    /// Go to the kept version root of this version (e.g. 1.8.1) instead
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ApplyArgs {
    /// Print the commands an update would run, in order; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object on stdout instead of text
    #[arg(long)]
    pub json: bool,
    /// Ignore build backoff, bad-version marks and min_release_age
    #[arg(long)]
    pub force: bool,
    /// Install this release (e.g. 1.8.1 or v1.8.1), also an older one
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Switch and restart now, even outside restart_window
    #[arg(long)]
    pub now: bool,
}

impl Cli {
    /// True when the command was asked for one JSON object on stdout.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Check(a) => a.json,
            Command::CheckAndApply(a) => a.json,
            Command::Rollback(a) => a.json,
            Command::Status(a) => a.json,
            Command::Config(a) | Command::Doctor(a) => a.json,
            _ => false,
        }
    }

    /// The command's name, as typed.
    pub fn command_name(&self) -> &'static str {
        match &self.command {
            Command::Check(_) => "check",
            Command::CheckAndApply(_) => "check-and-apply",
            Command::Rollback(_) => "rollback",
            Command::Status(_) => "status",
            Command::Config(_) => "config",
            Command::Doctor(_) => "doctor",
            _ => "heph-selfupdate",
        }
    }

    /// -1 quiet, 0 normal, 1+ verbose.
    pub fn verbosity(&self) -> i8 {
        if self.global.quiet {
            -1
        } else {
            i8::try_from(self.global.verbose).unwrap_or(i8::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_work_before_and_after_the_command() {
        let a = Cli::try_parse_from(["h", "--config", "/c.toml", "-v", "check", "--json"]).unwrap();
        let b = Cli::try_parse_from(["h", "check", "--json", "--config", "/c.toml", "-v"]).unwrap();
        assert_eq!(a.global.config, b.global.config);
        assert_eq!(a.verbosity(), 1);
        assert_eq!(b.verbosity(), 1);
        assert!(Cli::try_parse_from(["h", "check", "-q", "-v"]).is_err());
    }
}
