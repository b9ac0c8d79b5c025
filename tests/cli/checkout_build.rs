//! The default build (`build = "checkout"`) against what real repositories, servers and
//! machines do: a checkout a crash left broken, a rate-limiting or silent git server, a
//! clock that went back, a repository without `Cargo.lock`, with submodules or with its
//! workspace in a subdirectory (beside another), submodules with relative or moved URLs,
//! a server that lists a tag it cannot send, a missing toolchain, a compiler killed for
//! memory. Each builds what `cargo install --git` builds, or fails with the class the
//! README gives.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;

use crate::e2e_cargo::{E2e, add_release, checkout_dir, e2e, offer, plain_install, run_bin};
use crate::support::env::real_git;
use crate::support::fixture::{self, Daemon, Repo};
use crate::support::forge::FakeRelease;
use crate::support::scenario::{assert_sound, sandbox};

/// v0.1.0 installed plainly with its daemon running; v0.1.0 and v0.2.0 released.
fn updating_to_v020() -> E2e {
    let e = e2e(
        &[("v0.1.0", Daemon::Good), ("v0.2.0", Daemon::Good)],
        &["v0.1.0", "v0.2.0"],
    );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e
}

/// The installed hephd is the build of `tag`.
fn assert_installed(e: &E2e, tag: &str) {
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        format!("hephd {} (build of {tag})", tag.trim_start_matches('v'))
    );
}

/// A loopback HTTP server that answers every request with `answer` (None: accepts the
/// connection, reads the request and never answers). Returns its port.
fn http_server(answer: Option<&'static str>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
            }
            match answer {
                Some(text) => {
                    let _ = conn.write_all(text.as_bytes());
                }
                None => held.push(conn),
            }
        }
    });
    port
}

/// What the plain `cargo install --locked --git … --tag <tag> <packages>` does with this
/// release: it must build it (the promise is "builds as `cargo install --git` does").
fn plain_install_builds(e: &E2e, tag: &str, packages: &[&str]) {
    let plain_root = e.env.dir.path().join(format!("plain-root-{tag}"));
    let cargo_home = e.env.home.join(".cargo");
    e.env.run_other(&mut fixture::plain_install_of(
        &e.repo,
        tag,
        &plain_root,
        &cargo_home,
        packages,
    ));
    assert_eq!(
        run_bin(&plain_root.join("bin/hephd")),
        format!("hephd {} (build of {tag})", tag.trim_start_matches('v')),
        "the plain cargo install --git does not build {tag}"
    );
}

/// A small repository next to the release repository: `note.txt` = `text`, committed.
fn assets_repo(e: &E2e, name: &str, text: &str) -> Repo {
    let sub = Repo::init(&e.env.dir.path().join(name));
    std::fs::write(sub.dir.join("note.txt"), text).unwrap();
    sub.commit_and_tag(&format!("{name}-1"));
    sub
}

/// Adds `url` as the submodule `crates/hephd/assets` of the repository in `dir`, and makes
/// hephd include a file from it.
fn add_submodule(dir: &Path, url: &str) {
    fixture::git(
        dir,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            url,
            "crates/hephd/assets",
        ],
    );
    let main = dir.join("crates/hephd/src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap().replace(
        "fn main() {",
        "fn main() {\n    let _note: &str = include_str!(\"../assets/note.txt\");",
    );
    std::fs::write(main, text).unwrap();
}

/// v0.2.0's workspace (not yet committed) is in `rust/`, nothing of it at the top.
fn workspace_moves_to_rust(e: &E2e) {
    for old in ["Cargo.toml", "Cargo.lock", "crates"] {
        let p = e.repo.dir.join(old);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }
    fixture::write_workspace(
        &e.repo.dir.join("rust"),
        "0.2.0",
        Daemon::Good,
        "build of v0.2.0",
    );
}

const TOO_MANY_REQUESTS: &str = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 60\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nConnection: close\r\n\r\nrate limit: slow\r\n";

