//! The trust boundaries: what the forge (and whatever it points us at) may make us do.
//! Credentials stay with `forge_url`'s origin, outside text is redacted and escaped,
//! paging survives 304s, a listing is bounded in time and memory, a person's interrupt
//! ends a stalled request, an undated release is held by `min_release_age`, and our
//! files cannot be redirected by planted links or foreign directories.
//!
//! Wherever a token is involved, the check is the same: the token value appears only in
//! requests the configured forge received, in no file under the sandbox, and in no
//! output (`assert_token_contained`). docs/reliability.md ("Trust") lists each test.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::env::{Run, TestEnv};
use crate::support::forge::{FakeForge, FakeRelease, Fault, Flavour, Seen};
use crate::support::scenario::{assert_sound, calls_of, sandbox};
use crate::support::tls::{Answer, TlsServer};

const TOKEN: &str = "tok-7f3a9c-trust-boundary";

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Every file under `dir`, links not followed.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => out.extend(walk(&p)),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

fn seen_token(requests: &[Seen]) -> bool {
    requests
        .iter()
        .any(|r| r.path.contains(TOKEN) || r.headers.iter().any(|(_, v)| v.contains(TOKEN)))
}

/// The token reached none of `others`, no file under the sandbox, and no output.
#[track_caller]
fn assert_token_contained(env: &TestEnv, others: &[&FakeForge], runs: &[&Run]) {
    for (i, other) in others.iter().enumerate() {
        let got = other.requests();
        assert!(
            !seen_token(&got),
            "stand-in #{i} ({}) got the token: {got:?}",
            other.url()
        );
    }
    for file in walk(env.dir.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "{} holds the token",
            file.display()
        );
    }
    for run in runs {
        assert!(!run.all().contains(TOKEN), "printed:\n{}", run.all());
    }
}

fn releases(tags: &[&str]) -> Vec<FakeRelease> {
    tags.iter().map(|t| FakeRelease::new(t)).collect()
}

/// A check-only sandbox (plain binaries in `~/.cargo/bin`, no daemon) against `forge`.
fn check_env(forge: &FakeForge, installed: &str) -> TestEnv {
    let mut env = TestEnv::new();
    env.forge(forge)
        .var("HEPH_SELFUPDATE_RETRY_PAUSE", "0s")
        .var("HEPH_SELFUPDATE_TOKEN", TOKEN);
    env.install_plain(installed, &["heph", "hephd"]);
    env
}

// ---- 1. credentials belong to forge_url's origin for the whole listing ----

#[test]
fn a_next_page_on_another_host_or_port_gets_no_token() {
    let tags = ["v0.3.0", "v0.2.0", "v0.1.0"];
    let home = FakeForge::start(Flavour::Forgejo, releases(&tags));
    let other_host = FakeForge::start_on("127.0.0.2", Flavour::Forgejo, releases(&tags));
    let other_port = FakeForge::start(Flavour::Forgejo, releases(&tags));
    for f in [&home, &other_host, &other_port] {
        f.state.lock().unwrap().page_size = 1;
    }
    home.state.lock().unwrap().require_token = Some(TOKEN.to_owned());
    // Page 2 is on 127.0.0.2, and page 3 on another port of 127.0.0.1.
    home.state.lock().unwrap().link_base = Some(other_host.url());
    other_host.state.lock().unwrap().link_base = Some(other_port.url());
    let env = check_env(&home, "0.1.0");
    let run = env.run(&["check", "--json", "-vv"]);
    run.expect(100);
    assert_eq!(run.json()["latest"], "0.3.0");
    assert_eq!(
        home.requests()[0].header("authorization"),
        Some(format!("token {TOKEN}").as_str())
    );
    assert_eq!(other_host.requests().len(), 1, "page 2 was read there");
    assert_eq!(other_port.requests().len(), 1, "page 3 was read there");
    assert_token_contained(&env, &[&other_host, &other_port], &[&run]);
}

