//! `heph-selfupdate check` against the stand-in forge.

use crate::support::env::TestEnv;
use crate::support::forge::{FakeForge, FakeRelease, Fault, Flavour};

fn releases() -> Vec<FakeRelease> {
    vec![
        FakeRelease::new("v0.3.0").draft(),
        FakeRelease::new("v0.3.0-rc.1")
            .prerelease()
            .published("2026-02-01T00:00:00Z"),
        FakeRelease::new("v0.2.0").published("2026-01-20T10:00:00+01:00"),
        FakeRelease::new("v0.1.0").published("2026-01-01T00:00:00Z"),
    ]
}

fn setup(flavour: Flavour, installed: Option<&str>) -> (TestEnv, FakeForge) {
    let forge = FakeForge::start(flavour, releases());
    let mut env = TestEnv::new();
    env.forge(&forge);
    if let Some(v) = installed {
        env.install_plain(v, &["heph", "hephd"]);
    }
    (env, forge)
}

#[test]
fn reports_an_update_with_exit_100_and_json() {
    let (env, _forge) = setup(Flavour::Forgejo, Some("0.1.0"));
    let run = env.run(&["check", "--json"]);
    run.expect(100);
    let j = run.json();
    assert_eq!(j["installed"], "0.1.0");
    assert_eq!(j["latest"], "0.2.0");
    assert_eq!(j["tag"], "v0.2.0");
    assert_eq!(j["published_at"], "2026-01-20T09:00:00Z");
    assert_eq!(j["update_available"], true);
    assert_eq!(j["reason"], "newer_release");
    let skipped: Vec<(String, String)> = j["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["tag"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            ("v0.3.0".to_owned(), "draft".to_owned()),
            ("v0.3.0-rc.1".to_owned(), "prerelease".to_owned())
        ]
    );
}

