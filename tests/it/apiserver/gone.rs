//! 410 after the watch cache's window, and the relist by diff (I4), on a
//! server of this test's own: its store's resourceVersion is pushed out of
//! the cache the way a cluster does it to a client that was away (75 s
//! pass, then writes elsewhere in the resource fill the shrunken cache),
//! not by a compaction the cache would never notice.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::apiserver::*;
use kube_persist::store::EventKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_the_window_gets_410_and_relists_exactly_the_difference() {
    let Some(server) = dedicated(Options {
        pods: 40,
        namespaces: 2,
        audit: true,
        ..Options::default()
    }) else {
        return;
    };
    let client = server.client().await.unwrap();
    let (ns, elsewhere) = ("ns-000", "ns-001");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    let first = sync_until_synced(&server, &store, ns, &[]).await;
    assert_eq!(first.code, 0, "first sync failed:\n{}", first.stderr);
    let (before, stored_rv, last_seq) = store_state(&store);
    let stored_rv = stored_rv.expect("the first sync stored a resourceVersion");
    assert_eq!(before, server_pods(&client, ns).await);

    // While it is away: 3 created, 3 deleted, 3 modified; the rest unchanged.
    let names: Vec<String> = before
        .keys()
        .map(|k| k.split_once('/').unwrap().1.to_owned())
        .collect();
    for i in 0..3 {
        create_pod(&client, ns, &format!("created-while-away-{i}")).await;
        delete_pod(&client, ns, &names[i]).await;
        label_pod(&client, ns, &names[3 + i], "changed").await;
    }
    let after = server_pods(&client, ns).await;
    let expected = difference(&before, &after);
    assert_eq!(expected.len(), 9, "{expected:?}");

    // Out of the window: the writes go to one pod of the other namespace.
    let (writes, answer) = expire_history(&client, &stored_rv, |n| {
        server.churn(n, Some(elsewhere), Some(1)).map(drop)
    })
    .await
    .unwrap();
    println!("410 after {writes} writes elsewhere: {answer:?}");
    match &answer {
        WatchAnswer::Gone {
            http,
            reason,
            message,
        } => {
            // kube-apiserver answers an expired watch with 200 and an ERROR
            // event, not with an HTTP 410.
            assert!(!http, "{answer:?}");
            assert_eq!(reason, "Expired");
            assert!(
                message.starts_with(&format!("too old resource version: {stored_rv} (")),
                "{message}"
            );
        }
        WatchAnswer::Served => unreachable!("expire_history returns only once refused"),
    }
    assert_eq!(
        server_pods(&client, ns).await,
        after,
        "the writes elsewhere left the watched namespace alone"
    );

    let mark = audit_mark(&server);
    let relisted = sync_until_synced(&server, &store, ns, &[]).await;
    assert_eq!(
        relisted.code, 0,
        "sync after 410 failed:\n{}",
        relisted.stderr
    );
    let status = relisted.status();
    assert_eq!(status["relists"], "1", "{status:?}");
    assert_eq!(status["resumed"], "false");
    let requests = requests_after(&server, &client, mark, ns).await;
    assert_eq!(
        requests[0].query("resourceVersion"),
        Some(stored_rv.as_str()),
        "it first tried to resume: {requests:#?}"
    );
    assert!(
        requests[1..]
            .iter()
            .any(|r| r.is_list() || r.is_streaming_list()),
        "then relisted: {requests:#?}"
    );

    let (stored, _, _) = store_state(&store);
    assert_eq!(stored, after, "the store equals the server");
    let journaled = journal_after(&store, last_seq);
    assert_eq!(
        journaled, expected,
        "the relist journaled exactly the difference (I4)"
    );
}

/// (kind, key) of every change from `before` to `after`.
fn difference(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (k, rv) in after {
        match before.get(k) {
            None => out.insert(("Added".to_owned(), k.clone())),
            Some(old) if old != rv => out.insert(("Modified".to_owned(), k.clone())),
            Some(_) => false,
        };
    }
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        out.insert(("Deleted".to_owned(), k.clone()));
    }
    out
}

/// (kind, key) of every journal entry after `seq`, each at most once.
fn journal_after(store: &std::path::Path, seq: u64) -> BTreeSet<(String, String)> {
    let s = kube_persist::store::Store::open_read_only(store).unwrap();
    let ids = s.collections().unwrap();
    let c = s.collection(&ids[0]).unwrap();
    let entries = c.journal_since(seq).unwrap();
    let mut out = BTreeSet::new();
    for e in entries {
        let kind = match e.kind {
            EventKind::Added => "Added",
            EventKind::Modified => "Modified",
            EventKind::Deleted => "Deleted",
            EventKind::Resync => "Resync",
        };
        let key = format!("{}/{}", e.key.namespace.unwrap_or_default(), e.key.name);
        assert!(
            out.insert((kind.to_owned(), key.clone())),
            "{kind} {key} journaled twice"
        );
    }
    out
}
