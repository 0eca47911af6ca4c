//! kube-persist: a Kubernetes informer cache that lives on disk.
//!
//! A controller that restarts opens its [`Store`], reads every object at once,
//! and resumes its watch from the stored resourceVersion: no full relist, no
//! reconcile storm, no window where the cache is empty.

#![warn(missing_docs)]

pub mod bench;
pub mod error;
pub mod informer;
pub mod selector;
pub mod sim;
pub mod store;
pub mod watcher;

#[path = "../migrations/mod.rs"]
pub mod migrations;

pub use error::Error;
