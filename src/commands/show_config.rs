//! `heph-selfupdate config`: every key, its effective value and where it came from.
//!
//! The text is valid TOML — a value per line in its normal form, where it came from in a
//! trailing comment, unset keys commented out — so any line can be pasted into the
//! config file, and the whole output read back gives the same configuration.

use std::fmt::Write as _;

use anyhow::Result;

use crate::config::{Config, Entry, Source, toml_inline};
use crate::exit;

pub fn run(cfg: &Config, out: &dyn crate::output::Out, json: bool) -> Result<i32> {
    if json {
        out.line(&serde_json::to_string_pretty(&to_json(cfg))?);
    } else {
        out.text(&render(cfg));
    }
    Ok(exit::OK)
}

/// Values are padded to this width (longer ones are not cut) so the sources line up.
const VALUE_COLUMN: usize = 40;

/// The configuration as annotated TOML.
pub fn render(cfg: &Config) -> String {
    let mut out = String::new();
    for path in &cfg.searched {
        let state = if cfg.file.as_ref() == Some(path) {
            ""
        } else {
            " (not found; defaults and environment only)"
        };
        let _ = writeln!(out, "# config file: {}{state}", path.display());
    }
    let entries = cfg.entries();
    let key_width = entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
    let lines: Vec<(&str, Option<String>, String)> = entries
        .iter()
        .map(|e| {
            (
                e.key,
                e.toml.as_ref().map(toml_inline),
                shown_source(cfg, e),
            )
        })
        .collect();
    let value_width = lines
        .iter()
        .filter_map(|(_, v, _)| v.as_ref().map(String::len))
        .max()
        .unwrap_or(0)
        .min(VALUE_COLUMN);
    for (key, value, source) in lines {
        let line = match value {
            Some(value) => format!("{key:key_width$} = {value:value_width$}  # {source}"),
            // A commented-out line: the token (which is no key, and never shown) and
            // keys that are unset.
            None if key == "token" => format!(
                "# {key:w$} = <redacted>  # {source}",
                w = key_width.saturating_sub(2)
            ),
            None => format!("# {key:w$} = (unset)", w = key_width.saturating_sub(2)),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Where a value came from, for the trailing comment: the file is named in the header,
/// so only its line is repeated.
fn shown_source(cfg: &Config, entry: &Entry) -> String {
    match (cfg.source(entry.key), entry.line) {
        (Source::File(_), Some(line)) => format!("file, line {line}"),
        (Source::File(_), None) => "file".to_owned(),
        _ => entry.source.clone(),
    }
}

/// The configuration as one JSON object: `file`, `searched`, `values.<key>.{value,
/// source}` (`value` null for an unset key) and `warnings`.
pub fn to_json(cfg: &Config) -> serde_json::Value {
    let values: serde_json::Map<String, serde_json::Value> = cfg
        .entries()
        .iter()
        .map(|e| {
            let value = match &e.toml {
                Some(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                None if e.key == "token" => serde_json::Value::String(e.value.clone()),
                None => serde_json::Value::Null,
            };
            (
                e.key.to_owned(),
                serde_json::json!({ "value": value, "source": e.source }),
            )
        })
        .collect();
    serde_json::json!({
        "file": cfg.file.as_ref().map(|p| p.display().to_string()),
        "searched": cfg.searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "values": values,
        "warnings": cfg.warnings,
    })
}
