//! The fixture of the differential conformance cases: one [`Target`] per
//! case, the simulator or the real kube-apiserver, giving the case its
//! server's URL, a client (kube's, which speaks TLS and the bearer token to
//! the real server and plain HTTP to the simulator) and a way to write
//! (plain API requests, the same on both). A case holds no reference to
//! which server it runs on except through [`Target::server`], for the few
//! answers listed as known differences.
//!
//! The real server is the shared one of `support::apiserver`: each case
//! writes only in namespaces of its own ([`Target::namespace`]), so cases
//! and other tests running at once never see each other's objects. Other
//! writers move the server's resourceVersion, so cases compare versions
//! with those the writes returned, never with arithmetic on them.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;
use kube_persist::sim::{SimConfig, Simulator};
use serde_json::{json, Value};

use super::apiserver;
use super::sim::{pod, WatchStream};

/// Which server a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The built-in simulator, one per case.
    Sim,
    /// The shared real kube-apiserver (tests/apiserver).
    KubeApiServer,
}

/// A server under test. A simulator serves from a task of the test's
/// runtime, so it lives as long as the test; the client is all a case needs.
pub struct Target {
    /// Which one.
    pub server: Server,
    client: kube::Client,
}

impl Target {
    /// The simulator (default config, no pods), or the shared real server;
    /// `None` only when the real-server tests are skipped on request.
    pub async fn start(server: Server) -> Option<Target> {
        match server {
            Server::Sim => {
                let sim = Simulator::start(SimConfig {
                    pods: 0,
                    ..SimConfig::default()
                })
                .await
                .expect("simulator starts");
                Some(Target {
                    server,
                    client: sim.client(),
                })
            }
            Server::KubeApiServer => {
                let real = apiserver::shared()?;
                Some(Target {
                    server,
                    client: real.client().await.expect("a client of the real server"),
                })
            }
        }
    }

    /// A namespace of this case's own, named `tag-XXXXXXXX`, created on the
    /// server (with the `default` ServiceAccount the real server's
    /// admission wants for a pod).
    pub async fn namespace(&self, tag: &str) -> String {
        let name = format!("{tag}-{:08x}", rand::random::<u32>());
        self.create_namespace(&name).await;
        name
    }

    /// Creates the namespace `name` (see [`Target::namespace`]).
    pub async fn create_namespace(&self, name: &str) {
        self.post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .await;
        if self.server == Server::KubeApiServer {
            self.post(
                &format!("/api/v1/namespaces/{name}/serviceaccounts"),
                &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
            )
            .await;
        }
    }

    /// The watch events of an unscheduled pod's deletion (known difference
    /// 3): kube-apiserver's graceful deletion, with grace 0, first writes
    /// `deletionTimestamp` and `deletionGracePeriodSeconds` (MODIFIED),
    /// then deletes; the simulator deletes at once.
    pub fn pod_deletion_events(&self) -> &'static [&'static str] {
        match self.server {
            Server::Sim => &["DELETED"],
            Server::KubeApiServer => &["MODIFIED", "DELETED"],
        }
    }

    /// One request; the answer's status and body, whatever they are.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Bytes) {
        let response = self.send(method, path, content_type, body).await;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_else(|e| panic!("{path}: reading the body: {e}"));
        (status, body)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> http::Response<kube::client::Body> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            request = request.header(http::header::CONTENT_TYPE, ct);
        }
        let request = request
            .body(kube::client::Body::from(body))
            .expect("a valid request");
        self.client
            .send(request)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// GET: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (code, body) = self.request(Method::GET, path, None, Vec::new()).await;
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {body:?}"));
        (code, v)
    }

    /// GET that must answer 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (code, v) = self.get(path).await;
        assert_eq!(code, 200, "{:?} {path}: {v}", self.server);
        v
    }

    /// GET as raw text.
    pub async fn get_text(&self, path: &str) -> String {
        let (code, body) = self.request(Method::GET, path, None, Vec::new()).await;
        assert_eq!(code, 200, "{path}");
        String::from_utf8(body.to_vec()).expect("UTF-8 body")
    }

    /// Opens a watch (any status; see [`WatchStream::status`]).
    pub async fn watch(&self, path: &str) -> WatchStream {
        let response = self.send(Method::GET, path, None, Vec::new()).await;
        let status = response.status().as_u16();
        WatchStream::of(status, response.into_body().into_data_stream())
    }

    /// A write with a JSON body; status and JSON answer.
    pub async fn write(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, Value) {
        let (code, answer) = self
            .request(method, path, Some(content_type), body.as_bytes().to_vec())
            .await;
        let v = serde_json::from_slice(&answer).unwrap_or_else(|e| {
            panic!("{path}: answer is not JSON ({e}): {answer:?}");
        });
        (code, v)
    }

    /// POST that must create (201); the created object.
    pub async fn post(&self, path: &str, body: &Value) -> Value {
        let (code, v) = self
            .write(Method::POST, path, "application/json", &body.to_string())
            .await;
        assert_eq!(code, 201, "{:?} POST {path}: {v}", self.server);
        v
    }

    /// Creates a small pod with labels; the object as stored.
    pub async fn create_pod(&self, ns: &str, name: &str, labels: &[(&str, &str)]) -> Value {
        self.post(
            &format!("/api/v1/namespaces/{ns}/pods"),
            &pod(ns, name, labels),
        )
        .await
    }

    /// Creates `n` pods named `p000`.. in `ns`, a few at a time.
    pub async fn create_pods(&self, ns: &str, n: usize) {
        use futures::StreamExt;
        futures::stream::iter(0..n)
            .map(|i| async move { self.create_pod(ns, &format!("p{i:03}"), &[]).await })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
    }

    /// Merge-patches a pod's labels (`None` removes one): one MODIFIED
    /// event; the object as stored.
    pub async fn label_pod(&self, ns: &str, name: &str, labels: &[(&str, Option<&str>)]) -> Value {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.map_or(Value::Null, |v| json!(v))))
            .collect();
        let patch = json!({"metadata": {"labels": labels}});
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        let (code, v) = self
            .write(
                Method::PATCH,
                &path,
                "application/merge-patch+json",
                &patch.to_string(),
            )
            .await;
        assert_eq!(code, 200, "{:?} PATCH {path}: {v}", self.server);
        v
    }

    /// Deletes a pod (at once on both: the real server deletes an
    /// unscheduled pod without a grace period); the answer.
    pub async fn delete_pod(&self, ns: &str, name: &str) -> Value {
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        let (code, v) = self
            .write(Method::DELETE, &path, "application/json", "")
            .await;
        assert_eq!(code, 200, "{:?} DELETE {path}: {v}", self.server);
        v
    }

    /// The resourceVersion of a consistent list of `ns`'s pods: at least
    /// every write made before the call.
    pub async fn rv(&self, ns: &str) -> u64 {
        let list = self
            .get_ok(&format!("/api/v1/namespaces/{ns}/pods?limit=1"))
            .await;
        super::sim::rv_of(&list)
    }
}
