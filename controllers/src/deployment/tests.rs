//! Tests for the Deployment decisions, including simulated rollouts that
//! check the availability and surge bounds after every step.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::*;
use crate::podutil::testutil::{from_json, rfc, ts};

fn deployment(replicas: i32, strategy: Value, image: &str) -> Deployment {
    from_json(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 2},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

/// A ReplicaSet owned by the deployment with `image`, `replicas` and a
/// revision, created at `created`.
fn replica_set(name: &str, image: &str, replicas: i32, revision: i64, created: i64) -> ReplicaSet {
    from_json(json!({
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": rfc(created),
                     "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                          "uid": "d-uid", "controller": true}]},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": name}},
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        },
        "status": {"replicas": replicas}
    }))
}

fn ios(v: Value) -> IntOrString {
    from_json(v)
}

#[test]
fn template_hash_is_stable_and_safe() {
    let d = deployment(1, json!({}), "nginx:1");
    let h = template_hash(&d.spec.template);
    assert_eq!(h, template_hash(&d.spec.template.clone()));
    assert!(!h.is_empty() && h.len() <= 10, "{h}");
    assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{h}");
    // Pinned so that a change of algorithm (which would roll every
    // Deployment) is noticed.
    assert_eq!(h, "79bfd649dc");
    let other = deployment(1, json!({}), "nginx:2");
    assert_ne!(template_hash(&other.spec.template), h);
    assert_ne!(template_hash_with_collisions(&d.spec.template, Some(1)), h);
}

#[test]
fn fenceposts_round_like_kubernetes() {
    let cases = [
        (json!("25%"), json!("25%"), 10, (3, 2)),
        (json!("25%"), json!("25%"), 1, (1, 0)),
        (json!("25%"), json!("25%"), 4, (1, 1)),
        (json!(0), json!(0), 5, (0, 1)),
        (json!("0%"), json!("0%"), 5, (0, 1)),
        (json!(1), json!(0), 3, (1, 0)),
        (json!("50%"), json!("50%"), 3, (2, 1)),
        (json!("100%"), json!(0), 4, (4, 0)),
        (json!(2), json!("10%"), 5, (2, 0)),
        (json!("10%"), json!("10%"), 0, (0, 1)),
    ];
    for (surge, unavailable, replicas, want) in cases {
        let got = resolve_fenceposts(&ios(surge.clone()), &ios(unavailable.clone()), replicas);
        assert_eq!(got, want, "{surge} {unavailable} {replicas}");
        assert_eq!(
            try_resolve_fenceposts(&ios(surge), &ios(unavailable), replicas),
            Ok(want)
        );
    }
    let bad = ios(json!("lots"));
    assert_eq!(
        try_resolve_fenceposts(&bad, &ios(json!(1)), 3),
        Err(Error::InvalidIntOrPercent("lots".into()))
    );
    assert_eq!(resolve_fenceposts(&bad, &ios(json!(0)), 3), (0, 1));
}

/// A rollout simulated against a trivial ReplicaSet controller and
/// kubelet: ReplicaSets get exactly their replicas (deleting unavailable
/// pods first), and new pods become available one step after creation
/// unless `broken`.
struct Sim {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    /// ReplicaSet name → availability of each of its pods.
    pods: BTreeMap<String, Vec<bool>>,
}

impl Sim {
    fn new(d: Deployment, old_replicas: i32) -> Sim {
        let old = replica_set("web-old", "nginx:1", old_replicas, 1, 0);
        let pods = BTreeMap::from([(
            "web-old".to_string(),
            vec![true; usize::try_from(old_replicas).unwrap_or(0)],
        )]);
        Sim {
            d,
            rss: vec![old],
            pods,
        }
    }

    fn available_of(pods: &BTreeMap<String, Vec<bool>>, rs: &ReplicaSet) -> i32 {
        let name = rs.metadata.name.as_deref().unwrap_or_default();
        pods.get(name)
            .map_or(0, |p| p.iter().filter(|a| **a).count() as i32)
    }

