//! `heph-selfupdate status`: what is installed and where, the version roots and what is
//! known of each, what the last runs did, holds, and whether a run is in progress. Never
//! contacts the forge and never waits for the lock. When no run holds the lock and an
//! earlier run left a switch unfinished, it finishes that switch first (and says so), so
//! what it shows is true.

use std::fmt;

use anyhow::Result;
use serde::Serialize;

use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::cli::StatusArgs;
use crate::config::{Config, Mode};
use crate::deploy::{Deployer, recover};
use crate::exit;
use crate::installed;
use crate::layout::{Layout, Origin};
use crate::lock::{LockBusy, RunLock};
use crate::roots;
use crate::state::{Intent, Outcome, RunRecord, State, StateFile};
use crate::timefmt::rfc3339;
use crate::window::WindowNow;
use crate::world::World;

/// The first error lines of a failed run: from its build log (what the compiler said),
/// else those its message quotes (`| error…`, a run at `-q`).
fn first_errors(r: &RunRecord) -> Vec<String> {
    let from_log = r
        .log
        .as_deref()
        .and_then(|p| std::fs::read(p).ok())
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| l.starts_with("error"))
                .take(3)
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if !from_log.is_empty() {
        return from_log;
    }
    r.reason
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("| "))
        .take(3)
        .map(String::from)
        .collect()
}

/// The staged release (built, verified, waiting for a restart window) for people and
/// for `--json`: `0.4.0 (version root 0.4.0); restarts in the window at …`.
pub fn staged_view(
    cfg: &Config,
    state: &crate::state::State,
    now: time::OffsetDateTime,
) -> Result<Option<(String, serde_json::Value)>> {
    let Some(st) = &state.staged else {
        return Ok(None);
    };
    let windows = super::restart_windows(cfg)?;
    let opens = match WindowNow::at(windows.as_ref(), now, false) {
        WindowNow::Open => "the next run switches to it".to_owned(),
        WindowNow::Closed(Some(t)) => format!(
            "restarts in the window at {} ({})",
            rfc3339(t),
            crate::timefmt::ago(now, t)
        ),
        WindowNow::Closed(None) => "waits for a restart window".to_owned(),
    };
    Ok(Some((
        format!("{} (version root {}); {opens}", st.version, st.root),
        serde_json::json!({
            "version": st.version, "root": st.root, "at": rfc3339(st.at), "when": opens,
        }),
    )))
}

/// One version root, as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RootView {
    pub name: String,
    pub version: Option<String>,
    pub commit: Option<String>,
    /// Who signed the tag it was built from (`verify_tag`).
    pub signed_by: Option<crate::layout::Signer>,
    pub origin: &'static str,
    pub current: bool,
    pub healthy: bool,
    pub bad: bool,
}

/// A held version.
#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    pub version: String,
    pub kind: &'static str,
    pub reason: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub failures: Option<u32>,
}

/// A switch in progress or left unfinished.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchView {
    pub from: Option<String>,
    pub to: String,
    pub phase: &'static str,
    pub purpose: &'static str,
    pub started: String,
    pub pid: u32,
    /// True while the run that started it still holds the lock.
    pub in_progress: bool,
}

/// The daemon now.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonView {
    pub running: bool,
    pub pid: Option<u32>,
    pub since: Option<String>,
    /// What the manager says, in words.
    pub state: String,
    /// The version its binary reports (the one a restart runs).
    pub version: Option<String>,
}