/// A tag ref in the build checkout left empty (a crash before git's write reached the
/// disk): `git fetch` of the next tag fails on the checkout's own files although the
/// server answered. The checkout is made again at once (its target dir kept) and the
/// update goes through; no release is blamed and nothing says "refused".
#[test]
fn a_broken_tag_ref_in_the_build_checkout_is_repaired_instead_of_failing_every_release() {
    let e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::Good),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.run(&["check-and-apply"]).expect(0);
    let tag_ref = checkout_dir(&e).join(".git/refs/tags/v0.2.0");
    assert!(tag_ref.is_file(), "the fetched tag is a loose ref");
    std::fs::write(&tag_ref, "").unwrap();

    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    let first = e.env.run(&["check-and-apply"]);
    // The next run may at worst have to make the checkout again.
    let second = e.env.run(&["check-and-apply", "--force"]);
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.3.0 (build of v0.3.0)",
        "still not updated after two runs\nfirst run:\n{}\nsecond run (--force):\n{}",
        first.stderr,
        second.stderr
    );
    assert!(
        !first.stderr.contains("(refused)"),
        "a local git failure is no refusal: {}",
        first.stderr
    );
    assert!(e.env.backoff_of("0.3.0").is_null(), "v0.3.0 was blamed");
}

/// A git server answering HTTP 429 (rate limited) is busy, not refusing: exit 75, no
/// backoff, nothing changed.
#[test]
fn a_git_server_that_rate_limits_is_try_later_not_a_refusal() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let port = http_server(Some(TOO_MANY_REQUESTS));
    s.env
        .var(
            "HEPH_SELFUPDATE_GIT_URL",
            &format!("http://127.0.0.1:{port}/repo.git"),
        )
        .unset("HEPH_SELFUPDATE_BUILD");
    let run = s.env.run(&["check-and-apply"]);
    assert!(
        run.stderr.contains("error: 429"),
        "git met the rate limit: {}",
        run.stderr
    );
    assert!(
        s.env.backoff_of("0.2.0").is_null(),
        "0.2.0 was backed off: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("(refused)"),
        "a rate limit is no refusal: {}",
        run.stderr
    );
    run.expect(75);
    assert_sound(&s.env, "0.1.0");
}

/// A git server that accepts the connection and never answers: `git ls-remote` is
/// stopped at its own limit (`resolve_timeout`, at least 30 s, not `build_timeout`) and
/// that is a network failure: exit 75, no backoff, no "raise build_timeout". (About 30 s.)
#[test]
fn a_git_server_that_never_answers_is_try_later_not_a_backed_off_release() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let port = http_server(None);
    s.env
        .var(
            "HEPH_SELFUPDATE_GIT_URL",
            &format!("http://127.0.0.1:{port}/repo.git"),
        )
        .var("HEPH_SELFUPDATE_HTTP_TIMEOUT", "1s")
        .unset("HEPH_SELFUPDATE_BUILD");
    let run = s.env.run(&["check-and-apply"]);
    assert!(
        s.env.backoff_of("0.2.0").is_null(),
        "0.2.0 was backed off: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("raise build_timeout"),
        "the resolve has its own limit: {}",
        run.stderr
    );
    run.expect(75);
    assert_sound(&s.env, "0.1.0");
}

/// The clock was a day ahead while v0.2.0 was built and has been corrected since. cargo
/// compares mtimes, so the artefacts dated tomorrow would make v0.3.0's changed sources
/// look older: the build sees records dated in the future and starts from a clean target
/// dir, so the new `heph` code (same crate version) is what gets installed.
#[test]
fn a_clock_that_went_back_since_the_last_build_never_installs_stale_code() {
    let e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::Good),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.run(&["check-and-apply"]).expect(0);
    // What a clock a day ahead left: every artefact dated tomorrow.
    let tomorrow = std::time::SystemTime::now() + std::time::Duration::from_secs(26 * 3600);
    let mut dated = 0;
    let mut stack = vec![checkout_dir(&e).join("target")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                std::fs::File::open(entry.path())
                    .unwrap()
                    .set_modified(tomorrow)
                    .unwrap();
                dated += 1;
            }
        }
    }
    assert!(dated > 0);

    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    e.env.run(&["check-and-apply"]).expect(0);
    assert_installed(&e, "v0.3.0");
    assert_eq!(
        run_bin(&e.env.bin_dir.join("heph")),
        "heph 0.1.0 (build of v0.3.0)",
        "heph's code changed in v0.3.0: the installed heph is stale"
    );
}

