//! The Job controller: runs pods until `completions` succeed (NonIndexed or
//! Indexed), at most `parallelism` at once, stops at backoffLimit or
//! activeDeadlineSeconds with a Failed condition, and deletes finished Jobs
//! after ttlSecondsAfterFinished. The decision is `rk_controllers::job`.

use super::runtime::{
    controlled_by, controller_owner_key, key_of, split_key, Action, Cache, Change, Ctx, ReconcileError,
    Reconciler,
};
use super::{now, to_json, typed};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use rk_api::Reason;
use rk_controllers::job::{plan, pod_from_template, ttl_expired, ttl_expires_at};
use std::time::Duration;

const RESOURCE: &str = "jobs.batch";

pub struct JobController;

fn until(t: k8s_openapi::jiff::Timestamp) -> Duration {
    Duration::from_secs((t.as_second() - now().as_second()).max(1) as u64)
}

async fn delete_pod(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ReconcileError> {
    match ctx.writer.delete("pods", ns, name, None).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

impl Reconciler for JobController {
    fn name(&self) -> &'static str {
        "job"
    }

    fn keys_for(&self, change: &Change, _cache: &Cache) -> Vec<String> {
        match change.resource.as_str() {
            RESOURCE => vec![key_of(&change.object)],
            "pods" => controller_owner_key(&change.object, "Job").into_iter().collect(),
            _ => vec![],
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache.list(RESOURCE, None).iter().map(|j| key_of(j)).collect()
    }

    async fn reconcile(&self, key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some(obj) = ctx.cache.get(RESOURCE, key) else {
            return Ok(Action::AwaitChange);
        };
        let job: Job = typed(&obj)?;
        let (ns, name) = split_key(key);
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Pod> = ctx
            .cache
            .list("pods", Some(ns))
            .iter()
            .filter(|p| controlled_by(p, &uid))
            .filter_map(|p| serde_json::from_value((**p).clone()).ok())
            .collect();
        let now = now();
        if ttl_expired(&job, now) {
            // Its pods go with it: they belong to the finished run.
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
        // A finished Job's status is final, as in Kubernetes: recounting
        // Pods after the fact could only lose completions (a Succeeded
        // Pod deleted later still completed).
        if is_finished(&job) {
            return Ok(ttl_expires_at(&job)
                .map(until)
                .map_or(Action::AwaitChange, Action::Requeue));
        }
        let p = plan(&job, &pods, now);
        if p.create_indexes.is_empty() {
            for _ in 0..p.create {
                ctx.writer
                    .create("pods", &to_json(&pod_from_template(&job, None)))
                    .await?;
            }
        } else {
            for idx in &p.create_indexes {
                ctx.writer
                    .create("pods", &to_json(&pod_from_template(&job, Some(*idx))))
                    .await?;
            }
        }
        for pod in &p.delete {
            delete_pod(ctx, ns, pod).await?;
        }
        let status = to_json(&p.status);
        if obj.get("status") != Some(&status) {
            let mut updated = (*obj).clone();
            updated["status"] = status;
            ctx.writer.update_status(RESOURCE, &updated).await?;
        }
        let wake = if p.finished {
            ttl_expires_at(&job).map(until)
        } else {
            p.recheck_at.map(until)
        };
        Ok(wake.map_or(Action::AwaitChange, Action::Requeue))
    }
}
