//! Differential conformance: the LISTWATCH.md cases a real server can be
//! driven through, each run from one code path on the simulator
//! (`<case>::sim`) and on a real kube-apiserver v1.37 with its watch cache
//! (`<case>::kube_apiserver`, tests/apiserver). The fixture is
//! `support::conformance::Target`. Cases a real server cannot be driven
//! into (forced compaction of a watch cache's history, injected faults,
//! switched-off streaming lists, the simulator's own endpoints and load)
//! stay in `sim::conformance`, each marked simulator-only there.
//!
//! Known differences, each kept as it is, with its reason (everything else
//! a case checks is the same on both):
//!
//! 1. resourceVersions: the simulator's advance by exactly one per write of
//!    any resource; the real server's are etcd revisions, also moved by
//!    its own writes (leases, endpoints) and by other tests on the shared
//!    server. Cases compare versions with those their writes returned,
//!    which holds on both; the simulator's own tests check the +1 steps.
//! 2. Discovery: the simulator serves five core resources and one custom
//!    resource (Widget); kube-apiserver serves every built-in API. The
//!    case checks what clients rely on for the core resources.
//! 3. (none: a `resourceVersion=0` list ignores its `limit` on both.)
//!
//! Found by these cases, not yet fixed in the simulator; the real
//! server's run of each is ignored with the number here as its reason:
//!
//! 4. Deleting a pod: kube-apiserver's graceful deletion (grace 0 for an
//!    unscheduled pod) first writes `deletionTimestamp` and
//!    `deletionGracePeriodSeconds` (a MODIFIED event), then deletes (a
//!    DELETED event carrying them); the simulator sends only DELETED, with
//!    the last state (case07, case10).
//! 5. case12: kube-apiserver sent 4 events where the simulator sends 3 (two
//!    changes and the pre-deadline bookmark); not yet examined.
//! 6. An unknown API group: kube-apiserver answers with its plain-text
//!    `404 page not found`, the simulator with a JSON Status (case18).
//! 7. A POST whose body carries a `resourceVersion`: kube-apiserver answers
//!    500 "resourceVersion should not be set on objects to be created",
//!    the simulator 409 AlreadyExists (writes_over_http).

mod cases;
