//! Finding a resource by the name a user typed, through the API server's
//! discovery documents, by kubectl's rules: a plural, singular, kind or short
//! name, optionally followed by `.group` or `.version.group`.
//!
//! kube's `Discovery` drops the short names, so the documents are read here
//! directly (`/api/v1`, `/apis`, `/apis/<group>/<version>`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIResource, APIResourceList, GroupVersionForDiscovery,
};
use kube::core::gvk::{GroupVersion, GroupVersionKind, ParseGroupVersionError};
use kube::core::ApiResource;
use kube::error::DiscoveryError;

use super::{Error, ResourceSpec};
use crate::store::is_short_name;

/// Finds the resource `name` names on the server behind `client`.
pub(super) async fn resolve(client: &kube::Client, name: &str) -> Result<ResourceSpec, Error> {
    let wanted = Wanted::parse(name)?;
    // Preferred versions first; the others only when those lack the name,
    // as kubectl falls back to them.
    let (mut preferred, mut others) = (Vec::new(), Vec::new());
    if wanted.qualifier.is_none() {
        let core = client
            .list_core_api_versions()
            .await
            .map_err(unanswered)?
            .versions;
        if let Some((first, rest)) = core.split_first() {
            preferred.push(first.clone());
            others.extend(rest.iter().cloned());
        }
    }
    for group in client.list_api_groups().await.map_err(unanswered)?.groups {
        if let Some((first, rest)) = wanted.versions_in(&group) {
            preferred.push(first.group_version.clone());
            others.extend(rest.into_iter().map(|v| v.group_version.clone()));
        }
    }
    let mut failed = Vec::new();
    for group_versions in [preferred, others] {
        let lists = fetch(client, &group_versions, &mut failed).await;
        if let Some((resource, group_version)) = find(&lists, &wanted.resource) {
            return spec_of(resource, group_version);
        }
    }
    Err(missing(name, failed))
}

/// The error for a discovery request that got no usable answer: a server
/// that answered with a status refused it; anything else (connection,
/// DNS, TLS, timeout) never reached it. Telling them apart matters: neither
/// says anything about whether the resource exists.
fn unanswered(source: kube::Error) -> Error {
    match source {
        kube::Error::Api(_) => Error::Discovery { source },
        source => Error::Unreachable { source },
    }
}

/// A name as typed, split at its first dot.
#[derive(Debug, PartialEq, Eq)]
struct Wanted {
    /// Lower-cased plural, singular, kind or short name.
    resource: String,
    /// `group` or `version.group`, lower-cased.
    qualifier: Option<String>,
}

impl Wanted {
    fn parse(name: &str) -> Result<Wanted, Error> {
        let lower = name.trim().to_ascii_lowercase();
        if lower.is_empty() {
            return Err(Error::EmptyResource);
        }
        let (resource, qualifier) = match lower.split_once('.') {
            Some((r, q)) => (r.to_string(), Some(q.to_string())),
            None => (lower, None),
        };
        if resource.is_empty() || qualifier.as_deref() == Some("") {
            return Err(missing(name, Vec::new()));
        }
        Ok(Wanted {
            resource,
            qualifier,
        })
    }

    /// The versions of `group` to search, first one first: the preferred
    /// version then the rest, or only the version `.version.group` names.
    /// `None` when the qualifier names another group.
    fn versions_in<'g>(
        &self,
        group: &'g APIGroup,
    ) -> Option<(
        &'g GroupVersionForDiscovery,
        Vec<&'g GroupVersionForDiscovery>,
    )> {
        let named_version = match self.qualifier.as_deref() {
            None => None,
            Some(q) if q == group.name => None,
            Some(q) => {
                let version = q.strip_suffix(group.name.as_str())?.strip_suffix('.')?;
                Some(group.versions.iter().find(|v| v.version == version)?)
            }
        };
        if let Some(v) = named_version {
            return Some((v, Vec::new()));
        }
        let first = group
            .preferred_version
            .as_ref()
            .or_else(|| group.versions.first())?;
        let rest = group
            .versions
            .iter()
            .filter(|v| v.group_version != first.group_version)
            .collect();
        Some((first, rest))
    }
}

