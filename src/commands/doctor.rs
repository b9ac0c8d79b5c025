//! `heph-selfupdate doctor`: one line per thing an update needs, each with a fix when it
//! fails. Meant to run in the service's own environment (`make doctor`), because PATH,
//! toolchain and git access there are where unattended updates fail.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use crate::build::diagnose::{Reach, diagnose};
use crate::build::{Builder, FailureKind, Tools, Workspace, build_env};
use crate::colour::{self, Stream, Style};
use crate::config::Config;
use crate::evaluate::fetch_releases;
use crate::exit;
use crate::installed;
use crate::layout::Layout;
use crate::process::{Cmd, Output};
use crate::service::{Restart, ServiceManagerKind};
use crate::world::World;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    /// Works, but something deserves attention; does not fail `doctor`.
    Warn,
    Fail,
    /// Facts, not checks.
    Info,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "[ ok ]",
            Self::Warn => "[warn]",
            Self::Fail => "[FAIL]",
            Self::Info => "[info]",
        }
    }

    /// The label's colour on a terminal.
    fn style(self) -> Style {
        match self {
            Self::Ok => Style::Success,
            Self::Warn => Style::Warning,
            Self::Fail => Style::Error,
            Self::Info => Style::Plain,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::Info => "info",
        }
    }
}

#[derive(Debug)]
struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

fn check(
    name: &'static str,
    status: Status,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix,
    }
}