    fn split(&self) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
        let new = find_new_replica_set(&self.d, &self.rss).cloned();
        let new_name = new.as_ref().and_then(|n| n.metadata.name.clone());
        let old = self
            .rss
            .iter()
            .filter(|rs| rs.metadata.name != new_name)
            .cloned()
            .collect();
        (new, old)
    }

    /// One controller step; returns the plan.
    fn step(&mut self) -> RolloutPlan {
        let (new, old) = self.split();
        let pods = self.pods.clone();
        let plan = plan_rollout(&self.d, new.as_ref(), &old, &|rs| Sim::available_of(&pods, rs));
        if let Some(n) = plan.create_new {
            self.rss
                .push(new_replica_set(&self.d, max_revision(&self.rss) + 1, n));
        }
        for rs in &mut self.rss {
            if let Some(n) = rs.metadata.name.as_ref().and_then(|name| plan.scale.get(name)) {
                rs.spec.replicas = Some(*n);
            }
        }
        // The ReplicaSet controller.
        for rs in &mut self.rss {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let want = usize::try_from(rs.spec.replicas.unwrap_or(1)).unwrap_or(0);
            let pods = self.pods.entry(name).or_default();
            pods.sort(); // unavailable (false) first
            while pods.len() > want {
                pods.remove(0);
            }
            while pods.len() < want {
                pods.push(false);
            }
            let ready = pods.iter().filter(|a| **a).count() as i32;
            rs.status = Some(ReplicaSetStatus {
                replicas: pods.len() as i32,
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                ..ReplicaSetStatus::default()
            });
        }
        plan
    }

    fn totals(&self) -> (i32, i32) {
        let all: Vec<bool> = self.pods.values().flatten().copied().collect();
        (all.len() as i32, all.iter().filter(|a| **a).count() as i32)
    }

    /// Pods created so far become available (or, when broken, only old
    /// ones stay available).
    fn mature(&mut self, broken: bool) {
        let (new, _) = self.split();
        let new_name = new.and_then(|n| n.metadata.name);
        for (name, pods) in &mut self.pods {
            if broken && Some(name) == new_name.as_ref() {
                continue;
            }
            pods.iter_mut().for_each(|a| *a = true);
        }
    }
}

#[test]
fn rolling_update_keeps_availability_and_surge_bounds() {
    let cases = [
        (10, json!("25%"), json!("25%")),
        (10, json!(0), json!(1)),
        (10, json!(1), json!(0)),
        (3, json!("0%"), json!("0%")),
        (1, json!(0), json!(1)),
        (5, json!("100%"), json!(0)),
        (5, json!(2), json!(3)),
        (4, json!("50%"), json!("50%")),
    ];
    for (replicas, surge, unavailable) in cases {
        let label = format!("{replicas} {surge} {unavailable}");
        let d = deployment(replicas, rolling(surge.clone(), unavailable.clone()), "nginx:2");
        let (max_surge, max_unavailable) = resolve_fenceposts(&ios(surge), &ios(unavailable), replicas);
        let mut sim = Sim::new(d, replicas);
        let mut done = false;
        for step in 0..100 {
            let plan = sim.step();
            let (total, available) = sim.totals();
            assert!(
                available >= replicas - max_unavailable,
                "{label}: step {step}: {available} available < {replicas} - {max_unavailable}"
            );
            assert!(
                total <= replicas + max_surge,
                "{label}: step {step}: {total} pods"
            );
            if plan.complete {
                done = true;
                break;
            }
            sim.mature(false);
        }
        assert!(done, "{label}: rollout did not complete");
        let (new, old) = sim.split();
        assert_eq!(new.map(|n| n.spec.replicas), Some(Some(replicas)), "{label}");
        assert!(old.iter().all(|rs| rs.spec.replicas == Some(0)), "{label}");
    }
}

