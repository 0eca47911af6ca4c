//! An object's metadata read from its JSON without building a `Value` of
//! the rest.
//!
//! A full check of a store needs, of each object, only its key, its
//! resourceVersion and its labels, yet parsing a pod into a
//! `serde_json::Value` allocates every node of its spec, status and
//! `managedFields`, several times the cost of reading past them. This parse
//! still reads the whole document (so a payload that is not JSON is still
//! found), but keeps only `metadata.name`, `namespace`, `resourceVersion`
//! and `labels`.
//!
//! Whatever it cannot read exactly as a full parse would (a document that
//! is not a JSON object, bytes that are not UTF-8, any syntax error) makes
//! it give up, and the caller parses in full: both paths then report the
//! same thing for the same bytes.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::error::Result;
use super::index;
use super::ObjectKey;

/// The metadata of a stored object that keys and indexes it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ObjectHead {
    name: Option<Value>,
    namespace: Option<Value>,
    resource_version: Option<Value>,
    labels: Option<Value>,
}

impl ObjectHead {
    /// Reads the head of `json` without a full parse; `None` when the
    /// bytes are not a well-formed JSON object with an object `metadata`
    /// (the caller then parses in full, which says what is wrong).
    pub(crate) fn parse(json: &[u8]) -> Option<ObjectHead> {
        // Checked once here, so that strings skipped over are UTF-8 too, as
        // a full parse requires of every string.
        let text = std::str::from_utf8(json).ok()?;
        // A string read past may hold a lone surrogate escape, which a full
        // parse refuses; neither Go nor serde_json writes one, so such bytes
        // (or a `\\u` followed by `d`, caught too) take the full parse.
        if has_surrogate_escape(json) {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let head = de.deserialize_map(DocVisitor).ok()?;
        de.end().ok()?;
        head
    }

    /// The object's key, by the rule of [`ObjectKey::of`].
    pub(crate) fn key(&self) -> Result<ObjectKey> {
        ObjectKey::from_fields(self.name.as_ref(), self.namespace.as_ref())
    }

    /// `metadata.resourceVersion`, when it is a string.
    pub(crate) fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_ref().and_then(Value::as_str)
    }

    /// The label index's `key=value` values for this object.
    pub(crate) fn label_pairs(&self) -> Vec<String> {
        index::label_pairs(self.labels.as_ref())
    }

    /// Panics unless whatever this parse reads of `json`, a full parse
    /// reads alike: the property the fuzz target and the tests check.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn check_against_full_parse(json: &[u8]) {
        let Some(head) = ObjectHead::parse(json) else {
            return;
        };
        let full: Value = serde_json::from_slice(json)
            .unwrap_or_else(|e| panic!("the head read bytes a full parse refuses: {e}"));
        assert_eq!(
            head.key().map_err(|e| e.to_string()),
            ObjectKey::of(&full).map_err(|e| e.to_string()),
            "head key"
        );
        assert_eq!(
            head.resource_version(),
            full.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str),
            "head resourceVersion"
        );
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(
            sorted(head.label_pairs()),
            sorted(index::label_values(&full)),
            "head labels"
        );
    }
}

/// Whether `json` may hold a `\uD800`–`\uDFFF` escape.
fn has_surrogate_escape(json: &[u8]) -> bool {
    json.iter().enumerate().any(|(i, &b)| {
        b == b'\\'
            && json.get(i + 1) == Some(&b'u')
            && json.get(i + 2).is_some_and(|c| c | 0x20 == b'd')
    })
}

