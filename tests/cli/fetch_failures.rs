//! Fetch failures classified by what they are, with real servers on loopback: git's smart
//! HTTP (the real `git http-backend`) answering 403, and an https server whose
//! certificate git does not trust. A refusal is exit 1 with the real cause first and a
//! backoff — not "try later" (75) every hour forever.

use crate::support::git_http::GitHttp;
use crate::support::scenario::{assert_sound, sandbox};
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
