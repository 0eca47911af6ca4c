//! The list/watch state machine: resume a watch from a stored
//! resourceVersion, relist when that is impossible (metadata first when the
//! consumer holds objects, else a streaming list or paginated LIST), batch
//! watch events, persist bookmarks, prove that a resumed watch has caught
//! up, and survive every failure the API server can throw at it
//! (LISTWATCH.md).
//!
//! kube-runtime's watcher cannot start from a given resourceVersion
//! (kube-rs#1419), which is the whole point of a persistent cache, so this is
//! a separate machine in the same style: each state a variant of
//! [`machine::State`], each transition a small async fn, and what it hands on
//! an [`Event`] shaped like kube-runtime's.
//!
//! The watcher knows nothing of the store: it is told what its consumer
//! holds ([`Held`]) so that a relist hands on only the difference, and its
//! consumer (the informer) turns the events into store writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub mod backoff;
pub mod event;
pub mod failure;
#[cfg(test)]
pub(crate) mod fake;
pub mod fence;
mod listing;
pub mod machine;
mod metadata;
pub mod object;
pub mod relist;
mod selection;
pub mod source;

pub use event::Event;
pub use machine::Watcher;
pub use object::{strip_managed_fields, ObjectRef, Transform};
pub use relist::{BoxError, Held};
pub use source::{ApiSource, ListWatch};

