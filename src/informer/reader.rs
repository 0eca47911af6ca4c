//! The read handle: what an informer hands out of the collection it keeps.
//! The informer's driver is the collection's only writer (it applies each
//! batch atomically, with its resourceVersion, I1); a reader reads, follows
//! the journal and acknowledges durable consumers' progress, and nothing
//! else, so no caller can write beside the driver.

use std::collections::HashMap;
use std::sync::Arc;

use futures::Stream;
use serde_json::Value;

use super::{events, Event, Result, Shared};
use crate::store::{self, CollectionId, CollectionMeta, JournalEntry, JsonObject, ObjectKey};

/// Read-only access to the collection an informer keeps: objects, indexes,
/// the journal, subscriptions, and durable consumers' cursors (which a
/// consumer acknowledges through it). Clones share one collection.
///
/// It cannot write: the informer's driver is the only writer.
///
/// ```compile_fail
/// # async fn f(informer: kube_persist::Informer) {
/// // A reader has no apply, delete or compact.
/// informer.collection().apply(Default::default());
/// # }
/// ```
#[derive(Clone)]
pub struct Reader {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("collection", &self.collection().name())
            .finish()
    }
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>) -> Reader {
        Reader { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The collection itself, with its writes: for the crate's own writers
    /// (the driver, a controller's progress) only.
    pub(crate) fn collection(&self) -> &store::Collection {
        &self.shared.collection
    }

    /// The collection's identity.
    pub fn id(&self) -> &CollectionId {
        self.collection().id()
    }

    /// The collection's name in the store (and in error messages).
    pub fn name(&self) -> &str {
        self.collection().name()
    }

    /// What the store knows about the collection, without reading objects.
    pub fn meta(&self) -> store::Result<CollectionMeta> {
        self.collection().meta()
    }

    /// The last resourceVersion stored: it covers exactly the stored objects.
    pub fn last_rv(&self) -> store::Result<Option<String>> {
        self.collection().last_rv()
    }

    /// One object, checksum-verified; `None` if absent.
    pub fn get(&self, key: &ObjectKey) -> store::Result<Option<Value>> {
        self.collection().get(key)
    }

    /// One object's JSON as stored, not parsed.
    pub fn get_json(&self, key: &ObjectKey) -> store::Result<Option<JsonObject>> {
        self.collection().get_json(key)
    }

    /// One object's resourceVersion, read from its record's envelope.
    pub fn object_rv(&self, key: &ObjectKey) -> store::Result<Option<String>> {
        self.collection().object_rv(key)
    }

    /// Every object, in key order. Fails on the first corrupt record rather
    /// than serve a partial view as if it were whole.
    pub fn list(&self) -> store::Result<Vec<Value>> {
        self.collection().list()
    }

    /// The objects of one namespace, in key order; empty (not an error) when
    /// the namespace has none (I6).
    pub fn list_namespace(&self, namespace: &str) -> store::Result<Vec<Value>> {
        self.collection().list_namespace(namespace)
    }

    /// Every object's JSON in key order, or one namespace's, decoded one
    /// record at a time.
    pub fn scan_json(
        &self,
        namespace: Option<&str>,
    ) -> Box<dyn Iterator<Item = store::Result<JsonObject>> + Send> {
        self.collection().scan_json(namespace)
    }

    /// The objects whose index `index` holds `value`, in key order. Built
    /// in: `namespace` and `label` (`key=value`); others are registered with
    /// [`InformerBuilder::indexer`](super::InformerBuilder::indexer).
    pub fn by_index(&self, index: &str, value: &str) -> store::Result<Vec<Value>> {
        self.collection().by_index(index, value)
    }

    /// The keys `by_index` would read, without the objects.
    pub fn index_keys(&self, index: &str, value: &str) -> store::Result<Vec<ObjectKey>> {
        self.collection().index_keys(index, value)
    }

    /// key → the object's resourceVersion, from the record envelopes.
    pub fn versions(&self) -> store::Result<HashMap<ObjectKey, String>> {
        self.collection().versions()
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.collection().len()
    }

    /// Whether the collection holds no object.
    pub fn is_empty(&self) -> bool {
        self.collection().is_empty()
    }

    /// Every journal entry of one object that the journal still holds,
    /// oldest first.
    pub fn history(&self, key: &ObjectKey) -> store::Result<Vec<JournalEntry>> {
        self.collection().history(key)
    }

    /// Every journal entry after `after_seq`, oldest first; fails with
    /// [`store::Error::JournalTrimmed`] when some were already trimmed.
    pub fn journal_since(&self, after_seq: u64) -> store::Result<Vec<JournalEntry>> {
        self.collection().journal_since(after_seq)
    }

    /// At most `limit` journal entries after `after_seq`, oldest first.
    pub fn journal_page(&self, after_seq: u64, limit: usize) -> store::Result<Vec<JournalEntry>> {
        self.collection().journal_page(after_seq, limit)
    }

    /// The last seq durable consumer `consumer` acknowledged, if it has.
    pub fn cursor(&self, consumer: &str) -> store::Result<Option<u64>> {
        self.collection().cursor(consumer)
    }

    /// Every durable consumer with a cursor, and its last acknowledged seq.
    pub fn cursors(&self) -> store::Result<Vec<(String, u64)>> {
        self.collection().cursors()
    }

    /// Records durably that `consumer` has handled every event up to `seq`
    /// (I8). Cursors only move forward: acknowledging an older seq is a
    /// no-op; one past the journal's last seq is an error.
    pub fn ack(&self, consumer: &str, seq: u64) -> store::Result<()> {
        self.collection().ack(consumer, seq)
    }

    /// The progress records (retries, requeues) a durable consumer keeps.
    pub fn progress_records(&self, consumer: &str) -> store::Result<Vec<(String, Vec<u8>)>> {
        self.collection().progress_records(consumer)
    }

    /// A stream of the events committed from now on (I2: each arrives after
    /// its batch is durable). Falls back to the journal if it lags behind.
    pub fn subscribe(&self) -> impl Stream<Item = Result<Event>> + Send + 'static {
        // Subscribe before reading the head so nothing committed in between
        // is missed; the feed drops events at or below the head.
        let rx = self.shared.events.subscribe();
        let head = self
            .collection()
            .meta()
            .map(|m| m.journal_last_seq)
            .unwrap_or(0);
        events::subscription(rx, self.collection().clone(), head)
    }
}
