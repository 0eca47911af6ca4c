//! In-process parts of a restart, without process start-up: how long the
//! store takes to open and answer its first read, to hand the relist diff
//! its key → resourceVersion map, and to apply a batch of watch events
//! durably. `kube-persist bench resume` measures the whole restart, each
//! contender in its own process; these isolate the store's share of it.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kube_persist::store::{Batch, CollectionId, Delta, Store};
use serde_json::Value;

#[path = "support/pods.rs"]
mod support;
use support::{key_of, pods};

const COUNTS: [usize; 2] = [1_000, 10_000];

fn pods_id() -> CollectionId {
    CollectionId::of::<k8s_openapi::api::core::v1::Pod>()
}

/// A store at `dir` holding `pods`, applied in list-sized batches as a
/// relist would.
fn filled_store(dir: &Path, pods: &[Value]) {
    let store = Store::open(dir).expect("open");
    let collection = store.collection(&pods_id()).expect("collection");
    for (i, chunk) in pods.chunks(500).enumerate() {
        collection
            .apply(Batch {
                deltas: chunk.iter().cloned().map(Delta::Upsert).collect(),
                rv: Some(format!("{}", 1_000_000 + i)),
            })
            .expect("apply");
    }
}

fn open_and_first_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_open_first_get");
    group.sample_size(20);
    for count in COUNTS {
        let pods = pods(count);
        let dir = tempfile::tempdir().expect("tempdir");
        filled_store(dir.path(), &pods);
        let probe = key_of(&pods[pods.len() / 2]);
        group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, _| {
            b.iter(|| {
                let store = Store::open_existing(dir.path()).expect("open");
                let collection = store.collection(&pods_id()).expect("collection");
                black_box(collection.get(&probe).expect("get").expect("found"));
            })
        });
    }
    group.finish();
}

fn versions(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_versions");
    group.sample_size(20);
    for count in COUNTS {
        let pods = pods(count);
        let dir = tempfile::tempdir().expect("tempdir");
        filled_store(dir.path(), &pods);
        let store = Store::open_existing(dir.path()).expect("open");
        let collection = store.collection(&pods_id()).expect("collection");
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, _| {
            b.iter(|| black_box(collection.versions().expect("versions").len()))
        });
    }
    group.finish();
}

fn apply_batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_apply_durable");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    let pods = pods(1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    filled_store(dir.path(), &pods);
    let store = Store::open_existing(dir.path()).expect("open");
    let collection = store.collection(&pods_id()).expect("collection");
    for batch in [1usize, 100] {
        let mut rv = 2_000_000u64;
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                // Each event is a real modification: a new RV and label.
                let deltas = pods
                    .iter()
                    .cycle()
                    .skip(rv as usize % pods.len())
                    .take(batch)
                    .map(|pod| {
                        rv += 1;
                        let mut pod = pod.clone();
                        pod["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                        pod["metadata"]["labels"]["bench-rv"] = Value::String(rv.to_string());
                        Delta::Upsert(pod)
                    })
                    .collect();
                collection
                    .apply(Batch {
                        deltas,
                        rv: Some(rv.to_string()),
                    })
                    .expect("apply")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, open_and_first_read, versions, apply_batches);
criterion_main!(benches);