#[test]
fn broken_rollout_stalls_safely_and_times_out() {
    let mut d = deployment(4, rolling(json!(1), json!(1)), "nginx:broken");
    d.spec.progress_deadline_seconds = Some(600);
    let mut sim = Sim::new(d, 4);
    let mut reasons = Vec::new();
    for step in 0..30 {
        let plan = sim.step();
        assert!(!plan.complete);
        let (_, available) = sim.totals();
        assert!(available >= 3, "step {step}: {available} available");
        sim.mature(true);
        let (new, old) = sim.split();
        let pods = sim.pods.clone();
        let status = deployment_status(
            &sim.d,
            new.as_ref(),
            &old,
            &|rs| Sim::available_of(&pods, rs),
            ts(step * 60),
        );
        let progressing = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            .and_then(|c| c.reason.clone())
            .unwrap_or_default();
        reasons.push(progressing);
        sim.d.status = Some(status);
    }
    // Progress is reported while the surge pod and the first replacement
    // are created, then nothing moves and the deadline passes.
    assert_eq!(reasons.first().map(String::as_str), Some("ReplicaSetUpdated"));
    assert_eq!(
        reasons.last().map(String::as_str),
        Some("ProgressDeadlineExceeded")
    );
    let first_exceeded = reasons
        .iter()
        .position(|r| r == "ProgressDeadlineExceeded")
        .unwrap_or(0);
    assert!((10..=14).contains(&first_exceeded), "{reasons:?}");
}

#[test]
fn recreate_removes_old_pods_before_creating_new_ones() {
    let d = deployment(3, json!({"type": "Recreate"}), "nginx:2");
    let old = replica_set("web-old", "nginx:1", 3, 1, 0);
    let avail = |_: &ReplicaSet| 3;
    // Step 1: old scaled to zero, nothing created.
    let p = plan_rollout(&d, None, std::slice::from_ref(&old), &avail);
    assert_eq!(p.create_new, None);
    assert_eq!(p.scale, BTreeMap::from([("web-old".to_string(), 0)]));
    // Step 2: old at zero but pods still terminating: wait.
    let mut draining = old.clone();
    draining.spec.replicas = Some(0);
    draining.status = Some(ReplicaSetStatus {
        replicas: 0,
        terminating_replicas: Some(2),
        ..ReplicaSetStatus::default()
    });
    let p = plan_rollout(&d, None, std::slice::from_ref(&draining), &|_| 0);
    assert_eq!(p, RolloutPlan::default());
    // Step 3: old pods gone: create the new ReplicaSet at full size.
    let mut drained = draining.clone();
    drained.status = Some(ReplicaSetStatus::default());
    let p = plan_rollout(&d, None, std::slice::from_ref(&drained), &|_| 0);
    assert_eq!(p.create_new, Some(3));
    // Step 4: new exists with all available: complete.
    let new = new_replica_set(&d, 2, 3);
    let p = plan_rollout(&d, Some(&new), std::slice::from_ref(&drained), &|rs| {
        if rs.metadata.name == new.metadata.name {
            3
        } else {
            0
        }
    });
    assert!(p.complete && p.scale.is_empty(), "{p:?}");
}

