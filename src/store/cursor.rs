//! Durable consumer cursors: consumer name → last acknowledged journal seq.
//! A consumer that restarts reads `journal_since(cursor)` and so sees every
//! event after its last ack at least once (I8).

use std::sync::PoisonError;

use super::collection::Collection;
use super::engine::WriteBatch;
use super::error::{Error, Result};
use super::key;
use super::record;

impl Collection {
    /// The last seq `consumer` acknowledged, if it ever did.
    pub fn cursor(&self, consumer: &str) -> Result<Option<u64>> {
        let inner = &self.inner;
        match inner.get(&key::cursor_key(consumer))? {
            None => Ok(None),
            Some(bytes) => record::unseal_value::<u64>(&bytes)
                .map(Some)
                .map_err(|e| inner.corrupt(format!("cursor {consumer:?}"), e)),
        }
    }

    /// Records durably that `consumer` has handled every event up to `seq`.
    /// Cursors only move forward: acknowledging an older seq is a no-op.
    pub fn ack(&self, consumer: &str, seq: u64) -> Result<()> {
        let inner = &self.inner;
        inner.shared.writable()?;
        if consumer.is_empty() {
            return Err(Error::InvalidArgument(
                "consumer name must not be empty".into(),
            ));
        }
        // Held so the check against last_seq and the write are not interleaved
        // with another ack of the same consumer.
        let _w = inner.write.lock().unwrap_or_else(PoisonError::into_inner);
        let last = inner.state().last_seq;
        if seq > last {
            return Err(Error::AckBeyondJournal {
                collection: inner.name.clone(),
                consumer: consumer.to_string(),
                seq,
                last,
            });
        }
        match self.cursor(consumer) {
            Ok(Some(current)) if current >= seq => return Ok(()),
            Ok(_) => {}
            // The ack rewrites it; the consumer may see some events twice,
            // which at-least-once allows.
            Err(Error::Corrupt { reason, .. }) => {
                tracing::warn!(collection = %inner.name, consumer, %reason, "replacing a corrupt cursor")
            }
            Err(e) => return Err(e),
        }
        let mut batch = WriteBatch::default();
        batch.put(key::cursor_key(consumer), record::seal_value(&seq));
        inner.commit(batch)
    }

    /// Every consumer with a cursor, and its last acknowledged seq.
    pub fn cursors(&self) -> Result<Vec<(String, u64)>> {
        let inner = &self.inner;
        let mut out = Vec::new();
        for item in inner.scan_prefix(&[key::prefix::CURSOR])? {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k[1..]).into_owned();
            let seq = record::unseal_value::<u64>(&v)
                .map_err(|e| inner.corrupt(format!("cursor {name:?}"), e))?;
            out.push((name, seq));
        }
        Ok(out)
    }
}
