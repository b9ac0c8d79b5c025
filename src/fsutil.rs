//! File-system helpers: private directories, atomic writes, free space.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Creates `dir` (and missing parents) with mode 0700; tightens an existing one that
/// others may read to 0700.
///
/// Our state, cache and data directories hold the lock, history, HTTP cache and build
/// trees: nobody else needs to read them, and nobody else may write them. An existing
/// directory owned by another user, or writable by its group or by others, is refused
/// rather than fixed: someone else could already have planted files (or links) in it.
/// This is the one place those directories are created, so the check holds for all.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("could not create the directory {}", dir.display()))?;
    let mode = check_trusted_dir(dir)?;
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("could not make {} private (chmod 700)", dir.display()))?;
    }
    Ok(())
}

/// Refuses a directory that is owned by another user or writable by its group or by
/// others (see [`create_private_dir`]); returns its permission bits.
pub fn check_trusted_dir(dir: &Path) -> Result<u32> {
    let meta = fs::metadata(dir).with_context(|| format!("could not inspect {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!(
            "refusing to use {}: it is owned by {}, not by {} who runs heph-selfupdate\nhelp: use a directory you own (state_dir, data_dir, cache_dir), or after checking its contents `chown -R {} {}`",
            dir.display(),
            user_label(meta.uid()),
            user_label(me),
            user_name(me).unwrap_or_else(|| me.to_string()),
            dir.display()
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        bail!(
            "refusing to use {}: it is writable by {} (mode {mode:04o}), so someone else could have planted files in it\nhelp: check its contents, then `chmod 700 {}`",
            dir.display(),
            match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "its group and by others",
                (true, false) => "its group",
                _ => "others",
            },
            dir.display()
        );
    }
    Ok(mode)
}

/// `uid 65534 (nobody)`, or only the number when the user has no name.
pub fn user_label(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

/// The login name of `uid`, from the password database.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd is plain data; getpwuid_r writes into `pwd` and `buf` (whose length
    // we pass) and sets `result` to `&pwd` or null.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &raw mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &raw mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Opens (creating it with mode 0600 if missing) a file we own in one of our private
/// directories for reading and writing, never following a symbolic link at `path` and
/// refusing anything but a regular file: a link planted there must not make us write
/// (or truncate) its target.
pub fn open_own_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                anyhow::anyhow!(
                    "refusing to open {}: it is a symbolic link, and we would write through it\nhelp: remove the link (`rm {}`); heph-selfupdate creates the file itself",
                    path.display(),
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("could not open {}", path.display()))
            }
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("could not inspect {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "refusing to use {}: it is not a regular file\nhelp: remove it; heph-selfupdate creates the file itself",
            path.display()
        );
    }
    Ok(file)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the
/// directory), with mode 0600. A reader sees the old file or the new one, never half.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |f| f.write_all(bytes))
}

/// [`atomic_write`] with the contents written by `fill` (e.g. streamed by a serializer,
/// so a large value is not first built in memory).
pub fn atomic_write_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    atomic_write_mode(path, 0o600, fill)
}

/// Attempts at a temporary name before giving up: another name is tried only when one is
/// taken, which with random names means someone planted files there.
const TEMP_ATTEMPTS: usize = 8;

/// The one way every file the tool writes is written: [`atomic_write_with`] with `mode`
/// (set after creating, so the umask cannot take bits away).
///
/// The temporary file beside `path` has an unpredictable name (`.NAME.tmp-` and 16 random
/// hex digits) and is created new (`O_CREAT|O_EXCL|O_NOFOLLOW`): whatever is already at a
/// name — a link planted there — is left alone, never followed, never removed, and another
/// name is tried. Only then is the mode set, the contents written and the file renamed
/// into place. This holds in a directory others can write too (node_exporter's).
pub fn atomic_write_mode(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    atomic_write_via(path, mode, fill, &mut temp_names(path))
}

/// [`atomic_write_mode`] with the temporary names taken from `names` (tests choose them).
pub(crate) fn atomic_write_via(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
    names: &mut dyn Iterator<Item = std::path::PathBuf>,
) -> Result<()> {
    let mut fill = Some(fill);
    replace_via(path, names, |tmp| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(tmp)?;
        // From here on the file at `tmp` is ours: a failure removes it.
        let written = (|| {
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            if let Some(fill) = fill.take() {
                fill(&mut f)?;
            }
            f.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(tmp);
        }
        written
    })
    .with_context(|| format!("could not write {}", path.display()))
}

