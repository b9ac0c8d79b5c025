//! A real OpenSSH server (`/usr/sbin/sshd -D -e`) on 127.0.0.1, as the current user, with
//! a fresh host key and its own `authorized_keys`: git over `ssh://` against the real ssh
//! stack on both ends, for the refusals only a real server produces (unknown host key,
//! a key it does not accept) and the connection failure of a server that has stopped.
//!
//! Two client keys are made: [`Sshd::key`] is authorized, [`Sshd::stranger`] is not.
//! The server's login runs `git-upload-pack` from the login shell's PATH, on the repository
//! path in the URL (the server is this machine, so the fixture's path works).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the OpenSSH server is (Debian's `openssh-server`).
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; stopped when dropped.
#[derive(Debug)]
pub struct Sshd {
    child: Option<Child>,
    pub port: u16,
    /// The user the server runs as, and the only one it lets in.
    pub user: String,
    /// Keys, config, `authorized_keys`, the pid file and the server's log.
    pub dir: PathBuf,
    /// A private key the server accepts.
    pub key: PathBuf,
    /// A private key the server does not know.
    pub stranger: PathBuf,
}

impl Sshd {
    /// Makes keys and a config in `dir` and starts the server on a free port; `None` when
    /// sshd or ssh-keygen is missing or the server does not start (why, on stderr).
    pub fn start(dir: &Path) -> Option<Self> {
        if !Path::new(SSHD).exists() {
            eprintln!("sshd: {SSHD} is not installed");
            return None;
        }
        std::fs::create_dir_all(dir).ok()?;
        let dir = dir.canonicalize().ok()?;
        for name in ["host_key", "key", "stranger"] {
            if !keygen(&dir.join(name)) {
                eprintln!("sshd: ssh-keygen could not make {name}");
                return None;
            }
        }
        std::fs::copy(dir.join("key.pub"), dir.join("authorized_keys")).ok()?;
        let user = current_user()?;
        if is_root() {
            // sshd running as root insists on its privilege separation directory, which
            // the distribution's service unit makes (RuntimeDirectory=sshd).
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        // Another process may take a port between our probe and sshd's bind: try again.
        for _ in 0..5 {
            let port = free_port()?;
            let config = dir.join("sshd_config");
            std::fs::write(&config, config_text(&dir, port)).ok()?;
            match launch(&dir, &config, port) {
                Launch::Up(child) => {
                    return Some(Self {
                        child: Some(child),
                        port,
                        user,
                        key: dir.join("key"),
                        stranger: dir.join("stranger"),
                        dir,
                    });
                }
                Launch::PortTaken => {}
                Launch::Failed(log) => {
                    eprintln!("sshd did not start:\n{log}");
                    return None;
                }
            }
        }
        eprintln!("sshd: no free port after 5 tries");
        None
    }

    /// `ssh://USER@127.0.0.1:PORT/<repo>`: git over this server, `repo` an absolute path.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    /// The `known_hosts` line for this server: `[127.0.0.1]:PORT ssh-ed25519 …`.
    pub fn known_hosts_line(&self) -> String {
        let public = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        format!("[127.0.0.1]:{} {}", self.port, public.trim())
    }

    /// Writes a `known_hosts` file at `path` that knows this server (or, with `known`
    /// false, an empty one).
    pub fn write_known_hosts(&self, path: &Path, known: bool) -> PathBuf {
        let text = if known {
            format!("{}\n", self.known_hosts_line())
        } else {
            String::new()
        };
        std::fs::write(path, text).unwrap();
        path.to_path_buf()
    }

    /// The `GIT_SSH_COMMAND` of a deploy key: `key`, and only it (no agent, no default
    /// keys), host keys from `known_hosts` only, and never a prompt. git runs it with the
    /// shell, so the paths are quoted. `-F none`: no ssh_config of the machine or of the
    /// user running the tests takes part.
    pub fn git_ssh_command(key: &Path, known_hosts: &Path) -> String {
        format!(
            "ssh -F none -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes",
            quote(key),
            quote(known_hosts)
        )
    }

    /// Stops the server: afterwards nothing listens on its port (connection refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the server logged (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Launch {
    Up(Child),
    PortTaken,
    Failed(String),
}

/// Starts sshd and waits until it says it listens, or has exited.
fn launch(dir: &Path, config: &Path, port: u16) -> Launch {
    let log_path = dir.join("sshd.log");
    let Ok(log) = std::fs::File::create(&log_path) else {
        return Launch::Failed("cannot create sshd.log".into());
    };
    let child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Launch::Failed(format!("cannot run {SSHD}: {e}")),
    };
    let listening = format!("Server listening on 127.0.0.1 port {port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains(&listening) {
            return Launch::Up(child);
        }
        if let Ok(Some(_)) = child.try_wait() {
            return if text.contains("Address already in use") {
                Launch::PortTaken
            } else {
                Launch::Failed(text)
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Launch::Failed(format!("not listening after 20 s:\n{text}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server config that depends on nothing of the machine's: its own host key, pid file
/// and `authorized_keys`, public keys only.
fn config_text(dir: &Path, port: u16) -> String {
    let d = dir.display();
    let mut text = format!(
        "Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
LogLevel VERBOSE
"
    );
    // OpenSSH 9.8+ refuses a source address for a while after failed logins; tests fail
    // logins on purpose. Older servers do not know the option (and do not need it).
    let penalties = format!("{text}PerSourcePenalties no\n");
    let probe = dir.join("sshd_config.probe");
    if std::fs::write(&probe, &penalties).is_ok()
        && Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(&probe)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    {
        text = penalties;
    }
    text
}

/// A fresh ed25519 key pair without passphrase at `path` (`path.pub`).
fn keygen(path: &Path) -> bool {
    Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "heph-selfupdate test",
        ])
        .arg("-f")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn current_user() -> Option<String> {
    let out = Command::new("id").arg("-un").output().ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !name.is_empty()).then_some(name)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> Option<u16> {
    Some(
        std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port(),
    )
}

/// `path` in single quotes for the shell git runs `GIT_SSH_COMMAND` with.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
