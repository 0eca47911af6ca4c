//! Counters and gauges of one informer, rendered in the Prometheus text
//! exposition format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::watcher::Stats;

/// The informer's own counters; the watcher's live in its own `Stats`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) events_applied: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) bookmarks: AtomicU64,
    pub(crate) objects: AtomicU64,
    pub(crate) last_rv: AtomicU64,
    pub(crate) resume_ms: AtomicU64,
    pub(crate) open_ms: AtomicU64,
    pub(crate) apply_failures: AtomicU64,
    pub(crate) heals: AtomicU64,
    pub(crate) watcher: Arc<Stats>,
}

/// A point-in-time copy of every metric.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Changes committed to the store.
    pub events_applied: u64,
    /// Batches committed (bookmarks included).
    pub batches: u64,
    /// Bookmarks persisted.
    pub bookmarks: u64,
    /// Relists completed.
    pub relists: u64,
    /// 410 Gone answers.
    pub gone: u64,
    /// Watch restarts.
    pub watch_restarts: u64,
    /// LIST requests made by this process (metadata lists included).
    pub list_requests: u64,
    /// Metadata-only LIST requests made by this process.
    pub metadata_lists: u64,
    /// Single-object GETs made by this process (after a metadata list).
    pub get_requests: u64,
    /// WATCH requests made by this process.
    pub watch_requests: u64,
    /// Objects in the store.
    pub objects: u64,
    /// Last stored resourceVersion (0 when unknown or not an integer).
    pub last_rv: u64,
    /// Milliseconds from start to Synced (0 until synced).
    pub resume_ms: u64,
    /// Milliseconds to open the store (time to first read).
    pub open_ms: u64,
    /// Batches the store failed to apply (each retried from the stored RV).
    pub apply_failures: u64,
    /// Relists started because a read met damage in the store.
    pub heals: u64,
}

impl Metrics {
    pub(crate) fn new(watcher: Arc<Stats>) -> Self {
        Metrics {
            watcher,
            ..Metrics::default()
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    /// Copies every metric.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let w = &self.watcher;
        MetricsSnapshot {
            events_applied: get(&self.events_applied),
            batches: get(&self.batches),
            bookmarks: get(&self.bookmarks),
            relists: get(&w.relists),
            gone: get(&w.gone),
            watch_restarts: get(&w.watch_restarts),
            list_requests: get(&w.list_requests),
            metadata_lists: get(&w.metadata_lists),
            get_requests: get(&w.get_requests),
            watch_requests: get(&w.watch_requests),
            objects: get(&self.objects),
            last_rv: get(&self.last_rv),
            resume_ms: get(&self.resume_ms),
            open_ms: get(&self.open_ms),
            apply_failures: get(&self.apply_failures),
            heals: get(&self.heals),
        }
    }
}

impl MetricsSnapshot {
    /// Renders the metrics in the Prometheus text format, each labelled
    /// with the collection's `resource`.
    pub fn to_prometheus(&self, resource: &str) -> String {
        let rows: [(&str, &str, &str, u64); 16] = [
            (
                "events_applied_total",
                "counter",
                "Changes committed to the store.",
                self.events_applied,
            ),
            (
                "batches_total",
                "counter",
                "Batches committed, bookmarks included.",
                self.batches,
            ),
            (
                "bookmarks_total",
                "counter",
                "Bookmarks persisted.",
                self.bookmarks,
            ),
            (
                "relists_total",
                "counter",
                "Relists completed.",
                self.relists,
            ),
            (
                "gone_total",
                "counter",
                "410 Gone answers from the server.",
                self.gone,
            ),
            (
                "watch_restarts_total",
                "counter",
                "Watch streams restarted.",
                self.watch_restarts,
            ),
            (
                "list_requests_total",
                "counter",
                "LIST requests made, metadata lists included.",
                self.list_requests,
            ),
            (
                "metadata_list_requests_total",
                "counter",
                "Metadata-only LIST requests made.",
                self.metadata_lists,
            ),
            (
                "get_requests_total",
                "counter",
                "Single-object GETs made after a metadata list.",
                self.get_requests,
            ),
            (
                "watch_requests_total",
                "counter",
                "WATCH requests made.",
                self.watch_requests,
            ),
            (
                "apply_failures_total",
                "counter",
                "Batches the store failed to apply.",
                self.apply_failures,
            ),
            (
                "heals_total",
                "counter",
                "Relists started because a read met damage in the store.",
                self.heals,
            ),
            ("objects", "gauge", "Objects in the store.", self.objects),
            (
                "last_resource_version",
                "gauge",
                "Last stored resourceVersion.",
                self.last_rv,
            ),
            (
                "resume_duration_seconds",
                "gauge",
                "Time from start to Synced.",
                self.resume_ms,
            ),
            (
                "open_duration_seconds",
                "gauge",
                "Time to open the store (first read).",
                self.open_ms,
            ),
        ];
        let label = resource.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP kube_persist_{name} {help}");
            let _ = writeln!(out, "# TYPE kube_persist_{name} {kind}");
            if name.ends_with("_seconds") {
                let _ = writeln!(
                    out,
                    "kube_persist_{name}{{resource=\"{label}\"}} {:.3}",
                    value as f64 / 1000.0
                );
            } else {
                let _ = writeln!(out, "kube_persist_{name}{{resource=\"{label}\"}} {value}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_help_type_and_labelled_samples() {
        let m = Metrics::new(Arc::new(Stats::default()));
        Metrics::add(&m.events_applied, 5);
        Metrics::set(&m.resume_ms, 1500);
        Stats::bump(&m.watcher.gone);
        Stats::bump(&m.watcher.get_requests);
        Stats::bump(&m.watcher.get_requests);
        Stats::bump(&m.watcher.metadata_lists);
        Metrics::add(&m.heals, 2);
        let text = m.snapshot().to_prometheus("pods");
        assert!(text.contains("# TYPE kube_persist_events_applied_total counter\n"));
        assert!(text.contains("kube_persist_events_applied_total{resource=\"pods\"} 5\n"));
        assert!(text.contains("kube_persist_gone_total{resource=\"pods\"} 1\n"));
        assert!(text.contains("kube_persist_get_requests_total{resource=\"pods\"} 2\n"));
        assert!(text.contains("kube_persist_metadata_list_requests_total{resource=\"pods\"} 1\n"));
        assert!(text.contains("kube_persist_resume_duration_seconds{resource=\"pods\"} 1.500\n"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert!(text.contains("kube_persist_heals_total{resource=\"pods\"} 2\n"));
        assert_eq!(samples, 16);
    }
}
