//! Privilege: root never reads the user's files; the process and its children stay
//! private. docs/security.md lists each defence with its test here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::env::{Run, TestEnv};
use crate::support::fixture::tagged_repo;
use crate::support::forge::{FakeForge, FakeRelease, Flavour};
use crate::support::sandbox::{UserGuard, create_user};

const TOKEN: &str = "tok-5d1e0b-private-process";

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A sandbox that updates 0.1.0 to 0.2.0 with the stand-in cargo (`build = "git"`), the
/// token in its environment, and no service manager to restart (so it can run as any
/// user).
fn update_env() -> (TestEnv, FakeForge) {
    let forge = FakeForge::start(
        Flavour::Forgejo,
        vec![FakeRelease::new("v0.2.0"), FakeRelease::new("v0.1.0")],
    );
    let mut env = TestEnv::new();
    let repo = tagged_repo(&env.dir.path().join("repo"), &["v0.1.0", "v0.2.0"]);
    env.forge(&forge)
        .var("HEPH_SELFUPDATE_GIT_URL", &repo.url())
        .var("HEPH_SELFUPDATE_BUILD", "git")
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "none")
        .var("HEPH_SELFUPDATE_RETRY_PAUSE", "0s")
        .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "1MiB")
        .var("HEPH_SELFUPDATE_TOKEN", TOKEN);
    env.install_fakes();
    env.install_plain("0.1.0", &["heph", "hephd"]);
    (env, forge)
}

/// Gives everything under `dir` to `user`.
fn chown_all(user: &str, dir: &Path) {
    let out = Command::new("chown")
        .args(["-R", &format!("{user}:{user}")])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Runs `binary` as `user` (runuser) with exactly `env`'s variables.
fn run_as(user: &str, env: &TestEnv, binary: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", user, "--", "env", "-i"])
        .args(env.vars.iter().map(|(k, v)| format!("{k}={v}")))
        .arg(binary)
        .args(args)
        .current_dir(env.dir.path());
    let out = cmd.output().expect("runuser");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A stand-in `cargo` that first does what a hostile build script can: walks up its
/// ancestors and reads each one's `/proc/<pid>/environ`, recording per ancestor whether
/// it could and whether the token was there; then runs `next`.
fn ancestor_reading_cargo(next: &Path) -> String {
    format!(
        r#"#!/bin/sh
pid=$$
while :; do
  ppid=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$pid/status")
  {{ [ -z "$ppid" ] || [ "$ppid" -le 1 ]; }} && break
  comm=$(cat "/proc/$ppid/comm")
  if environ=$(tr '\0' '\n' < "/proc/$ppid/environ" 2>/dev/null); then
    case "$environ" in
      *{TOKEN}*) echo "token-read $comm" >> "$FAKE_LOG";;
      *) echo "environ-read $comm" >> "$FAKE_LOG";;
    esac
  else
    echo "environ-denied $comm" >> "$FAKE_LOG"
  fi
  pid=$ppid
done
exec "{}" "$@"
"#,
        next.display()
    )
}

#[test]
fn a_build_step_of_the_same_user_cannot_read_the_token_from_any_ancestors_environ() {
    if !is_root() {
        eprintln!(
            "SKIPPED: running heph-selfupdate as a throw-away user needs root (runuser); CI runs it as root"
        );
        return;
    }
    let (user, _uid, _home) = create_user();
    let _guard = UserGuard(user.clone());
    let (env, _forge) = update_env();
    let installs = env.fakes.join("cargo-installs");
    std::fs::rename(env.fakes.join("cargo"), &installs).unwrap();
    env.fake_bin("cargo", &ancestor_reading_cargo(&installs));
    // The binary where that user can run it.
    let binary: PathBuf = env.dir.path().join("heph-selfupdate");
    std::fs::copy(crate::support::binary(), &binary).unwrap();
    chown_all(&user, env.dir.path());

    let run = run_as(&user, &env, &binary, &["check-and-apply"]);
    let calls = env.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("cargo-installs install")),
        "the build ran:\n{calls:?}\n{}",
        run.all()
    );
    let seen: Vec<&String> = calls.iter().filter(|c| c.starts_with("environ-")).collect();
    assert!(
        seen.iter().any(|c| *c == "environ-denied heph-selfupdate"),
        "the build looked at heph-selfupdate, its parent, and could not read its environment: {seen:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("token-read")),
        "a build step read the token from an ancestor: {calls:?}"
    );
    assert!(!run.all().contains(TOKEN), "{}", run.all());
}