fn first_line(out: &Output) -> String {
    let text = if out.stdout.trim().is_empty() {
        out.tail_text()
    } else {
        out.stdout.clone()
    };
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// Runs `cmd`; `Ok(first line)` when it exits 0. A failure keeps every line the program
/// said (a toolchain's name is often in the first line, not the last).
fn probe(world: &World, cmd: &Cmd) -> Result<String, String> {
    match world.runner.run(cmd) {
        Ok(out) if out.success() => Ok(first_line(&out)),
        Ok(out) => {
            let said: Vec<&str> = out
                .tail
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .take(6)
                .collect();
            Err(format!(
                "{} failed ({}): {}",
                cmd.display(),
                out.code
                    .map_or_else(|| "killed".to_owned(), |c| format!("exit {c}")),
                crate::redact::escape(&said.join(" / "))
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `git ls-remote` in the build's environment; a failure is classified the way a build's
/// fetch is (a refusal, or a network failure), with the program's own line first.
fn git_access(world: &World, cmd: &Cmd, git_url: &str) -> Check {
    let shown = crate::redact::url(git_url);
    let hide = |text: &str| crate::redact::escape(&hide_url_secret(text, git_url));
    let out = match world.runner.run(cmd) {
        Ok(out) if out.success() => {
            return check(
                "git access",
                Status::Ok,
                format!("{shown} answers, with the environment cargo gets"),
                None,
            );
        }
        Ok(out) => out,
        Err(e) => return check("git access", Status::Fail, hide(&e.to_string()), None),
    };
    let tail = out.tail_text();
    let found = diagnose(Reach::Network, out.code, &tail);
    let cause = found.cause.clone().unwrap_or_else(|| {
        tail.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(3)
            .collect::<Vec<_>>()
            .join(" / ")
    });
    let fix = found.help.map_or_else(
        || "use an anonymous https:// git_url, or for ssh:// a deploy key via GIT_SSH_COMMAND in ~/.config/heph-selfupdate/env (services have no ssh-agent)".to_owned(),
        |h| h.trim_start_matches("help: ").to_owned(),
    );
    match found.kind {
        FailureKind::Network => check(
            "git access",
            Status::Fail,
            format!("{shown} cannot be reached (a network failure): {}", hide(&cause)),
            Some("check the host and port in git_url, and DNS, proxy and firewall from the service's environment; updates retry a network failure by themselves".into()),
        ),
        _ => check(
            "git access",
            Status::Fail,
            format!("{shown} refused `git ls-remote`: {}", hide(&cause)),
            Some(fix),
        ),
    }
}

/// `text` without the password of `git_url`'s `user:password@` part, should a program
/// have echoed it.
fn hide_url_secret(text: &str, git_url: &str) -> String {
    let password = url::Url::parse(git_url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned));
    let text = text.replace(git_url, &crate::redact::url(git_url));
    crate::redact::secret(&text, password.as_deref())
}

/// The newest release a build could target on this host's channel and `version_req` (or
/// its pin), whether or not it is due yet (age, rollout and holds aside): the one whose
/// toolchain needs matter next.
fn newest_release(
    cfg: &Config,
    releases: &[crate::release::Release],
    world: &World,
) -> Option<String> {
    let mut policy = cfg.policy.clone();
    policy.min_release_age = std::time::Duration::ZERO;
    policy.rollout = None;
    crate::policy::decide(
        &crate::policy::InstalledState::default(),
        releases,
        &policy,
        &crate::policy::Holds::default(),
        &crate::policy::Overrides::default(),
        world.clock.now(),
    )
    .chosen
    .map(|c| c.tag)
}

/// The release whose manifests doctor reads: the newest one, or the one last checked out.
struct ReleaseRead {
    /// Its workspace (`Ok(None)`: no release checked out and the newest not known).
    ws: Result<Option<Workspace>>,
    /// The release in words for toolchain messages: its tag, or "the release last
    /// checked out".
    label: String,
    /// Which release that is and why, for the check lines.
    about: String,
}

/// Reads the newest release's manifests (without changing anything), or the checkout's
/// when the newest is not known or cannot be read.
fn read_release(builder: &Builder<'_>, cfg: &Config, newest: Option<&str>) -> ReleaseRead {
    const LAST: &str = "the release last checked out";
    let Some(tag) = newest else {
        return ReleaseRead {
            ws: builder.checkout_workspace(),
            label: LAST.to_owned(),
            about: LAST.to_owned(),
        };
    };
    match builder.release_workspace(tag) {
        Ok(ws) => ReleaseRead {
            ws: Ok(Some(ws)),
            label: tag.to_owned(),
            about: format!("{tag} (the newest release)"),
        },
        Err(e) => {
            log::debug!("could not read the manifests of {tag}: {e:#}");
            // What failed and the program's last word, without the scratch paths of the
            // command line.
            let why = match e.downcast_ref::<crate::process::CmdFailed>() {
                Some(f) => format!(
                    "could not {}: {}",
                    f.summary,
                    f.output.tail.last().map_or("", |l| l.trim())
                ),
                None => format!("{e:#}").lines().next().unwrap_or("").to_owned(),
            };
            let why = hide_url_secret(&why, &cfg.git_url);
            log::info!("could not read the manifests of {tag}: {why}");
            ReleaseRead {
                ws: builder.checkout_workspace(),
                label: LAST.to_owned(),
                about: format!("{LAST} (the newest, {tag}, could not be read: {why})"),
            }
        }
    }
}

/// The rustc a build would use, against the `rust-version` of the newest release (read
/// without changing anything), or of the release last checked out when the newest is not
/// known (a release can need a newer Rust than the service's toolchain).
fn toolchain_check(builder: &Builder<'_>, cfg: &Config, release: &ReleaseRead) -> Check {
    let report = match &release.ws {
        Ok(ws) => builder.toolchain_report(ws.as_ref(), &release.label),
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    };
    match report {
        Ok(r) if r.problem.is_none() => {
            let needs = if r.required.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = r
                    .required
                    .iter()
                    .map(|(p, v)| format!("{p} needs {v}"))
                    .collect();
                format!("; {}: {}", release.about, list.join(", "))
            };
            check(
                "toolchain",
                Status::Ok,
                format!("builds would use rustc {}{needs}", r.rustc),
                None,
            )
        }
        Ok(r) => {
            let problem = r.problem.unwrap_or_default();
            let (detail, fix) = match problem.split_once("\nhelp: ") {
                Some((d, f)) => (d.to_owned(), Some(f.to_owned())),
                None => (problem, None),
            };
            check("toolchain", Status::Fail, detail, fix)
        }
        Err(e) => {
            let (detail, help) = crate::logger::split_help(&e);
            let fix = help.first().map_or_else(
                || {
                    format!(
                        "check `toolchain`{} and that rustc runs in the service's environment",
                        cfg.toolchain
                            .as_deref()
                            .map(|t| format!(" (= {t})"))
                            .unwrap_or_default()
                    )
                },
                |h| h.trim_start_matches("help: ").to_owned(),
            );
            check(
                "toolchain",
                Status::Fail,
                format!("could not ask the toolchain: {detail}"),
                Some(fix),
            )
        }
    }
}

/// `binary` must be one of the binaries the packages install: from the release's
/// manifests (bin targets whose `required-features` are on by default), else from what
/// cargo recorded of the installed packages.
fn binary_check(cfg: &Config, release: &ReleaseRead) -> Check {
    let binary = &cfg.binary;
    let found = if let Ok(Some(ws)) = &release.ws {
        Some((ws.bins.clone(), release.about.clone()))
    } else {
        let recorded = cfg.layout().recorded_bins(&cfg.packages);
        let about = "cargo's records of the installed packages";
        (recorded.len() == cfg.packages.len()).then(|| (recorded, about.to_owned()))
    };
    let Some((bins, about)) = found else {
        let why = match &release.ws {
            Err(e) => format!("the release's manifests could not be read: {e:#}"),
            _ => "no release read and no install records".to_owned(),
        };
        return check(
            "binary",
            Status::Info,
            format!("which binaries the packages install is unknown ({why})"),
            None,
        );
    };
    let ws = Workspace {
        bins,
        ..Workspace::default()
    };
    match ws.check_binary(binary, &cfg.packages, &about) {
        Ok(()) => {
            let by: Vec<&str> = cfg
                .packages
                .iter()
                .filter(|p| ws.bins.get(*p).is_some_and(|b| b.contains(binary)))
                .map(String::as_str)
                .collect();
            check(
                "binary",
                Status::Ok,
                format!(
                    "{binary} is installed by {}; {about}: {}",
                    by.join(", "),
                    crate::layout::describe_bins(&ws.bins, &cfg.packages)
                ),
                None,
            )
        }
        Err(message) => {
            let (detail, fix) = match message.split_once("\nhelp: ") {
                Some((d, f)) => (d.to_owned(), Some(f.to_owned())),
                None => (message, None),
            };
            check("binary", Status::Fail, detail, fix)
        }
    }
}

/// A `build_profile` other than cargo's own (dev, release, test, bench) must be one the
/// release's workspace defines (`[profile.<name>]` in its root manifest) or cargo's
/// configuration in `CARGO_HOME` does: cargo refuses any other before it compiles.
fn profile_check(cfg: &Config, world: &World, release: &ReleaseRead) -> Option<Check> {
    let profile = &cfg.build_profile;
    if crate::build::BUILT_IN_PROFILES.contains(&profile.as_str()) {
        return None;
    }
    let Ok(Some(ws)) = &release.ws else {
        return Some(check(
            "build_profile",
            Status::Info,
            format!(
                "{profile}: whether the release defines it is unknown (its manifests were not read)"
            ),
            None,
        ));
    };
    let Some(defined) = &ws.profiles else {
        return Some(check(
            "build_profile",
            Status::Info,
            format!(
                "{profile}: whether {} defines it is unknown (its root manifest could not be read)",
                release.about
            ),
            None,
        ));
    };
    if defined.contains(profile) {
        return Some(check(
            "build_profile",
            Status::Ok,
            format!("{profile} is defined by {}", release.about),
            None,
        ));
    }
    let cargo_home = world
        .env
        .get("CARGO_HOME")
        .map_or_else(|| cfg.home.join(".cargo"), PathBuf::from);
    let configured = ["config.toml", "config"]
        .iter()
        .map(|f| cargo_home.join(f))
        .find(|f| crate::build::profiles_of(f).is_some_and(|p| p.contains(profile)));
    if let Some(file) = configured {
        return Some(check(
            "build_profile",
            Status::Ok,
            format!("{profile} is defined in {}", file.display()),
            None,
        ));
    }
    let mut known: Vec<String> = vec!["release".to_owned(), "dev".to_owned()];
    for p in defined {
        if !known.contains(p) {
            known.push(p.clone());
        }
    }
    Some(check(
        "build_profile",
        Status::Fail,
        format!(
            "{profile} is not a profile {} defines, nor {}/config.toml: cargo refuses it (\"profile `{profile}` is not defined\")",
            release.about,
            cargo_home.display()
        ),
        Some(format!(
            "set `build_profile` to one of: {}",
            known.join(", ")
        )),
    ))
}

/// The build checkout's target dir against `cache_max_size`.
fn cache_check(cfg: &Config) -> Check {
    let size = crate::build::cache::target_dir_size(&cfg.cache_dir);
    check(
        "build cache",
        Status::Info,
        format!(
            "{} in {} (kept under cache_max_size = {})",
            bytesize::ByteSize::b(size),
            crate::git::checkout_dir(&cfg.cache_dir)
                .join("target")
                .display(),
            bytesize::ByteSize::b(cfg.cache_max_size)
        ),
        None,
    )
}

/// Whether we may write in `dir` — asked, not tried: doctor changes nothing. A directory
/// of ours that does not exist yet is fine when its nearest existing parent is writable.
fn writable(dir: &Path, ours: bool) -> Result<String, String> {
    let can_write = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            // SAFETY: access(2) reads the NUL-terminated path and nothing else.
            .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
    };
    if dir.is_dir() {
        return if can_write(dir) {
            Ok(format!("{} is writable", dir.display()))
        } else {
            Err(format!("{} is not writable by this user", dir.display()))
        };
    }
    if !ours {
        return Err(format!("{} does not exist", dir.display()));
    }
    match dir.ancestors().skip(1).find(|a| a.is_dir()) {
        Some(parent) if can_write(parent) => Ok(format!(
            "{} does not exist yet; the first run creates it (in {})",
            dir.display(),
            parent.display()
        )),
        Some(parent) => Err(format!(
            "{} does not exist and {} is not writable",
            dir.display(),
            parent.display()
        )),
        None => Err(format!("no existing directory above {}", dir.display())),
    }
}

/// The fix for a cargo that did not answer, from what it said.
fn cargo_fix(said: &str) -> String {
    let lower = said.to_ascii_lowercase();
    if lower.contains("toolchain")
        && (lower.contains("not installed") || lower.contains("is not installed"))
    {
        // "toolchain 'nightly-2099-01-01-x86_64-unknown-linux-gnu' is not installed": the
        // name without its host triple.
        let quoted = said.split('\'').nth(1).unwrap_or("stable");
        let name = [
            "-x86_64",
            "-aarch64",
            "-i686",
            "-armv7",
            "-riscv64",
            "-powerpc64",
            "-s390x",
        ]
        .iter()
        .find_map(|arch| quoted.find(arch).map(|i| &quoted[..i]))
        .unwrap_or(quoted);
        format!(
            "install the toolchain: `rustup toolchain install {name}` (or set `toolchain` / RUSTUP_TOOLCHAIN to an installed one)"
        )
    } else if lower.contains("could not start") || lower.contains("no such file") {
        "install Rust with rustup, and make sure ~/.cargo/bin is on the service's PATH (or set `cargo`)".to_owned()
    } else {
        "run the same command in the service's environment (`make doctor`) and fix what it says"
            .to_owned()
    }
}

/// Whether a hook's program can be started: a path must be an executable file, a name must
/// be on PATH.
fn runnable(argv: &[String], path: Option<&std::ffi::OsStr>) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let Some(program) = argv.first() else {
        return Err("is empty".to_owned());
    };
    if program.contains('/') {
        let p = Path::new(program);
        return match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                Ok(format!("{program} is executable"))
            }
            Ok(_) => Err(format!("{program} is not an executable file")),
            Err(e) => Err(format!("{program}: {e}")),
        };
    }
    crate::process::find_on_path(program, path).map_or_else(
        || Err(format!("{program} is not on the service's PATH")),
        |p| Ok(format!("{program} is {}", p.display())),
    )
}

