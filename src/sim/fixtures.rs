//! Realistic objects, deterministic by seed: Pods shaped like a
//! Deployment's (labels, a ReplicaSet owner, managedFields, status with
//! conditions and container statuses, 4–14 KiB of JSON with their
//! managedFields), plus the
//! namespaces, nodes and ConfigMaps around them.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use super::managed_fields::{self, FieldManager};
use super::resources::{self, CUSTOM_GROUP, CUSTOM_VERSION};
use super::state::{uid, State};
use super::{Error, Result, SimConfig};

const APPS: &[&str] = &[
    "web", "api", "checkout", "search", "ingest", "billing", "auth", "worker", "cache", "metrics",
];
const TIERS: &[&str] = &["frontend", "backend", "db", "cache", "batch"];
const ENVS: &[&str] = &["prod", "staging", "dev"];
const TEAMS: &[&str] = &["payments", "platform", "growth", "data"];
/// The alphabet of generated name suffixes (as the real server's).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// 2025-01-01T00:00:00Z: generated timestamps are spread after it.
const EPOCH: i64 = 1_735_689_600;

/// Name of the `i`th generated namespace.
pub fn namespace_name(i: usize) -> String {
    format!("ns-{i:03}")
}

/// Name of the `i`th generated node.
pub fn node_name(i: usize) -> String {
    format!("node-{i:03}")
}

/// The most nodes a generated cluster has.
const MAX_NODES: usize = 20;

/// How many nodes a generated cluster of `pods` pods has: one per 50 pods,
/// between 1 and 20. Generated pods run only on these.
pub fn node_count(pods: usize) -> usize {
    (pods / 50).clamp(1, MAX_NODES)
}

/// The InternalIP of the `i`th generated node.
fn node_ip(i: usize) -> String {
    format!("10.0.{}.{}", i / 250, i % 250 + 1)
}

fn rng_for(seed: u64, parts: &[&str], index: usize) -> StdRng {
    // FNV-1a over the parts: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    StdRng::seed_from_u64(h ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn random_suffix(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A 5-character suffix unique to `index` (below 27^5).
fn index_suffix(mut index: usize) -> String {
    let mut out = [b'b'; 5];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[index % ALPHABET.len()];
        index /= ALPHABET.len();
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn timestamp(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(super::clock::format_timestamp)
        .unwrap_or_else(|_| "2025-01-01T00:00:00Z".into())
}

/// A Namespace.
pub fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// A Node.
pub fn node(seed: u64, index: usize) -> Value {
    let mut rng = rng_for(seed, &["node"], index);
    let name = node_name(index);
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": uid(&mut rng),
            "creationTimestamp": timestamp(EPOCH),
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": format!("zone-{}", index % 3),
            },
        },
        "spec": {"podCIDR": format!("10.244.{}.0/24", index % 256)},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "7800m", "memory": "31Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": timestamp(EPOCH), "lastTransitionTime": timestamp(EPOCH)}],
            "addresses": [{"type": "InternalIP", "address": node_ip(index)}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12", "architecture": "amd64",
                         "containerRuntimeVersion": "containerd://1.7.0", "kernelVersion": "6.1.0",
                         "operatingSystem": "linux", "machineID": "", "systemUUID": "", "bootID": "",
                         "kubeProxyVersion": "v1.33.0"},
        },
    })
}

/// A ConfigMap with a few keys of config text.
pub fn configmap(seed: u64, namespace: &str, index: usize) -> Value {
    let mut rng = rng_for(seed, &["cm", namespace], index);
    let app = pick(&mut rng, APPS);
    let mut data = Map::new();
    for k in 0..rng.random_range(1..5) {
        let lines: Vec<String> = (0..rng.random_range(2..20))
            .map(|l| format!("{app}.setting{l} = {}", rng.random_range(0..10_000)))
            .collect();
        data.insert(format!("config-{k}.properties"), json!(lines.join("\n")));
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{app}-config-{}", index_suffix(index)),
            "namespace": namespace,
            "uid": uid(&mut rng),
            "creationTimestamp": timestamp(EPOCH + rng.random_range(0..86_400 * 90)),
            "labels": {"app": app},
        },
        "data": data,
    })
}

/// A Widget, the simulator's custom resource.
pub fn widget(namespace: &str, name: &str, size: u32) -> Value {
    json!({
        "apiVersion": format!("{CUSTOM_GROUP}/{CUSTOM_VERSION}"),
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"size": size},
    })
}

