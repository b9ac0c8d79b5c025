//! Child processes: one small runner. Argv only (never a shell), a human summary for
//! every command, its command line logged, its status checked, and the tail of its
//! stderr kept for the error message.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::signals::Interrupt;

/// Lines of stderr kept for error messages.
const TAIL_LINES: usize = 30;
/// First error lines kept (the compiler's first diagnostics explain the rest).
const FIRST_ERRORS: usize = 5;
/// Captured stdout is cut here (a `--version` that prints megabytes is lying anyway).
const MAX_STDOUT: u64 = 1024 * 1024;
/// How long a stopped process group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long the output of a finished program may stay open (held by a process it left).
const READER_GRACE: Duration = Duration::from_secs(2);
/// How often a streamed command on a terminal says it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// What a SIGTERM/SIGINT to heph-selfupdate does to a running command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnSignal {
    /// Stopped (its whole group) at the first signal: builds, fetches, probes.
    #[default]
    Stop,
    /// Finishes within its own limit; stopped only by a second signal: the restarts and
    /// observations of a switch, which must not be cut in half.
    Finish,
}

impl OnSignal {
    /// The signal count at which the command is stopped.
    fn stop_at(self) -> usize {
        match self {
            Self::Stop => 1,
            Self::Finish => 2,
        }
    }
}

/// One program to run.
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Variables to set in the child's environment.
    pub env: Vec<(OsString, OsString)>,
    /// Variables to remove from the child's environment.
    pub env_remove: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    /// A file to read as standard input (else none: `/dev/null`).
    pub stdin: Option<PathBuf>,
    /// What this does, in words: "build hephd v0.2.0".
    pub summary: String,
    /// Kill the whole process group when exceeded.
    pub timeout: Option<Duration>,
    /// Lowest CPU and I/O priority, killed if we die (every command has its own group).
    pub background: bool,
    /// What a signal to heph-selfupdate does to it.
    pub on_signal: OnSignal,
    /// Log each output line as it arrives (and to `log_file`), for long builds.
    pub stream: bool,
    pub log_file: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>, summary: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            summary: summary.into(),
            ..Self::default()
        }
    }

    #[must_use]
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    #[must_use]
    pub fn args<I, S>(mut self, items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(items.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// Sets a variable for the child; setting one again replaces its value.
    #[must_use]
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        let (k, v) = (k.as_ref().to_owned(), v.as_ref().to_owned());
        self.env.retain(|(old, _)| *old != k);
        self.env_remove.retain(|old| *old != k);
        self.env.push((k, v));
        self
    }

    #[must_use]
    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Self {
        let k = k.as_ref().to_owned();
        self.env.retain(|(old, _)| *old != k);
        self.env_remove.push(k);
        self
    }

    #[must_use]
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Gives the child `file` as its standard input.
    #[must_use]
    pub fn stdin(mut self, file: impl Into<PathBuf>) -> Self {
        self.stdin = Some(file.into());
        self
    }

    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    #[must_use]
    pub fn on_signal(mut self, on_signal: OnSignal) -> Self {
        self.on_signal = on_signal;
        self
    }

    /// The argv as strings (lossy), for previews and JSON.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    /// The command line for people to read (quoted where needed), with `< FILE` when it
    /// reads a file as input. Not for a shell.
    pub fn display(&self) -> String {
        let mut line = self
            .argv()
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(f) = &self.stdin {
            line.push_str(" < ");
            line.push_str(&quote(&f.to_string_lossy()));
        }
        line
    }
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^{}".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What a finished program left.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    /// The last lines of stderr (and of stdout, for streamed commands).
    pub tail: Vec<String>,
    /// The first lines that start with `error` (a compiler's first diagnostics).
    pub errors: Vec<String>,
    /// The output was already shown line by line (a build): an error repeats none of it.
    pub streamed: bool,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The kept output lines as one string.
    pub fn tail_text(&self) -> String {
        self.tail.join("\n")
    }
}

