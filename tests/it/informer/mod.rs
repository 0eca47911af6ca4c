//! The informer against the simulator, in process and as a killed child.

mod crash;
mod live;
