//! Node lifecycle: a node whose Lease (kube-node-lease/<node>) has not been
//! renewed for its grace period (`NodeLifecycle::grace`, 5 s by default)
//! is marked Ready=Unknown and tainted
//! `node.kubernetes.io/unreachable:NoExecute`; its Pods that do not
//! tolerate that taint are evicted (deleted) once their toleration runs
//! out: by default `NodeLifecycle::default_toleration` (2 s), far shorter
//! than Kubernetes' 300 s, so owners replace them elsewhere quickly. A
//! renewed Lease lifts the taint. Both are flags of `rk-control-plane`
//! (`--node-monitor-grace-period`, `--default-unreachable-toleration-seconds`):
//! slow machines (emulated VMs) need a longer grace.

use super::runtime::{Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use super::{now, set_condition};
use crate::store::objects::meta_str;
use rk_api::Reason;
use serde_json::{json, Value};
use std::time::Duration;

/// The default of how long a node may go without renewing its Lease.
pub const NODE_GRACE: Duration = Duration::from_secs(5);
/// The default of how long a Pod without its own toleration stays on an
/// unreachable node.
pub const DEFAULT_TOLERATION: Duration = Duration::from_secs(2);
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const LEASES: &str = "leases.coordination.k8s.io";

#[derive(Clone, Copy, Debug)]
pub struct NodeLifecycle {
    /// How long a node may go without renewing its Lease before it is
    /// considered lost.
    pub grace: Duration,
    /// How long a Pod without its own unreachable toleration stays on a
    /// lost node.
    pub default_toleration: Duration,
}

impl Default for NodeLifecycle {
    fn default() -> Self {
        NodeLifecycle {
            grace: NODE_GRACE,
            default_toleration: DEFAULT_TOLERATION,
        }
    }
}

fn rfc3339_seconds(s: &str) -> Option<i64> {
    s.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// Seconds a pod tolerates the unreachable taint: its own toleration's
/// tolerationSeconds, forever if it tolerates without a limit, else
/// `default`.
fn toleration_seconds(pod: &Value, default: Duration) -> Option<u64> {
    let tolerations = pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    for t in tolerations {
        let key_ok = t["key"] == UNREACHABLE || (t["key"].is_null() && t["operator"] == "Exists");
        let effect_ok = t["effect"].is_null() || t["effect"] == "NoExecute";
        if key_ok && effect_ok {
            return t["tolerationSeconds"].as_i64().map(|s| s.max(0) as u64);
        }
    }
    Some(default.as_secs())
}

fn taint_time(node: &Value) -> Option<i64> {
    node["spec"]["taints"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == UNREACHABLE && t["effect"] == "NoExecute")
        .map(|t| t["timeAdded"].as_str().and_then(rfc3339_seconds).unwrap_or(0))
}

impl Reconciler for NodeLifecycle {
    fn name(&self) -> &'static str {
        "node-lifecycle"
    }

    fn keys_for(&self, change: &Change, _cache: &Cache) -> Vec<String> {
        match change.resource.as_str() {
            "nodes" => vec![meta_str(&change.object, "name").to_string()],
            LEASES if meta_str(&change.object, "namespace") == "kube-node-lease" => {
                vec![meta_str(&change.object, "name").to_string()]
            }
            _ => vec![],
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache
            .list("nodes", None)
            .iter()
            .map(|n| meta_str(n, "name").to_string())
            .collect()
    }

    async fn reconcile(&self, key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some(node) = ctx.cache.get("nodes", key) else {
            return Ok(Action::AwaitChange);
        };
        // Nodes without a Lease are not managed by an agent (registered by
        // hand or by tests): leave them alone.
        let Some(lease) = ctx.cache.get(LEASES, &format!("kube-node-lease/{key}")) else {
            return Ok(Action::AwaitChange);
        };
        let now_s = now().as_second();
        let renewed = lease["spec"]["renewTime"]
            .as_str()
            .and_then(rfc3339_seconds)
            .unwrap_or(0);
        let deadline = renewed + self.grace.as_secs() as i64;
        let tainted = taint_time(&node);
        if now_s < deadline {
            if tainted.is_some() {
                let mut n = (*node).clone();
                if let Some(ts) = n["spec"]["taints"].as_array_mut() {
                    ts.retain(|t| t["key"] != UNREACHABLE);
                }
                ctx.writer.update("nodes", &n).await?;
            }
            return Ok(Action::Requeue(Duration::from_secs(
                (deadline - now_s).max(1) as u64
            )));
        }
        // The node is lost.
        let Some(since) = tainted else {
            let mut status = (*node).clone();
            if set_condition(
                &mut status,
                "Ready",
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            ) {
                ctx.writer.update_status("nodes", &status).await?;
            }
            let mut n = ctx
                .cache
                .get("nodes", key)
                .map(|n| (*n).clone())
                .unwrap_or(status);
            let mut taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
            taints.push(
                json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": crate::clock::now_rfc3339()}),
            );
            n["spec"]["taints"] = json!(taints);
            n["metadata"]["resourceVersion"] = Value::Null;
            ctx.writer.update("nodes", &n).await?;
            ctx.events.record(
                &node,
                "Normal",
                "NodeNotReady",
                &format!("Node {key} status is now: NodeNotReady"),
                "node-controller",
            );
            return Ok(Action::Requeue(Duration::from_millis(200)));
        };
        let mut next: Option<i64> = None;
        for pod in ctx.cache.list("pods", None) {
            // A finished Pod runs nothing, so there is nothing to evict; a
            // Pod already force-deleted waits only for its finalizers'
            // owners (a Job counting it), not for this node.
            let finished = matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
            let force_deleted = !pod["metadata"]["deletionTimestamp"].is_null()
                && pod["metadata"]["deletionGracePeriodSeconds"].as_i64() == Some(0);
            if pod["spec"]["nodeName"] != key || finished || force_deleted {
                continue;
            }
            // A Pod already terminating waits for its node agent to confirm;
            // an unreachable agent never will, so once its grace period is
            // over the Pod is removed for it.
            let terminating_until = pod["metadata"]["deletionTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .map(|t| t.as_second());
            let evict_at = match terminating_until {
                Some(deadline) => deadline,
                None => match toleration_seconds(&pod, self.default_toleration) {
                    Some(tolerated) => since + tolerated as i64,
                    None => continue,
                },
            };
            if now_s >= evict_at {
                let (ns, name) = (meta_str(&pod, "namespace"), meta_str(&pod, "name"));
                let rv = meta_str(&pod, "resourceVersion").parse().ok();
                match ctx
                    .writer
                    .force_delete_pod_at(ns, name, meta_str(&pod, "uid"), rv)
                    .await
                {
                    Ok(_) => ctx.events.record(
                        &pod,
                        "Normal",
                        "TaintManagerEviction",
                        &format!("Marking for deletion Pod {ns}/{name}"),
                        "taint-eviction-controller",
                    ),
                    Err(e) if e.reason == Reason::NotFound => {}
                    // It changed since the cache saw it: look again soon.
                    Err(e) if e.reason == Reason::Conflict => {
                        next = Some(next.map_or(now_s + 1, |n| n.min(now_s + 1)))
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                next = Some(next.map_or(evict_at, |n| n.min(evict_at)));
            }
        }
        Ok(match next {
            Some(t) => Action::Requeue(Duration::from_secs((t - now_s).max(1) as u64)),
            None => Action::Requeue(self.grace.max(Duration::from_secs(1))),
        })
    }
}
