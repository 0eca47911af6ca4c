//! What the controller owes, and what it may acknowledge.
//!
//! Every change a feed delivers is *outstanding* until each key it maps to
//! has been reconciled by a reconcile that started after the change was
//! delivered (I2: the change was committed, so that reconcile read it). A
//! reconcile that fails, or asks to be requeued, does not leave its changes
//! outstanding: it moves the obligation into a durable *record* of the key
//! (failures so far, when to retry), and the record is committed in the
//! same atomic batch as the cursor that moves past the change (for a
//! related collection, whose cursor lives in another tree, in an earlier
//! batch). So the cursor of a feed is the seq just before its oldest
//! outstanding change, and acknowledging it never skips an event whose
//! reconcile is still failing: that key's record is durable first.
//!
//! After a restart the controller reconciles the keys of the changes after
//! each cursor, the keys with records (at their due time), and every key
//! only when a resync marker says a full resync was under way, or a feed's
//! position was trimmed out of the journal (a change it cannot attribute).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::{ObjectKey, Progress};

/// The record key of the full-resync marker. Object keys always hold a
/// `/`, so no object's record can take it.
pub(crate) const RESYNC_MARKER: &str = "!resync";

/// What is durably owed for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    /// Wall-clock ms since the epoch when the key is due again; `None`:
    /// failed with no timed retry asked (retried after a restart or on its
    /// next change).
    pub due_ms: Option<u64>,
    /// Failures in a row (0 for a plain requeue).
    pub failures: u32,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        // A struct of two numbers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// A record due `after` from now.
    pub fn due_in(after: Option<Duration>, failures: u32) -> Record {
        Record {
            due_ms: after.map(|d| wall_ms().saturating_add(d.as_millis() as u64)),
            failures,
        }
    }

    /// How long from now until the key is due (zero if overdue or untimed).
    pub fn wait(&self) -> Duration {
        Duration::from_millis(self.due_ms.map_or(0, |due| due.saturating_sub(wall_ms())))
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One feed's position.
#[derive(Debug, Default)]
struct FeedState {
    /// Seq → keys still owed for it.
    outstanding: BTreeMap<u64, u32>,
    /// Last seq received.
    delivered: u64,
    /// The cursor as last committed (`None`: never).
    committed: Option<u64>,
}

impl FeedState {
    fn target(&self) -> u64 {
        match self.outstanding.first_key_value() {
            Some((seq, _)) => seq - 1,
            None => self.delivered,
        }
    }
}

/// The changes a key owes a reconcile for.
#[derive(Debug, Default)]
struct Debt {
    /// Delivered, not yet covered by a running reconcile.
    waiting: Vec<(usize, u64)>,
    /// Covered by the reconcile running now.
    running: Vec<(usize, u64)>,
    /// The running reconcile counts for the full resync.
    running_resync: bool,
}

/// A commit to write: the main collection's progress (records and cursor,
/// atomically), then the related collections' cursors.
#[derive(Debug, Default, Clone)]
pub(crate) struct Commit {
    pub main: Progress,
    /// (feed index ≥ 1, seq).
    pub related: Vec<(usize, u64)>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.main.is_empty() && self.related.is_empty()
    }
}

/// The controller's bookkeeping of changes, records and resyncs.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    feeds: Vec<FeedState>,
    debts: HashMap<ObjectKey, Debt>,
    /// Keys with a record, as it will be once pending writes commit.
    records: HashMap<ObjectKey, Record>,
    /// Record writes not yet committed: key → value, `None` to remove.
    pending: BTreeMap<String, Option<Vec<u8>>>,
    /// Keys a full resync still has to reconcile.
    resync: Option<HashSet<ObjectKey>>,
}

impl Ledger {
    /// A ledger for feeds starting at these committed cursors (feed 0 is
    /// the main collection).
    pub fn new(cursors: &[Option<u64>]) -> Ledger {
        Ledger {
            feeds: cursors
                .iter()
                .map(|c| FeedState {
                    outstanding: BTreeMap::new(),
                    delivered: c.unwrap_or(0),
                    committed: *c,
                })
                .collect(),
            ..Ledger::default()
        }
    }

    /// A feed starts (again) after `seq`: nothing before it is owed any more
    /// by the feed's position (what is still outstanding stays outstanding).
    pub fn start_feed_at(&mut self, feed: usize, seq: u64) {
        let f = &mut self.feeds[feed];
        f.delivered = f.delivered.max(seq);
    }

    /// Restores a record read at start.
    pub fn restore_record(&mut self, key: ObjectKey, record: Record) {
        self.records.insert(key, record);
    }

