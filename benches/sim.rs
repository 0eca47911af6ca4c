//! The simulator's own cost per request, since every test and benchmark runs
//! on it: a LIST of 10,000 pods over HTTP, whole and as metadata only (what
//! a relist after 410 reads), and 1,000 pod writes (the work of one second
//! of a 1k writes/s load) with one watch stream open, as an informer would
//! have.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use kube_persist::sim::{SimConfig, Simulator};

fn start(pods: usize, namespaces: usize) -> (tokio::runtime::Runtime, Simulator) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = rt
        .block_on(Simulator::start(SimConfig {
            pods,
            namespaces,
            ..SimConfig::default()
        }))
        .expect("simulator");
    (rt, sim)
}

fn list_10k(c: &mut Criterion) {
    let (rt, sim) = start(10_000, 40);
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/pods", sim.url());
    let mut g = c.benchmark_group("sim");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(10_000));
    for (name, accept) in [
        ("list_10k_pods", "application/json"),
        (
            "list_10k_pods_metadata",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        ),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let body = http
                    .get(&url)
                    .header("Accept", accept)
                    .send()
                    .await
                    .expect("list")
                    .bytes()
                    .await
                    .expect("body");
                black_box(body.len())
            })
        });
    }
    g.finish();
    rt.block_on(sim.shutdown());
}

fn writes_1k(c: &mut Criterion) {
    let (rt, sim) = start(1_000, 4);
    // One watcher draining every event, as a running informer would.
    let url = format!(
        "{}/api/v1/pods?watch=1&resourceVersion={}&allowWatchBookmarks=true",
        sim.url(),
        sim.current_rv()
    );
    let drain = rt.spawn(async move {
        let resp = reqwest::get(&url).await.expect("watch");
        let mut body = resp.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            black_box(chunk.len());
        }
    });
    let mut g = c.benchmark_group("sim");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("writes_1k_pods_one_watch", |b| {
        b.iter(|| black_box(sim.mutate_counted(1_000)))
    });
    g.finish();
    drain.abort();
    rt.block_on(sim.shutdown());
}

criterion_group!(benches, list_10k, writes_1k);
criterion_main!(benches);
