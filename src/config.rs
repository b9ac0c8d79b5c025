//! The effective configuration: flags > environment > file > defaults, read once.
//!
//! Every layer is read into one [`RawConfig`] (the one list of keys; see [`raw`]), with
//! typed values that check their own rules ([`values`]); the layers are merged key by key,
//! keeping where each value came from ([`layers`]); [`Config::from_raw`] fills in the
//! defaults and holds the rules across keys. Unknown keys and wrong types are errors that
//! name the key and the place.

mod layers;
mod raw;
mod values;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use semver::VersionReq;

use crate::build::BuildMode;
use crate::forge::ForgeKind;
use crate::policy::{Channel, Policy};
use crate::secret::Secret;
use crate::service::ServiceManagerKind;

pub use crate::envvars::{CONFIG as CONFIG_ENV, PREFIX as ENV_PREFIX, TOKEN as TOKEN_ENV};
pub use raw::keys;
pub use values::{format_duration, format_size};

use layers::{Given, Origin, Problem, Setting};
use raw::RawConfig;
use values::{
    Count, Dur, FromText, GitUrl, HttpUrl, List, Name, PathText, Pick, Repo, Req, ServiceName,
    Size, Windows,
};

/// A configuration error (exit code 2).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn config_err(msg: impl Into<String>) -> anyhow::Error {
    ConfigError(msg.into()).into()
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(p) => write!(f, "file {}", p.display()),
            Self::Env(v) => write!(f, "env {v}"),
            Self::Flag => f.write_str("flag --set"),
        }
    }
}

/// Run mode: install updates, or only report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Notify,
}

/// How the daemon is restarted after a switch (`restart`): the service module's own type.
pub use crate::service::Restart as RestartMethod;

/// The operating system family, which picks some defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    Other,
}

impl Os {
    pub fn current() -> Self {
        if cfg!(target_os = "linux") {
            Self::Linux
        } else if cfg!(target_os = "macos") {
            Self::MacOs
        } else {
            Self::Other
        }
    }
}

/// Default directories, found once by the caller (from `directories`).
#[derive(Debug, Clone)]
pub struct Dirs {
    pub home: PathBuf,
    pub config: PathBuf,
    pub data: PathBuf,
    pub state: PathBuf,
    pub cache: PathBuf,
}

impl Dirs {
    /// The platform's directories for this user (XDG on Linux).
    pub fn discover() -> Result<Self> {
        let base =
            directories::BaseDirs::new().context("could not find the home directory; set HOME")?;
        let proj = directories::ProjectDirs::from("", "", "heph-selfupdate")
            .context("could not find the home directory; set HOME")?;
        Ok(Self {
            home: base.home_dir().to_path_buf(),
            config: proj.config_dir().to_path_buf(),
            data: proj.data_dir().to_path_buf(),
            state: proj
                .state_dir()
                .unwrap_or_else(|| proj.data_local_dir())
                .to_path_buf(),
            cache: proj.cache_dir().to_path_buf(),
        })
    }
}

/// Everything configuration is made from; gathered once at start.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `--config PATH`.
    pub config_flag: Option<PathBuf>,
    /// `--set KEY=VALUE`, in order.
    pub sets: Vec<String>,
    /// The process environment.
    pub env: BTreeMap<String, String>,
    pub dirs: Dirs,
    pub os: Os,
}

/// One key of `heph-selfupdate config`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub key: &'static str,
    /// The effective value as text: a string as it is, anything else as TOML; empty
    /// when the key is unset; `<redacted>` for the token.
    pub value: String,
    /// Where it came from (`default`, `file PATH`, `env NAME`, `flag --set`).
    pub source: String,
    /// The line of the config file that set it.
    #[serde(skip)]
    pub line: Option<usize>,
    /// The effective value as TOML, in its normal form (`"1m 30s"`, `"2 GiB"`); `None`
    /// when the key is unset, and for the token, which is no key and never shown.
    #[serde(skip)]
    pub toml: Option<toml::Value>,
}

/// The validated, effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub forge: ForgeKind,
    pub forge_url: String,
    pub repo: String,
    pub git_url: String,
    pub token: Option<Secret>,
    pub packages: Vec<String>,
    pub binary: String,
    pub bin_dir: PathBuf,
    pub policy: Policy,
    pub http_timeout: Duration,
    pub mode: Mode,
    pub build: BuildMode,
    /// The cargo profile builds use (`cargo install --profile`).
    pub build_profile: String,
    pub toolchain: Option<String>,
    pub cargo: Option<PathBuf>,
    /// The directories the system's own programs are run from (see [`crate::tool_path`]).
    pub tool_path: Vec<PathBuf>,
    pub verify_tag: bool,
    pub allowed_signers: Option<PathBuf>,
    pub build_timeout: Duration,
    pub retry_pause: Duration,
    pub min_free_space: u64,
    pub keep_versions: usize,
    pub service_manager: ServiceManagerKind,
    pub service: String,
    /// How the daemon is restarted.
    pub restart: RestartMethod,
    /// Time limit of the service manager's restart command (more than zero).
    pub restart_timeout: Duration,
    /// When a restart may happen, as written (parsed by the restart window module).
    pub restart_window: Vec<String>,
    pub health_settle: Duration,
    pub health_timeout: Duration,
    pub health_command: Option<Vec<String>>,
    pub notify_command: Option<Vec<String>>,
    /// How far apart in time hosts take a new release.
    pub rollout_spread: Duration,
    /// This host's place in the rollout, in [0, 1).
    pub rollout_wave: Option<f64>,
    /// What this host is called in a rollout.
    pub host_id: Option<String>,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// Largest size of the cache directory, in bytes.
    pub cache_max_size: u64,
    /// A file the metrics of each run are written to.
    pub metrics_file: Option<PathBuf>,
    /// PEM file of CA certificates trusted for the forge, git and cargo.
    pub ca_file: Option<PathBuf>,
    pub home: PathBuf,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// The config file paths looked at, found or not.
    pub searched: Vec<PathBuf>,
    /// Things the user should know (e.g. a token file others can read).
    pub warnings: Vec<String>,
    /// The keys set by the file, the environment or a flag, and where.
    origins: BTreeMap<&'static str, Origin>,
    entries: Vec<Entry>,
}