#[test]
fn a_host_the_forge_redirected_to_gets_no_token_when_it_names_itself_as_the_next_page() {
    let tags = ["v0.3.0", "v0.2.0"];
    let home = FakeForge::start(Flavour::Forgejo, releases(&tags));
    let mirror = FakeForge::start_on("127.0.0.2", Flavour::Forgejo, releases(&tags));
    mirror.state.lock().unwrap().page_size = 1;
    home.set_fault(Some(Fault::RedirectTo(mirror.url())));
    let env = check_env(&home, "0.1.0");
    let run = env.run(&["check", "--json", "-vv"]);
    run.expect(100);
    assert_eq!(
        mirror.requests().len(),
        2,
        "both pages came from the mirror"
    );
    assert_eq!(
        home.requests()[0].header("authorization"),
        Some(format!("token {TOKEN}").as_str())
    );
    assert_token_contained(&env, &[&mirror], &[&run]);
}

/// `openssl s_server -HTTP` for `localhost`, under a fresh CA: it answers each GET with the
/// file of that name (query included), which holds a whole HTTP answer.
struct HttpsForge(TlsServer);

impl HttpsForge {
    fn start(dir: &Path) -> Option<Self> {
        TlsServer::start(dir, Answer::Files).map(Self)
    }

    fn url(&self) -> String {
        self.0.url()
    }

    /// Answers GET `path_and_query` with 200, these extra headers and this body.
    fn serve(&self, path_and_query: &str, headers: &[(&str, &str)], body: &str) {
        let file = self.0.dir.join(path_and_query.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            let _ = write!(answer, "{k}: {v}\r\n");
        }
        answer.push_str("\r\n");
        answer.push_str(body);
        std::fs::write(file, answer).unwrap();
    }
}

