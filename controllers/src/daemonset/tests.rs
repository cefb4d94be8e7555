//! Tests for the DaemonSet decisions: node eligibility, the per-node
//! create/delete plan, rolling updates within maxUnavailable, status and
//! revision history.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;
use serde_json::{json, Value};

use super::*;
use crate::podutil::testutil::{from_json, rfc, ts};
use crate::podutil::time_from_second;

/// A DaemonSet selecting `app: agent`, with `spec` merged over the
/// defaults (template image `agent:1`, RollingUpdate maxUnavailable 1).
fn ds(spec: Value) -> DaemonSet {
    let mut base = json!({
        "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 4},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "agent:1"}]}
            }
        }
    });
    merge(&mut base["spec"], spec);
    from_json(base)
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// A ready node with labels and taints.
fn node(name: &str, labels: Value, taints: Value) -> Node {
    from_json(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    }))
}

fn plain(name: &str) -> Node {
    node(name, json!({}), json!([]))
}

/// A pod of the DaemonSet on `node` from revision `hash`; `state` is
/// ready, notready, failed or pending (created, not yet bound).
fn pod(name: &str, node: &str, hash: &str, state: &str, created: i64) -> Pod {
    let (phase, ready, bound) = match state {
        "ready" => ("Running", true, true),
        "notready" => ("Running", false, true),
        "failed" => ("Failed", false, true),
        "pending" => ("Pending", false, false),
        other => panic!("state {other}"),
    };
    let mut spec = json!({"containers": [{"name": "c", "image": "agent"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}});
    if bound {
        spec["nodeName"] = json!(node);
    }
    from_json(json!({
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": rfc(created),
                     "labels": {"app": "agent", "controller-revision-hash": hash},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                          "uid": "ds-uid", "controller": true}]},
        "spec": spec,
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": rfc(100)}
        ]}
    }))
}

fn patch<T>(mut v: T, f: impl FnOnce(&mut T)) -> T {
    f(&mut v);
    v
}

fn names(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

const NOW: i64 = 1000;

#[test]
fn eligibility() {
    let taint = |key: &str, effect: &str| json!([{"key": key, "value": "x", "effect": effect}]);
    let ready = |status: &str| {
        patch(plain("n"), |n| {
            n.status = Some(from_json(
                json!({"conditions": [{"type": "Ready", "status": status}]}),
            ));
        })
    };
    let run = NodeFit {
        should_run: true,
        should_continue_running: true,
    };
    let keep = NodeFit {
        should_run: false,
        should_continue_running: true,
    };
    // (case, daemonset spec patch, node, expected fit)
    let cases: Vec<(&str, Value, Node, NodeFit)> = vec![
        ("plain node", json!({}), plain("n"), run),
        (
            "nodeSelector matches",
            json!({"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}),
            node("n", json!({"disk": "ssd"}), json!([])),
            run,
        ),
        (
            "nodeSelector does not match",
            json!({"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}),
            node("n", json!({"disk": "hdd"}), json!([])),
            NO_FIT,
        ),
        (
            "required affinity does not match",
            json!({"template": {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "role", "operator": "In", "values": ["edge"]}]}]}}}}}}),
            node("n", json!({"role": "core"}), json!([])),
            NO_FIT,
        ),
        (
            "required affinity by node name matches",
            json!({"template": {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["m"]}]}]}}}}}}),
            plain("n"),
            run,
        ),
        (
            "template nodeName names another node",
            json!({"template": {"spec": {"nodeName": "m"}}}),
            plain("n"),
            NO_FIT,
        ),
        (
            "untolerated NoSchedule taint: keep only",
            json!({}),
            node("n", json!({}), taint("gpu", "NoSchedule")),
            keep,
        ),
        (
            "untolerated NoExecute taint",
            json!({}),
            node("n", json!({}), taint("gpu", "NoExecute")),
            NO_FIT,
        ),
        (
            "PreferNoSchedule is no obstacle",
            json!({}),
            node("n", json!({}), taint("gpu", "PreferNoSchedule")),
            run,
        ),
        (
            "tolerated taint",
            json!({"template": {"spec": {"tolerations": [{"key": "gpu", "operator": "Exists"}]}}}),
            node("n", json!({}), taint("gpu", "NoExecute")),
            run,
        ),
        (
            "default tolerations: disk pressure",
            json!({}),
            node("n", json!({}), taint(TAINT_DISK_PRESSURE, "NoSchedule")),
            run,
        ),
        (
            "default tolerations: unreachable NoExecute",
            json!({}),
            node("n", json!({}), taint(TAINT_UNREACHABLE, "NoExecute")),
            run,
        ),
        (
            "cordoned nodes get daemon pods",
            json!({}),
            patch(
                node("n", json!({}), taint(TAINT_UNSCHEDULABLE, "NoSchedule")),
                |n| {
                    if let Some(s) = n.spec.as_mut() {
                        s.unschedulable = Some(true);
                    }
                },
            ),
            run,
        ),
        ("not ready: keep only", json!({}), ready("False"), keep),
        ("unknown readiness: keep only", json!({}), ready("Unknown"), keep),
        (
            "not ready, tolerated",
            json!({"template": {"spec": {"tolerations": [{"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoSchedule"}]}}}),
            ready("False"),
            run,
        ),
        (
            "node being deleted: keep only",
            json!({}),
            patch(plain("n"), |n| {
                n.metadata.deletion_timestamp = Some(time_from_second(5))
            }),
            keep,
        ),
    ];
    for (name, spec, n, want) in cases {
        assert_eq!(node_fit(&ds(spec), &n), want, "{name}");
    }
}

