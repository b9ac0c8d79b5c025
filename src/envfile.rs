//! The service's environment file (`~/.config/heph-selfupdate/env`: `PATH`,
//! `RUSTUP_TOOLCHAIN`, `GIT_SSH_COMMAND`, `HEPH_SELFUPDATE_*`), read by heph-selfupdate
//! itself when `HEPH_SELFUPDATE_ENV_FILE` names it — as the user it runs as, never as
//! root. A system unit's `EnvironmentFile=` is read by PID 1 as root, following links,
//! before `User=` applies: a link from the user's home to a root-only `KEY=VALUE` file
//! (a WireGuard key, a restic password) would hand its values to the user's process. So
//! the system unit names the file in `HEPH_SELFUPDATE_ENV_FILE` instead, and
//! `make doctor-system` does the same. (A user unit keeps `EnvironmentFile=`: the user's
//! own manager reads it, as the user.)
//!
//! The syntax is the part of systemd's `EnvironmentFile=` that such files use: one
//! `KEY=VALUE` per line; blank lines and lines starting with `#` or `;` are skipped;
//! spaces around the key and the value are dropped; a value in double quotes may hold
//! `\"` and `\\`, one in single quotes is taken as it is. Values are not expanded. A
//! line that is not an assignment is skipped with a warning, as systemd does. The
//! values override the environment heph-selfupdate was started with, as an
//! `EnvironmentFile=` overrides `Environment=`.

use std::path::PathBuf;

use crate::config::ConfigError;

/// The variable that names the file.
pub use crate::envvars::ENV_FILE as VAR;

/// What reading the file gave: the assignments, in order, and the lines skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    pub path: PathBuf,
    pub vars: Vec<(String, String)>,
    /// `(line number, why)` of each line that was not an assignment.
    pub skipped: Vec<(usize, String)>,
}

/// Reads the file `value` (the variable's value) names. `Ok(None)`: no file named, or
/// none there (it is optional, as `EnvironmentFile=-…` is). `euid`: who reads it — never
/// root, who could read files the user cannot. An error is a configuration error (exit 2).
pub fn read(value: Option<&str>, euid: u32) -> Result<Option<EnvFile>, ConfigError> {
    let Some(path) = value.filter(|v| !v.is_empty()).map(PathBuf::from) else {
        return Ok(None);
    };
    if euid == 0 {
        return Err(ConfigError(format!(
            "not reading the environment file {} as root ({VAR} is set): it is the service user's file, read as that user\nhelp: run heph-selfupdate as the user the service runs as (`make doctor-system USER=<user>` does), or unset {VAR}",
            path.display()
        )));
    }
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError(format!(
                "could not read the environment file {} ({VAR}): {e}\nhelp: make it a file of KEY=VALUE lines that this user can read, or remove it",
                path.display()
            )));
        }
    };
    Ok(Some(EnvFile {
        path,
        ..parse(&text)
    }))
}

/// The assignments of an environment file, and the lines that are none (no path).
pub fn parse(text: &str) -> EnvFile {
    let mut vars = Vec::new();
    let mut skipped = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            skipped.push((n + 1, "not KEY=VALUE".to_owned()));
            continue;
        };
        let key = key.trim();
        let valid = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            skipped.push((n + 1, "not a variable name before `=`".to_owned()));
            continue;
        }
        vars.push((key.to_owned(), unquote(value.trim())));
    }
    EnvFile {
        path: PathBuf::new(),
        vars,
        skipped,
    }
}

/// A value without its quotes: `"…"` with `\"` and `\\` escapes, `'…'` as it is.
fn unquote(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match (c, chars.clone().next()) {
                ('\\', Some(next @ ('"' | '\\'))) => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push(c),
            }
        }
        return out;
    }
    value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value)
        .to_owned()
}

impl EnvFile {
    /// Puts the assignments into this process's environment.
    ///
    /// # Safety
    /// No other thread may run: call it before the first is started (signal handlers,
    /// HTTP), as `run` does.
    pub unsafe fn apply(&self) {
        for (k, v) in &self.vars {
            // SAFETY: the caller guarantees a single thread.
            unsafe { std::env::set_var(k, v) };
        }
    }

    /// Logs what was read: the names only (values may be secrets), and the lines skipped.
    pub fn log(&self) {
        let names: Vec<&str> = self.vars.iter().map(|(k, _)| k.as_str()).collect();
        log::debug!(
            "environment file {}: {}",
            self.path.display(),
            if names.is_empty() {
                "nothing set".to_owned()
            } else {
                format!("set {}", names.join(", "))
            }
        );
        for (line, why) in &self.skipped {
            log::warn!(
                "the environment file {}, line {line}: {why}; skipped",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_assignments_systemd_would_and_skips_the_rest() {
        let EnvFile { vars, skipped, .. } = parse(
            "# comment\n; also a comment\n\nPATH=/a:/b\n  RUSTUP_TOOLCHAIN = stable  \nGIT_SSH_COMMAND=\"ssh -i \\\"k\\\" -o X=1\"\nQ='$HOME not expanded'\nnot an assignment\n1BAD=x\nEMPTY=\n",
        );
        assert_eq!(
            vars,
            [
                ("PATH", "/a:/b"),
                ("RUSTUP_TOOLCHAIN", "stable"),
                ("GIT_SSH_COMMAND", "ssh -i \"k\" -o X=1"),
                ("Q", "$HOME not expanded"),
                ("EMPTY", ""),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(skipped.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [8, 9]);
    }

    #[test]
    fn a_missing_file_is_nothing_an_unreadable_one_an_error_and_root_reads_none() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("env");
        assert_eq!(read(missing.to_str(), 1000).unwrap(), None);
        assert_eq!(read(None, 1000).unwrap(), None);
        assert_eq!(read(Some(""), 1000).unwrap(), None);
        std::fs::write(&missing, "A=1\n").unwrap();
        let found = read(missing.to_str(), 1000).unwrap().unwrap();
        assert_eq!(found.vars, [("A".to_owned(), "1".to_owned())]);
        let err = read(missing.to_str(), 0).unwrap_err().to_string();
        assert!(err.contains("not reading the environment file") && err.contains("as root"));
        // A directory cannot be read as a file: an error naming it, not a silent nothing.
        let err = read(dir.path().to_str(), 1000).unwrap_err().to_string();
        assert!(
            err.contains("could not read the environment file") && err.contains("help:"),
            "{err}"
        );
    }
}