#[test]
fn an_https_forge_cannot_send_the_listing_to_plain_http() {
    let plain = FakeForge::start_on(
        "127.0.0.2",
        Flavour::Forgejo,
        releases(&["v0.3.0", "v0.2.0"]),
    );
    let mut env = check_env(&plain, "0.1.0");
    let Some(tls) = HttpsForge::start(&env.dir.path().join("tls")) else {
        eprintln!("SKIPPED: openssl is not installed");
        return;
    };
    let page2 = format!(
        "{}/api/v1/repos/eblume/hephaestus/releases?limit=50&page=2",
        plain.url()
    );
    tls.serve(
        "/api/v1/repos/eblume/hephaestus/releases?limit=50",
        &[("Link", &format!("<{page2}>; rel=\"next\""))],
        r#"[{"tag_name": "v0.2.0", "published_at": "2026-01-10T08:00:00Z"}]"#,
    );
    env.var("HEPH_SELFUPDATE_FORGE_URL", &tls.url())
        .var("SSL_CERT_FILE", tls.0.ca.to_str().unwrap());
    let run = env.run(&["check", "-vv"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("refusing to go from https to plain http")
            && run.stderr.contains(&format!(
                "{}/api/v1/repos/eblume/hephaestus/releases?limit=50 led to {page2}",
                tls.url()
            )),
        "{}",
        run.stderr
    );
    assert!(
        plain.requests().is_empty(),
        "the plain http page was not asked for"
    );
    assert_token_contained(&env, &[&plain], &[&run]);
}

// ---- 2. outside text is redacted ----

#[test]
fn a_token_the_forge_echoes_is_shown_and_stored_nowhere() {
    let forge = FakeForge::start(Flavour::Forgejo, releases(&["v0.3.0", "v0.2.0"]));
    {
        let mut st = forge.state.lock().unwrap();
        st.page_size = 1;
        st.require_token = Some(TOKEN.to_owned());
        // In the next page's URL, an `X-Echo` header and every error body.
        st.echo_credential = true;
    }
    let env = check_env(&forge, "0.1.0");
    let listed = env.run(&["check", "-vv"]);
    listed.expect(100);
    assert!(
        forge.requests()[1].path.contains("echo="),
        "the next page's URL carried the echo"
    );
    assert!(
        listed.stderr.contains("&echo=token+<redacted>: 1 releases"),
        "{}",
        listed.stderr
    );
    // Now the token is refused, and the refusal quotes it.
    forge.state.lock().unwrap().require_token = Some("another".to_owned());
    let refused = env.run(&["check", "-vv"]);
    refused.expect(1);
    assert!(
        refused.stderr.contains(
            "rejected the token (HTTP 401: credential token <redacted> is not valid here)"
        ),
        "{}",
        refused.stderr
    );
    let json = env.run(&["check", "--json"]);
    json.expect(1);
    assert_token_contained(&env, &[], &[&listed, &refused, &json]);
}

// ---- 3. a 304 without Link does not end the listing ----

#[test]
fn a_304_without_link_still_reads_every_page_and_old_cache_entries_are_asked_afresh() {
    // The highest version is on the last page: a listing cut short shows at once.
    let forge = FakeForge::start(Flavour::GitHub, releases(&["v0.2.0", "v0.1.0", "v0.3.0"]));
    forge.state.lock().unwrap().page_size = 1;
    let env = check_env(&forge, "0.1.0");
    let conditional = |requests: &[Seen]| {
        requests
            .iter()
            .filter(|r| r.header("if-none-match").is_some())
            .count()
    };

    assert_eq!(env.run(&["check", "--json"]).json()["latest"], "0.3.0");
    forge.clear_requests();
    let again = env.run(&["check", "--json"]);
    assert_eq!(again.json()["latest"], "0.3.0", "{}", again.stderr);
    let requests = forge.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(conditional(&requests), 3, "every page answered 304");

    // Entries written before links were kept (no `format`, no `headers`).
    let cache = env.home.join(".cache/heph-selfupdate/http");
    for file in walk(&cache) {
        let mut entry: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let map = entry.as_object_mut().unwrap();
        assert!(map.remove("format").is_some() && map.remove("headers").is_some());
        std::fs::write(&file, entry.to_string()).unwrap();
    }
    forge.clear_requests();
    let old = env.run(&["check", "--json"]);
    assert_eq!(old.json()["latest"], "0.3.0");
    assert!(!old.stderr.contains("corrupt"), "{}", old.stderr);
    assert_eq!(conditional(&forge.requests()), 0, "asked afresh");
    forge.clear_requests();
    assert_eq!(env.run(&["check", "--json"]).json()["latest"], "0.3.0");
    assert_eq!(conditional(&forge.requests()), 3, "and cached anew");
}

// ---- 4. a listing is bounded in time and memory ----

#[test]
fn a_listing_of_slow_pages_ends_by_its_deadline_of_four_request_timeouts() {
    let tags: Vec<String> = (1..=20).rev().map(|i| format!("v0.{i}.0")).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let forge = FakeForge::start(Flavour::Forgejo, releases(&tags));
    {
        let mut st = forge.state.lock().unwrap();
        st.page_size = 1;
        // Each page well within http_timeout, the whole list far beyond 4 × it.
        st.delay = Some(Duration::from_millis(700));
    }
    let mut env = check_env(&forge, "0.1.0");
    env.var("HEPH_SELFUPDATE_HTTP_TIMEOUT", "1s");
    let run = env.run(&["check"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("the listing did not finish within 4s (4 × http_timeout)"),
        "{}",
        run.stderr
    );
    let asked = forge.requests().len();
    eprintln!("{asked} of 20 pages were asked for");
    assert!(asked < 8, "{asked} of 20 pages were asked for");
}

/// Runs the binary under `/usr/bin/time` and returns (exit code, peak resident memory in
/// KiB), measured by a small intermediate process so the test's own memory does not count.
fn run_measured(env: &TestEnv, args: &[&str]) -> Option<(i32, u64)> {
    if !Path::new("/usr/bin/time").exists() {
        return None;
    }
    let report = env.dir.path().join("time.out");
    let cmd = env.command(args);
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(cmd.get_program())
        .args(args)
        .env_clear()
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let kib = std::fs::read_to_string(&report)
        .ok()?
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()?;
    Some((out.code().unwrap_or(-1), kib))
}

/// A JSON list of `entry`, as many as fit in 8 MiB (the answer cap).
fn page_of(entry: &str) -> String {
    let n = (8 * 1024 * 1024 - 2) / (entry.len() + 1);
    let mut body = String::with_capacity(8 * 1024 * 1024);
    body.push('[');
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str(entry);
    }
    body.push(']');
    assert!(body.len() <= 8 * 1024 * 1024);
    body
}

#[test]
fn an_eight_mib_page_of_tiny_entries_stays_within_four_times_the_answer_cap_of_memory() {
    let forge = FakeForge::start(Flavour::Forgejo, vec![]);
    let env = check_env(&forge, "0.1.0");
    let bound_kib = 4 * 8 * 1024;
    for entry in ["{}", r#"{"tag_name":"v0.0.1"}"#] {
        forge.set_fault(Some(Fault::Status(200, page_of(entry))));
        let Some((code, peak_kib)) = run_measured(&env, &["check"]) else {
            eprintln!("SKIPPED: no /usr/bin/time");
            return;
        };
        assert_eq!(code, 0, "{entry}: read, nothing newer");
        eprintln!("peak memory {peak_kib} KiB for 8 MiB of {entry}");
        assert!(
            peak_kib < bound_kib,
            "peak memory {peak_kib} KiB for 8 MiB of {entry}; the bound is {bound_kib} KiB"
        );
    }
}

// ---- 5. a person's interrupt ends a stalled request ----

#[test]
fn sigint_or_sigterm_ends_a_check_waiting_on_a_stalled_forge() {
    let forge = FakeForge::start(Flavour::Forgejo, releases(&["v0.2.0"]));
    forge.set_fault(Some(Fault::Hang));
    let mut env = check_env(&forge, "0.1.0");
    env.var("HEPH_SELFUPDATE_HTTP_TIMEOUT", "30s");
    for signal in [libc::SIGINT, libc::SIGTERM] {
        forge.clear_requests();
        let mut child = env
            .command(&["check"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Until the request is stalled at the forge (bounded, so a broken test ends).
        let waiting = Instant::now() + Duration::from_secs(20);
        while forge.requests().is_empty() && Instant::now() < waiting {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!forge.requests().is_empty(), "the request never arrived");
        std::thread::sleep(Duration::from_millis(500));
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), signal) };
        let signalled = Instant::now();
        // A correctness bound far below the 30 s http_timeout, not a performance claim.
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if signalled.elapsed() > Duration::from_secs(5) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check still waited 5 s after signal {signal}");
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(
                "interrupted by a signal (SIGINT or SIGTERM) while waiting for the forge"
            ),
            "{stderr}"
        );
    }
}

