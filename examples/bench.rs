//! `make bench`: what heph-selfupdate costs, measured against the alternative, in one run.
//!
//! 1. check cost vs `curl` fetching the same release list (first and conditional request);
//! 2. peak memory of `check` and `check-and-apply` (cargo not counted);
//! 3. build times on a workspace shaped like hephaestus (a core library with serde,
//!    regex and SQLite compiled from C, three binaries): the default `build = "checkout"`
//!    cold and for a change in one binary, in the core, in `Cargo.lock`; `build = "git"`;
//!    the target dir's size over ten releases with and without `cache_max_size`; a
//!    too-old toolchain — each against the plain `cargo install --locked --git … --tag …`
//!    people run today, and each must install the new code; then the same workspace with
//!    a release profile like pueue's (thin LTO, one codegen unit), where link-time
//!    optimisation dominates every build, and with `build_profile` set to a profile
//!    without it;
//! 4. downtime of the daemon during an update vs the whole update;
//! 5. binary size and `--version` start-up.
//!
//! Everything runs locally (a loopback stand-in forge, local git repositories); crates.io
//! is needed once, for the dependencies of the rebuild fixture. Prints a table and writes
//! `docs/benchmarks.md` and `docs/rebuild.svg`. Ratios are what to compare: the machines
//! are noisy, and both sides of a ratio are measured in the same run, interleaved.
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::too_many_lines
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::env::TestEnv;
use support::fixture::{self, Daemon, Repo, workspace_repo};
use support::forge::{FakeForge, FakeRelease, Flavour};

/// One measured comparison.
struct Row {
    what: String,
    ours: String,
    baseline: String,
    ratio: String,
    target: String,
    met: bool,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
    commands: Vec<String>,
}

impl Report {
    /// A downtime row: medians of the daemon's downtime and of the whole update (seconds).
    fn downtime(&mut self, manager: &str, whole_label: &str, down: &[f64], whole: &[f64]) {
        let (d, w) = (median(down.to_vec()), median(whole.to_vec()));
        self.rows.push(Row {
            what: format!(
                "daemon downtime during an update ({manager}), median of {}",
                down.len()
            ),
            ours: ms(d),
            baseline: format!("{} ({whole_label})", secs(w)),
            ratio: format!("{:.3} of the update", d / w),
            target: "only the restart; no build inside".into(),
            met: d < 0.5 && d / w < 0.2,
        });
    }

    /// A peak-memory row (target: under 16 MiB).
    fn memory(&mut self, what: &str, kib: u64) {
        self.rows.push(Row {
            what: what.into(),
            ours: format!("{:.1} MiB", kib as f64 / 1024.0),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "< 16 MiB".into(),
            met: kib < 16 * 1024,
        });
    }
}

fn ms(d: f64) -> String {
    format!("{:.1} ms", d * 1000.0)
}

