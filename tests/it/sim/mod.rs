//! The API-server simulator: protocol conformance and real clients.

mod clients;
mod clock;
mod conformance;
mod metadata;
mod table;
mod watch_cache;