fn checks(cfg: &Config, world: &World) -> Vec<Check> {
    let mut out = Vec::new();
    let file = cfg.file.as_ref().map_or_else(
        || "no config file; defaults and environment".to_owned(),
        |p| p.display().to_string(),
    );
    out.push(check(
        "configuration",
        Status::Ok,
        format!("valid ({file})"),
        None,
    ));
    for w in &cfg.warnings {
        out.push(check("configuration", Status::Warn, w.clone(), None));
    }

    let settings = super::run_settings(cfg, world);
    let tools = Tools::find(&settings.build, world.path_var());
    let toolchain = cfg
        .toolchain
        .clone()
        .or_else(|| world.env.get("RUSTUP_TOOLCHAIN").cloned())
        .map(|t| format!(", RUSTUP_TOOLCHAIN={t}"))
        .unwrap_or_default();
    let cargo_version = build_env(
        tools.cargo_cmd("ask cargo its version").arg("--version"),
        &settings.build,
    );
    out.push(match probe(world, &cargo_version) {
        Ok(v) => check(
            "cargo",
            Status::Ok,
            format!("{v} ({}){toolchain}", tools.cargo.display()),
            None,
        ),
        Err(e) => {
            let fix = cargo_fix(&e);
            check("cargo", Status::Fail, e, Some(fix))
        }
    });
    out.push(
        match probe(
            world,
            &tools.git.cmd("ask git its version").arg("--version"),
        ) {
            Ok(v) => check(
                "git",
                Status::Ok,
                format!("{v} ({})", tools.git.path.display()),
                None,
            ),
            Err(e) => check(
                "git",
                Status::Fail,
                e,
                Some(format!(
                    "install git; heph-selfupdate runs it from `tool_path` ({}), never from PATH",
                    cfg.tools().describe()
                )),
            ),
        },
    );

    // The cache is read, not written: doctor changes nothing.
    let listed = fetch_releases(cfg, world, false);
    out.push(match &listed {
        Ok(releases) => {
            let auth = if cfg.token.is_some() {
                "; the token was accepted"
            } else {
                ""
            };
            check(
                "forge",
                Status::Ok,
                format!(
                    "{} lists {} release(s) of {}{auth}",
                    cfg.forge_url,
                    releases.len(),
                    cfg.repo
                ),
                None,
            )
        }
        Err(e) => check(
            "forge",
            Status::Fail,
            format!("{e:#}").lines().next().unwrap_or("").to_owned(),
            Some("check forge, forge_url, repo and the token (`heph-selfupdate config`)".into()),
        ),
    });
    let ls_remote = crate::build::network_env(
        crate::git::command(&tools.git, "reach the git URL").args([
            "ls-remote",
            "--exit-code",
            &cfg.git_url,
            "HEAD",
        ]),
        &settings.build,
    )
    .timeout(cfg.http_timeout.max(std::time::Duration::from_secs(30)));
    out.push(git_access(world, &ls_remote, &cfg.git_url));
    let builder = Builder {
        settings: &settings.build,
        runner: world.runner.as_ref(),
        clock: world.clock.as_ref(),
        tools: tools.clone(),
        layout: Layout::new(&cfg.data_dir, &cfg.bin_dir),
        log_file: None,
    };
    let newest = listed
        .as_ref()
        .ok()
        .and_then(|releases| newest_release(cfg, releases, world));
    let release = read_release(&builder, cfg, newest.as_deref());
    out.push(toolchain_check(&builder, cfg, &release));
    out.push(binary_check(cfg, &release));
    out.extend(profile_check(cfg, world, &release));
    out.push(cache_check(cfg));

    for (name, dir, ours) in [
        ("bin_dir", &cfg.bin_dir, false),
        ("data dir", &cfg.data_dir, true),
        ("state dir", &cfg.state_dir, true),
        ("cache dir", &cfg.cache_dir, true),
    ] {
        out.push(match writable(dir, ours) {
            Ok(detail) => check(name, Status::Ok, detail, None),
            Err(e) => check(
                name,
                Status::Fail,
                e,
                Some(format!(
                    "create {} and make it writable by this user",
                    dir.display()
                )),
            ),
        });
    }
    out.push(match crate::fsutil::free_space(&cfg.data_dir) {
        Ok(free) if free >= cfg.min_free_space => check(
            "disk",
            Status::Ok,
            format!(
                "{} free at {}",
                bytesize::ByteSize::b(free),
                cfg.data_dir.display()
            ),
            None,
        ),
        Ok(free) => check(
            "disk",
            Status::Fail,
            format!(
                "only {} free at {}; min_free_space is {}",
                bytesize::ByteSize::b(free),
                cfg.data_dir.display(),
                bytesize::ByteSize::b(cfg.min_free_space)
            ),
            Some("free some space, or lower min_free_space".into()),
        ),
        Err(e) => check("disk", Status::Fail, format!("{e:#}"), None),
    });

    // The daemon's own client in bin_dir (`~/.cargo/bin/pueue status`) is not there
    // before the first update installs it.
    let installs = match &release.ws {
        Ok(Some(ws)) => crate::layout::binaries_of(&ws.bins, &cfg.packages),
        _ => cfg.layout().expected_binaries(&cfg.packages),
    };
    let first_update_installs = |argv: &[String]| {
        let program = Path::new(argv.first()?);
        let name = program.file_name()?.to_string_lossy().into_owned();
        (program.parent() == Some(cfg.bin_dir.as_path())
            && !program.exists()
            && installs.contains(&name))
        .then(|| {
            format!(
                "{} is not there yet: the first update installs it",
                program.display()
            )
        })
    };
    for (name, argv) in [
        ("health_command", cfg.health_command.as_ref()),
        ("notify_command", cfg.notify_command.as_ref()),
    ] {
        if let Some(argv) = argv {
            out.push(match runnable(argv, world.path_var()) {
                Ok(detail) => check(name, Status::Ok, detail, None),
                Err(e) => match first_update_installs(argv) {
                    Some(detail) => check(name, Status::Ok, detail, None),
                    None => check(
                        name,
                        Status::Fail,
                        e,
                        Some(format!(
                            "install it, give its absolute path in `{name}`, or put it on the service's PATH"
                        )),
                    ),
                },
            });
        }
    }

    service_checks(cfg, world, &mut out);

    let inst = installed::probe(
        world.runner.as_ref(),
        &cfg.layout(),
        &cfg.binary,
        &cfg.packages,
    );
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let management = layout.management(&cfg.binary, &cfg.packages);
    let managed = if management.managed() {
        let mut text = format!(
            "managed: version root {}",
            layout.current().unwrap_or_default()
        );
        if !management.plain.is_empty() {
            let _ = write!(
                text,
                " ({} not linked by heph-selfupdate: the next update takes them under management)",
                management.plain.join(", ")
            );
        }
        text
    } else if !inst.binary_exists {
        format!(
            "not in {} (the first update installs it)",
            cfg.bin_dir.display()
        )
    } else {
        "plain binaries (the first update takes them under management)".to_owned()
    };
    let version = inst.version.as_ref().map_or_else(
        || "not installed or unknown".to_owned(),
        ToString::to_string,
    );
    out.push(check(
        "installed",
        Status::Info,
        format!("{} {version}, {managed}", cfg.binary),
        None,
    ));
    out
}

