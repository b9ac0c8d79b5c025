//! Building a release into a new version root, never into the live `bin_dir`.
//!
//! `git` mode: `cargo install --git … --tag …` with a fresh, empty target dir (a reused
//! one silently installs stale code, rust-lang/cargo#13259), then the commit cargo
//! recorded must be the one the tag named when checked. `checkout` mode: a persistent
//! checkout of the tag, `cargo install --path` per package reusing its target dir, so a
//! new release recompiles only what changed (path sources are fingerprinted by content).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use semver::Version;

use crate::clock::Clock;
use crate::git::{self, Checkout};
use crate::layout::Layout;
use crate::process::{Cmd, CmdFailed, RunError, Runner};
use crate::version::same_version;

/// How a release is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// `cargo install --git … --tag …` with a fresh target dir (the default).
    Git,
    /// A persistent checkout of the tag, `cargo install --path` per package (fast rebuilds).
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

/// Phrases in cargo's and git's output that mean the network, not the code, failed.
const NETWORK_SIGNS: &[&str] = &[
    "network failure",
    "spurious network error",
    "failed to clone",
    "failed to fetch",
    "failed to download",
    "could not resolve host",
    "couldn't resolve host",
    "failed to connect",
    "connection refused",
    "connection reset",
    "connection timed out",
    "operation timed out",
    "unable to access",
    "early eof",
    "the remote end hung up",
    "could not read from remote repository",
];

/// What a build needs from the configuration (and nothing else of it).
#[derive(Debug, Clone)]
pub struct BuildSettings {
    pub git_url: String,
    pub packages: Vec<String>,
    /// The binary whose `--version` must report the target version.
    pub binary: String,
    pub mode: BuildMode,
    pub toolchain: Option<String>,
    /// The configured cargo, if any.
    pub cargo: Option<PathBuf>,
    pub verify_tag: bool,
    pub allowed_signers: Option<PathBuf>,
    pub build_timeout: Duration,
    pub retry_pause: Duration,
    pub min_free_space: u64,
    /// Time limit of one `git ls-remote`.
    pub resolve_timeout: Duration,
    pub cache_dir: PathBuf,
    pub data_dir: PathBuf,
    pub home: PathBuf,
}

impl BuildSettings {
    /// The persistent checkout of `build = "checkout"`.
    pub fn checkout(&self, git: &Path) -> Checkout {
        Checkout {
            git: git.to_path_buf(),
            dir: self.cache_dir.join("checkout"),
        }
    }
}

/// The programs a build runs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub cargo: PathBuf,
    pub git: PathBuf,
}

