//! Shared by the store tests and benches: realistic Pod JSON and helpers.
#![allow(dead_code)]

use std::path::Path;

use kube_persist::store::{Batch, CollectionId, Delta, EngineKind, Store, StoreOptions};
use serde_json::{json, Value};

/// One test body, run once per storage engine: `engine_test! { fn name(engine) { ... } }`
/// defines a module `name` holding one `#[test]` per engine (`name::sled`,
/// `name::redb`), each calling the body with its engine.
#[macro_export]
macro_rules! engine_test {
    ($(#[$meta:meta])* fn $name:ident($engine:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($engine: kube_persist::store::EngineKind) $body

            #[test]
            fn sled() {
                body(kube_persist::store::EngineKind::Sled)
            }

            #[test]
            fn redb() {
                body(kube_persist::store::EngineKind::Redb)
            }
        }
    };
}

/// Store options that create a store on `engine`.
pub fn on(engine: EngineKind) -> StoreOptions {
    StoreOptions {
        engine: Some(engine),
        ..StoreOptions::default()
    }
}

/// Opens (creating it on `engine` if missing) the store at `path`.
pub fn open(engine: EngineKind, path: impl AsRef<Path>) -> Store {
    Store::open_with(path, on(engine)).unwrap()
}

/// The collection id of all pods, cluster-wide.
pub fn pods_id() -> CollectionId {
    CollectionId::of::<k8s_openapi::api::core::v1::Pod>()
}

/// The collection id of nodes (cluster-scoped).
pub fn nodes_id() -> CollectionId {
    CollectionId::of::<k8s_openapi::api::core::v1::Node>()
}

/// A small deterministic PRNG (splitmix64), so generated objects depend only on their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn hex(&mut self, len: usize) -> String {
        let mut s = String::new();
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(len);
        s
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A small pod: name, namespace, rv, labels.
pub fn pod(ns: &str, name: &str, rv: u64, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("uid-{ns}-{name}"),
            "resourceVersion": rv.to_string(),
            "labels": labels,
        },
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    })
}

/// A realistic Pod as an API server returns it (managedFields, status,
/// env, probes...), 2–8 KiB of JSON depending on the seed.
pub fn realistic_pod(ns: &str, name: &str, rv: u64, seed: u64) -> Value {
    let mut r = Rng::new(seed ^ 0xA5A5_5A5A);
    let apps = [
        "web", "api", "worker", "cache", "db", "gateway", "auth", "search",
    ];
    let app = r.pick(&apps);
    let hash = r.hex(10);
    let node = format!("node-{:03}", r.below(200));
    let containers = 1 + r.below(3) as usize;
    let env_count = r.below(24) as usize;
    let mut specs = Vec::new();
    let mut statuses = Vec::new();
    for c in 0..containers {
        let cname = if c == 0 {
            app.to_string()
        } else {
            format!("sidecar-{c}")
        };
        let env: Vec<Value> = (0..env_count)
            .map(|i| {
                if i % 4 == 3 {
                    json!({"name": format!("SECRET_{i}"), "valueFrom": {"secretKeyRef": {"name": format!("{app}-secrets"), "key": format!("key-{i}")}}})
                } else {
                    json!({"name": format!("{}_SETTING_{i}", app.to_uppercase()), "value": r.hex(8 + (i % 5) * 6)})
                }
            })
            .collect();
        specs.push(json!({
            "name": cname,
            "image": format!("registry.example.com/team/{app}:v1.{}.{}", r.below(30), r.below(10)),
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 8080 + c, "name": "http", "protocol": "TCP"}],
            "env": env,
            "resources": {"limits": {"cpu": "500m", "memory": format!("{}Mi", 128 << r.below(4))}, "requests": {"cpu": "100m", "memory": "64Mi"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080 + c, "scheme": "HTTP"}, "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080 + c, "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/config", "readOnly": true},
                {"name": format!("kube-api-access-{}", r.hex(5)), "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
            ],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"
        }));
        statuses.push(json!({
            "name": if c == 0 { app.to_string() } else { format!("sidecar-{c}") },
            "ready": true,
            "restartCount": r.below(3),
            "image": format!("registry.example.com/team/{app}:v1"),
            "imageID": format!("registry.example.com/team/{app}@sha256:{}", r.hex(64)),
            "containerID": format!("containerd://{}", r.hex(64)),
            "started": true,
            "state": {"running": {"startedAt": "2024-05-01T10:00:00Z"}}
        }));
    }
    let annotations = if r.below(3) == 0 {
        json!({"kubectl.kubernetes.io/restartedAt": "2024-05-01T09:59:00Z", "prometheus.io/scrape": "true", "prometheus.io/port": "9090", "checksum/config": r.hex(64)})
    } else {
        json!({"prometheus.io/scrape": "true"})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("{}-{}-{}-{}-{}", r.hex(8), r.hex(4), r.hex(4), r.hex(4), r.hex(12)),
            "resourceVersion": rv.to_string(),
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "generateName": format!("{app}-{hash}-"),
            "labels": {"app": app, "pod-template-hash": hash, "tier": r.pick(&["frontend", "backend", "data"]), "version": format!("v{}", r.below(4))},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-{hash}"), "uid": r.hex(32), "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}}, "f:ownerReferences": {".": {}}}, "f:spec": {"f:containers": {}, "f:dnsPolicy": {}, "f:restartPolicy": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2024-05-01T10:00:05Z", "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {}, "f:startTime": {}}}}
            ]
        },
        "spec": {
            "containers": specs,
            "volumes": [
                {"name": "config", "configMap": {"name": format!("{app}-config"), "defaultMode": 420}},
                {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}, {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": app,
            "serviceAccount": app,
            "nodeName": node,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-05-01T10:00:00Z"},
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-05-01T10:00:05Z"},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-05-01T10:00:05Z"},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-05-01T10:00:00Z"}
            ],
            "hostIP": format!("10.0.{}.{}", r.below(256), r.below(256)),
            "podIP": format!("10.244.{}.{}", r.below(256), r.below(256)),
            "podIPs": [{"ip": "10.244.0.1"}],
            "startTime": "2024-05-01T10:00:00Z",
            "containerStatuses": statuses,
            "qosClass": "Burstable"
        }
    })
}

