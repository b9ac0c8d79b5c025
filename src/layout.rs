//! Version roots and the switch between them.
//!
//! ```text
//! <data>/versions/<X.Y.Z>/bin/<binary>    one cargo --root per built release
//! <data>/current -> versions/<X.Y.Z>      one symlink: switching is one rename
//! <bin_dir>/<binary> -> <data>/current/bin/<binary>
//! ```
//! The service runs `<bin_dir>/hephd`; it resolves through `current` at exec time, so
//! the next restart runs whatever `current` names, and a rename switches every binary at
//! once. The running daemon keeps its already-open file.
//!
//! A package is not a binary: one package may install several (pueue installs `pueue` and
//! `pueued`), named unlike it (`bore-cli` installs `bore`). Which binaries a package
//! installed is what cargo recorded (`.crates2.json`): in a built root, in the root's own
//! record, and for a plain install in the cargo root `bin_dir` belongs to.

use std::collections::BTreeMap;
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
    /// Package → the binaries it put in the root. Records written before binaries were
    /// recorded have none: then cargo's install records in the root say (built roots), or
    /// each package is taken to have installed one binary named like it (adopted roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<Bins>,
}

/// The signer of a release tag, as `verify_tag` found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    /// Its principal in `allowed_signers`.
    pub principal: String,
    /// The key, as ssh-keygen names it (`ED25519 key SHA256:…`).
    pub key: String,
}

/// Package → the binaries it installed, in cargo's order.
pub type Bins = BTreeMap<String, Vec<String>>;

/// Package → binaries, from cargo's install records.
pub fn bins_of(records: &[crate::install_records::InstallRecord]) -> Bins {
    records
        .iter()
        .map(|r| (r.package.clone(), r.bins.clone()))
        .collect()
}