#[test]
fn pods_follow_nodes() {
    let nodes = vec![
        plain("n1"),
        plain("n2"),
        node("n3", json!({}), json!([{"key": "gpu", "effect": "NoSchedule"}])),
    ];
    // (case, daemonset spec patch, pods, create on, delete, force-delete)
    type Case = (
        &'static str,
        Value,
        Vec<Pod>,
        Vec<&'static str>,
        Vec<&'static str>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "empty cluster part",
            json!({}),
            vec![],
            vec!["n1", "n2"],
            vec![],
            vec![],
        ),
        (
            "a new node gets a pod",
            json!({}),
            vec![pod("a", "n1", "h1", "ready", 1)],
            vec!["n2"],
            vec![],
            vec![],
        ),
        (
            "an unbound pod aimed at a node counts for it",
            json!({}),
            vec![
                pod("a", "n1", "h1", "ready", 1),
                pod("b", "n2", "h1", "pending", 2),
            ],
            vec![],
            vec![],
            vec![],
        ),
        (
            "a pod under an untolerated NoSchedule taint stays",
            json!({}),
            vec![
                pod("a", "n1", "h1", "ready", 1),
                pod("b", "n2", "h1", "ready", 1),
                pod("c", "n3", "h1", "ready", 1),
            ],
            vec![],
            vec![],
            vec![],
        ),
        (
            "tolerating the taint puts a pod there",
            json!({"template": {"spec": {"tolerations": [{"key": "gpu", "operator": "Exists"}]}}}),
            vec![],
            vec!["n1", "n2", "n3"],
            vec![],
            vec![],
        ),
        (
            "misscheduled pods are deleted",
            json!({"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}),
            vec![pod("a", "n1", "h1", "ready", 1)],
            vec![],
            vec!["a"],
            vec![],
        ),
        (
            "pods on nodes that are gone are force-deleted",
            json!({}),
            vec![
                pod("a", "n1", "h1", "ready", 1),
                pod("b", "n2", "h1", "ready", 1),
                pod("gone", "n9", "h1", "ready", 1),
                patch(pod("going", "n8", "h1", "ready", 1), |p| {
                    p.metadata.deletion_timestamp = Some(time_from_second(500));
                }),
            ],
            vec![],
            vec![],
            vec!["going", "gone"],
        ),
        (
            "all but the oldest of several pods are deleted",
            json!({}),
            vec![
                pod("young", "n1", "h1", "ready", 5),
                pod("old", "n1", "h1", "ready", 1),
                pod("unbound", "n1", "h1", "pending", 0),
                pod("b", "n2", "h1", "ready", 1),
            ],
            vec![],
            vec!["young", "unbound"],
            vec![],
        ),
        (
            "a failed pod is deleted and replaced",
            json!({}),
            vec![
                pod("dead", "n1", "h1", "failed", 1),
                pod("b", "n2", "h1", "ready", 1),
            ],
            vec!["n1"],
            vec!["dead"],
            vec![],
        ),
        (
            "a terminating pod does not hold its node",
            json!({}),
            vec![
                patch(pod("a", "n1", "h1", "ready", 1), |p| {
                    p.metadata.deletion_timestamp = Some(time_from_second(500));
                }),
                pod("b", "n2", "h1", "ready", 1),
            ],
            vec!["n1"],
            vec![],
            vec![],
        ),
    ];
    for (name, spec, pods, create, delete, force) in cases {
        let p = plan(&ds(spec), &nodes, &pods, "h1", ts(NOW));
        assert_eq!(
            (names(&p.create), names(&p.delete), names(&p.force_delete)),
            (create, delete, force),
            "{name}"
        );
    }
}

#[test]
fn a_daemonset_being_deleted_does_nothing() {
    let mut d = ds(json!({}));
    d.metadata.deletion_timestamp = Some(time_from_second(5));
    let orphan = patch(pod("orphan", "n1", "h1", "ready", 1), |p| {
        p.metadata.owner_references = None;
    });
    let p = plan(&d, &[plain("n1"), plain("n2")], &[orphan], "h1", ts(NOW));
    assert!(
        p.create.is_empty() && p.delete.is_empty() && p.adopt.is_empty(),
        "{p:?}"
    );
    assert_eq!(p.status.desired_number_scheduled, 2);
}

#[test]
fn orphans_are_adopted_and_strays_released() {
    let nodes = vec![plain("n1"), plain("n2"), plain("n3")];
    let orphan = patch(pod("orphan", "n1", "h1", "ready", 1), |p| {
        p.metadata.owner_references = None;
    });
    let relabelled = patch(pod("moved", "n2", "h1", "ready", 1), |p| {
        p.metadata.labels = Some(BTreeMap::from([("app".to_string(), "other".to_string())]));
    });
    let foreign = patch(pod("foreign", "n3", "h1", "ready", 1), |p| {
        if let Some(r) = p.metadata.owner_references.as_mut().and_then(|r| r.first_mut()) {
            r.uid = "other-uid".to_string();
        }
    });
    let p = plan(
        &ds(json!({})),
        &nodes,
        &[orphan, relabelled, foreign],
        "h1",
        ts(NOW),
    );
    assert_eq!(names(&p.adopt), ["orphan"]);
    assert_eq!(names(&p.release), ["moved"]);
    // The adopted pod covers n1; the released and foreign pods do not count.
    assert_eq!(names(&p.create), ["n2", "n3"]);
}

/// `count` ready nodes n0.. with one pod each from revision `hash`.
fn fleet(count: usize, hash: &str) -> (Vec<Node>, Vec<Pod>) {
    let nodes = (0..count).map(|i| plain(&format!("n{i}"))).collect();
    let pods = (0..count)
        .map(|i| pod(&format!("p{i}"), &format!("n{i}"), hash, "ready", 1))
        .collect();
    (nodes, pods)
}

#[test]
fn rolling_update_respects_max_unavailable() {
    let strategy = |v: Value| json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": v}}});
    let (nodes, old) = fleet(4, "old");
    // (case, max unavailable, pods, pods deleted)
    type Case = (&'static str, Value, Vec<Pod>, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        ("one at a time", json!(1), old.clone(), vec!["p0"]),
        ("two at a time", json!(2), old.clone(), vec!["p0", "p1"]),
        ("percent rounds up", json!("30%"), old.clone(), vec!["p0", "p1"]),
        ("zero counts as one", json!(0), old.clone(), vec!["p0"]),
        (
            "a new pod that is not ready yet uses the budget",
            json!(1),
            vec![
                pod("new", "n0", "new", "notready", 5),
                old[1].clone(),
                old[2].clone(),
                old[3].clone(),
            ],
            vec![],
        ),
        (
            "a node without a pod uses the budget",
            json!(1),
            vec![old[1].clone(), old[2].clone(), old[3].clone()],
            vec![],
        ),
        (
            "the next old pod goes once the new one is ready",
            json!(1),
            vec![
                pod("new", "n0", "new", "ready", 5),
                old[1].clone(),
                old[2].clone(),
                old[3].clone(),
            ],
            vec!["p1"],
        ),
        (
            "unavailable old pods are replaced regardless of the budget",
            json!(1),
            vec![
                pod("new", "n0", "new", "notready", 5),
                pod("sick", "n1", "old", "notready", 1),
                old[2].clone(),
                old[3].clone(),
            ],
            vec!["sick"],
        ),
        (
            "nothing to do when all are current",
            json!(1),
            fleet(4, "new").1,
            vec![],
        ),
    ];
    for (name, max, pods, delete) in cases {
        let p = plan(&ds(strategy(max)), &nodes, &pods, "new", ts(NOW));
        assert_eq!(names(&p.delete), delete, "{name}");
    }
}

#[test]
fn a_simulated_rollout_never_exceeds_max_unavailable() {
    // Apply each plan (deleted pods vanish, created pods appear not ready,
    // pods not ready become ready on the next step) and check the status
    // after every step.
    let (nodes, mut pods) = fleet(5, "old");
    let d = ds(json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}));
    for step in 0..40 {
        let p = plan(&d, &nodes, &pods, "new", ts(NOW));
        let unavailable = p.status.number_unavailable.unwrap_or(0);
        assert!(unavailable <= 2, "step {step}: {unavailable} unavailable");
        if p.create.is_empty()
            && p.delete.is_empty()
            && pods.iter().all(|p| is_updated(p, "new") && is_ready(p))
        {
            assert_eq!(p.status.updated_number_scheduled, Some(5));
            return;
        }
        for pod in pods.iter_mut() {
            if let Some(c) = pod
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .and_then(|c| c.first_mut())
            {
                c.status = "True".to_string();
            }
        }
        pods.retain(|pod| {
            !p.delete
                .contains(pod.metadata.name.as_ref().unwrap_or(&String::new()))
        });
        for n in &p.create {
            pods.push(pod(&format!("{n}-{step}"), n, "new", "notready", 10 + step));
        }
    }
    panic!("rollout did not finish");
}