impl Config {
    /// Resolves the configuration from flags, environment, file and defaults.
    pub fn load(inputs: &Inputs) -> Result<Self> {
        let (file_path, explicit) = match (&inputs.config_flag, inputs.env.get(CONFIG_ENV)) {
            (Some(p), _) => (p.clone(), true),
            (None, Some(p)) if !p.is_empty() => (PathBuf::from(p), true),
            _ => (inputs.dirs.config.join("config.toml"), false),
        };
        let text = match std::fs::read_to_string(&file_path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
            Err(e) => {
                return Err(config_err(format!(
                    "could not read the config file {}: {e}\nhelp: check the path given by --config or {CONFIG_ENV}",
                    file_path.display()
                )));
            }
        };
        Self::from_text(inputs, &file_path, text.as_deref())
    }

    /// Resolves the configuration with `text` as the content of the file at `path`
    /// (`None`: there is no file there).
    pub fn from_text(inputs: &Inputs, path: &Path, text: Option<&str>) -> Result<Self> {
        let file = match text {
            Some(t) => file_layer(path, t)?,
            None => Vec::new(),
        };
        // Highest precedence first.
        let layers = [flag_layer(&inputs.sets)?, env_layer(&inputs.env), file];
        // Each layer is checked on its own, so a wrong value is reported where it was
        // set even when a higher layer overrides it.
        for layer in layers.iter().rev() {
            for setting in layer {
                known_key(setting)?;
            }
            layers::read(&layer.iter().collect::<Vec<_>>()).map_err(|p| problem(&p))?;
        }
        let winners = layers::merge(&layers);
        let raw = layers::read(&winners.values().copied().collect::<Vec<_>>())
            .map_err(|p| problem(&p))?;
        let origins = winners
            .values()
            .filter(|s| !matches!(s.value, Given::Reset))
            .filter_map(|s| {
                let key = keys().iter().find(|k| **k == s.key)?;
                Some((*key, s.origin.clone()))
            })
            .collect();
        let found = text.map(|_| path.to_path_buf());
        Self::from_raw(raw, origins, inputs, found, vec![path.to_path_buf()])
    }

