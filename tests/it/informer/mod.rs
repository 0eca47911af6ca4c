//! The informer against the simulator, in process and as a killed child.

mod background;
mod crash;
mod live;
mod relist;
mod relist_crash;
#[cfg(feature = "cli")]
mod relist_memory;
