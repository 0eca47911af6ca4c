//! A collection's state record: last resourceVersion, journal span and
//! counters. It is rewritten in every `apply` batch, so it always describes
//! exactly the objects and journal entries committed with it (I1).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bincode::{Decode, Encode};

/// Layout of the state record in the current schema; the first byte of the
/// encoded record, so migrations can tell layouts apart.
pub(crate) const STATE_LAYOUT: u8 = 3;

/// The state of one collection (schema v3 layout: v2's fields, under a
/// layout byte that tells a v3 store's data from a v2 one's).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(crate) struct State {
    /// Always [`STATE_LAYOUT`]; first so that it is the first byte on disk.
    pub layout: u8,
    /// Last resourceVersion applied.
    pub last_rv: Option<String>,
    /// When the last batch was applied, ms since the epoch.
    pub last_sync_ms: Option<u64>,
    /// Dictionary new records use; 0 when none is trained yet.
    pub dictionary: u32,
    /// Object count at the last training attempt (0: never attempted).
    pub trained_at: u64,
    /// Last journal seq assigned (0: none yet).
    pub last_seq: u64,
    /// Oldest journal seq kept (`last_seq + 1` when the journal is empty).
    pub journal_first: u64,
    /// Journal entries kept.
    pub journal_len: u64,
    /// Bytes of the journal entries kept.
    pub journal_bytes: u64,
    /// Objects stored.
    pub objects: u64,
    /// Bytes of the object records (envelope + compressed payload + crc).
    pub stored_bytes: u64,
    /// Bytes of the objects' JSON, uncompressed.
    pub raw_bytes: u64,
}

impl Default for State {
    fn default() -> State {
        State {
            layout: STATE_LAYOUT,
            last_rv: None,
            last_sync_ms: None,
            dictionary: 0,
            trained_at: 0,
            last_seq: 0,
            journal_first: 1,
            journal_len: 0,
            journal_bytes: 0,
            objects: 0,
            stored_bytes: 0,
            raw_bytes: 0,
        }
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
