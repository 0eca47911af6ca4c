//! Errors of offline inspection.

/// Errors of offline inspection: the store's own errors, plus what a user
/// can get wrong when naming a resource or an object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed (in use, not a store, newer schema, corrupt record...).
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The store holds no collection at all.
    #[error("store {path} holds no collections yet")]
    Empty {
        /// The store directory.
        path: std::path::PathBuf,
    },
    /// `--resource` was omitted but the store holds several collections.
    #[error("the store holds several collections ({available}); choose one with --resource")]
    ResourceRequired {
        /// The collections, comma separated.
        available: String,
    },
    /// `--resource` names nothing this store holds.
    #[error("the store holds no resource named {given:?} (it holds: {available})")]
    UnknownResource {
        /// What the user typed.
        given: String,
        /// The collections, comma separated.
        available: String,
    },
    /// `--resource` was given as the empty string.
    #[error("--resource is empty; give a plural, singular, short name or kind (pods, po, Pod...)")]
    EmptyResource,
    /// `--resource` matches several collections.
    #[error(
        "resource {given:?} matches several collections: {candidates}; give one in full, e.g. -r {example}"
    )]
    AmbiguousResource {
        /// What the user typed.
        given: String,
        /// The matching collections' display names, comma separated.
        candidates: String,
        /// One of them as `-r` takes it, quoted for a shell where needed.
        example: String,
    },
    /// An object key could not be parsed.
    #[error("invalid object key {given:?}: {reason}")]
    BadKey {
        /// What the user typed.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A namespace (`--namespace`) is not a valid namespace name.
    #[error("invalid namespace {given:?}: {reason}")]
    BadNamespace {
        /// What the user typed.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A label selector could not be parsed.
    #[error(transparent)]
    Selector(#[from] crate::selector::Error),
    /// The object is not in the store.
    #[error("{resource} {key:?} not found in the store")]
    NotFound {
        /// The collection's display name.
        resource: String,
        /// The key as the user typed it.
        key: String,
    },
}

/// Result type of offline inspection.
pub type Result<T, E = Error> = std::result::Result<T, E>;
