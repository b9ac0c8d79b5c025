//! The run lock: one `check-and-apply` (or `rollback`) at a time, per user.
//!
//! An exclusive, non-blocking `flock` on `<state dir>/lock`, held for the whole run and
//! released by the kernel when the process ends, however it ends. The holder writes its
//! PID into the file so a busy run can say who holds it. Writing the state requires a
//! [`RunLock`] value. The file is never opened through a symbolic link, and the state dir
//! must be ours and private (`fsutil::create_private_dir`).

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fs2::FileExt;

/// Proof that this process holds the run lock.
#[derive(Debug)]
pub struct RunLock {
    file: File,
}

/// Another run holds the lock (exit code 75).
#[derive(Debug)]
pub struct LockBusy {
    pub path: PathBuf,
    pub holder: Option<u32>,
}

impl fmt::Display for LockBusy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.holder {
            Some(pid) => write!(
                f,
                "another heph-selfupdate run (pid {pid}) holds {}; nothing done",
                self.path.display()
            ),
            None => write!(
                f,
                "another heph-selfupdate run holds {}; nothing done",
                self.path.display()
            ),
        }
    }
}

impl std::error::Error for LockBusy {}

impl RunLock {
    /// Takes the lock or fails at once with [`LockBusy`].
    pub fn acquire(state_dir: &Path) -> Result<Self> {
        crate::fsutil::create_private_dir(state_dir)?;
        let path = state_dir.join("lock");
        // No truncate on open: the file holds the current holder's PID until we own it.
        // Never through a link: a link planted at `lock` would have us empty its target.
        let mut file = crate::fsutil::open_own_file(&path)
            .with_context(|| format!("could not open the lock file {}", path.display()))?;
        if let Err(e) = file.try_lock_exclusive() {
            if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockBusy {
                    path,
                    holder: text.trim().parse().ok(),
                }
                .into());
            }
            return Err(e).with_context(|| format!("could not lock {}", path.display()));
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .with_context(|| format!("could not write our PID into {}", path.display()))?;
        Ok(Self { file })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Leave the file (removing it would race with a waiting opener); empty the PID.
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err();
        let busy = err.downcast_ref::<LockBusy>().expect("LockBusy");
        assert_eq!(busy.holder, Some(std::process::id()));
        drop(first);
        assert!(RunLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn a_link_planted_at_the_lock_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, state.join("lock")).unwrap();
        let err = RunLock::acquire(&state).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
