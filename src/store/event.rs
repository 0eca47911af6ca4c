//! The one description of a committed change to one object: what `apply`
//! returns, what the journal is replayed into, and what subscribers,
//! durable consumers and the controller receive.

use serde_json::Value;

use super::ObjectKey;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// The object is new to the cache.
    Added,
    /// The object changed.
    Modified,
    /// The object was removed.
    Deleted,
    /// Periodic re-delivery of an unchanged object (resync). Only
    /// subscribers see it: nothing changed, so it is never journaled.
    Resync,
}

/// A committed change to one object, as journaled and as delivered to
/// subscribers (or a resync's re-delivery of an unchanged one).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Journal sequence number; acknowledge it on a durable consumer. For a
    /// resync, the last seq committed when it was sent.
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// Which object.
    pub key: ObjectKey,
    /// The object's resourceVersion after the change.
    pub rv: String,
    /// The state before, when known.
    pub old: Option<Value>,
    /// The state after (`None` for deletes).
    pub new: Option<Value>,
}
