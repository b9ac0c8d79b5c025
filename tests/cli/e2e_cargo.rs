//! End to end with the real `cargo install`: a tiny workspace (`heph`, `hephd`) in a
//! local git repository with tags, served by the loopback forge. The stand-in service
//! manager really runs the built daemon.

use std::path::Path;
use std::process::Command;

use crate::support::env::TestEnv;
use crate::support::fixture::{self, Daemon, Repo, workspace_repo};
use crate::support::forge::{FakeForge, FakeRelease, Flavour};

struct E2e {
    env: TestEnv,
    forge: FakeForge,
    repo: Repo,
}

fn e2e(releases: &[(&str, Daemon)], offered: &[&str]) -> E2e {
    let mut env = TestEnv::new();
    let repo = workspace_repo(&env.dir.path().join("repo"), releases);
    let forge = FakeForge::start(
        Flavour::Forgejo,
        offered.iter().rev().map(|t| FakeRelease::new(t)).collect(),
    );
    env.install_fakes();
    let cargo_home = env.home.join(".cargo");
    env.use_real_toolchain(&cargo_home)
        .forge(&forge)
        .var("HEPH_SELFUPDATE_GIT_URL", &repo.url())
        .var("HEPH_SELFUPDATE_HEALTH_SETTLE", "2s")
        .var("HEPH_SELFUPDATE_HEALTH_TIMEOUT", "20s")
        .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "10MiB")
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "systemd-user");
    E2e { env, forge, repo }
}

/// Installs `tag` the way people do today: a plain `cargo install` into ~/.cargo.
fn plain_install(e: &E2e, tag: &str) {
    let cargo_home = e.env.home.join(".cargo");
    e.env.run_other(&mut fixture::plain_install(
        &e.repo,
        tag,
        &cargo_home,
        &cargo_home,
    ));
}

fn run_bin(path: &Path) -> String {
    let out = Command::new(path).arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn daemon_log(e: &E2e) -> String {
    std::fs::read_to_string(e.env.dir.path().join("fake-state/daemon.log")).unwrap_or_default()
}

#[test]
fn git_mode_builds_for_real_switches_and_rolls_back_a_daemon_that_dies() {
    let e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::DiesAtStart),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.1.0 (build of v0.1.0)"
    );

    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    let bin = &e.env.bin_dir;
    assert_eq!(run_bin(&bin.join("hephd")), "hephd 0.2.0 (build of v0.2.0)");
    assert_eq!(
        run_bin(&bin.join("heph")),
        "heph 0.1.0 (build of v0.2.0)",
        "same crate version, new code"
    );
    let data = e.env.data_dir();
    assert_eq!(
        std::fs::read_link(data.join("current")).unwrap(),
        Path::new("versions/0.2.0")
    );
    assert_eq!(
        run_bin(&data.join("versions/0.1.0/bin/hephd")),
        "hephd 0.1.0 (build of v0.1.0)"
    );
    let records = std::fs::read_to_string(data.join("versions/0.2.0/.crates2.json")).unwrap();
    assert!(records.contains(&e.repo.commit_of("v0.2.0")), "{records}");
    assert!(!data.join("tmp/target-0.2.0").exists());
    assert!(e.env.daemon_alive());
    assert!(
        daemon_log(&e).contains("hephd 0.2.0 started"),
        "{}",
        daemon_log(&e)
    );
    assert_eq!(e.env.state()["history"][0]["outcome"], "updated");

    // v0.3.0's daemon exits at once: built, switched, found unhealthy, rolled back.
    e.forge.set_releases(
        ["v0.3.0", "v0.2.0", "v0.1.0"]
            .iter()
            .map(|t| FakeRelease::new(t))
            .collect(),
    );
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("rolled back to 0.2.0"),
        "{}",
        run.stderr
    );
    assert_eq!(run_bin(&bin.join("hephd")), "hephd 0.2.0 (build of v0.2.0)");
    assert!(e.env.daemon_alive(), "0.2.0 runs again");
    assert!(daemon_log(&e).contains("cannot open the database"));
    let state = e.env.state();
    assert!(state["bad"].get("0.3.0").is_some(), "{state}");
    assert_eq!(state["history"][1]["outcome"], "rolled-back");

    // The next run does not try it again.
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(!run.stderr.contains("building"), "{}", run.stderr);
    assert!(run.stderr.contains("marked bad"), "{}", run.stderr);
}

#[test]
fn checkout_mode_reuses_its_build_tree_and_never_installs_stale_code() {
    let mut e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::Good),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    e.env.var("HEPH_SELFUPDATE_BUILD", "checkout");
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.run(&["check-and-apply"]).expect(0);
    let bin = e.env.bin_dir.clone();
    assert_eq!(run_bin(&bin.join("hephd")), "hephd 0.2.0 (build of v0.2.0)");
    let target = e.env.home.join(".cache/heph-selfupdate/checkout/target");
    assert!(target.is_dir(), "the checkout keeps its target dir");

    e.forge.set_releases(
        ["v0.3.0", "v0.2.0", "v0.1.0"]
            .iter()
            .map(|t| FakeRelease::new(t))
            .collect(),
    );
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert_eq!(run_bin(&bin.join("hephd")), "hephd 0.3.0 (build of v0.3.0)");
    assert_eq!(
        run_bin(&bin.join("heph")),
        "heph 0.1.0 (build of v0.3.0)",
        "heph's version did not change, its code did: it must be rebuilt"
    );
    assert!(run.stderr.contains("--path="), "{}", run.stderr);
    assert!(e.env.daemon_alive());
}

#[test]
fn checkout_mode_refuses_a_tag_without_a_good_signature() {
    let mut e = e2e(
        &[("v0.1.0", Daemon::Good), ("v0.2.0", Daemon::Good)],
        &["v0.1.0", "v0.2.0"],
    );
    let keys = e.env.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let keygen = |name: &str| {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(keys.join(name))
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(keys.join(format!("{name}.pub"))).unwrap()
    };
    let trusted = keygen("release");
    keygen("stranger");
    let signers = keys.join("allowed_signers");
    std::fs::write(&signers, format!("release@test.invalid {trusted}")).unwrap();
    // Re-tag v0.2.0, signed by a key that is not in the list.
    let sign = |key: &str| {
        fixture::git(
            &e.repo.dir,
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &format!("user.signingkey={}", keys.join(key).display()),
                "tag",
                "-f",
                "-s",
                "v0.2.0",
                "-m",
                "signed",
                "v0.2.0^{commit}",
            ],
        );
    };
    sign("stranger");
    e.env
        .var("HEPH_SELFUPDATE_BUILD", "checkout")
        .var("HEPH_SELFUPDATE_VERIFY_TAG", "true")
        .var(
            "HEPH_SELFUPDATE_ALLOWED_SIGNERS",
            &signers.display().to_string(),
        );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("not from an allowed signer"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.1.0 (build of v0.1.0)"
    );

    sign("release");
    let run = e.env.run(&["check-and-apply", "--force"]);
    run.expect(0);
    assert!(
        run.stderr.contains("signature of v0.2.0 is good"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (build of v0.2.0)"
    );
}
