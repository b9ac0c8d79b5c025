//! Version roots and the switch between them.
//!
//! ```text
//! <data>/versions/<X.Y.Z>/bin/<package>   one cargo --root per built release
//! <data>/current -> versions/<X.Y.Z>      one symlink: switching is one rename
//! <bin_dir>/<package> -> <data>/current/bin/<package>
//! ```
//! The service runs `<bin_dir>/hephd`; it resolves through `current` at exec time, so
//! the next restart runs whatever `current` names, and a rename switches every binary at
//! once. The running daemon keeps its already-open file.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use semver::Version;
use serde::{Deserialize, Serialize};

const PARTIAL_PREFIX: &str = ".partial-";
/// What a root holds, written into it once, before it is renamed into place.
const META_FILE: &str = "heph-root.json";

/// How a version root came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Built by heph-selfupdate from a tag.
    Built,
    /// The plain binaries that were installed before heph-selfupdate managed them.
    Adopted,
}

/// What a version root is: its version and, for built roots, the commit it was built
/// from and who signed its tag. Adopted roots have no commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMeta {
    /// The version its daemon reports (`None`: adopted binaries that could not say).
    pub version: Option<String>,
    pub commit: Option<String>,
    pub origin: Origin,
    /// Who signed the tag it was built from (`verify_tag`); none when it was not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<Signer>,
}

/// The signer of a release tag, as `verify_tag` found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    /// Its principal in `allowed_signers`.
    pub principal: String,
    /// The key, as ssh-keygen names it (`ED25519 key SHA256:…`).
    pub key: String,
}

/// The directories version roots live in, and the `bin_dir` linked into them.
#[derive(Debug, Clone)]
pub struct Layout {
    pub data_dir: PathBuf,
    pub bin_dir: PathBuf,
}

/// One kept version root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub name: String,
    pub path: PathBuf,
    pub meta: RootMeta,
}

impl Root {
    /// The version of the root, from its record (else its name).
    pub fn version(&self) -> Option<Version> {
        self.meta
            .version
            .as_deref()
            .and_then(|v| Version::parse(v).ok())
            .or_else(|| root_version(&self.name))
    }

    /// True when every package has its binary in the root.
    pub fn has_all(&self, packages: &[String]) -> bool {
        packages
            .iter()
            .all(|p| self.path.join("bin").join(p).exists())
    }
}

/// Writes a root's record into `dir` (a staging directory, before it is renamed into place).
pub fn write_meta(dir: &Path, meta: &RootMeta) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(meta).context("could not encode a root record")?;
    crate::fsutil::atomic_write(&dir.join(META_FILE), &bytes)
}

