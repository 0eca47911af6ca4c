//! How long a failed key waits before its retry: client-go's default
//! controller rate limiter, the larger of a per-key exponential backoff and
//! an overall token bucket.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// The retry rate limit. The defaults are client-go's
/// `DefaultControllerRateLimiter`: 5 ms doubling per failure up to 1000 s
/// per key, and at most 10 retries per second overall with bursts of 100.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Delay after a key's first failure.
    pub base_delay: Duration,
    /// Longest delay of one key.
    pub max_delay: Duration,
    /// Retries per second, all keys together.
    pub qps: f64,
    /// Retries allowed at once before `qps` applies.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(1000),
            qps: 10.0,
            burst: 100,
        }
    }
}

impl RateLimit {
    /// Refuses settings that would never let a retry through.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.qps.is_finite() && self.qps > 0.0) {
            return Err(format!("qps must be a positive number, not {}", self.qps));
        }
        if self.burst == 0 {
            return Err("burst must be at least 1".into());
        }
        if self.base_delay > self.max_delay {
            return Err(format!(
                "base_delay {:?} exceeds max_delay {:?}",
                self.base_delay, self.max_delay
            ));
        }
        Ok(())
    }
}

/// Per-key failure counts and the shared token bucket.
#[derive(Debug)]
pub(crate) struct RateLimiter<T> {
    limit: RateLimit,
    failures: HashMap<T, u32>,
    /// Tokens in the bucket; negative when retries are reserved ahead.
    tokens: f64,
    refilled: Instant,
}

impl<T: Eq + Hash> RateLimiter<T> {
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        RateLimiter {
            limit,
            failures: HashMap::new(),
            tokens: f64::from(limit.burst),
            refilled: now,
        }
    }

    /// Counts one more failure of `key` and returns how long its retry
    /// waits: the longer of its backoff and the bucket's wait.
    pub fn when(&mut self, key: T, now: Instant) -> Duration {
        let n = self.failures.entry(key).or_insert(0);
        let exp = *n;
        *n = n.saturating_add(1);
        self.backoff(exp).max(self.reserve(now))
    }

    /// `base_delay * 2^n`, capped at `max_delay`.
    fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.checked_pow(n).unwrap_or(u32::MAX);
        self.limit
            .base_delay
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.limit.max_delay)
    }

    /// Takes a token, waiting for it if the bucket is empty (golang.org/x/
    /// time/rate's `Reserve().Delay()`).
    fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.qps).min(f64::from(self.limit.burst));
        self.refilled = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.limit.qps)
        }
    }

    /// Forgets `key`'s failures (after a success).
    pub fn forget(&mut self, key: &T) {
        self.failures.remove(key);
    }

    /// How many times in a row `key` failed.
    pub fn failures(&self, key: &T) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }

    /// Restores a failure count (from the durable record after a restart),
    /// so a key failing before the restart goes on backing off.
    pub fn set_failures(&mut self, key: T, n: u32) {
        if n == 0 {
            self.failures.remove(&key);
        } else {
            self.failures.insert(key, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_from_5ms_to_1000s_and_resets_on_forget() {
        let now = Instant::now();
        let mut r = RateLimiter::new(
            RateLimit {
                qps: 1e9,
                ..RateLimit::default()
            },
            now,
        );
        let delays: Vec<Duration> = (0..5).map(|_| r.when("a", now)).collect();
        assert_eq!(delays, [ms(5), ms(10), ms(20), ms(40), ms(80)]);
        assert_eq!(r.when("b", now), ms(5), "per key");
        for _ in 0..40 {
            r.when("a", now);
        }
        assert_eq!(r.when("a", now), Duration::from_secs(1000));
        assert_eq!(r.failures(&"a"), 46);
        r.forget(&"a");
        assert_eq!(r.when("a", now), ms(5));
        r.set_failures("c", 3);
        assert_eq!(r.when("c", now), ms(40));
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_paces_retries() {
        let start = Instant::now();
        let mut r = RateLimiter::new(
            RateLimit {
                base_delay: Duration::ZERO,
                ..RateLimit::default()
            },
            start,
        );
        for i in 0..100 {
            assert_eq!(
                r.when(i, start),
                Duration::ZERO,
                "retry {i} is in the burst"
            );
        }
        // Beyond the burst: one more every 100 ms (10 qps), reserved ahead.
        assert_eq!(r.when(100, start), ms(100));
        assert_eq!(r.when(101, start), ms(200));
        // One second later ten tokens came back, but two were owed.
        assert_eq!(r.when(102, start + ms(1000)), Duration::ZERO);
        assert_eq!(r.failures(&102), 1);
    }

    #[test]
    fn settings_that_block_every_retry_are_refused() {
        assert!(RateLimit::default().validate().is_ok());
        for bad in [
            RateLimit {
                qps: 0.0,
                ..RateLimit::default()
            },
            RateLimit {
                qps: f64::NAN,
                ..RateLimit::default()
            },
            RateLimit {
                burst: 0,
                ..RateLimit::default()
            },
            RateLimit {
                base_delay: Duration::from_secs(2000),
                ..RateLimit::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