/// A stand-in that records who it is (`$1`, or the name it was run by) and the
/// `SSL_CERT_FILE`, `GIT_SSL_CAINFO` and `CARGO_HTTP_CAINFO` it sees, then runs `next`
/// (if any).
fn cert_probe(next: Option<&str>) -> String {
    let then = next.map_or_else(|| "exit 0".to_owned(), |n| format!("exec {n} \"$@\""));
    format!(
        "#!/bin/sh\nwho=$(basename \"$0\"); [ \"$who\" = probe ] && who=$1\necho \"$who SSL_CERT_FILE=${{SSL_CERT_FILE-unset}} GIT_SSL_CAINFO=${{GIT_SSL_CAINFO-unset}} CARGO_HTTP_CAINFO=${{CARGO_HTTP_CAINFO-unset}}\" >> \"$FAKE_LOG\"\n{then}\n"
    )
}

/// `ca_file` is for the forge, git and cargo: the fetches of git and cargo get it as the
/// variables they read (`GIT_SSL_CAINFO`, `CARGO_HTTP_CAINFO`), and no child gets it as
/// `SSL_CERT_FILE`, which the hooks, the daemon and every program a build script starts
/// would trust instead of the system's roots. (The checkout build's compile, which is
/// offline, gets none of it: unit `build::tests::only_the_steps_that_reach_the_network_get_the_ca_file`.)
#[test]
fn only_the_fetches_of_git_and_cargo_get_ca_file_and_no_child_gets_it_as_ssl_cert_file() {
    let mut s = crate::support::scenario::sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let ca = s.env.dir.path().join("forge-ca.pem");
    std::fs::write(&ca, "not used: the stand-in forge speaks plain http\n").unwrap();
    let ca = ca.display().to_string();
    let installs = s.env.fakes.join("cargo-installs");
    std::fs::rename(s.env.fakes.join("cargo"), &installs).unwrap();
    s.env.fake_bin(
        "cargo",
        &cert_probe(Some(&format!("\"{}\"", installs.display()))),
    );
    s.env
        .fake_bin("git", &cert_probe(Some("\"$FAKE_REAL_GIT\"")));
    let probe = s
        .env
        .fake_bin("probe", &cert_probe(None))
        .display()
        .to_string();
    s.env
        .var("FAKE_REAL_GIT", crate::support::env::real_git())
        .var("HEPH_SELFUPDATE_CA_FILE", &ca)
        .var("HEPH_SELFUPDATE_HEALTH_COMMAND", &format!("{probe} health"))
        .var("HEPH_SELFUPDATE_NOTIFY_COMMAND", &format!("{probe} notify"));
    let seen = |env: &TestEnv, who: &str| -> Vec<String> {
        env.calls()
            .into_iter()
            .filter(|c| c.starts_with(&format!("{who} SSL_CERT_FILE=")))
            .collect()
    };

    s.env.run(&["check-and-apply"]).expect(0);
    // git ls-remote and cargo install --git (git mode) both reach the network.
    for who in ["git", "cargo"] {
        let lines = seen(&s.env, who);
        assert!(
            !lines.is_empty()
                && lines.iter().all(|l| l.ends_with(&format!(
                    "SSL_CERT_FILE=unset GIT_SSL_CAINFO={ca} CARGO_HTTP_CAINFO={ca}"
                ))),
            "{who} is given ca_file, not as SSL_CERT_FILE: {lines:?}"
        );
    }
    for who in ["health", "notify"] {
        assert_eq!(
            seen(&s.env, who),
            [format!(
                "{who} SSL_CERT_FILE=unset GIT_SSL_CAINFO=unset CARGO_HTTP_CAINFO=unset"
            )],
            "{:?}",
            s.env.calls()
        );
    }

    // A value of the service's own environment reaches the hooks as it was.
    s.env.clear_calls();
    s.env.var("SSL_CERT_FILE", "/etc/ssl/the-services-own.pem");
    s.release("v0.3.0");
    s.env.run(&["check-and-apply"]).expect(0);
    for who in ["health", "notify"] {
        assert_eq!(
            seen(&s.env, who),
            [format!(
                "{who} SSL_CERT_FILE=/etc/ssl/the-services-own.pem GIT_SSL_CAINFO=unset CARGO_HTTP_CAINFO=unset"
            )],
            "{:?}",
            s.env.calls()
        );
    }
}

