//! Real workspaces, where a package is not a binary: the real cargo builds the taskq
//! fixture (shaped like pueue: one package installing a client and a daemon, a library
//! package beside it; or the daemon in a package named unlike it), and the stand-in
//! service manager runs the daemon cargo installed, proved by the daemon's own client.

use std::path::Path;

use crate::e2e_cargo::{E2e, e2e_of, offer, run_bin};
use crate::support::fixture::{
    self, Pkg, TaskqShape, Taskqd, pkg, plain_install_of, shaped_repo, taskq_repo,
    write_shaped_release,
};

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
    names(&e.env.bin_dir)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    n.sort();
    n
}

/// A workspace shaped by `releases` (see [`write_shaped_release`]), `offered` by the
/// forge, configured with `packages` and `binary`; the stand-in service manager runs
/// `bin_dir/<binary>`.
fn shaped(releases: &[(&str, &[Pkg])], offered: &[&str], packages: &str, binary: &str) -> E2e {
    let mut e = e2e_of(|dir| shaped_repo(dir, releases), offered);
    e.env
        .var("HEPH_SELFUPDATE_PACKAGES", packages)
        .var("HEPH_SELFUPDATE_BINARY", binary)
        .var("HEPH_SELFUPDATE_SERVICE", &format!("{binary}.service"))
        .var("HEPH_SELFUPDATE_HEALTH_SETTLE", "1s");
    e.env.fake_mode("daemon", binary);
    e
}

/// `cargo install --git <repo> --tag <tag> <packages>` into `root`, CARGO_HOME ~/.cargo.
fn plain(e: &E2e, tag: &str, root: &Path, packages: &[&str]) {
    let cargo_home = e.env.home.join(".cargo");
    e.env.run_other(&mut plain_install_of(
        &e.repo,
        tag,
        root,
        &cargo_home,
        packages,
    ));
}

/// v0.1.0 of `packages` built elsewhere and its binaries copied into bin_dir: no cargo
/// records beside bin_dir (a prebuilt download, a distribution package, `cp`).
fn copied_install(e: &E2e, packages: &[&str]) {
    let scratch = e.env.dir.path().join("scratch");
    plain(e, "v0.1.0", &scratch, packages);
    for b in names(&scratch.join("bin")) {
        std::fs::copy(scratch.join("bin").join(&b), e.env.bin_dir.join(&b)).unwrap();
    }
}

/// What `path --version` prints; "" when there is no such file.
fn ver(path: &Path) -> String {
    if !path.exists() {
        return String::new();
    }
    run_bin(path)
}

