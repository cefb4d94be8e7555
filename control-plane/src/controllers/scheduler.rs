//! The scheduling loop: every unbound Pod gets a node, chosen by
//! `rk_controllers::scheduler`, and is bound by a transaction whose
//! precondition is that the Pod is still as the scheduler saw it (so
//! still unbound). Pods that fit nowhere get PodScheduled=False with the
//! filters' reasons and a FailedScheduling Event, and are retried when
//! nodes change or a pod leaves a node.
//!
//! The scheduler works in passes rather than one Pod per reconcile: its
//! single key, [`PENDING`], stands for "every pending Pod", so a burst of
//! new Pods coalesces into one pass. A pass brings the node snapshot up to
//! date with the cache (only what changed since the last pass is decoded),
//! decides every pending Pod in turn against that snapshot, counting each
//! decision in it before the next (as kube-scheduler "assumes" a Pod), and
//! then commits the bindings in transactions of [`BINDS_PER_TXN`], several
//! in flight, so a thousand bindings cost a handful of Raft entries. The next pass starts only after the
//! cache has applied those bindings (the runtime waits for a controller's
//! last write), so the snapshot never forgets a binding.

use super::runtime::{key_of, Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use super::{event_object, record_event, set_condition};
use crate::store::objects::{meta_str, resource_version};
use crate::store::types::{EventKind, Op};
use futures::stream::{self, StreamExt};
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
/// Pods decided per pass, so a huge backlog still commits in steps.
const MAX_PODS_PER_PASS: usize = 20_000;

#[derive(Default)]
pub struct Scheduler {
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
    /// Node name → [`node_fingerprint`] as last seen.
    node_versions: HashMap<String, String>,
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

struct PodEntry {
    /// The resourceVersion this entry reflects ("" while a binding this
    /// scheduler sent is not yet seen in the cache).
    version: String,
    /// The node whose aggregates count this Pod, if any.
    node: Option<String>,
    seen_in_pass: u64,
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
            .map(|n| (meta_str(n, "name").to_string(), node_fingerprint(n)))
            .collect();
        self.nodes = nodes;
        // Every Pod is counted again on the new nodes.
        self.pods.clear();
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
            let rv = node_fingerprint(&n);
            if self.node_versions.get(name).is_some_and(|v| *v == rv) {
                continue;
            }
            if let (Some(&i), Ok(node)) = (
                self.node_index.get(name),
                serde_json::from_value::<Node>((*n).clone()),
            ) {
                self.nodes[i].set_node(node);
            }
            self.node_versions.insert(name.to_string(), rv);
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
            if wants_scheduling(&p) {
                pending.push(p.clone());
            }
            let rv = meta_str(&p, "resourceVersion");
            if let Some(e) = self.pods.get_mut(&key) {
                e.seen_in_pass = pass;
                if e.version == rv {
                    continue;
                }
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
        pending.sort_by(|a, b| {
            let created = |p: &Value| {
                p["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            };
            created(a)
                .cmp(&created(b))
                .then_with(|| key_of(a).cmp(&key_of(b)))
        });
        (pending, freed)
    }
}

/// One Pod's outcome in a pass.
enum Decision {
    Bind { pod: Arc<Value>, node: String },
    Unschedulable { pod: Arc<Value>, message: String },
}

impl Scheduler {
    /// Decides every pending Pod against the snapshot, counting each
    /// binding in it before deciding the next.
    fn decide(&self, cache: &Cache) -> Vec<Decision> {
        let mut snap = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let nodes_changed = snap.refresh_nodes(cache);
        let (pending, freed) = snap.refresh_pods(cache);
        if nodes_changed || freed {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut out = Vec::new();
        for obj in pending.into_iter().take(MAX_PODS_PER_PASS) {
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
                    // Counted now; the entry's empty version makes the
                    // next pass recount it from the cache, bound or not.
                    snap.uncount(&key);
                    let node = snap.count(&decision.node, bound);
                    let pass = snap.pass;
                    snap.pods.insert(
                        key,
                        PodEntry {
                            version: String::new(),
                            node,
                            seen_in_pass: pass,
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

/// Binds a batch of pods in one transaction; returns how many bindings
/// failed. A transaction is all or nothing, so when one pod of the batch
/// changed since the scheduler saw it (a conflict), the others are bound
/// one by one instead of waiting for the next pass.
async fn bind_batch(ctx: &Ctx, batch: Vec<(Arc<Value>, String)>) -> usize {
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
            0
        }
        Err(ReconcileError::Api(e))
            if batch.len() > 1 && matches!(e.reason, Reason::Conflict | Reason::NotFound) =>
        {
            let mut failed = 0;
            for (pod, node) in &batch {
                let one = match bind_ops(ctx, pod, node) {
                    Ok(ops) => ctx.writer.txn(ops.into()).await.map_err(ReconcileError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = one {
                    tracing::debug!(pod = %key_of(pod), error = %e, "binding failed; the next pass retries");
                    failed += 1;
                }
            }
            failed
        }
        Err(e) => {
            tracing::debug!(pods = batch.len(), error = %e, "binding failed; the next pass retries");
            batch.len()
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
        let decisions = self.decide(&ctx.cache);
        if decisions.is_empty() {
            return Ok(Action::AwaitChange);
        }
        let mut binds = Vec::new();
        let mut unschedulable_pods = Vec::new();
        for d in decisions {
            match d {
                Decision::Bind { pod, node } => binds.push((pod, node)),
                Decision::Unschedulable { pod, message } => unschedulable_pods.push((pod, message)),
            }
        }
        let mut batches: Vec<Vec<(Arc<Value>, String)>> = Vec::new();
        while !binds.is_empty() {
            let rest = binds.split_off(binds.len().min(BINDS_PER_TXN));
            batches.push(std::mem::replace(&mut binds, rest));
        }
        // A binding that failed (the pod changed, leadership moved) is
        // retried by the next pass, which recounts that pod from the cache.
        let failed_binds: usize = stream::iter(batches)
            .map(|batch| bind_batch(ctx, batch))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect::<Vec<usize>>()
            .await
            .into_iter()
            .sum();
        let failed_reports = stream::iter(unschedulable_pods)
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
            .count();
        let failed = failed_binds + failed_reports;
        let unschedulable = self
            .state
            .lock()
            .map(|s| !s.unschedulable.is_empty())
            .unwrap_or(false);
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

#[cfg(test)]
mod tests {
    use super::*;

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
