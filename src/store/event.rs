//! The one description of a committed change to one object: what `apply`
//! returns, what the journal is replayed into, and what subscribers,
//! durable consumers and the controller receive.

use std::fmt;
use std::sync::{Arc, OnceLock};

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
    /// The state before, when known: see [`Event::old`].
    pub(crate) old: Earlier,
    /// The state after (`None` for deletes).
    pub new: Option<Value>,
}

impl Event {
    /// The state before the change, when known.
    ///
    /// The write path keeps it as the JSON it read from the store and
    /// parses it here, the first time any clone of the event asks: a change
    /// nobody looks back on (most of a resume's replay) costs no parse of
    /// the version it replaced.
    pub fn old(&self) -> Option<&Value> {
        self.old.get()
    }

    /// [`Event::old`], taken out of the event.
    pub fn into_old(self) -> Option<Value> {
        self.old.into_value()
    }
}

/// An earlier state of an object: a value, or stored JSON parsed on first
/// read and then shared by every clone of the event.
#[derive(Clone, Default)]
pub(crate) struct Earlier(Option<Arc<EarlierState>>);

struct EarlierState {
    /// The stored JSON, when the state came from the store.
    json: Option<Arc<[u8]>>,
    value: OnceLock<Option<Value>>,
}

impl Earlier {
    /// A state already decoded (`None`: none known).
    pub(crate) fn value(value: Option<Value>) -> Earlier {
        Earlier(value.map(|v| {
            Arc::new(EarlierState {
                json: None,
                value: OnceLock::from(Some(v)),
            })
        }))
    }

    /// A state kept as the JSON the store holds. The store has checked it
    /// (its crc, and that it parses, by `ObjectHead`), so the parse here
    /// does not fail on bytes the write path read; if it ever did, the
    /// state reads as unknown and the failure is logged.
    pub(crate) fn json(json: Arc<[u8]>) -> Earlier {
        Earlier(Some(Arc::new(EarlierState {
            json: Some(json),
            value: OnceLock::new(),
        })))
    }

    fn get(&self) -> Option<&Value> {
        let state = self.0.as_deref()?;
        state
            .value
            .get_or_init(|| {
                let json = state.json.as_deref()?;
                serde_json::from_slice(json)
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "an event's earlier state does not parse"),
                    )
                    .ok()
            })
            .as_ref()
    }

    fn into_value(self) -> Option<Value> {
        self.get()?;
        let state = self.0?;
        match Arc::try_unwrap(state) {
            Ok(state) => state.value.into_inner().flatten(),
            Err(shared) => shared.value.get().cloned().flatten(),
        }
    }
}

impl fmt::Debug for Earlier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl PartialEq for Earlier {
    fn eq(&self, other: &Earlier) -> bool {
        self.get() == other.get()
    }
}
