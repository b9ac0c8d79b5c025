//! `heph-selfupdate doctor`: one line per thing an update needs, each with a fix when it
//! fails. Meant to run in the service's own environment (`make doctor`), because PATH,
//! toolchain and git access there are where unattended updates fail.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::build::{Tools, build_env};
use crate::colour::{self, Stream, Style};
use crate::config::Config;
use crate::evaluate::fetch_releases;
use crate::exit;
use crate::installed;
use crate::layout::Layout;
use crate::process::{Cmd, Output};
use crate::service::ServiceManagerKind;
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
    let tools = Tools::find(cfg.cargo.as_deref(), &cfg.home, world.path_var());
    let toolchain = cfg
        .toolchain
        .clone()
        .or_else(|| world.env.get("RUSTUP_TOOLCHAIN").cloned())
        .map(|t| format!(", RUSTUP_TOOLCHAIN={t}"))
        .unwrap_or_default();
    let cargo_version = build_env(
        Cmd::new(&tools.cargo, "ask cargo its version").arg("--version"),
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
            &Cmd::new(&tools.git, "ask git its version").arg("--version"),
        ) {
            Ok(v) => check(
                "git",
                Status::Ok,
                format!("{v} ({})", tools.git.display()),
                None,
            ),
            Err(e) => check(
                "git",
                Status::Fail,
                e,
                Some("install git and put it on the service's PATH".into()),
            ),
        },
    );

    // The cache is read, not written: doctor changes nothing.
    out.push(match fetch_releases(cfg, world, false) {
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
    let ls_remote = build_env(
        Cmd::new(&tools.git, "reach the git URL").args([
            "ls-remote",
            "--exit-code",
            &cfg.git_url,
            "HEAD",
        ]),
        &settings.build,
    )
    .timeout(cfg.http_timeout.max(std::time::Duration::from_secs(30)));
    out.push(match probe(world, &ls_remote) {
        Ok(_) => check("git access", Status::Ok, format!("{} answers, with the environment cargo gets", crate::redact::url(&cfg.git_url)), None),
        Err(e) => check(
            "git access",
            Status::Fail,
            e,
            Some("use an anonymous https:// git_url, or for ssh:// a deploy key via GIT_SSH_COMMAND in ~/.config/heph-selfupdate/env (services have no ssh-agent)".into()),
        ),
    });

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

    for (name, argv) in [
        ("health_command", cfg.health_command.as_ref()),
        ("notify_command", cfg.notify_command.as_ref()),
    ] {
        if let Some(argv) = argv {
            out.push(match runnable(argv, world.path_var()) {
                Ok(detail) => check(name, Status::Ok, detail, None),
                Err(e) => check(
                    name,
                    Status::Fail,
                    e,
                    Some(format!(
                        "install it, give its absolute path in `{name}`, or put it on the service's PATH"
                    )),
                ),
            });
        }
    }

    service_checks(cfg, world, &mut out);

    let inst = installed::probe(
        world.runner.as_ref(),
        &cfg.bin_dir,
        &cfg.binary,
        &cfg.packages,
    );
    let layout = Layout::new(&cfg.data_dir, &cfg.bin_dir);
    let managed = if layout.is_managed(&cfg.binary) {
        format!(
            "managed: version root {}",
            layout.current().unwrap_or_default()
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
    let Some(manager) = world.services.manager(&super::service_spec(cfg)) else {
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
                _ => "the user's systemd manager must be reachable (XDG_RUNTIME_DIR set; run inside the session or with lingering on)".into(),
            }),
        ),
    });
    let path = world.path_var();
    match cfg.service_manager {
        ServiceManagerKind::SystemdUser => {
            let timer = crate::schedule::ask(
                world.runner.as_ref(),
                cfg.service_manager,
                crate::schedule::ask_cmd(cfg.service_manager, world.uid, path).as_ref(),
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
            let loginctl =
                crate::process::find_on_path("loginctl", path).unwrap_or_else(|| "loginctl".into());
            let linger = Cmd::new(loginctl, "ask whether lingering is on").args([
                "show-user",
                &user,
                "--property=Linger",
                "--value",
            ]);
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
        ServiceManagerKind::SystemdSystem | ServiceManagerKind::None => {}
    }
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
