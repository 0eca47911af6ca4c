//! A durable consumer's progress beyond its cursor: a small keyed table of
//! records it keeps beside the cursor (a controller's failed keys and
//! requeues with their due times), written together with the cursor in one
//! atomic batch, so that moving the cursor past an event and recording what
//! is still owed for it can never be torn apart by a crash.
//!
//! Records live in the collection's own engine space under `r` + len16 consumer
//! name + record key; values carry a crc like every other record.

use std::sync::PoisonError;

use super::collection::Collection;
use super::engine::WriteBatch;
use super::error::{Error, Result};
use super::key::{self, prefix};
use super::record;

/// What one [`Collection::commit_progress`] writes, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Move the consumer's cursor to this seq (never backwards: an older
    /// seq leaves it where it is).
    pub ack: Option<u64>,
    /// Records to write (or overwrite): record key → value.
    pub put: Vec<(String, Vec<u8>)>,
    /// Records to remove (absent ones are ignored).
    pub remove: Vec<String>,
}

impl Progress {
    /// Whether committing this would change nothing.
    pub fn is_empty(&self) -> bool {
        self.ack.is_none() && self.put.is_empty() && self.remove.is_empty()
    }
}

fn records_prefix(consumer: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + consumer.len());
    k.push(prefix::PROGRESS);
    k.extend_from_slice(&(consumer.len() as u16).to_be_bytes());
    k.extend_from_slice(consumer.as_bytes());
    k
}

fn record_key(consumer: &str, record: &str) -> Vec<u8> {
    let mut k = records_prefix(consumer);
    k.extend_from_slice(record.as_bytes());
    k
}

fn check_consumer(consumer: &str) -> Result<()> {
    if consumer.is_empty() {
        return Err(Error::InvalidArgument(
            "consumer name must not be empty".into(),
        ));
    }
    if consumer.len() > u16::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "consumer name is {} bytes; at most {} are allowed",
            consumer.len(),
            u16::MAX
        )));
    }
    Ok(())
}

