//! `metadata.managedFields`, maintained on every create, update and patch
//! as kube-apiserver's field manager maintains them for `Update`
//! operations: each write's changed fields go to its manager's entry (one
//! per manager, operation, apiVersion and subresource), are taken from every
//! other entry, and removed fields leave every entry.
//!
//! Upstream: k8s.io/apimachinery/pkg/util/managedfields/internal
//! (`managedFieldsUpdater.Update`, `stripMetaManager`, `sortEncodedManagedFields`),
//! sigs.k8s.io/structured-merge-diff `merge.Updater.Update` and
//! `typed.Compare` (what counts as added, modified and removed, and why an
//! added map or list element is a member itself: the `.` in FieldsV1), and
//! k8s.io/apiserver/pkg/endpoints/handlers/create.go
//! (`managerOrUserAgent`, `prefixFromUserAgent`): without a `fieldManager`
//! the manager is the User-Agent up to its first `/`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::resources::ResourceDef;
use super::schema::{child, elements, ListType, Schema};
use super::status::ApiError;

/// Longest manager name (`FieldManagerMaxLength`).
pub const MAX_MANAGER_LEN: usize = 128;

/// Who makes a write, as managedFields record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldManager {
    /// `manager`; empty when the client sent neither a `fieldManager` nor a
    /// User-Agent.
    pub name: String,
    /// `subresource`, for a status update.
    pub subresource: Option<&'static str>,
}

impl FieldManager {
    /// A manager of the main resource.
    pub fn new(name: impl Into<String>) -> FieldManager {
        FieldManager {
            name: name.into(),
            subresource: None,
        }
    }

    /// A manager writing the status subresource.
    pub fn status(name: impl Into<String>) -> FieldManager {
        FieldManager {
            name: name.into(),
            subresource: Some("status"),
        }
    }

    /// The manager of a request: its `fieldManager` (validated as the
    /// apiserver does), else the User-Agent's prefix.
    pub fn of_request(
        field_manager: Option<&str>,
        user_agent: &str,
    ) -> Result<FieldManager, ApiError> {
        match field_manager.filter(|m| !m.is_empty()) {
            Some(m) if m.chars().count() > MAX_MANAGER_LEN => Err(ApiError::invalid(format!(
                "fieldManager: Too long: may not be more than {MAX_MANAGER_LEN} bytes"
            ))),
            Some(m) if m.chars().any(|c| !is_print(c)) => Err(ApiError::invalid(
                "fieldManager: Invalid value: invalid characters in fieldManager",
            )),
            Some(m) => Ok(FieldManager::new(m)),
            None => Ok(FieldManager::new(prefix_from_user_agent(user_agent))),
        }
    }
}

/// `prefixFromUserAgent`: the User-Agent up to its first `/`, printable
/// characters only, at most 128 bytes.
pub fn prefix_from_user_agent(user_agent: &str) -> String {
    let mut out = String::new();
    for c in user_agent.split('/').next().unwrap_or("").chars() {
        if !is_print(c) {
            continue;
        }
        if out.len() + c.len_utf8() > MAX_MANAGER_LEN {
            break;
        }
        out.push(c);
    }
    out
}

/// Go's `unicode.IsPrint`, near enough: no control characters.
fn is_print(c: char) -> bool {
    !c.is_control()
}

/// A set of fields in FieldsV1's shape: children by path element (`f:name`,
/// `k:{"name":"a"}`, `v:"a"`), and whether the node itself is a member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = true,
            Some((head, rest)) => self.children.entry(head.clone()).or_default().insert(rest),
        }
    }

    fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, v) in &other.children {
            self.children.entry(k.clone()).or_default().union(v);
        }
    }

    fn difference(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (k, v) in &other.children {
            if let Some(mine) = self.children.get_mut(k) {
                mine.difference(v);
                if mine.is_empty() {
                    self.children.remove(k);
                }
            }
        }
    }

    /// FieldsV1: a leaf member is `{}`; a member with children also has
    /// `".": {}`.
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, v) in &self.children {
            m.insert(k.clone(), v.to_json());
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(m) = v.as_object() else {
            return set;
        };
        if m.is_empty() {
            set.member = true;
        }
        for (k, v) in m {
            if k == "." {
                set.member = true;
            } else {
                set.children.insert(k.clone(), FieldSet::from_json(v));
            }
        }
        set
    }
}

/// What a write changed: `Added ∪ Modified` and `Removed` of
/// structured-merge-diff's comparison.
#[derive(Debug, Default)]
pub(crate) struct Diff {
    pub changed: FieldSet,
    pub removed: FieldSet,
}

