//! The scheduling loop: every unbound Pod gets a node, chosen by
//! `rk_controllers::scheduler`, and is bound by a transaction whose
//! precondition is that the Pod is still as the scheduler saw it (so
//! still unbound). Pods that fit nowhere get PodScheduled=False with the
//! filters' reasons and a FailedScheduling Event, and are retried when
//! nodes change or a pod leaves a node.
//!
//! The scheduler works in passes rather than one Pod per reconcile: its
//! single key, [`PENDING`], stands for "every pending Pod", so a burst of
//! new Pods coalesces into one reconcile. A pass brings the node snapshot
//! up to date with the cache (only what changed since the last pass is
//! decoded), decides pending Pods in turn against that snapshot, counting
//! each decision in it before the next (as kube-scheduler "assumes" a
//! Pod), and commits the bindings in transactions of [`BINDS_PER_TXN`].
//!
//! Passes are pipelined: while up to [`WRITES_IN_FLIGHT`] binding
//! transactions are committing, the next pass already decides the Pods
//! that arrived meanwhile. A Pod whose binding is in flight stays counted
//! on its node and out of the pending list for as long as the cache still
//! shows it at the version the binding was based on; once the cache shows
//! a newer version (the binding applied, or someone else changed the Pod)
//! it is counted from the cache again. A failed binding drops the
//! assumption, so the next pass recounts the Pod and offers it again.
//! Deciding is CPU work, so it runs on a blocking thread, not on the
//! runtime's workers, which keep serving Raft and the API meanwhile.