#[test]
fn text_output_names_installed_release_and_result() {
    let (env, _forge) = setup(Flavour::Forgejo, Some("0.1.0"));
    let run = env.run(&["check"]);
    run.expect(100);
    assert!(run.stdout.contains("installed: 0.1.0"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("release:   v0.2.0 (0.2.0), published 2026-01-20T09:00:00Z"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("update available: 0.1.0 -> 0.2.0"),
        "{}",
        run.stdout
    );
}

#[test]
fn up_to_date_exits_0() {
    let (env, forge) = setup(Flavour::Forgejo, Some("0.2.0"));
    forge.set_releases(vec![FakeRelease::new("v0.2.0"), FakeRelease::new("v0.1.0")]);
    let run = env.run(&["check", "--json"]);
    run.expect(0);
    assert_eq!(run.json()["reason"], "up_to_date");
    assert_eq!(run.json()["update_available"], false);
    assert!(
        env.run(&["check"])
            .stdout
            .contains("result:    up to date (0.2.0)")
    );
}

#[test]
fn says_when_only_prereleases_are_newer() {
    let (env, _forge) = setup(Flavour::Forgejo, Some("0.2.0"));
    let run = env.run(&["check", "--json"]);
    run.expect(0);
    assert_eq!(run.json()["reason"], "prerelease");
    assert_eq!(run.json()["latest"], "0.2.0");
    let text = env.run(&["check"]).stdout;
    assert!(
        text.contains("v0.3.0-rc.1 is held: pre-release, and the channel is stable"),
        "{text}"
    );
}

#[test]
fn a_newer_installed_version_is_never_downgraded() {
    let (env, _forge) = setup(Flavour::Forgejo, Some("0.4.0"));
    let run = env.run(&["check", "--json"]);
    run.expect(0);
    assert_eq!(run.json()["reason"], "newer_installed");
    assert!(
        env.run(&["check"])
            .stdout
            .contains("is newer than the newest eligible release")
    );
}

#[test]
fn a_pin_converges_downward() {
    let (mut env, _forge) = setup(Flavour::Forgejo, Some("0.2.0"));
    env.var("HEPH_SELFUPDATE_PIN", "v0.1.0");
    let run = env.run(&["check", "--json"]);
    run.expect(100);
    assert_eq!(run.json()["reason"], "pinned");
    assert_eq!(run.json()["latest"], "0.1.0");
}

#[test]
fn the_prerelease_channel_offers_release_candidates() {
    let (env, _forge) = setup(Flavour::Forgejo, Some("0.2.0"));
    let run = env.run(&["check", "--json", "--set", "channel=prerelease"]);
    run.expect(100);
    assert_eq!(run.json()["latest"], "0.3.0-rc.1");
}

#[test]
fn nothing_installed_is_an_update() {
    let (env, _forge) = setup(Flavour::Forgejo, None);
    let run = env.run(&["check", "--json"]);
    run.expect(100);
    assert_eq!(run.json()["installed"], serde_json::Value::Null);
    assert_eq!(run.json()["reason"], "not_installed");
}

#[test]
fn a_recorded_binary_that_is_gone_makes_an_update_due_and_an_unrecorded_package_does_not() {
    let (mut env, _forge) = setup(Flavour::Forgejo, Some("0.2.0"));
    env.var("HEPH_SELFUPDATE_PACKAGES", "heph,hephd,heph-tui");
    // Nothing records what heph-tui installs (here nothing records anything): it is a
    // package, not a binary of its name.
    let run = env.run(&["check", "--json"]);
    run.expect(0);
    assert_eq!(run.json()["missing"], serde_json::json!([]));
    // cargo's records beside bin_dir say heph-tui installed `heph-tui` and `heph-top`.
    std::fs::write(
        env.bin_dir.parent().unwrap().join(".crates2.json"),
        r#"{"installs":{
            "heph 0.2.0 (path+file:///s/heph)":{"bins":["heph"]},
            "hephd 0.2.0 (path+file:///s/hephd)":{"bins":["hephd"]},
            "heph-tui 0.2.0 (path+file:///s/heph-tui)":{"bins":["heph-tui","heph-top"]}
        }}"#,
    )
    .unwrap();
    let run = env.run(&["check", "--json"]);
    run.expect(100);
    assert_eq!(run.json()["reason"], "missing_binaries");
    assert_eq!(
        run.json()["missing"],
        serde_json::json!(["heph-tui", "heph-top"])
    );
}

#[test]
fn a_young_release_waits_for_min_release_age() {
    let forge = FakeForge::start(
        Flavour::Forgejo,
        vec![
            FakeRelease::new("v0.2.0").published(&now_minus_hours(1)),
            FakeRelease::new("v0.1.0"),
        ],
    );
    let mut env = TestEnv::new();
    env.forge(&forge).install_plain("0.1.0", &["heph", "hephd"]);
    env.var("HEPH_SELFUPDATE_MIN_RELEASE_AGE", "1d");
    let run = env.run(&["check", "--json"]);
    run.expect(0);
    assert_eq!(run.json()["reason"], "too_young");
    assert!(run.json()["wait_until"].is_string());
}

fn now_minus_hours(h: i64) -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::hours(h);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn github_and_gitlab_give_the_same_answer() {
    for flavour in [Flavour::GitHub, Flavour::GitLab] {
        let (env, _forge) = setup(flavour, Some("0.1.0"));
        let run = env.run(&["check", "--json"]);
        run.expect(100);
        assert_eq!(run.json()["latest"], "0.2.0", "{flavour:?}");
    }
}

#[test]
fn gitlab_upcoming_releases_never_count() {
    let forge = FakeForge::start(
        Flavour::GitLab,
        vec![
            FakeRelease::new("v0.5.0")
                .upcoming()
                .published("2030-01-01T00:00:00.000Z"),
            FakeRelease::new("v0.2.0"),
        ],
    );
    let mut env = TestEnv::new();
    env.forge(&forge).install_plain("0.1.0", &["heph", "hephd"]);
    let run = env.run(&["check", "--json"]);
    run.expect(100);
    assert_eq!(run.json()["latest"], "0.2.0");
    assert_eq!(run.json()["skipped"][0]["reason"], "upcoming");
}

