//! End to end with the real `cargo install`: a tiny workspace (`heph-core`, `heph`,
//! `hephd`) in a local git repository with tags, served by the loopback forge. The
//! stand-in service manager really runs the built daemon.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::env::TestEnv;
use crate::support::fixture::{self, Daemon, Repo, workspace_repo};
use crate::support::forge::{FakeForge, FakeRelease, Flavour};

/// A sandbox with the real cargo and git: a fixture workspace repository with its
/// releases, a loopback forge offering some of them.
pub(crate) struct E2e {
    pub(crate) env: TestEnv,
    pub(crate) forge: FakeForge,
    pub(crate) repo: Repo,
}

pub(crate) fn e2e(releases: &[(&str, Daemon)], offered: &[&str]) -> E2e {
    e2e_of(|dir| workspace_repo(dir, releases), offered)
}

/// [`e2e`] with the repository `make_repo` writes in the directory it is given.
pub(crate) fn e2e_of(make_repo: impl FnOnce(&Path) -> Repo, offered: &[&str]) -> E2e {
    let mut env = TestEnv::new();
    let repo = make_repo(&env.dir.path().join("repo"));
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
pub(crate) fn plain_install(e: &E2e, tag: &str) {
    let cargo_home = e.env.home.join(".cargo");
    e.env.run_other(&mut fixture::plain_install(
        &e.repo,
        tag,
        &cargo_home,
        &cargo_home,
    ));
}

pub(crate) fn run_bin(path: &Path) -> String {
    let out = Command::new(path).arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn daemon_log(e: &E2e) -> String {
    std::fs::read_to_string(e.env.dir.path().join("fake-state/daemon.log")).unwrap_or_default()
}

#[test]
fn git_mode_builds_for_real_switches_and_rolls_back_a_daemon_that_dies() {
    let mut e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::DiesAtStart),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    e.env.var("HEPH_SELFUPDATE_BUILD", "git");
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.1.0 (build of v0.1.0)"
    );

    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(!run.stderr.contains("to your PATH"), "{}", run.stderr);
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
fn the_default_checkout_build_reuses_its_build_tree_and_never_installs_stale_code() {
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
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    // cargo's advice for a `--root` that is not on PATH is about the staging root: not shown.
    assert!(!run.stderr.contains("to your PATH"), "{}", run.stderr);
    // In phases: the network first, then an offline compile.
    for line in [
        "fetch --locked",
        "install --frozen --force --path=",
        "built heph hephd v0.2.0 in",
    ] {
        assert!(run.stderr.contains(line), "{line}: {}", run.stderr);
    }
    assert!(
        run.stderr.contains("resolve ") && run.stderr.contains("compile "),
        "the phases and their times: {}",
        run.stderr
    );
    let stats: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.env.home.join(".cache/heph-selfupdate/build-stats.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stats["last_build"]["tag"], "v0.2.0");
    assert!(stats["last_build"]["target_bytes"].as_u64().unwrap() > 0);
    let bin = e.env.bin_dir.clone();
    assert_eq!(run_bin(&bin.join("hephd")), "hephd 0.2.0 (build of v0.2.0)");
    let target = e.env.home.join(".cache/heph-selfupdate/checkout/target");
    assert!(target.is_dir(), "the checkout keeps its target dir");
    // status shows the phases and the cache's size.
    let status = e.env.run(&["status", "--json"]).json();
    let phases: Vec<&str> = status["last_build"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "resolve",
            "fetch",
            "toolchain",
            "dependencies",
            "compile",
            "verify"
        ]
    );
    assert!(
        status["build_cache"]["bytes"].as_u64().unwrap() > 0,
        "{status}"
    );
    let text = e.env.run(&["status"]).stdout;
    assert!(
        text.contains("last build:") && text.contains("compile ") && text.contains("build cache:"),
        "{text}"
    );

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

/// Signed tags for the fixture repository: ssh keys made by the real ssh-keygen, and an
/// OpenPGP key made by the real gpg in the service user's own keyring (`~/.gnupg` of the
/// test's HOME, where the gpg that `git verify-tag` runs would look).
pub(crate) struct Signing {
    keys: PathBuf,
    gnupg: PathBuf,
    repo: PathBuf,
}

impl Signing {
    pub(crate) fn new(e: &E2e) -> Self {
        Self::at(&e.env, &e.repo.dir)
    }

    /// Keys under `env`'s directory, for the repository in `repo`.
    pub(crate) fn at(env: &TestEnv, repo: &Path) -> Self {
        let keys = env.dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        Self {
            keys,
            gnupg: env.home.join(".gnupg"),
            repo: repo.to_path_buf(),
        }
    }

    /// A new ed25519 key `name`; its public key line.
    pub(crate) fn ssh_key(&self, name: &str) -> String {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(self.keys.join(name))
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(self.keys.join(format!("{name}.pub"))).unwrap()
    }

    /// Writes the allowed-signers file; its path.
    pub(crate) fn allowed(&self, lines: &str) -> PathBuf {
        let path = self.keys.join("allowed_signers");
        std::fs::write(&path, lines).unwrap();
        path
    }

    /// Signs `tag` again (same commit) with `config` (`gpg.format`, `user.signingkey`),
    /// dated `date` when given (git writes it as the tagger date).
    fn sign(&self, tag: &str, config: &[String], date: Option<&str>) {
        let mut cmd = Command::new("git");
        for c in config {
            cmd.args(["-c", c]);
        }
        cmd.args([
            "-c",
            "user.name=Release",
            "-c",
            "user.email=release@test.invalid",
            "tag",
            "-f",
            "-s",
            tag,
            "-m",
            &format!("release {tag}"),
            &format!("{tag}^{{commit}}"),
        ])
        .current_dir(&self.repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GNUPGHOME", &self.gnupg);
        if let Some(d) = date {
            cmd.env("GIT_COMMITTER_DATE", d);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "signing {tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn sign_ssh(&self, tag: &str, key: &str, date: Option<&str>) {
        self.sign(
            tag,
            &[
                "gpg.format=ssh".to_owned(),
                format!("user.signingkey={}", self.keys.join(key).display()),
            ],
            date,
        );
    }

    fn gpg(&self, args: &[&str]) -> String {
        let out = Command::new("gpg")
            .args(["--batch", "--pinentry-mode=loopback", "--passphrase="])
            .args(args)
            .env("GNUPGHOME", &self.gnupg)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Signs `tag` with a new OpenPGP key in the service user's keyring (imported, so to
    /// speak: nobody said to trust it).
    fn sign_openpgp(&self, tag: &str) {
        std::fs::create_dir_all(&self.gnupg).unwrap();
        std::fs::set_permissions(
            &self.gnupg,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        self.gpg(&[
            "--quick-gen-key",
            "Release <release@test.invalid>",
            "ed25519",
            "sign",
            "never",
        ]);
        let listing = self.gpg(&["--with-colons", "--list-secret-keys"]);
        let fpr = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_owned())
            .unwrap();
        self.sign(
            tag,
            &[
                "gpg.format=openpgp".to_owned(),
                format!("user.signingkey={fpr}"),
            ],
            None,
        );
    }
}

impl Drop for Signing {
    fn drop(&mut self) {
        if self.gnupg.exists() {
            let _ = Command::new("gpgconf")
                .args(["--kill", "all"])
                .env("GNUPGHOME", &self.gnupg)
                .status();
        }
    }
}

/// True when `program` is on PATH; else says SKIPPED (a failure under CI_REQUIRE_TOOLS=1).
fn have(program: &str, package: &str) -> bool {
    let found = Command::new(program).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{program} is not on PATH and CI_REQUIRE_TOOLS=1: install the Debian package `{package}` (.ci/run does)"
        );
        eprintln!("SKIPPED: {program} is not on PATH (Debian package `{package}`)");
    }
    found
}

pub(crate) fn verify_tags(e: &mut E2e, signers: &Path) {
    e.env.var("HEPH_SELFUPDATE_VERIFY_TAG", "true").var(
        "HEPH_SELFUPDATE_ALLOWED_SIGNERS",
        &signers.display().to_string(),
    );
}

/// The version roots and where `bin_dir`'s links point: what an update changes.
pub(crate) fn installed_now(e: &E2e) -> (Vec<String>, Vec<Option<PathBuf>>) {
    let mut roots: Vec<String> = std::fs::read_dir(e.env.data_dir().join("versions"))
        .map(|d| {
            d.map(|x| x.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    roots.sort();
    let links = ["heph", "hephd"]
        .iter()
        .map(|b| std::fs::read_link(e.env.bin_dir.join(b)).ok())
        .collect();
    (roots, links)
}

#[test]
fn a_tag_signed_with_openpgp_or_by_a_key_past_its_valid_before_is_refused_and_nothing_changes() {
    if !have("gpg", "gnupg") {
        return;
    }
    let mut e = e2e(
        &[("v0.1.0", Daemon::Good), ("v0.2.0", Daemon::Good)],
        &["v0.1.0", "v0.2.0"],
    );
    let s = Signing::new(&e);
    let release = s.ssh_key("release");
    let old = s.ssh_key("old");
    let signers = s.allowed(&format!(
        "release@test.invalid {release}old@test.invalid valid-before=\"20200101\" {old}"
    ));
    verify_tags(&mut e, &signers);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    let before = installed_now(&e);

    // An OpenPGP key in the service user's keyring, trusted by nobody.
    s.sign_openpgp("v0.2.0");
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains("v0.2.0 is signed with OpenPGP")
            && run
                .stderr
                .contains("only SSH signatures from allowed_signers count"),
        "{}",
        run.stderr
    );
    assert_eq!(installed_now(&e), before, "nothing changed");
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.1.0 (build of v0.1.0)"
    );

    // A key listed as valid only before 2020, signing a tag it dates 2019.
    s.sign_ssh("v0.2.0", "old", Some("2019-06-01T12:00:00Z"));
    let run = e.env.run(&["check-and-apply", "--force"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("the signature of v0.2.0 is not from an allowed signer valid now")
            && run.stderr.contains("key has expired"),
        "{}",
        run.stderr
    );
    assert_eq!(installed_now(&e), before, "nothing changed");
}

#[test]
fn an_ssh_signature_by_an_allowed_key_is_accepted_and_its_signer_recorded_in_both_build_modes() {
    let mut e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::Good),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    let s = Signing::new(&e);
    let release = s.ssh_key("release");
    s.ssh_key("stranger");
    let signers = s.allowed(&format!("release@test.invalid {release}"));
    verify_tags(&mut e, &signers);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    let data = e.env.data_dir();
    let record = |version: &str| -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(data.join(format!("versions/{version}/heph-root.json"))).unwrap(),
        )
        .unwrap()
    };
    // Signed by a key not in the list: refused before cargo runs, `from` still installed.
    // Signed again by the listed one: built, and its signer recorded.
    let stranger_then_release = |e: &E2e, tag: &str, from: &str| {
        let version = tag.trim_start_matches('v');
        s.sign_ssh(tag, "stranger", None);
        let run = e.env.run(&["check-and-apply"]);
        run.expect(1);
        assert!(
            run.stderr.contains("not from an allowed signer") && !run.stderr.contains("running: "),
            "refused before cargo runs: {}",
            run.stderr
        );
        assert_eq!(
            run_bin(&e.env.bin_dir.join("hephd")),
            format!("hephd {from} (build of v{from})")
        );
        s.sign_ssh(tag, "release", None);
        let run = e.env.run(&["check-and-apply", "--force"]);
        run.expect(0);
        assert!(
            run.stderr.contains(&format!(
                "the signature of {tag} is good: signed by release@test.invalid with ED25519 key SHA256:"
            )),
            "{}",
            run.stderr
        );
        assert_eq!(
            run_bin(&e.env.bin_dir.join("hephd")),
            format!("hephd {version} (build of {tag})")
        );
        assert_eq!(
            record(version)["signed_by"]["principal"],
            "release@test.invalid"
        );
    };

    // The default checkout build.
    stranger_then_release(&e, "v0.2.0", "0.1.0");
    let status = e.env.run(&["status"]).stdout;
    assert!(
        status.contains("signed by release@test.invalid (ED25519 key SHA256:"),
        "{status}"
    );
    let json = e.env.run(&["status", "--json"]).json();
    let current = json["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["current"] == true)
        .unwrap();
    assert_eq!(current["signed_by"]["principal"], "release@test.invalid");

    // `cargo install --git` verifies the same way, from the tag fetched alone.
    e.env.var("HEPH_SELFUPDATE_BUILD", "git");
    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    stranger_then_release(&e, "v0.3.0", "0.2.0");
}

/// With `verify_tag` in git mode the tag is checked in a scratch repository; cargo then
/// builds the commit that was checked (`--rev=<commit>`), never the tag by name, which it
/// would fetch again: a compromised forge (the threat `verify_tag` exists for) that
/// answers the second fetch with another commit gets nothing of it compiled. Here the
/// forge moves the tag the moment the signature has been verified (a wrapper around the
/// real ssh-keygen does it, standing for a forge that answers each fetch differently).
#[test]
fn git_mode_builds_exactly_the_commit_whose_signature_was_checked_even_when_the_forge_moves_the_tag()
 {
    let Some(ssh_keygen) = ["/usr/bin/ssh-keygen", "/bin/ssh-keygen"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        assert!(
            std::env::var("CI_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "no ssh-keygen and CI_REQUIRE_TOOLS=1: install the Debian package `openssh-client`"
        );
        eprintln!("SKIPPED: no ssh-keygen (Debian package `openssh-client`)");
        return;
    };
    let mut e = e2e(
        &[("v0.1.0", Daemon::Good), ("v0.2.0", Daemon::Good)],
        &["v0.1.0", "v0.2.0"],
    );
    let s = Signing::new(&e);
    let release = s.ssh_key("release");
    let signers = s.allowed(&format!("release@test.invalid {release}"));
    verify_tags(&mut e, &signers);
    e.env.var("HEPH_SELFUPDATE_BUILD", "git");
    s.sign_ssh("v0.2.0", "release", None);
    let signed = e.repo.commit_of("v0.2.0");
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();

    // What the forge serves on the second fetch: same version, unsigned, with a build
    // script that leaves a mark.
    let mark = e.env.dir.path().join("unsigned-build-script-ran");
    std::fs::write(
        e.repo.dir.join("crates/hephd/build.rs"),
        format!(
            "fn main() {{\n    std::fs::write({:?}, \"ran\").unwrap();\n}}\n",
            mark.display().to_string()
        ),
    )
    .unwrap();
    fixture::git(&e.repo.dir, &["add", "-A"]);
    fixture::git(&e.repo.dir, &["commit", "-q", "-m", "not what was signed"]);
    let unsigned = fixture::git(&e.repo.dir, &["rev-parse", "HEAD"]);
    crate::support::env::write_script(
        &e.env.fakes.join("ssh-keygen"),
        &format!(
            "#!/bin/sh\n{ssh_keygen} \"$@\"; rc=$?\ncase \" $* \" in *\" verify \"*) [ $rc = 0 ] && git -C '{}' -c user.name=F -c user.email=f@test.invalid tag -f -a v0.2.0 -m moved {unsigned} >/dev/null 2>&1;; esac\nexit $rc\n",
            e.repo.dir.display()
        ),
    );

    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("the signature of v0.2.0 is good"),
        "the signed tag was verified first: {}",
        run.stderr
    );
    assert_eq!(
        e.repo.commit_of("v0.2.0"),
        unsigned,
        "the forge moved the tag after the check"
    );
    assert!(
        !mark.exists(),
        "a build script of commit {unsigned}, which no allowed key signed, ran during the build of the verified v0.2.0:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("--rev={signed}")) && !run.stderr.contains("--tag="),
        "cargo was given the commit checked, not the tag's name: {}",
        run.stderr
    );
    let records =
        std::fs::read_to_string(e.env.data_dir().join("versions/0.2.0/.crates2.json")).unwrap();
    assert!(
        records.contains(&format!("?rev={signed}#{signed}")),
        "{records}"
    );
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (build of v0.2.0)"
    );
}

/// Adds release `tag` to the fixture repository, its workspace changed by `edit`.
pub(crate) fn add_release(e: &E2e, tag: &str, edit: impl FnOnce(&Path)) {
    fixture::write_workspace(
        &e.repo.dir,
        tag.trim_start_matches('v'),
        Daemon::Good,
        &format!("build of {tag}"),
    );
    edit(&e.repo.dir);
    e.repo.commit_and_tag(tag);
}

pub(crate) fn offer(e: &E2e, tags: &[&str]) {
    e.forge
        .set_releases(tags.iter().rev().map(|t| FakeRelease::new(t)).collect());
}

pub(crate) fn checkout_dir(e: &E2e) -> std::path::PathBuf {
    e.env.home.join(".cache/heph-selfupdate/checkout")
}

#[test]
fn a_damaged_checkout_is_made_again_with_one_log_line() {
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
    // A git killed in the middle of its work leaves its lock.
    std::fs::write(checkout_dir(&e).join(".git/index.lock"), "").unwrap();
    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("is damaged"))
        .collect();
    assert_eq!(said.len(), 1, "{}", run.stderr);
    assert!(
        said[0].contains(".git/index.lock") && said[0].contains("making it again"),
        "{}",
        said[0]
    );
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.3.0 (build of v0.3.0)"
    );
    assert!(!checkout_dir(&e).join(".git/index.lock").exists());

    // A checkout that HEAD was moved away from is made again too.
    add_release(&e, "v0.4.0", |_| {});
    fixture::git(&checkout_dir(&e), &["checkout", "-q", "--detach", "HEAD~1"]);
    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0", "v0.4.0"]);
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("is damaged (HEAD is at"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.4.0 (build of v0.4.0)"
    );
}

