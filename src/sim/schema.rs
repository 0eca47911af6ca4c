//! How the lists of the built-in types merge: the `patchStrategy` and
//! `patchMergeKey` struct tags of k8s.io/api (what strategic-merge patch
//! uses) and the `+listType` / `+listMapKey` markers (what managedFields'
//! field sets use), for the fields of the types the simulator serves.
//! Paths are dotted from the object's root, `[]` standing for "every
//! element of the list". A list not named here is atomic and replaced by a
//! patch, as upstream's lists without tags are.
//!
//! Sources: staging/src/k8s.io/api/core/v1/types.go (Pod, PodSpec,
//! Container, PodStatus, Node, NodeSpec, NodeStatus, Namespace) and
//! staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go (ObjectMeta,
//! OwnerReference), cross-checked against k8s-openapi's `DeepMerge`.

use super::resources::ResourceDef;

/// How a strategic-merge patch treats a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchStrategy {
    /// No tag: the patch's list replaces the object's.
    Replace,
    /// `patchStrategy:"merge"` on a list of scalars: a union.
    MergePrimitive,
    /// `patchStrategy:"merge" patchMergeKey:"key"`: elements merge by key.
    MergeByKey(&'static str),
}

/// How managedFields track a list (structured-merge-diff's list types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListType {
    /// One field: `+listType=atomic` (the default).
    Atomic,
    /// `+listType=set`: one field per value (`v:"a"`).
    Set,
    /// `+listType=map`: one field per element, keyed (`k:{"name":"a"}`);
    /// `atomic_items` for elements that are `+structType=atomic`.
    Map {
        keys: &'static [&'static str],
        atomic_items: bool,
    },
}

/// One list field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListField {
    pub path: &'static str,
    pub patch: PatchStrategy,
    pub list: ListType,
}

const fn keyed(path: &'static str, key: &'static str, keys: &'static [&'static str]) -> ListField {
    ListField {
        path,
        patch: PatchStrategy::MergeByKey(key),
        list: ListType::Map {
            keys,
            atomic_items: false,
        },
    }
}

const fn atomic(path: &'static str) -> ListField {
    ListField {
        path,
        patch: PatchStrategy::Replace,
        list: ListType::Atomic,
    }
}

const OBJECT_META: &[ListField] = &[
    ListField {
        path: "metadata.finalizers",
        patch: PatchStrategy::MergePrimitive,
        list: ListType::Set,
    },
    ListField {
        path: "metadata.ownerReferences",
        patch: PatchStrategy::MergeByKey("uid"),
        list: ListType::Map {
            keys: &["uid"],
            atomic_items: true,
        },
    },
];

/// The containers' lists, under each kind of container list of a PodSpec.
macro_rules! container_lists {
    ($c:literal) => {
        [
            keyed(
                concat!("spec.", $c, "[].ports"),
                "containerPort",
                &["containerPort", "protocol"],
            ),
            keyed(concat!("spec.", $c, "[].env"), "name", &["name"]),
            keyed(
                concat!("spec.", $c, "[].volumeMounts"),
                "mountPath",
                &["mountPath"],
            ),
            keyed(
                concat!("spec.", $c, "[].volumeDevices"),
                "devicePath",
                &["devicePath"],
            ),
            keyed(concat!("spec.", $c), "name", &["name"]),
        ]
    };
}

const POD_CONTAINERS: [ListField; 5] = container_lists!("containers");
const POD_INIT_CONTAINERS: [ListField; 5] = container_lists!("initContainers");
const POD_EPHEMERAL_CONTAINERS: [ListField; 5] = container_lists!("ephemeralContainers");

