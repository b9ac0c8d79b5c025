//! Real git repositories for tests: a small tagged repository (for `git ls-remote`), and
//! a tiny Cargo workspace with packages `heph` and `hephd` whose tags really build.

use std::fmt::Write as _;
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
    plain_install_of(repo, tag, root, cargo_home, &["heph", "hephd"])
}

/// [`plain_install`] of `packages`.
pub fn plain_install_of(
    repo: &Repo,
    tag: &str,
    root: &Path,
    cargo_home: &Path,
    packages: &[&str],
) -> Command {
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
    .args(packages)
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

/// One release of the benchmark's workspace, shaped like hephaestus: a core library
/// (serde, serde_json, regex, and SQLite compiled from C by `rusqlite` with `bundled`)
/// used by three binaries (`heph`, `hephd`, `heph-tui`, with clap).
#[derive(Debug, Clone, Copy)]
pub struct HephdRelease<'a> {
    /// `hephd`'s version (the other crates keep 0.1.0, as a workspace that versions its
    /// daemon does).
    pub version: &'a str,
    /// Compiled into the core library: changing it is a code change there.
    pub core: &'a str,
    /// Compiled into `hephd`: changing it is a code change in one binary.
    pub daemon: &'a str,
    /// `rust-version` of `hephd`, if any.
    pub rust_version: Option<&'a str>,
    /// Profile tables appended to the workspace manifest (`""`: cargo's defaults).
    pub profiles: &'a str,
}

/// A release profile like pueue's (and this project's): thin LTO and one codegen unit, so
/// the final crates are optimised again at every build; and a profile `update` without
/// them, for `build_profile`.
pub const LTO_PROFILES: &str = "\n[profile.release]\nlto = \"thin\"\ncodegen-units = 1\n\n[profile.update]\ninherits = \"release\"\nlto = false\ncodegen-units = 16\n";

/// Writes the benchmark workspace for `release` (its lock file is the caller's: see
/// [`hephd_lock`]).
pub fn write_hephd_workspace(dir: &Path, release: &HephdRelease<'_>) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    w(
        "Cargo.toml",
        &format!(
            "[workspace]\nmembers = [\"crates/heph-core\", \"crates/heph\", \"crates/hephd\", \"crates/heph-tui\"]\nresolver = \"2\"\n\n[workspace.dependencies]\nserde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\"\nregex = \"1\"\nrusqlite = {{ version = \"0.43\", features = [\"bundled\"] }}\nclap = {{ version = \"4\", features = [\"derive\"] }}\nheph-core = {{ path = \"crates/heph-core\" }}\n{}",
            release.profiles
        ),
    );
    w(".gitignore", "/target\n");
    w(
        "crates/heph-core/Cargo.toml",
        "[package]\nname = \"heph-core\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nserde.workspace = true\nserde_json.workspace = true\nregex.workspace = true\nrusqlite.workspace = true\n",
    );
    w(
        "crates/heph-core/src/lib.rs",
        &format!(
            r#"//! The shared core: a task store in SQLite, JSON in and out.

/// A task.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Task {{
    pub id: i64,
    pub title: String,
}}

/// What this build of the core is.
pub fn note() -> &'static str {{
    "{core}"
}}

/// Stores `titles` in an in-memory database and returns them as JSON.
pub fn roundtrip(titles: &[&str]) -> String {{
    let db = rusqlite::Connection::open_in_memory().expect("sqlite");
    db.execute_batch("CREATE TABLE task (id INTEGER PRIMARY KEY, title TEXT NOT NULL)")
        .expect("schema");
    let valid = regex::Regex::new(r"^[\w ]+$").expect("regex");
    for t in titles.iter().filter(|t| valid.is_match(t)) {{
        db.execute("INSERT INTO task (title) VALUES (?1)", [t]).expect("insert");
    }}
    let mut q = db.prepare("SELECT id, title FROM task ORDER BY id").expect("query");
    let tasks: Vec<Task> = q
        .query_map([], |r| Ok(Task {{ id: r.get(0)?, title: r.get(1)? }}))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    serde_json::to_string(&tasks).expect("json")
}}
"#,
            core = release.core
        ),
    );
    let rust_version = release
        .rust_version
        .map(|v| format!("rust-version = \"{v}\"\n"))
        .unwrap_or_default();
    for (name, version, note) in [
        ("heph", "0.1.0", "cli"),
        ("hephd", release.version, release.daemon),
        ("heph-tui", "0.1.0", "tui"),
    ] {
        let extra = if name == "hephd" {
            rust_version.as_str()
        } else {
            ""
        };
        w(
            &format!("crates/{name}/Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n{extra}\n[dependencies]\nheph-core.workspace = true\nclap.workspace = true\n"
            ),
        );
        w(
            &format!("crates/{name}/src/main.rs"),
            &format!(
                r#"#[derive(clap::Parser)]
#[command(version)]
struct Options {{
    /// Print the tasks as JSON.
    #[arg(long)]
    tasks: bool,
}}

fn main() {{
    if std::env::args().any(|a| a == "--version") {{
        println!("{name} {{}} (core {{}}, {note})", env!("CARGO_PKG_VERSION"), heph_core::note());
        return;
    }}
    let o = <Options as clap::Parser>::parse();
    if o.tasks {{
        println!("{{}}", heph_core::roundtrip(&["write the benchmark", "run it"]));
    }}
}}
"#
            ),
        );
    }
}

