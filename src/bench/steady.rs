//! Steady state: how fast a running cache takes in a stream of writes, and
//! how long each one takes to reach a handler.
//!
//! The parent writes to the simulator, stamping each object with the
//! monotonic clock just before the write ([`STAMP_ANNOTATION`]); the child's
//! handler reads the stamp when the event reaches it. Two phases: a paced
//! one at a fixed rate (its latencies are the p50/p99), then a burst written
//! as fast as the simulator takes it (its completion time is the events/s).

use std::time::Duration;

use serde_json::Value;

use super::clock;
use super::summary::percentile;

/// Annotation carrying a write's phase and monotonic timestamp, `p:<ns>` or
/// `b:<ns>`.
pub const STAMP_ANNOTATION: &str = "bench.kube-persist.io/stamp";

/// [`STAMP_ANNOTATION`] escaped for a JSON pointer (`/` is `~1`).
pub const STAMP_POINTER: &str = "bench.kube-persist.io~1stamp";

/// Which phase a stamped write belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Written at a fixed rate.
    Paced,
    /// Written as fast as possible.
    Burst,
}

/// Puts a stamp on `object` (a JSON object), replacing any earlier one.
pub fn stamp(object: &mut Value, phase: Phase, at_ns: u64) {
    let tag = match phase {
        Phase::Paced => 'p',
        Phase::Burst => 'b',
    };
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    let metadata = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(
            STAMP_ANNOTATION.to_owned(),
            Value::String(format!("{tag}:{at_ns}")),
        );
    }
}

/// Reads a stamp's value back; `None` for anything that is not one.
pub fn parse_stamp(value: &str) -> Option<(Phase, u64)> {
    let (tag, ns) = value.split_once(':')?;
    let phase = match tag {
        "p" => Phase::Paced,
        "b" => Phase::Burst,
        _ => return None,
    };
    Some((phase, ns.parse().ok()?))
}

/// What the child measured in steady state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SteadyReport {
    /// Paced events that reached the handler.
    pub paced_events: u64,
    /// Median write-to-handler latency of the paced events, µs.
    pub p50_us: f64,
    /// 99th percentile of the same, µs.
    pub p99_us: f64,
    /// Largest of the same, µs.
    pub max_us: f64,
    /// Burst events that reached the handler.
    pub burst_events: u64,
    /// Burst events handled per second, from the first burst write to the
    /// last burst event handled.
    pub burst_events_per_sec: f64,
    /// The child's peak RSS at the end, bytes.
    pub peak_rss_bytes: u64,
}

/// Collects stamped events as a handler sees them.
#[derive(Debug)]
pub struct Recorder {
    expect_paced: u64,
    expect_burst: u64,
    paced_latencies_ns: Vec<u64>,
    burst_events: u64,
    burst_first_stamp_ns: Option<u64>,
    burst_last_seen_ns: u64,
}

impl Recorder {
    /// A recorder that is complete after this many events of each phase.
    pub fn new(expect_paced: u64, expect_burst: u64) -> Recorder {
        Recorder {
            expect_paced,
            expect_burst,
            paced_latencies_ns: Vec::with_capacity(expect_paced as usize),
            burst_events: 0,
            burst_first_stamp_ns: None,
            burst_last_seen_ns: 0,
        }
    }

    /// Records one event whose object carries `stamp_value`, seen at `now_ns`.
    /// Events without a valid stamp (the initial objects) are ignored.
    pub fn observe(&mut self, stamp_value: &str, now_ns: u64) {
        match parse_stamp(stamp_value) {
            Some((Phase::Paced, at)) => self.paced_latencies_ns.push(now_ns.saturating_sub(at)),
            Some((Phase::Burst, at)) => {
                self.burst_events += 1;
                let first = self.burst_first_stamp_ns.get_or_insert(at);
                *first = (*first).min(at);
                self.burst_last_seen_ns = self.burst_last_seen_ns.max(now_ns);
            }
            None => {}
        }
    }

