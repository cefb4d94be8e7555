//! The CronJob controller: starts a Job at each scheduled time. The Job's
//! creation and the CronJob's `status.lastScheduleTime` are one
//! transaction, and Job names are derived from the scheduled time, so a
//! leader change can neither fire a run twice (the second create fails)
//! nor silently drop one (the last schedule time lives in the store). The
//! decision is `rk_controllers::cronjob::plan`.

use super::runtime::{
    controlled_by, controller_owner_key, key_of, split_key, Action, Cache, Change, Ctx, ReconcileError,
    Reconciler,
};
use super::{to_json, typed};
use crate::clock::SharedClock;
use crate::store::objects::resource_version;
use crate::store::types::Op;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use rk_api::Reason;
use rk_controllers::cronjob::{job_from_template, plan};
use serde_json::{json, Value};
use std::time::Duration;

const RESOURCE: &str = "cronjobs.batch";
const JOBS: &str = "jobs.batch";

pub struct CronJobController {
    /// Tests move this clock to reach scheduled times at once.
    pub clock: SharedClock,
}

fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

impl Reconciler for CronJobController {
    fn name(&self) -> &'static str {
        "cronjob"
    }

    fn keys_for(&self, change: &Change, _cache: &Cache) -> Vec<String> {
        match change.resource.as_str() {
            RESOURCE => vec![key_of(&change.object)],
            JOBS => controller_owner_key(&change.object, "CronJob")
                .into_iter()
                .collect(),
            _ => vec![],
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache.list(RESOURCE, None).iter().map(|c| key_of(c)).collect()
    }

    async fn reconcile(&self, key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some(obj) = ctx.cache.get(RESOURCE, key) else {
            return Ok(Action::AwaitChange);
        };
        let cj: CronJob = typed(&obj)?;
        let (ns, _) = split_key(key);
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let jobs: Vec<Job> = ctx
            .cache
            .list(JOBS, Some(ns))
            .iter()
            .filter(|j| controlled_by(j, &uid))
            .filter_map(|j| serde_json::from_value((**j).clone()).ok())
            .collect();
        let (done, active): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(finished);
        let now = self.clock.now();
        let p = plan(&cj, &active, &done, now);
        for name in p.delete_active.iter().chain(p.delete_history.iter()) {
            match ctx.writer.delete(JOBS, ns, name, None).await {
                Ok(_) => {}
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(at) = p.run_at {
            let job = to_json(&job_from_template(&cj, at));
            let create = ctx.writer.create_op(JOBS, &job)?;
            let mut status = (*obj).clone();
            let mut active_refs: Vec<Value> = active
                .iter()
                .filter(|j| !p.delete_active.contains(j.metadata.name.as_ref().unwrap_or(&String::new())))
                .map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": j.metadata.name, "namespace": ns, "uid": j.metadata.uid}))
                .collect();
            active_refs.push(json!({"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"], "namespace": ns}));
            status["status"]["lastScheduleTime"] = json!(at.to_string());
            status["status"]["active"] = json!(active_refs);
            let mut status_op = ctx.writer.update_op(RESOURCE, &status, true)?;
            if let Op::Update { expected_rv, .. } = &mut status_op {
                *expected_rv = resource_version(&obj);
            }
            match ctx.writer.txn(vec![create, status_op]).await {
                Ok(_) => tracing::info!(cronjob = key, job = ?p.job_name, "started a scheduled run"),
                // The run exists already (an earlier leader made it): the
                // cache will catch up and the next reconcile moves on.
                Err(e) if matches!(e.reason, Reason::AlreadyExists | Reason::Conflict) => {
                    return Ok(Action::Requeue(Duration::from_millis(200)))
                }
                Err(e) => return Err(e.into()),
            }
        } else if let Some(reason) = &p.skip_reason {
            tracing::debug!(cronjob = key, reason = %reason, "scheduled run skipped");
        }
        Ok(match p.next_run {
            Some(t) => Action::Requeue(self.clock.until(t)),
            None => Action::AwaitChange,
        })
    }
}