impl Collection {
    /// Every record `consumer` keeps, in record-key order. A record whose
    /// checksum fails is an [`Error::Corrupt`] naming it.
    pub fn progress_records(&self, consumer: &str) -> Result<Vec<(String, Vec<u8>)>> {
        check_consumer(consumer)?;
        let inner = &self.inner;
        let pfx = records_prefix(consumer);
        let mut out = Vec::new();
        for item in inner.scan_prefix(&pfx)? {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k[pfx.len()..]).into_owned();
            let body = record::unseal(&v).map_err(|e| {
                inner.undecodable(
                    format!("progress record {name:?} of consumer {consumer:?}"),
                    e,
                )
            })?;
            out.push((name, body.to_vec()));
        }
        Ok(out)
    }

    /// Writes `progress` for `consumer` in one atomic batch, flushed before
    /// returning: its records and its cursor move together or not at all.
    /// The cursor rules are [`Collection::ack`]'s: forward only, and never
    /// past the last journal seq ([`Error::AckBeyondJournal`]).
    pub fn commit_progress(&self, consumer: &str, progress: &Progress) -> Result<()> {
        let inner = &self.inner;
        inner.shared.writable()?;
        check_consumer(consumer)?;
        if progress.is_empty() {
            return Ok(());
        }
        // As an apply's: a flush about to begin takes this ack in.
        let building = inner.shared.group.building();
        // Held so the cursor check and the batch are not interleaved with an
        // apply (last_seq) or another ack of the same consumer.
        let w = inner.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = WriteBatch::default();
        if let Some(seq) = progress.ack {
            let last = inner.state().last_seq;
            if seq > last {
                return Err(Error::AckBeyondJournal {
                    collection: inner.name.clone(),
                    consumer: consumer.to_string(),
                    seq,
                    last,
                });
            }
            let current = match self.cursor(consumer) {
                Ok(c) => c,
                // The ack rewrites it; the consumer may see some events
                // twice, which at-least-once allows.
                Err(Error::Corrupt { reason, .. }) => {
                    tracing::warn!(collection = %inner.name, consumer, %reason, "replacing a corrupt cursor");
                    None
                }
                Err(e) => return Err(e),
            };
            if current.is_none_or(|c| c < seq) {
                batch.put(key::cursor_key(consumer), record::seal_value(&seq));
            }
        }
        for name in &progress.remove {
            batch.delete(record_key(consumer, name));
        }
        for (name, value) in &progress.put {
            batch.put(record_key(consumer, name), record::seal(value.clone()));
        }
        let ticket = inner.stage(batch)?;
        drop(building);
        // The flush is shared with the applies and acks made meanwhile.
        drop(w);
        inner.durable(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::json::configmaps as collection;
    use crate::store::{Batch, Delta, Store};
    use serde_json::json;

    fn one_change(c: &Collection) {
        c.apply(Batch {
            deltas: vec![Delta::Upsert(
                json!({"metadata": {"name": "a", "namespace": "n", "resourceVersion": "1"}}),
            )],
            rv: Some("1".into()),
        })
        .unwrap();
    }

    #[test]
    fn records_and_cursor_commit_together_and_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        {
            let store = Store::open(&path).unwrap();
            let c = collection(&store);
            one_change(&c);
            c.commit_progress(
                "ctl",
                &Progress {
                    ack: Some(1),
                    put: vec![("n/a".into(), b"due".to_vec()), ("n/b".into(), vec![])],
                    remove: vec![],
                },
            )
            .unwrap();
            // Another consumer's records are its own.
            c.commit_progress(
                "ctl2",
                &Progress {
                    put: vec![("n/a".into(), b"other".to_vec())],
                    ..Progress::default()
                },
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let c = collection(&store);
        assert_eq!(c.cursor("ctl").unwrap(), Some(1));
        assert_eq!(
            c.progress_records("ctl").unwrap(),
            [("n/a".to_string(), b"due".to_vec()), ("n/b".into(), vec![])]
        );
        c.commit_progress(
            "ctl",
            &Progress {
                ack: Some(0),
                put: vec![],
                remove: vec!["n/a".into(), "never-there".into()],
            },
        )
        .unwrap();
        assert_eq!(
            c.cursor("ctl").unwrap(),
            Some(1),
            "the cursor never moves back"
        );
        assert_eq!(c.progress_records("ctl").unwrap(), [("n/b".into(), vec![])]);
        assert_eq!(
            c.progress_records("ctl2").unwrap(),
            [("n/a".into(), b"other".to_vec())]
        );
    }

    #[test]
    fn an_ack_beyond_the_journal_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("s")).unwrap();
        let c = collection(&store);
        one_change(&c);
        let err = c
            .commit_progress(
                "ctl",
                &Progress {
                    ack: Some(5),
                    put: vec![("k".into(), vec![1])],
                    remove: vec![],
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::AckBeyondJournal {
                    seq: 5,
                    last: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(c.progress_records("ctl").unwrap().is_empty());
        assert_eq!(c.cursor("ctl").unwrap(), None);
        assert!(matches!(
            c.commit_progress("", &Progress::default()),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_corrupt_record_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("s")).unwrap();
        let c = collection(&store);
        c.commit_progress(
            "ctl",
            &Progress {
                put: vec![("n/a".into(), b"x".to_vec())],
                ..Progress::default()
            },
        )
        .unwrap();
        let raw = record_key("ctl", "n/a");
        let mut bytes = c.inner.get(&raw).unwrap().unwrap();
        bytes[0] ^= 1;
        let mut batch = crate::store::engine::WriteBatch::default();
        batch.put(raw, bytes);
        c.inner.commit(batch).unwrap();
        match c.progress_records("ctl").unwrap_err() {
            Error::Corrupt { key, .. } => {
                assert!(key.contains("n/a") && key.contains("ctl"), "{key}")
            }
            other => panic!("{other:?}"),
        }
    }
}