/// Why a command did not give an exit status.
#[derive(Debug)]
pub enum RunError {
    /// The program could not be started.
    Spawn {
        summary: String,
        program: PathBuf,
        source: std::io::Error,
    },
    /// It ran longer than its time limit and was killed.
    TimedOut {
        summary: String,
        after: Duration,
        tail: Vec<String>,
    },
    /// We were told to stop (SIGTERM/SIGINT); it was killed.
    Interrupted { summary: String },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn {
                summary,
                program,
                source,
            } => {
                write!(
                    f,
                    "could not start {} to {summary}: {source}",
                    program.display()
                )?;
                if source.kind() == std::io::ErrorKind::NotFound {
                    f.write_str(
                        "\nhelp: install it, or put it where heph-selfupdate looks: git, ssh, systemctl, launchctl and kill in `tool_path`, cargo at `cargo` or on PATH, hooks on PATH (services get a minimal PATH)",
                    )?;
                }
                Ok(())
            }
            Self::TimedOut { summary, after, .. } => {
                write!(
                    f,
                    "{summary}: stopped after the time limit of {}",
                    crate::timefmt::human_duration(*after)
                )
            }
            Self::Interrupted { summary } => write!(f, "{summary}: interrupted by a signal"),
        }
    }
}

impl std::error::Error for RunError {}

/// A command that ran and failed.
#[derive(Debug)]
pub struct CmdFailed {
    pub summary: String,
    pub command: String,
    pub output: Output,
}

impl fmt::Display for CmdFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.output.code.map_or_else(
            || "killed by a signal".to_owned(),
            |c| format!("exit status {c}"),
        );
        let program = self
            .command
            .split_whitespace()
            .next()
            .map_or("the command", |p| p.rsplit('/').next().unwrap_or(p));
        if self.output.streamed {
            write!(
                f,
                "could not {}: {program} failed with {status}",
                self.summary
            )?;
            // Its output was shown as it came (and is in the build log): not again.
            if log::log_enabled!(log::Level::Info) {
                return f.write_str(" (its output is above)");
            }
            // Not shown (`-q`): the first errors say what went wrong.
            let errors: Vec<&str> = self
                .output
                .errors
                .iter()
                .take(3)
                .map(String::as_str)
                .collect();
            if !errors.is_empty() {
                write!(f, "\n  | {}", errors.join("\n  | "))?;
            }
            return Ok(());
        }
        write!(
            f,
            "could not {}: `{}` failed with {status}",
            self.summary, self.command
        )?;
        let tail = self.output.tail_text();
        if !tail.trim().is_empty() {
            let last: Vec<&str> = tail
                .lines()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            write!(f, "\n  | {}", last.join("\n  | "))?;
        }
        Ok(())
    }
}

impl std::error::Error for CmdFailed {}

/// Runs programs. Tests substitute a recording fake.
pub trait Runner {
    fn run(&self, cmd: &Cmd) -> Result<Output, RunError>;
}

/// Runs `cmd` and turns a non-zero exit into a [`CmdFailed`] error.
pub fn run_checked(runner: &dyn Runner, cmd: &Cmd) -> Result<Output> {
    let output = runner.run(cmd)?;
    if output.success() {
        Ok(output)
    } else {
        Err(CmdFailed {
            summary: cmd.summary.clone(),
            command: cmd.display(),
            output,
        }
        .into())
    }
}

