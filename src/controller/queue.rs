//! The workqueue: client-go's semantics, with kube-runtime's one schedule
//! slot per key.
//!
//! - A key is queued at most once (dedupe).
//! - A key being processed is never handed out again until it is `done`;
//!   if it is added meanwhile it is marked dirty and queued again after.
//! - A key waits for a delay in one slot: a later request for an earlier
//!   time moves it forward, a request for a later time is ignored, and an
//!   immediate add takes it out of the delayed set.
//! - A debounced add (kube-runtime's `Config::debounce`) is the exception:
//!   it moves the key's slot to its time, earlier or later, so that a burst
//!   of changes to one key ends in one reconcile after the last of them.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;

use tokio::time::Instant;

/// Keys to process, in order, each once.
#[derive(Debug)]
pub(crate) struct WorkQueue<T> {
    ready: VecDeque<T>,
    queued: HashSet<T>,
    processing: HashSet<T>,
    /// Added while processing: queued again once done, now (`None`) or
    /// at a debounced time.
    dirty: HashMap<T, Option<Instant>>,
    /// (due, insertion number) → key; the number breaks ties in FIFO order.
    delayed: BTreeSet<(Instant, u64, T)>,
    due_of: HashMap<T, (Instant, u64)>,
    next_id: u64,
}

impl<T: Clone + Eq + Hash + Ord> Default for WorkQueue<T> {
    fn default() -> Self {
        WorkQueue {
            ready: VecDeque::new(),
            queued: HashSet::new(),
            processing: HashSet::new(),
            dirty: HashMap::new(),
            delayed: BTreeSet::new(),
            due_of: HashMap::new(),
            next_id: 0,
        }
    }
}

impl<T: Clone + Eq + Hash + Ord> WorkQueue<T> {
    /// Queues `key` now (a no-op if it is queued already).
    pub fn add(&mut self, key: T) {
        self.cancel_delay(&key);
        if self.processing.contains(&key) {
            self.dirty.insert(key, None);
        } else if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    /// Queues `key` at `at`, unless it is queued already or waits for an
    /// earlier time.
    pub fn add_at(&mut self, key: T, at: Instant, now: Instant) {
        if at <= now {
            return self.add(key);
        }
        if self.queued.contains(&key) {
            return;
        }
        match self.dirty.get_mut(&key) {
            None => {}
            Some(None) => return,
            Some(Some(due)) => {
                *due = (*due).min(at);
                return;
            }
        }
        if let Some(&(due, _)) = self.due_of.get(&key) {
            if due <= at {
                return;
            }
        }
        self.delay(key, at);
    }

    /// Queues `key` at `at` whatever time it waited for before: each
    /// change to a key pushes its reconcile back to `at`, so changes that
    /// come closer together than the debounce end in one reconcile. A key
    /// queued now stays queued; a key being processed runs again at `at`
    /// once done, unless something asked for it at once meanwhile.
    pub fn add_debounced(&mut self, key: T, at: Instant, now: Instant) {
        if at <= now || self.queued.contains(&key) {
            return self.add(key);
        }
        if self.processing.contains(&key) {
            let slot = self.dirty.entry(key).or_insert(Some(at));
            if let Some(due) = slot {
                *due = at;
            }
            return;
        }
        self.delay(key, at);
    }

    /// Puts `key` in its one delayed slot, at `at`.
    fn delay(&mut self, key: T, at: Instant) {
        self.cancel_delay(&key);
        let id = self.next_id;
        self.next_id += 1;
        self.delayed.insert((at, id, key.clone()));
        self.due_of.insert(key, (at, id));
    }

    fn cancel_delay(&mut self, key: &T) {
        if let Some((due, id)) = self.due_of.remove(key) {
            self.delayed.remove(&(due, id, key.clone()));
        }
    }

    /// Queues every delayed key due at `now`.
    pub fn promote_due(&mut self, now: Instant) {
        while let Some((due, _, _)) = self.delayed.first() {
            if *due > now {
                break;
            }
            if let Some((_, _, key)) = self.delayed.pop_first() {
                self.due_of.remove(&key);
                self.add(key);
            }
        }
    }

    /// When the next delayed key is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.first().map(|(due, _, _)| *due)
    }

    /// The next key to process; it is processing until [`Self::done`].
    pub fn next(&mut self) -> Option<T> {
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        self.processing.insert(key.clone());
        Some(key)
    }

    /// Ends processing of `key`; queues it again if it was added meanwhile.
    pub fn done(&mut self, key: &T, now: Instant) {
        self.processing.remove(key);
        match self.dirty.remove(key) {
            Some(None) => self.add(key.clone()),
            Some(Some(at)) => self.add_debounced(key.clone(), at, now),
            None => {}
        }
    }

    /// Keys ready to be handed out.
    #[cfg(test)]
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Keys being processed.
    #[cfg(test)]
    pub fn processing_len(&self) -> usize {
        self.processing.len()
    }

