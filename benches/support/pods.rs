//! Pods for the benches, as the simulator serves them.

use kube_persist::sim::{SimConfig, Simulator};
use kube_persist::store::ObjectKey;
use serde_json::Value;

/// `count` realistic pods, as the simulator serves them.
pub fn pods(count: usize) -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let sim = Simulator::start(SimConfig {
            pods: count,
            namespaces: (count / 250).max(1),
            ..SimConfig::default()
        })
        .await
        .expect("simulator");
        let pods = sim.objects("pods");
        sim.shutdown().await;
        pods
    })
}

/// The key of a pod.
pub fn key_of(pod: &Value) -> ObjectKey {
    ObjectKey {
        namespace: pod["metadata"]["namespace"].as_str().map(str::to_owned),
        name: pod["metadata"]["name"].as_str().expect("name").to_owned(),
    }
}
