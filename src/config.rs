//! The effective configuration: flags > environment > file > defaults, read once.
//!
//! Every value remembers where it came from, so `config`, `status` and `doctor` can show
//! it. Unknown keys and wrong types are errors that name the key and the place.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use semver::{Version, VersionReq};

use crate::build::BuildMode;
use crate::forge::ForgeKind;
use crate::policy::{Channel, Policy};
use crate::secret::Secret;
use crate::service::ServiceManagerKind;
use crate::version::parse_tag;

pub use crate::envvars::{CONFIG as CONFIG_ENV, PREFIX as ENV_PREFIX, TOKEN as TOKEN_ENV};

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

/// The value types keys can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    List,
    Argv,
    Bool,
    Int,
    Duration,
    Size,
    Path,
}

/// Every key the file, the environment and `--set` accept, with its one-line meaning.
pub const KEYS: &[(&str, &str)] = &[
    ("forge", "forgejo | gitea | github | gitlab"),
    ("forge_url", "base URL of the forge (API root for GitHub)"),
    ("repo", "owner/name of the hephd repository"),
    ("git_url", "URL cargo and git fetch the source from"),
    (
        "token_file",
        "file holding an API token (or set HEPH_SELFUPDATE_TOKEN)",
    ),
    ("packages", "packages to install, in order"),
    ("binary", "binary whose --version says what is installed"),
    ("bin_dir", "where the binaries the service runs live"),
    ("channel", "stable | prerelease"),
    (
        "version_req",
        "semver requirement an update must meet, e.g. ~1.10",
    ),
    ("pin", "exact version to converge to, also downward"),
    ("min_release_age", "a release younger than this waits"),
    ("http_timeout", "time limit of one forge request"),
    ("mode", "apply | notify"),
    ("build", "git | checkout"),
    ("toolchain", "RUSTUP_TOOLCHAIN for the build"),
    (
        "cargo",
        "path of cargo (default: PATH, then ~/.cargo/bin/cargo)",
    ),
    (
        "verify_tag",
        "checkout builds: require a good tag signature",
    ),
    ("allowed_signers", "ssh allowed-signers file for verify_tag"),
    ("build_timeout", "time limit of one build"),
    (
        "retry_pause",
        "pause before retrying a failed fetch (doubles each time)",
    ),
    ("min_free_space", "free disk space needed before building"),
    ("keep_versions", "how many version roots to keep"),
    (
        "service_manager",
        "systemd-user | systemd-system | launchd | none",
    ),
    ("service", "unit name or launchd label of the daemon"),
    (
        "restart_timeout",
        "time limit of the service manager's restart command",
    ),
    ("health_settle", "how long the new daemon must stay up"),
    ("health_timeout", "time limit for the new daemon to come up"),
    ("health_command", "command that must exit 0 when healthy"),
    (
        "notify_command",
        "command run after an update, notice or failure",
    ),
    ("data_dir", "where version roots live"),
    ("state_dir", "where the state file, lock and logs live"),
    ("cache_dir", "where the HTTP cache and the checkout live"),
];

fn kind_of(key: &str) -> Kind {
    match key {
        "packages" => Kind::List,
        "health_command" | "notify_command" => Kind::Argv,
        "verify_tag" => Kind::Bool,
        "keep_versions" => Kind::Int,
        "min_release_age" | "http_timeout" | "build_timeout" | "health_settle"
        | "health_timeout" | "restart_timeout" => Kind::Duration,
        "min_free_space" => Kind::Size,
        "token_file" | "bin_dir" | "cargo" | "allowed_signers" | "data_dir" | "state_dir"
        | "cache_dir" => Kind::Path,
        _ => Kind::Text,
    }
}

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