/// A batch of upserts, with the given batch RV.
pub fn upserts(objects: Vec<Value>, rv: u64) -> Batch {
    Batch {
        deltas: objects.into_iter().map(Delta::Upsert).collect(),
        rv: Some(rv.to_string()),
    }
}

/// Stores one pod, `a/p` at resourceVersion 1, in the pods collection.
pub fn store_one_pod(store: &Store) {
    store
        .collection(&pods_id())
        .unwrap()
        .apply(upserts(vec![pod("a", "p", 1, &[])], 1))
        .unwrap();
}

/// Every file and directory under `dir` (itself included) with its bytes
/// and mode: what "nothing in the store changed" compares.
pub fn files(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        if p.is_dir() {
            out.insert(p.clone(), (Vec::new(), mode));
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            out.insert(p.clone(), (std::fs::read(&p).unwrap(), mode));
        }
    }
    out
}

/// Copies a store directory (when no process has it open).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Where each of `needles` shows up in the files below `dir`: in their raw
/// bytes, or inside any zstd frame found in them (what `zstd -dc` on a
/// carved frame would print). Empty when none is there.
pub fn disk_leaks(dir: &Path, needles: &[&str]) -> Vec<String> {
    const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    let mut paths = Vec::new();
    files(dir, &mut paths);
    let mut leaks = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        for needle in needles {
            if contains(&bytes, needle) {
                leaks.push(format!("{needle:?} in the raw bytes of {}", path.display()));
            }
        }
        for at in (0..bytes.len().saturating_sub(4)).filter(|&i| bytes[i..i + 4] == MAGIC) {
            // Bounded: a frame of ours is small; garbage after a stray magic
            // number only fails to decode.
            let mut out = Vec::new();
            let decoded = zstd::stream::read::Decoder::new(&bytes[at..]).and_then(|d| {
                use std::io::Read;
                d.take(16 << 20).read_to_end(&mut out)
            });
            if decoded.is_err() && out.is_empty() {
                continue;
            }
            for needle in needles {
                if contains(&out, needle) {
                    leaks.push(format!(
                        "{needle:?} in a zstd frame at {at} of {}",
                        path.display()
                    ));
                }
            }
        }
    }
    leaks
}
