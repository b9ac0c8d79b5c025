//! Names of the environment variables heph-selfupdate reads or sets. A leaf module, so
//! the runner and the forge code can name them without depending on the configuration.

/// Prefix of every configuration variable (`HEPH_SELFUPDATE_<KEY>`).
pub const PREFIX: &str = "HEPH_SELFUPDATE_";
/// The forge token itself, only ever from the environment or `token_file`.
pub const TOKEN: &str = "HEPH_SELFUPDATE_TOKEN";
/// The config file path.
pub const CONFIG: &str = "HEPH_SELFUPDATE_CONFIG";
/// The environment file heph-selfupdate reads itself, as the service's user (the system
/// unit's; see `envfile`).
pub const ENV_FILE: &str = "HEPH_SELFUPDATE_ENV_FILE";

/// Variables heph-selfupdate gives `notify_command` (and that a hook calling
/// heph-selfupdate passes back): information, never configuration.
pub const HOOK: &[&str] = &[
    "HEPH_SELFUPDATE_EVENT",
    "HEPH_SELFUPDATE_FROM",
    "HEPH_SELFUPDATE_TO",
    "HEPH_SELFUPDATE_MESSAGE",
];

/// Variables no child process may see: the token is for our own HTTP requests only.
pub const SECRET: &[&str] = &[TOKEN];

/// Variables heph-selfupdate sets in its own environment for itself: `SSL_CERT_FILE`, from
/// `ca_file`, which its HTTP client (rustls with the platform's verifier) reads its roots
/// from. Children get each as it was when heph-selfupdate started, unless a command sets
/// it: git and cargo get `ca_file` (`build::build_env`), hooks and build scripts' other
/// children nothing new.
pub const OWN: &[&str] = &["SSL_CERT_FILE"];
