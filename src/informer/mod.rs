//! The persistent informer: ties a [`Store`] collection to the list/watch
//! state machine and hands committed events to subscribers.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), kube_persist::informer::Error> {
//! use kube_persist::informer::Informer;
//! use k8s_openapi::api::core::v1::Pod;
//!
//! let informer = Informer::for_resource::<Pod>(client).store_path("/var/lib/app/pods").start().await?;
//! // Readable at once, from disk, while the watch resumes.
//! let pods = informer.list()?;
//! informer.wait_until_synced().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::Stream;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::store::{Collection, CollectionId, ObjectKey, Store};

mod builder;
pub mod controller;
mod discovery;
mod driver;
pub(crate) mod events;
mod failure;
mod metrics;
mod reader;
#[cfg(test)]
mod tests;
mod typed;

pub use builder::{InformerBuilder, ResourceSpec};
pub use events::{Consumer, Event, EventKind};
pub use failure::{FailureCause, LastFailure};
pub use metrics::{Metrics, MetricsSnapshot};
pub use reader::Reader;
pub use typed::{ReadError, ReadResult, TypedReader, DEFAULT_CACHE_BYTES};

/// Errors of the informer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A watcher setting is invalid.
    #[error(transparent)]
    Watcher(#[from] crate::watcher::Error),
    /// The builder was not given a store.
    #[error("no store given: call store_path() or store() on the builder")]
    NoStore,
    /// A resourceVersion cannot be compared as an integer.
    #[error("resourceVersion {0:?} is not an integer; wait_for_rv needs one")]
    NonNumericRv(String),
    /// A durable consumer acknowledged less than the oldest journal entry:
    /// the events between were trimmed. Resync it from the store.
    #[error("journal trimmed: consumer acknowledged seq {acked} but the oldest entry is seq {first_available}")]
    JournalGap {
        /// Last acknowledged seq.
        acked: u64,
        /// Oldest seq still in the journal.
        first_available: u64,
    },
    /// The informer was shut down while waiting.
    #[error("the informer was shut down")]
    Stopped,
    /// A blocking store task panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// [`ResourceSpec::resolve`] was given an empty name.
    #[error("the resource name is empty; give a plural, singular, kind or short name (pods, po, Pod...)")]
    EmptyResource,
    /// The server's discovery documents name no such resource.
    #[error("the server has no resource named {name:?}{}", discovery_gaps(failed))]
    UnknownResource {
        /// The name as given.
        name: String,
        /// Group versions whose discovery failed; the resource may be
        /// among them.
        failed: Vec<String>,
    },
    /// The API server could not be reached (connection refused, DNS, TLS,
    /// timeout): nothing is known about the resource.
    #[error("cannot reach the API server: {source}")]
    Unreachable {
        /// What the client reported.
        #[source]
        source: kube::Error,
    },
    /// The API server answered discovery with an error (unauthorized,
    /// forbidden...) or with documents that cannot be read.
    #[error("resource discovery failed: {source}")]
    Discovery {
        /// What the client reported.
        #[source]
        source: kube::Error,
    },
}

/// The note an [`Error::UnknownResource`] ends with when some group
/// versions could not be searched.
fn discovery_gaps(failed: &[String]) -> String {
    if failed.is_empty() {
        String::new()
    } else {
        format!(
            " (discovery of {} failed, so it may be there)",
            failed.join(", ")
        )
    }
}