    /// The configuration from the merged layers (`origins`: the keys they set, and
    /// where): fills in the defaults and checks the rules across keys.
    fn from_raw(
        mut raw: RawConfig,
        origins: BTreeMap<&'static str, Origin>,
        inputs: &Inputs,
        file: Option<PathBuf>,
        searched: Vec<PathBuf>,
    ) -> Result<Self> {
        let home = &inputs.dirs.home;
        let source = |key: &str| {
            origins
                .get(key)
                .map_or_else(|| Source::Default.to_string(), ToString::to_string)
        };
        let note = |key: &str| {
            default_note(&origins, key)
                .map(|n| format!(" {n}"))
                .unwrap_or_default()
        };
        let mut warnings = Vec::new();

        let forge = raw.forge.get_or_insert(Pick(ForgeKind::Forgejo)).0;
        let forge_url = raw
            .forge_url
            .get_or_insert_with(|| HttpUrl(forge.default_url().to_owned()))
            .0
            .clone();
        let repo = raw
            .repo
            .get_or_insert_with(|| Repo("eblume/hephaestus".to_owned()))
            .clone();
        if repo.depth() > 2 && forge != ForgeKind::GitLab {
            return Err(config_err(format!(
                "`repo` ({}) must look like owner/name; found {:?}: groups (group/subgroup/name) are for forge = \"gitlab\", and `forge` is {:?}{}",
                source("repo"),
                repo.0,
                Pick(forge).name(),
                note("forge")
            )));
        }
        let git_url = if let Some(url) = &raw.git_url {
            url.0.clone()
        } else {
            let derived = forge.git_url(&forge_url, &repo.0);
            let url = GitUrl::from_text(&derived)
                .map_err(|m| config_err(format!("`git_url` {}: {m}", note("git_url").trim())))?;
            raw.git_url.insert(url).0.clone()
        };
        for (key, url, what) in [
            ("forge_url", &forge_url, "the release list"),
            ("git_url", &git_url, "the source code"),
        ] {
            if is_plain_http_remote(url) {
                warnings.push(format!(
                    "`{key}` {url}{} is plain http to another host: {what} is fetched unauthenticated and could be altered on the way; use https://",
                    note(key)
                ));
            }
        }

        let token_file = expand(&mut raw.token_file, None, home);
        let mut token_entry = None;
        let token = match inputs.env.get(TOKEN_ENV).map(|t| t.trim()) {
            Some(t) if !t.is_empty() => {
                token_entry = Some(Source::Env(TOKEN_ENV.to_owned()).to_string());
                Some(Secret::new(t))
            }
            _ => match &token_file {
                Some(path) => {
                    let (token, warning) = read_token_file(path)?;
                    warnings.extend(warning);
                    token_entry = Some("token_file".to_owned());
                    Some(token)
                }
                None => None,
            },
        };
        let ca_file = expand(&mut raw.ca_file, None, home);

        let packages: Vec<String> = raw
            .packages
            .get_or_insert_with(|| List(vec![Name("heph".into()), Name("hephd".into())]))
            .0
            .iter()
            .map(|n| n.0.clone())
            .collect();
        if packages.is_empty() {
            return Err(config_err(format!(
                "`packages` ({}) must name at least one package",
                source("packages")
            )));
        }
        let binary = raw
            .binary
            .get_or_insert_with(|| Name("hephd".into()))
            .0
            .clone();
        let bin_dir =
            expand(&mut raw.bin_dir, Some(home.join(".cargo/bin")), home).unwrap_or_default();

        let channel = raw.channel.get_or_insert(Pick(Channel::Stable)).0;
        let version_req = raw
            .version_req
            .get_or_insert_with(|| Req(VersionReq::STAR))
            .0
            .clone();
        let version_req = (version_req != VersionReq::STAR).then_some(version_req);
        let pin = raw.pin.as_ref().map(|p| p.0.clone());
        let min_release_age = raw.min_release_age.get_or_insert(Dur(Duration::ZERO)).0;
        let http_timeout = raw.http_timeout.get_or_insert(Dur(secs(30))).0;
        if http_timeout.is_zero() {
            return Err(config_err(format!(
                "`http_timeout` ({}) must be more than 0s",
                source("http_timeout")
            )));
        }

        let mode = raw.mode.get_or_insert(Pick(Mode::Apply)).0;
        let build = raw.build.get_or_insert(Pick(BuildMode::Checkout)).0;
        let build_profile = raw
            .build_profile
            .get_or_insert_with(|| Name("release".into()))
            .0
            .clone();
        if let Err(why) = check_profile_name(&build_profile) {
            return Err(config_err(format!(
                "`build_profile` ({}) {why}",
                source("build_profile")
            )));
        }
        let toolchain = raw.toolchain.as_ref().map(|t| t.0.clone());
        let cargo = expand(&mut raw.cargo, None, home);
        let tool_path = tool_path(&mut raw, inputs)
            .map_err(|m| config_err(format!("`tool_path` ({}) {m}", source("tool_path"))))?;
        let verify_tag = *raw.verify_tag.get_or_insert(false);
        let allowed_signers = expand(&mut raw.allowed_signers, None, home);
        if verify_tag && allowed_signers.is_none() {
            return Err(config_err(format!(
                "`verify_tag = true` ({}) needs `allowed_signers` (an ssh allowed-signers file)",
                source("verify_tag")
            )));
        }
        let build_timeout = raw.build_timeout.get_or_insert(Dur(secs(90 * 60))).0;
        let retry_pause = raw.retry_pause.get_or_insert(Dur(secs(10))).0;
        let min_free_space = raw.min_free_space.get_or_insert(Size(2 << 30)).0;
        let keep_versions = raw.keep_versions.get_or_insert(Count(2)).0;
        let keep_versions = usize::try_from(keep_versions).map_err(|_| {
            config_err(format!(
                "`keep_versions` ({}) is too large",
                source("keep_versions")
            ))
        })?;

        let default_manager = match inputs.os {
            Os::MacOs => ServiceManagerKind::Launchd,
            Os::Linux | Os::Other => ServiceManagerKind::SystemdUser,
        };
        let service_manager = raw.service_manager.get_or_insert(Pick(default_manager)).0;
        let service = raw
            .service
            .get_or_insert_with(|| ServiceName(service_manager.default_service().to_owned()))
            .0
            .clone();
        let restart = raw.restart.get_or_insert(Pick(RestartMethod::Manager)).0;
        let restart_timeout = raw.restart_timeout.get_or_insert(Dur(secs(3 * 60))).0;
        if restart_timeout.is_zero() {
            return Err(config_err(format!(
                "`restart_timeout` ({}) must be more than 0s",
                source("restart_timeout")
            )));
        }
        let restart_window = raw
            .restart_window
            .get_or_insert_with(|| Windows(Vec::new()))
            .0
            .clone();
        if !restart_window.is_empty()
            && let Err(e) = crate::window::Windows::parse_list(&restart_window)
        {
            return Err(config_err(format!(
                "`restart_window` ({}): {e}",
                source("restart_window")
            )));
        }
        let health_settle = raw.health_settle.get_or_insert(Dur(secs(10))).0;
        let health_timeout = raw.health_timeout.get_or_insert(Dur(secs(60))).0;
        // An empty command is no command.
        raw.health_command = raw.health_command.take().filter(|c| !c.0.is_empty());
        raw.notify_command = raw.notify_command.take().filter(|c| !c.0.is_empty());
        let health_command = raw.health_command.as_ref().map(|c| c.0.clone());
        let notify_command = raw.notify_command.as_ref().map(|c| c.0.clone());
        let rollout_spread = raw.rollout_spread.get_or_insert(Dur(Duration::ZERO)).0;
        let rollout_wave = raw.rollout_wave.map(|w| w.0);
        let host_id = raw.host_id.as_ref().map(|h| h.0.clone());

        let data_dir =
            expand(&mut raw.data_dir, Some(inputs.dirs.data.clone()), home).unwrap_or_default();
        let state_dir =
            expand(&mut raw.state_dir, Some(inputs.dirs.state.clone()), home).unwrap_or_default();
        let cache_dir =
            expand(&mut raw.cache_dir, Some(inputs.dirs.cache.clone()), home).unwrap_or_default();
        let cache_max_size = raw.cache_max_size.get_or_insert(Size(8 << 30)).0;
        let metrics_file = expand(&mut raw.metrics_file, None, home);
        if let Some(path) = &metrics_file
            && let Err(e) = crate::metrics::check_path(path)
        {
            return Err(config_err(format!(
                "`metrics_file` ({}): {e}",
                source("metrics_file")
            )));
        }

        let entries = entries(&raw, &origins, token_entry.as_deref())?;
        Ok(Config {
            forge,
            forge_url,
            repo: repo.0,
            git_url,
            token,
            packages,
            binary,
            bin_dir,
            policy: Policy {
                channel,
                version_req,
                pin,
                min_release_age,
                // This host's place is known only when it runs (see `evaluate`).
                rollout: None,
            },
            http_timeout,
            mode,
            build,
            build_profile,
            toolchain,
            cargo,
            tool_path,
            verify_tag,
            allowed_signers,
            build_timeout,
            retry_pause,
            min_free_space,
            keep_versions,
            service_manager,
            service,
            restart,
            restart_timeout,
            restart_window,
            health_settle,
            health_timeout,
            health_command,
            notify_command,
            rollout_spread,
            rollout_wave,
            host_id,
            data_dir,
            state_dir,
            cache_dir,
            cache_max_size,
            metrics_file,
            ca_file,
            home: home.clone(),
            file,
            searched,
            warnings,
            origins,
            entries,
        })
    }

    /// Where version roots live and the `bin_dir` linked into them.
    pub fn layout(&self) -> crate::layout::Layout {
        crate::layout::Layout::new(&self.data_dir, &self.bin_dir)
    }

    /// Every key, in order, with its effective value (the token redacted; unset keys
    /// with no value) and where it came from.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Where a key's value came from ([`Source::Default`] when nothing set it).
    pub fn source(&self, key: &str) -> Source {
        self.origins
            .get(key)
            .map_or(Source::Default, |o| o.source.clone())
    }

