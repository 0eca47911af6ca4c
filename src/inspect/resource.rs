//! Naming resources the way kubectl does: `--resource` accepts a plural
//! (`pods`), singular (`pod`), short name (`po`) or kind (`Pod`), optionally
//! qualified by group (`deployments.apps`, `deploy.v1.apps`).
//!
//! The built-in resources' short names come from the crate's one resource
//! table, whose plural, kind and group are taken from k8s-openapi. Custom
//! resources answer to their own plural, singular (lower-cased kind) and kind,
//! and to the short names discovery gave when they were synced, which the
//! store records beside the collection.

use super::{Error, Result};
use crate::builtin::{self, Builtin};
use crate::store::CollectionId;

/// The built-in resource a collection holds, if it is one.
fn builtin_of(id: &CollectionId) -> Option<&'static Builtin> {
    builtin::by_plural(&id.group, &id.resource)
}

/// How a collection is named to users: `pods`, `deployments.apps`, with the
/// watch's namespace and selectors when it was restricted
/// (`pods [namespace=default, labels=app=api]`). `--resource` accepts it
/// back as it is printed ([`resolve`]).
pub fn display_name(id: &CollectionId) -> String {
    let mut name = if id.group.is_empty() {
        id.resource.clone()
    } else {
        format!("{}.{}", id.resource, id.group)
    };
    if let Some(restrictions) = restrictions(id) {
        name.push(' ');
        name.push_str(&restrictions);
    }
    name
}

/// The `[namespace=..., labels=..., fields=...]` part of a display name, or
/// `None` when the watch was not restricted.
fn restrictions(id: &CollectionId) -> Option<String> {
    let mut restrictions = Vec::new();
    if let Some(ns) = &id.namespace {
        restrictions.push(format!("namespace={ns}"));
    }
    if let Some(l) = &id.label_selector {
        restrictions.push(format!("labels={l}"));
    }
    if let Some(f) = &id.field_selector {
        restrictions.push(format!("fields={f}"));
    }
    (!restrictions.is_empty()).then(|| format!("[{}]", restrictions.join(", ")))
}

/// The short names `--resource` accepts for collection `id`: kubectl's for a
/// built-in resource, then those discovery gave (`recorded`) that are not
/// among them already.
pub fn short_names(id: &CollectionId, recorded: &[String]) -> Vec<String> {
    let mut names: Vec<String> = builtin_of(id)
        .map(|b| b.short.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    for name in recorded {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name.clone());
        }
    }
    names
}

/// The name kubectl prints with `-o name`: `pod`, `deployment.apps`.
pub fn type_name(id: &CollectionId) -> String {
    let singular = id.kind.to_lowercase();
    if id.group.is_empty() {
        singular
    } else {
        format!("{singular}.{}", id.group)
    }
}

/// How a name matched a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    /// By plural, singular or kind.
    Name,
    /// By a short name: a shortcut, which loses to another collection's name.
    ShortName,
}

/// Whether and how `given` (a plural, singular, short name or kind,
/// optionally followed by `.group` or `.version.group`) names the
/// collection, whose resource discovery gave `short_names`.
pub fn matches(id: &CollectionId, short_names: &[String], given: &str) -> Option<Match> {
    let given = given.to_lowercase();
    let (name, qualifier) = match given.split_once('.') {
        Some((n, q)) => (n, Some(q)),
        None => (given.as_str(), None),
    };
    if let Some(q) = qualifier {
        let group_ok = q == id.group || q == format!("{}.{}", id.version, id.group);
        if !group_ok {
            return None;
        }
    }
    if name == id.resource || name == id.kind.to_lowercase() {
        Some(Match::Name)
    } else if self::short_names(id, short_names)
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
    {
        Some(Match::ShortName)
    } else {
        None
    }
}

