//! `kube-persist sync` against the in-process simulator: what it says and
//! which documented exit code it picks when the command line, the store or
//! the server is wrong, and the status line it prints once synced.

use std::path::Path;

use crate::support::cli::*;
use kube_persist::sim::{SimConfig, Simulator};
use kube_persist::store::Store;

async fn sim() -> Simulator {
    Simulator::start(SimConfig {
        pods: 5,
        namespaces: 1,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// The one `error:` line of a failed run. kube-client may log its own
/// connection failure before it; nothing else may be printed, and nothing
/// on stdout.
pub(super) fn error_line(r: &Run) -> &str {
    assert_eq!(r.stdout, "");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    errors[0]
}

pub(super) fn sync(store: &Path, url: &str, extra: &[&str]) -> Run {
    let store = store.to_str().unwrap();
    let mut args = vec!["sync", "--store", store, "--server", url, "--until-synced"];
    args.extend_from_slice(extra);
    kp(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_server_url_is_a_usage_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    for (url, resource, why) in [
        ("not-a-url", "pods", "no http:// or https:// scheme"),
        ("not-a-url", "wd", "no http:// or https:// scheme"),
        ("http://a b", "pods", "invalid uri character"),
        ("ftp://host", "pods", "scheme \"ftp\" is not http or https"),
        ("127.0.0.1:6443", "pods", "no http:// or https:// scheme"),
        // `http::Uri` takes any digits as a port.
        (
            "http://127.0.0.1:99999",
            "pods",
            "port 99999 is not between 1 and 65535",
        ),
        (
            "http://127.0.0.1:0",
            "wd",
            "port 0 is not between 1 and 65535",
        ),
    ] {
        let r = sync(&store, url, &["--resource", resource]);
        assert_eq!(r.code, 64, "{url} {resource}: {}", r.stderr);
        let line = error_line(&r);
        assert!(
            line.starts_with(&format!(
                "error: --server {url:?} is not a valid API server URL"
            )),
            "{line}"
        );
        assert!(line.contains(why), "{url}: {line}");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    assert!(!store.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_selector_is_a_usage_error_and_registers_no_collection() {
    let sim = sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    for (option, value, line) in [
        (
            "-l",
            "a in (b",
            "error: unable to parse label selector \"a in (b\": value set opened at position 6 is not closed with \")\"",
        ),
        (
            "--field-selector",
            "bogus",
            "error: invalid field selector \"bogus\": term \"bogus\" has no operator ('=', '==' or '!=')",
        ),
    ] {
        let r = sync(&store, &sim.url(), &["--resource", "pods", option, value]);
        assert_eq!(r.code, 64, "{option} {value}: {}", r.stderr);
        assert_eq!(error_line(&r), line);
        assert!(!store.exists(), "{option} {value} created the store");
    }
    // The server's syntax is accepted, and the offline commands find the
    // one collection it made.
    let r = sync(
        &store,
        &sim.url(),
        &[
            "--resource",
            "pods",
            "-l",
            "app!=none",
            "--field-selector",
            "metadata.namespace==ns-000,metadata.name!=x",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list = ok(&["list", store.to_str().unwrap(), "-r", "pods", "-o", "name"]);
    assert_eq!(list.lines().count(), 5, "{list}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_namespace_is_refused_as_list_refuses_it() {
    let sim = sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let bad = ["BAD_NS!!", "a/b", "x-", &"a".repeat(64), ""];
    for ns in bad {
        let r = sync(&store, &sim.url(), &["--resource", "pods", "-n", ns]);
        assert_eq!(r.code, 64, "{ns:?}: {}", r.stderr);
        assert_eq!(
            error_line(&r),
            format!(
                "error: invalid namespace {ns:?}: a namespace is at most 63 lowercase letters, \
                 digits and '-', starting and ending with a letter or digit"
            )
        );
        assert!(!store.exists(), "-n {ns:?} created the store");
    }
    // The good name syncs (`-r`, as the offline commands spell
    // `--resource`); the offline commands then refuse the bad ones in the
    // very same words.
    let r = sync(&store, &sim.url(), &["-r", "pods", "-n", "ns-000"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dir = store.to_str().unwrap();
    let listed = ok(&["list", dir, "-r", "pods", "-n", "ns-000", "-o", "name"]);
    assert_eq!(listed.lines().count(), 5, "{listed}");
    for ns in bad[..4].iter().copied() {
        let synced = sync(&store, &sim.url(), &["--resource", "pods", "-n", ns]);
        let listed = kp(&["list", dir, "-r", "pods", "-n", ns]);
        assert_eq!((synced.code, listed.code), (64, 64), "{ns:?}");
        assert_eq!(synced.stderr, listed.stderr, "{ns:?}");
    }
    // Nothing was registered for them.
    let inspected = ok(&["inspect", dir]);
    assert!(!inspected.contains("BAD_NS"), "{inspected}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_problems_exit_with_the_offline_commands_codes() {
    let sim = sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("afile");
    std::fs::write(&file, b"x").unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::write(photos.join("cat.jpg"), b"meow").unwrap();
    for (dir, what) in [
        (&file, "is not a directory"),
        (&photos, "is not a kube-persist store"),
    ] {
        let r = sync(dir, &sim.url(), &["--resource", "pods"]);
        assert_eq!(r.code, 3, "{}", r.stderr);
        let d = dir.display();
        assert_eq!(
            error_line(&r),
            format!("error: opening store {d}: {d} {what}")
        );
    }
    assert_eq!(std::fs::read_dir(&photos).unwrap().count(), 1);

    let store = tmp.path().join("s");
    let held = Store::open(&store).unwrap();
    let r = sync(&store, &sim.url(), &["--resource", "pods"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        error_line(&r).contains("is in use by another process; try again once"),
        "{}",
        r.stderr
    );
    drop(held);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_empty_and_unreachable_resources_are_told_apart() {
    let sim = sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");

    let r = sync(&store, &sim.url(), &["--resource", "gizmo"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert_eq!(
        error_line(&r),
        "error: the server has no resource named \"gizmo\""
    );
    let r = sync(&store, &sim.url(), &["--resource", ""]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(error_line(&r).starts_with("error: --resource is empty"));
    assert!(!store.exists());
    sim.shutdown().await;

    // A port nothing listens on: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let r = sync(&store, &url, &["--resource", "gizmo"]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    let line = error_line(&r);
    assert!(
        line.starts_with("error: cannot reach the API server: "),
        "{line}"
    );
    assert!(!line.contains("resource"), "{line}");
    assert!(!store.exists());
}

fn status(r: &Run) -> &str {
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = r.stdout.lines().find_map(|l| l.strip_prefix("synced rv="));
    // Everything after the rv, which the simulator's writes move.
    line.unwrap().split_once(' ').unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_line_shows_relists() {
    let sim = sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let args = ["--resource", "pods"];

    let first = sync(&store, &sim.url(), &args);
    assert_eq!(
        status(&first),
        "objects=5 resumed=false relists=1 list_requests=0"
    );
    let resumed = sync(&store, &sim.url(), &args);
    assert_eq!(
        status(&resumed),
        "objects=5 resumed=true relists=0 list_requests=0"
    );
    // The stored resourceVersion compacted away: 410, then, the store
    // holding objects, a relist by a metadata-only LIST and GETs of what
    // changed.
    sim.mutate(3);
    sim.compact();
    let objects = sim.objects("pods").len();
    let relisted = sync(&store, &sim.url(), &args);
    assert_eq!(
        status(&relisted),
        format!("objects={objects} resumed=false relists=1 list_requests=1")
    );
    // Without streaming lists the same: the metadata list is a LIST.
    sim.mutate(3);
    sim.compact();
    let objects = sim.objects("pods").len();
    let paged = sync(
        &store,
        &sim.url(),
        &["--resource", "pods", "--no-streaming-list"],
    );
    assert_eq!(
        status(&paged),
        format!("objects={objects} resumed=false relists=1 list_requests=1")
    );
    sim.shutdown().await;
}

#[test]
fn sync_help_documents_its_exit_codes() {
    for help in [ok(&["--help"]), ok(&["sync", "--help"])] {
        assert_has_lines(
            &help,
            &[
                "Exit codes:",
                "  6   the object or resource is not in the store; for `sync`: not on the server",
                "  7   `sync`: the API server could not be reached",
                "  8   `sync --until-synced`: not synced within --sync-timeout because the store's",
                "  130 `sync`: stopped by SIGINT or SIGTERM before the store was synced",
            ],
        );
    }
}

#[test]
fn the_sync_timeout_shows_its_default_and_needs_until_synced() {
    let help = ok(&["sync", "--help"]);
    let option = help
        .split("--sync-timeout <SECONDS>")
        .nth(1)
        .expect("--sync-timeout in sync --help");
    // Its own text, however clap wraps it.
    let text = option.split("\n      --").next().unwrap();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("[default: 120]"), "{text}");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let dir = store.to_str().unwrap();
    let with = |extra: &[&'static str]| {
        let mut args = vec!["sync", "--store", dir, "--resource", "pods"];
        args.extend_from_slice(extra);
        kp(&args)
    };
    let r = with(&["--server", "http://127.0.0.1:1", "--sync-timeout", "5"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        error_line(&r).starts_with("error: --sync-timeout applies only with --until-synced"),
        "{}",
        r.stderr
    );
    let r = with(&["--until-synced", "--sync-timeout", "0"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("--sync-timeout"), "{}", r.stderr);
    assert!(!store.exists());
}

/// SIGTERM while the first sync is under way, with a durable consumer
/// printing and acknowledging: exit 130, no error logged (the consumer is
/// stopped before the store closes, not left to find it gone), and the
/// store intact with the consumer's cursor at or below what it printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_before_sync_stops_the_consumer_and_exits_130() {
    use tokio::io::AsyncBufReadExt;
    let sim = Simulator::start(SimConfig {
        // Enough that storing them takes seconds: the signal comes while
        // the first batches are being stored and printed.
        pods: 5_000,
        namespaces: 10,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-persist"))
        .args(["sync", "-r", "pods", "--consumer", "printer", "--server"])
        .arg(sim.url())
        .arg("--store")
        .arg(&store)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().expect("a first line");
    assert!(first.starts_with("event seq="), "{first}");
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    // SAFETY: signals our own child, still running (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut printed = vec![first];
    while let Some(line) = lines.next_line().await.unwrap() {
        printed.push(line);
    }
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert!(
        printed.iter().all(|l| l.starts_with("event seq=")),
        "stopped before the synced line: {printed:?}"
    );
    let last_printed: u64 = printed
        .last()
        .and_then(|l| l.strip_prefix("event seq="))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let store = Store::open(&store).unwrap();
    let ids = store.collections().unwrap();
    let c = store.collection(&ids[0]).unwrap();
    assert!(c.verify().unwrap().is_ok());
    let acked = c.cursor("printer").unwrap().unwrap_or(0);
    assert!(
        acked <= last_printed,
        "acked {acked}, printed up to {last_printed}"
    );
    sim.shutdown().await;
}
