//! Fixtures shared by every area: stores built through the library, the
//! binary run against them, simulators and raw HTTP against them.

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod controller;
#[cfg(feature = "sim")]
pub mod informer;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
