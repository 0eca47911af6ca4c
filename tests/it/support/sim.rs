//! Helpers shared by the simulator's test files: raw HTTP with reqwest and
//! a line reader for watch streams.

#![allow(dead_code)]

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use kube_persist::sim::{SimConfig, Simulator};
use serde_json::{json, Value};

/// Guards every wait in these tests against hanging; never a timing
/// assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// A simulator with `f` applied to the default config.
pub async fn sim(f: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut cfg = SimConfig::default();
    f(&mut cfg);
    Simulator::start(cfg).await.expect("simulator starts")
}

/// A plain HTTP client.
pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// GET returning status and JSON body.
pub async fn get(url: &str) -> (u16, Value) {
    get_as(url, "*/*").await
}

/// GET with an Accept header: status and JSON body.
pub async fn get_as(url: &str, accept: &str) -> (u16, Value) {
    let resp = http()
        .get(url)
        .header("Accept", accept)
        .send()
        .await
        .expect("request");
    let code = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {body:?}"));
    (code, v)
}

/// One request with a body (`content_type`, when given, as its
/// Content-Type): the status, and the answer as JSON, or as a JSON string
/// when it is not JSON (a refusal the test checks only by its status).
pub async fn send(
    method: reqwest::Method,
    url: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = http().request(method, url).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let resp = request.send().await.expect("request");
    let code = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (code, v)
}

/// GET that must succeed.
pub async fn get_ok(url: &str) -> Value {
    let (code, v) = get(url).await;
    assert_eq!(code, 200, "{url}: {v}");
    v
}

/// A pod with labels.
pub fn pod(ns: &str, name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })
}

/// Names of a list's items, `namespace/name`.
pub fn keys(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(key_of)
        .collect()
}

/// `namespace/name` of one object.
pub fn key_of(o: &Value) -> String {
    let m = &o["metadata"];
    match m["namespace"].as_str() {
        Some(ns) => format!("{ns}/{}", m["name"].as_str().unwrap_or("")),
        None => m["name"].as_str().unwrap_or("").to_string(),
    }
}

/// RV of an object or list as a number.
pub fn rv_of(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion in {o}"))
}

/// How a stream line ended up.
#[derive(Debug)]
pub enum Line {
    /// A complete line.
    Full(Vec<u8>),
    /// The connection broke; what arrived of the unfinished line.
    Cut(Vec<u8>),
}

/// Reads a watch response line by line.
pub struct WatchStream {
    pub status: u16,
    stream: Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>,
    buf: Vec<u8>,
    ended: bool,
}

impl WatchStream {
    /// Opens a watch; any status is accepted (see `status`).
    pub async fn open(url: &str) -> WatchStream {
        WatchStream::open_accepting(url, "application/json").await
    }

    /// Opens a watch with an Accept header.
    pub async fn open_accepting(url: &str, accept: &str) -> WatchStream {
        let resp = http()
            .get(url)
            .header("Accept", accept)
            .send()
            .await
            .expect("watch request");
        let status = resp.status().as_u16();
        WatchStream::of(status, resp.bytes_stream())
    }

    /// A watch answered with `status` whose body is `body` (from any
    /// client: the conformance cases read the real server through kube's).
    pub fn of<E: std::fmt::Display>(
        status: u16,
        body: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    ) -> WatchStream {
        WatchStream {
            status,
            stream: Box::pin(body.map(|chunk| chunk.map_err(|e| e.to_string()))),
            buf: Vec::new(),
            ended: false,
        }
    }

    /// The next line; `None` at a clean end of stream.
    pub async fn next_line(&mut self) -> Option<Line> {
        tokio::time::timeout(HANG_GUARD, self.read_line())
            .await
            .expect("watch stream hung")
    }

    async fn read_line(&mut self) -> Option<Line> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(Line::Full(line[..line.len() - 1].to_vec()));
            }
            if self.ended {
                return None;
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(_)) => {
                    self.ended = true;
                    return Some(Line::Cut(std::mem::take(&mut self.buf)));
                }
                None => {
                    self.ended = true;
                    if !self.buf.is_empty() {
                        return Some(Line::Cut(std::mem::take(&mut self.buf)));
                    }
                    return None;
                }
            }
        }
    }

    /// The next event, which must be a complete JSON line.
    pub async fn next_event(&mut self) -> Value {
        match self.next_line().await {
            Some(Line::Full(l)) => serde_json::from_slice(&l).unwrap_or_else(|e| {
                panic!("bad event line ({e}): {}", String::from_utf8_lossy(&l))
            }),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// The next event that is not a BOOKMARK.
    pub async fn next_change(&mut self) -> Value {
        loop {
            let ev = self.next_event().await;
            if ev["type"] != "BOOKMARK" {
                return ev;
            }
        }
    }

    /// Every remaining event until the stream ends cleanly.
    pub async fn rest(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(line) = self.next_line().await {
            match line {
                Line::Full(l) => out.push(serde_json::from_slice(&l).expect("event JSON")),
                Line::Cut(rest) => panic!("stream cut: {}", String::from_utf8_lossy(&rest)),
            }
        }
        out
    }
}

/// The simulator's pods watch cache, as its stats report it.
pub fn pods_cache(sim: &Simulator) -> kube_persist::sim::WatchCacheStats {
    sim.stats()
        .watch_cache
        .into_iter()
        .find(|c| c.resource == "pods")
        .expect("a pods watch cache")
}

/// Waits (bounded by the hang guard) until `cond` holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
