//! Why a build step failed, from the structure of the failure rather than from words
//! anywhere in its output: which kind of step failed (one that reaches the network, one
//! that cannot, or git mode's `cargo install --git`, which does both), the program's exit
//! status, git's HTTP status, ssh's host-key and authentication outcome, the TLS
//! verdict, and compiler diagnostics. Source lines that rustc quotes (`12 |     …`) are
//! never read as messages: a compile error that quotes "connection refused" is a
//! compile error.
//!
//! Only connection-level failures (DNS, refused, reset, timed out, early EOF, a server's
//! 5xx) of a step that reaches the network are "network" (try again next run). A refusal —
//! HTTP 401/403/404, ssh `Permission denied`, an unknown or changed host key, an
//! untrusted certificate, a missing repository — is [`FailureKind::Access`]: retrying
//! will not fix it, so it is exit 1 and backs off, with the real cause as the first line.

use super::FailureKind;

/// Whether a step reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// `git ls-remote`, `git fetch`, `cargo fetch`: only these can fail for network reasons.
    Network,
    /// Runs offline (`--frozen`, `--offline`, local git): never a network failure.
    Offline,
    /// `cargo install --git`: fetches, then compiles, in one command.
    Mixed,
}

/// A failure's kind, the line of the output that names its cause, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub kind: FailureKind,
    /// The line of the program's output that says what went wrong (as the program said it).
    pub cause: Option<String>,
    /// What to do about it.
    pub help: Option<&'static str>,
}

impl Diagnosis {
    fn new(kind: FailureKind, cause: Option<&str>, help: Option<&'static str>) -> Self {
        Self {
            kind,
            cause: cause.map(|c| c.trim().to_owned()),
            help,
        }
    }
}

const HELP_TLS: &str = "help: the server's certificate is not trusted: set `ca_file` to the CA certificate (PEM) that signed it; it is given to git (GIT_SSL_CAINFO) and cargo (CARGO_HTTP_CAINFO)";
const HELP_HOST_KEY: &str = "help: ssh does not know (or no longer trusts) the server's host key: add it to ~/.ssh/known_hosts of the user the service runs as (compare `ssh-keyscan HOST` with the fingerprint the forge publishes)";
const HELP_SSH_AUTH: &str = "help: the server refused the ssh key: add the service user's public key (or a deploy key) with read access to the repository, or set GIT_SSH_COMMAND to use the right key";
const HELP_HTTP_AUTH: &str = "help: the server refused access: check that the credentials in git_url (or git's credential helper) may read the repository";
const HELP_NOT_FOUND: &str =
    "help: check git_url: the server says there is no such repository (or hides it from you)";
const HELP_TOOLCHAIN: &str = "help: this release needs a newer Rust: set `toolchain = \"stable\"` (RUSTUP_TOOLCHAIN) and run `rustup update stable`; retrying will not help";

/// True for a line that quotes source code in a rustc diagnostic: `12 |     let x = …`,
/// `   |`, `   = note`, `  --> src/main.rs:3:5`, `...`.
fn is_snippet(line: &str) -> bool {
    let t = line.trim_start();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let after = t[digits..].trim_start();
    after.starts_with('|') || t.starts_with("-->") || t.starts_with("= ") || t == "..."
}

/// Refusals: retrying will not help. (pattern, help)
const ACCESS: &[(&str, &str)] = &[
    ("the requested url returned error: 401", HELP_HTTP_AUTH),
    ("the requested url returned error: 403", HELP_HTTP_AUTH),
    ("the requested url returned error: 404", HELP_NOT_FOUND),
    ("authentication failed for", HELP_HTTP_AUTH),
    ("could not read username for", HELP_HTTP_AUTH),
    ("could not read password for", HELP_HTTP_AUTH),
    ("http basic: access denied", HELP_HTTP_AUTH),
    (
        "failed to authenticate when downloading repository",
        HELP_HTTP_AUTH,
    ),
    ("permission denied (publickey", HELP_SSH_AUTH),
    ("permission denied (password", HELP_SSH_AUTH),
    ("permission denied (keyboard-interactive", HELP_SSH_AUTH),
    ("host key verification failed", HELP_HOST_KEY),
    ("remote host identification has changed", HELP_HOST_KEY),
    ("host key is known for", HELP_HOST_KEY),
    ("no matching host key type found", HELP_HOST_KEY),
    ("ssl certificate problem", HELP_TLS),
    ("server certificate verification failed", HELP_TLS),
    ("certificate verify failed", HELP_TLS),
    (
        "ssl peer certificate or ssh remote key was not ok",
        HELP_TLS,
    ),
    ("unable to get local issuer certificate", HELP_TLS),
    ("self-signed certificate", HELP_TLS),
    ("self signed certificate", HELP_TLS),
    ("certificate has expired", HELP_TLS),
    ("no alternative certificate subject name matches", HELP_TLS),
    ("repository not found", HELP_NOT_FOUND),
    ("does not appear to be a git repository", HELP_NOT_FOUND),
    ("' not found", HELP_NOT_FOUND),
    (", got 401", HELP_HTTP_AUTH),
    (", got 403", HELP_HTTP_AUTH),
    (", got 404", HELP_NOT_FOUND),
];

