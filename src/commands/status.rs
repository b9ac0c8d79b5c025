//! `heph-selfupdate status`: what is installed and where, the version roots, what the
//! last runs did, holds, and whether a run is in progress. Never contacts the forge and
//! never waits for the lock.

use anyhow::Result;
use serde_json::json;

use crate::config::{Config, Mode};
use crate::exit;
use crate::installed;
use crate::layout::Layout;
use crate::output::outln;
use crate::state::{Outcome, RunRecord, StateFile};
use crate::timefmt::rfc3339;
use crate::world::World;

/// The PID holding the run lock, if a run is in progress.
pub fn lock_holder(cfg: &Config) -> Option<u32> {
    let text = std::fs::read_to_string(cfg.state_dir.join("lock")).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    // The holder empties the file when it ends; a PID left by a killed run is checked.
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
        .or_else(|| {
            let alive = i32::try_from(pid).is_ok_and(|p| unsafe { libc::kill(p, 0) } == 0);
            alive.then_some(pid)
        })
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

fn run_json(r: &RunRecord) -> serde_json::Value {
    json!({
        "started": rfc3339(r.started),
        "duration_secs": (r.duration_secs * 10.0).round() / 10.0,
        "from": r.from,
        "to": r.to,
        "outcome": r.outcome.as_str(),
        "reason": r.reason,
        "log": r.log,
    })
}

pub fn run(cfg: &Config, world: &World, json_out: bool) -> Result<i32> {
    let state = StateFile::new(cfg.state_file()).peek()?;
    let inst = installed::probe(
        world.runner.as_ref(),
        &cfg.bin_dir,
        &cfg.binary,
        &cfg.packages,
    );
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let resolves_to = std::fs::canonicalize(&inst.binary_path).ok();
    let managed = layout.is_managed(&cfg.binary);
    let current = layout.current();
    let roots = layout.roots();
    let bad: Vec<&str> = state.bad.iter().map(|b| b.version.as_str()).collect();
    let lock = lock_holder(cfg);
    let now = world.clock.now();
    let backoff = state.backoff.as_ref().filter(|b| b.until > now);
    let pending = state
        .last_check
        .as_ref()
        .filter(|c| c.update_available && cfg.mode == Mode::Notify)
        .and_then(|c| c.latest.clone());

    if json_out {
        let out = json!({
            "installed": {
                "version": inst.version.as_ref().map(ToString::to_string),
                "source": inst.source,
                "binary": inst.binary_path,
                "resolves_to": resolves_to,
                "managed": managed,
                "missing": inst.missing,
            },
            "current": current,
            "previous": state.previous,
            "roots": roots.iter().map(|r| json!({
                "name": r.name,
                "path": r.path,
                "current": current.as_deref() == Some(r.name.as_str()),
                "previous": state.previous.as_deref() == Some(r.name.as_str()),
                "bad": bad.iter().any(|b| crate::layout::root_version(&r.name).is_some_and(|v| v.to_string() == *b)),
            })).collect::<Vec<_>>(),
            "mode": match cfg.mode { Mode::Apply => "apply", Mode::Notify => "notify" },
            "service_manager": cfg.service_manager.name(),
            "service": cfg.service,
            "last_check": state.last_check.as_ref().map(|c| json!({
                "at": rfc3339(c.at), "installed": c.installed, "latest": c.latest,
                "update_available": c.update_available, "reason": c.reason,
            })),
            "last_apply": state.last_apply().map(run_json),
            "next_step": state.last_apply().and_then(|r| next_step(cfg, world.uid, r)),
            "history": state.history.iter().rev().take(10).map(run_json).collect::<Vec<_>>(),
            "backoff": backoff.map(|b| json!({"version": b.version, "failures": b.failures, "until": rfc3339(b.until), "reason": b.reason})),
            "bad": state.bad.iter().map(|b| json!({"version": b.version, "at": rfc3339(b.at), "reason": b.reason})).collect::<Vec<_>>(),
            "pending": pending,
            "running": lock.map(|pid| json!({"pid": pid})),
            "state_file": cfg.state_file(),
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(exit::OK);
    }

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
    outln!("installed:   {version}  {place}");
    if !inst.missing.is_empty() {
        outln!("missing:     {}", inst.missing.join(", "));
    }
    outln!(
        "managed:     {}",
        if managed {
            format!("yes, version roots in {}", layout.versions_dir().display())
        } else {
            "no (plain binaries; the first update takes them under management)".to_owned()
        }
    );
    if !roots.is_empty() {
        let names: Vec<String> = roots
            .iter()
            .map(|r| {
                let mut tags = Vec::new();
                if current.as_deref() == Some(r.name.as_str()) {
                    tags.push("current");
                }
                if state.previous.as_deref() == Some(r.name.as_str()) {
                    tags.push("previous");
                }
                if crate::layout::root_version(&r.name)
                    .is_some_and(|v| bad.contains(&v.to_string().as_str()))
                {
                    tags.push("bad");
                }
                if tags.is_empty() {
                    r.name.clone()
                } else {
                    format!("{} ({})", r.name, tags.join(", "))
                }
            })
            .collect();
        outln!("roots:       {}", names.join(", "));
    }
    outln!(
        "mode:        {} ({} {})",
        match cfg.mode {
            Mode::Apply => "apply",
            Mode::Notify => "notify",
        },
        cfg.service_manager.name(),
        cfg.service
    );
    match &state.last_check {
        Some(c) => outln!("last check:  {}  {}", rfc3339(c.at), c.reason),
        None => outln!("last check:  never (by check-and-apply)"),
    }
    match state.last_apply() {
        Some(r) => outln!(
            "last run:    {}  {}  {} -> {} ({:.0}s): {}",
            rfc3339(r.started),
            r.outcome.as_str(),
            r.from.as_deref().unwrap_or("nothing"),
            r.to.as_deref().unwrap_or("?"),
            r.duration_secs,
            r.reason.lines().next().unwrap_or("")
        ),
        None => outln!("last run:    none"),
    }
    if let Some(r) = state.last_apply().and_then(|r| r.log.as_ref()) {
        outln!("build log:   {}", r.display());
    }
    if let Some(next) = state
        .last_apply()
        .and_then(|r| next_step(cfg, world.uid, r))
    {
        outln!("next step:   {next}");
    }
    if let Some(b) = backoff {
        outln!(
            "backoff:     {} failed {} time(s); next try after {} ({})",
            b.version,
            b.failures,
            rfc3339(b.until),
            b.reason
        );
    }
    for b in &state.bad {
        outln!(
            "bad:         {} since {}: {}",
            b.version,
            rfc3339(b.at),
            b.reason
        );
    }
    if let Some(p) = pending {
        outln!("pending:     update to {p} available (mode = notify)");
    }
    match lock {
        Some(pid) => outln!("running:     yes, pid {pid}"),
        None => outln!("running:     no"),
    }
    Ok(exit::OK)
}
