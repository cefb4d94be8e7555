//! The scheduling loop: every unbound Pod gets a node, chosen by
//! `rk_controllers::scheduler`, and is bound by a transaction whose
//! precondition is that the Pod is still as the scheduler saw it (so
//! still unbound). Pods that fit nowhere get PodScheduled=False with the
//! filters' reasons and a FailedScheduling Event, and are retried when
//! nodes or pods change.

use super::runtime::{key_of, Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use super::{record_event, set_condition, typed};
use crate::store::objects::resource_version;
use crate::store::types::Op;
use k8s_openapi::api::core::v1::{Node, Pod};
use rk_controllers::scheduler::{default_nodes_to_score, schedule, NodeInfo, ScheduleContext};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Default)]
pub struct Scheduler {
    ties: AtomicU64,
    start: AtomicUsize,
    /// Bindings this scheduler committed that the cache may not show yet
    /// (pod key → (node, pod, revision of the binding)). Counting them
    /// keeps a burst of decisions from overcommitting a node.
    assumed: Mutex<HashMap<String, (String, Pod, u64)>>,
}

fn wants_scheduling(pod: &Value) -> bool {
    let spec = &pod["spec"];
    let node = spec["nodeName"].as_str().unwrap_or("");
    let scheduler = spec["schedulerName"].as_str().unwrap_or(SCHEDULER_NAME);
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    node.is_empty()
        && scheduler == SCHEDULER_NAME
        && pod["metadata"]["deletionTimestamp"].is_null()
        && phase != "Succeeded"
        && phase != "Failed"
}

fn pending_keys(cache: &Cache) -> Vec<String> {
    cache
        .list("pods", None)
        .iter()
        .filter(|p| wants_scheduling(p))
        .map(|p| key_of(p))
        .collect()
}

impl Scheduler {
    /// A NodeInfo per node, with the pods bound to it (from the cache plus
    /// bindings the cache has not caught up with).
    fn snapshot(&self, cache: &Cache) -> Vec<NodeInfo> {
        let mut by_node: HashMap<String, Vec<Pod>> = HashMap::new();
        let revision = cache.revision();
        let mut assumed = match self.assumed.lock() {
            Ok(a) => a,
            Err(p) => p.into_inner(),
        };
        assumed.retain(|_, (_, _, rev)| *rev > revision);
        for p in cache.list("pods", None) {
            let node = p["spec"]["nodeName"].as_str().unwrap_or("");
            let phase = p["status"]["phase"].as_str().unwrap_or("");
            if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
                continue;
            }
            if let Ok(pod) = serde_json::from_value::<Pod>((*p).clone()) {
                by_node.entry(node.to_string()).or_default().push(pod);
            }
        }
        for (node, pod, _) in assumed.values() {
            by_node.entry(node.clone()).or_default().push(pod.clone());
        }
        let mut nodes: Vec<NodeInfo> = cache
            .list("nodes", None)
            .iter()
            .filter_map(|n| serde_json::from_value::<Node>((**n).clone()).ok())
            .map(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                let pods = by_node.remove(&name).unwrap_or_default();
                NodeInfo::new(n, pods)
            })
            .collect();
        nodes.sort_by(|a, b| a.name().cmp(b.name()));
        nodes
    }
}

impl Reconciler for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn keys_for(&self, change: &Change, cache: &Cache) -> Vec<String> {
        match change.resource.as_str() {
            "pods" if wants_scheduling(&change.object) => vec![key_of(&change.object)],
            // A pod leaving a node frees room: pending pods may fit now.
            "pods" if change.kind == crate::store::types::EventKind::Deleted => pending_keys(cache),
            "nodes" => pending_keys(cache),
            _ => vec![],
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        pending_keys(cache)
    }

    async fn reconcile(&self, key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some(obj) = ctx.cache.get("pods", key) else {
            return Ok(Action::AwaitChange);
        };
        if !wants_scheduling(&obj) {
            return Ok(Action::AwaitChange);
        }
        if self.assumed.lock().map(|a| a.contains_key(key)).unwrap_or(false) {
            return Ok(Action::AwaitChange);
        }
        let pod: Pod = typed(&obj)?;
        let nodes = self.snapshot(&ctx.cache);
        let sctx = ScheduleContext {
            seed: self.ties.fetch_add(1, Ordering::Relaxed),
            max_nodes_to_score: default_nodes_to_score(nodes.len()),
            start_index: self.start.load(Ordering::Relaxed),
            ..Default::default()
        };
        match schedule(&pod, &nodes, &sctx) {
            Ok(decision) => {
                self.start.store(decision.next_start_index, Ordering::Relaxed);
                let mut bound = (*obj).clone();
                bound["spec"]["nodeName"] = json!(decision.node);
                let mut status = bound.clone();
                set_condition(&mut status, "PodScheduled", "True", "", "");
                // The binding's precondition: the pod is exactly as seen,
                // so still unbound; a concurrent change fails it.
                let mut bind = ctx.writer.update_op("pods", &bound, false)?;
                if let Op::Update { expected_rv, .. } = &mut bind {
                    *expected_rv = resource_version(&obj);
                }
                let mut status_op = ctx.writer.update_op("pods", &status, true)?;
                if let Op::Update { expected_rv, .. } = &mut status_op {
                    *expected_rv = None;
                }
                let written = ctx.writer.txn(vec![bind, status_op]).await?;
                let rev = written.first().and_then(resource_version).unwrap_or(u64::MAX);
                let mut assumed_pod = pod;
                if let Some(spec) = assumed_pod.spec.as_mut() {
                    spec.node_name = Some(decision.node.clone());
                }
                if let Ok(mut a) = self.assumed.lock() {
                    a.insert(key.to_string(), (decision.node.clone(), assumed_pod, rev));
                }
                tracing::debug!(pod = key, node = %decision.node, "scheduled");
                Ok(Action::AwaitChange)
            }
            Err(unschedulable) => {
                let mut status = (*obj).clone();
                if set_condition(
                    &mut status,
                    "PodScheduled",
                    "False",
                    "Unschedulable",
                    &unschedulable.message,
                ) {
                    ctx.writer.update_status("pods", &status).await?;
                    record_event(
                        &ctx.writer,
                        &obj,
                        "Warning",
                        "FailedScheduling",
                        &unschedulable.message,
                        SCHEDULER_NAME,
                    )
                    .await;
                }
                // Node and pod changes requeue it; the timer is a backstop.
                Ok(Action::Requeue(Duration::from_secs(30)))
            }
        }
    }
}
