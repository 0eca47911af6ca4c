//! What the bench counts against a contender on the real server: only the
//! requests made after its mark, none of the bench's own.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::WatchParams;
use kube::Api;
use kube_persist::bench::apiserver::{self, APISERVER_PROGRAM};
use kube_persist::bench::cluster::Cluster;

use crate::support::apiserver::built;

#[test]
fn the_bench_own_requests_before_a_mark_are_not_counted_after_it() {
    let Some(dir) = built() else { return };
    let program = apiserver::program(&dir, APISERVER_PROGRAM).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = Cluster::kube_apiserver(&rt, &program, 20, 1, 1).unwrap();
    let kubeconfig = cluster.endpoint().kubeconfig.unwrap();
    let client = rt
        .block_on(apiserver::client_from_kubeconfig(&kubeconfig))
        .unwrap();

    // The bench reads the pods, and a watch of its own (as the ones that
    // drive history out) is open across the mark: the server logs that
    // watch again when it ends, after the mark.
    let pods = cluster.pods(&rt).unwrap();
    assert_eq!(pods.len(), 20);
    let api: Api<Pod> = Api::all(client);
    let mut watch = rt
        .block_on(api.watch(&WatchParams::default().timeout(2), "0"))
        .unwrap()
        .boxed();
    let mark = cluster.mark(&rt).unwrap();
    rt.block_on(async {
        while let Some(event) = watch.next().await {
            event.unwrap();
        }
    });
    let served = cluster.served_since(&rt, &mark).unwrap();
    assert_eq!((served.list_requests, served.watch_requests), (0, 0));

    // A LIST made after the mark is counted, once.
    let mark = cluster.mark(&rt).unwrap();
    cluster.pods(&rt).unwrap();
    let served = cluster.served_since(&rt, &mark).unwrap();
    assert_eq!((served.list_requests, served.watch_requests), (1, 0));
    cluster.shutdown(&rt);
}