use super::runtime::{key_of, Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use super::{event_object, record_event, set_condition};
use crate::store::objects::{meta_str, resource_version};
use crate::store::types::{EventKind, Op};
use futures::stream::{self, FuturesUnordered, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use rk_api::Reason;
use rk_controllers::scheduler::{default_nodes_to_score, schedule, NodeInfo, ScheduleContext};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCHEDULER_NAME: &str = "default-scheduler";
/// The scheduler's one work-queue key: all pending Pods.
const PENDING: &str = "pending";
/// Writes in flight at once at the end of a pass.
const WRITES_IN_FLIGHT: usize = 16;
/// Bindings per transaction: one Raft entry and one state-machine batch
/// bind this many Pods (and record their "Scheduled" Events).
const BINDS_PER_TXN: usize = 128;

#[derive(Default)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

/// What passes share; passes run on a blocking thread.
#[derive(Default)]
struct Shared {
    state: Mutex<Snapshot>,
    /// Bumped whenever room may have appeared (a node changed, a Pod left a
    /// node): Pods found unschedulable before are tried again.
    epoch: AtomicU64,
}

/// The scheduler's view of the cluster, kept between passes.
#[derive(Default)]
struct Snapshot {
    /// Every node, sorted by name (the decision function's input).
    nodes: Vec<NodeInfo>,
    node_index: HashMap<String, usize>,
    /// Node name → its version as last seen.
    node_versions: HashMap<String, NodeVersion>,
    /// Pod key → what the snapshot holds for it.
    pods: HashMap<String, PodEntry>,
    /// Pods that fit nowhere, with the epoch of the attempt.
    unschedulable: HashMap<String, u64>,
    /// The pass number, for sweeping deleted Pods.
    pass: u64,
    /// Ties among equally good nodes are broken by this counter.
    ties: u64,
    /// Where the next filter pass starts (kube-scheduler's rotation).
    start_index: usize,
}

/// A node as last seen: its resourceVersion, and the fingerprint of what
/// scheduling reads (compared only when the resourceVersion moved, since
/// computing it serializes the node).
struct NodeVersion {
    resource_version: String,
    fingerprint: String,
}

struct PodEntry {
    /// The resourceVersion this entry reflects ("" while a binding this
    /// scheduler sent is not yet seen in the cache).
    version: String,
    /// The node whose aggregates count this Pod, if any.
    node: Option<String>,
    seen_in_pass: u64,
    /// While a binding of this Pod is in flight: the version of the
    /// unbound Pod it was decided on.
    binding_from: Option<String>,
}

fn wants_scheduling(pod: &Value) -> bool {
    let spec = &pod["spec"];
    let node = spec["nodeName"].as_str().unwrap_or("");
    let scheduler = spec["schedulerName"].as_str().unwrap_or(SCHEDULER_NAME);
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    // Gated Pods wait outside the queue (Kubernetes' schedulingGates).
    let gated = spec["schedulingGates"].as_array().is_some_and(|g| !g.is_empty());
    node.is_empty()
        && scheduler == SCHEDULER_NAME
        && !gated
        && pod["metadata"]["deletionTimestamp"].is_null()
        && phase != "Succeeded"
        && phase != "Failed"
}

/// What of a Node matters to scheduling: labels, spec (taints,
/// unschedulable), allocatable and readiness. Heartbeats change none of
/// it, so they cost no pass and no retry of unschedulable Pods.
fn node_fingerprint(node: &Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"].clone())
        .unwrap_or(Value::Null);
    json!([
        node["metadata"]["labels"],
        node["spec"],
        node["status"]["allocatable"],
        ready
    ])
    .to_string()
}

/// The node whose resources a Pod holds: bound and not finished.
fn holding_node(pod: &Value) -> Option<&str> {
    let node = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())?;
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    (phase != "Succeeded" && phase != "Failed").then_some(node)
}

impl Snapshot {
    fn rebuild_nodes(&mut self, cache: &Cache) {
        let mut nodes: Vec<NodeInfo> = cache
            .list("nodes", None)
            .iter()
            .filter_map(|n| serde_json::from_value::<Node>((**n).clone()).ok())
            .map(|n| NodeInfo::new(n, Vec::new()))
            .collect();
        nodes.sort_by(|a, b| a.name().cmp(b.name()));
        self.node_index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_string(), i))
            .collect();
        self.node_versions = cache
            .list("nodes", None)
            .iter()
            .map(|n| {
                let seen = NodeVersion {
                    resource_version: meta_str(n, "resourceVersion").to_string(),
                    fingerprint: node_fingerprint(n),
                };
                (meta_str(n, "name").to_string(), seen)
            })
            .collect();
        self.nodes = nodes;
        // Every Pod is counted again on the new nodes, from the cache. A
        // Pod whose binding is in flight stays out of the pending list
        // (it must not be bound twice) but is counted nowhere until the
        // cache shows it bound.
        self.pods.retain(|_, e| e.binding_from.is_some());
        for e in self.pods.values_mut() {
            e.node = None;
            e.version.clear();
        }
    }

    /// Brings the nodes up to date; returns whether anything changed.
    fn refresh_nodes(&mut self, cache: &Cache) -> bool {
        let cached = cache.list("nodes", None);
        let membership_changed = cached.len() != self.nodes.len()
            || cached
                .iter()
                .any(|n| !self.node_index.contains_key(meta_str(n, "name")));
        if membership_changed {
            self.rebuild_nodes(cache);
            return true;
        }
        let mut changed = false;
        for n in cached {
            let name = meta_str(&n, "name");
            let rv = meta_str(&n, "resourceVersion");
            let Some(seen) = self.node_versions.get_mut(name) else {
                continue;
            };
            if seen.resource_version == rv {
                continue;
            }
            seen.resource_version = rv.to_string();
            let fingerprint = node_fingerprint(&n);
            if seen.fingerprint == fingerprint {
                continue;
            }
            seen.fingerprint = fingerprint;
            if let (Some(&i), Ok(node)) = (
                self.node_index.get(name),
                serde_json::from_value::<Node>((*n).clone()),
            ) {
                self.nodes[i].set_node(node);
            }
            changed = true;
        }
        changed
    }

    fn uncount(&mut self, key: &str) {
        if let Some(PodEntry { node: Some(node), .. }) = self.pods.get(key) {
            if let Some(&i) = self.node_index.get(node) {
                let (ns, name) = super::runtime::split_key(key);
                self.nodes[i].remove_pod(ns, name);
            }
        }
    }

    fn count(&mut self, node: &str, pod: Pod) -> Option<String> {
        let &i = self.node_index.get(node)?;
        self.nodes[i].add_pod(pod);
        Some(node.to_string())
    }

    /// Brings the Pods' aggregates up to date and returns the pending Pods
    /// (oldest first). Returns whether a Pod left a node.
    fn refresh_pods(&mut self, cache: &Cache) -> (Vec<Arc<Value>>, bool) {
        self.pass += 1;
        let pass = self.pass;
        let mut pending = Vec::new();
        let mut freed = false;
        for p in cache.list("pods", None) {
            let key = key_of(&p);
            let rv = meta_str(&p, "resourceVersion");
            let up_to_date = match self.pods.get_mut(&key) {
                Some(e) => {
                    e.seen_in_pass = pass;
                    if e.binding_from.as_deref() == Some(rv) {
                        // Our binding is still in flight: keep it counted
                        // where we put it, and do not offer the Pod again.
                        continue;
                    }
                    e.version == rv
                }
                None => false,
            };
            if wants_scheduling(&p) {
                pending.push(p.clone());
            }
            if up_to_date {
                continue;
            }
            let holds = holding_node(&p).map(str::to_string);
            let before = self.pods.get(&key).and_then(|e| e.node.clone());
            if before.is_some() && before != holds {
                freed = true;
            }
            self.uncount(&key);
            let node = match &holds {
                Some(n) => serde_json::from_value::<Pod>((*p).clone())
                    .ok()
                    .and_then(|pod| self.count(n, pod)),
                None => None,
            };
            self.pods.insert(
                key,
                PodEntry {
                    version: rv.to_string(),
                    node,
                    seen_in_pass: pass,
                    binding_from: None,
                },
            );
        }
        // Pods gone from the cache leave their nodes.
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| e.seen_in_pass != pass)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if self.pods.get(&key).is_some_and(|e| e.node.is_some()) {
                freed = true;
            }
            self.uncount(&key);
            self.pods.remove(&key);
            self.unschedulable.remove(&key);
        }
        fn order(p: &Value) -> (&str, &str, &str) {
            (
                p["metadata"]["creationTimestamp"].as_str().unwrap_or(""),
                meta_str(p, "namespace"),
                meta_str(p, "name"),
            )
        }
        pending.sort_by(|a, b| order(a).cmp(&order(b)));
        (pending, freed)
    }
}

