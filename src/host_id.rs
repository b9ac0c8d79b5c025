//! A stable id for this host, for its place in a rollout ([`crate::rollout`]).
//!
//! Where it comes from, first match wins:
//! 1. `host_id` in the configuration (any name unique in the fleet, e.g. `web-1`);
//! 2. Linux (and other Unix systems): `/etc/machine-id`, else `/var/lib/dbus/machine-id`;
//! 3. macOS: the `IOPlatformUUID` printed by `ioreg -rd1 -c IOPlatformExpertDevice`.
//!
//! machine-id(5) asks that the machine id be treated as confidential, so it is never shown:
//! logs, `status` and `doctor` show [`HostId::fingerprint`], a short hash of it. Only a
//! configured name, chosen to be shown, appears as it is.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::process::{Cmd, Runner, run_checked};

/// Separates the fingerprint from the rollout hash of the same id.
const FINGERPRINT_DOMAIN: &[u8] = b"heph-selfupdate host id v1\0";

/// Where `ioreg` lives on every macOS (launchd agents get a minimal PATH).
const IOREG: &str = "/usr/sbin/ioreg";

/// The longest `host_id` accepted.
const MAX_CONFIGURED_LEN: usize = 200;

/// Which way of finding the id applies here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// macOS: ask the I/O Registry.
    MacOs,
    /// Linux and other Unix systems: read a machine-id file.
    Unix,
}

impl Platform {
    /// The platform this program was built for.
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            Self::MacOs
        } else {
            Self::Unix
        }
    }
}

/// Where the host id came from (for `status` and `doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostIdSource {
    /// The `host_id` setting.
    Configured,
    /// A machine-id file.
    MachineId(PathBuf),
    /// macOS's `IOPlatformUUID`.
    PlatformUuid,
}

impl fmt::Display for HostIdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Configured => f.write_str("the host_id setting"),
            Self::MachineId(path) => write!(f, "{}", path.display()),
            Self::PlatformUuid => f.write_str("IOPlatformUUID (ioreg)"),
        }
    }
}

/// This host's id and where it came from. `Debug` and `Display` never show a machine id.
#[derive(Clone, PartialEq, Eq)]
pub struct HostId {
    value: String,
    source: HostIdSource,
}

impl HostId {
    /// The id itself: an input to hashes, never for a log or a report.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Where it came from.
    pub fn source(&self) -> &HostIdSource {
        &self.source
    }

    /// 12 hex digits of a SHA-256 of the id: tells hosts apart without revealing the id.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(FINGERPRINT_DOMAIN);
        hasher.update(self.value.as_bytes());
        let mut hex = String::with_capacity(12);
        for b in &hasher.finalize()[..6] {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }

    /// What people see: a configured name as it is, else the fingerprint.
    pub fn shown(&self) -> String {
        match self.source {
            HostIdSource::Configured => self.value.clone(),
            _ => self.fingerprint(),
        }
    }
}

// The value is left out on purpose: it may be the machine id.
#[allow(clippy::missing_fields_in_debug)]
impl fmt::Debug for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostId")
            .field("shown", &self.shown())
            .field("source", &self.source)
            .finish()
    }
}

/// `3f9a0c1d22e4 (from /etc/machine-id)`.
impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.shown(), self.source)
    }
}

/// Finds this host's id: `configured` if given, else the platform's own.
///
/// `root` is prefixed to the machine-id paths (`/` in real use, a temporary directory in
/// tests); `runner` runs `ioreg` on macOS.
pub fn resolve(
    configured: Option<&str>,
    platform: Platform,
    root: &Path,
    runner: &dyn Runner,
) -> Result<HostId> {
    if let Some(name) = configured {
        return Ok(HostId {
            value: check_configured(name)?,
            source: HostIdSource::Configured,
        });
    }
    match platform {
        Platform::Unix => from_machine_id_files(root),
        Platform::MacOs => from_ioreg(runner),
    }
}

