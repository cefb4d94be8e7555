//! Garbage collection by ownerReferences, and namespace deletion.
//!
//! - An object whose owners are all gone is deleted (background
//!   propagation: the owner went first, dependents follow).
//! - An owner being deleted with the `foregroundDeletion` finalizer has its
//!   dependents deleted first; the finalizer is removed once none remain.
//! - An owner with the `orphan` finalizer has its dependents' references
//!   to it removed, then the finalizer.
//! - A Namespace being deleted (Terminating) has every object in it
//!   deleted; then its `spec.finalizers` are cleared and the store removes
//!   it.
//!
//! Keys are `resource|namespace/name`, so one queue serves every kind.

use super::runtime::{key_of, split_key, Action, Cache, Change, Ctx, ReconcileError, Reconciler};
use crate::store::objects::{meta_str, resource_prefix};
use crate::store::rocks::ObjectStore;
use crate::store::types::EventKind;
use rk_api::{resources, Reason};
use serde_json::{json, Value};
use std::time::Duration;

/// Resources whose objects own others or are owned, as far as the
/// controllers cache them.
pub const OWNED_KINDS: &[&str] = &[
    "pods",
    "replicasets.apps",
    "deployments.apps",
    "jobs.batch",
    "cronjobs.batch",
    "daemonsets.apps",
    "controllerrevisions.apps",
];

pub struct GarbageCollector {
    pub store: ObjectStore,
}

fn gc_key(resource: &str, obj: &Value) -> String {
    format!("{resource}|{}", key_of(obj))
}

fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid")
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == f))
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The cached objects of `namespace` that name `owner_uid` as an owner.
fn dependents(cache: &Cache, namespace: &str, owner_uid: &str) -> Vec<(String, std::sync::Arc<Value>)> {
    let mut out = vec![];
    for r in OWNED_KINDS {
        for o in cache.list(r, Some(namespace)) {
            if owner_uids(&o).iter().any(|u| u == owner_uid) {
                out.push((r.to_string(), o));
            }
        }
    }
    out
}

/// Whether the owner a reference names still exists (same uid).
fn owner_exists(cache: &Cache, namespace: &str, r: &Value) -> bool {
    let api_version = r["apiVersion"].as_str().unwrap_or("");
    let kind = r["kind"].as_str().unwrap_or("");
    let name = r["name"].as_str().unwrap_or("");
    let Some(k) = resources::by_api_version_kind(api_version, kind) else {
        // An owner kind rk does not know: never collect on its account.
        return true;
    };
    let resource = k.group_resource();
    if !OWNED_KINDS.contains(&resource.as_str()) {
        return true;
    }
    let key = if k.namespaced {
        format!("{namespace}/{name}")
    } else {
        name.to_string()
    };
    cache
        .get(&resource, &key)
        .is_some_and(|o| uid(&o) == r["uid"].as_str().unwrap_or("-"))
}

