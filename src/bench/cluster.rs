//! The API server a bench round runs against: the built-in simulator, or
//! the real kube-apiserver of `tests/apiserver` ([`super::apiserver`]).
//!
//! Both give the contenders an endpoint, list the pods, write to them while
//! a contender is down, push a stored resourceVersion out of the server's
//! history for the 410 row, and say what a contender pulled. The simulator
//! counts its own requests and bytes; on the real server the requests come
//! from its audit log and the bytes from a counting relay in front of it.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

use super::apiserver::{self, ApiServer, AuditMark, Relay};
use super::steady::{self, Phase};
use super::{Error, Result};
use crate::sim::{SimConfig, Simulator};

/// Which API server the bench runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// The built-in simulator.
    Sim,
    /// A real kube-apiserver (tests/apiserver's harness) on an embedded etcd.
    #[value(name = "kube-apiserver")]
    #[serde(rename = "kube-apiserver")]
    KubeApiServer,
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerKind::Sim => "simulator",
            ServerKind::KubeApiServer => "kube-apiserver",
        })
    }
}

/// Where a contender connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The server's URL.
    pub server: String,
    /// A kubeconfig to read instead of connecting to `server` with no
    /// credentials (the real server needs its token and CA).
    pub kubeconfig: Option<PathBuf>,
}

/// What the server had served at some instant (see [`Cluster::mark`]).
#[derive(Debug, Clone)]
pub struct Mark {
    list: u64,
    watch: u64,
    bytes: u64,
    audit: AuditMark,
}

/// What a contender pulled between two instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Served {
    /// LIST requests.
    pub list_requests: u64,
    /// WATCH requests, streaming lists included.
    pub watch_requests: u64,
    /// Bytes sent to the client (on the real server: TLS bytes on the wire).
    pub bytes: u64,
}

/// A running API server with pods in it.
pub struct Cluster {
    inner: Inner,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Sim(sim) => write!(f, "Cluster(simulator at {})", sim.url()),
            Inner::Real(r) => write!(f, "Cluster(kube-apiserver at {})", r.server.url()),
        }
    }
}

enum Inner {
    Sim(Simulator),
    Real(Box<Real>),
}

struct Real {
    server: ApiServer,
    relay: Relay,
    /// The server's kubeconfig pointed at the relay: what contenders read.
    kubeconfig: PathBuf,
    /// A client straight to the server, for the bench's own reads.
    client: kube::Client,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the simulator.
    pub fn sim(runtime: &tokio::runtime::Runtime, config: SimConfig) -> Result<Cluster> {
        let sim = runtime.block_on(Simulator::start(config))?;
        Ok(Cluster {
            inner: Inner::Sim(sim),
        })
    }

    /// Starts the real kube-apiserver `program` with `pods` pods dealt over
    /// `namespaces` namespaces, and a relay in front of it.
    pub fn kube_apiserver(
        runtime: &tokio::runtime::Runtime,
        program: &Path,
        pods: usize,
        namespaces: usize,
        seed: u64,
    ) -> Result<Cluster> {
        let server = ApiServer::start(
            program,
            &apiserver::Options {
                pods,
                namespaces,
                seed: Some(seed),
                audit: true,
                ..apiserver::Options::default()
            },
        )?;
        let dir = tempfile::tempdir().map_err(|source| Error::Io {
            path: "<temporary directory>".into(),
            source,
        })?;
        let relay = runtime.block_on(Relay::start(apiserver::socket_addr(server.url())?))?;
        let kubeconfig = dir.path().join("kubeconfig-relay.json");
        apiserver::redirect_kubeconfig(server.kubeconfig(), &kubeconfig, &relay.url())?;
        let client = runtime.block_on(server.client())?;
        Ok(Cluster {
            inner: Inner::Real(Box::new(Real {
                server,
                relay,
                kubeconfig,
                client,
                _dir: dir,
            })),
        })
    }

