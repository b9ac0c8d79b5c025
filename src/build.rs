//! Building a release into a new version root, never into the live `bin_dir`.
//!
//! `checkout` mode (the default): a persistent checkout of the tag and `cargo install
//! --path` per package reusing its target dir, so a new release recompiles only what
//! changed (path sources are fingerprinted by content). It runs in phases with their own
//! failure classes: fetch the tag into the checkout (git), check the toolchain against
//! the packages' `rust-version`, `cargo fetch --locked` the dependencies, then compile
//! and install with `--frozen`, so a compile can never touch the network and a network
//! failure can only happen in a fetch phase. A compile failure is retried once from a
//! clean target dir before it counts. A damaged checkout is made again.
//!
//! `git` mode: `cargo install --git … --rev=<commit>` with a fresh, empty target dir (a
//! reused one silently installs stale code, rust-lang/cargo#13259): the commit the tag
//! named when resolved, never the tag by name (cargo would fetch it again, and a forge
//! could answer with another commit); the commit cargo recorded must be that one.
//!
//! With `verify_tag`, both modes check the tag the same way before anything is built
//! ([`signature`]): the checkout build reads it from the checkout, the git build from a
//! scratch repository it was fetched into alone; it must name the resolved commit, which
//! is the commit built.

pub mod cache;
pub mod diagnose;
pub mod kept;
pub mod signature;
pub mod toolchain;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use semver::Version;

use crate::clock::Clock;
use crate::git::{self, Checkout, Health, Peek};
use crate::layout::{Layout, Signer};
use crate::process::{Cmd, CmdFailed, Output, RunError, Runner};
use crate::tool_path::{Tool, ToolPath};
use crate::version::same_version;

use self::cache::BuildStats;
use self::diagnose::{Diagnosis, Reach, diagnose};

/// How a release is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// `cargo install --git … --rev=<commit>` with a fresh target dir (the conservative
    /// choice).
    Git,
    /// A persistent checkout of the tag, `cargo install --path` per package (the default).
    Checkout,
}

impl BuildMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Git => "git",
            Self::Checkout => "checkout",
        }
    }
}

/// Attempts of a step that failed for network reasons.
const ATTEMPTS: u32 = 3;

/// What a build needs from the configuration (and nothing else of it).
#[derive(Debug, Clone)]
pub struct BuildSettings {
    pub git_url: String,
    pub packages: Vec<String>,
    /// The binary whose `--version` must report the target version.
    pub binary: String,
    pub mode: BuildMode,
    /// The cargo profile to build with (`cargo install --profile`).
    pub profile: String,
    pub toolchain: Option<String>,
    /// The configured cargo, if any.
    pub cargo: Option<PathBuf>,
    /// `RUSTC` of the environment, if set: the rustc cargo will use.
    pub rustc: Option<PathBuf>,
    pub verify_tag: bool,
    pub allowed_signers: Option<PathBuf>,
    pub build_timeout: Duration,
    pub retry_pause: Duration,
    pub min_free_space: u64,
    /// Time limit of one `git ls-remote`.
    pub resolve_timeout: Duration,
    /// The checkout's target dir is kept under this many bytes.
    pub cache_max_size: u64,
    /// A CA certificate (PEM) to trust, for git and cargo as for the forge API.
    pub ca_file: Option<PathBuf>,
    /// Where git, and what git and cargo run of the system's, come from.
    pub tool_path: ToolPath,
    pub cache_dir: PathBuf,
    pub data_dir: PathBuf,
    pub home: PathBuf,
}

impl BuildSettings {
    /// The persistent checkout of `build = "checkout"`.
    pub fn checkout(&self, git: &Tool) -> Checkout {
        Checkout {
            git: git.clone(),
            dir: git::checkout_dir(&self.cache_dir),
        }
    }

    /// The directory at the front of cargo's PATH, holding links to the system's git and
    /// ssh only (see [`ToolPath::shim`]): cargo fetches with the git it finds on PATH.
    pub fn cargo_tools_dir(&self) -> PathBuf {
        self.cache_dir.join("system-tools")
    }
}

/// The programs a build runs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub cargo: PathBuf,
    /// The system's git, from `tool_path`.
    pub git: Tool,
    /// The rustc beside `cargo` (a rustup proxy beside a proxy, a toolchain's rustc beside
    /// its cargo), else PATH's.
    pub rustc: PathBuf,
    /// The system's ssh-keygen, from `tool_path`, which checks tag signatures
    /// (`verify_tag`).
    pub ssh_keygen: Tool,
    /// PATH for cargo and rustc: the service's, behind
    /// [`BuildSettings::cargo_tools_dir`].
    pub cargo_path: OsString,
}

impl Tools {
    /// `cargo`: the configured path, else PATH (`path_var`), else `~/.cargo/bin/cargo`
    /// (service managers' PATH rarely has it). `rustc`: beside cargo, else PATH. `git`,
    /// `ssh-keygen`: `tool_path`, never PATH.
    pub fn find(settings: &BuildSettings, path_var: Option<&OsStr>) -> Self {
        let cargo = settings
            .cargo
            .clone()
            .or_else(|| crate::process::find_on_path("cargo", path_var))
            .unwrap_or_else(|| settings.home.join(".cargo/bin/cargo"));
        let rustc = cargo
            .parent()
            .map(|d| d.join("rustc"))
            .filter(|p| p.is_file())
            .or_else(|| crate::process::find_on_path("rustc", path_var))
            .unwrap_or_else(|| PathBuf::from("rustc"));
        let shim = settings.cargo_tools_dir();
        let rest = path_var.map(|p| std::env::split_paths(p).collect::<Vec<_>>());
        let cargo_path =
            std::env::join_paths(std::iter::once(shim).chain(rest.unwrap_or_default()))
                .unwrap_or_default();
        Self {
            cargo,
            git: settings.tool_path.find("git"),
            ssh_keygen: settings.tool_path.find("ssh-keygen"),
            rustc,
            cargo_path,
        }
    }

    /// A cargo command, with cargo's PATH.
    pub fn cargo_cmd(&self, summary: impl Into<String>) -> Cmd {
        Cmd::new(&self.cargo, summary).env("PATH", &self.cargo_path)
    }
}

/// The release being built.
#[derive(Debug, Clone)]
pub struct Target {
    pub tag: String,
    pub version: Version,
}

/// Why a build failed; decides retry, backoff and exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A connection-level failure (DNS, refused, reset, timed out) of a step that reaches
    /// the network, after retries: nothing wrong with the release; the next run tries again.
    Network,
    /// The source refused us, for a reason retrying will not fix: HTTP 401/403/404, ssh
    /// authentication or host key, an untrusted certificate, a missing repository or ref.
    Access,
    /// The same step has failed for network reasons in every run for a day
    /// ([`cache::NETWORK_GRACE`]): someone must look (exit 1), but the release is not to blame.
    Unreachable,
    /// The code did not compile, or cargo failed otherwise.
    Compile,
    /// The installed toolchain is too old for the release.
    Toolchain,
    /// Exceeded `build_timeout`.
    Timeout,
    /// Stopped by a signal.
    Interrupted,
    /// Built, but not what was asked for (wrong version, missing binary, moved tag, bad signature).
    Verification,
    /// The machine is not ready: disk space, directories, the service manager.
    Environment,
}

impl FailureKind {
    /// True when retrying later with the same release can help only after a backoff.
    pub fn backs_off(self) -> bool {
        matches!(
            self,
            Self::Compile | Self::Toolchain | Self::Timeout | Self::Verification | Self::Access
        )
    }
}

/// A failed build.
#[derive(Debug)]
pub struct BuildFailure {
    pub kind: FailureKind,
    pub error: anyhow::Error,
}

impl fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for BuildFailure {}

fn fail(kind: FailureKind, error: anyhow::Error) -> BuildFailure {
    BuildFailure { kind, error }
}

/// Where a new checkout is made beside the old one before it replaces it.
const CHECKOUT_NEW: &str = "checkout.new";

/// The help of a fetch that failed on the checkout's own files (see `fetch_healing`).
const HELP_LOCAL_GIT: &str = "help: git failed in the build checkout although the server answered; the checkout is made again";

/// The help of a fetch the server said it could not serve.
const HELP_SERVER_FAILED: &str = "help: the server lists the tag but could not send it: ask the forge's admins, its repository may be corrupt; the release is tried again after the backoff";

/// The help of a fetch that failed the same way into the checkout and into a new
/// repository, without a word from the server.
const HELP_FETCH_FAILED: &str = "help: git failed the same way into the build checkout and into a new repository: see git's lines above (memory, disk, the git installation); the checkout is kept and the release is not blamed";

/// True when git says the failure was the server's (`remote: fatal: …`, "remote error",
/// "corruption on the remote side").
fn server_side(tail: &str) -> bool {
    tail.lines().any(|l| {
        let l = l.trim_start().to_ascii_lowercase();
        (l.starts_with("remote: fatal") || l.starts_with("remote: error"))
            || l.contains("remote error")
            || l.contains("on the remote side")
    })
}

/// True when `failure` is a fetch that failed on the checkout's own files.
fn failed_locally(failure: &BuildFailure) -> bool {
    failure
        .error
        .downcast_ref::<StepFailed>()
        .is_some_and(|s| s.help.iter().any(|h| h == HELP_LOCAL_GIT))
}

/// A step's command that ran and failed: the cause first (the line of its output that
/// says what went wrong), then the command with its output, then what to do.
#[derive(Debug)]
pub struct StepFailed {
    pub headline: String,
    pub failed: CmdFailed,
    pub help: Vec<String>,
}