/// Pick the collection `given` names among `collections`, each with the
/// short names recorded for it; with no name, the store must hold exactly one.
///
/// `given` is either a collection's display name exactly as [`display_name`]
/// prints it (`pods`, `pods [namespace=ns-000]`), or a kubectl-style name
/// ([`matches`]), optionally followed by the bracketed restrictions of a
/// display name (`po [namespace=ns-000]`). A store may hold several
/// collections of one resource (watches of different namespaces or
/// selectors): the display name is how each of them is picked.
pub fn resolve<'a>(
    path: &std::path::Path,
    collections: &'a [(CollectionId, Vec<String>)],
    given: Option<&str>,
) -> Result<&'a CollectionId> {
    let available = || {
        collections
            .iter()
            .map(|(id, _)| display_name(id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if given.is_some_and(|g| g.trim().is_empty()) {
        return Err(Error::EmptyResource);
    }
    if collections.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let Some(given) = given else {
        return match collections {
            [(only, _)] => Ok(only),
            _ => Err(Error::ResourceRequired {
                available: available(),
            }),
        };
    };
    // A display name picks its collection even where the kubectl-style name
    // in it would match several: it is the only way to name an unrestricted
    // `pods` beside `pods [namespace=...]`. Two versions of one resource
    // share a display name; then the kubectl rules below must tell them apart.
    let exact: Vec<&CollectionId> = collections
        .iter()
        .map(|(id, _)| id)
        .filter(|id| display_name(id) == given)
        .collect();
    if let [one] = exact.as_slice() {
        return Ok(one);
    }
    let (name, wanted_restrictions) = split_restrictions(given);
    // As in kubectl, a name anywhere wins over a shortcut anywhere.
    let matched: Vec<(Match, &CollectionId)> = collections
        .iter()
        .filter(|(id, _)| {
            wanted_restrictions.is_none_or(|w| restrictions(id).as_deref() == Some(w))
        })
        .filter_map(|(id, short)| Some((matches(id, short, name)?, id)))
        .collect();
    let best = matched.iter().map(|(m, _)| *m).min();
    let found: Vec<&CollectionId> = matched
        .iter()
        .filter(|(m, _)| Some(*m) == best)
        .map(|(_, id)| *id)
        .collect();
    // A plain kubectl name means what the plain display name means: the
    // unrestricted collection, when the store holds one (`-r po` as
    // `-r pods`).
    if wanted_restrictions.is_none() && found.len() > 1 {
        let mut unrestricted = found.iter().filter(|c| restrictions(c).is_none());
        if let (Some(one), None) = (unrestricted.next(), unrestricted.next()) {
            return Ok(one);
        }
    }
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::UnknownResource {
            given: given.to_string(),
            available: available(),
        }),
        many => {
            // Show the bracketed form if any candidate has one: it is the
            // form a user who typed a plain name has not seen work.
            let example = many
                .iter()
                .find(|c| restrictions(c).is_some())
                .unwrap_or(&many[0]);
            Err(Error::AmbiguousResource {
                given: given.to_string(),
                candidates: many
                    .iter()
                    .map(|c| display_name(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                example: shell_quote(&display_name(example)),
            })
        }
    }
}

/// `po [namespace=x]` as (`po`, `Some("[namespace=x]")`); a name without a
/// bracketed suffix as itself and `None`.
fn split_restrictions(given: &str) -> (&str, Option<&str>) {
    match given.find(" [") {
        Some(at) if given.ends_with(']') => (given[..at].trim_end(), Some(&given[at + 1..])),
        _ => (given, None),
    }
}

/// `name` as a shell word: unchanged when it is one already, else in single
/// quotes, so that an error's suggestion can be pasted as it is.
fn shell_quote(name: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/');
    if !name.is_empty() && name.chars().all(plain) {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(group: &str, version: &str, resource: &str, kind: &str) -> CollectionId {
        CollectionId {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            kind: kind.into(),
            namespaced: true,
            namespace: None,
            label_selector: None,
            field_selector: None,
        }
    }

    #[test]
    fn kubectl_names_resolve() {
        let pods = id("", "v1", "pods", "Pod");
        let deploy = id("apps", "v1", "deployments", "Deployment");
        let widgets = id("example.com", "v1", "widgets", "Widget");
        let wd = vec!["wd".to_string()];
        for name in ["pods", "pod", "po", "Pod", "PODS"] {
            assert!(matches(&pods, &[], name).is_some(), "{name}");
        }
        assert!(matches(&pods, &[], "pods.apps").is_none());
        for name in [
            "deployments",
            "deployment",
            "deploy",
            "Deployment",
            "deployments.apps",
            "deploy.v1.apps",
        ] {
            assert!(matches(&deploy, &[], name).is_some(), "{name}");
        }
        assert!(matches(&deploy, &[], "deployments.batch").is_none());
        assert!(matches(&deploy, &[], "po").is_none());
        for name in [
            "widgets",
            "widget",
            "Widget",
            "widgets.example.com",
            "widget.v1.example.com",
        ] {
            assert!(matches(&widgets, &wd, name).is_some(), "{name}");
        }
        // A custom resource's short name is known only once recorded.
        assert!(matches(&widgets, &[], "wd").is_none());
        for name in ["wd", "WD", "wd.example.com", "wd.v1.example.com"] {
            assert!(matches(&widgets, &wd, name).is_some(), "{name}");
        }
        assert!(matches(&widgets, &wd, "wd.other.io").is_none());
        assert!(matches(&pods, &wd, "po.apps").is_none());
        assert_eq!(matches(&pods, &[], "pod"), Some(Match::Name));
        assert_eq!(matches(&pods, &[], "po"), Some(Match::ShortName));
        assert_eq!(matches(&widgets, &wd, "WD"), Some(Match::ShortName));
    }

    #[test]
    fn a_name_wins_over_a_shortcut_and_equal_shortcuts_are_ambiguous() {
        let path = std::path::Path::new("/s");
        let all = vec![
            (id("", "v1", "pods", "Pod"), vec![]),
            (
                id("a.io", "v1", "foos", "Foo"),
                vec!["bar".to_string(), "po".to_string()],
            ),
            (id("b.io", "v1", "bars", "Bar"), vec![]),
        ];
        assert_eq!(resolve(path, &all, Some("bar")).unwrap().resource, "bars");
        assert_eq!(resolve(path, &all, Some("pod")).unwrap().resource, "pods");
        let err = resolve(path, &all, Some("po")).unwrap_err();
        assert!(
            matches!(&err, Error::AmbiguousResource { candidates, example, .. }
                if candidates == "pods, foos.a.io" && example == "pods"),
            "{err}"
        );
    }

    #[test]
    fn resolve_explains_what_went_wrong() {
        let path = std::path::Path::new("/s");
        let all = vec![
            (id("", "v1", "pods", "Pod"), vec![]),
            (id("", "v1", "configmaps", "ConfigMap"), vec![]),
            (
                id("example.com", "v1", "widgets", "Widget"),
                vec!["wd".to_string()],
            ),
        ];
        assert_eq!(
            resolve(path, &all, Some("cm")).unwrap().resource,
            "configmaps"
        );
        assert_eq!(resolve(path, &all, Some("wd")).unwrap().resource, "widgets");
        let err = resolve(path, &all, None).unwrap_err().to_string();
        assert!(
            err.contains("pods, configmaps, widgets.example.com"),
            "{err}"
        );
        let err = resolve(path, &all, Some("deploy")).unwrap_err().to_string();
        assert!(
            err.contains("\"deploy\"") && err.contains("pods, configmaps, widgets.example.com"),
            "{err}"
        );
        assert!(matches!(resolve(path, &[], None), Err(Error::Empty { .. })));
        for blank in ["", " "] {
            assert!(matches!(
                resolve(path, &all, Some(blank)),
                Err(Error::EmptyResource)
            ));
        }
        assert_eq!(resolve(path, &all[..1], None).unwrap().resource, "pods");
        let mut other = all[0].clone();
        other.0.namespace = Some("kube-system".into());
        let two = vec![all[0].clone(), other];
        assert_eq!(resolve(path, &two, Some("po")).unwrap(), &two[0].0);
        let in_ns = resolve(path, &two, Some("po [namespace=kube-system]")).unwrap();
        assert_eq!(in_ns, &two[1].0);
        let err = resolve(path, &two[1..], Some("cm"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pods [namespace=kube-system]"), "{err}");
    }

    #[test]
    fn collections_of_one_resource_are_picked_by_their_full_name() {
        let path = std::path::Path::new("/s");
        let pods = id("", "v1", "pods", "Pod");
        let mut in_ns = pods.clone();
        in_ns.namespace = Some("ns-000".into());
        let mut api = pods.clone();
        api.label_selector = Some("app=api".into());
        let mut both = in_ns.clone();
        both.label_selector = Some("app=api".into());
        let all: Vec<(CollectionId, Vec<String>)> = [&pods, &api, &in_ns, &both]
            .into_iter()
            .map(|c| (c.clone(), vec![]))
            .collect();
        for c in [&pods, &api, &in_ns, &both] {
            assert_eq!(resolve(path, &all, Some(&display_name(c))).unwrap(), c);
        }
        assert_eq!(
            display_name(&both),
            "pods [namespace=ns-000, labels=app=api]"
        );
        // Any kubectl name with the restrictions as printed.
        assert_eq!(
            resolve(path, &all, Some("po [namespace=ns-000]")).unwrap(),
            &in_ns
        );
        assert_eq!(
            resolve(path, &all, Some("Pod [labels=app=api]")).unwrap(),
            &api
        );
        // Every plain kubectl name means the unrestricted collection, as
        // the plain display name does.
        for plain in ["po", "pod", "Pod", "pods"] {
            assert_eq!(resolve(path, &all, Some(plain)).unwrap(), &pods, "{plain}");
        }
        // Without an unrestricted collection, a plain name is ambiguous.
        let err = resolve(path, &all[1..], Some("po"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "resource \"po\" matches several collections: pods [labels=app=api], \
             pods [namespace=ns-000], pods [namespace=ns-000, labels=app=api]; give one in \
             full, e.g. -r 'pods [labels=app=api]'"
        );
        let err = resolve(path, &all[1..], Some("pods")).unwrap_err();
        assert!(matches!(err, Error::AmbiguousResource { .. }), "{err}");
        // Restrictions must be as printed; the store's list says how.
        let err = resolve(path, &all, Some("pods [namespace=other]"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the store holds no resource named \"pods [namespace=other]\""),
            "{err}"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn short_names_are_kubectls_then_discovered_ones() {
        let pods = id("", "v1", "pods", "Pod");
        let widgets = id("example.com", "v1", "widgets", "Widget");
        assert_eq!(short_names(&pods, &[]), ["po"]);
        assert_eq!(short_names(&pods, &["po".into(), "p".into()]), ["po", "p"]);
        assert_eq!(short_names(&widgets, &[]), Vec::<String>::new());
        assert_eq!(short_names(&widgets, &["wd".into()]), ["wd"]);
    }
}
