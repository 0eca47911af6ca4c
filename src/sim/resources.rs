//! The resource types the simulator serves, and the discovery documents
//! (`/api`, `/api/v1`, `/apis`, `/apis/{g}/{v}`) that describe them to
//! kubectl and kube's `Discovery`.

use serde_json::{json, Value};

use crate::builtin;

/// Group of the custom resource the simulator serves.
pub const CUSTOM_GROUP: &str = "example.kube-persist.dev";
/// Version of the custom resource.
pub const CUSTOM_VERSION: &str = "v1";

/// One resource type the simulator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Plural, as in URLs (`pods`).
    pub plural: &'static str,
    /// Kind (`Pod`).
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Fields a field selector may use besides `metadata.name` and
    /// `metadata.namespace` (as on a real API server, others are refused).
    pub selectable_fields: &'static [&'static str],
}

impl ResourceDef {
    /// A built-in resource, named as the crate's resource table names it.
    const fn builtin(
        group: &str,
        plural: &str,
        selectable_fields: &'static [&'static str],
    ) -> ResourceDef {
        let b = builtin::get(group, plural);
        ResourceDef {
            group: b.group,
            version: b.version,
            plural: b.plural,
            kind: b.kind,
            namespaced: b.namespaced,
            short_names: b.short,
            selectable_fields,
        }
    }

    /// `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether this is a custom resource (served from a CRD), which
    /// strategic-merge patch does not support.
    pub fn is_custom(&self) -> bool {
        self.group == CUSTOM_GROUP
    }

    /// The value a field selector compares for `field` of `object`: the
    /// field at that path, except a core/v1 Event's `source`, which is not
    /// one (pkg/registry/core/event/strategy.go, `ToSelectableFields`): it
    /// is `source.component`, or `reportingComponent` when that is empty.
    pub fn field_value(&self, object: &serde_json::Value, field: &str) -> Option<String> {
        let at = |path: &str| crate::selector::field_value(object, path);
        match (self.group, self.kind, field) {
            ("", "Event", "source") => at("source.component")
                .filter(|c| !c.is_empty())
                .or_else(|| at("reportingComponent")),
            _ => at(field),
        }
    }

    /// Whether a field selector may use `field` on this resource.
    pub fn selectable(&self, field: &str) -> bool {
        field == "metadata.name"
            || (field == "metadata.namespace" && self.namespaced)
            || self.selectable_fields.contains(&field)
    }

    /// The object key in list order: `namespace/name`, or `name` when
    /// cluster-scoped (the tail of the etcd key, which is what orders lists).
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{ns}/{name}"),
            _ => name.to_string(),
        }
    }

    fn discovery_entry(&self) -> Value {
        json!({
            "name": self.plural,
            "singularName": self.kind.to_ascii_lowercase(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": self.short_names,
        })
    }
}

/// Every resource the simulator serves, in a fixed order (the index of a
/// resource in this table identifies it inside the simulator).
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef::builtin(
        "",
        "pods",
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    ),
    ResourceDef::builtin("", "configmaps", &[]),
    ResourceDef::builtin("", "secrets", &["type"]),
    ResourceDef::builtin("", "namespaces", &["status.phase"]),
    ResourceDef::builtin("", "nodes", &["spec.unschedulable"]),
    ResourceDef::builtin(
        "",
        "events",
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    ),
    ResourceDef {
        group: CUSTOM_GROUP,
        version: CUSTOM_VERSION,
        plural: "widgets",
        kind: "Widget",
        namespaced: true,
        short_names: &["wd"],
        selectable_fields: &[],
    },
];

/// Index of a resource in [`RESOURCES`].
pub type ResourceId = usize;

/// Finds a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<ResourceId> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by plural alone (plurals are unique in this simulator).
pub fn by_plural(plural: &str) -> Option<ResourceId> {
    RESOURCES.iter().position(|r| r.plural == plural)
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-kube-persist-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

/// `/api/v1` or `/apis/{group}/{version}`; `None` for an unknown group.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let entries: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(ResourceDef::discovery_entry)
        .collect();
    if entries.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

/// `/apis`: every non-core group.
pub fn group_list() -> Value {
    let mut groups: Vec<(&str, &str)> = RESOURCES
        .iter()
        .filter(|r| !r.group.is_empty())
        .map(|r| (r.group, r.version))
        .collect();
    groups.dedup();
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_are_unique_and_findable() {
        for (i, r) in RESOURCES.iter().enumerate() {
            assert_eq!(by_plural(r.plural), Some(i));
            assert_eq!(find(r.group, r.version, r.plural), Some(i));
        }
        assert_eq!(find("", "v1", "widgets"), None);
    }

    #[test]
    fn keys_order_like_etcd() {
        let pods = &RESOURCES[by_plural("pods").unwrap()];
        assert_eq!(pods.key(Some("ns"), "a"), "ns/a");
        let nodes = &RESOURCES[by_plural("nodes").unwrap()];
        assert_eq!(nodes.key(None, "n1"), "n1");
        assert!(!nodes.selectable("metadata.namespace"));
        assert!(pods.selectable("spec.nodeName"));
        assert!(!pods.selectable("spec.bogus"));
    }

    #[test]
    fn events_select_by_their_source_as_kube_apiserver_does() {
        let events = &RESOURCES[by_plural("events").unwrap()];
        let legacy = json!({"source": {"component": "kubelet", "host": "n1"}, "involvedObject": {"name": "p"}});
        let new = json!({"source": {}, "reportingComponent": "kubelet"});
        assert_eq!(
            events.field_value(&legacy, "source").as_deref(),
            Some("kubelet")
        );
        assert_eq!(
            events.field_value(&new, "source").as_deref(),
            Some("kubelet")
        );
        assert_eq!(
            events.field_value(&new, "reportingComponent").as_deref(),
            Some("kubelet")
        );
        assert_eq!(events.field_value(&legacy, "reportingComponent"), None);
        assert_eq!(
            events
                .field_value(&legacy, "involvedObject.name")
                .as_deref(),
            Some("p")
        );
        let pods = &RESOURCES[by_plural("pods").unwrap()];
        assert_eq!(
            pods.field_value(&legacy, "source"),
            None,
            "an object, not a value"
        );
    }

    #[test]
    fn discovery_lists_every_resource() {
        let core = resource_list("", "v1").unwrap();
        assert_eq!(core["resources"].as_array().unwrap().len(), 6);
        let custom = resource_list(CUSTOM_GROUP, CUSTOM_VERSION).unwrap();
        assert_eq!(custom["resources"][0]["kind"], "Widget");
        assert!(resource_list("nope", "v1").is_none());
        assert_eq!(group_list()["groups"][0]["name"], CUSTOM_GROUP);
    }
}
