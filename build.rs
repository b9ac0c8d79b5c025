//! Build script: the version line `heph-selfupdate --version` prints, with the commit the
//! binary was built from and whether the work tree had changes: `0.1.0 (8ca1415, dirty)`.
//! Outside a git checkout of this crate (a source tarball, a vendored copy) it is the
//! package version alone.
//!
//! It reruns when HEAD moves or the branch it names gets a new commit (the files under
//! `.git` for both, found by asking git, since a worktree or submodule keeps them
//! elsewhere) and when the crate's own sources change (they decide "dirty") — not on every
//! build, which would rebuild the crate every time.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    for path in ["build.rs", "Cargo.toml", "Cargo.lock", "src"] {
        println!("cargo::rerun-if-changed={path}");
    }
    let line = match describe(&manifest_dir) {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo::rustc-env=HEPH_BUILD_VERSION={line}");
}

/// `8ca1415` or `8ca1415, dirty` when `dir` is the top of a git work tree; emits the
/// rerun triggers for HEAD and its branch.
fn describe(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    // Inside another project's repository (a tarball unpacked there) the commit is theirs.
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--short", "HEAD"])?;
    let git_dir = PathBuf::from(git(dir, &["rev-parse", "--absolute-git-dir"])?);
    let common_dir = PathBuf::from(git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )?);
    let mut watch = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    // Detached HEAD names no branch: HEAD itself then changes with every checkout.
    if let Some(branch) = git(dir, &["symbolic-ref", "--quiet", "HEAD"]) {
        watch.push(common_dir.join(branch));
    }
    for path in watch.iter().filter(|p| p.exists()) {
        // A watched file that does not exist would rerun the script on every build.
        println!("cargo::rerun-if-changed={}", path.display());
    }
    // Untracked files do not count: only tracked sources go into the build. No optional
    // locks, so this never rewrites the index (which would make the next `git status` of a
    // person wait for us, and could make the tree look changed to other tools).
    let status = git(
        dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )?;
    Some(if status.is_empty() {
        commit
    } else {
        format!("{commit}, dirty")
    })
}

/// Runs git in `dir` (argv, no shell) and returns its trimmed stdout, or `None` when git is
/// missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        // Cargo may run inside a git hook or another tool's environment: ask about this
        // directory, not the repository those variables name.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_COMMON_DIR")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}