/// A release without `Cargo.lock` (ignored by the repository): the plain `cargo install
/// --locked --git` warns and builds it, and so does the checkout build (its dependencies
/// resolved at fetch time, the compile still offline); nothing says "refused".
#[test]
fn a_repository_without_a_lock_file_builds_in_checkout_mode_as_it_does_with_cargo_install_git() {
    let e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0"]);
    add_release(&e, "v0.2.0", |dir| {
        std::fs::remove_file(dir.join("Cargo.lock")).unwrap();
        std::fs::write(dir.join(".gitignore"), "/target\nCargo.lock\n").unwrap();
    });
    offer(&e, &["v0.1.0", "v0.2.0"]);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    // What the plain `cargo install --git` (and `build = "git"`) does: it builds.
    plain_install_builds(&e, "v0.2.0", &["hephd"]);

    let run = e.env.run(&["check-and-apply"]);
    assert!(
        !run.stderr.contains("(refused)"),
        "nothing refused anything: {}",
        run.stderr
    );
    run.expect(0);
    assert_installed(&e, "v0.2.0");
}

/// A missing toolchain (`rustc --version` fails) backs the release off until rustc
/// answers: once the toolchain is installed, the next run builds at once.
#[test]
fn installing_the_missing_toolchain_ends_the_backoff_at_once() {
    let mut e = updating_to_v020();
    let missing = e.env.fake_bin(
        "rustc-missing",
        "#!/bin/sh\necho \"error: toolchain 'stable-x86_64-unknown-linux-gnu' is not installed\" >&2\nexit 1\n",
    );
    e.env.var("RUSTC", &missing.display().to_string());
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("rustup toolchain install"),
        "{}",
        run.stderr
    );
    assert!(!e.env.backoff_of("0.2.0").is_null());

    // The toolchain is installed now: rustc answers.
    e.env.unset("RUSTC");
    let run = e.env.run(&["check-and-apply"]);
    assert!(
        !run.stderr.contains("is held"),
        "still held after the toolchain was installed: {}",
        run.stderr
    );
    run.expect(0);
    assert_installed(&e, "v0.2.0");
}

/// The "failed for network reasons in every run since" escalation counts only runs that
/// failed: a run with nothing to build in between breaks the streak, so one outage after
/// days of quiet runs is still exit 75.
#[test]
fn one_network_failure_after_days_of_quiet_runs_is_still_try_later() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    // Nothing listens there: connection refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.env.var(
        "HEPH_SELFUPDATE_GIT_URL",
        &format!("http://127.0.0.1:{port}/repo.git"),
    );
    s.env.run(&["check-and-apply"]).expect(75);
    // That failure was three days ago.
    let stats_file = s.env.home.join(".cache/heph-selfupdate/build-stats.json");
    let mut stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats_file).unwrap()).unwrap();
    let then = time::OffsetDateTime::now_utc() - time::Duration::days(3);
    stats["network_failures"]["resolve"] = then
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    std::fs::write(&stats_file, stats.to_string()).unwrap();

    // The release was withdrawn then: every hourly run since found nothing due.
    s.forge.set_releases(vec![FakeRelease::new("v0.1.0")]);
    s.env.run(&["check-and-apply"]).expect(0);

    s.forge
        .set_releases(vec![FakeRelease::new("v0.3.0"), FakeRelease::new("v0.1.0")]);
    let run = s.env.run(&["check-and-apply"]);
    assert!(!run.stderr.contains("in every run since"), "{}", run.stderr);
    run.expect(75);
}