#[test]
fn on_delete_leaves_old_pods_alone() {
    let (nodes, mut pods) = fleet(3, "old");
    let d = ds(json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}));
    let p = plan(&d, &nodes, &pods, "new", ts(NOW));
    assert!(p.delete.is_empty() && p.create.is_empty(), "{p:?}");
    assert_eq!(p.status.updated_number_scheduled, Some(0));
    // After a manual delete, the replacement comes from the new revision.
    pods.remove(1);
    let p = plan(&d, &nodes, &pods, "new", ts(NOW));
    assert_eq!((names(&p.create), p.delete.len()), (vec!["n1"], 0));
    let made = pod_for_node(&d, "n1", "new");
    assert!(is_updated(&made, "new"));
}

#[test]
fn status_counts() {
    let nodes = vec![
        plain("n1"),
        plain("n2"),
        plain("n3"),
        plain("n4"),
        node("tainted", json!({}), json!([{"key": "k", "effect": "NoExecute"}])),
    ];
    let pods = vec![
        pod("a", "n1", "new", "ready", 1),
        pod("b", "n2", "old", "ready", 1),
        pod("c", "n3", "new", "notready", 1),
        pod("m", "tainted", "new", "ready", 1),
    ];
    // Pods became ready at 100; minReadySeconds 30.
    let d = ds(json!({"minReadySeconds": 30}));
    for (now, available, recheck) in [(120, 0, Some(ts(130))), (130, 2, None)] {
        let p = plan(&d, &nodes, &pods, "new", ts(now));
        let want = DaemonSetStatus {
            current_number_scheduled: 3,
            desired_number_scheduled: 4,
            number_available: Some(available),
            number_misscheduled: 1,
            number_ready: 2,
            number_unavailable: Some(4 - available),
            observed_generation: Some(4),
            updated_number_scheduled: Some(2),
            collision_count: None,
            conditions: None,
        };
        assert_eq!(p.status, want, "now {now}");
        assert_eq!(p.recheck_at, recheck, "now {now}");
    }
}