/// One line of `heph-selfupdate config`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub key: &'static str,
    pub value: String,
    pub source: String,
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
    pub toolchain: Option<String>,
    pub cargo: Option<PathBuf>,
    pub verify_tag: bool,
    pub allowed_signers: Option<PathBuf>,
    pub build_timeout: Duration,
    pub retry_pause: Duration,
    pub min_free_space: u64,
    pub keep_versions: usize,
    pub service_manager: ServiceManagerKind,
    pub service: String,
    pub restart_timeout: Duration,
    pub health_settle: Duration,
    pub health_timeout: Duration,
    pub health_command: Option<Vec<String>>,
    pub notify_command: Option<Vec<String>>,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub home: PathBuf,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Things the user should know (e.g. a token file others can read).
    pub warnings: Vec<String>,
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

    /// Resolves the configuration with `text` as the file's content (`None`: no file).
    pub fn from_text(inputs: &Inputs, path: &Path, text: Option<&str>) -> Result<Self> {
        let file = match text {
            Some(t) => Some((path.to_path_buf(), parse_file(path, t)?)),
            None => None,
        };
        let mut r = Resolver::new(inputs, file)?;
        r.build(inputs)
    }

    /// Each key's effective value (secrets redacted) and where it came from.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The path of the state file.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
}

fn parse_file(path: &Path, text: &str) -> Result<toml::Table> {
    text.parse().map_err(|e: toml::de::Error| {
        config_err(format!(
            "the config file {} is not valid TOML: {}",
            path.display(),
            e.message()
        ))
    })
}

enum Raw {
    Text(String),
    Toml(toml::Value),
}

struct Layer {
    source: Source,
    values: BTreeMap<String, Raw>,
}

struct Resolver {
    layers: Vec<Layer>,
    home: PathBuf,
    entries: Vec<Entry>,
    file: Option<PathBuf>,
}

fn is_key(key: &str) -> bool {
    KEYS.iter().any(|(k, _)| *k == key)
}