fn secs(d: f64) -> String {
    format!("{d:.1} s")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// Wall time of one run; panics with the output when the exit code is not `expect`.
fn timed(cmd: &mut Command, expect: i32) -> f64 {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let t = start.elapsed().as_secs_f64();
    assert_eq!(
        out.status.code(),
        Some(expect),
        "{cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t
}

/// Peak resident memory (KiB) of the process itself — not of its children — by polling
/// its `VmHWM` (a high-water mark, so only the last few milliseconds could be missed).
fn peak_rss_kib(cmd: &mut Command) -> u64 {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            return peak;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn machine() -> String {
    let uname = Command::new("uname")
        .arg("-srm")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{uname}; {cpu}; {cores} cores; {rustc}")
}

/// The user's CARGO_HOME: downloaded crates are reused between benchmark runs.
fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"),
        PathBuf::from,
    )
}

fn plain_install(repo: &Repo, tag: &str, root: &Path) -> Command {
    fixture::plain_install(repo, tag, root, &cargo_home())
}

fn output_of(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// 5. Binary size and start-up.
fn startup(report: &mut Report, bin: &Path) {
    let size = std::fs::metadata(bin).unwrap().len();
    let mut ours = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..200 {
        ours.push(timed(Command::new(bin).arg("--version"), 0));
        floor.push(timed(&mut Command::new("/bin/true"), 0));
    }
    let (o, f) = (median(ours), median(floor));
    report.rows.push(Row {
        what: "`--version` start-up (median of 200)".into(),
        ours: ms(o),
        baseline: format!("{} (`/bin/true`)", ms(f)),
        ratio: format!("{:.2}x", o / f),
        target: "-".into(),
        met: true,
    });
    report.rows.push(Row {
        what: "release binary size".into(),
        ours: format!("{:.1} MiB", size as f64 / 1024.0 / 1024.0),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "-".into(),
        met: true,
    });
}

/// 1. Check cost, and 2. peak memory of `check`.
fn check_cost(report: &mut Report) {
    let releases: Vec<FakeRelease> = (1..=30)
        .rev()
        .map(|i| FakeRelease::new(&format!("v0.{i}.0")))
        .collect();
    let forge = FakeForge::start(Flavour::Forgejo, releases);
    let mut env = TestEnv::new();
    env.use_real_toolchain(&cargo_home());
    env.forge(&forge);
    // A real, compiled hephd 0.1.0 is installed: `check` asks it its version.
    let repo = workspace_repo(&env.dir.path().join("repo"), &[("v0.1.0", Daemon::Good)]);
    let mut install = plain_install(&repo, "v0.1.0", &env.home.join(".cargo"));
    timed(&mut install, 0);
    let url = format!(
        "{}/api/v1/repos/eblume/hephaestus/releases?limit=50",
        forge.url()
    );
    let cache = env.home.join(".cache/heph-selfupdate");
    let check = |env: &TestEnv| env.command(&["check", "-q"]);
    let curl = |extra: &[&str]| {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-H", "Accept: application/json"])
            .args(extra)
            .arg(&url);
        c
    };
    report.commands.push(format!(
        "heph-selfupdate check -q   (against {url}; hephd 0.1.0 installed)"
    ));
    report.commands.push(format!(
        "curl -s -o /dev/null -H 'Accept: application/json' {url}"
    ));

    // Requests per check.
    forge.clear_requests();
    timed(&mut check(&env), 100);
    let requests = forge.requests().len();
    let etag = forge.requests()[0]
        .header("if-none-match")
        .map(String::from);
    assert!(etag.is_none(), "a first check is unconditional");

    let (mut ours_first, mut curl_first) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let _ = std::fs::remove_dir_all(&cache);
        ours_first.push(timed(&mut check(&env), 100));
        curl_first.push(timed(&mut curl(&[]), 0));
    }
    // Conditional requests: our ETag cache; curl with the same If-None-Match.
    timed(&mut check(&env), 100);
    forge.clear_requests();
    timed(&mut check(&env), 100);
    let etag = forge.requests()[0]
        .header("if-none-match")
        .expect("conditional")
        .to_owned();
    let inm = format!("If-None-Match: {etag}");
    let (mut ours_cond, mut curl_cond) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        ours_cond.push(timed(&mut check(&env), 100));
        curl_cond.push(timed(&mut curl(&["-H", &inm]), 0));
    }
    for (label, ours, theirs) in [
        (
            "check, first request (no cache)",
            median(ours_first),
            median(curl_first),
        ),
        (
            "check, conditional request (304)",
            median(ours_cond),
            median(curl_cond),
        ),
    ] {
        let ratio = ours / theirs;
        let extra = ours - theirs;
        report.rows.push(Row {
            what: format!("{label}, median of 40"),
            ours: ms(ours),
            baseline: format!("{} (curl)", ms(theirs)),
            ratio: format!("{ratio:.2}x ({:+.1} ms)", extra * 1000.0),
            target: "<= 1.5x curl, a few ms beyond".into(),
            met: ratio <= 1.5 || extra <= 0.005,
        });
    }
    report.notes.push(format!(
        "A check makes {requests} request to the forge, and runs one program: the installed `hephd --version` (curl does neither the latter nor the decision)."
    ));

    let _ = std::fs::remove_dir_all(&cache);
    let kib = peak_rss_kib(&mut check(&env));
    report.memory("peak memory of `check`", kib);
}

/// 2. Peak memory of `check-and-apply` (the stand-in cargo does the build).
fn apply_memory(report: &mut Report) {
    let s = support::scenario::sandbox("0.1.0", &["v0.1.0", "v0.2.0"]);
    let kib = peak_rss_kib(&mut s.env.command(&["check-and-apply"]));
    assert!(
        output_of(&s.env.bin_dir.join("hephd"), &["--version"]).contains("0.2.0"),
        "the update happened"
    );
    report.memory("peak memory of `check-and-apply` (cargo not counted)", kib);
}