#[test]
fn pods_are_made_for_their_node() {
    let d = ds(
        json!({"template": {"metadata": {"annotations": {"a": "b"}}, "spec": {
        "tolerations": [{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
        "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [{"key": "b", "operator": "Exists"}]}}]}}}}}),
    );
    let p = pod_for_node(&d, "n7", "h1");
    assert_eq!(target_node(&p), Some("n7"));
    let v = serde_json::to_value(&p).unwrap_or_default();
    let exists = |key: &str, effect: &str| json!({"key": key, "operator": "Exists", "effect": effect});
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": "agent-",
                "namespace": "default",
                "labels": {"app": "agent", "controller-revision-hash": "h1"},
                "annotations": {"a": "b"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                     "uid": "ds-uid", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "containers": [{"name": "c", "image": "agent:1"}],
                "affinity": {"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "preference": {"matchExpressions": [{"key": "b", "operator": "Exists"}]}}]}},
                // The template's unreachable toleration loses its time limit.
                "tolerations": [
                    exists(TAINT_UNREACHABLE, "NoExecute"),
                    exists(TAINT_NOT_READY, "NoExecute"),
                    exists(TAINT_DISK_PRESSURE, "NoSchedule"),
                    exists(TAINT_MEMORY_PRESSURE, "NoSchedule"),
                    exists(TAINT_PID_PRESSURE, "NoSchedule"),
                    exists(TAINT_UNSCHEDULABLE, "NoSchedule"),
                ]
            }
        })
    );
    // A bound pod's target is its node; other shapes have none.
    assert_eq!(target_node(&pod("x", "n2", "h", "ready", 1)), Some("n2"));
    let mut loose = pod("y", "n2", "h", "pending", 1);
    loose.spec = Some(PodSpec::default());
    assert_eq!(target_node(&loose), None);
}

/// A revision of the DaemonSet recording `image`, numbered `revision`.
fn revision(image: &str, revision: i64) -> ControllerRevision {
    let d = ds(json!({"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}));
    new_revision(&d, &format!("h-{image}"), revision)
}

fn image(image: &str) -> DaemonSet {
    ds(json!({"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}))
}

#[test]
fn history_records_templates() {
    // First revision.
    let h = plan_history(&image("a"), &[], &[]);
    let created = h
        .create
        .as_ref()
        .map(|r| (r.metadata.name.clone(), revision_number(r)));
    assert_eq!(created, Some((Some(format!("agent-{}", h.hash)), 1)));
    assert_eq!(h.hash, template_revision_hash(&image("a")));
    let rev = h.create.unwrap_or_else(|| revision("a", 1));
    assert_eq!(
        rev.data.0["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("a")
    );
    assert_eq!(revision_template(&rev).as_ref(), Some(&image("a").spec.template));

    // The current template is found again: nothing to do.
    let h = plan_history(&image("a"), &[revision("a", 1)], &[]);
    assert_eq!(
        h,
        HistoryPlan {
            hash: "h-a".into(),
            ..HistoryPlan::default()
        }
    );

    // A new template gets the next number.
    let h = plan_history(&image("b"), &[revision("a", 1)], &[]);
    assert_eq!(h.create.as_ref().map(revision_number), Some(2));

    // Rolling back renumbers the old revision rather than copying it.
    let h = plan_history(&image("a"), &[revision("a", 1), revision("b", 2)], &[]);
    assert_eq!(
        (h.hash.as_str(), h.create, h.renumber),
        ("h-a", None, Some(("agent-h-a".to_string(), 3)))
    );

    // A collision count changes the hash of a new revision.
    let mut colliding = image("b");
    colliding.status = Some(DaemonSetStatus {
        collision_count: Some(1),
        ..DaemonSetStatus::default()
    });
    assert_ne!(
        template_revision_hash(&colliding),
        template_revision_hash(&image("b"))
    );
}

#[test]
fn history_is_pruned_and_adopted() {
    let revs: Vec<ControllerRevision> = ["a", "b", "c", "d", "e"]
        .iter()
        .zip(1..)
        .map(|(i, n)| revision(i, n))
        .collect();
    // Limit 2: current "e" plus four old; the two oldest go, except one a
    // pod still runs ("a"), so "c" goes in its place.
    let d = patch(image("e"), |d| d.spec.revision_history_limit = Some(2));
    let live = pod("p", "n1", "h-a", "ready", 1);
    let h = plan_history(&d, &revs, std::slice::from_ref(&live));
    assert_eq!(names(&h.delete), ["agent-h-b", "agent-h-c"]);
    // Limit 0 keeps only the current revision and those pods use.
    let d = patch(image("e"), |d| d.spec.revision_history_limit = Some(0));
    let h = plan_history(&d, &revs, &[live]);
    assert_eq!(names(&h.delete), ["agent-h-b", "agent-h-c", "agent-h-d"]);
    // Default limit 10: nothing to prune.
    assert!(plan_history(&image("e"), &revs, &[]).delete.is_empty());

    // Orphan revisions matching the selector are adopted (and can be the
    // current one); other controllers' revisions are ignored.
    let orphan = patch(revision("a", 1), |r| r.metadata.owner_references = None);
    let foreign = patch(revision("b", 7), |r| {
        if let Some(o) = r.metadata.owner_references.as_mut().and_then(|o| o.first_mut()) {
            o.uid = "other".to_string();
        }
    });
    let h = plan_history(&image("a"), &[orphan, foreign], &[]);
    assert_eq!(
        (names(&h.adopt), h.hash.as_str(), h.create),
        (vec!["agent-h-a"], "h-a", None)
    );

    // An empty selector adopts nothing.
    let mut broad = image("a");
    broad.spec.selector = K8sSelector::default();
    let orphan = patch(revision("a", 1), |r| r.metadata.owner_references = None);
    assert!(plan_history(&broad, &[orphan], &[]).adopt.is_empty());
}
