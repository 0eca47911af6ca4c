//! Real clients nobody here wrote, unchanged, against the simulator:
//! kube-runtime's watcher/reflector, kubectl, the Python `kubernetes`
//! client, and the `kube-persist sim` binary itself. A client that is not
//! installed fails its test, unless skipping it was asked for
//! (`KP_SKIP_KUBECTL=1`, `KP_SKIP_PYTHON=1`), which prints a loud SKIPPING
//! banner.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::sim::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::ResourceExt;
use kube_persist::sim::{fixtures, Simulator};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

type ChildLines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Spawns `cmd` (killed when dropped) with its stdout read line by line.
fn spawn_lines(cmd: &mut Command) -> (tokio::process::Child, ChildLines) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, out)
}

/// How long a child client may take to print its next line before it is
/// called hung. Far above HANG_GUARD: a Python interpreter importing the
/// kubernetes package on a loaded 2-core machine took over 20 s to list 40
/// pods, which is slowness, not a hang.
const CHILD_GUARD: Duration = Duration::from_secs(180);

/// The next stdout line of a child; `None` when it closed its stdout.
async fn next_line(out: &mut ChildLines, who: &str) -> Option<String> {
    tokio::time::timeout(CHILD_GUARD, out.next_line())
        .await
        .unwrap_or_else(|_| panic!("{who} hung"))
        .unwrap()
}

/// `namespace/name` → resourceVersion of the simulator's current pods
/// that `keep` selects.
fn sim_pods_where(sim: &Simulator, keep: impl Fn(&Value) -> bool) -> BTreeMap<String, String> {
    sim.objects("pods")
        .iter()
        .filter(|o| keep(o))
        .map(|o| (key_of(o), rv_of(o).to_string()))
        .collect()
}

/// `namespace/name` → resourceVersion of the simulator's current pods.
fn sim_pods(sim: &Simulator) -> BTreeMap<String, String> {
    sim_pods_where(sim, |_| true)
}

fn store_pods(store: &reflector::Store<Pod>) -> BTreeMap<String, String> {
    store
        .state()
        .iter()
        .map(|p| {
            (
                format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()),
                p.resource_version().unwrap_or_default(),
            )
        })
        .collect()
}