// ---- 6. outside text cannot forge output lines ----

#[test]
fn control_characters_in_tags_cannot_forge_lines_of_check_output() {
    let forge = FakeForge::start(
        Flavour::Forgejo,
        releases(&[
            "v9.9.9\u{1b}[31m\r\nresult:    up to date (9.9.9)",
            "v8.0.0\u{1b}]0;owned\u{7}",
            "v0.2.0",
        ]),
    );
    let env = check_env(&forge, "0.1.0");
    let run = env.run(&["check", "-v"]);
    run.expect(100);
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }
    let labels = ["installed:", "missing:", "release:", "result:", "skipped:"];
    for line in run.stdout.lines() {
        assert!(
            labels.iter().any(|l| line.starts_with(l)),
            "a line no report writes: {line:?}"
        );
    }
    let results: Vec<_> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("result:"))
        .collect();
    assert_eq!(results, ["result:    update available: 0.1.0 -> 0.2.0"]);
    assert!(
        run.stdout.contains(
            "skipped:   v9.9.9\\u{1b}[31m\\r\\nresult:    up to date (9.9.9): tag has characters"
        ),
        "{}",
        run.stdout
    );
}

// ---- 7. min_release_age holds a release it cannot date ----

#[test]
fn min_release_age_holds_a_release_without_a_readable_publish_date() {
    let forge = FakeForge::start(
        Flavour::Forgejo,
        vec![
            FakeRelease::new("v0.2.0").published("last tuesday"),
            FakeRelease::new("v0.1.0"),
        ],
    );
    let mut env = check_env(&forge, "0.1.0");
    env.var("HEPH_SELFUPDATE_MIN_RELEASE_AGE", "2d");
    let j = env.run(&["check", "--json"]).json();
    assert_eq!(j["update_available"], false);
    assert_eq!(j["reason"], "no_publish_date");
    assert_eq!(
        j["message"],
        "v0.2.0 is held: no publish date; its age cannot be checked (min_release_age, rollout_spread)"
    );
    // `--to` is a person's explicit choice.
    let to = env.run(&["check-and-apply", "--dry-run", "--to", "0.2.0"]);
    assert_eq!(to.code, 0, "{}", to.all());
    assert!(to.stdout.contains("0.2.0"), "{}", to.stdout);
}

