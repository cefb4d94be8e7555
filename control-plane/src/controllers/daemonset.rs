//! The DaemonSet controller: one Pod per eligible Node, created already
//! aimed at its node (a required node affinity `matchFields metadata.name
//! In [node]`, which the scheduler honours while checking resources and
//! host ports), removed from nodes that no longer qualify or no longer
//! exist, rolled to a new template within maxUnavailable (or left for
//! manual deletes with OnDelete), with the template history kept in
//! ControllerRevisions. The decisions are `rk_controllers::daemonset`.

use super::runtime::{
    controller_owner_key, key_of, split_key, Action, Cache, Change, Ctx, ReconcileError, Reconciler,
};
use super::{now, record_pod_created, record_pod_deleted, to_json, typed};
use crate::store::objects::meta_str;
use crate::store::types::EventKind;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use rk_api::{ApiError, Reason};
use rk_controllers::daemonset::{plan, plan_history, pod_for_node, revision_template};
use serde_json::{json, Value};
use std::time::Duration;

const RESOURCE: &str = "daemonsets.apps";
const REVISIONS: &str = "controllerrevisions.apps";
/// The Events' source, as Kubernetes names it.
const COMPONENT: &str = "daemonset-controller";

/// The DaemonSet controller. It reads its own writes through the
/// controller runtime, which waits before each reconcile until the cache has
/// applied this controller's last commit; without that, a reconcile would see
/// pods it already deleted as still running (and delete more, exceeding
/// maxUnavailable) or miss pods it created (and create twice). This plays the
/// part of Kubernetes' controller "expectations".
pub struct DaemonSetController;

/// Every DaemonSet key, optionally of one namespace.
fn daemonset_keys(cache: &Cache, namespace: Option<&str>) -> Vec<String> {
    cache
        .list(RESOURCE, namespace)
        .iter()
        .map(|d| key_of(d))
        .collect()
}

/// Whether a Node change can change which DaemonSets want a pod there:
/// its labels, taints, cordon, readiness or deletion. Agents rewrite their
/// Node's status every few seconds; reconciling every DaemonSet for each
/// heartbeat would be wasted work.
fn node_change_matters(change: &Change) -> bool {
    let Some(prev) = change.prev.as_ref() else {
        return true;
    };
    if change.kind != EventKind::Modified {
        return true;
    }
    let ready = |n: &Value| {
        n["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"].clone())
    };
    let n = &change.object;
    n["metadata"]["labels"] != prev["metadata"]["labels"]
        || n["metadata"]["deletionTimestamp"] != prev["metadata"]["deletionTimestamp"]
        || n["spec"]["taints"] != prev["spec"]["taints"]
        || n["spec"]["unschedulable"] != prev["spec"]["unschedulable"]
        || ready(n) != ready(prev)
}

/// Decodes every cached object of `resource` (in `namespace`, or all),
/// skipping any that do not decode: one corrupt object must not stop the
/// DaemonSets.
fn decoded<T: serde::de::DeserializeOwned>(cache: &Cache, resource: &str, namespace: Option<&str>) -> Vec<T> {
    cache
        .list(resource, namespace)
        .iter()
        .filter_map(|o| serde_json::from_value((**o).clone()).ok())
        .collect()
}