/// Issue 17, item 10 names build scripts among the children that must not inherit
/// `ca_file`. The checkout build's compile is offline (`--frozen`): a release's build
/// script sees none of `ca_file`, neither as `SSL_CERT_FILE` (which everything it starts
/// would trust instead of the system's roots) nor as git's or cargo's variables. (cargo
/// itself may set `SSL_CERT_FILE` to the system's bundle, by `openssl-probe`: not ours.)
#[test]
fn a_release_s_build_scripts_do_not_get_ca_file() {
    use crate::e2e_cargo::{add_release, e2e, plain_install};
    use crate::support::fixture::Daemon;
    let mut e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0", "v0.2.0"]);
    let ca = e.env.dir.path().join("forge-ca.pem");
    std::fs::write(&ca, "not used: the repository is on this machine\n").unwrap();
    let ca = ca.display().to_string();
    let seen = e.env.dir.path().join("build-script-saw");
    let script = format!(
        "fn main() {{\n    let v = |k: &str| std::env::var(k).unwrap_or_else(|_| \"unset\".into());\n    std::fs::write({:?}, format!(\"SSL_CERT_FILE={{}} GIT_SSL_CAINFO={{}} CARGO_HTTP_CAINFO={{}}\", v(\"SSL_CERT_FILE\"), v(\"GIT_SSL_CAINFO\"), v(\"CARGO_HTTP_CAINFO\"))).unwrap();\n}}\n",
        seen.display().to_string()
    );
    add_release(&e, "v0.2.0", |dir| {
        std::fs::write(dir.join("crates/hephd/build.rs"), &script).unwrap();
    });
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.var("HEPH_SELFUPDATE_CA_FILE", &ca);

    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    let saw = std::fs::read_to_string(&seen).unwrap();
    assert!(
        saw.contains("GIT_SSL_CAINFO=unset CARGO_HTTP_CAINFO=unset") && !saw.contains(&ca),
        "the build script saw ca_file: {saw}\n{}",
        run.stderr
    );
}

