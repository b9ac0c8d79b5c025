//! Where the system's own programs come from: `tool_path`, never PATH. A service's PATH
//! starts with `~/.cargo/bin`, which every build writes into, so a release could leave a
//! `git`, `ssh`, `kill` or `systemctl` there that every later run would use — `git
//! verify-tag` included. git, what git runs in turn (ssh, ssh-keygen, gpg, credential
//! helpers), systemctl, launchctl, kill and loginctl are therefore looked up in the
//! directories of `tool_path` only, and git runs with `tool_path` as its PATH. cargo,
//! rustup and rustc are found as configured (`cargo`, else PATH), and the hooks
//! (`health_command`, `notify_command`) on PATH, as the user chose them.
//!
//! cargo runs git itself (`CARGO_NET_GIT_FETCH_WITH_CLI`), found on its PATH: it gets
//! the service's PATH behind a directory of links to the system's `git` and `ssh` only
//! ([`ToolPath::shim`]), made again by every build.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::process::Cmd;

/// The programs a build's cargo may run from its PATH that must be the system's.
const CARGO_RUNS: &[&str] = &["git", "ssh"];

/// The system's programs heph-selfupdate runs from `tool_path` (git runs ssh in turn).
pub const SYSTEM_PROGRAMS: &[&str] = &[
    "git",
    "ssh",
    "ssh-keygen",
    "systemctl",
    "loginctl",
    "launchctl",
];

/// The directories of `tool_path`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPath {
    dirs: Vec<PathBuf>,
}

/// One system program, and the PATH it runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// Where it was found; when it was not, where the first directory would hold it (so
    /// the error names a path, never a bare name that PATH would resolve).
    pub path: PathBuf,
    path_var: OsString,
}

impl Tool {
    /// A command of this program, with `tool_path` as its PATH.
    pub fn cmd(&self, summary: impl Into<String>) -> Cmd {
        Cmd::new(&self.path, summary).env("PATH", &self.path_var)
    }
}