/// Makes or changes the benchmark workspace's lock file: `None` resolves it afresh and
/// then holds `itoa` (a leaf under serde_json) at 1.0.0; `Some("itoa")` bumps that one
/// dependency to its newest version. Needs crates.io.
pub fn hephd_lock(dir: &Path, bump: Option<&str>) {
    let run = |args: &[&str]| {
        let status = Command::new(cargo())
            .args(args)
            .arg("--quiet")
            .current_dir(dir)
            .status()
            .expect("cargo");
        assert!(status.success(), "cargo {args:?} failed (needs crates.io)");
    };
    match bump {
        None => {
            run(&["generate-lockfile"]);
            run(&["update", "--package=itoa", "--precise=1.0.0"]);
        }
        Some(package) => run(&["update", &format!("--package={package}")]),
    }
}

/// Brings the lock file in line with the workspace's own versions (nothing else changes).
pub fn hephd_lock_members(dir: &Path) {
    let status = Command::new(cargo())
        .args(["update", "--workspace", "--offline", "--quiet"])
        .current_dir(dir)
        .status()
        .expect("cargo");
    assert!(status.success(), "cargo update --workspace failed");
}

/// How a release of the taskq fixture's daemon behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taskqd {
    /// Listens and answers its client.
    Answers,
    /// Exits with an error as soon as it starts.
    DiesAtStart,
    /// Starts, listens and stays up, but never answers: only its client can tell.
    Deaf,
}

/// Where the taskq fixture puts its daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskqShape {
    /// As pueue does: package `taskq` installs the client `taskq` and the daemon `taskqd`.
    OnePackage,
    /// The daemon in a package of its own, `taskq-server`, whose one binary is `taskqd`
    /// (as a `hephaestus-daemon` package installing `hephd` would).
    DaemonPackage,
}

