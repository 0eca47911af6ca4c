//! One resource's watch history, kept as kube-apiserver's watch cache keeps
//! it: a ring of events whose capacity adapts to the write rate, so that it
//! holds about `eventFreshDuration` (75 s) of events, never fewer than 100
//! nor more than 102,400.
//!
//! The rule follows `watchCacheHistory` in
//! staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache_history.go
//! (formerly `watchCache` in watch_cache.go): `updateCache`,
//! `resizeCacheLocked`, `doCacheResizeLocked`, `oldestServableLocked`,
//! `GetIntervalLocked`, `ResetLocked` and `capacityUpperBound`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::clock::SimTime;
use super::state::Event;
use super::status::ApiError;

/// `DefaultEventFreshDuration` (cacher.go): how long events are kept when
/// the write rate allows it; `defaultBookmarkFrequency` plus 15 s.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(75);
/// `defaultLowerBoundCapacity` (watch_cache_history.go).
pub const DEFAULT_LOWER_BOUND: usize = 100;
/// `defaultUpperBoundCapacity` (watch_cache_history.go): 100 × 1024.
pub const DEFAULT_UPPER_BOUND: usize = 100 * 1024;

/// How a watch cache sizes its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// `eventFreshDuration`: the ring grows while the event it would evict
    /// is younger than this.
    pub window: Duration,
    /// Capacity it never shrinks below.
    pub lower_bound: usize,
    /// Capacity it never grows above.
    pub upper_bound: usize,
}

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig::for_window(DEFAULT_WINDOW)
    }
}

impl HistoryConfig {
    /// Upstream's bounds for a window: the lower bound, and
    /// [`capacity_upper_bound`].
    pub fn for_window(window: Duration) -> HistoryConfig {
        HistoryConfig {
            window,
            lower_bound: DEFAULT_LOWER_BOUND,
            upper_bound: capacity_upper_bound(window),
        }
    }
}

/// `capacityUpperBound` (watch_cache_history.go): 102,400 up to the default
/// window; for a longer one, 102,400 times the ratio of the windows rounded
/// up to a power of two (the ring only ever doubles), capped to fit 32 bits.
pub fn capacity_upper_bound(window: Duration) -> usize {
    if window <= DEFAULT_WINDOW {
        return DEFAULT_UPPER_BOUND;
    }
    let ratio = window.as_secs_f64() / DEFAULT_WINDOW.as_secs_f64();
    let exponent = ratio.log2().ceil() as u32;
    let max_exponent = ((i32::MAX as f64) / DEFAULT_UPPER_BOUND as f64)
        .log2()
        .floor() as u32;
    DEFAULT_UPPER_BOUND << exponent.min(max_exponent)
}

/// A resource's ring of recent events.
#[derive(Debug)]
pub(crate) struct History {
    config: HistoryConfig,
    events: VecDeque<Arc<Event>>,
    /// The ring's current capacity; `events` is full at this length.
    capacity: usize,
    /// The version of the last (re)initialisation: with nothing evicted
    /// since, every change after it is still here.
    list_rv: u64,
    removed_since_relist: bool,
}

impl History {
    /// An empty ring at the lower bound, as after the cacher's initial list
    /// at `list_rv`.
    pub fn new(config: HistoryConfig, list_rv: u64) -> History {
        History {
            config,
            events: VecDeque::new(),
            capacity: config.lower_bound.max(1),
            list_rv,
            removed_since_relist: false,
        }
    }

    /// Current capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Version of the newest event held, if any.
    pub fn newest_rv(&self) -> Option<u64> {
        self.events.back().map(|e| e.rv)
    }

    fn is_full(&self) -> bool {
        self.events.len() >= self.capacity
    }

    /// `updateCache`: resize if the rule says so, evict the oldest event
    /// when full, append.
    pub fn push(&mut self, event: Arc<Event>) {
        self.resize(event.time);
        if self.is_full() {
            self.events.pop_front();
            self.removed_since_relist = true;
        }
        self.events.push_back(event);
    }

