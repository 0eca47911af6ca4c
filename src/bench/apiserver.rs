//! The real kube-apiserver of `tests/apiserver` (a Go program: kube-apiserver
//! v1.37 on an embedded etcd) as a cluster for the bench and the tests.
//!
//! [`ApiServer`] spawns the harness and reads the lines it prints until it is
//! ready, talks to its admin endpoint (`/churn`), reads the server's own
//! audit log to count the requests a client made, and
//! stops it with SIGTERM. [`Relay`] is a TCP relay in front of it that counts
//! the bytes a client pulled (TLS stays end to end), and [`expire_history`]
//! drives the server's watch cache past a resourceVersion so that a watch
//! from it answers 410, the way a cluster does after a client was away for
//! longer than the cache's window.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::Api;
use serde_json::Value;

/// The harness's own program names, as `tests/apiserver/build.sh` builds them.
pub const APISERVER_PROGRAM: &str = "apiserver";
/// The client-go informer peer built beside it.
pub const CLIENTGO_PROGRAM: &str = "clientgo-informer";

/// How long the watch cache keeps an event before it may drop it when full
/// (`DefaultEventFreshDuration` in k8s.io/apiserver's cacher).
pub const EVENT_FRESH: Duration = Duration::from_secs(75);

/// How much of a failed server's stderr an error quotes.
const STDERR_TAIL_BYTES: u64 = 4096;

/// An audit policy that records, at Metadata level, every read of pods by a
/// client: enough to count a client's LIST and WATCH requests with their
/// query strings. The harness's own writes (user `system:apiserver`, the
/// pod loader and `/churn`) are left out so the log stays small.
const AUDIT_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [\"system:apiserver\"]
- level: Metadata
  verbs: [list, watch, get]
  resources:
  - group: \"\"
    resources: [pods]
- level: None
";

/// Errors of the real-server harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The harness program is not where it was looked for.
    #[error("the kube-apiserver harness {path} is not built (run tests/apiserver/build.sh {dir}, which needs Go 1.26)")]
    NotBuilt {
        /// The program looked for.
        path: PathBuf,
        /// The directory build.sh should write to.
        dir: PathBuf,
    },
    /// The harness could not be started.
    #[error("could not start {path}")]
    Spawn {
        /// The program.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The harness exited, or printed something unexpected, before it was
    /// ready.
    #[error("the kube-apiserver harness did not become ready: {reason}; its last output:\n{stderr_tail}")]
    NotReady {
        /// What went wrong.
        reason: String,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// An admin endpoint request failed.
    #[error("admin request {request} failed: {reason}")]
    Admin {
        /// Method and path.
        request: String,
        /// What went wrong.
        reason: String,
    },
    /// The audit log could not be read.
    #[error("could not read the audit log {path}: {reason}")]
    Audit {
        /// The log.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A request to the API server failed.
    #[error("kube-apiserver request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The kubeconfig the harness wrote could not be used.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The server's history could not be driven past a resourceVersion.
    #[error("could not make resourceVersion {rv} too old: {reason}")]
    Expire {
        /// The resourceVersion.
        rv: String,
        /// What went wrong.
        reason: String,
    },
    /// Local file or socket trouble.
    #[error("i/o error on {what}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Where `build.sh` puts the harness programs for a build whose executables
/// live in `exe_dir` (cargo's `target/<profile>/`): `target/apiserver-bin/`.
pub fn default_bin_dir(exe_dir: &Path) -> PathBuf {
    exe_dir.parent().unwrap_or(exe_dir).join("apiserver-bin")
}

/// The program `name` in `dir`, if it is there.
pub fn program(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::NotBuilt {
            path,
            dir: dir.to_owned(),
        })
    }
}

/// How to start the harness.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Realistic pods to create before it reports ready.
    pub pods: usize,
    /// Namespaces the pods are dealt to (`ns-000`, ...); at least 1.
    pub namespaces: usize,
    /// Seed of the generated pods (the harness's default when unset).
    pub seed: Option<u64>,
    /// etcd's progress-notification interval (etcd's default, 10 min, when
    /// unset): how soon a quiet resource's watch cache learns etcd's
    /// revision.
    pub progress_notify: Option<Duration>,
    /// Record client reads of pods in an audit log ([`ApiServer::audit`]).
    pub audit: bool,
    /// Send the server SIGTERM when the thread that started it ends
    /// (`PR_SET_PDEATHSIG`), so that a test process that dies cannot leave
    /// it running. Start it from a thread that lives as long as it should.
    pub die_with_thread: bool,
}

/// One line the harness prints on stdout before it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Kubeconfig(PathBuf),
    // What the harness says about the pods it made; nothing here needs it.
    PodsCreated,
    Probe,
    Admin(String),
    Listening(String),
}

