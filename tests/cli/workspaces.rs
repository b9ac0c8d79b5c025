//! Real workspaces, where a package is not a binary: the real cargo builds the taskq
//! fixture (shaped like pueue: one package installing a client and a daemon, a library
//! package beside it; or the daemon in a package named unlike it), and the stand-in
//! service manager runs the daemon cargo installed, proved by the daemon's own client.

use crate::e2e_cargo::{E2e, e2e_of, offer, run_bin};
use crate::support::fixture::{self, TaskqShape, Taskqd, taskq_repo};

/// The taskq fixture with `releases`, the forge offering `offered`; configured with
/// `packages`, `binary = "taskqd"`, `service = "taskqd.service"` and `taskq status` as the
/// health command, and the stand-in service manager running `~/.cargo/bin/taskqd`.
fn taskq(shape: TaskqShape, releases: &[(&str, Taskqd)], offered: &[&str], packages: &str) -> E2e {
    let mut e = e2e_of(|dir| taskq_repo(dir, shape, releases), offered);
    let client = e.env.bin_dir.join("taskq").display().to_string();
    e.env
        .var("HEPH_SELFUPDATE_PACKAGES", packages)
        .var("HEPH_SELFUPDATE_BINARY", "taskqd")
        .var("HEPH_SELFUPDATE_SERVICE", "taskqd.service")
        .var(
            "HEPH_SELFUPDATE_HEALTH_COMMAND",
            &format!("{client} status"),
        );
    e.env.fake_mode("daemon", "taskqd");
    e
}

/// What `taskq status` answers (the client asking the running daemon).
fn status(e: &E2e) -> String {
    let out = std::process::Command::new(e.env.bin_dir.join("taskq"))
        .arg("status")
        .env("HOME", &e.env.home)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The binaries in bin_dir, sorted.
fn bin_dir(e: &E2e) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&e.env.bin_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[test]
fn a_first_install_of_a_package_with_two_binaries_links_both_and_its_daemon_starts() {
    let e = taskq(
        TaskqShape::OnePackage,
        &[("v0.1.0", Taskqd::Answers)],
        &["v0.1.0"],
        "taskq",
    );
    assert!(bin_dir(&e).is_empty(), "nothing installed yet");
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("updated nothing -> 0.1.0"),
        "{}",
        run.stderr
    );
    // Both binaries cargo installed, and not the one behind a feature that is off.
    assert_eq!(bin_dir(&e), ["taskq", "taskqd"]);
    for b in ["taskq", "taskqd"] {
        assert_eq!(
            std::fs::read_link(e.env.bin_dir.join(b)).unwrap(),
            e.env.data_dir().join("current/bin").join(b),
            "{b} is a link into the current root"
        );
    }
    assert_eq!(run_bin(&e.env.bin_dir.join("taskqd")), "taskqd 0.1.0");
    assert!(
        e.env.daemon_alive(),
        "the unit started the daemon cargo installed"
    );
    assert_eq!(status(&e), "taskqd 0.1.0 is running");

    // Up to date: nothing missing, nothing due, every later run leaves it alone.
    let check = e.env.run(&["check", "--json"]);
    check.expect(0);
    let json = check.json();
    assert_eq!(json["installed"], "0.1.0", "{json}");
    assert_eq!(json["missing"], serde_json::json!([]), "{json}");
    let again = e.env.run(&["check-and-apply"]);
    again.expect(0);
    assert!(!again.stderr.contains("building"), "{}", again.stderr);
}

#[test]
fn a_daemon_in_a_package_named_unlike_it_is_found_built_switched_and_rolled_back() {
    let e = taskq(
        TaskqShape::DaemonPackage,
        &[("v0.1.0", Taskqd::Answers), ("v0.2.0", Taskqd::Answers)],
        &["v0.1.0"],
        "taskq,taskq-server",
    );
    // Installed the way people do today; cargo's records in CARGO_HOME say which package
    // put which binary there.
    let cargo_home = e.env.home.join(".cargo");
    e.env.run_other(&mut fixture::plain_install_of(
        &e.repo,
        "v0.1.0",
        &cargo_home,
        &cargo_home,
        &["taskq", "taskq-server"],
    ));
    e.env.start_daemon();
    assert_eq!(status(&e), "taskqd 0.1.0 is running");

    // "missing" is about binaries: there is no binary called taskq-server, nor should be.
    let check = e.env.run(&["check", "--json"]);
    check.expect(0);
    assert_eq!(
        check.json()["missing"],
        serde_json::json!([]),
        "{}",
        check.stdout
    );

    offer(&e, &["v0.1.0", "v0.2.0"]);
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("updated 0.1.0 -> 0.2.0"),
        "{}",
        run.stderr
    );
    assert_eq!(run_bin(&e.env.bin_dir.join("taskqd")), "taskqd 0.2.0");
    assert_eq!(run_bin(&e.env.bin_dir.join("taskq")), "taskq 0.2.0");
    assert_eq!(status(&e), "taskqd 0.2.0 is running");
    // The plain install became a root holding both binaries: the way back.
    let adopted = e.env.data_dir().join("versions/0.1.0/bin");
    assert_eq!(run_bin(&adopted.join("taskqd")), "taskqd 0.1.0");
    assert_eq!(run_bin(&adopted.join("taskq")), "taskq 0.1.0");

    // Every binary goes back together.
    let back = e.env.run(&["rollback"]);
    back.expect(0);
    assert_eq!(run_bin(&e.env.bin_dir.join("taskqd")), "taskqd 0.1.0");
    assert_eq!(run_bin(&e.env.bin_dir.join("taskq")), "taskq 0.1.0");
    assert_eq!(status(&e), "taskqd 0.1.0 is running");
}

