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
//! Passes are pipelined: a pass decides while the bindings of the passes
//! before it commit (up to [`WRITES_IN_FLIGHT`] transactions), so deciding
//! and committing use the CPU at the same time. A Pod whose binding is in
//! flight stays counted on its node and out of the pending list for as
//! long as the cache still holds the Pod the binding was based on; once
//! the cache shows a newer version (the binding applied, or someone else
//! changed the Pod) the Pod is taken from the cache again, and counted
//! again unless nothing its node counts changed (see [`counts_the_same`]).
//! A failed binding drops the assumption, so the next pass recounts the
//! Pod and offers it again. Each pass looks only at the Pods whose cached
//! object changed since the last one.
//! Deciding is CPU work, so it runs on a blocking thread, not on the
//! runtime's workers, which keep serving Raft and the API meanwhile.

use super::runtime::{key_of, Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use super::set_condition;
use crate::store::objects::{meta_str, resource_version};
use crate::store::types::{EventKind, Op};
use futures::stream::{self, FuturesUnordered, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use rk_api::Reason;
use rk_controllers::scheduler::{default_nodes_to_score, schedule_tracked, NodeInfo, ScheduleContext};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCHEDULER_NAME: &str = "default-scheduler";
/// The scheduler's one work-queue key: all pending Pods.
const PENDING: &str = "pending";
/// Binding transactions in flight at most.
const WRITES_IN_FLIGHT: usize = 24;
/// Binding transactions one pass decides at most. A pass starts while up to
/// `WRITES_IN_FLIGHT - PASS_WRITES` are in flight.
const PASS_WRITES: usize = 8;
/// Bindings per transaction: one Raft entry and one state-machine batch
/// bind this many Pods. Their "Scheduled" Events are recorded once the
/// transaction committed, off its path (see `super::events`).
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
    /// Indices of the nodes holding a Pod with inter-pod terms (see
    /// [`NodeInfo::has_pod_terms`]), sorted, kept as Pods are counted.
    nodes_with_pod_terms: Vec<usize>,
    /// Node name → its version as last seen.
    node_versions: HashMap<String, NodeVersion>,
    /// [`Cache::changes`] of the nodes when they were last looked at.
    node_changes_seen: u64,
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
    /// How many Pods the snapshot has taken in, for [`QueueOrder`].
    arrivals: u64,
}

/// The scheduling order: oldest first by `creationTimestamp`, and Pods
/// created in the same second in the order the scheduler first saw them
/// (as kube-scheduler's queue orders Pods by when they entered it). Kept in
/// each Pod's entry, so a pass sorts its pending Pods without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct QueueOrder {
    created: u64,
    arrival: u64,
}

/// A `creationTimestamp` as a number that orders like it
/// (`2026-11-27T08:30:05Z` becomes 20261127083005): its first 14 digits.
/// The API server writes these timestamps itself, all in this one form.
fn created_key(timestamp: &str) -> u64 {
    timestamp
        .bytes()
        .filter(u8::is_ascii_digit)
        .take(14)
        .fold(0, |n, d| n * 10 + u64::from(d - b'0'))
}

/// A Pod waiting for a node, as a pass finds it.
struct PendingPod {
    pod: Arc<Value>,
    order: QueueOrder,
    /// The epoch in which the Pod was last found unschedulable, if ever.
    unschedulable_in: Option<u64>,
}

/// A node as last seen: its resourceVersion, and the fingerprint of what
/// scheduling reads (compared only when the resourceVersion moved, since
/// computing it serializes the node).
struct NodeVersion {
    resource_version: String,
    fingerprint: String,
}

struct PodEntry {
    /// The cached object this entry reflects (`None` while a binding this
    /// scheduler sent is not yet seen in the cache). The cache holds a new
    /// object for every change, so comparing the handles tells a Pod that
    /// changed since the last pass without reading any of it.
    seen: Option<Arc<Value>>,
    /// The node whose aggregates count this Pod, if any.
    node: Option<String>,
    /// Whether the Pod as `seen` wants scheduling.
    pending: bool,
    /// Where the Pod stands in the scheduling order (see [`QueueOrder`]).
    order: QueueOrder,
    seen_in_pass: u64,
    /// While a binding of this Pod is in flight: the cached, unbound Pod it
    /// was decided on.
    binding_from: Option<Arc<Value>>,
}

