//! A real kube-apiserver for the real-server tests: tests/apiserver's
//! harness (kube-apiserver v1.37 on an embedded etcd), built once per test
//! run with tests/apiserver/build.sh into `target/apiserver-bin/`.
//!
//! Starting one and loading its pods costs 5-60 s here, so the tests that
//! can share one do ([`shared`]: each test keeps to its own namespaces,
//! [`SharedNs`]); tests that need the server to themselves (a quiet
//! resource, a history window run out, etcd settings) start their own with
//! [`dedicated`].
//!
//! Without Go, or when the build fails, a test fails saying exactly why.
//! Only when asked to, with `KP_SKIP_REAL_SERVER=1` (a machine without Go),
//! does it print a loud SKIPPING line and pass without running.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::Api;
use kube_persist::bench::apiserver::{self, APISERVER_PROGRAM};
pub use kube_persist::bench::apiserver::{
    expire_history, ApiServer, AuditedRequest, Options, WatchAnswer,
};
use serde_json::{json, Value};

/// Pods and namespaces of the shared server: [`SHARED_PODS`] pods dealt
/// round-robin over `ns-000` .. `ns-007`.
pub const SHARED_PODS: usize = 400;
const SHARED_NAMESPACES: usize = 8;

/// The namespaces of the shared server, one per test that writes or counts
/// in it, so that tests running at once never see each other's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedNs {
    /// First sync then resume, requests counted.
    Resume = 0,
    /// SIGKILL rounds under writes.
    Crash = 1,
    /// Bookmarks on a busy resource: the watched namespace.
    BookmarkWatched = 2,
    /// Bookmarks on a busy resource: the namespace written to.
    BookmarkWritten = 3,
    /// The informer's resume on a busy resource.
    InformerResume = 4,
}

impl SharedNs {
    /// Its name, as the harness created it.
    pub fn name(self) -> String {
        format!("ns-{:03}", self as usize)
    }
}

/// The variable that skips the real-server tests: they run unless it
/// is set to something other than empty, `0` or `false`.
pub const SKIP_VAR: &str = "KP_SKIP_REAL_SERVER";

fn skip_asked() -> bool {
    super::skip_asked(SKIP_VAR)
}

/// Says why the real-server tests cannot run: a failure, unless skipping
/// them was asked for, then a skip nobody can miss.
fn unavailable(why: &str) {
    super::unavailable(SKIP_VAR, "the real-server test", why);
}

/// Where build.sh writes for this build: `target/apiserver-bin/`.
pub fn bin_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_kube-persist"));
    apiserver::default_bin_dir(exe.parent().unwrap_or(exe))
}

/// The harness's `apiserver` program, built (or found up to date) once per
/// test run; `Err` says why it is not available.
fn program() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if skip_asked() {
        return Err("not built: skipping was asked for".into());
    }
    BUILT.get_or_init(build).clone()
}