#[test]
fn make_install_system_as_root_without_bin_compiles_nothing_and_says_to_build_first() {
    if !is_root() {
        eprintln!(
            "SKIPPED: the refusal is for root (sudo make install-system); CI runs it as root"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cargo.log");
    // Any cargo make would run (to build, or to ask where it builds) records itself.
    let cargo = crate::support::env::write_script(
        &dir.path().join("cargo"),
        &format!("#!/bin/sh\necho \"cargo $*\" >> '{}'\n", log.display()),
    );
    let out = Command::new("make")
        .args(["--no-print-directory", "-n", "install-system"])
        .arg(format!("CARGO={}", cargo.display()))
        .args(["USER=alice", "USER_HOME=/home/alice"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/root")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !out.status.success()
            && stderr.contains("build it first as yourself")
            && stderr.contains("BIN="),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains("cargo"), "a compile as root:\n{stdout}");
    assert!(
        !log.exists(),
        "cargo ran as root: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// A working tree for `sudo make install-system … BIN=…` in `dir`: the Makefile, the unit
/// templates (the timer's a link to `secret`, when `linked`), and at `BIN` a program that
/// records the uid it ran as in `ran_as`; each path owned by `owner(path)` (relative to
/// the tree; "" for the tree itself).
fn install_tree(
    dir: &Path,
    secret: &Path,
    ran_as: &Path,
    linked: bool,
    owner: impl Fn(&str) -> u32,
) -> PathBuf {
    let tree = dir.join("tree");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        "Makefile",
        "units/heph-selfupdate@.service",
        "units/heph-selfupdate@.timer",
        "units/heph-selfupdate@.service.d/home.conf",
    ];
    for f in files {
        std::fs::create_dir_all(tree.join(f).parent().unwrap()).unwrap();
        if linked && f == "units/heph-selfupdate@.timer" {
            std::os::unix::fs::symlink(secret, tree.join(f)).unwrap();
        } else {
            std::fs::copy(repo.join(f), tree.join(f)).unwrap();
        }
    }
    crate::support::env::write_script(
        &tree.join("target/release/heph-selfupdate"),
        &format!("#!/bin/sh\nid -u >> '{}'\n", ran_as.display()),
    );
    for p in files.iter().chain(&[
        "units/heph-selfupdate@.service.d",
        "units",
        "target/release/heph-selfupdate",
        "target/release",
        "target",
        "",
    ]) {
        let uid = owner(p);
        std::os::unix::fs::lchown(tree.join(p), Some(uid), Some(uid)).unwrap();
    }
    tree
}

/// Issue 17 asks that root never open the service user's files, naming Makefile
/// targets, and item 7 takes seriously a working tree the service user owns. `sudo make
/// install-system … BIN=…` reads the tree's unit templates as root (`__render
/// --template=`, `install`), following links, and runs the `BIN` it installs
/// (`heph-selfupdate __render`). As root it refuses, before anything runs, a link among
/// them, and any of them (the Makefile too) or a directory above them that someone other
/// than root or the user who ran sudo owns or may change; it says what to do instead.
#[test]
fn make_install_system_as_root_neither_reads_nor_runs_what_another_user_owns_in_the_tree() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        eprintln!("SKIPPED: the install is root's (sudo make install-system); CI runs it as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A root-only KEY=VALUE file, as a WireGuard key is.
    let vault = dir.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = vault.join("wg0.conf");
    std::fs::write(&secret, "PrivateKey = root-only-7f3a9c\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ran_as = dir.path().join("ran-as");
    std::fs::write(&ran_as, "").unwrap();
    std::fs::set_permissions(&ran_as, std::fs::Permissions::from_mode(0o666)).unwrap();
    let nobody = 65534;
    let install = |name: &str, linked: bool, owner: &dyn Fn(&str) -> u32, sudo_uid: Option<u32>| {
        let case = dir.path().join(name);
        std::fs::create_dir(&case).unwrap();
        let tree = install_tree(&case, &secret, &ran_as, linked, owner);
        let dest = case.join("dest");
        let mut make = Command::new("make");
        make.args(["--no-print-directory", "install-system"])
            .args(["USER=alice", "USER_HOME=/home/alice"])
            .arg("BIN=target/release/heph-selfupdate")
            .arg(format!("DESTDIR={}", dest.display()))
            .current_dir(&tree)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", "/root");
        if let Some(uid) = sudo_uid {
            make.env("SUDO_UID", uid.to_string());
        }
        let out = make.output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let leaked = walk_files(&dest)
            .into_iter()
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("root-only-7f3a9c")))
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>();
        (out.status.success(), said, leaked, dest)
    };
    let root_owns = |_: &str| 0;
    for (name, linked, owner, refused) in [
        (
            "the service user's tree",
            false,
            &(|_: &str| nobody) as &dyn Fn(&str) -> u32,
            "refusing to read or run Makefile: it belongs to uid 65534",
        ),
        (
            "their BIN",
            false,
            &|p: &str| if p.starts_with("target") { nobody } else { 0 },
            "refusing to read or run target/release/heph-selfupdate: it belongs to uid 65534",
        ),
        (
            "a linked template",
            true,
            &root_owns,
            "refusing to read or run units/heph-selfupdate@.timer: it is a link or not a file",
        ),
        (
            "their units directory",
            false,
            &|p: &str| if p == "units" { nobody } else { 0 },
            "(a directory above units/heph-selfupdate@.service): it belongs to uid 65534",
        ),
    ] {
        let (ok, said, leaked, dest) = install(name, linked, owner, None);
        assert!(
            !ok && said.contains(refused) && said.contains("help: root installs only from files"),
            "{name}: {said}"
        );
        assert!(!dest.exists(), "{name}: nothing is installed:\n{said}");
        assert!(leaked.is_empty(), "{name}: {leaked:?}");
        assert_eq!(
            std::fs::read_to_string(&ran_as).unwrap(),
            "",
            "{name}: BIN ran as root:\n{said}"
        );
    }
    // The user who ran sudo installs from a tree of their own (their BIN runs as root:
    // they could run anything as root anyway).
    let (ok, said, _, dest) = install(
        "the sudo user's tree",
        false,
        &|_: &str| nobody,
        Some(nobody),
    );
    assert!(
        ok && dest.join("usr/local/bin/heph-selfupdate").exists(),
        "{said}"
    );
    // `make -n` shows the check among the commands.
    let out = Command::new("make")
        .args(["--no-print-directory", "-n", "install-system"])
        .args(["USER=alice", "USER_HOME=/home/alice", "BIN=/x"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/root")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown
            .lines()
            .next()
            .is_some_and(|l| l.contains("refusing to read or run")),
        "{shown}"
    );
}

/// Every file under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files.extend(walk_files(&p));
        } else {
            files.push(p);
        }
    }
    files
}

/// Who can write a `tool_path` directory, not its name, is what counts. The macOS default
/// used to start with `/opt/homebrew/bin` and `/usr/local/bin`, which Homebrew makes the
/// installing user's own — on a one-person Mac the very user the agent runs as, whose
/// builds could then leave a `git` or `ssh-keygen` there that every later run
/// (`verify_tag` included) uses. Shown on Linux with a `tool_path` directory the service
/// user owns, as Homebrew's is, and with a program of that user's in a directory root
/// owns: each is warned about once as the command starts; the system's own directories
/// are not.
#[test]
fn a_tool_path_directory_or_program_the_service_user_can_write_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        eprintln!("SKIPPED: running as a throw-away user needs root (runuser); CI runs it as root");
        return;
    }
    let (user, _uid, home) = create_user();
    let _guard = UserGuard(user.clone());
    let brew = home.join("homebrew/bin");
    let binary = home.join("heph-selfupdate");
    std::fs::create_dir_all(&brew).unwrap();
    std::fs::copy(crate::support::binary(), &binary).unwrap();
    chown_all(&user, &home);
    // A directory root owns, holding an ssh-keygen the user owns.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ssh_keygen =
        crate::support::env::write_script(&dir.path().join("ssh-keygen"), "#!/bin/sh\n");
    let chown = Command::new("chown")
        .arg(&user)
        .arg(&ssh_keygen)
        .status()
        .unwrap();
    assert!(chown.success());
    let config = |tool_path: &str| {
        let out = Command::new("runuser")
            .args(["-u", &user, "--", "env", "-i"])
            .arg(format!("HOME={}", home.display()))
            .arg("HEPH_SELFUPDATE_FORGE_URL=https://forge.test.invalid")
            .arg("HEPH_SELFUPDATE_REPO=o/hephd")
            .arg("HEPH_SELFUPDATE_GIT_URL=https://forge.test.invalid/o/hephd.git")
            .arg(format!("HEPH_SELFUPDATE_TOOL_PATH={tool_path}"))
            .arg(&binary)
            .arg("config")
            .current_dir(&home)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let warned = |stderr: &str, what: &str| {
        stderr
            .lines()
            .filter(|l| l.starts_with("warning: `tool_path`") && l.contains(what))
            .count()
    };

    let stderr = config(&format!("{},/usr/local/bin,/usr/bin,/bin", brew.display()));
    assert_eq!(
        warned(
            &stderr,
            &format!("holds {}, which belongs to uid", brew.display())
        ),
        1,
        "{user} owns {} (first in tool_path), so it must be warned about once:\n{stderr}",
        brew.display()
    );
    let stderr = config(&format!(
        "{},/usr/local/bin,/usr/bin,/bin",
        dir.path().display()
    ));
    assert_eq!(
        warned(
            &stderr,
            &format!(
                "ssh-keygen is {}, which belongs to uid",
                ssh_keygen.display()
            )
        ),
        1,
        "{stderr}"
    );
    let stderr = config("/usr/local/bin,/usr/bin,/bin");
    assert_eq!(warned(&stderr, ""), 0, "the system's directories: {stderr}");
}

