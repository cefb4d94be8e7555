//! The Job controller: runs pods until `completions` succeed (NonIndexed or
//! Indexed), at most `parallelism` at once, stops at backoffLimit or
//! activeDeadlineSeconds with a Failed condition, and deletes finished Jobs
//! after ttlSecondsAfterFinished. The decision is `rk_controllers::job`;
//! how completions are counted exactly once (the tracking finalizer and
//! one transaction per reconcile) is described there.

use super::runtime::{
    controlled_by, controller_owner_key, key_of, split_key, Action, Cache, Change, Ctx, ReconcileError,
    Reconciler,
};
use super::{record_pod_created, to_json, typed};
use crate::clock::SharedClock;
use crate::store::objects::{meta_str, resource_version};
use crate::store::types::Op;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use rk_api::Reason;
use rk_controllers::job::{
    finished_condition, plan_with_backoff, pod_from_template, ttl_expired, ttl_expires_at, JobBackoff,
    JOB_NAME_LABEL, TRACKING_FINALIZER,
};
use serde_json::Value;
use std::sync::Arc;

const RESOURCE: &str = "jobs.batch";
/// The Events' source, as Kubernetes names it.
const COMPONENT: &str = "job-controller";

/// The Event for a Job status that carries a true Complete or Failed
/// condition: type, reason and message, as Kubernetes' job controller
/// reports them.
fn ending_event(status: &k8s_openapi::api::batch::v1::JobStatus) -> Option<(&'static str, &str, String)> {
    let c = status
        .conditions
        .iter()
        .flatten()
        .find(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")?;
    Some(if c.type_ == "Complete" {
        ("Normal", "Completed", "Job completed".to_string())
    } else {
        (
            "Warning",
            c.reason.as_deref().unwrap_or("Failed"),
            c.message.clone().unwrap_or_default(),
        )
    })
}

pub struct JobController {
    /// Deadlines, TTLs and the failure back-off are measured on this clock
    /// (the CronJob controller's, so a test clock moves both).
    pub clock: SharedClock,
    /// The delay before a failed pod is replaced.
    pub backoff: JobBackoff,
}

async fn delete_pod(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ReconcileError> {
    match ctx.writer.delete("pods", ns, name, None).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The Job's pods, or (`uid` None) every pod whose controller is a Job of
/// this name: what a deleted or replaced Job leaves behind.
fn pods_of(ctx: &Ctx, ns: &str, name: &str, uid: Option<&str>) -> Vec<Arc<Value>> {
    ctx.cache
        .list("pods", Some(ns))
        .into_iter()
        .filter(|p| match uid {
            Some(uid) => controlled_by(p, uid),
            None => job_key_of(p).is_some_and(|k| split_key(&k).1 == name),
        })
        .collect()
}

/// The Job a pod belongs to: its controller, or for a pod orphaned from
/// its Job (`--cascade=orphan`) the Job named in its label.
fn job_key_of(pod: &Value) -> Option<String> {
    let has_controller = pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["controller"] == true));
    if has_controller {
        return controller_owner_key(pod, "Job");
    }
    let name = pod["metadata"]["labels"][JOB_NAME_LABEL].as_str()?;
    Some(format!("{}/{name}", meta_str(pod, "namespace")))
}

fn holds_finalizer(pod: &Value) -> bool {
    pod["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

/// An op removing the tracking finalizer from `pod` as cached: if the pod
/// changed since, the transaction fails and the reconcile looks again.
fn release_op(ctx: &Ctx, pod: &Value) -> Result<Op, ReconcileError> {
    let mut released = pod.clone();
    if let Some(f) = released["metadata"]["finalizers"].as_array_mut() {
        f.retain(|x| x != TRACKING_FINALIZER);
    }
    Ok(ctx.writer.update_op("pods", &released, false)?)
}

/// Lets go of pods of a Job that no longer exists (or of an older Job of
/// the same name), so deleting a Job never strands its pods.
async fn release_orphans(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    current_uid: Option<&str>,
) -> Result<(), ReconcileError> {
    let ops = pods_of(ctx, ns, name, None)
        .iter()
        .filter(|p| holds_finalizer(p))
        .filter(|p| current_uid.is_none_or(|uid| !controlled_by(p, uid)))
        .map(|p| release_op(ctx, p))
        .collect::<Result<Vec<_>, _>>()?;
    if !ops.is_empty() {
        ctx.writer.txn(ops).await?;
    }
    Ok(())
}

impl Reconciler for JobController {
    fn name(&self) -> &'static str {
        "job"
    }

    fn keys_for(&self, change: &Change, _cache: &Cache) -> Vec<String> {
        match change.resource.as_str() {
            RESOURCE => vec![key_of(&change.object)],
            "pods" => job_key_of(&change.object).into_iter().collect(),
            _ => vec![],
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        let mut keys: Vec<String> = cache.list(RESOURCE, None).iter().map(|j| key_of(j)).collect();
        // Pods still held for a Job that is gone.
        keys.extend(
            cache
                .list("pods", None)
                .iter()
                .filter(|p| holds_finalizer(p))
                .filter_map(|p| job_key_of(p)),
        );
        keys.sort();
        keys.dedup();
        keys
    }

    async fn reconcile(&self, key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let (ns, name) = split_key(key);
        let Some(obj) = ctx.cache.get(RESOURCE, key) else {
            release_orphans(ctx, ns, name, None).await?;
            return Ok(Action::AwaitChange);
        };
        let job: Job = typed(&obj)?;
        let uid = job.metadata.uid.clone().unwrap_or_default();
        release_orphans(ctx, ns, name, Some(&uid)).await?;
        let raw_pods = pods_of(ctx, ns, name, Some(&uid));
        // A Job being deleted (foreground) only lets go of its pods; the
        // garbage collector removes them.
        if job.metadata.deletion_timestamp.is_some() {
            let ops = raw_pods
                .iter()
                .filter(|p| holds_finalizer(p))
                .map(|p| release_op(ctx, p))
                .collect::<Result<Vec<_>, _>>()?;
            if !ops.is_empty() {
                ctx.writer.txn(ops).await?;
            }
            return Ok(Action::AwaitChange);
        }
        let pods: Vec<Pod> = raw_pods
            .iter()
            .filter_map(|p| serde_json::from_value((**p).clone()).ok())
            .collect();
        let now = self.clock.now();
        if ttl_expired(&job, now) {
            // Its pods go with it: they belong to the finished run. (The
            // finished Job released them already.)
            for p in &pods {
                delete_pod(ctx, ns, p.metadata.name.as_deref().unwrap_or("")).await?;
            }
            match ctx.writer.delete(RESOURCE, ns, name, Some(&uid)).await {
                Ok(_) => {}
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Action::AwaitChange);
        }
        let p = plan_with_backoff(&job, &pods, now, &self.backoff);
        // One transaction: the status that counts finished pods, the
        // release of their finalizers, and the pods created and deleted on
        // that count. It holds only if the Job and each pod are still as
        // cached, so a pod is never counted twice or created on a stale
        // count.
        let mut ops = Vec::new();
        let status = to_json(&p.status);
        if obj.get("status") != Some(&status) {
            let mut updated = (*obj).clone();
            updated["status"] = status;
            ops.push(ctx.writer.update_op(RESOURCE, &updated, true)?);
        } else {
            ops.push(Op::CheckExists {
                resource: RESOURCE.to_string(),
                namespace: ns.to_string(),
                name: name.to_string(),
                expected_rv: resource_version(&obj),
            });
        }
        let by_name = |n: &str| raw_pods.iter().find(|p| meta_str(p, "name") == n);
        for pod in p.release.iter().filter_map(|n| by_name(n)) {
            ops.push(release_op(ctx, pod)?);
        }
        let first_create = ops.len();
        if p.create_indexes.is_empty() {
            for _ in 0..p.create {
                ops.push(
                    ctx.writer
                        .create_op("pods", &to_json(&pod_from_template(&job, None)))?,
                );
            }
        } else {
            for idx in &p.create_indexes {
                ops.push(
                    ctx.writer
                        .create_op("pods", &to_json(&pod_from_template(&job, Some(*idx))))?,
                );
            }
        }
        for pod in p.delete.iter().filter_map(|n| by_name(n)) {
            ops.push(Op::Delete {
                resource: "pods".to_string(),
                namespace: ns.to_string(),
                name: meta_str(pod, "name").to_string(),
                expected_rv: None,
                expected_uid: Some(meta_str(pod, "uid").to_string()),
                propagation: None,
                grace_period_seconds: None,
            });
        }
        let created = p.create.max(p.create_indexes.len());
        if ops.len() > 1 || matches!(ops.first(), Some(Op::Update { .. })) {
            let written = ctx.writer.txn(ops).await?;
            for pod in written.iter().skip(first_create).take(created) {
                record_pod_created(&ctx.events, &obj, pod, COMPONENT);
            }
            // Reported once: when this write is the one that ends the Job.
            if p.finished && finished_condition(&job).is_none() {
                if let Some((etype, reason, message)) = ending_event(&p.status) {
                    ctx.events.record(&obj, etype, reason, &message, COMPONENT);
                }
            }
        }
        let until = |t| self.clock.until(t);
        let wake = if p.finished {
            ttl_expires_at(&job).map(until)
        } else {
            p.recheck_at.map(until)
        };
        Ok(wake.map_or(Action::AwaitChange, Action::Requeue))
    }
}
