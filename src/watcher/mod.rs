//! The list/watch state machine: resume a watch from a stored
//! resourceVersion, relist (streaming or paginated) when that is impossible,
//! batch watch events, persist bookmarks, and survive every failure the
//! API server can throw at it (LISTWATCH.md).
//!
//! kube-runtime's watcher cannot start from a given resourceVersion
//! (kube-rs#1419), which is the whole point of a persistent cache, so this is
//! a separate machine in the same style: each state a variant of
//! [`machine::State`], each transition a small async fn.
//!
//! The watcher does not touch the store: it yields [`Output`]s, and the
//! informer applies them (diffing a relist with [`relist::diff`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::store::Delta;

pub mod backoff;
pub mod failure;
pub mod machine;
pub mod object;
pub mod relist;
pub mod source;

pub use machine::Watcher;
pub use object::{strip_managed_fields, Transform};
pub use source::{ApiSource, ListWatch};

/// Errors of the watcher layer.
#[derive(Debug, thiserror::Error)]
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
    /// Flush a batch this long after its first event.
    pub batch_window: Duration,
    /// `timeoutSeconds` of each watch request.
    pub watch_timeout_secs: u32,
    /// A watch silent for this long is presumed dead and restarted.
    pub stall_timeout: Duration,
    /// A resumed watch that stays quiet this long has caught up (servers
    /// send no marker for that; a bookmark also counts).
    pub catch_up_quiet: Duration,
    /// First backoff delay.
    pub backoff_initial: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            label_selector: None,
            field_selector: None,
            page_size: 500,
            streaming_list: true,
            batch_max: 500,
            batch_window: Duration::from_millis(5),
            watch_timeout_secs: 290,
            // A real server bookmarks about once a minute.
            stall_timeout: Duration::from_secs(300),
            catch_up_quiet: Duration::from_millis(200),
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
        if self.stall_timeout.is_zero() {
            return bad("stall_timeout", "must be positive");
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

/// What the watcher asks the informer to apply.
#[derive(Debug)]
pub enum Output {
    /// A complete, consistent snapshot of the collection at `rv`. The
    /// informer diffs it against the store.
    Relisted {
        /// Every object, transformed.
        objects: Vec<Value>,
        /// The snapshot's resourceVersion.
        rv: String,
    },
    /// Watch events in order, and the RV they bring the collection to. An
    /// empty batch is a bookmark: persist the RV.
    Batch {
        /// The changes, transformed.
        deltas: Vec<Delta>,
        /// RV of the last event (or of the bookmark).
        rv: String,
    },
    /// The watch resumed from the stored RV has caught up with the server.
    CaughtUp,
}

/// Counters of the watcher, read by the informer's metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// LIST requests made.
    pub list_requests: AtomicU64,
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