/// One past run.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub started: String,
    pub duration_secs: f64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub outcome: &'static str,
    pub reason: String,
    pub log: Option<std::path::PathBuf>,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub installed: serde_json::Value,
    pub current: Option<String>,
    pub roots: Vec<RootView>,
    pub mode: &'static str,
    pub service_manager: &'static str,
    pub service: String,
    pub last_check: Option<serde_json::Value>,
    pub last_apply: Option<RunView>,
    pub next_step: Option<String>,
    pub history: Vec<RunView>,
    pub holds: Vec<HoldView>,
    pub bad: Vec<HoldView>,
    pub pending: Option<String>,
    pub switch: Option<SwitchView>,
    /// A run in progress (it holds the lock).
    pub running: Option<serde_json::Value>,
    /// A switch an earlier run left, finished by this `status`.
    pub finished_switch: Option<String>,
    /// The daemon as its service manager sees it.
    pub daemon: Option<DaemonView>,
    /// The timer or agent that runs updates.
    pub timer: crate::schedule::Schedule,
    /// A release built outside the restart window, and when it restarts.
    pub staged: Option<serde_json::Value>,
    /// How long the last build took, in total and per phase (seconds).
    pub last_build: Option<serde_json::Value>,
    /// The build checkout's target dir: its size and `cache_max_size` (bytes).
    pub build_cache: Option<serde_json::Value>,
    pub state_file: std::path::PathBuf,
    #[serde(skip)]
    text: Vec<(String, String)>,
}

/// What a person should do after a run that did not end well.
fn next_step(cfg: &Config, uid: u32, r: &RunRecord) -> Option<String> {
    let service_status = cfg.service_manager.status_command(&cfg.service, uid);
    match r.outcome {
        Outcome::RollbackFailed => Some(format!(
            "the daemon is not healthy on the previous version either: check `{service_status}` and its log; once it runs, `heph-selfupdate check-and-apply` resumes (or use --to / rollback)"
        )),
        Outcome::RolledBack => Some(format!(
            "{} stays marked bad until a newer release appears; `check-and-apply --force` tries it again",
            r.to.as_deref().unwrap_or("the new version")
        )),
        Outcome::Failed | Outcome::Interrupted => Some(
            "the next run tries again (after the backoff, if one is shown); `check-and-apply --force` skips the backoff".to_owned(),
        ),
        _ => None,
    }
}

fn run_view(r: &RunRecord) -> RunView {
    RunView {
        started: rfc3339(r.started),
        duration_secs: (r.duration_secs * 10.0).round() / 10.0,
        from: r.from.clone(),
        to: r.to.clone(),
        outcome: r.outcome.as_str(),
        reason: r.reason.clone(),
        log: r.log.clone().filter(|p| p.exists()),
    }
}

fn switch_view(i: &Intent, in_progress: bool) -> SwitchView {
    SwitchView {
        from: i.from_version.clone(),
        to: i.to_version.clone(),
        phase: i.phase.as_str(),
        purpose: i.purpose.as_str(),
        started: rfc3339(i.started),
        pid: i.pid,
        in_progress,
    }
}

/// Takes the lock when no run holds it, and finishes an unfinished switch. Returns the
/// state to show, the PID of a run in progress, and what was finished.
fn settle(
    cfg: &Config,
    world: &World,
    state_file: &StateFile,
) -> Result<(State, Option<u32>, Option<String>)> {
    let state = state_file.peek()?;
    // Without a state dir there is nothing to finish, and status creates nothing.
    if !cfg.state_dir.is_dir() {
        return Ok((state, None, None));
    }
    let lock = match RunLock::acquire(&cfg.state_dir) {
        Ok(lock) => lock,
        Err(e) => {
            // The lock is held: a run is in progress (a PID left by a dead run is not).
            if let Some(busy) = e.downcast_ref::<LockBusy>() {
                return Ok((state, Some(busy.holder.unwrap_or(0)), None));
            }
            log::warn!("{e:#}");
            return Ok((state, None, None));
        }
    };
    if state.intent.is_none() {
        return Ok((state, None, None));
    }
    let mut state = state_file.load()?;
    let settings = super::run_settings(cfg, world);
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let deployer = Deployer::new(world, &settings.deploy, &layout, state_file, &lock);
    let finished = recover(&deployer, &mut state).map(|t| t.message);
    Ok((state, None, finished))
}

pub fn run(cfg: &Config, world: &World, args: &StatusArgs) -> Result<i32> {
    let state_file = StateFile::new(cfg.state_file());
    let (state, running, finished) = settle(cfg, world, &state_file)?;
    let report = build(cfg, world, &state, running, finished)?;
    if args.json {
        world.out.line(&serde_json::to_string_pretty(&report)?);
    } else if args.history {
        world.out.text(&history_text(&state, world.clock.now()));
    } else {
        world.out.text(&report.to_string());
    }
    Ok(exit::OK)
}

