//! Watch events a metadata-first relist has already overtaken.
//!
//! The fetch phase GETs objects after the metadata list's snapshot, so it can
//! read an object newer than the snapshot, or find it deleted (404). The
//! watch then starts from the snapshot and replays the changes in between:
//! for a fetched object, versions up to the one fetched; for a deleted one,
//! its history up to its DELETED. Handing those on would move the consumer
//! back in time (I13) or bring a deleted object back for a while. A
//! [`Fence`] drops them, and lifts itself as the watch passes what was read.

use std::collections::HashMap;

use super::object::ObjectRef;
use super::relist::is_older;
use crate::resource_version;

/// What the fetch phase read of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    /// This version, newer than the snapshot.
    Version(String),
    /// 404: deleted after the snapshot.
    Deleted,
}

/// Per object, what a relist read past its snapshot. Holds one entry per
/// object read past the snapshot, which is few: those written during the
/// fetch phase.
#[derive(Debug, Default)]
pub struct Fence {
    read: HashMap<ObjectRef, Read>,
}

/// What to do with a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Hand it on.
    Pass,
    /// Drop it: the consumer already holds this object's state after it.
    Drop,
}

impl Fence {
    /// Whether nothing is fenced.
    pub fn is_empty(&self) -> bool {
        self.read.is_empty()
    }

    /// Records that `key` was fetched at `rv`, when that is past the
    /// snapshot `snapshot_rv` (otherwise the watch replays nothing older).
    pub fn fetched(&mut self, key: ObjectRef, rv: &str, snapshot_rv: &str) {
        if resource_version::covers(snapshot_rv, rv) {
            return;
        }
        self.read.insert(key, Read::Version(rv.to_string()));
    }

    /// Records that `key` was not found after the snapshot.
    pub fn deleted(&mut self, key: ObjectRef) {
        self.read.insert(key, Read::Deleted);
    }

    /// Decides about a watch event on `key` at `rv`; `deleted` when it is a
    /// DELETED event.
    pub fn check(&mut self, key: &ObjectRef, rv: Option<&str>, deleted: bool) -> Pass {
        let Some(read) = self.read.get(key) else {
            return Pass::Pass;
        };
        match (read, rv) {
            // Everything up to and including its deletion is behind us.
            (Read::Deleted, _) => {
                if deleted {
                    self.read.remove(key);
                }
                Pass::Drop
            }
            (Read::Version(fetched), Some(rv)) if rv == fetched || is_older(rv, fetched) => {
                Pass::Drop
            }
            (Read::Version(_), _) => {
                self.read.remove(key);
                Pass::Pass
            }
        }
    }

    /// The watch has delivered everything up to `rv` (a bookmark): versions
    /// fetched at or before it can no longer come back.
    pub fn passed(&mut self, rv: &str) {
        self.read.retain(|_, read| match read {
            Read::Version(fetched) => !resource_version::covers(rv, fetched),
            Read::Deleted => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectRef {
        ObjectRef::new(Some("ns"), name).unwrap()
    }

    #[test]
    fn replays_up_to_the_fetched_version_are_dropped_then_the_fence_lifts() {
        let mut f = Fence::default();
        f.fetched(key("a"), "110", "100");
        assert_eq!(f.check(&key("a"), Some("105"), false), Pass::Drop);
        assert_eq!(f.check(&key("a"), Some("110"), false), Pass::Drop);
        assert_eq!(f.check(&key("b"), Some("106"), false), Pass::Pass);
        assert_eq!(f.check(&key("a"), Some("111"), true), Pass::Pass);
        assert!(f.is_empty(), "lifted by the first newer event");
        assert_eq!(f.check(&key("a"), Some("105"), false), Pass::Pass);
    }

    #[test]
    fn a_version_within_the_snapshot_needs_no_fence() {
        let mut f = Fence::default();
        f.fetched(key("a"), "90", "100");
        f.fetched(key("b"), "100", "100");
        assert!(f.is_empty());
    }

    #[test]
    fn a_deleted_object_stays_gone_through_its_own_deletion() {
        let mut f = Fence::default();
        f.deleted(key("a"));
        assert_eq!(f.check(&key("a"), Some("101"), false), Pass::Drop);
        assert_eq!(f.check(&key("a"), Some("102"), false), Pass::Drop);
        f.passed("1000");
        assert_eq!(f.check(&key("a"), Some("103"), true), Pass::Drop);
        assert!(f.is_empty());
        // Created again afterwards: a new object.
        assert_eq!(f.check(&key("a"), Some("104"), false), Pass::Pass);
    }

    #[test]
    fn a_bookmark_past_a_fetched_version_lifts_its_fence() {
        let mut f = Fence::default();
        f.fetched(key("a"), "110", "100");
        f.fetched(key("b"), "130", "100");
        f.passed("120");
        assert_eq!(f.check(&key("a"), Some("105"), false), Pass::Pass);
        assert_eq!(f.check(&key("b"), Some("125"), false), Pass::Drop);
    }

    #[test]
    fn versions_outside_the_order_are_fenced_by_equality_only() {
        let mut f = Fence::default();
        f.fetched(key("a"), "x9", "x1");
        assert_eq!(f.check(&key("a"), Some("x9"), false), Pass::Drop);
        f.passed("zz");
        assert_eq!(f.check(&key("a"), Some("x5"), false), Pass::Pass);
        assert!(f.is_empty());
    }
}
