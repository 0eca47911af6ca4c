//! Table output (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`),
//! which kubectl asks for to print `get`: the columns and cells
//! kube-apiserver's table convertors compute, so `kubectl get pods` shows
//! READY, STATUS, RESTARTS and AGE as it does against a real cluster.
//!
//! Upstream sources followed (k8s.io/kubernetes v1.37):
//! - `pkg/printers/internalversion/printers.go`: the columns of pods, nodes,
//!   namespaces, secrets and configmaps, and how each cell is computed
//!   (`printPod`, `printNode`, ...). The server converts with `Wide: true`
//!   (`pkg/printers/storage/storage.go`), so priority-1 cells are included.
//! - `apiextensions-apiserver/pkg/registry/customresource/tableconvertor`:
//!   a custom resource's Name column plus its printer columns; a CRD that
//!   declares none gets `Age` (`serveDefaultColumnsIfEmpty`).
//! - `apiserver/pkg/endpoints/handlers/response.go` (`asTable`): each row
//!   carries the object as `PartialObjectMetadata` by default, whole with
//!   `includeObject=Object`, or not at all with `includeObject=None`; a watch
//!   sends the column definitions with its first event only
//!   (`watchEmbeddedEncoder.doEncode`).
//! - `apimachinery/pkg/util/duration.HumanDuration`: how ages read.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::resources::ResourceDef;
use super::status::ApiError;

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum IncludeObject {
    /// `None`: cells only.
    None,
    /// `Metadata` (the default): the object as `PartialObjectMetadata`.
    #[default]
    Metadata,
    /// `Object`: the whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter as the server does: absent
    /// or empty means `Metadata`, an unknown value is a 400 naming it.
    pub fn parse(value: Option<&str>) -> Result<IncludeObject, ApiError> {
        match value.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(ApiError::bad_request(format!(
                "unrecognized includeObject value: {other:?}"
            ))),
        }
    }
}

/// How one request wants its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableRequest {
    /// The Table's own `apiVersion`: `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`,
    /// as the Accept clause named it.
    pub api_version: &'static str,
    /// What each row carries.
    pub include: IncludeObject,
}

impl TableMeta {
    /// The metadata of a single object.
    pub fn of_object(object: &Value) -> TableMeta {
        TableMeta {
            resource_version: text(object, "/metadata/resourceVersion").to_string(),
            ..TableMeta::default()
        }
    }
}

/// The list or object metadata a table carries over from what it converts.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableMeta {
    /// `resourceVersion` of the list, or of the single object.
    pub resource_version: String,
    /// The list's `continue` token, if it has one.
    pub continue_token: Option<String>,
    /// The list's `remainingItemCount`, if it has one.
    pub remaining_item_count: Option<u64>,
}

/// A Table of `objects`; `headers` says whether it carries the column
/// definitions (a watch's events after the first do not).
pub(crate) fn table<'a>(
    res: &ResourceDef,
    objects: impl IntoIterator<Item = &'a Value>,
    meta: &TableMeta,
    request: &TableRequest,
    headers: bool,
    now: jiff::Timestamp,
) -> Value {
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|object| row(res, object, request, now))
        .collect();
    let mut metadata = Map::new();
    metadata.insert(
        "resourceVersion".into(),
        Value::String(meta.resource_version.clone()),
    );
    if let Some(token) = meta.continue_token.as_ref().filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), Value::String(token.clone()));
    }
    if let Some(n) = meta.remaining_item_count {
        metadata.insert("remainingItemCount".into(), json!(n));
    }
    json!({
        "kind": "Table",
        "apiVersion": request.api_version,
        "metadata": metadata,
        "columnDefinitions": if headers { columns(res) } else { Value::Null },
        "rows": rows,
    })
}

/// One object (a GET's or a write's answer, or a watch event's object) as a
/// Table, serialized into `out`.
pub(crate) fn write_object(
    res: &ResourceDef,
    object: &Value,
    request: &TableRequest,
    headers: bool,
    now: jiff::Timestamp,
    out: &mut Vec<u8>,
) {
    let doc = table(
        res,
        [object],
        &TableMeta::of_object(object),
        request,
        headers,
        now,
    );
    out.extend_from_slice(doc.to_string().as_bytes());
}

