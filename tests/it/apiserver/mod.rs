//! kube-persist against a real kube-apiserver (v1.37, watch cache on, on an
//! embedded etcd: tests/apiserver), not our simulator: the first sync and
//! a resume with no LIST, a 410 after the watch cache's window with a relist
//! by diff, what the server sends a resumed watch before Synced, SIGKILL
//! rounds, and the bench with client-go beside kube-runtime.
//!
//! Requests are counted from the server's own audit log. Without Go these
//! tests fail; `KP_SKIP_REAL_SERVER=1` skips them, loudly
//! (`support::apiserver`).

mod bench;
mod bookmarks;
mod crash;
mod gone;
mod resume;
