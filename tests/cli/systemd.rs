//! Real systemd, end to end (root only; skips with a message elsewhere, CI runs it):
//! a throw-away user installs and enables the real units with `make install enable`; a
//! stand-in hephd.service runs v0.1.0 (built by the real cargo from a local git
//! repository); one start of heph-selfupdate.service — as the timer would — updates it to
//! v0.2.0 with a new main PID; v0.3.0, whose daemon dies at start, is rolled back for
//! real and marked bad; `make doctor` passes in the service's environment; `make disable`
//! leaves no timer.

use crate::support::fixture::Daemon;
use crate::support::forge::FakeRelease;
use crate::support::sandbox::{self, Scenario, check};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_real_systemd_timer_run_updates_rolls_back_and_turns_off() {
    if let Some(why) = sandbox::unavailable() {
        eprintln!(
            "SKIPPED: the real-systemd test needs root and systemd ({why}); CI runs it as root"
        );
        return;
    }
    let sc = match Scenario::new(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::DiesAtStart),
        ],
        &["v0.2.0", "v0.1.0"],
        "3s",
    ) {
        Ok(sc) => sc,
        Err(why) => {
            eprintln!("SKIPPED: the systemd sandbox did not boot here: {why}");
            return;
        }
    };
    let (sb, forge, home) = (&sc.sb, &sc.forge, &sc.home);
    let h = home.display();
    let first_pid = sb.property("hephd.service", "MainPID");
    assert_ne!(first_pid, "0");
    let make = |target: &str| sc.make(target);
    // heph-selfupdate's journal, plain text, with extra journalctl arguments.
    let journal_of = |extra: &[&str]| {
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
    };
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
