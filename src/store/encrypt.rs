//! Encrypting a plaintext store: every object record and journal entry
//! sealed under the key, in bounded batches, crash-safe.
//!
//! The marker first records the key with `complete: false`; from then on a
//! process without the key is refused ([`Error::KeyNeeded`]) and one with
//! it reads records of both kinds, and resumes the rewrite on open. Each
//! batch replaces some records and the collection's state (its byte
//! counters) atomically, so a crash between batches leaves every record
//! readable, plaintext or sealed, never half-written. Once all are sealed
//! the marker says `complete: true`, after which a plaintext record is
//! damage.
//!
//! Resealed records are recompressed without a dictionary (see
//! [`super::encryption`]) and the collection's dictionaries removed: they
//! hold plaintext samples.
//!
//! Rewriting records in place leaves their plaintext in the engine's free
//! space (sled's log, redb's freed pages) until it is reused;
//! [`Store::encrypt`] also copies the database into fresh files, so that
//! none remains in the store directory.

use std::ops::Bound;
use std::path::Path;
use std::sync::PoisonError;

use super::collection::Collection;
use super::compact;
use super::directory::{self, Sealing};
use super::encryption::EncryptionKey;
use super::engine::WriteBatch;
use super::error::{Error, Result};
use super::key::{self, prefix};
use super::record::{self, RecordMeta};
use super::{Store, StoreOptions};

/// Records resealed per committed batch: bounds the memory of a rewrite.
const BATCH: usize = 256;

impl Store {
    /// Encrypts the (plaintext or partly encrypted) store at `path` under
    /// `key`, then rewrites its database into fresh files, so that no
    /// plaintext record remains in the store directory. Resumes a rewrite a
    /// crash interrupted; on a store already encrypted under `key` it only
    /// rewrites the files. The old files are unlinked, not overwritten: the
    /// filesystem may keep their blocks until it reuses them.
    pub fn encrypt(path: impl AsRef<Path>, key: EncryptionKey) -> Result<()> {
        Store::encrypt_with_progress(path, key, || {})
    }

    /// [`Store::encrypt`], calling `progress` after each batch of records
    /// it seals and commits (at most 256 records each).
    pub fn encrypt_with_progress(
        path: impl AsRef<Path>,
        key: EncryptionKey,
        mut progress: impl FnMut(),
    ) -> Result<()> {
        let path = path.as_ref();
        let options = StoreOptions {
            encryption_key: Some(key.clone()),
            ..StoreOptions::default()
        };
        // Opening with the key seals every record.
        Store::open_locked_sealing(
            directory::StoreDir::open(path, false)?,
            options,
            &mut progress,
        )?
        .flush()?;
        compact::copy_to_fresh_files(path)?;
        Ok(())
    }

    /// Seals every plaintext record under the store's key and records in
    /// the marker that all are (see the module's documentation); returns
    /// how many records were sealed.
    pub(crate) fn seal_all(
        &self,
        key: &EncryptionKey,
        sealed_batch: &mut dyn FnMut(),
    ) -> Result<u64> {
        let path = self.path().to_path_buf();
        directory::set_encryption(
            &path,
            Sealing {
                key_id: key.id(),
                complete: false,
            },
        )?;
        let mut sealed = 0;
        for id in self.collections()? {
            sealed += seal_collection(&self.collection(&id)?, key, usize::MAX, sealed_batch)?;
        }
        self.flush()?;
        directory::set_encryption(
            &path,
            Sealing {
                key_id: key.id(),
                complete: true,
            },
        )?;
        self.shared
            .sealed
            .store(true, std::sync::atomic::Ordering::Release);
        if sealed > 0 {
            tracing::info!(path = %path.display(), key_id = %key.id(), records = sealed, "encrypted the store");
        }
        Ok(sealed)
    }
}