#[test]
fn rolling_steps() {
    // (new replicas, new available, old replicas/available, expected new, expected old)
    let d = deployment(10, rolling(json!(3), json!(2)), "nginx:2");
    let cases = [
        ("surge first", Some((0, 0)), (10, 10), 3, 10),
        ("scale old down within availability", Some((3, 0)), (10, 10), 3, 8),
        (
            "unhealthy old pods go first, within the budget",
            Some((3, 0)),
            (10, 7),
            3,
            8,
        ),
        ("available new pods let more old go", Some((3, 3)), (10, 10), 3, 5),
        ("nothing may go", Some((5, 0)), (8, 8), 5, 8),
        (
            "new scaled down when above replicas",
            Some((12, 12)),
            (0, 0),
            10,
            0,
        ),
    ];
    for (name, new, (old_n, old_avail), want_new, want_old) in cases {
        let old = replica_set("web-old", "nginx:1", old_n, 1, 0);
        let new_rs = new.map(|(n, _)| {
            let mut rs = new_replica_set(&d, 2, n);
            rs.metadata.creation_timestamp = Some(crate::podutil::time_from_second(10));
            rs
        });
        let new_avail = new.map_or(0, |(_, a)| a);
        let new_name = new_rs.as_ref().and_then(|n| n.metadata.name.clone());
        let avail = |rs: &ReplicaSet| {
            if rs.metadata.name == new_name {
                new_avail
            } else {
                old_avail
            }
        };
        let p = plan_rollout(&d, new_rs.as_ref(), std::slice::from_ref(&old), &avail);
        let got_new = match (&new_rs, p.create_new) {
            (_, Some(n)) => n,
            (Some(rs), None) => p.replicas_of(rs),
            (None, None) => 0,
        };
        assert_eq!((got_new, p.replicas_of(&old)), (want_new, want_old), "{name}");
    }
    // Without any ReplicaSet the new one is created at full size.
    let p = plan_rollout(&d, None, &[], &|_| 0);
    assert_eq!(p.create_new, Some(10));
    // Paused deployments do nothing.
    let mut paused = d.clone();
    paused.spec.paused = Some(true);
    assert_eq!(plan_rollout(&paused, None, &[], &|_| 0), RolloutPlan::default());
}

