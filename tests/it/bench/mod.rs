//! The `bench` command end to end.

mod cluster;
mod controller;
mod outage;
mod resume;
mod store;