/// Runs a reflector with `config` until its store matches the simulator,
/// then through a burst of writes, and checks it follows.
async fn reflector_follows(sim: &Simulator, config: watcher::Config) {
    let api: Api<Pod> = Api::all(sim.client());
    let (store, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config)).applied_objects();
    let task = tokio::spawn(stream.for_each(|ev| {
        if let Err(e) = ev {
            panic!("watcher error: {e}");
        }
        futures::future::ready(())
    }));
    tokio::time::timeout(HANG_GUARD, store.wait_until_ready())
        .await
        .expect("store became ready")
        .expect("writer alive");
    let want = sim_pods(sim);
    eventually("the store to equal the simulator", || {
        store_pods(&store) == want
    })
    .await;
    sim.mutate(60);
    sim.create("pods", pod("ns-000", "added-later", &[]))
        .unwrap();
    let want = sim_pods(sim);
    eventually("the store to follow live changes", || {
        store_pods(&store) == want
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn kube_runtime_reflector_paginated_list_then_watch() {
    let sim = sim(|c| c.pods = 45).await;
    reflector_follows(&sim, watcher::Config::default().page_size(7)).await;
    let stats = sim.stats();
    assert_eq!(stats.list_requests, 7, "45 pods in pages of 7");
    assert!(stats.watch_requests >= 1);
}

#[tokio::test]
async fn kube_runtime_reflector_streaming_list() {
    let sim = sim(|c| c.pods = 30).await;
    reflector_follows(&sim, watcher::Config::default().streaming_lists()).await;
    assert_eq!(sim.stats().list_requests, 0, "no LIST with streaming lists");
}

#[tokio::test]
async fn kube_runtime_reflector_with_selectors_and_any_semantic() {
    let sim = sim(|c| c.pods = 60).await;
    let api: Api<Pod> = Api::all(sim.client());
    let (store, writer) = reflector::store();
    let config = watcher::Config::default()
        .any_semantic()
        .labels("app in (web,api),tier!=db")
        .fields("metadata.namespace=ns-001");
    let task = tokio::spawn(
        reflector(writer, watcher(api, config))
            .applied_objects()
            .for_each(|_| futures::future::ready(())),
    );
    tokio::time::timeout(HANG_GUARD, store.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    let want = sim_pods_where(&sim, |o| {
        let l = &o["metadata"]["labels"];
        o["metadata"]["namespace"] == "ns-001"
            && (l["app"] == "web" || l["app"] == "api")
            && l["tier"] != "db"
    });
    assert!(!want.is_empty());
    eventually("the selected store", || store_pods(&store) == want).await;
    task.abort();
}

#[tokio::test]
async fn kube_dynamic_api_serves_the_custom_resource() {
    let sim = sim(|_| {}).await;
    sim.create("widgets", fixtures::widget("w", "one", 1))
        .unwrap();
    let gvk = GroupVersionKind::gvk(
        kube_persist::sim::resources::CUSTOM_GROUP,
        kube_persist::sim::resources::CUSTOM_VERSION,
        "Widget",
    );
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let api: Api<DynamicObject> = Api::namespaced_with(sim.client(), "w", &ar);
    let list = api.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].name_any(), "one");
    let mut made = fixtures::widget("w", "two", 2);
    made["metadata"]["labels"] = serde_json::json!({"x": "y"});
    let obj: DynamicObject = serde_json::from_value(made).unwrap();
    api.create(&Default::default(), &obj).await.unwrap();
    api.delete("one", &Default::default()).await.unwrap();
    let names: Vec<String> = sim.objects("widgets").iter().map(key_of).collect();
    assert_eq!(names, ["w/two"]);
    // kube's discovery reads the documents kubectl reads.
    let discovery = kube::Discovery::new(sim.client()).run().await.unwrap();
    let (ar, caps) = discovery.resolve_gvk(&gvk).expect("Widget discovered");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
}

/// The variable that skips the kubectl tests on a machine without it.
const SKIP_KUBECTL: &str = "KP_SKIP_KUBECTL";

/// kubectl against one simulator, with no kubeconfig of this machine.
struct Kubectl {
    server: String,
    dir: tempfile::TempDir,
}

impl Kubectl {
    /// kubectl for `sim`; `None` when it is not installed and skipping
    /// its tests was asked for (a failure otherwise).
    async fn on(sim: &Simulator) -> Option<Kubectl> {
        let why = match Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .await
        {
            Ok(o) if o.status.success() => {
                return Some(Kubectl {
                    server: sim.url(),
                    dir: tempfile::tempdir().unwrap(),
                })
            }
            Ok(o) => format!(
                "`kubectl version --client` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => {
                format!("kubectl is not installed ({e}); CI installs Debian's kubernetes-client")
            }
        };
        crate::support::unavailable(SKIP_KUBECTL, "the kubectl test", &why);
        None
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--server")
            .arg(&self.server)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            // No kubeconfig: nothing on this machine may leak in.
            .env("KUBECONFIG", self.dir.path().join("no-kubeconfig"))
            .env("HOME", self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Runs kubectl to its end, whatever its exit status.
    async fn output(&self, args: &[&str]) -> std::process::Output {
        tokio::time::timeout(CHILD_GUARD, self.command(args).output())
            .await
            .expect("kubectl hung")
            .expect("kubectl runs")
    }

    /// Runs kubectl, which must succeed; its stdout.
    async fn run(&self, args: &[&str]) -> String {
        let out = self.output(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

#[tokio::test]
async fn kubectl_get_chunked_create_delete_and_watch() {
    let sim = sim(|c| {
        c.pods = 120;
        c.namespaces = 4;
    })
    .await;
    let Some(k) = Kubectl::on(&sim).await else {
        return;
    };
    let expected: Vec<String> = sim.objects("pods").iter().map(key_of).collect();
    let rows = |out: &str| -> Vec<String> {
        let mut lines = out.lines();
        let header = lines.next().expect("a header line");
        assert!(
            header.starts_with("NAMESPACE") && header.contains("NAME"),
            "{header}"
        );
        lines
            .map(|l| {
                let mut cols = l.split_whitespace();
                format!("{}/{}", cols.next().unwrap(), cols.next().unwrap())
            })
            .collect()
    };

    // get pods -A: one request for everything.
    sim.reset_stats();
    let all = k.run(&["get", "pods", "-A"]).await;
    assert_eq!(rows(&all), expected);
    assert_eq!(sim.stats().list_requests, 1);

    // --chunk-size=50: three pages, same rows.
    sim.reset_stats();
    let chunked = k.run(&["get", "pods", "-A", "--chunk-size=50"]).await;
    assert_eq!(rows(&chunked), expected);
    assert_eq!(sim.stats().list_requests, 3, "120 pods in chunks of 50");

    // get -w in the background, then create -f and delete.
    let (mut watch, mut watch_out) = spawn_lines(
        k.command(&[
            "get",
            "configmaps",
            "-n",
            "ns-001",
            "-w",
            "--output-watch-events",
        ])
        .stderr(Stdio::piped()),
    );
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = watch_out.next_line().await {
                lines.lock().unwrap().push(l);
            }
        })
    };
    eventually("kubectl's watch to open", || {
        sim.stats().active_watches >= 1
    })
    .await;
    let manifest = k.dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\n  namespace: ns-001\ndata:\n  greeting: hi\n",
    )
    .unwrap();
    // Older kubectl (Debian's 1.20) validates client-side against an
    // OpenAPI v2 protobuf document, which the simulator does not serve (it
    // serves OpenAPI v3 JSON, which newer kubectl uses); the server still
    // validates the object either way.
    let created = k
        .run(&[
            "create",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ])
        .await;
    assert_eq!(created.trim(), "configmap/hello created");
    let stored = sim
        .get("configmaps", Some("ns-001"), "hello")
        .expect("created");
    assert_eq!(stored["data"]["greeting"], "hi");
    let got = k
        .run(&["get", "configmap", "hello", "-n", "ns-001", "-o", "json"])
        .await;
    let got: Value = serde_json::from_str(&got).unwrap();
    // kubectl hides managedFields unless --show-managed-fields; the server
    // recorded kubectl's create under its manager.
    let mut shown = stored.clone();
    let managed = shown["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields")
        .unwrap();
    assert_eq!(got, shown);
    assert_eq!(managed[0]["manager"], "kubectl-create");
    let deleted = k
        .run(&["delete", "configmap", "hello", "-n", "ns-001"])
        .await;
    assert_eq!(deleted.trim(), "configmap \"hello\" deleted");
    assert!(sim.get("configmaps", Some("ns-001"), "hello").is_none());
    eventually("kubectl -w to print both events", || {
        let l = lines.lock().unwrap();
        l.iter()
            .any(|l| l.starts_with("ADDED") && l.contains("hello"))
            && l.iter()
                .any(|l| l.starts_with("DELETED") && l.contains("hello"))
    })
    .await;
    watch.kill().await.unwrap();
    reader.abort();
    let printed = lines.lock().unwrap().clone();
    let events: Vec<&String> = printed.iter().filter(|l| l.contains("hello")).collect();
    assert_eq!(events.len(), 2, "{printed:?}");
    assert!(events[0].starts_with("ADDED") && events[1].starts_with("DELETED"));

    // Namespaced and cluster-scoped gets, short names, and label changes.
    let ns = k.run(&["get", "ns"]).await;
    assert!(ns.lines().any(|l| l.starts_with("ns-003 ")), "{ns}");
    let first = &expected[0];
    let (pns, pname) = first.split_once('/').unwrap();
    let labeled = k
        .run(&["label", "po", pname, "-n", pns, "checked=yes"])
        .await;
    assert!(labeled.contains("labeled"), "{labeled}");
    assert_eq!(
        sim.get("pods", Some(pns), pname).unwrap()["metadata"]["labels"]["checked"],
        "yes"
    );
}

/// kubectl prints the columns the server's Table carries, as against a real
/// cluster: READY, STATUS and RESTARTS for pods (wide: IP and NODE), the
/// node, secret and configmap columns.
#[tokio::test]
async fn kubectl_get_prints_the_servers_columns() {
    let sim = sim(|c| {
        c.pods = 40;
        c.namespaces = 2;
    })
    .await;
    let Some(k) = Kubectl::on(&sim).await else {
        return;
    };
    let wide = k.run(&["get", "pods", "-n", "ns-000", "-o", "wide"]).await;
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    let pods: BTreeMap<String, Value> = sim
        .objects("pods")
        .into_iter()
        .filter(|p| p["metadata"]["namespace"] == "ns-000")
        .map(|p| (p["metadata"]["name"].as_str().unwrap().to_string(), p))
        .collect();
    let mut seen = 0;
    let mut statuses_seen = std::collections::BTreeSet::new();
    for line in lines {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let pod = &pods[cells[0]];
        let statuses = pod["status"]["containerStatuses"].as_array().unwrap();
        let containers = pod["spec"]["containers"].as_array().unwrap().len();
        let restarts: u64 = statuses
            .iter()
            .map(|s| s["restartCount"].as_u64().unwrap())
            .sum();
        let ready = statuses.iter().filter(|s| s["ready"] == true).count();
        assert_eq!(cells[1], format!("{ready}/{containers}"), "{line}");
        // printPod: a container's waiting or terminated reason wins over
        // the pod's reason (an evicted pod's "Evicted"), which wins over
        // its phase.
        let status = match pod["status"]["phase"].as_str().unwrap() {
            "Pending" => "ContainerCreating",
            "Failed" => "Error",
            phase => phase,
        };
        assert_eq!(cells[2], status, "{line}");
        statuses_seen.insert(status.to_string());
        assert_eq!(cells[3], restarts.to_string(), "{line}");
        assert!(
            cells[4].ends_with(['s', 'm', 'h', 'd', 'y']),
            "an age: {line}"
        );
        assert_eq!(cells[5], pod["status"]["podIP"], "{line}");
        assert_eq!(cells[6], pod["spec"]["nodeName"], "{line}");
        seen += 1;
    }
    assert_eq!(seen, pods.len());
    assert!(
        statuses_seen.len() > 1,
        "the 20 pods of ns-000 are not all alike: {statuses_seen:?}"
    );

    let header = |out: &str| {
        out.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        header(&k.run(&["get", "nodes"]).await),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    );
    sim.create(
        "configmaps",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "two-keys", "namespace": "ns-000"}, "data": {"a": "1", "b": "2"}}),
    )
    .unwrap();
    let cms = k.run(&["get", "configmaps", "-A"]).await;
    assert_eq!(header(&cms), ["NAMESPACE", "NAME", "DATA", "AGE"]);
    let row: Vec<&str> = cms.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["ns-000", "two-keys", "2"], "{cms}");
    assert_eq!(
        header(&k.run(&["get", "ns"]).await),
        ["NAME", "STATUS", "AGE"]
    );
}