/// 4. Downtime: old daemon stopped → new daemon up, against the whole update.
fn downtime(report: &mut Report) {
    let tags = ["v0.1.0", "v0.2.0", "v0.3.0", "v0.4.0"];
    let mut env = TestEnv::new();
    let repo = workspace_repo(
        &env.dir.path().join("repo"),
        &tags.map(|t| (t, Daemon::Good)),
    );
    let forge = FakeForge::start(Flavour::Forgejo, vec![FakeRelease::new("v0.1.0")]);
    let ready = env.dir.path().join("ready");
    env.forge(&forge)
        .var("HEPH_SELFUPDATE_GIT_URL", &repo.url())
        .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "systemd-user")
        .var("HEPH_SELFUPDATE_HEALTH_SETTLE", "1s")
        .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "50MiB")
        .var("HEPHD_READY_FILE", &ready.display().to_string());
    env.install_fakes();
    env.use_real_toolchain(&cargo_home());
    timed(
        &mut plain_install(&repo, "v0.1.0", &env.home.join(".cargo")),
        0,
    );
    env.start_daemon();
    let stamps = |f: &Path| -> Vec<u128> {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    let (mut down, mut whole, mut build) = (Vec::new(), Vec::new(), Vec::new());
    for (i, tag) in tags.iter().enumerate().skip(1) {
        forge.set_releases(
            tags[..=i]
                .iter()
                .rev()
                .map(|t| FakeRelease::new(t))
                .collect(),
        );
        let out = {
            let start = Instant::now();
            let out = env.command(&["check-and-apply"]).output().unwrap();
            whole.push(start.elapsed().as_secs_f64());
            out
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let b = log
            .lines()
            .find_map(|l| {
                l.strip_prefix("built ")
                    .and_then(|r| r.split(" in ").nth(1))
                    .and_then(|r| r.split(':').next())
            })
            .unwrap_or("")
            .to_owned();
        build.push(b);
        let stopped = *stamps(&env.dir.path().join("fake-state/stopped"))
            .last()
            .unwrap();
        let up = stamps(&ready).into_iter().find(|t| *t > stopped).unwrap();
        down.push((up - stopped) as f64 / 1e9);
        assert!(output_of(&env.bin_dir.join("hephd"), &["--version"]).contains(&tag[1..]));
    }
    report.downtime(
        "stand-in service manager",
        "whole check-and-apply",
        &down,
        &whole,
    );
    report.notes.push(format!(
        "Downtime is measured from the old daemon's exit (recorded by the stand-in service manager) to the new daemon's first line of `main` (it writes a timestamp). The builds inside those updates took {} (the no-dependency fixture); the daemon kept running during them, because the build goes into a new version root and only the final rename switches. A longer build lengthens the update, not the downtime.",
        build.join(", ")
    ));
}

/// 4'. Downtime under the real systemd (root only): `ActiveExitTimestamp` (the stop began)
/// to `ActiveEnterTimestamp` (the new process runs), both from systemd's monotonic clock.
fn downtime_systemd(report: &mut Report) {
    let tags = ["v0.1.0", "v0.2.0", "v0.3.0", "v0.4.0"];
    let sc = match support::sandbox::Scenario::new(
        &tags.map(|t| (t, Daemon::Good)),
        &["v0.1.0"],
        "1s",
    ) {
        Ok(sc) => sc,
        Err(why) => {
            report.notes.push(format!("The real-systemd downtime measurement was skipped ({why}); run `make bench` as root for it."));
            return;
        }
    };
    support::sandbox::check(&sc.make("install"), "make install");
    let micros = |name: &str| {
        sc.sb
            .property("hephd.service", name)
            .parse::<f64>()
            .unwrap_or(0.0)
            / 1e6
    };
    let (mut down, mut whole) = (Vec::new(), Vec::new());
    for i in 1..tags.len() {
        sc.forge.set_releases(
            tags[..=i]
                .iter()
                .rev()
                .map(|t| FakeRelease::new(t))
                .collect(),
        );
        let start = Instant::now();
        support::sandbox::check(
            &sc.sb
                .user(&["systemctl", "--user", "start", "heph-selfupdate.service"]),
            "the service",
        );
        whole.push(start.elapsed().as_secs_f64());
        down.push(micros("ActiveEnterTimestampMonotonic") - micros("ActiveExitTimestampMonotonic"));
    }
    report.downtime(
        "real systemd user manager",
        "whole heph-selfupdate.service run",
        &down,
        &whole,
    );
}

/// A release of the benchmark workspace: tag, core note, daemon note, a dependency to
/// bump in `Cargo.lock`, `hephd`'s rust-version.
type Release = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// The benchmark workspace's releases, in order: what each one changes.
const RELEASES: &[Release] = &[
    // (tag, core note, daemon note, lock bump, hephd rust-version)
    ("v1.0.0", "c0", "d0", None, None),
    ("v1.1.0", "c0", "d1", None, None), // a code change in one binary (hephd)
    ("v1.2.0", "c1", "d1", None, None), // a code change in the core library
    ("v1.3.0", "c1", "d1", Some("itoa"), None), // Cargo.lock: one dependency bumped
    ("v1.4.0", "c1", "d1", None, Some("1.999")), // needs a Rust that does not exist yet
];

/// The releases of the benchmark workspace with an LTO release profile: a code change in
/// hephd, then a `Cargo.lock` that bumps one dependency.
const LTO_RELEASES: &[Release] = &[
    ("v1.0.0", "c0", "d0", None, None),
    ("v1.1.0", "c0", "d1", None, None),
    ("v1.2.0", "c0", "d1", Some("itoa"), None),
];

/// Ten successive releases after v1.3.0, each a code change in the core library.
const SERIES: usize = 10;

fn series_tag(i: usize) -> String {
    format!("v1.{}.0", 5 + i)
}

/// The benchmark workspace in a git repository, one tag per release, then `series`
/// releases that each change the core, with `profiles` in its manifest (crates.io needed
/// once: the dependencies are fetched outside every measurement).
fn hephd_repo(dir: &Path, releases: &[Release], series: usize, profiles: &str) -> Repo {
    let repo = Repo::init(dir);
    let write = |tag: &str, core: &str, daemon: &str, bump: Option<&str>, rv: Option<&str>| {
        fixture::write_hephd_workspace(
            dir,
            &fixture::HephdRelease {
                version: &tag[1..],
                core,
                daemon,
                rust_version: rv,
                profiles,
            },
        );
        if tag == "v1.0.0" {
            fixture::hephd_lock(dir, None);
        } else {
            fixture::hephd_lock_members(dir);
            if bump.is_some() {
                fixture::hephd_lock(dir, bump);
            }
        }
        repo.commit_and_tag(tag);
    };
    for (tag, core, daemon, bump, rv) in releases {
        write(tag, core, daemon, *bump, *rv);
    }
    for i in 0..series {
        write(&series_tag(i), &format!("s{i}"), "d1", None, None);
    }
    let fetch = Command::new(fixture::cargo())
        .args(["fetch", "--locked", "--quiet"])
        .current_dir(dir)
        .env("CARGO_HOME", cargo_home())
        .status()
        .unwrap();
    assert!(fetch.success(), "cargo fetch needs crates.io");
    repo
}

/// Makes the forge offer `tags` up to `upto`, newest first.
fn offer_upto(forge: &FakeForge, tags: &[String], upto: &str) {
    let n = tags.iter().position(|t| t == upto).unwrap();
    forge.set_releases(
        tags[..=n]
            .iter()
            .rev()
            .map(|t| FakeRelease::new(t))
            .collect(),
    );
}

const PACKAGES: [&str; 3] = ["heph", "hephd", "heph-tui"];

/// 3. Rebuild times and the build cache, on a workspace shaped like hephaestus.
fn rebuild(report: &mut Report, chart: &mut Vec<(String, f64)>) {
    let base = TestEnv::new();
    let repo = hephd_repo(&base.dir.path().join("repo"), RELEASES, SERIES, "");
    let forge = FakeForge::start(Flavour::Forgejo, vec![FakeRelease::new("v1.0.0")]);
    let mut tags: Vec<String> = RELEASES.iter().map(|r| r.0.to_owned()).collect();
    tags.extend((0..SERIES).map(series_tag));
    let offer = |upto: &str| offer_upto(&forge, &tags, upto);
    let setup = |build: &str, extra: &[(&str, &str)]| {
        let mut env = TestEnv::new();
        env.use_real_toolchain(&cargo_home());
        env.forge(&forge)
            .var("HEPH_SELFUPDATE_GIT_URL", &repo.url())
            .var("HEPH_SELFUPDATE_PACKAGES", "heph,hephd,heph-tui")
            .var("HEPH_SELFUPDATE_BUILD", build)
            .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "none")
            .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "200MiB");
        for (k, v) in extra {
            env.var(k, v);
        }
        env
    };
    let apply = |env: &TestEnv, expect: i32| timed(&mut env.command(&["check-and-apply"]), expect);
    let plain = |tag: &str, root: &Path, expect: i32| {
        timed(
            &mut fixture::plain_install_of(&repo, tag, root, &cargo_home(), &PACKAGES),
            expect,
        )
    };
    let version_of = |env: &TestEnv, p: &str| output_of(&env.bin_dir.join(p), &["--version"]);
    let target_of = |env: &TestEnv| env.home.join(".cache/heph-selfupdate/checkout/target");
    let size_of = |env: &TestEnv| heph_selfupdate::build::cache::dir_size(&target_of(env));
    report.commands.push(format!(
        "cargo install --locked --force --git {} --tag <tag> heph hephd heph-tui   (plain)",
        repo.url()
    ));
    report.commands.push(
        "heph-selfupdate check-and-apply   (packages = heph, hephd, heph-tui; service_manager = none; build = checkout, the default, or git)"
            .into(),
    );

    // Plain, cold and again for the next tag (it always builds from scratch, whatever
    // changed: one baseline serves every row).
    eprintln!("bench:   plain cargo install v1.0.0, v1.1.0");
    let plain_root = base.dir.path().join("plain");
    let plain_cold = plain("v1.0.0", &plain_root, 0);
    let plain_next = plain("v1.1.0", &plain_root, 0);
    let plain_base = f64::midpoint(plain_cold, plain_next);
    assert_eq!(
        output_of(&plain_root.join("bin/hephd"), &["--version"]),
        "hephd 1.1.0 (core c0, d1)"
    );

    // The default build: cold, then one release of each kind.
    eprintln!("bench:   checkout mode: cold, hephd change, core change, lock bump, toolchain");
    offer("v1.0.0");
    let co = setup("checkout", &[]);
    let cold = apply(&co, 0);
    let after_cold = size_of(&co);
    let mut times = Vec::new();
    for (tag, expect_hephd, expect_heph) in [
        (
            "v1.1.0",
            "hephd 1.1.0 (core c0, d1)",
            "heph 0.1.0 (core c0, cli)",
        ),
        (
            "v1.2.0",
            "hephd 1.2.0 (core c1, d1)",
            "heph 0.1.0 (core c1, cli)",
        ),
        (
            "v1.3.0",
            "hephd 1.3.0 (core c1, d1)",
            "heph 0.1.0 (core c1, cli)",
        ),
    ] {
        offer(tag);
        times.push(apply(&co, 0));
        assert_eq!(
            version_of(&co, "hephd"),
            expect_hephd,
            "{tag}: new code installed"
        );
        assert_eq!(
            version_of(&co, "heph"),
            expect_heph,
            "{tag}: new code installed"
        );
    }
    let (bin_change, core_change, lock_bump) = (times[0], times[1], times[2]);
    offer("v1.4.0");
    let ours_toolchain = apply(&co, 1);
    let plain_toolchain = plain("v1.4.0", &base.dir.path().join("plain-toolchain"), 101);

    // git mode, from the plain v1.0.0 binaries.
    eprintln!("bench:   git mode v1.0.0 -> v1.1.0");
    let git_env = setup("git", &[]);
    let seed = base.dir.path().join("seed");
    plain("v1.0.0", &seed, 0);
    for p in PACKAGES {
        std::fs::copy(seed.join("bin").join(p), git_env.bin_dir.join(p)).unwrap();
    }
    offer("v1.1.0");
    let git = apply(&git_env, 0);
    assert_eq!(version_of(&git_env, "hephd"), "hephd 1.1.0 (core c0, d1)");

    // Ten successive releases: the target dir without and with a cache_max_size.
    eprintln!("bench:   ten successive releases, without and with cache_max_size");
    let at_start = size_of(&co);
    let limit = after_cold + after_cold / 4;
    let limit_text = limit.to_string();
    offer("v1.3.0");
    let bounded = setup(
        "checkout",
        &[("HEPH_SELFUPDATE_CACHE_MAX_SIZE", &limit_text)],
    );
    apply(&bounded, 0);
    let (mut free_sizes, mut bounded_sizes) = (Vec::new(), Vec::new());
    let (mut free_time, mut bounded_time) = (0.0, 0.0);
    let mut clears = 0;
    for i in 0..SERIES {
        let tag = series_tag(i);
        offer(&tag);
        free_time += apply(&co, 0);
        free_sizes.push(size_of(&co));
        let before = size_of(&bounded);
        bounded_time += apply(&bounded, 0);
        let after = size_of(&bounded);
        if after < before / 2 {
            clears += 1;
        }
        bounded_sizes.push(after);
        let expected = format!("heph 0.1.0 (core s{i}, cli)");
        assert_eq!(version_of(&co, "heph"), expected);
        assert_eq!(version_of(&bounded, "heph"), expected);
    }
    let mib = |b: u64| format!("{:.0} MiB", b as f64 / f64::from(1 << 20));

    report.rows.push(Row {
        what: "cold first update, default `build = \"checkout\"` (3 binaries, rusqlite bundled)"
            .into(),
        ours: secs(cold),
        baseline: format!("{} (plain, cold)", secs(plain_cold)),
        ratio: format!("{:.2}x the plain time", cold / plain_cold),
        target: "<= 1.05x".into(),
        met: cold / plain_cold <= 1.05,
    });
    for (what, t, target, met) in [
        (
            "update: a code change in one binary crate (hephd)",
            bin_change,
            ">= 20x faster",
            plain_base / bin_change >= 20.0,
        ),
        (
            "update: a code change in the core library",
            core_change,
            "report",
            true,
        ),
        (
            "update: Cargo.lock bumps one dependency (itoa, under serde_json)",
            lock_bump,
            "report",
            true,
        ),
    ] {
        report.rows.push(Row {
            what: what.into(),
            ours: secs(t),
            baseline: format!("{} (plain)", secs(plain_base)),
            ratio: format!("{:.1}x faster", plain_base / t),
            target: target.into(),
            met,
        });
    }
    report.rows.push(Row {
        what: "update v1.0.0 → v1.1.0, `build = \"git\"` (fresh target dir)".into(),
        ours: secs(git),
        baseline: format!("{} (plain)", secs(plain_base)),
        ratio: format!("{:.2}x the plain time", git / plain_base),
        target: "no slower (<= 1.05x, noise)".into(),
        met: git / plain_base <= 1.05,
    });
    report.rows.push(Row {
        what: format!(
            "target dir after {SERIES} more releases (core changes), default cache_max_size (8 GiB)"
        ),
        ours: mib(*free_sizes.last().unwrap()),
        baseline: format!(
            "{} after the cold build, {} before the ten",
            mib(after_cold),
            mib(at_start)
        ),
        ratio: format!(
            "+{} per release",
            mib(free_sizes.last().unwrap().saturating_sub(at_start) / SERIES as u64)
        ),
        target: "report".into(),
        met: true,
    });
    let peak = bounded_sizes.iter().copied().max().unwrap();
    report.rows.push(Row {
        what: format!(
            "target dir after {SERIES} more releases, `cache_max_size` = {}",
            mib(limit)
        ),
        ours: format!(
            "{} (peak {})",
            mib(*bounded_sizes.last().unwrap()),
            mib(peak)
        ),
        baseline: format!("{} without the limit", mib(*free_sizes.last().unwrap())),
        ratio: format!(
            "{clears} clear(s); {} vs {} for the ten updates",
            secs(bounded_time),
            secs(free_time)
        ),
        target: "stays near the limit".into(),
        met: peak <= limit + limit / 4,
    });
    report.rows.push(Row {
        what: "a release that needs a newer Rust (rust-version = 1.999): time to the error".into(),
        ours: secs(ours_toolchain),
        baseline: format!("{} (plain, to its error)", secs(plain_toolchain)),
        ratio: format!("{:.2}x the plain time", ours_toolchain / plain_toolchain),
        target: "seconds".into(),
        met: ours_toolchain < 10.0,
    });
    report.notes.push(format!(
        "The fixture: a core library (serde, serde_json, regex, rusqlite with `bundled`, which compiles SQLite's C) used by three binaries with clap, like hephaestus. The plain command always builds from scratch, whatever changed, so one baseline serves the update rows: the mean of its two runs here (cold {} and {}). Every update was checked to install the new code (`heph` and `heph-tui` keep crate version 0.1.0 while their code or the core's changes).",
        secs(plain_cold),
        secs(plain_next)
    ));
    report.notes.push(
        "Why the default build is faster even cold: without `--target-dir`, `cargo install --git` of three packages builds each in its own temporary target dir, so the dependencies (SQLite included) are compiled three times; the checkout's `cargo install --path` per package shares one target dir, so they are compiled once. `build = \"git\"` gives its one command one fresh target dir, with the same effect."
            .into(),
    );
    report.notes.push(format!(
        "Sizes of the target dir after each of the {SERIES} releases — without a limit: {}; with cache_max_size = {}: {}. Within one toolchain nothing is stale, so going over the limit clears the target dir and the next build is cold again: the limit trades disk for build time.",
        free_sizes.iter().map(|b| mib(*b)).collect::<Vec<_>>().join(", "),
        mib(limit),
        bounded_sizes.iter().map(|b| mib(*b)).collect::<Vec<_>>().join(", ")
    ));
    report.notes.push(
        "The toolchain row: heph-selfupdate reads `rust-version` from `cargo metadata` of the fetched tag and compares it with `rustc --version` before fetching dependencies or compiling anything. The plain command sees the requirement at once too (`cannot install package hephd …, it requires rustc 1.999`), but a failure of one package does not stop the others: it goes on to build and install `heph` and `heph-tui` (each with every dependency) and exits 101 only at the end — leaving their new binaries beside the old `hephd`. A release that needs a newer Rust without declaring it fails at its first compile error either way.".into(),
    );
    chart.extend([
        ("plain cargo install (cold)".to_owned(), plain_cold),
        ("build = \"git\"".to_owned(), git),
        ("checkout, cold first build".to_owned(), cold),
        ("checkout, core library change".to_owned(), core_change),
        ("checkout, Cargo.lock bump".to_owned(), lock_bump),
        ("checkout, hephd change".to_owned(), bin_change),
    ]);
}