impl Line {
    fn parse(line: &str) -> Result<Line, String> {
        let bad = || format!("unexpected line {line:?}");
        if let Some(path) = line.strip_prefix("kubeconfig ") {
            Ok(Line::Kubeconfig(path.into()))
        } else if let Some(rest) = line.strip_prefix("pods created ") {
            let n = rest.split(' ').next().ok_or_else(bad)?;
            n.parse::<u64>()
                .map(|_| Line::PodsCreated)
                .map_err(|_| bad())
        } else if line.starts_with("probe ") {
            Ok(Line::Probe)
        } else if let Some(url) = line.strip_prefix("admin on ") {
            Ok(Line::Admin(url.to_owned()))
        } else if let Some(url) = line.strip_prefix("listening on ") {
            Ok(Line::Listening(url.to_owned()))
        } else {
            Err(bad())
        }
    }
}

/// Where the harness said it listens once ready.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ready {
    /// `https://127.0.0.1:PORT`.
    url: String,
    /// The kubeconfig it wrote.
    kubeconfig: PathBuf,
    /// `http://127.0.0.1:PORT` of the admin endpoint.
    admin: String,
}

impl Ready {
    /// Folds the lines printed up to `listening on` into what they say.
    fn from_lines(lines: &[Line]) -> Result<Ready, String> {
        let mut ready = Ready::default();
        let mut kubeconfig = None;
        for line in lines {
            match line {
                Line::Kubeconfig(p) => kubeconfig = Some(p.clone()),
                Line::PodsCreated | Line::Probe => {}
                Line::Admin(a) => ready.admin = a.clone(),
                Line::Listening(u) => ready.url = u.clone(),
            }
        }
        ready.kubeconfig = kubeconfig.ok_or("it printed no kubeconfig line")?;
        if ready.admin.is_empty() {
            return Err("it printed no admin line".into());
        }
        if ready.url.is_empty() {
            return Err("it printed no listening line".into());
        }
        Ok(ready)
    }
}

/// A running harness: a real kube-apiserver on an embedded etcd.
#[derive(Debug)]
pub struct ApiServer {
    child: Child,
    ready: Ready,
    audit: Option<AuditLog>,
    stderr_path: PathBuf,
    // Holds the kubeconfig, the audit log and the server's stderr; removed
    // when the server is gone.
    _dir: tempfile::TempDir,
}

impl ApiServer {
    /// Starts `program` (the harness's `apiserver`) with `options` and waits
    /// until it prints `listening on`.
    pub fn start(program: &Path, options: &Options) -> Result<ApiServer> {
        let dir = tempfile::Builder::new()
            .prefix("kube-persist-apiserver-")
            .tempdir()
            .map_err(io("creating a temporary directory"))?;
        let kubeconfig = dir.path().join("kubeconfig");
        let stderr_path = dir.path().join("stderr");
        let stderr =
            std::fs::File::create(&stderr_path).map_err(io(stderr_path.display().to_string()))?;
        let mut cmd = Command::new(program);
        cmd.arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--pods")
            .arg(options.pods.to_string())
            .arg("--namespaces")
            .arg(options.namespaces.max(1).to_string());
        if let Some(seed) = options.seed {
            cmd.arg("--seed").arg(seed.to_string());
        }
        if let Some(every) = options.progress_notify {
            cmd.arg("--etcd-progress-notify-interval")
                .arg(format!("{}ms", every.as_millis().max(1)));
        }
        let audit = if options.audit {
            let policy = dir.path().join("audit-policy.yaml");
            std::fs::write(&policy, AUDIT_POLICY).map_err(io(policy.display().to_string()))?;
            let log = dir.path().join("audit.log");
            cmd.arg(format!(
                "--apiserver-flag=--audit-policy-file={}",
                policy.display()
            ))
            .arg(format!(
                "--apiserver-flag=--audit-log-path={}",
                log.display()
            ))
            // One file, never rotated: offsets into it stay valid.
            .arg("--apiserver-flag=--audit-log-maxsize=0")
            .arg("--apiserver-flag=--audit-log-maxbackup=0");
            Some(AuditLog { path: log })
        } else {
            None
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if options.die_with_thread {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of
            // the parent; this runs in the child between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            path: program.to_owned(),
            source,
        })?;
        let stdout = child.stdout.take().ok_or_else(|| Error::NotReady {
            reason: "no stdout pipe".into(),
            stderr_tail: String::new(),
        })?;
        let mut server = ApiServer {
            child,
            ready: Ready::default(),
            audit,
            stderr_path,
            _dir: dir,
        };
        let timeout = Duration::from_secs(120) + Duration::from_millis(60) * options.pods as u32;
        server.ready = server.wait_ready(stdout, timeout)?;
        Ok(server)
    }

