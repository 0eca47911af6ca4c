//! Store benchmarks on realistic Pod JSON (2–8 KiB each):
//! apply throughput (events/s, batched), get / list / versions latency at
//! 10k and 100k objects, and on-disk bytes per object against raw JSON.
//!
//! `cargo bench --bench store -- --measurement-time 2 --warm-up-time 1`
//! (`KP_BENCH_SIZES=10000` to skip the 100k store).

#[path = "../tests/it/support/store.rs"]
mod store_support;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use kube_persist::store::{Collection, ObjectKey, Store};
use store_support::{pods_id, realistic_pod, upserts, Rng};

const NAMESPACES: u64 = 50;

fn key_of(i: u64) -> ObjectKey {
    ObjectKey::namespaced(format!("ns{}", i % NAMESPACES), format!("pod-{i}"))
}

fn pod_at(i: u64, rv: u64) -> serde_json::Value {
    let k = key_of(i);
    realistic_pod(k.namespace.as_deref().unwrap_or_default(), &k.name, rv, i)
}

/// A store holding `n` pods, loaded in batches of 1000 as a relist would.
fn loaded(n: u64) -> (tempfile::TempDir, Store, Collection) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let c = store.collection(&pods_id()).unwrap();
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        c.apply(upserts((i..end).map(|j| pod_at(j, j + 1)).collect(), end))
            .unwrap();
        i = end;
    }
    (dir, store, c)
}

fn report_size(n: u64, store: &Store, c: &Collection) {
    store.flush().unwrap();
    let m = c.meta().unwrap();
    let disk = store.size_on_disk().unwrap();
    println!(
        "store/size/{n}: raw JSON {:.0} B/object, record {:.0} B/object ({:.3} of raw), \
         on disk {:.0} B/object ({:.3} of raw) incl. journal of {} entries, dictionary {:?}",
        m.raw_bytes as f64 / n as f64,
        m.stored_bytes as f64 / n as f64,
        m.stored_bytes as f64 / m.raw_bytes as f64,
        disk as f64 / n as f64,
        disk as f64 / m.raw_bytes as f64,
        m.journal_len,
        m.dictionary_id,
    );
}

fn sizes() -> Vec<u64> {
    std::env::var("KP_BENCH_SIZES")
        .ok()
        .map(|s| {
            s.split(',')
                .map(|n| n.trim().parse().expect("KP_BENCH_SIZES: numbers"))
                .collect()
        })
        .unwrap_or_else(|| vec![10_000, 100_000])
}

fn bench_store(cr: &mut Criterion) {
    for n in sizes() {
        let (_dir, store, c) = loaded(n);
        report_size(n, &store, &c);

        let mut g = cr.benchmark_group(format!("store/{n}"));
        let mut rng = Rng::new(n);
        g.throughput(Throughput::Elements(1));
        g.bench_function("get", |b| {
            b.iter(|| c.get(&key_of(rng.below(n))).unwrap().unwrap());
        });
        // The floor under get: parsing the same JSON into a Value, which
        // every read returns. get/parse is the store's own overhead as a
        // ratio that does not depend on how loaded the machine is.
        let raws: Vec<Vec<u8>> = (0..64)
            .map(|i| serde_json::to_vec(&pod_at(i, 1)).unwrap())
            .collect();
        g.bench_function("json_parse_baseline", |b| {
            b.iter(|| {
                serde_json::from_slice::<serde_json::Value>(&raws[rng.below(64) as usize]).unwrap()
            });
        });
        g.throughput(Throughput::Elements(n / NAMESPACES));
        g.bench_function(BenchmarkId::new("list_namespace", n / NAMESPACES), |b| {
            b.iter(|| {
                c.list_namespace(&format!("ns{}", rng.below(NAMESPACES)))
                    .unwrap()
            });
        });
        g.throughput(Throughput::Elements(n));
        g.bench_function("versions", |b| b.iter(|| c.versions().unwrap()));
        if n <= 10_000 {
            g.bench_function("list", |b| b.iter(|| c.list().unwrap()));
        }

        // Modifications of existing pods, as a watch delivers them.
        let mut rv = n + 1;
        for batch in [1u64, 100, 1000] {
            g.throughput(Throughput::Elements(batch));
            g.bench_function(BenchmarkId::new("apply_batch", batch), |b| {
                b.iter_batched(
                    || {
                        rv += batch;
                        let objs = (0..batch).map(|j| pod_at(rng.below(n), rv + j)).collect();
                        upserts(objs, rv + batch)
                    },
                    |batch| c.apply(batch).unwrap(),
                    BatchSize::PerIteration,
                );
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_store
}
criterion_main!(benches);
