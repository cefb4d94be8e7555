//! Small facts about pods and owner references that several controllers need.
//!
//! Kubernetes controllers agree on a few definitions: a pod is *active* while
//! it is neither terminal nor being deleted, *ready* when its `Ready`
//! condition is `True`, and *available* once it has been ready for
//! `minReadySeconds`. An object's *controller* is the owner reference marked
//! `controller: true`. Keeping these definitions in one place keeps the
//! ReplicaSet, Deployment and Job decisions consistent with each other.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

/// The owner reference marked as the object's managing controller, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether the object's controller is the object with this uid.
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    controller_ref(meta).is_some_and(|r| r.uid == owner_uid)
}

/// An owner reference that makes `owner` the controller of a dependent, with
/// `blockOwnerDeletion` so foreground deletion of the owner waits for it.
pub fn controller_owner_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether the object has a deletion timestamp (it is going away, possibly
/// waiting on finalizers).
pub fn is_being_deleted(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// The pod's phase, `""` when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Whether the pod finished: phase `Succeeded` or `Failed`.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether the pod counts toward a controller's replicas: not terminal and
/// not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && !is_being_deleted(&pod.metadata)
}

/// Whether the pod has been bound to a node.
pub fn is_scheduled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// The pod's `Ready` condition, if reported.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod became ready, if it is ready and the transition time is
/// known.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Whether the pod has been ready for at least `min_ready_seconds` at `now`.
///
/// With `min_ready_seconds` 0 every ready pod is available. A ready pod
/// without a transition time is treated as available: the time is only
/// missing when something other than a kubelet wrote the condition, and
/// holding such a pod back forever would stall rollouts.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match ready_since(pod) {
        Some(since) => since.as_second().saturating_add(i64::from(min_ready_seconds)) <= now.as_second(),
        None => true,
    }
}

/// When a ready pod that is not yet available becomes available, so a
/// controller knows when to look again.
pub fn available_at(pod: &Pod, min_ready_seconds: i32) -> Option<Timestamp> {
    if min_ready_seconds <= 0 || !is_ready(pod) {
        return None;
    }
    let since = ready_since(pod)?;
    Timestamp::from_second(since.as_second().saturating_add(i64::from(min_ready_seconds))).ok()
}

/// The object's creation time, if set.
pub fn creation_time(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.creation_timestamp.as_ref().map(|t| t.0)
}

/// The sum of restart counts over the pod's init and regular containers.
pub fn restart_count(pod: &Pod) -> i64 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .map(|c| i64::from(c.restart_count.max(0)))
        .sum()
}

