//! The pure heart of the state machine: how one transaction changes the
//! object space. No IO here: reads go through [`ObjectRead`], writes come
//! back as [`TxnEffects`], so the semantics (preconditions, generation,
//! finalizers, status subresource) are unit-tested without RocksDB.

use super::types::{EventKind, Op, StoredEvent, Txn};
use rk_api::{resources, ApiError, Reason};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The key of an object: `group_resource/namespace/name` (namespace empty
/// for cluster-scoped kinds). Names never contain '/', so prefixes of this
/// key select one resource, or one resource in one namespace.
pub fn object_key(resource: &str, namespace: &str, name: &str) -> String {
    format!("{resource}/{namespace}/{name}")
}

/// Whether `key` (an [`object_key`]) names a Namespace.
pub fn is_namespace_key(key: &str) -> bool {
    key.starts_with("namespaces/")
}

pub fn resource_prefix(resource: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{resource}/{ns}/"),
        None => format!("{resource}/"),
    }
}

/// Read access to the committed objects.
pub trait ObjectRead {
    fn get(&self, key: &str) -> Result<Option<Value>, String>;

    /// The same, shared: a reader that already holds the object (the
    /// state machine's view of its own apply call) hands out a handle
    /// instead of a copy.
    fn get_shared(&self, key: &str) -> Result<Option<Arc<Value>>, String> {
        Ok(self.get(key)?.map(Arc::new))
    }
}

impl ObjectRead for BTreeMap<String, Value> {
    fn get(&self, key: &str) -> Result<Option<Value>, String> {
        Ok(BTreeMap::get(self, key).cloned())
    }
}

/// What a transaction does to the store.
#[derive(Debug, Default)]
pub struct TxnEffects {
    /// Final value per key: Some = put, None = delete.
    pub writes: BTreeMap<String, Option<Arc<Value>>>,
    pub events: Vec<StoredEvent>,
    /// One per op, shared with `writes` and `events`.
    pub objects: Vec<Arc<Value>>,
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn resource_version(obj: &Value) -> Option<u64> {
    meta_str(obj, "resourceVersion").parse().ok()
}

/// Kubernetes' graceful deletion: a Pod bound to a node and not yet
/// finished is only marked (deletionTimestamp in the future,
/// deletionGracePeriodSeconds) so its node agent can stop the containers
/// and then remove the object with a zero grace period. Unbound and finished
/// Pods, and a zero grace period, delete at once (`None`).
fn pod_grace_period(pod: &Value, requested: Option<i64>) -> Option<i64> {
    let bound = pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
    let finished = matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    if !bound || finished {
        return None;
    }
    let grace = requested
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
        .max(0);
    let already = pod["metadata"]["deletionGracePeriodSeconds"].as_i64();
    match already {
        // A second delete may shorten the grace period, never lengthen it.
        Some(current) if grace >= current => Some(current),
        _ if grace == 0 => None,
        _ => Some(grace),
    }
}

fn mark_pod_terminating(
    fx: &mut TxnEffects,
    key: String,
    rv: &Value,
    now: &str,
    old: Arc<Value>,
    grace: i64,
) -> Arc<Value> {
    let mut obj = Value::clone(&old);
    let unchanged = obj["metadata"]["deletionGracePeriodSeconds"].as_i64() == Some(grace);
    if !unchanged {
        let deadline = now
            .parse::<k8s_openapi::jiff::Timestamp>()
            .ok()
            .and_then(|t| {
                t.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(grace))
                    .ok()
            })
            .map(|t| t.to_string())
            .unwrap_or_else(|| now.to_string());
        set_meta(&mut obj, "deletionTimestamp", json!(deadline));
        set_meta(&mut obj, "deletionGracePeriodSeconds", json!(grace));
    }
    set_meta(&mut obj, "resourceVersion", rv.clone());
    record(fx, key, EventKind::Modified, "pods", obj, Some(old))
}

fn set_meta(obj: &mut Value, field: &str, value: Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if value.is_null() {
            meta.remove(field);
        } else {
            meta.insert(field.to_string(), value);
        }
    }
}

