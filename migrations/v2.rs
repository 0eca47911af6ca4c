//! Schema v2: the state record gains the byte counters `inspect` and the
//! benches report (record bytes and raw JSON bytes of the stored objects)
//! and remembers when the dictionary was trained. The step computes the
//! counters by reading every object's envelope once.

use crate::store::engine::{self, Engine};
use crate::store::state::State;
use crate::store::{record, Error, Result};

use super::v1::StateV1;

/// The first byte of a v2 state record.
pub const LAYOUT: u8 = 2;

pub(crate) fn migrate(db: &dyn Engine) -> Result<()> {
    super::rewrite_states(db, 1, |space, bytes| {
        let v1: StateV1 =
            record::unseal_value(bytes).map_err(|e| Error::undecodable(space, "state", e))?;
        let (mut stored_bytes, mut raw_bytes) = (0u64, 0u64);
        for item in engine::scan_prefix(db, space, &[crate::store::OBJECT_PREFIX])? {
            let (_, v) = item?;
            stored_bytes += v.len() as u64;
            // A corrupt record counts no raw bytes, as `apply` counts it.
            if let Ok((envelope, _)) = record::decode(&v) {
                raw_bytes += envelope.raw_len as u64;
            }
        }
        Ok(State {
            layout: LAYOUT,
            last_rv: v1.last_rv,
            last_sync_ms: v1.last_sync_ms,
            dictionary: v1.dictionary,
            // Unknown in v1: as if trained at today's size, so retraining
            // waits for the collection to grow rather than happening at once.
            trained_at: if v1.dictionary == 0 {
                0
            } else {
                v1.objects.max(1)
            },
            last_seq: v1.last_seq,
            journal_first: v1.journal_first,
            journal_len: v1.journal_len,
            journal_bytes: v1.journal_bytes,
            objects: v1.objects,
            stored_bytes,
            raw_bytes,
        })
    })
}