/// Reads the resource lists of `group_versions`. One that fails is skipped
/// and remembered in `failed`: one broken aggregated API must not hide every
/// other resource, as in kubectl.
async fn fetch(
    client: &kube::Client,
    group_versions: &[String],
    failed: &mut Vec<String>,
) -> Vec<APIResourceList> {
    let mut lists = Vec::new();
    for gv in group_versions {
        let list = if gv.contains('/') {
            client.list_api_group_resources(gv).await
        } else {
            client.list_core_api_resources(gv).await
        };
        match list {
            Ok(list) => lists.push(list),
            Err(e) => {
                tracing::warn!(group_version = %gv, error = %e, "discovery of a group version failed; skipping it");
                failed.push(gv.clone());
            }
        }
    }
    lists
}

/// The resource `wanted` names in `lists`, with its group version. A
/// plural, singular or kind anywhere wins over a short name anywhere: short
/// names are shortcuts, and a resource's own name must not lose to another
/// resource's shortcut. Subresources (`pods/status`) are never matched.
fn find<'a>(lists: &'a [APIResourceList], wanted: &str) -> Option<(&'a APIResource, &'a str)> {
    let resources = || {
        lists.iter().flat_map(|l| {
            l.resources
                .iter()
                .filter(|r| !r.name.contains('/'))
                .map(move |r| (r, l.group_version.as_str()))
        })
    };
    let is = |s: &str| !s.is_empty() && s.eq_ignore_ascii_case(wanted);
    resources()
        .find(|(r, _)| is(&r.name) || is(&r.singular_name) || is(&r.kind))
        .or_else(|| resources().find(|(r, _)| r.short_names.iter().flatten().any(|s| is(s))))
}

fn spec_of(r: &APIResource, group_version: &str) -> Result<ResourceSpec, Error> {
    let gv: GroupVersion =
        group_version
            .parse()
            .map_err(|ParseGroupVersionError(e)| Error::Discovery {
                source: kube::Error::Discovery(DiscoveryError::InvalidGroupVersion(e)),
            })?;
    let group = r.group.clone().unwrap_or(gv.group);
    let version = r.version.clone().unwrap_or(gv.version);
    let (short_names, unusable): (Vec<String>, Vec<String>) = r
        .short_names
        .clone()
        .unwrap_or_default()
        .into_iter()
        .partition(|s| is_short_name(s));
    if !unusable.is_empty() {
        tracing::warn!(resource = %r.name, ?unusable, "ignoring short names that are not one word");
    }
    Ok(ResourceSpec {
        api: ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&group, &version, &r.kind),
            &r.name,
        ),
        namespaced: r.namespaced,
        short_names: Some(short_names),
    })
}