fn service_checks(cfg: &Config, world: &World, out: &mut Vec<Check>) {
    let spec = super::service_spec(cfg);
    let Some(manager) = world.services.manager(&spec) else {
        out.push(check(
            "service",
            Status::Info,
            "service_manager = none: the daemon is not restarted after an update",
            None,
        ));
        return;
    };
    out.push(match manager.observe(world.runner.as_ref()) {
        Ok(obs) if obs.missing => check(
            "service",
            Status::Fail,
            format!("{} is not known to the service manager", manager.describe()),
            Some("set `service` to the unit name (or launchd label) that runs hephd".into()),
        ),
        Ok(obs) => check("service", Status::Ok, format!("{} ({})", manager.describe(), obs.detail), None),
        Err(e) => check(
            "service",
            Status::Fail,
            format!("{e:#}"),
            Some(match cfg.service_manager {
                ServiceManagerKind::Launchd => "load the agent with `launchctl bootstrap gui/$UID <plist>`".into(),
                ServiceManagerKind::SystemdSystem => "the system's systemd must be reachable (`systemctl show` needs no privilege)".into(),
                _ => "the user's systemd manager must be reachable (XDG_RUNTIME_DIR set; run inside the session or with lingering on)".into(),
            }),
        ),
    });
    let tools = cfg.tools();
    match cfg.service_manager {
        ServiceManagerKind::SystemdUser => {
            let timer = crate::schedule::ask(
                world.runner.as_ref(),
                cfg.service_manager,
                crate::schedule::ask_cmd(cfg.service_manager, world.uid, &tools).as_ref(),
            );
            out.push(match timer.enabled {
                Some(true) => check("timer", Status::Info, timer.detail, None),
                Some(false) => check(
                    "timer",
                    Status::Info,
                    timer.detail,
                    Some("`make install enable` turns them on".into()),
                ),
                None => check("timer", Status::Warn, timer.detail, None),
            });
            // Its name from the password database: a service environment may lack $USER.
            let user = crate::fsutil::user_name(world.uid)
                .or_else(|| world.env.get("USER").cloned())
                .unwrap_or_else(|| world.uid.to_string());
            let linger = tools
                .find("loginctl")
                .cmd("ask whether lingering is on")
                .args(["show-user", &user, "--property=Linger", "--value"]);
            out.push(match probe(world, &linger) {
                Ok(v) if v == "yes" => check(
                    "lingering",
                    Status::Ok,
                    format!("on for {user}: the timer runs while logged out"),
                    None,
                ),
                Ok(_) => check(
                    "lingering",
                    Status::Warn,
                    format!("off for {user}: user timers run only while {user} is logged in"),
                    Some(format!("loginctl enable-linger {user}")),
                ),
                // Could not ask at all: say so, do not guess "off".
                Err(e) => check(
                    "lingering",
                    Status::Warn,
                    format!("unknown for {user}: {e}"),
                    Some(format!(
                        "check with `loginctl show-user {user}` in a session"
                    )),
                ),
            });
        }
        ServiceManagerKind::Launchd => {
            let agents = cfg.home.join("Library/LaunchAgents");
            let found = std::fs::read_dir(&agents).is_ok_and(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().contains("selfupdate"))
            });
            out.push(if found {
                check(
                    "timer",
                    Status::Info,
                    format!(
                        "a heph-selfupdate agent is installed in {}",
                        agents.display()
                    ),
                    None,
                )
            } else {
                check(
                    "timer",
                    Status::Info,
                    "no heph-selfupdate agent installed (updates are off)",
                    Some("`make install enable` turns them on".into()),
                )
            });
        }
        ServiceManagerKind::SystemdSystem => {
            let user = this_user(world);
            let timer = format!("heph-selfupdate@{user}.timer");
            let enabled = tools
                .find("systemctl")
                .cmd("ask whether the timer is enabled")
                .args(["is-enabled", timer.as_str()]);
            out.push(match probe(world, &enabled) {
                Ok(state) => check("timer", Status::Info, format!("{timer} is {state}"), None),
                Err(_) => check(
                    "timer",
                    Status::Info,
                    format!("{timer} is not enabled (updates are off)"),
                    Some(format!(
                        "`make install-system enable-system USER={user}` (as root) turns them on"
                    )),
                ),
            });
            out.extend(root_reads_the_home(cfg, world, &tools, &user));
        }
        ServiceManagerKind::None => {}
    }
    if spec.restart == Restart::Respawn {
        match cfg.service_manager {
            ServiceManagerKind::SystemdUser | ServiceManagerKind::SystemdSystem => {
                respawn_systemd_checks(cfg, world, out);
            }
            ServiceManagerKind::Launchd => respawn_launchd_checks(cfg, out),
            ServiceManagerKind::None => {}
        }
    }
}

