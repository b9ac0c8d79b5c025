//! The systemd units, the launchd plist and the Makefile targets that install and enable
//! them; `doctor`; journal priority prefixes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::assert_snapshot;
use crate::support::env::TestEnv;
use crate::support::fixture::tagged_repo;
use crate::support::forge::{FakeForge, FakeRelease, Flavour};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs make in the repository with a clean environment plus `vars`.
fn make(args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("make");
    cmd.arg("--no-print-directory")
        .args(args)
        .current_dir(repo_root())
        .env_clear();
    cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run make")
}

#[track_caller]
fn make_ok(args: &[&str], vars: &[(&str, &str)]) -> String {
    let out = make(args, vars);
    assert!(
        out.status.success(),
        "make {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Installs into a DESTDIR as if HOME were /home/u; returns the DESTDIR.
fn install(dest: &Path, extra: &[&str]) {
    let destdir = format!("DESTDIR={}", dest.display());
    let bin = format!("BIN={}", crate::support::binary().display());
    let mut args = vec!["install", &destdir, &bin, "PREFIX=/home/u/.local"];
    args.extend_from_slice(extra);
    make_ok(&args, &[("HOME", "/home/u")]);
}

#[test]
fn make_install_renders_the_units_and_is_idempotent() {
    let dest = tempfile::tempdir().unwrap();
    install(dest.path(), &["UNAME=Linux"]);
    install(dest.path(), &["UNAME=Linux"]);
    let units = dest.path().join("home/u/.config/systemd/user");
    let service = std::fs::read_to_string(units.join("heph-selfupdate.service")).unwrap();
    let timer = std::fs::read_to_string(units.join("heph-selfupdate.timer")).unwrap();
    assert!(service.contains("ExecStart=\"/home/u/.local/bin/heph-selfupdate\" check-and-apply"));
    assert!(!service.contains('@'), "every placeholder rendered");
    assert!(
        dest.path()
            .join("home/u/.local/bin/heph-selfupdate")
            .exists()
    );
    assert_snapshot("heph-selfupdate.service", &service);
    assert_snapshot("heph-selfupdate.timer", &timer);
}

#[test]
fn make_dry_runs_show_commands_and_change_nothing() {
    let dest = tempfile::tempdir().unwrap();
    let destdir = format!("DESTDIR={}", dest.path().display());
    let out = make_ok(
        &["-n", "install", &destdir, "BIN=/nonexistent", "UNAME=Linux"],
        &[("HOME", "/home/u")],
    );
    assert!(out.contains("install -m 0755"), "{out}");
    assert!(
        out.contains("heph-selfupdate' completions bash > ")
            && out.contains("heph-selfupdate' __man --out-dir=")
            && out.contains("heph-selfupdate' __render --syntax=systemd"),
        "{out}"
    );
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    let out = make_ok(&["-n", "enable", "UNAME=Linux"], &[("HOME", "/home/u")]);
    assert!(
        out.contains("systemctl --user daemon-reload")
            && out.contains("systemctl --user enable --now heph-selfupdate.timer"),
        "{out}"
    );
    let out = make_ok(&["-n", "disable", "UNAME=Linux"], &[("HOME", "/home/u")]);
    assert!(
        out.contains("systemctl --user disable --now heph-selfupdate.timer"),
        "{out}"
    );
    let out = make_ok(&["-n", "doctor", "UNAME=Linux"], &[("HOME", "/home/u")]);
    assert!(
        out.contains("systemd-run --user --wait --pipe")
            && out.contains("--setenv=PATH=/home/u/.cargo/bin:"),
        "{out}"
    );
}

fn has_systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
}

/// `systemd-analyze verify` of `<name>.service` and `<name>.timer` in `units` (units
/// also looked up in `unit_path`): whether it passed, and what it said.
fn verify(units: &Path, name: &str, unit_path: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .arg(units.join(format!("{name}.service")))
        .arg(units.join(format!("{name}.timer")));
    if let Some(dir) = unit_path {
        cmd.env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()));
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_units_pass_systemd_analyze_verify_silently() {
    if !has_systemd_analyze() {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    // Render with real, existing paths: verify checks that ExecStart exists.
    let home = dest.path().join("home");
    let destdir = format!("DESTDIR={}", dest.path().join("root").display());
    let bin = format!("BIN={}", crate::support::binary().display());
    let prefix = format!("PREFIX={}", dest.path().join("prefix").display());
    make_ok(
        &["install", &destdir, &bin, &prefix, "UNAME=Linux"],
        &[("HOME", home.to_str().unwrap())],
    );
    // Install the binary where ExecStart names it.
    let target = dest.path().join("prefix/bin");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(crate::support::binary(), target.join("heph-selfupdate")).unwrap();
    let units = dest
        .path()
        .join("root")
        .join(home.strip_prefix("/").unwrap())
        .join(".config/systemd/user");
    let (ok, text) = verify(&units, "heph-selfupdate", None);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify said:\n{text}"
    );
}

fn python_plist_check(path: &Path) -> serde_json::Value {
    let script = r#"
import json, plistlib, sys
with open(sys.argv[1], 'rb') as f:
    p = plistlib.load(f)
print(json.dumps({k: (v if not isinstance(v, bool) else {"bool": v}) for k, v in p.items()}))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "plist does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_launchd_plist_parses_with_absolute_paths_and_the_right_types() {
    let dest = tempfile::tempdir().unwrap();
    install(dest.path(), &["UNAME=Darwin"]);
    let plist = dest
        .path()
        .join("home/u/Library/LaunchAgents/dev.hephaestus.selfupdate.plist");
    let text = std::fs::read_to_string(&plist).unwrap();
    assert!(!text.contains('@') && !text.contains('~') && !text.contains("$HOME"));
    assert_snapshot("dev.hephaestus.selfupdate.plist", &text);
    let p = python_plist_check(&plist);
    assert_eq!(p["Label"], "dev.hephaestus.selfupdate");
    assert_eq!(
        p["ProgramArguments"],
        serde_json::json!(["/home/u/.local/bin/heph-selfupdate", "check-and-apply"])
    );
    assert_eq!(p["StartInterval"], 3600);
    assert_eq!(p["RunAtLoad"], serde_json::json!({"bool": false}));
    assert_eq!(p["ProcessType"], "Background");
    assert_eq!(p["LowPriorityIO"], serde_json::json!({"bool": true}));
    assert_eq!(p["Nice"], 19);
    let env = &p["EnvironmentVariables"];
    let path = env["PATH"].as_str().unwrap();
    assert!(
        path.starts_with("/home/u/.cargo/bin:") && path.contains("/opt/homebrew/bin"),
        "{path}"
    );
    assert_eq!(env["HOME"], "/home/u");
    assert_eq!(env["RUSTUP_TOOLCHAIN"], "stable");
    assert_eq!(
        p["StandardErrorPath"],
        "/home/u/Library/Logs/heph-selfupdate.log"
    );

    let dest = tempfile::tempdir().unwrap();
    install(dest.path(), &["UNAME=Darwin", "TOOLCHAIN="]);
    let p = python_plist_check(
        &dest
            .path()
            .join("home/u/Library/LaunchAgents/dev.hephaestus.selfupdate.plist"),
    );
    assert!(
        p["EnvironmentVariables"].get("RUSTUP_TOOLCHAIN").is_none(),
        "no toolchain configured"
    );
}

#[test]
fn make_enable_and_disable_drive_launchctl_in_the_gui_domain() {
    let env = TestEnv::new();
    env.install_fakes();
    let uid = unsafe { libc::getuid() };
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", env.fakes.display());
    let log = env.dir.path().join("calls.log").display().to_string();
    let vars = [
        ("HOME", "/home/u"),
        ("PATH", path.as_str()),
        ("FAKE_LOG", log.as_str()),
    ];
    let cmd = |target: &str| {
        let out = Command::new("make")
            .args(["--no-print-directory", target, "UNAME=Darwin"])
            .current_dir(repo_root())
            .env_clear()
            .envs(vars)
            .env("FAKE_STATE", env.dir.path().join("fake-state"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cmd("enable");
    cmd("disable");
    assert_eq!(
        env.calls(),
        [
            format!("launchctl bootout gui/{uid}/dev.hephaestus.selfupdate"),
            format!(
                "launchctl bootstrap gui/{uid} /home/u/Library/LaunchAgents/dev.hephaestus.selfupdate.plist"
            ),
            format!("launchctl bootout gui/{uid}/dev.hephaestus.selfupdate"),
        ]
    );
}

#[test]
fn log_lines_carry_journal_priorities_only_under_the_journal() {
    let mut env = TestEnv::new();
    env.var("HEPH_SELFUPDATE_FORGE_URL", "http://127.0.0.1:9");
    let plain = env.run(&["check"]);
    assert!(plain.stderr.starts_with("error: "), "{}", plain.stderr);
    env.var("JOURNAL_STREAM", "8:12345");
    let journal = env.run(&["check"]);
    assert!(
        journal.stderr.lines().all(|l| l.starts_with("<3>")),
        "{}",
        journal.stderr
    );
}

#[test]
fn doctor_reports_each_check_with_a_fix() {
    let forge = FakeForge::start(Flavour::Forgejo, vec![FakeRelease::new("v0.1.0")]);
    let mut env = TestEnv::new();
    let repo = tagged_repo(&env.dir.path().join("repo"), &["v0.1.0"]);
    env.forge(&forge)
        .var("HEPH_SELFUPDATE_GIT_URL", &repo.url())
        .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "1MiB");
    env.install_fakes();
    env.install_plain("0.1.0", &["heph", "hephd"]);
    let run = env.run(&["doctor", "--json"]);
    let j = run.json();
    let status = |name: &str| {
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_owned())
    };
    for name in [
        "configuration",
        "cargo",
        "git",
        "forge",
        "git access",
        "bin_dir",
        "data dir",
        "state dir",
        "cache dir",
        "disk",
        "service",
    ] {
        assert_eq!(
            status(name).as_deref(),
            Some("ok"),
            "{name}: {}",
            serde_json::to_string_pretty(&j).unwrap()
        );
    }
    assert_eq!(status("lingering").as_deref(), Some("warn"));
    assert_eq!(
        j["ok"],
        true,
        "{}",
        serde_json::to_string_pretty(&j).unwrap()
    );
    run.expect(0);

    // Break two things: cargo is gone and the git URL is unreachable.
    std::fs::remove_file(env.fakes.join("cargo")).unwrap();
    env.var("HEPH_SELFUPDATE_GIT_URL", "http://127.0.0.1:9/nothing.git");
    let run = env.run(&["doctor"]);
    run.expect(1);
    assert!(
        run.stdout.contains("[FAIL] cargo:")
            && run.stdout.contains("[FAIL] git access:")
            && run
                .stdout
                .contains("cannot be reached (a network failure): ")
            && run.stdout.contains("Failed to connect to 127.0.0.1 port 9")
            && run
                .stdout
                .contains("fix: check the host and port in git_url"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("fix: install Rust with rustup"),
        "{}",
        run.stdout
    );
}

#[test]
fn doctor_changes_nothing_and_says_unknown_when_it_cannot_ask() {
    let forge = FakeForge::start(Flavour::Forgejo, vec![FakeRelease::new("v0.1.0")]);
    let mut env = TestEnv::new();
    let repo = tagged_repo(&env.dir.path().join("repo"), &["v0.1.0"]);
    env.forge(&forge)
        .var("HEPH_SELFUPDATE_GIT_URL", &repo.url())
        .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "1MiB")
        .var(
            "HEPH_SELFUPDATE_NOTIFY_COMMAND",
            "notify-send-that-is-not-installed",
        )
        .unset("USER");
    env.install_fakes();
    env.install_plain("0.1.0", &["heph", "hephd"]);
    // The user's bus is gone: the timer cannot be asked.
    env.fake_mode("manager-down", "");
    // cargo says which toolchain it lacks on its first line, then more.
    env.fake_bin(
        "cargo",
        "#!/bin/sh\necho \"error: toolchain 'nightly-2099-01-01-x86_64-unknown-linux-gnu' is not installed\" >&2\necho \"help: run rustup toolchain install\" >&2\nexit 1\n",
    );
    let run = env.run(&["doctor"]);
    run.expect(1);
    let out = &run.stdout;
    assert!(
        out.contains("timer: unknown"),
        "not a guessed \"off\": {out}"
    );
    assert!(out.contains("lingering: unknown"), "{out}");
    assert!(
        !out.contains("enable-linger 0"),
        "named by its user name: {out}"
    );
    assert!(
        out.contains("rustup toolchain install nightly-2099-01-01`"),
        "the fix names the missing toolchain: {out}"
    );
    assert!(
        out.contains(
            "[FAIL] notify_command: notify-send-that-is-not-installed is not on the service's PATH"
        ),
        "{out}"
    );
    for dir in [".local/state", ".local/share", ".cache"] {
        assert!(
            !env.home.join(dir).join("heph-selfupdate").exists(),
            "doctor created {dir}/heph-selfupdate"
        );
    }
    assert!(
        out.contains("does not exist yet; the first run creates it"),
        "{out}"
    );
}

/// A directory name with every character that broke the rendered files or the Makefile:
/// a space (unquoted `ExecStart=`, shell words), `&` (sed's "matched text", XML), `%`
/// (systemd specifiers), `|` (sed's delimiter).
const AWKWARD: &str = "a b&c%d|e";

#[test]
fn the_unit_and_the_plist_keep_home_and_prefix_with_spaces_and_metacharacters_exact() {
    let dest = tempfile::tempdir().unwrap();
    let home = dest.path().join(format!("home {AWKWARD}"));
    let prefix = dest.path().join(format!("prefix {AWKWARD}"));
    let bindir = prefix.join("bin");
    std::fs::create_dir_all(&home).unwrap();
    let bin = format!("BIN={}", crate::support::binary().display());
    let prefix_var = format!("PREFIX={}", prefix.display());
    let home_var = [("HOME", home.to_str().unwrap())];

    make_ok(&["install", &bin, &prefix_var, "UNAME=Linux"], &home_var);
    let units = home.join(".config/systemd/user");
    let service = std::fs::read_to_string(units.join("heph-selfupdate.service")).unwrap();
    let expected = format!(
        "ExecStart=\"{}/heph-selfupdate\" check-and-apply\n",
        bindir.display().to_string().replace('%', "%%")
    );
    assert!(service.contains(&expected), "{service}");
    if has_systemd_analyze() {
        // verify also checks that ExecStart names an executable: make install put it there.
        let (ok, text) = verify(&units, "heph-selfupdate", None);
        assert!(
            ok && text.trim().is_empty(),
            "systemd-analyze verify said:\n{text}\n{service}"
        );
    } else {
        eprintln!("SKIPPED (systemd part): systemd-analyze is not installed");
    }

    make_ok(&["install", &bin, &prefix_var, "UNAME=Darwin"], &home_var);
    let p = python_plist_check(&home.join("Library/LaunchAgents/dev.hephaestus.selfupdate.plist"));
    let home_text = home.to_str().unwrap();
    assert_eq!(
        p["ProgramArguments"],
        serde_json::json!([bindir.join("heph-selfupdate"), "check-and-apply"])
    );
    assert_eq!(p["EnvironmentVariables"]["HOME"], home_text);
    assert_eq!(
        p["EnvironmentVariables"]["PATH"],
        format!(
            "{home_text}/.cargo/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        )
    );
    assert_eq!(
        p["StandardOutPath"],
        format!("{home_text}/Library/Logs/heph-selfupdate.log")
    );
}

#[test]
fn make_install_refuses_a_prefix_systemd_cannot_name_instead_of_writing_a_broken_unit() {
    let dest = tempfile::tempdir().unwrap();
    let bin = format!("BIN={}", crate::support::binary().display());
    let prefix = format!("PREFIX={}/it's", dest.path().display());
    let out = make(
        &["install", &bin, &prefix, "UNAME=Linux"],
        &[("HOME", dest.path().to_str().unwrap())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("holds a quote or a backslash") && stderr.contains("help: "),
        "{stderr}"
    );
}

#[test]
fn make_install_puts_completions_and_man_pages_under_the_prefix_and_uninstall_removes_them() {
    let dest = tempfile::tempdir().unwrap();
    install(dest.path(), &["UNAME=Linux"]);
    let share = dest.path().join("home/u/.local/share");
    let files = [
        "bash-completion/completions/heph-selfupdate",
        "zsh/site-functions/_heph-selfupdate",
        "fish/vendor_completions.d/heph-selfupdate.fish",
        "man/man1/heph-selfupdate.1",
        "man/man1/heph-selfupdate-check-and-apply.1",
    ];
    for f in files {
        let text = std::fs::read_to_string(share.join(f)).unwrap_or_default();
        // Man pages escape the hyphens.
        assert!(
            text.contains("check-and-apply") || text.contains("check\\-and\\-apply"),
            "{f}: {text}"
        );
    }
    let destdir = format!("DESTDIR={}", dest.path().display());
    // SYSTEMCTL=true: uninstall first disables, which must not reach this machine's manager.
    make_ok(
        &[
            "uninstall",
            &destdir,
            "PREFIX=/home/u/.local",
            "UNAME=Linux",
            "SYSTEMCTL=true",
        ],
        &[("HOME", "/home/u")],
    );
    for f in files {
        assert!(!share.join(f).exists(), "{f} left behind");
    }
    let man1 = std::fs::read_dir(share.join("man/man1")).unwrap().count();
    assert_eq!(man1, 0, "every man page removed");
    assert!(
        !dest
            .path()
            .join("home/u/.local/bin/heph-selfupdate")
            .exists()
    );
}

#[test]
fn make_install_warns_when_the_bin_dir_is_not_on_path_and_says_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let bin = format!("BIN={}", crate::support::binary().display());
    let home_text = home.to_str().unwrap();
    let run = |path: &str| {
        let out = make(
            &["install", &bin, "UNAME=Linux"],
            &[("HOME", home_text), ("PATH", path)],
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let warned = run("/usr/local/bin:/usr/bin:/bin");
    assert!(
        warned.contains(&format!(
            "warning: {home_text}/.local/bin is not on your PATH"
        )) && warned.contains("export PATH=\"$HOME/.local/bin:$PATH\""),
        "{warned}"
    );
    let on_path = run(&format!("/usr/bin:{home_text}/.local/bin:/bin"));
    assert!(!on_path.contains("warning"), "{on_path}");
}

/// make with the real cargo on PATH and `CARGO_TARGET_DIR` set, as with a shared target dir.
fn make_with_target_dir(args: &[&str], target_dir: &Path) -> String {
    let cargo = crate::support::fixture::cargo();
    let cargo_bin = cargo.parent().unwrap();
    let out = Command::new("make")
        .arg("--no-print-directory")
        .args(args)
        .current_dir(repo_root())
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", cargo_bin.display()),
        )
        .envs(std::env::var_os("HOME").map(|h| ("HOME", h)))
        .envs(std::env::var_os("RUSTUP_HOME").map(|h| ("RUSTUP_HOME", h)))
        .envs(std::env::var_os("CARGO_HOME").map(|h| ("CARGO_HOME", h)))
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn make_uses_the_build_wherever_cargo_target_dir_puts_it() {
    let target = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let destdir = format!("DESTDIR={}", dest.path().display());
    let out = make_with_target_dir(&["-n", "install", &destdir, "UNAME=Linux"], target.path());
    assert!(
        out.contains(&format!(
            "install -m 0755 '{}/release/heph-selfupdate' ",
            target.path().display()
        )),
        "{out}"
    );
    for goal in ["demo", "bench"] {
        let out = make_with_target_dir(&["-n", goal], target.path());
        assert!(
            !out.contains("target/"),
            "make {goal} assumes ./target:\n{out}"
        );
    }
}

/// `make install-system` into a DESTDIR for user `u` with home `home`; returns the unit dir.
fn install_system(dest: &Path, user: &str, home: &str, extra: &[&str]) -> PathBuf {
    let destdir = format!("DESTDIR={}", dest.display());
    let bin = format!("BIN={}", crate::support::binary().display());
    let user = format!("USER={user}");
    let home = format!("USER_HOME={home}");
    let mut args = vec!["install-system", &destdir, &bin, &user, &home];
    args.extend_from_slice(extra);
    make_ok(&args, &[("HOME", "/root")]);
    dest.join("etc/systemd/system")
}

#[test]
fn make_install_system_renders_a_template_for_the_user_and_is_idempotent() {
    let dest = tempfile::tempdir().unwrap();
    install_system(dest.path(), "alice", "/home/alice", &[]);
    let units = install_system(dest.path(), "alice", "/home/alice", &[]);
    let service = std::fs::read_to_string(units.join("heph-selfupdate@.service")).unwrap();
    let timer = std::fs::read_to_string(units.join("heph-selfupdate@.timer")).unwrap();
    let home =
        std::fs::read_to_string(units.join("heph-selfupdate@alice.service.d/home.conf")).unwrap();
    assert!(service.contains("\nUser=%i\n"), "{service}");
    assert!(
        service.contains("ExecStart=\"/usr/local/bin/heph-selfupdate\" check-and-apply\n"),
        "{service}"
    );
    for line in [
        "SuccessExitStatus=75",
        "KillMode=mixed",
        "TimeoutStopSec=2min",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
    ] {
        assert!(service.contains(&format!("\n{line}\n")), "{line}");
    }
    assert!(
        home.contains("ReadWritePaths=-\"/home/alice/.cargo\"")
            && home.contains("-\"/home/alice/.local/state/heph-selfupdate\"")
            && home.contains(
                "Environment=\"HEPH_SELFUPDATE_ENV_FILE=/home/alice/.config/heph-selfupdate/env\"\n"
            )
            && !home.lines().any(|l| l.starts_with("EnvironmentFile")),
        "{home}"
    );
    assert!(!service.contains("@BINDIR@") && !home.contains("@HOME@"));
    assert!(
        dest.path().join("usr/local/bin/heph-selfupdate").exists(),
        "the binary goes to SYSTEM_PREFIX"
    );
    assert_snapshot("heph-selfupdate@.service", &service);
    assert_snapshot("heph-selfupdate@.timer", &timer);
    assert_snapshot("heph-selfupdate@.service.d-home.conf", &home);

    // The same schedule as the user timer.
    let user_timer =
        std::fs::read_to_string(repo_root().join("units/heph-selfupdate.timer")).unwrap();
    let schedule = |t: &str| {
        t.lines()
            .skip_while(|l| *l != "[Timer]")
            .take_while(|l| !l.starts_with("[Install]"))
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(schedule(&timer), schedule(&user_timer));
}

#[test]
fn make_system_targets_need_a_user_that_is_not_root_and_dry_runs_change_nothing() {
    let dest = tempfile::tempdir().unwrap();
    let destdir = format!("DESTDIR={}", dest.path().display());
    for (args, says) in [
        (
            vec!["-n", "install-system", "BIN=/x"],
            "name the user hephd runs as",
        ),
        (
            vec!["-n", "enable-system", "USER=root"],
            "never runs as root",
        ),
        (
            vec!["-n", "disable-system", "USER=a;b"],
            "a user name of letters",
        ),
        (
            vec!["-n", "install-system", "BIN=/x", "USER=no-such-user-heph"],
            "no home directory for no-such-user-heph",
        ),
    ] {
        let out = make(&args, &[("HOME", "/root"), ("USER", "root")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
    let out = make_ok(
        &[
            "-n",
            "install-system",
            &destdir,
            "BIN=/nonexistent",
            "USER=alice",
            "USER_HOME=/home/alice",
        ],
        &[("HOME", "/root")],
    );
    assert!(
        out.contains("install -m 0755 '/nonexistent' ")
            && out.contains("__render --syntax=systemd --template=units/heph-selfupdate@.service ")
            && out.contains("heph-selfupdate@alice.service.d/home.conf'"),
        "{out}"
    );
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    // Without DESTDIR, the user's directories are made as that user.
    let out = make_ok(
        &[
            "-n",
            "install-system",
            "BIN=/x",
            "USER=alice",
            "USER_HOME=/home/alice",
        ],
        &[("HOME", "/root")],
    );
    assert!(
        out.contains("runuser -u 'alice' -- mkdir -p '/home/alice/.cargo/bin'"),
        "{out}"
    );
    let out = make_ok(&["-n", "enable-system", "USER=alice"], &[("HOME", "/root")]);
    assert_eq!(
        out,
        "systemctl daemon-reload\nsystemctl enable --now 'heph-selfupdate@alice.timer'\n"
    );
    let out = make_ok(
        &["-n", "disable-system", "USER=alice"],
        &[("HOME", "/root")],
    );
    assert!(
        out.contains("systemctl disable --now 'heph-selfupdate@alice.timer'")
            && out.contains("systemctl stop 'heph-selfupdate@alice.service'"),
        "{out}"
    );
}

#[test]
fn make_uninstall_system_keeps_the_template_while_another_user_has_an_instance() {
    let dest = tempfile::tempdir().unwrap();
    let units = install_system(dest.path(), "alice", "/home/alice", &[]);
    install_system(dest.path(), "bob", "/home/bob", &[]);
    let destdir = format!("DESTDIR={}", dest.path().display());
    let uninstall = |user: &str| {
        make_ok(
            &[
                "uninstall-system",
                &destdir,
                &format!("USER={user}"),
                "USER_HOME=/nonexistent",
                "SYSTEMCTL_SYSTEM=true",
            ],
            &[("HOME", "/root")],
        )
    };
    uninstall("alice");
    assert!(!units.join("heph-selfupdate@alice.service.d").exists());
    assert!(
        units
            .join("heph-selfupdate@bob.service.d/home.conf")
            .exists()
    );
    assert!(units.join("heph-selfupdate@.service").exists());
    uninstall("alice");
    uninstall("bob");
    for f in [
        "heph-selfupdate@.service",
        "heph-selfupdate@.timer",
        "heph-selfupdate@bob.service.d",
    ] {
        assert!(!units.join(f).exists(), "{f} left behind");
    }
    assert!(!dest.path().join("usr/local/bin/heph-selfupdate").exists());
    uninstall("bob");
}

/// systemd-analyze verify of the system template (as an instance for `user`), its timer
/// and the user's drop-in; the binary really where ExecStart names it.
fn verify_system_units(dest: &Path, user: &str, home: &Path) -> String {
    let prefix = dest.join("prefix");
    let units = install_system(
        &dest.join("root"),
        user,
        home.to_str().unwrap(),
        &[&format!("SYSTEM_PREFIX={}", prefix.display())],
    );
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::copy(crate::support::binary(), prefix.join("bin/heph-selfupdate")).unwrap();
    // The instance is found from its template and drop-in there.
    let (ok, text) = verify(&units, &format!("heph-selfupdate@{user}"), Some(&units));
    assert!(ok, "systemd-analyze verify failed:\n{text}");
    text
}

#[test]
fn the_system_units_pass_systemd_analyze_verify_silently_even_with_an_awkward_home() {
    if !has_systemd_analyze() {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    let text = verify_system_units(dest.path(), "heph", Path::new("/home/heph"));
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify said:\n{text}"
    );

    let dest = tempfile::tempdir().unwrap();
    let home = dest.path().join(format!("home {AWKWARD}"));
    let text = verify_system_units(dest.path(), "heph", &home);
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify said:\n{text}"
    );
    let conf = std::fs::read_to_string(
        dest.path()
            .join("root/etc/systemd/system/heph-selfupdate@heph.service.d/home.conf"),
    )
    .unwrap();
    let h = home.display().to_string().replace('%', "%%");
    assert!(
        conf.contains(&format!(
            "Environment=\"HEPH_SELFUPDATE_ENV_FILE={h}/.config/heph-selfupdate/env\"\n"
        )) && conf.contains(&format!("-\"{h}/.cache/heph-selfupdate\"")),
        "{conf}"
    );
}