/// Connection-level failures: the network or the server is down for now.
const NETWORK: &[&str] = &[
    "could not resolve host",
    "couldn't resolve host",
    "could not resolve hostname",
    "temporary failure in name resolution",
    "name or service not known",
    "connection refused",
    "connection reset",
    "connection timed out",
    "operation timed out",
    "timeout was reached",
    "timed out after",
    "failed to connect",
    "couldn't connect to server",
    "network is unreachable",
    "no route to host",
    "early eof",
    "the remote end hung up unexpectedly",
    "unexpected disconnect",
    "connection closed by",
    "kex_exchange_identification",
    "recv failure",
    "send failure",
    "ssl_error_syscall",
    "rpc failed",
    "network failure seems to have happened",
    "spurious network error",
    "the requested url returned error: 5",
    ", got 5",
    // Too many requests / request timeout: the server is busy, not refusing.
    "the requested url returned error: 429",
    "the requested url returned error: 408",
    ", got 429",
    ", got 408",
];

/// A compiler (or another program of the build) killed with SIGKILL: on a build machine
/// almost always the kernel's out-of-memory killer. The machine's failure, not the
/// release's (cargo: "process didn't exit successfully: `…` (signal: 9, SIGKILL: kill)").
fn is_killed_by_the_system(lower: &str) -> bool {
    // cargo: "process didn't exit successfully: `rustc …` (signal: 9, SIGKILL: kill)";
    // git: "error: index-pack died of signal 9", "fatal: Out of memory, malloc failed".
    (lower.starts_with("process didn't exit successfully") && lower.contains("(signal: 9, sigkill"))
        || (lower.starts_with("error:") && lower.ends_with("died of signal 9"))
        || lower.starts_with("fatal: out of memory")
}

/// True when rustup says the toolchain a command needs is not installed.
pub fn is_missing_toolchain(tail: &str) -> bool {
    tail.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("toolchain '") && l.contains("is not installed")
    })
}

/// Lines that only rustc and cargo's compile driver print.
fn is_compile_diagnostic(lower: &str) -> bool {
    lower.starts_with("error[e")
        || lower.starts_with("error: could not compile")
        || lower.starts_with("error: failed to run custom build command")
        || lower.starts_with("error: linking with")
        || lower.starts_with("error: aborting due to")
}

/// cargo's "profile `fast` is not defined": `build_profile` names a profile that neither
/// the workspace's manifest nor cargo's configuration defines. Configuration, not code.
pub fn is_undefined_profile(lower: &str) -> bool {
    lower.starts_with("profile `") && lower.ends_with("` is not defined")
}

const HELP_PROFILE: &str = "help: set `build_profile` to a profile the release defines (`[profile.<name>]` in its workspace's Cargo.toml) or a built-in one (`release`, `dev`); the release is not blamed";

fn is_toolchain_line(lower: &str) -> bool {
    (lower.starts_with("error: rustc ") && lower.contains("is not supported by the following"))
        || lower.contains("cannot be built because it requires rustc")
        || (lower.contains(" requires rustc ") && !lower.starts_with("error["))
}