/// A warning when the system unit still names a file in the user's home in
/// `EnvironmentFile=` (a drop-in of an older install): PID 1 reads that file as root,
/// following links, before `User=` applies. Asked of systemd (`systemctl show`), which
/// knows every drop-in; nothing is read here.
fn root_reads_the_home(
    cfg: &Config,
    world: &World,
    tools: &crate::tool_path::ToolPath,
    user: &str,
) -> Option<Check> {
    let unit = format!("heph-selfupdate@{user}.service");
    let show = tools
        .find("systemctl")
        .cmd("ask which environment files the system unit names")
        .args([
            "show",
            "--property=EnvironmentFiles",
            "--property=DropInPaths",
            unit.as_str(),
        ]);
    let out = world.runner.run(&show).ok().filter(Output::success)?;
    let files = environment_files_in(&out.stdout, &cfg.home);
    if files.is_empty() {
        return None;
    }
    let drop_ins = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("DropInPaths="))
        .filter(|d| !d.trim().is_empty())
        .map(|d| format!(" (drop-ins: {})", d.trim()))
        .unwrap_or_default();
    Some(check(
        "system unit",
        Status::Warn,
        format!(
            "{unit} still has EnvironmentFile={} in {user}'s home{drop_ins}: systemd reads it as root, following links, before User= applies (a drop-in of an older install)",
            files.join(", EnvironmentFile=")
        ),
        Some(format!(
            "run `sudo make install-system USER={user} BIN=…` again (its drop-in names the file in HEPH_SELFUPDATE_ENV_FILE, read by heph-selfupdate as {user}), or remove that line, then `sudo systemctl daemon-reload`"
        )),
    ))
}

