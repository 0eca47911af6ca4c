//! Shared by the `cli_*` tests: a small store built through the library, and
//! a way to run the binary against it.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

use kube_persist::store::{Batch, CollectionId, Delta, Store};

pub use super::store::copy_dir;
use serde_json::{json, Value};

/// Held while this process has a store open and while it forks a child.
///
/// A store's lock is an flock on an open file description. Tests run on
/// several threads; a child forked by one thread while another thread has a
/// store open shares that description until the child's `exec` closes it, so
/// a store closed in between can still look locked to the next child. No fork
/// while a store is open here, no store open during a fork: no such window.
static FORK_GUARD: Mutex<()> = Mutex::new(());

pub fn fork_guard() -> MutexGuard<'static, ()> {
    FORK_GUARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Open (creating) the store at `dir`, run `f`, close the store. A store
/// created here is on sled: the damage helpers below write sled's files.
pub fn with_store<R>(dir: &Path, f: impl FnOnce(&Store) -> R) -> R {
    let _guard = fork_guard();
    let options = kube_persist::store::StoreOptions {
        engine: Some(kube_persist::store::EngineKind::Sled),
        ..Default::default()
    };
    let store = Store::open_with(dir, options).unwrap();
    f(&store)
}

/// Block until sled has really let go of the store's database file.
///
/// Dropping the last sled handle returns before sled's background I/O
/// threads close the file, and sled's flock lives until they do; a child
/// started in that window finds the store "in use". Taking (and releasing)
/// the same flock waits exactly for that. (`Store` does this itself on
/// close; only raw sled access here needs it.)
pub fn wait_closed(dir: &Path) {
    // fs2's flock: the very lock sled takes.
    let db_file = std::fs::File::open(dir.join("db").join("db")).unwrap();
    fs2::FileExt::lock_exclusive(&db_file).unwrap();
    fs2::FileExt::unlock(&db_file).unwrap();
}

/// "Now" for every run, so that ages are exact.
pub const NOW: &str = "2026-01-01T12:00:00Z";

pub fn id(group: &str, resource: &str, kind: &str, namespaced: bool) -> CollectionId {
    CollectionId {
        group: group.into(),
        version: "v1".into(),
        resource: resource.into(),
        kind: kind.into(),
        namespaced,
        namespace: None,
        label_selector: None,
        field_selector: None,
    }
}

pub fn pods() -> CollectionId {
    id("", "pods", "Pod", true)
}
pub fn configmaps() -> CollectionId {
    id("", "configmaps", "ConfigMap", true)
}
pub fn secrets() -> CollectionId {
    id("", "secrets", "Secret", true)
}
pub fn widgets() -> CollectionId {
    id("example.com", "widgets", "Widget", true)
}
pub fn nodes() -> CollectionId {
    id("", "nodes", "Node", false)
}

pub fn pod(ns: &str, name: &str, rv: u64, node: &str, ready: bool) -> Value {
    json!({
        "metadata": {
            "name": name, "namespace": ns, "resourceVersion": rv.to_string(),
            "uid": format!("uid-{ns}-{name}"),
            "creationTimestamp": "2026-01-01T11:00:00Z",
            "labels": {"app": name.split('-').next().unwrap_or(name), "tier": "web"}
        },
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nginx:1.27"}]},
        "status": {
            "phase": "Running", "podIP": "10.0.0.7",
            "containerStatuses": [{"name": "main", "ready": ready, "restartCount": 1,
                "state": if ready { json!({"running": {}}) } else { json!({"waiting": {"reason": "CrashLoopBackOff"}}) }}]
        }
    })
}

pub fn configmap(ns: &str, name: &str, rv: u64) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv.to_string(),
            "creationTimestamp": "2026-01-01T09:30:00Z"},
        "data": {"a": "1", "b": "2"}
    })
}

/// A Secret whose `data.password` is "hunter2" and `data.user` "admin".
pub fn secret(ns: &str, name: &str, rv: u64) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv.to_string(),
            "creationTimestamp": "2025-12-30T12:00:00Z",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}
    })
}

pub fn widget(ns: &str, name: &str, rv: u64) -> Value {
    json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv.to_string(),
            "creationTimestamp": "2026-01-01T11:59:30Z"},
        "spec": {"size": 3}
    })
}

pub fn apply(store: &Store, id: &CollectionId, objects: Vec<Value>, rv: u64) {
    let c = store.collection(id).unwrap();
    c.apply(Batch {
        deltas: objects.into_iter().map(Delta::Upsert).collect(),
        rv: Some(rv.to_string()),
    })
    .unwrap();
}

fn three_pods() -> Vec<Value> {
    vec![
        pod("default", "web-0", 10, "node-a", true),
        pod("default", "web-1", 11, "node-b", false),
        pod("kube-system", "dns-0", 12, "node-a", true),
    ]
}

/// A store with pods, configmaps, secrets and widgets (a custom resource).
pub fn fixture(dir: &Path) {
    with_store(dir, |store| {
        apply(store, &pods(), three_pods(), 12);
        apply(
            store,
            &configmaps(),
            vec![configmap("default", "settings", 13)],
            13,
        );
        apply(store, &secrets(), vec![secret("default", "db", 14)], 14);
        apply(store, &widgets(), vec![widget("default", "w1", 15)], 15);
        // What an informer records when discovery resolved the resource.
        store
            .set_short_names(&widgets(), &["wd".to_string()])
            .unwrap();
    })
}

