//! Real git repositories for tests: a small tagged repository (for `git ls-remote`), and
//! a tiny Cargo workspace with packages `heph` and `hephd` whose tags really build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs git in `dir` with a fixed identity; panics with its stderr on failure.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Fixture",
            "-c",
            "user.email=fixture@test.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "tag.gpgSign=false",
            "-c",
            "commit.gpgSign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// How a fixture release's daemon behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// Reports its version and stays up.
    Good,
    /// Exits with an error as soon as it starts as a daemon.
    DiesAtStart,
}

/// A git repository with tags; `url()` is what cargo and git fetch.
pub struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    pub fn init(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("mkdir");
        git(dir, &["init", "-q"]);
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// The commit a tag names (peeled).
    pub fn commit_of(&self, tag: &str) -> String {
        git(&self.dir, &["rev-parse", &format!("{tag}^{{commit}}")])
    }

    /// Commits everything and adds an annotated tag.
    pub fn commit_and_tag(&self, tag: &str) -> String {
        git(&self.dir, &["add", "-A"]);
        git(
            &self.dir,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                &format!("release {tag}"),
            ],
        );
        git(
            &self.dir,
            &["tag", "-a", tag, "-m", &format!("release {tag}")],
        );
        self.commit_of(tag)
    }

    /// Moves a tag to a new commit (a force-pushed tag).
    pub fn move_tag(&self, tag: &str) -> String {
        git(
            &self.dir,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                &format!("moved {tag}"),
            ],
        );
        git(
            &self.dir,
            &["tag", "-f", "-a", tag, "-m", &format!("moved {tag}")],
        );
        self.commit_of(tag)
    }
}

/// A repository whose tags carry no code (enough for `git ls-remote` and the fake cargo).
pub fn tagged_repo(dir: &Path, tags: &[&str]) -> Repo {
    let repo = Repo::init(dir);
    for tag in tags {
        std::fs::write(dir.join("VERSION"), tag).expect("write");
        repo.commit_and_tag(tag);
    }
    repo
}

/// The real cargo of the toolchain (not the rustup proxy, which needs the real HOME):
/// `$CARGO` under `cargo test`/`cargo run`, else the one next to `rustc --print sysroot`.
pub fn cargo() -> PathBuf {
    if let Some(c) = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return c;
    }
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    sysroot
        .map(|s| s.join("bin/cargo"))
        .filter(|c| c.exists())
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// The install people run today: `cargo install --locked --force --git <repo> --tag <tag>
/// heph hephd` into `root`, with `cargo_home` as CARGO_HOME (the caller adds the rest of
/// the environment).
pub fn plain_install(repo: &Repo, tag: &str, root: &Path, cargo_home: &Path) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.args([
        "install",
        "--quiet",
        "--locked",
        "--force",
        "--git",
        &repo.url(),
        "--tag",
        tag,
        "--root",
    ])
    .arg(root)
    .args(["heph", "hephd"])
    .env("CARGO_HOME", cargo_home)
    .env("CARGO_NET_GIT_FETCH_WITH_CLI", "true")
    .env_remove("CARGO_TARGET_DIR");
    cmd
}

/// What the fixture's crates depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deps {
    /// Nothing: builds in a second or two, unoptimised (tests).
    None,
    /// serde (derive), regex and clap (derive), optimised release profile: a realistic
    /// build for the benchmark.
    Real,
}

/// Writes the workspace for `version` with daemon behaviour `daemon` and a `note` that
/// the binaries print (so a code-only change is visible without a version bump).
pub fn write_workspace(dir: &Path, version: &str, daemon: Daemon, note: &str) {
    write_workspace_with(dir, version, daemon, note, Deps::None);
}

