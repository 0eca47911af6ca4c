//! The `bench` command end to end.

mod resume;
mod store;
