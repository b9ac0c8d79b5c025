//! The sandboxed demo (`make demo`): the whole update path, for real, where no forge is
//! reachable. A tiny hephd workspace in a local git repository (tags v0.1.0, v0.2.0,
//! v0.3.0 — the last one's daemon dies at start), a loopback stand-in forge, a stand-in
//! service manager that really runs the daemon, and a throw-away HOME.
//!
//! It installs v0.1.0 the way people do today, then lets heph-selfupdate check, preview,
//! update to v0.2.0, and meet v0.3.0: build, switch, unhealthy, roll back, mark bad.
//! Exit 0 when every step ended as expected.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use support::env::TestEnv;
use support::fixture::{self, Daemon, workspace_repo};
use support::forge::{FakeForge, FakeRelease, Flavour};

fn step(env: &TestEnv, title: &str, args: &[&str], expect: i32) -> bool {
    println!("\n=== {title}\n$ heph-selfupdate {}", args.join(" "));
    let status = env.command(args).status().expect("run heph-selfupdate");
    let code = status.code().unwrap_or(-1);
    let ok = code == expect;
    println!(
        "--> exit {code} {}",
        if ok { "(as expected)" } else { "(UNEXPECTED)" }
    );
    ok
}

fn main() {
    let keep = std::env::args().any(|a| a == "--keep");
    let mut env = TestEnv::new();
    println!("sandbox: {}", env.dir.path().display());
    println!(
        "building a tiny hephd workspace with tags v0.1.0, v0.2.0, v0.3.0 (v0.3.0's daemon dies at start)"
    );
    let repo = workspace_repo(
        &env.dir.path().join("hephaestus"),
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::DiesAtStart),
        ],
    );
    let forge = FakeForge::start(
        Flavour::Forgejo,
        vec![FakeRelease::new("v0.2.0"), FakeRelease::new("v0.1.0")],
    );
    println!("stand-in forge (Forgejo API) at {}", forge.url());

    env.install_fakes();
    let cargo_home = env.home.join(".cargo");
    env.use_real_toolchain(&cargo_home)
        .forge(&forge)
        .var("HEPH_SELFUPDATE_GIT_URL", &repo.url())
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "systemd-user")
        .var("HEPH_SELFUPDATE_HEALTH_SETTLE", "2s")
        .var("HEPH_SELFUPDATE_HEALTH_TIMEOUT", "20s")
        .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "50MiB");

    println!(
        "\n=== installing v0.1.0 the way people do today: cargo install --locked --git … --tag v0.1.0 heph hephd"
    );
    env.run_other(&mut fixture::plain_install(
        &repo,
        "v0.1.0",
        &cargo_home,
        &cargo_home,
    ));
    env.start_daemon();
    println!(
        "hephd 0.1.0 is running under the stand-in service manager (pid {})",
        env.daemon_pid().unwrap_or(0)
    );

    let mut ok = true;
    ok &= step(
        &env,
        "is there an update? (changes nothing)",
        &["check"],
        100,
    );
    ok &= step(
        &env,
        "what would an update run?",
        &["check-and-apply", "--dry-run"],
        0,
    );
    ok &= step(
        &env,
        "update: build v0.2.0, switch, restart, prove healthy",
        &["check-and-apply"],
        0,
    );
    ok &= step(&env, "status", &["status"], 0);

    println!("\n=== the forge now offers v0.3.0, whose daemon dies at start");
    forge.set_releases(vec![
        FakeRelease::new("v0.3.0"),
        FakeRelease::new("v0.2.0"),
        FakeRelease::new("v0.1.0"),
    ]);
    ok &= step(
        &env,
        "update to v0.3.0: unhealthy, rolled back, marked bad",
        &["check-and-apply"],
        1,
    );
    ok &= step(
        &env,
        "the next run does not try v0.3.0 again",
        &["check-and-apply"],
        0,
    );
    ok &= step(&env, "status", &["status"], 0);

    println!();
    if keep {
        env.dir.disable_cleanup(true);
        println!(
            "sandbox kept at {} (the daemon is stopped)",
            env.dir.path().display()
        );
    }
    if ok {
        println!("demo finished: every step ended as expected");
    } else {
        println!("demo FAILED: a step ended unexpectedly (see above)");
        std::process::exit(1);
    }
}
