//! At-rest encryption: round trips on both engines, nothing readable on
//! disk without the key, typed errors for a missing or wrong key, damage
//! told apart from a wrong key, and encrypting an existing store.

use std::path::Path;

use super::secrets::{old_values, secret, secrets_id};
use crate::engine_test;
use crate::support::store::{disk_leaks, on, pod, pods_id, realistic_pod};
use kube_persist::store::raw::{RawStore, Record};
use kube_persist::store::{
    record, Batch, Delta, DictionaryPolicy, EncryptionKey, Error, ObjectKey, Store, StoreOptions,
};
use serde_json::Value;

const PASSWORD: &str = "old-pw-7f3a9c1e2b";
const NEW_PASSWORD: &str = "rotated-9e8d7c6b5a";

fn key(byte: u8) -> EncryptionKey {
    EncryptionKey::from_bytes([byte; 32])
}

fn keyed(engine: kube_persist::store::EngineKind, key: Option<EncryptionKey>) -> StoreOptions {
    StoreOptions {
        encryption_key: key,
        // Small enough that the pods get a dictionary, where one may be.
        dictionary: DictionaryPolicy {
            min_objects: 20,
            ..DictionaryPolicy::default()
        },
        ..on(engine)
    }
}

/// Writes 40 pods (with a marker string in their spec) and a rotated Secret.
fn fill(path: &Path, options: StoreOptions) {
    let store = Store::open_with(path, options).unwrap();
    let pods = store.collection(&pods_id()).unwrap();
    let deltas = (0..40)
        .map(|i| {
            let mut p = realistic_pod("ns", &format!("p{i}"), i + 1, i);
            p["spec"]["containers"][0]["image"] = "registry.example/private-image:7.1".into();
            Delta::Upsert(p)
        })
        .collect();
    pods.apply(Batch {
        deltas,
        rv: Some("40".into()),
    })
    .unwrap();
    let secrets = store.collection(&secrets_id()).unwrap();
    for (rv, pw) in [(41, PASSWORD), (42, NEW_PASSWORD)] {
        secrets
            .apply(Batch {
                deltas: vec![Delta::Upsert(secret(rv, pw))],
                rv: Some(rv.to_string()),
            })
            .unwrap();
    }
}

/// What a store holds, read through the API: objects and journals.
fn contents(store: &Store) -> Vec<Value> {
    let mut out = Vec::new();
    for id in [pods_id(), secrets_id()] {
        let c = store.collection(&id).unwrap();
        out.extend(c.list().unwrap());
        out.extend(c.journal_since(0).unwrap().into_iter().map(|e| e.patch));
    }
    out
}

/// Every content string that must not be on disk under encryption.
fn plaintext() -> Vec<String> {
    let mut v = old_values();
    v.push("private-image".into());
    v.push(NEW_PASSWORD.into());
    v
}

fn leaks(path: &Path) -> Vec<String> {
    let needles = plaintext();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    disk_leaks(path, &needles)
}

engine_test! {
    fn an_encrypted_store_round_trips_and_shows_nothing_on_disk(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let (plain, sealed) = (tmp.path().join("plain"), tmp.path().join("sealed"));
        fill(&plain, keyed(engine, None));
        fill(&sealed, keyed(engine, Some(key(1))));
        let expected = contents(&Store::open_read_only(&plain).unwrap());
        let reopened = Store::open_with(&sealed, keyed(engine, Some(key(1)))).unwrap();
        assert_eq!(contents(&reopened), expected);
        assert_eq!(reopened.collection(&pods_id()).unwrap().meta().unwrap().dictionary_id, None);
        drop(reopened);
        let read_only = Store::open_read_only_with_key(&sealed, Some(key(1))).unwrap();
        assert_eq!(contents(&read_only), expected);
        drop(read_only);
        // The plaintext store shows its content (the check can fail) ...
        assert!(!leaks(&plain).is_empty());
        // ... the encrypted one none of it; names stay readable, as documented.
        assert_eq!(leaks(&sealed), Vec::<String>::new());
        assert!(!disk_leaks(&sealed, &["p39"]).is_empty());
    }
}