#[test]
fn stale_artefacts_are_retried_from_a_clean_target_dir_and_never_mark_a_good_release_bad() {
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
    // Corrupt the library's build output behind cargo's back: its fingerprint still says
    // fresh, so the next incremental build links against garbage.
    let deps = checkout_dir(&e).join("target/release/deps");
    let mut corrupted = 0;
    for entry in std::fs::read_dir(&deps).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("libheph_core-") {
            std::fs::write(&path, b"not an rlib").unwrap();
            corrupted += 1;
        }
    }
    assert!(
        corrupted > 0,
        "no heph_core artefacts in {}",
        deps.display()
    );
    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert!(
        run.stderr.contains("attempt 1 of 2 (incremental")
            && run
                .stderr
                .contains("attempt 2 of 2 (clean target dir) worked"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.3.0 (build of v0.3.0)"
    );
    assert!(e.env.backoff_of("0.3.0").is_null());
    assert!(!e.env.is_bad("0.3.0"));
}

#[test]
fn a_release_that_needs_a_newer_rust_fails_before_anything_compiles_and_waits_for_another_toolchain()
 {
    let mut e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0"]);
    add_release(&e, "v0.2.0", |dir| {
        let manifest = dir.join("crates/hephd/Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap().replace(
            "edition = \"2021\"\n",
            "edition = \"2021\"\nrust-version = \"1.999\"\n",
        );
        std::fs::write(manifest, text).unwrap();
    });
    offer(&e, &["v0.1.0", "v0.2.0"]);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    // doctor reads the newest release's manifests before anything was built, and
    // changes nothing doing it (no checkout, no cache).
    let doctor_line = |e: &E2e| {
        let doctor = e.env.run(&["doctor"]);
        doctor
            .stdout
            .lines()
            .find(|l| l.contains("] toolchain:"))
            .map_or_else(|| doctor.stdout.clone(), str::to_owned)
    };
    let line = doctor_line(&e);
    assert!(
        line.contains("[FAIL]") && line.contains("v0.2.0 needs Rust 1.999"),
        "{line}"
    );
    assert!(
        !e.env.home.join(".cache/heph-selfupdate").exists(),
        "doctor made the cache dir"
    );
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr.contains(
            "v0.2.0 needs Rust 1.999 (rust-version of hephd); this build would use rustc 1."
        ) && run.stderr.contains("(toolchain: default)")
            && run.stderr.contains("help: set `toolchain = \"stable\"`"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("install --frozen") && !run.stderr.contains("fetch --locked"),
        "nothing was fetched or compiled: {}",
        run.stderr
    );
    assert!(!e.env.backoff_of("0.2.0").is_null(), "backed off");
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.1.0 (build of v0.1.0)"
    );
    // Now the build checkout has the tag: doctor reads it from there.
    let line = doctor_line(&e);
    assert!(
        line.contains("[FAIL]") && line.contains("v0.2.0 needs Rust 1.999"),
        "{line}"
    );
    // Held back while the toolchain is the same one...
    let again = e.env.run(&["check-and-apply"]);
    again.expect(0);
    assert!(
        again.stderr.contains("v0.2.0 is held: its build failed"),
        "{}",
        again.stderr
    );
    // ...and tried at once when it is another: a rustc (through RUSTC, which cargo uses
    // too) that says it is 1.999 and compiles with the real one.
    let cargo = crate::support::fixture::cargo();
    let real = cargo.with_file_name("rustc").display().to_string();
    let newer = e.env.fake_bin(
        "rustc-1.999",
        &format!(
            "#!/bin/sh\nreal={}\ncase \"$*\" in\n  --version) echo 'rustc 1.999.0 (stand-in)';;\n  -vV) \"$real\" -vV | sed 's/^release: .*/release: 1.999.0/';;\n  *) exec \"$real\" \"$@\";;\nesac\n",
            real.trim()
        ),
    );
    e.env.var("RUSTC", &newer.display().to_string());
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.2.0 (build of v0.2.0)"
    );
}