/// stderr without cargo's streamed output and the command lines, for messages.
fn quiet(s: &str) -> String {
    s.lines()
        .filter(|l| {
            !l.starts_with("  |") && !l.starts_with("running:") && !l.starts_with("finished:")
        })
        .collect::<Vec<_>>()
        .join("\n")
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

/// pueue's shape: package `taskq` installs the client `taskq` and the daemon `taskqd`.
const ONE: &[Pkg] = &[pkg("taskq", &["taskq", "taskqd"])];
/// The daemon in a package named unlike it.
const SPLIT: &[Pkg] = &[pkg("taskq", &["taskq"]), pkg("taskq-server", &["taskqd"])];

/// Adoption keeps every binary the new root links that is a plain file in bin_dir, and
/// `binary`, records or not: the way back restores the daemon that ran (on the code before:
/// the daemon was neither adopted nor kept, and the rollback deleted it, ROLLBACK FAILED).
#[test]
fn a_daemon_copied_into_bin_dir_without_cargo_records_survives_a_bad_release() {
    let e = shaped(
        &[("v0.1.0", ONE), ("v0.2.0", ONE)],
        &["v0.1.0"],
        "taskq",
        "taskqd",
    );
    // Installed without cargo's records beside bin_dir: built elsewhere and copied, a
    // prebuilt download, a distribution package (or a package renamed since the install).
    copied_install(&e, &["taskq"]);
    e.env.start_daemon();
    e.env.run(&["check"]).expect(0);

    // 0.2.0's daemon dies at start: the update must go back to the daemon that ran.
    offer(&e, &["v0.1.0", "v0.2.0"]);
    e.env.fake_mode("bad-0.2.0", "");
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    let adopted = names(&e.env.data_dir().join("versions/0.1.0/bin"));
    assert_eq!(adopted, ["taskq", "taskqd"]);
    assert!(
        !run.stderr.contains("ROLLBACK FAILED") && run.stderr.contains("rolled back to 0.1.0"),
        "adopted root 0.1.0 holds only {adopted:?}:\n{}",
        quiet(&run.stderr)
    );
    assert_eq!(ver(&e.env.bin_dir.join("taskqd")), "taskqd 0.1.0");
    assert!(e.env.daemon_alive(), "0.1.0 runs again");
}

/// A binary a release adds that cargo's records give to another package is not put over
/// it: the update is refused before anything changes, naming the owner and what to do, as
/// `cargo install` refuses without --force (on the code before: overwritten by the update,
/// deleted by the rollback).
#[test]
fn a_binary_a_release_adds_does_not_destroy_another_packages_binary_of_that_name() {
    const ADDS_TOP: &[Pkg] = &[pkg("taskq", &["taskq", "taskqd", "taskq-top"])];
    let e = shaped(
        &[("v0.1.0", ONE), ("v0.2.0", ADDS_TOP)],
        &["v0.1.0"],
        "taskq",
        "taskqd",
    );
    // Another tool, from another repository, owns `taskq-top` in ~/.cargo/bin; cargo's
    // records say so (and cargo itself would refuse to overwrite it without --force).
    let other = fixture::Repo::init(&e.env.dir.path().join("other"));
    write_shaped_release(&other.dir, "3.0.0", &[pkg("other-tool", &["taskq-top"])]);
    other.commit_and_tag("v3.0.0");
    let cargo_home = e.env.home.join(".cargo");
    e.env.run_other(&mut plain_install_of(
        &other,
        "v3.0.0",
        &cargo_home,
        &cargo_home,
        &["other-tool"],
    ));
    plain(&e, "v0.1.0", &cargo_home, &["taskq"]);
    e.env.start_daemon();
    assert_eq!(ver(&e.env.bin_dir.join("taskq-top")), "taskq-top 3.0.0");

    offer(&e, &["v0.1.0", "v0.2.0"]);
    let run = e.env.run(&["check-and-apply"]);
    let after_update = ver(&e.env.bin_dir.join("taskq-top"));
    if run.code == 0 {
        e.env.run(&["rollback"]).expect(0);
    }
    assert_eq!(
        ver(&e.env.bin_dir.join("taskq-top")),
        "taskq-top 3.0.0",
        "the other tool's binary (after the update: {after_update:?}; bin_dir now {:?})\n{}",
        names(&e.env.bin_dir),
        quiet(&run.stderr)
    );
    // Refused, saying whose it is and what to do; not the release's fault.
    assert_eq!(run.code, 1, "{}", quiet(&run.stderr));
    for said in [
        "`taskq-top` (installed by other-tool 3.0.0)",
        "nothing was switched",
        "`cargo uninstall other-tool`",
    ] {
        assert!(run.stderr.contains(said), "{said}: {}", quiet(&run.stderr));
    }
    assert!(e.env.no_backoff(), "{}", e.env.state()["backoff"]);
    assert_eq!(ver(&e.env.bin_dir.join("taskqd")), "taskqd 0.1.0");
    assert!(e.env.daemon_alive());
    // Once the other tool is gone, the next run switches (reusing the kept build).
    e.env.run_other(
        std::process::Command::new(fixture::cargo())
            .args(["uninstall", "--quiet", "other-tool"])
            .env("CARGO_HOME", &cargo_home),
    );
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("reusing the kept build"),
        "{}",
        quiet(&run.stderr)
    );
    assert_eq!(ver(&e.env.bin_dir.join("taskq-top")), "taskq-top 0.2.0");
}

/// A root is judged by what it holds (the binaries recorded for its packages, `binary`
/// among them), not by the packages configured now (on the code before: once `packages`
/// named the daemon's new package, no older root was a rollback target).
#[test]
fn after_a_binary_moves_to_another_package_rollback_still_returns_to_the_older_root() {
    let mut e = shaped(
        &[("v0.1.0", ONE), ("v0.2.0", SPLIT)],
        &["v0.1.0"],
        "taskq",
        "taskqd",
    );
    e.env.run(&["check-and-apply"]).expect(0);
    // 0.2.0 moves taskqd into taskq-server; the refusal says to add that package.
    offer(&e, &["v0.1.0", "v0.2.0"]);
    let refused = e.env.run(&["check-and-apply"]);
    refused.expect(1);
    assert!(
        refused
            .stderr
            .contains("add the package that installs taskqd to `packages`"),
        "{}",
        refused.stderr
    );
    e.env.var("HEPH_SELFUPDATE_PACKAGES", "taskq,taskq-server");
    e.env.run(&["check-and-apply"]).expect(0);
    assert_eq!(ver(&e.env.bin_dir.join("taskqd")), "taskqd 0.2.0");

    // Root 0.1.0 holds every binary the daemon and its client need.
    let back = e.env.run(&["rollback"]);
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(ver(&e.env.bin_dir.join("taskqd")), "taskqd 0.1.0");
    assert_eq!(ver(&e.env.bin_dir.join("taskq")), "taskq 0.1.0");
}