impl PodEntry {
    /// The object counted on `node`: the cached Pod as last seen, or, while
    /// a binding is in flight, the Pod it was decided on. A newer version
    /// that [`counts_the_same`] as it is taken in without decoding and
    /// counting it again.
    fn counted(&self) -> Option<&Value> {
        self.node.as_ref()?;
        self.seen.as_deref().or(self.binding_from.as_deref())
    }
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

/// Whether `new`, a newer version of the Pod `old`, counts on its node
/// exactly as `old` does. A node's aggregates derive from its Pods'
/// labels, owner references and spec (requests, host ports, inter-pod
/// terms), so a change anywhere else (status, other metadata, or the
/// `nodeName` a binding sets) leaves them as they are. Which node holds the
/// Pod is the caller's to compare.
fn counts_the_same(old: &Value, new: &Value) -> bool {
    fn spec_but_node_name(pod: &Value) -> impl Iterator<Item = (&String, &Value)> {
        pod["spec"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "nodeName")
    }
    old["metadata"]["labels"] == new["metadata"]["labels"]
        && old["metadata"]["ownerReferences"] == new["metadata"]["ownerReferences"]
        && old["spec"].is_object() == new["spec"].is_object()
        && spec_but_node_name(old).eq(spec_but_node_name(new))
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
            .filter_map(|n| Node::deserialize(&**n).ok())
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
        self.nodes_with_pod_terms.clear();
        // Every Pod is counted again on the new nodes, from the cache. A
        // Pod whose binding is in flight stays out of the pending list
        // (it must not be bound twice) but is counted nowhere until the
        // cache shows it bound.
        self.pods.retain(|_, e| e.binding_from.is_some());
        for e in self.pods.values_mut() {
            e.node = None;
            e.seen = None;
        }
    }