/// 3'. Rebuild times on the same workspace with a release profile like pueue's (thin LTO,
/// `codegen-units = 1`), installing the daemon's package alone, as `packages = ["pueue"]`
/// does: what such users see, and what `build_profile` changes.
fn rebuild_lto(report: &mut Report) {
    let base = TestEnv::new();
    let repo = hephd_repo(
        &base.dir.path().join("repo-lto"),
        LTO_RELEASES,
        0,
        fixture::LTO_PROFILES,
    );
    let forge = FakeForge::start(Flavour::Forgejo, vec![FakeRelease::new("v1.0.0")]);
    let tags: Vec<String> = LTO_RELEASES.iter().map(|r| r.0.to_owned()).collect();
    let offer = |n: usize| offer_upto(&forge, &tags, &tags[n]);
    let setup = |profile: &str| {
        let mut env = TestEnv::new();
        env.use_real_toolchain(&cargo_home());
        env.forge(&forge)
            .var("HEPH_SELFUPDATE_GIT_URL", &repo.url())
            .var("HEPH_SELFUPDATE_PACKAGES", "hephd")
            .var("HEPH_SELFUPDATE_BUILD_PROFILE", profile)
            .var("HEPH_SELFUPDATE_SERVICE_MANAGER", "none")
            .var("HEPH_SELFUPDATE_MIN_FREE_SPACE", "200MiB");
        env
    };
    let apply = |env: &TestEnv| timed(&mut env.command(&["check-and-apply"]), 0);
    let hephd = |env: &TestEnv| output_of(&env.bin_dir.join("hephd"), &["--version"]);
    report.commands.push(format!(
        "cargo install --locked --force --git {} --tag v1.0.0 hephd   (plain; the workspace's release profile: thin LTO, codegen-units = 1)",
        repo.url()
    ));

    eprintln!("bench:   LTO profile: plain cargo install v1.0.0 of hephd");
    let plain_root = base.dir.path().join("plain-lto");
    let plain = timed(
        &mut fixture::plain_install_of(&repo, "v1.0.0", &plain_root, &cargo_home(), &["hephd"]),
        0,
    );
    assert_eq!(
        output_of(&plain_root.join("bin/hephd"), &["--version"]),
        "hephd 1.0.0 (core c0, d0)"
    );
    let measure = |profile: &str| {
        eprintln!(
            "bench:   LTO profile: checkout mode, build_profile = {profile}: cold, hephd change, lock bump"
        );
        let env = setup(profile);
        offer(0);
        let cold = apply(&env);
        offer(1);
        let change = apply(&env);
        assert_eq!(
            hephd(&env),
            "hephd 1.1.0 (core c0, d1)",
            "{profile}: new code"
        );
        offer(2);
        let bump = apply(&env);
        assert_eq!(
            hephd(&env),
            "hephd 1.2.0 (core c0, d1)",
            "{profile}: new code"
        );
        (cold, change, bump)
    };
    let (cold, change, bump) = measure("release");
    let (quick_cold, quick_change, quick_bump) = measure("update");
    let fixture_note = "LTO fixture (thin LTO, codegen-units = 1), package hephd alone";
    report.rows.push(Row {
        what: format!("{fixture_note}: cold first update, checkout"),
        ours: secs(cold),
        baseline: format!("{} (plain, cold)", secs(plain)),
        ratio: format!("{:.2}x the plain time", cold / plain),
        target: "report".into(),
        met: true,
    });
    for (what, t) in [
        ("update: a code change in hephd", change),
        ("update: Cargo.lock bumps one dependency (itoa)", bump),
        (
            "update: a code change in hephd, `build_profile = \"update\"` (no LTO, 16 codegen units)",
            quick_change,
        ),
        (
            "update: Cargo.lock bumps one dependency, `build_profile = \"update\"`",
            quick_bump,
        ),
    ] {
        report.rows.push(Row {
            what: format!("{fixture_note}, {what}"),
            ours: secs(t),
            baseline: format!("{} (plain)", secs(plain)),
            ratio: format!("{:.1}x faster", plain / t),
            target: "report".into(),
            met: true,
        });
    }
    report.notes.push(format!(
        "The LTO rows: the same workspace with pueue's kind of release profile (`lto = \"thin\"`, `codegen-units = 1`), and only the daemon's package installed, so the plain command compiles the dependencies once, as `cargo install --git … pueue` does. Link-time optimisation of the final crates is redone at every build, whatever the target dir holds, so the incremental update gains far less than on the fixture above. A profile `update` (inherits release, `lto = false`, `codegen-units = 16`) given as `build_profile` builds cold in {} and updates in {} and {}, at the cost of a daemon built without the optimisations its release profile asks for. Measured on pueue itself (355 crates, 2 cores): the plain `cargo install --git --tag v4.0.4` took 149 s cold, the checkout build of the update 4.0.3 → 4.0.4 (a dependency bump) 70 s: 2.1x.",
        secs(quick_cold),
        secs(quick_change),
        secs(quick_bump)
    ));
}