    /// For a key left at its default, a note for messages about its value, e.g.
    /// "(the default; set `repo` to change it)": a person who never set `repo` should
    /// not be left wondering where a repository name came from. `None` when the file,
    /// the environment or a flag set the key.
    pub fn default_note(&self, key: &str) -> Option<String> {
        default_note(&self.origins, key)
    }

    /// The path of the state file.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }

    /// Where the system's own programs are run from.
    pub fn tools(&self) -> crate::tool_path::ToolPath {
        crate::tool_path::ToolPath::new(self.tool_path.clone())
    }
}

/// `tool_path`, `~` expanded (and written back, so `config` shows it), or the default.
/// Who may write its directories is a fact of the machine, not of the configuration: the
/// warnings about it come when a command starts ([`crate::tool_path::ToolPath::warnings`]).
fn tool_path(raw: &mut RawConfig, inputs: &Inputs) -> std::result::Result<Vec<PathBuf>, String> {
    let home = &inputs.dirs.home;
    let dirs: Vec<PathBuf> = match raw.tool_path.take() {
        Some(List(dirs)) => dirs
            .into_iter()
            .map(|d| expand(&mut Some(d), None, home).unwrap_or_default())
            .collect(),
        None => crate::tool_path::ToolPath::default_dirs(inputs.os == Os::MacOs),
    };
    if dirs.is_empty() {
        return Err("must name at least one directory".to_owned());
    }
    raw.tool_path = Some(List(
        dirs.iter()
            .map(|d| PathText(d.display().to_string()))
            .collect(),
    ));
    Ok(dirs)
}

/// `Err(why)` unless `name` can be a cargo profile given to `cargo install --profile`:
/// letters, digits, `-` and `_` (cargo's rule), and not `debug`, which cargo reserves
/// (its development profile is `dev`).
fn check_profile_name(name: &str) -> Result<(), String> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return Err(format!(
            "must be a cargo profile name of letters, digits, - and _; found {name:?}"
        ));
    }
    if name == "debug" {
        return Err(
            "is \"debug\", which cargo reserves: the development profile is \"dev\"".to_owned(),
        );
    }
    Ok(())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn default_note(origins: &BTreeMap<&'static str, Origin>, key: &str) -> Option<String> {
    if origins.contains_key(key) || !keys().contains(&key) {
        return None;
    }
    Some(match key {
        "git_url" => {
            "(the default, derived from `forge_url` and `repo`; set `git_url` to change it)"
                .to_owned()
        }
        _ => format!("(the default; set `{key}` to change it)"),
    })
}

/// The path a key names, `~` expanded (and written back, so `config` shows it); the
/// default when unset.
fn expand(value: &mut Option<PathText>, default: Option<PathBuf>, home: &Path) -> Option<PathBuf> {
    let path = match value.as_ref() {
        Some(PathText(text)) => match text.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None if text == "~" => home.to_path_buf(),
            None => PathBuf::from(text),
        },
        None => default?,
    };
    *value = Some(PathText(path.display().to_string()));
    Some(path)
}

/// Plain `http://` to a host other than this machine: anyone on the way can read and
/// change what is fetched.
fn is_plain_http_remote(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    u.scheme() == "http"
        && match u.host() {
            Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
            Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
            None => false,
        }
}

/// Every key with its effective value and source, in the order of [`keys`]; the token
/// (no key: it comes from the environment or `token_file`) after `token_file`.
fn entries(
    raw: &RawConfig,
    origins: &BTreeMap<&'static str, Origin>,
    token: Option<&str>,
) -> Result<Vec<Entry>> {
    let table = toml::Table::try_from(raw).context("could not show the configuration")?;
    let mut out = Vec::new();
    for key in keys() {
        let value = table.get(*key).cloned();
        out.push(Entry {
            key,
            value: value.as_ref().map(value_text).unwrap_or_default(),
            source: origins
                .get(key)
                .map_or(Source::Default, |o| o.source.clone())
                .to_string(),
            line: origins.get(key).and_then(|o| o.line),
            toml: value,
        });
        if *key == "token_file"
            && let Some(source) = token
        {
            out.push(Entry {
                key: "token",
                value: "<redacted>".to_owned(),
                source: source.to_owned(),
                line: None,
                toml: None,
            });
        }
    }
    Ok(out)
}

/// A value as text: a string as it is, anything else as inline TOML.
fn value_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => toml_inline(other),
    }
}

/// A value as TOML on one line (strings always in double quotes, with escapes).
pub fn toml_inline(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    c if c.is_control() => {
                        let _ = write!(out, "\\u{:04X}", u32::from(c));
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_inline).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// The file's keys, each with its line.
fn file_layer(path: &Path, text: &str) -> Result<Vec<Setting>> {
    let table: BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| {
            let position = e
                .span()
                .map(|span| {
                    let (line, column) = line_and_column(text, span.start);
                    format!(" at line {line}, column {column}")
                })
                .unwrap_or_default();
            config_err(format!(
                "the config file {} is not valid TOML{position}: {}",
                path.display(),
                e.message().trim_end()
            ))
        })?;
    Ok(table
        .into_iter()
        .map(|(key, value)| {
            let line = line_and_column(text, value.span().start).0;
            Setting {
                key,
                value: Given::Toml(value.into_inner()),
                origin: Origin {
                    source: Source::File(path.to_path_buf()),
                    line: Some(line),
                },
            }
        })
        .collect())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `HEPH_SELFUPDATE_<KEY>` variables. The token, the config path and the environment
/// file are read elsewhere; the variables heph-selfupdate gives `notify_command` are
/// information, not configuration (a hook that runs heph-selfupdate passes them back).
fn env_layer(env: &BTreeMap<String, String>) -> Vec<Setting> {
    env.iter()
        .filter(|(name, _)| {
            *name != TOKEN_ENV
                && *name != CONFIG_ENV
                && *name != crate::envvars::ENV_FILE
                && !crate::envvars::HOOK.contains(&name.as_str())
        })
        .filter_map(|(name, value)| {
            let key = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
            Some(text_setting(key, value, Source::Env(name.clone())))
        })
        .collect()
}

/// `--set KEY=VALUE`, the last one of a key winning.
fn flag_layer(sets: &[String]) -> Result<Vec<Setting>> {
    let mut out: Vec<Setting> = Vec::new();
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| config_err(format!("--set {set:?}: expected KEY=VALUE")))?;
        let key = key.trim();
        out.retain(|s| s.key != key);
        out.push(text_setting(key.to_owned(), value, Source::Flag));
    }
    Ok(out)
}

