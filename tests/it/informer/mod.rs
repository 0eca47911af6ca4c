//! The informer against the simulator, in process and as a killed child.

mod background;
#[cfg(feature = "cli")]
mod crash;
mod live;
mod relist;
#[cfg(feature = "cli")]
mod relist_crash;
#[cfg(feature = "cli")]
mod relist_memory;
