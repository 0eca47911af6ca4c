//! The store layer's typed error.

use std::path::PathBuf;

/// Errors of the store layer.
///
/// New variants may be added: a `match` on it needs a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the store open.
    #[error("store {path} is in use by another process")]
    InUse {
        /// The store directory.
        path: PathBuf,
    },
    /// The path holds no kube-persist store.
    #[error("{path} {what}")]
    NotAStore {
        /// The path given.
        path: PathBuf,
        /// What the path is instead: "does not exist", "is not a
        /// directory", "is not a kube-persist store".
        what: &'static str,
    },
    /// A write was asked of a store opened read-only.
    #[error("store {path} was opened read-only")]
    ReadOnly {
        /// The store directory.
        path: PathBuf,
    },
    /// The store was written by a newer kube-persist.
    #[error("store {path} has schema version {found}, newer than the {supported} this build supports; it was left untouched")]
    NewerSchema {
        /// The store directory.
        path: PathBuf,
        /// Schema version found on disk.
        found: u32,
        /// Newest schema version this build knows.
        supported: u32,
    },
    /// A record failed its checksum or could not be decoded.
    #[error(
        "corrupt record in collection {collection}, key {key}: {reason}{}",
        cause_suffix(source)
    )]
    Corrupt {
        /// Collection name.
        collection: String,
        /// Key of the bad record.
        key: String,
        /// What was wrong.
        reason: String,
        /// The error decoding the record reported, when there was one.
        #[source]
        source: Option<Cause>,
    },
    /// The store's files are damaged beyond one record: the storage engine
    /// cannot open them, or a directory is missing.
    #[error("store {path} is damaged: {file}: {reason}{}", cause_suffix(source))]
    Damaged {
        /// The store directory.
        path: PathBuf,
        /// The file or directory at fault, relative to the store.
        file: String,
        /// What is wrong.
        reason: String,
        /// What the storage engine reported, when the damage is its finding.
        #[source]
        source: Option<EngineError>,
    },
    /// An object lacks what the store needs (name, resourceVersion...).
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// An argument the store cannot use (collection id, consumer or index name).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// `by_index` asked for an index that is neither built in nor registered.
    #[error("collection {collection} has no index named {index:?} (built in: namespace, label; register others with add_indexer)")]
    UnknownIndex {
        /// Collection name.
        collection: String,
        /// The index asked for.
        index: String,
    },
    /// The journal no longer holds the entries after the requested seq.
    #[error("collection {collection}: journal entries after seq {after} were trimmed; the oldest kept is {first}")]
    JournalTrimmed {
        /// Collection name.
        collection: String,
        /// The seq asked for.
        after: u64,
        /// The oldest seq still in the journal.
        first: u64,
    },
    /// A consumer acknowledged a seq the journal never assigned.
    #[error("collection {collection}: consumer {consumer:?} acknowledged seq {seq}, but the last assigned seq is {last}")]
    AckBeyondJournal {
        /// Collection name.
        collection: String,
        /// The consumer.
        consumer: String,
        /// The seq it acknowledged.
        seq: u64,
        /// The last seq the journal assigned.
        last: u64,
    },
    /// A record or dictionary could not be encoded (compression failed).
    #[error("could not encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Why it failed (the serializer's or the compressor's error).
        #[source]
        source: Cause,
    },
    /// An error of the storage engine that is not damage (its corruption
    /// reports become [`Error::Damaged`]).
    #[error("storage engine {engine}: {source}")]
    Engine {
        /// Which engine.
        engine: super::EngineKind,
        /// What it reported.
        #[source]
        source: EngineError,
    },
    /// A store was opened asking for another engine than the one it was
    /// created with.
    #[error("store {path} is kept in {found}, not {asked}: a store keeps the engine it was created with")]
    EngineMismatch {
        /// The store directory.
        path: PathBuf,
        /// The engine the store uses.
        found: super::EngineKind,
        /// The engine asked for.
        asked: super::EngineKind,
    },
    /// The store is encrypted and no key was given. Nothing is damaged.
    #[error("store {path} is encrypted (key {key_id}): a key is needed; give it with --key-file PATH (a 0600 file of 64 hex digits) or in $KUBE_PERSIST_KEY")]
    KeyNeeded {
        /// The store directory.
        path: PathBuf,
        /// The id of the key the store is encrypted under.
        key_id: super::KeyId,
    },
    /// The store is encrypted under another key than the one given.
    #[error("store {path} is encrypted under key {expected}, but the key given is {given}")]
    WrongKey {
        /// The store directory.
        path: PathBuf,
        /// The id of the key the store is encrypted under.
        expected: super::KeyId,
        /// The id of the key given.
        given: super::KeyId,
    },
    /// A flush of the store failed, so it takes no more writes until it is
    /// opened again: a failed fsync may have dropped writes from the page
    /// cache that a later one would not bring back, and opening the store
    /// again reads what is on disk. What was staged since the last good
    /// flush may be lost; the resourceVersion stored with it is lost with
    /// it, so the informer fetches those changes again.
    #[error("a flush of the store failed, so it takes no more writes until it is opened again: {source}")]
    FlushFailed {
        /// What the flush reported.
        #[source]
        source: std::sync::Arc<Error>,
    },
    /// An I/O error.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// An underlying error kept as the source of a store error: what a decoder,
