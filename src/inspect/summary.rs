//! What `inspect` reports about a store: per collection, its identity,
//! freshness, size and journal.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::store::{CollectionId, CollectionMeta, Damage, Store};

use super::{resource, Result};

/// A store, summarised.
#[derive(Debug, Clone)]
pub struct StoreSummary {
    /// The store directory.
    pub path: PathBuf,
    /// Bytes the store's files take on disk.
    pub bytes_on_disk: u64,
    /// Its collections, in the order the store lists them.
    pub collections: Vec<CollectionSummary>,
    /// What the check of every record found wrong, if anything; every
    /// collection's state is then [`State::Damaged`].
    pub damage: Option<Damage>,
}

impl StoreSummary {
    /// Raw JSON size of every stored object.
    pub fn raw_bytes(&self) -> u64 {
        self.collections.iter().map(|c| c.meta.raw_bytes).sum()
    }

    /// Raw JSON size of every stored object over the bytes the store's files
    /// take (below 1 on tiny stores: sled preallocates).
    pub fn disk_ratio(&self) -> Option<f64> {
        ratio(self.raw_bytes(), self.bytes_on_disk)
    }
}

fn ratio(raw: u64, stored: u64) -> Option<f64> {
    (raw > 0 && stored > 0).then(|| raw as f64 / stored as f64)
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
    /// The store is damaged ([`StoreSummary::damage`] says how): a writer's
    /// next open moves the database aside and lists from scratch.
    Damaged,
}

/// A collection, summarised.
#[derive(Debug, Clone)]
pub struct CollectionSummary {
    /// What it holds.
    pub id: CollectionId,
    /// The short names `--resource` accepts for it: kubectl's for a built-in
    /// resource, and those discovery gave when it was synced.
    pub short_names: Vec<String>,
    /// Whether the record of the short names discovery gave is damaged (and
    /// left out of [`Self::short_names`]); `verify` names the damage.
    pub short_names_damaged: bool,
    /// Its meta record: freshness, counts and sizes.
    pub meta: CollectionMeta,
    /// Whether a restart can resume from it.
    pub state: State,
    /// When the oldest and newest journal entries kept were applied.
    pub journal: JournalSpan,
}

impl CollectionSummary {
    /// Raw JSON over stored record bytes: what envelopes, zstd and the
    /// dictionary save on the objects.
    pub fn compression_ratio(&self) -> Option<f64> {
        ratio(self.meta.raw_bytes, self.meta.stored_bytes)
    }
}

/// The part of history the journal still holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalSpan {
    /// Oldest entry's sequence number and time.
    pub first: Option<(u64, SystemTime)>,
    /// Newest entry's sequence number and time.
    pub last: Option<(u64, SystemTime)>,
}

/// Summarise every collection of `store`: meta records and two journal
/// entries per collection, then a check of every record
/// ([`Store::check`]), so that a damaged store is never called resumable.
pub fn summarize(store: &Store) -> Result<StoreSummary> {
    let mut collections = Vec::new();
    for id in store.collections()? {
        let Some(collection) = store.find_collection(&id)? else {
            continue;
        };
        let meta = collection.meta()?;
        // A damaged record costs only the shortcuts it held, as it does when
        // resolving `--resource`: the rest of the summary is still true.
        let (recorded, short_names_damaged) = match store.short_names(&id) {
            Ok(recorded) => (recorded, false),
            Err(crate::store::Error::Corrupt { .. }) => (Vec::new(), true),
            Err(e) => return Err(e.into()),
        };
        let short_names = resource::short_names(&id, &recorded);
        let journal = if meta.journal_len == 0 {
            JournalSpan::default()
        } else {
            let at = |seq: u64| -> Result<Option<(u64, SystemTime)>> {
                Ok(collection
                    .journal_page(seq.saturating_sub(1), 1)?
                    .first()
                    .map(|e| (e.seq, e.at)))
            };
            JournalSpan {
                first: at(meta.journal_first_seq)?,
                last: at(meta.journal_last_seq)?,
            }
        };
        let state = if meta.last_rv.is_some() {
            State::Resumable
        } else {
            State::NeverSynced
        };
        collections.push(CollectionSummary {
            id,
            short_names,
            short_names_damaged,
            meta,
            state,
            journal,
        });
    }
    let damage = store.check()?;
    if damage.is_some() {
        for c in &mut collections {
            c.state = State::Damaged;
        }
    }
    Ok(StoreSummary {
        path: store.path().to_path_buf(),
        bytes_on_disk: store.size_on_disk()?,
        collections,
        damage,
    })
}
