//! The outside world, passed explicitly: HTTP, child processes, the clock, the
//! environment snapshot and who we are. Tests substitute parts of it.

use std::collections::BTreeMap;

use crate::clock::{Clock, SystemClock};
use crate::http::{HttpClient, MinreqClient};
use crate::process::{Runner, SystemRunner};

/// Everything commands use to talk to the world.
pub struct World {
    pub http: Box<dyn HttpClient>,
    pub runner: Box<dyn Runner>,
    pub clock: Box<dyn Clock>,
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
    /// The real world.
    pub fn real() -> Self {
        Self {
            http: Box::new(MinreqClient),
            runner: Box::new(SystemRunner {
                reaper: std::env::current_exe().ok(),
                scrub: crate::envvars::SECRET.iter().map(Into::into).collect(),
            }),
            clock: Box::new(SystemClock),
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            // SAFETY: getuid cannot fail and touches no memory.
            uid: unsafe { libc::getuid() },
        }
    }

    /// The PATH value, for finding programs.
    pub fn path_var(&self) -> Option<&std::ffi::OsStr> {
        self.env.get("PATH").map(std::ffi::OsStr::new)
    }
}