/// serializer or compressor reported.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a storage engine reported, kept opaque: the engines' own error
/// types are not part of kube-persist's API, so that an engine can be
/// upgraded or replaced without breaking callers. Its text is the engine's
/// message; [`source`](std::error::Error::source) goes on to the engine
/// error's own cause (an I/O error, say).
pub struct EngineError(Cause);

impl EngineError {
    pub(crate) fn new(err: impl Into<Cause>) -> EngineError {
        EngineError(err.into())
    }
}

impl std::fmt::Debug for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// `": {cause}"` when there is a cause, so that a message names it even
/// where only the message is shown (a log line, a state's description).
/// The CLI, which prints the whole chain, leaves out a cause the message
/// already ends with.
fn cause_suffix(cause: &Option<impl std::fmt::Display>) -> String {
    match cause {
        Some(cause) => format!(": {cause}"),
        None => String::new(),
    }
}

/// The reason of a [`Error::Corrupt`] whose cause is the record's decoder.
const UNDECODABLE: &str = "the record does not decode";

/// Result type of the store layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether a write failed for lack of space: the disk, or the user's
    /// quota on it, is full. Nothing is wrong with the store; freeing space
    /// lets the next write through (after a failed flush, once the store is
    /// opened again: see [`Error::FlushFailed`]).
    pub fn is_out_of_space(&self) -> bool {
        match self {
            Error::Io { source, .. } => out_of_space(source),
            Error::FlushFailed { source } => source.is_out_of_space(),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        collection: &str,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            collection: collection.to_string(),
            key: key.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// A corrupt record, with the error its decoder reported.
    pub(crate) fn corrupt_by(
        collection: &str,
        key: impl Into<String>,
        reason: impl Into<String>,
        source: impl Into<Cause>,
    ) -> Error {
        Error::Corrupt {
            collection: collection.to_string(),
            key: key.into(),
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    /// A record that does not decode (checksum, envelope, payload).
    pub(crate) fn undecodable(
        collection: &str,
        key: impl Into<String>,
        source: super::record::RecordError,
    ) -> Error {
        Error::corrupt_by(collection, key, UNDECODABLE, source)
    }

    /// Damage found without an engine error to show for it.
    pub(crate) fn damaged(
        path: impl Into<PathBuf>,
        file: impl Into<String>,
        reason: impl Into<String>,
    ) -> Error {
        Error::Damaged {
            path: path.into(),
            file: file.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// Damage the storage engine reported.
    pub(crate) fn damaged_by(
        path: impl Into<PathBuf>,
        file: impl Into<String>,
        reason: impl Into<String>,
        source: impl Into<Cause>,
    ) -> Error {
        Error::Damaged {
            path: path.into(),
            file: file.into(),
            reason: reason.into(),
            source: Some(EngineError::new(source)),
        }
    }

    /// An error of the storage engine that is not damage.
    pub(crate) fn engine(engine: super::EngineKind, source: impl Into<Cause>) -> Error {
        Error::Engine {
            engine,
            source: EngineError::new(source),
        }
    }

    /// A value that could not be encoded.
    pub(crate) fn encode(what: impl Into<String>, source: impl Into<Cause>) -> Error {
        Error::Encode {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Whether an I/O error says the filesystem (or a quota on it) is full:
/// `ENOSPC` or `EDQUOT`.
pub(crate) fn out_of_space(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