impl Resolver {
    fn new(inputs: &Inputs, file: Option<(PathBuf, toml::Table)>) -> Result<Self> {
        let mut flags = BTreeMap::new();
        for set in &inputs.sets {
            let (k, v) = set
                .split_once('=')
                .ok_or_else(|| config_err(format!("--set {set:?}: expected KEY=VALUE")))?;
            let k = k.trim();
            if !is_key(k) {
                return Err(config_err(format!(
                    "--set: unknown key `{k}`\nhelp: known keys: {}",
                    known()
                )));
            }
            flags.insert(k.to_owned(), Raw::Text(v.to_owned()));
        }
        let mut env = BTreeMap::new();
        for (name, value) in &inputs.env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if name == TOKEN_ENV || name == CONFIG_ENV {
                continue;
            }
            let key = rest.to_ascii_lowercase();
            if !is_key(&key) {
                return Err(config_err(format!(
                    "unknown environment variable {name}\nhelp: known keys: {}",
                    known()
                )));
            }
            env.insert(key, (name.clone(), value.clone()));
        }
        let mut layers = vec![Layer {
            source: Source::Flag,
            values: flags,
        }];
        // One layer per variable keeps each value's own name as its source.
        for (key, (name, value)) in env {
            layers.push(Layer {
                source: Source::Env(name),
                values: BTreeMap::from([(key, Raw::Text(value))]),
            });
        }
        let file_path = file.as_ref().map(|(p, _)| p.clone());
        if let Some((path, table)) = file {
            let mut values = BTreeMap::new();
            for (k, v) in table {
                if !is_key(&k) {
                    return Err(config_err(format!(
                        "unknown key `{k}` in {}\nhelp: known keys: {}",
                        path.display(),
                        known()
                    )));
                }
                values.insert(k, Raw::Toml(v));
            }
            layers.push(Layer {
                source: Source::File(path),
                values,
            });
        }
        Ok(Self {
            layers,
            home: inputs.dirs.home.clone(),
            entries: Vec::new(),
            file: file_path,
        })
    }

    fn raw(&self, key: &str) -> Option<(&Raw, &Source)> {
        self.layers
            .iter()
            .find_map(|l| l.values.get(key).map(|v| (v, &l.source)))
    }

    fn record(&mut self, key: &'static str, value: String, source: &Source) {
        self.entries.push(Entry {
            key,
            value,
            source: source.to_string(),
        });
    }

    /// The raw value as text, list or bool, checked against the key's kind.
    fn get(&self, key: &'static str) -> Result<Option<(Value, Source)>> {
        let Some((raw, source)) = self.raw(key) else {
            return Ok(None);
        };
        let kind = kind_of(key);
        let wrong = |want: &str| config_err(format!("`{key}` ({source}) must be {want}"));
        let value = match (raw, kind) {
            (Raw::Text(s), Kind::List) => Value::List(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            (Raw::Text(s), Kind::Argv) => {
                Value::List(s.split_whitespace().map(String::from).collect())
            }
            (Raw::Text(s), Kind::Bool) => match s.trim() {
                "true" | "1" | "yes" => Value::Bool(true),
                "false" | "0" | "no" => Value::Bool(false),
                _ => return Err(wrong("true or false")),
            },
            (Raw::Text(s), _) => Value::Text(s.trim().to_owned()),
            (
                Raw::Toml(toml::Value::String(s)),
                Kind::Text | Kind::Duration | Kind::Size | Kind::Path | Kind::Int,
            ) => Value::Text(s.clone()),
            (Raw::Toml(toml::Value::Integer(i)), Kind::Int | Kind::Duration | Kind::Size) => {
                Value::Text(i.to_string())
            }
            (Raw::Toml(toml::Value::Boolean(b)), Kind::Bool) => Value::Bool(*b),
            (Raw::Toml(toml::Value::Array(items)), Kind::List | Kind::Argv) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => out.push(s.clone()),
                        _ => return Err(wrong("a list of strings")),
                    }
                }
                Value::List(out)
            }
            (Raw::Toml(_), Kind::List | Kind::Argv) => return Err(wrong("a list of strings")),
            (Raw::Toml(_), Kind::Bool) => return Err(wrong("true or false")),
            (Raw::Toml(_), Kind::Int) => return Err(wrong("a whole number")),
            (Raw::Toml(_), Kind::Duration) => {
                return Err(wrong("a duration such as \"90s\", \"10min\", \"2d\""));
            }
            (Raw::Toml(_), Kind::Size) => return Err(wrong("a size such as \"2GiB\"")),
            (Raw::Toml(_), Kind::Text | Kind::Path) => return Err(wrong("a string")),
        };
        Ok(Some((value, source.clone())))
    }

    fn text(&mut self, key: &'static str, default: &str) -> Result<String> {
        Ok(self.opt_text(key)?.unwrap_or_else(|| {
            self.record(key, default.to_owned(), &Source::Default);
            default.to_owned()
        }))
    }

    fn opt_text(&mut self, key: &'static str) -> Result<Option<String>> {
        match self.get(key)? {
            Some((Value::Text(s), src)) if !s.is_empty() => {
                self.record(key, s.clone(), &src);
                Ok(Some(s))
            }
            Some((Value::Text(_), _)) | None => Ok(None),
            Some(_) => Err(config_err(format!("`{key}` must be a string"))),
        }
    }

    fn list(&mut self, key: &'static str, default: &[&str]) -> Result<Vec<String>> {
        match self.get(key)? {
            Some((Value::List(items), src)) => {
                self.record(key, items.join(", "), &src);
                Ok(items)
            }
            Some(_) => Err(config_err(format!("`{key}` must be a list of strings"))),
            None => {
                self.record(key, default.join(", "), &Source::Default);
                Ok(default.iter().map(|s| (*s).to_owned()).collect())
            }
        }
    }

    fn argv(&mut self, key: &'static str) -> Result<Option<Vec<String>>> {
        match self.get(key)? {
            Some((Value::List(items), src)) if !items.is_empty() => {
                self.record(key, format!("{items:?}"), &src);
                Ok(Some(items))
            }
            Some((Value::List(_), _)) | None => Ok(None),
            Some(_) => Err(config_err(format!("`{key}` must be a list of strings"))),
        }
    }

    fn boolean(&mut self, key: &'static str, default: bool) -> Result<bool> {
        match self.get(key)? {
            Some((Value::Bool(b), src)) => {
                self.record(key, b.to_string(), &src);
                Ok(b)
            }
            Some(_) => Err(config_err(format!("`{key}` must be true or false"))),
            None => {
                self.record(key, default.to_string(), &Source::Default);
                Ok(default)
            }
        }
    }

    fn parsed<T>(
        &mut self,
        key: &'static str,
        default: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T> {
        let (text, src) = match self.get(key)? {
            Some((Value::Text(s), src)) => (s, src),
            Some(_) => return Err(config_err(format!("`{key}` must be {what}"))),
            None => (default.to_owned(), Source::Default),
        };
        let value = parse(&text)
            .ok_or_else(|| config_err(format!("`{key}` ({src}) must be {what}; found {text:?}")))?;
        self.record(key, text, &src);
        Ok(value)
    }

    fn duration(&mut self, key: &'static str, default: &str) -> Result<Duration> {
        self.parsed(
            key,
            default,
            "a duration such as \"90s\", \"10min\", \"2d\"",
            |s| {
                s.parse::<u64>()
                    .ok()
                    .map(Duration::from_secs)
                    .or_else(|| humantime::parse_duration(s).ok())
            },
        )
    }

    fn path(&mut self, key: &'static str, default: Option<PathBuf>) -> Result<Option<PathBuf>> {
        let (text, src) = match self.get(key)? {
            Some((Value::Text(s), src)) if !s.is_empty() => (s, src),
            Some((Value::Text(_), _)) | None => {
                if let Some(d) = &default {
                    self.record(key, d.display().to_string(), &Source::Default);
                }
                return Ok(default);
            }
            Some(_) => return Err(config_err(format!("`{key}` must be a path"))),
        };
        let expanded = match text.strip_prefix("~/") {
            Some(rest) => self.home.join(rest),
            None if text == "~" => self.home.clone(),
            None => PathBuf::from(&text),
        };
        if !expanded.is_absolute() {
            return Err(config_err(format!(
                "`{key}` ({src}) must be an absolute path (or start with ~/); found {text:?}\nhelp: services run from an unpredictable working directory"
            )));
        }
        self.record(key, expanded.display().to_string(), &src);
        Ok(Some(expanded))
    }

    fn choice<T: Copy>(
        &mut self,
        key: &'static str,
        default: &str,
        options: &[(&str, T)],
    ) -> Result<T> {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let what = format!("one of {}", names.join(", "));
        self.parsed(key, default, &what, |s| {
            options.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
        })
    }

    fn build(&mut self, inputs: &Inputs) -> Result<Config> {
        let forge = self.choice(
            "forge",
            "forgejo",
            &[
                ("forgejo", ForgeKind::Forgejo),
                ("gitea", ForgeKind::Gitea),
                ("github", ForgeKind::GitHub),
                ("gitlab", ForgeKind::GitLab),
            ],
        )?;
        let forge_url = self.text("forge_url", forge.default_url())?;
        let forge_url = validate_http_url("forge_url", &forge_url)?;
        let repo = self.text("repo", "eblume/hephaestus")?;
        validate_repo(&repo, forge)?;
        let git_url = if let Some(u) = self.opt_text("git_url")? {
            u
        } else {
            let derived = forge.git_url(&forge_url, &repo);
            self.record("git_url", derived.clone(), &Source::Default);
            derived
        };
        validate_git_url(&git_url)?;

        let token_file = self.path("token_file", None)?;
        let mut warnings = Vec::new();
        let token = match inputs.env.get(TOKEN_ENV).filter(|t| !t.trim().is_empty()) {
            Some(t) => {
                self.record("token", "<redacted>".into(), &Source::Env(TOKEN_ENV.into()));
                Some(Secret::new(t.trim()))
            }
            None => match &token_file {
                Some(path) => {
                    let (token, warning) = read_token_file(path)?;
                    warnings.extend(warning);
                    self.entries.push(Entry {
                        key: "token",
                        value: "<redacted>".into(),
                        source: "token_file".into(),
                    });
                    Some(token)
                }
                None => None,
            },
        };

        let packages = self.list("packages", &["heph", "hephd"])?;
        if packages.is_empty() {
            return Err(config_err("`packages` must name at least one package"));
        }
        for p in &packages {
            validate_name("packages", p)?;
        }
        let binary = self.text("binary", "hephd")?;
        validate_name("binary", &binary)?;
        let bin_dir = self
            .path("bin_dir", Some(inputs.dirs.home.join(".cargo/bin")))?
            .unwrap_or_default();

        let channel = self.choice(
            "channel",
            "stable",
            &[
                ("stable", Channel::Stable),
                ("prerelease", Channel::Prerelease),
            ],
        )?;
        let version_req = self.parsed(
            "version_req",
            "*",
            "a semver requirement such as \"~1.10\" or \"<2\"",
            |s| VersionReq::parse(s).ok(),
        )?;
        let version_req = (version_req != VersionReq::STAR).then_some(version_req);
        let pin = match self.opt_text("pin")? {
            Some(p) => Some(parse_pin(&p)?),
            None => None,
        };
        let min_release_age = self.duration("min_release_age", "0s")?;
        let http_timeout = self.duration("http_timeout", "30s")?;
        if http_timeout.is_zero() {
            return Err(config_err("`http_timeout` must be more than 0s"));
        }

        let mode = self.choice(
            "mode",
            "apply",
            &[("apply", Mode::Apply), ("notify", Mode::Notify)],
        )?;
        let build = self.choice(
            "build",
            "git",
            &[("git", BuildMode::Git), ("checkout", BuildMode::Checkout)],
        )?;
        let toolchain = self.opt_text("toolchain")?;
        if let Some(t) = &toolchain {
            validate_name("toolchain", t)?;
        }
        let cargo = self.path("cargo", None)?;
        let verify_tag = self.boolean("verify_tag", false)?;
        let allowed_signers = self.path("allowed_signers", None)?;
        if verify_tag && allowed_signers.is_none() {
            return Err(config_err(
                "`verify_tag = true` needs `allowed_signers` (an ssh allowed-signers file)",
            ));
        }
        if verify_tag && build != BuildMode::Checkout {
            return Err(config_err(
                "`verify_tag` works with `build = \"checkout\"` only (cargo's --git cannot verify signatures)",
            ));
        }
        let build_timeout = self.duration("build_timeout", "90min")?;
        let retry_pause = self.duration("retry_pause", "10s")?;
        let min_free_space =
            self.parsed("min_free_space", "2GiB", "a size such as \"2GiB\"", |s| {
                s.parse::<u64>()
                    .ok()
                    .or_else(|| s.parse::<bytesize::ByteSize>().ok().map(|b| b.as_u64()))
            })?;
        let keep_versions =
            self.parsed("keep_versions", "2", "a whole number of at least 1", |s| {
                s.parse::<usize>().ok().filter(|n| *n >= 1)
            })?;
        let default_manager = match inputs.os {
            Os::MacOs => "launchd",
            Os::Linux | Os::Other => "systemd-user",
        };
        let service_manager = self.choice(
            "service_manager",
            default_manager,
            &[
                ("systemd-user", ServiceManagerKind::SystemdUser),
                ("systemd-system", ServiceManagerKind::SystemdSystem),
                ("launchd", ServiceManagerKind::Launchd),
                ("none", ServiceManagerKind::None),
            ],
        )?;
        let service = self.text("service", service_manager.default_service())?;
        validate_service(&service)?;
        let restart_timeout = self.duration("restart_timeout", "3min")?;
        if restart_timeout.is_zero() {
            return Err(config_err("`restart_timeout` must be more than 0s"));
        }
        let health_settle = self.duration("health_settle", "10s")?;
        let health_timeout = self.duration("health_timeout", "60s")?;
        let health_command = self.argv("health_command")?;
        let notify_command = self.argv("notify_command")?;
        let data_dir = self
            .path("data_dir", Some(inputs.dirs.data.clone()))?
            .unwrap_or_default();
        let state_dir = self
            .path("state_dir", Some(inputs.dirs.state.clone()))?
            .unwrap_or_default();
        let cache_dir = self
            .path("cache_dir", Some(inputs.dirs.cache.clone()))?
            .unwrap_or_default();

        Ok(Config {
            forge,
            forge_url,
            repo,
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
            },
            http_timeout,
            mode,
            build,
            toolchain,
            cargo,
            verify_tag,
            allowed_signers,
            build_timeout,
            retry_pause,
            min_free_space,
            keep_versions,
            service_manager,
            service,
            restart_timeout,
            health_settle,
            health_timeout,
            health_command,
            notify_command,
            data_dir,
            state_dir,
            cache_dir,
            home: inputs.dirs.home.clone(),
            file: self.file.clone(),
            warnings,
            entries: std::mem::take(&mut self.entries),
        })
    }
}

