//! A deterministic simulation of the update lifecycle, in-process, over the `World` seam:
//! the clock, the forge (HTTP), the child processes and the service manager are simulated;
//! the file system is real (a temp dir). Random sequences of operations — new releases
//! (good, dying at start, never coming up, dying after a while), failing builds, flaky
//! networks, `--to`, `rollback`, `status`, concurrent runs, a crash injected at a random
//! effect (the run is abandoned mid-way, as by SIGKILL or power loss), SIGTERM and a second
//! SIGTERM at random effects, slow restarts — with invariants checked after every run:
//!
//! (a) the links, `current`, what `status` reports and the simulated daemon agree, or an
//!     open intent names the difference — and the next run resolves it;
//! (b) the newest healthy version root is never deleted;
//! (c) a version marked bad is never installed again without `--force`/`--to`;
//! (d) a version in backoff is not rebuilt before its time;
//! (e) every run ends with an exit code and a recorded outcome that match what happened:
//!     no `ROLLBACK FAILED` unless a rollback's restart really ran and failed;
//! (f) a release whose daemon is good is never marked bad, except by a rollback by hand.
//!
//! `SIM_SEQUENCES` sets how many sequences run (default 300; `make fuzz` runs 100 000),
//! `SIM_SEED=<n>` replays one sequence and prints its steps. A failure prints its seed.
#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::collapsible_match
)]

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use heph_selfupdate::clock::Clock;
use heph_selfupdate::http::{HttpClient, HttpRequest, HttpResponse, TransportError};
use heph_selfupdate::layout::Layout;
use heph_selfupdate::output::Captured;
use heph_selfupdate::process::{Cmd, OnSignal, Output, RunError, Runner};
use heph_selfupdate::service::{ServiceManager, ServiceSpec, Services, Systemd};
use heph_selfupdate::signals::Interrupt;
use heph_selfupdate::state::State;
use heph_selfupdate::world::World;
use time::OffsetDateTime;

// ---------------------------------------------------------------- randomness

/// splitmix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---------------------------------------------------------------- the simulated world

/// How a release's daemon behaves once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Good,
    DiesAtStart,
    NeverUp,
    /// Exits this many seconds after it starts.
    DiesAfter(u64),
}

/// How a release's build goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    Ok,
    CompileError,
    DiskFull,
}

#[derive(Debug, Clone)]
struct Release {
    tag: String,
    version: String,
    commit: String,
    published: OffsetDateTime,
    draft: bool,
    daemon: Behaviour,
    build: Build,
}

/// The daemon's current process, as the service manager knows it.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    version: Option<String>,
    started: OffsetDateTime,
    behaviour: Behaviour,
    invocation: u64,
}

/// What a process does at `now`: running, starting, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcState {
    Running,
    Starting,
    Failed,
}

impl Proc {
    fn state(&self, now: OffsetDateTime) -> ProcState {
        let age = (now - self.started).as_seconds_f64();
        let running = match (self.version.as_ref(), self.behaviour) {
            (None, _) => false,
            (Some(_), Behaviour::NeverUp) => return ProcState::Starting,
            (Some(_), Behaviour::Good) => true,
            (Some(_), Behaviour::DiesAtStart) => age < 0.2,
            (Some(_), Behaviour::DiesAfter(s)) => age < Duration::from_secs(s).as_secs_f64(),
        };
        if running {
            ProcState::Running
        } else {
            ProcState::Failed
        }
    }
}

/// A fault to inject at the n-th effect of a run.
#[derive(Debug, Clone)]
enum Fault {
    /// The run dies there (SIGKILL, OOM, power loss): nothing after runs.
    Crash,
    /// SIGTERM (or Ctrl-C) arrives.
    Sigterm,
    /// Two of them (a person pressing Ctrl-C twice).
    TwoSigterms,
    /// Another run happens in between, completely.
    Concurrent(Op),
}

/// Everything the simulation knows; shared by the fakes of every run.
struct Sim {
    dir: PathBuf,
    now: OffsetDateTime,
    base_instant: Instant,
    elapsed: Duration,
    releases: Vec<Release>,
    proc: Option<Proc>,
    next_pid: u32,
    invocations: u64,
    restart_delay: Duration,
    network_down: bool,
    /// Effects of the current top-level run, and its fault.
    effects: usize,
    fault: Option<(usize, Fault)>,
    /// What happened during the current run.
    builds: Vec<(String, OffsetDateTime)>,
    starts: Vec<String>,
    notified: Vec<String>,
    /// History entries before this index were recorded by another (concurrent) run.
    history_seen: usize,
}

