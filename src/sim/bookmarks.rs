//! When watchers get their BOOKMARK events: kube-apiserver's cacher keeps
//! every watcher that allows bookmarks in one-second buckets keyed by its
//! next bookmark time, and on a timer of one second plus up to 25% jitter
//! pops the buckets that are due and sends each of their watchers a
//! bookmark carrying the newest version the cacher has seen.
//!
//! Upstream: staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go
//! (`watcherBookmarkTimeBuckets`: `addWatcherThreadUnsafe`,
//! `popExpiredWatchersThreadUnsafe`; `dispatchEvents`, whose timer is
//! `wait.Jitter(time.Second, 0.25)`; `finishDispatching`, which requeues a
//! watcher after its bookmark) and cache_watcher.go (`nextBookmarkTime`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::clock::SimTime;
use super::resources::ResourceId;
use super::Shared;

/// `defaultBookmarkFrequency` (cacher.go).
pub const DEFAULT_FREQUENCY: Duration = Duration::from_secs(60);
/// The width of a bucket and the period of the dispatch timer (cacher.go).
const BUCKET: Duration = Duration::from_secs(1);
/// How long before its deadline a watcher gets its last bookmark
/// (cache_watcher.go `nextBookmarkTime`).
pub const BEFORE_DEADLINE: Duration = Duration::from_secs(2);

/// One watch stream waiting for bookmarks.
#[derive(Debug)]
pub(crate) struct Watcher {
    /// Bookmark versions go here; a full channel drops one, as the
    /// cacher's `nonblockingAdd` does.
    tx: mpsc::Sender<u64>,
    /// When the server will close the watch.
    deadline: SimTime,
}

/// `nextBookmarkTime` (cache_watcher.go): a heartbeat one period from now,
/// or 2 s before the deadline if that comes first; none once that moment
/// has passed. (The bookmark ending a watch's initial events is sent by the
/// stream itself, right after them.)
pub(crate) fn next_bookmark_time(
    now: SimTime,
    frequency: Duration,
    deadline: SimTime,
) -> Option<SimTime> {
    let heartbeat = now + frequency;
    let pre_timeout = deadline.checked_sub(BEFORE_DEADLINE)?;
    let next = heartbeat.min(pre_timeout);
    (next >= now).then_some(next)
}

/// One resource's watchers by the bucket of their next bookmark
/// (`watcherBookmarkTimeBuckets`).
#[derive(Debug)]
pub(crate) struct Buckets {
    created: SimTime,
    width: Duration,
    frequency: Duration,
    start: i64,
    buckets: BTreeMap<i64, Vec<Arc<Watcher>>>,
}

impl Buckets {
    /// Buckets of `width` counted from `created`, for watchers bookmarked
    /// every `frequency`.
    pub fn new(created: SimTime, width: Duration, frequency: Duration) -> Buckets {
        Buckets {
            created,
            width,
            frequency,
            start: 0,
            buckets: BTreeMap::new(),
        }
    }

