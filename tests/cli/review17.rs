//! Reproductions from the security review of issue 17's fixes (helper/rev17). Each test
//! states the defence as it should hold and fails on the code it was written against;
//! they are ignored so the suite stays green until the fix lands (run them with
//! `cargo test --test cli review17 -- --ignored`).

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
