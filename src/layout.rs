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
//! record, and for a plain install in the cargo root `bin_dir` belongs to. A root is judged
//! by what it holds, not by the packages configured now.
//!
//! Nothing in `bin_dir` that heph-selfupdate did not link is replaced unless it was first
//! kept in a version root the way back uses (adoption); a file cargo's records give to
//! another package is never replaced (as `cargo install` does not without `--force`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::install_records::InstallRecord;

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
    /// the files in the root's `bin` (adopted roots).
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

/// Package → binaries, from cargo's install records. A package recorded more than once
/// (installed from two sources, each owning binaries of its own: cargo never lets two
/// records own one binary) installs the binaries of all its records.
pub fn bins_of(records: &[InstallRecord]) -> Bins {
    let mut bins = Bins::new();
    for r in records {
        let of_p = bins.entry(r.package.clone()).or_default();
        for b in &r.bins {
            if !of_p.contains(b) {
                of_p.push(b.clone());
            }
        }
    }
    bins
}

/// The binaries `packages` install according to `bins`, in order and without repeats; a
/// package `bins` does not name adds none (a package is not a binary).
pub fn binaries_of(bins: &Bins, packages: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in packages.iter().filter_map(|p| bins.get(p)).flatten() {
        if !out.contains(b) {
            out.push(b.clone());
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

    /// What the root holds: every binary its record lists, for whatever packages it was
    /// installed for (whatever `packages` says now), in order; for a root recorded before
    /// binaries were and without cargo's records, the files in its `bin`. `None` when a
    /// listed binary is gone.
    pub fn binaries(&self) -> Option<Vec<String>> {
        let bin = self.path.join("bin");
        let listed = if let Some(bins) = &self.meta.bins {
            bins.values().flatten().fold(Vec::new(), |mut out, b| {
                if !out.contains(b) {
                    out.push(b.clone());
                }
                out
            })
        } else {
            let mut files: Vec<String> = fs::read_dir(&bin)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            files
        };
        listed
            .iter()
            .all(|b| bin.join(b).exists())
            .then_some(listed)
    }

    /// True when the root holds all it lists, `binary` among them: a root a switch can
    /// go to (as a release, a rollback target or the way back).
    pub fn holds(&self, binary: &str) -> bool {
        self.binaries()
            .is_some_and(|b| b.iter().any(|b| b == binary))
    }

    /// True when the root [`holds`](Self::holds) `binary` and was installed for every one
    /// of `packages` (a root without a record of its packages counts as such): a root
    /// that can stand in for a build of its version.
    pub fn serves(&self, packages: &[String], binary: &str) -> bool {
        let every_package = self.meta.bins.as_ref().is_none_or(|bins| {
            packages
                .iter()
                .all(|p| bins.get(p).is_some_and(|b| !b.is_empty()))
        });
        every_package && self.holds(binary)
    }

    /// What the root holds, for messages: "heph installs heph; hephd installs hephd".
    pub fn describe(&self) -> String {
        match &self.meta.bins {
            Some(bins) => {
                let packages: Vec<String> = bins.keys().cloned().collect();
                describe_bins(bins, &packages)
            }
            None => format!(
                "it holds {}",
                self.binaries()
                    .filter(|b| !b.is_empty())
                    .map_or_else(|| "no binary".to_owned(), |b| b.join(", "))
            ),
        }
    }
}

/// How far `bin_dir` is under management (see [`Layout::management`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Management {
    /// Entries of `bin_dir` that are our links into `current`.
    pub linked: Vec<String>,
    /// Binaries that count, in `bin_dir` but not our links.
    pub plain: Vec<String>,
}

impl Management {
    /// True when `bin_dir` holds our links (whatever `binary` names now).
    pub fn managed(&self) -> bool {
        !self.linked.is_empty()
    }

    /// For `status` and `doctor`: "yes", "partly: …", "no (…)".
    pub fn describe(&self, versions_dir: &Path) -> String {
        let plain = self.plain.join(", ");
        let next = "the next update takes them under management";
        match (self.managed(), self.plain.is_empty()) {
            (true, true) => format!("yes, version roots in {}", versions_dir.display()),
            (true, false) => format!(
                "partly: {plain} in bin_dir not linked by heph-selfupdate ({next}); version roots in {}",
                versions_dir.display()
            ),
            (false, false) => format!("no (plain binaries: {plain}; {next})"),
            (false, true) => "no (nothing installed yet; the first update installs it)".to_owned(),
        }
    }
}

/// A binary in `bin_dir` that heph-selfupdate did not link, which a switch would replace
/// and cargo's records give to a package that is not ours: it is not replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub binary: String,
    /// The package that installed it, as cargo recorded it: `other-tool 3.0.0`.
    pub owner: String,
}

