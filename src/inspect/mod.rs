//! Offline inspection of a store: what the `inspect`, `get`, `list`,
//! `history`, `verify`, `export` and `compact` commands ask of the library.
//!
//! The binary only parses arguments and renders; resolving a kubectl-style
//! resource name to a collection, parsing object keys, filtering, redacting
//! Secrets and summarising journals live here so that other front ends (a
//! plugin, a debug endpoint) get the same answers.

mod error;
pub mod history;
pub mod key;
pub mod query;
pub mod redact;
pub mod resource;
pub mod summary;
pub mod view;

pub use error::{Error, Result};