impl Tools {
    /// `cargo`: the configured path, else PATH, else `~/.cargo/bin/cargo` (service
    /// managers' PATH rarely has it). `git`: PATH.
    pub fn find(configured: Option<&Path>, home: &Path, path_var: Option<&OsStr>) -> Self {
        let cargo = configured
            .map(Path::to_path_buf)
            .or_else(|| crate::process::find_on_path("cargo", path_var))
            .unwrap_or_else(|| home.join(".cargo/bin/cargo"));
        let git =
            crate::process::find_on_path("git", path_var).unwrap_or_else(|| PathBuf::from("git"));
        Self { cargo, git }
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
    /// The forge or network failed (after retries): nothing wrong with the release.
    Network,
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
            Self::Compile | Self::Toolchain | Self::Timeout | Self::Verification
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

/// Gives a cargo or git command the environment builds need under a service manager.
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

/// One step of a build, with the command it runs. The update's plan holds these; the
/// run executes them in order and `--dry-run` shows them.
#[derive(Debug, Clone)]
pub enum BuildStep {
    /// `git ls-remote`: the commit the tag names now.
    Resolve(Cmd),
    /// Creates the persistent checkout.
    InitCheckout(Cmd),
    /// Fetches exactly the tag into the checkout.
    Fetch(Cmd),
    /// The fetched tag must name the commit resolved before.
    TagCommit(Cmd),
    /// The tag's signature must be from an allowed signer.
    VerifyTag(Cmd),
    /// Checks out the tag.
    Checkout(Cmd),
    /// Removes stray files from the checkout (keeping its target dir).
    Clean(Cmd),
    /// Lists the workspace's packages (their directories).
    Metadata(Cmd),
    /// `cargo install` into the staging root (all packages, or one in checkout mode).
    Install { package: Option<String>, cmd: Cmd },
    /// The new daemon binary must report the target version.
    VerifyVersion(Cmd),
}

impl BuildStep {
    pub fn cmd(&self) -> &Cmd {
        match self {
            Self::Resolve(c)
            | Self::InitCheckout(c)
            | Self::Fetch(c)
            | Self::TagCommit(c)
            | Self::VerifyTag(c)
            | Self::Checkout(c)
            | Self::Clean(c)
            | Self::Metadata(c)
            | Self::VerifyVersion(c) => c,
            Self::Install { cmd, .. } => cmd,
        }
    }

    /// A network step: a failure for network reasons is retried.
    fn retried(&self) -> bool {
        matches!(
            self,
            Self::Resolve(_) | Self::Fetch(_) | Self::Install { .. }
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

/// Reads `cargo metadata` output: package name → the directory of its manifest.
pub fn member_dirs(metadata_json: &str) -> Result<BTreeMap<String, PathBuf>> {
    let v: serde_json::Value =
        serde_json::from_str(metadata_json).context("cargo metadata printed no JSON")?;
    let packages = v
        .get("packages")
        .and_then(|p| p.as_array())
        .context("cargo metadata has no packages")?;
    Ok(packages
        .iter()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let manifest = PathBuf::from(p.get("manifest_path")?.as_str()?);
            Some((name.to_owned(), manifest.parent()?.to_path_buf()))
        })
        .collect())
}

/// What running the build steps found out.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The commit the tag named when resolved.
    pub commit: Option<String>,
    /// Package directories from `cargo metadata` (checkout builds).
    pub members: BTreeMap<String, PathBuf>,
    /// How long each phase of the build took, in order.
    pub phases: Vec<(String, Duration)>,
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
        build_env(
            git::ls_remote(&self.tools.git, &self.settings.git_url, tag),
            self.settings,
        )
        .timeout(self.settings.resolve_timeout)
    }

    /// `cargo install --git … --tag …` of every package (`build = "git"`).
    fn git_install(&self, target: &Target) -> Cmd {
        let s = self.settings;
        let cmd = Cmd::new(
            &self.tools.cargo,
            format!("build {} {}", s.packages.join(" "), target.tag),
        )
        .args(["install", "--locked", "--force"])
        .arg(format!("--git={}", s.git_url))
        .arg(format!("--tag={}", target.tag))
        .arg(opt_path("--root=", &self.layout.staging(&target.version)))
        .arg(opt_path(
            "--target-dir=",
            &self.layout.target_dir(&target.version),
        ))
        .args(&s.packages);
        self.streamed(build_env(cmd, s))
    }

    /// `cargo install --path` of one package of the checkout.
    fn path_install(&self, package: &str, member_dir: &Path, target: &Target) -> Cmd {
        let cmd = Cmd::new(&self.tools.cargo, format!("build {package} {}", target.tag))
            .args(["install", "--locked", "--force"])
            .arg(opt_path("--path=", member_dir))
            .arg(opt_path("--root=", &self.layout.staging(&target.version)))
            .arg(opt_path("--target-dir=", &self.checkout().target_dir()));
        self.streamed(build_env(cmd, self.settings))
    }

    /// `cargo metadata` of the checkout: package names to member directories.
    pub fn metadata_cmd(&self) -> Cmd {
        let co = self.checkout();
        let cmd = Cmd::new(&self.tools.cargo, "list the workspace's packages")
            .args(["metadata", "--no-deps", "--format-version=1", "--offline"])
            .arg(opt_path("--manifest-path=", &co.dir.join("Cargo.toml")));
        build_env(cmd, self.settings)
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

    /// The steps that build `target`, in order. `members`: package directories known
    /// from the checkout as it is (the dry run reads them without changing anything).
    pub fn steps(&self, target: &Target, members: &BTreeMap<String, PathBuf>) -> Vec<BuildStep> {
        let mut steps = vec![BuildStep::Resolve(self.resolve_cmd(&target.tag))];
        match self.settings.mode {
            BuildMode::Git => steps.push(BuildStep::Install {
                package: None,
                cmd: self.git_install(target),
            }),
            BuildMode::Checkout => {
                let co = self.checkout();
                let tag = &target.tag;
                if !co.exists() {
                    steps.push(BuildStep::InitCheckout(co.init()));
                }
                steps.push(BuildStep::Fetch(build_env(
                    co.fetch_tag(&self.settings.git_url, tag),
                    self.settings,
                )));
                steps.push(BuildStep::TagCommit(co.tag_commit(tag)));
                if let (true, Some(signers)) =
                    (self.settings.verify_tag, &self.settings.allowed_signers)
                {
                    steps.push(BuildStep::VerifyTag(co.verify_tag(tag, signers)));
                }
                steps.push(BuildStep::Checkout(co.checkout(tag)));
                steps.push(BuildStep::Clean(co.clean()));
                steps.push(BuildStep::Metadata(self.metadata_cmd()));
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

    /// Package directories of the checkout as it is now (read-only), for a plan made
    /// before the tag is checked out.
    pub fn known_members(&self) -> BTreeMap<String, PathBuf> {
        if !self.checkout().exists() {
            return BTreeMap::new();
        }
        match self.runner.run(&self.metadata_cmd()) {
            Ok(out) if out.success() => member_dirs(&out.stdout).unwrap_or_default(),
            _ => BTreeMap::new(),
        }
    }

    /// Prepares the staging root of `target` (and the checkout's parent directory).
    pub fn prepare(&self, target: &Target) -> Result<(), BuildFailure> {
        let staging = self.layout.staging(&target.version);
        crate::fsutil::remove_all(&staging).map_err(|e| fail(FailureKind::Environment, e))?;
        crate::fsutil::create_private_dir(&self.layout.tmp_dir())
            .map_err(|e| fail(FailureKind::Environment, e))?;
        if self.settings.mode == BuildMode::Checkout {
            crate::fsutil::create_private_dir(&self.settings.cache_dir)
                .map_err(|e| fail(FailureKind::Environment, e))?;
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

    /// Runs one step. `deadline`: the build's (on the world's clock).
    pub fn run_step(
        &self,
        step: &BuildStep,
        target: &Target,
        progress: &mut Progress,
        deadline: Instant,
    ) -> Result<(), BuildFailure> {
        let cmd = match step {
            // The plan was made before the checkout's metadata was read: use what it says.
            BuildStep::Install {
                package: Some(p), ..
            } => {
                let planned = step.cmd();
                let actual = self.path_install(p, &self.member_dir(p, &progress.members), target);
                if actual.args != planned.args {
                    log::debug!("the directory of {p} is known now: {}", actual.display());
                }
                actual
            }
            BuildStep::VerifyTag(cmd) => return self.verify_tag(cmd, target),
            BuildStep::VerifyVersion(cmd) => return self.verify(cmd, target, progress),
            _ => step.cmd().clone(),
        };
        let started = self.clock.instant();
        let out = self.run_with_retries(&cmd, deadline, step.retried())?;
        let took = self.clock.instant().saturating_duration_since(started);
        let phase = match step {
            BuildStep::Resolve(_)
            | BuildStep::InitCheckout(_)
            | BuildStep::Fetch(_)
            | BuildStep::TagCommit(_)
            | BuildStep::VerifyTag(_)
            | BuildStep::Checkout(_)
            | BuildStep::Clean(_)
            | BuildStep::Metadata(_) => "fetch",
            BuildStep::Install { .. } => "compile",
            BuildStep::VerifyVersion(_) => "verify",
        };
        match progress.phases.iter_mut().find(|(n, _)| n == phase) {
            Some((_, d)) => *d += took,
            None => progress.phases.push((phase.to_owned(), took)),
        }
        let tag = &target.tag;
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
            BuildStep::TagCommit(_) => {
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
            BuildStep::Metadata(_) => {
                progress.members =
                    member_dirs(&out.stdout).map_err(|e| fail(FailureKind::Compile, e))?;
                for p in &self.settings.packages {
                    if !progress.members.contains_key(p) {
                        return Err(fail(
                            FailureKind::Verification,
                            anyhow!(
                                "the workspace at {tag} has no package `{p}` (it has: {})",
                                progress
                                    .members
                                    .keys()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs a step; network failures are retried (pausing `retry_pause`, doubling) when
    /// `retry`; a failed signature check is a verification failure.
    fn run_with_retries(
        &self,
        cmd: &Cmd,
        deadline: Instant,
        retry: bool,
    ) -> Result<crate::process::Output, BuildFailure> {
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
            let mut step = cmd.clone();
            step.timeout = Some(step.timeout.map_or(left, |t| t.min(left)));
            let failure = match self.runner.run(&step) {
                Ok(out) if out.success() => return Ok(out),
                Ok(out) => {
                    let kind = classify(&out.tail_text());
                    let error: anyhow::Error = CmdFailed {
                        summary: cmd.summary.clone(),
                        command: cmd.display(),
                        output: out,
                    }
                    .into();
                    fail(kind, error)
                }
                Err(e @ RunError::TimedOut { .. }) => fail(
                    FailureKind::Timeout,
                    anyhow::Error::new(e)
                        .context("help: raise build_timeout if the build is just slow"),
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
                    "{} failed for a network reason (attempt {attempt} of {ATTEMPTS}); retrying in {}",
                    cmd.summary,
                    crate::timefmt::human_duration(pause)
                );
                self.clock.sleep(pause);
                attempt += 1;
                continue;
            }
            return Err(match failure.kind {
                FailureKind::Toolchain => fail(
                    FailureKind::Toolchain,
                    failure.error.context(format!(
                        "help: this release needs a newer Rust: set `toolchain = \"stable\"` (RUSTUP_TOOLCHAIN) and run `rustup update stable`; retrying will not help{}",
                        self.settings.toolchain.as_deref().map(|t| format!(" (toolchain is {t} now)")).unwrap_or_default()
                    )),
                ),
                _ => failure,
            });
        }
    }

    /// `git verify-tag`: only its exit code counts.
    fn verify_tag(&self, cmd: &Cmd, target: &Target) -> Result<(), BuildFailure> {
        let out = self
            .runner
            .run(cmd)
            .map_err(|e| fail(FailureKind::Verification, e.into()))?;
        if !out.success() {
            return Err(fail(
                FailureKind::Verification,
                anyhow!(
                    "the signature of {} is not from an allowed signer ({})\nhelp: check allowed_signers{}",
                    target.tag,
                    out.tail_text().trim(),
                    self.settings
                        .allowed_signers
                        .as_deref()
                        .map(|p| format!(" = {}", p.display()))
                        .unwrap_or_default()
                ),
            ));
        }
        log::info!("the signature of {} is good", target.tag);
        Ok(())
    }

    /// Checks the staging root holds what was asked for: every binary, built from the
    /// resolved commit (git mode: cargo's records), reporting the target version.
    fn verify(&self, cmd: &Cmd, target: &Target, progress: &Progress) -> Result<(), BuildFailure> {
        let verification = |e: anyhow::Error| fail(FailureKind::Verification, e);
        let staging = self.layout.staging(&target.version);
        for p in &self.settings.packages {
            if !staging.join("bin").join(p).exists() {
                return Err(verification(anyhow!(
                    "cargo did not install `{p}` into {}",
                    staging.display()
                )));
            }
        }
        let commit = progress.commit.as_deref().unwrap_or_default();
        if self.settings.mode == BuildMode::Git {
            let records = crate::install_records::read(&staging).map_err(verification)?;
            for p in &self.settings.packages {
                let recorded = records
                    .iter()
                    .find(|r| &r.package == p)
                    .and_then(|r| r.commit.clone());
                if recorded.as_deref() != Some(commit) {
                    return Err(verification(anyhow!(
                        "cargo built `{p}` from commit {} but {} named {commit} when checked (was the tag moved?)\nhelp: a moved tag is refused; it is retried after the backoff",
                        recorded.as_deref().unwrap_or("(unrecorded)"),
                        target.tag,
                    )));
                }
            }
        }
        let reported =
            crate::installed::ask(self.runner, cmd).map_err(|e| verification(anyhow!(e)))?;
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

    /// After a failed or interrupted build: the half-built root goes at once (a full
    /// disk gets its space back), except after a signal, when the next run cleans up;
    /// a fresh target dir always goes.
    pub fn discard(&self, target: &Target, kind: Option<FailureKind>) {
        if self.settings.mode == BuildMode::Git {
            let _ = crate::fsutil::remove_all(&self.layout.target_dir(&target.version));
        }
        if kind.is_some_and(|k| k != FailureKind::Interrupted) {
            let _ = crate::fsutil::remove_all(&self.layout.staging(&target.version));
        }
    }

    /// The staging root of `target` with its record, ready to be renamed into place.
    pub fn finish(&self, target: &Target, progress: &Progress) -> Result<PathBuf, BuildFailure> {
        let staging = self.layout.staging(&target.version);
        crate::layout::write_meta(
            &staging,
            &crate::layout::RootMeta {
                version: Some(target.version.to_string()),
                commit: progress.commit.clone(),
                origin: crate::layout::Origin::Built,
            },
        )
        .map_err(|e| fail(FailureKind::Environment, e))?;
        Ok(staging)
    }
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

/// Network, toolchain, or (anything else) compile failure, from the output's tail.
pub fn classify(tail: &str) -> FailureKind {
    let lower = tail.to_ascii_lowercase();
    if lower.contains("requires rustc")
        || lower.contains("is not supported by the following package")
    {
        FailureKind::Toolchain
    } else if lower.contains("no space left on device") || lower.contains("disk quota exceeded") {
        FailureKind::Environment
    } else if NETWORK_SIGNS.iter().any(|s| lower.contains(s)) {
        FailureKind::Network
    } else {
        FailureKind::Compile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_failures_by_their_output() {
        assert_eq!(
            classify(
                "error: failed to clone into: /x\nCaused by: network failure seems to have happened"
            ),
            FailureKind::Network
        );
        assert_eq!(
            classify("fatal: unable to access 'https://f/x.git/': Could not resolve host: f"),
            FailureKind::Network
        );
        assert_eq!(
            classify(
                "error: package `hephd v0.2.0` cannot be built because it requires rustc 1.85 or newer"
            ),
            FailureKind::Toolchain
        );
        assert_eq!(
            classify("error[E0425]: cannot find value `x`\nerror: could not compile `hephd`"),
            FailureKind::Compile
        );
        assert_eq!(
            classify("Could not find directory of OpenSSL installation"),
            FailureKind::Compile,
            "not a network error"
        );
        assert_eq!(
            classify("error: failed to write /x/y.rlib: No space left on device (os error 28)"),
            FailureKind::Environment
        );
    }

    #[test]
    fn reads_member_dirs_from_cargo_metadata() {
        let json = r#"{"packages":[{"name":"hephd","manifest_path":"/c/crates/hephd/Cargo.toml"},{"name":"heph","manifest_path":"/c/crates/heph/Cargo.toml"}],"workspace_root":"/c"}"#;
        let m = member_dirs(json).unwrap();
        assert_eq!(m["hephd"], PathBuf::from("/c/crates/hephd"));
        assert!(member_dirs("nope").is_err());
    }
}
