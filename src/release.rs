//! The forge-neutral release record every forge module produces.

use time::OffsetDateTime;

/// One release as listed by a forge, before any policy is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The git tag, exactly as the forge reports it (not yet validated).
    pub tag: String,
    /// When it was published; `None` when the forge did not say (a draft, for example).
    pub published_at: Option<OffsetDateTime>,
    /// A draft: never installed.
    pub draft: bool,
    /// Flagged as a pre-release by the forge (GitLab has no such flag).
    pub prerelease: bool,
    /// A GitLab release dated in the future.
    pub upcoming: bool,
}

impl Release {
    /// A published, non-draft, non-prerelease release (a convenience for tests and fakes).
    pub fn published(tag: &str, published_at: OffsetDateTime) -> Self {
        Self {
            tag: tag.to_owned(),
            published_at: Some(published_at),
            draft: false,
            prerelease: false,
            upcoming: false,
        }
    }
}
