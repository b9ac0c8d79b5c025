//! The service manager that runs the daemon.

/// Which service manager restarts the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceManagerKind {
    SystemdUser,
    SystemdSystem,
    Launchd,
    None,
}

impl ServiceManagerKind {
    /// The default unit name or label.
    pub fn default_service(self) -> &'static str {
        match self {
            Self::SystemdUser | Self::SystemdSystem | Self::None => "hephd.service",
            Self::Launchd => "mcquack.eblume.heph",
        }
    }
}
