//! The store through its library API: codec, schema versions, semantics.

mod codec;
mod schema;
mod semantics;