/// What a past run did, in words that read forwards.
pub fn run_line(r: &RunRecord) -> String {
    let (from, to) = (
        r.from.as_deref().unwrap_or("nothing"),
        r.to.as_deref().unwrap_or("?"),
    );
    match r.outcome {
        Outcome::RolledBack => format!("tried {to}, back on {from}"),
        Outcome::RollbackFailed => format!("tried {to}, back on {from} but unhealthy"),
        Outcome::ManualRollback => format!("{from} -> {to} (by hand)"),
        Outcome::Failed | Outcome::Interrupted | Outcome::Staged | Outcome::Notified => {
            format!("{from}, {to} not installed")
        }
        Outcome::Updated | Outcome::NothingDue => format!("{from} -> {to}"),
    }
}

/// `status --history`: the recent runs, newest first, one line each.
fn history_text(state: &State, now: OffsetDateTime) -> String {
    let mut out = String::new();
    if state.history.is_empty() {
        out.push_str("no runs recorded yet\n");
    }
    for r in state.history.iter().rev() {
        let _ = writeln!(
            out,
            "{:>12}  {:<15}  {:<30}  {}",
            crate::timefmt::ago(now, r.started),
            r.outcome.as_str(),
            run_line(r),
            crate::redact::escape(r.reason.lines().next().unwrap_or(""))
        );
    }
    out
}