    /// Reads stdout until `listening on`, then keeps draining it in the
    /// background so the server never blocks on a full pipe.
    fn wait_ready(
        &mut self,
        stdout: std::process::ChildStdout,
        timeout: Duration,
    ) -> Result<Ready> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // After ready nobody listens; keep reading to EOF anyway.
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let text = match rx.recv_timeout(left) {
                Ok(text) => text,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(self.not_ready(format!("not ready within {} s", timeout.as_secs())))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(5));
                    return Err(self.not_ready(format!("it exited ({status})")));
                }
            };
            let line = Line::parse(&text).map_err(|e| self.not_ready(e))?;
            let done = matches!(line, Line::Listening(_));
            lines.push(line);
            if done {
                return Ready::from_lines(&lines).map_err(|e| self.not_ready(e));
            }
        }
    }

    fn not_ready(&mut self, reason: String) -> Error {
        self.terminate();
        Error::NotReady {
            reason,
            stderr_tail: self.stderr_tail(),
        }
    }

    /// The end of the server's stderr.
    pub fn stderr_tail(&self) -> String {
        let mut buf = Vec::new();
        let read = std::fs::File::open(&self.stderr_path).and_then(|mut f| {
            use std::io::Seek;
            let len = f.metadata()?.len();
            f.seek(std::io::SeekFrom::Start(
                len.saturating_sub(STDERR_TAIL_BYTES),
            ))?;
            f.read_to_end(&mut buf)
        });
        match read {
            Ok(_) => String::from_utf8_lossy(&buf).trim_end().to_owned(),
            Err(e) => format!("(could not read {}: {e})", self.stderr_path.display()),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.ready.url
    }

    /// The kubeconfig (bearer token, the server's CA): `KUBECONFIG=FILE` is
    /// all a client needs.
    pub fn kubeconfig(&self) -> &Path {
        &self.ready.kubeconfig
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The audit log, when started with [`Options::audit`].
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// A client of the server, as kube-rs reads a kubeconfig.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from_kubeconfig(self.kubeconfig()).await
    }

    /// `n` writes to existing pods (a merge patch of an annotation each,
    /// one MODIFIED event each) in `namespace` (all when `None`), spread
    /// over at most `pool` pods (as many as `n` allows when `None`).
    /// Returns the resourceVersion of the last write.
    pub fn churn(&self, n: usize, namespace: Option<&str>, pool: Option<usize>) -> Result<String> {
        let mut path = format!("/churn?n={n}");
        if let Some(ns) = namespace {
            path.push_str(&format!("&namespace={ns}"));
        }
        if let Some(pool) = pool {
            path.push_str(&format!("&pool={pool}"));
        }
        let v = self.admin("POST", &path)?;
        v["resourceVersion"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Admin {
                request: format!("POST {path}"),
                reason: format!("no resourceVersion in {v}"),
            })
    }

    /// One request to the admin endpoint, answered with JSON.
    fn admin(&self, method: &str, path: &str) -> Result<Value> {
        let request = format!("{method} {path}");
        let fail = |reason: String| Error::Admin {
            request: request.clone(),
            reason,
        };
        let addr = self
            .ready
            .admin
            .strip_prefix("http://")
            .ok_or_else(|| fail(format!("admin URL {:?} is not http://", self.ready.admin)))?;
        let mut stream = TcpStream::connect(addr).map_err(|e| fail(e.to_string()))?;
        // A big /churn takes minutes on a loaded machine.
        stream
            .set_read_timeout(Some(Duration::from_secs(900)))
            .map_err(|e| fail(e.to_string()))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
        )
        .map_err(|e| fail(e.to_string()))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| fail(e.to_string()))?;
        let (status, body) = split_http_response(&response).map_err(fail)?;
        if status != 200 {
            return Err(fail(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(body).trim()
            )));
        }
        serde_json::from_slice(body).map_err(|e| fail(format!("answer is not JSON: {e}")))
    }

    /// Stops the server with SIGTERM (it removes its etcd data) and waits
    /// for it; SIGKILL if it has not stopped within 30 s.
    pub fn stop(mut self) -> String {
        self.terminate()
    }

    fn terminate(&mut self) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.to_string();
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: the pid is our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits up to `limit` for the process to exit, then kills it.
    fn wait_exit(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    return match self.child.wait() {
                        Ok(status) => format!("{status} after SIGKILL"),
                        Err(e) => format!("not reaped: {e}"),
                    };
                }
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // A server left running holds ~1 GB and two cores' worth of timers.
        self.terminate();
    }
}