/// A release whose code includes a file from a git submodule: the checkout build checks
/// submodules out as `cargo install --git` does, and the release builds.
#[test]
fn a_release_with_a_git_submodule_builds_in_checkout_mode() {
    let e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0"]);
    let sub = assets_repo(&e, "assets", "from the submodule");
    add_release(&e, "v0.2.0", |dir| add_submodule(dir, &sub.url()));
    offer(&e, &["v0.1.0", "v0.2.0"]);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    // What the plain `cargo install --git` (and `build = "git"`) does: it builds.
    plain_install_builds(&e, "v0.2.0", &["hephd"]);

    let run = e.env.run(&["check-and-apply"]);
    assert!(e.env.backoff_of("0.2.0").is_null(), "{}", run.stderr);
    run.expect(0);
    assert_installed(&e, "v0.2.0");
}

/// rustc killed by SIGKILL (what the kernel's out-of-memory killer does) is the
/// machine's failure: exit 1 naming the signal, no clean retry, no backoff of the release.
#[test]
fn a_rustc_killed_by_the_oom_killer_does_not_back_off_the_release() {
    let mut e = updating_to_v020();
    // Stands for the OOM killer: rustc dies of SIGKILL whenever it compiles hephd.
    let wrapper = e.env.fake_bin(
        "oom-wrapper",
        "#!/bin/sh\ncase \" $* \" in *\" --crate-name hephd \"*) kill -9 $$;; esac\nexec \"$@\"\n",
    );
    e.env.var("RUSTC_WRAPPER", &wrapper.display().to_string());
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("SIGKILL") || run.stderr.contains("signal: 9"),
        "rustc was killed: {}",
        run.stderr
    );
    assert!(
        e.env.backoff_of("0.2.0").is_null(),
        "a good release was backed off: {}",
        run.stderr
    );
}

/// A repository whose Cargo workspace is in a subdirectory (`rust/`): `cargo install
/// --git` finds the packages there, and so does the checkout build.
#[test]
fn a_workspace_in_a_subdirectory_of_the_repository_builds_in_checkout_mode() {
    let e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0"]);
    workspace_moves_to_rust(&e);
    e.repo.commit_and_tag("v0.2.0");
    offer(&e, &["v0.1.0", "v0.2.0"]);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    // What the plain `cargo install --git` (and `build = "git"`) does: it builds.
    plain_install_builds(&e, "v0.2.0", &["heph", "hephd"]);

    let run = e.env.run(&["check-and-apply"]);
    assert!(e.env.backoff_of("0.2.0").is_null(), "{}", run.stderr);
    run.expect(0);
    assert_installed(&e, "v0.2.0");
}

/// A build stopped at `build_timeout` says so on its `error:` line, not only in a help.
#[test]
fn a_build_past_build_timeout_says_so_on_its_error_line() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.fake_mode("cargo-mode", "hang");
    s.env.var("HEPH_SELFUPDATE_BUILD_TIMEOUT", "2s");
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        error.contains("time limit") || error.contains("build_timeout"),
        "the error line does not say what happened: {error:?}\n{}",
        run.stderr
    );
    assert_sound(&s.env, "0.1.0");
}

/// A submodule named with a relative URL (`../assets`, common on forges so one
/// `.gitmodules` serves https and ssh): resolved against `git_url` (the checkout's
/// `origin`), as `cargo install --git` resolves it; the release builds.
#[test]
fn a_release_whose_submodule_url_is_relative_builds_as_cargo_install_git_does() {
    let e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0"]);
    // `../assets` from `<dir>/repo` is `<dir>/assets`.
    assets_repo(&e, "assets", "from the submodule");
    add_release(&e, "v0.2.0", |dir| add_submodule(dir, "../assets"));
    assert!(
        std::fs::read_to_string(e.repo.dir.join(".gitmodules"))
            .unwrap()
            .contains("url = ../assets"),
        "the fixture names its submodule relatively"
    );
    offer(&e, &["v0.1.0", "v0.2.0"]);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    plain_install_builds(&e, "v0.2.0", &["hephd"]);

    let run = e.env.run(&["check-and-apply"]);
    assert!(
        e.env.backoff_of("0.2.0").is_null(),
        "a release cargo install --git builds was backed off:\n{}",
        run.stderr
    );
    run.expect(0);
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (build of v0.2.0)"
    );
}