/// The files `systemctl show --property=EnvironmentFiles` names (`PATH (ignore_errors=…)`
/// per line) that are in `home`.
fn environment_files_in(show: &str, home: &Path) -> Vec<String> {
    show.lines()
        .filter_map(|l| l.strip_prefix("EnvironmentFiles="))
        .filter_map(|v| v.split(" (ignore_errors=").next())
        .map(str::trim)
        .filter(|f| !f.is_empty() && Path::new(f).starts_with(home))
        .map(String::from)
        .collect()
}

/// This user's login name (what a unit's `User=` names), else the uid.
fn this_user(world: &World) -> String {
    crate::fsutil::user_name(world.uid)
        .or_else(|| world.env.get("USER").cloned())
        .unwrap_or_else(|| world.uid.to_string())
}

/// True when `binary` is switched by an update: in `bin_dir` (links into `current`), or
/// in the current version root itself.
fn switched_by_updates(cfg: &Config, binary: &Path) -> bool {
    let current = cfg.data_dir.join("current/bin");
    let same = |a: &Path, b: &Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    };
    binary
        .parent()
        .is_some_and(|dir| same(dir, &cfg.bin_dir) || dir == current)
}

/// The `path=` of the first command in a `systemctl show` `ExecStart=` value
/// (`{ path=/x ; argv[]=/x --y ; … }`).
fn exec_start_path(value: &str) -> Option<&str> {
    value
        .split(" ; ")
        .find_map(|field| {
            field
                .trim()
                .trim_start_matches('{')
                .trim()
                .strip_prefix("path=")
        })
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// What `Restart=` means for a respawn, by systemd's rules (systemd.service(5), "Exit
/// causes"): SIGTERM (like SIGHUP, SIGINT, SIGPIPE and `SuccessExitStatus=`) is a *clean*
/// exit. `None` when it works.
fn restart_setting_problem(value: &str, unit: &str) -> Option<String> {
    match value {
        "always" => None,
        "on-success" => Some(format!(
            "{unit} has Restart=on-success: systemd starts it again after SIGTERM, but not after a crash, so a release that dies at start stays down and the rollback has nothing to respawn"
        )),
        "no" | "" => Some(format!(
            "{unit} has Restart=no: after SIGTERM systemd leaves it stopped"
        )),
        other => Some(format!(
            "{unit} has Restart={other}: systemd counts an exit by SIGTERM as clean and starts the daemon again only after an unclean one, so after respawn's SIGTERM it stays stopped"
        )),
    }
}

/// Restart=always, the daemon's user, and its binary in bin_dir: what respawn needs of a
/// systemd unit.
fn respawn_systemd_checks(cfg: &Config, world: &World, out: &mut Vec<Check>) {
    let system = cfg.service_manager == ServiceManagerKind::SystemdSystem;
    let unit = &cfg.service;
    let mut show = cfg
        .tools()
        .find("systemctl")
        .cmd("read what respawn needs of the unit")
        .timeout(crate::service::OBSERVE_TIMEOUT);
    if !system {
        show = show.arg("--user");
    }
    let show = show.args([
        "show",
        "--property=Restart,User,ExecStart,RestartUSec",
        unit.as_str(),
    ]);
    let text = match world.runner.run(&show) {
        Ok(o) if o.success() => o.stdout,
        Ok(o) => {
            out.push(check(
                "respawn",
                Status::Fail,
                format!(
                    "{} failed: {}",
                    show.display(),
                    o.tail_text().lines().last().unwrap_or("").trim()
                ),
                Some("the service manager must be reachable to check the unit".into()),
            ));
            return;
        }
        Err(e) => {
            out.push(check("respawn", Status::Fail, e.to_string(), None));
            return;
        }
    };
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map_or("", str::trim)
    };
    let edit = if system {
        format!("`systemctl edit {unit}` (as root)")
    } else {
        format!("`systemctl --user edit {unit}`")
    };
    let restart = get("Restart");
    out.push(match restart_setting_problem(restart, unit) {
        None => check(
            "restart",
            Status::Ok,
            format!("{unit} has Restart=always: systemd starts it again after respawn's SIGTERM"),
            None,
        ),
        Some(problem) => check(
            "restart",
            Status::Fail,
            problem,
            Some(format!(
                "set Restart=always in [Service] of {unit} ({edit}), or set restart = \"manager\""
            )),
        ),
    });
    if let Ok(wait) = humantime::parse_duration(get("RestartUSec"))
        && wait >= cfg.health_timeout
    {
        out.push(check(
            "restart",
            Status::Warn,
            format!(
                "{unit} waits RestartSec={} before it starts again, not less than health_timeout ({}): the new daemon cannot be seen up in time",
                crate::timefmt::human_duration(wait),
                crate::timefmt::human_duration(cfg.health_timeout)
            ),
            Some("raise health_timeout above RestartSec plus the time the daemon takes to stop".into()),
        ));
    }
    if system {
        let me = this_user(world);
        let runs_as = get("User");
        // No User=: the unit runs as root.
        let ours = runs_as == me
            || runs_as == world.uid.to_string()
            || (runs_as.is_empty() && world.uid == 0);
        out.push(if ours {
            check(
                "daemon user",
                Status::Ok,
                format!("{unit} runs as {me}, who may signal it"),
                None,
            )
        } else {
            check(
                "daemon user",
                Status::Fail,
                if runs_as.is_empty() {
                    format!("{unit} has no User= and runs as root: {me} cannot signal it")
                } else {
                    format!("{unit} runs as {runs_as}, not {me}: {me} cannot signal it")
                },
                Some(format!(
                    "run hephd as {me} (User={me} in {unit}, {edit}) and heph-selfupdate as that same user (`make install-system USER={me}`)"
                )),
            )
        });
    }
    let binary = cfg.bin_dir.join(&cfg.binary);
    out.push(match exec_start_path(get("ExecStart")) {
        Some(path) if switched_by_updates(cfg, Path::new(path)) => check(
            "daemon binary",
            Status::Ok,
            format!("{unit} starts {path}, which an update switches"),
            None,
        ),
        Some(path) => check(
            "daemon binary",
            Status::Fail,
            format!(
                "{unit} starts {path}, which is not in bin_dir ({}): a respawn would start the old binary again",
                cfg.bin_dir.display()
            ),
            Some(format!(
                "point ExecStart= of {unit} at {} ({edit}), or set bin_dir",
                binary.display()
            )),
        ),
        None => check(
            "daemon binary",
            Status::Fail,
            format!("{unit} has no ExecStart= that names a program"),
            Some(format!(
                "set ExecStart={} … in {unit} ({edit})",
                binary.display()
            )),
        ),
    });
}