/// Fields never tracked (`stripMetaManager`): the object's identity and
/// the server's bookkeeping. `metadata` itself is never a member either.
const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// Compares two versions of an object.
pub(crate) fn diff(live: &Value, new: &Value, schema: &Schema) -> Diff {
    let mut d = Diff::default();
    let mut walk = Walk {
        schema,
        diff: &mut d,
        fields: Vec::new(),
    };
    let (lm, rm) = (live.as_object(), new.as_object());
    let keys = union_keys(lm, rm);
    for k in keys {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        let (l, r) = (lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)));
        if l == r {
            continue;
        }
        walk.fields.push(format!("f:{k}"));
        if k == "metadata" {
            walk.metadata(l, r);
        } else {
            walk.node(l, r, k);
        }
        walk.fields.pop();
    }
    d
}

fn union_keys<'a>(
    l: Option<&'a Map<String, Value>>,
    r: Option<&'a Map<String, Value>>,
) -> Vec<&'a String> {
    let mut keys: Vec<&String> = l.into_iter().chain(r).flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    keys
}

struct Walk<'a> {
    schema: &'a Schema,
    diff: &'a mut Diff,
    /// The field path of the current node.
    fields: Vec<String>,
}

fn is_empty_map(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

impl Walk<'_> {
    fn changed(&mut self) {
        self.diff.changed.insert(&self.fields);
    }

    fn removed(&mut self) {
        self.diff.removed.insert(&self.fields);
    }

    fn metadata(&mut self, l: Option<&Value>, r: Option<&Value>) {
        if l == r {
            return;
        }
        let (lm, rm) = (l.and_then(Value::as_object), r.and_then(Value::as_object));
        for k in union_keys(lm, rm) {
            let (lv, rv) = (lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)));
            if STRIPPED_META.contains(&k.as_str()) || lv == rv {
                continue;
            }
            self.fields.push(format!("f:{k}"));
            self.node(lv, rv, &child("metadata", k));
            self.fields.pop();
        }
    }

    /// `compare` for one node at schema path `path`.
    fn node(&mut self, l: Option<&Value>, r: Option<&Value>, path: &str) {
        // Most of an object is unchanged by a write: an equal subtree has
        // nothing to report, and comparing it costs no allocation.
        if l == r {
            return;
        }
        let is_map = |v: Option<&Value>| matches!(v, Some(Value::Object(_)));
        let is_list = |v: Option<&Value>| matches!(v, Some(Value::Array(_)));
        let null_or_absent = |v: Option<&Value>| matches!(v, None | Some(Value::Null));
        if (is_map(l) || null_or_absent(l))
            && (is_map(r) || null_or_absent(r))
            && (is_map(l) || is_map(r))
        {
            if !(is_empty_map(l) && is_empty_map(r)) {
                let (lm, rm) = (l.and_then(Value::as_object), r.and_then(Value::as_object));
                for k in union_keys(lm, rm) {
                    let (lv, rv) = (lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)));
                    // Equal subtrees report nothing: skip them before
                    // allocating their paths.
                    if lv == rv {
                        continue;
                    }
                    self.fields.push(format!("f:{k}"));
                    self.node(lv, rv, &child(path, k));
                    self.fields.pop();
                }
            }
            self.presence(l, r);
            return;
        }
        if (is_list(l) || null_or_absent(l))
            && (is_list(r) || null_or_absent(r))
            && (is_list(l) || is_list(r))
        {
            match self.schema.list_type(path) {
                ListType::Atomic => self.leaf(l, r),
                list => {
                    if !(is_empty_map(l) && is_empty_map(r)) {
                        self.list_items(l, r, path, list);
                    }
                    self.presence(l, r);
                }
            }
            return;
        }
        self.leaf(l, r);
    }

    /// The tail of `compare`: a map or list that appeared is a member of
    /// the changed set itself; one that went, of the removed set.
    fn presence(&mut self, l: Option<&Value>, r: Option<&Value>) {
        match (l, r) {
            (None, Some(_)) => self.changed(),
            (Some(_), None) => self.removed(),
            _ => {}
        }
    }

    fn leaf(&mut self, l: Option<&Value>, r: Option<&Value>) {
        match (l, r) {
            (None, Some(_)) => self.changed(),
            (Some(_), None) => self.removed(),
            (Some(a), Some(b)) if a != b => self.changed(),
            _ => {}
        }
    }

    fn list_items(&mut self, l: Option<&Value>, r: Option<&Value>, path: &str, list: ListType) {
        let index = |v: Option<&Value>| -> Vec<(String, Value)> {
            v.and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|i| (element_name(i, list), i.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (li, ri) = (index(l), index(r));
        let mut names: Vec<&String> = li.iter().chain(&ri).map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        let element_path = elements(path);
        for name in names {
            let find = |items: &[(String, Value)]| {
                items
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            let (lv, rv) = (find(&li), find(&ri));
            self.fields.push(name.clone());
            match list {
                ListType::Map {
                    atomic_items: false,
                    ..
                } => {
                    self.node(lv.as_ref(), rv.as_ref(), &element_path);
                }
                _ => self.leaf(lv.as_ref(), rv.as_ref()),
            }
            self.fields.pop();
        }
    }
}

/// The path element of a list item: `k:{"key":value,...}` (its key fields,
/// by name) for a map-type list, `v:value` for a set.
fn element_name(item: &Value, list: ListType) -> String {
    match list {
        ListType::Map { keys, .. } => {
            let mut key = Map::new();
            for k in keys {
                if let Some(v) = item.get(*k) {
                    key.insert((*k).to_string(), v.clone());
                }
            }
            format!("k:{}", Value::Object(key))
        }
        _ => format!("v:{item}"),
    }
}

/// The object a create is compared with: the kind's zero value as Go
/// serializes it (an empty Pod has `"spec":{"containers":null}`, so its
/// containers are not "added", its lists' elements are).
pub(crate) fn zero_object(res: &ResourceDef) -> Value {
    match (res.group, res.kind) {
        ("", "Pod") => {
            json!({"metadata": {"creationTimestamp": null}, "spec": {"containers": null}, "status": {}})
        }
        ("", "Node" | "Namespace") => {
            json!({"metadata": {"creationTimestamp": null}, "spec": {}, "status": {}})
        }
        ("", _) => json!({"metadata": {"creationTimestamp": null}}),
        _ => json!({}),
    }
}

/// One managedFields entry, decoded.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    fields: FieldSet,
    /// Anything else the entry carried, kept as is.
    rest: Map<String, Value>,
}

impl Entry {
    fn decode(v: &Value) -> Option<Entry> {
        let m = v.as_object()?;
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        const KNOWN: [&str; 7] = [
            "manager",
            "operation",
            "apiVersion",
            "subresource",
            "time",
            "fieldsV1",
            "fieldsType",
        ];
        let rest = m
            .iter()
            .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation").unwrap_or_default(),
            api_version: text("apiVersion").unwrap_or_default(),
            subresource: text("subresource"),
            time: text("time"),
            fields: m
                .get("fieldsV1")
                .map(FieldSet::from_json)
                .unwrap_or_default(),
            rest,
        })
    }

    fn encode(self) -> Value {
        let mut m = self.rest;
        if !self.manager.is_empty() {
            m.insert("manager".into(), json!(self.manager));
        }
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_json());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }

    fn is(&self, who: &FieldManager, api_version: &str) -> bool {
        self.manager == who.name
            && self.operation == "Update"
            && self.api_version == api_version
            && self.subresource.as_deref() == who.subresource
    }
}

