//! `heph-selfupdate config`: every effective value and where it came from.

use anyhow::Result;

use crate::config::Config;
use crate::exit;
use crate::output::outln;

pub fn run(cfg: &Config, json: bool) -> Result<i32> {
    if json {
        let map: serde_json::Map<String, serde_json::Value> = cfg
            .entries()
            .iter()
            .map(|e| {
                (
                    e.key.to_owned(),
                    serde_json::json!({ "value": e.value, "source": e.source }),
                )
            })
            .collect();
        let out = serde_json::json!({
            "file": cfg.file.as_ref().map(|p| p.display().to_string()),
            "values": map,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        match &cfg.file {
            Some(p) => outln!("# config file: {}", p.display()),
            None => outln!("# config file: none (defaults and environment only)"),
        }
        let width = cfg.entries().iter().map(|e| e.key.len()).max().unwrap_or(0);
        for e in cfg.entries() {
            outln!("{:width$} = {:<40} # {}", e.key, e.value, e.source);
        }
    }
    Ok(exit::OK)
}
