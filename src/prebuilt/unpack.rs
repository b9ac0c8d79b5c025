//! Unpacking a verified archive (`.tar.gz`, `.tar.xz`, `.zip`) into a new directory,
//! streaming, with every entry checked before anything is written for it.
//!
//! Rules (docs/assets.md, "Unpacking"):
//! - Paths are relative and stay inside: no `..`, no absolute paths, nothing written
//!   through a symlink; symlinks must point inside (checked lexically when made, and by
//!   resolving them once everything is unpacked); hard links must name a regular file
//!   unpacked before them.
//! - Regular files, directories, symlinks and hard links only: device files, fifos and
//!   sparse files are refused; an entry named twice is refused (a later entry must not
//!   replace what was checked before).
//! - At most [`UnpackLimits::max_bytes`] unpacked bytes (counted as written, whatever
//!   the headers claim) in at most [`UnpackLimits::max_entries`] entries: a decompression
//!   bomb stops there.
//! - Modes are `0755` for directories and for files with any execute bit, else `0644`:
//!   no setuid, setgid, sticky or world-writable bits; owners and times are not kept.
//! - Everything is unpacked into a temporary directory beside the destination, renamed
//!   into place only when complete: a failure or a kill part-way never leaves a partial
//!   tree under the destination's name (only a `.heph-unpack-*` directory to clear).
//!
//! A failure to read the archive (cut short, corrupt, over a limit, hostile) is
//! [`FailureKind::Refused`](super::FailureKind::Refused): the archive's checksum already
//! matched, so it is the release's archive that is wrong. A failure to write (a full
//! disk) is `Interrupted`.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::{Failure, Result};

/// The prefix of the temporary directories an unpack works in.
pub const TEMP_PREFIX: &str = ".heph-unpack-";
/// Longest symlink target read from a zip entry.
const MAX_LINK_BYTES: u64 = 4096;
/// Deepest path accepted.
const MAX_DEPTH: usize = 32;

/// An archive format heph-selfupdate unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    TarXz,
    TarGz,
    Zip,
}

impl ArchiveFormat {
    /// In order of preference when a release has one archive in several formats.
    pub const ALL: [Self; 3] = [Self::TarXz, Self::TarGz, Self::Zip];

    /// The file name suffix the publishing recipe writes.
    pub fn extension(self) -> &'static str {
        match self {
            Self::TarXz => ".tar.xz",
            Self::TarGz => ".tar.gz",
            Self::Zip => ".zip",
        }
    }

    /// The format a file name says (`.tar.xz`/`.txz`, `.tar.gz`/`.tgz`, `.zip`).
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let ends = |s: &str| lower.ends_with(s);
        if ends(".tar.xz") || ends(".txz") {
            Some(Self::TarXz)
        } else if ends(".tar.gz") || ends(".tgz") {
            Some(Self::TarGz)
        } else if ends(".zip") {
            Some(Self::Zip)
        } else {
            None
        }
    }
}

/// How much an archive may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    pub max_bytes: u64,
    pub max_entries: usize,
    /// The xz decoder's memory limit in KiB. The dictionary grows with the data, so
    /// memory stays near the smaller of the dictionary and the unpacked size.
    pub xz_memory_kib: u32,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_bytes: 512 << 20,
            max_entries: 10_000,
            // xz -9 (cargo-dist's level) needs 65 MiB; anything above is refused.
            xz_memory_kib: 70 << 10,
        }
    }
}

/// One regular file that was unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedFile {
    /// Relative to the destination.
    pub path: PathBuf,
    pub executable: bool,
    pub bytes: u64,
}

/// What an archive unpacked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub dir: PathBuf,
    /// The regular files, in archive order (hard links included).
    pub files: Vec<UnpackedFile>,
    pub bytes: u64,
}

impl Unpacked {
    /// The executables, by their paths relative to the destination.
    pub fn executables(&self) -> impl Iterator<Item = &Path> {
        self.files
            .iter()
            .filter(|f| f.executable)
            .map(|f| f.path.as_path())
    }
}

