//! The `bench` command end to end.

mod cluster;
mod resume;
mod store;