#[test]
fn a_binary_the_packages_do_not_install_is_named_by_doctor_and_refused_before_compiling() {
    let mut e = taskq(
        TaskqShape::OnePackage,
        &[("v0.1.0", Taskqd::Answers)],
        &["v0.1.0"],
        "taskq",
    );
    e.env.var("HEPH_SELFUPDATE_BINARY", "pueued");
    let doctor = e.env.run(&["doctor"]);
    doctor.expect(1);
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.contains("] binary:"))
        .unwrap_or_else(|| panic!("no binary line:\n{}", doctor.stdout));
    assert!(line.starts_with("[FAIL]"), "{}", doctor.stdout);
    assert!(
        line.contains("pueued") && line.contains("taskq installs taskq, taskqd"),
        "{line}"
    );
    assert!(
        !line.contains("taskq-dump"),
        "behind a feature that is off: {line}"
    );
    assert!(doctor.stdout.contains("set `binary`"), "{}", doctor.stdout);

    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("pueued") && run.stderr.contains("taskq installs taskq, taskqd"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("Compiling"),
        "refused before compiling: {}",
        run.stderr
    );
    assert!(bin_dir(&e).is_empty(), "nothing changed");

    e.env.var("HEPH_SELFUPDATE_BINARY", "taskqd");
    let doctor = e.env.run(&["doctor"]);
    assert!(
        doctor
            .stdout
            .contains("[ ok ] binary: taskqd is installed by taskq"),
        "{}",
        doctor.stdout
    );
}

#[test]
fn build_profile_reaches_cargo_in_both_modes_and_the_checkout_keeps_that_profiles_artefacts() {
    let mut e = taskq(
        TaskqShape::OnePackage,
        &[("v0.1.0", Taskqd::Answers), ("v0.2.0", Taskqd::Answers)],
        &["v0.1.0"],
        "taskq",
    );
    e.env.run(&["check-and-apply"]).expect(0);
    let target = e.env.home.join(".cache/heph-selfupdate/checkout/target");
    assert!(target.join("release").is_dir());
    let release_size = heph_selfupdate::build::cache::dir_size(&target);

    offer(&e, &["v0.1.0", "v0.2.0"]);
    e.env.var("HEPH_SELFUPDATE_BUILD_PROFILE", "quick");
    e.env.var("HEPH_SELFUPDATE_BUILD", "git");
    let plan = e.env.run(&["check-and-apply", "--dry-run"]);
    plan.expect(0);
    assert!(
        plan.stdout
            .lines()
            .any(|l| l.contains(" install --locked --force --git=")
                && l.contains(" --profile=quick ")),
        "{}",
        plan.stdout
    );
    e.env.unset("HEPH_SELFUPDATE_BUILD");
    // Room for one profile's artefacts, not two: the other profile's go.
    let limit = (release_size + release_size / 2).to_string();
    e.env.var("HEPH_SELFUPDATE_CACHE_MAX_SIZE", &limit);
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(run.stderr.contains(" --profile=quick"), "{}", run.stderr);
    assert!(
        run.stderr.contains("`quick` profile"),
        "cargo built it: {}",
        run.stderr
    );
    assert_eq!(run_bin(&e.env.bin_dir.join("taskqd")), "taskqd 0.2.0");
    assert!(target.join("quick").is_dir(), "the profile in use is kept");
    assert!(
        !target.join("release").exists(),
        "the other profile's artefacts went first: {}",
        run.stderr
    );
}

#[test]
fn a_root_without_the_daemons_binary_is_never_switched_to() {
    let s = crate::support::scenario::sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    assert_eq!(run_bin(&s.env.bin_dir.join("hephd")), "hephd 0.2.0 (fake)");
    // `binary` now names a binary no root holds: going back to 0.1.0 would leave the unit
    // without its daemon.
    let mut env = s.env;
    env.var("HEPH_SELFUPDATE_BINARY", "hephd-next");
    let run = env.run(&["rollback", "--to", "0.1.0"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("the version root 0.1.0 holds no `hephd-next` (`binary`): heph installs heph; hephd installs hephd"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("one of: heph, hephd"), "{}", run.stderr);
    assert_eq!(
        run_bin(&env.bin_dir.join("hephd")),
        "hephd 0.2.0 (fake)",
        "nothing switched"
    );
    assert_eq!(env.current_root().as_deref(), Some("0.2.0"));
}