/// What taking `bin_dir` under management before a switch involves (see
/// [`Layout::adoption`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adoption {
    /// Binary → the file it resolves to now (our links included): what the root holds.
    pub take: Vec<(String, PathBuf)>,
    /// Package → its binaries among `take`, for the root's record.
    pub bins: Bins,
    /// The binaries among `take` that are not our links: why an adoption is needed.
    pub plain: Vec<String>,
    /// Files another package installed, which the switch would replace: refused.
    pub refused: Vec<Owned>,
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

    /// The entries of `bin_dir` that are our links into `current`, sorted.
    pub fn linked(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.bin_dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| self.is_managed(n))
            .collect();
        names.sort();
        names
    }

    /// How far `bin_dir` is under management: our links, and the binaries that count —
    /// `binary` and those recorded for `packages` (see [`Self::expected_binaries`]) — that
    /// are there but not our links.
    pub fn management(&self, binary: &str, packages: &[String]) -> Management {
        let mut counted = self.expected_binaries(packages);
        if !counted.iter().any(|b| b == binary) {
            counted.push(binary.to_owned());
        }
        Management {
            linked: self.linked(),
            plain: counted
                .into_iter()
                .filter(|b| self.bin_dir.join(b).exists() && !self.is_managed(b))
                .collect(),
        }
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
    /// `~/.cargo/.crates2.json`, or `.crates.toml` of a cargo before 1.41). Of a package
    /// recorded more than once (from different sources), the records whose binaries are
    /// in `bin_dir` (all of them when none are).
    pub fn plain_records(&self) -> Vec<InstallRecord> {
        let records = self
            .bin_dir
            .parent()
            .and_then(|root| crate::install_records::read(root).ok())
            .unwrap_or_default();
        let present = |r: &InstallRecord| r.bins.iter().any(|b| self.bin_dir.join(b).exists());
        records
            .iter()
            .filter(|r| {
                let same: Vec<&InstallRecord> =
                    records.iter().filter(|o| o.package == r.package).collect();
                same.len() == 1 || present(r) || !same.iter().any(|o| present(o))
            })
            .cloned()
            .collect()
    }

    /// Package → binaries, as cargo recorded them beside `bin_dir` (see
    /// [`Self::plain_records`]).
    pub fn plain_bins(&self) -> Bins {
        bins_of(&self.plain_records())
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

    /// The binaries `packages` install as recorded (see [`Self::recorded_bins`]); a
    /// package nothing records adds none.
    pub fn expected_binaries(&self, packages: &[String]) -> Vec<String> {
        binaries_of(&self.recorded_bins(packages), packages)
    }

    /// True when `<bin_dir>/<name>` is an entry heph-selfupdate must not replace: neither
    /// absent, nor our link, nor a link that leads nowhere.
    fn is_foreign(&self, name: &str) -> bool {
        let path = self.bin_dir.join(name);
        fs::symlink_metadata(&path).is_ok() && !self.is_managed(name) && path.exists()
    }

    /// Makes `<bin_dir>/<binary>` our link for every binary, and removes our links whose
    /// binary the current root no longer has. Refuses, before changing anything, to
    /// replace a file (or a link elsewhere) that heph-selfupdate did not link: such a file
    /// is kept in a root first ([`Self::adopt`]), or left alone.
    pub fn link_binaries(&self, binaries: &[String]) -> Result<()> {
        self.link(binaries, &[])
    }

    /// [`Self::link_binaries`], replacing the entries in `kept` (kept in a root just now).
    fn link(&self, binaries: &[String], kept: &[String]) -> Result<()> {
        // bin_dir (~/.cargo/bin) is not ours: create it if needed, never change its mode.
        fs::create_dir_all(&self.bin_dir)
            .with_context(|| format!("could not create {}", self.bin_dir.display()))?;
        let foreign: Vec<&String> = binaries
            .iter()
            .filter(|b| !kept.contains(b) && self.is_foreign(b))
            .collect();
        if !foreign.is_empty() {
            anyhow::bail!(
                "{} holds {} that heph-selfupdate did not link; linking the version root's binaries would replace {}\nhelp: move {} out of {} (or `cargo uninstall` the package that installed {}), then run again",
                self.bin_dir.display(),
                join_names(&foreign),
                if foreign.len() == 1 { "it" } else { "them" },
                if foreign.len() == 1 { "it" } else { "them" },
                self.bin_dir.display(),
                if foreign.len() == 1 { "it" } else { "them" },
            );
        }
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

    /// What must be kept before a switch to `to` links its binaries: every binary `to`
    /// holds, `binary`, those the current root holds, and those cargo's records beside
    /// `bin_dir` list for `packages` — each that is in `bin_dir` now, our links as they
    /// resolve. One that is not our link is `plain` (hence an adoption is due), unless
    /// cargo's records give it to another package (not `binary`): then it is `refused`.
    pub fn adoption(&self, to: &Root, binary: &str, packages: &[String]) -> Result<Adoption> {
        let current = self.current().and_then(|c| self.find(&c));
        let plain_records = self.plain_records();
        let recorded = binaries_of(&bins_of(&plain_records), packages);
        let mut names: Vec<String> = Vec::new();
        let lists = [
            to.binaries().unwrap_or_default(),
            vec![binary.to_owned()],
            current
                .as_ref()
                .and_then(Root::binaries)
                .unwrap_or_default(),
            recorded,
        ];
        for b in lists.into_iter().flatten() {
            if !names.contains(&b) {
                names.push(b);
            }
        }
        let in_bins = |bins: Option<&Bins>, b: &str| {
            bins.and_then(|bins| {
                bins.iter()
                    .find(|(_, of_p)| of_p.iter().any(|x| x == b))
                    .map(|(p, _)| p.clone())
            })
        };
        let mut out = Adoption::default();
        for b in names {
            let path = self.bin_dir.join(&b);
            if !path.exists() {
                continue;
            }
            let ours = self.is_managed(&b);
            let owner = plain_records
                .iter()
                .find(|r| r.bins.contains(&b))
                .filter(|_| !ours);
            if let Some(r) = owner.filter(|r| !packages.contains(&r.package) && b != binary) {
                out.refused.push(Owned {
                    binary: b,
                    owner: r
                        .version
                        .as_ref()
                        .map_or_else(|| r.package.clone(), |v| format!("{} {v}", r.package)),
                });
                continue;
            }
            let package = owner
                .map(|r| r.package.clone())
                .or_else(|| {
                    ours.then(|| in_bins(current.as_ref().and_then(|c| c.meta.bins.as_ref()), &b))
                        .flatten()
                })
                .or_else(|| in_bins(to.meta.bins.as_ref(), &b))
                .or_else(|| packages.first().cloned())
                .unwrap_or_else(|| b.clone());
            let from = fs::canonicalize(&path)
                .with_context(|| format!("could not resolve {}", path.display()))?;
            out.bins.entry(package).or_default().push(b.clone());
            if !ours {
                out.plain.push(b.clone());
            }
            out.take.push((b, from));
        }
        Ok(out)
    }

    /// Brings what `bin_dir` holds under management, as [`Self::adoption`] found it: when
    /// any of it is not our link (a plain `cargo install`, a copy, a manual reinstall over
    /// a link), all of it — as it resolves now — is hard-linked (or copied) into a new
    /// root, `current` points at it, and the entries become links. The daemon's files do
    /// not change, only their place; this root is what a rollback returns to. A root
    /// already holding exactly these files (left by an adoption that was interrupted) is
    /// used again. Returns the root's name (`None`: nothing to adopt). Refused files must
    /// have been dealt with first: they are never taken.
    pub fn adopt(&self, adoption: &Adoption, version: Option<&Version>) -> Result<Option<String>> {
        if adoption.plain.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = adoption.take.iter().map(|(b, _)| b.clone()).collect();
        if let Some(same) = self.roots().into_iter().find(|r| {
            r.meta.origin == Origin::Adopted
                && adoption
                    .take
                    .iter()
                    .all(|(b, from)| same_file(&r.path.join("bin").join(b), from))
        }) {
            self.set_current(&same.name)?;
            self.link(&names, &adoption.plain)?;
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
        for (b, from) in &adoption.take {
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
                bins: Some(adoption.bins.clone()),
            },
        )?;
        fs::rename(&staging, &root)
            .with_context(|| format!("could not create {}", root.display()))?;
        self.set_current(&name)?;
        self.link(&names, &adoption.plain)?;
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

/// "`a`", "`a` and `b`", "`a`, `b` and `c`".
fn join_names(names: &[&String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
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

    fn make_root(l: &Layout, name: &str, binaries: &[&str]) {
        let bin = l.root(name).join("bin");
        fs::create_dir_all(&bin).unwrap();
        for p in binaries {
            fs::write(bin.join(p), format!("{p} {name}")).unwrap();
        }
    }

    fn read_bin(l: &Layout, p: &str) -> String {
        fs::read_to_string(l.bin_dir.join(p)).unwrap()
    }

    fn pkgs() -> Vec<String> {
        vec!["heph".into(), "hephd".into()]
    }

    /// cargo's install records: `(package, binaries)`.
    fn records(dir: &Path, installs: &[(&str, &[&str])]) {
        let installs: serde_json::Map<String, serde_json::Value> = installs
            .iter()
            .enumerate()
            .map(|(i, (p, bins))| {
                (
                    format!("{p} 1.0.{i} (path+file:///src/{i}/{p})"),
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

    /// A built root `name` whose records say `installs`.
    fn built(l: &Layout, name: &str, installs: &[(&str, &[&str])]) -> Root {
        let all: Vec<&str> = installs
            .iter()
            .flat_map(|(_, b)| b.iter().copied())
            .collect();
        make_root(l, name, &all);
        records(&l.root(name), installs);
        l.find(name).unwrap()
    }

    /// Adopts what a switch to `to` would replace (nothing may be refused).
    fn adopt(
        l: &Layout,
        to: &Root,
        binary: &str,
        packages: &[String],
        version: Option<&Version>,
    ) -> Option<String> {
        let adoption = l.adoption(to, binary, packages).unwrap();
        assert_eq!(adoption.refused, []);
        l.adopt(&adoption, version).unwrap()
    }

    fn heph_root(l: &Layout) -> Root {
        built(l, "0.2.0", &[("heph", &["heph"]), ("hephd", &["hephd"])])
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
        let to = heph_root(&l);
        fs::write(l.bin_dir.join("hephd"), "plain hephd").unwrap();
        fs::write(l.bin_dir.join("heph"), "plain heph").unwrap();
        fs::write(l.bin_dir.join("other-tool"), "x").unwrap();
        let name = adopt(&l, &to, "hephd", &pkgs(), Some(&Version::new(0, 1, 0)));
        assert_eq!(name.as_deref(), Some("0.1.0"));
        assert!(l.is_managed("hephd") && l.is_managed("heph"));
        assert_eq!(read_bin(&l, "hephd"), "plain hephd");
        assert_eq!(
            fs::read_to_string(l.root("0.1.0").join("bin/hephd")).unwrap(),
            "plain hephd"
        );
        assert!(
            !l.is_managed("other-tool"),
            "binaries no root links are left alone"
        );
        assert_eq!(
            adopt(&l, &to, "hephd", &pkgs(), None),
            None,
            "nothing left to adopt"
        );
        let root = l.find("0.1.0").unwrap();
        assert_eq!(root.meta.origin, Origin::Adopted);
        assert_eq!(root.meta.commit, None, "adopted roots have no commit");
        assert_eq!(root.version(), Some(Version::new(0, 1, 0)));
        assert_eq!(root.binaries(), Some(pkgs()));
    }

    #[test]
    fn a_daemon_without_records_is_adopted_with_everything_the_new_root_links() {
        let (_d, l) = layout();
        // Copied by hand (a prebuilt download, a distribution package): no records.
        fs::write(l.bin_dir.join("taskq"), "copied taskq").unwrap();
        fs::write(l.bin_dir.join("taskqd"), "copied taskqd").unwrap();
        let to = built(&l, "0.2.0", &[("taskq", &["taskq", "taskqd"])]);
        let taskq = names(&["taskq"]);
        assert_eq!(l.expected_binaries(&taskq), Vec::<String>::new());
        let name = adopt(&l, &to, "taskqd", &taskq, Some(&Version::new(0, 1, 0)));
        assert_eq!(name.as_deref(), Some("0.1.0"));
        let root = l.find("0.1.0").unwrap();
        assert_eq!(root.binaries(), Some(names(&["taskq", "taskqd"])));
        assert!(root.holds("taskqd"));
        assert_eq!(root.describe(), "taskq installs taskq, taskqd");
        // The switch and the way back: the copied daemon is back, never deleted.
        l.set_current("0.2.0").unwrap();
        l.link_binaries(&to.binaries().unwrap()).unwrap();
        assert_eq!(read_bin(&l, "taskqd"), "taskqd 0.2.0");
        l.set_current("0.1.0").unwrap();
        l.link_binaries(&root.binaries().unwrap()).unwrap();
        assert_eq!(read_bin(&l, "taskqd"), "copied taskqd");
    }

    #[test]
    fn a_binary_another_package_installed_is_refused_and_never_replaced() {
        let (d, l) = layout();
        records(
            d.path(),
            &[
                ("taskq", &["taskq", "taskqd"]),
                ("other-tool", &["taskq-top"]),
            ],
        );
        for b in ["taskq", "taskqd", "taskq-top"] {
            fs::write(l.bin_dir.join(b), format!("plain {b}")).unwrap();
        }
        let to = built(&l, "0.2.0", &[("taskq", &["taskq", "taskqd", "taskq-top"])]);
        let adoption = l.adoption(&to, "taskqd", &names(&["taskq"])).unwrap();
        assert_eq!(
            adoption.refused,
            [Owned {
                binary: "taskq-top".into(),
                owner: "other-tool 1.0.1".into()
            }]
        );
        assert_eq!(adoption.plain, ["taskq", "taskqd"]);
        // Linking never replaces a file heph-selfupdate did not link.
        l.set_current("0.2.0").unwrap();
        let err = l.link_binaries(&to.binaries().unwrap()).unwrap_err();
        assert!(
            format!("{err:#}").contains("`taskq`, `taskqd` and `taskq-top`"),
            "{err:#}"
        );
        assert_eq!(read_bin(&l, "taskq-top"), "plain taskq-top");
        assert!(!l.is_managed("taskq"), "nothing was changed");
        // A link of ours that leads nowhere is no file of anybody's.
        fs::remove_file(l.bin_dir.join("taskq-top")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/taskq-top", l.bin_dir.join("taskq-top")).unwrap();
        let adoption = l.adoption(&to, "taskqd", &names(&["taskq"])).unwrap();
        assert_eq!(adoption.refused, []);
    }

    #[test]
    fn an_interrupted_adoption_is_finished_with_the_same_root() {
        let (_d, l) = layout();
        let to = heph_root(&l);
        fs::write(l.bin_dir.join("hephd"), "plain hephd").unwrap();
        fs::write(l.bin_dir.join("heph"), "plain heph").unwrap();
        adopt(&l, &to, "hephd", &pkgs(), Some(&Version::new(0, 1, 0)));
        // The run died after the root was made but before the links: plain files again.
        for p in ["heph", "hephd"] {
            let content = fs::read(l.root("0.1.0").join("bin").join(p)).unwrap();
            fs::remove_file(l.bin_dir.join(p)).unwrap();
            fs::write(l.bin_dir.join(p), content).unwrap();
        }
        let name = adopt(&l, &to, "hephd", &pkgs(), Some(&Version::new(0, 1, 0)));
        assert_eq!(name.as_deref(), Some("0.1.0"), "no second root 0.1.0~2");
        assert_eq!(l.roots().len(), 2);
        assert!(l.is_managed("hephd"));
    }

    #[test]
    fn a_manual_reinstall_over_a_link_is_adopted_under_a_free_name() {
        let (_d, l) = layout();
        built(&l, "0.1.0", &[("heph", &["heph"]), ("hephd", &["hephd"])]);
        l.set_current("0.1.0").unwrap();
        l.link_binaries(&pkgs()).unwrap();
        let to = heph_root(&l);
        // `cargo install` renames a plain binary over our link.
        fs::remove_file(l.bin_dir.join("hephd")).unwrap();
        fs::write(l.bin_dir.join("hephd"), "manual hephd").unwrap();
        assert_eq!(
            l.management("hephd", &pkgs()),
            Management {
                linked: names(&["heph"]),
                plain: names(&["hephd"])
            }
        );
        let name = adopt(&l, &to, "hephd", &pkgs(), Some(&Version::new(0, 1, 0))).unwrap();
        assert_eq!(name, "0.1.0~2");
        assert_eq!(read_bin(&l, "hephd"), "manual hephd");
        assert_eq!(
            read_bin(&l, "heph"),
            "heph 0.1.0",
            "the linked one is kept as it resolved"
        );
        assert_eq!(
            l.management("hephd", &pkgs()),
            Management {
                linked: pkgs(),
                plain: Vec::new()
            }
        );
    }

    #[test]
    fn every_binary_of_a_package_is_linked_and_switched_together_and_back() {
        let (_d, l) = layout();
        let old = built(&l, "4.0.3", &[("pueue", &["pueue", "pueued"])]);
        // The next release adds a third binary.
        let new = built(&l, "4.0.4", &[("pueue", &["pueue", "pueued", "pueue-tui"])]);
        assert_eq!(old.binaries(), Some(names(&["pueue", "pueued"])));
        assert_eq!(
            new.binaries(),
            Some(names(&["pueue", "pueued", "pueue-tui"]))
        );
        assert_eq!(old.describe(), "pueue installs pueue, pueued");

        l.set_current("4.0.3").unwrap();
        l.link_binaries(&old.binaries().unwrap()).unwrap();
        assert_eq!(read_bin(&l, "pueued"), "pueued 4.0.3");
        l.set_current("4.0.4").unwrap();
        l.link_binaries(&new.binaries().unwrap()).unwrap();
        assert_eq!(read_bin(&l, "pueued"), "pueued 4.0.4");
        assert_eq!(read_bin(&l, "pueue-tui"), "pueue-tui 4.0.4");
        // Back: the daemon and its client go back together; the new binary's link goes.
        l.set_current("4.0.3").unwrap();
        l.link_binaries(&old.binaries().unwrap()).unwrap();
        assert_eq!(read_bin(&l, "pueued"), "pueued 4.0.3");
        assert_eq!(read_bin(&l, "pueue"), "pueue 4.0.3");
        assert!(fs::symlink_metadata(l.bin_dir.join("pueue-tui")).is_err());

        // A root missing a binary its package recorded is incomplete.
        fs::remove_file(l.root("4.0.4").join("bin/pueued")).unwrap();
        assert_eq!(l.find("4.0.4").unwrap().binaries(), None);
        assert!(!l.find("4.0.4").unwrap().holds("pueue"));
    }

    #[test]
    fn a_root_is_judged_by_what_it_holds_not_by_the_packages_configured_now() {
        let (_d, l) = layout();
        // 0.1.0: one package with the client and the daemon; later releases split them.
        let old = built(&l, "0.1.0", &[("taskq", &["taskq", "taskqd"])]);
        let split = names(&["taskq", "taskq-server"]);
        assert!(old.holds("taskqd"), "a way back for the daemon");
        assert!(!old.holds("taskq-daemon"));
        assert!(
            !old.serves(&split, "taskqd"),
            "no stand-in for a build of 0.1.0 with taskq-server"
        );
        assert!(old.serves(&names(&["taskq"]), "taskqd"));
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
        let to = built(
            &l,
            "4.0.4",
            &[
                ("pueue", &["pueue", "pueued"]),
                ("hephaestus-daemon", &["hephd"]),
            ],
        );
        let name = adopt(&l, &to, "pueued", &packages, Some(&Version::new(4, 0, 3)));
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
        assert_eq!(root.binaries(), Some(names(&["hephd", "pueue", "pueued"])));
        assert!(root.serves(&packages, "pueued"));
        // Now the current root's record speaks for the packages.
        assert_eq!(
            l.recorded_bins(&packages).get("pueue"),
            Some(&names(&["pueue", "pueued"]))
        );
        assert_eq!(
            adopt(&l, &to, "pueued", &packages, None),
            None,
            "nothing left"
        );
    }

    #[test]
    fn of_a_package_recorded_twice_the_records_whose_binaries_are_there_count() {
        let (d, l) = layout();
        // taskq from a path, then its daemon alone from git; a third record is stale.
        records(
            d.path(),
            &[
                ("taskq", &["taskq"]),
                ("taskq", &["taskqd"]),
                ("taskq", &["taskq-old"]),
            ],
        );
        for b in ["taskq", "taskqd"] {
            fs::write(l.bin_dir.join(b), format!("plain {b}")).unwrap();
        }
        assert_eq!(l.plain_records().len(), 2);
        assert_eq!(
            l.expected_binaries(&names(&["taskq"])),
            names(&["taskq", "taskqd"])
        );
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
        // An adopted root: it holds the files in its bin.
        make_root(&l, "0.1.0", &["heph", "hephd"]);
        fs::write(
            l.root("0.1.0").join(META_FILE),
            r#"{"version":"0.1.0","commit":null,"origin":"adopted"}"#,
        )
        .unwrap();
        let built = l.find("0.2.0").unwrap();
        assert_eq!(built.meta.commit.as_deref(), Some("c2"));
        assert_eq!(built.binaries(), Some(names(&["pueue", "pueued"])));
        let adopted = l.find("0.1.0").unwrap();
        assert_eq!(adopted.meta.origin, Origin::Adopted);
        assert_eq!(adopted.binaries(), Some(pkgs()));
        assert_eq!(adopted.describe(), "it holds heph, hephd");
        assert!(adopted.serves(&names(&["anything"]), "hephd"));
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