impl Sim {
    fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.elapsed += d;
    }

    fn release(&self, version: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.version == version)
    }

    /// The version the file at `path` (after links) is a build of.
    fn version_of_file(path: &Path) -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        text.split_whitespace().nth(2).map(String::from)
    }

    /// What the service manager would start now: `<bin_dir>/hephd` as it resolves.
    fn installed_version(&self) -> Option<String> {
        Self::version_of_file(&self.bin_dir().join("hephd"))
    }

    fn start_daemon(&mut self) {
        let version = self.installed_version();
        let behaviour = version
            .as_deref()
            .and_then(|v| self.release(v))
            .map_or(Behaviour::Good, |r| r.daemon);
        self.next_pid += 1;
        self.invocations += 1;
        if let Some(v) = &version {
            self.starts.push(v.clone());
        }
        self.proc = Some(Proc {
            pid: self.next_pid,
            version,
            started: self.now,
            behaviour,
            invocation: self.invocations,
        });
    }
}

type Shared = Rc<RefCell<Sim>>;

/// Counts an effect and triggers the run's fault when its turn comes.
fn effect(sim: &Shared, interrupt: &Interrupt, env: &SimEnv) {
    let fault = {
        let mut s = sim.borrow_mut();
        s.effects += 1;
        let n = s.effects;
        match &s.fault {
            Some((at, _)) if *at == n => s.fault.take().map(|(_, f)| f),
            _ => None,
        }
    };
    match fault {
        Some(Fault::Crash) => std::panic::panic_any(SimCrash),
        Some(Fault::Sigterm) => interrupt.raise(),
        Some(Fault::TwoSigterms) => {
            interrupt.raise();
            interrupt.raise();
        }
        Some(Fault::Concurrent(op)) => {
            let outcome = run_op(sim, env, &op, None, true);
            env.log(format!("    (concurrent {op:?} -> {})", outcome.code));
            // What the other run recorded is not this run's to answer for.
            let dir = sim.borrow().dir.clone();
            sim.borrow_mut().history_seen = read_state(&dir.join("state")).history.len();
        }
        None => {}
    }
}

/// The panic payload of an injected crash.
struct SimCrash;

struct SimClock(Shared);

impl Clock for SimClock {
    fn now(&self) -> OffsetDateTime {
        self.0.borrow().now
    }

    fn instant(&self) -> Instant {
        let s = self.0.borrow();
        s.base_instant + s.elapsed
    }

    fn sleep(&self, d: Duration) {
        self.0.borrow_mut().advance(d);
    }
}

struct SimHttp {
    sim: Shared,
    interrupt: Interrupt,
    env: SimEnv,
}

impl HttpClient for SimHttp {
    fn get(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        effect(&self.sim, &self.interrupt, &self.env);
        let s = self.sim.borrow();
        if s.network_down {
            return Err(TransportError::Unreachable("connection refused".into()));
        }
        if !req.url.contains("/releases") {
            return Ok(HttpResponse {
                status: 404,
                ..HttpResponse::default()
            });
        }
        let list: Vec<serde_json::Value> = s
            .releases
            .iter()
            .rev()
            .map(|r| {
                serde_json::json!({
                    "tag_name": r.tag,
                    "draft": r.draft,
                    "prerelease": false,
                    "published_at": heph_selfupdate::timefmt::rfc3339(r.published),
                })
            })
            .collect();
        Ok(HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&list).unwrap(),
        })
    }
}

fn ok(stdout: impl Into<String>) -> Output {
    Output {
        code: Some(0),
        stdout: stdout.into(),
        ..Output::default()
    }
}

fn failed(code: i32, tail: &[&str]) -> Output {
    Output {
        code: Some(code),
        tail: tail.iter().map(|s| (*s).to_owned()).collect(),
        ..Output::default()
    }
}

/// The child processes: git, cargo, the daemon's `--version`, systemctl, the hooks.
struct SimRunner {
    sim: Shared,
    interrupt: Interrupt,
    env: SimEnv,
}