/// A configured `host_id`: trimmed, not empty, printable, not too long.
fn check_configured(name: &str) -> Result<String> {
    let name = name.trim();
    let problem = if name.is_empty() {
        "is empty"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else if name.len() > MAX_CONFIGURED_LEN {
        "is longer than 200 bytes"
    } else {
        return Ok(name.to_owned());
    };
    bail!(
        "the host_id setting {problem}\nhelp: give each host a short name unique in the fleet, e.g. host_id = \"web-1\", or leave host_id out to use the machine id"
    )
}

/// The machine-id files, in order of preference, below `root`.
fn machine_id_paths(root: &Path) -> [PathBuf; 2] {
    [
        root.join("etc/machine-id"),
        root.join("var/lib/dbus/machine-id"),
    ]
}

fn from_machine_id_files(root: &Path) -> Result<HostId> {
    let mut tried = Vec::new();
    for path in machine_id_paths(root) {
        let problem = match std::fs::read_to_string(&path) {
            Ok(text) => match parse_machine_id(&text) {
                Some(id) => {
                    return Ok(HostId {
                        value: id,
                        source: HostIdSource::MachineId(path),
                    });
                }
                None => "does not hold a machine id (32 hex digits)".to_owned(),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_owned(),
            Err(e) => format!("could not be read: {e}"),
        };
        tried.push(format!("{} {problem}", path.display()));
    }
    bail!(
        "could not find a machine id for this host's place in the rollout: {}\nhelp: run `systemd-machine-id-setup` (as root), or set host_id = \"<a name unique in the fleet>\"",
        tried.join("; ")
    )
}

/// The id in a machine-id file (machine-id(5): 32 lowercase hex digits and a newline),
/// lowercased. `None` for anything else, such as the `uninitialized` of a fresh image or
/// the all-zero id.
pub fn parse_machine_id(text: &str) -> Option<String> {
    let id = text.trim();
    let valid = id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && id.bytes().any(|b| b != b'0');
    valid.then(|| id.to_ascii_lowercase())
}

fn from_ioreg(runner: &dyn Runner) -> Result<HostId> {
    let cmd = Cmd::new(IOREG, "read this Mac's IOPlatformUUID")
        .args(["-rd1", "-c", "IOPlatformExpertDevice"])
        .timeout(Duration::from_secs(20));
    let output = run_checked(runner, &cmd).context(
        "help: set host_id = \"<a name unique in the fleet>\" to do without the hardware id",
    )?;
    let uuid = parse_ioreg_platform_uuid(&output.stdout).with_context(|| {
        format!(
            "`{}` printed no IOPlatformUUID\nhelp: set host_id = \"<a name unique in the fleet>\"",
            cmd.display()
        )
    })?;
    Ok(HostId {
        value: uuid,
        source: HostIdSource::PlatformUuid,
    })
}

/// The `IOPlatformUUID` in the output of `ioreg -rd1 -c IOPlatformExpertDevice`, from its
/// line `"IOPlatformUUID" = "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"` (uppercased). `None`
/// when no such line holds a well-formed UUID.
pub fn parse_ioreg_platform_uuid(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        // Deeper listings prefix properties with the tree's `|` bars.
        let line = line.trim_start_matches(|c: char| c.is_whitespace() || c == '|');
        let value = line
            .strip_prefix("\"IOPlatformUUID\"")?
            .trim_start()
            .strip_prefix('=')?
            .trim();
        let uuid = value.strip_prefix('"')?.strip_suffix('"')?;
        is_uuid(uuid).then(|| uuid.to_ascii_uppercase())
    })
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Output;
    use crate::process::fake::{Recorder, ok};

    const MACHINE_ID: &str = "4c9e1a7f2b3d4e5f8a9b0c1d2e3f4a5b";

    /// `ioreg -rd1 -c IOPlatformExpertDevice` on an Apple-silicon MacBook Pro (values
    /// replaced, layout kept).
    const IOREG_SAMPLE: &str = r##"+-o MacBookPro18,3  <class IOPlatformExpertDevice, id 0x100000110, registered, matched, active, busy 0 (36817 ms), retain 37>
    {
      "IOPolledInterface" = "AppleARMWatchdogTimerHibernateHandler is not serializable"
      "#address-cells" = <02000000>
      "AAPL,phandle" = <01000000>
      "serial-number" = <43303258585858585858000000000000000000000000000000000000000000000>
      "IOBusyInterest" = "IOCommand is not serializable"
      "target-type" = <"J314s">
      "platform-name" = <7436303030000000000000000000000000000000000000000000000000000000>
      "secure-root-prefix" = <"md">
      "name" = <"device-tree">
      "region-info" = <4c4c2f4100000000000000000000000000000000000000000000000000000000>
      "manufacturer" = <"Apple Inc.">
      "compatible" = <"J314sAP","MacBookPro18,3","AppleARM">
      "config-number" = <00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000>
      "IOPlatformSerialNumber" = "C02XXXXXXXXX"
      "regulatory-model-number" = <4132343432000000000000000000000000000000000000000000000000000000>
      "time-stamp" = <"Fri Oct  4 21:12:23 PDT 2024">
      "clock-frequency" = <00366e01>
      "model" = <"MacBookPro18,3">
      "mlb-serial-number" = <43303231323334353637383941424344000000000000000000000000000000000>
      "model-number" = <5a31354b30303034390000000000000000000000000000000000000000000000>
      "IONWInterrupts" = "IONWInterrupts"
      "model-config" = <"ICT;MoPED=0x2C3E3C0F2C7F7A1E2A2B4C7F7C1E6A3A0B2D4E5F">
      "device_type" = <"bootrom">
      "#size-cells" = <02000000>
      "IOPlatformUUID" = "7D3F9A12-4B6C-5E8D-9F01-23A45B67C89D"
    }
"##;

    fn no_runner() -> Recorder<impl Fn(&Cmd) -> Output> {
        Recorder::new(|cmd: &Cmd| panic!("unexpected command {}", cmd.display()))
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_the_platform_uuid_from_ioreg_output() {
        assert_eq!(
            parse_ioreg_platform_uuid(IOREG_SAMPLE).as_deref(),
            Some("7D3F9A12-4B6C-5E8D-9F01-23A45B67C89D")
        );
        let deeper = "| |   \"IOPlatformUUID\" = \"7d3f9a12-4b6c-5e8d-9f01-23a45b67c89d\"\n";
        assert_eq!(
            parse_ioreg_platform_uuid(deeper).as_deref(),
            Some("7D3F9A12-4B6C-5E8D-9F01-23A45B67C89D")
        );
    }

    #[test]
    fn ioreg_output_without_a_well_formed_uuid_gives_none() {
        let without = IOREG_SAMPLE.replace("\"IOPlatformUUID\"", "\"IOPlatformUUIDx\"");
        assert_eq!(parse_ioreg_platform_uuid(&without), None);
        for bad in [
            "\"IOPlatformUUID\" = \"\"",
            "\"IOPlatformUUID\" = \"not-a-uuid\"",
            "\"IOPlatformUUID\" = \"7D3F9A12-4B6C-5E8D-9F01-23A45B67C89\"",
            "\"IOPlatformUUID\" = <\"7D3F9A12-4B6C-5E8D-9F01-23A45B67C89D\">",
            "\"IOPlatformUUID\" \"7D3F9A12-4B6C-5E8D-9F01-23A45B67C89D\"",
            "",
        ] {
            assert_eq!(parse_ioreg_platform_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn machine_ids_are_32_hex_digits_and_not_uninitialized() {
        assert_eq!(
            parse_machine_id(&format!("{MACHINE_ID}\n")).as_deref(),
            Some(MACHINE_ID)
        );
        assert_eq!(
            parse_machine_id(&MACHINE_ID.to_ascii_uppercase()).as_deref(),
            Some(MACHINE_ID)
        );
        for bad in [
            "",
            "\n",
            "uninitialized\n",
            "00000000000000000000000000000000\n",
            "4c9e1a7f2b3d4e5f8a9b0c1d2e3f4a5",
            "4c9e1a7f-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
        ] {
            assert_eq!(parse_machine_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn linux_uses_etc_machine_id() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "etc/machine-id", &format!("{MACHINE_ID}\n"));
        write(
            root.path(),
            "var/lib/dbus/machine-id",
            "ffffffffffffffffffffffffffffffff\n",
        );
        let id = resolve(None, Platform::Unix, root.path(), &no_runner()).unwrap();
        assert_eq!(id.value(), MACHINE_ID);
        assert_eq!(
            id.source(),
            &HostIdSource::MachineId(root.path().join("etc/machine-id"))
        );
    }

    #[test]
    fn falls_back_to_the_dbus_machine_id() {
        for etc in [None, Some("uninitialized\n")] {
            let root = tempfile::tempdir().unwrap();
            if let Some(text) = etc {
                write(root.path(), "etc/machine-id", text);
            }
            write(root.path(), "var/lib/dbus/machine-id", MACHINE_ID);
            let id = resolve(None, Platform::Unix, root.path(), &no_runner()).unwrap();
            assert_eq!(id.value(), MACHINE_ID);
            assert_eq!(
                id.source(),
                &HostIdSource::MachineId(root.path().join("var/lib/dbus/machine-id"))
            );
        }
    }

    #[test]
    fn an_unreadable_machine_id_falls_back_too() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/machine-id")).unwrap();
        write(root.path(), "var/lib/dbus/machine-id", MACHINE_ID);
        let id = resolve(None, Platform::Unix, root.path(), &no_runner()).unwrap();
        assert_eq!(id.value(), MACHINE_ID);
    }

    #[test]
    fn without_any_machine_id_the_error_says_what_was_tried_and_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "etc/machine-id", "uninitialized\n");
        let err = resolve(None, Platform::Unix, root.path(), &no_runner())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("etc/machine-id does not hold a machine id"),
            "{err}"
        );
        assert!(
            err.contains("var/lib/dbus/machine-id does not exist"),
            "{err}"
        );
        assert!(err.contains("help: ") && err.contains("host_id ="), "{err}");
    }

    #[test]
    fn a_configured_host_id_wins_and_reads_nothing() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "etc/machine-id", MACHINE_ID);
        for platform in [Platform::Unix, Platform::MacOs] {
            let id = resolve(Some(" web-1 "), platform, root.path(), &no_runner()).unwrap();
            assert_eq!(id.value(), "web-1");
            assert_eq!(id.source(), &HostIdSource::Configured);
            assert_eq!(id.to_string(), "web-1 (from the host_id setting)");
        }
    }

    #[test]
    fn a_configured_host_id_must_be_a_printable_name() {
        let root = tempfile::tempdir().unwrap();
        for bad in ["", "   ", "web\n1", &"x".repeat(201)] {
            let err = resolve(Some(bad), Platform::Unix, root.path(), &no_runner())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("the host_id setting "), "{err}");
            assert!(err.contains("help: "), "{err}");
        }
    }

    #[test]
    fn macos_asks_ioreg_with_a_fixed_argv() {
        let runner = Recorder::new(|_: &Cmd| ok(IOREG_SAMPLE));
        let id = resolve(None, Platform::MacOs, Path::new("/nonexistent"), &runner).unwrap();
        assert_eq!(id.value(), "7D3F9A12-4B6C-5E8D-9F01-23A45B67C89D");
        assert_eq!(id.source(), &HostIdSource::PlatformUuid);
        assert_eq!(
            runner.lines(),
            ["/usr/sbin/ioreg -rd1 -c IOPlatformExpertDevice"]
        );
    }

    #[test]
    fn a_failing_or_silent_ioreg_is_an_error_with_help() {
        let failing = Recorder::new(|_: &Cmd| Output {
            code: Some(1),
            tail: vec!["ioreg: no such class".into()],
            ..Output::default()
        });
        let err = format!(
            "{:#}",
            resolve(None, Platform::MacOs, Path::new("/"), &failing).unwrap_err()
        );
        assert!(
            err.contains("exit status 1") && err.contains("help: set host_id"),
            "{err}"
        );
        let silent = Recorder::new(|_: &Cmd| ok(""));
        let err = resolve(None, Platform::MacOs, Path::new("/"), &silent)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("printed no IOPlatformUUID") && err.contains("help: "),
            "{err}"
        );
    }

    #[test]
    fn a_machine_id_is_shown_only_as_a_fingerprint() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "etc/machine-id", MACHINE_ID);
        let id = resolve(None, Platform::Unix, root.path(), &no_runner()).unwrap();
        // Computed independently:
        //   hashlib.sha256(b"heph-selfupdate host id v1\0" + MACHINE_ID.encode()).hexdigest()[:12]
        assert_eq!(id.fingerprint(), "36671e44d64f");
        assert_eq!(id.shown(), id.fingerprint());
        for text in [id.to_string(), format!("{id:?}"), format!("{id:#?}")] {
            assert!(!text.contains(MACHINE_ID), "{text}");
            assert!(text.contains(&id.fingerprint()), "{text}");
        }
    }
}
