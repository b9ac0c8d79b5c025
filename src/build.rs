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

use crate::config::Config;
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

/// The programs a build runs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub cargo: PathBuf,
    pub git: PathBuf,
}

impl Tools {
    /// `cargo`: the configured path, else PATH, else `~/.cargo/bin/cargo` (service
    /// managers' PATH rarely has it). `git`: PATH.
    pub fn find(cfg: &Config, path_var: Option<&OsStr>) -> Self {
        let cargo = cfg
            .cargo
            .clone()
            .or_else(|| crate::process::find_on_path("cargo", path_var))
            .unwrap_or_else(|| cfg.home.join(".cargo/bin/cargo"));
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
    /// The commit the tag named when it was checked (`git ls-remote`).
    pub commit: String,
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
pub fn build_env(cmd: Cmd, cfg: &Config) -> Cmd {
    let mut cmd = cmd
        .env("CARGO_NET_GIT_FETCH_WITH_CLI", "true")
        .env(git::NO_PROMPT.0, git::NO_PROMPT.1)
        // Any of these would point cargo at a shared target dir (stale code) or another root.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_BUILD_DIR")
        .env_remove("CARGO_INSTALL_ROOT");
    if let Some(t) = &cfg.toolchain {
        cmd = cmd.env("RUSTUP_TOOLCHAIN", t);
    }
    cmd
}

/// The cargo commands of a build, built in one place for the run and for `--dry-run`.
#[derive(Debug, Clone, Copy)]
pub struct Commands<'a> {
    pub cfg: &'a Config,
    pub tools: &'a Tools,
    pub layout: &'a Layout,
}

impl Commands<'_> {
    /// The `cargo install --git` of `build = "git"`.
    pub fn git_install(&self, tag: &str, version: &Version) -> Cmd {
        let cmd = Cmd::new(
            &self.tools.cargo,
            format!("build {} {tag}", self.cfg.packages.join(" ")),
        )
        .args(["install", "--locked", "--force"])
        .arg(format!("--git={}", self.cfg.git_url))
        .arg(format!("--tag={tag}"))
        .arg(opt_path("--root=", &self.layout.staging(version)))
        .arg(opt_path("--target-dir=", &self.layout.target_dir(version)))
        .args(&self.cfg.packages);
        build_env(cmd, self.cfg)
    }

    /// `cargo install --path` of one package of the checkout.
    pub fn path_install(
        &self,
        checkout: &Checkout,
        package: &str,
        member_dir: &Path,
        tag: &str,
        version: &Version,
    ) -> Cmd {
        let cmd = Cmd::new(&self.tools.cargo, format!("build {package} {tag}"))
            .args(["install", "--locked", "--force"])
            .arg(opt_path("--path=", member_dir))
            .arg(opt_path("--root=", &self.layout.staging(version)))
            .arg(opt_path("--target-dir=", &checkout.target_dir()));
        build_env(cmd, self.cfg)
    }

    /// `cargo metadata` of the checkout: package names to member directories.
    pub fn metadata(&self, checkout: &Checkout) -> Cmd {
        let cmd = Cmd::new(&self.tools.cargo, "list the workspace's packages")
            .args(["metadata", "--no-deps", "--format-version=1", "--offline"])
            .arg(opt_path(
                "--manifest-path=",
                &checkout.dir.join("Cargo.toml"),
            ));
        build_env(cmd, self.cfg)
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

/// Everything a build needs.
pub struct Builder<'a> {
    pub cfg: &'a Config,
    pub runner: &'a dyn Runner,
    pub sleep: &'a dyn Fn(Duration),
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

impl Builder<'_> {
    fn commands(&self) -> Commands<'_> {
        Commands {
            cfg: self.cfg,
            tools: &self.tools,
            layout: &self.layout,
        }
    }

    pub fn checkout(&self) -> Checkout {
        Checkout {
            git: self.tools.git.clone(),
            dir: self.cfg.cache_dir.join("checkout"),
        }
    }

    /// Asks the git server which commit the tag names now.
    pub fn resolve(&self, tag: &str) -> Result<String, BuildFailure> {
        let cmd = build_env(
            git::ls_remote(&self.tools.git, &self.cfg.git_url, tag),
            self.cfg,
        );
        let deadline = Instant::now() + self.cfg.build_timeout;
        let out = self.run_with_retries(&cmd, deadline)?;
        git::parse_ls_remote(&out.stdout, tag).ok_or_else(|| {
            fail(
                FailureKind::Verification,
                anyhow!(
                    "{} did not list the tag {tag}",
                    crate::redact::url(&self.cfg.git_url)
                ),
            )
        })
    }