impl SimRunner {
    fn arg(cmd: &Cmd, flag: &str) -> Option<String> {
        cmd.args
            .iter()
            .find_map(|a| a.to_string_lossy().strip_prefix(flag).map(String::from))
    }

    #[allow(clippy::unnecessary_wraps)] // the shape of Runner::run
    fn cargo(&self, cmd: &Cmd) -> Result<Output, RunError> {
        let (root, rev) = (
            Self::arg(cmd, "--root=").unwrap(),
            Self::arg(cmd, "--rev=").unwrap(),
        );
        let mut s = self.sim.borrow_mut();
        let release = s
            .releases
            .iter()
            .find(|r| r.commit == rev)
            .cloned()
            .unwrap();
        let now = s.now;
        s.builds.push((release.version.clone(), now));
        s.advance(Duration::from_secs(120));
        let root = PathBuf::from(root);
        match release.build {
            Build::CompileError => {
                return Ok(failed(
                    101,
                    &[
                        "error[E0425]: cannot find value `x` in this scope",
                        "error: could not compile `hephd`",
                    ],
                ));
            }
            Build::DiskFull => {
                return Ok(failed(
                    101,
                    &["error: failed to write /x: No space left on device (os error 28)"],
                ));
            }
            Build::Ok => {}
        }
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let packages: Vec<String> = cmd
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .filter(|a| !a.starts_with("--") && a != "install")
            .collect();
        let mut installs = serde_json::Map::new();
        for p in &packages {
            std::fs::write(
                root.join("bin").join(p),
                format!("sim {p} {}\n", release.version),
            )
            .unwrap();
            installs.insert(
                format!(
                    "{p} {} (git+file:///sim/repo?rev={rev}#{})",
                    release.version, release.commit
                ),
                serde_json::json!({"bins": [p]}),
            );
        }
        std::fs::write(
            root.join(".crates2.json"),
            serde_json::json!({ "installs": installs }).to_string(),
        )
        .unwrap();
        Ok(ok(""))
    }

    fn systemctl(&self, cmd: &Cmd) -> Result<Output, RunError> {
        let args: Vec<String> = cmd
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if args.iter().any(|a| a == "restart") {
            let mut s = self.sim.borrow_mut();
            let delay = s.restart_delay;
            let limit = cmd.timeout.unwrap_or(Duration::MAX);
            if delay > limit {
                // systemd finishes the job; the client gives up at its limit.
                s.advance(limit);
                s.start_daemon();
                return Err(RunError::TimedOut {
                    summary: cmd.summary.clone(),
                    after: limit,
                    tail: Vec::new(),
                });
            }
            s.advance(delay);
            s.start_daemon();
            return Ok(ok(""));
        }
        let s = self.sim.borrow();
        let text = match &s.proc {
            None => {
                "LoadState=loaded\nActiveState=inactive\nSubState=dead\nMainPID=0\nNRestarts=0\n"
                    .to_owned()
            }
            Some(p) => {
                let (active, sub, pid) = match p.state(s.now) {
                    ProcState::Running => ("active", "running", p.pid),
                    ProcState::Starting => ("activating", "start", 0),
                    ProcState::Failed => ("failed", "failed", 0),
                };
                format!(
                    "LoadState=loaded\nActiveState={active}\nSubState={sub}\nMainPID={pid}\nNRestarts=0\nInvocationID=inv{}\n",
                    p.invocation
                )
            }
        };
        Ok(ok(text))
    }
}

