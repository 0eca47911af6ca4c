//! Watch events of objects a metadata-first relist found deleted.
//!
//! The fetch phase GETs objects after the metadata list's snapshot, so it can
//! find one deleted (404). The watch then starts from the snapshot and
//! replays that object's history up to its DELETED: handing it on would
//! bring a deleted object back for a while. A [`Fence`] drops it, and lifts
//! itself at the DELETED.
//!
//! An object the GETs read newer than the snapshot needs no fence: the
//! replays of its older versions reach the consumer, which keeps the newer
//! (the informer's store never moves an object back, I13).

use std::collections::HashSet;

use super::object::ObjectRef;

/// The objects a relist found deleted after its snapshot, until the watch
/// delivers their deletion. Few: those deleted during the fetch phase.
#[derive(Debug, Default)]
pub struct Fence {
    deleted: HashSet<ObjectRef>,
}

/// What to do with a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Hand it on.
    Pass,
    /// Drop it: the object is gone, and its deletion handed on already.
    Drop,
}

impl Fence {
    /// Whether nothing is fenced.
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty()
    }

    /// Records that `key` was not found after the snapshot.
    pub fn deleted(&mut self, key: ObjectRef) {
        self.deleted.insert(key);
    }

    /// Decides about a watch event on `key`; `deleted` when it is a DELETED
    /// event.
    pub fn check(&mut self, key: &ObjectRef, deleted: bool) -> Pass {
        if !self.deleted.contains(key) {
            return Pass::Pass;
        }
        // Everything up to and including its deletion is behind us.
        if deleted {
            self.deleted.remove(key);
        }
        Pass::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectRef {
        ObjectRef::new(Some("ns"), name).unwrap()
    }

    #[test]
    fn a_deleted_object_stays_gone_through_its_own_deletion() {
        let mut f = Fence::default();
        f.deleted(key("a"));
        assert_eq!(f.check(&key("a"), false), Pass::Drop);
        assert_eq!(f.check(&key("b"), false), Pass::Pass);
        assert_eq!(f.check(&key("a"), false), Pass::Drop);
        assert_eq!(f.check(&key("a"), true), Pass::Drop);
        assert!(f.is_empty());
        // Created again afterwards: a new object.
        assert_eq!(f.check(&key("a"), false), Pass::Pass);
    }
}
