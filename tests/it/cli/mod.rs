//! The `kube-persist` binary, run as a user runs it.

mod corruption;
mod encryption;
mod errors;
mod export;
mod get;
mod history;
mod list;
mod repair;
mod salvage;
mod scale;
mod secrets;
mod sync;
mod sync_gives_up;
mod verify;