/// An install from before issue 17 left a drop-in with `EnvironmentFile=` into the
/// user's home, which PID 1 reads as root, following links: `doctor` (what `make
/// doctor-system` runs) says so and what to do; without it, nothing is said.
#[test]
fn doctor_warns_when_an_older_system_drop_in_still_has_root_read_the_env_file() {
    let mut s = crate::support::scenario::sandbox("0.1.0", &["v0.1.0"]);
    s.env
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "systemd-system")
        .var("HEPH_SELFUPDATE_RESTART", "respawn");
    let system_unit = |env: &TestEnv| {
        let j = env.run(&["doctor", "--json"]).json();
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "system unit")
            .cloned()
    };
    assert_eq!(
        system_unit(&s.env),
        None,
        "nothing to say of a current install"
    );
    let env_file = s.env.home.join(".config/heph-selfupdate/env");
    let drop_in = "/etc/systemd/system/heph-selfupdate@u.service.d/home.conf";
    s.env.fake_mode(
        "selfupdate-env-files",
        &format!("{} (ignore_errors=yes)\n", env_file.display()),
    );
    s.env.fake_mode("selfupdate-drop-ins", drop_in);
    let c = system_unit(&s.env).expect("a warning");
    let (detail, fix) = (c["detail"].as_str().unwrap(), c["fix"].as_str().unwrap());
    assert_eq!(c["status"], "warn");
    assert!(
        detail.contains(&format!("still has EnvironmentFile={}", env_file.display()))
            && detail.contains(drop_in)
            && detail.contains("systemd reads it as root"),
        "{detail}"
    );
    assert!(fix.contains("make install-system USER="), "{fix}");
}

