//! What is installed: the daemon's version (from `<bin_dir>/<binary> --version`, else
//! cargo's install records) and which of the binaries the packages install are present.

use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;

use crate::layout::Layout;
use crate::policy::InstalledState;
use crate::process::{Cmd, Runner};
use crate::version::parse_version_output;

/// A `--version` that takes longer than this is treated as unknown.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How the installed version was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionSource {
    /// `<binary> --version` said so.
    Binary,
    /// The binary could not tell; cargo's install records did.
    InstallRecords,
    /// Not installed, or nothing could tell.
    Unknown,
}

/// The installed daemon.
#[derive(Debug, Clone)]
pub struct Installed {
    pub version: Option<Version>,
    pub source: VersionSource,
    /// `<bin_dir>/<binary>`.
    pub binary_path: PathBuf,
    pub binary_exists: bool,
    /// Binaries the packages install as recorded (see [`Layout::expected_binaries`]: a
    /// package nothing records adds none), and `binary`, that are not in `bin_dir`.
    pub missing: Vec<String>,
    /// What went wrong asking the binary, if anything.
    pub problem: Option<String>,
}

impl Installed {
    /// The plain values the decision needs.
    pub fn state(&self) -> InstalledState {
        InstalledState {
            version: self.version.clone(),
            missing: self.missing.clone(),
        }
    }
}

/// The command that asks a binary its version.
pub fn version_cmd(binary: &Path) -> Cmd {
    Cmd::new(binary, format!("ask {} its version", binary.display()))
        .arg("--version")
        .timeout(VERSION_TIMEOUT)
}

/// Runs `<binary> --version` and parses it; `Err` says why it could not tell.
pub fn ask_version(runner: &dyn Runner, binary: &Path) -> Result<Version, String> {
    ask(runner, &version_cmd(binary))
}

/// Runs a [`version_cmd`] and parses its output; `Err` says why it could not tell.
pub fn ask(runner: &dyn Runner, cmd: &Cmd) -> Result<Version, String> {
    match runner.run(cmd) {
        Ok(out) => answer(cmd, &out),
        Err(e) => Err(e.to_string()),
    }
}

/// The version in the output of a [`version_cmd`] that ran; `Err` says why it tells none.
pub fn answer(cmd: &Cmd, out: &crate::process::Output) -> Result<Version, String> {
    let binary = &cmd.program;
    match out {
        out if out.success() => parse_version_output(&out.stdout).ok_or_else(|| {
            let first: String = out
                .stdout
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect();
            format!(
                "`{} --version` printed no version: {first:?}",
                binary.display()
            )
        }),
        out => Err(format!(
            "`{} --version` failed ({})",
            binary.display(),
            out.code
                .map_or_else(|| "killed".to_owned(), |c| format!("exit {c}"))
        )),
    }
}

/// Finds out what is installed in `layout.bin_dir`: the daemon `binary`, and which of the
/// binaries `packages` install are there.
pub fn probe(runner: &dyn Runner, layout: &Layout, binary: &str, packages: &[String]) -> Installed {
    let bin_dir = &layout.bin_dir;
    let binary_path = bin_dir.join(binary);
    let binary_exists = binary_path.exists();
    let mut expected = layout.expected_binaries(packages);
    if !expected.iter().any(|b| b == binary) {
        expected.push(binary.to_owned());
    }
    let missing = expected
        .into_iter()
        .filter(|b| !bin_dir.join(b).exists())
        .collect();
    let mut installed = Installed {
        version: None,
        source: VersionSource::Unknown,
        binary_path: binary_path.clone(),
        binary_exists,
        missing,
        problem: None,
    };
    if !binary_exists {
        return installed;
    }
    match ask_version(runner, &binary_path) {
        Ok(v) => {
            installed.version = Some(v);
            installed.source = VersionSource::Binary;
        }
        Err(problem) => {
            log::warn!("{problem}; looking at cargo's install records instead");
            installed.problem = Some(problem);
            if let Some(v) = version_from_records(&binary_path, binary) {
                installed.version = Some(v);
                installed.source = VersionSource::InstallRecords;
            }
        }
    }
    installed
}

