//! Driving a `kube_runtime::Controller` from the informer.
//!
//! [`reflector`] gives the two things `Controller::for_stream` needs: a
//! reflector store reader seeded from disk, and a trigger stream of objects.
//! After a restart the controller can reconcile at once from the stored
//! objects, with no LIST to the API server.
//!
//! Its cost: kube-runtime's store holds every object decoded in memory, so
//! this bridge gives back the memory the disk store saves (at 100k pods,
//! kube-runtime's footprint rather than the informer's), and kube-runtime's
//! controller reconciles every object after each start. Prefer
//! [`crate::controller::Controller`], which reads from the store and
//! reconciles only what changed while it was down; this bridge is for code
//! that must stay on kube-runtime's `Controller`.
//!
//! ```no_run
//! # async fn demo(informer: kube_persist::informer::Informer) -> Result<(), kube_persist::informer::Error> {
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use k8s_openapi::api::core::v1::Pod;
//! use kube::runtime::controller::{Action, Controller};
//!
//! async fn reconcile(_pod: Arc<Pod>, _ctx: Arc<()>) -> Result<Action, kube::Error> {
//!     Ok(Action::await_change())
//! }
//! fn error_policy(_pod: Arc<Pod>, _err: &kube::Error, _ctx: Arc<()>) -> Action {
//!     Action::requeue(std::time::Duration::from_secs(5))
//! }
//!
//! let (reader, trigger) = kube_persist::informer::controller::reflector::<Pod>(&informer)?;
//! Controller::for_stream(trigger, reader)
//!     .run(reconcile, error_policy, Arc::new(()))
//!     .for_each(|_| async {})
//!     .await;
//! # Ok(()) }
//! ```

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::{self, Event as WatcherEvent};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Event, EventKind, Informer, Result};

/// A reflector store mirroring the informer and a stream of the objects to
/// reconcile: every stored object once (from disk), then every object the
/// informer adds, modifies or resyncs. Deletions update the store but
/// trigger nothing, as with kube's `applied_objects()`.
pub fn reflector<K>(
    informer: &Informer,
) -> Result<(
    reflector::Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)>
where
    K: kube::Resource<DynamicType = ()> + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let (reader, mut writer) = reflector::store::<K>();
    // Subscribe first: an event committed while reading the snapshot comes
    // through the subscription too, and re-applying it is harmless.
    let events = informer.subscribe();
    let stored: Vec<K> = informer.list()?.into_iter().filter_map(decode).collect();
    writer.apply_watcher_event(&WatcherEvent::Init);
    for obj in &stored {
        writer.apply_watcher_event(&WatcherEvent::InitApply(obj.clone()));
    }
    writer.apply_watcher_event(&WatcherEvent::InitDone);
    let live = events.filter_map(move |ev| futures::future::ready(mirror(&mut writer, ev)));
    let initial = futures::stream::iter(stored.into_iter().map(Ok));
    Ok((reader, initial.chain(live)))
}

fn decode<K: DeserializeOwned>(obj: Value) -> Option<K> {
    match serde_json::from_value(obj) {
        Ok(k) => Some(k),
        Err(err) => {
            tracing::warn!("stored object does not decode as the controller's type: {err}");
            None
        }
    }
}

fn mirror<K>(writer: &mut Writer<K>, event: Result<Event>) -> Option<Result<K, watcher::Error>>
where
    K: kube::Resource<DynamicType = ()> + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let event = match event {
        Ok(event) => event,
        Err(err) => {
            tracing::warn!("controller feed: {err}");
            return None;
        }
    };
    match event.kind {
        EventKind::Deleted => {
            let obj = decode::<K>(event.into_old()?)?;
            writer.apply_watcher_event(&WatcherEvent::Delete(obj));
            None
        }
        EventKind::Added | EventKind::Modified | EventKind::Resync => {
            let obj = decode::<K>(event.new?)?;
            writer.apply_watcher_event(&WatcherEvent::Apply(obj.clone()));
            Some(Ok(obj))
        }
    }
}