/// Ignores "not found" (someone else removed it first) and "conflict"
/// (the uid precondition failed: the object was replaced) from a delete.
fn deleted(result: Result<Value, ApiError>) -> Result<Option<Value>, ReconcileError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Reconciler for DaemonSetController {
    fn name(&self) -> &'static str {
        "daemonset"
    }

    fn keys_for(&self, change: &Change, cache: &Cache) -> Vec<String> {
        match change.resource.as_str() {
            RESOURCE => vec![key_of(&change.object)],
            "pods" => {
                let mut keys: Vec<String> = [Some(&change.object), change.prev.as_ref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|p| controller_owner_key(p, "DaemonSet"))
                    .collect();
                let orphan = change.object["metadata"]["ownerReferences"]
                    .as_array()
                    .is_none_or(|refs| !refs.iter().any(|r| r["controller"] == true));
                if keys.is_empty() && orphan {
                    // Any DaemonSet of its namespace may adopt it.
                    let ns = meta_str(&change.object, "namespace");
                    keys = daemonset_keys(cache, Some(if ns.is_empty() { "default" } else { ns }));
                }
                keys.dedup();
                keys
            }
            "nodes" if node_change_matters(change) => daemonset_keys(cache, None),
            REVISIONS => controller_owner_key(&change.object, "DaemonSet")
                .into_iter()
                .collect(),
            _ => vec![],
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        daemonset_keys(cache, None)
    }

    async fn reconcile(&self, key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some(obj) = ctx.cache.get(RESOURCE, key) else {
            return Ok(Action::AwaitChange);
        };
        let ds: DaemonSet = typed(&obj)?;
        let (ns, _) = split_key(key);
        let nodes: Vec<Node> = decoded(&ctx.cache, "nodes", None);
        let pods: Vec<Pod> = decoded(&ctx.cache, "pods", Some(ns));
        let revisions: Vec<ControllerRevision> = decoded(&ctx.cache, REVISIONS, Some(ns));
        let owner_ref = json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "name": ds.metadata.name, "uid": ds.metadata.uid,
            "controller": true, "blockOwnerDeletion": true,
        });
        let uid = ds.metadata.uid.clone().unwrap_or_default();

        // History first: new pods must name a revision that exists.
        let history = plan_history(&ds, &revisions, &pods);
        // Adoption and renumbering may concern the same revision; both
        // changes then go into one write, since a second write based on the
        // cached copy would fail its resourceVersion precondition.
        let mut history_updates: Vec<(&str, Option<i64>, bool)> =
            history.adopt.iter().map(|n| (n.as_str(), None, true)).collect();
        if let Some((name, number)) = &history.renumber {
            match history_updates.iter_mut().find(|(n, _, _)| n == name) {
                Some(entry) => entry.1 = Some(*number),
                None => history_updates.push((name.as_str(), Some(*number), false)),
            }
        }
        for (name, number, adopt) in history_updates {
            let Some(rev) = ctx.cache.get(REVISIONS, &format!("{ns}/{name}")) else {
                continue;
            };
            let mut rev = (*rev).clone();
            if adopt {
                let mut refs = rev["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                refs.push(owner_ref.clone());
                rev["metadata"]["ownerReferences"] = json!(refs);
            }
            if let Some(number) = number {
                rev["revision"] = json!(number);
            }
            ctx.writer.update(REVISIONS, &rev).await?;
        }
        if let Some(rev) = &history.create {
            match ctx.writer.create(REVISIONS, &to_json(rev)).await {
                Ok(_) => {}
                Err(e) if e.reason == Reason::AlreadyExists => {
                    let name = rev.metadata.name.as_deref().unwrap_or_default();
                    let Some(existing) = ctx.cache.get(REVISIONS, &format!("{ns}/{name}")) else {
                        // Most likely our own earlier write, not yet
                        // cached: look again shortly.
                        return Ok(Action::Requeue(Duration::from_millis(50)));
                    };
                    // The name is taken by a revision that is not ours or
                    // records another template (plan_history would have
                    // chosen it otherwise): a hash collision. A new
                    // collision count gives a new hash, as in Kubernetes.
                    let existing: Option<ControllerRevision> =
                        serde_json::from_value((*existing).clone()).ok();
                    tracing::info!(
                        daemonset = key,
                        revision = name,
                        same_template =
                            existing.as_ref().and_then(revision_template).as_ref() == Some(&ds.spec.template),
                        "controller revision name collision; bumping collisionCount"
                    );
                    let mut updated = (*obj).clone();
                    let count = updated["status"]["collisionCount"].as_i64().unwrap_or(0);
                    updated["status"]["collisionCount"] = json!(count + 1);
                    ctx.writer.update_status(RESOURCE, &updated).await?;
                    return Ok(Action::Requeue(Duration::from_millis(20)));
                }
                Err(e) => return Err(e.into()),
            }
        }

        let p = plan(&ds, &nodes, &pods, &history.hash, now());
        let pod_uid = |name: &str| -> Option<String> {
            ctx.cache
                .get("pods", &format!("{ns}/{name}"))
                .map(|pod| meta_str(&pod, "uid").to_string())
        };
        for name in &p.adopt {
            if let Some(pod) = ctx.cache.get("pods", &format!("{ns}/{name}")) {
                let mut pod = (*pod).clone();
                let mut refs = pod["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                refs.push(owner_ref.clone());
                pod["metadata"]["ownerReferences"] = json!(refs);
                ctx.writer.update("pods", &pod).await?;
            }
        }
        for name in &p.release {
            if let Some(pod) = ctx.cache.get("pods", &format!("{ns}/{name}")) {
                let mut pod = (*pod).clone();
                if let Some(refs) = pod["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != json!(uid));
                }
                ctx.writer.update("pods", &pod).await?;
            }
        }
        for name in &p.delete {
            let gone = deleted(
                ctx.writer
                    .delete("pods", ns, name, pod_uid(name).as_deref())
                    .await,
            )?;
            if gone.is_some() {
                record_pod_deleted(&ctx.events, &obj, name, COMPONENT);
            }
        }
        for name in &p.force_delete {
            let Some(pod_uid) = pod_uid(name) else {
                continue;
            };
            deleted(ctx.writer.force_delete_pod(ns, name, &pod_uid).await)?;
        }
        for node in &p.create {
            let pod = to_json(&pod_for_node(&ds, node, &history.hash));
            let created = ctx.writer.create("pods", &pod).await?;
            record_pod_created(&ctx.events, &obj, &created, COMPONENT);
        }
        for name in &history.delete {
            let rev_uid = ctx
                .cache
                .get(REVISIONS, &format!("{ns}/{name}"))
                .map(|r| meta_str(&r, "uid").to_string());
            deleted(ctx.writer.delete(REVISIONS, ns, name, rev_uid.as_deref()).await)?;
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
