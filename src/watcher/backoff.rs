//! Exponential backoff with jitter, bounded, reset on success, and never
//! shorter than what the server asked for with Retry-After.

use std::time::Duration;

use rand::Rng;

/// Backoff policy and state.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The delay before the next attempt. "Equal jitter": half of the
    /// exponential step is fixed so delays keep growing, the other half is
    /// random so many clients do not retry in lockstep. A server's
    /// `retry_after` is a floor; the bound still applies to our own part.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = exp / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
        let ours = half + Duration::from_millis(jitter);
        match retry_after {
            Some(ra) => ours.max(ra),
            None => ours,
        }
    }

    /// Forget past failures: called after a request succeeded.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_bounded_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay(None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..30 {
            let d = b.next_delay(None);
            assert!(d <= Duration::from_secs(2), "{d:?} above the bound");
        }
        let late = b.next_delay(None);
        assert!(
            late >= Duration::from_secs(1),
            "late delay {late:?} should be near the bound"
        );
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay(None) <= Duration::from_millis(100));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }
}
