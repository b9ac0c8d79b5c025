//! `heph-selfupdate check`: is there an update? Changes nothing (the HTTP cache aside),
//! except that a switch an earlier run left unfinished is finished first, as every run does.

use anyhow::Result;
use serde_json::json;

use crate::config::Config;
use crate::deploy::{Deployer, recover};
use crate::evaluate::{Evaluation, evaluate};
use crate::exit;
use crate::layout::Layout;
use crate::lock::{LockBusy, RunLock};
use crate::policy::{Overrides, Reason, SkipReason};
use crate::redact::escape;
use crate::state::StateFile;
use crate::timefmt::rfc3339;
use crate::world::World;

pub fn run(cfg: &Config, world: &World, json: bool) -> Result<i32> {
    let state_file = StateFile::new(cfg.state_file());
    let mut state = state_file.peek()?;
    let mut recovered = None;
    if state.intent.is_some() {
        // No decision on top of an unfinished switch: finish it (or say who is on it).
        match RunLock::acquire(&cfg.state_dir) {
            Ok(lock) => {
                state = state_file.load()?;
                let settings = super::run_settings(cfg, world);
                let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
                let deployer = Deployer::new(world, &settings.deploy, &layout, &state_file, &lock);
                recovered = recover(&deployer, &mut state);
            }
            Err(e) if e.is::<LockBusy>() => {
                log::warn!(
                    "a switch is in progress ({e}); this check sees the state before it ends"
                );
            }
            Err(e) => return Err(e),
        }
    }
    let eval = evaluate(cfg, world, &state, &Overrides::default(), true)?;
    // A pin the forge does not have is an error to fix, not "no update due".
    let missing = eval.decision.missing_target().map(|(message, help)| {
        let help = match cfg.default_note("pin") {
            None => format!("{help} ({})", cfg.source("pin")),
            Some(_) => help,
        };
        (message, help)
    });
    let code = match (&missing, eval.decision.due) {
        // A switch it had to finish first that ended badly is what this check reports.
        _ if recovered.as_ref().is_some_and(|t| !t.ok()) => {
            recovered.as_ref().map_or(exit::FAILED, |t| t.exit_code)
        }
        (Some(_), _) => exit::FAILED,
        (None, true) => exit::UPDATE_AVAILABLE,
        (None, false) => exit::OK,
    };
    let staged = super::status::staged_view(cfg, &state, world.clock.now())?;
    if json {
        let mut out = to_json(&eval);
        out["staged"] = staged.as_ref().map(|(_, j)| j.clone()).into();
        if let Some((message, help)) = &missing {
            out["error"] = message.clone().into();
            out["help"] = serde_json::json!([help]);
            out["exit_code"] = code.into();
        }
        world.out.line(&serde_json::to_string_pretty(&out)?);
    } else {
        world
            .out
            .text(&to_text(&eval, log::max_level() >= log::LevelFilter::Debug));
        if let Some((text, _)) = &staged {
            world.out.line(&format!("staged:    {text}"));
        }
    }
    if let Some((message, help)) = missing {
        log::error!("{message}\n{help}");
    }
    Ok(code)
}

/// When a held release becomes eligible, if that is known.
fn wait_until(eval: &Evaluation) -> Option<String> {
    match &eval.decision.reason {
        Reason::Held(s) => s.reason.until().map(rfc3339),
        _ => None,
    }
}

/// The `--json` object.
pub fn to_json(eval: &Evaluation) -> serde_json::Value {
    let d = &eval.decision;
    json!({
        "installed": d.installed.as_ref().map(ToString::to_string),
        "installed_source": eval.installed.source,
        "binary": eval.installed.binary_path.display().to_string(),
        "missing": eval.installed.missing,
        "latest": d.chosen.as_ref().map(|c| c.version.to_string()),
        "tag": d.chosen.as_ref().map(|c| c.tag.clone()),
        "published_at": d.chosen.as_ref().and_then(|c| c.published_at).map(rfc3339),
        "update_available": d.due,
        "reason": d.reason.code(),
        "message": d.summary(),
        "wait_until": wait_until(eval),
        "wave": match &d.reason {
            Reason::Held(s) => match &s.reason {
                SkipReason::RolloutWave { wave, .. } => Some(wave.0),
                _ => None,
            },
            _ => None,
        },
        "skipped": d.skipped.iter().map(|s| json!({
            "tag": s.tag,
            "version": s.version.as_ref().map(ToString::to_string),
            "reason": s.reason.code(),
            "detail": s.reason.to_string(),
        })).collect::<Vec<_>>(),
    })
}

/// The text report. Tags, reasons and other text that came from the forge (or from a
/// program's output) are escaped: a tag holding an escape sequence, CR or LF must not
/// rewrite the terminal or forge a line of this report. (`--json` escapes by itself.)
pub fn to_text(eval: &Evaluation, list_skipped: bool) -> String {
    use std::fmt::Write;
    let d = &eval.decision;
    let mut out = String::new();
    let installed = match &d.installed {
        Some(v) => format!(
            "{v} ({}, from {})",
            eval.installed.binary_path.display(),
            match eval.installed.source {
                crate::installed::VersionSource::Binary => "--version",
                crate::installed::VersionSource::InstallRecords => "cargo's install records",
                crate::installed::VersionSource::Unknown => "unknown",
            }
        ),
        None if eval.installed.binary_exists => format!(
            "unknown ({}: {})",
            eval.installed.binary_path.display(),
            escape(
                eval.installed
                    .problem
                    .as_deref()
                    .unwrap_or("no version found")
            )
        ),
        None => format!(
            "nothing ({} not found)",
            eval.installed.binary_path.display()
        ),
    };
    let _ = writeln!(out, "installed: {installed}");
    if !eval.installed.missing.is_empty() {
        let _ = writeln!(out, "missing:   {}", eval.installed.missing.join(", "));
    }
    match &d.chosen {
        Some(c) => {
            let published = c
                .published_at
                .map(|t| format!(", published {}", rfc3339(t)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "release:   {} ({}){published}",
                escape(&c.tag),
                c.version
            );
        }
        None => {
            let _ = writeln!(out, "release:   none eligible");
        }
    }
    let _ = writeln!(out, "result:    {}", escape(&d.summary()));
    if !d.skipped.is_empty() {
        if list_skipped {
            for s in &d.skipped {
                let _ = writeln!(
                    out,
                    "skipped:   {}: {}",
                    escape(&s.tag),
                    escape(&s.reason.to_string())
                );
            }
        } else {
            let _ = writeln!(
                out,
                "skipped:   {} release(s) (-v lists them)",
                d.skipped.len()
            );
        }
    }
    out
}
