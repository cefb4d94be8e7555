//! ReplicaSet decisions: keep `spec.replicas` pods running.
//!
//! A ReplicaSet *owns* the pods whose controller owner reference carries its
//! uid. Each reconcile it looks at the pods of its namespace that match its
//! selector or that it owns, and decides:
//!
//! - **adopt** matching pods that have no controller yet, and **release**
//!   owned pods whose labels no longer match (so a relabelled pod leaves the
//!   set instead of being counted or deleted);
//! - **create** pods from the template when fewer than `replicas` are
//!   active, or **delete** the surplus, choosing the pods whose loss costs
//!   least ([`crate::podutil::deletion_order`]);
//! - the **status** it observed: replicas, ready, available (ready for
//!   `minReadySeconds` at `now`), fully labelled.
//!
//! Pods being deleted or finished never count as active, so a replacement
//! is created as soon as a pod starts terminating.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use rk_api::selector::LabelSelector;

use crate::podutil::{
    available_at, controller_owner_ref, controller_ref, deletion_order, is_active, is_available,
    is_being_deleted, is_ready,
};

/// The label Deployments add to their ReplicaSets' pods to tell template
/// revisions apart.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// At most this many pods are created or deleted in one reconcile, as in
/// Kubernetes, so a huge scale change proceeds in observable steps.
pub const BURST_REPLICAS: usize = 500;

/// What a ReplicaSet reconcile should do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaSetPlan {
    /// How many pods to create from the template ([`pod_from_template`]).
    pub create: usize,
    /// Names of pods to delete, most expendable first.
    pub delete: Vec<String>,
    /// Names of matching orphan pods to adopt (add the controller owner
    /// reference).
    pub adopt: Vec<String>,
    /// Names of owned pods that no longer match and must be released
    /// (remove the owner reference).
    pub release: Vec<String>,
    /// The status observed before acting.
    pub status: ReplicaSetStatus,
    /// When a ready pod becomes available (after `minReadySeconds`), so the
    /// caller can reconcile again then; `None` if nothing is waiting.
    pub recheck_at: Option<Timestamp>,
}