/// A release that moves its submodule to another repository (a new URL, a commit only
/// the new one has): the fetch does not recurse into the old submodule, `submodule sync`
/// follows the move, and the release builds in one run.
#[test]
fn a_release_that_moves_its_submodule_to_another_repository_builds_at_once() {
    let e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0"]);
    let old = assets_repo(&e, "assets", "from the old host");
    add_release(&e, "v0.2.0", |dir| add_submodule(dir, &old.url()));
    // The new host has the history and one more commit; the old one never gets it.
    let new_dir = e.env.dir.path().join("assets-moved");
    fixture::git(
        e.env.dir.path(),
        &[
            "clone",
            "-q",
            &old.dir.display().to_string(),
            &new_dir.display().to_string(),
        ],
    );
    let moved = Repo { dir: new_dir };
    std::fs::write(moved.dir.join("note.txt"), "from the new host").unwrap();
    moved.commit_and_tag("moved-1");
    add_release(&e, "v0.3.0", |dir| {
        let sub = "crates/hephd/assets";
        fixture::git(
            dir,
            &[
                "config",
                "-f",
                ".gitmodules",
                &format!("submodule.{sub}.url"),
                &moved.url(),
            ],
        );
        let sub_dir = dir.join(sub);
        fixture::git(&sub_dir, &["fetch", "-q", &moved.url(), "moved-1"]);
        fixture::git(&sub_dir, &["checkout", "-q", "--detach", "FETCH_HEAD"]);
    });
    offer(&e, &["v0.1.0", "v0.2.0"]);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.run(&["check-and-apply"]).expect(0);
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (build of v0.2.0)"
    );
    plain_install_builds(&e, "v0.3.0", &["hephd"]);

    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    let run = e.env.run(&["check-and-apply"]);
    assert!(
        e.env.backoff_of("0.3.0").is_null(),
        "a release cargo install --git builds was backed off:\n{}",
        run.stderr
    );
    run.expect(0);
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.3.0 (build of v0.3.0)"
    );
}

/// The server lists a tag but cannot send its commit (its repository is corrupt): the
/// failure is the server's (exit 1, "(the server)", backoff), and the checkout keeps
/// its history; nothing is blamed on this machine's checkout.
#[test]
fn a_tag_the_git_server_cannot_send_keeps_the_checkout_and_is_not_blamed_on_this_machine() {
    let e = e2e(
        &[("v0.1.0", Daemon::Good), ("v0.2.0", Daemon::Good)],
        &["v0.1.0", "v0.2.0"],
    );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.run(&["check-and-apply"]).expect(0);
    let checkout = checkout_dir(&e);
    let has_v2 = || {
        Command::new("git")
            .arg("-C")
            .arg(&checkout)
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                "refs/tags/v0.2.0^{commit}",
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(has_v2(), "the checkout holds v0.2.0 after building it");

    // v0.3.0 is published, then the server loses its commit object.
    add_release(&e, "v0.3.0", |_| {});
    let commit = e.repo.commit_of("v0.3.0");
    let object = e
        .repo
        .dir
        .join(".git/objects")
        .join(&commit[..2])
        .join(&commit[2..]);
    std::fs::remove_file(&object).unwrap();
    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);

    let run = e.env.run(&["check-and-apply"]);
    assert_ne!(run.code, 0, "v0.3.0 cannot be fetched:\n{}", run.stderr);
    assert!(
        has_v2(),
        "the server failed, and the checkout's history was thrown away:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("(the machine)") && !run.stderr.contains("damaged"),
        "the server's fault is blamed on this machine's checkout:\n{}",
        run.stderr
    );
}

