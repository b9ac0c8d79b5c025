//! Pseudo-terminals: running the binary as a person does, at a terminal.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

/// A new pseudo-terminal: the master end (what the terminal shows) and the slave end (what
/// a program is given).
pub fn open() -> (File, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: openpty writes two file descriptors into the given integers.
    let rc = unsafe {
        libc::openpty(
            &raw mut master,
            &raw mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // Not inherited past the program's stdio: a daemon it starts must not hold the
    // terminal open (the reader would wait for it for ever).
    for fd in [master, slave] {
        // SAFETY: fcntl on a descriptor we own.
        assert_eq!(
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) },
            0
        );
    }
    // SAFETY: both are open descriptors that nothing else owns.
    unsafe {
        (
            File::from(OwnedFd::from_raw_fd(master)),
            OwnedFd::from_raw_fd(slave),
        )
    }
}

/// Runs `cmd` as a session leader whose controlling terminal is a new pseudo-terminal, with
/// stdin, stdout and stderr on it — a person's shell, as far as the program can tell.
/// Returns the exit code and everything the terminal showed.
pub fn run_at_a_terminal(mut cmd: Command) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let (mut master, slave) = open();
    let fd = slave.as_raw_fd();
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() == -1 || libc::ioctl(fd, libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // The child holds the only slave ends now.
    drop(cmd);
    let mut text = Vec::new();
    // Read until every slave end is closed (EIO on Linux).
    let _ = master.read_to_end(&mut text);
    let status = child.wait().unwrap();
    (status.code(), String::from_utf8_lossy(&text).into_owned())
}
