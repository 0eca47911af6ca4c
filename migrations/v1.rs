//! Schema v1, the first: the layout of `store` (one sled tree per
//! collection, records with a bincode envelope, zstd payload and crc32)
//! with a state record that carried no byte counters:
//!
//! ```text
//! StateV1 { layout: 1, last_rv, last_sync_ms, dictionary, last_seq,
//!           journal_first, journal_len, journal_bytes, objects }
//! ```
//!
//! Also the generator of v1 stores for the migration tests.

use std::path::Path;

use bincode::{Decode, Encode};

use crate::store::engine::{Engine, WriteBatch};
use crate::store::state::State;
use crate::store::{directory, record, Batch, CollectionId, Error, Result, Store, StoreOptions};

/// The first byte of a v1 state record.
pub(crate) const LAYOUT: u8 = 1;

/// A collection's state record as schema v1 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(crate) struct StateV1 {
    pub layout: u8,
    pub last_rv: Option<String>,
    pub last_sync_ms: Option<u64>,
    pub dictionary: u32,
    pub last_seq: u64,
    pub journal_first: u64,
    pub journal_len: u64,
    pub journal_bytes: u64,
    pub objects: u64,
}

/// Nothing to do: a fresh store starts empty, collections are created on use.
pub(crate) fn migrate(_db: &dyn Engine) -> Result<()> {
    Ok(())
}

/// Builds a schema-v1 store at `path` (which must not hold a store yet):
/// collection `id` with `batches` applied (under `options`), as a v1 build
/// would have left it.
/// v1 differs from the current schema only in the state record and the
/// marker, so the generator writes with the current code and then rewrites
/// those two in the v1 layout.
pub fn build_fixture(
    path: &Path,
    id: &CollectionId,
    batches: Vec<Batch>,
    options: StoreOptions,
) -> Result<()> {
    let engine = {
        let store = Store::open_with(path, options)?;
        let collection = store.collection(id)?;
        for batch in batches {
            collection.apply(batch)?;
        }
        let db = store.db();
        for space in super::collection_spaces(db)? {
            let Some(bytes) = db.get(&space, &crate::store::state_key())? else {
                continue;
            };
            let st: State = record::unseal_value(&bytes)
                .map_err(|e| Error::undecodable("fixture", "state", e))?;
            let v1 = StateV1 {
                layout: LAYOUT,
                last_rv: st.last_rv,
                last_sync_ms: st.last_sync_ms,
                dictionary: st.dictionary,
                last_seq: st.last_seq,
                journal_first: st.journal_first,
                journal_len: st.journal_len,
                journal_bytes: st.journal_bytes,
                objects: st.objects,
            };
            let mut batch = WriteBatch::default();
            batch.put(crate::store::state_key(), record::seal_value(&v1));
            db.write(&space, batch, true)?;
        }
        store.engine()
    };
    directory::write_marker(path, 1, engine)
}
