//! Object keys and the byte layout of a collection's sled tree.
//!
//! Each collection lives in ONE sled tree so that a whole `apply` is one
//! `Tree::apply_batch` (atomic and cheaper than a multi-tree transaction).
//! The record families are told apart by a one-byte prefix; variable-length
//! parts are length-prefixed so that no value can make one key look like
//! another.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::error::{Error, Result};

/// Key of an object: `namespace/name`, or `/name` when cluster-scoped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// Key of a namespaced object.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// Key of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            namespace: None,
            name: name.into(),
        }
    }

    /// The key of an object, read from its `metadata`.
    pub fn of(object: &Value) -> Result<ObjectKey> {
        let meta = object
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::InvalidObject("object has no metadata".into()))?;
        ObjectKey::from_fields(meta.get("name"), meta.get("namespace"))
    }

    /// The key named by `metadata.name` and `metadata.namespace`, however
    /// they were read: [`Self::of`] and the metadata-only parse of
    /// [`ObjectHead`](super::head::ObjectHead) share one rule.
    pub(crate) fn from_fields(
        name: Option<&Value>,
        namespace: Option<&Value>,
    ) -> Result<ObjectKey> {
        let name = match name {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => {
                return Err(Error::InvalidObject(
                    "object has no metadata.name (a non-empty string is required)".into(),
                ))
            }
        };
        let namespace = match namespace {
            None | Some(Value::Null) => None,
            Some(Value::String(ns)) if ns.is_empty() => None,
            Some(Value::String(ns)) => Some(ns.clone()),
            Some(other) => {
                return Err(Error::InvalidObject(format!(
                    "object {name:?} has a metadata.namespace that is not a string: {other}"
                )))
            }
        };
        let key = ObjectKey { namespace, name };
        key.validate()?;
        Ok(key)
    }

    /// Names and namespaces are DNS labels/subdomains on a real server; the
    /// store only needs them free of `/` so that `namespace/name` is unambiguous.
    fn validate(&self) -> Result<()> {
        if self.name.contains('/') {
            return Err(Error::InvalidObject(format!(
                "object name {:?} contains '/'",
                self.name
            )));
        }
        if let Some(ns) = &self.namespace {
            if ns.contains('/') {
                return Err(Error::InvalidObject(format!(
                    "namespace {ns:?} of object {:?} contains '/'",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// The stored form, `namespace/name` or `/name`.
    pub fn encode(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => write!(f, "/{}", self.name),
        }
    }
}

impl FromStr for ObjectKey {
    type Err = Error;

    /// Parses `namespace/name`, `/name`, or a bare `name` (cluster-scoped).
    fn from_str(s: &str) -> Result<ObjectKey> {
        let key = match s.split_once('/') {
            Some(("", name)) => ObjectKey::cluster(name),
            Some((ns, name)) => ObjectKey::namespaced(ns, name),
            None => ObjectKey::cluster(s),
        };
        if key.name.is_empty() {
            return Err(Error::InvalidObject(format!("key {s:?} has an empty name")));
        }
        key.validate()?;
        Ok(key)
    }
}

/// Record families inside a collection tree.
pub(crate) mod prefix {
    /// The collection's state (last RV, counters): one record.
    pub const STATE: u8 = b's';
    /// Objects: `o` + `namespace/name`.
    pub const OBJECT: u8 = b'o';
    /// Index entries: `i` + len16 name + len32 value + object key.
    pub const INDEX: u8 = b'i';
    /// Journal: `j` + big-endian seq.
    pub const JOURNAL: u8 = b'j';
    /// History index: `h` + len32 object key + big-endian seq.
    pub const HISTORY: u8 = b'h';
    /// Cursors: `c` + consumer name.
    pub const CURSOR: u8 = b'c';
    /// Dictionaries: `d` + big-endian id.
    pub const DICTIONARY: u8 = b'd';
    /// Durable consumers' progress records: `r` + len16 consumer + record key.
    pub const PROGRESS: u8 = b'r';
}

pub(crate) fn state_key() -> Vec<u8> {
    vec![prefix::STATE]
}

pub(crate) fn object_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(prefix::OBJECT);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Prefix of every object of one namespace (`o` + `ns/`).
pub(crate) fn namespace_prefix(namespace: &str) -> Vec<u8> {
    object_key(&format!("{namespace}/"))
}

pub(crate) fn object_key_from(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[1..]).into_owned()
}

/// Prefix of the entries of one index value: `i` + name + value.
pub(crate) fn index_prefix(index: &str, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(7 + index.len() + value.len());
    k.push(prefix::INDEX);
    k.extend_from_slice(&(index.len() as u16).to_be_bytes());
    k.extend_from_slice(index.as_bytes());
    k.extend_from_slice(&(value.len() as u32).to_be_bytes());
    k.extend_from_slice(value.as_bytes());
    k
}

/// Prefix of every entry of one index.
pub(crate) fn index_name_prefix(index: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + index.len());
    k.push(prefix::INDEX);
    k.extend_from_slice(&(index.len() as u16).to_be_bytes());
    k.extend_from_slice(index.as_bytes());
    k
}

pub(crate) fn index_entry(index: &str, value: &str, key: &str) -> Vec<u8> {
    let mut k = index_prefix(index, value);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Splits an index entry into (index, value, object key).
pub(crate) fn parse_index_entry(raw: &[u8]) -> Option<(String, String, String)> {
    let rest = raw.strip_prefix(&[prefix::INDEX])?;
    let name_len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(rest.get(2..2 + name_len)?).ok()?;
    let rest = &rest[2 + name_len..];
    let value_len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let value = std::str::from_utf8(rest.get(4..4 + value_len)?).ok()?;
    let key = std::str::from_utf8(&rest[4 + value_len..]).ok()?;
    Some((name.to_string(), value.to_string(), key.to_string()))
}

pub(crate) fn journal_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix::JOURNAL;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn journal_seq(raw: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(raw.get(1..9)?.try_into().ok()?))
}

pub(crate) fn history_prefix(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + key.len() + 8);
    k.push(prefix::HISTORY);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// The journal seq a history entry names (its last 8 bytes).
pub(crate) fn history_seq(raw: &[u8]) -> Option<u64> {
    let at = raw.len().checked_sub(8)?;
    Some(u64::from_be_bytes(raw[at..].try_into().ok()?))
}

pub(crate) fn history_entry(key: &str, seq: u64) -> Vec<u8> {
    let mut k = history_prefix(key);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn cursor_key(consumer: &str) -> Vec<u8> {
    let mut k = vec![prefix::CURSOR];
    k.extend_from_slice(consumer.as_bytes());
    k
}

pub(crate) fn dictionary_key(id: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = prefix::DICTIONARY;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn dictionary_id(raw: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(raw.get(1..5)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip_through_their_string_form() {
        for k in [
            ObjectKey::namespaced("ns", "a"),
            ObjectKey::cluster("node-1"),
        ] {
            assert_eq!(k.to_string().parse::<ObjectKey>().unwrap(), k);
        }
        assert_eq!("n1".parse::<ObjectKey>().unwrap(), ObjectKey::cluster("n1"));
        assert!("ns/".parse::<ObjectKey>().is_err());
        assert!("a/b/c".parse::<ObjectKey>().is_err());
    }

    #[test]
    fn object_key_requires_a_name_and_rejects_slashes() {
        let e = ObjectKey::of(&json!({"metadata": {}})).unwrap_err();
        assert!(e.to_string().contains("metadata.name"), "{e}");
        let e = ObjectKey::of(&json!({"metadata": {"name": "a/b"}})).unwrap_err();
        assert!(e.to_string().contains("contains '/'"), "{e}");
        let e = ObjectKey::of(&json!({"metadata": {"name": "a", "namespace": 3}})).unwrap_err();
        assert!(e.to_string().contains("not a string"), "{e}");
        assert_eq!(
            ObjectKey::of(&json!({"metadata": {"name": "a", "namespace": "x"}})).unwrap(),
            ObjectKey::namespaced("x", "a")
        );
    }

    #[test]
    fn index_entries_parse_back_even_with_separator_like_bytes() {
        let raw = index_entry("by\0idx", "v/\0x", "ns/name");
        assert_eq!(
            parse_index_entry(&raw).unwrap(),
            ("by\0idx".into(), "v/\0x".into(), "ns/name".into())
        );
        // One value must never be a prefix match for another.
        assert!(
            !index_entry("label", "app=ab", "ns/x").starts_with(&index_prefix("label", "app=a"))
        );
    }

    #[test]
    fn journal_keys_sort_by_seq() {
        assert!(journal_key(255) < journal_key(256));
        assert_eq!(journal_seq(&journal_key(77)), Some(77));
    }
}