impl GarbageCollector {
    async fn remove_finalizer(
        &self,
        ctx: &Ctx,
        resource: &str,
        obj: &Value,
        f: &str,
    ) -> Result<(), ReconcileError> {
        let mut o = obj.clone();
        if let Some(a) = o["metadata"]["finalizers"].as_array_mut() {
            a.retain(|x| x != f);
        }
        ctx.writer.update(resource, &o).await?;
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, resource: &str, obj: &Value) -> Result<(), ReconcileError> {
        let (ns, name) = (meta_str(obj, "namespace"), meta_str(obj, "name"));
        match ctx.writer.delete(resource, ns, name, Some(uid(obj))).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Empties a Terminating namespace, then lets it go.
    async fn finish_namespace(&self, ctx: &Ctx, ns_obj: &Value) -> Result<Action, ReconcileError> {
        let ns = meta_str(ns_obj, "name").to_string();
        let mut remaining = 0;
        for kind in resources::all().iter().filter(|k| k.namespaced) {
            let resource = kind.group_resource();
            let (items, _) = self
                .store
                .list_prefix(&resource_prefix(&resource, Some(&ns)))
                .map_err(|e| ReconcileError::Other(e.to_string()))?;
            for o in items {
                remaining += 1;
                if meta_str(&o, "deletionTimestamp").is_empty() {
                    self.delete(ctx, &resource, &o).await?;
                }
            }
        }
        if remaining > 0 {
            return Ok(Action::Requeue(Duration::from_millis(200)));
        }
        let mut o = ns_obj.clone();
        o["spec"]["finalizers"] = json!([]);
        ctx.writer.update("namespaces", &o).await?;
        Ok(Action::AwaitChange)
    }
}

impl Reconciler for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbage-collector"
    }

    fn keys_for(&self, change: &Change, cache: &Cache) -> Vec<String> {
        let o = &change.object;
        if change.resource == "namespaces" {
            return if meta_str(o, "deletionTimestamp").is_empty() {
                vec![]
            } else {
                vec![gc_key("namespaces", o)]
            };
        }
        if !OWNED_KINDS.contains(&change.resource.as_str()) {
            return vec![];
        }
        let mut keys = vec![];
        if !owner_uids(o).is_empty() || !meta_str(o, "deletionTimestamp").is_empty() {
            keys.push(gc_key(&change.resource, o));
        }
        // An owner that went away, or started foreground/orphan deletion:
        // its dependents need a look.
        if change.kind == EventKind::Deleted || !meta_str(o, "deletionTimestamp").is_empty() {
            for (r, d) in dependents(cache, meta_str(o, "namespace"), uid(o)) {
                keys.push(gc_key(&r, &d));
            }
        }
        keys
    }

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        let mut keys = vec![];
        for r in OWNED_KINDS {
            for o in cache.list(r, None) {
                if !owner_uids(&o).is_empty() || !meta_str(&o, "deletionTimestamp").is_empty() {
                    keys.push(gc_key(r, &o));
                }
            }
        }
        for n in cache.list("namespaces", None) {
            if !meta_str(&n, "deletionTimestamp").is_empty() {
                keys.push(gc_key("namespaces", &n));
            }
        }
        keys
    }

    async fn reconcile(&self, key: &str, ctx: &Ctx) -> Result<Action, ReconcileError> {
        let Some((resource, okey)) = key.split_once('|') else {
            return Ok(Action::AwaitChange);
        };
        let Some(obj) = ctx.cache.get(resource, okey) else {
            return Ok(Action::AwaitChange);
        };
        if resource == "namespaces" {
            return self.finish_namespace(ctx, &obj).await;
        }
        let (ns, _) = split_key(okey);
        if !meta_str(&obj, "deletionTimestamp").is_empty() {
            if has_finalizer(&obj, "orphan") {
                for (r, d) in dependents(&ctx.cache, ns, uid(&obj)) {
                    let mut d = (*d).clone();
                    if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|x| x["uid"] != uid(&obj));
                    }
                    ctx.writer.update(&r, &d).await?;
                }
                self.remove_finalizer(ctx, resource, &obj, "orphan").await?;
                return Ok(Action::AwaitChange);
            }
            if has_finalizer(&obj, "foregroundDeletion") {
                let deps = dependents(&ctx.cache, ns, uid(&obj));
                if deps.is_empty() {
                    self.remove_finalizer(ctx, resource, &obj, "foregroundDeletion")
                        .await?;
                    return Ok(Action::AwaitChange);
                }
                for (r, d) in deps {
                    if meta_str(&d, "deletionTimestamp").is_empty() {
                        self.delete(ctx, &r, &d).await?;
                    }
                }
                return Ok(Action::Requeue(Duration::from_millis(200)));
            }
        }
        let refs = obj["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !refs.is_empty() && refs.iter().all(|r| !owner_exists(&ctx.cache, ns, r)) {
            self.delete(ctx, resource, &obj).await?;
        }
        Ok(Action::AwaitChange)
    }
}
