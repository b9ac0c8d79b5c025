//! A sandboxed home for one test: its own HOME, XDG dirs, `~/.cargo/bin`, fake programs
//! first on PATH and in `tool_path`, and the environment of the one child it runs —
//! nothing global.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::forge::FakeForge;

/// What a run of the binary left.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout and stderr together, for "never printed" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// One sandbox.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub bin_dir: PathBuf,
    pub fakes: PathBuf,
    pub vars: Vec<(String, String)>,
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("heph-test-")
            .tempdir()
            .expect("tempdir");
        let home = dir.path().join("home");
        let bin_dir = home.join(".cargo/bin");
        let fakes = dir.path().join("fakebin");
        for d in [&home, &bin_dir, &fakes] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let mut env = Self {
            dir,
            home: home.clone(),
            bin_dir,
            fakes,
            vars: Vec::new(),
        };
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", env.fakes.display());
        env.var("PATH", &path);
        // The system's programs (git, systemctl, launchctl, kill) come from `tool_path`,
        // never PATH: the stand-ins are put first there too.
        env.var(
            "HEPH_SELFUPDATE_TOOL_PATH",
            &format!("{},/usr/local/bin,/usr/bin,/bin", env.fakes.display()),
        );
        env.var("HOME", &home.display().to_string());
        env.var(
            "XDG_CONFIG_HOME",
            &home.join(".config").display().to_string(),
        );
        env.var(
            "XDG_DATA_HOME",
            &home.join(".local/share").display().to_string(),
        );
        env.var(
            "XDG_STATE_HOME",
            &home.join(".local/state").display().to_string(),
        );
        env.var("XDG_CACHE_HOME", &home.join(".cache").display().to_string());
        // Fake programs write what they were asked here.
        env.var(
            "FAKE_LOG",
            &env.dir.path().join("calls.log").display().to_string(),
        );
        env.var(
            "FAKE_STATE",
            &env.dir.path().join("fake-state").display().to_string(),
        );
        std::fs::create_dir_all(env.dir.path().join("fake-state")).expect("mkdir");
        env
    }

    /// Sets a variable for the runs (replacing an earlier value).
    pub fn var(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.retain(|(key, _)| key != k);
        self.vars.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.vars.retain(|(key, _)| key != k);
        self
    }

    /// Uses the real toolchain: its bin dir on PATH after the stand-ins (call it after
    /// `install_fakes`: it removes the stand-in `cargo`), and `cargo_home` as CARGO_HOME.
    pub fn use_real_toolchain(&mut self, cargo_home: &Path) -> &mut Self {
        let cargo = super::fixture::cargo();
        let bin = cargo.parent().map(Path::to_path_buf).unwrap_or_default();
        let path = format!(
            "{}:{}:/usr/local/bin:/usr/bin:/bin",
            self.fakes.display(),
            bin.display()
        );
        self.var("PATH", &path);
        self.var("CARGO_HOME", &cargo_home.display().to_string());
        for stand_in in ["cargo", "rustc"] {
            let _ = std::fs::remove_file(self.fakes.join(stand_in));
        }
        self
    }

    /// Runs `cmd` with this sandbox's environment (for programs other than ours).
    #[track_caller]
    pub fn run_other(&self, cmd: &mut Command) -> std::process::Output {
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Points the configuration at a stand-in forge.
    pub fn forge(&mut self, forge: &FakeForge) -> &mut Self {
        let flavour = forge.state.lock().unwrap().flavour;
        self.var("HEPH_SELFUPDATE_FORGE", flavour.config_name());
        self.var("HEPH_SELFUPDATE_FORGE_URL", &forge.url());
        self
    }

    /// Writes the config file at its default place.
    pub fn config_file(&self, text: &str) -> PathBuf {
        let dir = self.home.join(".config/heph-selfupdate");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("config.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// An executable script in the fake programs directory (first on PATH and in `tool_path`).
    pub fn fake_bin(&self, name: &str, script: &str) -> PathBuf {
        write_script(&self.fakes.join(name), script)
    }

    /// The recording `cargo`, `systemctl` and `launchctl` first on PATH and in `tool_path`.
    pub fn install_fakes(&self) {
        self.fake_bin("cargo", &super::fakes::cargo_script());
        // cargo comes with its rustc; the one doctor asks for its version.
        self.fake_bin(
            "rustc",
            "#!/bin/sh\necho 'rustc 1.95.0 (stand-in 2026-03-21)'\n",
        );
        let manager = super::fakes::service_manager_script();
        self.fake_bin("systemctl", &manager);
        self.fake_bin("launchctl", &manager);
    }

    /// Every program heph-selfupdate runs records its call: a recording `git` in front of
    /// the real one, and the stand-in daemons' `--version`.
    pub fn record_everything(&mut self) {
        self.var("FAKE_REAL_GIT", real_git());
        self.var("FAKE_RECORD_ALL", "1");
        self.fake_bin("git", &super::fakes::git_script());
    }

    /// Sets a stand-in program's mode (a file in `$FAKE_STATE`).
    pub fn fake_mode(&self, name: &str, value: &str) {
        std::fs::write(self.dir.path().join("fake-state").join(name), value).expect("write mode");
    }

    pub fn clear_fake_mode(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.path().join("fake-state").join(name));
    }

    /// The PID of the daemon the stand-in service manager runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("fake-state/pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// True when that daemon is alive (not a zombie).
    pub fn daemon_alive(&self) -> bool {
        self.daemon_pid().is_some_and(pid_alive)
    }

    /// Starts the daemon as the service manager would, before a test.
    pub fn start_daemon(&self) {
        let mut cmd = Command::new(self.fakes.join("systemctl"));
        cmd.args(["--user", "start", "hephd.service"]).env_clear();
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        assert!(retry_busy(|| cmd.status()).expect("start daemon").success());
        self.clear_calls();
    }

    /// Plain binaries in `~/.cargo/bin` that report `version`, as `cargo install` leaves them.
    pub fn install_plain(&self, version: &str, packages: &[&str]) {
        for p in packages {
            write_script(
                &self.bin_dir.join(p),
                &super::fakes::version_script(p, version),
            );
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.home.join(".local/state/heph-selfupdate")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home.join(".local/share/heph-selfupdate")
    }

    /// The state file, parsed (Null if absent).
    pub fn state(&self) -> serde_json::Value {
        match std::fs::read_to_string(self.state_dir().join("state.json")) {
            Ok(t) => serde_json::from_str(&t).expect("state is JSON"),
            Err(_) => serde_json::Value::Null,
        }
    }

    /// True when the state marks `version` bad.
    pub fn is_bad(&self, version: &str) -> bool {
        self.state()["bad"].get(version).is_some()
    }

    /// The backoff the state holds for `version` (Null if none).
    pub fn backoff_of(&self, version: &str) -> serde_json::Value {
        self.state()["backoff"]
            .get(version)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// True when the state holds no backoff at all.
    pub fn no_backoff(&self) -> bool {
        self.state()["backoff"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty)
    }

    /// The version root `current` names.
    pub fn current_root(&self) -> Option<String> {
        std::fs::read_link(self.data_dir().join("current"))
            .ok()?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    }

    /// The calls the fake programs recorded, one per line.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("calls.log"));
    }

    /// A command for the binary with exactly this sandbox's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(super::binary());
        cmd.args(args).env_clear().current_dir(self.dir.path());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        let out = retry_busy(|| cmd.output()).expect("run heph-selfupdate");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `f` again while it fails with "Text file busy": a script written a moment ago can
/// be briefly held open by a child another test thread forked (its fd is closed at exec).
pub fn retry_busy<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// True when the process exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .trim_start()
        .chars()
        .next();
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

/// Writes an executable file.
pub fn write_script(path: &Path, text: &str) -> PathBuf {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    // Write to a new file then rename: replacing a running script in place is unsafe.
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).expect("write script");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&tmp, path).expect("rename script");
    path.to_path_buf()
}

impl Drop for TestEnv {
    /// Stops a daemon the stand-in service manager started (its supervisor first, which
    /// would start it again).
    fn drop(&mut self) {
        for file in ["fake-state/supervisor.pid", "fake-state/pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join(file)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

/// The real git (stand-ins in front of it hand over to it).
pub fn real_git() -> &'static str {
    ["/usr/local/bin/git", "/usr/bin/git", "/bin/git"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("git")
}
