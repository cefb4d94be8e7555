//! The scheduler and controllers in a real control plane (real replicas,
//! real Raft). No node agents here: Nodes are registered through the API
//! as an agent would, and Pods are checked for creation and binding.

mod common;

use common::fake_agents;
use rk_client::{Client, ListParams};
use rk_testkit::Cluster;
use serde_json::{json, Value};
use std::time::Duration;

fn node(name: &str, cpu: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {
            "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": "2026-11-27T00:00:00Z", "lastTransitionTime": "2026-11-27T00:00:00Z"}]}})
}

fn replicaset(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                       "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}}]}}}})
}

async fn pods_of(c: &Client, app: &str) -> Vec<Value> {
    all_pods_of(c, app)
        .await
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

/// Polls until `check` holds for the pods of `app` (or panics with them).
async fn wait_pods(c: &Client, app: &str, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pods = pods_of(c, app).await;
        if check(&pods) {
            return pods;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; pods: {}",
                serde_json::to_string_pretty(&pods).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `name`, changes it with `change` and writes it back, reading
/// again when a controller's status write got in between (a Conflict), as
/// kubectl edit or a client-go retry loop would.
async fn modify(
    c: &Client,
    resource: &str,
    namespace: &str,
    name: &str,
    change: impl Fn(&mut Value),
) -> Value {
    for _ in 0..10 {
        let mut obj = c.get(resource, namespace, name).await.expect("read for update");
        change(&mut obj);
        match c.update(resource, &obj).await {
            Ok(updated) => return updated,
            Err(e) if e.reason == rk_client::Reason::Conflict => continue,
            Err(e) => panic!("update {resource} {name}: {e}"),
        }
    }
    panic!("update {resource} {name}: still conflicting after 10 tries");
}

fn all_bound(pods: &[Value]) -> bool {
    pods.iter().all(|p| {
        p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty())
            && p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "PodScheduled" && c["status"] == "True")
            })
    })
}

