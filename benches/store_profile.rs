//! A small fixed store workload for profilers: process CPU and wall time per
//! phase (relist into a fresh store, modifications in batches of 100, get,
//! list_namespace, versions, reopen + first get). Meant to run under
//! `valgrind --tool=callgrind` or `perf record`, where instruction counts
//! per function compare before/after regardless of machine load:
//!
//! `cargo bench --bench store_profile --no-run`, then run the binary with
//! `[objects] [phase,phase..]` (phases: modify, paced, get, list, versions,
//! open, levels). `KP_STORE=dir` keeps (or reuses) the store; `KP_KEY=<64 hex
//! digits>` encrypts it at rest under that key; `KP_ENGINE=sled|redb` picks
//! the engine of a fresh store.
#[path = "../tests/it/support/store.rs"]
mod store_support;

use std::time::Instant;

use kube_persist::store::{EncryptionKey, ObjectKey, Store, StoreOptions};
use store_support::{pods_id, realistic_pod, upserts, Rng};

const NS: u64 = 50;

fn key_of(i: u64) -> ObjectKey {
    ObjectKey::namespaced(format!("ns{}", i % NS), format!("pod-{i}"))
}
fn pod_at(i: u64, rv: u64) -> serde_json::Value {
    let k = key_of(i);
    realistic_pod(k.namespace.as_deref().unwrap_or_default(), &k.name, rv, i)
}

/// The store's options: encrypted under `KP_KEY` when it is set, in the
/// engine `KP_ENGINE` names.
fn options() -> StoreOptions {
    let encryption_key = std::env::var("KP_KEY")
        .ok()
        .map(|hex| EncryptionKey::from_hex(&hex, "KP_KEY").expect("KP_KEY: 64 hex digits"));
    let engine = std::env::var("KP_ENGINE")
        .ok()
        .map(|e| e.parse().expect("KP_ENGINE: sled or redb"));
    StoreOptions {
        encryption_key,
        engine,
        ..StoreOptions::default()
    }
}

fn cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn phase<T>(name: &str, per: u64, f: impl FnOnce() -> T) -> T {
    let (c0, w0) = (cpu(), Instant::now());
    let r = f();
    let (c1, w1) = (cpu(), w0.elapsed());
    println!(
        "{name:<28} {:>9.1} µs cpu/op  {:>9.1} µs wall/op  (n={per})",
        (c1 - c0) * 1e6 / per as f64,
        w1.as_secs_f64() * 1e6 / per as f64
    );
    r
}

fn main() {
    // `cargo bench` passes `--bench`; flags are not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u64 = args
        .first()
        .map_or(10_000, |s| s.parse().expect("objects: a number"));
    let only: Option<String> = args.get(1).cloned();
    let on = |p: &str| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == p));
    if only.as_deref() == Some("levels") {
        use kube_persist::store::dictionary::{Dictionary, ZstdContext};
        let raws: Vec<Vec<u8>> = (0..3000)
            .map(|i| serde_json::to_vec(&pod_at(i, i)).unwrap())
            .collect();
        let total: usize = raws.iter().map(Vec::len).sum();
        for level in [1, 2, 3, 5] {
            let d = Dictionary::train(1, &raws[..200], 32 * 1024, level).unwrap();
            let mut ctx = ZstdContext::new(level);
            let mut out = 0;
            let t = Instant::now();
            for _ in 0..3 {
                out = raws
                    .iter()
                    .map(|r| ctx.compress(r, Some(&d)).unwrap().len())
                    .sum::<usize>();
            }
            let dt = t.elapsed().as_secs_f64() / 3.0 / raws.len() as f64 * 1e6;
            let frames: Vec<_> = raws
                .iter()
                .map(|r| ctx.compress(r, Some(&d)).unwrap())
                .collect();
            let t = Instant::now();
            for (f, r) in frames.iter().zip(&raws) {
                ctx.decompress(f, r.len(), Some(&d)).unwrap();
            }
            let dd = t.elapsed().as_secs_f64() / raws.len() as f64 * 1e6;
            println!(
                "level {level}: ratio {:.4}, compress {dt:.1} µs, decompress {dd:.1} µs",
                out as f64 / total as f64
            );
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var("KP_STORE").map_or(dir.path().join("store"), Into::into);
    let fresh = !path.exists();
    if on("open") && !fresh {
        phase("open + first get", 1, || {
            let store = Store::open_with(&path, options()).unwrap();
            let c = store.collection(&pods_id()).unwrap();
            c.get(&key_of(1)).unwrap().unwrap();
        });
    }
    {
        let store = Store::open_with(&path, options()).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        // Relist into a fresh store: objects pre-built so only the store is measured.
        let objs: Vec<Vec<serde_json::Value>> = (0..n)
            .step_by(1000)
            .filter(|_| fresh)
            .map(|i| (i..(i + 1000).min(n)).map(|j| pod_at(j, j + 1)).collect())
            .collect();
        if fresh {
            phase("relist apply (per object)", n, || {
                let mut end = 0;
                for b in objs {
                    end += b.len() as u64;
                    c.apply(upserts(b, end)).unwrap();
                }
            });
        }
        let mut rng = Rng::new(7);
        let mut rv = n + 1;
        if on("modify") {
            let batches: Vec<_> = (0..20)
                .map(|_| {
                    let objs = (0..100).map(|j| pod_at(rng.below(n), rv + j)).collect();
                    rv += 100;
                    upserts(objs, rv)
                })
                .collect();
            phase("modify batch100 (per event)", 2000, || {
                for b in batches {
                    c.apply(b).unwrap();
                }
            });
        }
        if on("paced") {
            // What a running informer does at 200 writes/s: one durable
            // single-event apply every 5 ms; the latency of each.
            let mut lat = Vec::with_capacity(1000);
            for _ in 0..1000 {
                let b = upserts(vec![pod_at(rng.below(n), rv)], rv);
                rv += 1;
                let t = Instant::now();
                c.apply(b).unwrap();
                let took = t.elapsed();
                lat.push(took.as_secs_f64() * 1e3);
                std::thread::sleep(std::time::Duration::from_millis(5).saturating_sub(took));
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "paced single apply (200/s)   p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n=1000)",
                lat[500], lat[990], lat[999]
            );
        }
        if on("get") {
            let keys: Vec<_> = (0..2000).map(|_| key_of(rng.below(n))).collect();
            phase("get", 2000, || {
                for k in &keys {
                    c.get(k).unwrap().unwrap();
                }
            });
        }
        if on("list") {
            phase("list_namespace", 10, || {
                for i in 0..10 {
                    c.list_namespace(&format!("ns{i}")).unwrap();
                }
            });
        }
        if on("versions") {
            phase("versions", 3, || {
                for _ in 0..3 {
                    c.versions().unwrap();
                }
            });
        }
    }
    if on("open") && fresh {
        phase("open + first get", 1, || {
            let store = Store::open_with(&path, options()).unwrap();
            let c = store.collection(&pods_id()).unwrap();
            c.get(&key_of(1)).unwrap().unwrap();
            std::mem::forget((c, store));
        });
    }
}
