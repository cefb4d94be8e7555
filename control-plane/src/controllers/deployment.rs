//! The Deployment controller: one ReplicaSet per pod template (named by
//! the template hash), rolled from old to new within maxSurge and
//! maxUnavailable (or Recreate), revision history trimmed to
//! revisionHistoryLimit, and status with Available/Progressing conditions.
//! The rollout arithmetic is `rk_controllers::deployment`.

use super::runtime::{
    controller_owner_key, key_of, split_key, Action, Cache, Change, Ctx, ReconcileError, Reconciler,
};
use super::{now, to_json, typed};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use rk_api::Reason;
use rk_controllers::deployment::{
    deployment_status, find_new_replica_set, history_to_delete, max_revision, new_replica_set,
    owned_replica_sets, plan_rollout, REVISION_ANNOTATION,
};
use serde_json::{json, Value};
use std::time::Duration;

const RESOURCE: &str = "deployments.apps";
const RS: &str = "replicasets.apps";
/// The Events' source, as Kubernetes names it.
const COMPONENT: &str = "deployment-controller";

pub struct DeploymentController;

/// Pods of `rs` that count as available. A ReplicaSet just scaled down
/// still reports the pods it is about to delete; counting more than its
/// spec allows would let the rollout scale old ReplicaSets down twice for
/// the same capacity and drop below maxUnavailable.
fn available(rs: &ReplicaSet) -> i32 {
    let reported = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
    reported.min(rs.spec.replicas.unwrap_or(1))
}

/// Whether the ReplicaSet controller has acted on this ReplicaSet's latest
/// spec; until then its status describes an older intent.
fn synced(rs: &ReplicaSet) -> bool {
    let observed = rs
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    observed >= rs.metadata.generation.unwrap_or(0)
}

/// Records the "ScalingReplicaSet" Event Kubernetes gives a Deployment
/// whenever one of its ReplicaSets is created or resized.
fn record_scaling(ctx: &Ctx, deployment: &Value, message: &str) {
    ctx.events
        .record(deployment, "Normal", "ScalingReplicaSet", message, COMPONENT);
}

impl Reconciler for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment"
    }

    fn keys_for(&self, change: &Change, _cache: &Cache) -> Vec<String> {
        match change.resource.as_str() {
            RESOURCE => vec![key_of(&change.object)],
            RS => controller_owner_key(&change.object, "Deployment")
                .into_iter()
                .collect(),
            _ => vec![],
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache.list(RESOURCE, None).iter().map(|d| key_of(d)).collect()
    }

    async fn reconcile(&self, key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some(obj) = ctx.cache.get(RESOURCE, key) else {
            return Ok(Action::AwaitChange);
        };
        let d: Deployment = typed(&obj)?;
        let (ns, _) = split_key(key);
        let all: Vec<ReplicaSet> = ctx
            .cache
            .list(RS, Some(ns))
            .iter()
            .filter_map(|r| serde_json::from_value((**r).clone()).ok())
            .collect();
        let owned: Vec<ReplicaSet> = owned_replica_sets(&d, &all).into_iter().cloned().collect();
        let new_rs = find_new_replica_set(&d, &owned).cloned();
        let new_name = new_rs.as_ref().and_then(|r| r.metadata.name.clone());
        let old: Vec<ReplicaSet> = owned
            .iter()
            .filter(|r| r.metadata.name != new_name || new_name.is_none())
            .cloned()
            .collect();
        if !owned.iter().all(synced) {
            // A ReplicaSet change is still in flight; its status will change
            // (and requeue this Deployment) once the ReplicaSet controller acts.
            return Ok(Action::Requeue(Duration::from_millis(500)));
        }
        let plan = plan_rollout(&d, new_rs.as_ref(), &old, &available);

        if let Some(replicas) = plan.create_new {
            let rs = new_replica_set(&d, max_revision(&owned) + 1, replicas);
            match ctx.writer.create(RS, &to_json(&rs)).await {
                Ok(_) => {
                    let name = rs.metadata.name.as_deref().unwrap_or_default();
                    record_scaling(ctx, &obj, &format!("Scaled up replica set {name} to {replicas}"));
                }
                // Someone (an earlier attempt) made it already: look again.
                Err(e) if e.reason == Reason::AlreadyExists => {
                    return Ok(Action::Requeue(Duration::from_millis(100)))
                }
                Err(e) => return Err(e.into()),
            }
        }
        for (name, replicas) in &plan.scale {
            if let Some(rs) = ctx.cache.get(RS, &format!("{ns}/{name}")) {
                let mut rs = (*rs).clone();
                let before = rs["spec"]["replicas"].as_i64().unwrap_or(1);
                rs["spec"]["replicas"] = json!(replicas);
                if Some(name) == new_name.as_ref() {
                    if let Some(rev) = plan.set_new_revision {
                        rs["metadata"]["annotations"][REVISION_ANNOTATION] = json!(rev.to_string());
                    }
                }
                ctx.writer.update(RS, &rs).await?;
                let after = i64::from(*replicas);
                if after != before {
                    let direction = if after > before { "up" } else { "down" };
                    let message = format!("Scaled {direction} replica set {name} to {after} from {before}");
                    record_scaling(ctx, &obj, &message);
                }
            }
        }
        if let (Some(rev), Some(name)) = (plan.set_new_revision, &new_name) {
            if !plan.scale.contains_key(name) {
                if let Some(rs) = ctx.cache.get(RS, &format!("{ns}/{name}")) {
                    let mut rs = (*rs).clone();
                    rs["metadata"]["annotations"][REVISION_ANNOTATION] = json!(rev.to_string());
                    ctx.writer.update(RS, &rs).await?;
                }
            }
        }
        for name in history_to_delete(&d, &old) {
            match ctx.writer.delete(RS, ns, &name, None).await {
                Ok(_) => {}
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        let status = to_json(&deployment_status(&d, new_rs.as_ref(), &old, &available, now()));
        if obj.get("status") != Some(&status) {
            let mut updated = (*obj).clone();
            updated["status"] = status;
            // The Deployment's revision annotation mirrors its newest RS.
            ctx.writer.update_status(RESOURCE, &updated).await?;
        }
        Ok(if plan.complete {
            Action::AwaitChange
        } else {
            // Progress deadlines are judged against time passing.
            Action::Requeue(Duration::from_secs(5))
        })
    }
}