impl fmt::Display for StepFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n{}", self.headline, self.failed)?;
        for h in &self.help {
            write!(f, "\n{h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StepFailed {}

/// Gives a cargo, git or rustc command the environment builds need under a service
/// manager: never prompt, git's CLI for cargo's fetches, the configured toolchain, and
/// none of the variables that would point cargo at a shared target dir. A step that
/// reaches the network takes [`network_env`] instead.
pub fn build_env(cmd: Cmd, settings: &BuildSettings) -> Cmd {
    let mut cmd = cmd
        .env("CARGO_NET_GIT_FETCH_WITH_CLI", "true")
        .env(git::NO_PROMPT.0, git::NO_PROMPT.1)
        // Any of these would point cargo at a shared target dir (stale code) or another root.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_BUILD_DIR")
        .env_remove("CARGO_INSTALL_ROOT");
    if let Some(t) = &settings.toolchain {
        cmd = cmd.env("RUSTUP_TOOLCHAIN", t);
    }
    cmd
}

/// [`build_env`] for a step that reaches the network (`git ls-remote`, `git fetch`,
/// `cargo fetch`, git mode's `cargo install --git`): `ca_file` as the variables git and
/// cargo read (`GIT_SSL_CAINFO`, `CARGO_HTTP_CAINFO`), never as `SSL_CERT_FILE`, which
/// every program a build script starts would trust instead of the system's roots. No
/// other child gets `ca_file`: the compile (`--frozen`) and the hooks do not.
pub fn network_env(cmd: Cmd, settings: &BuildSettings) -> Cmd {
    let mut cmd = build_env(cmd, settings);
    if let Some(ca) = &settings.ca_file {
        cmd = cmd.env("GIT_SSL_CAINFO", ca).env("CARGO_HTTP_CAINFO", ca);
    }
    cmd
}

/// One step of a build, with the command it runs. The update's plan holds these; the
/// run executes them in order and `--dry-run` shows them.
#[derive(Debug, Clone)]
pub enum BuildStep {
    /// `git ls-remote`: the commit the tag names now.
    Resolve(Cmd),
    /// Creates the persistent checkout; `damage`: why the one there is made again (it is
    /// removed first, all but its target dir).
    InitCheckout { cmd: Cmd, damage: Option<String> },
    /// Fetches exactly the tag into the checkout.
    Fetch(Cmd),
    /// The fetched tag must name the commit resolved before.
    TagCommit(Cmd),
    /// Git mode with `verify_tag`: a scratch repository for the tag alone (made afresh).
    ScratchInit(Cmd),
    /// Fetches the tag alone into the scratch repository.
    ScratchFetch(Cmd),
    /// The tag fetched alone must name the commit resolved before.
    ScratchTagCommit(Cmd),
    /// `verify_tag`: reads the tag object; anything but an SSH signature is refused, and
    /// the signed payload and the signature are written for ssh-keygen.
    ReadTag(Cmd),
    /// Who in `allowed_signers` has the key that signed, valid now.
    FindSigners(Cmd),
    /// The signature verifies for that principal (the plan names it by a placeholder).
    VerifySignature(Cmd),
    /// Checks out the tag.
    Checkout(Cmd),
    /// Leaves the release's `.cargo/config.toml` files out of the checkout (a sparse
    /// checkout): `cargo install --git` reads none of them, nor may the checkout build.
    HideCargoConfig(Cmd),
    /// Removes stray files from the checkout (keeping its target dir).
    Clean(Cmd),
    /// Records `git_url` as the checkout's `origin` (relative submodule URLs need it).
    Origin(Cmd),
    /// Points initialised submodules at the URLs the tag's `.gitmodules` names.
    SyncSubmodules(Cmd),
    /// Checks out the submodules the tag records.
    Submodules(Cmd),
    /// Lists the workspace's packages (their directories and `rust-version`).
    Metadata(Cmd),
    /// `rustc --version` of the toolchain the build will use, against the `rust-version`
    /// of the packages to install.
    Toolchain(Cmd),
    /// `cargo fetch --locked`: every dependency, before anything compiles.
    Dependencies(Cmd),
    /// `cargo install` into the staging root (all packages in git mode, fetching too; one
    /// package with `--frozen` in checkout mode).
    Install { package: Option<String>, cmd: Cmd },
    /// The new daemon binary must report the target version.
    VerifyVersion(Cmd),
}

impl BuildStep {
    pub fn cmd(&self) -> &Cmd {
        match self {
            Self::Resolve(c)
            | Self::Fetch(c)
            | Self::TagCommit(c)
            | Self::ScratchInit(c)
            | Self::ScratchFetch(c)
            | Self::ScratchTagCommit(c)
            | Self::ReadTag(c)
            | Self::FindSigners(c)
            | Self::VerifySignature(c)
            | Self::Checkout(c)
            | Self::HideCargoConfig(c)
            | Self::Clean(c)
            | Self::Origin(c)
            | Self::SyncSubmodules(c)
            | Self::Submodules(c)
            | Self::Metadata(c)
            | Self::Toolchain(c)
            | Self::Dependencies(c)
            | Self::VerifyVersion(c) => c,
            Self::InitCheckout { cmd, .. } | Self::Install { cmd, .. } => cmd,
        }
    }

    /// The phase the step belongs to, for the log, `status` and the metrics: `resolve`,
    /// `fetch`, `toolchain`, `dependencies`, `compile` (git mode: `build`, which fetches
    /// and compiles), `verify`.
    pub fn phase(&self) -> &'static str {
        match self {
            Self::Resolve(_) => "resolve",
            Self::InitCheckout { .. }
            | Self::Fetch(_)
            | Self::TagCommit(_)
            | Self::ScratchInit(_)
            | Self::ScratchFetch(_)
            | Self::ScratchTagCommit(_)
            | Self::ReadTag(_)
            | Self::FindSigners(_)
            | Self::VerifySignature(_)
            | Self::Checkout(_)
            | Self::HideCargoConfig(_)
            | Self::Clean(_)
            | Self::Origin(_)
            | Self::SyncSubmodules(_)
            | Self::Submodules(_) => "fetch",
            Self::Metadata(_) | Self::Toolchain(_) => "toolchain",
            Self::Dependencies(_) => "dependencies",
            Self::Install { package: None, .. } => "build",
            Self::Install { .. } => "compile",
            Self::VerifyVersion(_) => "verify",
        }
    }

    /// Whether the step reaches the network (only those can fail for network reasons).
    pub fn reach(&self) -> Reach {
        match self {
            Self::Resolve(_)
            | Self::Fetch(_)
            | Self::ScratchFetch(_)
            | Self::Submodules(_)
            | Self::Dependencies(_) => Reach::Network,
            Self::Install { package: None, .. } => Reach::Mixed,
            _ => Reach::Offline,
        }
    }

    /// A step of the checkout itself: when it fails, the checkout is made again next run.
    fn local_git(&self) -> bool {
        matches!(
            self,
            Self::InitCheckout { .. }
                | Self::TagCommit(_)
                | Self::Checkout(_)
                | Self::HideCargoConfig(_)
                | Self::Clean(_)
                | Self::Origin(_)
                | Self::SyncSubmodules(_)
        )
    }
}

/// Builds releases: makes the steps (the plan's part) and runs them.
pub struct Builder<'a> {
    pub settings: &'a BuildSettings,
    pub runner: &'a dyn Runner,
    pub clock: &'a dyn Clock,
    pub tools: Tools,
    pub layout: Layout,
    pub log_file: Option<PathBuf>,
}

impl fmt::Debug for Builder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("tools", &self.tools)
            .field("log_file", &self.log_file)
            .finish_non_exhaustive()
    }
}

fn opt_path(flag: &str, path: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(flag);
    s.push(path);
    s
}

/// What `cargo metadata --no-deps` says of the workspace's packages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    /// Package name → the directory of its manifest.
    pub members: BTreeMap<String, PathBuf>,
    /// Package name → its `rust-version`, where it declares one (inherited ones resolved).
    pub rust_versions: BTreeMap<String, String>,
    /// Package name → the binaries `cargo install` of it installs (see [`installed_bins`]).
    pub bins: crate::layout::Bins,
    /// The directory of the workspace's root manifest (`workspace_root`).
    pub root: Option<PathBuf>,
    /// The profiles the workspace's root manifest defines (`[profile.<name>]`), when it
    /// was read (see [`Workspace::read_profiles`]).
    pub profiles: Option<Vec<String>>,
}

/// The profiles cargo always has.
pub const BUILT_IN_PROFILES: [&str; 4] = ["dev", "release", "test", "bench"];

