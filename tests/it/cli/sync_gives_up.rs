//! `sync --until-synced` when it cannot succeed: it gives up after
//! `--sync-timeout` with the exit code of the true cause (7: no API server
//! reached; 8: the store's disk is full) and a message naming it, and what
//! was stored stays readable.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube_persist::sim::{SimConfig, Simulator};
use kube_persist::store::EngineKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::sync::{error_line, sync};
use crate::support::cli::*;

/// Far above `--sync-timeout` + the shutdown: a bound that only a sync
/// that never gives up can miss. Not a speed test.
const TERMINATES_WITHIN: Duration = Duration::from_secs(30);

/// `sync --until-synced --sync-timeout 2 --resource pods` against `url`,
/// run off the test's async threads (which serve the fake servers).
async fn sync_giving_up(url: &str) -> (Run, Duration, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let url = url.to_string();
    let started = Instant::now();
    let r = tokio::task::spawn_blocking(move || {
        sync(&store, &url, &["--resource", "pods", "--sync-timeout", "2"])
    })
    .await
    .unwrap();
    (r, started.elapsed(), tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_gives_up_with_7() {
    // A built-in resource needs no discovery: without the timeout, nothing
    // would ever stop the retries.
    let (r, took, tmp) = sync_giving_up("http://127.0.0.1:1").await;
    assert_eq!(r.code, 7, "{}", r.stderr);
    // The store it created holds nothing, so it is gone.
    assert!(!tmp.path().join("s").exists(), "{}", r.stderr);
    let line = error_line(&r);
    assert!(
        line.starts_with(
            "error: not synced within --sync-timeout 2s: the API server could not be reached: "
        ),
        "{line}"
    );
    // The cause itself, not just kube's `client error (Connect)`.
    assert!(line.contains("Connection refused"), "{line}");
    assert!(took < TERMINATES_WITHIN, "took {took:?}");
    // Each retry is logged once, by the informer with its cause, not again
    // by kube's client.
    assert!(r.stderr.contains("streaming list failed"), "{}", r.stderr);
    assert!(!r.stderr.contains("kube_client"), "{}", r.stderr);

    // A directory that was there before is the caller's: it stays.
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let dir = existing.clone();
    let r = tokio::task::spawn_blocking(move || {
        sync(
            &dir,
            "http://127.0.0.1:1",
            &["--resource", "pods", "--sync-timeout", "1"],
        )
    })
    .await
    .unwrap();
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(
        existing.join("kube-persist.json").exists(),
        "the store in the caller's directory is kept: {}",
        r.stderr
    );
}

/// A web server that answers every request with 200 and `body`, as a
/// misconfigured URL (a proxy's page, another service) does.
async fn web_server(body: &'static [u8]) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Requests are GETs: the head is the whole of them.
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                // The client may hang up first; nothing to check then.
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.write_all(body).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_no_api_server_gives_up_with_7() {
    for body in [
        &b"<!DOCTYPE html>\n<html><body><h1>It works!</h1></body></html>\n"[..],
        // Not even text.
        &b"\xff\xfe\x00garbage\n"[..],
    ] {
        let (url, server) = web_server(body).await;
        let (r, took, _tmp) = sync_giving_up(&url).await;
        server.abort();
        let shown = String::from_utf8_lossy(body);
        assert_eq!(r.code, 7, "{shown}: {}", r.stderr);
        let line = error_line(&r);
        assert!(
            line.starts_with(
                "error: not synced within --sync-timeout 2s: \
                 the server does not answer as a Kubernetes API server does: "
            ),
            "{shown}: {line}"
        );
        assert!(took < TERMINATES_WITHIN, "{shown}: took {took:?}");
    }
}

/// A tmpfs of `size` mounted at a directory for one test, unmounted when
/// dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None`, having said why on stderr, where mounting is not allowed
    /// (not root, or a container without CAP_SYS_ADMIN).
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        let mut mount = Command::new("mount");
        mount
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at);
        let guard = fork_guard();
        let out = mount.output();
        drop(guard);
        let why = match out {
            Ok(out) if out.status.success() => return Some(Tmpfs(at.to_path_buf())),
            Ok(out) => format!(
                "`mount -t tmpfs` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(err) => format!("cannot run `mount`: {err}"),
        };
        eprintln!("\n!!!!! FULL-DISK TEST NOT RUN: {why}. It needs root and a mount-capable container. !!!!!\n");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let guard = fork_guard();
        let status = Command::new("umount").arg(&self.0).status();
        drop(guard);
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("could not unmount the test's tmpfs at {}", self.0.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_up_with_8_and_keeps_what_was_stored_redb() {
    full_disk(EngineKind::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_up_with_8_and_keeps_what_was_stored_sled() {
    full_disk(EngineKind::Sled).await;
}

/// A sync on `engine` into a tmpfs too small for the simulator's pods.
async fn full_disk(engine: EngineKind) {
    const PODS: usize = 10_000;
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    // 10,000 simulated pods take 30-55 MB on either engine, one batch of 500
    // under 3 MB: room for a few batches, never for all of them.
    let Some(_mounted) = Tmpfs::mount(&small, "12m") else {
        return;
    };
    let sim = Simulator::start(SimConfig {
        pods: PODS,
        namespaces: 10,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let store = small.join("s");
    let (url, dir) = (sim.url(), store.clone());
    let started = Instant::now();
    let r = tokio::task::spawn_blocking(move || {
        let engine = engine.to_string();
        let extra = [
            "--resource",
            "pods",
            "--engine",
            &engine,
            "--sync-timeout",
            "15",
        ];
        sync(&dir, &url, &extra)
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(r.code, 8, "{}", r.stderr);
    let line = error_line(&r);
    let data_file = store.join(engine.data_file());
    // A write refused for lack of space, or a flush that failed for it,
    // after which the store takes no more writes until it is reopened.
    let prefix = "error: not synced within --sync-timeout 15s: the store's disk is full: \
                  could not store a batch: ";
    let refused = format!("i/o error on {}: ", data_file.display());
    let rest = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        rest.starts_with(&refused)
            || rest.starts_with(&format!(
                "a flush of the store failed, so it takes no more writes until it is opened again: {refused}"
            )),
        "{line}"
    );
    assert!(took < TERMINATES_WITHIN, "took {took:?}");
    // Nothing was stored with a resourceVersion: what the retries said
    // they would do is relist, not resume.
    assert!(
        r.stderr
            .contains("no resourceVersion is stored, so relisting"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr
            .contains("re-watching from the stored resourceVersion"),
        "{}",
        r.stderr
    );

    // What was stored before the disk filled is there, intact.
    let dir = store.to_str().unwrap();
    let listed = kp(&["list", dir, "-r", "pods", "-o", "name"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let kept = listed.stdout.lines().count();
    assert!(kept > 0 && kept < PODS, "{kept} pods kept");
    let verified = kp(&["verify", dir]);
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
    sim.shutdown().await;
}
