//! Real systemd, end to end (root only; skips with a message elsewhere, CI runs it):
//! a throw-away user installs and enables the real units with `make install enable`; a
//! stand-in hephd.service runs v0.1.0 (built by the real cargo from a local git
//! repository); one start of heph-selfupdate.service — as the timer would — updates it to
//! v0.2.0 with a new main PID; v0.3.0, whose daemon dies at start, is rolled back for
//! real and marked bad; `make doctor` passes in the service's environment; `make disable`
//! leaves no timer. A workspace shaped like pueue (a client and a daemon in one package)
//! goes the same way from an empty `~/.cargo/bin`, proved by the daemon's own client.

use std::os::unix::fs::MetadataExt;

use crate::support::fixture::{Daemon, Taskqd};
use crate::support::forge::FakeRelease;
use crate::support::sandbox::{self, Scenario, check};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// heph-selfupdate's journal under the user's manager, plain text, with extra journalctl
/// arguments.
fn user_journal(sb: &sandbox::Sandbox, extra: &[&str]) -> String {
    let mut args = vec![
        "journalctl",
        "--user",
        "-u",
        "heph-selfupdate",
        "--no-pager",
        "-o",
        "cat",
    ];
    args.extend_from_slice(extra);
    text(&sb.user(&args))
}

/// The scenario `boot` makes in a systemd sandbox, or `None` (having said why the test
/// is skipped) where this machine cannot run one: it needs root and systemd; CI runs it.
fn booted(boot: impl FnOnce() -> Result<Scenario, String>) -> Option<Scenario> {
    if let Some(why) = sandbox::unavailable() {
        eprintln!(
            "SKIPPED: the real-systemd test needs root and systemd ({why}); CI runs it as root"
        );
        return None;
    }
    match boot() {
        Ok(sc) => Some(sc),
        Err(why) => {
            eprintln!("SKIPPED: the systemd sandbox did not boot here: {why}");
            None
        }
    }
}

