//! Fetch failures classified by what they are, with real servers on loopback: git's smart
//! HTTP (the real `git http-backend`) answering 403, an https server whose certificate
//! git does not trust, and a real OpenSSH server that does not know the client's key, is
//! not known to the client, or has stopped. A refusal is exit 1 with the real cause first
//! and a backoff — not "try later" (75) every hour forever.

use std::path::{Path, PathBuf};

use crate::support::env::{Run, TestEnv};
use crate::support::fixture::{Daemon, workspace_repo};
use crate::support::forge::{FakeForge, FakeRelease, Flavour};
use crate::support::git_http::GitHttp;
use crate::support::scenario::{assert_sound, sandbox};
use crate::support::sshd::Sshd;
use crate::support::tls::{Answer, TlsServer};

#[test]
fn a_git_server_that_answers_403_is_a_refusal_not_a_network_failure() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let server = GitHttp::start(s.repo.dir.parent().unwrap());
    s.env
        .var("HEPH_SELFUPDATE_GIT_URL", &server.url("repo"))
        // The default build: the refusal comes before anything is built.
        .unset("HEPH_SELFUPDATE_BUILD");
    server.forbid(true);
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    let first = run
        .stderr
        .lines()
        .find(|l| l.contains("could not update to 0.2.0"))
        .unwrap_or_default();
    assert!(
        first.contains("(refused)") && first.contains("The requested URL returned error: 403"),
        "the cause comes first: {}",
        run.stderr
    );
    assert!(run.stderr.contains("help: the server refused access"));
    assert!(!run.stderr.contains("try"), "{}", run.stderr);
    assert!(!s.env.backoff_of("0.2.0").is_null(), "backed off");
    assert_sound(&s.env, "0.1.0");
    // doctor says the same, classified the same way.
    let doctor = s.env.run(&["doctor"]);
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.contains("git access"))
        .unwrap_or_default();
    assert!(
        line.contains("[FAIL]") && line.contains("refused") && line.contains("error: 403"),
        "{}",
        doctor.stdout
    );
    assert!(
        doctor.stdout.contains("may read the repository"),
        "the fix for a refusal: {}",
        doctor.stdout
    );

    // The same server, allowing access: a real git server, and the update goes through
    // (git mode: the stand-in cargo asks the server too).
    server.forbid(false);
    s.env.var("HEPH_SELFUPDATE_BUILD", "git");
    s.env.run(&["check-and-apply", "--force"]).expect(0);
    assert_sound(&s.env, "0.2.0");
}

#[test]
fn an_untrusted_certificate_is_a_refusal_and_ca_file_reaches_git() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let Some(tls) = TlsServer::start(&s.env.dir.path().join("tls"), Answer::StatusPage) else {
        assert!(
            std::env::var_os("CI_REQUIRE_TOOLS").is_none(),
            "openssl is needed"
        );
        eprintln!("SKIPPED: openssl is not installed");
        return;
    };
    s.env.var(
        "HEPH_SELFUPDATE_GIT_URL",
        &format!("https://localhost:{}/repo.git", tls.port),
    );
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    let first = run
        .stderr
        .lines()
        .find(|l| l.contains("could not update to 0.2.0"))
        .unwrap_or_default();
    assert!(
        first.contains("(refused)")
            // git built with OpenSSL says "SSL certificate problem", with GnuTLS this:
            && (first.contains("SSL certificate problem")
                || first.contains("server certificate verification failed")),
        "the TLS error comes first: {}",
        run.stderr
    );
    assert!(run.stderr.contains("set `ca_file`"), "{}", run.stderr);
    assert!(!s.env.backoff_of("0.2.0").is_null(), "backed off");

    // With ca_file the handshake succeeds: git now fails on what the server says (it is
    // no git server), no longer on its certificate.
    s.env
        .var("HEPH_SELFUPDATE_CA_FILE", tls.ca.to_str().unwrap())
        .var(
            "HEPH_SELFUPDATE_GIT_URL",
            &format!("https://localhost:{}/repo.git", tls.port),
        );
    let run = s.env.run(&["check-and-apply", "--force"]);
    run.expect(1);
    assert!(
        !run.stderr.contains("certificate"),
        "git trusts the server now: {}",
        run.stderr
    );
    assert!(run.stderr.contains("(refused)"), "{}", run.stderr);
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn a_network_failure_is_try_later_until_it_has_lasted_a_day() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    // Nothing listens there: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.env.var(
        "HEPH_SELFUPDATE_GIT_URL",
        &format!("http://127.0.0.1:{port}/repo.git"),
    );
    let run = s.env.run(&["check-and-apply"]);
    run.expect(75);
    assert!(run.stderr.contains("network failure"), "{}", run.stderr);
    assert!(s.env.no_backoff());
    let stats_file = s.env.home.join(".cache/heph-selfupdate/build-stats.json");
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats_file).unwrap()).unwrap();
    assert!(stats["network_failures"]["resolve"].is_string(), "{stats}");

    // The same step has failed in every run since yesterday: someone must look.
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::hours(25);
    let since = yesterday
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::fs::write(
        &stats_file,
        format!("{{\"network_failures\":{{\"resolve\":\"{since}\"}}}}"),
    )
    .unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("it has failed for network reasons in every run since"),
        "{}",
        run.stderr
    );
    assert!(s.env.no_backoff(), "not the release's fault");
    assert_sound(&s.env, "0.1.0");
}