/// One Pod's outcome in a pass.
enum Decision {
    Bind { pod: Arc<Value>, node: String },
    Unschedulable { pod: Arc<Value>, message: String },
}

impl Shared {
    /// The snapshot, even if a pass panicked while holding it: the next
    /// pass brings it up to date from the cache anyway.
    fn snapshot(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides up to `limit` pending Pods against the snapshot, counting
    /// each binding in it before deciding the next.
    fn decide(&self, cache: &Cache, limit: usize) -> Vec<Decision> {
        let mut snap = self.snapshot();
        let nodes_changed = snap.refresh_nodes(cache);
        let (pending, freed) = snap.refresh_pods(cache);
        if nodes_changed || freed {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut out = Vec::new();
        for obj in pending {
            if out.len() >= limit {
                break;
            }
            let key = key_of(&obj);
            if snap.unschedulable.get(&key) == Some(&epoch) {
                continue;
            }
            let Ok(pod) = serde_json::from_value::<Pod>((*obj).clone()) else {
                continue;
            };
            let sctx = ScheduleContext {
                seed: snap.ties,
                max_nodes_to_score: default_nodes_to_score(snap.nodes.len()),
                start_index: snap.start_index,
                ..Default::default()
            };
            snap.ties = snap.ties.wrapping_add(1);
            match schedule(&pod, &snap.nodes, &sctx) {
                Ok(decision) => {
                    snap.start_index = decision.next_start_index;
                    snap.unschedulable.remove(&key);
                    let mut bound = pod;
                    if let Some(spec) = bound.spec.as_mut() {
                        spec.node_name = Some(decision.node.clone());
                    }
                    // Counted now and kept while the binding is in flight;
                    // the entry's empty version makes a later pass recount
                    // it from the cache once the cache has moved on.
                    snap.uncount(&key);
                    let node = snap.count(&decision.node, bound);
                    let pass = snap.pass;
                    snap.pods.insert(
                        key,
                        PodEntry {
                            version: String::new(),
                            node,
                            seen_in_pass: pass,
                            binding_from: Some(meta_str(&obj, "resourceVersion").to_string()),
                        },
                    );
                    out.push(Decision::Bind {
                        pod: obj,
                        node: decision.node,
                    });
                }
                Err(unschedulable) => {
                    snap.unschedulable.insert(key, epoch);
                    out.push(Decision::Unschedulable {
                        pod: obj,
                        message: unschedulable.message,
                    });
                }
            }
        }
        out
    }

    /// Drops the assumption of in-flight bindings that failed: the next
    /// pass recounts these Pods from the cache and offers them again.
    fn bindings_failed(&self, keys: &[String]) {
        let mut snap = self.snapshot();
        for key in keys {
            if let Some(e) = snap.pods.get_mut(key) {
                e.binding_from = None;
                e.version.clear();
            }
        }
    }
}

/// The op binding `obj` to `node`. Its precondition: the pod is exactly as
/// seen, so still unbound; a concurrent change fails it.
fn bind_op(obj: &Value, node: &str) -> Result<Op, ReconcileError> {
    let expected_rv = resource_version(obj)
        .ok_or_else(|| ReconcileError::Other(format!("pod {} has no resourceVersion", key_of(obj))))?;
    Ok(Op::Bind {
        namespace: meta_str(obj, "namespace").to_string(),
        name: meta_str(obj, "name").to_string(),
        expected_rv,
        node: node.to_string(),
    })
}

/// The binding and its "Scheduled" Event, committed together.
fn bind_ops(ctx: &Ctx, obj: &Value, node: &str) -> Result<[Op; 2], ReconcileError> {
    let message = format!(
        "Successfully assigned {}/{} to {node}",
        meta_str(obj, "namespace"),
        meta_str(obj, "name")
    );
    let event = event_object(obj, "Normal", "Scheduled", &message, SCHEDULER_NAME);
    Ok([bind_op(obj, node)?, ctx.writer.create_op("events", &event)?])
}

/// Binds a batch of pods in one transaction; returns the keys of the Pods
/// whose binding failed. A transaction is all or nothing, so when one pod
/// of the batch changed since the scheduler saw it (a conflict), the others
/// are bound one by one instead of waiting for the next pass.
async fn bind_batch(ctx: &Ctx, batch: Vec<(Arc<Value>, String)>) -> Vec<String> {
    let ops: Result<Vec<Op>, ReconcileError> = batch
        .iter()
        .map(|(pod, node)| bind_ops(ctx, pod, node))
        .collect::<Result<Vec<[Op; 2]>, _>>()
        .map(|pairs| pairs.into_iter().flatten().collect());
    let result = match ops {
        Ok(ops) => ctx.writer.txn(ops).await.map_err(ReconcileError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            tracing::debug!(pods = batch.len(), "scheduled");
            Vec::new()
        }
        Err(ReconcileError::Api(e))
            if batch.len() > 1 && matches!(e.reason, Reason::Conflict | Reason::NotFound) =>
        {
            let mut failed = Vec::new();
            for (pod, node) in &batch {
                let one = match bind_ops(ctx, pod, node) {
                    Ok(ops) => ctx.writer.txn(ops.into()).await.map_err(ReconcileError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = one {
                    tracing::debug!(pod = %key_of(pod), error = %e, "binding failed; the next pass retries");
                    failed.push(key_of(pod));
                }
            }
            failed
        }
        Err(e) => {
            tracing::debug!(pods = batch.len(), error = %e, "binding failed; the next pass retries");
            batch.iter().map(|(pod, _)| key_of(pod)).collect()
        }
    }
}

async fn report_unschedulable(ctx: &Ctx, obj: &Value, message: &str) -> Result<(), ReconcileError> {
    let mut status = obj.clone();
    if set_condition(&mut status, "PodScheduled", "False", "Unschedulable", message) {
        ctx.writer.update_status("pods", &status).await?;
        record_event(
            &ctx.writer,
            obj,
            "Warning",
            "FailedScheduling",
            message,
            SCHEDULER_NAME,
        )
        .await;
    }
    Ok(())
}

impl Reconciler for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn keys_for(&self, change: &Change, _cache: &Cache) -> Vec<String> {
        let relevant = match change.resource.as_str() {
            "pods" => {
                wants_scheduling(&change.object)
                    // A pod leaving a node frees room: pending pods may fit now.
                    || change.kind == EventKind::Deleted
                    || change.prev.as_deref().and_then(holding_node).is_some()
                        && holding_node(&change.object).is_none()
            }
            "nodes" => {
                change.kind != EventKind::Modified
                    || change.prev.as_deref().map(node_fingerprint) != Some(node_fingerprint(&change.object))
            }
            _ => false,
        };
        if relevant {
            vec![PENDING.to_string()]
        } else {
            vec![]
        }
    }

    fn all_keys(&self, _cache: &Cache) -> Vec<String> {
        vec![PENDING.to_string()]
    }

    async fn reconcile(&self, _key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        // Binding transactions in flight, each yielding the keys of the
        // Pods it failed to bind.
        let mut in_flight = FuturesUnordered::new();
        let mut failed = 0usize;
        loop {
            // Decide more once half the writes are done, so a pass decides
            // a worthwhile number of Pods rather than one batch at a time.
            if failed == 0 && in_flight.len() <= WRITES_IN_FLIGHT / 2 {
                let room = (WRITES_IN_FLIGHT - in_flight.len()) * BINDS_PER_TXN;
                let shared = self.shared.clone();
                let cache = ctx.cache.clone();
                let decisions = tokio::task::spawn_blocking(move || shared.decide(&cache, room))
                    .await
                    .map_err(|e| ReconcileError::Other(format!("scheduling pass: {e}")))?;
                let mut binds = Vec::new();
                let mut unschedulable_pods = Vec::new();
                for d in decisions {
                    match d {
                        Decision::Bind { pod, node } => binds.push((pod, node)),
                        Decision::Unschedulable { pod, message } => unschedulable_pods.push((pod, message)),
                    }
                }
                while !binds.is_empty() {
                    let rest = binds.split_off(binds.len().min(BINDS_PER_TXN));
                    in_flight.push(bind_batch(ctx, std::mem::replace(&mut binds, rest)));
                }
                failed += report_all_unschedulable(ctx, unschedulable_pods).await;
            }
            // A binding that failed (the pod changed, leadership moved) is
            // retried by a later pass, which recounts that pod from the
            // cache; this one stops deciding and lets the writes drain.
            match in_flight.next().await {
                Some(keys) if keys.is_empty() => {}
                Some(keys) => {
                    failed += keys.len();
                    self.shared.bindings_failed(&keys);
                }
                None => break,
            }
        }
        let unschedulable = !self.shared.snapshot().unschedulable.is_empty();
        if failed > 0 {
            return Ok(Action::Requeue(Duration::from_millis(50)));
        }
        // Node and pod changes requeue unschedulable pods; the timer is a
        // backstop.
        Ok(if unschedulable {
            Action::Requeue(Duration::from_secs(30))
        } else {
            Action::AwaitChange
        })
    }
}

/// Reports Pods that fit nowhere; returns how many reports failed.
async fn report_all_unschedulable(ctx: &Ctx, pods: Vec<(Arc<Value>, String)>) -> usize {
    stream::iter(pods)
        .map(|(pod, message)| async move { report_unschedulable(ctx, &pod, &message).await })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect::<Vec<Result<(), ReconcileError>>>()
        .await
        .into_iter()
        .filter(|r| {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reporting an unschedulable pod failed; the next pass retries");
            }
            r.is_err()
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim_node(name: &str, cpu: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "resourceVersion": "1", "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    fn pending_pod(name: &str, rv: u64) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d", "resourceVersion": rv.to_string(),
                         "creationTimestamp": format!("2026-11-27T00:00:0{rv}Z")},
            "spec": {"containers": [{"name": "c", "image": "i",
                     "resources": {"requests": {"cpu": "600m"}}}]}})
    }

    fn bound_names(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Bind { pod, .. } => Some(meta_str(pod, "name").to_string()),
                Decision::Unschedulable { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_binding_in_flight_keeps_its_room_and_is_not_offered_again() {
        let cache = Cache::default();
        cache.replace("nodes", vec![sim_node("n1", "1")]);
        cache.replace("pods", vec![pending_pod("a", 1), pending_pod("b", 2)]);
        let shared = Shared::default();
        // One CPU holds one 600m Pod: a is bound, b fits nowhere.
        assert_eq!(bound_names(&shared.decide(&cache, 100)), ["a"]);
        // The cache has not seen the binding yet: a is neither offered
        // again nor forgotten (b still does not fit).
        assert!(bound_names(&shared.decide(&cache, 100)).is_empty());
        // The binding failed: a is offered again, in the room it had.
        shared.bindings_failed(&["d/a".to_string()]);
        assert_eq!(bound_names(&shared.decide(&cache, 100)), ["a"]);
        // The binding lands: the cache now counts a on n1, so b still
        // does not fit, and a is not offered again.
        let mut bound = pending_pod("a", 3);
        bound["spec"]["nodeName"] = json!("n1");
        cache.apply("pods", EventKind::Modified, &Arc::new(bound));
        assert!(bound_names(&shared.decide(&cache, 100)).is_empty());
        // The nodes change while a binding is in flight: the snapshot is
        // rebuilt, and the Pod in flight is still not offered again.
        cache.apply("pods", EventKind::Added, &Arc::new(pending_pod("c", 4)));
        cache.replace("nodes", vec![sim_node("n1", "1"), sim_node("n2", "1")]);
        assert_eq!(
            bound_names(&shared.decide(&cache, 100)),
            ["b"],
            "b fits on n2; c fits nowhere"
        );
        cache.replace(
            "nodes",
            vec![sim_node("n1", "1"), sim_node("n2", "1"), sim_node("n3", "1")],
        );
        assert_eq!(
            bound_names(&shared.decide(&cache, 100)),
            ["c"],
            "b, in flight, is not offered again; c fits now"
        );
        cache.apply("pods", EventKind::Deleted, &Arc::new(pending_pod("b", 2)));
        cache.apply("pods", EventKind::Deleted, &Arc::new(pending_pod("c", 4)));
        // The limit caps one pass.
        cache.apply("pods", EventKind::Added, &Arc::new(pending_pod("b", 5)));
        cache.replace("nodes", vec![sim_node("n1", "1"), sim_node("n2", "8")]);
        cache.apply("pods", EventKind::Added, &Arc::new(pending_pod("c", 6)));
        assert_eq!(bound_names(&shared.decide(&cache, 1)), ["b"]);
        assert_eq!(bound_names(&shared.decide(&cache, 1)), ["c"]);
    }

    #[test]
    fn which_pods_the_scheduler_takes() {
        let pod = |spec: Value, status: Value, meta: Value| json!({"metadata": meta, "spec": spec, "status": status});
        let m = json!({"name": "p", "namespace": "d"});
        assert!(wants_scheduling(&pod(json!({}), json!({}), m.clone())));
        assert!(!wants_scheduling(&pod(
            json!({"nodeName": "n1"}),
            json!({}),
            m.clone()
        )));
        assert!(!wants_scheduling(&pod(
            json!({"schedulerName": "other"}),
            json!({}),
            m.clone()
        )));
        assert!(!wants_scheduling(&pod(
            json!({"schedulingGates": [{"name": "wait"}]}),
            json!({}),
            m.clone()
        )));
        assert!(!wants_scheduling(&pod(
            json!({}),
            json!({"phase": "Failed"}),
            m.clone()
        )));
        assert!(!wants_scheduling(&pod(
            json!({}),
            json!({}),
            json!({"name": "p", "deletionTimestamp": "2026-11-27T00:00:00Z"})
        )));
        assert_eq!(
            holding_node(&pod(
                json!({"nodeName": "n1"}),
                json!({"phase": "Running"}),
                m.clone()
            )),
            Some("n1")
        );
        assert_eq!(
            holding_node(&pod(json!({"nodeName": "n1"}), json!({"phase": "Succeeded"}), m)),
            None
        );
    }
}