/// Splits a raw HTTP/1.x response into its status code and body.
fn split_http_response(raw: &[u8]) -> Result<(u16, &[u8]), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers in the answer")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    Ok((status, &raw[end + 4..]))
}

/// A client for a kubeconfig file, as kube-rs reads it (`KUBECONFIG=FILE`).
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client> {
    let bad = |reason: String| Error::Kubeconfig {
        path: path.to_owned(),
        reason,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}

/// Writes a copy of the kubeconfig at `from` to `to` whose clusters point at
/// `server` instead (e.g. a [`Relay`]; the certificate names 127.0.0.1, so
/// TLS still verifies). Written as JSON, which kubeconfig readers accept.
pub fn redirect_kubeconfig(from: &Path, to: &Path, server: &str) -> Result<()> {
    let bad = |reason: String| Error::Kubeconfig {
        path: from.to_owned(),
        reason,
    };
    let mut kc = kube::config::Kubeconfig::read_from(from).map_err(|e| bad(e.to_string()))?;
    for c in &mut kc.clusters {
        if let Some(cluster) = c.cluster.as_mut() {
            cluster.server = Some(server.to_owned());
        }
    }
    let json = serde_json::to_vec_pretty(&kc).map_err(|e| bad(e.to_string()))?;
    write_private(to, &json).map_err(io(to.display().to_string()))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// The server's audit log of client reads of pods (see [`Options::audit`]):
/// the server's own record of every LIST and WATCH a client made, with its
/// query string.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

/// One request as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedRequest {
    /// The server's id of the request.
    pub id: String,
    /// `list`, `watch`, `get`, ...
    pub verb: String,
    /// Path and query as sent.
    pub uri: String,
    /// The namespace, if the request named one.
    pub namespace: Option<String>,
}

impl AuditedRequest {
    /// The value of query parameter `key`, if given.
    pub fn query(&self, key: &str) -> Option<&str> {
        let (_, query) = self.uri.split_once('?')?;
        query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// A LIST (paginated or not).
    pub fn is_list(&self) -> bool {
        self.verb == "list"
    }

    /// A WATCH, streaming lists included.
    pub fn is_watch(&self) -> bool {
        self.verb == "watch"
    }

    /// A streaming list: a watch with `sendInitialEvents=true`.
    pub fn is_streaming_list(&self) -> bool {
        self.is_watch() && self.query("sendInitialEvents") == Some("true")
    }
}

/// Where a count of requests starts (see [`AuditLog::settled_mark`]).
#[derive(Debug, Clone, Default)]
pub struct AuditMark {
    offset: u64,
    /// Requests logged as started and not yet as complete at the mark (a
    /// watch a client has dropped): their completion, logged later, is no
    /// new request.
    open: HashSet<String>,
}

/// One line of the log and where it lies in the file.
struct Logged {
    start: u64,
    end: u64,
    /// Logged at stage `ResponseStarted`: a watch whose answer began; its
    /// `ResponseComplete` line follows when it ends.
    started_only: bool,
    request: AuditedRequest,
}

/// The namespace of the bench's sentinel GETs.
const SENTINEL_NAMESPACE: &str = "default";

impl AuditLog {
    /// Where the log ends now: [`AuditLog::since`] this mark reads what is
    /// logged from here on. Requests that finished just before may be
    /// logged after it (see [`AuditLog::settle`]).
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Every request logged after `mark`, once each (a watch is logged when
    /// its response starts and again when it completes), in log order.
    pub fn since(&self, mark: u64) -> Result<Vec<AuditedRequest>> {
        self.between(mark, u64::MAX)
    }

    /// Every request whose line lies between the offsets `from` and `to`,
    /// once each, in log order.
    pub fn between(&self, from: u64, to: u64) -> Result<Vec<AuditedRequest>> {
        let logged = self.read(from)?.into_iter().filter(|l| l.end <= to);
        Ok(once_each(logged.map(|l| l.request)))
    }

    /// Waits until the log holds every request that finished before this
    /// call; returns the offset up to which it does. kube-apiserver logs a
    /// request as its handler returns, which for a LIST may be just after
    /// its client read the answer: so this GETs a pod that does not exist
    /// in `namespace` through `client` and waits for that GET's line.
    pub async fn settle(&self, client: &kube::Client, namespace: &str) -> Result<u64> {
        let sentinel = format!("audit-sentinel-{}", rand::random::<u32>());
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        api.get_opt(&sentinel).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logged = self.read(0)?;
            if let Some(line) = logged.iter().find(|l| l.request.uri.contains(&sentinel)) {
                return Ok(line.start);
            }
            if Instant::now() >= deadline {
                return Err(Error::Audit {
                    path: self.path.clone(),
                    reason: format!("the server never logged the GET of {namespace}/{sentinel}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A mark after every request that finished before this call
    /// ([`AuditLog::settle`]), for [`AuditLog::settled_since`].
    pub async fn settled_mark(&self, client: &kube::Client) -> Result<AuditMark> {
        let settled = self.settle(client, SENTINEL_NAMESPACE).await?;
        self.mark_at(settled)
    }

    /// The mark just after the line at `settled`.
    fn mark_at(&self, settled: u64) -> Result<AuditMark> {
        let mut open = HashSet::new();
        for line in self.read(0)?.into_iter().filter(|l| l.end <= settled) {
            if line.started_only {
                open.insert(line.request.id);
            } else {
                open.remove(&line.request.id);
            }
        }
        // The sentinel's own line is before the mark.
        let offset = self
            .read(settled)?
            .first()
            .map_or(settled, |sentinel| sentinel.end);
        Ok(AuditMark { offset, open })
    }

    /// The requests made after `mark` that finished before this call, once
    /// each: none made before the mark, the sentinels' GETs left out.
    pub async fn settled_since(
        &self,
        client: &kube::Client,
        mark: &AuditMark,
    ) -> Result<Vec<AuditedRequest>> {
        let settled = self.settle(client, SENTINEL_NAMESPACE).await?;
        self.between_marks(mark, settled)
    }

    /// The requests logged from `mark` up to the offset `settled`.
    fn between_marks(&self, mark: &AuditMark, settled: u64) -> Result<Vec<AuditedRequest>> {
        let logged = self
            .read(mark.offset)?
            .into_iter()
            .filter(|l| l.end <= settled && !mark.open.contains(&l.request.id));
        Ok(once_each(logged.map(|l| l.request)))
    }

    /// The whole lines logged from offset `from` on (the last line may
    /// still be being written).
    fn read(&self, from: u64) -> Result<Vec<Logged>> {
        let fail = |reason: String| Error::Audit {
            path: self.path.clone(),
            reason,
        };
        let mut text = Vec::new();
        match std::fs::File::open(&self.path) {
            Ok(mut f) => {
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Start(from))
                    .and_then(|_| f.read_to_end(&mut text))
                    .map_err(|e| fail(e.to_string()))?;
            }
            // Nothing logged yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        let mut out = Vec::new();
        let mut start = 0usize;
        while let Some(len) = text[start..].iter().position(|b| *b == b'\n') {
            let line = &text[start..start + len];
            let end = start + len + 1;
            if !line.is_empty() {
                let (request, started_only) = parse_audit_event(line).map_err(&fail)?;
                out.push(Logged {
                    start: from + start as u64,
                    end: from + end as u64,
                    started_only,
                    request,
                });
            }
            start = end;
        }
        Ok(out)
    }
}

/// The first line of each request.
fn once_each(requests: impl Iterator<Item = AuditedRequest>) -> Vec<AuditedRequest> {
    let mut seen = HashSet::new();
    requests.filter(|r| seen.insert(r.id.clone())).collect()
}

/// A line's request, and whether it was logged as its response started.
fn parse_audit_event(line: &[u8]) -> Result<(AuditedRequest, bool), String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| {
        format!(
            "a line is not JSON ({e}): {}",
            String::from_utf8_lossy(line)
        )
    })?;
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let missing = |what: &str| format!("an event has no {what}: {v}");
    let request = AuditedRequest {
        id: s("/auditID").ok_or_else(|| missing("auditID"))?,
        verb: s("/verb").ok_or_else(|| missing("verb"))?,
        uri: s("/requestURI").ok_or_else(|| missing("requestURI"))?,
        namespace: s("/objectRef/namespace"),
    };
    Ok((request, s("/stage").as_deref() == Some("ResponseStarted")))
}

/// A TCP relay on 127.0.0.1 in front of the API server that counts the
/// bytes the server sends. TLS runs end to end through it.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    down: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port and relays every connection to
    /// `upstream`. Must be called inside a tokio runtime, which runs it.
    pub async fn start(upstream: SocketAddr) -> Result<Relay> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(io("binding the relay"))?;
        let addr = listener.local_addr().map_err(io("the relay's address"))?;
        let down = Arc::new(AtomicU64::new(0));
        let shared = down.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let down = shared.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let _ = tokio::join!(pump(sr, cw, Some(&down)), pump(cr, sw, None));
                });
            }
        });
        Ok(Relay { addr, down, task })
    }

    /// `https://127.0.0.1:PORT` of the relay.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Bytes relayed from the server to clients so far: a byte a client
    /// has read through the relay is counted by the time it reads it.
    pub fn bytes_down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until EOF, counting each chunk in `counter` before