/// Result type of the informer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How fresh the cache is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nothing stored yet: the first list is in progress. Reads are empty.
    Empty,
    /// The store was damaged when the informer opened it (a record failed
    /// its checksum, or the engine could not read its files): the damaged
    /// database was moved to `moved_to` (`<store>/damaged-<time>/`, kept
    /// for inspection, never read again) and the first list fills a fresh
    /// one. Reads are empty until it completes, as in [`State::Empty`];
    /// then the state is `Synced`. A store given open with
    /// [`InformerBuilder::store`] is checked too, but cannot be moved while
    /// its other handles are open: its damage fails `start` instead.
    Healed {
        /// Where the damaged database was moved.
        moved_to: std::path::PathBuf,
        /// What was found wrong with it.
        damage: String,
    },
    /// A read met damage while the informer ran (a record that fails its
    /// checksum, or whose zstd dictionary does not load), so it relists:
    /// the relist rewrites every record it cannot vouch for, and the state
    /// is `Synced` again when it completes. Meanwhile other objects read as
    /// before and the damaged ones are errors.
    Healing {
        /// The damage that was met.
        damage: String,
    },
    /// Restored from disk; the watch is catching up. Reads are as of `rv`.
    Restored {
        /// The stored resourceVersion.
        rv: String,
        /// When the store last applied a batch.
        saved_at: Option<SystemTime>,
    },
    /// Caught up with the server, on the server's word (I12): a relist
    /// completed (a LIST's last page, a streaming list's
    /// `k8s.io/initial-events-end` bookmark, a metadata relist's last fetch),
    /// or, after a resume, one of two proofs from a short resumed watch
    /// ([`resume_probe_timeout_secs`](crate::WatcherConfig::resume_probe_timeout_secs),
    /// 3 s by default; normal long watches follow):
    /// - a BOOKMARK whose resourceVersion is at or past the one the watch
    ///   resumed from (KEP-5504 order, see
    ///   [`crate::resource_version::covers`]). kube-apiserver sends no
    ///   bookmark right after a plain resume, but one 2 s before the watch's
    ///   deadline whenever its cache is newer than the watch;
    /// - or the watch reaching its deadline cleanly with nothing at all
    ///   sent: the cache sends that bookmark, and every event after the
    ///   resumed version, only when it has something newer
    ///   (`cache_watcher.go`, `process`), so its silence up to the deadline
    ///   says it had nothing newer. A watch that ends early, stalls, or
    ///   brings events but no bookmark proves nothing; another short watch
    ///   follows.
    ///
    /// Never set because the watch went quiet for a while.
    Synced,
}

/// Runs a store call off the async threads: sled calls block on I/O.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(Error::Task)?
}

/// Parses a resourceVersion as the integer it is in practice.
pub(crate) fn rv_number(rv: &str) -> Option<u64> {
    rv.parse().ok()
}

/// State shared between the informer handle and its driver task.
pub(crate) struct Shared {
    pub(crate) collection: Collection,
    pub(crate) state: watch::Sender<State>,
    /// Last stored resourceVersion.
    pub(crate) rv: watch::Sender<Option<String>>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) metrics: Metrics,
    pub(crate) started: Instant,
    /// The last failure of the watch or of a store write.
    pub(crate) failures: failure::Failures,
}

/// A running persistent informer. Dropping it stops the watch without
/// waiting; [`Informer::shutdown`] waits for the last batch to be stored.
pub struct Informer {
    shared: Arc<Shared>,
    /// What was read from disk at open: `Empty` or `Restored`.
    opened: State,
    /// Kept open (and locked) for as long as the informer runs.
    store: Store,
    reader: Reader,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Informer {
    /// A builder for a resource described at runtime.
    pub fn builder(client: kube::Client, resource: ResourceSpec) -> InformerBuilder {
        InformerBuilder::new(client, resource)
    }

    /// A builder for a typed resource, e.g. `Informer::for_resource::<Pod>(client)`.
    pub fn for_resource<K>(client: kube::Client) -> InformerBuilder
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        InformerBuilder::new(client, ResourceSpec::of::<K>())
    }

    /// The directory of the store this informer writes.
    pub fn store_path(&self) -> &std::path::Path {
        self.store.path()
    }

    /// The collection this informer keeps, to read: its driver is the only
    /// writer.
    pub fn collection(&self) -> &Reader {
        &self.reader
    }

    /// The collection with its writes, beside the driver. Not part of the
    /// API: for tests that make happen what the informer must survive (a
    /// journal trimmed under a consumer, say).
    #[cfg(feature = "cli")]
    #[doc(hidden)]
    pub fn collection_for_tests(&self) -> &Collection {
        &self.shared.collection
    }

    /// The collection's identity.
    pub fn id(&self) -> &CollectionId {
        self.shared.collection.id()
    }

    /// How fresh the cache is. This changes as the watch runs (to
    /// `Synced` as soon as it has caught up, possibly before `start`
    /// returns to the caller's code); to learn whether the informer resumed
    /// from disk, use [`Informer::opened_state`].
    pub fn state(&self) -> State {
        self.shared.state.borrow().clone()
    }

