//! Entry points for the fuzz targets in `tests/fuzz`, behind the `fuzzing`
//! feature: not part of the API. Each takes arbitrary bytes and panics only
//! where the code under test broke a promise.

use std::cmp::Ordering;

use kube::core::WatchEvent;
use serde_json::Value;

use crate::resource_version::{compare, covers, is_older, is_well_formed};
use crate::watcher::failure::Failure;
use crate::watcher::object::{key_of, rv_of, strip_managed_fields};

/// What the store's readers do with a value read from the engine (see
/// `store::fuzzing`).
pub fn disk_bytes(data: &[u8]) {
    crate::store::fuzzing::disk_bytes(data);
}

/// One line of a watch response body: decoded as kube decodes it, then
/// taken through what the watcher and the store do with the event.
pub fn watch_line(line: &[u8]) {
    let Ok(event) = serde_json::from_slice::<WatchEvent<Value>>(line) else {
        return;
    };
    match event {
        WatchEvent::Added(obj) | WatchEvent::Modified(obj) | WatchEvent::Deleted(obj) => {
            watched(obj);
        }
        WatchEvent::Bookmark(b) => resource_versions(&b.metadata.resource_version),
        WatchEvent::Error(status) => {
            let _ = Failure::of_status(&status).retry_after();
        }
    }
}

fn watched(mut obj: Value) {
    let rv = rv_of(&obj).map(str::to_string);
    if let Some(rv) = &rv {
        resource_versions(rv);
    }
    let key = key_of(&obj);
    let before = obj.clone();
    strip_managed_fields()(&mut obj);
    assert_eq!(key_of(&obj), key, "the transform moved the object");
    assert_eq!(rv_of(&obj).map(str::to_string), rv);
    crate::store::fuzzing::watched_object(&obj, Some(&before));
    crate::store::fuzzing::watched_object(&obj, None);
}

/// The order of resourceVersions (KEP-5504) on a value from the server,
/// against itself and a few neighbours: total where both are well formed,
/// antisymmetric always.
fn resource_versions(rv: &str) {
    for other in [
        "",
        "0",
        "1",
        "9",
        "10",
        "18446744073709551615",
        "99999999999999999999",
        rv,
    ] {
        let ab = compare(rv, other);
        let ba = compare(other, rv);
        assert_eq!(ab, ba.map(Ordering::reverse), "compare({rv:?}, {other:?})");
        if is_well_formed(rv) && is_well_formed(other) {
            assert!(
                ab.is_some(),
                "well-formed {rv:?} and {other:?} are unordered"
            );
        }
        assert!(!(is_older(rv, other) && is_older(other, rv)));
        if is_older(rv, other) {
            assert!(
                !covers(rv, other),
                "{rv:?} is older than {other:?} and covers it"
            );
        }
    }
    // Ordered or not, a value covers itself and is not older than itself.
    assert!(covers(rv, rv) && !is_older(rv, rv), "{rv:?} against itself");
}
