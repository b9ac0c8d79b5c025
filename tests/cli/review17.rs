//! Reproductions from the security review of issue 17's fixes (helper/rev17). Each test
//! states the defence as it should hold and fails on the code it was written against;
//! they are ignored so the suite stays green until the fix lands (run them with
//! `cargo test --test cli review17 -- --ignored`).

use std::path::Path;

use crate::support::env::write_script;

/// `tool_path` is warned about by name only (`~/.cargo/...` or `bin_dir`), not by who can
/// write it. The macOS default starts with `/opt/homebrew/bin` and `/usr/local/bin`,
/// which Homebrew makes the installing user's own — on a one-person Mac the very user the
/// agent runs as, whose builds can then leave a `git` or `ssh-keygen` there that every
/// later run (`verify_tag` included) uses, without a word. Shown on Linux with a
/// `tool_path` directory the service user owns, as Homebrew's is.
#[test]
#[ignore = "reproduction: a tool_path directory the service user can write gets no warning unless it is under ~/.cargo"]
fn a_tool_path_directory_the_service_user_can_write_is_warned_about() {
    use crate::support::sandbox::{UserGuard, create_user};
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: running as a throw-away user needs root (runuser); CI runs it as root");
        return;
    }
    let (user, _uid, home) = create_user();
    let _guard = UserGuard(user.clone());
    let brew = home.join("homebrew/bin");
    let binary = home.join("heph-selfupdate");
    std::fs::create_dir_all(&brew).unwrap();
    std::fs::copy(crate::support::binary(), &binary).unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", &format!("{user}:{user}")])
        .arg(&home)
        .status()
        .unwrap();
    assert!(chown.success());
    let out = std::process::Command::new("runuser")
        .args(["-u", &user, "--", "env", "-i"])
        .arg(format!("HOME={}", home.display()))
        .arg("HEPH_SELFUPDATE_FORGE_URL=https://forge.test.invalid")
        .arg("HEPH_SELFUPDATE_REPO=o/hephd")
        .arg("HEPH_SELFUPDATE_GIT_URL=https://forge.test.invalid/o/hephd.git")
        .arg(format!(
            "HEPH_SELFUPDATE_TOOL_PATH={},/usr/local/bin,/usr/bin,/bin",
            brew.display()
        ))
        .arg(&binary)
        .arg("config")
        .current_dir(&home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(&brew.display().to_string())),
        "{user} can write {} (first in tool_path), yet nothing warns:\n{stderr}",
        brew.display()
    );
}

/// Issue 17 asks that root never open the service user's files, naming Makefile targets,
/// and item 7 takes seriously a working tree the service user owns. `sudo make
/// install-system … BIN=…` in such a tree still reads the tree's unit templates as root,
/// following links (`__render --template=`, `install -m 0644 units/…timer`), and writes
/// what they lead to world-readable into the unit directory; and it runs the `BIN` it
/// installs as root (`heph-selfupdate __render`), a binary that user could have replaced.
#[test]
#[ignore = "reproduction: install-system as root reads the tree's templates through links and runs BIN as root"]
fn make_install_system_as_root_neither_reads_nor_runs_what_another_user_owns_in_the_tree() {
    use std::os::unix::fs::PermissionsExt;
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the install is root's (sudo make install-system); CI runs it as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A root-only KEY=VALUE file, as a WireGuard key is.
    let vault = dir.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = vault.join("wg0.conf");
    std::fs::write(&secret, "PrivateKey = root-only-7f3a9c\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The working tree, owned by another user (nobody), who made the timer template a
    // link to that file and put their own program at BIN.
    let tree = dir.path().join("tree");
    let units = tree.join("units");
    std::fs::create_dir_all(units.join("heph-selfupdate@.service.d")).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join("Makefile"), tree.join("Makefile")).unwrap();
    for f in [
        "heph-selfupdate@.service",
        "heph-selfupdate@.service.d/home.conf",
    ] {
        std::fs::copy(repo.join("units").join(f), units.join(f)).unwrap();
    }
    std::os::unix::fs::symlink(&secret, units.join("heph-selfupdate@.timer")).unwrap();
    let ran_as = dir.path().join("ran-as");
    std::fs::write(&ran_as, "").unwrap();
    std::fs::set_permissions(&ran_as, std::fs::Permissions::from_mode(0o666)).unwrap();
    let bin = write_script(
        &tree.join("target/release/heph-selfupdate"),
        &format!("#!/bin/sh\nid -u >> '{}'\n", ran_as.display()),
    );
    let chown = std::process::Command::new("chown")
        .args(["-R", "-h", "65534:65534"])
        .arg(&tree)
        .status()
        .unwrap();
    assert!(chown.success());
    let dest = dir.path().join("dest");

    let out = std::process::Command::new("make")
        .args(["--no-print-directory", "install-system"])
        .args(["USER=alice", "USER_HOME=/home/alice"])
        .arg(format!("BIN={}", bin.display()))
        .arg(format!("DESTDIR={}", dest.display()))
        .current_dir(&tree)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/root")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !std::fs::read_to_string(&ran_as)
            .unwrap()
            .lines()
            .any(|l| l == "0"),
        "BIN, which nobody owns, ran as root:\n{said}"
    );
    let leaked: Vec<String> = walk(&dest)
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("root-only-7f3a9c")))
        .map(|p| {
            let mode = std::fs::metadata(&p).map_or(0, |m| m.permissions().mode() & 0o777);
            format!("{} (mode {mode:o})", p.display())
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "the root-only file reached {leaked:?} through the tree's template:\n{said}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}