/// `pods` watched three ways into one store, as `sync --resource pods`, then
/// with `-n default`, then with `-l app=web` would leave it: all three pods,
/// the two in `default`, and the two labelled `app=web`.
pub fn overlapping_pods(dir: &Path) {
    with_store(dir, |store| {
        apply(store, &pods(), three_pods(), 12);
        apply(store, &pods_in_default(), three_pods()[..2].to_vec(), 12);
        let web: Vec<Value> = three_pods()
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "web")
            .collect();
        apply(store, &web_pods(), web, 12);
    })
}

/// The collection of `pods` watched in namespace `default` only.
pub fn pods_in_default() -> CollectionId {
    CollectionId {
        namespace: Some("default".into()),
        ..pods()
    }
}

/// The collection of `pods` watched with label selector `app=web`.
pub fn web_pods() -> CollectionId {
    CollectionId {
        label_selector: Some("app=web".into()),
        ..pods()
    }
}

/// A store holding only the three pods.
pub fn pods_only(dir: &Path) {
    with_store(dir, |store| apply(store, &pods(), three_pods(), 12))
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn kp(args: &[&str]) -> Run {
    kp_env(args, &[])
}

/// [`kp`] with extra (or overriding) environment variables.
pub fn kp_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = command(args);
    cmd.envs(env.iter().copied()).stderr(Stdio::piped());
    let guard = fork_guard();
    let child = cmd.spawn().unwrap();
    drop(guard);
    finish(child)
}

/// Run with a standard output whose reader is already gone, as under
/// `| head -1` once head has exited: every write to stdout fails with EPIPE.
pub fn kp_reader_gone(args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = command(args);
    cmd.stdout(writer).stderr(Stdio::piped());
    let guard = fork_guard();
    let child = cmd.spawn().unwrap();
    drop(guard);
    // `cmd` holds our copy of the write end.
    drop(cmd);
    finish(child)
}

/// Start the binary without waiting for it. Takes no guard: for a test that
/// holds a store open on purpose while the child runs.
pub fn spawn(args: &[&str]) -> std::process::Child {
    command(args).stderr(Stdio::piped()).spawn().unwrap()
}

/// Start the binary with stdout and stderr piped, under the fork guard.
pub fn spawn_piped(args: &[&str]) -> std::process::Child {
    let mut cmd = command(args);
    cmd.stderr(Stdio::piped());
    let guard = fork_guard();
    let child = cmd.spawn().unwrap();
    drop(guard);
    child
}

/// Start the binary with `stderr` (e.g. a terminal) as its standard error.
/// The returned child's `stderr` is then empty.
pub fn spawn_with_stderr(args: &[&str], stderr: std::fs::File) -> std::process::Child {
    let mut cmd = command(args);
    cmd.stderr(stderr);
    let guard = fork_guard();
    let child = cmd.spawn().unwrap();
    drop(guard);
    // `cmd` holds our copy of `stderr`: dropping it leaves only the child's.
    drop(cmd);
    child
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kube-persist"));
    cmd.args(args)
        .env("KUBE_PERSIST_NOW", NOW)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    cmd
}

pub fn finish(child: std::process::Child) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().expect("exited by a signal"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Run and require success; return stdout.
/// Asserts that each of `lines` is a whole line of `text`.
pub fn assert_has_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing {line:?} in:\n{text}"
        );
    }
}

pub fn ok(args: &[&str]) -> String {
    let r = kp(args);
    assert_eq!(r.code, 0, "{args:?} failed: {}", r.stderr);
    r.stdout
}

pub fn store_dir() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let s = dir.to_str().unwrap().to_string();
    (tmp, s)
}

/// Flip one byte in the middle of the value stored under `key` in the sled
/// tree of collection `id`, the way a bad sector would. Layout (see
/// src/store/key.rs): the db lives in `<store>/db`, each collection in tree
/// `collection:<id.name()>`, objects under `o` + `namespace/name`.
pub fn flip_byte(dir: &Path, id: &CollectionId, key: &[u8]) {
    let _guard = fork_guard();
    let db = sled::open(dir.join("db")).unwrap();
    let tree = db.open_tree(format!("collection:{}", id.name())).unwrap();
    let mut value = tree.get(key).unwrap().expect("no such record").to_vec();
    let at = value.len() / 2;
    value[at] ^= 0x55;
    tree.insert(key, value).unwrap();
    db.flush().unwrap();
    drop((tree, db));
    wait_closed(dir);
}

/// Overwrite the value stored under `key` in sled's default tree, where the
/// store keeps its registry and short names (`short-names/<id.name()>`).
pub fn overwrite_default_tree(dir: &Path, key: &str, value: &[u8]) {
    let _guard = fork_guard();
    let db = sled::open(dir.join("db")).unwrap();
    assert!(db.get(key).unwrap().is_some(), "no record under {key}");
    db.insert(key, value).unwrap();
    db.flush().unwrap();
    drop(db);
    wait_closed(dir);
}

/// Sled key of an object record.
pub fn object_record(ns_name: &str) -> Vec<u8> {
    let mut k = vec![b'o'];
    k.extend_from_slice(ns_name.as_bytes());
    k
}

/// Every file under `dir` with its contents, to show nothing changed.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}
