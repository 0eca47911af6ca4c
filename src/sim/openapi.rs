//! A minimal OpenAPI v3 description: just enough for kubectl to learn that
//! the server validates fields itself (`fieldValidation` on writes), so
//! `kubectl create -f` sends the object instead of insisting on downloading
//! full schemas for client-side validation.

use serde_json::{json, Map, Value};

use super::resources::{ResourceDef, RESOURCES};

/// The group-version path of a resource in the OpenAPI v3 index
/// (`api/v1`, `apis/{group}/{version}`).
fn gv_path(r: &ResourceDef) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub fn index() -> Value {
    let mut paths = Map::new();
    for r in RESOURCES {
        let p = gv_path(r);
        let url = format!("/openapi/v3/{p}?hash=sim");
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/{api/v1 | apis/g/v}`: write operations of each resource,
/// tagged with their kind and accepting `fieldValidation`; `None` for an
/// unknown group-version.
pub fn group_version(path: &str) -> Option<Value> {
    let path = path.trim_matches('/');
    let mut paths = Map::new();
    for r in RESOURCES.iter().filter(|r| gv_path(r) == path) {
        let prefix = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let collection = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(collection.clone(), json!({"post": op("post")}));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"put": op("put"), "patch": op("patch")}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_is_indexed_and_served() {
        let idx = index();
        for (p, entry) in idx["paths"].as_object().unwrap() {
            assert!(entry["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/"));
            let doc = group_version(p).unwrap();
            assert!(!doc["paths"].as_object().unwrap().is_empty());
        }
        let core = group_version("api/v1").unwrap();
        let post = &core["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["post"];
        assert_eq!(post["x-kubernetes-group-version-kind"]["kind"], "ConfigMap");
        assert_eq!(post["parameters"][0]["name"], "fieldValidation");
        assert!(core["paths"]["/api/v1/nodes"]["post"].is_object());
        assert!(group_version("apis/nope/v1").is_none());
    }
}
