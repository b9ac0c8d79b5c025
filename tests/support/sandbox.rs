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
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let user = format!("hst{}x{n}", std::process::id() % 100_000);
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
    /// inside (targets must exist); `overlays` are directories that are writable inside
    /// while the machine's own stay untouched (an overlay whose upper layer is in the
    /// private /run), e.g. `/etc/systemd/system` and `/usr/local` for a system-wide install.
    /// Starts the user's manager.
    pub fn boot(
        user: &str,
        uid: u32,
        home: &Path,
        binds: &[(PathBuf, PathBuf)],
        overlays: &[&str],
    ) -> Result<Self, String> {
        let mut script = String::from(
            "mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp && mount -t tmpfs tmpfs /run",
        );
        if Path::new("/var/log/journal").is_dir() {
            script.push_str(" && mount -t tmpfs tmpfs /var/log/journal");
        }
        for (n, dir) in overlays.iter().enumerate() {
            let _ = write!(
                script,
                " && mkdir -p /run/heph-overlay/{n}/upper /run/heph-overlay/{n}/work && mount -t overlay overlay -o 'lowerdir={dir},upperdir=/run/heph-overlay/{n}/upper,workdir=/run/heph-overlay/{n}/work' '{dir}'"
            );
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

    /// A property of a system unit (`systemctl show -p NAME --value`, as root).
    pub fn system_property(&self, unit: &str, name: &str) -> String {
        let out = self.root(&[
            "systemctl",
            "show",
            unit,
            &format!("--property={name}"),
            "--value",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
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

/// One booted systemd at a time (see [`Scenario`]).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The common real-systemd scenario: a throw-away user whose home holds a fixture
/// workspace repository with `releases`, a plain `cargo install` of the first one, the
/// project's Makefile and units, the binary, a config pointing at a loopback forge that
/// offers `offered`, and a stand-in `hephd.service` that is running. Drop order: the
/// sandbox stops before the user is removed.
pub struct Scenario {
    pub sb: Sandbox,
    pub forge: super::forge::FakeForge,
    pub repo: super::fixture::Repo,
    pub home: PathBuf,
    /// The copy of the project root installs from (system scope): root's own, as
    /// `sudo make install-system` wants it (never the service user's `~/src`).
    admin: Option<tempfile::TempDir>,
    _user: UserGuard,
    /// One booted systemd at a time (each is heavy, and its timings are part of the
    /// test); released after everything above is gone.
    _serial: std::sync::MutexGuard<'static, ()>,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// What both scenarios set up before systemd boots.
struct Prepared {
    serial: std::sync::MutexGuard<'static, ()>,
    user: String,
    uid: u32,
    home: PathBuf,
    guard: UserGuard,
    repo: super::fixture::Repo,
    forge: super::forge::FakeForge,
    binds: Vec<(PathBuf, PathBuf)>,
}

/// The project files a scenario copies into the user's home (`~/src`).
const PROJECT_FILES: &[&str] = &[
    "Makefile",
    "units/heph-selfupdate.service",
    "units/heph-selfupdate.timer",
    "units/heph-selfupdate@.service",
    "units/heph-selfupdate@.timer",
    "units/heph-selfupdate@.service.d/home.conf",
    "plists/heph-selfupdate.plist",
];

/// What a scenario's repository holds, and what is installed before the test.
#[derive(Debug, Clone, Copy)]
pub enum Project<'a> {
    /// The hephd fixture; its first release installed by a plain `cargo install`, as
    /// people do today.
    Hephd(&'a [(&'a str, super::fixture::Daemon)]),
    /// The taskq fixture (shaped like pueue: a client and a daemon in one package);
    /// nothing installed, `~/.cargo/bin` empty.
    Taskq(&'a [(&'a str, super::fixture::Taskqd)]),
}

/// The throw-away user, its repository, the loopback forge, the plain install of the first
/// release (for the hephd fixture), the project's files and binary, the configuration
/// (`config` added to it, `%h` in it standing for the user's home) and the service's
/// environment file — everything but the daemon's unit.
fn prepare(
    project: Project<'_>,
    offered: &[&str],
    health_settle: &str,
    config: &str,
) -> Result<Prepared, String> {
    use super::fixture;
    if let Some(why) = unavailable() {
        return Err(why);
    }
    let serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (user, uid, home) = create_user();
    let guard = UserGuard(user.clone());
    // Everything the user needs is in the user's home (never /tmp: the sandbox has its own).
    let repo = match project {
        Project::Hephd(releases) => fixture::workspace_repo(&home.join("hephaestus"), releases),
        Project::Taskq(releases) => fixture::taskq_repo(
            &home.join("taskq"),
            fixture::TaskqShape::OnePackage,
            releases,
        ),
    };
    let forge = super::forge::FakeForge::start(
        super::forge::Flavour::Forgejo,
        offered
            .iter()
            .map(|t| super::forge::FakeRelease::new(t))
            .collect(),
    );
    let cargo_home = home.join(".cargo");
    std::fs::create_dir_all(cargo_home.join("bin")).map_err(|e| e.to_string())?;
    if let Project::Hephd(releases) = project {
        let out = fixture::plain_install(&repo, releases[0].0, &cargo_home, &cargo_home)
            .output()
            .map_err(|e| e.to_string())?;
        check(&out, "installing the first release");
    }
    copy_project(&home)?;
    let toolchain = home.join("toolchain");
    std::fs::create_dir_all(&toolchain).map_err(|e| e.to_string())?;
    let h = home.display();
    write(
        &home.join(".config/heph-selfupdate/config.toml"),
        &format!(
            "forge = \"forgejo\"\nforge_url = \"{}\"\ngit_url = \"{}\"\nhealth_settle = \"{health_settle}\"\nhealth_timeout = \"30s\"\nmin_free_space = \"50MiB\"\nretry_pause = \"1s\"\n{}",
            forge.url(),
            repo.url(),
            config.replace("%h", &h.to_string())
        ),
    );
    // The service's own environment: the toolchain (bind-mounted inside) and ~/.cargo/bin.
    write(
        &home.join(".config/heph-selfupdate/env"),
        &format!(
            "PATH={h}/toolchain/bin:{h}/.cargo/bin:{h}/.local/bin:/usr/local/bin:/usr/bin:/bin\n"
        ),
    );
    let sysroot = fixture::cargo()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or("no sysroot")?;
    Ok(Prepared {
        serial,
        user,
        uid,
        home,
        guard,
        repo,
        forge,
        binds: vec![(sysroot, toolchain)],
    })
}

/// The project's files (`<dir>/src`) and its binary (`<dir>/heph-selfupdate.bin`).
fn copy_project(dir: &Path) -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for f in PROJECT_FILES {
        write(
            &dir.join("src").join(f),
            &std::fs::read_to_string(root.join(f)).expect("project file"),
        );
    }
    std::fs::copy(super::binary(), dir.join("heph-selfupdate.bin")).map_err(|e| e.to_string())?;
    Ok(())
}