    /// Where contenders connect.
    pub fn endpoint(&self) -> Endpoint {
        match &self.inner {
            Inner::Sim(sim) => Endpoint {
                server: sim.url(),
                kubeconfig: None,
            },
            Inner::Real(r) => Endpoint {
                server: r.relay.url(),
                kubeconfig: Some(r.kubeconfig.clone()),
            },
        }
    }

    /// Every pod the server holds now, as JSON.
    pub fn pods(&self, runtime: &tokio::runtime::Runtime) -> Result<Vec<Value>> {
        match &self.inner {
            Inner::Sim(sim) => Ok(sim.objects("pods")),
            Inner::Real(r) => runtime.block_on(async {
                let request = http::Request::get("/api/v1/pods")
                    .body(Vec::new())
                    .map_err(|e| apiserver::Error::Kube(kube::Error::HttpError(e)))?;
                let mut list: Value = r
                    .client
                    .request(request)
                    .await
                    .map_err(apiserver::Error::from)?;
                Ok(match list.get_mut("items").map(Value::take) {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                })
            }),
        }
    }

    /// The bytes the server sends for a metadata-only list of every pod, in
    /// pages of 500 as a relist reads it: the share of a 410 relist no diff
    /// can save. Counted where a contender's pulled bytes are (on the real
    /// server: on the wire, through the relay).
    pub fn metadata_list_bytes(&self, runtime: &tokio::runtime::Runtime) -> Result<u64> {
        const ACCEPT: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        let client = match &self.inner {
            Inner::Sim(sim) => sim.client(),
            Inner::Real(r) => runtime.block_on(apiserver::client_from_kubeconfig(&r.kubeconfig))?,
        };
        let before = self.bytes_sent();
        runtime.block_on(async {
            let mut token = String::new();
            loop {
                let mut uri = "/api/v1/pods?limit=500".to_string();
                if !token.is_empty() {
                    uri.push_str("&continue=");
                    uri.push_str(&token);
                }
                let request = http::Request::get(uri)
                    .header(http::header::ACCEPT, ACCEPT)
                    .body(Vec::new())
                    .map_err(|e| apiserver::Error::Kube(kube::Error::HttpError(e)))?;
                let text = client
                    .request_text(request)
                    .await
                    .map_err(apiserver::Error::from)?;
                let page: Value = serde_json::from_str(&text)
                    .map_err(|e| apiserver::Error::Kube(kube::Error::SerdeError(e)))?;
                match page.pointer("/metadata/continue").and_then(Value::as_str) {
                    Some(t) if !t.is_empty() => token = t.to_string(),
                    _ => return Ok::<_, Error>(()),
                }
            }
        })?;
        Ok(self.bytes_sent().saturating_sub(before))
    }

    /// Bytes the server has sent so far, counted where contenders' are.
    fn bytes_sent(&self) -> u64 {
        match &self.inner {
            Inner::Sim(sim) => sim.stats().bytes_sent,
            Inner::Real(r) => r.relay.bytes_down(),
        }
    }

    /// Writes `n` pods (distinct ones while there are that many).
    pub fn mutate(&self, n: usize) -> Result<()> {
        match &self.inner {
            Inner::Sim(sim) => sim.mutate(n),
            Inner::Real(r) if n > 0 => {
                r.server.churn(n, None, None)?;
            }
            Inner::Real(_) => {}
        }
        Ok(())
    }

