//! [`RawConfig`]: every key, its type and its place in `config`'s output — the one list
//! of keys. Each layer (file, environment, `--set`) is read into it; so is the merge of
//! the layers; and, with the defaults filled in, it is what `config` shows.

use serde::{Deserialize, Serialize};

use crate::build::BuildMode;
use crate::forge::ForgeKind;
use crate::policy::Channel;
use crate::service::ServiceManagerKind;

use super::values::{
    Argv, Count, Dur, Fraction, GitUrl, HostId, HttpUrl, List, Name, PathText, Pick, Pin, Repo,
    Req, ServiceName, Size, Windows,
};
use super::{Mode, RestartMethod};

/// Every configuration key. `None`: not set here (or, after the defaults are filled in,
/// unset: the key is optional). The README's key table documents each.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `forgejo`, `gitea`, `github` or `gitlab`.
    pub forge: Option<Pick<ForgeKind>>,
    /// The forge's base URL (the API root for GitHub).
    pub forge_url: Option<HttpUrl>,
    /// `owner/name` of the hephd repository.
    pub repo: Option<Repo>,
    /// What cargo and git fetch the source from.
    pub git_url: Option<GitUrl>,
    /// A file holding the API token.
    pub token_file: Option<PathText>,
    /// PEM file of CA certificates trusted for the forge, git and cargo.
    pub ca_file: Option<PathText>,
    /// Packages to install, in order.
    pub packages: Option<List<Name>>,
    /// The binary whose `--version` says what is installed.
    pub binary: Option<Name>,
    /// Where the binaries the service runs live.
    pub bin_dir: Option<PathText>,
    /// `stable` or `prerelease`.
    pub channel: Option<Pick<Channel>>,
    /// A semver requirement an update must meet.
    pub version_req: Option<Req>,
    /// An exact version to converge to, also downward.
    pub pin: Option<Pin>,
    /// A release younger than this waits.
    pub min_release_age: Option<Dur>,
    /// Time limit of one forge request.
    pub http_timeout: Option<Dur>,
    /// `apply` or `notify`.
    pub mode: Option<Pick<Mode>>,
    /// `git` or `checkout`.
    pub build: Option<Pick<BuildMode>>,
    /// The cargo profile builds use (`cargo install --profile`).
    pub build_profile: Option<Name>,
    /// `RUSTUP_TOOLCHAIN` for the build.
    pub toolchain: Option<Name>,
    /// The cargo to run.
    pub cargo: Option<PathText>,
    /// The directories git, ssh, systemctl, launchctl and kill are run from (never PATH).
    pub tool_path: Option<List<PathText>>,
    /// Checkout builds: the tag must carry a good signature.
    pub verify_tag: Option<bool>,
    /// ssh allowed-signers file for `verify_tag`.
    pub allowed_signers: Option<PathText>,
    /// Time limit of one build.
    pub build_timeout: Option<Dur>,
    /// Pause before retrying a failed fetch (doubles each time).
    pub retry_pause: Option<Dur>,
    /// Free disk space needed before a build starts.
    pub min_free_space: Option<Size>,
    /// How many version roots to keep.
    pub keep_versions: Option<Count>,
    /// `systemd-user`, `systemd-system`, `launchd` or `none`.
    pub service_manager: Option<Pick<ServiceManagerKind>>,
    /// The daemon's unit name or launchd label.
    pub service: Option<ServiceName>,
    /// `manager` or `respawn`: how the daemon is restarted.
    pub restart: Option<Pick<RestartMethod>>,
    /// Time limit of the service manager's restart command.
    pub restart_timeout: Option<Dur>,
    /// When a restart may happen (parsed by the restart window module).
    pub restart_window: Option<Windows>,
    /// How long the new daemon must stay up.
    pub health_settle: Option<Dur>,
    /// Time limit for the new daemon to come up and settle.
    pub health_timeout: Option<Dur>,
    /// A command that must exit 0 once the daemon is up.
    pub health_command: Option<Argv>,
    /// A command run after an update, a notice or a failure.
    pub notify_command: Option<Argv>,
    /// How far apart in time hosts take a new release.
    pub rollout_spread: Option<Dur>,
    /// This host's place in the rollout, in [0, 1).
    pub rollout_wave: Option<Fraction>,
    /// What this host is called in a rollout.
    pub host_id: Option<HostId>,
    /// Where version roots live.
    pub data_dir: Option<PathText>,
    /// Where the state file, lock and logs live.
    pub state_dir: Option<PathText>,
    /// Where the HTTP cache and the checkout live.
    pub cache_dir: Option<PathText>,
    /// Largest size of the cache directory.
    pub cache_max_size: Option<Size>,
    /// A file the metrics of each run are written to.
    pub metrics_file: Option<PathText>,
}

/// Every key, in the order `config` shows them.
pub fn keys() -> &'static [&'static str] {
    super::layers::field_names::<RawConfig>()
}