fn text_setting(key: String, value: &str, source: Source) -> Setting {
    let value = value.trim();
    Setting {
        key,
        value: if value.is_empty() {
            Given::Reset
        } else {
            Given::Text(value.to_owned())
        },
        origin: Origin { source, line: None },
    }
}

/// An unknown key is an error that says where it was set and what was probably meant.
fn known_key(setting: &Setting) -> Result<()> {
    if keys().contains(&setting.key.as_str()) {
        return Ok(());
    }
    let key = &setting.key;
    let what = match &setting.origin.source {
        Source::Env(name) => format!("unknown environment variable {name}"),
        Source::Flag => format!("--set: unknown key `{key}`"),
        Source::File(_) | Source::Default => format!("unknown key `{key}` ({})", setting.origin),
    };
    Err(config_err(format!("{what}\nhelp: {}", key_help(key))))
}

fn key_help(key: &str) -> String {
    let known = keys().join(", ");
    match closest_key(key) {
        Some(k) => format!("did you mean `{k}`? Known keys: {known}"),
        None => format!("known keys: {known}"),
    }
}

/// The known key nearest to a misspelt one, if it is near enough.
fn closest_key(key: &str) -> Option<&'static str> {
    keys()
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn problem(p: &Problem) -> anyhow::Error {
    match &p.at {
        Some((key, origin)) if p.unknown_key => config_err(format!(
            "unknown key `{key}` ({origin})\nhelp: {}",
            key_help(key)
        )),
        _ => config_err(p.to_string()),
    }
}