    /// Makes every resourceVersion up to now too old to watch from. The
    /// simulator compacts; the real server cannot be compacted into a watch
    /// 410 while its watch cache holds the events, so this waits out the
    /// cache's window and writes one pod (of `namespace`) until a watch from
    /// the current resourceVersion is refused: minutes, not milliseconds.
    pub fn expire_history(&self, runtime: &tokio::runtime::Runtime, namespace: &str) -> Result<()> {
        match &self.inner {
            Inner::Sim(sim) => sim.compact(),
            Inner::Real(r) => {
                runtime.block_on(async {
                    let rv = apiserver::current_rv(&r.client).await?;
                    // The admin endpoint is blocking HTTP: off the worker
                    // the watches that probe for 410 run on.
                    apiserver::expire_history(&r.client, &rv, |n| {
                        tokio::task::block_in_place(|| {
                            r.server.churn(n, Some(namespace), Some(1)).map(drop)
                        })
                    })
                    .await
                })?;
            }
        }
        Ok(())
    }

    /// The server's counters now. On the real server the audit log is
    /// settled first ([`apiserver::AuditLog::settle`]), so that requests the
    /// bench made before (its reads of the pods, the watches that pushed
    /// history out) are not counted against the next contender.
    pub fn mark(&self, runtime: &tokio::runtime::Runtime) -> Result<Mark> {
        Ok(match &self.inner {
            Inner::Sim(sim) => {
                let s = sim.stats();
                Mark {
                    list: s.list_requests,
                    watch: s.watch_requests,
                    bytes: s.bytes_sent,
                    audit: AuditMark::default(),
                }
            }
            Inner::Real(r) => Mark {
                list: 0,
                watch: 0,
                bytes: r.relay.bytes_down(),
                audit: match r.server.audit() {
                    Some(log) => runtime.block_on(log.settled_mark(&r.client))?,
                    None => AuditMark::default(),
                },
            },
        })
    }

    /// What was served since `mark`: on the real server, once the audit log
    /// holds every request finished by now.
    pub fn served_since(&self, runtime: &tokio::runtime::Runtime, mark: &Mark) -> Result<Served> {
        match &self.inner {
            Inner::Sim(_) => {
                let now = self.mark(runtime)?;
                Ok(Served {
                    list_requests: now.list.saturating_sub(mark.list),
                    watch_requests: now.watch.saturating_sub(mark.watch),
                    bytes: now.bytes.saturating_sub(mark.bytes),
                })
            }
            Inner::Real(r) => {
                let requests = match r.server.audit() {
                    Some(log) => runtime.block_on(log.settled_since(&r.client, &mark.audit))?,
                    None => Vec::new(),
                };
                Ok(Served {
                    list_requests: requests.iter().filter(|q| q.is_list()).count() as u64,
                    watch_requests: requests.iter().filter(|q| q.is_watch()).count() as u64,
                    bytes: r.relay.bytes_down().saturating_sub(mark.bytes),
                })
            }
        }
    }

    /// Writes `object` with a steady-state stamp taken just before the
    /// write; returns the object as the server stored it.
    pub fn write_stamped(
        &self,
        runtime: &tokio::runtime::Runtime,
        object: &Value,
        phase: Phase,
    ) -> Result<Value> {
        match &self.inner {
            Inner::Sim(sim) => {
                let mut object = object.clone();
                steady::stamp(&mut object, phase, super::clock::now_ns());
                Ok(sim.replace("pods", object)?)
            }
            Inner::Real(r) => {
                let meta = &object["metadata"];
                let (Some(ns), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str())
                else {
                    return Ok(object.clone());
                };
                let api: Api<Pod> = Api::namespaced(r.client.clone(), ns);
                let mut patch = json!({"metadata": {}});
                steady::stamp(&mut patch, phase, super::clock::now_ns());
                runtime
                    .block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(patch)))
                    .map_err(apiserver::Error::from)?;
                Ok(object.clone())
            }
        }
    }

    /// Stops the server.
    pub fn shutdown(self, runtime: &tokio::runtime::Runtime) {
        match self.inner {
            Inner::Sim(sim) => runtime.block_on(sim.shutdown()),
            Inner::Real(r) => {
                let Real { server, relay, .. } = *r;
                drop(relay);
                let status = server.stop();
                tracing::debug!(%status, "kube-apiserver stopped");
            }
        }
    }
}