/// Seconds from the epoch as a `Time`, saturating at jiff's supported range.
pub fn time_from_second(second: i64) -> Time {
    let clamped = second.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Time(Timestamp::from_second(clamped).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Orders active pods so that the ones cheapest to lose come first.
///
/// This is the order in which ReplicaSets and Jobs delete surplus pods:
/// unscheduled before scheduled (they did no work yet), then by phase
/// (`Pending` before `Unknown` before `Running`), not-ready before ready, and
/// finally newest first, since a young pod has warmed fewer caches. Names
/// break the remaining ties so the choice is deterministic.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    fn phase_rank(pod: &Pod) -> u8 {
        match phase(pod) {
            "Pending" | "" => 0,
            "Unknown" => 1,
            "Running" => 2,
            _ => 3,
        }
    }
    is_scheduled(a)
        .cmp(&is_scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        // Newer first: a missing timestamp sorts as the newest.
        .then_with(
            || match (creation_time(&a.metadata), creation_time(&b.metadata)) {
                (Some(x), Some(y)) => y.cmp(&x),
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
        )
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The pods a controller claims, and the ownership changes that claiming
/// requires (see [`claim_pods`]).
#[derive(Debug, Default)]
pub struct Claimed<'a> {
    /// The owner's pods after adoption and release: the ones it controls and
    /// still selects, plus the orphans it adopts.
    pub ours: Vec<&'a Pod>,
    /// Names of matching orphan pods to adopt.
    pub adopt: Vec<String>,
    /// Names of controlled pods that no longer match and must be released.
    pub release: Vec<String>,
}

/// Which of `pods` the controller `owner` claims, as Kubernetes'
/// `ClaimPods` decides: pods of its namespace that it controls and that
/// match `selector` are its own; controlled pods that stopped matching are
/// released; matching pods without a controller are adopted unless they or
/// the owner are being deleted (adopting then would only delay garbage
/// collection). Pods of other controllers are never touched. A `None`
/// selector (missing, empty or invalid) matches nothing.
pub fn claim_pods<'a>(
    owner: &ObjectMeta,
    selector: Option<&rk_api::selector::LabelSelector>,
    pods: &'a [Pod],
) -> Claimed<'a> {
    let uid = owner.uid.as_deref().unwrap_or_default();
    let namespace = owner.namespace.as_deref().unwrap_or("default");
    let owner_deleting = is_being_deleted(owner);
    let empty = std::collections::BTreeMap::new();
    let mut out = Claimed::default();
    for pod in pods {
        if pod.metadata.namespace.as_deref().unwrap_or("default") != namespace {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let matches = selector.is_some_and(|s| s.matches(pod.metadata.labels.as_ref().unwrap_or(&empty)));
        match controller_ref(&pod.metadata) {
            Some(r) if !uid.is_empty() && r.uid == uid => {
                if matches {
                    out.ours.push(pod);
                } else {
                    out.release.push(name);
                }
            }
            Some(_) => {}
            None => {
                if matches && !uid.is_empty() && !owner_deleting && !is_being_deleted(&pod.metadata) {
                    out.adopt.push(name);
                    out.ours.push(pod);
                }
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for test objects from JSON, so tests read like manifests.

    use k8s_openapi::jiff::Timestamp;
    use k8s_openapi::serde::de::DeserializeOwned;
    use serde_json::Value;

    /// Deserialize a typed object from a JSON literal, panicking with the
    /// serde error on a malformed fixture.
    pub fn from_json<T: DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("bad fixture: {e}"))
    }

    /// A timestamp `s` seconds after the epoch.
    pub fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
    }

    /// RFC 3339 for `s` seconds after the epoch, as objects carry it.
    pub fn rfc(s: i64) -> String {
        ts(s).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{from_json, rfc, ts};
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: i64) -> Pod {
        from_json(json!({
            "metadata": {"name": name, "creationTimestamp": rfc(created)},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": rfc(100)}
            ]}
        }))
    }

    #[test]
    fn availability_respects_min_ready_seconds() {
        let p = pod("a", "n", "Running", true, 0);
        let cases = [(0, 100, true), (10, 109, false), (10, 110, true), (10, 200, true)];
        for (min_ready, now, want) in cases {
            assert_eq!(is_available(&p, min_ready, ts(now)), want, "{min_ready} {now}");
        }
        assert_eq!(available_at(&p, 10), Some(ts(110)));
        assert!(!is_available(&pod("b", "n", "Running", false, 0), 0, ts(1000)));
    }

    #[test]
    fn deletion_order_prefers_cheap_pods() {
        let mut pods = [
            pod("ready-old", "n", "Running", true, 1),
            pod("ready-new", "n", "Running", true, 5),
            pod("notready", "n", "Running", false, 1),
            pod("pending", "n", "Pending", false, 1),
            pod("unscheduled", "", "Pending", false, 1),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods.iter().filter_map(|p| p.metadata.name.as_deref()).collect();
        assert_eq!(
            names,
            ["unscheduled", "pending", "notready", "ready-new", "ready-old"]
        );
    }

    #[test]
    fn controller_refs() {
        let meta: ObjectMeta = from_json(json!({"ownerReferences": [
            {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u2", "controller": true}
        ]}));
        assert_eq!(controller_ref(&meta).map(|r| r.uid.as_str()), Some("u2"));
        assert!(is_controlled_by(&meta, "u2"));
        assert!(!is_controlled_by(&meta, "u1"));
    }
}