/// The binaries `packages` install according to `bins`, in order and without repeats; a
/// package `bins` does not name is taken to install one binary named like it.
pub fn binaries_of(bins: &Bins, packages: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in packages {
        let of_p = bins
            .get(p)
            .filter(|b| !b.is_empty())
            .cloned()
            .unwrap_or_else(|| vec![p.clone()]);
        for b in of_p {
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out
}

/// "taskq installs taskq, taskqd; taskq-server installs taskqd": what `bins` says the
/// packages install, for messages.
pub fn describe_bins(bins: &Bins, packages: &[String]) -> String {
    packages
        .iter()
        .map(|p| match bins.get(p).filter(|b| !b.is_empty()) {
            Some(b) => format!("{p} installs {}", b.join(", ")),
            None => format!("{p} installs no binary"),
        })
        .collect::<Vec<_>>()
        .join("; ")
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

    /// The binaries the root holds for `packages` (what each package installed there, in
    /// order); `None` when a package put none there or one of them is gone.
    pub fn binaries(&self, packages: &[String]) -> Option<Vec<String>> {
        let bin = self.path.join("bin");
        let mut out: Vec<String> = Vec::new();
        for p in packages {
            let of_p = match &self.meta.bins {
                Some(bins) => bins.get(p).filter(|b| !b.is_empty())?.clone(),
                // Roots adopted before binaries were recorded: one named like the package.
                None => vec![p.clone()],
            };
            for b in of_p {
                if !bin.join(&b).exists() {
                    return None;
                }
                if !out.contains(&b) {
                    out.push(b);
                }
            }
        }
        Some(out)
    }

    /// True when every package has its binaries in the root.
    pub fn has_all(&self, packages: &[String]) -> bool {
        self.binaries(packages).is_some()
    }

    /// What the packages installed in this root, for messages.
    pub fn describe(&self, packages: &[String]) -> String {
        match &self.meta.bins {
            Some(bins) => describe_bins(bins, packages),
            None => packages
                .iter()
                .map(|p| format!("{p} installs {p}"))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// Writes a root's record into `dir` (a staging directory, before it is renamed into place).
pub fn write_meta(dir: &Path, meta: &RootMeta) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(meta).context("could not encode a root record")?;
    crate::fsutil::atomic_write(&dir.join(META_FILE), &bytes)
}

/// A root's record: its own file, or (roots of earlier releases) what its name and cargo's
/// install records tell. A record without binaries gets them from cargo's records.
fn read_meta(dir: &Path, name: &str) -> RootMeta {
    let records = || crate::install_records::read(dir).unwrap_or_default();
    let recorded = |records: &[crate::install_records::InstallRecord]| {
        (!records.is_empty()).then(|| bins_of(records))
    };
    if let Some(mut meta) = fs::read(dir.join(META_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<RootMeta>(&b).ok())
    {
        if meta.bins.is_none() {
            meta.bins = recorded(&records());
        }
        return meta;
    }
    let records = records();
    RootMeta {
        version: root_version(name).map(|v| v.to_string()),
        commit: records.iter().find_map(|r| r.commit.clone()),
        origin: if records.is_empty() {
            Origin::Adopted
        } else {
            Origin::Built
        },
        signed_by: None,
        bins: recorded(&records),
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

    /// The link target `<bin_dir>/<binary>` has when we manage it.
    pub fn link_target(&self, binary: &str) -> PathBuf {
        self.current_link().join("bin").join(binary)
    }

    /// True when `<bin_dir>/<binary>` is our link into `current`.
    pub fn is_managed(&self, binary: &str) -> bool {
        fs::read_link(self.bin_dir.join(binary)).is_ok_and(|t| t == self.link_target(binary))
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

    /// What cargo recorded in the cargo root `bin_dir` belongs to (`bin_dir/..`, e.g.
    /// `~/.cargo/.crates2.json`): the binaries of each plainly installed package.
    pub fn plain_bins(&self) -> Bins {
        self.bin_dir
            .parent()
            .and_then(|root| crate::install_records::read(root).ok())
            .map(|records| bins_of(&records))
            .unwrap_or_default()
    }

    /// Package → the binaries it installs, as this machine's records tell: the current
    /// root's, else cargo's records beside `bin_dir`; a package neither names is absent.
    pub fn recorded_bins(&self, packages: &[String]) -> Bins {
        let current = self
            .current()
            .and_then(|c| self.find(&c))
            .and_then(|r| r.meta.bins)
            .unwrap_or_default();
        let plain = self.plain_bins();
        packages
            .iter()
            .filter_map(|p| {
                let b = current
                    .get(p)
                    .or_else(|| plain.get(p))
                    .filter(|b| !b.is_empty())?;
                Some((p.clone(), b.clone()))
            })
            .collect()
    }

    /// The binaries `packages` install (see [`Self::recorded_bins`]; a package nothing
    /// records is taken to install one binary named like it).
    pub fn expected_binaries(&self, packages: &[String]) -> Vec<String> {
        binaries_of(&self.recorded_bins(packages), packages)
    }

    /// Makes `<bin_dir>/<binary>` our link for every binary, and removes our links whose
    /// binary the current root no longer has.
    pub fn link_binaries(&self, binaries: &[String]) -> Result<()> {
        // bin_dir (~/.cargo/bin) is not ours: create it if needed, never change its mode.
        fs::create_dir_all(&self.bin_dir)
            .with_context(|| format!("could not create {}", self.bin_dir.display()))?;
        for b in binaries {
            if !self.is_managed(b) {
                replace_with_symlink(&self.bin_dir.join(b), &self.link_target(b)).with_context(
                    || format!("could not link {} into {}", b, self.bin_dir.display()),
                )?;
            }
        }
        if let Ok(entries) = fs::read_dir(&self.bin_dir) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = fs::read_link(e.path()).is_ok_and(|t| t == self.link_target(&name));
                if ours && !e.path().exists() && !binaries.contains(&name) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// Brings what `bin_dir` holds under management: when any binary of the packages there
    /// (as cargo's records list them, see [`Self::recorded_bins`]) is not our link (a plain
    /// `cargo install`, or a manual reinstall), their files — as they resolve now — are
    /// hard-linked (or copied) into a new root, `current` points at it, and the entries
    /// become links. The daemon's files do not change, only their place; this root is what
    /// a rollback returns to. A root already holding exactly these files (left by an
    /// adoption that was interrupted) is used again. Returns the root's name.
    pub fn adopt(&self, packages: &[String], version: Option<&Version>) -> Result<Option<String>> {
        let recorded = self.recorded_bins(packages);
        // Package → its binaries that are in bin_dir.
        let mut present = Bins::new();
        for p in packages {
            let of_p: Vec<String> = binaries_of(&recorded, std::slice::from_ref(p))
                .into_iter()
                .filter(|b| self.bin_dir.join(b).exists())
                .collect();
            if !of_p.is_empty() {
                present.insert(p.clone(), of_p);
            }
        }
        let adopted: Vec<String> = packages
            .iter()
            .filter(|p| present.contains_key(*p))
            .cloned()
            .collect();
        let binaries = binaries_of(&present, &adopted);
        if binaries.is_empty() || binaries.iter().all(|b| self.is_managed(b)) {
            return Ok(None);
        }
        let mut resolved = Vec::new();
        for b in &binaries {
            let from = fs::canonicalize(self.bin_dir.join(b))
                .with_context(|| format!("could not resolve {}", self.bin_dir.join(b).display()))?;
            resolved.push((b.as_str(), from));
        }
        if let Some(same) = self.roots().into_iter().find(|r| {
            r.meta.origin == Origin::Adopted
                && resolved
                    .iter()
                    .all(|(b, from)| same_file(&r.path.join("bin").join(b), from))
        }) {
            self.set_current(&same.name)?;
            self.link_binaries(&binaries)?;
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
        for (b, from) in &resolved {
            let to = staging.join("bin").join(b);
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
                bins: Some(present),
            },
        )?;
        fs::rename(&staging, &root)
            .with_context(|| format!("could not create {}", root.display()))?;
        self.set_current(&name)?;
        self.link_binaries(&binaries)?;
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

    /// cargo's install records: `(package, binaries)`.
    fn records(dir: &Path, installs: &[(&str, &[&str])]) {
        let installs: serde_json::Map<String, serde_json::Value> = installs
            .iter()
            .map(|(p, bins)| {
                (
                    format!("{p} 1.0.0 (path+file:///src/{p})"),
                    serde_json::json!({ "bins": bins }),
                )
            })
            .collect();
        fs::create_dir_all(dir).unwrap();
        fs::write(
            dir.join(".crates2.json"),
            serde_json::json!({ "installs": installs }).to_string(),
        )
        .unwrap();
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_binary_of_a_package_is_linked_and_switched_together_and_back() {
        let (_d, l) = layout();
        let pueue = names(&["pueue"]);
        make_root(&l, "4.0.3", &["pueue", "pueued"]);
        records(&l.root("4.0.3"), &[("pueue", &["pueue", "pueued"])]);
        // The next release adds a third binary.
        make_root(&l, "4.0.4", &["pueue", "pueued", "pueue-tui"]);
        records(
            &l.root("4.0.4"),
            &[("pueue", &["pueue", "pueued", "pueue-tui"])],
        );
        let old = l.find("4.0.3").unwrap();
        let new = l.find("4.0.4").unwrap();
        assert_eq!(old.binaries(&pueue), Some(names(&["pueue", "pueued"])));
        assert_eq!(
            new.binaries(&pueue),
            Some(names(&["pueue", "pueued", "pueue-tui"]))
        );
        assert!(
            old.describe(&pueue)
                .contains("pueue installs pueue, pueued")
        );

        l.set_current("4.0.3").unwrap();
        l.link_binaries(&old.binaries(&pueue).unwrap()).unwrap();
        assert_eq!(read_bin(&l, "pueued"), "pueued 4.0.3");
        l.set_current("4.0.4").unwrap();
        l.link_binaries(&new.binaries(&pueue).unwrap()).unwrap();
        assert_eq!(read_bin(&l, "pueued"), "pueued 4.0.4");
        assert_eq!(read_bin(&l, "pueue-tui"), "pueue-tui 4.0.4");
        // Back: the daemon and its client go back together; the new binary's link goes.
        l.set_current("4.0.3").unwrap();
        l.link_binaries(&old.binaries(&pueue).unwrap()).unwrap();
        assert_eq!(read_bin(&l, "pueued"), "pueued 4.0.3");
        assert_eq!(read_bin(&l, "pueue"), "pueue 4.0.3");
        assert!(fs::symlink_metadata(l.bin_dir.join("pueue-tui")).is_err());

        // A root missing a binary its package recorded is incomplete.
        fs::remove_file(l.root("4.0.4").join("bin/pueued")).unwrap();
        assert_eq!(l.find("4.0.4").unwrap().binaries(&pueue), None);
        // So is a root without the package.
        assert_eq!(old.binaries(&names(&["pueue", "heph"])), None);
    }

    #[test]
    fn adopts_every_binary_cargos_records_list_for_the_packages() {
        let (d, l) = layout();
        // A plain `cargo install pueue hephaestus-daemon` into the cargo root of bin_dir.
        records(
            d.path(),
            &[
                ("pueue", &["pueue", "pueued"]),
                ("hephaestus-daemon", &["hephd"]),
                ("ripgrep", &["rg"]),
            ],
        );
        for b in ["pueue", "pueued", "hephd", "rg"] {
            fs::write(l.bin_dir.join(b), format!("plain {b}")).unwrap();
        }
        let packages = names(&["pueue", "hephaestus-daemon"]);
        assert_eq!(
            l.expected_binaries(&packages),
            names(&["pueue", "pueued", "hephd"])
        );
        let name = l.adopt(&packages, Some(&Version::new(4, 0, 3))).unwrap();
        assert_eq!(name.as_deref(), Some("4.0.3"));
        for b in ["pueue", "pueued", "hephd"] {
            assert!(l.is_managed(b), "{b}");
            assert_eq!(read_bin(&l, b), format!("plain {b}"));
        }
        assert!(
            !l.is_managed("rg"),
            "another package's binary is left alone"
        );
        let root = l.find("4.0.3").unwrap();
        assert_eq!(
            root.binaries(&packages),
            Some(names(&["pueue", "pueued", "hephd"]))
        );
        // Now the current root's record speaks for the packages.
        assert_eq!(
            l.recorded_bins(&packages).get("pueue"),
            Some(&names(&["pueue", "pueued"]))
        );
        assert_eq!(l.adopt(&packages, None).unwrap(), None, "nothing left");
    }

    #[test]
    fn root_records_written_before_binaries_were_recorded_still_work() {
        let (_d, l) = layout();
        // A built root: its record has no binaries, cargo's records in it do.
        make_root(&l, "0.2.0", &["pueue", "pueued"]);
        records(&l.root("0.2.0"), &[("pueue", &["pueue", "pueued"])]);
        fs::write(
            l.root("0.2.0").join(META_FILE),
            r#"{"version":"0.2.0","commit":"c2","origin":"built"}"#,
        )
        .unwrap();
        // An adopted root: one binary per package, named like it.
        make_root(&l, "0.1.0", &["heph", "hephd"]);
        fs::write(
            l.root("0.1.0").join(META_FILE),
            r#"{"version":"0.1.0","commit":null,"origin":"adopted"}"#,
        )
        .unwrap();
        let built = l.find("0.2.0").unwrap();
        assert_eq!(built.meta.commit.as_deref(), Some("c2"));
        assert_eq!(
            built.binaries(&names(&["pueue"])),
            Some(names(&["pueue", "pueued"]))
        );
        let adopted = l.find("0.1.0").unwrap();
        assert_eq!(adopted.meta.origin, Origin::Adopted);
        assert_eq!(adopted.binaries(&pkgs()), Some(pkgs()));
        // A record written now keeps the binaries, and reads back the same.
        let meta = RootMeta {
            bins: Some(bins_of(
                &crate::install_records::read(&l.root("0.2.0")).unwrap(),
            )),
            ..built.meta.clone()
        };
        write_meta(&l.root("0.2.0"), &meta).unwrap();
        assert_eq!(l.find("0.2.0").unwrap().meta, meta);
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
