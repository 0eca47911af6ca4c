//! kube-persist: a Kubernetes informer cache that lives on disk.
//!
//! A controller that restarts opens its [`Store`], reads every object at once,
//! and resumes its watch from the stored resourceVersion: no full relist, no
//! reconcile storm, no window where the cache is empty.
//!
//! ```
//! use k8s_openapi::api::core::v1::Pod;
//! use kube_persist::informer::{Informer, State};
//! # #[cfg(feature = "sim")]
//! use kube_persist::sim::{SimConfig, Simulator};
//!
//! # #[cfg(not(feature = "sim"))] fn main() {}
//! # #[cfg(feature = "sim")]
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The built-in API-server simulator stands in for a cluster.
//! let sim = Simulator::start(SimConfig { pods: 50, ..SimConfig::default() }).await?;
//! let dir = tempfile::tempdir()?;
//!
//! // First start: nothing stored, so the informer lists, then watches.
//! let informer = Informer::for_resource::<Pod>(sim.client())
//!     .store_path(dir.path().join("pods"))
//!     .start()
//!     .await?;
//! informer.wait_until_synced().await?;
//! assert_eq!(informer.len(), 50);
//! informer.shutdown().await;
//!
//! // A restart: every object is readable before any request is made, and
//! // the watch resumes from the stored resourceVersion without a LIST.
//! let lists_before = sim.stats().list_requests;
//! let informer = Informer::for_resource::<Pod>(sim.client())
//!     .store_path(dir.path().join("pods"))
//!     .start()
//!     .await?;
//! assert!(matches!(informer.opened_state(), State::Restored { .. }));
//! assert_eq!(informer.list()?.len(), 50);
//! informer.wait_until_synced().await?;
//! assert_eq!(sim.stats().list_requests, lists_before);
//! informer.shutdown().await;
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

/// Declares a module of internals: what the binary (a crate of its own) and
/// the tests reach into, but a controller has no use for. With the `cli`
/// feature it is public and left out of the docs; without it (the library
/// alone) it is private to the crate, and what only the binary uses of it
/// is dead code there.
macro_rules! internal {
    ($(#[$attr:meta])* mod $name:ident;) => {
        $(#[$attr])*
        #[cfg(feature = "cli")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "cli"))]
        #[allow(dead_code)]
        pub(crate) mod $name;
    };
}
pub(crate) use internal;

#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod bench;
mod builtin;
pub mod controller;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod informer;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod inspect;
pub mod resource_version;
pub mod selector;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
internal! {
    mod watcher;
}
internal! {
    #[path = "../migrations/mod.rs"]
    mod migrations;
}

pub use controller::Controller;
pub use error::Error;
pub use informer::{
    Consumer, Event, EventKind, Informer, InformerBuilder, ReadError, Reader, ResourceSpec, State,
    TypedReader,
};
pub use store::{CollectionId, EngineKind, ObjectKey, Store, StoreOptions};
/// How the informer lists and watches ([`InformerBuilder::configure`]).
pub use watcher::Config as WatcherConfig;
/// A watcher setting the informer was given is invalid.
pub use watcher::Error as WatcherError;