/// Unpacks `archive` (named `name` in messages) into `dest`, which must not exist yet and
/// whose parent must.
pub fn unpack(
    archive: &Path,
    name: &str,
    format: ArchiveFormat,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<Unpacked> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if fs::symlink_metadata(dest).is_ok() {
        return Err(Failure::interrupted(format!(
            "cannot unpack {name} into {}: it already exists\nhelp: a previous run left it; it is removed before the next try",
            dest.display()
        )));
    }
    let temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir_in(parent)
        .map_err(|e| write_failed(name, parent, &e))?;
    let mut sink = Sink::new(temp.path(), name, limits);
    let file = fs::File::open(archive).map_err(|e| {
        Failure::interrupted(format!(
            "could not open the downloaded {name} ({}): {e}",
            archive.display()
        ))
    })?;
    match format {
        ArchiveFormat::TarGz => {
            let decoder = flate2::read::GzDecoder::new(BufReader::new(file));
            unpack_tar(decoder, &mut sink)?;
        }
        ArchiveFormat::TarXz => {
            let decoder = lzma_rust2::XzReader::new_mem_limit(
                BufReader::new(file),
                true,
                limits.xz_memory_kib,
            );
            unpack_tar(decoder, &mut sink)?;
        }
        ArchiveFormat::Zip => unpack_zip(file, &mut sink)?,
    }
    sink.check_symlinks()?;
    let (files, bytes) = (sink.files, sink.bytes);
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| write_failed(name, temp.path(), &e))?;
    let kept = temp.keep();
    if let Err(e) = fs::rename(&kept, dest) {
        let _ = fs::remove_dir_all(&kept);
        return Err(write_failed(name, dest, &e));
    }
    Ok(Unpacked {
        dir: dest.to_path_buf(),
        files,
        bytes,
    })
}

/// Removes what interrupted unpacks left in `dir` (their temporary directories).
pub fn remove_leftovers(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let is_ours = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
        if is_ours && entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn write_failed(name: &str, path: &Path, e: &io::Error) -> Failure {
    Failure::interrupted(format!(
        "could not unpack {name} into {}: {e}\nhelp: check the free space and permissions there; nothing partial was kept",
        path.display()
    ))
}

fn hostile(name: &str, entry: &Path, why: &str) -> Failure {
    Failure::refused(format!(
        "{name} is refused: its entry {} {why}\nhelp: the archive's checksum matched, so the release itself carries it; the release is held until a person looks",
        entry.display()
    ))
}

fn corrupt(name: &str, e: &dyn std::fmt::Display) -> Failure {
    Failure::refused(format!(
        "{name} cannot be unpacked: {e}\nhelp: the archive is cut short or corrupt although its checksum matched: the release's archive itself is broken; the release is held until a person looks"
    ))
}

fn unpack_tar(reader: impl Read, sink: &mut Sink<'_>) -> Result<()> {
    use tar::EntryType;
    let mut archive = tar::Archive::new(reader);
    let name = sink.name;
    let entries = archive.entries().map_err(|e| corrupt(name, &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(name, &e))?;
        let raw = entry.path().map_err(|e| corrupt(name, &e))?.into_owned();
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        sink.count(&raw)?;
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let mode = entry.header().mode().map_err(|e| corrupt(name, &e))?;
                let size = entry.size();
                sink.file(&raw, mode & 0o111 != 0, size, &mut entry)?;
            }
            EntryType::Directory => sink.dir(&raw)?,
            EntryType::Symlink | EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| corrupt(name, &e))?
                    .ok_or_else(|| hostile(name, &raw, "is a link without a target"))?
                    .into_owned();
                if kind == EntryType::Symlink {
                    sink.symlink(&raw, &target)?;
                } else {
                    sink.hard_link(&raw, &target)?;
                }
            }
            EntryType::Char | EntryType::Block => {
                return Err(hostile(name, &raw, "is a device file"));
            }
            EntryType::Fifo => return Err(hostile(name, &raw, "is a fifo")),
            other => {
                return Err(hostile(
                    name,
                    &raw,
                    &format!("is of a kind that is not unpacked ({other:?})"),
                ));
            }
        }
    }
    // Read the compressed stream to its end, so its own check (gzip's CRC, xz's) runs.
    let mut rest = archive.into_inner();
    io::copy(
        &mut (&mut rest).take(sink.limits.max_bytes),
        &mut io::sink(),
    )
    .map_err(|e| corrupt(name, &e))?;
    Ok(())
}

