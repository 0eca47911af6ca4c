//! Strategic-merge patch (`application/strategic-merge-patch+json`),
//! kubectl's default for built-in types: a JSON merge patch whose lists
//! merge by their patch strategy ([`super::schema`]) instead of being
//! replaced, plus the directives kubectl sends.
//!
//! Follows k8s.io/apimachinery/pkg/util/strategicpatch/patch.go
//! (`StrategicMergePatch`, `mergeMap`, `mergeSlice`,
//! `mergeSliceWithSpecialElements`, `normalizeElementOrder`): `null`
//! deletes a key; `$patch: replace` replaces a map or a whole list,
//! `$patch: delete` deletes a map or the list element with its merge key;
//! `$retainKeys` drops the keys it does not name; `$setElementOrder/<list>`
//! orders a merged list; `$deleteFromPrimitiveList/<list>` removes values
//! from a merged list of scalars. No crate implements this for
//! serde_json values, hence this module.

use serde_json::{Map, Value};

use super::schema::{child, elements, PatchStrategy, Schema};
use super::status::ApiError;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic-merge patch to `original` in place.
pub(crate) fn apply(original: &mut Value, patch: &Value, schema: &Schema) -> Result<(), ApiError> {
    let Value::Object(patch) = patch else {
        return Err(invalid("the patch must be a JSON object"));
    };
    let Value::Object(target) = original else {
        return Err(invalid("the object to patch is not a JSON object"));
    };
    merge_map(target, patch, "", schema)
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("invalid strategic merge patch: {}", msg.into()))
}

/// `mergeMap`.
fn merge_map(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &str,
    schema: &Schema,
) -> Result<(), ApiError> {
    match patch.get(PATCH).map(|v| v.as_str()) {
        None => {}
        Some(Some("replace")) => {
            *original = strip_directives(patch);
            return Ok(());
        }
        Some(Some("delete")) => {
            original.clear();
            return Ok(());
        }
        Some(Some("merge")) => {}
        Some(other) => {
            return Err(invalid(format!("unknown patch type {other:?} in {path:?}")));
        }
    }
    for (key, pv) in patch {
        if key == PATCH || key == RETAIN_KEYS {
            continue;
        }
        if let Some(list) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Value::Array(gone) = pv else {
                return Err(invalid(format!("{key} must be a list")));
            };
            if let Some(Value::Array(items)) = original.get_mut(list) {
                items.retain(|v| !gone.contains(v));
            }
            continue;
        }
        if key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        let field = child(path, key);
        if pv.is_null() {
            original.remove(key);
            continue;
        }
        match (original.get_mut(key), pv) {
            (Some(Value::Object(ov)), Value::Object(pm)) => merge_map(ov, pm, &field, schema)?,
            (Some(Value::Array(ov)), Value::Array(pl)) => {
                merge_list(ov, pl, &field, schema)?;
            }
            (_, Value::Object(pm)) if pm.get(PATCH).and_then(Value::as_str) == Some("delete") => {
                original.remove(key);
            }
            _ => {
                // New (or of another type): take the patch's value, without
                // its directives and nulls (`IgnoreUnmatchedNulls`).
                original.insert(key.clone(), clean(pv));
            }
        }
    }
    for (key, pv) in patch {
        if let Some(list) = key.strip_prefix(SET_ELEMENT_ORDER) {
            if let (Some(Value::Array(items)), Value::Array(order)) = (original.get_mut(list), pv) {
                let field = child(path, list);
                reorder(items, order, schema.patch_strategy(&field));
            }
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Value::Array(keep) = retain else {
            return Err(invalid("$retainKeys must be a list"));
        };
        original.retain(|k, _| keep.iter().any(|v| v.as_str() == Some(k.as_str())));
    }
    Ok(())
}

/// `mergeSlice`, by the list's strategy.
fn merge_list(
    original: &mut Vec<Value>,
    patch: &[Value],
    path: &str,
    schema: &Schema,
) -> Result<(), ApiError> {
    match schema.patch_strategy(path) {
        PatchStrategy::Replace => {
            *original = patch.iter().map(clean).collect();
        }
        PatchStrategy::MergePrimitive => {
            for v in patch {
                if !original.contains(v) {
                    original.push(v.clone());
                }
            }
        }
        PatchStrategy::MergeByKey(key) => {
            merge_by_key(original, patch, key, &elements(path), schema)?;
        }
    }
    Ok(())
}

