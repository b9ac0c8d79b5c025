//! File-system helpers: private directories, atomic writes, free space.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Creates `dir` (and missing parents) with mode 0700; tightens an existing one to 0700.
///
/// Our state, cache and data directories hold the lock, history and build trees: nobody
/// else needs to read them.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("could not create the directory {}", dir.display()))?;
    let meta = fs::metadata(dir).with_context(|| format!("could not inspect {}", dir.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("could not make {} private (chmod 700)", dir.display()))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the
/// directory), with mode 0600. A reader sees the old file or the new one, never half.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
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
    fn free_space_asks_the_nearest_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(&dir.path().join("not/yet")).unwrap() > 0);
    }
}
