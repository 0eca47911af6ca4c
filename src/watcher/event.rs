//! What the watcher hands on, in the shape of kube-runtime's
//! `watcher::Event`: the frame of a relist, watch events, bookmarks, and the
//! proof that a resumed watch has caught up.

use serde_json::Value;

use super::object::{rv_of, ObjectRef};

/// One thing the watcher saw. Objects have been through the transform.
///
/// A relist is framed by [`Event::Init`] and [`Event::InitDone`]. Unlike
/// kube-runtime's, which restates every object, the frame holds only how the
/// server differs from what the consumer holds (see
/// [`Held`](super::Held)): objects that are new or changed, and objects
/// gone while the watch was away. A consumer applies them as they come and
/// moves its resourceVersion only at `InitDone`, so that a relist cut short
/// leaves it at the old one.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A relist begins (or begins again, when one was cut short): until
    /// [`Event::InitDone`], the consumer's resourceVersion stands still.
    Init,
    /// An object the relist found new, or at another resourceVersion than
    /// the one held.
    InitApply(Value),
    /// An object the consumer holds that the relist did not find: deleted
    /// while the watch was away. The watcher knows only its key and the
    /// resourceVersion held; the consumer knows its last state.
    InitDelete {
        /// Which object.
        key: ObjectRef,
        /// The resourceVersion the consumer held for it.
        rv: String,
    },
    /// The relist is complete: the consumer now holds the server's state at
    /// `rv`, and the watch goes on from there. Proof of being synced.
    InitDone {
        /// The listed snapshot's resourceVersion.
        rv: String,
    },
    /// A watched object was added or modified.
    Apply(Value),
    /// A watched object was deleted; its last state, whose resourceVersion
    /// is the deletion's.
    Delete(Value),
    /// Every change up to `rv` has been delivered.
    Bookmark {
        /// The bookmark's resourceVersion.
        rv: String,
    },
    /// The resumed watch has caught up with the server: a bookmark at or
    /// past the resourceVersion it resumed from arrived (see
    /// [`Config::resume_probe_timeout_secs`](super::Config::resume_probe_timeout_secs)).
    /// Never sent on silence.
    CaughtUp,
}

impl Event {
    /// The resourceVersion a consumer is at once it has applied this event
    /// and every one before it, when the event moves it: a watch event's
    /// object's, a bookmark's, the end of a relist's. `None` inside a relist
    /// and for events without one.
    pub fn watch_rv(&self) -> Option<&str> {
        match self {
            Event::Apply(obj) | Event::Delete(obj) => rv_of(obj),
            Event::Bookmark { rv } | Event::InitDone { rv } => Some(rv),
            Event::Init | Event::InitApply(_) | Event::InitDelete { .. } | Event::CaughtUp => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_events_outside_a_relist_move_the_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}});
        assert_eq!(Event::Apply(obj.clone()).watch_rv(), Some("7"));
        assert_eq!(Event::Delete(obj.clone()).watch_rv(), Some("7"));
        assert_eq!(Event::Bookmark { rv: "8".into() }.watch_rv(), Some("8"));
        assert_eq!(Event::InitDone { rv: "9".into() }.watch_rv(), Some("9"));
        assert_eq!(Event::InitApply(obj).watch_rv(), None);
        let key = ObjectRef::new(None, "a").unwrap();
        assert_eq!(
            Event::InitDelete {
                key,
                rv: "7".into()
            }
            .watch_rv(),
            None
        );
        assert_eq!(Event::Init.watch_rv(), None);
        assert_eq!(Event::CaughtUp.watch_rv(), None);
        assert_eq!(Event::Apply(json!({"metadata": {}})).watch_rv(), None);
    }
}