impl Runner for SimRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
        effect(&self.sim, &self.interrupt, &self.env);
        let stop_at = match cmd.on_signal {
            OnSignal::Stop => 1,
            OnSignal::Finish => 2,
        };
        if self.interrupt.count() >= stop_at {
            return Err(RunError::Interrupted {
                summary: cmd.summary.clone(),
            });
        }
        if cmd.timeout.is_some_and(|t| t.is_zero()) {
            return Err(RunError::TimedOut {
                summary: cmd.summary.clone(),
                after: Duration::ZERO,
                tail: Vec::new(),
            });
        }
        let program = cmd
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let args: Vec<String> = cmd
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        match program.as_str() {
            "git" if args.iter().any(|a| a == "ls-remote") => {
                let s = self.sim.borrow();
                if s.network_down {
                    return Ok(failed(
                        128,
                        &[
                            "fatal: unable to access 'https://forge/x.git/': Could not resolve host: forge",
                        ],
                    ));
                }
                let wanted = args
                    .iter()
                    .find(|a| a.starts_with("refs/tags/") && !a.ends_with("^{}"))
                    .unwrap();
                let tag = wanted.trim_start_matches("refs/tags/");
                match s.releases.iter().find(|r| r.tag == tag) {
                    Some(r) => Ok(ok(format!("{}\trefs/tags/{tag}\n", r.commit))),
                    None => Ok(failed(2, &[])),
                }
            }
            "cargo" if args.first().map(String::as_str) == Some("install") => {
                if self.sim.borrow().network_down {
                    return Ok(failed(
                        101,
                        &[
                            "error: failed to clone into: /x",
                            "Caused by: network failure seems to have happened",
                        ],
                    ));
                }
                self.cargo(cmd)
            }
            "systemctl" => self.systemctl(cmd),
            "sim-health" => Ok(ok("")),
            "sim-notify" => {
                let event = cmd
                    .env
                    .iter()
                    .find(|(k, _)| k == "HEPH_SELFUPDATE_EVENT")
                    .map(|(_, v)| v.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.sim.borrow_mut().notified.push(event);
                Ok(ok(""))
            }
            _ if args.first().map(String::as_str) == Some("--version") => {
                match Sim::version_of_file(&cmd.program) {
                    Some(v) => Ok(ok(format!("{program} {v} (sim)\n"))),
                    None => Err(RunError::Spawn {
                        summary: cmd.summary.clone(),
                        program: cmd.program.clone(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    }),
                }
            }
            _ => Err(RunError::Spawn {
                summary: cmd.summary.clone(),
                program: cmd.program.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }),
        }
    }
}

/// The service manager: the real systemd argv, answered by [`SimRunner`].
struct SimServices;

impl Services for SimServices {
    fn manager(&self, spec: &ServiceSpec) -> Option<Box<dyn ServiceManager>> {
        Some(Box::new(Systemd::new(
            Path::new("systemctl"),
            &spec.name,
            true,
            spec.restart_timeout,
        )))
    }
}

// ---------------------------------------------------------------- operations

#[derive(Debug, Clone)]
enum Op {
    Apply,
    ApplyForce,
    ApplyTo(String),
    Rollback,
    RollbackTo(String),
    Status,
    Check,
    NewRelease(Behaviour, Build),
    Draft(String),
    Wait(u64),
    NetworkDown(bool),
    SlowRestart(u64),
}

impl Op {
    fn args(&self) -> Option<Vec<String>> {
        let v = |a: &[&str]| Some(a.iter().map(|s| (*s).to_owned()).collect());
        match self {
            Self::Apply => v(&["check-and-apply"]),
            Self::ApplyForce => v(&["check-and-apply", "--force"]),
            Self::ApplyTo(x) => v(&["check-and-apply", "--to", x]),
            Self::Rollback => v(&["rollback"]),
            Self::RollbackTo(x) => v(&["rollback", "--to", x]),
            Self::Status => v(&["status"]),
            Self::Check => v(&["check"]),
            _ => None,
        }
    }

    /// Runs a person asks for explicitly may install a bad or backed-off version.
    fn explicit(&self) -> bool {
        matches!(
            self,
            Self::ApplyForce | Self::ApplyTo(_) | Self::RollbackTo(_)
        )
    }
}

/// The sandbox's environment and the step log.
#[derive(Clone)]
struct SimEnv {
    vars: std::collections::BTreeMap<String, String>,
    log: Rc<RefCell<Vec<String>>>,
    verbose: bool,
}

impl SimEnv {
    fn log(&self, line: String) {
        if self.verbose {
            eprintln!("{line}");
        }
        self.log.borrow_mut().push(line);
    }
}

struct RunOutcome {
    code: i32,
    crashed: bool,
}

fn world(sim: &Shared, env: &SimEnv, interrupt: &Interrupt) -> World {
    World {
        http: Box::new(SimHttp {
            sim: Rc::clone(sim),
            interrupt: interrupt.clone(),
            env: env.clone(),
        }),
        runner: Box::new(SimRunner {
            sim: Rc::clone(sim),
            interrupt: interrupt.clone(),
            env: env.clone(),
        }),
        services: Box::new(SimServices),
        clock: Box::new(SimClock(Rc::clone(sim))),
        interrupt: interrupt.clone(),
        env: env.vars.clone(),
        uid: 1000,
        out: Box::new(Captured::default()),
    }
}