/// Waits until an Event about `object` has `reason` and a message that
/// starts with `message`.
async fn wait_event(c: &Client, object: &str, reason: &str, message: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (events, _) = c
            .list(
                "events",
                &ListParams {
                    namespace: Some("default".into()),
                    field_selector: format!("involvedObject.name={object}"),
                    ..Default::default()
                },
            )
            .await
            .expect("events");
        if events
            .iter()
            .any(|e| e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.starts_with(message)))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} event for {object} starting {message:?}: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_pods_are_created_bound_and_scaled() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    c.create("nodes", &node("n1", "2", json!({"kubernetes.io/hostname": "n1"})))
        .await
        .expect("node n1");
    c.create("nodes", &node("n2", "2", json!({"kubernetes.io/hostname": "n2"})))
        .await
        .expect("node n2");
    c.create("replicasets.apps", &replicaset("web", 3))
        .await
        .expect("rs");

    let pods = wait_pods(&c, "web", "3 bound pods", |p| p.len() == 3 && all_bound(p)).await;
    for p in &pods {
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["controller"], true);
        assert!(p["metadata"]["name"].as_str().unwrap_or("").starts_with("web-"));
    }
    // Spread over both nodes (same owner, equal nodes).
    let nodes: std::collections::BTreeSet<_> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(nodes.len(), 2, "pods of one owner spread across nodes");

    // Every decision left an Event, as in Kubernetes.
    let scheduled = format!(
        "Successfully assigned default/{} to {}",
        pods[0]["metadata"]["name"].as_str().unwrap_or(""),
        pods[0]["spec"]["nodeName"].as_str().unwrap_or("")
    );
    wait_event(&c, "web", "SuccessfulCreate", "Created pod: web-").await;
    wait_event(
        &c,
        pods[0]["metadata"]["name"].as_str().unwrap_or(""),
        "Scheduled",
        &scheduled,
    )
    .await;

    modify(&c, "replicasets.apps", "default", "web", |rs| {
        rs["spec"]["replicas"] = json!(1)
    })
    .await;
    wait_pods(&c, "web", "1 pod", |p| p.len() == 1).await;
    wait_event(&c, "web", "SuccessfulDelete", "Deleted pod: web-").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rs = c.get("replicasets.apps", "default", "web").await.expect("get rs");
        if rs["status"]["replicas"] == 1 && rs["status"]["observedGeneration"] == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status not updated: {}",
            rs["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_fits_nowhere_says_why_and_schedules_when_a_node_fits() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    c.create(
        "nodes",
        &node("small", "1", json!({"kubernetes.io/hostname": "small"})),
    )
    .await
    .expect("node");
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "big", "namespace": "default", "labels": {"app": "big"}},
        "spec": {"nodeSelector": {"disktype": "ssd"},
                 "containers": [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "500m"}}}]}});
    c.create("pods", &pod).await.expect("pod");
    let pods = wait_pods(&c, "big", "an Unschedulable condition", |p| {
        p.first().is_some_and(|p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"] == "Unschedulable"
                })
            })
        })
    })
    .await;
    let cond = pods[0]["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned())
        .expect("condition");
    assert_eq!(
        cond["message"],
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    );
    // The Event is written right after the condition; give it a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (events, _) = c
            .list(
                "events",
                &ListParams {
                    namespace: Some("default".into()),
                    field_selector: "involvedObject.name=big".into(),
                    ..Default::default()
                },
            )
            .await
            .expect("events");
        if events
            .iter()
            .any(|e| e["reason"] == "FailedScheduling" && e["type"] == "Warning")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no FailedScheduling event: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A node that fits arrives: the pod is retried and bound there.
    c.create(
        "nodes",
        &node(
            "fast",
            "4",
            json!({"kubernetes.io/hostname": "fast", "disktype": "ssd"}),
        ),
    )
    .await
    .expect("node");
    let pods = wait_pods(&c, "big", "binding to the new node", all_bound).await;
    assert_eq!(pods[0]["spec"]["nodeName"], "fast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_the_controllers() {
    let mut cluster = Cluster::start(3);
    let c = cluster.client();
    c.create("nodes", &node("n1", "8", json!({"kubernetes.io/hostname": "n1"})))
        .await
        .expect("node");
    c.create("replicasets.apps", &replicaset("api", 2))
        .await
        .expect("rs");
    wait_pods(&c, "api", "2 bound pods", |p| p.len() == 2 && all_bound(p)).await;
    let leader = cluster.leader(Duration::from_secs(10)).await.expect("leader");
    cluster.kill(leader);
    cluster.leader(Duration::from_secs(10)).await.expect("new leader");
    let c = cluster.client();
    modify(&c, "replicasets.apps", "default", "api", |rs| {
        rs["spec"]["replicas"] = json!(4)
    })
    .await;
    let pods = wait_pods(&c, "api", "4 bound pods under the new leader", |p| {
        p.len() == 4 && all_bound(p)
    })
    .await;
    assert_eq!(pods.len(), 4);
    // A second controller acting at the same time would overshoot; give it
    // the chance, then count again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pods_of(&c, "api").await.len(),
        4,
        "exactly 4: only one leader's controllers act"
    );
}