/// One column definition, with upstream's field names.
fn column(name: &str, kind: &str, format: &str, priority: u32, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "format": format,
        "description": description,
        "priority": priority,
    })
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATED_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The column definitions of a resource, in upstream's order.
fn columns(res: &ResourceDef) -> Value {
    let name = column("Name", "string", "name", 0, NAME_DOC);
    let age = column("Age", "string", "", 0, CREATED_DOC);
    let cols = match (res.is_custom(), res.kind) {
        (true, _) => vec![name, column("Age", "date", "", 0, CREATED_DOC)],
        (false, "Pod") => vec![
            name,
            column("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
            column("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
            column("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age,
            column("IP", "string", "", 1, "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            column("Node", "string", "", 1, "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"),
            column("Nominated Node", "string", "", 1, "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled."),
            column("Readiness Gates", "string", "", 1, "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates"),
        ],
        (false, "Node") => {
            let addresses = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
            vec![
                name,
                column("Status", "string", "", 0, "The status of the node"),
                column("Roles", "string", "", 0, "The roles of the node"),
                age,
                column("Version", "string", "", 0, "Kubelet Version reported by the node."),
                column("Internal-IP", "string", "", 1, addresses),
                column("External-IP", "string", "", 1, addresses),
                column("OS-Image", "string", "", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
                column("Kernel-Version", "string", "", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
                column("Container-Runtime", "string", "", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
            ]
        }
        (false, "Namespace") => vec![
            name,
            column("Status", "string", "", 0, "The status of the namespace"),
            age,
        ],
        (false, "Secret") => vec![
            name,
            column("Type", "string", "", 0, "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
            column("Data", "string", "", 0, "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"),
            age,
        ],
        (false, "Event") => vec![
            column("Last Seen", "string", "", 0, "The time at which the most recent occurrence of this event was recorded."),
            column("Type", "string", "", 0, "Type of this event (Normal, Warning), new types could be added in the future"),
            column("Reason", "string", "", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            column("Object", "string", "", 0, "The object that this event is about."),
            column("Subobject", "string", "", 1, "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object."),
            column("Source", "string", "", 1, "The component reporting this event. Should be a short machine understandable string."),
            column("Message", "string", "", 0, "A human-readable description of the status of this operation."),
            column("First Seen", "string", "", 1, "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
            column("Count", "string", "", 1, "The number of times this event has occurred."),
            column("Name", "string", "name", 1, NAME_DOC),
        ],
        (false, "ConfigMap") => vec![
            name,
            column("Data", "string", "", 0, "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process."),
            age,
        ],
        // rest.defaultTableConvertor, for a built-in type with no printer.
        (false, _) => vec![name, column("Created At", "date", "", 0, CREATED_DOC)],
    };
    Value::Array(cols)
}

/// One row: the cells, the conditions a finished pod carries, and the
/// object as the request asked for it.
fn row(res: &ResourceDef, object: &Value, request: &TableRequest, now: jiff::Timestamp) -> Value {
    let age = age(object.pointer("/metadata/creationTimestamp"), now);
    let name = text(object, "/metadata/name");
    let cells = match (res.is_custom(), res.kind) {
        (true, _) => vec![name.into(), age.into()],
        (false, "Pod") => return pod_row(object, request, now),
        (false, "Node") => node_cells(object, name, age),
        (false, "Namespace") => vec![
            name.into(),
            text(object, "/status/phase").into(),
            age.into(),
        ],
        (false, "Secret") => vec![
            name.into(),
            text(object, "/type").into(),
            json!(entries(object, "/data")),
            age.into(),
        ],
        (false, "Event") => event_cells(object, now),
        (false, "ConfigMap") => vec![
            name.into(),
            json!(entries(object, "/data") + entries(object, "/binaryData")),
            age.into(),
        ],
        (false, _) => vec![
            name.into(),
            object
                .pointer("/metadata/creationTimestamp")
                .cloned()
                .unwrap_or(Value::Null),
        ],
    };
    finish_row(cells, None, object, request)
}

/// `printEvent`, wide (the server's table has every column): times fall
/// back from the legacy fields to `eventTime` and `series`, and an event
/// with no count happened once.
fn event_cells(event: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let set = |pointer: &str| event.pointer(pointer).filter(|v| !v.is_null());
    let first = match set("/firstTimestamp") {
        Some(t) => age(Some(t), now),
        None => age(set("/eventTime"), now),
    };
    let mut last = match set("/lastTimestamp") {
        Some(t) => age(Some(t), now),
        None => first.clone(),
    };
    let mut count = event.pointer("/count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = set("/series") {
        last = age(series.get("lastObservedTime"), now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = text(event, "/involvedObject/kind").to_lowercase();
    let target = match text(event, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let or = |a: &'static str, b: &'static str| match text(event, a) {
        "" => text(event, b),
        v => v,
    };
    // The JSON names of ReportingController and ReportingInstance.
    let component = or("/source/component", "/reportingComponent");
    let source = match or("/source/host", "/reportingInstance") {
        "" => component.to_string(),
        instance => format!("{component}, {instance}"),
    };
    vec![
        last.into(),
        text(event, "/type").into(),
        text(event, "/reason").into(),
        target.into(),
        text(event, "/involvedObject/fieldPath").into(),
        source.into(),
        text(event, "/message").trim().into(),
        first.into(),
        json!(count),
        text(event, "/metadata/name").into(),
    ]
}

fn finish_row(
    cells: Vec<Value>,
    conditions: Option<Value>,
    object: &Value,
    request: &TableRequest,
) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(cells));
    if let Some(conditions) = conditions {
        row.insert("conditions".into(), conditions);
    }
    match request.include {
        IncludeObject::None => {}
        IncludeObject::Object => {
            row.insert("object".into(), object.clone());
        }
        IncludeObject::Metadata => {
            row.insert(
                "object".into(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": request.api_version,
                    "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            );
        }
    }
    Value::Object(row)
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn entries(object: &Value, pointer: &str) -> usize {
    object
        .pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}

fn items<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn timestamp(value: Option<&Value>) -> Option<jiff::Timestamp> {
    value.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// `translateTimestampSince`: `<unknown>` without a timestamp, else the
/// human duration since it.
fn age(created: Option<&Value>, now: jiff::Timestamp) -> String {
    match created {
        None | Some(Value::Null) => "<unknown>".into(),
        Some(value) => match timestamp(Some(value)) {
            Some(t) => since(t, now),
            // A CRD's date column: an unparsable timestamp reads <invalid>.
            None => "<invalid>".into(),
        },
    }
}

fn since(t: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let nanos = now.as_nanosecond() - t.as_nanosecond();
    if nanos < 0 {
        // Up to 2 s in the future is "now" (clock skew), more is invalid.
        return if nanos <= -2_000_000_000 {
            "<invalid>".into()
        } else {
            "0s".into()
        };
    }
    human_duration(Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

/// `duration.HumanDuration` for non-negative durations.
pub(crate) fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn node_cells(node: &Value, name: &str, age: String) -> Vec<Value> {
    let ready = items(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
    let mut status = vec![match ready {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None if k == "kubernetes.io/role" => v.as_str().filter(|v| !v.is_empty()),
            None => None,
        })
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let address = |kind: &str| {
        items(node, "/status/addresses")
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(kind))
            .and_then(|a| a.get("address").and_then(Value::as_str))
            .unwrap_or("<none>")
            .to_string()
    };
    let mut kernel = or(text(node, "/status/nodeInfo/kernelVersion"), "<unknown>");
    let arch = text(node, "/status/nodeInfo/architecture");
    if !arch.is_empty() {
        kernel = format!("{kernel} ({arch})");
    }
    vec![
        name.into(),
        status.join(",").into(),
        or(&roles.join(","), "<none>").into(),
        age.into(),
        text(node, "/status/nodeInfo/kubeletVersion").into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        or(text(node, "/status/nodeInfo/osImage"), "<unknown>").into(),
        kernel.into(),
        or(
            text(node, "/status/nodeInfo/containerRuntimeVersion"),
            "<unknown>",
        )
        .into(),
    ]
}

/// What `printPod` tallies over a pod's container statuses.
#[derive(Default)]
struct Restarts {
    count: u64,
    last: Option<jiff::Timestamp>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += status
            .get("restartCount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if let Some(t) = timestamp(status.pointer("/lastState/terminated/finishedAt")) {
            self.last = Some(self.last.map_or(t, |last| last.max(t)));
        }
    }
}

/// A terminated container's reason as printPod shows it: its reason, else
/// the signal, else the exit code.
fn terminated_reason(terminated: &Value) -> String {
    let signal = terminated
        .get("signal")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let exit_code = terminated
        .get("exitCode")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match text(terminated, "/reason") {
        "" if signal != 0 => format!("Signal:{signal}"),
        "" => format!("ExitCode:{exit_code}"),
        r => r.to_string(),
    }
}

/// `value`, or `fallback` when it is empty (the printers' `<none>` and
/// `<unknown>`).
fn or(value: &str, fallback: &str) -> String {
    if value.is_empty() { fallback } else { value }.to_string()
}

fn is_restartable_init(init: &Value, name: &str) -> bool {
    items(init, "/spec/initContainers").iter().any(|c| {
        c.get("name").and_then(Value::as_str) == Some(name)
            && c.get("restartPolicy").and_then(Value::as_str) == Some("Always")
    })
}

fn has_condition(pod: &Value, kind: &str, status: &str) -> bool {
    items(pod, "/status/conditions").iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some(kind)
            && c.get("status").and_then(Value::as_str) == Some(status)
    })
}

/// `printPod`: Ready, Status (the reason kubectl shows), Restarts, and the
/// wide cells.
fn pod_row(pod: &Value, request: &TableRequest, now: jiff::Timestamp) -> Value {
    let phase = text(pod, "/status/phase");
    let mut reason = match text(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if items(pod, "/status/conditions").iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("PodScheduled")
            && c.get("reason").and_then(Value::as_str) == Some("SchedulingGated")
    }) {
        reason = "SchedulingGated".into();
    }
    let init_specs = items(pod, "/spec/initContainers");
    let total = items(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"))
            .count();
    let mut ready = 0usize;
    let mut restarts = Restarts::default();
    let mut sidecar_restarts = Restarts::default();
    let mut initializing = false;
    let init_statuses = items(pod, "/status/initContainerStatuses");
    for (i, status) in init_statuses.iter().enumerate() {
        let name = text(status, "/name");
        let restartable = is_restartable_init(pod, name);
        restarts.add(status);
        if restartable {
            sidecar_restarts.add(status);
        }
        let terminated = status.pointer("/state/terminated");
        let exit_code = terminated
            .and_then(|t| t.get("exitCode"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let waiting_reason = text(status, "/state/waiting/reason");
        if terminated.is_some() && exit_code == 0 {
            continue;
        }
        if restartable && status.get("started").and_then(Value::as_bool) == Some(true) {
            if status.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            format!("Init:{}", terminated_reason(t))
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }
    if !initializing || has_condition(pod, "Initialized", "True") {
        restarts = sidecar_restarts;
        let mut has_running = false;
        let mut error_reason = String::new();
        for status in items(pod, "/status/containerStatuses").iter().rev() {
            restarts.add(status);
            let waiting = text(status, "/state/waiting/reason");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = status.pointer("/state/terminated") {
                reason = terminated_reason(t);
                if t.get("exitCode").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    error_reason = reason.clone();
                }
            } else if status.get("ready").and_then(Value::as_bool) == Some(true)
                && status.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" {
            if has_running && has_condition(pod, "Ready", "True") {
                reason = "Running".into();
            } else if !error_reason.is_empty() {
                reason = error_reason;
            } else if has_running {
                reason = "NotReady".into();
            }
        }
    }
    let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
    if deleting && text(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts_cell = match restarts.last {
        Some(last) if restarts.count != 0 => {
            format!("{} ({} ago)", restarts.count, since(last, now))
        }
        _ => restarts.count.to_string(),
    };
    let gates = items(pod, "/spec/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| has_condition(pod, text(g, "/conditionType"), "True"))
            .count();
        format!("{met}/{}", gates.len())
    };
    let cells = vec![
        text(pod, "/metadata/name").into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age(pod.pointer("/metadata/creationTimestamp"), now).into(),
        or(
            items(pod, "/status/podIPs")
                .first()
                .map_or("", |ip| text(ip, "/ip")),
            "<none>",
        )
        .into(),
        or(text(pod, "/spec/nodeName"), "<none>").into(),
        or(text(pod, "/status/nominatedNodeName"), "<none>").into(),
        gates_cell.into(),
    ];
    let conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    finish_row(cells, conditions, pod, request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::{by_plural, RESOURCES};

    fn res(plural: &str) -> &'static ResourceDef {
        &RESOURCES[by_plural(plural).unwrap()]
    }

    fn now() -> jiff::Timestamp {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn request(include: IncludeObject) -> TableRequest {
        TableRequest {
            api_version: "meta.k8s.io/v1",
            include,
        }
    }

    fn cells(plural: &str, object: &Value) -> Vec<Value> {
        let t = table(
            res(plural),
            [object],
            &TableMeta::default(),
            &request(IncludeObject::None),
            true,
            now(),
        );
        t["rows"][0]["cells"].as_array().unwrap().clone()
    }

    // duration_test.go's cases for HumanDuration.
    #[test]
    fn human_duration_matches_upstream() {
        for (secs, want) in [
            (1, "1s"),
            (70, "70s"),
            (190, "3m10s"),
            (70 * 60, "70m"),
            (24 * 3600, "24h"),
            (5 * 3600 + 10 * 60, "5h10m"),
            (4 * 3600, "4h"),
            (3 * 24 * 3600 + 3600, "3d1h"),
            (3 * 24 * 3600, "3d"),
            (30 * 24 * 3600, "30d"),
            (3 * 365 * 24 * 3600 + 10 * 24 * 3600, "3y10d"),
            (9 * 365 * 24 * 3600, "9y"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn ages_in_the_future_are_now_within_two_seconds_else_invalid() {
        let t = |s: &str| -> jiff::Timestamp { s.parse().unwrap() };
        assert_eq!(since(t("2026-12-01T12:00:01Z"), now()), "0s");
        assert_eq!(since(t("2026-12-01T12:00:05Z"), now()), "<invalid>");
        assert_eq!(age(None, now()), "<unknown>");
    }

    #[test]
    fn a_running_pod_reads_as_kubectl_prints_it() {
        let pod = json!({
            "metadata": {"name": "web-0", "creationTimestamp": "2026-12-01T11:55:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": "10.0.0.7"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"finishedAt": "2026-12-01T11:58:00Z"}}},
                    {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ]
            }
        });
        assert_eq!(
            cells("pods", &pod),
            vec![
                json!("web-0"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("2 (2m ago)"),
                json!("5m"),
                json!("10.0.0.7"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pod_status_follows_init_containers_deletion_and_completion() {
        let init = json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-12-01T11:59:00Z"},
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"running": {}}}
            ]}
        });
        assert_eq!(cells("pods", &init)[2], json!("Init:1/2"));

        let mut deleting = init.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-01T12:00:00Z");
        assert_eq!(cells("pods", &deleting)[2], json!("Terminating"));

        let done = json!({
            "metadata": {"name": "job"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ]}
        });
        let t = table(
            res("pods"),
            [&done],
            &TableMeta::default(),
            &request(IncludeObject::None),
            true,
            now(),
        );
        let row = &t["rows"][0];
        assert_eq!(row["cells"][2], json!("Completed"));
        assert_eq!(row["cells"][4], json!("<unknown>"));
        assert_eq!(row["conditions"][0]["reason"], json!("Succeeded"));
    }

    #[test]
    fn events_have_printevents_columns_legacy_and_new() {
        let names: Vec<Value> = columns(res("events"))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(
            names,
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
            .map(|n| json!(n))
        );
        // As the kubelet writes them: the legacy fields.
        let kubelet = json!({
            "metadata": {"name": "web-1.17f", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
            "reason": "Pulled", "message": "Container image pulled \n", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-001"},
            "firstTimestamp": "2026-12-01T11:50:00Z", "lastTimestamp": "2026-12-01T11:59:00Z",
            "count": 3,
        });
        assert_eq!(
            cells("events", &kubelet),
            [
                json!("60s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{web}"),
                json!("kubelet, node-001"),
                json!("Container image pulled"),
                json!("10m"),
                json!(3),
                json!("web-1.17f"),
            ]
        );
        // As events.k8s.io/v1 writers do: eventTime and a series, no count,
        // no legacy source, no involved name.
        let series = json!({
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Node"},
            "reason": "Rebooted", "type": "Warning",
            "eventTime": "2026-12-01T10:00:00.000000Z",
            "series": {"count": 5, "lastObservedTime": "2026-12-01T11:58:00.000000Z"},
            "reportingComponent": "node-controller",
        });
        assert_eq!(
            cells("events", &series),
            [
                json!("2m"),
                json!("Warning"),
                json!("Rebooted"),
                json!("node"),
                json!(""),
                json!("node-controller"),
                json!(""),
                json!("120m"),
                json!(5),
                json!("e2"),
            ]
        );
        let once =
            json!({"metadata": {"name": "e3"}, "involvedObject": {"kind": "Pod", "name": "p"}});
        let c = cells("events", &once);
        assert_eq!(
            (c[0].clone(), c[7].clone(), c[8].clone()),
            (json!("<unknown>"), json!("<unknown>"), json!(1))
        );
    }

    #[test]
    fn nodes_secrets_configmaps_and_namespaces_have_their_columns() {
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": "2026-11-30T12:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                "nodeInfo": {"kubeletVersion": "v1.37.2", "osImage": "Debian", "kernelVersion": "6.1.0", "architecture": "arm64", "containerRuntimeVersion": "containerd://2.0.0"}
            }
        });
        assert_eq!(
            cells("nodes", &node),
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,edge"),
                json!("24h"),
                json!("v1.37.2"),
                json!("192.168.1.2"),
                json!("<none>"),
                json!("Debian"),
                json!("6.1.0 (arm64)"),
                json!("containerd://2.0.0"),
            ]
        );
        let secret =
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "", "b": ""}});
        assert_eq!(
            cells("secrets", &secret),
            vec![json!("s"), json!("Opaque"), json!(2), json!("<unknown>")]
        );
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": ""}, "binaryData": {"b": ""}});
        assert_eq!(
            cells("configmaps", &cm),
            vec![json!("c"), json!(2), json!("<unknown>")]
        );
        let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
        assert_eq!(
            cells("namespaces", &ns),
            vec![json!("default"), json!("Active"), json!("<unknown>")]
        );
        let widget =
            json!({"metadata": {"name": "w", "creationTimestamp": "2026-12-01T11:59:30Z"}});
        assert_eq!(cells("widgets", &widget), vec![json!("w"), json!("30s")]);
    }

    #[test]
    fn rows_carry_the_object_as_asked_and_headers_only_when_asked() {
        let pod = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "resourceVersion": "7"}, "spec": {"containers": []}});
        let meta = TableMeta {
            resource_version: "9".into(),
            continue_token: Some("tok".into()),
            remaining_item_count: Some(3),
        };
        let with = |include, headers| {
            table(
                res("pods"),
                [&pod],
                &meta,
                &request(include),
                headers,
                now(),
            )
        };
        let t = with(IncludeObject::Metadata, true);
        assert_eq!(t["kind"], "Table");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "9", "continue": "tok", "remainingItemCount": 3})
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(t["columnDefinitions"][1]["name"], "Ready");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["resourceVersion"], "7");
        assert!(t["rows"][0]["object"].get("spec").is_none());
        let t = with(IncludeObject::Object, false);
        assert_eq!(t["columnDefinitions"], Value::Null);
        assert_eq!(t["rows"][0]["object"], pod);
        let t = with(IncludeObject::None, true);
        assert!(t["rows"][0].get("object").is_none());
    }

    #[test]
    fn include_object_is_parsed_as_the_server_does() {
        assert_eq!(IncludeObject::parse(None).unwrap(), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::parse(Some("")).unwrap(),
            IncludeObject::Metadata
        );
        assert_eq!(
            IncludeObject::parse(Some("Object")).unwrap(),
            IncludeObject::Object
        );
        assert_eq!(
            IncludeObject::parse(Some("None")).unwrap(),
            IncludeObject::None
        );
        let err = IncludeObject::parse(Some("Everything")).unwrap_err();
        assert!(format!("{err:?}").contains("Everything"), "{err:?}");
    }
}