/// The value element after `<key>NAME</key>` in an XML plist, trimmed (`<true/>`,
/// `<dict>`, `<array>`, …), and the text after it.
fn plist_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("<key>{name}</key>");
    let after = &text[text.find(&key)? + key.len()..];
    Some(after.trim_start())
}

/// KeepAlive and the program of the daemon's agent: what respawn needs of launchd.
fn respawn_launchd_checks(cfg: &Config, out: &mut Vec<Check>) {
    let plist = cfg
        .home
        .join("Library/LaunchAgents")
        .join(format!("{}.plist", cfg.service));
    let Ok(text) = std::fs::read_to_string(&plist) else {
        out.push(check(
            "restart",
            Status::Warn,
            format!("cannot read {}: KeepAlive is not checked", plist.display()),
            Some("respawn needs the daemon's agent to have KeepAlive = true".into()),
        ));
        return;
    };
    let keepalive = plist_value(&text, "KeepAlive");
    out.push(match keepalive {
        Some(v) if v.starts_with("<true/>") => check(
            "restart",
            Status::Ok,
            format!(
                "{} has KeepAlive: launchd starts it again after respawn's SIGTERM",
                cfg.service
            ),
            None,
        ),
        Some(v) if v.starts_with("<dict") => check(
            "restart",
            Status::Warn,
            format!(
                "{} has KeepAlive with conditions: launchd may leave it stopped after SIGTERM",
                cfg.service
            ),
            Some(format!(
                "set <key>KeepAlive</key><true/> in {}",
                plist.display()
            )),
        ),
        _ => check(
            "restart",
            Status::Fail,
            format!(
                "{} has no KeepAlive = true: after SIGTERM launchd leaves it stopped",
                cfg.service
            ),
            Some(format!(
                "set <key>KeepAlive</key><true/> in {}, or set restart = \"manager\"",
                plist.display()
            )),
        ),
    });
    let program = plist_value(&text, "Program")
        .or_else(|| {
            plist_value(&text, "ProgramArguments")
                .map(|v| v.trim_start_matches("<array>").trim_start())
        })
        .and_then(|v| v.strip_prefix("<string>"))
        .and_then(|v| v.split_once("</string>"))
        .map(|(p, _)| p.trim().to_owned());
    let binary = cfg.bin_dir.join(&cfg.binary);
    out.push(match program {
        Some(p) if switched_by_updates(cfg, Path::new(&p)) => check(
            "daemon binary",
            Status::Ok,
            format!("{} starts {p}, which an update switches", cfg.service),
            None,
        ),
        other => check(
            "daemon binary",
            Status::Fail,
            format!(
                "{} starts {}, not a binary in bin_dir ({}): a respawn would start the old binary again",
                cfg.service,
                other.as_deref().unwrap_or("no program it names"),
                cfg.bin_dir.display()
            ),
            Some(format!("point ProgramArguments in {} at {}", plist.display(), binary.display())),
        ),
    });
}