/// Seals the plaintext object records and journal entries of `c`, a batch
/// at a time (at most `max_batches` per family: tests stop it there, as a
/// crash would), and removes its dictionaries; returns how many were sealed.
fn seal_collection(
    c: &Collection,
    key: &EncryptionKey,
    max_batches: usize,
    sealed_batch: &mut dyn FnMut(),
) -> Result<u64> {
    let inner = &c.inner;
    let _w = inner.write.lock().unwrap_or_else(PoisonError::into_inner);
    let mut ctx = inner.shared.contexts.take();
    let mut sealed = 0;
    for family in [prefix::OBJECT, prefix::JOURNAL] {
        let mut after = Bound::Included(vec![family]);
        for _ in 0..max_batches {
            let mut st = inner.state();
            let mut sb = WriteBatch::default();
            let mut n = 0;
            let range = (after.clone(), Bound::Excluded(vec![family + 1]));
            for item in inner.shared.db().scan(&inner.space, range)? {
                let (k, v) = item?;
                after = Bound::Excluded(k.to_vec());
                if record::decode_framed(&v).is_ok_and(|f| f.key_id.is_some()) {
                    continue;
                }
                let what = String::from_utf8_lossy(&k).into_owned();
                let (envelope, raw) = match inner.open_record(&what, &v) {
                    Ok(opened) => opened,
                    Err(e) => {
                        // Damage stays damage: left as it is, for verify
                        // and sync's healing to find (it is unreadable
                        // anyway, so nothing readable stays plaintext).
                        tracing::warn!(collection = %inner.name, key = %what, error = %e, "not sealing a corrupt record");
                        continue;
                    }
                };
                let compressed = ctx
                    .compress(&raw, None)
                    .map_err(|e| Error::encode(format!("{} {what}", inner.name), e))?;
                let meta = RecordMeta {
                    rv: envelope.rv,
                    stored_at_ms: envelope.stored_at_ms,
                };
                let rec =
                    record::seal_compressed_under(&compressed, raw.len(), meta, None, Some(key));
                let (old, new) = (v.len() as u64, rec.len() as u64);
                let bytes = if family == prefix::OBJECT {
                    &mut st.stored_bytes
                } else {
                    &mut st.journal_bytes
                };
                *bytes = (*bytes + new).saturating_sub(old);
                sb.put(k.to_vec(), rec);
                n += 1;
                if n == BATCH {
                    break;
                }
            }
            if n == 0 {
                break;
            }
            sb.put(key::state_key(), record::seal_value(&st));
            inner.commit(sb)?;
            *inner.state.write().unwrap_or_else(PoisonError::into_inner) = st;
            sealed += n;
            sealed_batch();
        }
    }
    let mut st = inner.state();
    let mut sb = WriteBatch::default();
    let mut dictionaries = 0;
    for item in inner.scan_prefix(&[prefix::DICTIONARY])? {
        sb.delete(item?.0.to_vec());
        dictionaries += 1;
    }
    if st.dictionary != 0 || dictionaries > 0 {
        st.dictionary = 0;
        sb.put(key::state_key(), record::seal_value(&st));
        inner.commit(sb)?;
        *inner.state.write().unwrap_or_else(PoisonError::into_inner) = st;
        inner
            .dictionaries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
    Ok(sealed as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::json::configmaps;
    use crate::store::{Batch, Delta};
    use serde_json::json;

    fn sealed_under(c: &Collection, family: u8) -> Vec<Option<super::super::KeyId>> {
        c.inner
            .scan_prefix(&[family])
            .unwrap()
            .map(|item| record::decode_framed(&item.unwrap().1).unwrap().key_id)
            .collect()
    }

    /// A store of `n` config maps whose encryption under `key` stopped, as
    /// a crash would stop it, after the first batch of each family.
    fn half_encrypted(path: &Path, key: &EncryptionKey, n: usize) {
        {
            let store = Store::open(path).unwrap();
            let deltas = (0..n)
                .map(|i| {
                    Delta::Upsert(json!({"metadata": {"name": format!("c{i:04}"), "namespace": "ns",
                        "resourceVersion": (i + 1).to_string()}, "data": {"k": format!("value {i}")}}))
                })
                .collect();
            let rv = Some(n.to_string());
            configmaps(&store).apply(Batch { deltas, rv }).unwrap();
        }
        let store = Store::open(path).unwrap();
        let sealing = Sealing {
            key_id: key.id(),
            complete: false,
        };
        directory::set_encryption(path, sealing).unwrap();
        let c = configmaps(&store);
        assert_eq!(
            seal_collection(&c, key, 1, &mut || {}).unwrap(),
            2 * BATCH as u64
        );
        let objects = sealed_under(&c, prefix::OBJECT);
        assert_eq!(objects.iter().filter(|k| k.is_some()).count(), BATCH);
    }

    /// Opens the store at `path` for writing with `key`, which finishes its
    /// encryption: every one of its `n` objects and journal entries sealed.
    fn finished_on_open(path: &Path, key: &EncryptionKey, n: usize) -> (Store, Collection) {
        let options = StoreOptions {
            encryption_key: Some(key.clone()),
            ..StoreOptions::default()
        };
        let store = Store::open_with(path, options).unwrap();
        assert!(store.shared.all_sealed());
        let c = configmaps(&store);
        assert_eq!(c.list().unwrap().len(), n);
        for family in [prefix::OBJECT, prefix::JOURNAL] {
            let ids = sealed_under(&c, family);
            assert_eq!(ids.len(), n);
            assert!(ids.iter().all(|k| *k == Some(key.id())));
        }
        (store, c)
    }

    #[test]
    fn an_interrupted_encryption_reads_both_kinds_and_finishes_on_the_next_open() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        let n = BATCH * 2 + 10;
        let key = EncryptionKey::from_bytes([3; 32]);
        half_encrypted(&path, &key, n);
        assert!(matches!(
            Store::open_read_only(&path),
            Err(Error::KeyNeeded { .. })
        ));
        {
            // Both kinds are read meanwhile.
            let store = Store::open_read_only_with_key(&path, Some(key.clone())).unwrap();
            let c = configmaps(&store);
            assert_eq!(c.list().unwrap().len(), n);
            assert_eq!(c.journal_since(0).unwrap().len(), n);
        }
        let (_store, c) = finished_on_open(&path, &key, n);
        // The counters were kept in step with the rewritten records.
        let size = |family: u8| -> u64 {
            c.inner
                .scan_prefix(&[family])
                .unwrap()
                .map(|item| item.unwrap().1.len() as u64)
                .sum()
        };
        let st = c.inner.state();
        assert_eq!(
            (st.stored_bytes, st.journal_bytes),
            (size(prefix::OBJECT), size(prefix::JOURNAL))
        );
        // Now that every record is sealed, a plaintext one is damage.
        let plain = record::seal_compressed(
            &crate::store::dictionary::ZstdContext::new(3)
                .compress(b"{}", None)
                .unwrap(),
            2,
            RecordMeta::default(),
            None,
        );
        let mut batch = WriteBatch::default();
        batch.put(key::object_key("ns/c0000"), plain);
        c.inner.commit(batch).unwrap();
        let err = c
            .get(&crate::store::ObjectKey::namespaced("ns", "c0000"))
            .unwrap_err();
        assert!(err.to_string().contains("not encrypted"), "{err}");
    }

    #[test]
    fn a_lost_marker_of_an_interrupted_encryption_is_restored_unfinished() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        let n = BATCH + 10;
        let key = EncryptionKey::from_bytes([4; 32]);
        half_encrypted(&path, &key, n);
        std::fs::remove_file(path.join(directory::MARKER_FILE)).unwrap();
        // Plaintext records beside sealed ones: encrypted, not finished, so
        // that the next open with the key seals the rest (a marker saying
        // "complete" would make the plaintext ones damage; one saying
        // "plaintext" would make the sealed ones damage).
        let repair = Store::repair_marker(&path).unwrap().unwrap();
        let unfinished = Sealing {
            key_id: key.id(),
            complete: false,
        };
        assert_eq!(repair.encryption, Some(unfinished));
        assert!(!repair.checked);
        assert!(matches!(
            Store::open(&path),
            Err(Error::KeyNeeded { key_id, .. }) if key_id == key.id()
        ));
        let (store, _c) = finished_on_open(&path, &key, n);
        assert!(store.check().unwrap().is_none());
    }
}