/// Events are served like on a real cluster: `kubectl get events` prints
/// printEvent's columns, a field selector on the involved object finds
/// them, and `kubectl describe pod` (which asks for exactly that) lists
/// them under the pod.
#[tokio::test]
async fn kubectl_gets_events_and_describe_lists_a_pods_events() {
    let sim = sim(|c| {
        c.pods = 10;
        c.namespaces = 2;
    })
    .await;
    let Some(k) = Kubectl::on(&sim).await else {
        return;
    };
    let none = k.output(&["get", "events", "-n", "ns-001"]).await;
    assert!(none.status.success());
    assert_eq!(
        String::from_utf8_lossy(&none.stderr).trim(),
        "No resources found in ns-001 namespace."
    );
    let pod = sim
        .objects("pods")
        .into_iter()
        .find(|p| p["metadata"]["namespace"] == "ns-000")
        .unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let now = jiff::Timestamp::now();
    let at = |ago: i64| (now - jiff::SignedDuration::from_secs(ago)).to_string();
    for (i, (reason, component, message, ago)) in [
        (
            "Scheduled",
            "default-scheduler",
            format!("Successfully assigned ns-000/{name} to node-000"),
            300,
        ),
        (
            "Pulled",
            "kubelet",
            "Container image already present on machine".to_string(),
            120,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        sim.create(
            "events",
            serde_json::json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": format!("{name}.{i}"), "namespace": "ns-000"},
                "involvedObject": {"kind": "Pod", "namespace": "ns-000", "name": name,
                                   "uid": pod["metadata"]["uid"], "apiVersion": "v1"},
                "reason": reason, "message": message, "type": "Normal",
                "source": {"component": component},
                "firstTimestamp": at(ago), "lastTimestamp": at(ago), "count": 1,
            }),
        )
        .unwrap();
    }
    // Another pod's event, which the selectors below must leave out.
    sim.create(
        "events",
        serde_json::json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "other.0", "namespace": "ns-000"},
            "involvedObject": {"kind": "Pod", "namespace": "ns-000", "name": "other"},
            "reason": "Killing", "type": "Normal", "source": {"component": "kubelet"},
            "firstTimestamp": at(60), "lastTimestamp": at(60)}),
    )
    .unwrap();

    let listed = k.run(&["get", "events", "-n", "ns-000"]).await;
    let mut lines = listed.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{listed}");
    assert!(
        rows.iter()
            .any(|r| r.split_whitespace().collect::<Vec<_>>()[..4]
                == ["5m", "Normal", "Scheduled", &format!("pod/{name}")]),
        "{listed}"
    );
    let selected = k
        .run(&[
            "get",
            "events",
            "-n",
            "ns-000",
            "--field-selector",
            &format!("involvedObject.name={name},source=kubelet"),
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .await;
    assert_eq!(selected, "Pulled");

    let described = k.run(&["describe", "pod", &name, "-n", "ns-000"]).await;
    let events = described
        .split_once("\nEvents:")
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no Events section: {described}"));
    assert!(events.contains("default-scheduler"), "{events}");
    assert!(events.contains("Successfully assigned"), "{events}");
    assert!(events.contains("Pulled"), "{events}");
    assert!(!events.contains("Killing"), "another pod's event: {events}");
}

/// `kubectl patch` sends a strategic-merge patch by default for built-in
/// types: containers merge by name, as on a real server. Its write is
/// recorded in managedFields under kubectl's manager.
#[tokio::test]
async fn kubectl_patch_merges_containers_by_name() {
    let sim = sim(|_| {}).await;
    sim.create(
        "pods",
        serde_json::json!({"metadata": {"name": "two", "namespace": "ns-000"}, "spec": {"containers": [
            {"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "side:1"},
        ]}}),
    )
    .unwrap();
    let Some(k) = Kubectl::on(&sim).await else {
        return;
    };
    let out = k
        .run(&[
            "patch",
            "pod",
            "two",
            "-n",
            "ns-000",
            "-p",
            r#"{"spec":{"containers":[{"name":"sidecar","image":"side:2"}]}}"#,
        ])
        .await;
    assert!(out.contains("patched"), "{out}");
    let pod = sim.get("pods", Some("ns-000"), "two").unwrap();
    let images: Vec<(&str, &str)> = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["image"].as_str().unwrap()))
        .collect();
    assert_eq!(images, [("app", "app:1"), ("sidecar", "side:2")]);
    let managers: Vec<&str> = pod["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert!(
        managers.iter().any(|m| m.starts_with("kubectl")),
        "{managers:?}"
    );
}