// ---- 8. our files: no planted links, no foreign directories ----

#[test]
fn a_link_planted_at_the_lock_leaves_its_target_untouched() {
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let victim = s.env.dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir_all(s.env.state_dir()).unwrap();
    std::os::unix::fs::symlink(&victim, s.env.state_dir().join("lock")).unwrap();
    let run = s.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("symbolic link") && run.stderr.contains("help: remove the link"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(calls_of(&s.env, "cargo").is_empty(), "nothing built");
    std::fs::remove_file(s.env.state_dir().join("lock")).unwrap();
    assert_sound(&s.env, "0.1.0");
}

fn uid_of(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).unwrap();
    let pwd = unsafe { libc::getpwnam(name.as_ptr()) };
    (!pwd.is_null()).then(|| unsafe { (*pwd).pw_uid })
}

#[test]
fn state_and_data_dirs_owned_by_another_user_are_refused() {
    if !is_root() {
        eprintln!("SKIPPED: giving a directory to another user needs root");
        return;
    }
    let Some(nobody) = uid_of("nobody") else {
        eprintln!("SKIPPED: no user `nobody` here");
        return;
    };
    let s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    for dir in [s.env.state_dir(), s.env.data_dir()] {
        std::fs::create_dir_all(&dir).unwrap();
        let c = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::chown(c.as_ptr(), nobody, u32::MAX) }, 0);
        let run = s.env.run(&["check-and-apply"]);
        run.expect(1);
        assert!(
            run.stderr.contains(&format!(
                "refusing to use {}: it is owned by uid {nobody} (nobody), not by uid 0 (root)",
                dir.display()
            )) && run.stderr.contains("help: use a directory you own"),
            "{}",
            run.stderr
        );
        assert!(calls_of(&s.env, "cargo").is_empty(), "nothing built");
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 0, u32::MAX) }, 0);
    }
    assert_sound(&s.env, "0.1.0");
}

#[test]
fn a_cache_dir_others_can_write_is_neither_read_nor_written() {
    let forge = FakeForge::start(Flavour::Forgejo, releases(&["v0.2.0"]));
    let env = check_env(&forge, "0.1.0");
    env.run(&["check"]).expect(100);
    let cache = env.home.join(".cache/heph-selfupdate/http");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    forge.clear_requests();
    let run = env.run(&["check"]);
    run.expect(100);
    assert!(
        forge.requests()[0].header("if-none-match").is_none(),
        "the planted-into cache was not believed"
    );
    assert!(
        run.stderr.contains("could not update the HTTP cache")
            && run
                .stderr
                .contains("writable by its group and by others (mode 0777)"),
        "{}",
        run.stderr
    );
}

/// A build kept from before `verify_tag` was turned on carries no checked signature: with
/// `verify_tag` it is not reused as it is (a person's `--force` included), the tag is
/// checked as for any build, and an unsigned tag is refused.
#[test]
fn with_verify_tag_a_kept_build_whose_tag_was_never_checked_is_not_reused() {
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    s.env.run(&["check-and-apply"]).expect(0);
    s.env.run(&["rollback"]).expect(0);
    assert_eq!(s.env.current_root().as_deref(), Some("0.1.0"));
    let signers = s.env.dir.path().join("allowed_signers");
    std::fs::write(
        &signers,
        "release@test.invalid ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5bm90dXNlZGZvcnNpZ25pbmc\n",
    )
    .unwrap();
    s.env.var("HEPH_SELFUPDATE_VERIFY_TAG", "true").var(
        "HEPH_SELFUPDATE_ALLOWED_SIGNERS",
        &signers.display().to_string(),
    );
    let run = s.env.run(&["check-and-apply", "--force"]);
    run.expect(1);
    assert!(
        !run.stderr.contains("reusing the kept build")
            && run.stderr.contains("the tag v0.2.0 carries no signature"),
        "{}",
        run.stderr
    );
    assert_eq!(s.env.current_root().as_deref(), Some("0.1.0"));
}