/// `repo` served by a real sshd, and `git_url` the `ssh://` URL of it; `None` (the test
/// skips) when sshd is not installed or does not start.
fn serve_over_ssh(env: &mut TestEnv, repo: &Path) -> Option<Sshd> {
    let Some(sshd) = Sshd::start(&env.dir.path().join("sshd")) else {
        assert!(
            std::env::var_os("CI_REQUIRE_TOOLS").is_none(),
            "sshd (openssh-server) is needed"
        );
        eprintln!("SKIPPED: sshd is not installed or did not start");
        return None;
    };
    env.var("HEPH_SELFUPDATE_GIT_URL", &sshd.url(repo));
    Some(sshd)
}

/// A deploy key as a service has it: `GIT_SSH_COMMAND` in its environment, with
/// `known_hosts` knowing the server or not.
fn deploy_key(env: &mut TestEnv, sshd: &Sshd, key: &Path, known: bool) -> PathBuf {
    let known_hosts = sshd.write_known_hosts(&env.dir.path().join("known_hosts"), known);
    env.var("GIT_SSH_COMMAND", &Sshd::git_ssh_command(key, &known_hosts));
    known_hosts
}

/// The first error line: it must say the update failed, and why.
#[track_caller]
fn failure_line(run: &Run) -> &str {
    let first = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        first.contains("could not update to 0.2.0"),
        "{}",
        run.stderr
    );
    first
}

/// doctor's `git access` line and the fix line after it.
fn doctor_git_access(env: &TestEnv) -> (String, String) {
    let doctor = env.run(&["doctor"]);
    let mut lines = doctor
        .stdout
        .lines()
        .skip_while(|l| !l.contains("git access"));
    let line = lines.next().unwrap_or_default().to_owned();
    let fix = lines
        .next()
        .filter(|l| l.trim_start().starts_with("fix:"))
        .unwrap_or_default()
        .to_owned();
    (line, fix)
}

#[test]
fn an_ssh_server_whose_host_key_is_unknown_is_a_refusal_with_the_known_hosts_fix() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    // The default build: the refusal comes before anything is built.
    s.env.unset("HEPH_SELFUPDATE_BUILD");
    let Some(sshd) = serve_over_ssh(&mut s.env, &s.repo.dir) else {
        return;
    };
    let known_hosts = deploy_key(&mut s.env, &sshd, &sshd.key, false);
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    let first = failure_line(&run);
    assert!(
        first.contains("(refused)")
            && (first.contains("Host key verification failed")
                || first.contains("host key is known for")),
        "ssh's own words come first: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("help:") && l.contains("known_hosts")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("try"), "{}", run.stderr);
    assert!(!s.env.backoff_of("0.2.0").is_null(), "backed off");
    assert_sound(&s.env, "0.1.0");

    // doctor runs `git ls-remote` with the build's environment and says the same.
    let (line, fix) = doctor_git_access(&s.env);
    assert!(
        line.contains("[FAIL]")
            && line.contains("refused")
            && (line.contains("Host key verification failed")
                || line.contains("host key is known for")),
        "{line}"
    );
    assert!(fix.contains("known_hosts"), "the host-key fix: {fix}");

    // That was all that was wrong: with the host key known, the same key gets in.
    sshd.write_known_hosts(&known_hosts, true);
    let (line, _) = doctor_git_access(&s.env);
    assert!(line.contains("[ ok ]"), "{line}\n{}", sshd.log());
}

#[test]
fn an_ssh_key_the_server_does_not_accept_is_a_refusal_with_the_deploy_key_fix() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.unset("HEPH_SELFUPDATE_BUILD");
    let Some(sshd) = serve_over_ssh(&mut s.env, &s.repo.dir) else {
        return;
    };
    deploy_key(&mut s.env, &sshd, &sshd.stranger, true);
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    let first = failure_line(&run);
    assert!(
        first.contains("(refused)") && first.contains("Permission denied (publickey"),
        "ssh's own words come first: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("help:") && l.contains("deploy key")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("try"), "{}", run.stderr);
    assert!(!s.env.backoff_of("0.2.0").is_null(), "backed off");
    assert_sound(&s.env, "0.1.0");
    assert!(
        sshd.log()
            .contains(&format!("Failed publickey for {}", sshd.user)),
        "the server itself turned the key away: {}",
        sshd.log()
    );
}