fn unpack_zip(file: fs::File, sink: &mut Sink<'_>) -> Result<()> {
    const S_IFMT: u32 = 0o170_000;
    const S_IFREG: u32 = 0o100_000;
    const S_IFDIR: u32 = 0o040_000;
    const S_IFLNK: u32 = 0o120_000;
    let name = sink.name;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| corrupt(name, &e))?;
    if zip.len() > sink.limits.max_entries {
        return Err(Failure::refused(format!(
            "{name} is refused: it has {} entries, more than the {} an archive may have\nhelp: the release is held until a person looks",
            zip.len(),
            sink.limits.max_entries
        )));
    }
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| corrupt(name, &e))?;
        let text = entry.name().map_err(|e| corrupt(name, &e))?.into_owned();
        let raw = PathBuf::from(&text);
        if text.contains('\\') {
            return Err(hostile(name, &raw, "has a `\\` in its name"));
        }
        sink.count(&raw)?;
        if entry.encrypted() {
            return Err(hostile(name, &raw, "is encrypted"));
        }
        let mode = entry.unix_mode();
        let kind = mode.map(|m| m & S_IFMT).filter(|k| *k != 0);
        match kind {
            Some(S_IFLNK) => {
                let mut target = Vec::new();
                (&mut entry)
                    .take(MAX_LINK_BYTES)
                    .read_to_end(&mut target)
                    .map_err(|e| corrupt(name, &e))?;
                let target = String::from_utf8(target)
                    .map_err(|_| hostile(name, &raw, "is a symlink whose target is not text"))?;
                sink.symlink(&raw, Path::new(&target))?;
            }
            Some(S_IFDIR) => sink.dir(&raw)?,
            None if entry.is_dir() => sink.dir(&raw)?,
            Some(S_IFREG) | None => {
                let executable = mode.is_some_and(|m| m & 0o111 != 0);
                let size = entry.size();
                sink.file(&raw, executable, size, &mut entry)?;
            }
            Some(_) => {
                return Err(hostile(name, &raw, "is a device file, fifo or socket"));
            }
        }
    }
    Ok(())
}

/// Where entries go, and what was written so far.
struct Sink<'a> {
    root: &'a Path,
    name: &'a str,
    limits: &'a UnpackLimits,
    entries: usize,
    bytes: u64,
    /// Every path made so far (duplicates are refused).
    made: HashSet<PathBuf>,
    files: Vec<UnpackedFile>,
    symlinks: Vec<PathBuf>,
}

impl<'a> Sink<'a> {
    fn new(root: &'a Path, name: &'a str, limits: &'a UnpackLimits) -> Self {
        Self {
            root,
            name,
            limits,
            entries: 0,
            bytes: 0,
            made: HashSet::new(),
            files: Vec::new(),
            symlinks: Vec::new(),
        }
    }