/// Runs one operation (a command, or a change in the world); `fault` applies to it.
fn run_op(
    sim: &Shared,
    env: &SimEnv,
    op: &Op,
    fault: Option<(usize, Fault)>,
    nested: bool,
) -> RunOutcome {
    let quiet = RunOutcome {
        code: 0,
        crashed: false,
    };
    match op {
        Op::NewRelease(daemon, build) => {
            let mut s = sim.borrow_mut();
            let n = s.releases.len() + 1;
            let version = format!("0.{n}.0");
            let published = s.now;
            s.releases.push(Release {
                tag: format!("v{version}"),
                commit: format!("{:040x}", n * 7919),
                version,
                published,
                draft: false,
                daemon: *daemon,
                build: *build,
            });
            return quiet;
        }
        Op::Draft(v) => {
            if let Some(r) = sim
                .borrow_mut()
                .releases
                .iter_mut()
                .find(|r| &r.version == v)
            {
                r.draft = true;
            }
            return quiet;
        }
        Op::Wait(secs) => {
            sim.borrow_mut().advance(Duration::from_secs(*secs));
            return quiet;
        }
        Op::NetworkDown(down) => {
            sim.borrow_mut().network_down = *down;
            return quiet;
        }
        Op::SlowRestart(secs) => {
            sim.borrow_mut().restart_delay = Duration::from_secs(*secs);
            return quiet;
        }
        _ => {}
    }
    let args = op.args().unwrap();
    let interrupt = Interrupt::new();
    let w = world(sim, env, &interrupt);
    if !nested {
        let mut s = sim.borrow_mut();
        s.effects = 0;
        s.fault = fault;
    }
    let cli = heph_selfupdate::cli::Cli::try_parse_from(
        std::iter::once("heph-selfupdate".to_owned()).chain(args.iter().cloned()),
    )
    .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        heph_selfupdate::commands::dispatch(&cli, &w)
    }));
    match result {
        Ok(Ok(code)) => RunOutcome {
            code,
            crashed: false,
        },
        Ok(Err(e)) => RunOutcome {
            code: heph_selfupdate::exit::for_error(&e, heph_selfupdate::commands::forge_down(&cli)),
            crashed: false,
        },
        Err(payload) if payload.is::<SimCrash>() => RunOutcome {
            code: -9,
            crashed: true,
        },
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

// ---------------------------------------------------------------- invariants

fn read_state(state_dir: &Path) -> State {
    match std::fs::read(state_dir.join("state.json")) {
        Ok(b) => heph_selfupdate::state::decode(&b).unwrap().unwrap(),
        Err(_) => State::default(),
    }
}

fn layout(dir: &Path) -> Layout {
    Layout::new(&dir.join("data"), &dir.join("bin"))
}

/// The newest healthy root, by the model the tool keeps.
fn newest_healthy(dir: &Path, state: &State) -> Option<String> {
    layout(dir)
        .roots()
        .into_iter()
        .find(|r| heph_selfupdate::roots::is_healthy(r, state))
        .map(|r| r.name)
}

/// (a): with no open intent, a running daemon runs what the links name.
fn check_agreement(sim: &Shared, dir: &Path) -> Result<(), String> {
    let state = read_state(&dir.join("state"));
    if state.intent.is_some() {
        return Ok(());
    }
    let s = sim.borrow();
    let files = s.installed_version();
    if let Some(p) = &s.proc
        && p.state(s.now) == ProcState::Running
        && p.version != files
    {
        return Err(format!(
            "the daemon runs {:?} but {} names {:?}, and no open intent says so",
            p.version,
            s.bin_dir().join("hephd").display(),
            files
        ));
    }
    Ok(())
}

struct Before {
    state: State,
    healthy: Option<String>,
    files: Option<String>,
    history_len: usize,
}

fn check_run(
    sim: &Shared,
    dir: &Path,
    op: &Op,
    before: &Before,
    out: &RunOutcome,
) -> Result<(), String> {
    check_agreement(sim, dir)?;
    let state = read_state(&dir.join("state"));
    // (b): it may give way only to a newer healthy root.
    if let Some(h) = &before.healthy {
        let version =
            |name: &str| semver::Version::parse(name.split('~').next().unwrap_or(name)).ok();
        let still_good = !state.bad.contains_key(h.split('~').next().unwrap_or(h));
        let replaced = newest_healthy(dir, &state).is_some_and(|n| version(&n) > version(h));
        if still_good && !replaced && !dir.join("data/versions").join(h).exists() {
            return Err(format!("the newest healthy root {h} was deleted"));
        }
    }
    let s = sim.borrow();
    // (f)
    for (v, mark) in &state.bad {
        let good = s.release(v).is_some_and(|r| r.daemon == Behaviour::Good);
        if good && !before.state.bad.contains_key(v) && mark.reason != "rolled back by hand" {
            return Err(format!(
                "the good release {v} was marked bad: {}",
                mark.reason
            ));
        }
    }
    if !op.explicit() {
        // (c)
        for v in &s.starts {
            if before.state.bad.contains_key(v) && Some(v) != before.files.as_ref() {
                return Err(format!("{v} was marked bad and was started again"));
            }
        }
        // (d)
        for (v, at) in &s.builds {
            if let Some(b) = before.state.backoff.get(v)
                && *at < b.until
            {
                return Err(format!(
                    "{v} was rebuilt at {at} during its backoff (until {})",
                    b.until
                ));
            }
        }
    }
    if out.crashed {
        return Ok(());
    }
    // (e)
    let first = before
        .history_len
        .max(s.history_seen)
        .min(state.history.len());
    let new: Vec<_> = state.history.iter().skip(first).collect();
    for r in &new {
        let failed_rollback = r.outcome == heph_selfupdate::state::Outcome::RollbackFailed;
        if r.reason.contains("ROLLBACK FAILED") != failed_rollback {
            return Err(format!(
                "outcome {:?} with message {:?}",
                r.outcome, r.reason
            ));
        }
        if failed_rollback {
            let from = r.from.clone().unwrap_or_default();
            let from_good = s.release(&from).is_none_or(|x| x.daemon == Behaviour::Good);
            if !s.starts.contains(&from) || from_good {
                return Err(format!(
                    "ROLLBACK FAILED recorded, but no restart onto a failing {from} ran (starts {:?})",
                    s.starts
                ));
            }
        }
    }
    // A run that finished an earlier run's switch records that first (two entries); its
    // exit code is about its own work, which may have left no entry (an error before it).
    // The dead run's entry and how its switch ended come first; then the run's own work
    // (if it recorded any).
    let own = new
        .iter()
        .rfind(|r| {
            let resumed = r.reason.starts_with(heph_selfupdate::deploy::RESUMED);
            let dead = r.outcome == heph_selfupdate::state::Outcome::Interrupted
                && r.reason.starts_with("the run (pid ");
            !resumed && !dead
        })
        .copied();
    if let Some(own) = own {
        use heph_selfupdate::state::Outcome as O;
        let code_ok = match own.outcome {
            O::Updated | O::ManualRollback | O::Notified => {
                out.code == 0 || matches!(op, Op::Check)
            }
            O::Interrupted => out.code == 75,
            O::RolledBack | O::RollbackFailed => out.code == 1,
            _ => true,
        };
        if !code_ok && !matches!(op, Op::Status) {
            return Err(format!("{:?} but exit {}", own.outcome, out.code));
        }
    }
    if let Some(last) = new.last() {
        use heph_selfupdate::state::Outcome as O;
        let running = s
            .proc
            .as_ref()
            .filter(|p| p.state(s.now) == ProcState::Running)
            .and_then(|p| p.version.clone());
        match last.outcome {
            O::Updated | O::ManualRollback => {
                if running != last.to {
                    return Err(format!(
                        "{:?} to {:?} but the daemon runs {running:?}",
                        last.outcome, last.to
                    ));
                }
            }
            O::RolledBack => {
                if running != last.from {
                    return Err(format!(
                        "rolled back to {:?} but the daemon runs {running:?}",
                        last.from
                    ));
                }
            }
            O::Interrupted if state.intent.is_none() && out.code == 75 => {
                // Stopped before the switch: nothing changed.
                if s.installed_version() != before.files {
                    return Err("interrupted before the switch, yet the files changed".into());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- sequences

fn sandbox_env(dir: &Path, verbose: bool) -> SimEnv {
    let mut vars = std::collections::BTreeMap::new();
    let mut set = |k: &str, v: String| {
        vars.insert(k.to_owned(), v);
    };
    set("HOME", dir.join("home").display().to_string());
    set("PATH", "/usr/bin:/bin".to_owned());
    set("HEPH_SELFUPDATE_FORGE", "forgejo".to_owned());
    set("HEPH_SELFUPDATE_FORGE_URL", "http://127.0.0.1:9".to_owned());
    set("HEPH_SELFUPDATE_GIT_URL", "file:///sim/repo".to_owned());
    set("HEPH_SELFUPDATE_BUILD", "git".to_owned());
    set(
        "HEPH_SELFUPDATE_BIN_DIR",
        dir.join("bin").display().to_string(),
    );
    set(
        "HEPH_SELFUPDATE_DATA_DIR",
        dir.join("data").display().to_string(),
    );
    set(
        "HEPH_SELFUPDATE_STATE_DIR",
        dir.join("state").display().to_string(),
    );
    set(
        "HEPH_SELFUPDATE_CACHE_DIR",
        dir.join("cache").display().to_string(),
    );
    set("HEPH_SELFUPDATE_SERVICE_MANAGER", "systemd-user".to_owned());
    set("HEPH_SELFUPDATE_MIN_FREE_SPACE", "1".to_owned());
    set("HEPH_SELFUPDATE_HEALTH_COMMAND", "sim-health".to_owned());
    set("HEPH_SELFUPDATE_NOTIFY_COMMAND", "sim-notify".to_owned());
    set("HEPH_SELFUPDATE_KEEP_VERSIONS", "2".to_owned());
    SimEnv {
        vars,
        log: Rc::new(RefCell::new(Vec::new())),
        verbose,
    }
}

fn random_op(rng: &mut Rng, sim: &Shared) -> Op {
    let versions: Vec<String> = sim
        .borrow()
        .releases
        .iter()
        .map(|r| r.version.clone())
        .collect();
    let pick = |rng: &mut Rng| versions[rng.below(versions.len() as u64) as usize].clone();
    match rng.below(100) {
        0..=14 => {
            let daemon = match rng.below(10) {
                0..=5 => Behaviour::Good,
                6 => Behaviour::DiesAtStart,
                7 => Behaviour::NeverUp,
                8 => Behaviour::DiesAfter(4),
                _ => Behaviour::DiesAfter(40),
            };
            let build = match rng.below(10) {
                0 => Build::CompileError,
                1 => Build::DiskFull,
                _ => Build::Ok,
            };
            Op::NewRelease(daemon, build)
        }
        15..=49 => Op::Apply,
        50..=53 => Op::ApplyForce,
        54..=59 => Op::ApplyTo(pick(rng)),
        60..=66 => Op::Rollback,
        67..=69 => Op::RollbackTo(pick(rng)),
        70..=75 => Op::Status,
        76..=78 => Op::Check,
        79..=82 => Op::Draft(pick(rng)),
        83..=89 => Op::Wait(rng.below(30 * 3600)),
        90..=93 => Op::NetworkDown(rng.chance(50)),
        _ => Op::SlowRestart(match rng.below(4) {
            0 => 50,
            1 => 400,
            _ => 0,
        }),
    }
}

fn random_fault(rng: &mut Rng) -> Option<(usize, Fault)> {
    // An update runs about 35 effects (most of them observations while the daemon settles).
    let at = 1 + rng.below(36) as usize;
    match rng.below(100) {
        0..=24 => Some((at, Fault::Crash)),
        25..=34 => Some((at, Fault::Sigterm)),
        35..=39 => Some((at, Fault::TwoSigterms)),
        40..=49 => Some((
            at,
            Fault::Concurrent(match rng.below(3) {
                0 => Op::Apply,
                1 => Op::Status,
                _ => Op::Rollback,
            }),
        )),
        _ => None,
    }
}

fn sim_dir() -> tempfile::TempDir {
    // A memory file system when there is one: the state is fsynced often.
    let base = Path::new("/dev/shm");
    let builder = tempfile::Builder::new()
        .prefix("heph-sim-")
        .tempdir_in(base);
    builder.or_else(|_| tempfile::tempdir()).unwrap()
}

/// Runs one sequence; `Err` holds the failure and the steps that led to it.
fn sequence(seed: u64, verbose: bool) -> Result<(), String> {
    let mut rng = Rng(seed);
    let dir = sim_dir();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("home")).unwrap();
    let start = time::macros::datetime!(2026-06-01 00:00 UTC);
    let sim: Shared = Rc::new(RefCell::new(Sim {
        dir: root.clone(),
        now: start,
        base_instant: Instant::now(),
        elapsed: Duration::ZERO,
        releases: Vec::new(),
        proc: None,
        next_pid: 100,
        invocations: 0,
        restart_delay: Duration::ZERO,
        network_down: false,
        effects: 0,
        fault: None,
        builds: Vec::new(),
        starts: Vec::new(),
        notified: Vec::new(),
        history_seen: 0,
    }));
    let env = sandbox_env(&root, verbose);
    // Installed the way people do today: plain binaries of v0.1.0, the daemon running.
    run_op(
        &sim,
        &env,
        &Op::NewRelease(Behaviour::Good, Build::Ok),
        None,
        false,
    );
    for p in ["heph", "hephd"] {
        std::fs::write(root.join("bin").join(p), format!("sim {p} 0.1.0\n")).unwrap();
    }
    sim.borrow_mut().start_daemon();
    let steps = 6 + rng.below(14);
    let fail = |what: String, env: &SimEnv| {
        Err(format!(
            "{what}\nsteps:\n{}\nreplay: SIM_SEED={seed} cargo test --test simulation -- --nocapture",
            env.log.borrow().join("\n")
        ))
    };
    for _ in 0..=steps {
        let op = random_op(&mut rng, &sim);
        let fault = if op.args().is_some() {
            random_fault(&mut rng)
        } else {
            None
        };
        let st = read_state(&root.join("state"));
        let before = Before {
            healthy: newest_healthy(&root, &st),
            files: sim.borrow().installed_version(),
            history_len: st.history.len(),
            state: st,
        };
        {
            let mut s = sim.borrow_mut();
            s.builds.clear();
            s.starts.clear();
            s.history_seen = 0;
        }
        env.log(format!(
            "{op:?}{}",
            fault
                .as_ref()
                .map(|f| format!(" with {f:?}"))
                .unwrap_or_default()
        ));
        let out = run_op(&sim, &env, &op, fault, false);
        if op.args().is_some() {
            let st = read_state(&root.join("state"));
            env.log(format!(
                "  -> exit {}{}; runs {:?}; current {:?}; intent {:?}",
                out.code,
                if out.crashed { " (crashed)" } else { "" },
                sim.borrow()
                    .proc
                    .as_ref()
                    .map(|p| (p.version.clone(), p.state(sim.borrow().now))),
                layout(&root).current(),
                st.intent.as_ref().map(|i| (i.to.clone(), i.phase))
            ));
            if let Some(last) = st.history.last() {
                env.log(format!(
                    "     last: {:?} {:?}->{:?}: {}",
                    last.outcome, last.from, last.to, last.reason
                ));
            }
        }
        if let Err(e) = check_run(&sim, &root, &op, &before, &out) {
            return fail(e, &env);
        }
    }
    // Whatever happened, the next ordinary runs converge: no open intent, and agreement.
    sim.borrow_mut().network_down = false;
    sim.borrow_mut().restart_delay = Duration::ZERO;
    for _ in 0..2 {
        let out = run_op(&sim, &env, &Op::Apply, None, false);
        env.log(format!("final Apply -> exit {}", out.code));
    }
    let st = read_state(&root.join("state"));
    if let Some(i) = &st.intent {
        return fail(
            format!("an intent is still open after clean runs: {i:?}"),
            &env,
        );
    }
    if let Err(e) = check_agreement(&sim, &root) {
        return fail(e, &env);
    }
    Ok(())
}

#[test]
fn random_sequences_with_faults_keep_every_invariant() {
    // Injected crashes unwind through the code under test; their panics are expected.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<SimCrash>() {
            default_hook(info);
        }
    }));
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed.parse().expect("SIM_SEED is a number");
        if let Err(e) = sequence(seed, true) {
            panic!("{e}");
        }
        return;
    }
    let count: u64 = std::env::var("SIM_SEQUENCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let base = std::env::var("SIM_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0000_u64);
    let done = Cell::new(0);
    for i in 0..count {
        let seed = base + i;
        if let Err(e) = sequence(seed, false) {
            panic!("sequence {i} of {count} failed: {e}");
        }
        done.set(done.get() + 1);
    }
    assert_eq!(done.get(), count);
}
