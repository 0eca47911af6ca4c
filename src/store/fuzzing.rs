//! Entry points for the fuzz targets in `tests/fuzz` (feature `fuzzing`):
//! everything the store decodes from disk bytes, and the store's side of a
//! watched object, run on arbitrary input. They panic only where the code
//! under test broke a promise; bad input must come back as an error.

use std::collections::BTreeMap;

use serde_json::Value;

use super::dictionary::{Dictionary, ZstdContext};
use super::head::ObjectHead;
use super::journal::{self, Payload};
use super::record;
use super::{apply, collection, index, key, short_names, EventKind, ObjectKey};

/// What the readers do with one value read from the engine: the record
/// envelope and payload of an object or journal entry, the state, a
/// cursor, a dictionary, a short-names record, and the key parsers. The
/// bytes are tried as found, and again with a valid crc appended, so that
/// what lies behind the checksum is reached too.
pub fn disk_bytes(data: &[u8]) {
    read_value(data);
    read_value(&record::seal(data.to_vec()));
    read_key(data);
    ObjectHead::check_against_full_parse(data);
}

fn read_value(bytes: &[u8]) {
    let decoded = record::decode(bytes);
    let rv = record::decode_rv(bytes);
    if let Ok((envelope, payload)) = &decoded {
        assert_eq!(
            rv.as_ref().ok(),
            Some(&envelope.rv),
            "decode_rv disagrees with decode"
        );
        open(envelope, payload);
    }
    let _ = collection::decode_state("fuzz", bytes);
    let _ = record::unseal_value::<u64>(bytes);
    if let Ok(body) = record::unseal(bytes) {
        let _ = short_names::decode("fuzz", body);
        // A dictionary record is its crc-sealed zstd dictionary.
        if let Ok(dict) = Dictionary::new(1, body.to_vec(), 3) {
            let mut ctx = ZstdContext::new(3);
            let _ = ctx.decompress(body, body.len(), Some(&dict));
        }
    }
}

/// The payload of a decoded record, as the object and journal readers
/// take it.
fn open(envelope: &record::Envelope, payload: &[u8]) {
    let mut ctx = ZstdContext::new(3);
    let Ok(raw) = record::open_payload(&mut ctx, envelope, payload, None) else {
        return;
    };
    assert_eq!(raw.len(), envelope.raw_len as usize, "open_payload length");
    let _ = serde_json::from_slice::<Value>(&raw);
    if let Ok(p) = serde_json::from_slice::<Payload>(&raw) {
        let _ = p.read();
    }
}

fn read_key(raw: &[u8]) {
    if let Some((name, value, object)) = key::parse_index_entry(raw) {
        assert_eq!(
            key::index_entry(&name, &value, &object),
            raw,
            "an index entry does not parse back to itself"
        );
    }
    if let Some(seq) = key::journal_seq(raw) {
        assert_eq!(key::journal_key(seq)[1..], raw[1..9]);
    }
    if let Some(id) = key::dictionary_id(raw) {
        assert_eq!(key::dictionary_key(id)[1..], raw[1..5]);
    }
    if !raw.is_empty() {
        let _ = key::object_key_from(raw).parse::<ObjectKey>();
    }
}

/// What the store does with an object a watch event brought: its key, its
/// index entries, its record, its journal entry. Each must read back as
/// written.
pub fn watched_object(object: &Value, previous: Option<&Value>) {
    let Ok(key) = ObjectKey::of(object) else {
        return;
    };
    let encoded = key.encode();
    let back: ObjectKey = encoded
        .parse()
        .unwrap_or_else(|e| panic!("stored key {encoded:?} does not parse: {e}"));
    assert_eq!(back, key, "stored key {encoded:?}");
    for entry in index::entries(object, &encoded, &BTreeMap::new()) {
        let (name, _, object_key) = key::parse_index_entry(&entry)
            .unwrap_or_else(|| panic!("index entry {entry:?} does not parse"));
        assert_eq!(
            (name.as_str(), object_key),
            (index::LABEL_INDEX, encoded.clone())
        );
    }

    let raw = serde_json::to_vec(object).unwrap_or_default();
    let rv = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // What a check reads of a record without a full parse agrees with it.
    assert!(
        ObjectHead::parse(&raw).is_some(),
        "the metadata of a stored object does not read: {object}"
    );
    ObjectHead::check_against_full_parse(&raw);
    let meta = apply::record_meta(rv, 1);
    let mut ctx = ZstdContext::new(3);
    let sealed = record::seal_payload(&mut ctx, &raw, meta.clone(), None)
        .unwrap_or_else(|e| panic!("an object does not compress: {e}"));
    let (envelope, payload) = record::decode(&sealed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(envelope.rv, meta.rv);
    let opened =
        record::open_payload(&mut ctx, &envelope, payload, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opened, raw, "a record does not give its object back");

    let (kind, patch) = match previous {
        Some(old) => (EventKind::Modified, journal::merge_diff(old, object)),
        None => (EventKind::Added, object.clone()),
    };
    let patch_json = serde_json::to_vec(&patch).unwrap_or_default();
    let entry = journal::encode_payload(kind, &encoded, &patch_json);
    let back: Payload = serde_json::from_slice(&entry)
        .unwrap_or_else(|e| panic!("a journal payload does not parse: {e}"));
    assert_eq!(
        (back.kind, &back.key, back.patch.as_ref()),
        (kind, &encoded, Some(&patch))
    );
    let (entry_key, body) = back
        .read()
        .unwrap_or_else(|e| panic!("a journal entry does not read back: {e}"));
    assert_eq!(entry_key, key);
    assert!(matches!(body, journal::Body::Patch(p) if p == patch));
    if kind == EventKind::Added {
        let reference: Payload = serde_json::from_slice(&journal::encode_reference(&encoded))
            .unwrap_or_else(|e| panic!("a reference entry does not parse: {e}"));
        let (entry_key, body) = reference
            .read()
            .unwrap_or_else(|e| panic!("a reference entry does not read back: {e}"));
        assert_eq!(entry_key, key);
        assert!(matches!(body, journal::Body::Stored));
    }
}