/// Classifies the failure of a step that reaches `reach`, from its exit `code` (None:
/// killed by a signal) and the last lines of its output.
pub fn diagnose(reach: Reach, code: Option<i32>, tail: &str) -> Diagnosis {
    let lines: Vec<(&str, String)> = tail
        .lines()
        .filter(|l| !is_snippet(l))
        .map(|l| (l, l.trim().to_ascii_lowercase()))
        .collect();
    let find = |pred: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .find(|(_, lower)| pred(lower))
            .map(|(line, _)| *line)
    };
    if let Some(line) =
        find(&|l| l.contains("no space left on device") || l.contains("disk quota exceeded"))
    {
        return Diagnosis::new(
            FailureKind::Environment,
            Some(line),
            Some("help: free some space (or raise min_free_space so the check catches it first)"),
        );
    }
    if let Some(line) = find(&is_killed_by_the_system) {
        return Diagnosis::new(
            FailureKind::Environment,
            Some(line),
            Some(
                "help: a build process was killed by SIGKILL, usually the kernel's out-of-memory killer: free memory or add swap, or build with fewer jobs (CARGO_BUILD_JOBS=1 in the service's environment); the release is not blamed",
            ),
        );
    }
    if reach != Reach::Network {
        if let Some(line) = find(&is_undefined_profile) {
            return Diagnosis::new(FailureKind::Environment, Some(line), Some(HELP_PROFILE));
        }
        if let Some(line) = find(&is_toolchain_line) {
            return Diagnosis::new(FailureKind::Toolchain, Some(line), Some(HELP_TOOLCHAIN));
        }
        if let Some(line) = find(&is_compile_diagnostic) {
            return Diagnosis::new(FailureKind::Compile, Some(line), None);
        }
    }
    if reach == Reach::Offline {
        return Diagnosis::new(
            FailureKind::Compile,
            find(&|l| l.starts_with("error")),
            None,
        );
    }
    // The first line that says it: ssh and git explain first, then sum up.
    for (line, lower) in &lines {
        if let Some((_, help)) = ACCESS.iter().find(|(p, _)| lower.contains(p)) {
            return Diagnosis::new(FailureKind::Access, Some(line), Some(help));
        }
    }
    if let Some(line) = find(&|l| NETWORK.iter().any(|p| l.contains(p))) {
        return Diagnosis::new(FailureKind::Network, Some(line), None);
    }
    let last_error = find(&|l| l.starts_with("fatal:") || l.starts_with("error"));
    match reach {
        // `cargo install --git` that neither printed a refusal nor a connection failure:
        // cargo failed otherwise.
        Reach::Mixed => Diagnosis::new(FailureKind::Compile, last_error, None),
        // A fetch that failed for no connection reason (a missing ref, a broken server
        // answer, a killed program): retrying at once will not help.
        _ => Diagnosis::new(
            FailureKind::Access,
            last_error.or_else(|| code.is_none().then_some("killed by a signal")),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureKind::{Access, Compile, Environment, Network, Toolchain};
    use Reach::{Mixed, Offline};

    /// Real outputs of git 2.47, OpenSSH 9.x, cargo and rustc 1.9x.
    const CASES: &[(Reach, &str, FailureKind, &str)] = &[
        (
            Reach::Network,
            "fatal: unable to access 'http://127.0.0.1:4000/heph.git/': The requested URL returned error: 403",
            Access,
            "returned error: 403",
        ),
        (
            Reach::Network,
            "remote: Unauthorized\nfatal: Authentication failed for 'https://forge.example/heph.git/'",
            Access,
            "Authentication failed",
        ),
        (
            Reach::Network,
            "fatal: could not read Username for 'https://forge.example': terminal prompts disabled",
            Access,
            "could not read Username",
        ),
        (
            Reach::Network,
            "git@forge.example: Permission denied (publickey).\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.",
            Access,
            "Permission denied (publickey)",
        ),
        (
            Reach::Network,
            "No ED25519 host key is known for forge.example and you have requested strict checking.\nHost key verification failed.\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.",
            Access,
            "host key is known for",
        ),
        (
            Reach::Network,
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
            Access,
            "REMOTE HOST IDENTIFICATION HAS CHANGED",
        ),
        (
            Reach::Network,
            "fatal: unable to access 'https://localhost:4443/heph.git/': SSL certificate problem: unable to get local issuer certificate",
            Access,
            "SSL certificate problem",
        ),
        (
            Reach::Network,
            "fatal: unable to access 'https://localhost:4443/heph.git/': server certificate verification failed. CAfile: none CRLfile: none",
            Access,
            "server certificate verification failed",
        ),
        (
            Reach::Network,
            "error: failed to download from `https://static.crates.io/api/v1/crates/regex/1.11.1/download`\n\nCaused by:\n  [60] SSL peer certificate or SSH remote key was not OK (SSL certificate problem: self-signed certificate in certificate chain)",
            Access,
            "SSL peer certificate",
        ),
        (
            Reach::Network,
            "remote: Repository not found.\nfatal: repository 'https://github.com/o/nope.git/' not found",
            Access,
            "Repository not found",
        ),
        (
            Reach::Network,
            "fatal: unable to access 'https://forge.example/heph.git/': Could not resolve host: forge.example",
            Network,
            "Could not resolve host",
        ),
        (
            Reach::Network,
            "fatal: unable to access 'http://127.0.0.1:9/heph.git/': Failed to connect to 127.0.0.1 port 9 after 0 ms: Couldn't connect to server",
            Network,
            "Failed to connect",
        ),
        (
            Reach::Network,
            "ssh: connect to host forge.example port 22: Connection refused\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.",
            Network,
            "Connection refused",
        ),
        (
            Reach::Network,
            "error: RPC failed; curl 56 Recv failure: Connection reset by peer\nfatal: early EOF\nfatal: fetch-pack: invalid index-pack output",
            Network,
            "RPC failed",
        ),
        (
            Reach::Network,
            "fatal: unable to access 'https://forge.example/heph.git/': The requested URL returned error: 502",
            Network,
            "returned error: 502",
        ),
        (
            Reach::Network,
            "error: failed to download from `https://static.crates.io/api/v1/crates/libc/0.2.180/download`\n\nCaused by:\n  [28] Timeout was reached (Connection timed out after 30001 milliseconds)",
            Network,
            "Timeout was reached",
        ),
        (
            Reach::Network,
            "fatal: couldn't find remote ref refs/tags/v9.9.9",
            Access,
            "couldn't find remote ref",
        ),
        // Compiling offline: whatever the source says, it is the code.
        (
            Offline,
            "error[E0599]: no method named `connect` found for struct `Client` in the current scope\n  --> crates/hephd/src/main.rs:3:7\n   |\n 3 |     c.connect(\"connection refused\");\n   |       ^^^^^^^ method not found in `Client`\n\nerror: could not compile `hephd` (bin \"hephd\") due to 1 previous error",
            Compile,
            "error[E0599]",
        ),
        (
            Offline,
            "error: failed to run custom build command for `openssl-sys v0.9.104`\n  --- stderr\n  thread 'main' panicked: Could not find directory of OpenSSL installation",
            Compile,
            "failed to run custom build command",
        ),
        (
            Offline,
            "error: rustc 1.86.0 is not supported by the following package:\n  hephd@1.11.0 requires rustc 1.90",
            Toolchain,
            "is not supported",
        ),
        (
            Offline,
            "error: failed to write /c/target/release/deps/libx.rlib: No space left on device (os error 28)",
            Environment,
            "No space left",
        ),
        (
            Offline,
            "error: no matching package named `rand` found\nlocation searched: crates.io index\nAs a reminder, you're using offline mode (--offline) which can sometimes cause surprising resolution failures",
            Compile,
            "error: no matching package",
        ),
        // git mode's `cargo install --git` fetches and compiles.
        (
            Mixed,
            "   Compiling hephd v0.2.0\nerror[E0308]: mismatched types\n 12 |     let s: u8 = \"connection refused\";\n   |                 ^^^^^^^^^^^^^^^^^^^^ expected `u8`, found `&str`\nerror: could not compile `hephd` (bin \"hephd\") due to 1 previous error",
            Compile,
            "error[E0308]",
        ),
        (
            Mixed,
            "error: failed to clone into: /tmp/x\nCaused by: network failure seems to have happened",
            Network,
            "network failure",
        ),
        (
            Mixed,
            "    Updating git repository `ssh://git@forge.example/heph.git`\nerror: failed to fetch into: /home/u/.cargo/git/db/heph-1234\n\nCaused by:\n  process didn't exit successfully: `git fetch --force --update-head-ok 'ssh://git@forge.example/heph.git' '+refs/tags/v0.2.0:refs/remotes/origin/tags/v0.2.0'` (exit status: 128)\n  --- stderr\n  git@forge.example: Permission denied (publickey).\n  fatal: Could not read from remote repository.",
            Access,
            "Permission denied (publickey)",
        ),
        (
            Mixed,
            "error: package `hephd v0.2.0` cannot be built because it requires rustc 1.85 or newer, while the currently active rustc version is 1.70.0",
            Toolchain,
            "requires rustc",
        ),
        (
            Reach::Network,
            "remote: rate limit: slow\nfatal: unable to access 'http://127.0.0.1:39921/repo.git/': The requested URL returned error: 429",
            Network,
            "returned error: 429",
        ),
        (
            Offline,
            "   Compiling hephd v0.2.0 (/c/crates/hephd)\nerror: could not compile `hephd` (bin \"hephd\")\n\nCaused by:\n  process didn't exit successfully: `/r/bin/rustc --crate-name hephd --edition=2021 crates/hephd/src/main.rs` (signal: 9, SIGKILL: kill)",
            Environment,
            "SIGKILL",
        ),
        (
            Mixed,
            "error: could not compile `rusqlite`\n\nCaused by:\n  process didn't exit successfully: `rustc --crate-name rusqlite` (signal: 9, SIGKILL: kill)",
            Environment,
            "SIGKILL",
        ),
        (
            Reach::Network,
            "error: unpack-objects died of signal 9\nfatal: unpack-objects failed",
            Environment,
            "died of signal 9",
        ),
        // cargo 1.95, `cargo install --profile=fast` of a workspace without it: the
        // configuration's fault, in both build modes.
        (
            Offline,
            "error: failed to compile `taskq v0.2.0 (/c/crates/taskq)`, intermediate artifacts can be found at `/c/target`.\nTo reuse those artifacts with a future compilation, set the environment variable `CARGO_BUILD_BUILD_DIR` to that path.\n\nCaused by:\n  profile `fast` is not defined",
            Environment,
            "profile `fast` is not defined",
        ),
        (
            Mixed,
            "    Updating git repository `file:///r`\nerror: failed to compile `taskq v0.2.0 (file:///r?tag=v0.2.0#0123abc)`, intermediate artifacts can be found at `/t`.\n\nCaused by:\n  profile `fast` is not defined",
            Environment,
            "profile `fast` is not defined",
        ),
    ];

    #[test]
    fn rustup_naming_a_missing_toolchain_is_recognised() {
        assert!(is_missing_toolchain(
            "error: toolchain 'stable-x86_64-unknown-linux-gnu' is not installed"
        ));
        assert!(!is_missing_toolchain("error: could not compile `x`"));
    }

    #[test]
    fn classifies_real_outputs_by_their_structure() {
        for (reach, tail, kind, cause) in CASES {
            let d = diagnose(*reach, Some(128), tail);
            assert_eq!(d.kind, *kind, "{reach:?}: {tail}");
            let got = d.cause.unwrap_or_default();
            assert!(got.contains(cause), "cause of {tail:?} is {got:?}");
        }
    }

    #[test]
    fn a_quoted_source_line_is_never_read_as_a_message() {
        let tail = "error[E0308]: mismatched types\n  --> src/main.rs:2:17\n   |\n 2 |     let s: u8 = \"fatal: unable to access: Connection refused\";\n   |                 ^^^^ expected `u8`\n";
        for reach in [Offline, Mixed] {
            assert_eq!(diagnose(reach, Some(101), tail).kind, Compile);
        }
    }

    #[test]
    fn an_offline_step_never_fails_for_network_reasons() {
        let tail = "error: failed to load source for dependency `x`\nCaused by: Connection refused";
        assert_eq!(diagnose(Offline, Some(101), tail).kind, Compile);
        assert_eq!(diagnose(Reach::Network, Some(101), tail).kind, Network);
    }

    #[test]
    fn refusals_name_what_to_do() {
        let d = diagnose(
            Reach::Network,
            Some(128),
            "fatal: unable to access 'https://h/x.git/': SSL certificate problem: self-signed certificate",
        );
        assert!(d.help.unwrap().contains("ca_file"));
        let d = diagnose(Reach::Network, Some(128), "Host key verification failed.");
        assert!(d.help.unwrap().contains("known_hosts"));
    }
}