/// No `Cargo.toml` at the top; the real workspace in `rust/` and a `fuzz/` package with
/// its own `[workspace]` (what `cargo fuzz init` makes) beside it: the workspace that
/// holds the packages is built, as `cargo install --git` builds it.
#[test]
fn a_second_workspace_beside_the_real_one_does_not_hide_the_packages() {
    let e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0"]);
    workspace_moves_to_rust(&e);
    let fuzz = e.repo.dir.join("fuzz");
    std::fs::create_dir_all(fuzz.join("src")).unwrap();
    std::fs::write(
        fuzz.join("Cargo.toml"),
        "[package]\nname = \"heph-fuzz\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[package.metadata]\ncargo-fuzz = true\n\n# Use a separate workspace for fuzzing.\n[workspace]\nmembers = [\".\"]\n",
    )
    .unwrap();
    std::fs::write(fuzz.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        fuzz.join("Cargo.lock"),
        "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 4\n\n[[package]]\nname = \"heph-fuzz\"\nversion = \"0.0.0\"\n",
    )
    .unwrap();
    e.repo.commit_and_tag("v0.2.0");
    offer(&e, &["v0.1.0", "v0.2.0"]);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    plain_install_builds(&e, "v0.2.0", &["heph", "hephd"]);

    let run = e.env.run(&["check-and-apply"]);
    assert!(
        e.env.backoff_of("0.2.0").is_null(),
        "a release cargo install --git builds was backed off:\n{}",
        run.stderr
    );
    run.expect(0);
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (build of v0.2.0)"
    );
}

/// A run killed while a new checkout replaces a damaged one (the old removed, the new
/// not yet in place): the next build takes the target dir back from `checkout.new` and
/// removes it; nothing is left behind and the build is not a cold one.
#[test]
fn a_kill_between_the_renames_of_a_healed_checkout_neither_leaks_checkout_new_nor_loses_the_target_dir()
 {
    let e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::Good),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.run(&["check-and-apply"]).expect(0);
    let checkout = checkout_dir(&e);
    let target = checkout.join("target");
    assert!(target.is_dir(), "the build left its target dir");
    std::fs::write(target.join("review4-sentinel"), "the target dir of v0.2.0").unwrap();

    // The state fetch_healing leaves when killed after `remove_all(checkout)` and before
    // `rename(checkout.new, checkout)`: the new repository with v0.3.0 fetched, the
    // target dir moved into it, no checkout.
    let fresh = checkout.with_file_name("checkout.new");
    fixture::git(
        e.env.dir.path(),
        &["init", "-q", &fresh.display().to_string()],
    );
    fixture::git(
        &fresh,
        &[
            "fetch",
            "-q",
            "--no-tags",
            "--",
            &e.repo.url(),
            "+refs/tags/v0.3.0:refs/tags/v0.3.0",
        ],
    );
    std::fs::rename(&target, fresh.join("target")).unwrap();
    std::fs::remove_dir_all(&checkout).unwrap();

    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.3.0 (build of v0.3.0)"
    );
    assert!(
        !fresh.exists(),
        "{} (with the old target dir) is left behind after a successful run:\n{}",
        fresh.display(),
        run.stderr
    );
    assert!(
        checkout.join("target/review4-sentinel").is_file(),
        "the target dir the killed heal was moving was not kept:\n{}",
        run.stderr
    );
}