/// The programs a release's build leaves in `~/.cargo/bin` to be run by later runs.
const PLANTED: &[&str] = &[
    "git",
    "ssh",
    "ssh-keygen",
    "kill",
    "systemctl",
    "launchctl",
    "loginctl",
];

#[test]
fn programs_a_build_plants_in_the_path_directory_it_writes_are_not_run_by_later_runs() {
    let mut s = crate::support::scenario::sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "systemd-system")
        .var("HEPH_SELFUPDATE_RESTART", "respawn");
    s.env.fake_mode("keepalive", "");
    s.env.start_daemon();
    // The unit's PATH: ~/.cargo/bin, which builds write, first.
    let path = format!(
        "{}:{}:/usr/local/bin:/usr/bin:/bin",
        s.env.bin_dir.display(),
        s.env.fakes.display()
    );
    s.env
        .var("PATH", &path)
        .var("FAKE_REAL_GIT", crate::support::env::real_git());
    // The system's git (first in tool_path) says which ssh it would run.
    s.env.fake_bin(
        "git",
        "#!/bin/sh\necho \"git finds ssh=$(command -v ssh) ssh-keygen=$(command -v ssh-keygen)\" >> \"$FAKE_LOG\"\nexec \"$FAKE_REAL_GIT\" \"$@\"\n",
    );
    // The build: says which git and ssh cargo would run, plants its programs, installs.
    let installs = s.env.fakes.join("cargo-installs");
    std::fs::rename(s.env.fakes.join("cargo"), &installs).unwrap();
    let plant = format!(
        "for p in {}; do printf '#!/bin/sh\\necho \"PLANTED %s $*\" >> \"$FAKE_LOG\"\\nexit 1\\n' \"$p\" > \"$HOME/.cargo/bin/$p\"; chmod +x \"$HOME/.cargo/bin/$p\"; done\n",
        PLANTED.join(" ")
    );
    s.env.fake_bin(
        "cargo",
        &format!(
            "#!/bin/sh\necho \"cargo finds git=$(command -v git) ssh=$(command -v ssh)\" >> \"$FAKE_LOG\"\n{plant}exec \"{}\" \"$@\"\n",
            installs.display()
        ),
    );

    s.env.run(&["check-and-apply"]).expect(0);
    for p in PLANTED {
        assert!(s.env.bin_dir.join(p).is_file(), "the build planted {p}");
    }
    // What was planted records itself when run (as the PATH lookup would run it).
    s.env.clear_calls();
    s.env.run_other(
        Command::new("sh")
            .args(["-c", "git --version || true"])
            .env_clear(),
    );
    assert_eq!(s.env.calls(), ["PLANTED git --version"]);
    s.release("v0.3.0");
    s.env.clear_calls();
    let run = s.env.run(&["check-and-apply"]);
    let calls = s.env.calls();
    let planted: Vec<&String> = calls.iter().filter(|c| c.starts_with("PLANTED")).collect();
    assert!(
        planted.is_empty(),
        "a later run ran what a build planted: {planted:?}\n{}",
        run.stderr
    );
    run.expect(0);
    assert!(
        run.stderr.contains("updated 0.2.0 -> 0.3.0"),
        "{}",
        run.stderr
    );
    let bin = s.env.bin_dir.display().to_string();
    let lookups: Vec<&String> = calls.iter().filter(|c| c.contains(" finds ")).collect();
    assert!(
        lookups.iter().any(|c| c.starts_with("git finds"))
            && lookups.iter().any(|c| c.starts_with("cargo finds git=/")),
        "{calls:#?}"
    );
    assert!(
        lookups.iter().all(|c| !c.contains(&bin)),
        "git, or cargo's git and ssh, would come from {bin}: {lookups:#?}"
    );
}

