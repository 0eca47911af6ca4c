//! A clock two processes can share.
//!
//! `std::time::Instant` cannot cross a process boundary, but on Linux it is
//! `CLOCK_MONOTONIC`, which is system-wide: the parent reads it just before
//! spawning a child, the child reads it at each milestone, and the
//! difference is the time since the process was started, exec and runtime
//! set-up included.

use std::time::Duration;

/// Nanoseconds on the system-wide monotonic clock.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The time from `start_ns` to `end_ns`, zero if the clock readings are out
/// of order (they never are on one machine, but a report is input).
pub fn between(start_ns: u64, end_ns: u64) -> Duration {
    Duration::from_nanos(end_ns.saturating_sub(start_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_never_go_backwards_and_track_real_time() {
        let a = now_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = now_ns();
        assert!(between(a, b) >= Duration::from_millis(2));
        assert_eq!(between(b, a), Duration::ZERO);
    }
}
