//! The columns `list` prints per kind, after NAMESPACE and NAME — a subset
//! of kubectl's printers: Pods (READY, STATUS, RESTARTS, NODE), ConfigMaps and
//! Secrets (DATA), Namespaces and Nodes (STATUS); AGE for everything.

use jiff::Timestamp;
use serde_json::Value;

use super::age;

/// Column headers for `kind` after NAMESPACE/NAME.
pub fn headers(kind: &str, wide: bool) -> Vec<&'static str> {
    let mut h = match kind {
        "Pod" => vec!["READY", "STATUS", "RESTARTS", "NODE", "AGE"],
        "ConfigMap" => vec!["DATA", "AGE"],
        "Secret" => vec!["TYPE", "DATA", "AGE"],
        "Namespace" | "Node" => vec!["STATUS", "AGE"],
        _ => vec!["AGE"],
    };
    if wide {
        match kind {
            "Pod" => h.push("IP"),
            "Node" => h.push("VERSION"),
            _ => {}
        }
        h.push("RESOURCEVERSION");
    }
    h
}

/// The cells under [`headers`] for one object.
pub fn cells(kind: &str, wide: bool, object: &Value, now: Timestamp) -> Vec<String> {
    let s = |ptr: &str| str_at(object, ptr).unwrap_or("<none>").to_string();
    let age = age::since_str(now, str_at(object, "/metadata/creationTimestamp"));
    let mut c = match kind {
        "Pod" => {
            let (ready, total) = pod_ready(object);
            vec![
                format!("{ready}/{total}"),
                pod_status(object),
                pod_restarts(object).to_string(),
                s("/spec/nodeName"),
                age,
            ]
        }
        "ConfigMap" => vec![
            (count(object, "data") + count(object, "binaryData")).to_string(),
            age,
        ],
        "Secret" => vec![s("/type"), count(object, "data").to_string(), age],
        "Namespace" => vec![s("/status/phase"), age],
        "Node" => vec![node_status(object), age],
        _ => vec![age],
    };
    if wide {
        match kind {
            "Pod" => c.push(s("/status/podIP")),
            "Node" => c.push(s("/status/nodeInfo/kubeletVersion")),
            _ => {}
        }
        c.push(s("/metadata/resourceVersion"));
    }
    c
}

fn str_at<'a>(object: &'a Value, ptr: &str) -> Option<&'a str> {
    object.pointer(ptr).and_then(Value::as_str)
}

fn count(object: &Value, field: &str) -> usize {
    object
        .get(field)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn array<'a>(object: &'a Value, ptr: &str) -> &'a [Value] {
    object
        .pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn pod_ready(pod: &Value) -> (usize, usize) {
    let total = array(pod, "/spec/containers").len();
    let ready = array(pod, "/status/containerStatuses")
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    (ready, total)
}

fn pod_restarts(pod: &Value) -> u64 {
    array(pod, "/status/containerStatuses")
        .iter()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_u64))
        .sum()
}

/// kubectl's STATUS column: the phase, overridden by the pod's reason, an
/// init container still at work, or the first container that is waiting or
/// terminated; `Terminating` once deletion started.
fn pod_status(pod: &Value) -> String {
    let mut reason = str_at(pod, "/status/reason")
        .or_else(|| str_at(pod, "/status/phase"))
        .unwrap_or("Unknown")
        .to_string();
    let inits = array(pod, "/status/initContainerStatuses");
    let init_total = array(pod, "/spec/initContainers").len();
    for (i, c) in inits.iter().enumerate() {
        if let Some(t) = c.pointer("/state/terminated") {
            if t.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            reason = match str_at(t, "/reason") {
                Some(r) => format!("Init:{r}"),
                None => format!(
                    "Init:ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                ),
            };
        } else {
            reason = match str_at(c, "/state/waiting/reason") {
                Some(r) if r != "PodInitializing" => format!("Init:{r}"),
                _ => format!("Init:{i}/{init_total}"),
            };
        }
        return with_deletion(pod, reason);
    }
    let containers = array(pod, "/status/containerStatuses");
    let mut running = false;
    for c in containers.iter().rev() {
        if let Some(r) = str_at(c, "/state/waiting/reason") {
            reason = r.to_string();
        } else if let Some(t) = c.pointer("/state/terminated") {
            reason = match (
                str_at(t, "/reason"),
                t.get("signal").and_then(Value::as_i64),
            ) {
                (Some(r), _) => r.to_string(),
                (None, Some(sig)) => format!("Signal:{sig}"),
                (None, None) => format!(
                    "ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                ),
            };
        } else if c.pointer("/state/running").is_some()
            && c.get("ready").and_then(Value::as_bool) == Some(true)
        {
            running = true;
        }
    }
    if reason == "Completed" && running {
        reason = "Running".to_string();
    }
    with_deletion(pod, reason)
}

fn with_deletion(pod: &Value, reason: String) -> String {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".to_string()
    } else {
        reason
    }
}

fn node_status(node: &Value) -> String {
    let ready = array(node, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == Some("Ready"))
        .and_then(|c| str_at(c, "/status"));
    let mut status = match ready {
        Some("True") => "Ready".to_string(),
        _ => "NotReady".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-01-01T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn pod_columns() {
        let pod = json!({
            "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "9"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
                {"ready": true, "restartCount": 2, "state": {"running": {}}},
                {"ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        assert_eq!(
            headers("Pod", true),
            [
                "READY",
                "STATUS",
                "RESTARTS",
                "NODE",
                "AGE",
                "IP",
                "RESOURCEVERSION"
            ]
        );
        assert_eq!(
            cells("Pod", true, &pod, now()),
            ["1/2", "CrashLoopBackOff", "3", "n1", "60m", "10.0.0.1", "9"]
        );
    }

    #[test]
    fn pod_status_cases() {
        let pending = json!({"status": {"phase": "Pending"}});
        assert_eq!(pod_status(&pending), "Pending");
        let init = json!({"spec": {"initContainers": [{}, {}]}, "status": {"phase": "Pending",
            "initContainerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(pod_status(&init), "Init:0/2");
        let evicted = json!({"status": {"phase": "Failed", "reason": "Evicted"}});
        assert_eq!(pod_status(&evicted), "Evicted");
        let killed = json!({"status": {"phase": "Running", "containerStatuses": [{"state": {"terminated": {"signal": 9}}}]}});
        assert_eq!(pod_status(&killed), "Signal:9");
        let deleting = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status(&deleting), "Terminating");
    }

    #[test]
    fn other_kinds() {
        let cm = json!({"data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        assert_eq!(cells("ConfigMap", false, &cm, now()), ["3", "<unknown>"]);
        let secret = json!({"type": "Opaque", "data": {"a": "YQ=="}});
        assert_eq!(
            cells("Secret", false, &secret, now()),
            ["Opaque", "1", "<unknown>"]
        );
        let node = json!({"spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(
            cells("Node", false, &node, now()),
            ["Ready,SchedulingDisabled", "<unknown>"]
        );
        assert_eq!(
            cells("Widget", true, &json!({}), now()),
            ["<unknown>", "<none>"]
        );
    }
}
