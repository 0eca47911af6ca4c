//! Why an informer is not making progress: its last failure, kept in its
//! shared state so that a caller who stops waiting for [`super::State::Synced`]
//! can name the cause instead of guessing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::watcher::failure::Cause;

/// What kind of failure an informer last had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The API server could not be reached: the connection could not be
    /// made or broke (refused, DNS, TLS, reset).
    Unreachable,
    /// Something answered, but not as a Kubernetes API server does (an HTML
    /// page, undecodable bodies, an HTTP error without a Status).
    NotAnApiServer,
    /// The API server answered with an error (5xx, 403, 410...).
    Server,
    /// A store write failed for lack of space: the disk, or the quota on
    /// it, is full. What was stored before is kept.
    StorageFull,
    /// The store failed otherwise.
    Store,
}

impl std::fmt::Display for FailureCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureCause::Unreachable => "the API server could not be reached",
            FailureCause::NotAnApiServer => {
                "the server does not answer as a Kubernetes API server does"
            }
            FailureCause::Server => "the API server answered with an error",
            FailureCause::StorageFull => "the store's disk is full",
            FailureCause::Store => "the store failed",
        })
    }
}

impl From<Cause> for FailureCause {
    fn from(cause: Cause) -> FailureCause {
        match cause {
            Cause::Connection => FailureCause::Unreachable,
            Cause::NotApi => FailureCause::NotAnApiServer,
            Cause::Api => FailureCause::Server,
            // What the watcher was told is held is the store's content.
            Cause::Held => FailureCause::Store,
        }
    }
}

impl FailureCause {
    /// The cause of a failed store call.
    pub(crate) fn of_store(err: &super::Error) -> FailureCause {
        match err {
            super::Error::Store(e) if e.is_out_of_space() => FailureCause::StorageFull,
            _ => FailureCause::Store,
        }
    }
}

/// An informer's last failure: what kind, what was reported, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastFailure {
    /// What kind of failure.
    pub cause: FailureCause,
    /// What failed, as logged.
    pub message: String,
    /// When it happened.
    pub at: SystemTime,
}

/// The failures an informer records, in its shared state.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    last: Mutex<Option<LastFailure>>,
    /// A write failed for lack of space and none succeeded since.
    out_of_space: AtomicBool,
}

impl Failures {
    /// Records a failure, replacing the last one. While the disk is full, a
    /// store failure is taken as a consequence and keeps the full disk as
    /// the cause: an engine may refuse every call after one write failed
    /// for lack of space (redb does, until the store is reopened).
    pub(crate) fn record(&self, cause: FailureCause, message: &str) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match cause {
            FailureCause::StorageFull => self.out_of_space.store(true, Ordering::Relaxed),
            FailureCause::Store if self.out_of_space.load(Ordering::Relaxed) => return,
            _ => {}
        }
        *last = Some(LastFailure {
            cause,
            message: message.to_string(),
            at: SystemTime::now(),
        });
    }

    /// A write went through: the disk has room again.
    pub(crate) fn wrote(&self) {
        if self.out_of_space.load(Ordering::Relaxed) {
            self.out_of_space.store(false, Ordering::Relaxed);
        }
    }

    /// The last failure recorded, if any.
    pub(crate) fn last(&self) -> Option<LastFailure> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_after_a_full_disk_keeps_the_full_disk_as_cause() {
        let f = Failures::default();
        assert_eq!(f.last(), None);
        f.record(FailureCause::StorageFull, "No space left on device");
        f.record(FailureCause::Store, "Previous I/O error occurred");
        let last = f.last().unwrap();
        assert_eq!(last.cause, FailureCause::StorageFull);
        assert_eq!(last.message, "No space left on device");
        // The server's failures are their own.
        f.record(FailureCause::Unreachable, "connection refused");
        assert_eq!(f.last().unwrap().cause, FailureCause::Unreachable);
        // Once a write went through, a store failure is what it says.
        f.wrote();
        f.record(FailureCause::Store, "checksum mismatch");
        assert_eq!(f.last().unwrap().cause, FailureCause::Store);
    }

    #[test]
    fn only_an_out_of_space_write_is_a_full_disk() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let err = super::super::Error::Store(crate::store::Error::Io {
            path: "/s/db/data.redb".into(),
            source: full,
        });
        assert_eq!(FailureCause::of_store(&err), FailureCause::StorageFull);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = super::super::Error::Store(crate::store::Error::Io {
            path: "/s/db/data.redb".into(),
            source: denied,
        });
        assert_eq!(FailureCause::of_store(&err), FailureCause::Store);
    }
}