fn ready(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_keeps_enough_pods_ready_and_completes() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    for n in ["n1", "n2"] {
        c.create("nodes", &node(n, "4", json!({"kubernetes.io/hostname": n})))
            .await
            .expect("node");
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let agents = fake_agents(cluster.client(), stop.clone());
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "roll", "namespace": "default"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "roll"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": "roll"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}}});
    c.create("deployments.apps", &d).await.expect("deployment");
    wait_pods(&c, "roll", "4 ready pods", |p| {
        p.len() == 4 && p.iter().all(ready)
    })
    .await;
    let pods = pods_of(&c, "roll").await;
    assert!(pods
        .iter()
        .all(|p| p["metadata"]["labels"]["pod-template-hash"].is_string()));

    modify(&c, "deployments.apps", "default", "roll", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.36")
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut min_ready = usize::MAX;
    loop {
        let pods = pods_of(&c, "roll").await;
        let ready_now = pods.iter().filter(|p| ready(p)).count();
        min_ready = min_ready.min(ready_now);
        let done = pods.len() == 4
            && pods
                .iter()
                .all(|p| ready(p) && p["spec"]["containers"][0]["image"] == "busybox:1.36");
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout did not finish: {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        min_ready >= 3,
        "ready pods dropped to {min_ready}, below replicas - maxUnavailable = 3"
    );
    let (rss, _) = c
        .list(
            "replicasets.apps",
            &ListParams {
                namespace: Some("default".into()),
                ..Default::default()
            },
        )
        .await
        .expect("rs");
    let mut revisions: Vec<(String, i64)> = rss
        .iter()
        .map(|r| {
            (
                r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                r["spec"]["replicas"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    revisions.sort();
    assert_eq!(revisions, vec![("1".to_string(), 0), ("2".to_string(), 4)]);
    stop.cancel();
    let _ = agents.await;
}

fn job(name: &str, completions: i64, parallelism: i64, exit: i64) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": 2,
                 "template": {"metadata": {"labels": {"app": name, "fake-exit": exit.to_string()}},
                              "spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "c", "image": "busybox:1.36"}]}}}})
}

async fn wait_job_condition(c: &Client, name: &str, ctype: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let j = c.get("jobs.batch", "default", name).await.expect("job");
        if j["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == ctype && c["status"] == "True"))
        {
            return j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {name} never {ctype}: {}",
            j["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_completes_exactly_its_completions_and_a_failing_one_stops_at_backoff_limit() {
    let cluster = Cluster::start_with(1, &["--job-backoff-base-ms", "100"]);
    let c = cluster.client();
    c.create("nodes", &node("n1", "8", json!({"kubernetes.io/hostname": "n1"})))
        .await
        .expect("node");
    let stop = tokio_util::sync::CancellationToken::new();
    let agents = fake_agents(cluster.client(), stop.clone());

    c.create("jobs.batch", &job("five", 5, 2, 0)).await.expect("job");
    let j = wait_job_condition(&c, "five", "Complete").await;
    assert_eq!(j["status"]["succeeded"], 5);
    let pods = pods_of(&c, "five").await;
    let succeeded = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Succeeded")
        .count();
    assert_eq!(
        (pods.len(), succeeded),
        (5, 5),
        "exactly 5 pods ran, all succeeded"
    );
    assert!(pods.iter().all(|p| p["metadata"]["labels"]["job-name"] == "five"));

    c.create("jobs.batch", &job("doomed", 1, 1, 1))
        .await
        .expect("job");
    let j = wait_job_condition(&c, "doomed", "Failed").await;
    let cond = j["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Failed").cloned())
        .expect("failed condition");
    assert_eq!(cond["reason"], "BackoffLimitExceeded");
    assert_eq!(j["status"]["failed"], 3, "backoffLimit 2 allows 3 attempts");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pods_of(&c, "doomed").await.len(), 3, "no attempt after the limit");
    stop.cancel();
    let _ = agents.await;
}

/// Every `resource` object labelled `app={app}` in the default namespace
/// (none while the list fails; callers poll).
async fn labelled(c: &Client, resource: &str, app: &str) -> Vec<Value> {
    c.list(
        resource,
        &ListParams {
            namespace: Some("default".into()),
            label_selector: format!("app={app}"),
            ..Default::default()
        },
    )
    .await
    .map(|(items, _)| items)
    .unwrap_or_default()
}

/// Every pod of `app`, terminating ones included.
async fn all_pods_of(c: &Client, app: &str) -> Vec<Value> {
    labelled(c, "pods", app).await
}

/// The chaos runs found Jobs losing completions when a finished pod
/// disappeared (its node lost, a forced delete) and the Job recounted
/// from the pods left. Counts are now kept in the Job and each pod is
/// counted once: force-deleting finished pods changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_completions_are_counted_once_even_when_finished_pods_vanish() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    c.create("nodes", &node("n1", "8", json!({"kubernetes.io/hostname": "n1"})))
        .await
        .expect("node");
    let stop = tokio_util::sync::CancellationToken::new();
    let agents = fake_agents(cluster.client(), stop.clone());

    c.create("jobs.batch", &job("tally", 4, 1, 0)).await.expect("job");
    // Remove each pod as soon as it has succeeded, the way a lost node's
    // pods are removed.
    let mut removed = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let j = loop {
        for p in all_pods_of(&c, "tally").await {
            let name = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
            if p["status"]["phase"] == "Succeeded" && removed.insert(name.clone()) {
                let opts = rk_client::DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                };
                c.delete("pods", "default", &name, &opts)
                    .await
                    .expect("force delete");
            }
        }
        let j = c.get("jobs.batch", "default", "tally").await.expect("job");
        let complete = j["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
        });
        if complete {
            break j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job never completed: {}",
            j["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(j["status"]["succeeded"], 4, "status: {}", j["status"]);
    assert!(
        removed.len() >= 3,
        "the test removed finished pods while the Job ran: {removed:?}"
    );
    // Exactly 4 pods ever ran: the ones removed plus the ones left.
    wait_until("the last pod released", || async {
        all_pods_of(&c, "tally").await.iter().all(|p| {
            p["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
        })
    })
    .await;
    let left: Vec<String> = all_pods_of(&c, "tally")
        .await
        .iter()
        .filter(|p| !removed.contains(p["metadata"]["name"].as_str().unwrap_or_default()))
        .map(|p| p["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        removed.len() + left.len(),
        4,
        "removed {removed:?}, left {left:?}"
    );

    // Deleting the Job strands nothing, finalizers or not.
    c.create("jobs.batch", &job("held", 2, 2, 0)).await.expect("job");
    wait_until("held's pods created", || async {
        all_pods_of(&c, "held").await.len() == 2
    })
    .await;
    c.delete(
        "jobs.batch",
        "default",
        "held",
        &rk_client::DeleteOptions::default(),
    )
    .await
    .expect("delete job");
    wait_until("held's pods gone", || async {
        all_pods_of(&c, "held").await.is_empty()
    })
    .await;
    stop.cancel();
    let _ = agents.await;
}

async fn wait_until<F, Fut>(what: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_owners_collects_orphans_or_keeps_them_and_namespaces_empty_out() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    c.create("nodes", &node("n1", "8", json!({"kubernetes.io/hostname": "n1"})))
        .await
        .expect("node");
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "gone", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "gone"}},
                 "template": {"metadata": {"labels": {"app": "gone"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}});
    c.create("deployments.apps", &d).await.expect("deployment");
    wait_pods(&c, "gone", "2 pods", |p| p.len() == 2).await;
    // Background: the Deployment goes at once, its ReplicaSet and pods follow.
    c.delete("deployments.apps", "default", "gone", &Default::default())
        .await
        .expect("delete");
    wait_pods(&c, "gone", "pods collected", |p| p.is_empty()).await;
    let list = ListParams {
        namespace: Some("default".into()),
        ..Default::default()
    };
    wait_until("replicaset collected", || async {
        c.list("replicasets.apps", &list)
            .await
            .map(|(i, _)| i.is_empty())
            .unwrap_or(false)
    })
    .await;

    // Orphan: the ReplicaSet goes, its pods stay, released.
    c.create("replicasets.apps", &replicaset("keep", 2))
        .await
        .expect("rs");
    wait_pods(&c, "keep", "2 pods", |p| p.len() == 2).await;
    let orphan = rk_client::DeleteOptions {
        propagation_policy: Some("Orphan".into()),
        ..Default::default()
    };
    c.delete("replicasets.apps", "default", "keep", &orphan)
        .await
        .expect("delete orphan");
    wait_until("the orphaning delete to finish", || async {
        c.get("replicasets.apps", "default", "keep").await.is_err()
    })
    .await;
    let pods = pods_of(&c, "keep").await;
    assert_eq!(pods.len(), 2, "orphaned pods remain");
    assert!(pods.iter().all(|p| p["metadata"]["ownerReferences"]
        .as_array()
        .is_none_or(|r| r.is_empty())));

    // A namespace being deleted is emptied, then removed.
    c.create(
        "namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}}),
    )
    .await
    .expect("ns");
    c.create(
        "configmaps",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "tmp"}}),
    )
    .await
    .expect("cm");
    let ns = c
        .delete("namespaces", "", "tmp", &Default::default())
        .await
        .expect("delete ns");
    assert_eq!(ns["status"]["phase"], "Terminating");
    wait_until("namespace removed", || async {
        c.get("namespaces", "", "tmp").await.is_err()
    })
    .await;
    let err = c
        .get("configmaps", "tmp", "x")
        .await
        .expect_err("content deleted");
    assert_eq!(err.reason, rk_client::Reason::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjob_starts_one_job_per_scheduled_minute() {
    use k8s_openapi::jiff::Timestamp;
    // The controllers run on a test clock (see tests/cronjob.rs), moved to
    // the next minute rather than waited for.
    let clock_dir = tempfile::tempdir().expect("tempdir");
    let clock = clock_dir.path().join("clock");
    let set_clock = |t: Timestamp| {
        let tmp = clock_dir.path().join("clock.tmp");
        std::fs::write(&tmp, t.to_string()).expect("write clock");
        std::fs::rename(&tmp, &clock).expect("move clock");
    };
    set_clock(Timestamp::now());
    let cluster = Cluster::start_with(1, &["--test-clock-file", &clock.display().to_string()]);
    let c = cluster.client();
    c.create("nodes", &node("n1", "8", json!({"kubernetes.io/hostname": "n1"})))
        .await
        .expect("node");
    let stop = tokio_util::sync::CancellationToken::new();
    let agents = fake_agents(cluster.client(), stop.clone());
    let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                 "jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "tick", "fake-exit": "0"}},
                     "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}});
    let created = c.create("cronjobs.batch", &cj).await.expect("cronjob");
    let created: Timestamp = created["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("creationTimestamp");
    let minute = (created.as_second().div_euclid(60) + 1) * 60;
    set_clock(Timestamp::from_second(minute + 1).expect("next minute"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let jobs = loop {
        let (jobs, _) = c
            .list(
                "jobs.batch",
                &ListParams {
                    namespace: Some("default".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("jobs");
        if !jobs.is_empty() {
            break jobs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled run for the next minute"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(jobs.len(), 1, "exactly one run for the minute");
    let name = jobs[0]["metadata"]["name"].as_str().unwrap_or("");
    assert_eq!(name, format!("tick-{}", minute / 60));
    let cj = c.get("cronjobs.batch", "default", "tick").await.expect("cronjob");
    assert!(cj["status"]["lastScheduleTime"].is_string(), "{}", cj["status"]);
    wait_job_condition(&c, name, "Complete").await;
    // Deleting the CronJob collects its Jobs (and their pods).
    c.delete("cronjobs.batch", "default", "tick", &Default::default())
        .await
        .expect("delete");
    wait_until("jobs collected", || async {
        c.list(
            "jobs.batch",
            &ListParams {
                namespace: Some("default".into()),
                ..Default::default()
            },
        )
        .await
        .map(|(j, _)| j.is_empty())
        .unwrap_or(false)
    })
    .await;
    stop.cancel();
    let _ = agents.await;
}

fn lease(node: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 5, "renewTime": now_micro()}})
}

fn now_micro() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    k8s_openapi::jiff::Timestamp::from_second(d.as_secs() as i64)
        .map(|t| format!("{}", t).replace('Z', ".000000Z"))
        .unwrap_or_default()
}

/// Renews `node`'s Lease every 500 ms until `stop`, like an agent.
fn renew(
    c: Client,
    node: &'static str,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            if let Ok(mut l) = c.get("leases.coordination.k8s.io", "kube-node-lease", node).await {
                l["spec"]["renewTime"] = json!(now_micro());
                let _ = c.update("leases.coordination.k8s.io", &l).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// A node registered with a Lease that is renewed every 500 ms, standing
/// in for its agent, until `lose` stops the renewals.
struct LeasedNode {
    stop: tokio_util::sync::CancellationToken,
    renewing: tokio::task::JoinHandle<()>,
}

impl LeasedNode {
    async fn lose(self) {
        self.stop.cancel();
        let _ = self.renewing.await;
    }
}

async fn leased_nodes(cluster: &Cluster, names: [&'static str; 2]) -> [LeasedNode; 2] {
    let c = cluster.client();
    for n in names {
        c.create("nodes", &node(n, "4", json!({"kubernetes.io/hostname": n})))
            .await
            .expect("node");
        c.create("leases.coordination.k8s.io", &lease(n))
            .await
            .expect("lease");
    }
    names.map(|n| {
        let stop = tokio_util::sync::CancellationToken::new();
        let renewing = renew(cluster.client(), n, stop.clone());
        LeasedNode { stop, renewing }
    })
}

fn unreachable_taint(n: &Value) -> bool {
    n["spec"]["taints"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_renewing_its_lease_is_tainted_and_its_pods_move() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    let [n1, n2] = leased_nodes(&cluster, ["n1", "n2"]).await;
    c.create("replicasets.apps", &replicaset("mover", 2))
        .await
        .expect("rs");
    let pods = wait_pods(&c, "mover", "2 bound pods", |p| p.len() == 2 && all_bound(p)).await;
    assert!(
        pods.iter().any(|p| p["spec"]["nodeName"] == "n1"),
        "one pod on n1 to begin with"
    );
    // A finished Pod on n1 (a Job's completion, say) outlives the node.
    let mut done = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "finished", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox:1.36"}]}});
    let created = c.create("pods", &done).await.expect("finished pod");
    done = created;
    done["status"] = json!({"phase": "Succeeded"});
    c.update_status("pods", &done).await.expect("mark it Succeeded");

    // n1 "dies": its lease stops being renewed.
    n1.lose().await;
    let lost_at = tokio::time::Instant::now();
    let deadline = lost_at + Duration::from_secs(20);
    loop {
        let pods = pods_of(&c, "mover").await;
        if pods.len() == 2 && all_bound(&pods) && pods.iter().all(|p| p["spec"]["nodeName"] == "n2") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pods did not move off n1: {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lost_at.elapsed() < Duration::from_secs(10),
        "replacement took {:?}",
        lost_at.elapsed()
    );
    assert_eq!(
        c.get("pods", "default", "finished")
            .await
            .expect("the finished pod is kept")["status"]["phase"],
        "Succeeded"
    );
    let n1 = c.get("nodes", "", "n1").await.expect("n1");
    assert!(n1["spec"]["taints"].as_array().is_some_and(|t| t
        .iter()
        .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute")));
    let ready = n1["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
        .expect("ready condition");
    assert_eq!(ready["status"], "Unknown");

    // It comes back: the taint is lifted.
    let back = tokio_util::sync::CancellationToken::new();
    let r1 = renew(cluster.client(), "n1", back.clone());
    wait_until("the unreachable taint lifted", || async {
        c.get("nodes", "", "n1")
            .await
            .is_ok_and(|n| !unreachable_taint(&n))
    })
    .await;
    back.cancel();
    let _ = r1.await;
    n2.lose().await;
}

/// Slow machines (emulated VMs) get a longer grace: with
/// `--node-monitor-grace-period 8` a node is still trusted well past the
/// 5 s default, and its Pods stay for `--default-unreachable-toleration-seconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_grace_period_and_default_toleration_are_flags() {
    let cluster = Cluster::start_with(
        1,
        &[
            "--node-monitor-grace-period",
            "8",
            "--default-unreachable-toleration-seconds",
            "3",
        ],
    );
    let c = cluster.client();
    let [slow1, slow2] = leased_nodes(&cluster, ["slow1", "slow2"]).await;
    c.create("replicasets.apps", &replicaset("patient", 2))
        .await
        .expect("rs");
    wait_pods(&c, "patient", "2 bound pods", |p| {
        p.len() == 2 && all_bound(p) && p.iter().any(|p| p["spec"]["nodeName"] == "slow1")
    })
    .await;

    slow1.lose().await;
    let lost_at = tokio::time::Instant::now();
    // Renewals come every 500 ms and are compared in whole seconds, so the
    // taint lands between 7 and 9 s after the last one.
    tokio::time::sleep(Duration::from_millis(6000)).await;
    let n1 = c.get("nodes", "", "slow1").await.expect("slow1");
    assert!(
        !unreachable_taint(&n1),
        "tainted after {:?}, before the 8 s grace: {n1}",
        lost_at.elapsed()
    );
    wait_until("slow1 tainted unreachable", || async {
        c.get("nodes", "", "slow1")
            .await
            .is_ok_and(|n| unreachable_taint(&n))
    })
    .await;
    let tainted_after = lost_at.elapsed();
    // The Pod on slow1 stays for the 3 s toleration, then moves.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pods = pods_of(&c, "patient").await;
    assert!(
        pods.iter().any(|p| p["spec"]["nodeName"] == "slow1"),
        "the pod left slow1 before its 3 s toleration ({tainted_after:?} after the last renewal): {pods:?}"
    );
    wait_pods(&c, "patient", "both pods on slow2", |p| {
        p.len() == 2 && all_bound(p) && p.iter().all(|p| p["spec"]["nodeName"] == "slow2")
    })
    .await;
    slow2.lose().await;
}

fn daemonset(name: &str, image: &str, strategy: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "updateStrategy": strategy,
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": image,
                                       "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}]}}}})
}

fn nodes_of(pods: &[Value]) -> std::collections::BTreeSet<String> {
    pods.iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
        .collect()
}

async fn revisions_of(c: &Client, app: &str) -> Vec<Value> {
    labelled(c, "controllerrevisions.apps", app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_puts_one_pod_on_every_eligible_node_as_nodes_come_and_go() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    for n in ["n1", "n2"] {
        c.create("nodes", &node(n, "2", json!({"kubernetes.io/hostname": n})))
            .await
            .expect("node");
    }
    let mut tainted = node("tainted", "2", json!({"kubernetes.io/hostname": "tainted"}));
    tainted["spec"] = json!({"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]});
    c.create("nodes", &tainted).await.expect("tainted node");
    let stop = tokio_util::sync::CancellationToken::new();
    let agents = fake_agents(cluster.client(), stop.clone());
    c.create(
        "daemonsets.apps",
        &daemonset("daemon", "busybox:1.36", json!({"type": "RollingUpdate"})),
    )
    .await
    .expect("daemonset");

    let pods = wait_pods(&c, "daemon", "a ready pod on n1 and n2", |p| {
        p.len() == 2 && all_bound(p) && p.iter().all(ready)
    })
    .await;
    assert_eq!(nodes_of(&pods), ["n1", "n2"].map(String::from).into());
    let revisions = revisions_of(&c, "daemon").await;
    assert_eq!(revisions.len(), 1, "one ControllerRevision: {revisions:?}");
    let hash = revisions[0]["metadata"]["labels"]["controller-revision-hash"].clone();
    assert_eq!(
        revisions[0]["metadata"]["name"],
        format!("daemon-{}", hash.as_str().unwrap_or("?"))
    );
    assert_eq!(revisions[0]["revision"], 1);
    for p in &pods {
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["controller"], &owner["blockOwnerDeletion"]),
            (&json!("DaemonSet"), &json!(true), &json!(true))
        );
        assert_eq!(p["metadata"]["labels"]["controller-revision-hash"], hash);
        let term = &p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0];
        assert_eq!(
            term["values"][0], p["spec"]["nodeName"],
            "created for the node it runs on"
        );
    }
    wait_until("the DaemonSet status", || async {
        c.get("daemonsets.apps", "default", "daemon")
            .await
            .is_ok_and(|d| {
                let s = &d["status"];
                s["desiredNumberScheduled"] == 2
                    && s["currentNumberScheduled"] == 2
                    && s["numberReady"] == 2
                    && s["numberAvailable"] == 2
                    && s["updatedNumberScheduled"] == 2
                    && s["numberMisscheduled"] == 0
                    && s["observedGeneration"] == 1
            })
    })
    .await;

    // A node that joins later gets its pod.
    c.create("nodes", &node("n3", "2", json!({"kubernetes.io/hostname": "n3"})))
        .await
        .expect("node n3");
    let pods = wait_pods(&c, "daemon", "a pod on n3 as well", |p| {
        p.len() == 3 && all_bound(p) && nodes_of(p).len() == 3
    })
    .await;
    assert!(!nodes_of(&pods).contains("tainted"));

    // A node that leaves takes its pod with it.
    c.delete("nodes", "", "n2", &Default::default())
        .await
        .expect("delete n2");
    let pods = wait_pods(&c, "daemon", "n2's pod gone", |p| {
        p.len() == 2 && nodes_of(p) == ["n1", "n3"].map(String::from).into()
    })
    .await;
    assert_eq!(pods.len(), 2);

    // Deleting the DaemonSet takes its Pods and its history with it.
    c.delete("daemonsets.apps", "default", "daemon", &Default::default())
        .await
        .expect("delete the daemonset");
    wait_pods(&c, "daemon", "the daemon pods collected", |p| p.is_empty()).await;
    wait_until("the revisions collected", || async {
        revisions_of(&c, "daemon").await.is_empty()
    })
    .await;
    stop.cancel();
    let _ = agents.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_rolls_one_node_at_a_time_and_on_delete_waits_for_deletes() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    for n in ["n1", "n2", "n3"] {
        c.create("nodes", &node(n, "2", json!({"kubernetes.io/hostname": n})))
            .await
            .expect("node");
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let agents = fake_agents(cluster.client(), stop.clone());
    c.create(
        "daemonsets.apps",
        &daemonset(
            "roller",
            "busybox:1.35",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
        ),
    )
    .await
    .expect("daemonset");
    wait_pods(&c, "roller", "3 ready pods", |p| {
        p.len() == 3 && p.iter().all(ready)
    })
    .await;

    let image_of = |p: &Value| {
        p["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    modify(&c, "daemonsets.apps", "default", "roller", |ds| {
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.36")
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut min_ready = usize::MAX;
    loop {
        let pods = pods_of(&c, "roller").await;
        // Every node keeps its daemon except the at most one being replaced.
        let ready_nodes = nodes_of(&pods.iter().filter(|p| ready(p)).cloned().collect::<Vec<_>>());
        min_ready = min_ready.min(ready_nodes.len());
        let done = pods.len() == 3 && pods.iter().all(|p| ready(p) && image_of(p) == "busybox:1.36");
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout did not finish: {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        min_ready >= 2,
        "nodes with a ready daemon dropped to {min_ready}, below 3 - maxUnavailable"
    );
    let mut numbers: Vec<i64> = revisions_of(&c, "roller")
        .await
        .iter()
        .filter_map(|r| r["revision"].as_i64())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2], "a second ControllerRevision");
    wait_until("updatedNumberScheduled 3", || async {
        c.get("daemonsets.apps", "default", "roller")
            .await
            .is_ok_and(|d| d["status"]["updatedNumberScheduled"] == 3 && d["status"]["numberReady"] == 3)
    })
    .await;

    // OnDelete: a new template changes nothing until a pod is deleted.
    modify(&c, "daemonsets.apps", "default", "roller", |ds| {
        ds["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.37");
    })
    .await;
    wait_until("a third revision", || async {
        revisions_of(&c, "roller").await.len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pods = pods_of(&c, "roller").await;
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter().all(|p| image_of(p) == "busybox:1.36"),
        "OnDelete replaced pods by itself: {pods:?}"
    );
    let victim = pods[0]["metadata"]["name"].as_str().unwrap_or("").to_string();
    let victim_node = pods[0]["spec"]["nodeName"].clone();
    c.delete("pods", "default", &victim, &Default::default())
        .await
        .expect("delete a pod");
    let pods = wait_pods(&c, "roller", "a replacement from the new template", |p| {
        p.len() == 3 && p.iter().all(ready) && p.iter().any(|p| image_of(p) == "busybox:1.37")
    })
    .await;
    let (new, old): (Vec<&Value>, Vec<&Value>) = pods.iter().partition(|p| image_of(p) == "busybox:1.37");
    assert_eq!((new.len(), old.len()), (1, 2));
    assert_eq!(new[0]["spec"]["nodeName"], victim_node);
    stop.cancel();
    let _ = agents.await;
}