    /// The state the informer opened its store in, fixed for its lifetime:
    /// [`State::Restored`] with the stored resourceVersion when the store
    /// held one (a resume), [`State::Empty`] when it did not (the first list
    /// starts from scratch), [`State::Healed`] when it was damaged and
    /// moved aside (a first list into a fresh database). Never `Synced`,
    /// however fast the watch catches up.
    pub fn opened_state(&self) -> &State {
        &self.opened
    }

    /// How stale reads may be: `None` once synced, the age of the last
    /// stored batch while restored (I7), `Some(ZERO)` if unknown.
    pub fn staleness(&self) -> Option<Duration> {
        match self.state() {
            State::Synced => None,
            State::Restored {
                saved_at: Some(at), ..
            } => Some(at.elapsed().unwrap_or_default()),
            _ => Some(Duration::ZERO),
        }
    }

    /// The last failure of the watch (a request the watcher backed off
    /// from) or of a store write, kept until another replaces it; `None`
    /// when nothing failed since [`InformerBuilder::start`]. The informer
    /// retries on its own; this is for a caller that stops waiting for
    /// [`State::Synced`] and must say why.
    pub fn last_failure(&self) -> Option<LastFailure> {
        self.shared.failures.last()
    }

    /// The last stored resourceVersion.
    pub fn last_rv(&self) -> Option<String> {
        self.shared.rv.borrow().clone()
    }

    /// One object by key.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Value>> {
        Ok(self.shared.collection.get(key)?)
    }

    /// Every object.
    pub fn list(&self) -> Result<Vec<Value>> {
        Ok(self.shared.collection.list()?)
    }

    /// The objects of one namespace (empty when it has none, I6).
    pub fn list_namespace(&self, namespace: &str) -> Result<Vec<Value>> {
        Ok(self.shared.collection.list_namespace(namespace)?)
    }

    /// The objects an index maps `value` to.
    pub fn by_index(&self, index: &str, value: &str) -> Result<Vec<Value>> {
        Ok(self.shared.collection.by_index(index, value)?)
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.shared.collection.len()
    }

    /// Whether the cache holds no object.
    pub fn is_empty(&self) -> bool {
        self.shared.collection.is_empty()
    }

    /// Returns once the cache has caught up with the server.
    pub async fn wait_until_synced(&self) -> Result<()> {
        let mut rx = self.shared.state.subscribe();
        rx.wait_for(|s| *s == State::Synced)
            .await
            .map_err(|_| Error::Stopped)?;
        Ok(())
    }

    /// Returns once the cache has stored resourceVersion `rv` or a later one:
    /// read-your-writes after a client write. The write must be in the
    /// informer's scope, or a bookmark must pass it.
    pub async fn wait_for_rv(&self, rv: &str) -> Result<()> {
        let target = rv_number(rv).ok_or_else(|| Error::NonNumericRv(rv.to_string()))?;
        let mut rx = self.shared.rv.subscribe();
        rx.wait_for(|cur| {
            cur.as_deref()
                .and_then(rv_number)
                .is_some_and(|cur| cur >= target)
        })
        .await
        .map_err(|_| Error::Stopped)?;
        Ok(())
    }

    /// A stream of the events committed from now on (I2: each arrives after
    /// its batch is durable). Falls back to the journal if it lags behind.
    pub fn subscribe(&self) -> impl Stream<Item = Result<Event>> + Send + 'static {
        self.reader.subscribe()
    }

    /// A durable consumer named `name`: every event after its last
    /// acknowledged seq, across restarts (I8). A new name starts at the
    /// beginning of the journal.
    pub async fn consumer(&self, name: &str) -> Result<Consumer> {
        Consumer::open(
            name,
            self.shared.events.subscribe(),
            self.shared.collection.clone(),
        )
        .await
    }

    /// Current metrics.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// Current metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.metrics().to_prometheus(&self.id().resource)
    }

    /// Stops watching after storing any batch already read.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::error!("informer task failed: {err}");
            }
        }
    }
}

impl Drop for Informer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