/// The profiles a manifest (or a cargo configuration file) defines: the keys of its
/// `[profile]` table. `None` when the file cannot be read as TOML; an absent file
/// defines none.
pub fn profiles_of(file: &Path) -> Option<Vec<String>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let table = text.parse::<toml::Table>().ok()?;
    Some(
        table
            .get("profile")
            .and_then(toml::Value::as_table)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

impl Workspace {
    /// Reads the profiles its root manifest defines, while its files are there.
    fn read_profiles(&mut self) {
        self.profiles = self
            .root
            .as_ref()
            .and_then(|r| profiles_of(&r.join("Cargo.toml")));
    }

    /// `Err(message)` when none of `packages` installs `binary`; the message lists what
    /// they do install and says what to set.
    pub fn check_binary(&self, binary: &str, packages: &[String], at: &str) -> Result<(), String> {
        let installs = |p: &String| {
            self.bins
                .get(p)
                .is_some_and(|b| b.iter().any(|b| b == binary))
        };
        if packages.iter().any(installs) {
            return Ok(());
        }
        let all = crate::layout::binaries_of(&self.bins, packages);
        Err(format!(
            "`binary` = {binary} is not a binary the packages install at {at}: {}\nhelp: set `binary` to the daemon's binary, one of: {} (or add the package that installs {binary} to `packages`)",
            crate::layout::describe_bins(&self.bins, packages),
            all.join(", ")
        ))
    }
}

/// The binaries `cargo install` installs of a package described by `cargo metadata`: its
/// `bin` targets (auto-discovered or `[[bin]]`, named like the package or not) whose
/// `required-features` its default features enable (cargo leaves the others out).
fn installed_bins(package: &serde_json::Value) -> Vec<String> {
    let features = package
        .get("features")
        .and_then(serde_json::Value::as_object);
    // The default features, followed through the features they enable.
    let mut enabled: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut todo = vec!["default".to_owned()];
    while let Some(f) = todo.pop() {
        if !enabled.insert(f.clone()) {
            continue;
        }
        if let Some(list) = features
            .and_then(|fs| fs.get(&f))
            .and_then(serde_json::Value::as_array)
        {
            todo.extend(list.iter().filter_map(|v| v.as_str().map(String::from)));
        }
    }
    let on = |req: &str| {
        // `dep/feature` (or `dep?/feature`): on when enabled literally, or its dependency is.
        let dep = req.split('/').next().unwrap_or(req).trim_end_matches('?');
        enabled.contains(req) || (req.contains('/') && enabled.contains(dep))
    };
    package
        .get("targets")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| {
            t.get("kind")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter(|t| {
            t.get("required-features")
                .and_then(serde_json::Value::as_array)
                .is_none_or(|r| r.iter().filter_map(|f| f.as_str()).all(on))
        })
        .filter_map(|t| t.get("name").and_then(|n| n.as_str()).map(String::from))
        .collect()
}

/// Reads `cargo metadata` output.
pub fn read_metadata(metadata_json: &str) -> Result<Workspace> {
    let v: serde_json::Value =
        serde_json::from_str(metadata_json).context("cargo metadata printed no JSON")?;
    let packages = v
        .get("packages")
        .and_then(|p| p.as_array())
        .context("cargo metadata has no packages")?;
    let mut ws = Workspace {
        root: v
            .get("workspace_root")
            .and_then(serde_json::Value::as_str)
            .map(PathBuf::from),
        ..Workspace::default()
    };
    for p in packages {
        let Some(name) = p.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        if let Some(dir) = p
            .get("manifest_path")
            .and_then(|m| m.as_str())
            .and_then(|m| Path::new(m).parent())
        {
            ws.members.insert(name.to_owned(), dir.to_path_buf());
        }
        if let Some(rv) = p.get("rust_version").and_then(|r| r.as_str()) {
            ws.rust_versions.insert(name.to_owned(), rv.to_owned());
        }
        ws.bins.insert(name.to_owned(), installed_bins(p));
    }
    Ok(ws)
}

/// Reads `cargo metadata` output: package name → the directory of its manifest.
pub fn member_dirs(metadata_json: &str) -> Result<BTreeMap<String, PathBuf>> {
    read_metadata(metadata_json).map(|w| w.members)
}

/// What running the build steps found out.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The commit the tag named when resolved.
    pub commit: Option<String>,
    /// Package directories from `cargo metadata` (checkout builds).
    pub members: BTreeMap<String, PathBuf>,
    /// `rust-version` of the workspace's packages (checkout builds).
    pub rust_versions: BTreeMap<String, String>,
    /// Each phase and the time its steps took, in the order the phases began.
    pub phases: Vec<(&'static str, Duration)>,
    /// The checkout's target dir before the build (bytes).
    pub target_before: u64,
    /// Who in `allowed_signers` may have signed the tag (`verify_tag`).
    pub principals: Vec<String>,
    /// Who did (`verify_tag`).
    pub signer: Option<Signer>,
    /// The tag object whose signature was checked (`verify_tag`), kept with the root.
    pub tag_object: Option<String>,
}

impl Progress {
    fn add_phase(&mut self, phase: &'static str, took: Duration) {
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, d)) => *d += took,
            None => self.phases.push((phase, took)),
        }
    }

    /// The phases for people: `fetch 12 s, compile 3m41s`.
    pub fn phases_text(&self) -> String {
        self.phases
            .iter()
            .map(|(p, d)| format!("{p} {}", short_duration(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `0.4 s`, `12 s`, `3m41s`, `1h02m`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..10 => format!("{:.1} s", d.as_secs_f64()),
        10..60 => format!("{s} s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Builder<'_> {
    fn checkout(&self) -> Checkout {
        self.settings.checkout(&self.tools.git)
    }

    fn streamed(&self, mut cmd: Cmd) -> Cmd {
        cmd.stream = true;
        cmd.background = true;
        cmd.log_file.clone_from(&self.log_file);
        cmd
    }

    /// The `git ls-remote` that resolves `tag`.
    pub fn resolve_cmd(&self, tag: &str) -> Cmd {
        network_env(
            git::ls_remote(&self.tools.git, &self.settings.git_url, tag),
            self.settings,
        )
        .timeout(self.settings.resolve_timeout)
    }

    /// `cargo install --git … --rev=<commit>` of every package (`build = "git"`): the
    /// commit the tag named when it was resolved (and, with `verify_tag`, whose
    /// signature was checked), never the tag by name, which cargo would fetch again and a
    /// forge could answer with another commit. `commit`: `None` before the resolve (the
    /// plan shows where it comes from).
    fn git_install(&self, target: &Target, commit: Option<&str>) -> Cmd {
        let s = self.settings;
        let rev = commit.map_or_else(
            || format!("<commit of {}, from ls-remote>", target.tag),
            str::to_owned,
        );
        let cmd = self
            .tools
            .cargo_cmd(format!("build {} {}", s.packages.join(" "), target.tag))
            .args(["install", "--locked", "--force"])
            .arg(format!("--git={}", s.git_url))
            .arg(format!("--rev={rev}"))
            .arg(opt_path("--root=", &self.layout.staging(&target.version)))
            .arg(opt_path(
                "--target-dir=",
                &self.layout.target_dir(&target.version),
            ))
            .arg(format!("--profile={}", s.profile))
            .args(&s.packages);
        self.streamed(network_env(cmd, s))
    }

    /// `cargo install --frozen --path` of one package of the checkout: offline, with the
    /// lock file as it is (the dependencies were fetched before).
    fn path_install(&self, package: &str, member_dir: &Path, target: &Target) -> Cmd {
        let cmd = self
            .tools
            .cargo_cmd(format!("compile and install {package} {}", target.tag))
            .args(["install", "--frozen", "--force"])
            .arg(opt_path("--path=", member_dir))
            .arg(opt_path("--root=", &self.layout.staging(&target.version)))
            .arg(opt_path("--target-dir=", &self.checkout().target_dir()))
            .arg(format!("--profile={}", self.settings.profile));
        self.streamed(build_env(cmd, self.settings))
    }

    /// The manifest of the workspace in the checkout as it is now.
    fn manifest(&self) -> PathBuf {
        git::workspace_manifest(&self.checkout().dir, &self.settings.packages)
    }

    /// `cargo metadata` of the checkout: package names, directories, `rust-version`.
    pub fn metadata_cmd(&self) -> Cmd {
        self.metadata_of(&self.manifest())
    }

    fn metadata_of(&self, manifest: &Path) -> Cmd {
        let cmd = self
            .tools
            .cargo_cmd("list the workspace's packages")
            .args(["metadata", "--no-deps", "--format-version=1", "--offline"])
            .arg(opt_path("--manifest-path=", manifest));
        build_env(cmd, self.settings)
    }

    /// `rustc --version` in the environment cargo gets: the rustc the build would use.
    pub fn rustc_cmd(&self) -> Cmd {
        rustc_cmd(self.settings, &self.tools)
    }

    /// What `rustc --version` says now, in the build's environment (`None`: it could not
    /// tell).
    pub fn rustc_now(&self) -> Option<String> {
        rustc_now(self.settings, &self.tools, self.runner)
    }

    /// `cargo fetch --locked` of the workspace of `manifest`. Without a lock file in the
    /// release (`locked` false), the dependencies are resolved now, as `cargo install
    /// --locked --git` does for such a repository; the compile then uses that lock file.
    fn fetch_dependencies_cmd(&self, tag: &str, manifest: &Path, locked: bool) -> Cmd {
        let mut cmd = self
            .tools
            .cargo_cmd(format!("fetch the dependencies of {tag}"))
            .arg("fetch");
        if locked {
            cmd = cmd.arg("--locked");
        }
        let cmd = cmd.arg(opt_path("--manifest-path=", manifest));
        self.streamed(network_env(cmd, self.settings))
    }

    /// The directory of `package` in the checkout; before the checkout's metadata is
    /// read, a placeholder that names where it will come from.
    fn member_dir(&self, package: &str, members: &BTreeMap<String, PathBuf>) -> PathBuf {
        members.get(package).cloned().unwrap_or_else(|| {
            self.checkout()
                .dir
                .join(format!("<directory of {package}, from cargo metadata>"))
        })
    }

    /// The checkout's state: its files, then (when they are sound) uncommitted changes
    /// by `git status` (read-only: it takes no lock).
    pub fn checkout_health(&self) -> Health {
        let co = self.checkout();
        match co.health(&self.settings.git_url) {
            Health::Sound => {}
            other => return other,
        }
        match self.runner.run(&co.status()) {
            Ok(out) if out.success() && out.stdout.trim().is_empty() => Health::Sound,
            Ok(out) if out.success() => Health::Damaged(format!(
                "it has changes: {}",
                out.stdout.lines().take(3).collect::<Vec<_>>().join("; ")
            )),
            Ok(out) => Health::Damaged(format!(
                "`git status` fails in it: {}",
                out.tail.last().map_or("", String::as_str)
            )),
            Err(e) => Health::Damaged(format!("`git status` could not run in it: {e}")),
        }
    }

    /// The steps that build `target`, in order. `members`: package directories known
    /// from the checkout as it is (the dry run reads them without changing anything).
    pub fn steps(&self, target: &Target, members: &BTreeMap<String, PathBuf>) -> Vec<BuildStep> {
        let mut steps = vec![BuildStep::Resolve(self.resolve_cmd(&target.tag))];
        match self.settings.mode {
            BuildMode::Git => {
                if self.settings.verify_tag {
                    let scratch = self.tag_scratch(target);
                    steps.push(BuildStep::ScratchInit(scratch.init()));
                    steps.push(BuildStep::ScratchFetch(
                        network_env(
                            scratch.fetch(&self.settings.git_url, &target.tag),
                            self.settings,
                        )
                        .timeout(self.settings.resolve_timeout),
                    ));
                    steps.push(BuildStep::ScratchTagCommit(scratch.tag_commit(&target.tag)));
                    steps.extend(self.signature_steps(&scratch, target));
                }
                steps.push(BuildStep::Install {
                    package: None,
                    cmd: self.git_install(target, None),
                });
            }
            BuildMode::Checkout => {
                let co = self.checkout();
                let tag = &target.tag;
                let damage = match self.checkout_health() {
                    Health::Sound => None,
                    Health::Missing => Some(None),
                    Health::Damaged(why) => Some(Some(why)),
                };
                if let Some(damage) = damage {
                    let mut cmd = co.init();
                    if let Some(why) = &damage {
                        cmd.summary = format!(
                            "make the build checkout again (it is damaged: {why}; its target dir is kept)"
                        );
                    }
                    steps.push(BuildStep::InitCheckout { cmd, damage });
                }
                steps.push(BuildStep::Fetch(network_env(
                    co.fetch_tag(&self.settings.git_url, tag),
                    self.settings,
                )));
                steps.push(BuildStep::TagCommit(co.tag_commit(tag)));
                if self.settings.verify_tag {
                    let peek = Peek {
                        git: self.tools.git.clone(),
                        git_dir: co.dir.join(".git"),
                    };
                    steps.extend(self.signature_steps(&peek, target));
                }
                steps.push(BuildStep::Checkout(co.checkout(tag)));
                steps.push(BuildStep::HideCargoConfig(co.hide_cargo_config()));
                steps.push(BuildStep::Clean(co.clean()));
                steps.push(BuildStep::Origin(co.set_origin(&self.settings.git_url)));
                steps.push(BuildStep::SyncSubmodules(co.sync_submodules()));
                steps.push(BuildStep::Submodules(network_env(
                    co.submodules(git::is_local_url(&self.settings.git_url)),
                    self.settings,
                )));
                // As the checkout is now; the run looks again once the tag is checked out.
                let manifest = self.manifest();
                steps.push(BuildStep::Metadata(self.metadata_of(&manifest)));
                steps.push(BuildStep::Toolchain(self.rustc_cmd()));
                steps.push(BuildStep::Dependencies(
                    self.fetch_dependencies_cmd(tag, &manifest, true),
                ));
                for p in &self.settings.packages {
                    steps.push(BuildStep::Install {
                        package: Some(p.clone()),
                        cmd: self.path_install(p, &self.member_dir(p, members), target),
                    });
                }
            }
        }
        steps.push(BuildStep::VerifyVersion(crate::installed::version_cmd(
            &self
                .layout
                .staging(&target.version)
                .join("bin")
                .join(&self.settings.binary),
        )));
        steps
    }

    /// Where git mode fetches the tag alone to check its signature (`verify_tag`).
    fn tag_scratch(&self, target: &Target) -> Peek {
        Peek {
            git: self.tools.git.clone(),
            git_dir: self
                .layout
                .tmp_dir()
                .join(format!("tag-{}.git", target.version)),
        }
    }

    /// The signature of `target`'s tag and the payload it signs, written for ssh-keygen.
    fn signature_files(&self, target: &Target) -> (PathBuf, PathBuf) {
        let tmp = self.layout.tmp_dir();
        let v = &target.version;
        (
            tmp.join(format!("tag-{v}.sig")),
            tmp.join(format!("tag-{v}.payload")),
        )
    }

    /// `verify_tag`'s steps over the tag in `peek`'s git dir (the same in both modes).
    fn signature_steps(&self, peek: &Peek, target: &Target) -> Vec<BuildStep> {
        let Some(signers) = &self.settings.allowed_signers else {
            return Vec::new();
        };
        let (sig, _) = self.signature_files(target);
        vec![
            BuildStep::ReadTag(peek.read_tag(&target.tag)),
            BuildStep::FindSigners(signature::find_principals(
                &self.tools.ssh_keygen,
                &sig,
                signers,
            )),
            BuildStep::VerifySignature(
                self.verify_signature_cmd(target, "<principal from find-principals>"),
            ),
        ]
    }

    fn verify_signature_cmd(&self, target: &Target, principal: &str) -> Cmd {
        let (sig, payload) = self.signature_files(target);
        let signers = self.settings.allowed_signers.clone().unwrap_or_default();
        signature::verify(&self.tools.ssh_keygen, &signers, principal, &sig, &payload)
    }

    /// Package directories of the checkout as it is now (read-only), for a plan made
    /// before the tag is checked out.
    pub fn known_members(&self) -> BTreeMap<String, PathBuf> {
        if self.settings.mode != BuildMode::Checkout || !self.checkout().exists() {
            return BTreeMap::new();
        }
        match self.runner.run(&self.metadata_cmd()) {
            Ok(out) if out.success() => member_dirs(&out.stdout).unwrap_or_default(),
            _ => BTreeMap::new(),
        }
    }

    /// The workspace of the release last checked out, as `cargo metadata` reads it now
    /// (read-only): for `doctor`. `Ok(None)`: there is no checkout (`build = "git"` keeps
    /// none).
    pub fn checkout_workspace(&self) -> Result<Option<Workspace>> {
        if self.settings.mode != BuildMode::Checkout || !self.checkout().exists() {
            return Ok(None);
        }
        let meta = crate::process::run_checked(self.runner, &self.metadata_cmd())?;
        let mut ws = read_metadata(&meta.stdout)?;
        ws.read_profiles();
        Ok(Some(ws))
    }

    /// The workspace of release `tag`, as `cargo metadata` reads it: for `doctor`, about the
    /// newest release. Changes nothing: the tag's files are read from the build checkout's
    /// objects when it has the tag, else fetched alone (`--depth=1`) into a scratch
    /// repository that is removed afterwards.
    pub fn release_workspace(&self, tag: &str) -> Result<Workspace> {
        let scratch = tempfile::Builder::new()
            .prefix("heph-selfupdate-doctor-")
            .tempdir()
            .context("making a scratch directory to read the release's manifests in")?;
        let checkout = git::Peek {
            git: self.tools.git.clone(),
            git_dir: self.checkout().dir.join(".git"),
        };
        // Only a checkout made for this git_url speaks for its tags.
        let has_tag = self.checkout().health(&self.settings.git_url) == Health::Sound
            && self
                .runner
                .run(&checkout.has_tag(tag))
                .is_ok_and(|o| o.success());
        let peek = if has_tag {
            checkout
        } else {
            let peek = git::Peek {
                git: self.tools.git.clone(),
                git_dir: scratch.path().join("repo.git"),
            };
            crate::process::run_checked(self.runner, &peek.init())?;
            let fetch = network_env(peek.fetch(&self.settings.git_url, tag), self.settings)
                .timeout(self.settings.resolve_timeout);
            crate::process::run_checked(self.runner, &fetch)?;
            peek
        };
        let tree = scratch.path().join("tree");
        crate::fsutil::create_private_dir(&tree)?;
        let write = peek.write_tree(tag, &tree, &scratch.path().join("index"));
        crate::process::run_checked(self.runner, &write)?;
        let meta = crate::process::run_checked(
            self.runner,
            &self.metadata_of(&git::workspace_manifest(&tree, &self.settings.packages)),
        )?;
        let mut ws = read_metadata(&meta.stdout)?;
        ws.read_profiles();
        Ok(ws)
    }

    /// The rustc a build would use now, against the `rust-version` the packages need in
    /// `ws` (release `label`): for `doctor`. Without a workspace, the rustc alone.
    pub fn toolchain_report(&self, ws: Option<&Workspace>, label: &str) -> Result<ToolchainReport> {
        let rustc_out = crate::process::run_checked(self.runner, &self.rustc_cmd())?;
        let rustc = toolchain::parse_rustc_version(&rustc_out.stdout)
            .with_context(|| format!("rustc printed {:?}", rustc_out.stdout.trim()))?;
        let required = ws.map_or_else(Vec::new, |ws| {
            toolchain::required_versions(&ws.rust_versions, &self.settings.packages)
        });
        let problem = toolchain::check(
            label,
            &required,
            &rustc_out.stdout,
            self.settings.toolchain.as_deref(),
        )
        .err();
        Ok(ToolchainReport {
            rustc,
            required,
            problem,
        })
    }

    /// Prepares the staging root of `target` and the cache dir; checks that the disk has
    /// room for what the last build needed on top of `min_free_space`.
    pub fn prepare(&self, target: &Target, progress: &mut Progress) -> Result<(), BuildFailure> {
        let env = |e| fail(FailureKind::Environment, e);
        let staging = self.layout.staging(&target.version);
        crate::fsutil::remove_all(&staging).map_err(env)?;
        crate::fsutil::create_private_dir(&self.layout.tmp_dir()).map_err(env)?;
        crate::fsutil::create_private_dir(&self.settings.cache_dir).map_err(env)?;
        // Made again by every build: what a build left in it is gone before cargo runs.
        self.settings
            .tool_path
            .shim(&self.settings.cargo_tools_dir())
            .map_err(env)?;
        if self.settings.mode == BuildMode::Checkout {
            self.clear_unfinished_replacement().map_err(env)?;
            let target_dir = self.checkout().target_dir();
            let now = std::time::SystemTime::from(self.clock.now());
            if let Some(record) = cache::future_dated(&target_dir, now) {
                log::warn!(
                    "the build cache holds records dated in the future ({}): the clock was ahead when they were written, and cargo would take newer sources for older ones; starting from a clean target dir",
                    record.display()
                );
                crate::fsutil::remove_all(&target_dir)
                    .map_err(|e| env(e.context("clearing the target dir")))?;
            }
            progress.target_before = cache::dir_size(&target_dir);
        }
        let stats = BuildStats::load(&self.settings.cache_dir);
        let expected = stats.expected_bytes(progress.target_before);
        if expected > 0 {
            check_expected_space(
                &space_needed(self.settings),
                self.settings.min_free_space,
                expected,
            )?;
        }
        log::info!(
            "building {} {} ({} mode) into {}",
            self.settings.packages.join(" "),
            target.tag,
            self.settings.mode.name(),
            staging.display()
        );
        Ok(())
    }

    /// Runs one step and notes the time it took under its phase. `deadline`: the
    /// build's (on the world's clock).
    pub fn run_step(
        &self,
        step: &BuildStep,
        target: &Target,
        progress: &mut Progress,
        deadline: Instant,
    ) -> Result<(), BuildFailure> {
        let started = self.clock.instant();
        let result = self.run_step_timed(step, target, progress, deadline);
        progress.add_phase(
            step.phase(),
            self.clock.instant().saturating_duration_since(started),
        );
        if result.is_err() {
            log::info!(
                "the build stopped in its {} phase, after {}",
                step.phase(),
                progress.phases_text()
            );
            if step.local_git() {
                // A checkout git cannot work in is made again by the next run.
                self.checkout().condemn();
            }
        }
        result
    }

    fn run_step_timed(
        &self,
        step: &BuildStep,
        target: &Target,
        progress: &mut Progress,
        deadline: Instant,
    ) -> Result<(), BuildFailure> {
        let tag = &target.tag;
        let env = |e| fail(FailureKind::Environment, e);
        match step {
            BuildStep::InitCheckout { cmd, damage } => {
                let co = self.checkout();
                if let Some(why) = damage {
                    log::warn!(
                        "the build checkout {} is damaged ({why}); making it again (its target dir is kept)",
                        co.dir.display()
                    );
                    co.remove_keeping_target().map_err(env)?;
                }
                crate::fsutil::create_private_dir(&co.dir).map_err(env)?;
                self.run_cmd(step, cmd, deadline)?;
                return co.write_marker(&self.settings.git_url, None).map_err(env);
            }
            // The plan was made before the checkout's metadata was read: use what it says.
            BuildStep::Install {
                package: Some(p), ..
            } => {
                let member_dir = self.member_dir(p, &progress.members);
                let found = git::cargo_configs_in(&self.checkout().dir, &member_dir);
                if !found.is_empty() {
                    return Err(fail(
                        FailureKind::Verification,
                        anyhow!(
                            "{tag} has cargo configuration the build of {p} would read: {}\nhelp: the checkout build reads none of a release's own cargo configuration, as `cargo install --git` does not; the checkout leaves the release's own out, so these came with a submodule or were written during the build",
                            found
                                .iter()
                                .map(|f| f.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                let actual = self.path_install(p, &member_dir, target);
                if actual.args != step.cmd().args {
                    log::debug!("the directory of {p} is known now: {}", actual.display());
                }
                return self.install_retrying_clean(step, p, &actual, deadline);
            }
            BuildStep::Fetch(cmd) => return self.fetch_healing(step, cmd, tag, deadline),
            // The plan was made before the resolve: build the commit it found.
            BuildStep::Install { package: None, .. } => {
                let commit = progress.commit.as_deref().ok_or_else(|| {
                    fail(
                        FailureKind::Environment,
                        anyhow!("no commit was resolved for {tag} before the build"),
                    )
                })?;
                self.run_cmd(step, &self.git_install(target, Some(commit)), deadline)?;
                return Ok(());
            }
            BuildStep::HideCargoConfig(_) => {
                self.checkout().write_sparse_patterns().map_err(env)?;
            }
            BuildStep::ScratchInit(_) => {
                crate::fsutil::remove_all(&self.tag_scratch(target).git_dir).map_err(env)?;
            }
            BuildStep::ReadTag(cmd) => return self.read_tag(cmd, target, progress),
            BuildStep::FindSigners(cmd) => return self.find_signers(cmd, target, progress),
            BuildStep::VerifySignature(_) => return self.verify_signature(target, progress),
            BuildStep::VerifyVersion(cmd) => return self.verify(cmd, target, progress),
            _ => {}
        }
        // The plan was made before the tag was checked out: the workspace may be
        // elsewhere in this release, or the release may have no lock file.
        let manifest = self.manifest();
        let actual = match step {
            BuildStep::Metadata(_) => Some(self.metadata_of(&manifest)),
            BuildStep::Dependencies(_) => {
                let locked = manifest.with_file_name("Cargo.lock").is_file();
                if !locked {
                    log::warn!(
                        "{tag} has no Cargo.lock: its dependencies are resolved now, to the newest versions that match (as `cargo install --locked --git` does for such a repository)"
                    );
                }
                Some(self.fetch_dependencies_cmd(tag, &manifest, locked))
            }
            _ => None,
        }
        .filter(|c| c.args != step.cmd().args);
        if let Some(c) = &actual {
            log::debug!("the workspace of {tag} is known now: {}", c.display());
        }
        let out = self.run_cmd(step, actual.as_ref().unwrap_or(step.cmd()), deadline)?;
        match step {
            BuildStep::Resolve(_) => {
                let commit = git::parse_ls_remote(&out.stdout, tag).ok_or_else(|| {
                    fail(
                        FailureKind::Verification,
                        anyhow!(
                            "{} did not list the tag {tag}",
                            crate::redact::url(&self.settings.git_url)
                        ),
                    )
                })?;
                log::info!("{tag} is commit {commit}");
                progress.commit = Some(commit);
            }
            BuildStep::TagCommit(_) | BuildStep::ScratchTagCommit(_) => {
                let fetched = out.stdout.trim();
                let resolved = progress.commit.as_deref().unwrap_or_default();
                if fetched != resolved {
                    return Err(fail(
                        FailureKind::Verification,
                        anyhow!(
                            "the tag {tag} moved: it named {resolved} when checked and {fetched} when fetched\nhelp: a moved tag is refused; ask the maintainers, or retry once the tag is stable"
                        ),
                    ));
                }
            }
            BuildStep::Checkout(_) => {
                self.checkout()
                    .write_marker(&self.settings.git_url, progress.commit.as_deref())
                    .map_err(env)?;
            }
            BuildStep::Metadata(_) => {
                let ws = read_metadata(&out.stdout).map_err(|e| fail(FailureKind::Compile, e))?;
                for p in &self.settings.packages {
                    if !ws.members.contains_key(p) {
                        return Err(fail(
                            FailureKind::Verification,
                            anyhow!(
                                "the workspace at {tag} has no package `{p}` (it has: {})",
                                ws.members.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
                // Before anything compiles: a build whose daemon is not among what it
                // installs could never be switched to. Not the release's fault as far as
                // can be told (the configuration names another binary): no backoff.
                ws.check_binary(&self.settings.binary, &self.settings.packages, tag)
                    .map_err(|m| fail(FailureKind::Environment, anyhow!(m)))?;
                progress.members = ws.members;
                progress.rust_versions = ws.rust_versions;
            }
            BuildStep::Toolchain(_) => {
                let required =
                    toolchain::required_versions(&progress.rust_versions, &self.settings.packages);
                match toolchain::check(
                    tag,
                    &required,
                    &out.stdout,
                    self.settings.toolchain.as_deref(),
                ) {
                    Ok(Some(found)) if !required.is_empty() => log::info!(
                        "rustc {found} meets the rust-version of {tag} ({})",
                        required
                            .iter()
                            .map(|(p, v)| format!("{p} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Ok(_) => {}
                    Err(message) => {
                        return Err(fail(FailureKind::Toolchain, anyhow!(message)));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A new checkout a killed run left half put in place (see `fetch_healing`): its
    /// target dir goes back to the checkout when that has none, and the rest is removed.
    fn clear_unfinished_replacement(&self) -> Result<()> {
        let co = self.checkout();
        let fresh = co.dir.with_file_name(CHECKOUT_NEW);
        if !fresh.exists() {
            return Ok(());
        }
        let target = fresh.join("target");
        if target.is_dir() && !co.target_dir().exists() {
            // (The checkout itself may be gone too: the next step makes it.)
            crate::fsutil::create_private_dir(&co.dir)?;
            std::fs::rename(&target, co.target_dir())
                .context("taking back the target dir of an unfinished new checkout")?;
        }
        log::info!(
            "removing {}, a new build checkout an interrupted run left",
            fresh.display()
        );
        crate::fsutil::remove_all(&fresh)
    }

    /// Fetches the tag into the checkout. When git fails there although the server
    /// answered (the resolve just before reached it) and neither refused nor dropped the
    /// connection, the checkout's own files may be the cause (a ref or object a crash left
    /// broken): the tag is fetched into a new repository beside it. When that works, the
    /// new one (with the old target dir) replaces the checkout; when it fails the same
    /// way, the server is at fault and the checkout is kept as it was.
    fn fetch_healing(
        &self,
        step: &BuildStep,
        cmd: &Cmd,
        tag: &str,
        deadline: Instant,
    ) -> Result<(), BuildFailure> {
        let first = match self.run_cmd(step, cmd, deadline) {
            Ok(_) => return Ok(()),
            Err(f) if failed_locally(&f) => f,
            Err(f) => return Err(f),
        };
        let co = self.checkout();
        let fresh = Checkout {
            git: co.git.clone(),
            dir: co.dir.with_file_name(CHECKOUT_NEW),
        };
        let env = |e: anyhow::Error| {
            fail(
                FailureKind::Environment,
                e.context("fetching into a new build checkout"),
            )
        };
        crate::fsutil::remove_all(&fresh.dir).map_err(env)?;
        crate::fsutil::create_private_dir(&fresh.dir).map_err(env)?;
        let init = BuildStep::InitCheckout {
            cmd: fresh.init(),
            damage: None,
        };
        let fetched = self.run_cmd(&init, init.cmd(), deadline).and_then(|_| {
            let fetch = network_env(fresh.fetch_tag(&self.settings.git_url, tag), self.settings);
            self.run_cmd(step, &fetch, deadline)
        });
        match fetched {
            Ok(_) => {
                log::warn!(
                    "the build checkout {} is damaged ({}): fetched {tag} into a new one, which replaces it (the target dir is kept)",
                    co.dir.display(),
                    headline(&first.error)
                );
                let target = co.target_dir();
                if target.exists() {
                    std::fs::rename(&target, fresh.target_dir())
                        .map_err(|e| env(anyhow::Error::new(e).context("moving the target dir")))?;
                }
                crate::fsutil::remove_all(&co.dir).map_err(env)?;
                std::fs::rename(&fresh.dir, &co.dir).map_err(|e| {
                    env(anyhow::Error::new(e).context("putting the new checkout in place"))
                })?;
                co.write_marker(&self.settings.git_url, None).map_err(env)
            }
            Err(second) => {
                crate::fsutil::remove_all(&fresh.dir).map_err(env)?;
                if !failed_locally(&second) {
                    return Err(second);
                }
                // A new repository fails the same way, with no word from the server that
                // it failed: not the checkout's files after all. Not the release's fault
                // either, as far as can be told: the checkout is kept, nothing backed off.
                let error = match first.error.downcast::<StepFailed>() {
                    Ok(mut s) => {
                        s.help = vec![HELP_FETCH_FAILED.to_owned()];
                        anyhow::Error::new(s)
                    }
                    Err(e) => e,
                };
                Err(fail(FailureKind::Environment, error))
            }
        }
    }

    /// Installs `package` from the checkout; a compile failure is retried once from a
    /// clean target dir, so stale artefacts are never why a good release is backed off.
    fn install_retrying_clean(
        &self,
        step: &BuildStep,
        package: &str,
        cmd: &Cmd,
        deadline: Instant,
    ) -> Result<(), BuildFailure> {
        let first = match self.run_cmd(step, cmd, deadline) {
            Ok(_) => return Ok(()),
            Err(f) if f.kind == FailureKind::Compile => f,
            Err(f) => return Err(f),
        };
        let first_line = headline(&first.error);
        let target_dir = self.checkout().target_dir();
        log::warn!(
            "compiling {package}: attempt 1 of 2 (incremental, reusing {}) failed: {first_line}; trying once more from a clean target dir",
            target_dir.display()
        );
        crate::fsutil::remove_all(&target_dir).map_err(|e| {
            fail(
                FailureKind::Environment,
                e.context("clearing the target dir"),
            )
        })?;
        match self.run_cmd(step, cmd, deadline) {
            Ok(_) => {
                log::warn!(
                    "compiling {package}: attempt 2 of 2 (clean target dir) worked: attempt 1 failed on stale build artefacts"
                );
                Ok(())
            }
            Err(second) => {
                let second_line = headline(&second.error);
                log::warn!(
                    "compiling {package}: attempt 2 of 2 (clean target dir) failed too: {second_line}"
                );
                let error = match second.error.downcast::<StepFailed>() {
                    Ok(mut s) => {
                        s.headline = format!(
                            "{} (attempt 1, incremental: {first_line}; attempt 2, from a clean target dir: the same)",
                            s.headline
                        );
                        anyhow::Error::new(s)
                    }
                    Err(e) => e.context(format!("attempt 1 (incremental) failed: {first_line}")),
                };
                Err(fail(second.kind, error))
            }
        }
    }

    /// Runs a step's command: network failures of a step that reaches the network are
    /// retried (pausing `retry_pause`, doubling); a failure is classified by the step's
    /// structure ([`diagnose`]). A network failure that has lasted
    /// [`cache::NETWORK_GRACE`] over many runs becomes [`FailureKind::Unreachable`].
    fn run_cmd(
        &self,
        step: &BuildStep,
        cmd: &Cmd,
        deadline: Instant,
    ) -> Result<Output, BuildFailure> {
        let reach = step.reach();
        let retry = reach != Reach::Offline;
        let mut attempt = 1;
        loop {
            let left = deadline.saturating_duration_since(self.clock.instant());
            if left.is_zero() {
                return Err(fail(
                    FailureKind::Timeout,
                    anyhow!(
                        "{}: build_timeout ({}) reached",
                        cmd.summary,
                        crate::timefmt::human_duration(self.settings.build_timeout)
                    ),
                ));
            }
            let mut run = cmd.clone();
            // The step's own limit (a `git ls-remote` must not wait for build_timeout)
            // binds when it is shorter than what is left of the build's.
            let own_limit = cmd.timeout.filter(|t| *t < left);
            run.timeout = Some(own_limit.unwrap_or(left));
            let failure = match self.runner.run(&run) {
                Ok(out) if out.success() => {
                    if reach != Reach::Offline {
                        cache::clear_network_failure(&self.settings.cache_dir, step.phase());
                    }
                    return Ok(out);
                }
                Ok(out) => self.step_failed(step, cmd, out),
                // A server that accepts and never answers: connection-level, try later.
                Err(e @ RunError::TimedOut { .. })
                    if own_limit.is_some() && reach == Reach::Network =>
                {
                    let failure = fail(
                        FailureKind::Network,
                        anyhow!("{e} (network failure): the server did not answer in time"),
                    );
                    // Waiting the whole limit again at once would only hold the run.
                    return Err(self.network_failure(step, failure));
                }
                Err(e @ RunError::TimedOut { .. }) => fail(
                    FailureKind::Timeout,
                    anyhow!("{e}\nhelp: raise build_timeout if the build is just slow"),
                ),
                Err(e @ RunError::Interrupted { .. }) => fail(FailureKind::Interrupted, e.into()),
                Err(e @ RunError::Spawn { .. }) => fail(FailureKind::Environment, e.into()),
            };
            if retry && failure.kind == FailureKind::Network && attempt < ATTEMPTS {
                let pause = self
                    .settings
                    .retry_pause
                    .saturating_mul(2u32.pow(attempt - 1));
                log::warn!(
                    "{} failed for a network reason (attempt {attempt} of {ATTEMPTS}: {}); retrying in {}",
                    cmd.summary,
                    headline(&failure.error),
                    crate::timefmt::human_duration(pause)
                );
                self.clock.sleep(pause);
                attempt += 1;
                continue;
            }
            if failure.kind == FailureKind::Network {
                return Err(self.network_failure(step, failure));
            }
            return Err(failure);
        }
    }

    /// Classifies a command that ran and failed, and names the cause first.
    fn step_failed(&self, step: &BuildStep, cmd: &Cmd, out: Output) -> BuildFailure {
        let tail = out.tail_text();
        let code = out.code;
        let failed = CmdFailed {
            summary: cmd.summary.clone(),
            command: cmd.display(),
            output: out,
        };
        // `git ls-remote --exit-code` exits 2 when the repository has no such ref.
        if matches!(step, BuildStep::Resolve(_)) && code == Some(2) {
            return fail(
                FailureKind::Verification,
                anyhow!(
                    "{} has no tag {}\nhelp: the release names a tag the repository does not have: check git_url",
                    crate::redact::url(&self.settings.git_url),
                    cmd.args
                        .iter()
                        .rev()
                        .nth(1)
                        .map(|a| a
                            .to_string_lossy()
                            .trim_start_matches("refs/tags/")
                            .to_owned())
                        .unwrap_or_default()
                ),
            );
        }
        let Diagnosis {
            mut kind,
            cause,
            mut help,
        } = diagnose(step.reach(), code, &tail);
        if matches!(step, BuildStep::Fetch(_)) && kind == FailureKind::Access && help.is_none() {
            if server_side(&tail) {
                // The server said it failed (`remote: …`): its fault, not the checkout's.
                help = Some(HELP_SERVER_FAILED);
            } else {
                // Neither a refusal nor a connection failure, and the server answered the
                // resolve a moment ago: git may have failed on the checkout's own files.
                kind = FailureKind::Environment;
                help = Some(HELP_LOCAL_GIT);
            }
        } else if step.local_git() && kind == FailureKind::Compile {
            // git could not work in its own checkout: not the release's fault, and the
            // next run makes the checkout again.
            kind = FailureKind::Environment;
            help = Some("help: the next run makes the build checkout again");
        } else if matches!(step, BuildStep::Toolchain(_)) || diagnose::is_missing_toolchain(&tail) {
            // rustc itself could not run (or rustup's proxy said so for cargo): a
            // toolchain that is missing or broken.
            kind = FailureKind::Toolchain;
            help = Some(
                "help: install the toolchain the build uses (`rustup toolchain install stable`, or the one `toolchain` names) and run `make doctor`",
            );
        }
        let configuration = cause
            .as_deref()
            .is_some_and(|c| diagnose::is_undefined_profile(&c.to_ascii_lowercase()));
        let what = match kind {
            FailureKind::Environment if configuration => "the configuration",
            FailureKind::Access if help == Some(HELP_SERVER_FAILED) => "the server",
            FailureKind::Access => "refused",
            FailureKind::Network => "network failure",
            FailureKind::Toolchain => "toolchain too old",
            FailureKind::Environment => "the machine",
            _ => "failed",
        };
        let headline = match &cause {
            Some(c) => format!("could not {} ({what}): {c}", cmd.summary),
            None => format!("could not {}", cmd.summary),
        };
        fail(
            kind,
            anyhow::Error::new(StepFailed {
                headline,
                failed,
                help: help.map(String::from).into_iter().collect(),
            }),
        )
    }

    /// A network failure after the retries: remembered across runs, and after a day of
    /// them an [`FailureKind::Unreachable`] failure.
    fn network_failure(&self, step: &BuildStep, failure: BuildFailure) -> BuildFailure {
        let now = self.clock.now();
        let first = cache::note_network_failure(&self.settings.cache_dir, step.phase(), now);
        if !cache::network_failure_persists(first, now) {
            return failure;
        }
        let since = crate::timefmt::rfc3339(first);
        let error = match failure.error.downcast::<StepFailed>() {
            Ok(mut s) => {
                s.headline = format!(
                    "{} — it has failed for network reasons in every run since {since}",
                    s.headline
                );
                s.help.push(format!(
                    "help: check that this machine reaches {} (DNS, proxy, firewall); this is not the release's fault, and it is not backed off",
                    crate::redact::url(&self.settings.git_url)
                ));
                anyhow::Error::new(s)
            }
            Err(e) => e.context(format!(
                "failing for network reasons in every run since {since}"
            )),
        };
        fail(FailureKind::Unreachable, error)
    }

    /// Runs a command of `verify_tag`, whose exit code the caller judges: a signal stops
    /// the build, and a program that cannot start is the machine's failure.
    fn run_signature_cmd(&self, cmd: &Cmd) -> Result<Output, BuildFailure> {
        self.runner.run(cmd).map_err(|e| match e {
            RunError::Interrupted { .. } => fail(FailureKind::Interrupted, e.into()),
            RunError::Spawn { .. } => fail(FailureKind::Environment, e.into()),
            e @ RunError::TimedOut { .. } => fail(FailureKind::Timeout, e.into()),
        })
    }

    /// The help of every refused signature.
    fn signature_help(&self) -> String {
        format!(
            "help: release tags must be signed with an SSH key (`git tag -s` with `gpg.format = ssh`) that allowed_signers{} lists, valid now",
            self.settings
                .allowed_signers
                .as_deref()
                .map(|p| format!(" = {}", p.display()))
                .unwrap_or_default()
        )
    }

    /// Reads the tag object: only an SSH signature goes on, of a tag that names itself
    /// `target`'s tag (a signed tag replayed under another name is refused) and, tagging
    /// a commit, the one resolved; its payload and signature are written for ssh-keygen,
    /// and the object is kept for the version root (see [`kept`]).
    fn read_tag(
        &self,
        cmd: &Cmd,
        target: &Target,
        progress: &mut Progress,
    ) -> Result<(), BuildFailure> {
        let tag = &target.tag;
        let refused = |what: String| {
            fail(
                FailureKind::Verification,
                anyhow!("{what}\n{}", self.signature_help()),
            )
        };
        let out = self.run_signature_cmd(cmd)?;
        if !out.success() {
            return Err(refused(format!(
                "{tag} is not an annotated tag, so it carries no signature ({})",
                out.tail_text().trim()
            )));
        }
        let signed = signature::split(&out.stdout)
            .ok_or_else(|| refused(format!("the tag {tag} carries no signature")))?;
        if signed.armour != signature::Armour::Ssh {
            return Err(refused(format!(
                "the tag {tag} is signed with {}; only SSH signatures from allowed_signers count (verify_tag)",
                signed.armour.name()
            )));
        }
        let header = signature::header(signed.payload).ok_or_else(|| {
            refused(format!(
                "the tag object of {tag} has no object, type or tag line"
            ))
        })?;
        if header.name != tag.as_str() {
            return Err(refused(format!(
                "the tag {tag} is a tag object signed as {:?}: a signed tag under another name is refused",
                header.name
            )));
        }
        let resolved = progress.commit.as_deref().unwrap_or_default();
        if header.kind == "commit" && header.object != resolved {
            return Err(refused(format!(
                "the tag object of {tag} names commit {}, not {resolved}, which the tag named when checked",
                header.object
            )));
        }
        let (sig, payload) = self.signature_files(target);
        crate::fsutil::atomic_write(&sig, signed.signature.as_bytes())
            .and_then(|()| crate::fsutil::atomic_write(&payload, signed.payload.as_bytes()))
            .map_err(|e| fail(FailureKind::Environment, e))?;
        progress.tag_object = Some(out.stdout.clone());
        Ok(())
    }

    /// Who in `allowed_signers` has the key that signed, valid now: nobody is a refusal.
    fn find_signers(
        &self,
        cmd: &Cmd,
        target: &Target,
        progress: &mut Progress,
    ) -> Result<(), BuildFailure> {
        let out = self.run_signature_cmd(cmd)?;
        progress.principals = signature::principals(&out.stdout);
        if !out.success() || progress.principals.is_empty() {
            return Err(fail(
                FailureKind::Verification,
                anyhow!(
                    "the signature of {} is not from an allowed signer valid now (ssh-keygen: {})\n{}",
                    target.tag,
                    out.tail_text().trim().replace('\n', "; "),
                    self.signature_help()
                ),
            ));
        }
        Ok(())
    }

    /// The signature must verify for one of the principals found.
    fn verify_signature(
        &self,
        target: &Target,
        progress: &mut Progress,
    ) -> Result<(), BuildFailure> {
        let mut said = String::new();
        for principal in &progress.principals {
            let cmd = self.verify_signature_cmd(target, principal);
            let out = self.run_signature_cmd(&cmd)?;
            if out.success() {
                let signer =
                    signature::signer(&format!("{}\n{}", out.stdout, out.tail_text()), principal);
                log::info!(
                    "the signature of {} is good: signed by {} with {}",
                    target.tag,
                    signer.principal,
                    signer.key
                );
                progress.signer = Some(signer);
                return Ok(());
            }
            said = out.tail_text().trim().replace('\n', "; ");
        }
        Err(fail(
            FailureKind::Verification,
            anyhow!(
                "the signature of {} does not verify for {} (ssh-keygen: {said})\n{}",
                target.tag,
                progress.principals.join(", "),
                self.signature_help()
            ),
        ))
    }

    /// Checks the staging root holds what was asked for: every binary cargo recorded for
    /// each package, `binary` among them, built from the resolved commit (git mode:
    /// cargo's records), reporting the target version.
    fn verify(&self, cmd: &Cmd, target: &Target, progress: &Progress) -> Result<(), BuildFailure> {
        let verification = |e: anyhow::Error| fail(FailureKind::Verification, e);
        let staging = self.layout.staging(&target.version);
        let records = crate::install_records::read(&staging).map_err(verification)?;
        let bins = crate::layout::bins_of(&records);
        for p in &self.settings.packages {
            let of_p = bins.get(p).filter(|b| !b.is_empty());
            let Some(of_p) = of_p else {
                return Err(verification(anyhow!(
                    "cargo did not install `{p}` into {}",
                    staging.display()
                )));
            };
            if let Some(gone) = of_p.iter().find(|b| !staging.join("bin").join(b).exists()) {
                return Err(verification(anyhow!(
                    "cargo recorded `{gone}` of `{p}` but did not put it in {}",
                    staging.join("bin").display()
                )));
            }
        }
        let ws = Workspace {
            bins,
            ..Workspace::default()
        };
        // The configuration names another binary, as far as can be told: no backoff (a
        // checkout build says so before compiling, from `cargo metadata`).
        ws.check_binary(&self.settings.binary, &self.settings.packages, &target.tag)
            .map_err(|m| fail(FailureKind::Environment, anyhow!(m)))?;
        let commit = progress.commit.as_deref().unwrap_or_default();
        if self.settings.mode == BuildMode::Git {
            for p in &self.settings.packages {
                let recorded = records
                    .iter()
                    .find(|r| &r.package == p)
                    .and_then(|r| r.commit.clone());
                if recorded.as_deref() != Some(commit) {
                    return Err(verification(anyhow!(
                        "cargo built `{p}` from commit {} but was asked for {commit}, which {} named when checked\nhelp: a build of another commit is refused; it is retried after the backoff",
                        recorded.as_deref().unwrap_or("(unrecorded)"),
                        target.tag,
                    )));
                }
            }
        } else {
            // cargo recorded the path it built; the checkout is at the resolved commit
            // (TagCommit compared it with the fetched tag, Checkout went there).
            let checkout = self.checkout().dir;
            for p in &self.settings.packages {
                let source = records
                    .iter()
                    .find(|r| &r.package == p)
                    .map(|r| r.source.clone())
                    .unwrap_or_default();
                let built_from = source
                    .strip_prefix("path+")
                    .and_then(|u| url::Url::parse(u).ok())
                    .and_then(|u| u.to_file_path().ok());
                if !built_from.is_some_and(|d| d.starts_with(&checkout)) {
                    return Err(verification(anyhow!(
                        "cargo recorded `{p}` as built from {source:?}, not from the checkout {}",
                        checkout.display()
                    )));
                }
            }
        }
        // A signal while the new binary answers stops the build: no verdict on it.
        let answered = self.runner.run(cmd).map_err(|e| match e {
            RunError::Interrupted { .. } => fail(FailureKind::Interrupted, e.into()),
            e => verification(e.into()),
        })?;
        let reported =
            crate::installed::answer(cmd, &answered).map_err(|e| verification(anyhow!(e)))?;
        if !same_version(&reported, &target.version) {
            return Err(verification(anyhow!(
                "the new {} reports version {reported}, but {} is {}",
                self.settings.binary,
                target.tag,
                target.version
            )));
        }
        Ok(())
    }

    /// Removes what `verify_tag` wrote (the scratch repository, the signature files).
    fn forget_tag(&self, target: &Target) {
        let (sig, payload) = self.signature_files(target);
        for p in [self.tag_scratch(target).git_dir, sig, payload] {
            let _ = crate::fsutil::remove_all(&p);
        }
    }

    /// After a failed or interrupted build: the half-built root goes at once (a full
    /// disk gets its space back), except after a signal, when the next run cleans up;
    /// a fresh target dir always goes.
    pub fn discard(&self, target: &Target, kind: Option<FailureKind>) {
        self.forget_tag(target);
        if self.settings.mode == BuildMode::Git {
            let _ = crate::fsutil::remove_all(&self.layout.target_dir(&target.version));
        }
        if kind.is_some_and(|k| k != FailureKind::Interrupted) {
            let _ = crate::fsutil::remove_all(&self.layout.staging(&target.version));
        }
    }

    /// The staging root of `target` with its record, ready to be renamed into place.
    /// Logs the phases, remembers what the build took on disk (for the next free-space
    /// check) and keeps the checkout's target dir under `cache_max_size`.
    pub fn finish(&self, target: &Target, progress: &Progress) -> Result<PathBuf, BuildFailure> {
        self.forget_tag(target);
        let staging = self.layout.staging(&target.version);
        let records = crate::install_records::read(&staging)
            .map_err(|e| fail(FailureKind::Verification, e))?;
        crate::layout::write_meta(
            &staging,
            &crate::layout::RootMeta {
                version: Some(target.version.to_string()),
                commit: progress.commit.clone(),
                origin: crate::layout::Origin::Built,
                signed_by: progress.signer.clone(),
                bins: Some(crate::layout::bins_of(&records)),
            },
        )
        .map_err(|e| fail(FailureKind::Environment, e))?;
        if let Some(tag_object) = &progress.tag_object {
            kept::keep_tag(&staging, tag_object).map_err(|e| fail(FailureKind::Environment, e))?;
        }
        let total: Duration = progress.phases.iter().map(|(_, d)| *d).sum();
        log::info!(
            "built {} {} in {}: {}",
            self.settings.packages.join(" "),
            target.tag,
            short_duration(total),
            progress.phases_text()
        );
        self.remember(target, progress, &staging);
        if self.settings.mode == BuildMode::Checkout {
            self.bound_target_dir();
        }
        Ok(staging)
    }

    fn remember(&self, target: &Target, progress: &Progress, staging: &Path) {
        let root_bytes = cache::dir_size(staging);
        let (target_bytes, growth) = match self.settings.mode {
            BuildMode::Checkout => {
                let after = cache::dir_size(&self.checkout().target_dir());
                (after, after.saturating_sub(progress.target_before))
            }
            BuildMode::Git => {
                let fresh = cache::dir_size(&self.layout.target_dir(&target.version));
                (fresh, fresh)
            }
        };
        let mut stats = BuildStats::load(&self.settings.cache_dir);
        stats.last_build = Some(cache::LastBuild {
            at: self.clock.now(),
            tag: target.tag.clone(),
            mode: self.settings.mode.name().to_owned(),
            phases: progress
                .phases
                .iter()
                .map(|(p, d)| cache::PhaseTime {
                    phase: (*p).to_owned(),
                    seconds: d.as_secs_f64(),
                })
                .collect(),
            root_bytes,
            target_bytes,
            target_growth: growth,
        });
        if let Err(e) = stats.save(&self.settings.cache_dir) {
            log::warn!("could not remember the build's size: {e:#}");
        }
    }

    fn bound_target_dir(&self) {
        let dir = self.checkout().target_dir();
        let max = self.settings.cache_max_size;
        let size = |b| bytesize::ByteSize::b(b);
        match cache::keep_under(&dir, max, cache::profile_dir(&self.settings.profile)) {
            Ok(b) => match b.decision {
                cache::Bound::Within => log::debug!(
                    "the build cache {} holds {} (cache_max_size = {})",
                    dir.display(),
                    size(b.before),
                    size(max)
                ),
                cache::Bound::PruneStale => log::info!(
                    "the build cache {} held {}, over cache_max_size = {}: removed the artefacts of other toolchains and profiles ({} now)",
                    dir.display(),
                    size(b.before),
                    size(max),
                    size(b.after)
                ),
                cache::Bound::Clear => log::info!(
                    "the build cache {} held {}, over cache_max_size = {} even without other toolchains' artefacts: removed it; the next build starts from an empty target dir",
                    dir.display(),
                    size(b.before),
                    size(max)
                ),
            },
            Err(e) => log::warn!("could not keep the build cache under cache_max_size: {e:#}"),
        }
    }
}

/// The first line of an error, for one-line log messages.
fn headline(error: &anyhow::Error) -> String {
    format!("{error:#}").lines().next().unwrap_or("").to_owned()
}

/// What `doctor` shows of the toolchain: the rustc a build would use and what the last
/// release built needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolchainReport {
    pub rustc: Version,
    /// `(package, rust-version)` of the packages to install, in the checkout as it is.
    pub required: Vec<(String, String)>,
    /// Why that rustc is too old (with a `help:` line), if it is.
    pub problem: Option<String>,
}

/// `rustc --version` in the environment cargo gets: the rustc a build would use.
pub fn rustc_cmd(settings: &BuildSettings, tools: &Tools) -> Cmd {
    let rustc = settings
        .rustc
        .clone()
        .unwrap_or_else(|| tools.rustc.clone());
    build_env(
        Cmd::new(rustc, "read the version of the rustc the build will use")
            .arg("--version")
            .env("PATH", &tools.cargo_path),
        settings,
    )
    .timeout(Duration::from_secs(60))
}

/// The first line of [`rustc_cmd`]'s answer; `None` when it could not tell.
pub fn rustc_now(settings: &BuildSettings, tools: &Tools, runner: &dyn Runner) -> Option<String> {
    let out = runner.run(&rustc_cmd(settings, tools)).ok()?;
    let line = out.stdout.lines().next()?.trim();
    (out.success() && !line.is_empty()).then(|| line.to_owned())
}

/// Free space needed before a build, per directory that will hold build output.
pub fn space_needed(settings: &BuildSettings) -> Vec<PathBuf> {
    let mut dirs = vec![settings.data_dir.clone()];
    if settings.mode == BuildMode::Checkout {
        dirs.push(settings.cache_dir.clone());
    }
    dirs
}

/// Checks each directory has `min_free_space` free.
pub fn check_space(dirs: &[PathBuf], min_free_space: u64) -> Result<(), BuildFailure> {
    for dir in dirs {
        let free = crate::fsutil::free_space(dir).map_err(|e| fail(FailureKind::Environment, e))?;
        if free < min_free_space {
            return Err(fail(
                FailureKind::Environment,
                anyhow!(
                    "only {} free at {} and a build needs min_free_space = {}\nhelp: free some space, or lower min_free_space",
                    bytesize::ByteSize::b(free),
                    dir.display(),
                    bytesize::ByteSize::b(min_free_space)
                ),
            ));
        }
    }
    Ok(())
}

/// Checks each directory has room for what the last build took (`expected`) on top of
/// `min_free_space`, so a build never fills the disk.
pub fn check_expected_space(
    dirs: &[PathBuf],
    min_free_space: u64,
    expected: u64,
) -> Result<(), BuildFailure> {
    let need = min_free_space.saturating_add(expected);
    for dir in dirs {
        let free = crate::fsutil::free_space(dir).map_err(|e| fail(FailureKind::Environment, e))?;
        if free < need {
            return Err(fail(
                FailureKind::Environment,
                anyhow!(
                    "only {} free at {}: the build is expected to take {} (as much as the last one did) and min_free_space = {} must stay free\nhelp: free some space, lower cache_max_size, or lower min_free_space",
                    bytesize::ByteSize::b(free),
                    dir.display(),
                    bytesize::ByteSize::b(expected),
                    bytesize::ByteSize::b(min_free_space)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_member_dirs_and_rust_versions_from_cargo_metadata() {
        let json = r#"{"packages":[{"name":"hephd","manifest_path":"/c/crates/hephd/Cargo.toml","rust_version":"1.90"},{"name":"heph","manifest_path":"/c/crates/heph/Cargo.toml","rust_version":null}],"workspace_root":"/c"}"#;
        let ws = read_metadata(json).unwrap();
        assert_eq!(ws.members["hephd"], PathBuf::from("/c/crates/hephd"));
        assert_eq!(ws.members["heph"], PathBuf::from("/c/crates/heph"));
        assert_eq!(
            ws.rust_versions.get("hephd").map(String::as_str),
            Some("1.90")
        );
        assert_eq!(ws.rust_versions.get("heph"), None);
        assert!(member_dirs("nope").is_err());
    }

    #[test]
    fn reads_the_binaries_cargo_install_would_install_from_cargo_metadata() {
        // Shaped like `cargo metadata` of pueue's workspace, with features added: a bin
        // behind a feature the defaults turn on through another feature, one behind a
        // feature that is off, a library package, a daemon in a package named unlike it.
        let json = r#"{"packages":[
            {"name":"pueue","manifest_path":"/w/pueue/Cargo.toml",
             "features":{"default":["client"],"client":["dep:crossterm"],"tui":[],"crossterm":["dep:crossterm"]},
             "targets":[
                {"kind":["bin"],"name":"pueue","required-features":["client"]},
                {"kind":["bin"],"name":"pueued"},
                {"kind":["bin"],"name":"pueue-tui","required-features":["tui"]},
                {"kind":["lib"],"name":"pueue"},
                {"kind":["test"],"name":"integration"}]},
            {"name":"pueue_lib","manifest_path":"/w/pueue_lib/Cargo.toml","features":{},
             "targets":[{"kind":["lib"],"name":"pueue_lib"}]},
            {"name":"hephaestus-daemon","manifest_path":"/w/d/Cargo.toml",
             "targets":[{"kind":["bin"],"name":"hephd","required-features":null}]}
        ]}"#;
        let ws = read_metadata(json).unwrap();
        assert_eq!(ws.bins["pueue"], ["pueue", "pueued"]);
        assert!(ws.bins["pueue_lib"].is_empty());
        assert_eq!(ws.bins["hephaestus-daemon"], ["hephd"]);
        let packages = |p: &[&str]| p.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(
            ws.check_binary("pueued", &packages(&["pueue"]), "v4.0.4")
                .is_ok()
        );
        assert!(
            ws.check_binary("hephd", &packages(&["pueue", "hephaestus-daemon"]), "v1")
                .is_ok()
        );
        let err = ws
            .check_binary("pueue-tui", &packages(&["pueue", "pueue_lib"]), "v4.0.4")
            .unwrap_err();
        assert!(
            err.starts_with("`binary` = pueue-tui is not a binary the packages install at v4.0.4: pueue installs pueue, pueued; pueue_lib installs no binary\nhelp: set `binary`"),
            "{err}"
        );
    }

    #[test]
    fn phases_add_up_in_the_order_they_began() {
        let mut p = Progress::default();
        p.add_phase("resolve", Duration::from_millis(400));
        p.add_phase("fetch", Duration::from_secs(5));
        p.add_phase("fetch", Duration::from_secs(7));
        p.add_phase("compile", Duration::from_secs(221));
        assert_eq!(p.phases_text(), "resolve 0.4 s, fetch 12 s, compile 3m41s");
        assert_eq!(short_duration(Duration::from_secs(3725)), "1h02m");
    }

    /// A clock whose sleeps return at once.
    struct NoSleep;

    impl Clock for NoSleep {
        fn now(&self) -> time::OffsetDateTime {
            time::OffsetDateTime::now_utc()
        }
        fn instant(&self) -> Instant {
            Instant::now()
        }
        fn sleep(&self, _: Duration) {}
    }

    pub(super) fn settings(dir: &Path) -> BuildSettings {
        BuildSettings {
            git_url: "https://f/x.git".into(),
            packages: vec!["hephd".into()],
            binary: "hephd".into(),
            mode: BuildMode::Checkout,
            profile: "release".into(),
            toolchain: None,
            cargo: None,
            rustc: None,
            verify_tag: false,
            allowed_signers: None,
            build_timeout: Duration::from_secs(600),
            retry_pause: Duration::ZERO,
            min_free_space: 0,
            resolve_timeout: Duration::from_secs(30),
            cache_max_size: 1 << 30,
            ca_file: None,
            tool_path: ToolPath::new(vec![dir.join("tools")]),
            cache_dir: dir.join("cache"),
            data_dir: dir.join("data"),
            home: dir.to_path_buf(),
        }
    }

    #[test]
    fn a_new_checkout_a_killed_run_left_gives_its_target_dir_back_and_goes() {
        use crate::process::fake::Recorder;
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let runner = Recorder::new(|_: &Cmd| Output::default());
        let builder = test_builder(&s, &runner, dir.path());
        let fresh = s.cache_dir.join(CHECKOUT_NEW);
        // Killed after the old checkout was removed, before the new one took its place.
        std::fs::create_dir_all(fresh.join("target/release")).unwrap();
        std::fs::create_dir_all(fresh.join(".git")).unwrap();
        builder.clear_unfinished_replacement().unwrap();
        assert!(!fresh.exists());
        assert!(builder.checkout().target_dir().join("release").is_dir());
        // With a target dir of its own, the checkout keeps it; the leftover just goes.
        std::fs::create_dir_all(fresh.join("target/other")).unwrap();
        builder.clear_unfinished_replacement().unwrap();
        assert!(!fresh.exists());
        assert!(builder.checkout().target_dir().join("release").is_dir());
        assert!(!builder.checkout().target_dir().join("other").exists());
    }

    /// A builder over `runner` with the tools by their names, its layout under `dir`.
    pub(super) fn test_builder<'a>(
        settings: &'a BuildSettings,
        runner: &'a dyn Runner,
        dir: &Path,
    ) -> Builder<'a> {
        Builder {
            settings,
            runner,
            clock: &NoSleep,
            tools: Tools::find(settings, Some(OsStr::new("/nonexistent"))),
            layout: Layout::new(&dir.join("data"), &dir.join("bin")),
            log_file: None,
        }
    }

    fn failing(tail: &str) -> Output {
        Output {
            code: Some(101),
            tail: tail.lines().map(String::from).collect(),
            ..Output::default()
        }
    }

    /// Runs `step` of a checkout build against a runner that answers with `answer`
    /// (called with the number of the call); returns the result and the calls.
    fn run_one(
        pick: impl Fn(&[BuildStep]) -> BuildStep,
        answer: impl Fn(usize) -> Output,
    ) -> (Result<(), BuildFailure>, Vec<String>) {
        run_one_seeing(pick, |n, _| answer(n))
    }

    /// As [`run_one`], the answer seeing the command too.
    fn run_one_seeing(
        pick: impl Fn(&[BuildStep]) -> BuildStep,
        answer: impl Fn(usize, &Cmd) -> Output,
    ) -> (Result<(), BuildFailure>, Vec<String>) {
        use crate::process::fake::Recorder;
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let calls = std::cell::Cell::new(0);
        let runner = Recorder::new(|cmd: &Cmd| {
            calls.set(calls.get() + 1);
            answer(calls.get(), cmd)
        });
        let builder = test_builder(&s, &runner, dir.path());
        let target = Target {
            tag: "v1.0.0".into(),
            version: Version::new(1, 0, 0),
        };
        let step = pick(&builder.steps(&target, &BTreeMap::new()));
        runner.seen.borrow_mut().clear();
        calls.set(0);
        let mut progress = Progress::default();
        let result = builder.run_step(
            &step,
            &target,
            &mut progress,
            Instant::now() + Duration::from_secs(600),
        );
        assert_eq!(progress.phases.len(), 1, "the step's time is noted");
        (result, runner.lines())
    }

    fn find(kind: fn(&BuildStep) -> bool) -> impl Fn(&[BuildStep]) -> BuildStep {
        move |steps| steps.iter().find(|s| kind(s)).unwrap().clone()
    }

    #[test]
    fn a_compile_failure_is_retried_once_from_a_clean_target_dir() {
        let install = find(|s| matches!(s, BuildStep::Install { .. }));
        let error = "error[E0786]: found invalid metadata files for crate `heph_core`\nerror: could not compile `hephd` (bin \"hephd\") due to 1 previous error";
        let (result, calls) = run_one(&install, |n| {
            if n == 1 {
                failing(error)
            } else {
                crate::process::fake::ok("")
            }
        });
        assert!(result.is_ok());
        assert_eq!(calls.len(), 2, "{calls:#?}");
        assert_eq!(
            calls[0], calls[1],
            "the same command, from a clean target dir"
        );

        let (result, calls) = run_one(&install, |_| failing(error));
        let f = result.unwrap_err();
        assert_eq!(f.kind, FailureKind::Compile);
        assert_eq!(calls.len(), 2, "once more, not forever");
        let text = format!("{:#}", f.error);
        assert!(
            text.starts_with("could not compile and install hephd v1.0.0 (failed): error[E0786]")
                && text.contains("attempt 1, incremental"),
            "{text}"
        );

        // Other failures are not compile failures of stale artefacts: no second attempt.
        let (result, calls) = run_one(&install, |_| {
            failing("error: failed to write x: No space left on device (os error 28)")
        });
        assert_eq!(result.unwrap_err().kind, FailureKind::Environment);
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn a_fetch_failing_on_the_checkouts_own_files_is_tried_once_into_a_new_repository() {
        let fetch = find(|s| matches!(s, BuildStep::Fetch(_)));
        // The first fetch fails on a broken ref; `git init` and the second fetch work.
        // (`git init` makes the repository, as the real one does.)
        let init = |cmd: &Cmd| {
            if let Some(dir) = cmd.args.last().filter(|_| cmd.summary.contains("create")) {
                std::fs::create_dir_all(std::path::Path::new(dir).join(".git")).unwrap();
            }
        };
        let (result, calls) = run_one_seeing(&fetch, |n, cmd| {
            init(cmd);
            if n == 1 {
                failing("fatal: bad object refs/tags/v0.9.0")
            } else {
                Output {
                    code: Some(0),
                    ..Output::default()
                }
            }
        });
        assert!(result.is_ok(), "{:?}", result.err());
        assert_eq!(calls.len(), 3, "fetch, init, fetch: {calls:?}");
        assert!(calls[1].contains("init"), "{calls:?}");

        // Failing the same way into a new repository, with no word from the server: not
        // the checkout's files, not shown to be the release's: no backoff, checkout kept.
        let (result, calls) = run_one_seeing(&fetch, |n, cmd| {
            init(cmd);
            if n == 2 {
                Output {
                    code: Some(0),
                    ..Output::default()
                }
            } else {
                failing("fatal: bad object refs/tags/v0.9.0")
            }
        });
        let f = result.unwrap_err();
        assert_eq!(f.kind, FailureKind::Environment);
        assert!(f.to_string().contains("failed the same way"), "{f}");
        assert_eq!(calls.len(), 3, "tried once more, not in a loop: {calls:?}");

        // The server saying it failed: its fault at once, no new repository tried.
        let (result, calls) = run_one(&fetch, |_| {
            failing("remote: fatal: bad object 1234\nfatal: protocol error: bad pack header")
        });
        let f = result.unwrap_err();
        assert_eq!(f.kind, FailureKind::Access);
        assert!(f.to_string().contains("(the server)"), "{f}");
        assert_eq!(calls.len(), 1, "{calls:?}");

        // A full disk is not the checkout's fault: it is not thrown away.
        let (result, calls) = run_one(&fetch, |_| {
            failing("error: unable to write file: No space left on device")
        });
        assert_eq!(result.unwrap_err().kind, FailureKind::Environment);
        assert_eq!(calls.len(), 1, "{calls:?}");
    }

    #[test]
    fn a_network_failure_is_retried_only_where_the_network_is_reached() {
        let fetch = find(|s| matches!(s, BuildStep::Dependencies(_)));
        let refused = "error: failed to download from `https://static.crates.io/api/v1/crates/x/1.0.0/download`\n\nCaused by:\n  [7] Couldn't connect to server (Failed to connect to static.crates.io port 443: Connection refused)";
        let (result, calls) = run_one(&fetch, |_| failing(refused));
        assert_eq!(result.unwrap_err().kind, FailureKind::Network);
        assert_eq!(calls.len(), ATTEMPTS as usize);

        let install = find(|s| matches!(s, BuildStep::Install { .. }));
        let (result, calls) = run_one(&install, |_| failing(refused));
        assert_eq!(
            result.unwrap_err().kind,
            FailureKind::Compile,
            "an offline compile cannot fail for network reasons"
        );
        assert_eq!(calls.len(), 2, "the clean retry, no network retries");
    }

    #[test]
    fn a_broken_checkout_or_toolchain_is_not_the_release_s_fault() {
        let checkout = find(|s| matches!(s, BuildStep::Checkout(_)));
        let (result, _) = run_one(&checkout, |_| {
            failing("fatal: Unable to create '/c/.git/index.lock': File exists.")
        });
        let f = result.unwrap_err();
        assert_eq!(f.kind, FailureKind::Environment);
        assert!(!f.kind.backs_off());

        let rustc = find(|s| matches!(s, BuildStep::Toolchain(_)));
        let (result, _) = run_one(&rustc, |_| {
            failing("error: toolchain 'stable-x86_64-unknown-linux-gnu' is not installed")
        });
        let f = result.unwrap_err();
        assert_eq!(f.kind, FailureKind::Toolchain);
        assert!(format!("{:#}", f.error).contains("rustup toolchain install"));
    }

    #[test]
    fn both_build_modes_check_the_tag_with_the_same_commands_before_anything_is_built() {
        use crate::process::fake::{Recorder, ok};
        let dir = tempfile::tempdir().unwrap();
        let runner = Recorder::new(|_: &Cmd| ok(""));
        let target = Target {
            tag: "v1.0.0".into(),
            version: Version::new(1, 0, 0),
        };
        let steps_of = |mode: BuildMode| {
            let s = BuildSettings {
                mode,
                verify_tag: true,
                allowed_signers: Some("/etc/heph/allowed_signers".into()),
                ..settings(dir.path())
            };
            let b = test_builder(&s, &runner, dir.path());
            // The system's programs come from `tool_path`; compared by name here.
            // The system's programs come from `tool_path`, cargo from where it was found;
            // compared by name here.
            let tools = format!("{}/", dir.path().join("tools").display());
            let cargo_dir = b.tools.cargo.parent().map(|d| format!("{}/", d.display()));
            b.steps(&target, &BTreeMap::new())
                .iter()
                .map(|st| {
                    let shown = st
                        .cmd()
                        .display()
                        .replace(&tools, "")
                        .replace(" -c core.hooksPath=/dev/null -c core.fsmonitor=false", "");
                    let shown = match &cargo_dir {
                        Some(d) => shown.replace(d.as_str(), ""),
                        None => shown,
                    };
                    (st.phase(), st.reach(), shown)
                })
                .collect::<Vec<_>>()
        };
        let (checkout, git) = (steps_of(BuildMode::Checkout), steps_of(BuildMode::Git));
        let tmp = dir.path().join("data/tmp");
        let signature_steps = |git_dir: &Path| {
            vec![
                format!(
                    "git --git-dir={} cat-file tag refs/tags/v1.0.0",
                    git_dir.display()
                ),
                format!(
                    "ssh-keygen -Y find-principals -s {} -f /etc/heph/allowed_signers",
                    tmp.join("tag-1.0.0.sig").display()
                ),
                format!(
                    "ssh-keygen -Y verify -f /etc/heph/allowed_signers -I '<principal from find-principals>' -n git -s {} < {}",
                    tmp.join("tag-1.0.0.sig").display(),
                    tmp.join("tag-1.0.0.payload").display()
                ),
            ]
        };
        let shown = |steps: &[(&str, Reach, String)]| -> Vec<String> {
            steps.iter().map(|(_, _, c)| c.clone()).collect()
        };
        let at = |steps: &[(&str, Reach, String)], prefix: &str| {
            steps
                .iter()
                .position(|(_, _, c)| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no `{prefix}` in {steps:#?}"))
        };
        // Checkout: right after the fetched tag is compared with the resolved commit.
        let c = shown(&checkout);
        let i = at(&checkout, "git --git-dir=");
        assert!(c[i - 1].ends_with("rev-parse --verify --quiet refs/tags/v1.0.0^{commit}"));
        assert_eq!(
            c[i..i + 3],
            signature_steps(&dir.path().join("cache/checkout/.git"))[..]
        );
        assert!(i + 3 < at(&checkout, "cargo"), "before cargo runs");
        // Git: the tag alone in a scratch repository, compared, checked the same way, then cargo.
        let g = shown(&git);
        let scratch = tmp.join("tag-1.0.0.git");
        assert_eq!(
            g[1..4],
            [
                format!("git init --quiet --bare {}", scratch.display()),
                format!(
                    "git --git-dir={} fetch --quiet --depth=1 --no-tags -- https://f/x.git +refs/tags/v1.0.0:refs/tags/v1.0.0",
                    scratch.display()
                ),
                format!(
                    "git --git-dir={} rev-parse --verify --quiet refs/tags/v1.0.0^{{commit}}",
                    scratch.display()
                ),
            ]
        );
        assert_eq!(
            git[2].1,
            Reach::Network,
            "the scratch fetch reaches the network"
        );
        assert_eq!(g[4..7], signature_steps(&scratch)[..]);
        assert!(g[7].starts_with("cargo install --locked --force --git="));
    }

    #[test]
    fn a_tag_signed_otherwise_than_by_ssh_or_not_at_all_or_as_another_tag_is_refused_as_the_release_s_fault()
     {
        use crate::process::fake::{Recorder, ok};
        let head = "object 1111111111111111111111111111111111111111\ntype commit\ntag v1.0.0\ntagger R <r@x> 1559347200 +0000\n\nrelease\n";
        let ssh = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";
        for (object, said) in [
            // A signed tag of another name (an old release's, say) replayed as v1.0.0.
            (
                format!("{}{ssh}", head.replace("tag v1.0.0", "tag v0.9.0")),
                "the tag v1.0.0 is a tag object signed as \"v0.9.0\": a signed tag under another name is refused",
            ),
            (
                format!("{}{ssh}", head.replace("object 1111", "object 2222")),
                "the tag object of v1.0.0 names commit 2222111111111111111111111111111111111111, not 1111111111111111111111111111111111111111",
            ),
            (
                format!(
                    "{head}-----BEGIN SIGNED MESSAGE-----\nMII\n-----END SIGNED MESSAGE-----\n"
                ),
                "the tag v1.0.0 is signed with X.509 (gpgsm); only SSH signatures from allowed_signers count",
            ),
            (
                format!("{head}-----BEGIN PGP SIGNATURE-----\niHU\n-----END PGP SIGNATURE-----\n"),
                "the tag v1.0.0 is signed with OpenPGP (gpg); only SSH signatures from allowed_signers count",
            ),
            (head.to_owned(), "the tag v1.0.0 carries no signature"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let s = BuildSettings {
                verify_tag: true,
                allowed_signers: Some("/etc/heph/allowed_signers".into()),
                ..settings(dir.path())
            };
            let runner = Recorder::new(|_: &Cmd| ok(&object));
            let b = test_builder(&s, &runner, dir.path());
            let target = Target {
                tag: "v1.0.0".into(),
                version: Version::new(1, 0, 0),
            };
            let step = b
                .steps(&target, &BTreeMap::new())
                .into_iter()
                .find(|st| matches!(st, BuildStep::ReadTag(_)))
                .unwrap();
            let mut progress = Progress {
                commit: Some("1111111111111111111111111111111111111111".into()),
                ..Progress::default()
            };
            let f = b
                .run_step(
                    &step,
                    &target,
                    &mut progress,
                    Instant::now() + Duration::from_secs(60),
                )
                .unwrap_err();
            assert_eq!(f.kind, FailureKind::Verification);
            let text = format!("{:#}", f.error);
            assert!(
                text.contains(said)
                    && text.contains("help: release tags must be signed with an SSH key"),
                "{text}"
            );
            assert!(
                !dir.path().join("data/tmp/tag-1.0.0.payload").exists(),
                "nothing handed to ssh-keygen"
            );
        }
    }

    #[test]
    fn cargo_configuration_left_in_the_checkout_stops_the_build_before_cargo_runs() {
        use crate::process::fake::{Recorder, ok};
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let runner = Recorder::new(|_: &Cmd| ok(""));
        let b = test_builder(&s, &runner, dir.path());
        let target = Target {
            tag: "v1.0.0".into(),
            version: Version::new(1, 0, 0),
        };
        // hephd lives in a submodule that brings its own .cargo/config.toml.
        let member = b.checkout().dir.join("vendor/hephd");
        std::fs::create_dir_all(b.checkout().dir.join("vendor/.cargo")).unwrap();
        std::fs::write(b.checkout().dir.join("vendor/.cargo/config.toml"), "").unwrap();
        let mut progress = Progress::default();
        progress.members.insert("hephd".into(), member);
        let step = b
            .steps(&target, &progress.members)
            .into_iter()
            .find(|st| matches!(st, BuildStep::Install { .. }))
            .unwrap();
        runner.seen.borrow_mut().clear();
        let f = b
            .run_step(
                &step,
                &target,
                &mut progress,
                Instant::now() + Duration::from_secs(60),
            )
            .unwrap_err();
        assert_eq!(f.kind, FailureKind::Verification);
        assert!(
            format!("{:#}", f.error).contains("vendor/.cargo/config.toml"),
            "{:#}",
            f.error
        );
        assert!(
            runner.lines().is_empty(),
            "cargo never ran: {:?}",
            runner.lines()
        );
    }

    #[test]
    fn the_ca_file_reaches_git_and_cargo() {
        let settings = BuildSettings {
            git_url: "https://f/x.git".into(),
            packages: vec!["hephd".into()],
            binary: "hephd".into(),
            mode: BuildMode::Checkout,
            profile: "release".into(),
            toolchain: Some("stable".into()),
            cargo: None,
            rustc: None,
            verify_tag: false,
            allowed_signers: None,
            build_timeout: Duration::from_secs(60),
            retry_pause: Duration::ZERO,
            min_free_space: 0,
            resolve_timeout: Duration::from_secs(30),
            cache_max_size: 1 << 30,
            ca_file: Some("/etc/ssl/forge-ca.pem".into()),
            tool_path: ToolPath::new(vec!["/usr/bin".into()]),
            cache_dir: "/c".into(),
            data_dir: "/d".into(),
            home: "/h".into(),
        };
        let cmd = network_env(Cmd::new("git", "x"), &settings);
        let has = |cmd: &Cmd, k: &str, v: &str| cmd.env.iter().any(|(a, b)| a == k && b == v);
        let names = |cmd: &Cmd| -> Vec<String> {
            cmd.env
                .iter()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect()
        };
        assert!(has(&cmd, "GIT_SSL_CAINFO", "/etc/ssl/forge-ca.pem"));
        assert!(has(&cmd, "CARGO_HTTP_CAINFO", "/etc/ssl/forge-ca.pem"));
        assert!(has(&cmd, "RUSTUP_TOOLCHAIN", "stable"));
        assert!(!names(&cmd).contains(&"SSL_CERT_FILE".to_owned()));
        // A step that stays offline (the compile, metadata, rustc) gets none of it.
        let offline = build_env(Cmd::new("cargo", "x"), &settings);
        assert!(has(&offline, "RUSTUP_TOOLCHAIN", "stable"));
        for k in ["GIT_SSL_CAINFO", "CARGO_HTTP_CAINFO", "SSL_CERT_FILE"] {
            assert!(!names(&offline).contains(&k.to_owned()), "{k}");
        }
        let none = network_env(
            Cmd::new("git", "x"),
            &BuildSettings {
                ca_file: None,
                ..settings
            },
        );
        assert!(!names(&none).contains(&"GIT_SSL_CAINFO".to_owned()));
    }

    #[test]
    fn only_the_steps_that_reach_the_network_get_the_ca_file() {
        use crate::process::fake::{Recorder, ok};
        let dir = tempfile::tempdir().unwrap();
        let runner = Recorder::new(|_: &Cmd| ok(""));
        let target = Target {
            tag: "v1.0.0".into(),
            version: Version::new(1, 0, 0),
        };
        for mode in [BuildMode::Checkout, BuildMode::Git] {
            let s = BuildSettings {
                mode,
                ca_file: Some("/etc/ssl/forge-ca.pem".into()),
                ..settings(dir.path())
            };
            let b = test_builder(&s, &runner, dir.path());
            for step in b.steps(&target, &BTreeMap::new()) {
                let has_ca = step
                    .cmd()
                    .env
                    .iter()
                    .any(|(k, v)| v == "/etc/ssl/forge-ca.pem" && k != "SSL_CERT_FILE");
                let cert_file = step.cmd().env.iter().any(|(k, _)| k == "SSL_CERT_FILE");
                assert_eq!(
                    has_ca,
                    step.reach() != Reach::Offline,
                    "{mode:?}: {}",
                    step.cmd().display()
                );
                assert!(!cert_file, "{}", step.cmd().display());
            }
        }
    }
}