fn build() -> Result<PathBuf, String> {
    match Command::new("go").arg("version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "`go version` failed ({}): {}; tests/apiserver needs Go 1.26 and the Go module proxy",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => {
            return Err(format!(
                "Go is not installed (`go version`: {e}); tests/apiserver needs Go 1.26 and the Go module proxy"
            ))
        }
    }
    let dir = bin_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // Another test process (tests built twice at once) may be building into
    // the same place: one at a time.
    let lock_path = dir.join(".build.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    fs2::FileExt::lock_exclusive(&lock)
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apiserver/build.sh");
    // Past libtest's capture: a cold build takes long enough to be asked about.
    let _ = writeln!(
        std::io::stderr().lock(),
        "real-server tests: {} {} (a cold build compiles kube-apiserver: 10-20 min on 2 cores)",
        script.display(),
        dir.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        let tail: String = {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        return Err(format!(
            "{} {} failed ({}):\n{tail}",
            script.display(),
            dir.display(),
            out.status
        ));
    }
    apiserver::program(&dir, APISERVER_PROGRAM).map_err(|e| e.to_string())
}

/// The directory holding the built harness programs (`apiserver`,
/// `clientgo-informer`); `None` when the real-server tests cannot run here.
pub fn built() -> Option<PathBuf> {
    match program() {
        Ok(_) => Some(bin_dir()),
        Err(why) => {
            unavailable(&why);
            None
        }
    }
}

/// The server every test that can share one uses, started at first use
/// and stopped when the test process exits; `None` when the real-server
/// tests cannot run here (see the module docs).
pub fn shared() -> Option<&'static ApiServer> {
    static SHARED: OnceLock<Result<ApiServer, String>> = OnceLock::new();
    let server = SHARED.get_or_init(|| {
        let program = program()?;
        let options = Options {
            pods: SHARED_PODS,
            namespaces: SHARED_NAMESPACES,
            audit: true,
            ..Options::default()
        };
        let server = start_kept(program, options)?;
        // A static is never dropped: stop it when the process exits. A
        // dedicated server's Drop stops and reaps it; signalling its pid
        // again at exit could hit another process that got the pid.
        let dir = server
            .kubeconfig()
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        AT_EXIT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((server.pid(), dir));
        // SAFETY: registers a plain extern "C" fn, once (this closure runs
        // once).
        unsafe {
            libc::atexit(stop_servers_at_exit);
        }
        Ok(server)
    });
    match server {
        Ok(server) => Some(server),
        Err(why) => {
            unavailable(why);
            None
        }
    }
}

/// A server for one test alone; `None` when the real-server tests cannot
/// run here.
pub fn dedicated(options: Options) -> Option<ApiServer> {
    let result = program().and_then(|program| start_kept(program, options));
    match result {
        Ok(server) => Some(server),
        Err(why) => {
            unavailable(&why);
            None
        }
    }
}

/// The shared server, to stop when the test process exits (a static is
/// never dropped).
static AT_EXIT: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn stop_servers_at_exit() {
    let servers = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()));
    for (pid, kubeconfig_dir) in servers {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            continue;
        };
        // SAFETY: plain syscalls on a pid this process started.
        unsafe {
            if libc::kill(pid, libc::SIGTERM) != 0 {
                continue;
            }
            for _ in 0..300 {
                if libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) != 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(kubeconfig_dir);
    }
}

/// Starts a server from a thread that lives as long as the process, so
/// that `PR_SET_PDEATHSIG` stops it only when the test process dies (a
/// test's own thread ends with the test, the shared server must not).
fn start_kept(program: PathBuf, mut options: Options) -> Result<ApiServer, String> {
    options.die_with_thread = true;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(ApiServer::start(&program, &options).map_err(|e| e.to_string()));
        loop {
            std::thread::park();
        }
    });
    let server = rx
        .recv()
        .map_err(|_| "the thread starting the server died".to_owned())??;
    Ok(server)
}

/// `namespace/name` → resourceVersion of the pods in `namespace`, as a
/// consistent list reads them.
pub async fn server_pods(client: &kube::Client, namespace: &str) -> BTreeMap<String, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    list.items
        .iter()
        .map(|p| {
            (
                format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or(""),
                    p.metadata.name.as_deref().unwrap_or("")
                ),
                p.metadata.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The server's resourceVersion for the pods of `namespace`: a list's, a
/// consistent read.
pub async fn server_rv(client: &kube::Client, namespace: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .unwrap();
    list.metadata
        .resource_version
        .expect("a list carries its resourceVersion")
}

/// A small pod named `name` (the namespace's `default` ServiceAccount,
/// which the harness creates, satisfies admission).
pub fn small_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "real-server-test"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap()
}

/// Creates a small pod; returns its resourceVersion.
pub async fn create_pod(client: &kube::Client, namespace: &str, name: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = api
        .create(&PostParams::default(), &small_pod(name))
        .await
        .unwrap_or_else(|e| panic!("create {namespace}/{name}: {e}"));
    pod.metadata.resource_version.unwrap_or_default()
}

/// Deletes a pod at once (unscheduled pods need no grace period).
pub async fn delete_pod(client: &kube::Client, namespace: &str, name: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.delete(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("delete {namespace}/{name}: {e}"));
}

/// Sets a label on a pod (one MODIFIED event).
pub async fn label_pod(client: &kube::Client, namespace: &str, name: &str, value: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"labels": {"real-server-test": value}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(patch),
    )
    .await
    .unwrap_or_else(|e| panic!("label {namespace}/{name}: {e}"));
}