    /// When `key` is due, if it waits for a delay.
    #[cfg(test)]
    pub fn due(&self, key: &T) -> Option<Instant> {
        self.due_of.get(key).map(|(due, _)| *due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn keys_are_deduped_and_kept_in_order() {
        let mut q = WorkQueue::default();
        for k in [1, 2, 1, 3, 2] {
            q.add(k);
        }
        assert_eq!(q.ready_len(), 3);
        assert_eq!(
            (q.next(), q.next(), q.next(), q.next()),
            (Some(1), Some(2), Some(3), None)
        );
    }

    #[test]
    fn a_key_added_while_processing_comes_back_once_after_done() {
        let mut q = WorkQueue::default();
        q.add(7);
        assert_eq!(q.next(), Some(7));
        q.add(7);
        q.add(7);
        assert_eq!(q.next(), None, "never on two workers at once");
        q.done(&7, Instant::now());
        assert_eq!(q.next(), Some(7));
        q.done(&7, Instant::now());
        assert_eq!(q.next(), None);
    }

    #[test]
    fn the_earliest_schedule_wins_and_an_add_now_cancels_the_delay() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut q = WorkQueue::default();
        q.add_at(1, now + 10 * s, now);
        q.add_at(1, now + 5 * s, now);
        q.add_at(1, now + 8 * s, now);
        assert_eq!(q.due(&1), Some(now + 5 * s));
        q.promote_due(now + 4 * s);
        assert_eq!(q.next(), None);
        q.promote_due(now + 5 * s);
        assert_eq!(q.next(), Some(1));
        q.done(&1, now);
        q.add_at(2, now + 5 * s, now);
        q.add(2);
        assert_eq!(q.next_due(), None);
        assert_eq!(q.next(), Some(2));
    }

    #[test]
    fn a_debounced_key_runs_once_after_the_last_change() {
        let now = Instant::now();
        let ms = Duration::from_millis(1);
        let mut q = WorkQueue::default();
        // Changes 100 ms apart, debounced by 300 ms: pushed back each time.
        q.add_debounced(1, now + 300 * ms, now);
        q.add_debounced(1, now + 400 * ms, now + 100 * ms);
        q.add_debounced(1, now + 500 * ms, now + 200 * ms);
        assert_eq!(q.due(&1), Some(now + 500 * ms));
        q.promote_due(now + 499 * ms);
        assert_eq!(q.next(), None);
        q.promote_due(now + 500 * ms);
        assert_eq!(q.next(), Some(1));
        assert_eq!(q.next(), None);
        // A change during the reconcile runs it again, debounced from then.
        q.add_debounced(1, now + 900 * ms, now + 600 * ms);
        q.done(&1, now + 700 * ms);
        assert_eq!(q.next(), None);
        assert_eq!(q.due(&1), Some(now + 900 * ms));
        // A requeue far off is brought forward by a change...
        q.promote_due(now + 900 * ms);
        assert_eq!(q.next(), Some(1));
        q.done(&1, now + 950 * ms);
        q.add_at(1, now + 60_000 * ms, now + 950 * ms);
        q.add_debounced(1, now + 1_300 * ms, now + 1_000 * ms);
        assert_eq!(q.due(&1), Some(now + 1_300 * ms));
        // ...and an add now beats the debounce.
        q.add(1);
        assert_eq!(q.due(&1), None);
        assert_eq!(q.next(), Some(1));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8),
        AddIn(u8, u8),
        Debounce(u8, u8),
        Next,
        Done(u8),
        Tick(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6).prop_map(Op::Add),
            (0u8..6, 1u8..20).prop_map(|(k, d)| Op::AddIn(k, d)),
            (0u8..6, 1u8..20).prop_map(|(k, d)| Op::Debounce(k, d)),
            Just(Op::Next),
            (0u8..6).prop_map(Op::Done),
            (1u8..10).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Against a model: a key is handed out only if queued, never while
        /// processing, never twice for one add; every add is served.
        #[test]
        fn behaves_like_the_model(ops in proptest::collection::vec(op(), 1..200)) {
            let start = Instant::now();
            let mut now = start;
            let mut q = WorkQueue::default();
            // Model: keys wanted now / at a time, keys held by a worker.
            let mut wanted: HashSet<u8> = HashSet::new();
            let mut at: HashMap<u8, Instant> = HashMap::new();
            let mut held: HashSet<u8> = HashSet::new();
            // Held keys changed while held, debounced: due again at a time
            // once done.
            let mut dirty_at: HashMap<u8, Instant> = HashMap::new();
            for op in ops {
                match op {
                    Op::Add(k) => { q.add(k); wanted.insert(k); at.remove(&k); dirty_at.remove(&k); }
                    Op::AddIn(k, d) => {
                        let t = now + Duration::from_millis(d as u64);
                        q.add_at(k, t, now);
                        if let Some(due) = dirty_at.get_mut(&k) {
                            *due = (*due).min(t);
                        } else if !wanted.contains(&k) {
                            let e = at.entry(k).or_insert(t);
                            *e = (*e).min(t);
                        }
                    }
                    Op::Debounce(k, d) => {
                        let t = now + Duration::from_millis(d as u64);
                        q.add_debounced(k, t, now);
                        if wanted.contains(&k) {
                            // Queued now, or due at once after its reconcile.
                        } else if held.contains(&k) {
                            dirty_at.insert(k, t);
                        } else {
                            at.insert(k, t);
                        }
                    }
                    Op::Tick(d) => {
                        now += Duration::from_millis(d as u64);
                        q.promote_due(now);
                        at.retain(|k, t| if *t <= now { wanted.insert(*k); false } else { true });
                        dirty_at.retain(|k, _| !wanted.contains(k));
                    }
                    Op::Next => {
                        let got = q.next();
                        let servable: HashSet<u8> = wanted.difference(&held).copied().collect();
                        match got {
                            Some(k) => {
                                prop_assert!(servable.contains(&k), "{k} handed out; servable {servable:?}");
                                wanted.remove(&k);
                                held.insert(k);
                            }
                            None => prop_assert!(servable.is_empty(), "nothing handed out; servable {servable:?}"),
                        }
                    }
                    Op::Done(k) => {
                        if held.remove(&k) {
                            q.done(&k, now);
                            if let Some(t) = dirty_at.remove(&k) {
                                if t <= now { wanted.insert(k); at.remove(&k); } else { at.insert(k, t); }
                            }
                        }
                    }
                }
                prop_assert_eq!(q.processing_len(), held.len());
                prop_assert_eq!(q.next_due(), at.values().min().copied());
            }
        }
    }
}