/// git's unpacker killed by SIGKILL during the fetch (the out-of-memory killer): the
/// machine's failure, neither the server's nor the release's: exit 1, no backoff.
#[test]
fn a_fetch_whose_unpacker_the_oom_killer_kills_is_not_blamed_on_the_server_nor_backs_off_the_release()
 {
    let e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::Good),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.run(&["check-and-apply"]).expect(0);

    // The real git, whose helpers that receive objects die of SIGKILL (as the OOM killer
    // kills them): `git fetch` runs them through its exec path.
    let real = real_git();
    let exec_path = std::process::Command::new(real)
        .arg("--exec-path")
        .output()
        .unwrap();
    let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
    let shim = e.env.dir.path().join("oom-exec-path");
    std::fs::create_dir_all(&shim).unwrap();
    let helper = shim.join("git");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncase \"$1\" in index-pack|unpack-objects) kill -9 $$;; esac\nGIT_EXEC_PATH='{exec_path}' exec '{real}' \"$@\"\n"
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&helper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&helper, perms).unwrap();
    e.env.fake_bin(
        "git",
        &format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = fetch ] && GIT_EXEC_PATH='{}' exec '{real}' \"$@\"; done\nexec '{real}' \"$@\"\n",
            shim.display()
        ),
    );

    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    let run = e.env.run(&["check-and-apply"]);
    assert_ne!(run.code, 0, "the fetch was killed:\n{}", run.stderr);
    assert!(
        run.stderr.contains("died of signal 9"),
        "git's unpacker was killed:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("(the server)") && !run.stderr.contains("forge's admins"),
        "a process this machine killed is blamed on the server:\n{}",
        run.stderr
    );
    assert!(
        e.env.backoff_of("0.3.0").is_null(),
        "v0.3.0 was backed off for this machine's memory:\n{}",
        run.stderr
    );
}

/// A release whose own `.cargo/config.toml` (at its top, and the older `.cargo/config` in
/// hephd's directory) sets `build.rustc-wrapper` and `[env]`: `cargo install --git` reads
/// neither (its configuration starts at CARGO_HOME), and the checkout build must not
/// either — `cargo install --path` would read both, starting at the package's directory.
/// The checkout leaves those files out, and is not taken for a damaged one for it.
#[test]
fn a_release_s_own_cargo_config_runs_in_neither_the_checkout_build_nor_cargo_install_git() {
    let e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0"]);
    let ran = e.env.dir.path().join("wrapper-ran");
    let wrapper = e.env.dir.path().join("release-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec \"$@\"\n",
            ran.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = format!(
        "[build]\nrustc-wrapper = \"{}\"\n\n[env]\nHEPH_RELEASE_ENV = \"; [env] of the release\"\n",
        wrapper.display()
    );
    add_release(&e, "v0.2.0", |dir| {
        for file in [".cargo/config.toml", "crates/hephd/.cargo/config"] {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &config).unwrap();
        }
        // hephd says so in its version when [env] reached its compile.
        let main = dir.join("crates/hephd/src/main.rs");
        let text = std::fs::read_to_string(&main).unwrap().replace(
            "println!(\"{}d {} (build of v0.2.0)\", heph_core::name(), env!(\"CARGO_PKG_VERSION\"));",
            "println!(\"{}d {} (build of v0.2.0{})\", heph_core::name(), env!(\"CARGO_PKG_VERSION\"), option_env!(\"HEPH_RELEASE_ENV\").unwrap_or(\"\"));",
        );
        assert!(text.contains("HEPH_RELEASE_ENV"), "{text}");
        std::fs::write(main, text).unwrap();
    });
    offer(&e, &["v0.1.0", "v0.2.0"]);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();

    // The default build.
    e.env.run(&["check-and-apply"]).expect(0);
    assert_installed(&e, "v0.2.0");
    assert!(
        !ran.exists(),
        "the release's rustc-wrapper ran: {}",
        std::fs::read_to_string(&ran).unwrap_or_default()
    );
    let checkout = checkout_dir(&e);
    assert!(
        checkout.join("crates/hephd/src/main.rs").is_file()
            && !checkout.join(".cargo/config.toml").exists()
            && !checkout.join("crates/hephd/.cargo/config").exists(),
        "the release's cargo configuration is left out of the checkout"
    );
    let status = Command::new(real_git())
        .arg("-C")
        .arg(&checkout)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "",
        "the checkout has no changes, so it is not made again next time"
    );

    // The plain `cargo install --git` of the same tag runs neither (and says the same
    // version, without the release's [env]).
    plain_install_builds(&e, "v0.2.0", &["hephd"]);
    assert!(
        !ran.exists(),
        "cargo install --git ran the release's wrapper"
    );
}
