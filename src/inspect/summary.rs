//! What `inspect` reports about a store: per collection, its identity,
//! freshness, size and journal.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::store::{CollectionId, CollectionMeta, Store};

use super::Result;

/// A store, summarised.
#[derive(Debug, Clone)]
pub struct StoreSummary {
    /// The store directory.
    pub path: PathBuf,
    /// Bytes the store's files take on disk.
    pub bytes_on_disk: u64,
    /// Its collections, in the order the store lists them.
    pub collections: Vec<CollectionSummary>,
}

impl StoreSummary {
    /// Raw JSON size of every stored object, over the bytes on disk: how
    /// much the envelopes, compression and dictionaries save (or cost, when
    /// below 1 — sled preallocates, so tiny stores look large).
    pub fn compression_ratio(&self) -> Option<f64> {
        let raw: u64 = self.collections.iter().map(|c| c.raw_json_bytes).sum();
        (self.bytes_on_disk > 0 && raw > 0).then(|| raw as f64 / self.bytes_on_disk as f64)
    }
}

/// Whether a collection can be served after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// No batch was ever applied: a restart must list from scratch.
    NeverSynced,
    /// A resourceVersion is stored: a restart serves these objects at once
    /// and resumes the watch from it.
    Resumable,
}

/// A collection, summarised.
#[derive(Debug, Clone)]
pub struct CollectionSummary {
    /// What it holds.
    pub id: CollectionId,
    /// Its meta record.
    pub meta: CollectionMeta,
    /// Whether a restart can resume from it.
    pub state: State,
    /// Its journal.
    pub journal: JournalSpan,
    /// Size of its objects as the API server's JSON.
    pub raw_json_bytes: u64,
}

/// The part of history the journal still holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalSpan {
    /// Entries held.
    pub entries: u64,
    /// Oldest entry's sequence number and time.
    pub first: Option<(u64, SystemTime)>,
    /// Newest entry's sequence number and time.
    pub last: Option<(u64, SystemTime)>,
}

/// Summarise every collection of `store`.
pub fn summarize(store: &Store) -> Result<StoreSummary> {
    let mut collections = Vec::new();
    for id in store.collections()? {
        let Some(collection) = store.find_collection(&id)? else {
            continue;
        };
        let meta = collection.meta()?;
        let journal = collection.journal_since(0)?;
        let journal = JournalSpan {
            entries: journal.len() as u64,
            first: journal.first().map(|e| (e.seq, e.at)),
            last: journal.last().map(|e| (e.seq, e.at)),
        };
        let raw_json_bytes = collection
            .list()?
            .iter()
            .map(|o| serde_json::to_vec(o).map_or(0, |v| v.len() as u64))
            .sum();
        let state = if meta.last_rv.is_some() {
            State::Resumable
        } else {
            State::NeverSynced
        };
        collections.push(CollectionSummary {
            id,
            meta,
            state,
            journal,
            raw_json_bytes,
        });
    }
    Ok(StoreSummary {
        path: store.path().to_path_buf(),
        bytes_on_disk: store.size_on_disk()?,
        collections,
    })
}