    /// A change on `feed` at `seq` that `keys` owe a reconcile for.
    pub fn delivered(&mut self, feed: usize, seq: u64, keys: &[ObjectKey]) {
        let f = &mut self.feeds[feed];
        f.delivered = f.delivered.max(seq);
        if keys.is_empty() {
            return;
        }
        *f.outstanding.entry(seq).or_insert(0) += keys.len() as u32;
        for key in keys {
            self.debts
                .entry(key.clone())
                .or_default()
                .waiting
                .push((feed, seq));
        }
    }

    /// A reconcile of `key` starts: it covers what was delivered so far.
    pub fn start(&mut self, key: &ObjectKey) {
        let resync = self.resync.as_ref().is_some_and(|r| r.contains(key));
        let debt = self.debts.entry(key.clone()).or_default();
        let waiting = std::mem::take(&mut debt.waiting);
        debt.running.extend(waiting);
        debt.running_resync = resync;
    }

    /// A reconcile of `key` that had started did not run after all (the
    /// controller is shutting down): what it covered is owed again.
    pub fn unstart(&mut self, key: &ObjectKey) {
        if let Some(debt) = self.debts.get_mut(key) {
            let running = std::mem::take(&mut debt.running);
            debt.waiting.splice(0..0, running);
            debt.running_resync = false;
        }
    }

    /// The reconcile of `key` is over, and what it owed is paid or recorded.
    pub fn settle(&mut self, key: &ObjectKey) {
        let Some(debt) = self.debts.get_mut(key) else {
            return;
        };
        for (feed, seq) in std::mem::take(&mut debt.running) {
            let outstanding = &mut self.feeds[feed].outstanding;
            if let Some(n) = outstanding.get_mut(&seq) {
                *n -= 1;
                if *n == 0 {
                    outstanding.remove(&seq);
                }
            }
        }
        let resync = std::mem::take(&mut debt.running_resync);
        if debt.waiting.is_empty() {
            self.debts.remove(key);
        }
        if resync {
            if let Some(pending) = &mut self.resync {
                pending.remove(key);
                if pending.is_empty() {
                    self.resync = None;
                    self.pending.insert(RESYNC_MARKER.into(), None);
                    tracing::info!("full resync done");
                }
            }
        }
    }

    /// Every one of `keys` must be reconciled, durably: a marker is
    /// written first, and removed once each key's reconcile is over.
    pub fn begin_resync(&mut self, keys: impl IntoIterator<Item = ObjectKey>) {
        let keys: HashSet<ObjectKey> = keys.into_iter().collect();
        tracing::info!(keys = keys.len(), "full resync");
        self.pending.insert(RESYNC_MARKER.into(), Some(Vec::new()));
        if keys.is_empty() {
            // Nothing to reconcile: the marker goes with the same commit.
            self.pending.insert(RESYNC_MARKER.into(), None);
            self.resync = None;
        } else {
            self.resync = Some(keys);
        }
    }

    /// Whether a full resync is under way.
    #[cfg(test)]
    pub fn resyncing(&self) -> bool {
        self.resync.is_some()
    }

    /// `key` is owed again later (failed, or requeued).
    pub fn put_record(&mut self, key: &ObjectKey, record: Record) {
        self.pending.insert(key.to_string(), Some(record.encode()));
        self.records.insert(key.clone(), record);
    }

    /// `key` owes nothing later any more.
    pub fn remove_record(&mut self, key: &ObjectKey) {
        if self.records.remove(key).is_some() {
            self.pending.insert(key.to_string(), None);
        }
    }

    /// What to commit now; `None` when nothing changed since the last one.
    /// The caller writes it, then calls [`Ledger::committed`] or, if that
    /// failed, [`Ledger::restore`].
    pub fn take_commit(&mut self) -> Option<Commit> {
        let mut commit = Commit::default();
        for (name, value) in std::mem::take(&mut self.pending) {
            match value {
                Some(v) => commit.main.put.push((name, v)),
                None => commit.main.remove.push(name),
            }
        }
        for (i, f) in self.feeds.iter().enumerate() {
            let target = f.target();
            if f.committed.is_none_or(|c| c < target) {
                if i == 0 {
                    commit.main.ack = Some(target);
                } else {
                    commit.related.push((i, target));
                }
            }
        }
        (!commit.is_empty()).then_some(commit)
    }