    /// `resizeCacheLocked`: a full ring doubles (up to the upper bound)
    /// while its oldest event is younger than the window; it halves (down to
    /// the lower bound) when even the newest quarter reaches past the
    /// window, which keeps it from flapping.
    fn resize(&mut self, now: SimTime) {
        if !self.is_full() {
            return;
        }
        let age = |e: &Event| now.saturating_sub(e.time);
        if let Some(oldest) = self.events.front() {
            if age(oldest) < self.config.window {
                let grown = (self.capacity * 2).min(self.config.upper_bound);
                if grown > self.capacity {
                    self.capacity = grown;
                }
                return;
            }
        }
        let quarter = self.events.len() - self.capacity / 4;
        if let Some(e) = self.events.get(quarter) {
            if age(e) > self.config.window {
                let shrunk = (self.capacity / 2).max(self.config.lower_bound);
                if shrunk < self.capacity {
                    // doCacheResizeLocked keeps the newest `shrunk` events.
                    let excess = self.events.len() - shrunk;
                    self.events.drain(..excess);
                    self.capacity = shrunk;
                }
            }
        }
    }

    /// The newest version a watch may start from and still get every later
    /// event: one less than `oldestServableLocked`. Older ones are 410
    /// "too old resource version" (`GetIntervalLocked`).
    pub fn floor(&self) -> u64 {
        match self.events.front() {
            Some(oldest) if self.removed_since_relist => oldest.rv - 1,
            _ => self.list_rv,
        }
    }

    /// Up to `max` events after version `after`, or 410 when some of them
    /// have been evicted.
    pub fn since(&self, after: u64, max: usize) -> Result<Vec<Arc<Event>>, ApiError> {
        Ok(self.after(after)?.take(max).cloned().collect())
    }

    /// Every event after `after`, for rebuilding a snapshot (same 410 rule).
    pub fn after(&self, after: u64) -> Result<impl Iterator<Item = &Arc<Event>>, ApiError> {
        let floor = self.floor();
        if after < floor {
            return Err(ApiError::too_old(after, floor));
        }
        let first = self.events.partition_point(|e| e.rv <= after);
        Ok(self.events.range(first..))
    }