/// Finds `name` on `path` (a PATH value), like a shell would, without one.
pub fn find_on_path(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The real runner.
#[derive(Debug, Default, Clone)]
pub struct SystemRunner {
    /// Our own executable: for a background command, `<reaper> __reap-group` watches us
    /// and kills the command's process group if we die (even by SIGKILL).
    pub reaper: Option<PathBuf>,
    /// Variables removed from every child's environment (the forge token), the
    /// process-group watcher's included.
    pub scrub: Vec<OsString>,
    /// Variables this process may change in its own environment, with their values when
    /// it started ([`crate::envvars::OWN`]): every child gets them as they were, unless
    /// its command sets them.
    pub as_started: Vec<(OsString, Option<OsString>)>,
    /// SIGTERM/SIGINT so far: a command is stopped according to its [`OnSignal`].
    pub interrupt: Interrupt,
}

impl SystemRunner {
    /// The environment every child starts from: ours, without the scrubbed variables,
    /// and with our own changes undone.
    fn base_env(&self, command: &mut Command) {
        // The forge token is for our HTTP requests only; no child (or build script) sees it.
        for k in &self.scrub {
            command.env_remove(k);
        }
        for (k, v) in &self.as_started {
            match v {
                Some(v) => command.env(k, v),
                None => command.env_remove(k),
            };
        }
    }

    /// Starts the watcher that kills process group `pgid` when this process dies.
    fn spawn_reaper(&self, reaper: &Path, pgid: u32) -> Option<std::process::Child> {
        let mut command = Command::new(reaper);
        self.base_env(&mut command);
        command
            .args([
                "__reap-group",
                &pgid.to_string(),
                &std::process::id().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| log::debug!("no process-group watcher: {e}"))
            .ok()
    }
}

/// The watcher's loop (`heph-selfupdate __reap-group PGID PARENT`): when PARENT is gone,
/// SIGKILL the group; when the group is gone, exit.
pub fn reap_group(pgid: i32, parent: u32) -> i32 {
    loop {
        // SAFETY: kill(2) and getppid(2) touch no memory.
        if unsafe { libc::kill(-pgid, 0) } != 0 {
            return 0;
        }
        if u32::try_from(unsafe { libc::getppid() }).ok() != Some(parent) {
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            return 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The environment changes a command makes, for `-vv`.
fn env_changes(cmd: &Cmd) -> String {
    let set = cmd
        .env
        .iter()
        .filter(|(k, _)| !k.to_string_lossy().starts_with(crate::envvars::PREFIX))
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()));
    let removed = cmd
        .env_remove
        .iter()
        .map(|k| format!("-{}", k.to_string_lossy()));
    set.chain(removed).collect::<Vec<_>>().join(" ")
}

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
        if cmd.stream {
            log::info!("running: {}", cmd.display());
        } else {
            log::debug!("running: {}", cmd.display());
        }
        let changes = env_changes(cmd);
        if !changes.is_empty() {
            log::trace!("  environment: {changes}");
        }
        let started = Instant::now();
        let mut command = Command::new(&cmd.program);
        let stdin = match &cmd.stdin {
            Some(f) => Stdio::from(std::fs::File::open(f).map_err(|source| RunError::Spawn {
                summary: cmd.summary.clone(),
                program: cmd.program.clone(),
                source: std::io::Error::new(
                    source.kind(),
                    format!("its input {}: {source}", f.display()),
                ),
            })?),
            None => Stdio::null(),
        };
        command
            .args(&cmd.args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.base_env(&mut command);
        for k in &cmd.env_remove {
            command.env_remove(k);
        }
        for (k, v) in &cmd.env {
            command.env(k, v);
        }
        if let Some(dir) = &cmd.cwd {
            command.current_dir(dir);
        }
        // Every child leads its own session, and so its own process group: a limit or a
        // signal stops the whole group (git's remote helpers, a wrapper's `sleep &`); a
        // person's Ctrl-C at the terminal reaches us, not a `systemctl restart` in the
        // middle of a switch; and no child has a terminal to ask on — ssh meeting an
        // unknown host key fails at once instead of stopping on a prompt nobody sees.
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    if libc::setsid() == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        if cmd.background {
            background(&mut command);
        }
        let mut child = command.spawn().map_err(|source| RunError::Spawn {
            summary: cmd.summary.clone(),
            program: cmd.program.clone(),
            source,
        })?;
        let mut reaper = match (&self.reaper, cmd.background) {
            (Some(r), true) => self.spawn_reaper(r, child.id()),
            _ => None,
        };
        let log_file = cmd.log_file.as_ref().and_then(|p| open_log(p));
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let captured: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
        let errors: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let mut readers = 0;
        if let Some(s) = child.stdout.take() {
            readers += 1;
            let tx = done_tx.clone();
            if cmd.stream {
                let (tail, log, errs) = (Arc::clone(&tail), log_file.clone(), Arc::clone(&errors));
                std::thread::spawn(move || {
                    read_lines(s, &tail, &errs, log.as_ref());
                    let _ = tx.send(());
                });
            } else {
                let buf = Arc::clone(&captured);
                std::thread::spawn(move || {
                    // Kept as it arrives: if a process the program left holds the pipe,
                    // what came before is still there when the reader is abandoned.
                    let mut s = s;
                    let mut chunk = [0u8; 8192];
                    loop {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if let Ok(mut b) = buf.lock() {
                                    let room = usize::try_from(MAX_STDOUT)
                                        .unwrap_or(usize::MAX)
                                        .saturating_sub(b.len());
                                    // Past the cap the rest is drained unread, so a chatty
                                    // program is not blocked on a full pipe.
                                    b.extend_from_slice(&chunk[..n.min(room)]);
                                }
                            }
                        }
                    }
                    let _ = tx.send(());
                });
            }
        }
        if let Some(s) = child.stderr.take() {
            readers += 1;
            let tx = done_tx.clone();
            let (tail, errs) = (Arc::clone(&tail), Arc::clone(&errors));
            let log = if cmd.stream { log_file } else { None };
            std::thread::spawn(move || {
                read_lines(s, &tail, &errs, log.as_ref());
                let _ = tx.send(());
            });
        }
        drop(done_tx);
        let waited = self.wait(&mut child, cmd, started);
        // Whatever is left of a background group (a killed cargo's rustc) must not outlive
        // it, nor hold the output pipes open.
        if cmd.background {
            kill_group(&child, libc::SIGKILL);
        }
        if let Some(r) = reaper.as_mut() {
            let _ = r.kill();
            let _ = r.wait();
        }
        // The child is gone; a grandchild may still hold its pipes. Its output gets a short
        // grace, then the readers are abandoned: they cannot hold the run (or the lock).
        let grace_end = Instant::now() + READER_GRACE;
        for _ in 0..readers {
            if done_rx
                .recv_timeout(grace_end.saturating_duration_since(Instant::now()))
                .is_err()
            {
                log::debug!(
                    "{}: output still open after the program ended (a process it left keeps it); not waiting for it",
                    cmd.summary
                );
                break;
            }
        }
        let tail: Vec<String> = tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        let stdout = captured
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let code = match waited {
            Waited::Exited(code) => code,
            Waited::TimedOut => {
                return Err(RunError::TimedOut {
                    summary: cmd.summary.clone(),
                    after: cmd.timeout.unwrap_or_default(),
                    tail,
                });
            }
            Waited::Interrupted => {
                return Err(RunError::Interrupted {
                    summary: cmd.summary.clone(),
                });
            }
        };
        let elapsed = started.elapsed();
        if cmd.stream {
            log::info!(
                "finished: {} ({}) in {}",
                cmd.summary,
                code.map_or("killed".into(), |c| format!("exit {c}")),
                crate::timefmt::human_duration(elapsed)
            );
        }
        Ok(Output {
            code,
            stdout: if cmd.stream { String::new() } else { stdout },
            tail,
            errors: errors.lock().map(|e| e.clone()).unwrap_or_default(),
            streamed: cmd.stream,
            elapsed,
        })
    }
}