#[test]
fn status_conditions() {
    let d = deployment(3, rolling(json!(1), json!(1)), "nginx:2");
    let mut new = new_replica_set(&d, 2, 3);
    new.status = Some(ReplicaSetStatus {
        replicas: 3,
        ready_replicas: Some(3),
        ..ReplicaSetStatus::default()
    });
    let done = deployment_status(&d, Some(&new), &[], &|_| 3, ts(100));
    assert_eq!(
        (
            done.replicas,
            done.updated_replicas,
            done.ready_replicas,
            done.available_replicas,
            done.unavailable_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3), Some(0))
    );
    assert_eq!(done.observed_generation, Some(2));
    let cond = |s: &DeploymentStatus, t: &str| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some(t))
            .map(|c| {
                (
                    c.status.clone().unwrap_or_default(),
                    c.reason.clone().unwrap_or_default(),
                )
            })
    };
    assert_eq!(
        cond(&done, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
    assert_eq!(
        cond(&done, "Progressing"),
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );

    // Mid-rollout: an old ReplicaSet still has pods, new pods not ready.
    let old = replica_set("web-old", "nginx:1", 2, 1, 0);
    let mut new_mid = new_replica_set(&d, 2, 2);
    new_mid.status = Some(ReplicaSetStatus {
        replicas: 2,
        ..ReplicaSetStatus::default()
    });
    let avail = |rs: &ReplicaSet| {
        if rs.metadata.name.as_deref() == Some("web-old") {
            1
        } else {
            0
        }
    };
    let mut d_mid = d.clone();
    d_mid.status = Some(done.clone());
    let mid = deployment_status(
        &d_mid,
        Some(&new_mid),
        std::slice::from_ref(&old),
        &avail,
        ts(200),
    );
    assert_eq!(
        cond(&mid, "Available"),
        Some(("False".into(), "MinimumReplicasUnavailable".into()))
    );
    assert_eq!(
        cond(&mid, "Progressing"),
        Some(("True".into(), "ReplicaSetUpdated".into()))
    );
    assert_eq!(mid.unavailable_replicas, Some(3));

    // No change for longer than the deadline: timed out.
    let mut d_stuck = d.clone();
    d_stuck.status = Some(mid.clone());
    let same = deployment_status(
        &d_stuck,
        Some(&new_mid),
        std::slice::from_ref(&old),
        &avail,
        ts(700),
    );
    assert_eq!(
        cond(&same, "Progressing"),
        Some(("True".into(), "ReplicaSetUpdated".into()))
    );
    let late = deployment_status(
        &d_stuck,
        Some(&new_mid),
        std::slice::from_ref(&old),
        &avail,
        ts(801),
    );
    assert_eq!(
        cond(&late, "Progressing"),
        Some(("False".into(), "ProgressDeadlineExceeded".into()))
    );

    // A finished rollout that loses a pod keeps NewReplicaSetAvailable.
    let mut d_done = d.clone();
    d_done.status = Some(done);
    let churn = deployment_status(&d_done, Some(&new), &[], &|_| 2, ts(5000));
    assert_eq!(
        cond(&churn, "Progressing"),
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );
}

#[test]
fn revisions_and_history() {
    let rss: Vec<ReplicaSet> = (1..=5)
        .map(|r| {
            replica_set(
                &format!("web-r{r}"),
                &format!("nginx:{r}"),
                if r == 2 { 1 } else { 0 },
                r,
                r,
            )
        })
        .collect();
    assert_eq!(max_revision(&rss), 5);
    let name = |rs: Option<&ReplicaSet>| rs.and_then(|r| r.metadata.name.clone());
    assert_eq!(name(rollback_target(&rss, 0)), Some("web-r4".into()));
    assert_eq!(name(rollback_target(&rss, 2)), Some("web-r2".into()));
    assert_eq!(name(rollback_target(&rss, 9)), None);
    let t = rollback_template(&rss[1])
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels);
    assert_eq!(t, Some(BTreeMap::from([("app".to_string(), "web".to_string())])));

    // History: keep 2 of the 4 old ones; r1 and r2 are the oldest, but r2
    // still has a replica.
    let mut d = deployment(1, json!({}), "nginx:5");
    d.spec.revision_history_limit = Some(2);
    assert_eq!(history_to_delete(&d, &rss[..4]), ["web-r1"]);
    d.spec.revision_history_limit = Some(0);
    assert_eq!(history_to_delete(&d, &rss[..4]), ["web-r1", "web-r3", "web-r4"]);
    d.spec.revision_history_limit = None;
    assert!(history_to_delete(&d, &rss[..4]).is_empty());

    // Rolling back to r2's template re-uses it as the new ReplicaSet, which
    // then needs the next revision.
    let d2 = deployment(1, json!({}), "nginx:2");
    let new = find_new_replica_set(&d2, &rss);
    assert_eq!(name(new), Some("web-r2".into()));
    let old: Vec<ReplicaSet> = rss
        .iter()
        .filter(|rs| rs.metadata.name.as_deref() != Some("web-r2"))
        .cloned()
        .collect();
    let p = plan_rollout(&d2, new, &old, &|_| 1);
    assert_eq!(p.set_new_revision, Some(6));
}

#[test]
fn new_replica_set_shape() {
    let d = deployment(3, json!({}), "nginx:2");
    let rs = new_replica_set(&d, 4, 1);
    let hash = template_hash(&d.spec.template);
    let v = serde_json::to_value(&rs).unwrap_or_default();
    assert_eq!(v["metadata"]["name"], json!(format!("web-{hash}")));
    assert_eq!(
        v["metadata"]["labels"],
        json!({"app": "web", "pod-template-hash": hash})
    );
    assert_eq!(
        v["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        json!("4")
    );
    assert_eq!(
        v["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
        json!("4")
    );
    assert_eq!(
        v["spec"]["selector"]["matchLabels"],
        json!({"app": "web", "pod-template-hash": hash})
    );
    assert_eq!(
        v["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        json!(hash)
    );
    assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], json!("Deployment"));
    assert!(templates_equal_ignoring_hash(
        rs.spec.template.as_ref().unwrap_or(&Default::default()),
        &d.spec.template
    ));
    assert_eq!(owned_replica_sets(&d, std::slice::from_ref(&rs)).len(), 1);
}