#[test]
fn the_env_file_is_read_by_heph_selfupdate_as_its_user_and_never_as_root() {
    let mut env = TestEnv::new();
    let file = env.home.join(".config/heph-selfupdate/env");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "# the service's own\nHEPH_SELFUPDATE_REPO=from/the-env-file\nnot an assignment\n",
    )
    .unwrap();
    env.var("HEPH_SELFUPDATE_ENV_FILE", file.to_str().unwrap());
    let binary = env.dir.path().join("heph-selfupdate");
    std::fs::copy(crate::support::binary(), &binary).unwrap();
    // As a user: its own file (a throw-away user when this runs as root).
    let (run, _guard) = if is_root() {
        let as_root = env.run(&["config"]);
        as_root.expect(2);
        assert!(
            as_root.stderr.contains("not reading the environment file")
                && as_root.stderr.contains("as root"),
            "{}",
            as_root.stderr
        );
        let (user, _uid, _home) = create_user();
        chown_all(&user, env.dir.path());
        let run = run_as(&user, &env, &binary, &["config", "--json"]);
        (run, Some(UserGuard(user)))
    } else {
        (env.run(&["config", "--json"]), None)
    };
    run.expect(0);
    let v = run.json();
    assert_eq!(v["values"]["repo"]["value"], "from/the-env-file", "{v}");
    assert_eq!(v["values"]["repo"]["source"], "env HEPH_SELFUPDATE_REPO");
    assert!(
        run.stderr.contains("line 3: not KEY=VALUE; skipped"),
        "{}",
        run.stderr
    );
}