/// Errors of the watcher layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range.
    #[error("invalid watcher setting {setting}: {reason}")]
    InvalidConfig {
        /// Which setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The label or field selector is malformed: the server would answer
    /// every request with 400, so the watch could never start.
    #[error(transparent)]
    Selector(#[from] crate::selector::Error),
}

/// How the watcher lists and watches.
#[derive(Debug, Clone)]
pub struct Config {
    /// Label selector of the collection.
    pub label_selector: Option<String>,
    /// Field selector of the collection.
    pub field_selector: Option<String>,
    /// Items per LIST page.
    pub page_size: u32,
    /// Try a streaming list (`sendInitialEvents`) before paginated LIST.
    pub streaming_list: bool,
    /// Flush a batch once it holds this many events.
    pub batch_max: usize,
    /// Flush a batch this long after its first event. Zero (the default)
    /// flushes as soon as the stream has no further event ready: the
    /// watcher is read only between the consumer's writes, so the events
    /// that arrived while the last batch was being stored are read, and
    /// written, together, and a lone event waits for no timer.
    pub batch_window: Duration,
    /// While a resumed watch replays what happened since the stored
    /// resourceVersion (until Synced), a batch is flushed only once the
    /// stream pauses this long, or at [`Self::catch_up_batch_max`] events.
    /// The replay is one burst that the server sends at once, but it reaches
    /// the watcher a socket buffer at a time: without this, each buffer was
    /// a batch, each batch a durable write, and a consumer such as a
    /// controller acted on a key before its later writes in the same
    /// replay were read. Zero turns it off (batches as after Synced).
    pub catch_up_gap: Duration,
    /// Most events in one batch while catching up (see
    /// [`Self::catch_up_gap`]). They are held in memory until written: a
    /// pod with `managedFields` takes tens of KiB as a `Value`.
    pub catch_up_batch_max: usize,
    /// `timeoutSeconds` of each watch request.
    pub watch_timeout_secs: u32,
    /// A watch silent for this long is presumed dead and restarted.
    pub stall_timeout: Duration,
    /// `timeoutSeconds` of the watches opened until the informer is synced
    /// after a resume. kube-apiserver sends a bookmark 2 s before a watch's
    /// deadline and none right after a plain resume, so a short first watch
    /// brings the proof of being caught up (a bookmark at or past the
    /// resumed resourceVersion) within seconds; long watches follow.
    pub resume_probe_timeout_secs: u32,
    /// How long the first resumed watch may stay quiet after bringing events
    /// before it is closed and a fresh short watch opened from its last
    /// resourceVersion. The server sends a resumed watch everything after
    /// its resourceVersion at once (`cache_watcher.go`, `processInterval`),
    /// and nothing proves the replay is complete until a later watch from its
    /// end stays silent to its deadline or hears a covering bookmark; waiting
    /// out the first watch's deadline would add its whole `timeoutSeconds`.
    /// Done once per start, so a resource written more often than this still
    /// reaches the next watch's pre-deadline bookmark.
    pub resume_probe_quiet: Duration,
    /// After a 410, when the consumer holds objects, list metadata only
    /// (`as=PartialObjectMetadataList`) and fetch just what changed. Falls
    /// back to a full relist when the server does not serve metadata lists.
    pub metadata_relist: bool,
    /// GETs in flight at once while fetching what a metadata list found
    /// changed.
    pub fetch_concurrency: usize,
    /// Largest share (0..=1) of listed objects fetched one by one after a
    /// metadata list; above it, a full relist is cheaper.
    pub fetch_max_share: f64,
    /// First backoff delay.
    pub backoff_initial: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
}

/// Above this share of changed objects, a full relist is preferred to GETs
/// one by one. Measured against the simulator (10k pods, 2 cores), the GETs
/// stay ahead up to about half the objects changed (30%: 5.6–5.9 s against
/// 6.0–6.6 s; 50%: a tie); a real API server charges each request more
/// (authentication, priority and fairness), so the default sits below that.
pub const FETCH_MAX_SHARE: f64 = 0.3;

impl Default for Config {
    fn default() -> Self {
        Config {
            label_selector: None,
            field_selector: None,
            page_size: 500,
            streaming_list: true,
            batch_max: 500,
            batch_window: Duration::ZERO,
            catch_up_gap: Duration::from_millis(20),
            catch_up_batch_max: 2000,
            watch_timeout_secs: 290,
            // A real server bookmarks about once a minute.
            stall_timeout: Duration::from_secs(300),
            resume_probe_timeout_secs: 3,
            resume_probe_quiet: Duration::from_millis(200),
            metadata_relist: true,
            fetch_concurrency: 16,
            fetch_max_share: FETCH_MAX_SHARE,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Checks the settings, naming the first bad one. Selectors are parsed
    /// as the API server parses them, so one the server would refuse is an
    /// error here rather than a watch that retries a 400 forever.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |setting, reason: &str| {
            Err(Error::InvalidConfig {
                setting,
                reason: reason.into(),
            })
        };
        if self.page_size == 0 {
            return bad("page_size", "must be at least 1");
        }
        if self.batch_max == 0 {
            return bad("batch_max", "must be at least 1");
        }
        if self.catch_up_batch_max == 0 {
            return bad("catch_up_batch_max", "must be at least 1");
        }
        if self.stall_timeout.is_zero() {
            return bad("stall_timeout", "must be positive");
        }
        if self.resume_probe_timeout_secs <= 2 {
            return bad(
                "resume_probe_timeout_secs",
                "must be more than 2: the server bookmarks 2 s before a watch's deadline",
            );
        }
        if self.resume_probe_quiet.is_zero() {
            return bad("resume_probe_quiet", "must be positive");
        }
        if self.fetch_concurrency == 0 {
            return bad("fetch_concurrency", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.fetch_max_share) {
            return bad("fetch_max_share", "must be between 0 and 1");
        }
        if self.backoff_initial.is_zero() {
            return bad("backoff_initial", "must be positive");
        }
        // The server's own grammar: what it accepts (`app in ()`) passes.
        if let Some(labels) = &self.label_selector {
            crate::selector::parse_label_selector_as_server(labels)?;
        }
        if let Some(fields) = &self.field_selector {
            crate::selector::FieldSelector::parse(fields)?;
        }
        Ok(())
    }
}

/// Counters of the watcher, read by the informer's metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// LIST requests made (metadata lists included).
    pub list_requests: AtomicU64,
    /// Metadata-only LIST requests made.
    pub metadata_lists: AtomicU64,
    /// Single-object GETs made (after a metadata list).
    pub get_requests: AtomicU64,
    /// WATCH requests made (including streaming lists).
    pub watch_requests: AtomicU64,
    /// Relists completed.
    pub relists: AtomicU64,
    /// 410 Gone answers (HTTP or ERROR event, watch or continue token).
    pub gone: AtomicU64,
    /// Watches restarted (clean end, stall, malformed line, error).
    pub watch_restarts: AtomicU64,
    /// Malformed or unknown watch lines.
    pub malformed: AtomicU64,
    /// Failed requests that were backed off.
    pub backoffs: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