enum Waited {
    Exited(Option<i32>),
    TimedOut,
    Interrupted,
}

impl SystemRunner {
    fn wait(&self, child: &mut std::process::Child, cmd: &Cmd, started: Instant) -> Waited {
        use std::io::IsTerminal;
        let mut pause = Duration::from_millis(1);
        // A long build on a terminal says it is alive now and then.
        let progress = cmd.stream && std::io::stderr().is_terminal();
        let mut next_progress = started + PROGRESS_EVERY;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Waited::Exited(status.code()),
                Ok(None) => {}
                Err(e) => {
                    log::warn!("lost track of {}: {e}", cmd.summary);
                    return Waited::Exited(None);
                }
            }
            let timed_out = cmd.timeout.is_some_and(|t| started.elapsed() >= t);
            let count = self.interrupt.count();
            // A command that finishes despite a signal still ends by the end of the grace,
            // counted from the first signal, also one noticed before this command.
            let grace_over = self
                .interrupt
                .noticed(Instant::now())
                .is_some_and(|at| at.elapsed() >= crate::signals::GRACE);
            let interrupted = count >= cmd.on_signal.stop_at() || grace_over;
            if timed_out || interrupted {
                stop(child);
                return if timed_out {
                    Waited::TimedOut
                } else {
                    Waited::Interrupted
                };
            }
            if progress && Instant::now() >= next_progress {
                log::info!(
                    "{}: {}",
                    cmd.summary,
                    crate::timefmt::human_duration(started.elapsed())
                );
                next_progress += PROGRESS_EVERY;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

fn kill_group(child: &std::process::Child, sig: i32) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) of a process group we created; no memory involved.
        unsafe { libc::kill(-pgid, sig) };
    }
}