fn chown_home(user: &str, home: &Path) -> Result<(), String> {
    check(
        &Command::new("chown")
            .args(["-R", &format!("{user}:{user}")])
            .arg(home)
            .output()
            .map_err(|e| e.to_string())?,
        "chown",
    );
    Ok(())
}

impl Scenario {
    /// The scenario of what was prepared, once its systemd runs.
    fn of(p: Prepared, sb: Sandbox) -> Self {
        Self {
            sb,
            forge: p.forge,
            repo: p.repo,
            home: p.home,
            admin: None,
            _user: p.guard,
            _serial: p.serial,
        }
    }

    /// Sets everything up and boots systemd; `Err` says why it cannot run here.
    pub fn new(
        releases: &[(&str, super::fixture::Daemon)],
        offered: &[&str],
        health_settle: &str,
    ) -> Result<Self, String> {
        let p = prepare(Project::Hephd(releases), offered, health_settle, "")?;
        write(
            &p.home.join(".config/systemd/user/hephd.service"),
            "[Unit]\nDescription=stand-in hephd\n\n[Service]\nExecStart=%h/.cargo/bin/hephd --mode local\nEnvironment=HEPHD_READY_FILE=%h/hephd.ready\nRestart=always\nRestartSec=1\n\n[Install]\nWantedBy=default.target\n",
        );
        chown_home(&p.user, &p.home)?;
        let sb = Sandbox::boot(&p.user, p.uid, &p.home, &p.binds, &[])?;
        check(
            &sb.user(&["systemctl", "--user", "daemon-reload"]),
            "daemon-reload",
        );
        check(
            &sb.user(&["systemctl", "--user", "start", "hephd.service"]),
            "start hephd",
        );
        Ok(Self::of(p, sb))
    }

