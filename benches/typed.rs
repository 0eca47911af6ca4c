//! Typed reads against deserializing the same JSON from memory: a typed
//! `get` of a pod from a 100k-pod store (sled read, crc, zstd with the
//! collection's dictionary, serde into `Pod`) next to `serde_json::from_slice`
//! of that pod's bytes already in memory, and next to the untyped `get`
//! (into a `serde_json::Value`). Reads cycle through 1,000 random keys.
//!
//! `KP_TYPED_BENCH_OBJECTS` changes the store's size (default 100,000).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use k8s_openapi::api::core::v1::Pod;
use kube_persist::informer::TypedReader;
use kube_persist::store::{Batch, CollectionId, Delta, ObjectKey, Store};
use rand::seq::SliceRandom;

#[path = "support/pods.rs"]
mod support;
use rand::SeedableRng;
use serde_json::Value;
use support::{key_of, pods};

fn objects() -> usize {
    std::env::var("KP_TYPED_BENCH_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

fn typed_get(c: &mut Criterion) {
    let count = objects();
    let pods = pods(count);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("s")).expect("open");
    let collection = store
        .collection(&CollectionId::of::<Pod>())
        .expect("collection");
    for (i, chunk) in pods.chunks(1000).enumerate() {
        collection
            .apply(Batch {
                deltas: chunk.iter().cloned().map(Delta::Upsert).collect(),
                rv: Some(format!("{}", 1_000_000 + i)),
            })
            .expect("apply");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut sample: Vec<&Value> = pods.iter().collect();
    sample.shuffle(&mut rng);
    sample.truncate(1000);
    let keys: Vec<ObjectKey> = sample.iter().map(|p| key_of(p)).collect();
    // The same objects' JSON, as the store returns it (after the transform
    // that the informer would have applied: none here).
    let json: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| collection.get_json(k).expect("read").expect("present").json)
        .collect();
    let uncached = TypedReader::<Pod>::of_collection(collection.clone())
        .expect("reader")
        .with_cache_bytes(0);
    let cached = TypedReader::<Pod>::of_collection(collection.clone()).expect("reader");

    let mut group = c.benchmark_group(format!("typed get, {count} pods"));
    let mut i = 0;
    group.bench_function("serde_json::from_slice::<Pod> from memory", |b| {
        b.iter(|| {
            i = (i + 1) % json.len();
            black_box(serde_json::from_slice::<Pod>(&json[i]).expect("pod"))
        })
    });
    group.bench_function("TypedReader::<Pod>::get, no cache", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(uncached.get(&keys[i]).expect("read").expect("present"))
        })
    });
    group.bench_function("TypedReader::<Pod>::get, cache hit", |b| {
        b.iter(|| black_box(cached.get(&keys[0]).expect("read").expect("present")))
    });
    group.bench_function("Collection::get into a Value", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(collection.get(&keys[i]).expect("read").expect("present"))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(5));
    targets = typed_get
}
criterion_main!(benches);