/// A realistic Pod of a Deployment, deterministic in `(seed, namespace,
/// index, nodes)`; `index` makes the name unique, and the pod runs on one
/// of the first `nodes` generated nodes (see [`node_count`]). Between 4
/// and 14 KiB of JSON, managedFields included (a third to a half of a real
/// pod's bytes).
///
/// Its status is the one its phase has on a real cluster: most pods run
/// with every container ready; some are Pending while their images are
/// pulled (the sandbox and its IP are up, no container is); a few were evicted (Failed,
/// reason Evicted, containers terminated), the only way a pod of a
/// Deployment, whose restartPolicy is Always, ends.
pub fn pod(seed: u64, namespace: &str, index: usize, nodes: usize) -> Value {
    let mut rng = rng_for(seed, &["pod", namespace], index);
    let app = pick(&mut rng, APPS);
    // Pods of one app in one namespace share their ReplicaSet.
    let mut rs_rng = rng_for(seed, &["rs", namespace, app], 0);
    let template_hash = random_suffix(&mut rs_rng, 10);
    let rs_uid = uid(&mut rs_rng);
    let rs_name = format!("{app}-{template_hash}");
    let name = format!("{rs_name}-{}", index_suffix(index));
    let tier = pick(&mut rng, TIERS);
    let created = EPOCH + rng.random_range(0..86_400 * 90);
    let started = created + rng.random_range(1..30);
    let node_index = rng.random_range(0..nodes.clamp(1, MAX_NODES));
    let node = node_name(node_index);
    // Inside the node's podCIDR, as the node IPAM controller assigns it.
    let pod_ip = format!("10.244.{}.{}", node_index % 256, rng.random_range(2..255));
    let phase = match rng.random_range(0..100) {
        0..=89 => Phase::Running,
        90..=95 => Phase::Pending,
        _ => Phase::Evicted,
    };
    let n_containers = match rng.random_range(0..100) {
        0..=54 => 1,
        55..=84 => 2,
        _ => 3,
    };
    let mut containers = Vec::new();
    let mut statuses = Vec::new();
    for c in 0..n_containers {
        let cname = if c == 0 {
            app.to_string()
        } else {
            format!("sidecar-{c}")
        };
        let image = format!(
            "registry.example.com/{app}/{cname}:1.{}.{}",
            rng.random_range(0..40),
            rng.random_range(0..10)
        );
        let env: Vec<Value> = (0..rng.random_range(0..if c == 0 { 12 } else { 4 }))
            .map(|i| {
                let len = rng.random_range(4..40);
                json!({"name": format!("{}_SETTING_{i}", app.to_uppercase()), "value": random_suffix(&mut rng, len)})
            })
            .collect();
        containers.push(json!({
            "name": cname,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": 8080 + c, "protocol": "TCP"}],
            "env": env,
            "resources": {
                "requests": {"cpu": format!("{}m", rng.random_range(50..1000)), "memory": format!("{}Mi", rng.random_range(64..2048))},
                "limits": {"memory": format!("{}Mi", rng.random_range(2048..4096))},
            },
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080 + c, "scheme": "HTTP"},
                              "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1,
                              "successThreshold": 1, "failureThreshold": 3},
            "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }));
        let image_id = format!("{image}@sha256:{}", random_suffix(&mut rng, 32));
        let container_id = format!("containerd://{}", random_suffix(&mut rng, 32));
        let restarts = rng.random_range(0..3);
        statuses.push(match phase {
            Phase::Running => json!({
                "name": cname, "image": image, "imageID": image_id, "containerID": container_id,
                "ready": true, "started": true, "restartCount": restarts,
                "state": {"running": {"startedAt": timestamp(started + 2)}},
            }),
            // The kubelet reports a container it is still creating with no
            // image or container ID.
            Phase::Pending => json!({
                "name": cname, "image": image, "imageID": "",
                "ready": false, "started": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            }),
            Phase::Evicted => json!({
                "name": cname, "image": image, "imageID": image_id, "containerID": container_id,
                "ready": false, "started": false, "restartCount": restarts,
                "state": {"terminated": {"exitCode": 137, "reason": "Error",
                    "startedAt": timestamp(started + 2), "finishedAt": timestamp(started + 3600),
                    "containerID": container_id}},
            }),
        });
    }
    let mut annotations = Map::new();
    annotations.insert(
        "kubectl.kubernetes.io/restartedAt".into(),
        json!(timestamp(created)),
    );
    if rng.random_bool(0.2) {
        let len = rng.random_range(200..900);
        annotations.insert(
            "example.com/build-info".into(),
            json!(random_suffix(&mut rng, len)),
        );
    }
    let unready: Vec<&str> = statuses.iter().filter_map(|c| c["name"].as_str()).collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": timestamp(started)});
    let not = |t: &str, reason: &str, message: Option<String>| {
        let mut c = json!({"type": t, "status": "False", "lastProbeTime": null, "lastTransitionTime": timestamp(started)});
        if !reason.is_empty() {
            c["reason"] = json!(reason);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    };
    let not_ready = format!("containers with unready status: [{}]", unready.join(" "));
    let conditions = match phase {
        Phase::Running => vec![
            cond("PodReadyToStartContainers"),
            cond("Initialized"),
            cond("Ready"),
            cond("ContainersReady"),
            cond("PodScheduled"),
        ],
        Phase::Pending => vec![
            cond("PodReadyToStartContainers"),
            cond("Initialized"),
            not("Ready", "ContainersNotReady", Some(not_ready.clone())),
            not("ContainersReady", "ContainersNotReady", Some(not_ready)),
            cond("PodScheduled"),
        ],
        Phase::Evicted => vec![
            {
                let mut c = cond("DisruptionTarget");
                c["reason"] = json!("TerminationByKubelet");
                c["message"] = json!(EVICTION_MESSAGE);
                c
            },
            not("PodReadyToStartContainers", "", None),
            cond("Initialized"),
            not("Ready", "PodFailed", None),
            not("ContainersReady", "PodFailed", None),
            cond("PodScheduled"),
        ],
    };
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": format!("{rs_name}-"),
            "namespace": namespace,
            "uid": uid(&mut rng),
            "creationTimestamp": timestamp(created),
            "labels": {
                "app": app,
                "pod-template-hash": template_hash,
                "tier": tier,
                "env": pick(&mut rng, ENVS),
                "team": pick(&mut rng, TEAMS),
                "version": format!("v{}", rng.random_range(1..6)),
            },
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "containers": containers,
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]}}],
            "nodeName": node,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30,
            "enableServiceLinks": true,
            "priority": 0,
            "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
        "status": {
            "phase": phase.name(),
            "conditions": conditions,
            "hostIP": node_ip(node_index),
            "hostIPs": [{"ip": node_ip(node_index)}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": timestamp(started),
            "containerStatuses": statuses,
            "qosClass": "Burstable",
        },
    });
    if phase == Phase::Evicted {
        pod["status"]["reason"] = json!("Evicted");
        pod["status"]["message"] = json!(EVICTION_MESSAGE);
    }
    with_managed_fields(&mut pod, &timestamp(created), &timestamp(started));
    pod
}

