//! `check-and-apply --dry-run`: the same decision, then the exact commands the run
//! would execute, in order. No lock, no state, no cache write, no build, no restart.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::build::Commands;
use crate::config::{Config, Mode};
use crate::evaluate::Evaluation;
use crate::exit;
use crate::git::Checkout;
use crate::output::outln;
use crate::world::World;

/// Member directories of an existing build checkout (read-only `cargo metadata`).
pub fn member_dirs(
    commands: &Commands<'_>,
    co: &Checkout,
    world: &World,
) -> BTreeMap<String, PathBuf> {
    if !co.exists() {
        return BTreeMap::new();
    }
    let cmd = commands.metadata(co);
    match world.runner.run(&cmd) {
        Ok(out) if out.success() => crate::build::member_dirs(&out.stdout).unwrap_or_default(),
        _ => BTreeMap::new(),
    }
}

pub fn print(cfg: &Config, world: &World, eval: &Evaluation, json: bool) -> Result<i32> {
    let d = &eval.decision;
    let action = match (d.due, cfg.mode) {
        (false, _) => "none",
        (true, Mode::Apply) => "update",
        (true, Mode::Notify) => "notify",
    };
    let mut cmds = match action {
        "update" => super::apply::planned_commands(cfg, world, eval),
        _ => Vec::new(),
    };
    if action == "notify" {
        let notice = crate::notify::Notice {
            event: crate::notify::Event::UpdateAvailable,
            from: None,
            to: None,
            message: "",
        };
        if let Some(cmd) = cfg
            .notify_command
            .as_deref()
            .and_then(|a| crate::notify::command(a, &notice))
        {
            cmds.push(cmd);
        }
    }
    let from = d.installed.as_ref().map(ToString::to_string);
    let target = d.chosen.as_ref().filter(|_| d.due);
    if json {
        let out = json!({
            "action": action,
            "from": from,
            "to": target.map(|c| c.version.to_string()),
            "tag": target.map(|c| c.tag.clone()),
            "reason": d.reason.code(),
            "message": d.summary(),
            "commands": cmds.iter().map(crate::process::Cmd::argv).collect::<Vec<_>>(),
            "steps": cmds.iter().map(|c| json!({
                "summary": c.summary,
                "argv": c.argv(),
                "env": c.env.iter().map(|(k, v)| (k.to_string_lossy().into_owned(), serde_json::Value::String(v.to_string_lossy().into_owned()))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(exit::OK);
    }
    outln!("# {action}: {}", d.summary());
    for c in &cmds {
        let env: Vec<String> = c
            .env
            .iter()
            .filter(|(k, _)| !k.to_string_lossy().starts_with("HEPH_SELFUPDATE_"))
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        outln!(
            "# {}{}",
            c.summary,
            if env.is_empty() {
                String::new()
            } else {
                format!(" (env: {})", env.join(" "))
            }
        );
        outln!("{}", c.display());
    }
    if action == "update" {
        let layout = crate::layout::Layout::new(&cfg.data_dir, &cfg.bin_dir);
        outln!(
            "# afterwards: {} -> versions/<new root>, one rename; a failed health check switches it back",
            layout.current_link().display()
        );
    }
    Ok(exit::OK)
}