#[test]
fn follows_pagination_across_pages() {
    let tags: Vec<FakeRelease> = [
        "v0.1.6", "v0.1.5", "v0.1.4", "v0.1.3", "v0.1.2", "v0.1.1", "v0.9.9",
    ]
    .iter()
    .map(|t| FakeRelease::new(t))
    .collect();
    for flavour in [Flavour::Forgejo, Flavour::GitHub, Flavour::GitLab] {
        let forge = FakeForge::start(flavour, tags.clone());
        forge.state.lock().unwrap().page_size = 2;
        let mut env = TestEnv::new();
        env.forge(&forge).install_plain("0.1.0", &["heph", "hephd"]);
        let run = env.run(&["check", "--json"]);
        run.expect(100);
        assert_eq!(
            run.json()["latest"],
            "0.9.9",
            "the highest is on the last page ({flavour:?})"
        );
        assert_eq!(forge.requests().len(), 4, "{flavour:?}");
    }
}

/// The files of the HTTP cache and their total size.
fn http_cache(env: &TestEnv) -> (usize, u64) {
    let Ok(dir) = std::fs::read_dir(env.home.join(".cache/heph-selfupdate/http")) else {
        return (0, 0);
    };
    dir.map(|e| e.unwrap().metadata().unwrap().len())
        .fold((0, 0), |(n, bytes), len| (n + 1, bytes + len))
}

#[test]
fn the_http_cache_keeps_only_what_the_last_listing_used_when_page_urls_never_repeat() {
    let tags: Vec<FakeRelease> = ["v0.1.5", "v0.1.4", "v0.1.3", "v0.1.2", "v0.1.1", "v0.2.0"]
        .iter()
        .map(|t| FakeRelease::new(t))
        .collect();
    let forge = FakeForge::start(Flavour::Forgejo, tags);
    {
        let mut st = forge.state.lock().unwrap();
        st.page_size = 2;
        st.cursor_links = true;
    }
    let mut env = TestEnv::new();
    env.forge(&forge).install_plain("0.1.0", &["heph", "hephd"]);
    env.run(&["check"]).expect(100);
    let (files, one_listing) = http_cache(&env);
    assert_eq!(files, 3, "one entry per page of one listing");
    for _ in 0..10 {
        env.run(&["check"]).expect(100);
        let (now_files, now_bytes) = http_cache(&env);
        assert!(
            now_files <= files && now_bytes <= one_listing,
            "the cache grew past one listing: {now_files} files, {now_bytes} bytes (one listing: {files} files, {one_listing} bytes)"
        );
    }
    // The first page's URL does repeat: its entry still answers a conditional request.
    assert!(
        forge
            .requests()
            .iter()
            .any(|r| !r.path.contains("cursor=") && r.header("if-none-match").is_some()),
        "the first page was never asked conditionally"
    );
}