/// What a generated pod is doing; see [`pod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Pending,
    Evicted,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Running => "Running",
            Phase::Pending => "Pending",
            Phase::Evicted => "Failed",
        }
    }
}

/// The kubelet's message on a pod it evicted under disk pressure.
const EVICTION_MESSAGE: &str =
    "The node was low on resource: ephemeral-storage. Threshold quantity: 2Gi, available: 1536Mi. ";

/// Gives a pod the managedFields of its history on a real cluster: a
/// kube-controller-manager create (everything but the status and the node,
/// which the scheduler's binding sets without an entry), then the kubelet's
/// update of the status subresource.
fn with_managed_fields(pod: &mut Value, created: &str, started: &str) {
    let Some(r) = resources::by_plural("pods") else {
        return;
    };
    let res = &resources::RESOURCES[r];
    let mut new = pod.clone();
    let status = new.as_object_mut().and_then(|m| m.remove("status"));
    let node = new["spec"]
        .as_object_mut()
        .and_then(|m| m.remove("nodeName"));
    managed_fields::record_update(
        res,
        &managed_fields::zero_object(res),
        &mut new,
        &FieldManager::new("kube-controller-manager"),
        created,
    );
    if let Some(node) = node {
        new["spec"]["nodeName"] = node;
    }
    let bound = new.clone();
    if let Some(status) = status {
        new["status"] = status;
    }
    managed_fields::record_update(
        res,
        &bound,
        &mut new,
        &FieldManager::status("kubelet"),
        started,
    );
    *pod = new;
}