/// The ReplicaSet's selector; a missing, empty or invalid one selects
/// nothing, so a broken object can never grab every pod in the namespace.
pub(crate) fn selector_of(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Option<LabelSelector> {
    LabelSelector::from_k8s(sel).ok().filter(|s| !s.is_empty())
}

fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// Decide one reconcile of `rs` given `pods`: the pods of its namespace that
/// match its selector or that it owns (others are ignored).
pub fn plan(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> ReplicaSetPlan {
    let spec = &rs.spec;
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let namespace = rs.metadata.namespace.as_deref().unwrap_or("default");
    let selector = selector_of(&spec.selector);
    let rs_deleting = is_being_deleted(&rs.metadata);
    let mut out = ReplicaSetPlan::default();

    // Claim: decide which pods are ours.
    let mut ours: Vec<&Pod> = Vec::new();
    for pod in pods {
        if pod.metadata.namespace.as_deref().unwrap_or("default") != namespace {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let matches = selector
            .as_ref()
            .is_some_and(|s| s.matches(pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())));
        match controller_ref(&pod.metadata) {
            Some(owner) if !uid.is_empty() && owner.uid == uid => {
                if matches {
                    ours.push(pod);
                } else {
                    out.release.push(name);
                }
            }
            // Another controller's pod is never touched.
            Some(_) => {}
            None => {
                // Pods already going away, and anything while the
                // ReplicaSet itself is being deleted, are left alone:
                // adopting them would only delay garbage collection.
                if matches && !uid.is_empty() && !rs_deleting && !is_being_deleted(&pod.metadata) {
                    out.adopt.push(name);
                    ours.push(pod);
                }
            }
        }
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    out.status = status(rs, &ours, now);
    out.recheck_at = ours
        .iter()
        .filter(|p| is_active(p) && !is_available(p, min_ready, now))
        .filter_map(|p| available_at(p, min_ready))
        .min();

    if rs_deleting {
        return out;
    }
    let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
    let mut active: Vec<&Pod> = ours.iter().copied().filter(|p| is_active(p)).collect();
    if active.len() < want {
        out.create = (want - active.len()).min(BURST_REPLICAS);
    } else if active.len() > want {
        let surplus = (active.len() - want).min(BURST_REPLICAS);
        active.sort_by(|a, b| deletion_order(a, b));
        out.delete = active
            .iter()
            .take(surplus)
            .filter_map(|p| p.metadata.name.clone())
            .collect();
    }
    out
}

/// The status `rs` should report for the pods it owns.
fn status(rs: &ReplicaSet, ours: &[&Pod], now: Timestamp) -> ReplicaSetStatus {
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    let template_labels = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .map(labels)
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| -> i32 {
        i32::try_from(ours.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let fully_labeled = |p: &Pod| {
        let l = p.metadata.labels.as_ref();
        template_labels
            .iter()
            .all(|(k, v)| l.and_then(|l| l.get(k)) == Some(v))
    };
    let previous = rs.status.as_ref();
    ReplicaSetStatus {
        replicas: count(&|p| is_active(p)),
        fully_labeled_replicas: Some(count(&|p| is_active(p) && fully_labeled(p))),
        ready_replicas: Some(count(&|p| is_active(p) && is_ready(p))),
        available_replicas: Some(count(&|p| is_active(p) && is_available(p, min_ready, now))),
        terminating_replicas: Some(count(&|p| {
            is_being_deleted(&p.metadata) && !crate::podutil::is_terminal(p)
        })),
        observed_generation: rs.metadata.generation,
        // Conditions (ReplicaFailure) describe create/delete errors, which
        // only the caller sees; keep what is there.
        conditions: previous.and_then(|s| s.conditions.clone()),
    }
}

/// A new pod for `owner`, from its template: the template's labels and
/// annotations (plus `pod-template-hash` from the ReplicaSet when the
/// template lacks it), `generateName` `<rs-name>-`, the ReplicaSet's
/// namespace, and a controller owner reference that blocks the owner's
/// deletion.
pub fn pod_from_template(owner: &ReplicaSet) -> Pod {
    let rs_name = owner.metadata.name.clone().unwrap_or_default();
    let template = owner.spec.template.clone().unwrap_or_default();
    let mut meta = template.metadata.unwrap_or_default();
    let mut pod_labels = meta.labels.take().unwrap_or_default();
    if let Some(hash) = owner
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
    {
        pod_labels
            .entry(POD_TEMPLATE_HASH_LABEL.to_string())
            .or_insert_with(|| hash.clone());
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{rs_name}-")),
            namespace: owner.metadata.namespace.clone(),
            labels: Some(pod_labels).filter(|l| !l.is_empty()),
            annotations: meta.annotations.take(),
            finalizers: meta.finalizers.take(),
            owner_references: Some(vec![controller_owner_ref(
                "apps/v1",
                "ReplicaSet",
                &owner.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::testutil::{from_json, rfc, ts};
    use serde_json::{json, Value};

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        from_json(json!({
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 3,
                         "labels": {"app": "web", "pod-template-hash": "abc"}},
            "spec": {
                "replicas": replicas,
                "minReadySeconds": min_ready,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": "fe"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }
            }
        }))
    }

    /// A pod of the ReplicaSet: `state` is one of unscheduled, pending,
    /// notready, ready; `owner` is "ours", "other" or "none".
    fn pod(name: &str, state: &str, created: i64, owner: &str) -> Pod {
        let (node, phase, ready) = match state {
            "unscheduled" => ("", "Pending", false),
            "pending" => ("n1", "Pending", false),
            "notready" => ("n1", "Running", false),
            "ready" => ("n1", "Running", true),
            "succeeded" => ("n1", "Succeeded", false),
            other => panic!("state {other}"),
        };
        let owners = match owner {
            "ours" => json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                              "uid": "rs-uid", "controller": true}]),
            "other" => json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x",
                               "uid": "other-uid", "controller": true}]),
            _ => json!([]),
        };
        from_json(json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": rfc(created),
                         "labels": {"app": "web", "tier": "fe"}, "ownerReferences": owners},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeName": node},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": rfc(100)}
            ]}
        }))
    }

    fn patch(mut p: Pod, f: impl FnOnce(&mut Pod)) -> Pod {
        f(&mut p);
        p
    }

    fn names(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn scale_up_and_down() {
        // (name, replicas, pods, pods to create, pods to delete)
        type Case = (&'static str, i32, Vec<Pod>, usize, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            ("empty", 3, vec![], 3, vec![]),
            ("enough", 1, vec![pod("a", "ready", 1, "ours")], 0, vec![]),
            ("one short", 2, vec![pod("a", "ready", 1, "ours")], 1, vec![]),
            (
                "terminating pods do not count",
                1,
                vec![patch(pod("a", "ready", 1, "ours"), |p| {
                    p.metadata.deletion_timestamp = Some(crate::podutil::time_from_second(500));
                })],
                1,
                vec![],
            ),
            (
                "finished pods do not count",
                1,
                vec![pod("a", "succeeded", 1, "ours")],
                1,
                vec![],
            ),
            (
                "delete preference: unscheduled, pending, not ready, then newest ready",
                1,
                vec![
                    pod("ready-old", "ready", 1, "ours"),
                    pod("ready-new", "ready", 9, "ours"),
                    pod("ready-mid", "ready", 5, "ours"),
                    pod("notready", "notready", 1, "ours"),
                    pod("pending", "pending", 1, "ours"),
                    pod("unscheduled", "unscheduled", 1, "ours"),
                ],
                0,
                vec!["unscheduled", "pending", "notready", "ready-new", "ready-mid"],
            ),
            (
                "scale to zero",
                0,
                vec![pod("a", "ready", 1, "ours")],
                0,
                vec!["a"],
            ),
            (
                "other controller's pods are ignored",
                1,
                vec![pod("x", "ready", 1, "other")],
                1,
                vec![],
            ),
        ];
        for (name, replicas, pods, create, delete) in cases {
            let p = plan(&rs(replicas, 0), &pods, ts(1000));
            assert_eq!((p.create, names(&p.delete)), (create, delete), "{name}");
        }
    }

    #[test]
    fn adopt_and_release() {
        let mut relabelled = pod("moved", "ready", 1, "ours");
        relabelled.metadata.labels = Some(BTreeMap::from([("app".to_string(), "db".to_string())]));
        let deleting_orphan = patch(pod("dying", "ready", 1, "none"), |p| {
            p.metadata.deletion_timestamp = Some(crate::podutil::time_from_second(500));
        });
        let other_ns = patch(pod("elsewhere", "ready", 1, "none"), |p| {
            p.metadata.namespace = Some("other".into());
        });
        let pods = vec![
            pod("orphan", "ready", 1, "none"),
            relabelled,
            deleting_orphan,
            other_ns,
            pod("mine", "ready", 1, "ours"),
        ];
        let p = plan(&rs(2, 0), &pods, ts(1000));
        assert_eq!(names(&p.adopt), ["orphan"]);
        assert_eq!(names(&p.release), ["moved"]);
        // The adopted pod counts, so nothing is created.
        assert_eq!((p.create, p.delete.len(), p.status.replicas), (0, 0, 2));

        // A ReplicaSet being deleted adopts nothing and creates nothing.
        let mut dying = rs(5, 0);
        dying.metadata.deletion_timestamp = Some(crate::podutil::time_from_second(900));
        let p = plan(&dying, &pods, ts(1000));
        assert_eq!(
            (p.create, p.adopt.len(), names(&p.release)),
            (0, 0, vec!["moved"])
        );

        // An empty selector selects nothing.
        let mut broad = rs(1, 0);
        broad.spec.selector = Default::default();
        let p = plan(&broad, &[pod("orphan", "ready", 1, "none")], ts(1000));
        assert_eq!((p.adopt.len(), p.create), (0, 1));
    }

    #[test]
    fn status_counts() {
        let mut partial = pod("partial", "ready", 1, "ours");
        partial.metadata.labels = Some(BTreeMap::from([("app".to_string(), "web".to_string())]));
        let pods = vec![
            pod("a", "ready", 1, "ours"),
            pod("b", "notready", 1, "ours"),
            partial,
            patch(pod("gone", "ready", 1, "ours"), |p| {
                p.metadata.deletion_timestamp = Some(crate::podutil::time_from_second(500));
            }),
        ];
        // Pods became ready at 100; minReadySeconds 30.
        let cases = [(120, 0, Some(ts(130))), (130, 2, None)];
        for (now, available, recheck) in cases {
            let p = plan(&rs(3, 30), &pods, ts(now));
            let want = ReplicaSetStatus {
                replicas: 3,
                fully_labeled_replicas: Some(2),
                ready_replicas: Some(2),
                available_replicas: Some(available),
                terminating_replicas: Some(1),
                observed_generation: Some(3),
                conditions: None::<Vec<_>>,
            };
            assert_eq!(p.status, want, "now {now}");
            assert_eq!(p.recheck_at, recheck, "now {now}");
        }
    }

    #[test]
    fn template_pods() {
        let p = pod_from_template(&rs(1, 0));
        let v: Value = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "web-abc-",
                    "namespace": "default",
                    "labels": {"app": "web", "tier": "fe", "pod-template-hash": "abc"},
                    "annotations": {"a": "b"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                         "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            })
        );
    }
}