    fn count(&mut self, raw: &Path) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(hostile(
                self.name,
                raw,
                &format!(
                    "is past the {} entries an archive may have",
                    self.limits.max_entries
                ),
            ));
        }
        Ok(())
    }

    /// The entry's path, checked, relative to the root; `None` for the root itself.
    fn relative(&self, raw: &Path) -> Result<Option<PathBuf>> {
        let mut out = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(part) => out.push(part),
                Component::CurDir => {}
                Component::ParentDir => return Err(hostile(self.name, raw, "has a `..`")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(hostile(self.name, raw, "is an absolute path"));
                }
            }
        }
        if out.components().count() > MAX_DEPTH {
            return Err(hostile(self.name, raw, "is nested too deep"));
        }
        Ok((!out.as_os_str().is_empty()).then_some(out))
    }

    /// Checks `rel` is new and makes its parent directories, refusing to go through a
    /// symlink or a file. Only a directory may already be there (made as a parent).
    fn prepare(&mut self, raw: &Path, rel: &Path, is_dir: bool) -> Result<PathBuf> {
        if !self.made.insert(rel.to_path_buf()) {
            return Err(hostile(self.name, raw, "comes twice"));
        }
        let mut at = self.root.to_path_buf();
        let parents: Vec<_> = rel
            .parent()
            .into_iter()
            .flat_map(Path::components)
            .collect();
        for c in parents {
            at.push(c);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(hostile(self.name, raw, "goes through a symlink"));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(hostile(self.name, raw, "goes through a file")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    make_dir(&at).map_err(|e| write_failed(self.name, &at, &e))?;
                }
                Err(e) => return Err(write_failed(self.name, &at, &e)),
            }
        }
        let path = self.root.join(rel);
        if !is_dir && fs::symlink_metadata(&path).is_ok() {
            return Err(hostile(self.name, raw, "comes twice"));
        }
        Ok(path)
    }

    fn dir(&mut self, raw: &Path) -> Result<()> {
        let Some(rel) = self.relative(raw)? else {
            return Ok(());
        };
        let path = self.prepare(raw, &rel, true)?;
        match fs::symlink_metadata(&path) {
            // Made as the parent of an earlier entry.
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(hostile(self.name, raw, "is a directory over another entry")),
            Err(_) => make_dir(&path).map_err(|e| write_failed(self.name, &path, &e)),
        }
    }

    /// `size`: what the entry's header says; fewer bytes mean the archive is cut short.
    fn file(&mut self, raw: &Path, executable: bool, size: u64, data: &mut dyn Read) -> Result<()> {
        let rel = self
            .relative(raw)?
            .ok_or_else(|| hostile(self.name, raw, "is a file without a name"))?;
        let path = self.prepare(raw, &rel, false)?;
        let mode = if executable { 0o755 } else { 0o644 };
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| write_failed(self.name, &path, &e))?;
        let room = self.limits.max_bytes - self.bytes;
        let mut limited = data.take(room + 1);
        let written = copy_reading(&mut limited, &mut out).map_err(|e| match e {
            Copy::Read(e) => corrupt(self.name, &e),
            Copy::Write(e) => write_failed(self.name, &path, &e),
        })?;
        if written > room {
            return Err(Failure::refused(format!(
                "{} is refused: it unpacks to more than {} bytes (a decompression bomb, or a release larger than allowed)\nhelp: the release is held until a person looks",
                self.name, self.limits.max_bytes
            )));
        }
        if written < size {
            return Err(corrupt(
                self.name,
                &format!("{} ends after {written} of its {size} bytes", raw.display()),
            ));
        }
        self.bytes += written;
        // The umask may have taken bits away; the modes are exactly these.
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| write_failed(self.name, &path, &e))?;
        self.files.push(UnpackedFile {
            path: rel,
            executable,
            bytes: written,
        });
        Ok(())
    }

    fn symlink(&mut self, raw: &Path, target: &Path) -> Result<()> {
        let rel = self
            .relative(raw)?
            .ok_or_else(|| hostile(self.name, raw, "is a symlink without a name"))?;
        // Lexically from the link's directory: must not climb above the root.
        let mut depth = rel.components().count() - 1;
        for c in target.components() {
            match c {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir if depth > 0 => depth -= 1,
                Component::ParentDir => {
                    return Err(hostile(
                        self.name,
                        raw,
                        "is a symlink pointing out of the archive",
                    ));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(hostile(self.name, raw, "is a symlink to an absolute path"));
                }
            }
        }
        if target.as_os_str().is_empty() {
            return Err(hostile(self.name, raw, "is a symlink without a target"));
        }
        let path = self.prepare(raw, &rel, false)?;
        std::os::unix::fs::symlink(target, &path)
            .map_err(|e| write_failed(self.name, &path, &e))?;
        self.symlinks.push(rel);
        Ok(())
    }

    fn hard_link(&mut self, raw: &Path, target: &Path) -> Result<()> {
        let rel = self
            .relative(raw)?
            .ok_or_else(|| hostile(self.name, raw, "is a hard link without a name"))?;
        let target_rel = self
            .relative(target)
            .map_err(|_| hostile(self.name, raw, "is a hard link pointing out of the archive"))?
            .ok_or_else(|| hostile(self.name, raw, "is a hard link without a target"))?;
        let Some(original) = self.files.iter().find(|f| f.path == target_rel).cloned() else {
            return Err(hostile(
                self.name,
                raw,
                "is a hard link to something that is not a file unpacked before it",
            ));
        };
        let path = self.prepare(raw, &rel, false)?;
        fs::hard_link(self.root.join(&target_rel), &path)
            .map_err(|e| write_failed(self.name, &path, &e))?;
        self.files.push(UnpackedFile {
            path: rel,
            ..original
        });
        Ok(())
    }

    /// Every symlink, resolved for real now that everything is in place, stays inside.
    fn check_symlinks(&self) -> Result<()> {
        let root =
            fs::canonicalize(self.root).map_err(|e| write_failed(self.name, self.root, &e))?;
        for rel in &self.symlinks {
            match fs::canonicalize(self.root.join(rel)) {
                Ok(real) if real.starts_with(&root) => {}
                Ok(_) => {
                    return Err(hostile(
                        self.name,
                        rel,
                        "is a symlink pointing out of the archive",
                    ));
                }
                Err(_) => {
                    return Err(hostile(
                        self.name,
                        rel,
                        "is a symlink to nothing in the archive",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn make_dir(path: &Path) -> io::Result<()> {
    fs::create_dir(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy` that tells read errors (the archive) from write errors (the disk).
fn copy_reading(from: &mut dyn Read, to: &mut dyn io::Write) -> Result<u64, Copy> {
    let mut buf = vec![0u8; super::download::BUFFER_BYTES];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(Copy::Write)?;
        total += n as u64;
    }
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