/// "Missing" means a binary recorded for the packages, or `binary`: a package nothing
/// records is not a binary of its name (on the code before: "taskq-server missing", exit
/// 100, the installed release rebuilt and its healthy daemon restarted).
#[test]
fn a_package_nothing_records_is_not_a_missing_binary_and_forces_no_reinstall() {
    let e = shaped(
        &[("v0.1.0", SPLIT)],
        &["v0.1.0"],
        "taskq,taskq-server",
        "taskqd",
    );
    copied_install(&e, &["taskq", "taskq-server"]);
    e.env.start_daemon();
    // Every binary is there and the daemon is the newest release: nothing is missing.
    let check = e.env.run(&["check", "--json"]);
    let json = check.json();
    assert_eq!(json["missing"], serde_json::json!([]), "{json}");
    assert_eq!(check.code, 0, "{json}");
}

/// With build = "git" a wrong `binary` is found only after the build, and it is the
/// configuration's fault there too, as a checkout build says before compiling: no backoff
/// (on the code before: the release was backed off, and held after the fix).
#[test]
fn a_wrong_binary_in_git_mode_puts_no_backoff_on_the_release() {
    let mut e = shaped(&[("v0.1.0", ONE)], &["v0.1.0"], "taskq", "taskqd");
    e.env.var("HEPH_SELFUPDATE_BUILD", "git");
    e.env.var("HEPH_SELFUPDATE_BINARY", "taskq-daemon");
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("taskq installs taskq, taskqd"),
        "{}",
        run.stderr
    );
    assert!(e.env.no_backoff(), "{}", e.env.state()["backoff"]);
    // The configuration's fault, as the checkout build says (no backoff there).
    e.env.var("HEPH_SELFUPDATE_BINARY", "taskqd");
    let fixed = e.env.run(&["check-and-apply"]);
    fixed.expect(0);
    assert_eq!(
        ver(&e.env.bin_dir.join("taskqd")),
        "taskqd 0.1.0",
        "backoff: {}\n{}",
        e.env.state()["backoff"],
        fixed.stdout
    );
}

/// A `build_profile` the workspace does not define is the configuration's fault: cargo's
/// reason in the error line, no clean retry (the cache stays), no backoff; doctor fails it
/// (on the code before: a compile failure, the cache thrown away, a backoff, doctor fine).
#[test]
fn a_build_profile_the_workspace_does_not_define_is_a_configuration_error() {
    let mut e = shaped(
        &[("v0.1.0", ONE), ("v0.2.0", ONE)],
        &["v0.1.0"],
        "taskq",
        "taskqd",
    );
    e.env.run(&["check-and-apply"]).expect(0);
    let target = e.env.home.join(".cache/heph-selfupdate/checkout/target");
    assert!(target.join("release").is_dir());
    offer(&e, &["v0.1.0", "v0.2.0"]);
    e.env.var("HEPH_SELFUPDATE_BUILD_PROFILE", "fast");
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        target.join("release").is_dir(),
        "the build cache was emptied for a configuration error:\n{}",
        quiet(&run.stderr)
    );
    assert!(
        e.env.no_backoff(),
        "backoff on 0.2.0: {}",
        e.env.state()["backoff"]
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("error:") && l.contains("profile `fast` is not defined")),
        "{}",
        quiet(&run.stderr)
    );
    assert!(
        !run.stderr.contains("attempt 2 of 2"),
        "{}",
        quiet(&run.stderr)
    );
    let doctor = e.env.run(&["doctor"]);
    doctor.expect(1);
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.contains("] build_profile:"))
        .unwrap_or_else(|| panic!("no build_profile line:\n{}", doctor.stdout));
    assert!(
        line.starts_with("[FAIL]") && line.contains("fast is not a profile v0.2.0"),
        "{line}"
    );
    // Defined in CARGO_HOME's configuration, cargo has it, and so does doctor.
    std::fs::write(
        e.env.home.join(".cargo/config.toml"),
        "[profile.fast]\ninherits = \"release\"\n",
    )
    .unwrap();
    let doctor = e.env.run(&["doctor"]);
    assert!(
        doctor
            .stdout
            .contains("[ ok ] build_profile: fast is defined in"),
        "{}",
        doctor.stdout
    );
}

