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
fn user_label(uid: u32) -> String {
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
///
/// The temporary file is created new (`O_EXCL`, `O_NOFOLLOW`): something already at its
/// name — a link planted there, or a leftover of a crashed run with the same PID — is
/// removed (a link itself, never its target) and the file created afresh.
pub fn atomic_write_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
    };
    let write = || -> std::io::Result<()> {
        let mut f = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                create()?
            }
            other => other?,
        };
        fill(&mut f)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        // Only a file we created is removed; what another process put there stays.
        if fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(&tmp);
        }
        anyhow::Error::new(e).context(format!("could not write {}", path.display()))
    })
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
    fn a_link_planted_at_the_temporary_name_leaves_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let p = dir.path().join("state.json");
        let tmp = dir
            .path()
            .join(format!(".state.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        atomic_write(&p, b"new state").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            fs::symlink_metadata(&p).unwrap().file_type().is_file(),
            "the state file is a plain file, not the planted link"
        );
        assert_eq!(fs::read(&p).unwrap(), b"new state");
        assert!(!tmp.exists() && fs::symlink_metadata(&tmp).is_err());
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
