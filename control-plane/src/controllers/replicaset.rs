//! The ReplicaSet controller: keeps `replicas` Pods matching the selector,
//! adopting orphans and releasing Pods that stopped matching, and reports
//! status. The decision is `rk_controllers::replicaset::plan`.

use super::runtime::{
    controller_owner_key, key_of, split_key, Action, Cache, Change, Ctx, ReconcileError, Reconciler,
};
use super::{now, record_pod_created, record_pod_deleted, to_json, typed};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use rk_api::Reason;
use rk_controllers::replicaset::{plan, pod_from_template};
use serde_json::{json, Value};
use std::time::Duration;

const RESOURCE: &str = "replicasets.apps";
/// The Events' source, as Kubernetes names it.
const COMPONENT: &str = "replicaset-controller";

pub struct ReplicaSetController;

impl Reconciler for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicaset"
    }

    fn keys_for(&self, change: &Change, cache: &Cache) -> Vec<String> {
        match change.resource.as_str() {
            RESOURCE => vec![key_of(&change.object)],
            "pods" => {
                let mut keys: Vec<String> = [Some(&change.object), change.prev.as_ref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|p| controller_owner_key(p, "ReplicaSet"))
                    .collect();
                if keys.is_empty() {
                    // An orphan: any ReplicaSet of its namespace may adopt it.
                    let ns = change.object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("default");
                    keys = cache.list(RESOURCE, Some(ns)).iter().map(|r| key_of(r)).collect();
                }
                keys.dedup();
                keys
            }
            _ => vec![],
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache.list(RESOURCE, None).iter().map(|r| key_of(r)).collect()
    }

    async fn reconcile(&self, key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some(obj) = ctx.cache.get(RESOURCE, key) else {
            return Ok(Action::AwaitChange);
        };
        let rs: ReplicaSet = typed(&obj)?;
        let (ns, _) = split_key(key);
        let pods: Vec<Pod> = ctx
            .cache
            .list("pods", Some(ns))
            .iter()
            .filter_map(|p| serde_json::from_value((**p).clone()).ok())
            .collect();
        let p = plan(&rs, &pods, now());
        let owner_ref = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": rs.metadata.name, "uid": rs.metadata.uid,
            "controller": true, "blockOwnerDeletion": true,
        });
        for _ in 0..p.create {
            let pod = to_json(&pod_from_template(&rs));
            let created = ctx.writer.create("pods", &pod).await?;
            record_pod_created(&ctx.events, &obj, &created, COMPONENT);
        }
        for name in &p.delete {
            match ctx.writer.delete("pods", ns, name, None).await {
                Ok(_) => {
                    record_pod_deleted(&ctx.events, &obj, name, COMPONENT);
                }
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        for name in &p.adopt {
            if let Some(pod) = ctx.cache.get("pods", &format!("{ns}/{name}")) {
                let mut pod = (*pod).clone();
                let refs = pod["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut refs: Vec<Value> = refs;
                refs.push(owner_ref.clone());
                pod["metadata"]["ownerReferences"] = json!(refs);
                ctx.writer.update("pods", &pod).await?;
            }
        }
        for name in &p.release {
            if let Some(pod) = ctx.cache.get("pods", &format!("{ns}/{name}")) {
                let mut pod = (*pod).clone();
                let uid = rs.metadata.uid.clone().unwrap_or_default();
                if let Some(refs) = pod["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != json!(uid));
                }
                ctx.writer.update("pods", &pod).await?;
            }
        }
        let status = to_json(&p.status);
        if obj.get("status") != Some(&status) {
            let mut updated = (*obj).clone();
            updated["status"] = status;
            ctx.writer.update_status(RESOURCE, &updated).await?;
        }
        Ok(match p.recheck_at {
            Some(t) => {
                let secs = (t.as_second() - now().as_second()).max(1) as u64;
                Action::Requeue(Duration::from_secs(secs))
            }
            None => Action::AwaitChange,
        })
    }
}
