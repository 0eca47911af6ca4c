//! Mutation load: realistic writes to pods (status changes, label changes,
//! creates and deletes), one at a time or as a steady rate in the
//! background for benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fixtures;
use super::managed_fields::FieldManager;
use super::object::Stored;
use super::resources::by_plural;
use super::server::patch_in;
use super::Shared;

/// What one mutation does.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    Status,
    Labels,
    Create,
    Delete,
}

fn choose(rng: &mut impl Rng) -> Mutation {
    match rng.random_range(0..1000) {
        0..=699 => Mutation::Status,
        700..=849 => Mutation::Labels,
        850..=924 => Mutation::Create,
        _ => Mutation::Delete,
    }
}

/// The kubelet's kind of update: a restart, readiness flipping.
fn status_change(pod: &mut Value, now: &str) {
    let ready = pod
        .pointer("/status/containerStatuses/0/ready")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if let Some(all) = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for (i, cs) in all.iter_mut().enumerate() {
            if i == 0 {
                // The first container restarted: it is ready again, or not
                // yet.
                let restarts = cs["restartCount"].as_i64().unwrap_or(0);
                cs["restartCount"] = json!(restarts + 1);
            } else if ready {
                continue;
            }
            cs["ready"] = json!(!ready);
            cs["started"] = json!(true);
            cs["state"] = json!({"running": {"startedAt": now}});
        }
    }
    let unready = pod
        .pointer("/status/containerStatuses/0/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(conds) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conds.iter_mut() {
            if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                if ready {
                    c["status"] = json!("False");
                    c["reason"] = json!("ContainersNotReady");
                    c["message"] = json!(format!("containers with unready status: [{unready}]"));
                } else if let Some(c) = c.as_object_mut() {
                    c.insert("status".into(), json!("True"));
                    c.remove("reason");
                    c.remove("message");
                }
                c["lastTransitionTime"] = json!(now);
            }
        }
    }
    pod["status"]["phase"] = json!("Running");
}

/// Whether the kubelet is done with `pod`: it writes no status of a pod
/// that failed or succeeded.
fn finished(pod: &Stored) -> bool {
    matches!(
        pod.field("status.phase").as_deref(),
        Some("Failed" | "Succeeded")
    )
}

/// Performs `n` mutations of pods; returns how many were written (each
/// is one new resourceVersion and one watch event).
pub(crate) fn mutate(shared: &Shared, n: usize) -> u64 {
    (0..n).filter(|_| mutate_one(shared)).count() as u64
}

fn mutate_one(shared: &Shared) -> bool {
    let (Some(pods), Some(ns_r)) = (by_plural("pods"), by_plural("namespaces")) else {
        return false;
    };
    let (kind, probe_ns, probe_char, version) = {
        let mut rng = shared.rng();
        let kind = choose(&mut *rng);
        let spread = shared.config.namespaces.max(1);
        let ns = fixtures::namespace_name(rng.random_range(0..spread));
        let c = rng.random_range(b'a'..=b'z') as char;
        (kind, ns, c, rng.random_range(1..6))
    };
    let victim = {
        let st = shared.read();
        let probe = format!("{probe_ns}/{probe_char}");
        st.sample(pods, &probe)
    };
    let kind = match victim {
        None => Mutation::Create,
        Some(_) => kind,
    };
    let result = match (kind, victim) {
        (Mutation::Create, _) => {
            let index = shared.next_pod.fetch_add(1, Ordering::Relaxed) as usize;
            let ns_exists = shared.read().get(ns_r, &probe_ns).is_some();
            let ns = if ns_exists {
                probe_ns
            } else {
                "default".to_string()
            };
            let pod = fixtures::pod(
                shared.config.seed,
                &ns,
                index,
                fixtures::node_count(shared.config.pods),
            );
            // A pod created now, not one of the fixtures' past.
            shared
                .write(|st| st.create_now(pods, None, pod))
                .map(|_| ())
        }
        (Mutation::Delete, Some(v)) => shared
            .write(|st| st.delete(pods, v.namespace.as_deref(), &v.name))
            .map(|_| ()),
        (Mutation::Status, Some(v)) if !finished(&v) => {
            let now = shared.clock.timestamp();
            let kubelet = FieldManager::status("kubelet");
            patch_in(
                shared,
                pods,
                v.namespace.as_deref(),
                &v.name,
                &kubelet,
                |p| {
                    status_change(p, &now);
                    Ok(())
                },
            )
            .map(|_| ())
        }
        // A finished pod gets a label instead: still one write.
        (Mutation::Labels | Mutation::Status, Some(v)) => {
            // A rollout label unique to this write: a label change is never
            // a no-op.
            let rollout = shared.next_pod.fetch_add(1, Ordering::Relaxed).to_string();
            let labeller = FieldManager::new("kubectl-label");
            patch_in(
                shared,
                pods,
                v.namespace.as_deref(),
                &v.name,
                &labeller,
                |p| {
                    p["metadata"]["labels"]["version"] = json!(format!("v{version}"));
                    p["metadata"]["labels"]["rollout"] = json!(rollout);
                    Ok(())
                },
            )
            .map(|_| ())
        }
        (_, None) => Ok(()),
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "mutation skipped");
            false
        }
    }
}