/// [`write_workspace`] with a choice of dependencies.
pub fn write_workspace_with(dir: &Path, version: &str, daemon: Daemon, note: &str, deps: Deps) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    let profile = match deps {
        Deps::None => "\n[profile.release]\nopt-level = 0\ndebug = false\nincremental = false\n",
        Deps::Real => "",
    };
    w(
        "Cargo.toml",
        &format!(
            "[workspace]\nmembers = [\"crates/heph-core\", \"crates/heph\", \"crates/hephd\"]\nresolver = \"2\"\n{profile}"
        ),
    );
    w(".gitignore", "/target\n");
    let dependencies = match deps {
        Deps::None => "",
        Deps::Real => {
            "serde = { version = \"1\", features = [\"derive\"] }\nregex = \"1\"\nclap = { version = \"4\", features = [\"derive\"] }\n"
        }
    };
    // Code that uses the dependencies, so they are really compiled and linked in.
    let uses = match deps {
        Deps::None => String::new(),
        Deps::Real => "#[derive(serde::Serialize, clap::Parser)]\nstruct Options {\n    #[arg(long)]\n    mode: Option<String>,\n}\n\nfn deps_work() -> bool {\n    let _ = <Options as clap::CommandFactory>::command();\n    regex::Regex::new(r\"^[0-9]+\\.[0-9]+\").is_ok_and(|r| r.is_match(env!(\"CARGO_PKG_VERSION\")))\n}\n\n".to_owned(),
    };
    let check = if deps == Deps::Real {
        "    assert!(deps_work());\n"
    } else {
        ""
    };
    // A library both binaries use, the same in every release: its artefacts in a reused
    // target dir are what a stale build would trip over.
    w(
        "crates/heph-core/Cargo.toml",
        "[package]\nname = \"heph-core\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    w(
        "crates/heph-core/src/lib.rs",
        "/// The greeting both binaries share.\npub fn name() -> &'static str {\n    \"heph\"\n}\n",
    );
    // `heph` keeps version 0.1.0 in every release while its code changes: the case where a
    // reused target dir would silently install stale code (rust-lang/cargo#13259).
    for (name, v) in [("heph", "0.1.0"), ("hephd", version)] {
        w(
            &format!("crates/{name}/Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"{v}\"\nedition = \"2021\"\n\n[dependencies]\nheph-core = {{ path = \"../heph-core\" }}\n{dependencies}"
            ),
        );
    }
    w(
        "crates/heph/src/main.rs",
        &format!(
            "{uses}fn main() {{\n{check}    println!(\"{{}} {{}} ({note})\", heph_core::name(), env!(\"CARGO_PKG_VERSION\"));\n}}\n"
        ),
    );
    let dies = daemon == Daemon::DiesAtStart;
    w(
        "crates/hephd/src/main.rs",
        &format!(
            r#"{uses}fn main() {{
{check}    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--version") {{
        println!("{{}}d {{}} ({note})", heph_core::name(), env!("CARGO_PKG_VERSION"));
        return;
    }}
    if {dies} {{
        eprintln!("hephd: fatal: cannot open the database");
        std::process::exit(1);
    }}
    eprintln!("hephd {{}} started ({note})", env!("CARGO_PKG_VERSION"));
    // For the benchmark: when the daemon is up, to the nanosecond.
    if let Ok(path) = std::env::var("HEPHD_READY_FILE") {{
        use std::io::Write;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {{
            let _ = writeln!(f, "{{now}}");
        }}
    }}
    loop {{
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }}
}}
"#
        ),
    );
    // With real dependencies the lock file needs the registry index (crates.io).
    let offline: &[&str] = if deps == Deps::None {
        &["--offline"]
    } else {
        &[]
    };
    let status = Command::new(cargo())
        .args(["generate-lockfile", "--quiet"])
        .args(offline)
        .current_dir(dir)
        .status()
        .expect("cargo generate-lockfile");
    assert!(status.success(), "generate-lockfile failed");
}

/// A workspace repository with one tag per `(tag, daemon)`, built in order.
pub fn workspace_repo(dir: &Path, releases: &[(&str, Daemon)]) -> Repo {
    let repo = Repo::init(dir);
    for (tag, daemon) in releases {
        let version = tag.trim_start_matches('v');
        write_workspace(dir, version, *daemon, &format!("build of {tag}"));
        repo.commit_and_tag(tag);
    }
    repo
}
