//! The crate-level error: one variant per layer, each layer keeping its own
//! typed error so callers can match on what went wrong where.

/// Any error kube-persist's library returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The on-disk store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The list/watch state machine failed.
    #[error(transparent)]
    Watcher(#[from] crate::watcher::Error),
    /// The informer failed.
    #[error(transparent)]
    Informer(#[from] crate::informer::Error),
}