/// A root's record: its own file, or (roots of earlier releases) what its name and cargo's
/// install records tell.
fn read_meta(dir: &Path, name: &str) -> RootMeta {
    if let Some(meta) = fs::read(dir.join(META_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        return meta;
    }
    let records = crate::install_records::read(dir).unwrap_or_default();
    RootMeta {
        version: root_version(name).map(|v| v.to_string()),
        commit: records.iter().find_map(|r| r.commit.clone()),
        origin: if records.is_empty() {
            Origin::Adopted
        } else {
            Origin::Built
        },
        signed_by: None,
    }
}

impl Layout {
    pub fn new(data_dir: &Path, bin_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            bin_dir: bin_dir.to_path_buf(),
        }
    }

    pub fn versions_dir(&self) -> PathBuf {
        self.data_dir.join("versions")
    }

    pub fn root(&self, name: &str) -> PathBuf {
        self.versions_dir().join(name)
    }

    /// Where a build goes before it is verified and renamed into place.
    pub fn staging(&self, version: &Version) -> PathBuf {
        self.versions_dir()
            .join(format!("{PARTIAL_PREFIX}{version}"))
    }

    /// Scratch space (fresh cargo target dirs); emptied at the start of every run.
    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }

    /// The fresh, per-run target dir of a `--git` build.
    pub fn target_dir(&self, version: &Version) -> PathBuf {
        self.tmp_dir().join(format!("target-{version}"))
    }

    pub fn current_link(&self) -> PathBuf {
        self.data_dir.join("current")
    }

    /// The root `current` points at.
    pub fn current(&self) -> Option<String> {
        let target = fs::read_link(self.current_link()).ok()?;
        target.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// The link target `<bin_dir>/<package>` has when we manage it.
    pub fn link_target(&self, package: &str) -> PathBuf {
        self.current_link().join("bin").join(package)
    }

    /// True when `<bin_dir>/<package>` is our link into `current`.
    pub fn is_managed(&self, package: &str) -> bool {
        fs::read_link(self.bin_dir.join(package)).is_ok_and(|t| t == self.link_target(package))
    }

    /// The kept roots, newest first.
    pub fn roots(&self) -> Vec<Root> {
        let Ok(entries) = fs::read_dir(self.versions_dir()) else {
            return Vec::new();
        };
        let mut roots: Vec<Root> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if name.starts_with('.') {
                    return None;
                }
                let path = e.path();
                Some(Root {
                    meta: read_meta(&path, &name),
                    name,
                    path,
                })
            })
            .collect();
        // Newest version first; names that are not versions ("adopted") last.
        roots.sort_by(|a, b| {
            let (va, vb) = (a.version(), b.version());
            vb.cmp(&va).then_with(|| b.name.cmp(&a.name))
        });
        roots
    }

    /// The kept root with this name.
    pub fn find(&self, name: &str) -> Option<Root> {
        self.roots().into_iter().find(|r| r.name == name)
    }

    /// Removes what an interrupted run left: half-built roots and scratch target dirs.
    pub fn clean_leftovers(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let leftovers = [
            (self.versions_dir(), PARTIAL_PREFIX),
            (self.data_dir.clone(), ".current.tmp-"),
            (self.tmp_dir(), ""),
        ];
        for (dir, prefix) in leftovers {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    crate::fsutil::remove_all(&e.path())?;
                    removed.push(e.path());
                }
            }
        }
        Ok(removed)
    }

    /// A root name for `version` that is not taken: `X.Y.Z`, else `X.Y.Z~2`, `X.Y.Z~3` …
    pub fn free_name(&self, base: &str) -> String {
        std::iter::once(base.to_owned())
            .chain((2..10_000).map(|n| format!("{base}~{n}")))
            .find(|n| !self.root(n).exists())
            .unwrap_or_else(|| base.to_owned())
    }

    /// Points `current` at `name` with one atomic rename.
    pub fn set_current(&self, name: &str) -> Result<()> {
        let target = Path::new("versions").join(name);
        replace_with_symlink(&self.current_link(), &target).with_context(|| {
            format!(
                "could not switch {} to {}",
                self.current_link().display(),
                name
            )
        })
    }

    /// Makes `<bin_dir>/<package>` our link for every package, and removes our links
    /// whose binary the current root no longer has.
    pub fn link_binaries(&self, packages: &[String]) -> Result<()> {
        // bin_dir (~/.cargo/bin) is not ours: create it if needed, never change its mode.
        fs::create_dir_all(&self.bin_dir)
            .with_context(|| format!("could not create {}", self.bin_dir.display()))?;
        for p in packages {
            if !self.is_managed(p) {
                replace_with_symlink(&self.bin_dir.join(p), &self.link_target(p)).with_context(
                    || format!("could not link {} into {}", p, self.bin_dir.display()),
                )?;
            }
        }
        if let Ok(entries) = fs::read_dir(&self.bin_dir) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = fs::read_link(e.path()).is_ok_and(|t| t == self.link_target(&name));
                if ours && !e.path().exists() && !packages.contains(&name) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// Brings what `bin_dir` holds under management: when any package binary there is
    /// not our link (a plain `cargo install`, or a manual reinstall), its files — as they
    /// resolve now — are hard-linked (or copied) into a new root, `current` points at it,
    /// and the entries become links. The daemon's files do not change, only their place;
    /// this root is what a rollback returns to. A root already holding exactly these files
    /// (left by an adoption that was interrupted) is used again. Returns the root's name.
    pub fn adopt(&self, packages: &[String], version: Option<&Version>) -> Result<Option<String>> {
        let present: Vec<&String> = packages
            .iter()
            .filter(|p| self.bin_dir.join(p.as_str()).exists())
            .collect();
        if present.is_empty() || present.iter().all(|p| self.is_managed(p)) {
            return Ok(None);
        }
        let mut resolved = Vec::new();
        for p in &present {
            let from = fs::canonicalize(self.bin_dir.join(p.as_str())).with_context(|| {
                format!(
                    "could not resolve {}",
                    self.bin_dir.join(p.as_str()).display()
                )
            })?;
            resolved.push((p.as_str(), from));
        }
        if let Some(same) = self.roots().into_iter().find(|r| {
            r.meta.origin == Origin::Adopted
                && resolved
                    .iter()
                    .all(|(p, from)| same_file(&r.path.join("bin").join(p), from))
        }) {
            self.set_current(&same.name)?;
            self.link_binaries(packages)?;
            return Ok(Some(same.name));
        }
        let name =
            self.free_name(&version.map_or_else(|| "adopted".to_owned(), ToString::to_string));
        let root = self.root(&name);
        let staging = self
            .versions_dir()
            .join(format!("{PARTIAL_PREFIX}adopt-{name}"));
        crate::fsutil::remove_all(&staging)?;
        fs::create_dir_all(staging.join("bin"))
            .with_context(|| format!("could not create {}", staging.display()))?;
        for (p, from) in &resolved {
            let to = staging.join("bin").join(p);
            if fs::hard_link(from, &to).is_err() {
                fs::copy(from, &to).with_context(|| {
                    format!("could not copy {} into {}", from.display(), to.display())
                })?;
            }
        }
        write_meta(
            &staging,
            &RootMeta {
                version: version.map(ToString::to_string),
                commit: None,
                origin: Origin::Adopted,
                signed_by: None,
            },
        )?;
        fs::rename(&staging, &root)
            .with_context(|| format!("could not create {}", root.display()))?;
        self.set_current(&name)?;
        self.link_binaries(packages)?;
        Ok(Some(name))
    }

    /// Deletes old roots: never one in `protect`; bad ones first; of the rest the newest
    /// are kept, `keep` roots in all.
    pub fn prune(
        &self,
        keep: usize,
        protect: &[&str],
        is_bad: impl Fn(&Root) -> bool,
    ) -> Result<Vec<String>> {
        let roots = self.roots();
        // Protected roots count first; the remaining places go to the newest good ones.
        let mut kept: Vec<&str> = roots
            .iter()
            .filter(|r| protect.contains(&r.name.as_str()))
            .map(|r| r.name.as_str())
            .collect();
        for r in roots.iter().filter(|r| !is_bad(r)) {
            if kept.len() >= keep {
                break;
            }
            if !kept.contains(&r.name.as_str()) {
                kept.push(&r.name);
            }
        }
        let mut removed = Vec::new();
        for root in roots.iter().filter(|r| !kept.contains(&r.name.as_str())) {
            crate::fsutil::remove_all(&root.path)?;
            removed.push(root.name.clone());
        }
        Ok(removed)
    }
}

