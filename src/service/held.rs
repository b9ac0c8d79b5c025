//! Holding a process by its PID, so that the PID cannot be given to another process while
//! we look at it and signal it: on Linux a pidfd (`pidfd_open(2)`, Linux 5.3), through
//! which a signal (`pidfd_send_signal(2)`) reaches the process it was opened for or none.
//! Respawn signals the daemon this way; tests substitute [`Processes`].

use std::io;

/// A process held open.
pub trait HeldProcess {
    /// The PID it had when it was held.
    fn pid(&self) -> u32;
    /// The cgroups systemd tracks it in ([`systemd_cgroups`]), read while it is held and
    /// confirmed to be its own: the process still lives after the read, so its PID was
    /// not someone else's. `NotFound`: it has exited.
    fn cgroups(&self) -> io::Result<Vec<String>>;
    /// Sends it SIGTERM: it, never another process that has its PID now. `NotFound`: it
    /// has exited; `PermissionDenied`: it belongs to another user.
    fn terminate(&self) -> io::Result<()>;
}

/// Holds processes.
pub trait Processes {
    /// Holds the process that has `pid` now. `NotFound`: there is none.
    fn hold(&self, pid: u32) -> io::Result<Box<dyn HeldProcess>>;
}

/// The real processes of this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProcesses;

/// The cgroups systemd tracks a process in, from `/proc/<pid>/cgroup`: the unified
/// hierarchy's (`0::/path`) and, on machines with the hybrid layout, systemd's own
/// (`N:name=systemd:/path`).
pub fn systemd_cgroups(proc_cgroup: &str) -> Vec<String> {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let tracked = (id == "0" && controllers.is_empty()) || controllers == "name=systemd";
            tracked.then(|| path.to_owned())
        })
        .collect()
}

/// True when `cgroup` is the unit's control group `unit` or below it (a unit may delegate
/// sub-groups to its processes).
pub fn within(cgroup: &str, unit: &str) -> bool {
    let unit = unit.trim_end_matches('/');
    !unit.is_empty()
        && (cgroup == unit
            || cgroup
                .strip_prefix(unit)
                .is_some_and(|rest| rest.starts_with('/')))
}

fn gone(pid: u32) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("process {pid} has exited"))
}

/// An OS error, with "no such process" as `NotFound`.
fn os_error(pid: u32) -> io::Error {
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        gone(pid)
    } else {
        e
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::{HeldProcess, Processes, SystemProcesses, gone, os_error, systemd_cgroups};

    struct Pidfd {
        fd: OwnedFd,
        pid: u32,
    }

    impl Pidfd {
        fn send(&self, signal: libc::c_int) -> io::Result<()> {
            // SAFETY: pidfd_send_signal(2) with a pidfd we own, no siginfo (null) and no
            // flags; it touches no memory of ours.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    self.fd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(os_error(self.pid))
            }
        }
    }

    impl HeldProcess for Pidfd {
        fn pid(&self) -> u32 {
            self.pid
        }

        fn cgroups(&self) -> io::Result<Vec<String>> {
            let text = std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid)).map_err(
                |e| match e.kind() {
                    io::ErrorKind::NotFound => gone(self.pid),
                    _ => e,
                },
            )?;
            // Still alive after the read: the PID was its own while we read (a PID is not
            // given to another process before the one that had it is gone).
            self.send(0)?;
            Ok(systemd_cgroups(&text))
        }

        fn terminate(&self) -> io::Result<()> {
            self.send(libc::SIGTERM)
        }
    }

    impl Processes for SystemProcesses {
        fn hold(&self, pid: u32) -> io::Result<Box<dyn HeldProcess>> {
            let raw = libc::pid_t::try_from(pid).map_err(|_| gone(pid))?;
            // SAFETY: pidfd_open(2) takes a PID and flags and returns a new descriptor or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
            if fd < 0 {
                return Err(os_error(pid));
            }
            let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
            // SAFETY: the descriptor was just returned to us and is owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(Box::new(Pidfd { fd, pid }))
        }
    }
}

/// Without pidfds (macOS) the process is signalled by PID; respawn confirms it first by
/// asking the service manager again (see `Respawn`).
#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    use super::{HeldProcess, Processes, SystemProcesses, os_error};

    struct ByPid(u32);

    impl HeldProcess for ByPid {
        fn pid(&self) -> u32 {
            self.0
        }

        fn cgroups(&self) -> io::Result<Vec<String>> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no cgroups on this system",
            ))
        }

        fn terminate(&self) -> io::Result<()> {
            let pid = libc::pid_t::try_from(self.0).map_err(|_| super::gone(self.0))?;
            // SAFETY: kill(2) touches no memory.
            if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
                Ok(())
            } else {
                Err(os_error(self.0))
            }
        }
    }

    impl Processes for SystemProcesses {
        fn hold(&self, pid: u32) -> io::Result<Box<dyn HeldProcess>> {
            Ok(Box::new(ByPid(pid)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cgroups_systemd_tracks_on_unified_and_hybrid_machines() {
        assert_eq!(
            systemd_cgroups("0::/system.slice/hephd.service\n"),
            ["/system.slice/hephd.service"]
        );
        let hybrid = "12:pids:/system.slice/hephd.service\n1:name=systemd:/system.slice/hephd.service\n0::/\n";
        assert_eq!(
            systemd_cgroups(hybrid),
            ["/system.slice/hephd.service", "/"]
        );
        assert!(systemd_cgroups("garbage").is_empty());
    }

    #[test]
    fn a_cgroup_is_within_the_units_or_below_it_only() {
        let unit = "/system.slice/hephd.service";
        assert!(within(unit, unit));
        assert!(within("/system.slice/hephd.service/worker", unit));
        assert!(!within("/system.slice/hephd.service2", unit));
        assert!(!within("/system.slice", unit));
        assert!(!within("/", unit));
        assert!(!within("/anything", ""), "an empty ControlGroup names none");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_held_process_is_signalled_through_its_pidfd_and_a_gone_one_is_not_found() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let held = SystemProcesses.hold(child.id()).unwrap();
        assert_eq!(held.pid(), child.id());
        assert!(!held.cgroups().unwrap().is_empty());
        held.terminate().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        // Reaped: the pidfd still names that process, which is gone.
        assert_eq!(
            held.terminate().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(held.cgroups().unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(
            SystemProcesses.hold(child.id()).err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
    }
}