/// Replaces `path` by what `create` makes at a new temporary name beside it, in one
/// rename (no moment without it): the one atomic-replace path, for files
/// ([`atomic_write_mode`]) and links alike. `create` must fail with `AlreadyExists` rather
/// than use anything already at its name (`O_EXCL`, symlink(2)); a taken name is left as
/// it is and the next of `names` tried.
pub fn replace_atomically(
    path: &Path,
    create: impl FnMut(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    replace_via(path, &mut temp_names(path), create)
}

fn replace_via(
    path: &Path,
    names: &mut dyn Iterator<Item = std::path::PathBuf>,
    mut create: impl FnMut(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} has no parent directory", path.display()),
        )
    })?;
    let mut taken = 0;
    let tmp = loop {
        let Some(tmp) = names.next().filter(|_| taken < TEMP_ATTEMPTS) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{taken} temporary names beside it were taken by files we did not make (planted?); check who else writes {}",
                    dir.display()
                ),
            ));
        };
        match create(&tmp) {
            Ok(()) => break tmp,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => taken += 1,
            Err(e) => return Err(e),
        }
    };
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// Unpredictable temporary names beside `path`: `.NAME.tmp-` and 16 hex digits from the
/// kernel's random source (a PID-based name is one anybody can plant a link at first).
pub fn temp_names(path: &Path) -> impl Iterator<Item = std::path::PathBuf> + use<> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::iter::from_fn(move || {
        let mut bytes = [0u8; 8];
        // SAFETY: getentropy writes at most `len` (<= 256) bytes into the buffer we pass.
        let rc = unsafe { libc::getentropy(bytes.as_mut_ptr().cast(), bytes.len()) };
        if rc != 0 {
            // No random source: no name rather than a guessable one.
            return None;
        }
        Some(dir.join(format!(".{name}.tmp-{:016x}", u64::from_ne_bytes(bytes))))
    })
}

/// True when `name` is one of [`temp_names`]: `.NAME.tmp-` and 16 hex digits.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(".tmp-").is_some_and(|(head, hex)| {
            head.len() > 1
                && hex.len() == 16
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Removes the temporary files a killed atomic write left in `dir` (ours, which nobody
/// else writes): entries named as [`temp_names`] makes them (`.NAME.tmp-<16 hex>`, with
/// NAME accepted by `ours`), files or links only, owned by us, and older than `min_age`
/// (so a write under way in another process is never cut short). A link is removed, never
/// followed. Returns what was removed.
pub fn remove_stray_temporaries(
    dir: &Path,
    ours: impl Fn(&str) -> bool,
    min_age: std::time::Duration,
) -> Vec<std::path::PathBuf> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    let now = std::time::SystemTime::now();
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((head, _)) = name.rsplit_once(".tmp-") else {
            continue;
        };
        if !is_temp_name(&name) || !ours(&head[1..]) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= min_age);
        if meta.is_dir() || meta.uid() != me || !old {
            continue;
        }
        if fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// Bytes available to an unprivileged user on the file system holding `path`
/// (the nearest existing ancestor is asked when `path` does not exist yet).
pub fn free_space(path: &Path) -> Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .with_context(|| format!("no existing directory above {}", path.display()))?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes())
        .with_context(|| format!("{} contains a NUL byte", existing.display()))?;
    // SAFETY: statvfs only writes into the zeroed struct we pass; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &raw mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("could not read free space of {}", existing.display()));
    }
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(u64::from(st.f_bavail as u64) * u64::from(st.f_frsize as u64))
}

