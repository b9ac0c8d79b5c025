//! The common scenario of the update tests: plain v`installed` binaries in ~/.cargo/bin,
//! a daemon running under the stand-in service manager, a forge offering `tags`, a real git
//! repository with those tags, and the recording stand-in cargo (so `build = "git"`).

use std::path::Path;

use super::env::TestEnv;
use super::fixture::{Repo, tagged_repo};
use super::forge::{FakeForge, FakeRelease, Flavour};

pub struct Sandbox {
    pub env: TestEnv,
    pub forge: FakeForge,
    pub repo: Repo,
}

pub fn sandbox(installed: &str, tags: &[&str]) -> Sandbox {
    let forge = FakeForge::start(
        Flavour::Forgejo,
        tags.iter().rev().map(|t| FakeRelease::new(t)).collect(),
    );
    let mut env = TestEnv::new();
    let repo = tagged_repo(&env.dir.path().join("repo"), tags);
    env.forge(&forge)
        .var("HEPH_SELFUPDATE_GIT_URL", &repo.url())
        .var("HEPH_SELFUPDATE_HEALTH_SETTLE", "1s")
        .var("HEPH_SELFUPDATE_HEALTH_TIMEOUT", "15s")
        .var("HEPH_SELFUPDATE_RETRY_PAUSE", "0s")
        .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "1MiB")
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "systemd-user")
        // The stand-in cargo only knows `install --git`; the default checkout mode is
        // tested with the real cargo (e2e_cargo).
        .var("HEPH_SELFUPDATE_BUILD", "git");
    env.install_fakes();
    env.install_plain(installed, &["heph", "hephd"]);
    env.start_daemon();
    Sandbox { env, forge, repo }
}

impl Sandbox {
    /// Publishes one more release: a new commit tagged `tag` in the repository, offered
    /// first by the forge.
    pub fn release(&self, tag: &str) {
        let mut releases: Vec<FakeRelease> = self.forge.state.lock().unwrap().releases.clone();
        releases.insert(0, FakeRelease::new(tag));
        self.forge.set_releases(releases);
        super::fixture::git(
            &self.repo.dir,
            &["commit", "-q", "--allow-empty", "-m", tag],
        );
        super::fixture::git(&self.repo.dir, &["tag", tag]);
    }
}

pub fn link_of(env: &TestEnv, p: &str) -> String {
    std::fs::read_link(env.bin_dir.join(p))
        .map(|t| t.display().to_string())
        .unwrap_or_default()
}

pub fn version_of(path: &Path) -> String {
    let out = std::process::Command::new(path)
        .arg("--version")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn calls_of(env: &TestEnv, program: &str) -> Vec<String> {
    env.calls()
        .into_iter()
        .filter(|c| c.starts_with(program))
        .collect()
}

/// True when `~/.cargo/bin/hephd` is still the plain binary, not our link (nothing switched).
pub fn still_plain(env: &TestEnv) -> bool {
    std::fs::symlink_metadata(env.bin_dir.join("hephd")).is_ok_and(|m| m.file_type().is_file())
}

/// The daemon runs `version`, the state file is valid, and the lock is free.
#[track_caller]
pub fn assert_sound(env: &TestEnv, version: &str) {
    assert!(env.daemon_alive(), "the daemon is not running");
    assert_eq!(
        version_of(&env.bin_dir.join("hephd")),
        format!("hephd {version} (fake)")
    );
    if let Ok(text) = std::fs::read_to_string(env.state_dir().join("state.json")) {
        heph_selfupdate::state::decode(text.as_bytes())
            .expect("state from this version")
            .expect("state file valid");
    }
    let lock = heph_selfupdate::lock::RunLock::acquire(&env.state_dir());
    assert!(lock.is_ok(), "the lock is still held: {:?}", lock.err());
}
