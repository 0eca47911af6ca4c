//! The store through its library API: codec, schema versions, semantics.

mod codec;
mod encryption;
mod schema;
mod secrets;
mod semantics;