#[test]
fn a_real_systemd_timer_run_updates_rolls_back_and_turns_off() {
    let Some(sc) = booted(|| {
        Scenario::new(
            &[
                ("v0.1.0", Daemon::Good),
                ("v0.2.0", Daemon::Good),
                ("v0.3.0", Daemon::DiesAtStart),
            ],
            &["v0.2.0", "v0.1.0"],
            "3s",
        )
    }) else {
        return;
    };
    let (sb, forge, home) = (&sc.sb, &sc.forge, &sc.home);
    let h = home.display();
    let first_pid = sb.property("hephd.service", "MainPID");
    assert_ne!(first_pid, "0");
    let make = |target: &str| sc.make(target);
    let journal_of = |extra: &[&str]| user_journal(sb, extra);
    let hephd_version = || {
        check(
            &sb.user(&[&format!("{h}/.cargo/bin/hephd"), "--version"]),
            "hephd --version",
        )
        .trim()
        .to_owned()
    };
    let out = make("install");
    check(&out, "make install");
    let out = make("enable");
    check(&out, "make enable");
    assert!(
        text(&out).contains("loginctl enable-linger"),
        "warns about lingering:\n{}",
        text(&out)
    );
    assert_eq!(
        sb.property("heph-selfupdate.timer", "UnitFileState"),
        "enabled"
    );
    let timers = check(
        &sb.user(&["systemctl", "--user", "list-timers", "--all", "--no-pager"]),
        "list-timers",
    );
    assert!(timers.contains("heph-selfupdate.timer"), "{timers}");

    // One run, as the timer would start it.
    let out = sb.user(&["systemctl", "--user", "start", "heph-selfupdate.service"]);
    let journal = journal_of(&[]);
    assert!(
        out.status.success(),
        "the service failed:\n{}\njournal:\n{journal}",
        text(&out)
    );
    assert!(journal.contains("updated 0.1.0 -> 0.2.0"), "{journal}");
    assert_eq!(sb.property("hephd.service", "ActiveState"), "active");
    let second_pid = sb.property("hephd.service", "MainPID");
    assert_ne!(second_pid, first_pid, "restarted onto the new binary");
    assert_eq!(hephd_version(), "hephd 0.2.0 (build of v0.2.0)");
    let errors = journal_of(&["-p", "err"]);
    assert!(
        !errors.contains("updated"),
        "info lines are not logged as errors:\n{errors}"
    );

    // `make doctor` in the service's own environment.
    let out = make("doctor");
    assert!(
        out.status.success(),
        "doctor failed in the service environment:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("[ ok ] cargo"), "{}", text(&out));

    // v0.3.0 dies at start: rolled back for real, marked bad.
    forge.set_releases(vec![
        FakeRelease::new("v0.3.0"),
        FakeRelease::new("v0.2.0"),
        FakeRelease::new("v0.1.0"),
    ]);
    let out = sb.user(&["systemctl", "--user", "start", "heph-selfupdate.service"]);
    assert!(!out.status.success(), "a rolled-back run fails the unit");
    let journal = journal_of(&[]);
    assert!(journal.contains("rolled back to 0.2.0"), "{journal}");
    let errors = journal_of(&["-p", "err"]);
    assert!(
        errors.contains("0.3.0 is unhealthy"),
        "errors carry the error priority:\n{errors}"
    );
    assert_eq!(sb.property("hephd.service", "ActiveState"), "active");
    assert_eq!(hephd_version(), "hephd 0.2.0 (build of v0.2.0)");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.join(".local/state/heph-selfupdate/state.json")).unwrap(),
    )
    .unwrap();
    assert!(state["bad"].get("0.3.0").is_some(), "{state}");

    // Turning it off leaves no timer.
    check(&make("disable"), "make disable");
    let timers = check(
        &sb.user(&["systemctl", "--user", "list-timers", "--all", "--no-pager"]),
        "list-timers",
    );
    assert!(!timers.contains("heph-selfupdate"), "{timers}");
    assert_eq!(
        sb.property("heph-selfupdate.timer", "UnitFileState"),
        "disabled"
    );
    check(&make("disable"), "make disable, again");
    check(&make("uninstall"), "make uninstall");
    assert!(
        !home
            .join(".config/systemd/user/heph-selfupdate.service")
            .exists()
    );
    assert!(!home.join(".local/bin/heph-selfupdate").exists());
}