/// Across the upgrade from the previous heph-selfupdate (which linked one binary per
/// package and left the plain daemon running), the first update keeps the way back: the
/// root the switch came from is protected, and a root of the current version is never the
/// rollback target (on the code before: both 0.1.0 roots pruned, rollback 0.2.0 -> 0.2.0).
#[test]
fn across_the_upgrade_the_first_update_keeps_the_way_back_to_the_daemon_that_ran() {
    let e = shaped(
        &[("v0.1.0", ONE), ("v0.2.0", ONE)],
        &["v0.1.0", "v0.2.0"],
        "taskq",
        "taskqd",
    );
    let cargo_home = e.env.home.join(".cargo");
    plain(&e, "v0.1.0", &cargo_home, &["taskq"]);
    // What the previous version left for this configuration (seen running it): it adopted
    // and linked only `taskq` (one binary per package), so the plain taskqd 0.1.0 kept
    // running while it called 0.2.0 proven; its root records carry no `bins`.
    let versions = e.env.data_dir().join("versions");
    plain(&e, "v0.2.0", &versions.join("0.2.0"), &["taskq"]);
    std::fs::write(
        versions.join("0.2.0/heph-root.json"),
        format!(
            "{{\"version\":\"0.2.0\",\"commit\":\"{}\",\"origin\":\"built\"}}",
            e.repo.commit_of("v0.2.0")
        ),
    )
    .unwrap();
    std::fs::create_dir_all(versions.join("0.1.0/bin")).unwrap();
    std::fs::copy(
        e.env.bin_dir.join("taskq"),
        versions.join("0.1.0/bin/taskq"),
    )
    .unwrap();
    std::fs::write(
        versions.join("0.1.0/heph-root.json"),
        "{\"version\":\"0.1.0\",\"commit\":null,\"origin\":\"adopted\"}",
    )
    .unwrap();
    std::os::unix::fs::symlink("versions/0.2.0", e.env.data_dir().join("current")).unwrap();
    std::fs::remove_file(e.env.bin_dir.join("taskq")).unwrap();
    std::os::unix::fs::symlink(
        e.env.data_dir().join("current/bin/taskq"),
        e.env.bin_dir.join("taskq"),
    )
    .unwrap();
    std::fs::create_dir_all(e.env.state_dir()).unwrap();
    std::fs::write(
        e.env.state_dir().join("state.json"),
        "{\"schema\":2,\"proven\":{\"0.2.0\":{\"at\":\"2026-12-08T03:58:09Z\"}}}",
    )
    .unwrap();
    e.env.start_daemon();
    assert_eq!(ver(&e.env.bin_dir.join("taskqd")), "taskqd 0.1.0");

    // The new version's first run puts 0.2.0's daemon in place ...
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert_eq!(ver(&e.env.bin_dir.join("taskqd")), "taskqd 0.2.0");
    // ... keeping what ran until then ...
    assert!(
        run.stderr
            .contains("took the installed binaries under management as version root 0.1.0~2"),
        "{}",
        quiet(&run.stderr)
    );
    assert!(versions.join("0.1.0~2").is_dir(), "{:?}", names(&versions));
    // ... and the way back is the daemon that ran until then.
    let back = e.env.run(&["rollback"]);
    assert_eq!(
        ver(&e.env.bin_dir.join("taskqd")),
        "taskqd 0.1.0",
        "roots {:?}\n{}\n{}",
        names(&versions),
        quiet(&run.stderr),
        quiet(&back.stderr)
    );
}

/// `status` and `doctor` decide "managed" from every link in bin_dir, not from `binary`
/// alone (on the code before: "managed: no (plain binaries …)" once `binary` named a
/// binary the current root lacks).
#[test]
fn status_does_not_call_links_into_a_root_plain_binaries() {
    const RENAMED: &[Pkg] = &[pkg("taskq", &["taskq", "taskq-daemon"])];
    let mut e = shaped(
        &[("v0.1.0", ONE), ("v0.2.0", RENAMED)],
        &["v0.1.0"],
        "taskq",
        "taskqd",
    );
    e.env.run(&["check-and-apply"]).expect(0);
    // 0.2.0 renames the daemon; the user follows it in the configuration first.
    offer(&e, &["v0.1.0", "v0.2.0"]);
    e.env.var("HEPH_SELFUPDATE_BINARY", "taskq-daemon");
    let status = e.env.run(&["status"]);
    status.expect(0);
    let managed = status
        .stdout
        .lines()
        .find(|l| l.starts_with("managed:"))
        .unwrap_or_default();
    assert!(
        !managed.contains("plain binaries"),
        "bin_dir holds links into root 0.1.0 only ({:?}):\n{}",
        names(&e.env.bin_dir),
        status.stdout
    );
    assert!(managed.contains("yes, version roots in"), "{managed}");
    assert_eq!(
        status.stdout.lines().find(|l| l.starts_with("missing:")),
        Some("missing:     taskq-daemon"),
        "{}",
        status.stdout
    );
    let doctor = e.env.run(&["doctor"]);
    assert!(
        doctor.stdout.contains(
            "[info] installed: taskq-daemon not installed or unknown, managed: version root 0.1.0"
        ),
        "{}",
        doctor.stdout
    );
}