/// The harness's `/churn` from async code.
pub async fn churn(server: &'static ApiServer, n: usize, namespace: &str, pool: Option<usize>) {
    let ns = namespace.to_owned();
    tokio::task::spawn_blocking(move || server.churn(n, Some(&ns), pool))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("churn {n} in {namespace}: {e}"));
}

/// The outcome of one `kube-persist sync` run.
#[derive(Debug)]
pub struct SyncRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl SyncRun {
    /// The `synced rv=.. objects=.. resumed=.. relists=.. list_requests=..`
    /// line's fields.
    pub fn status(&self) -> BTreeMap<String, String> {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("synced "))
            .unwrap_or_else(|| {
                panic!(
                    "no synced line in:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            });
        line["synced ".len()..]
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// `kube-persist sync --until-synced` of pods in `namespace` into `store`,
/// reading the server from its kubeconfig (`KUBECONFIG`, no `--server`),
/// as a user would.
pub async fn sync_until_synced(
    server: &ApiServer,
    store: &Path,
    namespace: &str,
    extra: &[&str],
) -> SyncRun {
    let out = sync_command(server, store, namespace)
        .arg("--until-synced")
        .args(extra)
        .output()
        .await
        .unwrap();
    SyncRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `kube-persist sync` command for pods of `namespace` into `store`,
/// with the server's kubeconfig in `KUBECONFIG`.
pub fn sync_command(server: &ApiServer, store: &Path, namespace: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-persist"));
    cmd.args(["sync", "--resource", "pods", "-n", namespace])
        .arg("--store")
        .arg(store)
        .env("KUBECONFIG", server.kubeconfig())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// key → resourceVersion of the store's only collection, its stored
/// resourceVersion and its last journal seq, read without changing it.
pub fn store_state(store: &Path) -> (BTreeMap<String, String>, Option<String>, u64) {
    let store = kube_persist::store::Store::open_read_only(store).unwrap();
    let ids = store.collections().unwrap();
    assert_eq!(ids.len(), 1, "one collection in the store");
    let c = store.collection(&ids[0]).unwrap();
    let objects: BTreeMap<String, String> = c
        .list()
        .unwrap()
        .iter()
        .map(|o: &Value| {
            let m = &o["metadata"];
            (
                format!(
                    "{}/{}",
                    m["namespace"].as_str().unwrap_or(""),
                    m["name"].as_str().unwrap_or("")
                ),
                m["resourceVersion"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (
        objects,
        c.last_rv().unwrap(),
        c.meta().unwrap().journal_last_seq,
    )
}

/// The requests of pods in `namespace` the server logged after `mark`.
pub fn audited(server: &ApiServer, mark: u64, namespace: &str) -> Vec<AuditedRequest> {
    server
        .audit()
        .expect("the server was started with an audit log")
        .since(mark)
        .unwrap()
        .into_iter()
        .filter(|r| r.namespace.as_deref() == Some(namespace))
        .collect()
}

/// Where the audit log ends now.
pub fn audit_mark(server: &ApiServer) -> u64 {
    server
        .audit()
        .expect("the server was started with an audit log")
        .mark()
}

/// The requests of pods in `namespace` the server logged after `mark`,
/// once the log is known to hold every request finished before this call
/// ([`kube_persist::bench::apiserver::AuditLog::settle`]).
pub async fn requests_after(
    server: &ApiServer,
    client: &kube::Client,
    mark: u64,
    namespace: &str,
) -> Vec<AuditedRequest> {
    let log = server
        .audit()
        .expect("the server was started with an audit log");
    let settled = log.settle(client, namespace).await.unwrap();
    log.between(mark, settled)
        .unwrap()
        .into_iter()
        .filter(|r| r.namespace.as_deref() == Some(namespace))
        .collect()
}
