//! The target triples this host runs, best first, each with the reason it was chosen (for
//! `-v`, `status` and the dry run).
//!
//! The architecture and OS are this binary's own (fixed when it was compiled). On Linux
//! the C library is decided by looking for the glibc loader at the path every `-gnu`
//! binary names as its interpreter (`/lib64/ld-linux-x86-64.so.2` on x86_64):
//! - present: `-gnu` first, then `-musl`. A `-gnu` binary is what a build on this host
//!   produces, and it uses the system's C library: glibc's allocator (much faster than
//!   musl's for a multi-threaded daemon) and its name service switch (DNS through
//!   systemd-resolved or mDNS, users from LDAP). The `-musl` one, statically linked,
//!   runs too, so it is the second choice.
//! - absent (NixOS keeps glibc in the Nix store; Alpine has none): `-musl` only, since a
//!   `-gnu` binary cannot even start.
//!
//! A loader that is present but unusable (NixOS's `nix-ld` shim without its variables, a
//! glibc older than the binary needs) is not detected here: the staged binary's
//! `--version` then fails, [`cannot_run_here`] says so, and the run falls back to the
//! build without marking the release bad.

use std::path::Path;

/// What the detector looks at; tests pass a fake.
pub trait HostProbe {
    /// The architecture, as `std::env::consts::ARCH` names it (`x86_64`, `aarch64`).
    fn arch(&self) -> &str;
    /// The OS, as `std::env::consts::OS` names it (`linux`, `macos`).
    fn os(&self) -> &str;
    /// Whether `path` is an executable regular file (symlinks followed).
    fn is_executable_file(&self, path: &Path) -> bool;
}

/// This machine, as this binary was compiled for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

impl HostProbe for RealHost {
    fn arch(&self) -> &str {
        std::env::consts::ARCH
    }

    fn os(&self) -> &str {
        std::env::consts::OS
    }

    fn is_executable_file(&self, path: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
}

/// One target triple the host can run, and why it is on the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub triple: String,
    pub why: String,
}

/// The triples to look for, best first. Empty: no prebuilt asset can be used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTargets {
    pub candidates: Vec<Candidate>,
    /// One line for `-v`, `status`, `doctor` and the dry run.
    pub summary: String,
}

impl HostTargets {
    pub fn triples(&self) -> impl Iterator<Item = &str> {
        self.candidates.iter().map(|c| c.triple.as_str())
    }
}

/// The glibc loader's path per architecture, and the triple's architecture part.
fn linux_arch(arch: &str) -> Option<(&'static str, &'static str)> {
    Some(match arch {
        "x86_64" => ("x86_64", "/lib64/ld-linux-x86-64.so.2"),
        "aarch64" => ("aarch64", "/lib/ld-linux-aarch64.so.1"),
        "x86" => ("i686", "/lib/ld-linux.so.2"),
        "riscv64" => ("riscv64gc", "/lib/ld-linux-riscv64-lp64d.so.1"),
        "s390x" => ("s390x", "/lib/ld64.so.1"),
        _ => return None,
    })
}

/// The triples `probe`'s host runs, best first.
pub fn host_targets(probe: &dyn HostProbe) -> HostTargets {
    let (arch, os) = (probe.arch(), probe.os());
    let cand = |triple: String, why: String| Candidate { triple, why };
    let candidates = match os {
        "linux" => match linux_arch(arch) {
            Some((triple_arch, loader)) if probe.is_executable_file(Path::new(loader)) => vec![
                cand(
                    format!("{triple_arch}-unknown-linux-gnu"),
                    format!(
                        "the glibc loader {loader} is here: a -gnu binary runs with the system's C library (as a build here would)"
                    ),
                ),
                cand(
                    format!("{triple_arch}-unknown-linux-musl"),
                    "a -musl binary is statically linked and runs too".to_owned(),
                ),
            ],
            Some((triple_arch, loader)) => vec![cand(
                format!("{triple_arch}-unknown-linux-musl"),
                format!(
                    "no glibc loader at {loader} (NixOS, or a musl system): a -gnu binary cannot start here; a -musl one is statically linked"
                ),
            )],
            None => Vec::new(),
        },
        "macos" if matches!(arch, "x86_64" | "aarch64") => vec![
            cand(
                format!("{arch}-apple-darwin"),
                format!("this Mac's architecture ({arch})"),
            ),
            cand(
                "universal2-apple-darwin".to_owned(),
                "a universal binary runs on both Mac architectures".to_owned(),
            ),
        ],
        "freebsd" if arch == "x86_64" => vec![cand(
            "x86_64-unknown-freebsd".to_owned(),
            "this host's architecture and OS".to_owned(),
        )],
        _ => Vec::new(),
    };
    let summary = match candidates.first() {
        Some(best) => format!(
            "this host runs {} ({})",
            candidates
                .iter()
                .map(|c| c.triple.as_str())
                .collect::<Vec<_>>()
                .join(", then "),
            best.why
        ),
        None => {
            format!("no prebuilt target is known for {arch} {os}: releases are built on this host")
        }
    };
    HostTargets {
        candidates,
        summary,
    }
}

