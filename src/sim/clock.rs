//! The simulator's clock: real time plus an offset that tests and the
//! `bench outage` scenario move forward at will.
//!
//! Everything that depends on time in kube-apiserver's watch cache runs on
//! this clock: the record time of each event (which sizes the history
//! ring), the bookmark buckets, watch deadlines and the timestamps written
//! into objects. Advancing it by 80 s is, to the simulated server, 80 s
//! gone by, so a test need not wait for `eventFreshDuration` to pass. The
//! base is tokio's clock, so a test on tokio's paused clock moves it too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Time on the simulator's clock, as an offset from its start.
pub(crate) type SimTime = Duration;

/// Real time since the start plus whatever the clock was advanced by.
#[derive(Debug)]
pub(crate) struct SimClock {
    base: Instant,
    /// Wall-clock second at the start, for timestamps in objects.
    wall_base: jiff::Timestamp,
    offset_ns: AtomicU64,
    /// Bumped on every advance, so that sleepers re-check their deadline.
    moved: tokio::sync::watch::Sender<u64>,
}

impl SimClock {
    /// A clock starting now.
    pub fn new() -> SimClock {
        SimClock {
            base: Instant::now(),
            wall_base: jiff::Timestamp::now(),
            offset_ns: AtomicU64::new(0),
            moved: tokio::sync::watch::channel(0).0,
        }
    }

    fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_ns.load(Ordering::Acquire))
    }

    /// The current simulated time.
    pub fn now(&self) -> SimTime {
        self.base.elapsed() + self.offset()
    }

    /// The wall-clock time the simulated server believes it is.
    pub fn wall_now(&self) -> jiff::Timestamp {
        let elapsed =
            jiff::SignedDuration::try_from(self.now()).unwrap_or(jiff::SignedDuration::MAX);
        self.wall_base
            .checked_add(elapsed)
            .unwrap_or(self.wall_base)
    }

    /// `wall_now` as Kubernetes writes timestamps.
    pub fn timestamp(&self) -> String {
        format_timestamp(self.wall_now())
    }

    /// Moves the clock forward and wakes everything sleeping on it.
    pub fn advance(&self, by: Duration) {
        self.advance_quietly(by);
        self.wake();
    }

    /// Moves the clock forward without waking sleepers: for a loop of many
    /// small steps that wakes them once at the end ([`SimClock::wake`]).
    pub fn advance_quietly(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.fetch_add(ns, Ordering::AcqRel);
    }

    /// Wakes sleepers so that they re-check their deadline.
    pub fn wake(&self) {
        self.moved.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Sleeps until the simulated time reaches `at`.
    pub async fn sleep_until(&self, at: SimTime) {
        let mut moved = self.moved.subscribe();
        loop {
            moved.borrow_and_update();
            let now = self.now();
            if now >= at {
                return;
            }
            let real = Instant::now() + (at - now);
            tokio::select! {
                _ = tokio::time::sleep_until(real) => {}
                changed = moved.changed() => {
                    if changed.is_err() {
                        // The clock is gone with the simulator: wait in real time.
                        tokio::time::sleep_until(real).await;
                        return;
                    }
                }
            }
        }
    }
}

/// A timestamp as Kubernetes writes them: whole seconds, UTC, RFC 3339.
pub(crate) fn format_timestamp(t: jiff::Timestamp) -> String {
    t.round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn advancing_wakes_a_sleeper_at_once() {
        let clock = std::sync::Arc::new(SimClock::new());
        let start = clock.now();
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(start + Duration::from_secs(75)).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(80));
        tokio::time::timeout(Duration::from_millis(10), sleeper)
            .await
            .expect("woke without waiting 75 s")
            .unwrap();
        assert!(clock.now() - start >= Duration::from_secs(80));
    }

    #[tokio::test(start_paused = true)]
    async fn real_time_still_counts() {
        let clock = SimClock::new();
        let start = clock.now();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.now() - start, Duration::from_secs(3));
        clock
            .sleep_until(clock.now() + Duration::from_secs(2))
            .await;
        assert_eq!(clock.now() - start, Duration::from_secs(5));
        let wall = clock.wall_now();
        clock.advance(Duration::from_secs(3600));
        assert_eq!(wall.duration_until(clock.wall_now()).as_secs(), 3600);
    }
}
