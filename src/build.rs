//! Building a release into a new version root.

/// How a release is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// `cargo install --git … --tag …` with a fresh target dir (the default).
    Git,
    /// A persistent checkout of the tag, `cargo install --path` per package (fast rebuilds).
    Checkout,
}