impl ToolPath {
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// The default directories: the system's own, root's to write. On NixOS the system
    /// profile. On macOS not Homebrew's: `/opt/homebrew` and `/usr/local` belong to the
    /// user who installed Homebrew — on a one-person Mac the very user the agent runs as,
    /// whose builds could leave a `git` there; `/usr/bin/git` (the Command Line Tools') and
    /// the system's ssh serve. A Homebrew git is one line of `tool_path` away, and warned
    /// about ([`ToolPath::warnings`]).
    pub fn default_dirs(macos: bool) -> Vec<PathBuf> {
        let dirs: &[&str] = if macos {
            &["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        } else {
            &[
                "/usr/local/bin",
                "/usr/bin",
                "/bin",
                "/usr/local/sbin",
                "/usr/sbin",
                "/sbin",
                "/run/current-system/sw/bin",
            ]
        };
        dirs.iter().map(PathBuf::from).collect()
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The directories as a PATH value.
    pub fn path_var(&self) -> OsString {
        std::env::join_paths(&self.dirs).unwrap_or_default()
    }

    /// The directories for people: `/usr/local/bin, /usr/bin, …`.
    pub fn describe(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A warning for each directory of `tool_path`, and each of [`SYSTEM_PROGRAMS`]
    /// found in it, that someone other than root may change (see [`changeable_by`]):
    /// whoever can chooses the git, ssh-keygen or systemctl every later run uses,
    /// `verify_tag` included. `euid`: who runs heph-selfupdate.
    pub fn warnings(&self, euid: u32) -> Vec<String> {
        let consequence = "whoever can change it chooses the git, ssh, ssh-keygen or systemctl every run uses (verify_tag included); keep tool_path to directories only root may write";
        let mut out = Vec::new();
        let mut flagged = Vec::new();
        for d in &self.dirs {
            if let Some(why) = changeable_by(d, euid) {
                out.push(format!(
                    "`tool_path` holds {}, which {why}: {consequence}",
                    d.display()
                ));
                flagged.push(d.clone());
            }
        }
        for name in SYSTEM_PROGRAMS {
            let tool = self.find(name);
            let in_flagged = tool
                .path
                .parent()
                .is_some_and(|d| flagged.iter().any(|f| f == d));
            if !tool.path.is_file() || in_flagged {
                continue;
            }
            if let Some(why) = changeable_by(&tool.path, euid) {
                out.push(format!(
                    "`tool_path`'s {name} is {}, which {why}: {consequence}",
                    tool.path.display()
                ));
            }
        }
        out
    }

    /// `name` from the first directory that has it as an executable file.
    pub fn find(&self, name: &str) -> Tool {
        let path_var = self.path_var();
        let path = crate::process::find_on_path(name, Some(&path_var)).unwrap_or_else(|| {
            self.dirs
                .first()
                .map_or_else(|| PathBuf::from("/"), PathBuf::clone)
                .join(name)
        });
        Tool { path, path_var }
    }

    /// Makes `dir` hold the system's `git` and `ssh` and nothing else, whatever it held
    /// before (a build may have written there), for the front of cargo's PATH: a link to
    /// each, or, when `tool_path` has none, a stand-in that fails saying so (PATH behind
    /// it must not supply one).
    pub fn shim(&self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        crate::fsutil::remove_all(dir).with_context(|| {
            format!(
                "clearing the directory of tools for cargo {}",
                dir.display()
            )
        })?;
        crate::fsutil::create_private_dir(dir)?;
        for name in CARGO_RUNS {
            let tool = self.find(name);
            let at = dir.join(name);
            if tool.path.is_file() {
                std::os::unix::fs::symlink(&tool.path, &at).with_context(|| {
                    format!("linking {} into {}", tool.path.display(), dir.display())
                })?;
                continue;
            }
            let script = format!(
                "#!/bin/sh\necho 'heph-selfupdate: no {name} in tool_path ({})' >&2\nexit 127\n",
                self.describe().replace('\'', "")
            );
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o700)
                .open(&at)
                .and_then(|mut f| std::io::Write::write_all(&mut f, script.as_bytes()))
                .with_context(|| format!("writing {}", at.display()))?;
        }
        Ok(())
    }
}

/// How someone other than root may change what `path` is, or `None`: it or a directory
/// above it (as given, and after links) belongs to another user, or its group or others
/// may write it (a sticky directory above aside), or — `euid` not being root — the user
/// running heph-selfupdate may (an ACL, a group). Paths that do not exist say nothing.
pub fn changeable_by(path: &Path, euid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut chain: Vec<PathBuf> = path.ancestors().map(Path::to_path_buf).collect();
    if let Ok(real) = std::fs::canonicalize(path) {
        chain.extend(real.ancestors().map(Path::to_path_buf));
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in chain.into_iter().filter(|p| seen.insert(p.clone())) {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        // "it is X" for the path itself; "it is under DIR, which is X" for one above it.
        let said = |x: String| {
            if p == path {
                x
            } else {
                format!("is under {}, which {x}", p.display())
            }
        };
        if meta.uid() != 0 {
            return Some(said(format!(
                "belongs to {}",
                crate::fsutil::user_label(meta.uid())
            )));
        }
        let mode = meta.mode() & 0o7777;
        // A sticky directory above (`/tmp`) lets nobody replace what others own in it.
        let sticky_above = p != path && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky_above {
            return Some(said(format!(
                "its group or others may write (mode {mode:04o})"
            )));
        }
        if euid != 0 && !sticky_above && writable(&p) {
            return Some(said(format!(
                "uid {euid}, who runs heph-selfupdate, may write"
            )));
        }
    }
    None
}

/// True when the effective user may write `path` (`faccessat` with `AT_EACCESS`).
fn writable(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated path; faccessat only reads it.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn a_directory_or_program_someone_but_root_may_change_is_told_and_the_systems_are_not() {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: geteuid cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("bin");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let git = script(&dir, "git");
        let tools = ToolPath::new(vec![dir.clone(), PathBuf::from("/usr/bin")]);
        if euid != 0 {
            // Ours: a user's directory is theirs to change.
            let why = changeable_by(&dir, euid).unwrap();
            assert!(why.contains("belongs to uid"), "{why}");
            assert!(tools.warnings(euid)[0].contains(&format!("holds {}", dir.display())));
            return;
        }
        assert_eq!(
            changeable_by(&dir, 0),
            None,
            "root's, 0755, under a sticky /tmp"
        );
        assert_eq!(changeable_by(Path::new("/usr/bin"), 0), None);
        assert!(tools.warnings(0).is_empty(), "{:?}", tools.warnings(0));
        // A program another user owns, in a directory root owns.
        std::os::unix::fs::chown(&git, Some(65534), None).unwrap();
        let warnings = tools.warnings(0);
        assert!(
            warnings.len() == 1
                && warnings[0].contains(&format!(
                    "`tool_path`'s git is {}, which belongs to uid 65534",
                    git.display()
                )),
            "{warnings:?}"
        );
        // The directory writable by its group: told once, for the directory.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let warnings = tools.warnings(0);
        assert!(
            warnings.len() == 1
                && warnings[0].contains(&format!(
                    "holds {}, which its group or others may write (mode 0775)",
                    dir.display()
                )),
            "{warnings:?}"
        );
        // A directory above it another user owns.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(d.path(), Some(65534), None).unwrap();
        let why = changeable_by(&dir, 0).unwrap();
        assert!(
            why.starts_with(&format!(
                "is under {}, which belongs to uid 65534",
                d.path().display()
            )),
            "{why}"
        );
        std::os::unix::fs::chown(d.path(), Some(0), None).unwrap();
    }

    #[test]
    fn a_tool_is_found_in_tool_path_only_and_runs_with_it_as_its_path() {
        let d = tempfile::tempdir().unwrap();
        let (system, planted) = (d.path().join("system"), d.path().join("planted"));
        std::fs::create_dir_all(&system).unwrap();
        std::fs::create_dir_all(&planted).unwrap();
        let git = script(&system, "git");
        script(&planted, "git");
        script(&planted, "kill");
        let tools = ToolPath::new(vec![system.clone()]);
        let found = tools.find("git");
        assert_eq!(found.path, git);
        let cmd = found.cmd("x");
        assert!(
            cmd.env
                .iter()
                .any(|(k, v)| k == "PATH" && *v == system.as_os_str())
        );
        // Not there: a path in tool_path that does not exist, never the bare name.
        assert_eq!(tools.find("kill").path, system.join("kill"));
    }

    #[test]
    fn the_shim_holds_only_the_systems_git_and_ssh_whatever_was_planted_in_it() {
        let d = tempfile::tempdir().unwrap();
        let system = d.path().join("system");
        std::fs::create_dir_all(&system).unwrap();
        let git = script(&system, "git");
        let shim = d.path().join("shim");
        std::fs::create_dir_all(&shim).unwrap();
        script(&shim, "git");
        script(&shim, "rustc");
        ToolPath::new(vec![system]).shim(&shim).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&shim)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["git", "ssh"]);
        assert_eq!(std::fs::read_link(shim.join("git")).unwrap(), git);
        // No ssh in tool_path: one that says so, not whatever PATH has behind.
        // (Another test thread's fork may hold the new file open for a moment.)
        let out = (0..50)
            .find_map(
                |_| match std::process::Command::new(shim.join("ssh")).output() {
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        None
                    }
                    other => Some(other.unwrap()),
                },
            )
            .unwrap();
        assert_eq!(out.status.code(), Some(127));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no ssh in tool_path"));
    }
}