/// The version cargo recorded for the package that installed `binary`: in the root the
/// binary resolves into (a version root), else in `bin_dir/..` (a plain cargo root).
fn version_from_records(binary_path: &Path, binary: &str) -> Option<Version> {
    let resolved = std::fs::canonicalize(binary_path).unwrap_or_else(|_| binary_path.to_path_buf());
    let roots = [
        resolved.parent()?.parent()?.to_path_buf(),
        binary_path.parent()?.parent()?.to_path_buf(),
    ];
    roots.iter().find_map(|root| {
        crate::install_records::read(root)
            .ok()?
            .into_iter()
            .find(|r| r.bins.iter().any(|b| b == binary))?
            .version
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Output;
    use crate::process::fake::{Recorder, ok};

    fn setup(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        for f in files {
            std::fs::write(dir.path().join("bin").join(f), "").unwrap();
        }
        dir
    }

    fn pkgs() -> Vec<String> {
        vec!["heph".into(), "hephd".into()]
    }

    fn layout(dir: &tempfile::TempDir) -> Layout {
        Layout::new(&dir.path().join("data"), &dir.path().join("bin"))
    }

    #[test]
    fn missing_means_a_binary_cargo_recorded_for_the_packages_not_a_package() {
        // A plain `cargo install pueue hephaestus-daemon` into the cargo root of bin_dir.
        let dir = setup(&["pueue", "hephd"]);
        std::fs::write(
            dir.path().join(".crates2.json"),
            r#"{"installs":{
                "pueue 4.0.3 (git+https://f/p.git?tag=v4.0.3#0123456789abcdef0123456789abcdef01234567)":{"bins":["pueue","pueued"]},
                "hephaestus-daemon 1.0.0 (git+https://f/h.git?tag=v1.0.0#0123456789abcdef0123456789abcdef01234567)":{"bins":["hephd"]}
            }}"#,
        )
        .unwrap();
        let r = Recorder::new(|_| ok("pueued 4.0.3\n"));
        let packages: Vec<String> = vec!["pueue".into(), "hephaestus-daemon".into()];
        let i = probe(&r, &layout(&dir), "pueued", &packages);
        assert_eq!(
            i.missing,
            ["pueued"],
            "the daemon pueue installs is not there"
        );
        assert!(!i.binary_exists);
        std::fs::write(dir.path().join("bin/pueued"), "").unwrap();
        let i = probe(&r, &layout(&dir), "pueued", &packages);
        assert!(i.missing.is_empty(), "{:?}", i.missing);
        assert_eq!(i.version, Some(Version::new(4, 0, 3)));
    }

    #[test]
    fn the_daemon_counts_as_missing_even_when_no_record_names_it() {
        let dir = setup(&["heph", "hephd"]);
        let r = Recorder::new(|_| ok(""));
        let i = probe(&r, &layout(&dir), "pueued", &pkgs());
        assert_eq!(i.missing, ["pueued"]);
    }

    #[test]
    fn reads_the_version_the_daemon_prints() {
        let dir = setup(&["heph", "hephd"]);
        let r = Recorder::new(|_| ok("hephd 1.8.1 (3fa9c2d)\n"));
        let i = probe(&r, &layout(&dir), "hephd", &pkgs());
        assert_eq!(i.version, Some(Version::new(1, 8, 1)));
        assert_eq!(i.source, VersionSource::Binary);
        assert!(i.missing.is_empty());
        assert!(r.lines()[0].ends_with("bin/hephd --version"));
    }

    #[test]
    fn a_missing_binary_is_not_installed_and_not_run() {
        let dir = setup(&["heph"]);
        let r = Recorder::new(|_| ok(""));
        let i = probe(&r, &layout(&dir), "hephd", &pkgs());
        assert_eq!(i.version, None);
        assert_eq!(i.missing, ["hephd"]);
        assert!(r.seen.borrow().is_empty());
    }

    #[test]
    fn falls_back_to_install_records_when_the_binary_cannot_say() {
        let dir = setup(&["heph", "hephd"]);
        std::fs::write(
            dir.path().join(".crates2.json"),
            r#"{"installs":{"hephd 1.7.0 (git+https://f/x.git?tag=v1.7.0#0123456789abcdef0123456789abcdef01234567)":{"bins":["hephd"]}}}"#,
        )
        .unwrap();
        let r = Recorder::new(|_| Output {
            code: Some(1),
            ..Output::default()
        });
        let i = probe(&r, &layout(&dir), "hephd", &pkgs());
        assert_eq!(i.version, Some(Version::new(1, 7, 0)));
        assert_eq!(i.source, VersionSource::InstallRecords);
        assert!(i.problem.unwrap().contains("failed"));
    }

    #[test]
    fn a_lying_or_empty_version_output_is_unknown() {
        let dir = setup(&["heph", "hephd"]);
        let r = Recorder::new(|_| ok(""));
        let i = probe(&r, &layout(&dir), "hephd", &pkgs());
        assert_eq!(i.version, None);
        assert_eq!(i.source, VersionSource::Unknown);
    }
}