pub fn run(cfg: &Config, world: &World, json: bool) -> Result<i32> {
    let checks = checks(cfg, world);
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    if json {
        let out = json!({
            "ok": ok,
            "checks": checks.iter().map(|c| json!({
                "name": c.name, "status": c.status.code(), "detail": c.detail, "fix": c.fix,
            })).collect::<Vec<_>>(),
        });
        world.out.line(&serde_json::to_string_pretty(&out)?);
    } else {
        let mut text = String::new();
        for c in &checks {
            let label = colour::paint(Stream::Stdout, c.status.style(), c.status.label());
            let _ = writeln!(text, "{label} {}: {}", c.name, c.detail);
            if let Some(fix) = c.fix.as_ref().filter(|_| c.status != Status::Ok) {
                let _ = writeln!(text, "       fix: {fix}");
            }
        }
        text.push_str(if ok {
            "all checks passed\n"
        } else {
            "some checks failed (see fix: lines)\n"
        });
        world.out.text(&text);
    }
    Ok(if ok { exit::OK } else { exit::FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_files_in_the_home_are_found_in_what_systemctl_shows() {
        let show = "EnvironmentFiles=/home/alice/.config/heph-selfupdate/env (ignore_errors=yes)\nEnvironmentFiles=/etc/heph-selfupdate/alice.env (ignore_errors=no)\nDropInPaths=/etc/systemd/system/heph-selfupdate@alice.service.d/home.conf\n";
        assert_eq!(
            environment_files_in(show, Path::new("/home/alice")),
            ["/home/alice/.config/heph-selfupdate/env"]
        );
        assert!(environment_files_in("EnvironmentFiles=\n", Path::new("/home/alice")).is_empty());
        assert!(
            environment_files_in(show, Path::new("/home/al")).is_empty(),
            "a path, not a prefix"
        );
    }

    #[test]
    fn the_exec_start_path_is_read_from_systemctl_show() {
        let v = "{ path=/home/u/.cargo/bin/hephd ; argv[]=/home/u/.cargo/bin/hephd --mode local ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }";
        assert_eq!(exec_start_path(v), Some("/home/u/.cargo/bin/hephd"));
        assert_eq!(exec_start_path(""), None);
        assert_eq!(exec_start_path("{ argv[]=x }"), None);
    }

    #[test]
    fn only_restart_always_respawns_after_sigterm_and_after_a_crash() {
        assert_eq!(restart_setting_problem("always", "hephd.service"), None);
        for (value, says) in [
            ("on-failure", "counts an exit by SIGTERM as clean"),
            ("on-abnormal", "counts an exit by SIGTERM as clean"),
            ("on-abort", "counts an exit by SIGTERM as clean"),
            ("on-watchdog", "counts an exit by SIGTERM as clean"),
            ("on-success", "not after a crash"),
            ("no", "leaves it stopped"),
        ] {
            let problem = restart_setting_problem(value, "hephd.service").unwrap();
            assert!(problem.contains(says), "{value}: {problem}");
        }
    }

    #[test]
    fn plist_values_are_found_after_their_key() {
        let text = "<dict>\n\t<key>KeepAlive</key>\n\t<true/>\n\t<key>ProgramArguments</key>\n\t<array>\n\t\t<string>/u/.cargo/bin/hephd</string>\n";
        assert!(
            plist_value(text, "KeepAlive")
                .unwrap()
                .starts_with("<true/>")
        );
        assert!(
            plist_value(text, "ProgramArguments")
                .unwrap()
                .starts_with("<array>")
        );
        assert_eq!(plist_value(text, "RunAtLoad"), None);
    }
}