/// SIGTERM to the child's whole process group, SIGKILL after a grace period.
fn stop(child: &mut std::process::Child) {
    kill_group(child, libc::SIGTERM);
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Leftover members of the group (rustc under cargo, git-remote-http under git) too.
    kill_group(child, libc::SIGKILL);
    let _ = child.wait();
}

/// Lowest CPU and I/O priority, and on Linux killed when we die, so a SIGKILLed run does
/// not leave cargo behind.
fn background(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    #[cfg(target_os = "linux")]
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid, setpriority, syscall, _exit)
    // run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            #[cfg(target_os = "linux")]
            {
                const IOPRIO_WHO_PROCESS: libc::c_long = 1;
                const IOPRIO_CLASS_IDLE: libc::c_long = 3;
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The parent may have died before prctl took effect.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    libc::_exit(1);
                }
                libc::syscall(
                    libc::SYS_ioprio_set,
                    IOPRIO_WHO_PROCESS,
                    0,
                    IOPRIO_CLASS_IDLE << 13,
                );
            }
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            Ok(())
        });
    }
}

type SharedLog = Arc<Mutex<std::fs::File>>;

fn open_log(path: &Path) -> Option<SharedLog> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        // Appended to, not replaced: at least never through a link planted at its name.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map(|f| Arc::new(Mutex::new(f)))
        .map_err(|e| log::warn!("could not open the build log {}: {e}", path.display()))
        .ok()
}

/// Lines cargo prints about the staging root that mean nothing to a person here.
fn noise(line: &str) -> bool {
    line.starts_with("warning: be sure to add") && line.contains("to your PATH")
}