fn build(
    cfg: &Config,
    world: &World,
    state: &State,
    running: Option<u32>,
    finished: Option<String>,
) -> Result<StatusReport> {
    let inst = installed::probe(
        world.runner.as_ref(),
        &cfg.layout(),
        &cfg.binary,
        &cfg.packages,
    );
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let resolves_to = std::fs::canonicalize(&inst.binary_path).ok();
    let management = layout.management(&cfg.binary, &cfg.packages);
    let managed = management.managed();
    let current = layout.current();
    let now = world.clock.now();
    let roots: Vec<RootView> = layout
        .roots()
        .iter()
        .map(|r| RootView {
            name: r.name.clone(),
            version: r.version().map(|v| v.to_string()),
            commit: r.meta.commit.clone(),
            signed_by: r.meta.signed_by.clone(),
            origin: match r.meta.origin {
                Origin::Built => "built",
                Origin::Adopted => "adopted",
            },
            current: current.as_deref() == Some(r.name.as_str()),
            healthy: roots::is_healthy(r, state),
            bad: roots::is_bad(r, state),
        })
        .collect();
    let holds: Vec<HoldView> = state
        .backoff
        .iter()
        .filter(|(_, b)| b.until > now)
        .map(|(v, b)| HoldView {
            version: v.clone(),
            kind: "backoff",
            reason: b.reason.clone(),
            since: None,
            until: Some(rfc3339(b.until)),
            failures: Some(b.failures),
        })
        .collect();
    let bad: Vec<HoldView> = state
        .bad
        .iter()
        .map(|(v, b)| HoldView {
            version: v.clone(),
            kind: "bad",
            reason: b.reason.clone(),
            since: Some(rfc3339(b.at)),
            until: None,
            failures: None,
        })
        .collect();
    let pending = state
        .last_check
        .as_ref()
        .filter(|c| c.update_available && cfg.mode == Mode::Notify)
        .and_then(|c| c.latest.clone());
    let mode = match cfg.mode {
        Mode::Apply => "apply",
        Mode::Notify => "notify",
    };
    let switch = state
        .intent
        .as_ref()
        .map(|i| switch_view(i, running.is_some()));

    // The text view, line by line.
    let mut text: Vec<(String, String)> = Vec::new();
    let mut line = |k: &str, v: String| text.push((k.to_owned(), v));
    let version = inst
        .version
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), ToString::to_string);
    let place = match (&resolves_to, inst.binary_exists) {
        (_, false) => format!("{} (not found)", inst.binary_path.display()),
        (Some(r), true) if r != &inst.binary_path => {
            format!("{} -> {}", inst.binary_path.display(), r.display())
        }
        _ => inst.binary_path.display().to_string(),
    };
    if let Some(f) = &finished {
        line(
            "finished",
            format!("an earlier run's unfinished switch: {f}"),
        );
    }
    line("installed", format!("{version}  {place}"));
    let daemon = world.services.manager(&super::service_spec(cfg)).map(|m| {
        match m.observe(world.runner.as_ref()) {
            Ok(obs) => DaemonView {
                running: obs.running,
                pid: obs.pid.filter(|_| obs.running),
                since: obs.since.clone(),
                state: obs.detail.clone(),
                version: inst.version.as_ref().map(ToString::to_string),
            },
            Err(e) => DaemonView {
                running: false,
                pid: None,
                since: None,
                state: format!("unknown: {e:#}"),
                version: None,
            },
        }
    });
    if let Some(d) = &daemon {
        let mut text = d.state.clone();
        if let Some(pid) = d.pid {
            let _ = write!(text, ", pid {pid}");
        }
        if let Some(since) = d.since.as_ref().filter(|_| d.running) {
            let _ = write!(text, ", since {since}");
        }
        if d.running
            && let Some(v) = &d.version
        {
            let _ = write!(text, "; runs {v}");
        }
        line("daemon", text);
    }
    let timer = crate::schedule::ask(
        world.runner.as_ref(),
        cfg.service_manager,
        crate::schedule::ask_cmd(cfg.service_manager, world.uid, &cfg.tools()).as_ref(),
    );
    line("timer", timer.detail.clone());
    if !inst.missing.is_empty() {
        line("missing", inst.missing.join(", "));
    }
    line("managed", management.describe(&layout.versions_dir()));
    if !roots.is_empty() {
        let names: Vec<String> = roots
            .iter()
            .map(|r| {
                let mut tags = Vec::new();
                if r.current {
                    tags.push("current");
                }
                if r.bad {
                    tags.push("bad");
                } else if r.healthy {
                    tags.push("healthy");
                }
                if r.origin == "adopted" {
                    tags.push("adopted");
                }
                if tags.is_empty() {
                    r.name.clone()
                } else {
                    format!("{} ({})", r.name, tags.join(", "))
                }
            })
            .collect();
        line("roots", names.join(", "));
    }
    if let Some((name, signer)) = roots
        .iter()
        .find(|r| r.current)
        .and_then(|r| Some((&r.name, r.signed_by.as_ref()?)))
    {
        line(
            "signature",
            format!(
                "the tag of {name} (current) signed by {} ({})",
                crate::redact::escape(&signer.principal),
                crate::redact::escape(&signer.key)
            ),
        );
    }
    if let Some(s) = &switch {
        line(
            "switch",
            format!(
                "{} {} -> {} ({}, {}), started {} by pid {}{}",
                if s.in_progress {
                    "in progress:"
                } else {
                    "UNFINISHED:"
                },
                s.from.as_deref().unwrap_or("nothing"),
                s.to,
                s.purpose,
                s.phase,
                s.started,
                s.pid,
                if s.in_progress {
                    ""
                } else {
                    "; the next run (or `heph-selfupdate status` with no run in progress) finishes it"
                }
            ),
        );
    }
    line(
        "mode",
        format!("{mode} ({} {})", cfg.service_manager.name(), cfg.service),
    );
    match &state.last_check {
        Some(c) => line(
            "last check",
            format!(
                "{} ({})  {}",
                rfc3339(c.at),
                crate::timefmt::ago(now, c.at),
                crate::redact::escape(&c.reason)
            ),
        ),
        None => line("last check", "never (by check-and-apply)".to_owned()),
    }
    match state.last_apply() {
        Some(r) => line(
            "last run",
            format!(
                "{} ({}, took {:.0}s)  [{}] {}",
                rfc3339(r.started),
                crate::timefmt::ago(now, r.started),
                r.duration_secs,
                r.outcome.as_str(),
                crate::redact::escape(r.reason.lines().next().unwrap_or(""))
            ),
        ),
        None => line("last run", "none".to_owned()),
    }
    // A failed build: the compiler's first errors, not cargo's command line again.
    if let Some(r) = state.last_apply().filter(|r| r.outcome == Outcome::Failed) {
        for l in first_errors(r) {
            line("error", crate::redact::escape(&l));
        }
    }
    if let Some(log) = state
        .last_apply()
        .and_then(|r| r.log.as_ref())
        .filter(|p| p.exists())
    {
        line("build log", log.display().to_string());
    }
    if let Some(b) = &state.last_build {
        let phases: Vec<String> = b
            .phases
            .iter()
            .map(|(n, s)| {
                format!(
                    "{n} {}",
                    crate::timefmt::human_duration(std::time::Duration::from_secs_f64(s.max(0.0)))
                )
            })
            .collect();
        line(
            "last build",
            format!(
                "{}{}",
                crate::timefmt::human_duration(std::time::Duration::from_secs_f64(
                    b.total_secs.max(0.0)
                )),
                if phases.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", phases.join(", "))
                }
            ),
        );
    }
    let last_build = state.last_build.as_ref().map(|b| {
        serde_json::json!({
            "total_secs": b.total_secs,
            "phases": b.phases.iter().map(|(n, s)| serde_json::json!({"phase": n, "secs": s})).collect::<Vec<_>>(),
        })
    });
    let cache_dir = crate::git::checkout_dir(&cfg.cache_dir).join("target");
    let build_cache = cache_dir.exists().then(|| {
        let size = crate::build::cache::target_dir_size(&cfg.cache_dir);
        line(
            "build cache",
            format!(
                "{} in {} (kept under {})",
                bytesize::ByteSize::b(size),
                cache_dir.display(),
                bytesize::ByteSize::b(cfg.cache_max_size)
            ),
        );
        serde_json::json!({
            "dir": cache_dir, "bytes": size, "limit_bytes": cfg.cache_max_size,
        })
    });
    let next = state
        .last_apply()
        .and_then(|r| next_step(cfg, world.uid, r));
    if let Some(next) = &next {
        line("next step", next.clone());
    }
    for b in &holds {
        line(
            "backoff",
            format!(
                "{} failed {} time(s); next try after {} ({})",
                b.version,
                b.failures.unwrap_or(0),
                b.until.as_deref().unwrap_or("?"),
                b.reason
            ),
        );
    }
    for b in &bad {
        line(
            "bad",
            format!(
                "{} since {}: {}",
                b.version,
                b.since.as_deref().unwrap_or("?"),
                b.reason
            ),
        );
    }
    if let Some(p) = &pending {
        line(
            "pending",
            format!("update to {p} available (mode = notify)"),
        );
    }
    let staged = match staged_view(cfg, state, now)? {
        Some((text, json)) => {
            line("staged", text);
            Some(json)
        }
        None => None,
    };
    line(
        "running",
        match running {
            Some(pid) => format!("yes: an update run (pid {pid}) holds the lock"),
            None => "no (no update run in progress)".to_owned(),
        },
    );

    Ok(StatusReport {
        daemon,
        timer,
        staged,
        last_build,
        build_cache,
        installed: serde_json::json!({
            "version": inst.version.as_ref().map(ToString::to_string),
            "source": inst.source,
            "binary": inst.binary_path,
            "resolves_to": resolves_to,
            "managed": managed,
            "linked": management.linked,
            "plain": management.plain,
            "missing": inst.missing,
        }),
        current,
        roots,
        mode,
        service_manager: cfg.service_manager.name(),
        service: cfg.service.clone(),
        last_check: state.last_check.as_ref().map(|c| {
            serde_json::json!({
                "at": rfc3339(c.at), "installed": c.installed, "latest": c.latest,
                "update_available": c.update_available, "reason": c.reason,
            })
        }),
        last_apply: state.last_apply().map(run_view),
        next_step: next,
        history: state.history.iter().rev().take(10).map(run_view).collect(),
        holds,
        bad,
        pending,
        switch,
        running: running.map(|pid| serde_json::json!({ "pid": pid })),
        finished_switch: finished,
        state_file: cfg.state_file(),
        text,
    })
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.text {
            let label = format!("{k}:");
            writeln!(f, "{label:<12} {v}")?;
        }
        Ok(())
    }
}
