//! A full consistency check of one collection: every record's crc and
//! payload, every index entry against the objects, the journal and the
//! counters of the state record. Problems are reported by key, not fixed.

use std::collections::BTreeSet;

use super::collection::Collection;
use super::error::{Error, Result};
use super::index;
use super::key::{self, prefix};
use super::record;
use super::short_names;
use super::ObjectKey;

/// One thing `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong: an object key, `journal seq N`, `index label=…`, `state`...
    pub key: String,
    /// Why.
    pub reason: String,
}

/// What `verify` checked and what it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Object records checked.
    pub objects: u64,
    /// Journal entries checked.
    pub journal_entries: u64,
    /// Index entries checked (built-in label index and registered indexers).
    pub index_entries: u64,
    /// Dictionaries checked.
    pub dictionaries: u64,
    /// Cursors checked.
    pub cursors: u64,
    /// Everything found wrong.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing was found wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            reason: reason.into(),
        });
    }

    fn record(&mut self, err: Error) {
        match err {
            Error::Corrupt { key, reason, .. } => self.problem(key, reason),
            other => self.problem("?", other.to_string()),
        }
    }
}

impl Collection {
    /// Reads and checks everything the collection holds. Storage errors are
    /// returned; damage is reported in the [`VerifyReport`].
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(|| {})
    }

    /// [`Collection::verify`], calling `progress` after each object record
    /// and each journal entry checked (what a progress bar counts).
    pub fn verify_with_progress(&self, mut progress: impl FnMut()) -> Result<VerifyReport> {
        let inner = &self.inner;
        let mut report = VerifyReport::default();
        let st = inner.state();

        let short_names_key = short_names::key(&inner.name);
        if let Some(body) = inner
            .shared
            .db
            .get(super::DEFAULT_SPACE, short_names_key.as_bytes())?
        {
            if let Err(e) = short_names::decode(&inner.name, &body) {
                report.record(e);
            }
        }

        for item in inner.scan_prefix(&[prefix::DICTIONARY])? {
            let (k, v) = item?;
            report.dictionaries += 1;
            let id = key::dictionary_id(&k).unwrap_or(0);
            if let Err(e) = record::unseal(&v) {
                report.problem(format!("dictionary {id}"), e.to_string());
            }
        }

        let indexers = inner
            .indexers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut expected = BTreeSet::new();
        let (mut stored_bytes, mut raw_bytes) = (0u64, 0u64);
        for item in inner.scan_prefix(&[prefix::OBJECT])? {
            let (k, v) = item?;
            report.objects += 1;
            progress();
            let key_str = key::object_key_from(&k);
            stored_bytes += v.len() as u64;
            let stored = match inner.decode_object(&key_str, &v) {
                Ok(s) => s,
                Err(e) => {
                    report.record(e);
                    continue;
                }
            };
            raw_bytes += stored.envelope.raw_len as u64;
            match ObjectKey::of(&stored.value) {
                Ok(k) if k.encode() == key_str => {}
                Ok(k) => report.problem(&key_str, format!("record holds object {k}")),
                Err(e) => report.problem(&key_str, e.to_string()),
            }
            let rv = stored
                .value
                .pointer("/metadata/resourceVersion")
                .and_then(|v| v.as_str());
            if rv != Some(stored.envelope.rv.as_str()) {
                report.problem(
                    &key_str,
                    format!("envelope rv {:?}, object rv {rv:?}", stored.envelope.rv),
                );
            }
            expected.extend(index::entries(&stored.value, &key_str, &indexers));
        }
        if report.objects != st.objects {
            report.problem(
                "state",
                format!("counts {} objects, found {}", st.objects, report.objects),
            );
        }
        if report.is_ok() && (stored_bytes != st.stored_bytes || raw_bytes != st.raw_bytes) {
            report.problem(
                "state",
                format!(
                    "counts {}/{} stored/raw bytes, found {stored_bytes}/{raw_bytes}",
                    st.stored_bytes, st.raw_bytes
                ),
            );
        }

        let checked: BTreeSet<&str> = indexers
            .keys()
            .map(String::as_str)
            .chain([index::LABEL_INDEX])
            .collect();
        let mut actual = BTreeSet::new();
        for item in inner.scan_prefix(&[prefix::INDEX])? {
            let (k, _) = item?;
            match key::parse_index_entry(&k) {
                Some((name, _, _)) if !checked.contains(name.as_str()) => {}
                Some(_) => {
                    report.index_entries += 1;
                    actual.insert(k.to_vec());
                }
                None => report.problem(
                    "index",
                    format!("malformed index entry {:?}", String::from_utf8_lossy(&k)),
                ),
            }
        }
        let corrupt_keys: BTreeSet<String> =
            report.problems.iter().map(|p| p.key.clone()).collect();
        for (entries, what) in [
            (
                actual.difference(&expected),
                "entry without a matching object",
            ),
            (expected.difference(&actual), "missing entry"),
        ] {
            for e in entries {
                if let Some((name, value, key)) = key::parse_index_entry(e) {
                    // The index entries of an unreadable object cannot be judged.
                    if !corrupt_keys.contains(&key) {
                        report.problem(format!("index {name} {value:?} → {key}"), what);
                    }
                }
            }
        }

        let mut journal_bytes = 0u64;
        let mut seqs = BTreeSet::new();
        for item in inner.scan_prefix(&[prefix::JOURNAL])? {
            let (k, v) = item?;
            report.journal_entries += 1;
            progress();
            journal_bytes += v.len() as u64;
            let Some(seq) = key::journal_seq(&k) else {
                report.problem("journal", "malformed journal key");
                continue;
            };
            seqs.insert(seq);
            if seq < st.journal_first || seq > st.last_seq {
                report.problem(
                    format!("journal seq {seq}"),
                    format!(
                        "outside the kept span {}..={}",
                        st.journal_first, st.last_seq
                    ),
                );
            }
            if let Err(e) = self.decode_entry(seq, &v) {
                report.record(e);
            }
        }
        if report.journal_entries != st.journal_len || journal_bytes != st.journal_bytes {
            report.problem(
                "state",
                format!(
                    "counts {} journal entries / {} bytes, found {} / {journal_bytes}",
                    st.journal_len, st.journal_bytes, report.journal_entries
                ),
            );
        }
        for item in inner.scan_prefix(&[prefix::HISTORY])? {
            let (k, _) = item?;
            let seq = k
                .len()
                .checked_sub(8)
                .and_then(|at| k[at..].try_into().ok())
                .map(u64::from_be_bytes);
            if !seq.is_some_and(|s| seqs.contains(&s)) {
                report.problem(
                    "history",
                    format!(
                        "entry {:?} names no journal entry",
                        String::from_utf8_lossy(&k)
                    ),
                );
            }
        }

        for item in inner.scan_prefix(&[prefix::CURSOR])? {
            let (k, v) = item?;
            report.cursors += 1;
            if let Err(e) = record::unseal_value::<u64>(&v) {
                report.problem(
                    format!("cursor {:?}", String::from_utf8_lossy(&k[1..])),
                    e.to_string(),
                );
            }
        }
        Ok(report)
    }
}