#[test]
fn a_stopped_ssh_server_is_a_network_failure_not_a_refusal() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.unset("HEPH_SELFUPDATE_BUILD");
    let Some(mut sshd) = serve_over_ssh(&mut s.env, &s.repo.dir) else {
        return;
    };
    let key = sshd.key.clone();
    deploy_key(&mut s.env, &sshd, &key, true);
    // While the server runs, this key and known_hosts get in.
    let (line, _) = doctor_git_access(&s.env);
    assert!(line.contains("[ ok ]"), "{line}\n{}", sshd.log());

    // Nothing listens on the port any more: connection refused.
    sshd.stop();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(75);
    let said = run
        .stderr
        .lines()
        .find(|l| l.contains("the next run tries again"))
        .unwrap_or_default();
    assert!(
        said.contains("(network failure)") && said.contains("Connection refused"),
        "try later, with ssh's own words: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("(refused)"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("failed for a network reason (attempt 1 of"),
        "retried at once: {}",
        run.stderr
    );
    assert!(
        s.env.backoff_of("0.2.0").is_null(),
        "not the release's fault"
    );
    assert!(s.env.no_backoff());
    assert_sound(&s.env, "0.1.0");
    let (line, _) = doctor_git_access(&s.env);
    assert!(
        line.contains("[FAIL]") && line.contains("cannot be reached (a network failure)"),
        "{line}"
    );
}

#[test]
fn git_over_ssh_with_a_deploy_key_and_a_known_host_builds_and_switches_with_the_real_cargo() {
    let mut env = TestEnv::new();
    let repo = workspace_repo(
        &env.dir.path().join("repo"),
        &[("v0.1.0", Daemon::Good), ("v0.2.0", Daemon::Good)],
    );
    let forge = FakeForge::start(
        Flavour::Forgejo,
        vec![FakeRelease::new("v0.2.0"), FakeRelease::new("v0.1.0")],
    );
    env.install_fakes();
    let cargo_home = env.home.join(".cargo");
    // The default build: a checkout fetched with git (over ssh), built with the real cargo.
    env.use_real_toolchain(&cargo_home)
        .forge(&forge)
        .var("HEPH_SELFUPDATE_HEALTH_SETTLE", "1s")
        .var("HEPH_SELFUPDATE_HEALTH_TIMEOUT", "20s")
        .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "10MiB")
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "systemd-user");
    let Some(sshd) = serve_over_ssh(&mut env, &repo.dir) else {
        return;
    };
    deploy_key(&mut env, &sshd, &sshd.key, true);
    env.install_plain("0.1.0", &["heph", "hephd"]);
    env.start_daemon();

    let run = env.run(&["check-and-apply"]);
    run.expect(0);
    let version = std::process::Command::new(env.bin_dir.join("hephd"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "hephd 0.2.0 (build of v0.2.0)",
        "{}",
        run.stderr
    );
    assert!(env.daemon_alive(), "the new daemon runs");
    assert!(env.no_backoff());
    assert!(
        sshd.log()
            .contains(&format!("Accepted publickey for {}", sshd.user)),
        "the source came over ssh with the deploy key: {}",
        sshd.log()
    );
}

/// A person runs `check-and-apply` at a terminal, with a deploy key whose ssh command does
/// not say `BatchMode`: ssh meets an unknown host key and would ask on the terminal — from
/// a process group in the background, where it would stop until `build_timeout`. The build's
/// children have no terminal, so ssh refuses at once and the run says why.
#[test]
fn at_a_terminal_an_unknown_host_key_is_refused_not_asked_about() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.unset("HEPH_SELFUPDATE_BUILD");
    let Some(sshd) = serve_over_ssh(&mut s.env, &s.repo.dir) else {
        return;
    };
    let known_hosts = deploy_key(&mut s.env, &sshd, &sshd.key, false);
    let interactive =
        Sshd::git_ssh_command(&sshd.key, &known_hosts).replace(" -o BatchMode=yes", "");
    s.env
        .var("GIT_SSH_COMMAND", &interactive)
        // Were ssh stopped on a prompt, the run would end here, as a timeout.
        .var("HEPH_SELFUPDATE_BUILD_TIMEOUT", "30s");
    let (code, shown) = crate::support::pty::run_at_a_terminal(s.env.command(&["check-and-apply"]));
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("(refused)") && shown.contains("Host key verification failed"),
        "{shown}"
    );
    assert!(
        !shown.contains("Are you sure you want to continue connecting"),
        "{shown}"
    );
    assert!(!shown.contains("build_timeout"), "{shown}");
    assert_sound(&s.env, "0.1.0");
}