/// Fills a fresh state with the configured objects; returns the index the
/// next generated pod gets.
pub(crate) fn populate(state: &mut State, config: &SimConfig) -> Result<u64> {
    let id = |plural: &str| {
        resources::by_plural(plural)
            .ok_or_else(|| Error::Config(format!("resource {plural} missing from the registry")))
    };
    let (ns_r, node_r, pod_r, cm_r) = (
        id("namespaces")?,
        id("nodes")?,
        id("pods")?,
        id("configmaps")?,
    );
    let namespaces: Vec<String> = (0..config.namespaces.max(1)).map(namespace_name).collect();
    let mut create = |r, v| {
        state
            .create(r, None, v)
            .map(|_| ())
            .map_err(Error::Rejected)
    };
    create(ns_r, namespace("default"))?;
    for ns in &namespaces {
        create(ns_r, namespace(ns))?;
    }
    let nodes = node_count(config.pods);
    for i in 0..nodes {
        create(node_r, node(config.seed, i))?;
    }
    for i in 0..config.pods {
        create(
            pod_r,
            pod(config.seed, &namespaces[i % namespaces.len()], i, nodes),
        )?;
    }
    for i in 0..config.configmaps {
        create(
            cm_r,
            configmap(config.seed, &namespaces[i % namespaces.len()], i),
        )?;
    }
    Ok(config.pods as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_deterministic_and_sized_like_real_ones() {
        assert_eq!(pod(7, "a", 3, 20), pod(7, "a", 3, 20));
        assert_ne!(pod(7, "a", 3, 20), pod(8, "a", 3, 20));
        let mut sizes = Vec::new();
        for i in 0..300 {
            let p = pod(1, "ns-000", i, 20);
            let len = serde_json::to_vec(&p).unwrap().len();
            assert!((4096..=14336).contains(&len), "pod {i} is {len} bytes");
            sizes.push(len);
            assert!(p["metadata"]["ownerReferences"][0]["uid"].is_string());
            let mf = p["metadata"]["managedFields"].as_array().unwrap();
            assert_eq!(mf.len(), 2);
            assert_eq!(mf[0]["manager"], "kube-controller-manager");
            assert!(mf[0]["fieldsV1"]["f:spec"]["f:containers"].is_object());
            assert!(mf[0]["fieldsV1"].get("f:status").is_none());
            assert_eq!(mf[1]["manager"], "kubelet");
            assert_eq!(mf[1]["subresource"], "status");
            assert!(
                mf[1]["fieldsV1"]["f:status"]["f:conditions"]["k:{\"type\":\"Ready\"}"].is_object()
            );
        }
        sizes.sort();
        eprintln!("pod sizes: min {} max {}", sizes[0], sizes[sizes.len() - 1]);
        assert!(
            sizes[sizes.len() - 1] - sizes[0] > 2048,
            "sizes vary: {sizes:?}"
        );
    }

    #[test]
    fn pods_run_on_the_nodes_that_exist() {
        for pods in [1, 120, 5_000] {
            let nodes = node_count(pods);
            let names: std::collections::HashMap<String, Value> =
                (0..nodes).map(|i| (node_name(i), node(1, i))).collect();
            let mut used = std::collections::HashSet::new();
            for i in 0..200 {
                let p = pod(1, "ns-000", i, nodes);
                let on = p["spec"]["nodeName"].as_str().unwrap();
                let n = names
                    .get(on)
                    .unwrap_or_else(|| panic!("{on} of {nodes} nodes"));
                used.insert(on.to_string());
                assert_eq!(
                    p["status"]["hostIP"],
                    n["status"]["addresses"][0]["address"]
                );
                let cidr = n["spec"]["podCIDR"].as_str().unwrap();
                let ip = p["status"]["podIP"].as_str().unwrap();
                assert!(
                    ip.starts_with(cidr.trim_end_matches("0/24")),
                    "{ip} outside {cidr}"
                );
            }
            assert_eq!(used.len(), nodes, "200 pods spread over all {nodes} nodes");
        }
    }

    #[test]
    fn a_pods_status_agrees_with_its_phase() {
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..1_000 {
            let p = pod(3, "ns-001", i, 20);
            let status = &p["status"];
            let phase = status["phase"].as_str().unwrap();
            *seen.entry(phase.to_string()).or_insert(0) += 1;
            let containers = status["containerStatuses"].as_array().unwrap();
            let condition = |t: &str| {
                status["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["type"] == t)
                    .map(|c| c["status"].as_str().unwrap().to_string())
            };
            let ready = containers.iter().all(|c| c["ready"] == true);
            let none_ready = containers.iter().all(|c| c["ready"] == false);
            match phase {
                "Running" => {
                    assert!(ready, "{i}: {status}");
                    assert_eq!(condition("Ready").as_deref(), Some("True"));
                    assert!(containers.iter().all(|c| c["state"]["running"].is_object()));
                }
                "Pending" => {
                    assert!(none_ready, "{i}: {status}");
                    assert_eq!(condition("Ready").as_deref(), Some("False"));
                    assert!(containers
                        .iter()
                        .all(|c| c["state"]["waiting"]["reason"] == "ContainerCreating"));
                }
                "Failed" => {
                    assert!(none_ready, "{i}: {status}");
                    assert_eq!(status["reason"], "Evicted");
                    assert_eq!(condition("Ready").as_deref(), Some("False"));
                    assert_eq!(condition("DisruptionTarget").as_deref(), Some("True"));
                    assert!(containers
                        .iter()
                        .all(|c| c["state"]["terminated"].is_object()));
                }
                other => panic!("{i}: a Deployment's pod is never {other}"),
            }
            if phase != "Failed" {
                assert!(status.get("reason").is_none(), "{i}: {status}");
            }
        }
        assert_eq!(seen.len(), 3, "every phase is generated: {seen:?}");
    }

    #[test]
    fn index_suffixes_are_unique() {
        let all: std::collections::HashSet<String> = (0..100_000).map(index_suffix).collect();
        assert_eq!(all.len(), 100_000);
    }
}
