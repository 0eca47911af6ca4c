//! Durable consumer cursors: consumer name → last acknowledged journal seq.
//! A consumer that restarts reads `journal_since(cursor)` and so sees every
//! event after its last ack at least once (I8).

use super::collection::Collection;
use super::error::Result;
use super::key;
use super::record;
use super::Progress;

impl Collection {
    /// The last seq `consumer` acknowledged, if it ever did.
    pub fn cursor(&self, consumer: &str) -> Result<Option<u64>> {
        let inner = &self.inner;
        match inner.get(&key::cursor_key(consumer))? {
            None => Ok(None),
            Some(bytes) => record::unseal_value::<u64>(&bytes)
                .map(Some)
                .map_err(|e| inner.undecodable(format!("cursor {consumer:?}"), e)),
        }
    }

    /// Records durably that `consumer` has handled every event up to `seq`.
    /// Cursors only move forward: acknowledging an older seq is a no-op.
    pub fn ack(&self, consumer: &str, seq: u64) -> Result<()> {
        self.commit_progress(
            consumer,
            &Progress {
                ack: Some(seq),
                ..Progress::default()
            },
        )
    }

    /// Every consumer with a cursor, and its last acknowledged seq.
    pub fn cursors(&self) -> Result<Vec<(String, u64)>> {
        let inner = &self.inner;
        let mut out = Vec::new();
        for item in inner.scan_prefix(&[key::prefix::CURSOR])? {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k[1..]).into_owned();
            let seq = record::unseal_value::<u64>(&v)
                .map_err(|e| inner.undecodable(format!("cursor {name:?}"), e))?;
            out.push((name, seq));
        }
        Ok(out)
    }
}