    /// The system-scope scenario: a stand-in hephd **system** unit that runs as the
    /// throw-away user with `Restart=always` (`RestartSec=2`), and a configuration with
    /// `service_manager = "systemd-system"` and `restart = "respawn"`. `/etc/systemd/system`
    /// and `/usr/local` are writable inside (overlays), so `make install-system` runs with
    /// its real defaults without touching the machine.
    pub fn system(
        releases: &[(&str, super::fixture::Daemon)],
        offered: &[&str],
        health_settle: &str,
    ) -> Result<Self, String> {
        let p = prepare(
            Project::Hephd(releases),
            offered,
            health_settle,
            "service_manager = \"systemd-system\"\nrestart = \"respawn\"\n",
        )?;
        let h = p.home.display();
        write(
            &p.home.join("src/hephd.service"),
            &format!(
                "[Unit]\nDescription=stand-in hephd (system scope)\n\n[Service]\nUser={}\nExecStart={h}/.cargo/bin/hephd --mode local\nRestart=always\nRestartSec=2\n\n[Install]\nWantedBy=multi-user.target\n",
                p.user
            ),
        );
        chown_home(&p.user, &p.home)?;
        // Root's own copy (in root's home, outside the sandbox's private /tmp).
        let admin = tempfile::Builder::new()
            .prefix(".heph-selfupdate-src-")
            .tempdir_in("/root")
            .map_err(|e| format!("a copy of the project for root in /root: {e}"))?;
        copy_project(admin.path())?;
        let sb = Sandbox::boot(
            &p.user,
            p.uid,
            &p.home,
            &p.binds,
            &["/etc/systemd/system", "/usr/local"],
        )?;
        check(
            &sb.root(&[
                "install",
                "-m",
                "0644",
                &format!("{h}/src/hephd.service"),
                "/etc/systemd/system/hephd.service",
            ]),
            "install hephd.service",
        );
        check(&sb.root(&["systemctl", "daemon-reload"]), "daemon-reload");
        check(
            &sb.root(&["systemctl", "start", "hephd.service"]),
            "start hephd",
        );
        Ok(Self {
            admin: Some(admin),
            ..Self::of(p, sb)
        })
    }

    /// The scenario of a first install of the taskq fixture (shaped like pueue): nothing
    /// in `~/.cargo/bin`; a user unit `taskqd.service` that runs `~/.cargo/bin/taskqd`
    /// (`Restart=always`), loaded but not started (its binary is not there yet); a
    /// configuration with `packages = ["taskq"]`, `binary = "taskqd"`, that unit, and the
    /// daemon's own client, `taskq status`, as `health_command`.
    pub fn taskq(
        releases: &[(&str, super::fixture::Taskqd)],
        offered: &[&str],
        health_settle: &str,
    ) -> Result<Self, String> {
        let p = prepare(
            Project::Taskq(releases),
            offered,
            health_settle,
            "packages = [\"taskq\"]\nbinary = \"taskqd\"\nservice = \"taskqd.service\"\nhealth_command = [\"%h/.cargo/bin/taskq\", \"status\"]\n",
        )?;
        write(
            &p.home.join(".config/systemd/user/taskqd.service"),
            "[Unit]\nDescription=taskq daemon (the fixture shaped like pueue)\n\n[Service]\nExecStart=%h/.cargo/bin/taskqd\nRestart=always\nRestartSec=1\n\n[Install]\nWantedBy=default.target\n",
        );
        chown_home(&p.user, &p.home)?;
        let sb = Sandbox::boot(&p.user, p.uid, &p.home, &p.binds, &[])?;
        check(
            &sb.user(&["systemctl", "--user", "daemon-reload"]),
            "daemon-reload",
        );
        Ok(Self::of(p, sb))
    }

    /// `make TARGET USER=<the user>` as root, in root's copy of the project (system
    /// scope; else the user's), with the prebuilt binary (the system-scope targets).
    pub fn make_as_root(&self, target: &str) -> Output {
        let h = self
            .admin
            .as_ref()
            .map_or(self.home.as_path(), tempfile::TempDir::path)
            .display();
        self.sb.root(&[
            "make",
            "--no-print-directory",
            "-C",
            &format!("{h}/src"),
            target,
            &format!("USER={}", self.sb.user),
            &format!("BIN={h}/heph-selfupdate.bin"),
        ])
    }

    /// `make TARGET` as the user, in the copy of the project, with the prebuilt binary.
    pub fn make(&self, target: &str) -> Output {
        let h = self.home.display();
        self.sb.user(&[
            "make",
            "--no-print-directory",
            "-C",
            &format!("{h}/src"),
            target,
            &format!("BIN={h}/heph-selfupdate.bin"),
        ])
    }
}