/// `deletionGracePeriodSeconds`, 0 when unset.
fn deletion_grace(obj: &Value) -> i64 {
    obj["metadata"]["deletionGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(0)
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Everything that keeps a deleted object in place: its finalizers, and
/// for a Namespace also `spec.finalizers` (the namespace controller
/// empties the namespace, then clears them).
fn blocking_finalizers(obj: &Value) -> usize {
    let ns_fins = if obj.get("kind").and_then(Value::as_str) == Some("Namespace") {
        obj.get("spec")
            .and_then(|s| s.get("finalizers"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    } else {
        0
    };
    finalizers(obj).len() + ns_fins
}

/// Applies `txn` at `revision`. The outer error is a storage failure (the
/// replica must stop); the inner one is the transaction's own outcome.
pub fn apply_txn(
    read: &dyn ObjectRead,
    revision: u64,
    txn: Txn,
) -> Result<Result<TxnEffects, ApiError>, String> {
    let mut fx = TxnEffects::default();
    let Txn { now, ops } = txn;
    for op in ops {
        match apply_op(read, &mut fx, revision, &now, op)? {
            Ok(obj) => fx.objects.push(obj),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(fx))
}

/// The object at `key` as the transaction sees it: its own writes first.
/// Shared, so a check that only reads (a namespace, an existence test)
/// copies nothing; an op that changes the object copies it.
fn lookup(read: &dyn ObjectRead, fx: &TxnEffects, key: &str) -> Result<Option<Arc<Value>>, String> {
    match fx.writes.get(key) {
        Some(v) => Ok(v.clone()),
        None => read.get_shared(key),
    }
}

fn record(
    fx: &mut TxnEffects,
    key: String,
    kind: EventKind,
    resource: &str,
    obj: Value,
    prev: Option<Arc<Value>>,
) -> Arc<Value> {
    let obj = Arc::new(obj);
    fx.writes.insert(
        key,
        if kind == EventKind::Deleted {
            None
        } else {
            Some(obj.clone())
        },
    );
    // Several ops of one transaction on the same object collapse into the
    // last event a watcher needs to see.
    fx.events.push(StoredEvent {
        kind,
        resource: resource.to_string(),
        object: obj.clone(),
        prev,
    });
    obj
}

/// Creates `object` (taken as is) at `rv`.
fn apply_create(
    read: &dyn ObjectRead,
    fx: &mut TxnEffects,
    rv: Value,
    resource: &str,
    mut obj: Value,
) -> Result<Result<Arc<Value>, ApiError>, String> {
    let ns = meta_str(&obj, "namespace").to_string();
    let name = meta_str(&obj, "name").to_string();
    if name.is_empty() {
        return Ok(Err(ApiError::new(
            Reason::Invalid,
            "metadata.name: Required value",
        )));
    }
    if !ns.is_empty() {
        let ns_key = object_key("namespaces", "", &ns);
        match lookup(read, fx, &ns_key)? {
            None => {
                return Ok(Err(ApiError::not_found("namespaces", &ns)));
            }
            Some(nsobj) if !meta_str(&nsobj, "deletionTimestamp").is_empty() => {
                return Ok(Err(ApiError::new(
                    Reason::Forbidden,
                    format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                        resource, name, ns
                    ),
                )));
            }
            Some(_) => {}
        }
    }
    let key = object_key(resource, &ns, &name);
    if lookup(read, fx, &key)?.is_some() {
        return Ok(Err(ApiError::already_exists(resource, &name)));
    }
    set_meta(&mut obj, "resourceVersion", rv);
    set_meta(&mut obj, "generation", json!(1));
    Ok(Ok(record(fx, key, EventKind::Added, resource, obj, None)))
}

fn apply_op(
    read: &dyn ObjectRead,
    fx: &mut TxnEffects,
    revision: u64,
    now: &str,
    op: Op,
) -> Result<Result<Arc<Value>, ApiError>, String> {
    let rv = json!(revision.to_string());
    // A create takes its object as is, without a copy; the other ops are
    // read in place.
    let op = match op {
        Op::Create { resource, object } => return apply_create(read, fx, rv, &resource, object),
        other => other,
    };
    match &op {
        Op::Create { .. } => unreachable!("handled above"),
        Op::Update {
            resource,
            object,
            expected_rv,
            status,
        } => {
            let ns = meta_str(object, "namespace").to_string();
            let name = meta_str(object, "name").to_string();
            let key = object_key(resource, &ns, &name);
            let Some(old) = lookup(read, fx, &key)? else {
                return Ok(Err(ApiError::not_found(resource, &name)));
            };
            if let Some(want) = expected_rv {
                if resource_version(&old) != Some(*want) {
                    return Ok(Err(ApiError::conflict(
                        resource,
                        &name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    )));
                }
            }
            let has_status = resources::lookup(resource).is_some_and(|k| k.has_status);
            let mut new = if *status {
                let mut n = Value::clone(&old);
                match object.get("status") {
                    Some(s) => {
                        if let Some(m) = n.as_object_mut() {
                            m.insert("status".into(), s.clone());
                        }
                    }
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                n
            } else {
                let mut n = object.clone();
                // Fields the server owns survive a main-resource update.
                for f in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    set_meta(
                        &mut n,
                        f,
                        old.get("metadata")
                            .and_then(|m| m.get(f))
                            .cloned()
                            .unwrap_or(Value::Null),
                    );
                }
                if has_status {
                    if let Some(m) = n.as_object_mut() {
                        match old.get("status") {
                            Some(s) => {
                                m.insert("status".into(), s.clone());
                            }
                            None => {
                                m.remove("status");
                            }
                        }
                    }
                }
                if rk_api::validate::spec_changed(&old, &n) {
                    let gen = old
                        .get("metadata")
                        .and_then(|m| m.get("generation"))
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    set_meta(&mut n, "generation", json!(gen + 1));
                }
                n
            };
            set_meta(&mut new, "resourceVersion", rv);
            // The last finalizer removed from an object being deleted ends
            // it; a Pod also needs its node's zero-grace confirmation (or a
            // forced delete), as in Kubernetes.
            if !meta_str(&new, "deletionTimestamp").is_empty()
                && blocking_finalizers(&new) == 0
                && (resource != "pods" || deletion_grace(&new) == 0)
            {
                return Ok(Ok(record(fx, key, EventKind::Deleted, resource, new, Some(old))));
            }
            Ok(Ok(record(fx, key, EventKind::Modified, resource, new, Some(old))))
        }
        Op::Delete {
            resource,
            namespace,
            name,
            expected_rv,
            expected_uid,
            propagation,
            grace_period_seconds,
        } => {
            let key = object_key(resource, namespace, name);
            let Some(old) = lookup(read, fx, &key)? else {
                return Ok(Err(ApiError::not_found(resource, name)));
            };
            if let Some(want) = expected_uid {
                if meta_str(&old, "uid") != want {
                    return Ok(Err(ApiError::conflict(
                        resource,
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {want}, UID in object meta: {}",
                            meta_str(&old, "uid")
                        ),
                    )));
                }
            }
            if let Some(want) = expected_rv {
                if resource_version(&old) != Some(*want) {
                    return Ok(Err(ApiError::conflict(
                        resource,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                            meta_str(&old, "resourceVersion")
                        ),
                    )));
                }
            }
            if resource == "pods" {
                if let Some(grace) = pod_grace_period(&old, *grace_period_seconds) {
                    return Ok(Ok(mark_pod_terminating(fx, key, &rv, now, old, grace)));
                }
            }
            let mut fins = finalizers(&old);
            let extra = match propagation.as_deref() {
                Some("Foreground") => Some("foregroundDeletion"),
                Some("Orphan") => Some("orphan"),
                _ => None,
            };
            if let Some(f) = extra {
                if !fins.iter().any(|x| x == f) {
                    fins.push(f.to_string());
                }
            }
            let mut obj = Value::clone(&old);
            let namespace_content =
                resource == "namespaces" && blocking_finalizers(&old) > finalizers(&old).len();
            if fins.is_empty() && !namespace_content {
                set_meta(&mut obj, "resourceVersion", rv);
                return Ok(Ok(record(fx, key, EventKind::Deleted, resource, obj, Some(old))));
            }
            // Finalizers present: the object stays, marked, until the
            // controllers that own the finalizers remove them. A Pod here
            // has had its zero-grace delete (its containers are gone, or
            // its node is), so removing the last finalizer will end it.
            if meta_str(&obj, "deletionTimestamp").is_empty() || deletion_grace(&obj) != 0 {
                set_meta(&mut obj, "deletionTimestamp", json!(now));
                set_meta(&mut obj, "deletionGracePeriodSeconds", json!(0));
            }
            if namespace_content {
                if let Some(m) = obj.as_object_mut() {
                    m.insert("status".into(), json!({"phase": "Terminating"}));
                }
            }
            if !fins.is_empty() {
                set_meta(&mut obj, "finalizers", json!(fins));
            }
            // Deleting again what is already marked changes nothing, and
            // costs no revision.
            if obj == *old {
                return Ok(Ok(Arc::new(obj)));
            }
            set_meta(&mut obj, "resourceVersion", rv);
            Ok(Ok(record(fx, key, EventKind::Modified, resource, obj, Some(old))))
        }
        Op::CheckExists {
            resource,
            namespace,
            name,
            expected_rv,
        } => {
            let key = object_key(resource, namespace, name);
            let Some(old) = lookup(read, fx, &key)? else {
                return Ok(Err(ApiError::not_found(resource, name)));
            };
            if let Some(want) = expected_rv {
                if resource_version(&old) != Some(*want) {
                    return Ok(Err(ApiError::conflict(
                        resource,
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    )));
                }
            }
            Ok(Ok(Arc::new(Value::Null)))
        }
        Op::Bind {
            namespace,
            name,
            expected_rv,
            node,
        } => {
            let key = object_key("pods", namespace, name);
            let Some(old) = lookup(read, fx, &key)? else {
                return Ok(Err(ApiError::not_found("pods", name)));
            };
            if resource_version(&old) != Some(*expected_rv) {
                return Ok(Err(ApiError::conflict(
                    "pods",
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                )));
            }
            if !old["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
                return Ok(Err(ApiError::conflict(
                    "pods",
                    name,
                    &format!(
                        "pod {name} is already assigned to node {}",
                        old["spec"]["nodeName"]
                    ),
                )));
            }
            let mut new = Value::clone(&old);
            new["spec"]["nodeName"] = json!(node);
            let condition = json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now});
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            let conditions = &mut new["status"]["conditions"];
            match conditions.as_array_mut() {
                Some(list) => {
                    list.retain(|c| c["type"] != "PodScheduled");
                    list.push(condition);
                }
                None => *conditions = json!([condition]),
            }
            set_meta(&mut new, "resourceVersion", rv);
            Ok(Ok(record(fx, key, EventKind::Modified, "pods", new, Some(old))))
        }
        Op::CheckAbsent {
            resource,
            namespace,
            name,
        } => {
            let key = object_key(resource, namespace, name);
            if lookup(read, fx, &key)?.is_some() {
                return Ok(Err(ApiError::already_exists(resource, name)));
            }
            Ok(Ok(Arc::new(Value::Null)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, data: &str) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":"default","uid":"u1"},"data":{"k":data}})
    }

    fn world() -> BTreeMap<String, Value> {
        let mut w = BTreeMap::new();
        w.insert(
            object_key("namespaces", "", "default"),
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default","resourceVersion":"1"}}),
        );
        w
    }

    fn commit(w: &mut BTreeMap<String, Value>, fx: &TxnEffects) {
        for (k, v) in &fx.writes {
            match v {
                Some(v) => {
                    w.insert(k.clone(), (**v).clone());
                }
                None => {
                    w.remove(k);
                }
            }
        }
    }

    fn txn(ops: Vec<Op>) -> Txn {
        Txn {
            now: "2026-11-27T00:00:00Z".into(),
            ops,
        }
    }

    fn create(o: Value) -> Op {
        Op::Create {
            resource: "configmaps".into(),
            object: o,
        }
    }

    #[test]
    fn create_sets_revision_and_refuses_duplicates() {
        let mut w = world();
        let fx = apply_txn(&w, 5, txn(vec![create(cm("a", "1"))]))
            .unwrap()
            .unwrap();
        assert_eq!(meta_str(&fx.objects[0], "resourceVersion"), "5");
        assert_eq!(fx.events.len(), 1);
        assert_eq!(fx.events[0].kind, EventKind::Added);
        commit(&mut w, &fx);
        let err = apply_txn(&w, 6, txn(vec![create(cm("a", "2"))]))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.reason, Reason::AlreadyExists);
    }

    #[test]
    fn create_in_missing_namespace_is_not_found() {
        let w = world();
        let mut o = cm("a", "1");
        o["metadata"]["namespace"] = json!("nope");
        let err = apply_txn(&w, 2, txn(vec![create(o)])).unwrap().unwrap_err();
        assert_eq!(err.reason, Reason::NotFound);
    }

    #[test]
    fn stale_update_conflicts_and_fresh_one_lands() {
        let mut w = world();
        let fx = apply_txn(&w, 2, txn(vec![create(cm("a", "1"))]))
            .unwrap()
            .unwrap();
        commit(&mut w, &fx);
        let upd = |rv| Op::Update {
            resource: "configmaps".into(),
            object: cm("a", "2"),
            expected_rv: Some(rv),
            status: false,
        };
        let err = apply_txn(&w, 3, txn(vec![upd(1)])).unwrap().unwrap_err();
        assert_eq!(err.reason, Reason::Conflict);
        let fx = apply_txn(&w, 3, txn(vec![upd(2)])).unwrap().unwrap();
        assert_eq!(fx.objects[0]["data"]["k"], "2");
        assert_eq!(meta_str(&fx.objects[0], "resourceVersion"), "3");
        assert_eq!(fx.events[0].prev.as_ref().unwrap()["data"]["k"], "1");
    }

    #[test]
    fn failed_txn_has_no_effects() {
        let mut w = world();
        let fx = apply_txn(&w, 2, txn(vec![create(cm("a", "1"))]))
            .unwrap()
            .unwrap();
        commit(&mut w, &fx);
        // The second op fails, so the first must not be applied either.
        let r = apply_txn(&w, 3, txn(vec![create(cm("b", "1")), create(cm("a", "x"))])).unwrap();
        assert_eq!(r.unwrap_err().reason, Reason::AlreadyExists);
        assert!(!w.contains_key(&object_key("configmaps", "default", "b")));
    }

    #[test]
    fn delete_with_finalizers_only_marks_then_last_finalizer_removes() {
        let mut w = world();
        let mut o = cm("a", "1");
        o["metadata"]["finalizers"] = json!(["example.com/hold"]);
        let fx = apply_txn(&w, 2, txn(vec![create(o)])).unwrap().unwrap();
        commit(&mut w, &fx);
        let del = Op::Delete {
            resource: "configmaps".into(),
            namespace: "default".into(),
            name: "a".into(),
            expected_rv: None,
            expected_uid: None,
            propagation: None,
            grace_period_seconds: None,
        };
        let fx = apply_txn(&w, 3, txn(vec![del])).unwrap().unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Modified);
        assert_eq!(
            meta_str(&fx.objects[0], "deletionTimestamp"),
            "2026-11-27T00:00:00Z"
        );
        commit(&mut w, &fx);
        let mut cleared = (*fx.objects[0]).clone();
        cleared["metadata"]["finalizers"] = json!([]);
        let upd = Op::Update {
            resource: "configmaps".into(),
            object: cleared,
            expected_rv: Some(3),
            status: false,
        };
        let fx = apply_txn(&w, 4, txn(vec![upd])).unwrap().unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Deleted);
        commit(&mut w, &fx);
        assert!(!w.contains_key(&object_key("configmaps", "default", "a")));
    }

    #[test]
    fn a_namespace_with_spec_finalizers_terminates_until_they_are_cleared() {
        let mut w = world();
        let ns = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"tmp"},"spec":{"finalizers":["kubernetes"]}});
        let fx = apply_txn(
            &w,
            2,
            txn(vec![Op::Create {
                resource: "namespaces".into(),
                object: ns,
            }]),
        )
        .unwrap()
        .unwrap();
        commit(&mut w, &fx);
        let del = Op::Delete {
            resource: "namespaces".into(),
            namespace: String::new(),
            name: "tmp".into(),
            expected_rv: None,
            expected_uid: None,
            propagation: None,
            grace_period_seconds: None,
        };
        let fx = apply_txn(&w, 3, txn(vec![del])).unwrap().unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Modified);
        assert_eq!(fx.objects[0]["status"]["phase"], "Terminating");
        commit(&mut w, &fx);
        // New content is refused while it terminates.
        let mut o = cm("late", "1");
        o["metadata"]["namespace"] = json!("tmp");
        let err = apply_txn(&w, 4, txn(vec![create(o)])).unwrap().unwrap_err();
        assert_eq!(err.reason, Reason::Forbidden);
        let mut cleared = (*fx.objects[0]).clone();
        cleared["spec"]["finalizers"] = json!([]);
        let upd = Op::Update {
            resource: "namespaces".into(),
            object: cleared,
            expected_rv: None,
            status: false,
        };
        let fx = apply_txn(&w, 4, txn(vec![upd])).unwrap().unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Deleted);
    }

    #[test]
    fn a_bound_pod_is_marked_for_its_grace_period_then_removed_by_a_zero_grace_delete() {
        let mut w = world();
        let pod = |name: &str, node: &str| {
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":name,"namespace":"default"},
                   "spec":{"nodeName":node,"terminationGracePeriodSeconds":10,"containers":[{"name":"c","image":"busybox"}]}})
        };
        let create_pod = |o: Value| Op::Create {
            resource: "pods".into(),
            object: o,
        };
        let fx = apply_txn(
            &w,
            2,
            txn(vec![
                create_pod(pod("bound", "n1")),
                create_pod(pod("unbound", "")),
            ]),
        )
        .unwrap()
        .unwrap();
        commit(&mut w, &fx);
        let del = |name: &str, grace: Option<i64>| Op::Delete {
            resource: "pods".into(),
            namespace: "default".into(),
            name: name.into(),
            expected_rv: None,
            expected_uid: None,
            propagation: None,
            grace_period_seconds: grace,
        };
        let fx = apply_txn(&w, 3, txn(vec![del("bound", None)])).unwrap().unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Modified);
        assert_eq!(
            meta_str(&fx.objects[0], "deletionTimestamp"),
            "2026-11-27T00:00:10Z"
        );
        assert_eq!(fx.objects[0]["metadata"]["deletionGracePeriodSeconds"], 10);
        commit(&mut w, &fx);
        // A longer grace period does not extend it.
        let fx = apply_txn(&w, 4, txn(vec![del("bound", Some(60))]))
            .unwrap()
            .unwrap();
        assert_eq!(
            meta_str(&fx.objects[0], "deletionTimestamp"),
            "2026-11-27T00:00:10Z"
        );
        let fx = apply_txn(&w, 4, txn(vec![del("bound", Some(0))]))
            .unwrap()
            .unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Deleted);
        let fx = apply_txn(&w, 4, txn(vec![del("unbound", None)]))
            .unwrap()
            .unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Deleted);
    }

    #[test]
    fn a_terminating_pod_with_a_finalizer_ends_only_after_its_node_confirms_and_the_finalizer_goes() {
        let mut w = world();
        let pod = json!({"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":"p","namespace":"default","finalizers":["batch.kubernetes.io/job-tracking"]},
            "spec":{"nodeName":"n1","terminationGracePeriodSeconds":10,"containers":[{"name":"c","image":"busybox"}]}});
        let fx = apply_txn(
            &w,
            2,
            txn(vec![Op::Create {
                resource: "pods".into(),
                object: pod,
            }]),
        )
        .unwrap()
        .unwrap();
        commit(&mut w, &fx);
        let del = |grace: Option<i64>| Op::Delete {
            resource: "pods".into(),
            namespace: "default".into(),
            name: "p".into(),
            expected_rv: None,
            expected_uid: None,
            propagation: None,
            grace_period_seconds: grace,
        };
        let release = |obj: &Value, rv: u64| {
            let mut o = obj.clone();
            o["metadata"]["finalizers"] = json!([]);
            Op::Update {
                resource: "pods".into(),
                object: o,
                expected_rv: Some(rv),
                status: false,
            }
        };
        // Graceful delete: marked for 10 s.
        let fx = apply_txn(&w, 3, txn(vec![del(None)])).unwrap().unwrap();
        assert_eq!(fx.objects[0]["metadata"]["deletionGracePeriodSeconds"], 10);
        commit(&mut w, &fx);
        // Releasing the finalizer while the node still stops containers
        // leaves the Pod in place.
        let fx = apply_txn(&w, 4, txn(vec![release(&fx.objects[0], 3)]))
            .unwrap()
            .unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Modified);
        // Finalizer kept, node confirms: still there, now at grace 0.
        let fx = apply_txn(&w, 4, txn(vec![del(Some(0))])).unwrap().unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Modified);
        assert_eq!(fx.objects[0]["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(
            meta_str(&fx.objects[0], "deletionTimestamp"),
            "2026-11-27T00:00:00Z"
        );
        commit(&mut w, &fx);
        // Then the finalizer's owner releases it, which ends the Pod.
        let fx = apply_txn(&w, 5, txn(vec![release(&fx.objects[0], 4)]))
            .unwrap()
            .unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Deleted);
    }

    #[test]
    fn bind_sets_the_node_once_and_only_on_the_version_seen() {
        let mut w = world();
        let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},
            "spec":{"containers":[{"name":"c","image":"busybox"}]},
            "status":{"conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable"}]}});
        let fx = apply_txn(
            &w,
            2,
            txn(vec![Op::Create {
                resource: "pods".into(),
                object: pod,
            }]),
        )
        .unwrap()
        .unwrap();
        commit(&mut w, &fx);
        let bind = |rv: u64, node: &str| Op::Bind {
            namespace: "default".into(),
            name: "p".into(),
            expected_rv: rv,
            node: node.into(),
        };
        let err = apply_txn(&w, 3, txn(vec![bind(1, "n1")])).unwrap().unwrap_err();
        assert_eq!(err.reason, Reason::Conflict, "a stale version is refused");
        let fx = apply_txn(&w, 3, txn(vec![bind(2, "n1")])).unwrap().unwrap();
        let bound = &fx.objects[0];
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert_eq!(
            bound["status"]["conditions"],
            json!([{"type":"PodScheduled","status":"True","lastTransitionTime":"2026-11-27T00:00:00Z"}])
        );
        assert_eq!(meta_str(bound, "resourceVersion"), "3");
        commit(&mut w, &fx);
        let err = apply_txn(&w, 4, txn(vec![bind(3, "n2")])).unwrap().unwrap_err();
        assert_eq!(err.reason, Reason::Conflict, "a bound pod is never rebound");
    }

    #[test]
    fn delete_preconditions() {
        let mut w = world();
        let fx = apply_txn(&w, 2, txn(vec![create(cm("a", "1"))]))
            .unwrap()
            .unwrap();
        commit(&mut w, &fx);
        let del = |rv: Option<u64>, uid: Option<&str>| Op::Delete {
            resource: "configmaps".into(),
            namespace: "default".into(),
            name: "a".into(),
            expected_rv: rv,
            expected_uid: uid.map(str::to_string),
            propagation: None,
            grace_period_seconds: None,
        };
        assert_eq!(
            apply_txn(&w, 3, txn(vec![del(Some(9), None)]))
                .unwrap()
                .unwrap_err()
                .reason,
            Reason::Conflict
        );
        assert_eq!(
            apply_txn(&w, 3, txn(vec![del(None, Some("other"))]))
                .unwrap()
                .unwrap_err()
                .reason,
            Reason::Conflict
        );
        let fx = apply_txn(&w, 3, txn(vec![del(Some(2), Some("u1"))]))
            .unwrap()
            .unwrap();
        assert_eq!(fx.events[0].kind, EventKind::Deleted);
        assert_eq!(meta_str(&fx.objects[0], "resourceVersion"), "3");
    }

    #[test]
    fn status_update_keeps_spec_and_generation_spec_update_bumps_it() {
        let mut w = world();
        let dep = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"default"},
            "spec":{"replicas":1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}});
        let fx = apply_txn(
            &w,
            2,
            txn(vec![Op::Create {
                resource: "deployments.apps".into(),
                object: dep.clone(),
            }]),
        )
        .unwrap()
        .unwrap();
        commit(&mut w, &fx);
        let mut st = dep.clone();
        st["spec"]["replicas"] = json!(7);
        st["status"] = json!({"replicas": 1});
        let fx = apply_txn(
            &w,
            3,
            txn(vec![Op::Update {
                resource: "deployments.apps".into(),
                object: st,
                expected_rv: None,
                status: true,
            }]),
        )
        .unwrap()
        .unwrap();
        let o = &fx.objects[0];
        assert_eq!(o["spec"]["replicas"], 1, "status update must not touch spec");
        assert_eq!(o["status"]["replicas"], 1);
        assert_eq!(o["metadata"]["generation"], 1);
        commit(&mut w, &fx);
        let mut sp = dep.clone();
        sp["spec"]["replicas"] = json!(3);
        sp["status"] = json!({"replicas": 99});
        let fx = apply_txn(
            &w,
            4,
            txn(vec![Op::Update {
                resource: "deployments.apps".into(),
                object: sp,
                expected_rv: None,
                status: false,
            }]),
        )
        .unwrap()
        .unwrap();
        let o = &fx.objects[0];
        assert_eq!(o["spec"]["replicas"], 3);
        assert_eq!(o["status"]["replicas"], 1, "main update must not touch status");
        assert_eq!(o["metadata"]["generation"], 2);
    }
}
