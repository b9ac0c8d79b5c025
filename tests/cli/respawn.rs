//! `restart = "respawn"` with the stand-ins: SIGTERM to the daemon's main process, sent by
//! heph-selfupdate itself through a pidfd (no program runs for it), and a stand-in manager
//! that starts the daemon again by itself (`$FAKE_STATE/keepalive`, like systemd's
//! `Restart=always` and launchd's `KeepAlive`). The restart never goes through the
//! manager's restart command.

use crate::apply::{assert_same_commands, collapsed, recorded_form};
use crate::support::env::pid_alive;
use crate::support::scenario::{Sandbox, calls_of, sandbox, version_of};

/// The update scenario with respawn under `manager` (`systemd-system` or `launchd`); the
/// daemon runs under the stand-in's supervisor when `keepalive`.
fn respawn_sandbox(manager: &str, keepalive: bool, tags: &[&str]) -> Sandbox {
    let mut s = sandbox("0.1.0", tags);
    s.env
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", manager)
        .var("HEPH_SELFUPDATE_RESTART", "respawn");
    if manager == "launchd" {
        s.env.var("HEPH_SELFUPDATE_SERVICE", "mcquack.eblume.heph");
    }
    if keepalive {
        s.env.fake_mode("keepalive", "");
        s.env.start_daemon();
    }
    s
}