/// The top-level object: `metadata` kept, everything else read past. A
/// repeated key keeps its last value, as `serde_json::Map` does.
struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Option<ObjectHead>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut head = None;
        while let Some(field) = map.next_key::<String>()? {
            if field == "metadata" {
                // A metadata that is not an object fails this parse; the
                // full one then reports the object as having none.
                head = Some(map.next_value_seed(MetaSeed)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(head)
    }
}

struct MetaSeed;

impl<'de> serde::de::DeserializeSeed<'de> for MetaSeed {
    type Value = ObjectHead;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<ObjectHead, D::Error> {
        de.deserialize_map(MetaVisitor)
    }
}

struct MetaVisitor;

impl<'de> Visitor<'de> for MetaVisitor {
    type Value = ObjectHead;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object's metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectHead, A::Error> {
        let mut head = ObjectHead::default();
        while let Some(field) = map.next_key::<String>()? {
            let slot = match field.as_str() {
                "name" => &mut head.name,
                "namespace" => &mut head.namespace,
                "resourceVersion" => &mut head.resource_version,
                "labels" => &mut head.labels,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value::<Value>()?);
        }
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The head of an object already parsed.
    fn of_value(object: &Value) -> Option<ObjectHead> {
        let meta = object.get("metadata")?.as_object()?;
        Some(ObjectHead {
            name: meta.get("name").cloned(),
            namespace: meta.get("namespace").cloned(),
            resource_version: meta.get("resourceVersion").cloned(),
            labels: meta.get("labels").cloned(),
        })
    }

    /// What a check derives from an object, by the full parse.
    fn by_value(json: &str) -> Option<(String, Option<String>, Vec<String>)> {
        let value: Value = serde_json::from_str(json).ok()?;
        let head = of_value(&value);
        let key = ObjectKey::of(&value)
            .map(|k| k.encode())
            .map_err(|e| e.to_string());
        Some(summary(head, key))
    }

    fn by_head(json: &str) -> Option<(String, Option<String>, Vec<String>)> {
        let head = ObjectHead::parse(json.as_bytes())?;
        let key = head.key().map(|k| k.encode()).map_err(|e| e.to_string());
        Some(summary(Some(head), key))
    }

    fn summary(
        head: Option<ObjectHead>,
        key: std::result::Result<String, String>,
    ) -> (String, Option<String>, Vec<String>) {
        let key = key.unwrap_or_else(|e| format!("error: {e}"));
        let rv = head
            .as_ref()
            .and_then(|h| h.resource_version().map(str::to_string));
        let mut labels = head.map(|h| h.label_pairs()).unwrap_or_default();
        labels.sort();
        (key, rv, labels)
    }

    #[test]
    fn the_head_says_what_a_full_parse_says_or_gives_up() {
        let cases = [
            r#"{"kind":"Pod","metadata":{"name":"a","namespace":"ns","resourceVersion":"7","labels":{"app":"web","n":3,"x":null}},"spec":{"containers":[{"name":"c","args":["\u00e9\n"]}]},"status":{}}"#,
            r#"{"metadata":{"name":"node-1","resourceVersion":"12"}}"#,
            r#"{"metadata":{"name":"a","namespace":""}}"#,
            r#"{"metadata":{"name":"a","namespace":null,"labels":null}}"#,
            r#"{"metadata":{"name":"a","namespace":3}}"#,
            r#"{"metadata":{"name":"","namespace":"ns"}}"#,
            r#"{"metadata":{"name":"a/b"}}"#,
            r#"{"metadata":{"name":"a","resourceVersion":7}}"#,
            r#"{"metadata":{"name":"a","labels":["x"]}}"#,
            r#"{"metadata":{"name":"first"},"metadata":{"name":"last"}}"#,
            r#"{"metadata":{"name":"first","name":"last"}}"#,
            r#"{"metadata":{"name":"a\/b"}}"#,
            r#"{"metadata":{"na\u006de":"escaped-key"}}"#,
            r#"{"kind":"Pod"}"#,
            r#"{"metadata":"a"}"#,
            r#"{"metadata":["a"]}"#,
            r#"[{"name":"a"}]"#,
            r#"{"metadata":{"name":"a"}} trailing"#,
            r#"{"metadata":{"name":"a"},"spec":{"x":[1,2,}}"#,
            r#"{"metadata":{"name":"a"},"spec":{"x":tru}}"#,
            r#"{"metadata":{"name":"a"},"spec":{"x":01}}"#,
            r#"{"metadata":{"name":"a"},"spec":{"x":"\udc00"}}"#,
            r#"{"metadata":{"name":"a"},"spec":{"x":"\uD83D\uDE00"}}"#,
            "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"x\":\"\u{1}\"}}",
            "",
        ];
        let mut fast = 0;
        for json in cases {
            let head = ObjectHead::parse(json.as_bytes());
            if head.is_some() {
                fast += 1;
                assert_eq!(by_head(json), by_value(json), "{json}");
            } else {
                // Given up on: the full parse decides. Apart from surrogate
                // escapes (left to it whether lone or paired), it must fail
                // or see no metadata object.
                let full = serde_json::from_str::<Value>(json).ok();
                assert!(
                    full.as_ref().and_then(of_value).is_none() || json.contains("\\uD"),
                    "gave up on a readable object: {json}"
                );
            }
        }
        assert_eq!(fast, 13, "the well-formed objects are read by the head");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z/\\\\\"\\u{e9}\\u{1f600}]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("name".to_string()),
                        Just("namespace".to_string()),
                        Just("labels".to_string()),
                        Just("resourceVersion".to_string()),
                        "[a-z]{1,4}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Objects with any metadata, serialized, then perhaps with one
        /// byte replaced by a JSON-significant one: the head either gives
        /// up or agrees with a full parse.
        #[test]
        fn the_head_agrees_with_a_full_parse(
            metadata in json_value(),
            rest in json_value(),
            flip in prop::option::of((any::<prop::sample::Index>(), prop::sample::select(b"{}[]\",:\\u0d 9x".to_vec()))),
        ) {
            let object = serde_json::json!({"metadata": metadata, "spec": rest});
            let mut json = serde_json::to_vec(&object).unwrap();
            if let Some((at, byte)) = flip {
                let at = at.index(json.len());
                json[at] = byte;
            }
            ObjectHead::check_against_full_parse(&json);
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_left_to_the_full_parse() {
        let mut json = br#"{"metadata":{"name":"a"},"spec":{"x":""}}"#.to_vec();
        json.insert(json.len() - 3, 0xff);
        assert!(serde_json::from_slice::<Value>(&json).is_err());
        assert_eq!(ObjectHead::parse(&json), None);
    }
}
