//! The outside world, passed explicitly: HTTP, child processes, the service manager, the
//! clock, signals, the environment snapshot and who we are. Tests substitute parts of it
//! (the simulation in `tests/simulation.rs` substitutes all of it but the file system).

use std::collections::BTreeMap;

use crate::clock::{Clock, SystemClock};
use crate::http::{HttpClient, MinreqClient};
use crate::output::{Out, StdOut};
use crate::process::{Runner, SystemRunner};
use crate::service::{Services, SystemServices};
use crate::signals::Interrupt;

/// Everything commands use to talk to the world.
pub struct World {
    pub http: Box<dyn HttpClient>,
    pub runner: Box<dyn Runner>,
    /// Makes the service manager that restarts and observes the daemon.
    pub services: Box<dyn Services>,
    pub clock: Box<dyn Clock>,
    /// SIGTERM/SIGINT received so far.
    pub interrupt: Interrupt,
    /// Where results go (stdout).
    pub out: Box<dyn Out>,
    /// The environment, read once at start.
    pub env: BTreeMap<String, String>,
    /// Our user id (launchd domains, doctor).
    pub uid: u32,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl World {
    /// The real world; `interrupt` is the process's signal count ([`crate::signals::install`]).
    pub fn real(interrupt: Interrupt) -> Self {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        // SAFETY: getuid cannot fail and touches no memory.
        let uid = unsafe { libc::getuid() };
        Self {
            http: Box::new(MinreqClient),
            runner: Box::new(SystemRunner {
                reaper: std::env::current_exe().ok(),
                scrub: crate::envvars::SECRET.iter().map(Into::into).collect(),
                as_started: crate::envvars::OWN
                    .iter()
                    .map(|k| ((*k).into(), std::env::var_os(k)))
                    .collect(),
                interrupt: interrupt.clone(),
            }),
            services: Box::new(SystemServices { uid }),
            clock: Box::new(SystemClock),
            interrupt,
            out: Box::new(StdOut),
            env,
            uid,
        }
    }

    /// The PATH value, for finding programs.
    pub fn path_var(&self) -> Option<&std::ffi::OsStr> {
        self.env.get("PATH").map(std::ffi::OsStr::new)
    }
}