/// Writes release `version` of a workspace shaped like pueue (a client and a daemon that
/// talk over a Unix socket, `$HOME/.taskq.sock`, and a library package they share): no
/// dependencies, unoptimised, so it builds in seconds (and a second profile, `quick`, like
/// it). Package `taskq` also has a third
/// `[[bin]]`, `taskq-dump`, behind a feature that is off by default: `cargo install` leaves
/// it out. `taskq status` asks the daemon and exits 0 only when it answers.
pub fn write_taskq_workspace(dir: &Path, version: &str, daemon: Taskqd, shape: TaskqShape) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    let _ = std::fs::remove_dir_all(dir.join("crates"));
    let server = shape == TaskqShape::DaemonPackage;
    let members = if server {
        "\"crates/taskq-proto\", \"crates/taskq\", \"crates/taskq-server\""
    } else {
        "\"crates/taskq-proto\", \"crates/taskq\""
    };
    w(
        "Cargo.toml",
        &format!(
            "[workspace]\nmembers = [{members}]\nresolver = \"2\"\n\n[profile.release]\nopt-level = 0\ndebug = false\nincremental = false\n\n[profile.quick]\ninherits = \"release\"\n"
        ),
    );
    w(".gitignore", "/target\n");
    w(
        "crates/taskq-proto/Cargo.toml",
        &format!(
            "[package]\nname = \"taskq-proto\"\nversion = \"{version}\"\nedition = \"2021\"\n"
        ),
    );
    w(
        "crates/taskq-proto/src/lib.rs",
        r#"//! What the client and the daemon share: where the daemon listens.

/// The daemon's socket: `$TASKQ_SOCKET`, else `$HOME/.taskq.sock`.
pub fn socket() -> std::path::PathBuf {
    match std::env::var_os("TASKQ_SOCKET") {
        Some(p) => p.into(),
        None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".taskq.sock"),
    }
}
"#,
    );
    let daemon_bin = "[[bin]]\nname = \"taskqd\"\npath = \"src/daemon.rs\"\n\n";
    let dependency = format!(
        "[dependencies]\ntaskq-proto = {{ path = \"../taskq-proto\", version = \"{version}\" }}\n"
    );
    w(
        "crates/taskq/Cargo.toml",
        &format!(
            "[package]\nname = \"taskq\"\nversion = \"{version}\"\nedition = \"2021\"\n\n[[bin]]\nname = \"taskq\"\npath = \"src/client.rs\"\n\n{}[[bin]]\nname = \"taskq-dump\"\npath = \"src/dump.rs\"\nrequired-features = [\"dump\"]\n\n[features]\ndump = []\n\n{dependency}",
            if server { "" } else { daemon_bin }
        ),
    );
    w(
        "crates/taskq/src/client.rs",
        r#"use std::io::{BufRead, BufReader, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") => println!("taskq {}", env!("CARGO_PKG_VERSION")),
        Some("status") => {
            let path = taskq_proto::socket();
            let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("taskq: cannot reach the daemon at {}: {e}", path.display());
                    std::process::exit(1);
                }
            };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = stream.write_all(b"status\n");
            let mut answer = String::new();
            let _ = BufReader::new(&stream).read_line(&mut answer);
            if answer.trim().is_empty() {
                eprintln!("taskq: the daemon did not answer");
                std::process::exit(1);
            }
            println!("{}", answer.trim());
        }
        _ => {
            eprintln!("usage: taskq status | taskq --version");
            std::process::exit(2);
        }
    }
}
"#,
    );
    w(
        "crates/taskq/src/dump.rs",
        "fn main() {\n    println!(\"taskq-dump {}\", env!(\"CARGO_PKG_VERSION\"));\n}\n",
    );
    let (dies, deaf) = (daemon == Taskqd::DiesAtStart, daemon == Taskqd::Deaf);
    let daemon_code = format!(
        r#"use std::io::{{BufRead, BufReader, Write}};

fn main() {{
    if std::env::args().any(|a| a == "--version") {{
        println!("taskqd {{}}", env!("CARGO_PKG_VERSION"));
        return;
    }}
    if {dies} {{
        eprintln!("taskqd: fatal: cannot open the task database");
        std::process::exit(1);
    }}
    let path = taskq_proto::socket();
    let _ = std::fs::remove_file(&path);
    let listener = match std::os::unix::net::UnixListener::bind(&path) {{
        Ok(l) => l,
        Err(e) => {{
            eprintln!("taskqd: cannot listen on {{}}: {{e}}", path.display());
            std::process::exit(1);
        }}
    }};
    eprintln!("taskqd {{}} listening on {{}}", env!("CARGO_PKG_VERSION"), path.display());
    for stream in listener.incoming() {{
        let Ok(mut stream) = stream else {{ continue }};
        if {deaf} {{
            continue;
        }}
        let mut line = String::new();
        let _ = BufReader::new(&stream).read_line(&mut line);
        if line.trim() == "status" {{
            let _ = writeln!(stream, "taskqd {{}} is running", env!("CARGO_PKG_VERSION"));
        }}
    }}
}}
"#
    );
    if server {
        w(
            "crates/taskq-server/Cargo.toml",
            &format!(
                "[package]\nname = \"taskq-server\"\nversion = \"{version}\"\nedition = \"2021\"\n\n[[bin]]\nname = \"taskqd\"\npath = \"src/daemon.rs\"\n\n{dependency}"
            ),
        );
        w("crates/taskq-server/src/daemon.rs", &daemon_code);
    } else {
        w("crates/taskq/src/daemon.rs", &daemon_code);
    }
    generate_lockfile(dir);
}

/// A taskq repository with one tag per `(tag, daemon)`, in order.
pub fn taskq_repo(dir: &Path, shape: TaskqShape, releases: &[(&str, Taskqd)]) -> Repo {
    let repo = Repo::init(dir);
    for (tag, daemon) in releases {
        write_taskq_workspace(dir, tag.trim_start_matches('v'), *daemon, shape);
        repo.commit_and_tag(tag);
    }
    repo
}

/// One package of a shaped release (see [`write_shaped_release`]): its name and its
/// binaries (`[[bin]]` entries, each with a `path`).
#[derive(Debug, Clone, Copy)]
pub struct Pkg {
    pub name: &'static str,
    pub bins: &'static [&'static str],
}

/// A [`Pkg`].
pub const fn pkg(name: &'static str, bins: &'static [&'static str]) -> Pkg {
    Pkg { name, bins }
}

/// Writes release `version` of a workspace of `pkgs`, each in `crates/<name>`: every binary
/// prints `<name> <version>` for `--version` and otherwise runs as a daemon until killed (it
/// exits at once when `$FAKE_STATE/bad-<version>` exists). No dependencies, unoptimised:
/// seconds to build. For the shapes the taskq fixture does not have (a binary a release
/// adds, renames or moves to another package; another project's binary).
pub fn write_shaped_release(dir: &Path, version: &str, pkgs: &[Pkg]) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
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
    generate_lockfile(dir);
}

/// A repository with one tag per `(tag, packages)` release, in order.
pub fn shaped_repo(dir: &Path, releases: &[(&str, &[Pkg])]) -> Repo {
    let repo = Repo::init(dir);
    for (tag, pkgs) in releases {
        write_shaped_release(dir, tag.trim_start_matches('v'), pkgs);
        repo.commit_and_tag(tag);
    }
    repo
}

/// `cargo generate-lockfile` of the workspace in `dir` (offline: no dependencies).
fn generate_lockfile(dir: &Path) {
    let status = Command::new(cargo())
        .args(["generate-lockfile", "--quiet", "--offline"])
        .current_dir(dir)
        .status()
        .expect("cargo generate-lockfile");
    assert!(status.success(), "generate-lockfile failed");
}