enum Value {
    Text(String),
    List(Vec<String>),
    Bool(bool),
}

fn known() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

fn parse_pin(text: &str) -> Result<Version> {
    parse_tag(text).map_err(|e| {
        config_err(format!(
            "`pin` must be a version such as 1.8.1 or v1.8.1: {e}"
        ))
    })
}

/// Forge URLs: http(s) only, no credentials in them, no trailing slash.
fn validate_http_url(key: &str, url: &str) -> Result<String> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(config_err(format!(
            "`{key}` must start with https:// or http://; found {url:?}"
        )));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(config_err(format!("`{key}` has no host: {url:?}")));
    }
    if authority.contains('@') {
        return Err(config_err(format!(
            "`{key}` must not contain credentials\nhelp: put the token in token_file or {TOKEN_ENV}"
        )));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(config_err(format!(
            "`{key}` must not contain spaces or control characters"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Git URLs cargo can fetch: https, http, ssh, file; never with a password or token in them.
fn validate_git_url(url: &str) -> Result<()> {
    let schemes = ["https://", "http://", "ssh://", "file://"];
    let Some(rest) = schemes.iter().find_map(|s| url.strip_prefix(s)) else {
        let hint = if url.contains('@') && url.contains(':') {
            "\nhelp: cargo does not accept scp-style `git@host:path`; write ssh://git@host/path"
        } else {
            ""
        };
        return Err(config_err(format!(
            "`git_url` must start with https://, http://, ssh:// or file://; found {}{hint}",
            crate::redact::url(url)
        )));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && (userinfo.contains(':') || !url.starts_with("ssh://"))
    {
        {
            return Err(config_err(format!(
                "`git_url` must not contain credentials ({})\nhelp: use anonymous HTTPS, or ssh:// with a deploy key",
                crate::redact::url(url)
            )));
        }
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(config_err(
            "`git_url` must not contain spaces or control characters",
        ));
    }
    Ok(())
}

fn validate_repo(repo: &str, forge: ForgeKind) -> Result<()> {
    let parts: Vec<&str> = repo.split('/').collect();
    let nested_ok = forge == ForgeKind::GitLab;
    let shape_ok = parts.len() == 2 || (nested_ok && parts.len() > 2);
    let parts_ok = parts.iter().all(|p| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    if shape_ok && parts_ok {
        Ok(())
    } else {
        Err(config_err(format!(
            "`repo` must look like owner/name; found {repo:?}"
        )))
    }
}

/// Package, binary and toolchain names: they become arguments and file names.
fn validate_name(key: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(config_err(format!(
            "`{key}`: {name:?} is not a valid name (letters, digits, _ - .)"
        )))
    }
}

fn validate_service(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(config_err(format!(
            "`service`: {name:?} is not a valid unit name or label"
        )))
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
    fn verify_tag_needs_signers_and_checkout_builds() {
        assert!(load(None, &[], &["verify_tag=true"]).is_err());
        let err = load(
            None,
            &[],
            &["verify_tag=true", "allowed_signers=/etc/signers"],
        )
        .unwrap_err();
        assert!(err.to_string().contains("checkout"));
        assert!(
            load(
                None,
                &[],
                &[
                    "verify_tag=true",
                    "allowed_signers=/etc/signers",
                    "build=checkout"
                ]
            )
            .is_ok()
        );
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
}
