//! The controller and the typed reads it is built on.

mod crash;
mod reconcile;
mod typed;