/// `mergeSliceWithSpecialElements` then `mergeSliceWithoutSpecialElements`.
fn merge_by_key(
    original: &mut Vec<Value>,
    patch: &[Value],
    key: &str,
    element_path: &str,
    schema: &Schema,
) -> Result<(), ApiError> {
    let directive = |v: &Value| v.get(PATCH).and_then(Value::as_str).map(str::to_string);
    if patch
        .iter()
        .any(|v| directive(v).as_deref() == Some("replace"))
    {
        *original = patch
            .iter()
            .filter(|v| directive(v).is_none())
            .map(clean)
            .collect();
        return Ok(());
    }
    for pv in patch {
        let Value::Object(pm) = pv else {
            return Err(invalid(format!(
                "the elements of a list merged by {key:?} must be objects"
            )));
        };
        let Some(k) = pm.get(key) else {
            return Err(invalid(format!("an element has no merge key {key:?}")));
        };
        let found = original.iter().position(|o| o.get(key) == Some(k));
        match (directive(pv).as_deref(), found) {
            (Some("delete"), Some(i)) => {
                original.remove(i);
            }
            (Some("delete"), None) => {}
            (Some("merge") | None, Some(i)) => {
                if let Some(Value::Object(om)) = original.get_mut(i) {
                    merge_map(om, pm, element_path, schema)?;
                }
            }
            (Some("merge") | None, None) => original.push(clean(pv)),
            (Some(other), _) => {
                return Err(invalid(format!(
                    "unknown patch type {other:?} in a list element"
                )));
            }
        }
    }
    Ok(())
}

/// `$setElementOrder`: the elements it names come in its order, where the
/// merged list has them; the others keep their relative order after them.
fn reorder(items: &mut [Value], order: &[Value], strategy: PatchStrategy) {
    let identity = |v: &Value| -> Value {
        match strategy {
            PatchStrategy::MergeByKey(key) => v.get(key).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(identity).collect();
    let rank = |v: &Value| {
        let id = identity(v);
        wanted.iter().position(|w| *w == id).unwrap_or(wanted.len())
    };
    items.sort_by_key(rank);
}

/// A patch value as it is stored: directives and nulls removed.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| !is_directive_only(i))
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn strip_directives(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
        .map(|(k, v)| (k.clone(), clean(v)))
        .collect()
}

fn is_directive_only(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| !m.is_empty() && m.keys().all(|k| k.starts_with('$')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::{by_plural, RESOURCES};
    use crate::sim::schema::Schema;
    use serde_json::json;

    fn pod_schema() -> Schema {
        Schema::of(&RESOURCES[by_plural("pods").unwrap()])
    }

    fn patched(original: Value, patch: Value) -> Value {
        let mut v = original;
        apply(&mut v, &patch, &pod_schema()).unwrap();
        v
    }

    #[test]
    fn containers_merge_by_name_and_ports_by_container_port() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "b", "image": "b:1"},
        ]}});
        let out = patched(
            pod,
            json!({"spec": {"containers": [
                {"name": "b", "image": "b:2"},
                {"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]},
                {"name": "c", "image": "c:1"},
            ]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]},
                {"name": "b", "image": "b:2"},
                {"name": "c", "image": "c:1"},
            ]}})
        );
    }

    #[test]
    fn untagged_lists_are_replaced_and_nulls_delete() {
        let pod = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"tolerations": [{"key": "x"}], "containers": [{"name": "a", "args": ["1", "2"]}]}});
        let out = patched(
            pod,
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"tolerations": [{"key": "y"}], "containers": [{"name": "a", "args": ["3"]}]}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"tolerations": [{"key": "y"}], "containers": [{"name": "a", "args": ["3"]}]}})
        );
    }

    #[test]
    fn patch_directives_delete_and_replace() {
        let pod = json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}, {"name": "b"}],
                         "nodeSelector": {"disk": "ssd", "zone": "a"}}});
        let out = patched(
            pod.clone(),
            json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}, {"name": "a", "env": [{"name": "X", "$patch": "delete"}]}],
                            "nodeSelector": {"$patch": "replace", "zone": "b"}}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}], "nodeSelector": {"zone": "b"}}})
        );
        let out = patched(
            pod,
            json!({"spec": {"containers": [{"name": "z"}, {"$patch": "replace"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "z"}]));
    }

    #[test]
    fn element_order_retain_keys_and_primitive_lists() {
        let pod = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "volumes": [{"name": "v", "emptyDir": {}}]}});
        let out = patched(
            pod,
            json!({
                "metadata": {"finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]},
                "spec": {
                    "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                    "containers": [{"name": "a", "image": "x"}],
                    "volumes": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "cm"}}],
                },
            }),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "b"}, {"name": "a", "image": "x"}])
        );
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "v", "configMap": {"name": "cm"}}])
        );
    }

    #[test]
    fn malformed_patches_are_refused_by_name() {
        let mut pod = json!({"spec": {"containers": [{"name": "a"}]}});
        let s = pod_schema();
        for bad in [
            json!([1]),
            json!({"spec": {"containers": [{"image": "no-name"}]}}),
            json!({"spec": {"containers": ["a"]}}),
            json!({"spec": {"$patch": "explode"}}),
        ] {
            let err = apply(&mut pod, &bad, &s).unwrap_err();
            assert_eq!(err.code, 400, "{bad}");
            assert!(
                err.message.starts_with("invalid strategic merge patch"),
                "{}",
                err.message
            );
        }
    }
}