/// `kubectl create configmap|secret|namespace` sends its object as
/// protobuf (kubectl 1.32, which does not fall back to JSON), which the
/// simulator reads into the JSON the object would have had: the objects
/// read back carry what kubectl was given, binary Secret data intact, and
/// none of the zero fields Go's protobuf writes.
#[tokio::test]
async fn kubectl_create_of_built_in_types_sends_protobuf_the_simulator_reads() {
    let sim = sim(|_| {}).await;
    let Some(k) = Kubectl::on(&sim).await else {
        return;
    };
    let out = k
        .output(&[
            "create",
            "configmap",
            "cm1",
            "-n",
            "ns-000",
            "--from-literal=a=b",
            "--from-literal=empty=",
            "-v=9",
        ])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configmap/cm1 created\n"
    );
    // kubectl's curl line for the POST names the body's media type.
    assert!(
        stderr.lines().any(|l| l.contains("-XPOST")
            && l.contains("Content-Type: application/vnd.kubernetes.protobuf")),
        "kubectl did not send protobuf: {stderr}"
    );
    let bin = k.dir.path().join("bin");
    std::fs::write(&bin, [0u8, 0x80, 0xff, b'\n']).unwrap();
    let from_file = format!("--from-file=bin={}", bin.display());
    let created = k
        .run(&[
            "create",
            "secret",
            "generic",
            "s1",
            "-n",
            "ns-000",
            "--from-literal=a=b",
            &from_file,
        ])
        .await;
    assert_eq!(created, "secret/s1 created\n");
    assert_eq!(
        k.run(&["create", "namespace", "demo"]).await,
        "namespace/demo created\n"
    );

    let cm = sim.get("configmaps", Some("ns-000"), "cm1").unwrap();
    assert_eq!(cm["apiVersion"], "v1");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["data"], serde_json::json!({"a": "b", "empty": ""}));
    let meta = cm["metadata"].as_object().unwrap();
    for zero in ["generateName", "selfLink"] {
        assert!(!meta.contains_key(zero), "{zero} in {meta:?}");
    }
    assert_eq!(meta["name"], "cm1");
    assert_eq!(meta["namespace"], "ns-000");
    assert_eq!(meta["managedFields"][0]["manager"], "kubectl-create");

    let secret = sim.get("secrets", Some("ns-000"), "s1").unwrap();
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        secret["data"],
        serde_json::json!({"a": "Yg==", "bin": "AID/Cg=="})
    );
    // And through kubectl again, decoded.
    let a = k
        .run(&[
            "get",
            "secret",
            "s1",
            "-n",
            "ns-000",
            "-o",
            "jsonpath={.data.a}",
        ])
        .await;
    assert_eq!(a, "Yg==");

    let ns = sim.get("namespaces", None, "demo").unwrap();
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["metadata"]["name"], "demo");
    let names = k
        .run(&[
            "get",
            "namespaces",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .await;
    assert!(names.split(' ').any(|n| n == "demo"), "{names}");
}

/// Whether python3 can import the `kubernetes` client; `false` only when
/// skipping its test was asked for with `KP_SKIP_PYTHON` (a failure
/// otherwise).
async fn python_with_kubernetes() -> bool {
    let why = match Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .await
    {
        Ok(o) if o.status.success() => return true,
        Ok(o) => format!(
            "`import kubernetes` failed ({}); CI runs `pip install kubernetes`",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("python3 is not available ({e})"),
    };
    crate::support::unavailable("KP_SKIP_PYTHON", "the python client test", &why);
    false
}

const PYTHON_CLIENT: &str = r#"
import json, sys
from kubernetes import client, watch
cfg = client.Configuration()
cfg.host = sys.argv[1]
api = client.CoreV1Api(client.ApiClient(cfg))
names, token, pages = [], None, 0
while True:
    page = api.list_pod_for_all_namespaces(limit=9, _continue=token)
    pages += 1
    names += [f"{p.metadata.namespace}/{p.metadata.name}" for p in page.items]
    token = page.metadata._continue
    if not token:
        break
rv = page.metadata.resource_version
print(json.dumps({"names": names, "pages": pages, "rv": rv}), flush=True)
events = []
for ev in watch.Watch().stream(api.list_namespaced_pod, namespace="ns-000",
                               resource_version=rv, timeout_seconds=5):
    events.append([ev["type"], ev["object"].metadata.name])
print(json.dumps(events), flush=True)
"#;

#[tokio::test]
async fn python_kubernetes_client_lists_and_watches_pods() {
    if !python_with_kubernetes().await {
        return;
    }
    let sim = sim(|c| {
        c.pods = 40;
        c.namespaces = 2;
    })
    .await;
    let (child, mut out) = spawn_lines(
        Command::new("python3")
            .args(["-c", PYTHON_CLIENT, &sim.url()])
            .stderr(Stdio::piped()),
    );
    let Some(first) = next_line(&mut out, "python").await else {
        let err = child.wait_with_output().await.unwrap();
        panic!("python failed: {}", String::from_utf8_lossy(&err.stderr));
    };
    let listed: Value = serde_json::from_str(&first).unwrap();
    let expected: Vec<String> = sim.objects("pods").iter().map(key_of).collect();
    let names: Vec<String> = serde_json::from_value(listed["names"].clone()).unwrap();
    assert_eq!(names, expected);
    assert_eq!(listed["pages"], 5, "40 pods in pages of 9");
    assert_eq!(listed["rv"], sim.current_rv().to_string());
    // Live changes during its watch: one in its namespace, one elsewhere.
    eventually("python's watch to open", || sim.stats().active_watches >= 1).await;
    sim.create("pods", pod("ns-000", "from-rust", &[])).unwrap();
    sim.create("pods", pod("ns-001", "elsewhere", &[])).unwrap();
    sim.delete("pods", Some("ns-000"), "from-rust").unwrap();
    let second = next_line(&mut out, "python").await.expect("watch output");
    let events: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(
        events,
        serde_json::json!([["ADDED", "from-rust"], ["DELETED", "from-rust"]])
    );
    let mut child = child;
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn sim_command_prints_its_url_serves_and_stops_on_sigterm() {
    let (mut child, mut out) = spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_kube-persist"))
            .args(["sim", "--pods", "12", "--namespaces", "2"])
            .args(["--configmaps", "3", "--seed", "9"])
            .stderr(Stdio::null()),
    );
    let first = next_line(&mut out, "kube-persist sim")
        .await
        .expect("a first line");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let hint = next_line(&mut out, "kube-persist sim")
        .await
        .expect("a second line");
    assert_eq!(hint, format!("try: kubectl --server {url} get pods -A"));
    let pods = get_ok(&format!("{url}/api/v1/pods")).await;
    assert_eq!(pods["items"].as_array().unwrap().len(), 12);
    let cms = get_ok(&format!("{url}/api/v1/configmaps")).await;
    assert_eq!(cms["items"].as_array().unwrap().len(), 3);
    // Same seed, same objects as the library generates.
    let fixture = fixtures::pod(9, "ns-000", 0, fixtures::node_count(12));
    let served = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == fixture["metadata"]["name"])
        .expect("fixture pod 0 served");
    assert_eq!(served["metadata"]["uid"], fixture["metadata"]["uid"]);
    assert_eq!(served["spec"], fixture["spec"]);
    let pid = child.id().expect("running") as i32;
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(HANG_GUARD, child.wait())
        .await
        .expect("sim did not stop on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sim_command_rejects_bad_flags_clearly() {
    for (args, needle) in [
        (vec!["sim", "--listen", "0.0.0.0:0"], "not a loopback"),
        (vec!["sim", "--watch-list", "maybe"], "expected on or off"),
        (
            vec!["sim", "--bookmark-interval", "0"],
            "--bookmark-interval",
        ),
        (vec!["sim", "--load=-1"], "--load"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kube-persist"))
            .args(&args)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