#[test]
fn a_compile_error_that_quotes_connection_refused_is_a_compile_failure() {
    let e = e2e(&[("v0.1.0", Daemon::Good)], &["v0.1.0"]);
    add_release(&e, "v0.2.0", |dir| {
        let main = dir.join("crates/hephd/src/main.rs");
        let text = std::fs::read_to_string(&main).unwrap().replace(
            "fn main() {",
            "fn main() {\n    let _status: u8 = \"fatal: Connection refused\";",
        );
        std::fs::write(main, text).unwrap();
    });
    offer(&e, &["v0.1.0", "v0.2.0"]);
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    let run = e.env.run(&["check-and-apply"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("could not compile and install hephd v0.2.0 (failed): error[E0308]"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("attempt 2 of 2 (clean target dir) failed too"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("network"), "{}", run.stderr);
    assert!(!e.env.backoff_of("0.2.0").is_null(), "backed off");
}

/// A stand-in that records its call (like the other stand-ins) and runs the real program.
fn recording_wrapper(real: &Path, only_version: bool) -> String {
    let guard = if only_version {
        // cargo calls rustc itself (`-vV`, compiles): those calls are cargo's, not ours.
        "if [ \"$#\" = 1 ] && [ \"$1\" = --version ]; then "
    } else {
        "if true; then "
    };
    format!(
        "#!/bin/sh\n{guard}printf '%s' \"$(basename \"$0\")\" >> \"$FAKE_LOG\"; for a in \"$@\"; do printf ' %s' \"$a\" >> \"$FAKE_LOG\"; done; echo >> \"$FAKE_LOG\"; fi\nexec '{}' \"$@\"\n",
        real.display()
    )
}

#[test]
fn the_dry_run_of_a_checkout_build_names_exactly_the_commands_the_run_then_runs() {
    let mut e = e2e(
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

    e.env.record_everything();
    let cargo = fixture::cargo();
    let rustc = cargo.with_file_name("rustc");
    e.env.fake_bin("cargo", &recording_wrapper(&cargo, false));
    e.env.fake_bin("rustc", &recording_wrapper(&rustc, true));
    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    e.env.clear_calls();
    let plan = e.env.run(&["check-and-apply", "--dry-run", "--json"]);
    plan.expect(0);
    let ours = |line: &String| {
        ["git ", "cargo ", "rustc ", "systemctl "]
            .iter()
            .any(|p| line.starts_with(p))
    };
    let planned: Vec<Vec<String>> =
        serde_json::from_value(plan.json()["commands"].clone()).unwrap();
    let planned: Vec<String> = planned
        .iter()
        .map(|argv| {
            let program = Path::new(&argv[0]).file_name().unwrap().to_string_lossy();
            std::iter::once(program.into_owned())
                .chain(argv[1..].iter().cloned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(ours)
        .collect();
    let looked = e.env.calls();
    // Before the plan: the checkout's packages and its state, read-only.
    assert_eq!(looked.len(), 2, "{looked:#?}");
    assert!(
        looked[0].starts_with("cargo metadata --no-deps"),
        "{looked:#?}"
    );
    assert!(
        looked[1].starts_with(
            "git -c core.hooksPath=/dev/null -c core.fsmonitor=false --no-optional-locks -C"
        ) && looked[1].ends_with("status --porcelain --untracked-files=no"),
        "{looked:#?}"
    );
    e.env.clear_calls();

    e.env.run(&["check-and-apply"]).expect(0);
    let ran: Vec<String> = e.env.calls().into_iter().filter(ours).collect();
    assert_eq!(ran[..2], looked[..], "the same look before the plan");
    let collapse = |lines: &[String]| {
        let mut out: Vec<String> = Vec::new();
        for l in lines {
            if out.last() != Some(l) {
                out.push(l.clone());
            }
        }
        out
    };
    assert_eq!(
        collapse(&ran[2..]),
        collapse(&planned),
        "the dry run and the run disagree"
    );
    for expected in [
        "git -c core.hooksPath=/dev/null -c core.fsmonitor=false ls-remote",
        "git -c core.hooksPath=/dev/null -c core.fsmonitor=false -C",
        "cargo metadata",
        "rustc --version",
        "cargo fetch --locked",
        "cargo install --frozen",
        "systemctl --user restart hephd.service",
    ] {
        assert!(
            planned.iter().any(|p| p.starts_with(expected)),
            "{expected} is planned: {planned:#?}"
        );
    }
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.3.0 (build of v0.3.0)"
    );
}