/// How often the stand-in manager started the daemon again by itself.
fn automatic_restarts(s: &Sandbox) -> u64 {
    std::fs::read_to_string(s.env.dir.path().join("fake-state/restarts"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// The line a run logs when it has sent SIGTERM to `pid`.
fn sent(service: &str, pid: u32) -> String {
    format!("sent SIGTERM to {service}'s main process {pid}")
}

#[track_caller]
fn assert_respawned_not_restarted(s: &Sandbox, stderr: &str, service: &str, old_pid: u32) {
    assert!(
        stderr.contains(&sent(service, old_pid)),
        "SIGTERM to the old main process: {stderr}"
    );
    assert!(!pid_alive(old_pid), "the old main process is gone");
    let calls = s.env.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("kill ")),
        "no kill(1): the signal goes through a pidfd: {calls:#?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains(" restart ") || c.contains("kickstart")),
        "the manager's restart command is never used: {calls:#?}"
    );
}

#[test]
fn respawn_updates_a_system_unit_by_sigterm_and_systemd_starts_the_new_binary() {
    let s = respawn_sandbox("systemd-system", true, &["v0.1.0", "v0.2.0"]);
    let old_pid = s.env.daemon_pid().unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert_respawned_not_restarted(&s, &run.stderr, "hephd.service", old_pid);
    let systemctl = calls_of(&s.env, "systemctl");
    assert!(
        systemctl
            .iter()
            .all(|c| c.starts_with("systemctl show --property=")),
        "only the unprivileged `systemctl show` of the system manager: {systemctl:#?}"
    );
    let new_pid = s.env.daemon_pid().unwrap();
    assert_ne!(new_pid, old_pid);
    assert!(s.env.daemon_alive() && !pid_alive(old_pid));
    assert_eq!(automatic_restarts(&s), 1, "the manager started it again");
    assert_eq!(
        version_of(&s.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (fake)"
    );
    assert_eq!(s.env.state()["history"][0]["outcome"], "updated");
}

#[test]
fn respawn_rolls_back_a_release_that_dies_at_start_and_marks_it_bad() {
    let s = respawn_sandbox("systemd-system", true, &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("bad-0.2.0", "0");
    let old_pid = s.env.daemon_pid().unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("rolled back to 0.1.0"),
        "{}",
        run.stderr
    );
    assert_respawned_not_restarted(&s, &run.stderr, "hephd.service", old_pid);
    assert!(s.env.is_bad("0.2.0"), "{}", s.env.state());
    assert_eq!(s.env.current_root().as_deref(), Some("0.1.0"));
    assert!(s.env.daemon_alive(), "the old release runs again");
    assert_eq!(
        version_of(&s.env.bin_dir.join("hephd")),
        "hephd 0.1.0 (fake)"
    );
    assert!(
        s.env.state()["intent"].is_null(),
        "the switch is closed: {}",
        s.env.state()
    );
}

#[test]
fn respawn_updates_and_rolls_back_a_launchd_keepalive_agent() {
    let s = respawn_sandbox("launchd", true, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    s.forge.set_releases(vec![
        crate::support::forge::FakeRelease::new("v0.2.0"),
        crate::support::forge::FakeRelease::new("v0.1.0"),
    ]);
    let old_pid = s.env.daemon_pid().unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert_respawned_not_restarted(&s, &run.stderr, "mcquack.eblume.heph", old_pid);
    let launchctl = calls_of(&s.env, "launchctl");
    assert!(
        launchctl
            .iter()
            .all(|c| c.starts_with("launchctl print gui/")),
        "{launchctl:#?}"
    );
    assert_eq!(
        version_of(&s.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (fake)"
    );
    assert!(s.env.daemon_alive() && !pid_alive(old_pid));

    // v0.3.0 dies two tenths of a second after each start: seen up, then gone.
    s.env.fake_mode("bad-0.3.0", "0.2");
    s.forge.set_releases(vec![
        crate::support::forge::FakeRelease::new("v0.3.0"),
        crate::support::forge::FakeRelease::new("v0.2.0"),
        crate::support::forge::FakeRelease::new("v0.1.0"),
    ]);
    s.env.clear_calls();
    let pid = s.env.daemon_pid().unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("rolled back to 0.2.0"),
        "{}",
        run.stderr
    );
    assert_respawned_not_restarted(&s, &run.stderr, "mcquack.eblume.heph", pid);
    assert!(s.env.is_bad("0.3.0"));
    assert!(s.env.daemon_alive());
    assert_eq!(
        version_of(&s.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (fake)"
    );
}

#[test]
fn respawn_signals_nothing_when_the_daemon_is_not_running_and_leaves_the_switch_to_the_next_run() {
    for (manager, service) in [
        ("systemd-system", "hephd.service"),
        ("launchd", "mcquack.eblume.heph"),
    ] {
        let s = respawn_sandbox(manager, false, &["v0.1.0", "v0.2.0"]);
        let pid = s.env.daemon_pid().unwrap();
        std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap();
        while pid_alive(pid) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let run = s.env.run(&["check-and-apply"]);
        run.expect(1);
        assert!(
            run.stderr.contains(&format!("{service}: "))
                && run
                    .stderr
                    .contains("not running, so respawn has nothing to signal")
                && run
                    .stderr
                    .contains(&format!("start {service}, as root for a system unit")),
            "{manager}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("sent SIGTERM"),
            "{manager}: no signal is sent anywhere: {}",
            run.stderr
        );
        assert!(!s.env.is_bad("0.2.0"), "{manager}: not the release's fault");
        assert!(
            !s.env.state()["intent"].is_null(),
            "{manager}: the next run finishes the switch"
        );
        assert_eq!(
            version_of(&s.env.bin_dir.join("hephd")),
            "hephd 0.1.0 (fake)",
            "{manager}: switched back: whoever starts the daemon starts the old release"
        );
    }
}

#[test]
fn respawn_without_restart_always_is_no_verdict_on_the_release() {
    // The daemon runs, but nothing starts it again after SIGTERM (Restart=no).
    let s = respawn_sandbox("systemd-system", false, &["v0.1.0", "v0.2.0"]);
    let old_pid = s.env.daemon_pid().unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains(&sent("hephd.service", old_pid)),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("does not start it again") && run.stderr.contains("Restart=always"),
        "{}",
        run.stderr
    );
    assert!(!s.env.is_bad("0.2.0"), "{}", s.env.state());
    assert!(
        !s.env.backoff_of("0.2.0").is_null(),
        "tried again after a backoff"
    );
}

#[test]
fn the_dry_run_says_how_respawn_signals_and_the_run_runs_the_commands_it_shows() {
    let mut s = respawn_sandbox("systemd-system", true, &["v0.1.0", "v0.2.0"]);
    s.env.record_everything();
    let plan = s.env.run(&["check-and-apply", "--dry-run", "--json"]);
    plan.expect(0);
    let planned: Vec<Vec<String>> =
        serde_json::from_value(plan.json()["commands"].clone()).unwrap();
    let planned: Vec<String> = planned.iter().map(|a| recorded_form(a)).collect();
    assert!(
        planned.iter().all(|p| !p.starts_with("kill ")),
        "no program sends the signal: {planned:#?}"
    );
    let said = "(by SIGTERM to the main process of hephd.service through a pidfd, once it is confirmed to be still the unit's; systemd starts it again)";
    assert!(
        plan.json()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|st| st["step"].as_str().unwrap().contains(said)),
        "{}",
        plan.stdout
    );
    let human = s.env.run(&["check-and-apply", "--dry-run"]);
    assert!(human.all().contains(said), "{}", human.all());
    s.env.clear_calls();
    let old_pid = s.env.daemon_pid().unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(run.stderr.contains(&sent("hephd.service", old_pid)));
    let ran = s.env.calls();
    assert_eq!(ran[..2], ["hephd --version", "hephd --version"], "{ran:#?}");
    assert_same_commands(&collapsed(&ran[2..]), &collapsed(&planned));
}

#[test]
fn doctor_checks_what_respawn_needs_of_a_system_unit() {
    let s = respawn_sandbox("systemd-system", true, &["v0.1.0"]);
    let status = |s: &Sandbox| {
        let j = s.env.run(&["doctor", "--json"]).json();
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                ["restart", "daemon user", "daemon binary"].contains(&c["name"].as_str().unwrap())
            })
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                    c["detail"].as_str().unwrap().to_owned(),
                    c["fix"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let good = status(&s);
    assert_eq!(
        good.iter()
            .map(|(n, st, _, _)| (n.as_str(), st.as_str()))
            .collect::<Vec<_>>(),
        [
            ("restart", "ok"),
            ("daemon user", "ok"),
            ("daemon binary", "ok")
        ],
        "{good:#?}"
    );
    assert!(
        calls_of(&s.env, "systemctl")
            .iter()
            .any(|c| c
                == "systemctl show --property=Restart,User,ExecStart,RestartUSec hephd.service"),
        "{:#?}",
        s.env.calls()
    );

    s.env.fake_mode("unit-restart", "on-failure");
    s.env.fake_mode("unit-user", "nobody");
    s.env.fake_mode("unit-exec", "/usr/bin/hephd");
    let bad = status(&s);
    let find = |name: &str| bad.iter().find(|c| c.0 == name).unwrap().clone();
    let (_, st, detail, fix) = find("restart");
    assert_eq!(st, "fail");
    assert!(
        detail.contains("counts an exit by SIGTERM as clean") && fix.contains("Restart=always"),
        "{detail} / {fix}"
    );
    let (_, st, detail, fix) = find("daemon user");
    assert_eq!(st, "fail");
    assert!(
        detail.contains("runs as nobody") && fix.contains("make install-system USER="),
        "{detail} / {fix}"
    );
    let (_, st, detail, fix) = find("daemon binary");
    assert_eq!(st, "fail");
    assert!(
        detail.contains("/usr/bin/hephd") && fix.contains(".cargo/bin/hephd"),
        "{detail} / {fix}"
    );
    s.env.run(&["doctor"]).expect(1);

    // With restart = "manager" none of it is asked.
    let mut s = s;
    s.env.var("HEPH_SELFUPDATE_RESTART", "manager");
    assert!(status(&s).is_empty());
}

#[test]
fn doctor_checks_keepalive_of_a_launchd_agent_for_respawn() {
    let s = respawn_sandbox("launchd", true, &["v0.1.0"]);
    let plist = s
        .env
        .home
        .join("Library/LaunchAgents/mcquack.eblume.heph.plist");
    std::fs::create_dir_all(plist.parent().unwrap()).unwrap();
    let write = |keepalive: &str| {
        std::fs::write(
            &plist,
            format!(
                "<?xml version=\"1.0\"?>\n<plist version=\"1.0\">\n<dict>\n\t<key>Label</key>\n\t<string>mcquack.eblume.heph</string>\n\t<key>ProgramArguments</key>\n\t<array>\n\t\t<string>{}/hephd</string>\n\t\t<string>--mode</string>\n\t</array>\n{keepalive}</dict>\n</plist>\n",
                s.env.bin_dir.display()
            ),
        )
        .unwrap();
    };
    let checks = || {
        let j = s.env.run(&["doctor", "--json"]).json();
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| ["restart", "daemon binary"].contains(&c["name"].as_str().unwrap()))
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    write("\t<key>KeepAlive</key>\n\t<true/>\n");
    assert_eq!(checks(), ["ok", "ok"]);
    write("");
    assert_eq!(checks(), ["fail", "ok"]);
}