/// A key removed from `allowed_signers` (compromised, retired) signs nothing any more: a
/// build it signed is switched to again neither by a kept-build reuse (`--force`, as
/// after a rollback) nor by `rollback --to`, while the same tag built afresh is refused
/// too. The signature kept with the build is checked again, now, before any reuse: while
/// the key is allowed the kept build is reused as it is.
#[test]
fn a_kept_build_signed_by_a_key_no_longer_allowed_is_not_switched_to() {
    if !["/usr/bin/ssh-keygen", "/bin/ssh-keygen"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        assert!(
            std::env::var("CI_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "no ssh-keygen and CI_REQUIRE_TOOLS=1: install the Debian package `openssh-client`"
        );
        eprintln!("SKIPPED: no ssh-keygen (Debian package `openssh-client`)");
        return;
    }
    let mut s = sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let signing = crate::e2e_cargo::Signing::at(&s.env, &s.repo.dir);
    let old = signing.ssh_key("old");
    let new = signing.ssh_key("new");
    let signers = signing.allowed(&format!("old@test.invalid {old}"));
    signing.sign_ssh("v0.2.0", "old", None);
    s.env.var("HEPH_SELFUPDATE_VERIFY_TAG", "true").var(
        "HEPH_SELFUPDATE_ALLOWED_SIGNERS",
        &signers.display().to_string(),
    );
    let run = s.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("signed by old@test.invalid"),
        "{}",
        run.stderr
    );
    s.env.run(&["rollback"]).expect(0);
    assert_eq!(s.env.current_root().as_deref(), Some("0.1.0"));

    // The key still allowed: the kept build is reused, its signature checked again.
    let run = s.env.run(&["check-and-apply", "--force"]);
    run.expect(0);
    assert!(
        run.stderr.contains(
            "the signature of v0.2.0 kept with the build 0.2.0 is good now: signed by old@test.invalid"
        ) && run.stderr.contains("reusing the kept build 0.2.0"),
        "{}",
        run.stderr
    );
    s.env.run(&["rollback"]).expect(0);

    // The old key is retired: only the new one may sign.
    signing.allowed(&format!("new@test.invalid {new}"));
    let run = s.env.run(&["check-and-apply", "--force"]);
    assert!(
        !run.stderr.contains("reusing the kept build"),
        "the build signed by the removed key was switched to again:\n{}",
        run.stderr
    );
    run.expect(1);
    assert!(
        run.stderr.contains("the kept build 0.2.0 of v0.2.0 is not used: its signature is not from a signer allowed_signers lists now")
            && run.stderr.contains("the signature of v0.2.0 is not from an allowed signer valid now"),
        "the kept build is passed over and the tag refused afresh: {}",
        run.stderr
    );
    assert_eq!(
        s.env.current_root().as_deref(),
        Some("0.1.0"),
        "{}",
        run.stderr
    );
    let run = s.env.run(&["rollback", "--to", "0.2.0"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("refusing to roll back to 0.2.0: its signature is not from a signer allowed_signers lists now"),
        "{}",
        run.stderr
    );
    // `--to`, which would use a kept root of the version as it is: built afresh, refused.
    let run = s.env.run(&["check-and-apply", "--to", "0.2.0"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("the kept build 0.2.0 of v0.2.0 is not used: its signature")
            && run.stderr.contains("not from an allowed signer valid now"),
        "{}",
        run.stderr
    );
    assert_eq!(s.env.current_root().as_deref(), Some("0.1.0"));
}