/// Moves the clock forward by `by` with `rate` writes a second spread evenly
/// over the skipped time, each written at its moment; sleepers on the clock
/// wake once, at the end. Returns the writes made.
pub(crate) fn advance(shared: &Shared, by: Duration, rate: f64) -> u64 {
    let n = if rate.is_finite() && rate > 0.0 {
        (by.as_secs_f64() * rate).round() as u64
    } else {
        0
    };
    let mut passed = Duration::ZERO;
    let mut written = 0;
    for i in 1..=n {
        let at = by.mul_f64(i as f64 / n as f64);
        shared.clock.advance_quietly(at.saturating_sub(passed));
        passed = passed.max(at);
        if mutate_one(shared) {
            written += 1;
        }
    }
    shared.clock.advance_quietly(by.saturating_sub(passed));
    shared.clock.wake();
    written
}

/// A background load of pod writes at a steady rate. Dropping it stops it.
pub struct LoadHandle {
    stop: CancellationToken,
    writes: Arc<AtomicU64>,
    task: Option<JoinHandle<()>>,
}

impl LoadHandle {
    pub(crate) fn start(shared: Arc<Shared>, writes_per_sec: f64) -> LoadHandle {
        let stop = CancellationToken::new();
        let writes = Arc::new(AtomicU64::new(0));
        let (stop_for_task, writes_for_task) = (stop.clone(), writes.clone());
        let task = tokio::task::spawn_blocking(move || {
            drive(
                shared,
                writes_per_sec.max(0.0),
                stop_for_task,
                writes_for_task,
            )
        });
        LoadHandle {
            stop,
            writes,
            task: Some(task),
        }
    }

    /// Writes done so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Stops the load; returns the writes done.
    pub async fn stop(mut self) -> u64 {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "load task failed");
            }
        }
        self.writes()
    }
}

impl Drop for LoadHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The generator loop, on a blocking thread of its own: writes are CPU
/// work, and on an async worker they would starve the server's tasks.
fn drive(shared: Arc<Shared>, rate: f64, stop: CancellationToken, writes: Arc<AtomicU64>) {
    let started = std::time::Instant::now();
    // At most 50 ms of writes at once: a generator that fell behind (a busy
    // machine) drops the backlog instead of bursting.
    let burst = (rate * 0.05).ceil().max(1.0) as u64;
    let mut attempts = 0u64;
    while !stop.is_cancelled() && !shared.shutdown.is_cancelled() {
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        if due <= attempts {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let n = (due - attempts).min(burst);
        attempts = if due - attempts > burst {
            due
        } else {
            due.min(attempts + n)
        };
        let done = mutate(&shared, n as usize);
        writes.fetch_add(done, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_change_makes_a_pod_ready_or_unready_as_a_whole() {
        let pending = (0..200)
            .map(|i| fixtures::pod(1, "a", i, 20))
            .find(|p| {
                p["status"]["phase"] == "Pending"
                    && p["status"]["containerStatuses"].as_array().unwrap().len() > 1
            })
            .expect("a pending pod of several containers");
        let mut p = pending.clone();
        status_change(&mut p, "2025-02-01T00:00:00Z");
        assert_eq!(p["status"]["phase"], "Running");
        let all = p["status"]["containerStatuses"].as_array().unwrap();
        assert!(all
            .iter()
            .all(|c| c["ready"] == true && c["state"]["running"].is_object()));
        let ready = |p: &Value| {
            p["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .cloned()
                .unwrap()
        };
        assert_eq!(ready(&p)["status"], "True");
        assert!(ready(&p).get("reason").is_none(), "{}", ready(&p));
        status_change(&mut p, "2025-02-01T00:01:00Z");
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
        assert_eq!(ready(&p)["status"], "False");
        assert_eq!(ready(&p)["reason"], "ContainersNotReady");
    }

    #[tokio::test]
    async fn the_load_never_writes_the_status_of_a_finished_pod() {
        let sim = crate::sim::Simulator::start(crate::sim::SimConfig {
            pods: 300,
            ..Default::default()
        })
        .await
        .unwrap();
        let failed = |sim: &crate::sim::Simulator| -> std::collections::HashSet<String> {
            sim.objects("pods")
                .iter()
                .filter(|p| p["status"]["phase"] == "Failed")
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
                .collect()
        };
        let before = failed(&sim);
        assert!(!before.is_empty(), "some of 300 pods were evicted");
        assert_eq!(sim.mutate_counted(2_000), 2_000);
        let after = failed(&sim);
        let present: std::collections::HashSet<String> = sim
            .objects("pods")
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        let kept: Vec<&String> = before.iter().filter(|n| present.contains(*n)).collect();
        assert!(!kept.is_empty(), "2,000 writes deleted every evicted pod");
        for name in kept {
            assert!(after.contains(name), "{name} is no longer Failed");
        }
    }

    #[test]
    fn status_change_always_changes_something() {
        let mut p = fixtures::pod(1, "a", 1, 20);
        let before = p.clone();
        status_change(&mut p, "2025-02-01T00:00:00Z");
        assert_ne!(p, before);
        let r0 = before["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap();
        assert_eq!(
            p["status"]["containerStatuses"][0]["restartCount"],
            json!(r0 + 1)
        );
    }
}
