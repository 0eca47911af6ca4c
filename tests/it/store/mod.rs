//! The store through its library API: codec, schema versions, semantics.

// Codec and schema tests reach into the store's internals (raw records,
// the record format, migrations), public only with the `cli` feature.
#[cfg(feature = "cli")]
mod codec;
#[cfg(feature = "cli")]
mod encryption;
mod references;
#[cfg(feature = "cli")]
mod schema;
mod secrets;
mod semantics;