    /// Whether every expected event has arrived.
    pub fn is_complete(&self) -> bool {
        self.paced_latencies_ns.len() as u64 >= self.expect_paced
            && self.burst_events >= self.expect_burst
    }

    /// The figures so far, with the process's peak RSS.
    pub fn report(&self, peak_rss_bytes: u64) -> SteadyReport {
        let mut sorted: Vec<f64> = self
            .paced_latencies_ns
            .iter()
            .map(|ns| *ns as f64 / 1_000.0)
            .collect();
        sorted.sort_by(f64::total_cmp);
        let burst_secs = self
            .burst_first_stamp_ns
            .map(|first| clock::between(first, self.burst_last_seen_ns).as_secs_f64())
            .unwrap_or(0.0);
        SteadyReport {
            paced_events: sorted.len() as u64,
            p50_us: percentile(&sorted, 50.0),
            p99_us: percentile(&sorted, 99.0),
            max_us: sorted.last().copied().unwrap_or(0.0),
            burst_events: self.burst_events,
            burst_events_per_sec: if burst_secs > 0.0 {
                self.burst_events as f64 / burst_secs
            } else {
                0.0
            },
            peak_rss_bytes,
        }
    }
}

/// How the parent writes in steady state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Paced writes per second.
    pub rate_per_sec: u32,
    /// Number of paced writes.
    pub paced_events: u64,
    /// Number of burst writes.
    pub burst_events: u64,
}

impl Load {
    /// Time between two paced writes.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.rate_per_sec.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stamp_round_trips_through_an_object() {
        let mut pod = json!({"metadata": {"name": "a", "annotations": {"x": "y"}}});
        stamp(&mut pod, Phase::Burst, 42);
        let value = pod["metadata"]["annotations"][STAMP_ANNOTATION]
            .as_str()
            .unwrap();
        assert_eq!(parse_stamp(value), Some((Phase::Burst, 42)));
        assert_eq!(pod["metadata"]["annotations"]["x"], "y");

        let mut bare = json!({"metadata": {"name": "b"}});
        stamp(&mut bare, Phase::Paced, 7);
        assert_eq!(
            bare["metadata"]["annotations"][STAMP_ANNOTATION],
            json!("p:7")
        );
    }

    #[test]
    fn foreign_annotation_values_are_not_stamps() {
        assert_eq!(parse_stamp(""), None);
        assert_eq!(parse_stamp("p:"), None);
        assert_eq!(parse_stamp("q:5"), None);
        assert_eq!(parse_stamp("p:-5"), None);
    }

    #[test]
    fn recorder_completes_on_both_phases_and_reports_percentiles() {
        let mut r = Recorder::new(4, 2);
        for (i, lat) in [10_000u64, 20_000, 30_000, 1_000_000].iter().enumerate() {
            let at = 1_000_000 * i as u64;
            r.observe(&format!("p:{at}"), at + lat);
        }
        assert!(!r.is_complete());
        r.observe("not a stamp", 5);
        r.observe("b:10000000", 10_500_000);
        r.observe("b:10100000", 11_000_000);
        assert!(r.is_complete());
        let rep = r.report(1);
        assert_eq!(rep.paced_events, 4);
        assert_eq!(rep.burst_events, 2);
        assert!(rep.p50_us >= 20.0 && rep.p50_us <= 30.0, "{rep:?}");
        assert_eq!(rep.max_us, 1_000.0);
        // 2 events from the first burst write (10 ms) to the last seen (11 ms).
        assert!((rep.burst_events_per_sec - 2_000.0).abs() < 1e-6, "{rep:?}");
    }

    #[test]
    fn an_empty_recorder_reports_zeros() {
        let rep = Recorder::new(0, 0).report(0);
        assert_eq!(rep.paced_events, 0);
        assert_eq!(rep.p99_us, 0.0);
        assert_eq!(rep.burst_events_per_sec, 0.0);
    }
}
