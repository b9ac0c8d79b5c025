//! Review of issue 18 (a package is not a binary): reproductions, with the real cargo, of
//! what still goes wrong where users walk. Each is ignored so the suite stays green; run
//! them with `cargo test --test cli -- review18 --ignored`.

use std::fmt::Write as _;
use std::path::Path;

use crate::e2e_cargo::{E2e, e2e_of, offer, run_bin};
use crate::support::fixture::{Repo, cargo, plain_install_of};

/// One package of a release: its name and its binaries (`[[bin]]` with `path`).
#[derive(Clone, Copy)]
struct Pkg {
    name: &'static str,
    bins: &'static [&'static str],
}

const fn pkg(name: &'static str, bins: &'static [&'static str]) -> Pkg {
    Pkg { name, bins }
}

/// Writes release `version`: every binary prints `<name> <version>` for `--version` and
/// otherwise runs as a daemon until killed (it exits at once when `$FAKE_STATE/bad-<version>`
/// exists). No dependencies, unoptimised: seconds to build.
fn write_release(dir: &Path, version: &str, pkgs: &[Pkg]) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let _ = std::fs::remove_dir_all(dir.join("crates"));
    let members: Vec<String> = pkgs
        .iter()
        .map(|p| format!("\"crates/{}\"", p.name))
        .collect();
    w(
        "Cargo.toml",
        &format!(
            "[workspace]\nmembers = [{}]\nresolver = \"2\"\n\n[profile.release]\nopt-level = 0\ndebug = false\nincremental = false\n",
            members.join(", ")
        ),
    );
    w(".gitignore", "/target\n");
    for p in pkgs {
        let mut manifest = format!(
            "[package]\nname = \"{}\"\nversion = \"{version}\"\nedition = \"2021\"\n\n",
            p.name
        );
        for b in p.bins {
            let _ = write!(
                manifest,
                "[[bin]]\nname = \"{b}\"\npath = \"src/{b}.rs\"\n\n"
            );
            w(
                &format!("crates/{}/src/{b}.rs", p.name),
                &format!(
                    r#"fn main() {{
    if std::env::args().any(|a| a == "--version") {{
        println!("{b} {{}}", env!("CARGO_PKG_VERSION"));
        return;
    }}
    if let Some(s) = std::env::var_os("FAKE_STATE") {{
        if std::path::Path::new(&s).join(concat!("bad-", env!("CARGO_PKG_VERSION"))).exists() {{
            eprintln!("{b}: fatal: cannot start");
            std::process::exit(1);
        }}
    }}
    loop {{
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }}
}}
"#
                ),
            );
        }
        w(&format!("crates/{}/Cargo.toml", p.name), &manifest);
    }
    let status = std::process::Command::new(cargo())
        .args(["generate-lockfile", "--quiet", "--offline"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "generate-lockfile failed");
}

/// A repository with one tag per release.
fn repo(dir: &Path, releases: &[(&str, &[Pkg])]) -> Repo {
    let repo = Repo::init(dir);
    for (tag, pkgs) in releases {
        write_release(dir, tag.trim_start_matches('v'), pkgs);
        repo.commit_and_tag(tag);
    }
    repo
}

/// The sandbox: `releases` in the repository, `offered` by the forge, configured with
/// `packages` and `binary`; the stand-in service manager runs `bin_dir/<binary>`.
fn setup(releases: &[(&str, &[Pkg])], offered: &[&str], packages: &str, binary: &str) -> E2e {
    let mut e = e2e_of(|dir| repo(dir, releases), offered);
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

/// pueue's shape: package `taskq` installs the client `taskq` and the daemon `taskqd`.
const ONE: &[Pkg] = &[pkg("taskq", &["taskq", "taskqd"])];
/// The daemon in a package named unlike it.
const SPLIT: &[Pkg] = &[pkg("taskq", &["taskq"]), pkg("taskq-server", &["taskqd"])];

/// `Layout::adopt` takes only what `recorded_bins` names (else one binary per package name);
/// the switch (`link_binaries`) then replaces the unadopted plain daemon, and the way back
/// (`point_at(from, false)`) removes its now dangling link.
#[test]
fn a_daemon_copied_into_bin_dir_without_cargo_records_survives_a_bad_release() {
    let e = setup(
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
    assert!(
        !run.stderr.contains("ROLLBACK FAILED") && run.stderr.contains("rolled back to 0.1.0"),
        "adopted root 0.1.0 holds only {adopted:?}:\n{}",
        quiet(&run.stderr)
    );
    assert_eq!(ver(&e.env.bin_dir.join("taskqd")), "taskqd 0.1.0");
    assert!(e.env.daemon_alive(), "0.1.0 runs again");
}

/// `Layout::link_binaries` replaces any entry that is not our link; the cleanup on the way
/// back removes it.
#[test]
fn a_binary_a_release_adds_does_not_destroy_another_packages_binary_of_that_name() {
    const ADDS_TOP: &[Pkg] = &[pkg("taskq", &["taskq", "taskqd", "taskq-top"])];
    let e = setup(
        &[("v0.1.0", ONE), ("v0.2.0", ADDS_TOP)],
        &["v0.1.0"],
        "taskq",
        "taskqd",
    );
    // Another tool, from another repository, owns `taskq-top` in ~/.cargo/bin; cargo's
    // records say so (and cargo itself would refuse to overwrite it without --force).
    let other = Repo::init(&e.env.dir.path().join("other"));
    write_release(&other.dir, "3.0.0", &[pkg("other-tool", &["taskq-top"])]);
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
}

/// `Root::binaries` demands binaries of every configured package, so `has_all` (rollback
/// target, `--to`, the automatic way back) rejects a root that holds every binary.
#[test]
fn after_a_binary_moves_to_another_package_rollback_still_returns_to_the_older_root() {
    let mut e = setup(
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

/// `layout::binaries_of` turns an unrecorded package into a binary of its name, and
/// `installed::probe` counts it missing.
#[test]
fn a_package_nothing_records_is_not_a_missing_binary_and_forces_no_reinstall() {
    let e = setup(
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

/// `Builder::verify` reports `check_binary` as `FailureKind::Verification`, which backs off;
/// the checkout build's Metadata step reports it as `Environment`.
#[test]
fn a_wrong_binary_in_git_mode_puts_no_backoff_on_the_release() {
    let mut e = setup(&[("v0.1.0", ONE)], &["v0.1.0"], "taskq", "taskqd");
    e.env.var("HEPH_SELFUPDATE_BUILD", "git");
    e.env.var("HEPH_SELFUPDATE_BINARY", "taskq-daemon");
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("taskq installs taskq, taskqd"),
        "{}",
        run.stderr
    );
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

/// cargo's "profile `fast` is not defined" is a compile failure: retried from a clean
/// target dir, then backed off; doctor passes it.
#[test]
fn a_build_profile_the_workspace_does_not_define_is_a_configuration_error() {
    let mut e = setup(
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
}

/// `roots::protected` keeps the newest healthy root (0.2.0, "proven" by the previous
/// version while the plain 0.1.0 daemon ran), and prune removes the root just adopted.
#[test]
fn across_the_upgrade_the_first_update_keeps_the_way_back_to_the_daemon_that_ran() {
    let e = setup(
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

/// `status` decides "managed" by `is_managed(binary)` alone.
#[test]
fn status_does_not_call_links_into_a_root_plain_binaries() {
    const RENAMED: &[Pkg] = &[pkg("taskq", &["taskq", "taskq-daemon"])];
    let mut e = setup(
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
}