    /// `commit` is durable.
    pub fn committed(&mut self, commit: &Commit) {
        if let Some(seq) = commit.main.ack {
            self.feeds[0].committed = Some(seq);
        }
        for &(i, seq) in &commit.related {
            self.feeds[i].committed = Some(seq);
        }
    }

    /// `commit` failed: its record writes are pending again, unless newer
    /// ones replaced them meanwhile.
    pub fn restore(&mut self, commit: Commit) {
        for (name, value) in commit.main.put {
            self.pending.entry(name).or_insert(Some(value));
        }
        for name in commit.main.remove {
            self.pending.entry(name).or_insert(None);
        }
    }

    /// Whether anything waits to be committed.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
            || self
                .feeds
                .iter()
                .any(|f| f.committed.is_none_or(|c| c < f.target()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str) -> ObjectKey {
        ObjectKey::namespaced("ns", name)
    }

    #[test]
    fn the_cursor_stops_before_the_oldest_change_still_owed() {
        let mut l = Ledger::new(&[Some(4)]);
        l.delivered(0, 5, &[k("a")]);
        l.delivered(0, 6, &[k("b")]);
        l.start(&k("a"));
        l.start(&k("b"));
        l.settle(&k("b"));
        assert_eq!(l.take_commit().map(|c| c.main.ack), None, "5 is still owed");
        // a fails: the failure is recorded, and the cursor moves with it.
        l.put_record(&k("a"), Record::due_in(Some(Duration::from_secs(1)), 1));
        l.settle(&k("a"));
        let c = l.take_commit().unwrap();
        assert_eq!(c.main.ack, Some(6));
        assert_eq!(c.main.put.len(), 1);
        l.committed(&c);
        assert!(l.take_commit().is_none());
    }

    #[test]
    fn a_change_during_a_reconcile_is_owed_to_the_next_one() {
        let mut l = Ledger::new(&[Some(0)]);
        l.delivered(0, 1, &[k("a")]);
        l.start(&k("a"));
        l.delivered(0, 2, &[k("a")]);
        l.settle(&k("a"));
        let c = l.take_commit().unwrap();
        assert_eq!(c.main.ack, Some(1));
        l.committed(&c);
        l.start(&k("a"));
        l.unstart(&k("a"));
        assert!(
            l.take_commit().is_none(),
            "an unstarted reconcile pays nothing"
        );
        l.start(&k("a"));
        l.settle(&k("a"));
        assert_eq!(l.take_commit().unwrap().main.ack, Some(2));
    }

    #[test]
    fn a_change_mapping_to_several_keys_waits_for_all_and_to_none_for_none() {
        let mut l = Ledger::new(&[Some(0), Some(10)]);
        l.delivered(1, 11, &[]);
        l.delivered(1, 12, &[k("a"), k("b")]);
        let c = l.take_commit().unwrap();
        assert_eq!(c.related, [(1, 11)]);
        l.committed(&c);
        l.start(&k("a"));
        l.settle(&k("a"));
        assert!(l.take_commit().is_none());
        l.start(&k("b"));
        l.settle(&k("b"));
        assert_eq!(l.take_commit().unwrap().related, [(1, 12)]);
    }

    #[test]
    fn the_resync_marker_goes_once_every_key_was_reconciled() {
        let mut l = Ledger::new(&[None]);
        l.start_feed_at(0, 9);
        l.start(&k("a"));
        l.begin_resync([k("a"), k("b")]);
        let c = l.take_commit().unwrap();
        assert_eq!(c.main.ack, Some(9));
        assert_eq!(c.main.put, [(RESYNC_MARKER.to_string(), vec![])]);
        l.committed(&c);
        // a's reconcile started before the resync: it does not count.
        l.settle(&k("a"));
        assert!(l.resyncing());
        for key in [k("a"), k("b")] {
            l.start(&key);
            l.settle(&key);
        }
        assert!(!l.resyncing());
        assert_eq!(l.take_commit().unwrap().main.remove, [RESYNC_MARKER]);
    }

    #[test]
    fn a_failed_commit_is_written_again_unless_replaced() {
        let mut l = Ledger::new(&[Some(0)]);
        l.put_record(&k("a"), Record::due_in(None, 1));
        l.put_record(&k("b"), Record::due_in(None, 1));
        let c = l.take_commit().unwrap();
        l.remove_record(&k("b"));
        l.restore(c);
        let c = l.take_commit().unwrap();
        assert_eq!(c.main.put.len(), 1);
        assert_eq!(c.main.remove, ["ns/b"]);
        let r = Record::due_in(Some(Duration::from_secs(60)), 2);
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert!(r.wait() > Duration::from_secs(50));
    }
}
