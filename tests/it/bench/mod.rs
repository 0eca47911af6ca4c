//! The `bench` command end to end.

mod cluster;
mod outage;
mod resume;
mod store;
