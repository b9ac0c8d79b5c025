//! A real systemd for tests: PID 1 of its own PID and mount namespace, with a throw-away
//! user and that user's manager (`user@UID.service`). Needs root.
//!
//! `/tmp`, `/var/tmp`, `/run` (and the persistent journal) are private tmpfs mounts inside:
//! at boot systemd empties `/tmp`, which must never be the machine's own.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A booted systemd with one user.
pub struct Sandbox {
    pub pid: u32,
    pub user: String,
    pub uid: u32,
    pub home: PathBuf,
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the sandbox cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/lib/systemd/systemd").exists() {
        return Some("no /lib/systemd/systemd".into());
    }
    for p in [
        "unshare", "nsenter", "runuser", "useradd", "userdel", "make",
    ] {
        if !have(p) {
            return Some(format!("no {p}"));
        }
    }
    None
}

#[track_caller]
pub fn check(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{text}",
        out.status.code()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates the throw-away user (home under /home, never /tmp).
pub fn create_user() -> (String, u32, PathBuf) {
    let user = format!("hst{}", std::process::id() % 100_000);
    let _ = Command::new("userdel").args(["-r", &user]).output();
    check(
        &Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", &user])
            .output()
            .unwrap(),
        "useradd",
    );
    let uid: u32 = check(
        &Command::new("id").args(["-u", &user]).output().unwrap(),
        "id",
    )
    .trim()
    .parse()
    .unwrap();
    (user.clone(), uid, PathBuf::from(format!("/home/{user}")))
}

impl Sandbox {
    /// Boots systemd; `binds` are (source, target) directories bind-mounted read-only
    /// inside (targets must exist). Starts the user's manager.
    pub fn boot(
        user: &str,
        uid: u32,
        home: &Path,
        binds: &[(PathBuf, PathBuf)],
    ) -> Result<Self, String> {
        let mut script = String::from(
            "mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp && mount -t tmpfs tmpfs /run",
        );
        if Path::new("/var/log/journal").is_dir() {
            script.push_str(" && mount -t tmpfs tmpfs /var/log/journal");
        }
        for (src, dst) in binds {
            let _ = write!(
                script,
                " && mount --bind '{}' '{}' && mount -o remount,bind,ro '{}'",
                src.display(),
                dst.display(),
                dst.display()
            );
        }
        script.push_str(" && exec env container=other /lib/systemd/systemd --system");
        let log =
            std::fs::File::create(home.with_extension("sandbox.log")).map_err(|e| e.to_string())?;
        let child = Command::new("unshare")
            .args([
                "--pid",
                "--mount",
                "--fork",
                "--mount-proc",
                "sh",
                "-c",
                &script,
            ])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start unshare: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            if let Some(pid) = find_systemd(child.id()) {
                break pid;
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(home.with_extension("sandbox.log")).unwrap_or_default();
                return Err(format!("systemd did not start in its namespace: {log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let sandbox = Self {
            pid,
            user: user.to_owned(),
            uid,
            home: home.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = sandbox.root(&["systemctl", "is-system-running"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if state == "running" || state == "degraded" {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("systemd did not finish booting (state {state:?})"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let out = sandbox.root(&["systemctl", "start", &format!("user@{uid}.service")]);
        if !out.status.success() {
            return Err(format!(
                "the user manager did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(sandbox)
    }

    /// Runs a command as root inside.
    pub fn root(&self, args: &[&str]) -> Output {
        let pid = self.pid.to_string();
        Command::new("nsenter")
            .args(["-t", &pid, "-p", "-m"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// Runs a command as the user inside, with the environment of the user's session.
    pub fn user(&self, args: &[&str]) -> Output {
        let pid = self.pid.to_string();
        let runtime = format!("/run/user/{}", self.uid);
        Command::new("nsenter")
            .args([
                "-t", &pid, "-p", "-m", "runuser", "-u", &self.user, "--", "env", "-i",
            ])
            .arg(format!("XDG_RUNTIME_DIR={runtime}"))
            .arg(format!("DBUS_SESSION_BUS_ADDRESS=unix:path={runtime}/bus"))
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.user))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin")
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runuser")
    }

    /// A property of a user unit (`systemctl --user show -p NAME --value`).
    pub fn property(&self, unit: &str, name: &str) -> String {
        let out = self.user(&[
            "systemctl",
            "--user",
            "show",
            unit,
            &format!("--property={name}"),
            "--value",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// The systemd started under `parent` (unshare's forked child, which exec'd systemd).
fn find_systemd(parent: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).starts_with("/lib/systemd/systemd"))
        })
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.root(&["systemctl", "poweroff", "--no-block"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if Path::new(&format!("/proc/{}", self.pid)).exists() {
            // PID 1 of a namespace: killing it ends every process inside.
            unsafe { libc::kill(self.pid.cast_signed(), libc::SIGKILL) };
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Removes the throw-away user and its home when dropped.
pub struct UserGuard(pub String);

impl Drop for UserGuard {
    fn drop(&mut self) {
        let _ = Command::new("userdel").args(["-r", "-f", &self.0]).output();
        let _ = std::fs::remove_file(format!("/home/{}.sandbox.log", self.0));
    }
}