    /// Forgets every event up to `rv`, as a cacher that relisted at `rv`
    /// would (`ResetLocked` plus a new list version), keeping what came
    /// after. A no-op when `rv` is already below the floor.
    pub fn compact_to(&mut self, rv: u64) {
        if rv <= self.floor() {
            return;
        }
        let keep_from = self.events.partition_point(|e| e.rv <= rv);
        self.events.drain(..keep_from);
        self.list_rv = rv;
        self.removed_since_relist = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::object::Stored;
    use crate::sim::resources::{by_plural, RESOURCES};
    use crate::sim::state::EventType;
    use serde_json::json;

    fn event(rv: u64, at: SimTime) -> Arc<Event> {
        let r = by_plural("configmaps").unwrap();
        let object = Stored::new(
            &RESOURCES[r],
            json!({"metadata": {"name": format!("c{rv}"), "namespace": "n", "resourceVersion": rv.to_string()}}),
        );
        Arc::new(Event {
            rv,
            kind: EventType::Added,
            object,
            prev: None,
            time: at,
        })
    }

    /// Writes `n` events at `rate` per second from `start`, from version
    /// `rv + 1` on; returns the last version and time.
    fn feed(h: &mut History, rv: u64, start: SimTime, n: u64, rate: f64) -> (u64, SimTime) {
        let mut t = start;
        for i in 1..=n {
            t = start + Duration::from_secs_f64(i as f64 / rate);
            h.push(event(rv + i, t));
        }
        (rv + n, t)
    }

    #[test]
    fn upper_bound_scales_with_longer_windows_only() {
        assert_eq!(capacity_upper_bound(Duration::from_secs(10)), 102_400);
        assert_eq!(capacity_upper_bound(DEFAULT_WINDOW), 102_400);
        assert_eq!(capacity_upper_bound(Duration::from_secs(150)), 204_800);
        assert_eq!(capacity_upper_bound(Duration::from_secs(151)), 409_600);
        assert!(capacity_upper_bound(Duration::from_secs(u32::MAX as u64)) <= i32::MAX as usize);
    }

    #[test]
    fn grows_while_fresh_so_a_steady_rate_keeps_the_window() {
        // 100 writes/s: 7,500 events in 75 s, so the ring settles at the
        // first power-of-two multiple of 100 above that, 12,800.
        let mut h = History::new(HistoryConfig::default(), 10);
        let (rv, _) = feed(&mut h, 10, Duration::ZERO, 30_000, 100.0);
        assert_eq!(h.capacity(), 12_800);
        assert_eq!(h.len(), 12_800);
        assert_eq!(h.floor(), rv - 12_800);
        assert_eq!(h.since(rv - 12_800, 5).unwrap().len(), 5);
        let err = h.since(rv - 12_801, 5).unwrap_err();
        assert_eq!(err.code, 410);
        assert_eq!(
            err.message,
            format!(
                "too old resource version: {} ({})",
                rv - 12_801,
                rv - 12_800
            )
        );
    }

    #[test]
    fn never_grows_past_the_upper_bound_nor_below_the_lower() {
        let cfg = HistoryConfig {
            window: DEFAULT_WINDOW,
            lower_bound: 100,
            upper_bound: 400,
        };
        let mut h = History::new(cfg, 0);
        feed(&mut h, 0, Duration::ZERO, 5_000, 1_000.0);
        assert_eq!(h.capacity(), 400);
        // A quiet resource: one write a minute keeps only the lower bound.
        let mut quiet = History::new(HistoryConfig::default(), 0);
        feed(&mut quiet, 0, Duration::ZERO, 500, 1.0 / 60.0);
        assert_eq!(quiet.capacity(), 100);
        assert_eq!(quiet.len(), 100);
    }

    #[test]
    fn shrinks_by_halves_once_the_newest_quarter_is_stale() {
        let mut h = History::new(HistoryConfig::default(), 0);
        let (rv, t) = feed(&mut h, 0, Duration::ZERO, 2_000, 100.0);
        assert_eq!(h.capacity(), 3_200);
        // Then one write every 30 s: each write past the point where the
        // newest quarter is older than 75 s halves the ring.
        let mut caps = Vec::new();
        let mut rv = rv;
        let mut t = t;
        for _ in 0..8 {
            t += Duration::from_secs(30);
            rv += 1;
            h.push(event(rv, t));
            caps.push(h.capacity());
        }
        assert_eq!(
            caps,
            [3_200, 3_200, 3_200, 3_200, 3_200, 3_200, 3_200, 3_200]
        );
        // Not full, so no shrink yet: the rule only runs on a full ring.
        let fill = (h.capacity() - h.len()) as u64;
        let (rv, t) = feed(&mut h, rv, t, fill, 1.0 / 30.0);
        assert_eq!(h.capacity(), 3_200);
        let (_, _) = feed(&mut h, rv, t, 1, 1.0 / 30.0);
        assert_eq!(h.capacity(), 1_600);
        assert_eq!(h.len(), 1_600);
    }

    #[test]
    fn a_new_ring_serves_from_its_list_version_and_compaction_resets_it() {
        let mut h = History::new(HistoryConfig::default(), 50);
        assert_eq!(h.floor(), 50);
        assert!(h.since(50, 10).unwrap().is_empty());
        assert_eq!(h.since(49, 10).unwrap_err().code, 410);
        feed(&mut h, 60, Duration::ZERO, 10, 10.0);
        assert_eq!(h.since(50, 100).unwrap().len(), 10, "nothing evicted yet");
        h.compact_to(65);
        assert_eq!(h.floor(), 65);
        let rest: Vec<u64> = h.since(65, 100).unwrap().iter().map(|e| e.rv).collect();
        assert_eq!(rest, [66, 67, 68, 69, 70]);
        h.compact_to(60);
        assert_eq!(h.floor(), 65, "compacting below the floor changes nothing");
    }
}