/// passing it on (so that whoever reads it finds it counted).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: Option<&AtomicU64>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        if let Some(counter) = counter {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// The socket address of an `https://HOST:PORT` URL.
pub fn socket_addr(url: &str) -> Result<SocketAddr> {
    let hostport = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    hostport.parse().map_err(|e| Error::Io {
        what: format!("the address of {url}"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })
}

/// How a watch from a resourceVersion was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchAnswer {
    /// The stream opened; it carried no ERROR first.
    Served,
    /// 410 Gone: as an HTTP status (`http`) or as a first ERROR event.
    Gone {
        /// Whether it came as the HTTP status rather than an ERROR event.
        http: bool,
        /// The Status's reason (`Expired`, `Gone`).
        reason: String,
        /// The Status's message, e.g. `too old resource version: 5 (120)`.
        message: String,
    },
}

/// How the server answers a pods watch from `rv` (all namespaces), judged by
/// its status and first event within a second.
pub async fn watch_answer(client: &kube::Client, rv: &str) -> Result<WatchAnswer> {
    let api: Api<Pod> = Api::all(client.clone());
    let stream = match api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), rv)
        .await
    {
        Ok(s) => s,
        Err(kube::Error::Api(s)) if s.code == 410 => {
            return Ok(WatchAnswer::Gone {
                http: true,
                reason: s.reason.clone(),
                message: s.message.clone(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let mut stream = std::pin::pin!(stream);
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(WatchEvent::Error(s)))) if s.code == 410 => Ok(WatchAnswer::Gone {
            http: false,
            reason: s.reason.clone(),
            message: s.message.clone(),
        }),
        Ok(Some(Err(e))) => Err(e.into()),
        _ => Ok(WatchAnswer::Served),
    }
}

/// The resourceVersion of a consistent pods list (served from the watch
/// cache once it has caught up with etcd): where the cache is now.
pub async fn current_rv(client: &kube::Client) -> Result<String> {
    let api: Api<Pod> = Api::all(client.clone());
    let list = api.list_metadata(&ListParams::default().limit(1)).await?;
    Ok(list.metadata.resource_version.unwrap_or_default())
}

/// Drives the watch cache past `rv`, so that a pods watch from it answers
/// 410, the way a cluster does to a client that was away longer than the
/// cache's window: the cache keeps events younger than [`EVENT_FRESH`]
/// whatever their number, so wait that long, then write (`churn`, e.g.
/// [`ApiServer::churn`] on one pod) until a watch from `rv` is refused.
/// Returns the writes made and how the watch was refused.
pub async fn expire_history(
    client: &kube::Client,
    rv: &str,
    mut churn: impl FnMut(usize) -> Result<()>,
) -> Result<(usize, WatchAnswer)> {
    tokio::time::sleep(EVENT_FRESH + Duration::from_secs(2)).await;
    // Once full, a cache whose recent quarter is stale halves on every
    // write down to 100 events; a few hundred writes drop anything stale.
    let mut writes = 0;
    let mut step = 150;
    loop {
        match watch_answer(client, rv).await? {
            gone @ WatchAnswer::Gone { .. } => return Ok((writes, gone)),
            WatchAnswer::Served if writes >= 200_000 => {
                return Err(Error::Expire {
                    rv: rv.to_owned(),
                    reason: format!("still served after {writes} writes"),
                })
            }
            WatchAnswer::Served => {}
        }
        churn(step)?;
        writes += step;
        step = (step * 2).min(20_000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_parse_in_the_documented_order() {
        let text = [
            "kubeconfig /tmp/kc",
            "pods created 1000 in 15.3s",
            "probe ns-000/api-l42jwmw6tl-bbb9l",
            "admin on http://127.0.0.1:40407",
            "listening on https://127.0.0.1:45565",
        ];
        let lines: Vec<Line> = text.iter().map(|l| Line::parse(l).unwrap()).collect();
        let ready = Ready::from_lines(&lines).unwrap();
        assert_eq!(
            ready,
            Ready {
                url: "https://127.0.0.1:45565".into(),
                kubeconfig: "/tmp/kc".into(),
                admin: "http://127.0.0.1:40407".into(),
            }
        );
    }

    #[test]
    fn an_unknown_line_or_a_missing_one_is_named() {
        assert_eq!(
            Line::parse("hello there").unwrap_err(),
            "unexpected line \"hello there\""
        );
        assert!(Line::parse("pods created many in 1s").is_err());
        let lines = [Line::Listening("https://x:1".into())];
        assert_eq!(
            Ready::from_lines(&lines).unwrap_err(),
            "it printed no kubeconfig line"
        );
        let lines = [
            Line::Kubeconfig("/k".into()),
            Line::Listening("https://x:1".into()),
        ];
        assert_eq!(
            Ready::from_lines(&lines).unwrap_err(),
            "it printed no admin line"
        );
    }

    #[test]
    fn http_answers_split_into_status_and_body() {
        let raw = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"revision\":7}\n";
        let (status, body) = split_http_response(raw).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, b"{\"revision\":7}\n");
        let (status, _) =
            split_http_response(b"HTTP/1.1 400 Bad Request\r\n\r\nn must be").unwrap();
        assert_eq!(status, 400);
        assert!(split_http_response(b"garbage").is_err());
    }

    #[test]
    fn audit_lines_become_requests_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let watch = r#"{"auditID":"a","stage":"ResponseStarted","verb":"watch","requestURI":"/api/v1/namespaces/x/pods?watch=true&resourceVersion=12&allowWatchBookmarks=true","objectRef":{"resource":"pods","namespace":"x"},"user":{"username":"kube-persist-admin"},"responseStatus":{"code":200}}"#;
        let watch_done = watch.replace("ResponseStarted", "ResponseComplete");
        let list = r#"{"auditID":"b","stage":"ResponseComplete","verb":"list","requestURI":"/api/v1/pods?limit=500","objectRef":{"resource":"pods"},"user":{"username":"u"},"responseStatus":{"code":200}}"#;
        let stream = r#"{"auditID":"c","verb":"watch","requestURI":"/api/v1/pods?&watch=true&sendInitialEvents=true&resourceVersion=","responseStatus":{"code":200}}"#;
        std::fs::write(&path, format!("{watch}\n{list}\n")).unwrap();
        let log = AuditLog { path: path.clone() };
        let mark = log.mark();
        let all = log.since(0).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[0].is_watch() && !all[0].is_streaming_list());
        assert_eq!(all[0].namespace.as_deref(), Some("x"));
        assert_eq!(all[0].query("resourceVersion"), Some("12"));
        assert!(all[1].is_list());
        assert_eq!(all[1].query("limit"), Some("500"));
        assert_eq!(all[1].query("continue"), None);
        // The watch's completion is the same request; a half-written line
        // waits for its end.
        std::fs::write(
            &path,
            format!("{watch}\n{list}\n{watch_done}\n{stream}\n{{\"audit"),
        )
        .unwrap();
        let later = log.since(mark).unwrap();
        assert_eq!(later.len(), 2, "{later:?}");
        assert!(later[1].is_streaming_list());
        assert_eq!(later[1].query("resourceVersion"), Some(""));
    }

    #[test]
    fn a_watch_open_at_the_mark_is_not_counted_when_it_completes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let line = |id: &str, stage: &str, verb: &str, uri: &str| {
            format!(
                r#"{{"auditID":"{id}","stage":"{stage}","verb":"{verb}","requestURI":"{uri}"}}"#
            ) + "\n"
        };
        let before = line("w", "ResponseStarted", "watch", "/api/v1/pods?watch=1")
            + &line("l", "ResponseComplete", "list", "/api/v1/pods");
        let sentinel = line(
            "s",
            "ResponseComplete",
            "get",
            "/api/v1/namespaces/default/pods/s1",
        );
        let after = line("w", "ResponseComplete", "watch", "/api/v1/pods?watch=1")
            + &line("n", "ResponseComplete", "list", "/api/v1/pods?limit=500");
        let sentinel2 = line(
            "t",
            "ResponseComplete",
            "get",
            "/api/v1/namespaces/default/pods/s2",
        );
        let late = line("m", "ResponseComplete", "list", "/api/v1/pods");
        std::fs::write(&path, format!("{before}{sentinel}{after}{sentinel2}{late}")).unwrap();
        let log = AuditLog { path };
        let mark = log.mark_at(before.len() as u64).unwrap();
        assert_eq!(mark.offset, (before.len() + sentinel.len()) as u64);
        assert_eq!(mark.open, HashSet::from(["w".to_owned()]));
        let settled = (before.len() + sentinel.len() + after.len()) as u64;
        let ids: Vec<String> = log
            .between_marks(&mark, settled)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        // Not the watch opened before the mark, nor the sentinels, nor what
        // was logged after the second one.
        assert_eq!(ids, ["n"]);
        assert_eq!(log.between(0, before.len() as u64).unwrap().len(), 2);
    }

    #[test]
    fn a_damaged_audit_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "not json\n").unwrap();
        let err = AuditLog { path }.since(0).unwrap_err().to_string();
        assert!(err.contains("not json"), "{err}");
        let missing = AuditLog {
            path: dir.path().join("nothing-yet"),
        };
        assert_eq!(missing.since(0).unwrap(), Vec::new());
    }

    #[test]
    fn urls_give_their_socket_address() {
        assert_eq!(
            socket_addr("https://127.0.0.1:6443").unwrap(),
            "127.0.0.1:6443".parse().unwrap()
        );
        assert!(socket_addr("https://localhost:6443").is_err());
    }

    #[test]
    fn the_harness_is_looked_for_beside_the_profile_dir() {
        assert_eq!(
            default_bin_dir(Path::new("/w/target/release")),
            Path::new("/w/target/apiserver-bin")
        );
        match program(Path::new("/nonexistent"), APISERVER_PROGRAM) {
            Err(e @ Error::NotBuilt { .. }) => {
                assert!(e
                    .to_string()
                    .contains("tests/apiserver/build.sh /nonexistent"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_relay_counts_what_the_server_sent() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.unwrap();
            let mut req = [0u8; 5];
            s.read_exact(&mut req).await.unwrap();
            s.write_all(&[7u8; 100_000]).await.unwrap();
        });
        let relay = Relay::start(up_addr).await.unwrap();
        let mut c = tokio::net::TcpStream::connect(socket_addr(&relay.url()).unwrap())
            .await
            .unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 100_000);
        assert_eq!(relay.bytes_down(), 100_000);
    }
}