/// Whether a staged binary's failed `--version` means it cannot run on this host (build
/// instead; the release is not bad) rather than that the release is broken.
///
/// `spawn_errno`: the OS error when the program could not be started at all (a missing
/// interpreter gives ENOENT, a foreign architecture ENOEXEC, a `noexec` mount EACCES);
/// otherwise its exit code and stderr: the dynamic loader exits 127 with "error while
/// loading shared libraries", or names a glibc version that is "not found".
pub fn cannot_run_here(spawn_errno: Option<i32>, code: Option<i32>, stderr: &str) -> bool {
    if let Some(errno) = spawn_errno {
        return matches!(errno, libc::ENOENT | libc::ENOEXEC | libc::EACCES);
    }
    code == Some(127)
        || stderr.contains("error while loading shared libraries")
        || (stderr.contains("version `GLIBC_") && stderr.contains("not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        arch: &'static str,
        os: &'static str,
        files: Vec<&'static str>,
    }

    impl HostProbe for Fake {
        fn arch(&self) -> &str {
            self.arch
        }
        fn os(&self) -> &str {
            self.os
        }
        fn is_executable_file(&self, path: &Path) -> bool {
            self.files.iter().any(|f| Path::new(f) == path)
        }
    }

    fn linux(arch: &'static str, files: Vec<&'static str>) -> HostTargets {
        host_targets(&Fake {
            arch,
            os: "linux",
            files,
        })
    }

    #[test]
    fn a_linux_host_with_the_glibc_loader_prefers_gnu_then_musl() {
        let t = linux("x86_64", vec!["/lib64/ld-linux-x86-64.so.2"]);
        assert_eq!(
            t.triples().collect::<Vec<_>>(),
            ["x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl"]
        );
        assert!(
            t.summary.contains("/lib64/ld-linux-x86-64.so.2 is here"),
            "{}",
            t.summary
        );
    }

    #[test]
    fn a_linux_host_without_the_glibc_loader_takes_only_musl_and_says_why() {
        let t = linux("x86_64", vec![]);
        assert_eq!(
            t.triples().collect::<Vec<_>>(),
            ["x86_64-unknown-linux-musl"]
        );
        assert!(t.summary.contains("no glibc loader"), "{}", t.summary);
        assert!(t.summary.contains("NixOS"), "{}", t.summary);
    }

    #[test]
    fn each_architecture_looks_for_its_own_loader() {
        let t = linux("aarch64", vec!["/lib64/ld-linux-x86-64.so.2"]);
        assert_eq!(
            t.triples().collect::<Vec<_>>(),
            ["aarch64-unknown-linux-musl"]
        );
        let t = linux("aarch64", vec!["/lib/ld-linux-aarch64.so.1"]);
        assert_eq!(t.candidates[0].triple, "aarch64-unknown-linux-gnu");
        let t = linux("x86", vec!["/lib/ld-linux.so.2"]);
        assert_eq!(t.candidates[0].triple, "i686-unknown-linux-gnu");
        let t = linux("riscv64", vec![]);
        assert_eq!(t.candidates[0].triple, "riscv64gc-unknown-linux-musl");
    }

    #[test]
    fn a_mac_takes_its_own_architecture_then_universal2() {
        let t = host_targets(&Fake {
            arch: "aarch64",
            os: "macos",
            files: vec![],
        });
        assert_eq!(
            t.triples().collect::<Vec<_>>(),
            ["aarch64-apple-darwin", "universal2-apple-darwin"]
        );
    }

    #[test]
    fn an_unknown_host_has_no_candidates_and_says_it_builds() {
        for (arch, os) in [("arm", "linux"), ("mips", "linux"), ("x86_64", "windows")] {
            let t = host_targets(&Fake {
                arch,
                os,
                files: vec![],
            });
            assert!(t.candidates.is_empty(), "{arch} {os}");
            assert!(t.summary.contains("built on this host"), "{}", t.summary);
        }
    }

    #[test]
    fn the_real_host_is_one_the_tests_run_on() {
        // This machine has the glibc loader (the test binary itself needs it).
        let t = host_targets(&RealHost);
        if cfg!(all(
            target_os = "linux",
            target_arch = "x86_64",
            target_env = "gnu"
        )) {
            assert_eq!(t.candidates[0].triple, "x86_64-unknown-linux-gnu");
        }
    }

    #[test]
    fn loader_and_format_failures_mean_cannot_run_here() {
        assert!(cannot_run_here(Some(libc::ENOENT), None, ""));
        assert!(cannot_run_here(Some(libc::ENOEXEC), None, ""));
        assert!(cannot_run_here(
            None,
            Some(127),
            "hephd: error while loading shared libraries: libssl.so.3: cannot open shared object file"
        ));
        assert!(cannot_run_here(
            None,
            Some(1),
            "./hephd: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.39' not found (required by ./hephd)"
        ));
    }

    #[test]
    fn a_binary_that_runs_and_fails_is_not_a_host_problem() {
        assert!(!cannot_run_here(
            None,
            Some(1),
            "hephd: unknown flag --version"
        ));
        assert!(!cannot_run_here(None, None, ""));
        assert!(!cannot_run_here(Some(libc::ENOMEM), None, ""));
    }
}
