//! TODO: watcher layer.

/// Errors of the watcher layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Placeholder until the layer lands.
    #[error("{0}")]
    Other(String),
}