const POD: &[ListField] = &[
    keyed("spec.volumes", "name", &["name"]),
    keyed("spec.imagePullSecrets", "name", &["name"]),
    keyed("spec.hostAliases", "ip", &["ip"]),
    keyed(
        "spec.topologySpreadConstraints",
        "topologyKey",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    keyed("spec.resourceClaims", "name", &["name"]),
    keyed("spec.schedulingGates", "name", &["name"]),
    atomic("spec.tolerations"),
    atomic("spec.readinessGates"),
    keyed("status.conditions", "type", &["type"]),
    keyed("status.podIPs", "ip", &["ip"]),
    keyed("status.hostIPs", "ip", &["ip"]),
    keyed("status.resourceClaimStatuses", "name", &["name"]),
    atomic("status.containerStatuses"),
    atomic("status.initContainerStatuses"),
    atomic("status.ephemeralContainerStatuses"),
];

const NODE: &[ListField] = &[
    ListField {
        path: "spec.podCIDRs",
        patch: PatchStrategy::MergePrimitive,
        list: ListType::Set,
    },
    atomic("spec.taints"),
    keyed("status.conditions", "type", &["type"]),
    keyed("status.addresses", "type", &["type"]),
    atomic("status.images"),
    atomic("status.volumesInUse"),
    atomic("status.volumesAttached"),
];

const NAMESPACE: &[ListField] = &[
    atomic("spec.finalizers"),
    keyed("status.conditions", "type", &["type"]),
];

impl Schema {
    /// The list fields of a resource: a built-in kind's, or none for a
    /// custom resource (served from a CRD without patch strategies, and
    /// whose lists are atomic for managedFields).
    pub(crate) fn of(res: &ResourceDef) -> Schema {
        if res.is_custom() {
            return UNTYPED;
        }
        let specific: &[&'static [ListField]] = match res.kind {
            "Pod" => &[
                POD,
                &POD_CONTAINERS,
                &POD_INIT_CONTAINERS,
                &POD_EPHEMERAL_CONTAINERS,
            ],
            "Node" => &[NODE],
            "Namespace" => &[NAMESPACE],
            _ => &[],
        };
        Schema { specific }
    }
}

/// The list fields of one kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema {
    specific: &'static [&'static [ListField]],
}

impl Schema {
    /// The list at `path` (`[]` for list elements), if it has a strategy.
    pub fn list(&self, path: &str) -> Option<&'static ListField> {
        OBJECT_META
            .iter()
            .chain(self.specific.iter().flat_map(|t| t.iter()))
            .find(|f| f.path == path)
    }

    /// Its strategic-merge strategy (`Replace` when untagged).
    pub fn patch_strategy(&self, path: &str) -> PatchStrategy {
        self.list(path).map_or(PatchStrategy::Replace, |f| f.patch)
    }

    /// Its list type for field sets (`Atomic` when unmarked).
    pub fn list_type(&self, path: &str) -> ListType {
        self.list(path).map_or(ListType::Atomic, |f| f.list)
    }
}

/// The schema a custom resource without list markers has: every list
/// atomic.
const UNTYPED: Schema = Schema { specific: &[] };

/// `path` extended by a field name.
pub(crate) fn child(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// `path` extended into the elements of the list at `path`.
pub(crate) fn elements(path: &str) -> String {
    format!("{path}[]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::{by_plural, RESOURCES};

    fn of(plural: &str) -> Schema {
        Schema::of(&RESOURCES[by_plural(plural).unwrap()])
    }

    #[test]
    fn pod_lists_merge_by_their_upstream_keys() {
        let pod = of("pods");
        assert_eq!(
            pod.patch_strategy("spec.containers"),
            PatchStrategy::MergeByKey("name")
        );
        assert_eq!(
            pod.patch_strategy("spec.initContainers[].ports"),
            PatchStrategy::MergeByKey("containerPort")
        );
        assert_eq!(
            pod.list_type("spec.containers[].ports"),
            ListType::Map {
                keys: &["containerPort", "protocol"],
                atomic_items: false
            }
        );
        assert_eq!(
            pod.patch_strategy("spec.containers[].volumeMounts"),
            PatchStrategy::MergeByKey("mountPath")
        );
        assert_eq!(
            pod.patch_strategy("spec.tolerations"),
            PatchStrategy::Replace
        );
        assert_eq!(
            pod.patch_strategy("spec.containers[].args"),
            PatchStrategy::Replace
        );
        assert_eq!(
            pod.patch_strategy("metadata.finalizers"),
            PatchStrategy::MergePrimitive
        );
        assert_eq!(pod.list_type("status.containerStatuses"), ListType::Atomic);
        assert!(
            of("widgets").specific.is_empty(),
            "a custom resource has no typed lists"
        );
        let cm = of("configmaps");
        assert_eq!(
            cm.patch_strategy("metadata.ownerReferences"),
            PatchStrategy::MergeByKey("uid")
        );
        assert_eq!(child("", "spec"), "spec");
        assert_eq!(elements(&child("spec", "containers")), "spec.containers[]");
    }
}
