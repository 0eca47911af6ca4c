//! TODO: informer.

/// Errors of the informer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Placeholder until the layer lands.
    #[error("{0}")]
    Other(String),
}
