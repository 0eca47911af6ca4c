//! `kube-persist sync` against the real server, reading its kubeconfig as
//! a user's (`KUBECONFIG`, no `--server`): a first sync, then a resume that
//! makes no LIST and no streaming list, only a watch from the stored
//! resourceVersion (I3), as the server's audit log records it.

use crate::support::apiserver::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_then_resume_with_zero_list_requests() {
    let Some(server) = shared() else { return };
    let client = server.client().await.unwrap();
    let ns = SharedNs::Resume.name();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    let mark = audit_mark(server);
    let first = sync_until_synced(server, &store, &ns, &[]).await;
    assert_eq!(first.code, 0, "first sync failed:\n{}", first.stderr);
    let status = first.status();
    let want = server_pods(&client, &ns).await;
    assert_eq!(status["objects"], want.len().to_string(), "{status:?}");
    assert_eq!(status["resumed"], "false");
    let (stored, first_rv, _) = store_state(&store);
    assert_eq!(
        stored, want,
        "the first sync holds the server's pods and RVs"
    );
    assert_eq!(first_rv.as_deref(), Some(status["rv"].as_str()));
    // The log sees this test's requests: the first sync listed somehow.
    let requests = requests_after(server, &client, mark, &ns).await;
    assert!(
        requests
            .iter()
            .any(|r| r.is_list() || r.is_streaming_list()),
        "the first sync's list is in the audit log: {requests:#?}"
    );

    // Changes while it is down, for the resume to replay.
    churn(server, 5, &ns, None).await;
    let want = server_pods(&client, &ns).await;

    let mark = audit_mark(server);
    let resumed = sync_until_synced(server, &store, &ns, &[]).await;
    assert_eq!(resumed.code, 0, "resume failed:\n{}", resumed.stderr);
    let status = resumed.status();
    assert_eq!(status["resumed"], "true", "{status:?}");
    assert_eq!(status["relists"], "0");
    assert_eq!(status["list_requests"], "0");
    let requests = requests_after(server, &client, mark, &ns).await;
    let lists: Vec<_> = requests
        .iter()
        .filter(|r| r.is_list() || r.is_streaming_list())
        .collect();
    assert!(lists.is_empty(), "the resume listed: {lists:#?}");
    let watches: Vec<_> = requests.iter().filter(|r| r.is_watch()).collect();
    assert!(!watches.is_empty(), "the resume watched: {requests:#?}");
    assert_eq!(
        watches[0].query("resourceVersion"),
        first_rv.as_deref(),
        "the first watch resumes from the stored resourceVersion: {watches:#?}"
    );
    let (stored, _, _) = store_state(&store);
    assert_eq!(stored, want, "the resume caught up with the writes");
}