fn missing(name: &str, failed: Vec<String>) -> Error {
    Error::UnknownResource {
        name: name.to_string(),
        failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str, singular: &str, kind: &str, short: &[&str]) -> APIResource {
        APIResource {
            name: name.into(),
            singular_name: singular.into(),
            kind: kind.into(),
            namespaced: true,
            short_names: Some(short.iter().map(|s| s.to_string()).collect()),
            ..APIResource::default()
        }
    }

    fn list(group_version: &str, resources: Vec<APIResource>) -> APIResourceList {
        APIResourceList {
            group_version: group_version.into(),
            resources,
        }
    }

    fn found<'a>(lists: &'a [APIResourceList], wanted: &str) -> Option<(&'a str, &'a str)> {
        find(lists, wanted).map(|(r, gv)| (r.name.as_str(), gv))
    }

    #[test]
    fn a_name_wins_over_a_shortcut_and_subresources_are_never_matched() {
        let lists = [
            list(
                "v1",
                vec![
                    resource("pods", "pod", "Pod", &["po"]),
                    resource("pods/status", "", "Pod", &[]),
                ],
            ),
            list(
                "a.io/v1",
                vec![resource("foos", "foo", "Foo", &["bar", "WD"])],
            ),
            list("b.io/v1", vec![resource("bars", "bar", "Bar", &[])]),
        ];
        assert_eq!(found(&lists, "bar"), Some(("bars", "b.io/v1")));
        assert_eq!(found(&lists, "wd"), Some(("foos", "a.io/v1")));
        assert_eq!(found(&lists, "po"), Some(("pods", "v1")));
        assert_eq!(found(&lists, "pod"), Some(("pods", "v1")));
        assert_eq!(found(&lists, "Pod"), Some(("pods", "v1")));
        assert_eq!(found(&lists, "pods/status"), None);
        assert_eq!(found(&lists, "status"), None);
        // Older servers send an empty singular name; it names nothing.
        assert_eq!(found(&lists, ""), None);
    }

    fn group(name: &str, versions: &[&str], preferred: &str) -> APIGroup {
        let gv = |v: &str| GroupVersionForDiscovery {
            group_version: format!("{name}/{v}"),
            version: v.into(),
        };
        APIGroup {
            name: name.into(),
            versions: versions.iter().map(|v| gv(v)).collect(),
            preferred_version: Some(gv(preferred)),
            ..APIGroup::default()
        }
    }

    fn versions(wanted: &str, group: &APIGroup) -> Option<(String, Vec<String>)> {
        Wanted::parse(wanted)
            .unwrap()
            .versions_in(group)
            .map(|(first, rest)| {
                (
                    first.group_version.clone(),
                    rest.iter().map(|v| v.group_version.clone()).collect(),
                )
            })
    }

    #[test]
    fn qualifiers_pick_a_group_and_maybe_a_version() {
        let g = group("example.kube-persist.dev", &["v1", "v2"], "v2");
        let preferred_first = Some((
            "example.kube-persist.dev/v2".to_string(),
            vec!["example.kube-persist.dev/v1".to_string()],
        ));
        assert_eq!(versions("wd", &g), preferred_first);
        assert_eq!(versions("wd.example.kube-persist.dev", &g), preferred_first);
        assert_eq!(
            versions("WD.V1.example.kube-persist.dev", &g),
            Some(("example.kube-persist.dev/v1".to_string(), vec![]))
        );
        for elsewhere in [
            "wd.v3.example.kube-persist.dev",
            "wd.other.io",
            "wd.kube-persist.dev",
        ] {
            assert_eq!(versions(elsewhere, &g), None, "{elsewhere}");
        }
        for empty in ["", " "] {
            let err = Wanted::parse(empty).unwrap_err();
            assert!(matches!(err, Error::EmptyResource), "{empty:?}: {err}");
        }
        for bad in [".apps", "wd."] {
            let err = Wanted::parse(bad).unwrap_err();
            assert!(
                matches!(&err, Error::UnknownResource { name, .. } if name == bad),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn discovered_short_names_that_cannot_be_stored_are_dropped() {
        let spec = spec_of(
            &resource("widgets", "widget", "Widget", &["wd", "w.d", ""]),
            "example.kube-persist.dev/v1",
        )
        .unwrap();
        assert_eq!(spec.short_names, Some(vec!["wd".to_string()]));
        assert_eq!(
            (
                spec.api.group.as_str(),
                spec.api.version.as_str(),
                spec.api.plural.as_str()
            ),
            ("example.kube-persist.dev", "v1", "widgets")
        );
    }

    #[test]
    fn a_failed_group_is_named_in_the_not_found_error() {
        let err = missing("gizmos", vec!["metrics.k8s.io/v1beta1".to_string()]).to_string();
        assert_eq!(
            err,
            "the server has no resource named \"gizmos\" (discovery of \
             metrics.k8s.io/v1beta1 failed, so it may be there)"
        );
        assert_eq!(
            missing("gizmos", Vec::new()).to_string(),
            "the server has no resource named \"gizmos\""
        );
    }
}
