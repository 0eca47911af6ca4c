//! A Kubernetes API-server simulator speaking the real list/watch protocol
//! over HTTP on loopback (see LISTWATCH.md).
//!
//! CONTRACT (signatures other layers build against; bodies are filled in by
//! the simulator work).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Could not bind or serve.
    #[error("simulator i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A request to the simulator's own API failed.
    #[error("simulator: {0}")]
    Api(String),
}

/// Result type of the simulator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a too-old resourceVersion on watch is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoneMode {
    /// An immediate HTTP 410.
    #[default]
    Http410,
    /// A 200 stream whose first event is an ERROR carrying a 410 Status.
    ErrorEvent,
}

/// Simulator configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on (port 0: ephemeral).
    pub listen: SocketAddr,
    /// Pods to pre-populate.
    pub pods: usize,
    /// Namespaces to spread them over.
    pub namespaces: usize,
    /// ConfigMaps to pre-populate.
    pub configmaps: usize,
    /// RNG seed for generated objects and mutations.
    pub seed: u64,
    /// Interval between bookmarks on watches that ask for them.
    pub bookmark_interval: Duration,
    /// Compact history on this interval, if set.
    pub compact_interval: Option<Duration>,
    /// Watch events kept before the oldest are compacted.
    pub history: usize,
    /// Largest page served, whatever `limit` asks.
    pub page_size_max: usize,
    /// Whether streaming lists (`sendInitialEvents`) are supported.
    pub watch_list: bool,
    /// How a too-old resourceVersion on watch is answered.
    pub gone: GoneMode,
}

/// An injectable fault.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The next `count` requests get this status code (429 carries Retry-After).
    Status {
        /// HTTP status code.
        code: u16,
        /// How many requests.
        count: usize,
        /// Retry-After seconds, for 429.
        retry_after: Option<u64>,
    },
    /// The next watch stream is cut after this many events.
    CutAfter(usize),
    /// The next watch stream is cut in the middle of a line.
    CutMidLine,
    /// The next watch stream stalls for this long.
    Stall(Duration),
    /// The next watch stream sends a malformed line.
    MalformedLine,
    /// The next watch stream sends an event of an unknown type.
    UnknownEventType,
}

/// Counters the simulator keeps.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SimStats {
    /// LIST requests served.
    pub list_requests: u64,
    /// WATCH requests served.
    pub watch_requests: u64,
    /// Response bytes sent.
    pub bytes_sent: u64,
    /// Objects stored, all resources.
    pub objects: u64,
    /// Current global resourceVersion.
    pub current_rv: u64,
    /// Oldest resourceVersion still served.
    pub compacted_rv: u64,
}

/// A running simulator. Cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    _p: (),
}

#[allow(unused_variables, missing_docs)]
impl Simulator {
    /// Start serving.
    pub async fn start(config: SimConfig) -> Result<Simulator> {
        todo!()
    }
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        todo!()
    }
    /// A kube client pointing at the simulator.
    pub fn client(&self) -> kube::Client {
        todo!()
    }
    pub fn stats(&self) -> SimStats {
        todo!()
    }
    pub fn current_rv(&self) -> u64 {
        todo!()
    }
    /// Drop all history up to the current resourceVersion.
    pub fn compact(&self) {
        todo!()
    }
    pub fn inject(&self, fault: Fault) {
        todo!()
    }
    /// `resource` is the plural, e.g. `pods`; returns the stored object.
    pub fn create(&self, resource: &str, object: Value) -> Result<Value> {
        todo!()
    }
    pub fn replace(&self, resource: &str, object: Value) -> Result<Value> {
        todo!()
    }
    pub fn delete(&self, resource: &str, namespace: Option<&str>, name: &str) -> Result<Value> {
        todo!()
    }
    /// Current state of one resource, as a LIST would serve it.
    pub fn objects(&self, resource: &str) -> Vec<Value> {
        todo!()
    }
    /// Apply `n` realistic random writes (updates, creates, deletes) to pods.
    pub fn mutate(&self, n: usize) {
        todo!()
    }
    pub async fn shutdown(self) {
        todo!()
    }
}