    /// Builds `target` into its staging root, verifies it, and returns the staging path.
    pub fn build(&self, target: &Target) -> Result<PathBuf, BuildFailure> {
        self.check_disk()?;
        let staging = self.layout.staging(&target.version);
        crate::fsutil::remove_all(&staging).map_err(|e| fail(FailureKind::Environment, e))?;
        crate::fsutil::create_private_dir(&self.layout.tmp_dir())
            .map_err(|e| fail(FailureKind::Environment, e))?;
        let deadline = Instant::now() + self.cfg.build_timeout;
        let started = Instant::now();
        log::info!(
            "building {} {} ({} mode) into {}",
            self.cfg.packages.join(" "),
            target.tag,
            self.cfg.build.name(),
            staging.display()
        );
        let result = match self.cfg.build {
            BuildMode::Git => self.build_git(target, deadline),
            BuildMode::Checkout => self.build_checkout(target, deadline),
        };
        if self.cfg.build == BuildMode::Git {
            let _ = crate::fsutil::remove_all(&self.layout.target_dir(&target.version));
        }
        if let Err(e) = result.and_then(|()| self.verify(target, &staging)) {
            // Half-built or wrong: gone at once (a full disk gets its space back); an
            // interrupted run leaves it to the next run's clean-up.
            if e.kind != FailureKind::Interrupted {
                let _ = crate::fsutil::remove_all(&staging);
            }
            return Err(e);
        }
        log::info!(
            "built {} in {}",
            target.tag,
            crate::timefmt::human_duration(started.elapsed())
        );
        Ok(staging)
    }