    fn bucket_of(&self, at: SimTime) -> i64 {
        if at < self.created {
            return i64::MIN;
        }
        let n = (at - self.created).as_nanos() / self.width.as_nanos().max(1);
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// `addWatcherThreadUnsafe`: files the watcher under the bucket of its
    /// next bookmark (a past one under the first bucket not yet popped);
    /// false when it gets no more bookmarks.
    fn add(&mut self, w: Arc<Watcher>, now: SimTime) -> bool {
        let Some(next) = next_bookmark_time(now, self.frequency, w.deadline) else {
            return false;
        };
        let id = self.bucket_of(next).max(self.start);
        self.buckets.entry(id).or_default().push(w);
        true
    }

    /// `popExpiredWatchersThreadUnsafe`: every watcher in the buckets up to
    /// the current one.
    fn pop_expired(&mut self, now: SimTime) -> Vec<Arc<Watcher>> {
        let current = self.bucket_of(now);
        let mut out = Vec::new();
        while self.start <= current {
            if let Some(ws) = self.buckets.remove(&self.start) {
                out.extend(ws);
            }
            match self.buckets.keys().next() {
                // Jump over empty buckets: after the clock was advanced by
                // minutes there may be thousands.
                Some(&k) if k > self.start => self.start = k.min(current + 1),
                Some(_) => self.start += 1,
                None => self.start = current + 1,
            }
        }
        out
    }
}

/// The bucket width and timer period: the cacher's second, or the
/// configured period when a test asks for faster bookmarks than that.
pub(crate) fn bucket_width(frequency: Duration) -> Duration {
    BUCKET.min(frequency)
}

impl Shared {
    /// Registers a watch stream of `r` for bookmarks; `None` when it will
    /// get none (its deadline is less than 2 s away).
    pub(crate) fn register_for_bookmarks(
        &self,
        r: ResourceId,
        deadline: SimTime,
    ) -> Option<mpsc::Receiver<u64>> {
        let (tx, rx) = mpsc::channel(1);
        let w = Arc::new(Watcher { tx, deadline });
        let now = self.clock.now();
        self.bookmark_buckets[r].lock().add(w, now).then_some(rx)
    }
}

/// The dispatch loop of one resource (`dispatchEvents`, its bookmark arm):
/// on every jittered tick, the due watchers get a bookmark of the version
/// the cacher has seen, and are filed again for their next one.
pub(crate) async fn dispatch(shared: Arc<Shared>, r: ResourceId) {
    let width = bucket_width(shared.config.bookmark_interval);
    let mut rng = StdRng::seed_from_u64(shared.config.seed ^ (0xB00C_0000 + r as u64));
    loop {
        // wait.Jitter(d, 0.25): d plus up to a quarter of d.
        let tick = width.mul_f64(1.0 + 0.25 * rng.random::<f64>());
        let at = shared.clock.now() + tick;
        tokio::select! {
            _ = shared.clock.sleep_until(at) => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let rv = shared.read().bookmark_rv(r);
        let now = shared.clock.now();
        let mut buckets = shared.bookmark_buckets[r].lock();
        for w in buckets.pop_expired(now) {
            if w.tx.is_closed() {
                continue;
            }
            let _ = w.tx.try_send(rv);
            buckets.add(w, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn next_bookmark_is_a_period_away_or_two_seconds_before_the_deadline() {
        let f = DEFAULT_FREQUENCY;
        assert_eq!(next_bookmark_time(10 * S, f, 3600 * S), Some(70 * S));
        assert_eq!(next_bookmark_time(10 * S, f, 40 * S), Some(38 * S));
        assert_eq!(next_bookmark_time(10 * S, f, 12 * S), Some(10 * S));
        assert_eq!(next_bookmark_time(10 * S, f, 11 * S), None);
        assert_eq!(next_bookmark_time(SimTime::ZERO, f, S), None);
    }

    fn watcher(deadline: SimTime) -> (Arc<Watcher>, mpsc::Receiver<u64>) {
        let (tx, rx) = mpsc::channel(1);
        (Arc::new(Watcher { tx, deadline }), rx)
    }

    #[test]
    fn buckets_pop_within_a_second_of_the_due_time() {
        let mut b = Buckets::new(SimTime::ZERO, S, DEFAULT_FREQUENCY);
        let (w, _rx) = watcher(3600 * S);
        assert!(b.add(w, S / 2), "due at 60.5 s: bucket 60");
        assert!(b.pop_expired(59 * S + S * 999 / 1000).is_empty());
        assert_eq!(b.pop_expired(60 * S).len(), 1, "a bucket pops at its start");
        assert!(b.pop_expired(200 * S).is_empty(), "once");
    }

    #[test]
    fn a_due_time_in_a_popped_bucket_goes_to_the_next_one() {
        let mut b = Buckets::new(SimTime::ZERO, S, DEFAULT_FREQUENCY);
        assert!(b.pop_expired(5 * S).is_empty());
        let (w, _rx) = watcher(7 * S);
        assert!(
            b.add(w, 5 * S),
            "due at once (2 s before its deadline): the first unpopped bucket"
        );
        assert_eq!(b.pop_expired(6 * S).len(), 1);
        let (late, _rx) = watcher(7 * S);
        assert!(
            !b.add(late, 6 * S + S / 2),
            "its pre-deadline moment (5 s) has passed: no more bookmarks"
        );
        let (soon, _rx) = watcher(8 * S);
        assert!(b.add(soon, 6 * S), "due at 6 s, whose bucket has popped");
        assert_eq!(b.pop_expired(7 * S).len(), 1);
    }

    #[test]
    fn an_advanced_clock_pops_everything_due_once() {
        let mut b = Buckets::new(SimTime::ZERO, S, DEFAULT_FREQUENCY);
        for i in 0..5 {
            assert!(b.add(watcher(3600 * S).0, i * 10 * S));
        }
        assert_eq!(b.pop_expired(100_000 * S).len(), 5);
        assert!(b.buckets.is_empty());
        assert_eq!(b.start, 100_001);
    }

    #[test]
    fn short_periods_shrink_the_buckets() {
        assert_eq!(bucket_width(DEFAULT_FREQUENCY), S);
        assert_eq!(
            bucket_width(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }
}