/// Reads the token; warns when the file is readable by group or others.
fn read_token_file(path: &Path) -> Result<(Secret, Option<String>)> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path).map_err(|e| {
        config_err(format!(
            "could not read token_file {}: {e}\nhelp: create it with the token on one line, mode 0600",
            path.display()
        ))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(config_err(format!(
            "token_file {} is empty",
            path.display()
        )));
    }
    let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "token_file {} is readable by other users (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        )
    });
    Ok((Secret::new(token), warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Dirs {
        Dirs {
            home: "/home/u".into(),
            config: "/home/u/.config/heph-selfupdate".into(),
            data: "/home/u/.local/share/heph-selfupdate".into(),
            state: "/home/u/.local/state/heph-selfupdate".into(),
            cache: "/home/u/.cache/heph-selfupdate".into(),
        }
    }

    fn inputs(
        file: Option<&str>,
        env: &[(&str, &str)],
        sets: &[&str],
    ) -> (Inputs, Option<tempfile::TempDir>) {
        let tmp = file.map(|text| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("c.toml"), text).unwrap();
            dir
        });
        let inputs = Inputs {
            config_flag: tmp.as_ref().map(|d| d.path().join("c.toml")),
            sets: sets.iter().map(|s| (*s).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dirs: dirs(),
            os: Os::Linux,
        };
        (inputs, tmp)
    }

    fn load(file: Option<&str>, env: &[(&str, &str)], sets: &[&str]) -> Result<Config> {
        let (i, _tmp) = inputs(file, env, sets);
        Config::load(&i)
    }

    fn source_of(c: &Config, key: &str) -> String {
        c.entries()
            .iter()
            .find(|e| e.key == key)
            .unwrap()
            .source
            .clone()
    }

    #[test]
    fn defaults_match_the_real_deployment() {
        let c = load(None, &[], &[]).unwrap();
        assert_eq!(c.forge, ForgeKind::Forgejo);
        assert_eq!(c.forge_url, "https://forge.eblu.me");
        assert_eq!(c.git_url, "https://forge.eblu.me/eblume/hephaestus.git");
        assert_eq!(c.packages, ["heph", "hephd"]);
        assert_eq!(c.bin_dir, PathBuf::from("/home/u/.cargo/bin"));
        assert_eq!(c.service, "hephd.service");
        assert_eq!(c.build_timeout, Duration::from_secs(90 * 60));
        assert_eq!(c.min_free_space, 2 * 1024 * 1024 * 1024);
        assert_eq!(source_of(&c, "forge"), "default");
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let file = "repo = \"file/repo\"\nchannel = \"prerelease\"\nbinary = \"fromfile\"\n";
        let env = [
            ("HEPH_SELFUPDATE_REPO", "env/repo"),
            ("HEPH_SELFUPDATE_BINARY", "fromenv"),
        ];
        let c = load(Some(file), &env, &["repo=flag/repo"]).unwrap();
        assert_eq!(c.repo, "flag/repo");
        assert_eq!(source_of(&c, "repo"), "flag --set");
        assert_eq!(c.binary, "fromenv");
        assert_eq!(source_of(&c, "binary"), "env HEPH_SELFUPDATE_BINARY");
        assert_eq!(c.policy.channel, Channel::Prerelease);
        assert!(source_of(&c, "channel").starts_with("file "));
        assert_eq!(source_of(&c, "forge"), "default");
    }

    #[test]
    fn forge_changes_the_default_urls() {
        let c = load(None, &[("HEPH_SELFUPDATE_FORGE", "github")], &[]).unwrap();
        assert_eq!(c.forge_url, "https://api.github.com");
        assert_eq!(c.git_url, "https://github.com/eblume/hephaestus.git");
        let c = load(None, &[("HEPH_SELFUPDATE_FORGE", "gitlab")], &[]).unwrap();
        assert_eq!(c.forge_url, "https://gitlab.com");
        assert_eq!(c.git_url, "https://gitlab.com/eblume/hephaestus.git");
    }

    #[test]
    fn lists_in_the_environment_are_comma_separated() {
        let c = load(
            None,
            &[("HEPH_SELFUPDATE_PACKAGES", "heph, hephd,heph-tui")],
            &[],
        )
        .unwrap();
        assert_eq!(c.packages, ["heph", "hephd", "heph-tui"]);
    }

    #[test]
    fn unknown_keys_are_errors_naming_key_and_file() {
        let err = load(Some("forge = \"forgejo\"\nchanel = \"stable\"\n"), &[], &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`chanel`") && msg.contains("c.toml"), "{msg}");
        assert!(err.downcast_ref::<ConfigError>().is_some());
        let err = load(None, &[("HEPH_SELFUPDATE_CHANEL", "x")], &[]).unwrap_err();
        assert!(err.to_string().contains("HEPH_SELFUPDATE_CHANEL"));
        let err = load(None, &[], &["nope=1"]).unwrap_err();
        assert!(err.to_string().contains("`nope`"));
    }

    #[test]
    fn wrong_types_are_errors_naming_key_and_file() {
        let err = load(Some("packages = \"hephd\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`packages`") && err.contains("c.toml") && err.contains("list"),
            "{err}"
        );
        let err = load(Some("keep_versions = \"many\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`keep_versions`"), "{err}");
        let err = load(Some("min_release_age = \"soon\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`min_release_age`") && err.contains("soon"),
            "{err}"
        );
        let err = load(Some("forge = \"sourcehut\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("one of forgejo, gitea, github, gitlab"),
            "{err}"
        );
        let err = load(Some("verify_tag = \"yes please\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`verify_tag`"), "{err}");
        let err = load(Some("this is not toml"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid TOML"), "{err}");
    }

    #[test]
    fn durations_sizes_and_requirements_parse() {
        let file = "min_release_age = \"2d\"\nhttp_timeout = 5\nmin_free_space = \"500MiB\"\nversion_req = \"~1.10\"\npin = \"v1.8.1\"\n";
        let c = load(Some(file), &[], &[]).unwrap();
        assert_eq!(c.policy.min_release_age, Duration::from_secs(2 * 86_400));
        assert_eq!(c.http_timeout, Duration::from_secs(5));
        assert_eq!(c.min_free_space, 500 * 1024 * 1024);
        assert_eq!(c.policy.version_req.unwrap().to_string(), "~1.10");
        assert_eq!(c.policy.pin.unwrap().to_string(), "1.8.1");
        let c = load(None, &[], &[]).unwrap();
        assert!(c.policy.version_req.is_none(), "* means no requirement");
    }

    #[test]
    fn relative_paths_are_refused_and_tilde_expands() {
        let err = load(Some("bin_dir = \"bin\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute"), "{err}");
        let c = load(Some("bin_dir = \"~/bin\"\n"), &[], &[]).unwrap();
        assert_eq!(c.bin_dir, PathBuf::from("/home/u/bin"));
    }

    #[test]
    fn tool_path_defaults_to_the_systems_directories_and_expands_a_home() {
        let c = load(None, &[], &[]).unwrap();
        assert_eq!(
            c.tool_path[..3],
            ["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from)
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = load(
            None,
            &[("HEPH_SELFUPDATE_TOOL_PATH", "/opt/git/bin, ~/.cargo/bin")],
            &[],
        )
        .unwrap();
        assert_eq!(
            c.tool_path,
            [
                PathBuf::from("/opt/git/bin"),
                PathBuf::from("/home/u/.cargo/bin")
            ]
        );
        let err = load(Some("tool_path = []\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`tool_path`") && err.contains("at least one"),
            "{err}"
        );
        let err = load(Some("tool_path = [\"bin\"]\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute"), "{err}");
    }

    #[test]
    fn urls_with_credentials_are_refused_and_not_echoed() {
        let err = load(
            None,
            &[],
            &["git_url=https://bob:s3cret@forge.example/x.git"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("credentials") && !err.contains("s3cret"),
            "{err}"
        );
        let err = load(None, &[], &["forge_url=https://tok@forge.example"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("credentials"), "{err}");
        let err = load(None, &[], &["git_url=git@forge.example:o/r.git"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssh://"), "{err}");
        assert!(
            load(
                None,
                &[],
                &["git_url=ssh://forgejo@forge.example:2222/o/r.git"]
            )
            .is_ok()
        );
        let err = load(None, &[], &["forge_url=ftp://x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://"), "{err}");
    }

    #[test]
    fn names_that_could_become_options_are_refused() {
        assert!(load(None, &[], &["packages=--locked"]).is_err());
        assert!(load(None, &[], &["binary=../hephd"]).is_err());
        assert!(load(None, &[], &["service=-hephd.service"]).is_err());
        assert!(load(None, &[], &["repo=../../etc"]).is_err());
        assert!(load(None, &[], &["toolchain=-Zfoo"]).is_err());
    }

    #[test]
    fn the_token_comes_from_the_environment_and_is_redacted() {
        let c = load(None, &[(TOKEN_ENV, "s3cret")], &[]).unwrap();
        assert_eq!(c.token.as_ref().unwrap().expose(), "s3cret");
        let shown = serde_json::to_string(c.entries()).unwrap();
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn a_token_file_readable_by_others_warns() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tf = dir.path().join("token");
        std::fs::write(&tf, "abc\n").unwrap();
        std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let set = format!("token_file={}", tf.display());
        let c = load(None, &[], &[&set]).unwrap();
        assert_eq!(c.token.unwrap().expose(), "abc");
        assert!(c.warnings[0].contains("chmod 600"), "{:?}", c.warnings);
        std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = load(None, &[], &[&set]).unwrap();
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn verify_tag_needs_signers_and_works_in_both_build_modes() {
        let err = load(None, &[], &["verify_tag=true"]).unwrap_err();
        assert!(err.to_string().contains("allowed_signers"), "{err}");
        for build in ["build=git", "build=checkout"] {
            assert!(
                load(
                    None,
                    &[],
                    &["verify_tag=true", "allowed_signers=/etc/signers", build]
                )
                .is_ok(),
                "{build}"
            );
        }
    }

    #[test]
    fn macos_defaults_to_launchd() {
        let (mut i, _t) = inputs(None, &[], &[]);
        i.os = Os::MacOs;
        let c = Config::load(&i).unwrap();
        assert_eq!(c.service_manager, ServiceManagerKind::Launchd);
        assert_eq!(c.service, "mcquack.eblume.heph");
    }

    #[test]
    fn an_explicit_config_file_that_is_missing_is_an_error() {
        let (mut i, _t) = inputs(None, &[], &[]);
        i.config_flag = Some("/nonexistent/heph.toml".into());
        assert!(
            Config::load(&i)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/heph.toml")
        );
    }

    #[test]
    fn a_string_where_a_number_belongs_is_an_error_naming_key_file_and_type() {
        let err = load(Some("repo = \"o/r\"\nkeep_versions = \"3\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`keep_versions`")
                && err.contains("c.toml, line 2")
                && err.contains("a whole number")
                && err.contains("\"3\""),
            "{err}"
        );
        let err = load(Some("rollout_wave = \"0.5\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`rollout_wave`") && err.contains("number"),
            "{err}"
        );
        // In the environment everything is text: there "3" is the number 3.
        let c = load(None, &[("HEPH_SELFUPDATE_KEEP_VERSIONS", "3")], &[]).unwrap();
        assert_eq!(c.keep_versions, 3);
    }

    #[test]
    fn a_wrong_value_is_an_error_even_where_a_higher_layer_overrides_it() {
        let err = load(
            Some("http_timeout = \"soon\"\n"),
            &[("HEPH_SELFUPDATE_HTTP_TIMEOUT", "5s")],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`http_timeout`") && err.contains("c.toml"),
            "{err}"
        );
    }

    #[test]
    fn toml_errors_say_line_and_column() {
        let err = load(Some("repo = \"o/r\"\n\nforge = forgejo\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.toml is not valid TOML at line 3, column 9: "),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_suggests_the_nearest_known_one() {
        let err = load(Some("chanel = \"stable\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `channel`?"), "{err}");
        let err = load(None, &[], &["zzzzzz=1"]).unwrap_err().to_string();
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn an_empty_environment_value_puts_a_key_back_to_its_default() {
        let file = "pin = \"1.2.3\"\nrepo = \"o/file\"\n";
        let env = [("HEPH_SELFUPDATE_PIN", ""), ("HEPH_SELFUPDATE_REPO", " ")];
        let c = load(Some(file), &env, &[]).unwrap();
        assert!(c.policy.pin.is_none());
        assert_eq!(c.repo, "eblume/hephaestus");
        assert_eq!(c.source("repo"), Source::Default);
        let c = load(Some(file), &[], &["pin="]).unwrap();
        assert!(c.policy.pin.is_none());
    }

    #[test]
    fn hook_variables_are_never_configuration() {
        let env = [
            ("HEPH_SELFUPDATE_EVENT", "updated"),
            ("HEPH_SELFUPDATE_FROM", "1.0.0"),
            ("HEPH_SELFUPDATE_TO", "1.1.0"),
            ("HEPH_SELFUPDATE_MESSAGE", "updated hephd"),
        ];
        let c = load(None, &env, &[]).unwrap();
        assert!(
            c.entries()
                .iter()
                .all(|e| !["event", "from", "to", "message"].contains(&e.key))
        );
    }

    #[test]
    fn plain_http_to_another_host_warns_and_loopback_does_not() {
        let c = load(None, &[], &["forge_url=http://forge.example"]).unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("`forge_url` http://forge.example is plain http"));
        assert!(
            c.warnings[1].contains("`git_url` http://forge.example/eblume/hephaestus.git")
                && c.warnings[1].contains("derived from `forge_url` and `repo`"),
            "{:?}",
            c.warnings
        );
        let c = load(None, &[], &["git_url=http://git.example/o/r.git"]).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("source code"));
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:9",
        ] {
            let c = load(None, &[], &[&format!("forge_url={url}")]).unwrap();
            assert!(c.warnings.is_empty(), "{url}: {:?}", c.warnings);
        }
        assert!(load(None, &[], &[]).unwrap().warnings.is_empty());
    }

    #[test]
    fn ssh_urls_with_a_host_or_user_like_an_option_are_refused() {
        for url in [
            "ssh://-oProxyCommand=touch%20/tmp/pwned/o/r.git",
            "ssh://git@-oProxyCommand=x/o/r.git",
            "ssh://-l@forge.example/o/r.git",
        ] {
            let err = load(None, &[], &[&format!("git_url={url}")]).unwrap_err();
            assert!(err.downcast_ref::<ConfigError>().is_some());
            assert!(err.to_string().contains("`git_url` (flag --set)"), "{err}");
        }
    }

    #[test]
    fn new_keys_have_their_defaults() {
        let c = load(None, &[], &[]).unwrap();
        assert_eq!(c.restart_timeout, Duration::from_secs(180));
        assert_eq!(c.restart, RestartMethod::Manager);
        assert_eq!(c.rollout_spread, Duration::ZERO);
        assert_eq!(c.rollout_wave, None);
        assert_eq!(c.host_id, None);
        assert!(c.restart_window.is_empty());
        assert_eq!(c.metrics_file, None);
        assert_eq!(c.cache_max_size, 8 << 30);
        assert_eq!(c.ca_file, None);
    }

    #[test]
    fn new_keys_are_read_and_checked() {
        let file = "restart = \"respawn\"\nrestart_timeout = \"30s\"\nrollout_spread = \"6h\"\nrollout_wave = 0.5\nhost_id = \"laptop 7\"\nrestart_window = [\"Mon..Fri 02:00-05:00\", \"Sat,Sun 10:00-12:00\"]\nmetrics_file = \"~/metrics.prom\"\ncache_max_size = \"500MiB\"\nca_file = \"/etc/ssl/forge.pem\"\n";
        let c = load(Some(file), &[], &[]).unwrap();
        assert_eq!(c.restart, RestartMethod::Respawn);
        assert_eq!(c.restart_timeout, Duration::from_secs(30));
        assert_eq!(c.rollout_spread, Duration::from_secs(6 * 3600));
        assert_eq!(c.rollout_wave, Some(0.5));
        assert_eq!(c.host_id.as_deref(), Some("laptop 7"));
        assert_eq!(
            c.restart_window,
            ["Mon..Fri 02:00-05:00", "Sat,Sun 10:00-12:00"]
        );
        assert_eq!(c.metrics_file, Some(PathBuf::from("/home/u/metrics.prom")));
        assert_eq!(c.cache_max_size, 500 << 20);
        assert_eq!(c.ca_file, Some(PathBuf::from("/etc/ssl/forge.pem")));

        let c = load(
            None,
            &[(
                "HEPH_SELFUPDATE_RESTART_WINDOW",
                "Mon..Fri 02:00-05:00; Sat,Sun 10:00-12:00",
            )],
            &["rollout_wave=0"],
        )
        .unwrap();
        assert_eq!(
            c.restart_window,
            ["Mon..Fri 02:00-05:00", "Sat,Sun 10:00-12:00"]
        );
        assert_eq!(c.rollout_wave, Some(0.0));

        for (set, needle) in [
            ("restart_timeout=0s", "more than 0s"),
            ("restart=kill", "one of manager, respawn"),
            ("rollout_wave=1", "up to but not including 1"),
            ("rollout_wave=-0.1", "from 0"),
            ("rollout_wave=NaN", "from 0"),
            ("host_id=caf\u{e9}", "printable ASCII"),
            ("metrics_file=metrics.prom", "absolute"),
            ("ca_file=certs/ca.pem", "absolute"),
            ("cache_max_size=lots", "a size"),
            ("rollout_spread=later", "a duration"),
        ] {
            let key = set.split('=').next().unwrap();
            let err = load(None, &[], &[set]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{key}` (flag --set)")) && err.contains(needle),
                "{set}: {err}"
            );
        }
        let long = format!("host_id={}", "h".repeat(129));
        assert!(load(None, &[], &[&long]).is_err());
    }

    #[test]
    fn build_profile_is_release_unless_set_and_must_be_a_cargo_profile_name() {
        assert_eq!(load(None, &[], &[]).unwrap().build_profile, "release");
        let c = load(Some("build_profile = \"quick-release\"\n"), &[], &[]).unwrap();
        assert_eq!(c.build_profile, "quick-release");
        let c = load(None, &[("HEPH_SELFUPDATE_BUILD_PROFILE", "dev")], &[]).unwrap();
        assert_eq!(c.build_profile, "dev");
        for (set, needle) in [
            ("build_profile=debug", "the development profile is \"dev\""),
            ("build_profile=fast.release", "letters, digits, - and _"),
            ("build_profile=-Zfoo", "a name"),
        ] {
            let err = load(None, &[], &[set]).unwrap_err().to_string();
            assert!(
                err.contains("`build_profile` (flag --set)") && err.contains(needle),
                "{set}: {err}"
            );
        }
    }

    #[test]
    fn a_key_left_at_its_default_says_so_and_which_key_changes_it() {
        let c = load(None, &[("HEPH_SELFUPDATE_REPO", "o/r")], &[]).unwrap();
        assert_eq!(
            c.default_note("forge_url").as_deref(),
            Some("(the default; set `forge_url` to change it)")
        );
        assert!(
            c.default_note("git_url")
                .unwrap()
                .contains("derived from `forge_url` and `repo`")
        );
        assert_eq!(c.default_note("repo"), None);
        assert_eq!(c.default_note("no_such_key"), None);
        assert_eq!(
            c.default_note("build").as_deref(),
            Some("(the default; set `build` to change it)")
        );
        let err = load(None, &[], &["repo=group/sub/name"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gitlab") && err.contains("(the default; set `forge` to change it)"),
            "{err}"
        );
        let c = load(None, &[], &["forge=gitlab", "repo=group/sub/name"]).unwrap();
        assert_eq!(c.repo, "group/sub/name");
    }

    #[test]
    fn every_key_is_shown_in_order_with_values_in_their_normal_form() {
        let c = load(
            Some("min_release_age = 90\nmin_free_space = 2147483648\n"),
            &[],
            &[],
        )
        .unwrap();
        let shown: Vec<&str> = c
            .entries()
            .iter()
            .map(|e| e.key)
            .filter(|k| *k != "token")
            .collect();
        assert_eq!(shown, keys());
        let entry = |key: &str| c.entries().iter().find(|e| e.key == key).unwrap().clone();
        assert_eq!(entry("min_release_age").value, "1m 30s");
        assert_eq!(entry("min_free_space").value, "2 GiB");
        assert_eq!(entry("build_timeout").value, "1h 30m");
        assert_eq!(entry("packages").value, "[\"heph\", \"hephd\"]");
        assert_eq!(entry("pin").toml, None);
        assert_eq!(entry("pin").value, "");
        assert_eq!(entry("pin").source, "default");
    }

    #[test]
    fn the_effective_values_read_back_as_a_file_give_the_same_configuration() {
        let file = "repo = \"o/r\"\npackages = [\"heph\", \"hephd\", \"heph-tui\"]\nmin_release_age = \"2d\"\nhealth_command = [\"heph\", \"status\"]\nbin_dir = \"~/bin\"\n";
        let env = [("HEPH_SELFUPDATE_HTTP_TIMEOUT", "90")];
        let c = load(
            Some(file),
            &env,
            &["restart_window=Mon 01:00-02:00; Tue 03:00-04:00"],
        )
        .unwrap();
        let text: String = c
            .entries()
            .iter()
            .filter_map(|e| Some(format!("{} = {}\n", e.key, toml_inline(e.toml.as_ref()?))))
            .collect();
        let again = load(Some(&text), &[], &[]).unwrap();
        let values = |c: &Config| {
            c.entries()
                .iter()
                .map(|e| (e.key, e.value.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(values(&c), values(&again));
    }

    #[test]
    fn strings_are_written_as_toml_that_reads_back() {
        for s in [
            "plain",
            "quote \" and \\ backslash",
            "tab\tnew\nline",
            "del \u{7f} nul \u{0}",
            "é ü",
        ] {
            let line = format!("k = {}\n", toml_inline(&toml::Value::String(s.into())));
            let table: toml::Table = line.parse().unwrap();
            assert_eq!(table["k"].as_str(), Some(s), "{line}");
        }
    }
}