/// True when both paths are the same file (hard links) or have the same content.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(ma), Ok(mb)) if ma.dev() == mb.dev() && ma.ino() == mb.ino() => true,
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => fs::read(a)
            .ok()
            .zip(fs::read(b).ok())
            .is_some_and(|(x, y)| x == y),
        _ => false,
    }
}

/// The version a root name stands for (`0.2.0`, `0.2.0~2`; `None` for "adopted").
pub fn root_version(name: &str) -> Option<Version> {
    Version::parse(name.split('~').next()?).ok()
}

/// Replaces `path` with a symlink to `target` in one rename (no moment without it), made
/// at an unpredictable temporary name ([`crate::fsutil::replace_atomically`]).
fn replace_with_symlink(path: &Path, target: &Path) -> std::io::Result<()> {
    crate::fsutil::replace_atomically(path, |tmp| std::os::unix::fs::symlink(target, tmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(&dir.path().join("data"), &dir.path().join("bin"));
        fs::create_dir_all(&l.bin_dir).unwrap();
        (dir, l)
    }

    fn make_root(l: &Layout, name: &str, packages: &[&str]) {
        let bin = l.root(name).join("bin");
        fs::create_dir_all(&bin).unwrap();
        for p in packages {
            fs::write(bin.join(p), format!("{p} {name}")).unwrap();
        }
    }

    fn read_bin(l: &Layout, p: &str) -> String {
        fs::read_to_string(l.bin_dir.join(p)).unwrap()
    }

    fn pkgs() -> Vec<String> {
        vec!["heph".into(), "hephd".into()]
    }

    #[test]
    fn one_rename_switches_every_binary() {
        let (_d, l) = layout();
        make_root(&l, "0.1.0", &["heph", "hephd"]);
        make_root(&l, "0.2.0", &["heph", "hephd"]);
        l.set_current("0.1.0").unwrap();
        l.link_binaries(&pkgs()).unwrap();
        assert_eq!(read_bin(&l, "hephd"), "hephd 0.1.0");
        l.set_current("0.2.0").unwrap();
        assert_eq!(read_bin(&l, "hephd"), "hephd 0.2.0");
        assert_eq!(read_bin(&l, "heph"), "heph 0.2.0");
        assert_eq!(l.current().as_deref(), Some("0.2.0"));
        assert!(l.is_managed("hephd"));
    }

    #[test]
    fn adopts_plain_binaries_without_changing_them() {
        let (_d, l) = layout();
        fs::write(l.bin_dir.join("hephd"), "plain hephd").unwrap();
        fs::write(l.bin_dir.join("heph"), "plain heph").unwrap();
        fs::write(l.bin_dir.join("other-tool"), "x").unwrap();
        let name = l.adopt(&pkgs(), Some(&Version::new(0, 1, 0))).unwrap();
        assert_eq!(name.as_deref(), Some("0.1.0"));
        assert!(l.is_managed("hephd") && l.is_managed("heph"));
        assert_eq!(read_bin(&l, "hephd"), "plain hephd");
        assert_eq!(
            fs::read_to_string(l.root("0.1.0").join("bin/hephd")).unwrap(),
            "plain hephd"
        );
        assert!(
            !l.is_managed("other-tool"),
            "binaries of other packages are left alone"
        );
        assert_eq!(
            l.adopt(&pkgs(), None).unwrap(),
            None,
            "nothing left to adopt"
        );
        let root = l.find("0.1.0").unwrap();
        assert_eq!(root.meta.origin, Origin::Adopted);
        assert_eq!(root.meta.commit, None, "adopted roots have no commit");
        assert_eq!(root.version(), Some(Version::new(0, 1, 0)));
    }

    #[test]
    fn an_interrupted_adoption_is_finished_with_the_same_root() {
        let (_d, l) = layout();
        fs::write(l.bin_dir.join("hephd"), "plain hephd").unwrap();
        fs::write(l.bin_dir.join("heph"), "plain heph").unwrap();
        l.adopt(&pkgs(), Some(&Version::new(0, 1, 0))).unwrap();
        // The run died after the root was made but before the links: plain files again.
        for p in ["heph", "hephd"] {
            let content = fs::read(l.root("0.1.0").join("bin").join(p)).unwrap();
            fs::remove_file(l.bin_dir.join(p)).unwrap();
            fs::write(l.bin_dir.join(p), content).unwrap();
        }
        let name = l.adopt(&pkgs(), Some(&Version::new(0, 1, 0))).unwrap();
        assert_eq!(name.as_deref(), Some("0.1.0"), "no second root 0.1.0~2");
        assert_eq!(l.roots().len(), 1);
        assert!(l.is_managed("hephd"));
    }

    #[test]
    fn a_manual_reinstall_over_a_link_is_adopted_under_a_free_name() {
        let (_d, l) = layout();
        make_root(&l, "0.1.0", &["heph", "hephd"]);
        l.set_current("0.1.0").unwrap();
        l.link_binaries(&pkgs()).unwrap();
        // `cargo install` renames a plain binary over our link.
        fs::remove_file(l.bin_dir.join("hephd")).unwrap();
        fs::write(l.bin_dir.join("hephd"), "manual hephd").unwrap();
        let name = l
            .adopt(&pkgs(), Some(&Version::new(0, 1, 0)))
            .unwrap()
            .unwrap();
        assert_eq!(name, "0.1.0~2");
        assert_eq!(read_bin(&l, "hephd"), "manual hephd");
        assert_eq!(
            read_bin(&l, "heph"),
            "heph 0.1.0",
            "the linked one is kept as it resolved"
        );
    }

    #[test]
    fn prunes_bad_and_old_roots_but_never_protected_ones() {
        let (_d, l) = layout();
        for n in ["0.1.0", "0.2.0", "0.3.0", "0.4.0"] {
            make_root(&l, n, &["hephd"]);
        }
        let removed = l
            .prune(2, &["0.3.0", "0.1.0"], |r| r.name == "0.4.0")
            .unwrap();
        assert_eq!(removed, ["0.4.0", "0.2.0"]);
        let names: Vec<_> = l.roots().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["0.3.0", "0.1.0"]);
    }

    #[test]
    fn keeps_the_newest_good_roots_up_to_the_limit() {
        let (_d, l) = layout();
        for n in ["0.1.0", "0.2.0", "0.3.0", "0.4.0", "adopted"] {
            make_root(&l, n, &["hephd"]);
        }
        let removed = l.prune(3, &["0.2.0"], |_| false).unwrap();
        assert_eq!(removed, ["0.1.0", "adopted"]);
    }

    #[test]
    fn leftovers_of_an_interrupted_run_are_removed() {
        let (_d, l) = layout();
        fs::create_dir_all(l.staging(&Version::new(0, 2, 0)).join("bin")).unwrap();
        fs::create_dir_all(l.target_dir(&Version::new(0, 2, 0))).unwrap();
        make_root(&l, "0.1.0", &["hephd"]);
        let removed = l.clean_leftovers().unwrap();
        assert_eq!(removed.len(), 2);
        assert!(l.root("0.1.0").exists());
        assert_eq!(l.roots().len(), 1, "staging dirs are never roots");
    }
}