    fn check_disk(&self) -> Result<(), BuildFailure> {
        let mut dirs = vec![self.cfg.data_dir.clone()];
        if self.cfg.build == BuildMode::Checkout {
            dirs.push(self.cfg.cache_dir.clone());
        }
        for dir in dirs {
            let free =
                crate::fsutil::free_space(&dir).map_err(|e| fail(FailureKind::Environment, e))?;
            if free < self.cfg.min_free_space {
                return Err(fail(
                    FailureKind::Environment,
                    anyhow!(
                        "only {} free at {} and a build needs min_free_space = {}\nhelp: free some space, or lower min_free_space",
                        bytesize::ByteSize::b(free),
                        dir.display(),
                        bytesize::ByteSize::b(self.cfg.min_free_space)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn build_git(&self, target: &Target, deadline: Instant) -> Result<(), BuildFailure> {
        let cmd = self.commands().git_install(&target.tag, &target.version);
        self.run_with_retries(&self.streamed(cmd), deadline)?;
        Ok(())
    }

    fn build_checkout(&self, target: &Target, deadline: Instant) -> Result<(), BuildFailure> {
        let co = self.checkout();
        let tag = &target.tag;
        if !co.exists() {
            crate::fsutil::create_private_dir(&self.cfg.cache_dir)
                .map_err(|e| fail(FailureKind::Environment, e))?;
            self.run_with_retries(&co.init(), deadline)?;
        }
        self.run_with_retries(
            &build_env(co.fetch_tag(&self.cfg.git_url, tag), self.cfg),
            deadline,
        )?;
        let fetched = self.run_with_retries(&co.tag_commit(tag), deadline)?;
        let fetched = fetched.stdout.trim();
        if fetched != target.commit {
            return Err(fail(
                FailureKind::Verification,
                anyhow!(
                    "the tag {tag} moved: it named {} when checked and {fetched} when fetched\nhelp: a moved tag is refused; ask the maintainers, or retry once the tag is stable",
                    target.commit
                ),
            ));
        }
        if self.cfg.verify_tag {
            let Some(signers) = self.cfg.allowed_signers.as_deref() else {
                return Err(fail(
                    FailureKind::Verification,
                    anyhow!("verify_tag = true needs allowed_signers"),
                ));
            };
            let out = self
                .runner
                .run(&co.verify_tag(tag, signers))
                .map_err(|e| fail(FailureKind::Verification, e.into()))?;
            if !out.success() {
                return Err(fail(
                    FailureKind::Verification,
                    anyhow!(
                        "the signature of {tag} is not from an allowed signer ({})\nhelp: check allowed_signers = {}",
                        out.tail_text().trim(),
                        signers.display()
                    ),
                ));
            }
            log::info!("the signature of {tag} is good");
        }
        self.run_with_retries(&co.checkout(tag), deadline)?;
        self.run_with_retries(&co.clean(), deadline)?;
        let meta = self.run_with_retries(&self.commands().metadata(&co), deadline)?;
        let members = member_dirs(&meta.stdout).map_err(|e| fail(FailureKind::Compile, e))?;
        for p in &self.cfg.packages {
            let dir = members.get(p).ok_or_else(|| {
                fail(
                    FailureKind::Verification,
                    anyhow!(
                        "the workspace at {tag} has no package `{p}` (it has: {})",
                        members.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            let cmd = self
                .commands()
                .path_install(&co, p, dir, tag, &target.version);
            self.run_with_retries(&self.streamed(cmd), deadline)?;
        }
        Ok(())
    }

    fn streamed(&self, mut cmd: Cmd) -> Cmd {
        cmd.stream = true;
        cmd.background = true;
        cmd.log_file.clone_from(&self.log_file);
        cmd
    }

    /// Runs a step; network failures are retried (pausing `retry_pause`, doubling).
    fn run_with_retries(
        &self,
        cmd: &Cmd,
        deadline: Instant,
    ) -> Result<crate::process::Output, BuildFailure> {
        let mut attempt = 1;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(fail(
                    FailureKind::Timeout,
                    anyhow!(
                        "{}: build_timeout ({}) reached",
                        cmd.summary,
                        crate::timefmt::human_duration(self.cfg.build_timeout)
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
                Err(e @ RunError::Spawn { .. }) => fail(FailureKind::Compile, e.into()),
            };
            if failure.kind == FailureKind::Network && attempt < ATTEMPTS {
                let pause = self.cfg.retry_pause.saturating_mul(2u32.pow(attempt - 1));
                log::warn!(
                    "{} failed for a network reason (attempt {attempt} of {ATTEMPTS}); retrying in {}",
                    cmd.summary,
                    crate::timefmt::human_duration(pause)
                );
                (self.sleep)(pause);
                attempt += 1;
                continue;
            }
            return Err(match failure.kind {
                FailureKind::Toolchain => fail(
                    FailureKind::Toolchain,
                    failure.error.context(format!(
                        "help: this release needs a newer Rust: set `toolchain = \"stable\"` (RUSTUP_TOOLCHAIN) and run `rustup update stable`; retrying will not help{}",
                        self.cfg.toolchain.as_deref().map(|t| format!(" (toolchain is {t} now)")).unwrap_or_default()
                    )),
                ),
                _ => failure,
            });
        }
    }

    /// Checks the staging root holds what was asked for.
    fn verify(&self, target: &Target, staging: &Path) -> Result<(), BuildFailure> {
        let verification = |e: anyhow::Error| fail(FailureKind::Verification, e);
        for p in &self.cfg.packages {
            if !staging.join("bin").join(p).exists() {
                return Err(verification(anyhow!(
                    "cargo did not install `{p}` into {}",
                    staging.display()
                )));
            }
        }
        if self.cfg.build == BuildMode::Git {
            let records = crate::install_records::read(staging).map_err(verification)?;
            for p in &self.cfg.packages {
                let commit = records
                    .iter()
                    .find(|r| &r.package == p)
                    .and_then(|r| r.commit.clone());
                if commit.as_deref() != Some(target.commit.as_str()) {
                    return Err(verification(anyhow!(
                        "cargo built `{p}` from commit {} but {} named {} when checked (was the tag moved?)\nhelp: a moved tag is refused; it is retried after the backoff",
                        commit.as_deref().unwrap_or("(unrecorded)"),
                        target.tag,
                        target.commit
                    )));
                }
            }
        }
        let binary = staging.join("bin").join(&self.cfg.binary);
        let reported = crate::installed::ask_version(self.runner, &binary)
            .map_err(|e| verification(anyhow!(e)))?;
        if !same_version(&reported, &target.version) {
            return Err(verification(anyhow!(
                "the new {} reports version {reported}, but {} is {}",
                self.cfg.binary,
                target.tag,
                target.version
            )));
        }
        Ok(())
    }
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
