//! The built-in resources kubectl knows: one table for the informer's
//! name resolution, the offline commands and the simulator.
//!
//! Group, version, plural, kind and scope come from k8s-openapi, so they
//! cannot drift from the API; only the short names (which k8s-openapi does
//! not carry) are written here, as kubectl's discovery reports them.

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps,
    autoscaling::v2 as autoscaling, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, node::v1 as node, policy::v1 as policy,
    rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use k8s_openapi::Resource;

/// A resource's names and scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Builtin {
    /// API group ("" for core).
    pub(crate) group: &'static str,
    /// The version k8s-openapi models (the one current servers prefer).
    pub(crate) version: &'static str,
    /// Plural name, as in URLs.
    pub(crate) plural: &'static str,
    /// Kind.
    pub(crate) kind: &'static str,
    /// Whether objects live in a namespace.
    pub(crate) namespaced: bool,
    /// kubectl short names.
    pub(crate) short: &'static [&'static str],
}

impl Builtin {
    /// `v1` for core, `group/version` otherwise.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether `name` is this resource's plural, singular, kind or one of
    /// its short names, compared as kubectl does, ignoring case.
    fn is_named(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.plural)
            || name.eq_ignore_ascii_case(self.kind)
            || self.short.iter().any(|s| name.eq_ignore_ascii_case(s))
    }
}

/// Whether a k8s-openapi scope type is namespaced, as a constant the table
/// can use.
trait Scope {
    const NAMESPACED: bool;
}

impl Scope for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scope for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

macro_rules! builtins {
    ($($ty:ty => [$($short:literal),*];)*) => {
        /// Every built-in resource, core first: where two share a name
        /// (`events`, `ev`), the first one is the one kubectl picks.
        pub(crate) const BUILTINS: &[Builtin] = &[$(Builtin {
            group: <$ty as Resource>::GROUP,
            version: <$ty as Resource>::VERSION,
            plural: <$ty as Resource>::URL_PATH_SEGMENT,
            kind: <$ty as Resource>::KIND,
            namespaced: <<$ty as Resource>::Scope as Scope>::NAMESPACED,
            short: &[$($short),*],
        }),*];
    };
}

builtins! {
    core::ComponentStatus => ["cs"];
    core::ConfigMap => ["cm"];
    core::Endpoints => ["ep"];
    core::Event => ["ev"];
    core::LimitRange => ["limits"];
    core::Namespace => ["ns"];
    core::Node => ["no"];
    core::PersistentVolumeClaim => ["pvc"];
    core::PersistentVolume => ["pv"];
    core::Pod => ["po"];
    core::PodTemplate => [];
    core::ReplicationController => ["rc"];
    core::ResourceQuota => ["quota"];
    core::Secret => [];
    core::ServiceAccount => ["sa"];
    core::Service => ["svc"];
    admissionregistration::MutatingWebhookConfiguration => [];
    admissionregistration::ValidatingWebhookConfiguration => [];
    apiextensions::CustomResourceDefinition => ["crd", "crds"];
    apiregistration::APIService => [];
    apps::ControllerRevision => [];
    apps::DaemonSet => ["ds"];
    apps::Deployment => ["deploy"];
    apps::ReplicaSet => ["rs"];
    apps::StatefulSet => ["sts"];
    autoscaling::HorizontalPodAutoscaler => ["hpa"];
    batch::CronJob => ["cj"];
    batch::Job => [];
    certificates::CertificateSigningRequest => ["csr"];
    coordination::Lease => [];
    discovery::EndpointSlice => [];
    events::Event => ["ev"];
    networking::IngressClass => [];
    networking::Ingress => ["ing"];
    networking::NetworkPolicy => ["netpol"];
    node::RuntimeClass => [];
    policy::PodDisruptionBudget => ["pdb"];
    rbac::ClusterRoleBinding => [];
    rbac::ClusterRole => [];
    rbac::RoleBinding => [];
    rbac::Role => [];
    scheduling::PriorityClass => ["pc"];
    storage::CSIDriver => [];
    storage::CSINode => [];
    storage::StorageClass => ["sc"];
    storage::VolumeAttachment => [];
}

/// The built-in resource `name` (plural, singular, kind or short name, in
/// any case) names, the first in table order.
pub(crate) fn named(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.is_named(name))
}

/// The built-in resource of `group` with plural `plural`.
#[cfg(any(test, feature = "cli"))]
pub(crate) fn by_plural(group: &str, plural: &str) -> Option<&'static Builtin> {
    BUILTINS
        .iter()
        .find(|b| b.group == group && b.plural == plural)
}

/// The built-in resource of `group` with plural `plural`, found at compile
/// time: a table that names one that does not exist does not build.
#[cfg(feature = "sim")]
pub(crate) const fn get(group: &str, plural: &str) -> Builtin {
    let mut i = 0;
    while i < BUILTINS.len() {
        let b = BUILTINS[i];
        if same(b.group, group) && same(b.plural, plural) {
            return b;
        }
        i += 1;
    }
    panic!("no built-in resource of that group and plural");
}

/// `a == b`, which `str` does not offer in a `const fn`.
#[cfg(feature = "sim")]
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scope_come_from_k8s_openapi() {
        let pod = named("po").unwrap();
        assert_eq!(
            (pod.group, pod.version, pod.plural, pod.kind, pod.namespaced),
            ("", "v1", "pods", "Pod", true)
        );
        assert_eq!(pod.api_version(), "v1");
        let node = named("Nodes").unwrap();
        assert!(!node.namespaced);
        let deploy = named("deploy").unwrap();
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(named("deployment"), Some(deploy));
        assert_eq!(named("Deployment"), Some(deploy));
        assert_eq!(by_plural("apps", "deployments"), Some(deploy));
        assert_eq!(by_plural("", "deployments"), None);
        assert_eq!(named("widgets"), None);
    }

    #[test]
    fn a_shared_name_picks_the_core_resource_as_kubectl_does() {
        for name in ["ev", "events", "event", "Event"] {
            assert_eq!(named(name).unwrap().group, "", "{name}");
        }
        assert_eq!(by_plural("events.k8s.io", "events").unwrap().kind, "Event");
    }

    #[test]
    fn no_two_resources_share_a_group_and_plural() {
        for (i, a) in BUILTINS.iter().enumerate() {
            for b in &BUILTINS[i + 1..] {
                assert!(
                    (a.group, a.plural) != (b.group, b.plural),
                    "{}.{} twice",
                    a.plural,
                    a.group
                );
            }
        }
    }
}