/// Reads lines into the shared tail and the first error lines (and the log file, and the
/// log when streaming).
fn read_lines<R: Read>(
    source: R,
    tail: &Mutex<VecDeque<String>>,
    errors: &Mutex<Vec<String>>,
    log_file: Option<&SharedLog>,
) {
    let stream = log_file.is_some();
    let mut reader = BufReader::new(source);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
        if let Some(f) = log_file
            && let Ok(mut f) = f.lock()
        {
            let _ = writeln!(f, "{line}");
        }
        if stream && !line.is_empty() && !noise(&line) {
            log::info!("  | {line}");
        }
        if line.starts_with("error")
            && let Ok(mut e) = errors.lock()
            && e.len() < FIRST_ERRORS
        {
            e.push(line.clone());
        }
        if let Ok(mut t) = tail.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

#[cfg(test)]
pub mod fake {
    //! A recording [`Runner`] for unit tests.
    use std::cell::RefCell;

    use super::*;

    /// Records every command; answers from a function of the command.
    pub struct Recorder<F: Fn(&Cmd) -> Output> {
        pub seen: RefCell<Vec<Cmd>>,
        pub answer: F,
    }

    impl<F: Fn(&Cmd) -> Output> std::fmt::Debug for Recorder<F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Recorder")
                .field("seen", &self.seen)
                .finish_non_exhaustive()
        }
    }

    impl<F: Fn(&Cmd) -> Output> Recorder<F> {
        pub fn new(answer: F) -> Self {
            Self {
                seen: RefCell::new(Vec::new()),
                answer,
            }
        }

        pub fn lines(&self) -> Vec<String> {
            self.seen.borrow().iter().map(Cmd::display).collect()
        }
    }

    impl<F: Fn(&Cmd) -> Output> Runner for Recorder<F> {
        fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
            self.seen.borrow_mut().push(cmd.clone());
            Ok((self.answer)(cmd))
        }
    }

    pub fn ok(stdout: &str) -> Output {
        Output {
            code: Some(0),
            stdout: stdout.to_owned(),
            ..Output::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_reads_the_file_it_is_given_as_input() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("payload");
        std::fs::write(&input, "signed text\n").unwrap();
        let cmd = Cmd::new("cat", "read").stdin(&input);
        assert_eq!(cmd.display(), format!("cat < {}", input.display()));
        let out = SystemRunner::default().run(&cmd).unwrap();
        assert_eq!(out.stdout, "signed text\n");
        let missing = Cmd::new("cat", "read").stdin(dir.path().join("gone"));
        assert!(matches!(
            SystemRunner::default().run(&missing),
            Err(RunError::Spawn { .. })
        ));
    }

    #[test]
    fn runs_argv_without_a_shell() {
        let out = SystemRunner::default()
            .run(&Cmd::new("/bin/echo", "echo").args(["$HOME", "a;b", "`id`"]))
            .unwrap();
        assert_eq!(out.stdout, "$HOME a;b `id`\n");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error_with_help() {
        let err = SystemRunner::default()
            .run(&Cmd::new("/nonexistent/cargo", "build"))
            .unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }));
        assert!(err.to_string().contains("help: install it"));
    }

    #[test]
    fn a_failure_keeps_the_stderr_tail() {
        let cmd = Cmd::new("/bin/sh", "fail on purpose")
            .args(["-c", "echo one >&2; echo two >&2; exit 3"]);
        let err = run_checked(&SystemRunner::default(), &cmd)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exit status 3") && err.contains("| one") && err.contains("| two"),
            "{err}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_runs_in_its_own_session_without_a_terminal() {
        // Field 6 of /proc/PID/stat is the session id; field 7 the controlling tty (0: none).
        let cmd = Cmd::new("/bin/sh", "print the session")
            .args(["-c", "echo $$; cut -d' ' -f6,7 /proc/$$/stat"]);
        let out = run_checked(&SystemRunner::default(), &cmd).unwrap();
        let mut lines = out.stdout.lines();
        let pid = lines.next().unwrap().trim().to_owned();
        let fields: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(fields, [pid.as_str(), "0"], "{}", out.stdout);
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let mut cmd = Cmd::new("/bin/sh", "sleep")
            .args(["-c", &script])
            .timeout(Duration::from_millis(300));
        cmd.background = true;
        let err = SystemRunner::default().run(&cmd).unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // The grandchild was in the group and is gone (or a zombie waiting to be reaped).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .chars()
            .next();
        assert!(
            matches!(state, None | Some('Z' | 'X')),
            "grandchild {pid} survived: {stat}"
        );
    }

    #[test]
    fn a_child_gets_our_own_variables_as_they_were_at_start_unless_its_command_sets_them() {
        let runner = SystemRunner {
            as_started: vec![
                ("HOME".into(), Some("/as/started".into())),
                ("PATH".into(), None),
            ],
            ..SystemRunner::default()
        };
        let env_of = |cmd: Cmd| -> Vec<String> {
            let out = run_checked(&runner, &cmd).unwrap().stdout;
            out.lines()
                .filter(|l| l.starts_with("HOME=") || l.starts_with("PATH="))
                .map(String::from)
                .collect()
        };
        assert_eq!(
            env_of(Cmd::new("/usr/bin/env", "print")),
            ["HOME=/as/started"]
        );
        let mut given = env_of(Cmd::new("/usr/bin/env", "print").env("PATH", "/given"));
        given.sort();
        assert_eq!(given, ["HOME=/as/started", "PATH=/given"]);
    }

    #[test]
    fn display_quotes_for_reading() {
        let cmd = Cmd::new("cargo", "x").args(["install", "--tag=v1.0.0", "a b", "it's"]);
        assert_eq!(cmd.display(), r"cargo install --tag=v1.0.0 'a b' 'it'\''s'");
    }

    #[test]
    fn finds_programs_on_a_given_path() {
        let found = find_on_path("sh", Some(OsStr::new("/nonexistent:/bin")));
        assert_eq!(found, Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_on_path("sh", Some(OsStr::new("/nonexistent"))), None);
    }
}