#[test]
fn sends_the_token_in_each_forges_header_and_never_prints_it() {
    let token = "tok-5ecret-value";
    for (flavour, header, value) in [
        (Flavour::Forgejo, "authorization", format!("token {token}")),
        (Flavour::GitHub, "authorization", format!("Bearer {token}")),
        (Flavour::GitLab, "private-token", token.to_owned()),
    ] {
        let (mut env, forge) = setup(flavour, Some("0.1.0"));
        forge.state.lock().unwrap().require_token = Some(token.to_owned());
        let run = env.run(&["check"]);
        run.expect(1);
        assert!(
            run.stderr.contains("requires authentication"),
            "{}",
            run.stderr
        );
        env.var("HEPH_SELFUPDATE_TOKEN", token);
        for args in [
            &["check", "-vv"][..],
            &["check", "--json"],
            &["config"],
            &["config", "--json"],
        ] {
            let run = env.run(args);
            assert!(
                !run.all().contains(token),
                "{args:?} printed the token:\n{}",
                run.all()
            );
        }
        let run = env.run(&["check", "--json"]);
        run.expect(100);
        let sent = forge.requests().last().unwrap().clone();
        assert_eq!(sent.header(header), Some(value.as_str()), "{flavour:?}");
        assert!(
            sent.header("user-agent")
                .unwrap()
                .starts_with("heph-selfupdate/")
        );
        let cache = std::fs::read_dir(env.home.join(".cache/heph-selfupdate/http")).unwrap();
        for entry in cache {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(!text.contains(token), "the cache holds the token");
        }
    }
}

#[test]
fn an_unreachable_forge_exits_1_naming_the_url() {
    let (mut env, _forge) = setup(Flavour::Forgejo, Some("0.1.0"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    env.var("HEPH_SELFUPDATE_FORGE_URL", &format!("http://{closed}"));
    let run = env.run(&["check"]);
    run.expect(1);
    assert!(run.stderr.contains(&closed.to_string()), "{}", run.stderr);
    assert!(run.stderr.contains("help:"), "{}", run.stderr);
}

#[test]
fn http_500_and_garbage_exit_1_with_the_reason() {
    let (env, forge) = setup(Flavour::Forgejo, Some("0.1.0"));
    forge.set_fault(Some(Fault::Status(
        500,
        "{\"message\":\"database is locked\"}".into(),
    )));
    let run = env.run(&["check"]);
    run.expect(1);
    assert!(
        run.stderr.contains("HTTP 500") && run.stderr.contains("database is locked"),
        "{}",
        run.stderr
    );
    assert_eq!(forge.requests().len(), 3, "retried twice");

    forge.set_fault(Some(Fault::Garbage));
    let run = env.run(&["check"]);
    run.expect(1);
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
}

#[test]
fn a_wrong_repository_says_so() {
    let (mut env, _forge) = setup(Flavour::GitHub, Some("0.1.0"));
    env.var("HEPH_SELFUPDATE_REPO", "eblume/nope");
    let run = env.run(&["check"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("repository eblume/nope not found (HTTP 404"),
        "{}",
        run.stderr
    );
}

#[test]
fn rate_limits_are_reported_with_the_reset_time() {
    let (env, forge) = setup(Flavour::GitHub, Some("0.1.0"));
    forge.set_fault(Some(Fault::GitHubRateLimit {
        reset: 1_900_000_000,
    }));
    let run = env.run(&["check"]);
    run.expect(1);
    assert!(
        run.stderr.contains("rate limiting") && run.stderr.contains("2030-03-17T17:46:40Z"),
        "{}",
        run.stderr
    );
    forge.set_fault(Some(Fault::TooManyRequests));
    let run = env.run(&["check"]);
    assert!(
        run.stderr.contains("rate limiting") && run.stderr.contains("resets at"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_second_check_is_a_conditional_request_answered_by_304() {
    let (env, forge) = setup(Flavour::Forgejo, Some("0.1.0"));
    env.run(&["check"]).expect(100);
    forge.clear_requests();
    let run = env.run(&["check", "--json"]);
    run.expect(100);
    assert_eq!(run.json()["latest"], "0.2.0");
    let sent = forge.requests();
    assert!(sent[0].header("if-none-match").is_some(), "conditional");
}

#[test]
fn check_changes_nothing() {
    let (env, _forge) = setup(Flavour::Forgejo, Some("0.1.0"));
    env.run(&["check"]).expect(100);
    assert!(!env.state_dir().exists(), "no state written");
    assert!(!env.data_dir().exists(), "no version roots");
    assert!(env.calls().is_empty(), "no programs run");
}