engine_test! {
    fn without_the_key_or_with_another_the_store_is_refused_not_damaged(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        fill(&path, keyed(engine, Some(key(1))));
        let id = key(1).id();
        let needed = |e: Error| match e {
            Error::KeyNeeded { key_id, .. } => {
                assert_eq!(key_id, id);
            }
            other => panic!("{other:?}"),
        };
        needed(Store::open_with(&path, keyed(engine, None)).err().unwrap());
        needed(Store::open_read_only(&path).err().unwrap());
        let message = Store::open_read_only(&path).err().unwrap().to_string();
        assert!(message.contains("--key-file") && message.contains("KUBE_PERSIST_KEY"), "{message}");
        for err in [
            Store::open_with(&path, keyed(engine, Some(key(2)))).err().unwrap(),
            Store::open_read_only_with_key(&path, Some(key(2))).err().unwrap(),
        ] {
            match err {
                Error::WrongKey { expected, given, .. } => assert_eq!((expected, given), (id, key(2).id())),
                other => panic!("{other:?}"),
            }
        }
        // Nothing was changed by the refused opens.
        let store = Store::open_with(&path, keyed(engine, Some(key(1)))).unwrap();
        assert_eq!(store.collection(&pods_id()).unwrap().list().unwrap().len(), 40);
    }
}

engine_test! {
    fn a_sealed_record_that_fails_authentication_is_corrupt(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        fill(&path, keyed(engine, Some(key(1))));
        let at = Record::Object(ObjectKey::namespaced("ns", "p3"));
        {
            let raw = RawStore::open(&path).unwrap();
            let bytes = raw.get(&pods_id(), &at).unwrap().unwrap();
            // A flip in the ciphertext under a recomputed crc: only the
            // cipher's tag can tell.
            let body = record::unseal(&bytes).unwrap();
            let mut body = body.to_vec();
            let mid = body.len() - 8;
            body[mid] ^= 0x01;
            raw.put(&pods_id(), &at, record::seal(body)).unwrap();
        }
        let store = Store::open_with(&path, keyed(engine, Some(key(1)))).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        let err = c.get(&ObjectKey::namespaced("ns", "p3")).unwrap_err();
        assert!(matches!(&err, Error::Corrupt { key, .. } if key == "ns/p3"), "{err:?}");
        // The decoder's report is the error's source; the message ends with it.
        let cause = std::error::Error::source(&err).expect("the decoder's error is kept");
        assert!(cause.to_string().contains("authentication"), "{cause}");
        assert!(err.to_string().contains("authentication"), "{err}");
        assert!(c.get(&ObjectKey::namespaced("ns", "p4")).unwrap().is_some());
    }
}

engine_test! {
    fn encrypting_an_existing_store_keeps_everything_and_leaves_no_plaintext(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        fill(&path, keyed(engine, None));
        let before = {
            let store = Store::open_read_only(&path).unwrap();
            assert!(store.collection(&pods_id()).unwrap().meta().unwrap().dictionary_id.is_some());
            contents(&store)
        };
        assert!(!leaks(&path).is_empty());
        Store::encrypt(&path, key(7)).unwrap();
        assert_eq!(leaks(&path), Vec::<String>::new());
        let store = Store::open_with(&path, keyed(engine, Some(key(7)))).unwrap();
        assert_eq!(contents(&store), before);
        let pods = store.collection(&pods_id()).unwrap();
        assert_eq!(pods.meta().unwrap().dictionary_id, None);
        let report = pods.verify().unwrap();
        assert!(report.is_ok() && report.objects == 40, "{report:?}");
        // Writes go on, sealed.
        pods.apply(Batch { deltas: vec![Delta::Upsert(pod("ns", "late", 50, &[]))], rv: Some("50".into()) }).unwrap();
        drop((pods, store));
        assert!(matches!(Store::open_read_only(&path), Err(Error::KeyNeeded { .. })));
    }
}