/// The open switch's phase in the user's state file, if any.
fn intent_phase(home: &std::path::Path) -> Option<String> {
    let text =
        std::fs::read_to_string(home.join(".local/state/heph-selfupdate/state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state["intent"]["phase"].as_str().map(String::from)
}

/// Waits (bounded) until the run is proving the new daemon; not a timing assertion.
fn wait_for_proving(home: &std::path::Path) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while std::time::Instant::now() < deadline {
        if intent_phase(home).as_deref() == Some("proving") {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[test]
fn a_real_systemd_stop_or_kill_in_the_middle_of_a_switch_converges_on_the_next_run() {
    let Some(sc) = booted(|| {
        Scenario::new(
            &[
                ("v0.1.0", Daemon::Good),
                ("v0.2.0", Daemon::Good),
                ("v0.3.0", Daemon::Good),
            ],
            &["v0.2.0", "v0.1.0"],
            "8s",
        )
    }) else {
        return;
    };
    let (sb, forge, home) = (&sc.sb, &sc.forge, &sc.home);
    let h = home.display();
    check(&sc.make("install"), "make install");
    check(
        &sb.user(&["systemctl", "--user", "daemon-reload"]),
        "daemon-reload",
    );
    let journal = || user_journal(sb, &[]);
    let hephd_version = || {
        check(
            &sb.user(&[&format!("{h}/.cargo/bin/hephd"), "--version"]),
            "hephd --version",
        )
        .trim()
        .to_owned()
    };

    // `systemctl --user stop` (what `make disable`, logout and shutdown do) while the new
    // daemon is being watched: the switch is finished before the run exits.
    check(
        &sb.user(&[
            "systemctl",
            "--user",
            "start",
            "--no-block",
            "heph-selfupdate.service",
        ]),
        "start heph-selfupdate.service",
    );
    assert!(
        wait_for_proving(home),
        "the run never got to the proof:\n{}",
        journal()
    );
    check(
        &sb.user(&["systemctl", "--user", "stop", "heph-selfupdate.service"]),
        "systemctl --user stop heph-selfupdate.service",
    );
    let log = journal();
    assert!(
        log.contains("finishing the switch first") && log.contains("updated 0.1.0 -> 0.2.0"),
        "{log}"
    );
    assert_eq!(intent_phase(home), None, "nothing left open:\n{log}");
    assert_eq!(sb.property("hephd.service", "ActiveState"), "active");
    assert_eq!(hephd_version(), "hephd 0.2.0 (build of v0.2.0)");

    // SIGKILL between the switch and the proof: the intent is left, and the next run (as
    // the timer starts it) finishes the switch before deciding anything.
    forge.set_releases(vec![
        FakeRelease::new("v0.3.0"),
        FakeRelease::new("v0.2.0"),
        FakeRelease::new("v0.1.0"),
    ]);
    check(
        &sb.user(&[
            "systemctl",
            "--user",
            "start",
            "--no-block",
            "heph-selfupdate.service",
        ]),
        "start heph-selfupdate.service",
    );
    assert!(
        wait_for_proving(home),
        "the run never got to the proof:\n{}",
        journal()
    );
    check(
        &sb.user(&[
            "systemctl",
            "--user",
            "kill",
            "--signal=SIGKILL",
            "heph-selfupdate.service",
        ]),
        "SIGKILL heph-selfupdate.service",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sb.property("heph-selfupdate.service", "ActiveState") != "inactive"
        && sb.property("heph-selfupdate.service", "ActiveState") != "failed"
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        intent_phase(home).as_deref(),
        Some("proving"),
        "the intent is left"
    );
    let out = sb.user(&["systemctl", "--user", "start", "heph-selfupdate.service"]);
    let log = journal();
    assert!(out.status.success(), "the next run failed:\n{log}");
    assert!(
        log.contains("finishing that switch first") && log.contains("updated 0.2.0 -> 0.3.0"),
        "{log}"
    );
    assert_eq!(intent_phase(home), None, "{log}");
    assert_eq!(sb.property("hephd.service", "ActiveState"), "active");
    assert_eq!(hephd_version(), "hephd 0.3.0 (build of v0.3.0)");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.join(".local/state/heph-selfupdate/state.json")).unwrap(),
    )
    .unwrap();
    let outcomes: Vec<&str> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.ends_with(&["interrupted", "updated"]),
        "the killed run is recorded as interrupted: {outcomes:?}"
    );
}

/// The uids (`real effective saved fs`) of process `pid` inside the sandbox, once it runs
/// `program` (before its exec the unit's main process is systemd's root-owned fork).
fn uids_of(sb: &sandbox::Sandbox, pid: &str, program: &str) -> Option<Vec<u32>> {
    let status = sb.root(&["cat", &format!("/proc/{pid}/status")]);
    let status = String::from_utf8_lossy(&status.stdout);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    // `Name:` is the command name, cut to 15 characters.
    if field("Name:")? != &program[..program.len().min(15)] {
        return None;
    }
    Some(
        field("Uid:")?
            .split_whitespace()
            .filter_map(|i| i.parse().ok())
            .collect(),
    )
}

#[test]
fn a_real_system_timer_run_respawns_a_system_hephd_as_its_user_and_never_as_root() {
    let Some(sc) = booted(|| {
        Scenario::system(
            &[
                ("v0.1.0", Daemon::Good),
                ("v0.2.0", Daemon::Good),
                ("v0.3.0", Daemon::DiesAtStart),
            ],
            &["v0.2.0", "v0.1.0"],
            "3s",
        )
    }) else {
        return;
    };
    let (sb, forge, home) = (&sc.sb, &sc.forge, &sc.home);
    let h = home.display();
    let user = sb.user.clone();
    let instance = format!("heph-selfupdate@{user}.service");
    let timer = format!("heph-selfupdate@{user}.timer");
    let journal = |extra: &[&str]| {
        let mut args = vec!["journalctl", "-u", &instance, "--no-pager", "-o", "cat"];
        args.extend_from_slice(extra);
        text(&sb.root(&args))
    };
    let hephd_version = || {
        check(
            &sb.user(&[&format!("{h}/.cargo/bin/hephd"), "--version"]),
            "hephd --version",
        )
        .trim()
        .to_owned()
    };
    let hephd = |name: &str| sb.system_property("hephd.service", name);
    assert_eq!(hephd("ActiveState"), "active");
    assert_eq!(hephd("User"), user);

    check(&sc.make_as_root("install-system"), "make install-system");
    check(
        &sc.make_as_root("install-system"),
        "make install-system, again",
    );
    check(&sc.make_as_root("enable-system"), "make enable-system");
    assert_eq!(sb.system_property(&timer, "UnitFileState"), "enabled");
    assert_eq!(sb.system_property(&timer, "ActiveState"), "active");
    assert_eq!(sb.system_property(&instance, "User"), user);
    let timers = check(
        &sb.root(&["systemctl", "list-timers", "--all", "--no-pager"]),
        "list-timers",
    );
    assert!(timers.contains(&timer), "{timers}");

    // One run, as the timer would start it; while it runs, its process is the user's.
    let first_pid = hephd("MainPID");
    let first_restarts: u64 = hephd("NRestarts").parse().unwrap();
    check(
        &sb.root(&["systemctl", "start", "--no-block", &instance]),
        "start the instance",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let mut uids = None;
    loop {
        let state = sb.system_property(&instance, "ActiveState");
        let pid = sb.system_property(&instance, "MainPID");
        if uids.is_none() && pid != "0" && !pid.is_empty() {
            uids = uids_of(sb, &pid, "heph-selfupdate");
        }
        if (state == "inactive" || state == "failed") && uids.is_some()
            || std::time::Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = journal(&[]);
    assert_eq!(
        uids,
        Some(vec![sb.uid; 4]),
        "heph-selfupdate runs as {user} (real, effective, saved, fs uid):\n{log}"
    );
    assert_eq!(
        sb.system_property(&instance, "Result"),
        "success",
        "the run failed:\n{log}"
    );
    assert!(
        log.contains("updated 0.1.0 -> 0.2.0")
            && log.contains("sent SIGTERM to hephd.service's main process"),
        "{log}"
    );
    assert_eq!(hephd("ActiveState"), "active");
    assert_ne!(hephd("MainPID"), first_pid, "a new process");
    assert_eq!(
        hephd("NRestarts").parse::<u64>().unwrap(),
        first_restarts + 1,
        "systemd started it again by itself (Restart=always), no restart job"
    );
    assert_eq!(hephd_version(), "hephd 0.2.0 (build of v0.2.0)");

    // doctor as the user, in the environment the system unit gives.
    let out = sc.make_as_root("doctor-system");
    let said = text(&out);
    assert!(out.status.success(), "doctor-system failed:\n{said}");
    for line in [
        "[ ok ] restart: hephd.service has Restart=always",
        &format!("[ ok ] daemon user: hephd.service runs as {user}"),
        "[ ok ] daemon binary: hephd.service starts",
        &format!("[info] timer: {timer} is enabled"),
    ] {
        assert!(said.contains(line), "{line}:\n{said}");
    }

    // v0.3.0 dies at start: rolled back by respawn too, marked bad.
    forge.set_releases(vec![
        FakeRelease::new("v0.3.0"),
        FakeRelease::new("v0.2.0"),
        FakeRelease::new("v0.1.0"),
    ]);
    let out = sb.root(&["systemctl", "start", &instance]);
    let log = journal(&[]);
    assert!(!out.status.success(), "a rolled-back run fails the unit");
    assert!(log.contains("rolled back to 0.2.0"), "{log}");
    assert_eq!(hephd("ActiveState"), "active");
    assert_eq!(hephd_version(), "hephd 0.2.0 (build of v0.2.0)");
    let state_file = home.join(".local/state/heph-selfupdate/state.json");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert!(state["bad"].get("0.3.0").is_some(), "{state}");

    // Never as root: every line heph-selfupdate logged came from the user's processes, and
    // what it wrote is the user's.
    let entries = check(
        &sb.root(&["journalctl", "-u", &instance, "--no-pager", "-o", "json"]),
        "journalctl -o json",
    );
    let ours: Vec<serde_json::Value> = entries
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["SYSLOG_IDENTIFIER"] == "heph-selfupdate")
        .collect();
    assert!(ours.len() > 5, "{entries}");
    for e in &ours {
        assert_eq!(e["_UID"], sb.uid.to_string(), "logged as root: {e}");
    }
    assert_eq!(std::fs::metadata(&state_file).unwrap().uid(), sb.uid);
    assert_eq!(
        std::fs::metadata(home.join(".local/share/heph-selfupdate/versions/0.2.0"))
            .unwrap()
            .uid(),
        sb.uid
    );

    // Turning it off leaves no timer; again is fine; uninstall removes the units.
    check(&sc.make_as_root("disable-system"), "make disable-system");
    check(
        &sc.make_as_root("disable-system"),
        "make disable-system, again",
    );
    let timers = check(
        &sb.root(&["systemctl", "list-timers", "--all", "--no-pager"]),
        "list-timers",
    );
    assert!(!timers.contains("heph-selfupdate"), "{timers}");
    check(
        &sc.make_as_root("uninstall-system"),
        "make uninstall-system",
    );
    let left = sb.root(&[
        "ls",
        "/etc/systemd/system/heph-selfupdate@.service",
        "/usr/local/bin/heph-selfupdate",
    ]);
    assert!(!left.status.success(), "{}", text(&left));
    assert_eq!(hephd("ActiveState"), "active", "hephd itself stays");
}

#[test]
fn a_real_system_unit_and_doctor_system_never_read_the_users_env_file_as_root() {
    let Some(sc) = booted(|| Scenario::system(&[("v0.1.0", Daemon::Good)], &["v0.1.0"], "3s"))
    else {
        return;
    };
    let (sb, forge, home) = (&sc.sb, &sc.forge, &sc.home);
    let user = sb.user.clone();
    let instance = format!("heph-selfupdate@{user}.service");
    // A root-only KEY=VALUE file (as a WireGuard key or a restic password file is), in
    // the sandbox's private /run; the user links the env file to it.
    let secret = "wg-private-key-7c1d0e";
    let toolchain = "leaked-toolchain-7c1d0e";
    check(
        &sb.root(&[
            "sh",
            "-c",
            &format!(
                "umask 077 && printf 'HEPH_TEST_SECRET={secret}\\nRUSTUP_TOOLCHAIN={toolchain}\\n' > /run/heph-root-only.env"
            ),
        ]),
        "write the root-only file",
    );
    let env_file = home.join(".config/heph-selfupdate/env");
    std::fs::remove_file(&env_file).unwrap();
    std::os::unix::fs::symlink("/run/heph-root-only.env", &env_file).unwrap();
    check(&sc.make_as_root("install-system"), "make install-system");
    check(&sb.root(&["systemctl", "daemon-reload"]), "daemon-reload");

    // A run that, once it has its environment, waits on the forge: long enough to read
    // its /proc/<pid>/environ (as root) if it gets that far.
    forge.set_fault(Some(crate::support::forge::Fault::Hang));
    check(
        &sb.root(&["systemctl", "start", "--no-block", &instance]),
        "start the instance",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut environs = Vec::new();
    loop {
        let state = sb.system_property(&instance, "ActiveState");
        let pid = sb.system_property(&instance, "MainPID");
        if uids_of(sb, &pid, "heph-selfupdate").is_some() {
            let environ = sb.root(&["cat", &format!("/proc/{pid}/environ")]);
            environs.push(String::from_utf8_lossy(&environ.stdout).replace('\0', "\n"));
        }
        if state == "failed" || state == "inactive" && !environs.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline || environs.len() >= 3 {
            let _ = sb.root(&["systemctl", "stop", &instance]);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    forge.set_fault(None);
    let log = text(&sb.root(&["journalctl", "-u", &instance, "--no-pager", "-o", "cat"]));
    for environ in &environs {
        assert!(
            !environ.contains(secret) && !environ.contains(toolchain),
            "the root-only file reached heph-selfupdate's environment:\n{environ}"
        );
    }
    assert!(
        !log.contains(secret) && !log.contains(toolchain),
        "the journal holds the root-only file's values:\n{log}"
    );
    assert!(
        log.contains("could not read the environment file") && log.contains("Permission denied"),
        "the run says why it stopped:\n{log}"
    );

    // doctor-system: as the user too, the link gives it nothing.
    let out = sc.make_as_root("doctor-system");
    let said = text(&out);
    assert!(
        !said.contains(secret) && !said.contains(toolchain),
        "doctor-system shows the root-only file's values:\n{said}"
    );
    assert!(
        said.contains("could not read the environment file") && said.contains("Permission denied"),
        "{said}"
    );

    // The user's own file is read, as the user: doctor-system shows what it sets.
    std::fs::remove_file(&env_file).unwrap();
    let h = home.display();
    std::fs::write(
        &env_file,
        format!(
            "PATH={h}/toolchain/bin:{h}/.cargo/bin:/usr/local/bin:/usr/bin:/bin\nRUSTUP_TOOLCHAIN=from-the-env-file\n"
        ),
    )
    .unwrap();
    check(
        &std::process::Command::new("chown")
            .arg(format!("{user}:{user}"))
            .arg(&env_file)
            .output()
            .unwrap(),
        "chown the env file",
    );
    let said = text(&sc.make_as_root("doctor-system"));
    assert!(
        said.contains("[ ok ] cargo") && said.contains("RUSTUP_TOOLCHAIN=from-the-env-file"),
        "{said}"
    );
}

#[test]
fn a_workspace_shaped_like_pueue_is_installed_updated_and_rolled_back_by_real_systemd_and_its_binaries_outlive_heph_selfupdate()
 {
    let Some(sc) = booted(|| {
        Scenario::taskq(
            &[
                ("v0.1.0", Taskqd::Answers),
                ("v0.2.0", Taskqd::Answers),
                ("v0.3.0", Taskqd::Deaf),
            ],
            &["v0.1.0"],
            "3s",
        )
    }) else {
        return;
    };
    let (sb, forge, home) = (&sc.sb, &sc.forge, &sc.home);
    let h = home.display();
    let journal = || user_journal(sb, &[]);
    let version_of = |b: &str| {
        check(
            &sb.user(&[&format!("{h}/.cargo/bin/{b}"), "--version"]),
            &format!("{b} --version"),
        )
        .trim()
        .to_owned()
    };
    // The daemon's own client asks it.
    let client_status = || {
        let out = sb.user(&[&format!("{h}/.cargo/bin/taskq"), "status"]);
        (out.status.success(), text(&out).trim().to_owned())
    };
    let run_once = || sb.user(&["systemctl", "--user", "start", "heph-selfupdate.service"]);
    let daemon = |name: &str| sb.property("taskqd.service", name);
    assert!(
        std::fs::read_dir(home.join(".cargo/bin"))
            .unwrap()
            .next()
            .is_none(),
        "nothing installed yet"
    );
    check(&sc.make("install"), "make install");
    check(
        &sb.user(&["systemctl", "--user", "daemon-reload"]),
        "daemon-reload",
    );

    // The first install, into an empty bin_dir: both binaries, and the unit starts the daemon.
    let out = run_once();
    let log = journal();
    assert!(out.status.success(), "the first install failed:\n{log}");
    assert!(log.contains("updated nothing -> 0.1.0"), "{log}");
    assert_eq!(daemon("ActiveState"), "active", "{log}");
    let first_pid = daemon("MainPID");
    assert_ne!(first_pid, "0");
    assert_eq!(version_of("taskqd"), "taskqd 0.1.0");
    assert_eq!(version_of("taskq"), "taskq 0.1.0");
    assert_eq!(
        client_status(),
        (true, "taskqd 0.1.0 is running".to_owned())
    );

    // `check` finds the daemon it installed: up to date.
    let out = sb.user(&[&format!("{h}/.local/bin/heph-selfupdate"), "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("up to date (0.1.0)"), "{}", text(&out));

    // An update: the daemon restarted onto the new binary, its client with it.
    forge.set_releases(vec![FakeRelease::new("v0.2.0"), FakeRelease::new("v0.1.0")]);
    let out = run_once();
    let log = journal();
    assert!(out.status.success(), "the update failed:\n{log}");
    assert!(log.contains("updated 0.1.0 -> 0.2.0"), "{log}");
    assert_ne!(
        daemon("MainPID"),
        first_pid,
        "restarted onto the new binary"
    );
    assert_eq!(version_of("taskqd"), "taskqd 0.2.0");
    assert_eq!(version_of("taskq"), "taskq 0.2.0");
    assert_eq!(
        client_status(),
        (true, "taskqd 0.2.0 is running".to_owned())
    );

    // v0.3.0 stays up but never answers: only its client can tell. Rolled back.
    forge.set_releases(vec![
        FakeRelease::new("v0.3.0"),
        FakeRelease::new("v0.2.0"),
        FakeRelease::new("v0.1.0"),
    ]);
    let out = run_once();
    let log = journal();
    assert!(!out.status.success(), "a rolled-back run fails the unit");
    assert!(
        log.contains("0.3.0 is unhealthy: health_command failed")
            && log.contains("rolled back to 0.2.0"),
        "{log}"
    );
    assert_eq!(daemon("ActiveState"), "active");
    assert_eq!(version_of("taskqd"), "taskqd 0.2.0");
    assert_eq!(
        version_of("taskq"),
        "taskq 0.2.0",
        "the client went back too"
    );
    assert_eq!(
        client_status(),
        (true, "taskqd 0.2.0 is running".to_owned())
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.join(".local/state/heph-selfupdate/state.json")).unwrap(),
    )
    .unwrap();
    assert!(state["bad"].get("0.3.0").is_some(), "{state}");

    // Turned off and removed (there is no `unmanage` yet): every binary stays and runs.
    check(&sc.make("disable"), "make disable");
    check(&sc.make("uninstall"), "make uninstall");
    assert!(!home.join(".local/bin/heph-selfupdate").exists());
    assert_eq!(version_of("taskqd"), "taskqd 0.2.0");
    assert_eq!(version_of("taskq"), "taskq 0.2.0");
    assert_eq!(
        client_status(),
        (true, "taskqd 0.2.0 is running".to_owned())
    );
    // The README's last step: each binary copied back into bin_dir, then the version
    // roots removed; the unit restarts onto the copy.
    for b in ["taskq", "taskqd"] {
        let link = home.join(".cargo/bin").join(b);
        let resolved = std::fs::canonicalize(&link).unwrap();
        check(
            &sb.user(&[
                "cp",
                "--remove-destination",
                &resolved.display().to_string(),
                &link.display().to_string(),
            ]),
            "cp --remove-destination",
        );
    }
    check(
        &sb.user(&["rm", "-rf", &format!("{h}/.local/share/heph-selfupdate")]),
        "remove the version roots",
    );
    check(
        &sb.user(&["systemctl", "--user", "restart", "taskqd.service"]),
        "restart taskqd",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !client_status().0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        client_status(),
        (true, "taskqd 0.2.0 is running".to_owned())
    );
    assert_eq!(version_of("taskq"), "taskq 0.2.0");
}