    /// Brings the nodes up to date; returns whether anything changed.
    fn refresh_nodes(&mut self, cache: &Cache) -> bool {
        // Read before the list: a change that lands in between is then
        // looked at again in the next pass, never missed.
        let changes = cache.changes("nodes");
        if changes == self.node_changes_seen {
            return false;
        }
        self.node_changes_seen = changes;
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
            if let (Some(&i), Ok(node)) = (self.node_index.get(name), Node::deserialize(&*n)) {
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
                if !self.nodes[i].has_pod_terms() {
                    if let Ok(at) = self.nodes_with_pod_terms.binary_search(&i) {
                        self.nodes_with_pod_terms.remove(at);
                    }
                }
            }
        }
    }

    fn count(&mut self, node: &str, pod: Pod) -> Option<String> {
        let &i = self.node_index.get(node)?;
        self.nodes[i].add_pod(pod);
        if self.nodes[i].has_pod_terms() {
            if let Err(at) = self.nodes_with_pod_terms.binary_search(&i) {
                self.nodes_with_pod_terms.insert(at, i);
            }
        }
        Some(node.to_string())
    }

    /// Brings the Pods' aggregates up to date with the cache. Returns the
    /// pending Pods, unordered, and whether a Pod left a node.
    fn refresh_pods(&mut self, cache: &Cache) -> (Vec<PendingPod>, bool) {
        self.pass += 1;
        let pass = self.pass;
        let mut pending = Vec::new();
        let mut changed = Vec::new();
        // Under the cache's lock, only what sorts the Pods that changed
        // since the last pass from those that did not (most of them).
        let same = |a: &Option<Arc<Value>>, b: &Arc<Value>| a.as_ref().is_some_and(|a| Arc::ptr_eq(a, b));
        cache.scan("pods", |key, p| {
            if let Some(e) = self.pods.get_mut(key) {
                e.seen_in_pass = pass;
                if same(&e.binding_from, p) {
                    // Our binding is still in flight: keep it counted
                    // where we put it, and do not offer the Pod again.
                    return;
                }
                if same(&e.seen, p) {
                    if e.pending {
                        pending.push(PendingPod {
                            pod: p.clone(),
                            order: e.order,
                            unschedulable_in: self.unschedulable.get(key).copied(),
                        });
                    }
                    return;
                }
            }
            changed.push((key.to_string(), p.clone()));
        });
        let mut freed = false;
        for (key, p) in changed {
            let wants = wants_scheduling(&p);
            let order = QueueOrder {
                created: created_key(p["metadata"]["creationTimestamp"].as_str().unwrap_or("")),
                arrival: match self.pods.get(&key) {
                    Some(e) => e.order.arrival,
                    None => {
                        self.arrivals += 1;
                        self.arrivals
                    }
                },
            };
            if wants {
                pending.push(PendingPod {
                    pod: p.clone(),
                    order,
                    unschedulable_in: self.unschedulable.get(&key).copied(),
                });
            }
            let holds = holding_node(&p);
            if let Some(e) = self.pods.get_mut(&key) {
                let before = e.node.as_deref();
                if before.is_some() && before != holds {
                    freed = true;
                }
                // The common case: our binding landed, or the Pod's status
                // moved on, and nothing its node counts changed.
                if before.is_some() && before == holds && e.counted().is_some_and(|c| counts_the_same(c, &p))
                {
                    e.seen = Some(p.clone());
                    e.pending = wants;
                    e.order = order;
                    e.binding_from = None;
                    continue;
                }
            }
            self.uncount(&key);
            let node = match holds {
                Some(n) => Pod::deserialize(&*p).ok().and_then(|pod| self.count(n, pod)),
                None => None,
            };
            self.pods.insert(
                key,
                PodEntry {
                    seen: Some(p.clone()),
                    node,
                    pending: wants,
                    order,
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
        (pending, freed)
    }
}

/// The first `limit` of `pods` in scheduling order. Only those are
/// sorted: a pass takes a few thousand of what may be many more pending
/// Pods.
fn first_in_order(mut pods: Vec<PendingPod>, limit: usize) -> Vec<PendingPod> {
    if pods.len() > limit {
        pods.select_nth_unstable_by_key(limit, |p| p.order);
        pods.truncate(limit);
    }
    pods.sort_unstable_by_key(|p| p.order);
    pods
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
        // Pods found unschedulable in this epoch wait for a change.
        let pending: Vec<PendingPod> = pending
            .into_iter()
            .filter(|p| p.unschedulable_in != Some(epoch))
            .collect();
        let mut out = Vec::new();
        for PendingPod { pod: obj, order, .. } in first_in_order(pending, limit) {
            let key = key_of(&obj);
            let Ok(pod) = Pod::deserialize(&*obj) else {
                continue;
            };
            let sctx = ScheduleContext {
                seed: snap.ties,
                max_nodes_to_score: default_nodes_to_score(snap.nodes.len()),
                start_index: snap.start_index,
                ..Default::default()
            };
            snap.ties = snap.ties.wrapping_add(1);
            match schedule_tracked(&pod, &snap.nodes, Some(&snap.nodes_with_pod_terms), &sctx) {
                Ok(decision) => {
                    snap.start_index = decision.next_start_index;
                    snap.unschedulable.remove(&key);
                    let mut bound = pod;
                    if let Some(spec) = bound.spec.as_mut() {
                        spec.node_name = Some(decision.node.clone());
                    }
                    // Counted now and kept while the binding is in flight;
                    // with nothing seen, a later pass looks at the Pod
                    // again once the cache has moved on.
                    snap.uncount(&key);
                    let node = snap.count(&decision.node, bound);
                    let pass = snap.pass;
                    snap.pods.insert(
                        key,
                        PodEntry {
                            seen: None,
                            node,
                            pending: false,
                            order,
                            seen_in_pass: pass,
                            binding_from: Some(obj.clone()),
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
                e.seen = None;
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

/// Records the "Scheduled" Event of a committed binding.
fn record_scheduled(ctx: &Ctx, obj: &Value, node: &str) {
    let message = format!(
        "Successfully assigned {}/{} to {node}",
        meta_str(obj, "namespace"),
        meta_str(obj, "name")
    );
    ctx.events
        .record(obj, "Normal", "Scheduled", &message, SCHEDULER_NAME);
}

/// Binds a batch of pods in one transaction; returns the keys of the Pods
/// whose binding failed. A transaction is all or nothing, so when one pod
/// of the batch changed since the scheduler saw it (a conflict), the others
/// are bound one by one instead of waiting for the next pass.
async fn bind_batch(ctx: &Ctx, batch: Vec<(Arc<Value>, String)>) -> Vec<String> {
    let ops: Result<Vec<Op>, ReconcileError> = batch.iter().map(|(pod, node)| bind_op(pod, node)).collect();
    let result = match ops {
        Ok(ops) => ctx.writer.txn(ops).await.map_err(ReconcileError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            tracing::debug!(pods = batch.len(), "scheduled");
            for (pod, node) in &batch {
                record_scheduled(ctx, pod, node);
            }
            Vec::new()
        }
        Err(ReconcileError::Api(e))
            if batch.len() > 1 && matches!(e.reason, Reason::Conflict | Reason::NotFound) =>
        {
            let mut failed = Vec::new();
            for (pod, node) in &batch {
                let one = match bind_op(pod, node) {
                    Ok(op) => ctx.writer.txn(vec![op]).await.map_err(ReconcileError::from),
                    Err(e) => Err(e),
                };
                match one {
                    Ok(_) => record_scheduled(ctx, pod, node),
                    Err(e) => {
                        tracing::debug!(pod = %key_of(pod), error = %e, "binding failed; the next pass retries");
                        failed.push(key_of(pod));
                    }
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
        ctx.events
            .record(obj, "Warning", "FailedScheduling", message, SCHEDULER_NAME);
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
        // The pass deciding on a blocking thread, if one is.
        let mut deciding: Option<tokio::task::JoinHandle<Vec<Decision>>> = None;
        // Whether another pass may find Pods: not right after one found
        // none, but again once a write completes, since Pods may have
        // arrived meanwhile (and the key is requeued for any that arrive
        // after the last write).
        let mut more = true;
        let mut failed = 0usize;
        let mut pass_failed = None;
        loop {
            // A pass decides while the bindings of the one before commit,
            // so the CPU work of deciding and that of committing overlap.
            if deciding.is_none() && more && failed == 0 && in_flight.len() + PASS_WRITES <= WRITES_IN_FLIGHT
            {
                let shared = self.shared.clone();
                let cache = ctx.cache.clone();
                deciding = Some(tokio::task::spawn_blocking(move || {
                    shared.decide(&cache, PASS_WRITES * BINDS_PER_TXN)
                }));
            }
            if deciding.is_none() && in_flight.is_empty() {
                break;
            }
            tokio::select! {
                decided = async { deciding.as_mut().expect("guarded by the branch condition").await }, if deciding.is_some() => {
                    deciding = None;
                    let decisions = match decided {
                        Ok(decisions) => decisions,
                        // The pass panicked. The bindings in flight are
                        // still waited for, so that their outcome reaches
                        // the snapshot, before the error is returned.
                        Err(e) => {
                            pass_failed = Some(ReconcileError::Other(format!("scheduling pass: {e}")));
                            failed += 1;
                            continue;
                        }
                    };
                    more = !decisions.is_empty();
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
                // A binding that failed (the pod changed, leadership moved)
                // is retried by a later pass, which recounts that pod from
                // the cache; this one stops deciding and lets the writes
                // drain.
                Some(keys) = in_flight.next(), if !in_flight.is_empty() => {
                    more = true;
                    if !keys.is_empty() {
                        failed += keys.len();
                        self.shared.bindings_failed(&keys);
                    }
                }
            }
        }
        if let Some(e) = pass_failed {
            return Err(e);
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

    /// One node with one CPU and two pending 600m Pods, after the first
    /// pass: a is bound (the binding in flight), b fits nowhere.
    fn a_bound_and_b_waiting() -> (Cache, Shared) {
        let cache = Cache::default();
        cache.replace("nodes", vec![sim_node("n1", "1")]);
        cache.replace("pods", vec![pending_pod("a", 1), pending_pod("b", 2)]);
        let shared = Shared::default();
        assert_eq!(bound_names(&shared.decide(&cache, 100)), ["a"]);
        (cache, shared)
    }

    #[test]
    fn a_node_that_changes_between_passes_is_seen_in_the_next() {
        let (cache, shared) = a_bound_and_b_waiting();
        // No node changed: b still fits nowhere.
        assert!(bound_names(&shared.decide(&cache, 100)).is_empty());
        // n1 grows, under the same name: b fits now, and is tried again.
        let mut grown = sim_node("n1", "2");
        grown["metadata"]["resourceVersion"] = json!("2");
        cache.apply("nodes", EventKind::Modified, &Arc::new(grown));
        assert_eq!(bound_names(&shared.decide(&cache, 100)), ["b"]);
    }

    #[test]
    fn a_binding_in_flight_keeps_its_room_and_is_not_offered_again() {
        let (cache, shared) = a_bound_and_b_waiting();
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
    fn a_newer_version_of_a_pod_counts_the_same_unless_labels_owners_or_spec_change() {
        let pod = pending_pod("a", 1);
        let bound = {
            let mut b = pod.clone();
            b["spec"]["nodeName"] = json!("n1");
            b["metadata"]["resourceVersion"] = json!("2");
            b["metadata"]["annotations"] = json!({"note": "x"});
            b["status"] = json!({"phase": "Running"});
            b
        };
        assert!(counts_the_same(&pod, &bound), "binding, status and annotations");
        let changed = |path: &[&str], value: Value| {
            let mut p = bound.clone();
            let mut at = &mut p;
            for k in path {
                at = &mut at[*k];
            }
            *at = value;
            p
        };
        for (what, newer) in [
            ("labels", changed(&["metadata", "labels"], json!({"app": "web"}))),
            (
                "owner",
                changed(
                    &["metadata", "ownerReferences"],
                    json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]),
                ),
            ),
            ("a new spec field", changed(&["spec", "hostNetwork"], json!(true))),
            (
                "requests",
                changed(
                    &["spec", "containers"],
                    json!([{"name": "c", "image": "i", "resources": {"requests": {"cpu": "2"}}}]),
                ),
            ),
        ] {
            assert!(!counts_the_same(&pod, &newer), "{what}");
        }
    }

    #[test]
    fn a_bound_pod_is_counted_again_when_what_its_node_counts_changes() {
        let cache = Cache::default();
        cache.replace("nodes", vec![sim_node("n1", "1")]);
        let mut a = pending_pod("a", 1);
        a["spec"]["nodeName"] = json!("n1");
        cache.replace("pods", vec![a.clone(), pending_pod("b", 2)]);
        let shared = Shared::default();
        assert!(
            bound_names(&shared.decide(&cache, 100)).is_empty(),
            "a holds 600m of 1"
        );
        // a's status moves on: still counted, b still does not fit.
        a["metadata"]["resourceVersion"] = json!("3");
        a["status"] = json!({"phase": "Running"});
        cache.apply("pods", EventKind::Modified, &Arc::new(a.clone()));
        shared.epoch.fetch_add(1, Ordering::AcqRel);
        assert!(bound_names(&shared.decide(&cache, 100)).is_empty());
        // a now requests less (an in-place resize): b fits beside it.
        a["metadata"]["resourceVersion"] = json!("4");
        a["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("200m");
        cache.apply("pods", EventKind::Modified, &Arc::new(a));
        shared.epoch.fetch_add(1, Ordering::AcqRel);
        assert_eq!(bound_names(&shared.decide(&cache, 100)), ["b"]);
    }

    #[test]
    fn a_pass_takes_the_oldest_pending_pods_first_then_in_order_of_arrival() {
        assert_eq!(created_key("2026-11-27T08:30:05Z"), 20261127083005);
        assert!(created_key("2026-11-27T08:30:05Z") < created_key("2026-11-27T10:00:00Z"));
        assert_eq!(created_key(""), 0);
        let cache = Cache::default();
        cache.replace("nodes", vec![sim_node("n1", "8")]);
        let pods: Vec<Value> = [5, 2, 8, 1, 3]
            .into_iter()
            .map(|second| pending_pod(&format!("p{second}"), second))
            .collect();
        cache.replace("pods", pods);
        let shared = Shared::default();
        assert_eq!(bound_names(&shared.decide(&cache, 2)), ["p1", "p2"]);
        assert_eq!(bound_names(&shared.decide(&cache, 100)), ["p3", "p5", "p8"]);
        // Created in the same second: the Pod seen first goes first, even
        // when its name sorts after the other's.
        cache.apply("pods", EventKind::Added, &Arc::new(pending_pod("z", 9)));
        assert!(
            bound_names(&shared.decide(&cache, 0)).is_empty(),
            "takes z in, decides nothing"
        );
        cache.apply("pods", EventKind::Added, &Arc::new(pending_pod("a9", 9)));
        assert_eq!(bound_names(&shared.decide(&cache, 100)), ["z", "a9"]);
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