/// Removes a file or directory tree if it exists.
pub fn remove_all(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.with_context(|| format!("could not remove {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_stray_temporaries_old_enough_are_removed_and_links_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let hour = std::time::Duration::from_secs(3600);
        let aged = |p: &Path| {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(std::time::SystemTime::now() - 2 * hour)
                .unwrap();
        };
        let old = dir.join(".state.json.tmp-0123456789abcdef");
        let fresh = dir.join(".state.json.tmp-fedcba9876543210");
        let link = dir.join(".current.tmp-00000000000000aa");
        let target = dir.join("target");
        let keep = [
            dir.join("state.json"),
            dir.join(".state.json.tmp-12345"),
            dir.join(".state.json.tmp-0123456789ABCDEF"),
            dir.join(".tmp-0123456789abcdef"),
            dir.join(".other.tmp-0123456789abcdef"),
        ];
        for p in keep.iter().chain([&old, &fresh, &target]) {
            fs::write(p, "x").unwrap();
            aged(p);
        }
        fs::write(&fresh, "x").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        fs::create_dir(dir.join(".dir.tmp-0123456789abcdef")).unwrap();
        let ours = |n: &str| n != "other";

        assert_eq!(
            remove_stray_temporaries(dir, ours, hour),
            std::slice::from_ref(&old)
        );
        assert!(fresh.exists(), "a write under way is left alone");
        let removed = remove_stray_temporaries(dir, ours, std::time::Duration::ZERO);
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!fresh.exists() && fs::symlink_metadata(&link).is_err());
        assert_eq!(
            fs::read_to_string(&target).unwrap(),
            "x",
            "the link's target stays"
        );
        for p in &keep {
            assert!(p.exists(), "{} is not ours", p.display());
        }
        assert!(dir.join(".dir.tmp-0123456789abcdef").is_dir());
        assert!(
            temp_names(&dir.join("state.json"))
                .take(3)
                .all(|p| is_temp_name(&p.file_name().unwrap().to_string_lossy()))
        );
    }

    #[test]
    fn atomic_write_replaces_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn private_dirs_are_0700_even_if_they_existed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b");
        create_private_dir(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn links_planted_at_the_temporary_names_are_never_followed_nor_removed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let p = dir.path().join("state.json");
        let names: Vec<_> = ["a", "b", "c"].iter().map(|n| dir.path().join(n)).collect();
        for n in &names {
            std::os::unix::fs::symlink(&victim, n).unwrap();
        }
        // Every name the writer could use is taken: it gives up, having written nothing.
        let err = atomic_write_via(
            &p,
            0o600,
            |f| f.write_all(b"x"),
            &mut names.clone().into_iter(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("were taken"), "{err:#}");
        assert!(!p.exists());
        // One free name after them: used, and the links stay as they were.
        let free = dir.path().join("d");
        let mut with_free = names.iter().cloned().chain([free.clone()]);
        atomic_write_via(&p, 0o640, |f| f.write_all(b"new state"), &mut with_free).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read(&p).unwrap(), b"new state");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        for n in &names {
            assert!(fs::symlink_metadata(n).unwrap().file_type().is_symlink());
        }
        assert!(fs::symlink_metadata(&free).is_err(), "renamed into place");
    }

    #[test]
    fn temporary_names_are_unpredictable() {
        let p = Path::new("/d/state.json");
        let names: std::collections::BTreeSet<_> = temp_names(p).take(1000).collect();
        assert_eq!(names.len(), 1000);
        let pid = std::process::id().to_string();
        for n in &names {
            let name = n.file_name().unwrap().to_string_lossy();
            let suffix = name.strip_prefix(".state.json.tmp-").unwrap();
            assert_eq!(n.parent(), Some(Path::new("/d")));
            assert!(suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_ne!(suffix, pid);
        }
    }

    #[test]
    fn own_files_are_never_opened_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let lock = dir.path().join("lock");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        let err = open_own_file(&lock).unwrap_err();
        assert!(
            format!("{err:#}").contains("symbolic link")
                && err.to_string().contains("help: remove"),
            "{err:#}"
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        fs::remove_file(&lock).unwrap();
        fs::create_dir(&lock).unwrap();
        assert!(
            open_own_file(&lock).is_err(),
            "a directory is not a lock file"
        );
    }

    #[test]
    fn a_directory_others_can_write_is_refused_not_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        fs::create_dir(&p).unwrap();
        for (mode, who) in [
            (0o777, "its group and by others"),
            (0o770, "its group"),
            (0o703, "others"),
        ] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let err = create_private_dir(&p).unwrap_err().to_string();
            assert!(
                err.contains(&p.display().to_string())
                    && err.contains(&format!("writable by {who} (mode 0{mode:o})"))
                    && err.contains("help: check its contents"),
                "{err}"
            );
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                mode,
                "left as it was"
            );
        }
    }

    #[test]
    fn free_space_asks_the_nearest_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(&dir.path().join("not/yet")).unwrap() > 0);
    }
}