/// Records an `Update` by `who` that turns `live` into `new` (for a
/// create, `live` is [`zero_object`]) in `new`'s managedFields, at `time`.
/// The entries start from `new`'s when the writer sent some, else from
/// `live`'s.
pub(crate) fn record_update(
    res: &ResourceDef,
    live: &Value,
    new: &mut Value,
    who: &FieldManager,
    time: &str,
) {
    let schema = Schema::of(res);
    let d = diff(live, new, &schema);
    let entries_of = |v: &Value| {
        v.pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Entry::decode).collect::<Vec<_>>())
    };
    let mut entries: Vec<Entry> = entries_of(new)
        .or_else(|| entries_of(live))
        .unwrap_or_default();
    let api_version = res.api_version();
    for e in &mut entries {
        e.fields.difference(&d.changed);
        e.fields.difference(&d.removed);
    }
    let mut mine = d.changed;
    mine.difference(&d.removed);
    if !mine.is_empty() {
        match entries.iter_mut().find(|e| e.is(who, &api_version)) {
            Some(e) => {
                e.fields.union(&mine);
                e.time = Some(time.to_string());
            }
            None => entries.push(Entry {
                manager: who.name.clone(),
                operation: "Update".into(),
                api_version,
                subresource: who.subresource.map(str::to_string),
                time: Some(time.to_string()),
                fields: mine,
                rest: Map::new(),
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    // sortEncodedManagedFields: by operation, time, manager, apiVersion,
    // subresource.
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let encoded: Vec<Value> = entries.into_iter().map(Entry::encode).collect();
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        if encoded.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(encoded));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::{by_plural, RESOURCES};

    fn pods() -> &'static ResourceDef {
        &RESOURCES[by_plural("pods").unwrap()]
    }

    #[test]
    fn managers_come_from_field_manager_or_the_user_agent() {
        let m = |fm: Option<&str>, ua: &str| FieldManager::of_request(fm, ua).unwrap().name;
        assert_eq!(
            m(Some("kubectl-create"), "kubectl/v1.20.0 (linux/amd64)"),
            "kubectl-create"
        );
        assert_eq!(
            m(None, "kubectl/v1.20.0 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(
            m(None, "OpenAPI-Generator/31.0.0/python"),
            "OpenAPI-Generator"
        );
        assert_eq!(m(Some(""), ""), "");
        assert_eq!(prefix_from_user_agent(&"x".repeat(300)).len(), 128);
        assert_eq!(
            FieldManager::of_request(Some(&"y".repeat(129)), "")
                .unwrap_err()
                .code,
            422
        );
    }

    /// The entry a kube-controller-manager create leaves on a Deployment's
    /// pod, as a real cluster shows it: `.` on added maps and list
    /// elements, none on `metadata`, `spec` or `spec.containers` (present
    /// in the zero Pod), keyed ports by containerPort and protocol.
    #[test]
    fn a_create_owns_what_it_set_with_real_fieldsv1() {
        let mut pod = json!({
            "metadata": {"name": "p", "namespace": "n", "generateName": "web-", "labels": {"app": "web"},
                         "ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "web"}]},
            "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {}}],
                     "restartPolicy": "Always"},
        });
        record_update(
            pods(),
            &zero_object(pods()),
            &mut pod,
            &FieldManager::new("kube-controller-manager"),
            "2025-01-01T00:00:00Z",
        );
        let mf = &pod["metadata"]["managedFields"];
        assert_eq!(mf.as_array().unwrap().len(), 1);
        assert_eq!(mf[0]["manager"], "kube-controller-manager");
        assert_eq!(mf[0]["operation"], "Update");
        assert_eq!(mf[0]["apiVersion"], "v1");
        assert_eq!(mf[0]["fieldsType"], "FieldsV1");
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({
                "f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}},
                               "f:ownerReferences": {".": {}, "k:{\"uid\":\"u1\"}": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {},
                              "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}},
                              "f:resources": {}}},
                           "f:restartPolicy": {}},
            })
        );
    }

    #[test]
    fn updates_move_fields_between_managers_and_removals_drop_them() {
        let mut pod = json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        record_update(
            pods(),
            &zero_object(pods()),
            &mut pod,
            &FieldManager::new("creator"),
            "2025-01-01T00:00:00Z",
        );
        let live = pod.clone();
        pod["metadata"]["labels"]["a"] = json!("changed");
        pod["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("b");
        pod["status"] = json!({"phase": "Running"});
        record_update(
            pods(),
            &live,
            &mut pod,
            &FieldManager::status("kubelet"),
            "2025-01-01T00:01:00Z",
        );
        let mf = pod["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[0]["manager"], "creator");
        assert_eq!(
            mf[0]["fieldsV1"]["f:metadata"],
            json!({"f:labels": {}}),
            "lost a (taken) and b (removed); the map itself stays its own"
        );
        assert_eq!(mf[1]["manager"], "kubelet");
        assert_eq!(mf[1]["subresource"], "status");
        assert_eq!(mf[1]["time"], "2025-01-01T00:01:00Z");
        assert_eq!(
            mf[1]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:status": {".": {}, "f:phase": {}}})
        );
        // A write that changes nothing leaves the entries, times included.
        let before = pod.clone();
        record_update(
            pods(),
            &before,
            &mut pod,
            &FieldManager::new("creator"),
            "2025-01-01T00:09:00Z",
        );
        assert_eq!(pod, before);
    }

    #[test]
    fn field_sets_round_trip_through_fieldsv1() {
        let v =
            json!({"f:a": {".": {}, "f:b": {}}, "f:c": {}, "k:{\"x\":1}": {".": {}, "f:x": {}}});
        assert_eq!(FieldSet::from_json(&v).to_json(), v);
    }
}