fn svg(chart: &[(String, f64)]) -> String {
    let max = chart.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(0.001);
    let (w, bar, gap, left) = (720.0, 26.0, 14.0, 250.0);
    let h = 60.0 + (bar + gap) * chart.len() as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"14\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"24\" font-size=\"16\">Build times of a hephaestus-shaped workspace (3 binaries, rusqlite bundled), seconds</text>\n"
    );
    for (i, (label, v)) in chart.iter().enumerate() {
        let y = 44.0 + (bar + gap) * i as f64;
        let len = (w - left - 80.0) * v / max;
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{:.0}\">{}</text>",
            y + bar * 0.7,
            label.replace('"', "&quot;")
        );
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{y:.0}\" width=\"{len:.1}\" height=\"{bar}\" fill=\"#4a7ab5\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.0}\">{v:.1} s</text>",
            left + len + 6.0,
            y + bar * 0.7
        );
    }
    s.push_str("</svg>\n");
    s
}

fn main() {
    let started = Instant::now();
    let bin = support::binary();
    assert!(
        bin.exists(),
        "build first: cargo build --release --bins --examples"
    );
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut report = Report::default();
    let mut chart = Vec::new();
    // While working on one section: BENCH_ONLY=<section> runs it alone and writes nothing.
    let only = std::env::var("BENCH_ONLY").ok();
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if run("startup") {
        eprintln!("bench: start-up and size");
        startup(&mut report, &bin);
    }
    if run("check") {
        eprintln!("bench: check cost against curl");
        check_cost(&mut report);
    }
    if run("memory") {
        eprintln!("bench: peak memory of check-and-apply");
        apply_memory(&mut report);
    }
    if run("downtime") {
        eprintln!("bench: downtime during an update");
        downtime(&mut report);
        eprintln!("bench: downtime under the real systemd (root only)");
        downtime_systemd(&mut report);
    }
    if run("build") {
        eprintln!("bench: build times (real cargo builds; about twenty minutes)");
        rebuild(&mut report, &mut chart);
    }
    if run("lto") {
        eprintln!(
            "bench: build times with a release profile like pueue's (thin LTO; about ten minutes)"
        );
        rebuild_lto(&mut report);
    }

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Benchmarks\n\nGenerated by `make bench` (`examples/bench.rs`); do not edit by hand.\n"
    );
    let _ = writeln!(
        md,
        "- machine: {}\n- date: {date}\n- binary: `{}` (release build)\n- whole benchmark: {}\n",
        machine(),
        bin.display(),
        secs(started.elapsed().as_secs_f64())
    );
    let _ = writeln!(
        md,
        "| what | heph-selfupdate | alternative | ratio | target | met |\n| --- | --- | --- | --- | --- | --- |"
    );
    for r in &report.rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.what,
            r.ours,
            r.baseline,
            r.ratio,
            r.target,
            if r.met { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(md, "\n![rebuild times](rebuild.svg)\n\n## Commands\n");
    for c in &report.commands {
        let _ = writeln!(md, "- `{c}`");
    }
    let _ = writeln!(md, "\n## Notes\n");
    for n in &report.notes {
        let _ = writeln!(md, "- {n}");
    }
    if only.is_some() {
        println!("{md}");
        return;
    }
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("benchmarks.md"), &md).unwrap();
    std::fs::write(docs.join("rebuild.svg"), svg(&chart)).unwrap();
    println!("{md}");
    println!("written: docs/benchmarks.md, docs/rebuild.svg");
}
