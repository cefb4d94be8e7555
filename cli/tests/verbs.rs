//! The operator's verbs (describe, scale, rollout, set image, label,
//! annotate, cordon, drain, api-resources, cluster-info, config) against a
//! real single-replica control plane running the controllers. No node
//! agents: Nodes are registered through the API and a fake agent marks
//! bound Pods Running and Ready and confirms their deletion, as
//! control-plane/tests/controllers.rs does.

use rk_client::{Client, ListParams};
use rk_testkit::Cluster;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

mod common;
use common::{ok, rk};

/// Runs rkctl and insists on failure with exactly this one stderr line.
async fn fails(conf: &Path, args: &[&str], line: &str) {
    let o = rk(conf, args).await;
    assert_eq!(o.code, 1, "rkctl {args:?} should fail: {o:?}");
    assert_eq!(o.stderr.trim_end(), line, "rkctl {args:?}: {o:?}");
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": "2026-11-27T00:00:00Z", "lastTransitionTime": "2026-11-27T00:00:00Z"}]}})
}

/// Marks bound Pods Running and Ready (except those labelled stuck=yes)
/// and confirms the deletion of bound Pods, as a node agent would.
fn fake_agents(c: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (pods, _) = c.list("pods", &ListParams::default()).await.unwrap_or_default();
            for mut p in pods {
                let ns = p["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string();
                let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
                let bound = p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
                if bound && !p["metadata"]["deletionTimestamp"].is_null() {
                    let opts = rk_client::DeleteOptions {
                        grace_period_seconds: Some(0),
                        ..Default::default()
                    };
                    let _ = c.delete("pods", &ns, &name, &opts).await;
                    continue;
                }
                if !bound || p["status"]["phase"] == "Running" || p["metadata"]["labels"]["stuck"] == "yes" {
                    continue;
                }
                let now = "2026-11-27T00:00:00Z";
                p["status"]["phase"] = json!("Running");
                p["status"]["conditions"] =
                    json!([{"type": "Ready", "status": "True", "lastTransitionTime": now}]);
                p["status"]["containerStatuses"] = json!([{"name": "web", "ready": true, "restartCount": 0,
                    "image": p["spec"]["containers"][0]["image"], "imageID": "", "started": true,
                    "state": {"running": {"startedAt": now}}}]);
                let _ = c.update_status("pods", &p).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn deployment(name: &str, replicas: i64, extra_labels: Value, deadline: i64) -> Value {
    let mut labels = json!({"app": name});
    if let (Some(l), Some(extra)) = (labels.as_object_mut(), extra_labels.as_object()) {
        l.extend(extra.clone());
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": deadline,
                 "selector": {"matchLabels": {"app": name}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}]}}}})
}

async fn get(c: &Client, resource: &str, name: &str) -> Value {
    let ns = if resource == "nodes" { "" } else { "default" };
    c.get(resource, ns, name).await.expect("get")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_rollouts() {
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    let c = cluster.client();
    c.create("nodes", &node("n1")).await.expect("node");
    let agents = fake_agents(cluster.client());
    c.create("deployments.apps", &deployment("web", 1, json!({}), 600))
        .await
        .expect("deployment");

    let out = ok(
        &conf,
        &["rollout", "status", "deployment/web", "--timeout", "60s"],
    )
    .await;
    assert_eq!(
        out.lines().last(),
        Some("deployment \"web\" successfully rolled out"),
        "{out}"
    );

    // Scale, with and without a precondition.
    assert_eq!(
        ok(&conf, &["scale", "deployment/web", "--replicas", "2"]).await,
        "deployment.apps/web scaled\n"
    );
    fails(
        &conf,
        &[
            "scale",
            "deploy",
            "web",
            "--replicas",
            "3",
            "--current-replicas",
            "5",
        ],
        "error: Expected replicas to be 5, was 2",
    )
    .await;
    assert_eq!(get(&c, "deployments.apps", "web").await["spec"]["replicas"], 2);
    fails(
        &conf,
        &["scale", "pod/x", "--replicas", "1"],
        "error: cannot scale pods: only deployments, replicasets and jobs can be scaled",
    )
    .await;
    let out = ok(&conf, &["rollout", "status", "deploy/web", "--timeout", "60s"]).await;
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    assert_eq!(
        get(&c, "deployments.apps", "web").await["status"]["availableReplicas"],
        2
    );

    // A new image makes revision 2.
    assert_eq!(
        ok(&conf, &["set", "image", "deployment/web", "web=busybox:1.37"]).await,
        "deployment.apps/web image updated\n"
    );
    fails(
        &conf,
        &["set", "image", "deployment/web", "nope=busybox:1.37"],
        "error: unable to find container named \"nope\"",
    )
    .await;
    ok(
        &conf,
        &["rollout", "status", "deployment/web", "--timeout", "60s"],
    )
    .await;
    let out = ok(&conf, &["rollout", "history", "deployment/web"]).await;
    assert_eq!(
        out,
        "deployment.apps/web\nREVISION   CHANGE-CAUSE\n1          <none>\n2          <none>\n\n"
    );
    let out = ok(
        &conf,
        &["rollout", "history", "deployment/web", "--revision", "1"],
    )
    .await;
    assert!(
        out.starts_with("deployment.apps/web with revision #1\nPod Template:\n"),
        "{out}"
    );
    assert!(
        out.contains("Image:        busybox:1.36") || out.contains("busybox:1.36"),
        "{out}"
    );
    assert!(!out.contains("busybox:1.37"), "{out}");

    // Undo goes back to revision 1's template, which becomes revision 3.
    assert_eq!(
        ok(&conf, &["rollout", "undo", "deployment/web"]).await,
        "deployment.apps/web rolled back\n"
    );
    let d = get(&c, "deployments.apps", "web").await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    assert!(d["spec"]["template"]["metadata"]["labels"]["pod-template-hash"].is_null());
    ok(
        &conf,
        &["rollout", "status", "deployment/web", "--timeout", "60s"],
    )
    .await;
    let out = ok(&conf, &["rollout", "history", "deployment/web"]).await;
    assert!(
        out.contains("\n2  ") && out.contains("\n3  ") && !out.contains("\n1  "),
        "{out}"
    );
    fails(
        &conf,
        &["rollout", "undo", "deployment/web", "--to-revision", "9"],
        "error: unable to find specified revision 9 in history",
    )
    .await;

    // Pause, resume and restart.
    assert_eq!(
        ok(&conf, &["rollout", "pause", "deployment/web"]).await,
        "deployment.apps/web paused\n"
    );
    fails(
        &conf,
        &["rollout", "pause", "deployment/web"],
        "error: deployments.apps \"web\" is already paused",
    )
    .await;
    fails(
        &conf,
        &["rollout", "restart", "deployment/web"],
        "error: deployments.apps \"web\" can't restart paused deployment (run rollout resume first)",
    )
    .await;
    assert_eq!(get(&c, "deployments.apps", "web").await["spec"]["paused"], true);
    assert_eq!(
        ok(&conf, &["rollout", "resume", "deployment/web"]).await,
        "deployment.apps/web resumed\n"
    );
    assert_eq!(
        ok(&conf, &["rollout", "restart", "deployment/web"]).await,
        "deployment.apps/web restarted\n"
    );
    let d = get(&c, "deployments.apps", "web").await;
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string(),
        "{d}"
    );
    ok(
        &conf,
        &["rollout", "status", "deployment/web", "--timeout", "60s"],
    )
    .await;

    // Describe shows the rollout's ReplicaSets.
    let out = ok(&conf, &["describe", "deployment", "web"]).await;
    assert!(
        out.starts_with("Name:                   web\nNamespace:              default\n"),
        "{out}"
    );
    assert!(
        out.contains("Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable"),
        "{out}"
    );
    assert!(out.contains("\nNewReplicaSet:   web-"), "{out}");

    // A rollout whose Pods never become ready: --timeout, then the
    // controller's progress deadline.
    c.create(
        "deployments.apps",
        &deployment("stuck", 1, json!({"stuck": "yes"}), 2),
    )
    .await
    .expect("deployment");
    let o = rk(
        &conf,
        &["rollout", "status", "deployment/stuck", "--timeout", "1s"],
    )
    .await;
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.ends_with("error: timed out waiting for the condition\n"),
        "{o:?}"
    );
    let o = rk(
        &conf,
        &["rollout", "status", "deployment/stuck", "--timeout", "60s"],
    )
    .await;
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(
        o.stderr, "error: deployment \"stuck\" exceeded its progress deadline\n",
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains("Waiting for deployment \"stuck\" rollout to finish"),
        "{o:?}"
    );
    let o = rk(&conf, &["rollout", "status", "deployment/stuck", "--watch=false"]).await;
    assert_eq!(o.code, 1, "{o:?}");

    fails(
        &conf,
        &["rollout", "status", "deployment/nope"],
        "Error from server (NotFound): deployments.apps \"nope\" not found",
    )
    .await;
    fails(
        &conf,
        &["rollout", "history", "configmap/x"],
        "error: no history viewer has been implemented for configmaps",
    )
    .await;
    agents.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_nodes_drain_and_describe() {
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    let c = cluster.client();
    for n in ["n1", "n2"] {
        c.create("nodes", &node(n)).await.expect("node");
    }
    let agents = fake_agents(cluster.client());

    // A Pod no controller manages, bound to n1, with an Event about it.
    let bare = c
        .create(
            "pods",
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "namespace": "default"},
                    "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "busybox:1.36"}]}}),
        )
        .await
        .expect("pod");
    c.create(
        "events",
        &json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "bare.1", "namespace": "default"},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "bare", "namespace": "default",
                                   "uid": bare["metadata"]["uid"]},
                "reason": "Testing", "message": "hello from the test", "type": "Warning",
                "source": {"component": "verbs-test"}, "count": 1,
                "firstTimestamp": "2026-11-27T00:00:00Z", "lastTimestamp": "2026-11-27T00:00:00Z"}),
    )
    .await
    .expect("event");

    // label and annotate, with kubectl's --overwrite rule.
    assert_eq!(
        ok(&conf, &["label", "pod", "bare", "tier=web"]).await,
        "pod/bare labeled\n"
    );
    fails(
        &conf,
        &["label", "pod", "bare", "tier=db"],
        "error: 'tier' already has a value (web), and --overwrite is false",
    )
    .await;
    assert_eq!(
        ok(&conf, &["label", "pod/bare", "tier=db", "--overwrite"]).await,
        "pod/bare labeled\n"
    );
    assert_eq!(
        ok(&conf, &["label", "pod", "bare", "tier=db"]).await,
        "pod/bare not labeled\n"
    );
    assert_eq!(get(&c, "pods", "bare").await["metadata"]["labels"]["tier"], "db");
    assert_eq!(
        ok(&conf, &["label", "pod", "bare", "tier-"]).await,
        "pod/bare unlabeled\n"
    );
    assert!(get(&c, "pods", "bare").await["metadata"]["labels"]["tier"].is_null());
    assert_eq!(
        ok(&conf, &["annotate", "pod", "bare", "example.com/owner=ops"]).await,
        "pod/bare annotated\n"
    );
    fails(
        &conf,
        &["annotate", "pod", "bare", "example.com/owner=dev"],
        "error: 'example.com/owner' already has a value (ops), and --overwrite is false",
    )
    .await;
    fails(
        &conf,
        &["label", "pod", "nope", "a=b"],
        "Error from server (NotFound): pods \"nope\" not found",
    )
    .await;

    // describe: the Pod with its Event; error paths.
    let out = ok(&conf, &["describe", "pod", "bare"]).await;
    assert!(
        out.starts_with("Name:             bare\nNamespace:        default\n"),
        "{out}"
    );
    assert!(
        out.contains("\nAnnotations:      example.com/owner: ops\n"),
        "{out}"
    );
    assert!(out.contains("\nNode:             n1\n"), "{out}");
    assert!(out.contains("\nEvents:\n  Type     Reason   Age"), "{out}");
    assert!(out.contains("Warning  Testing  "), "{out}");
    assert!(out.contains("verbs-test  hello from the test\n"), "{out}");
    fails(
        &conf,
        &["describe", "pod", "nope"],
        "Error from server (NotFound): pods \"nope\" not found",
    )
    .await;
    fails(
        &conf,
        &["describe", "widgets"],
        "error: the server doesn't have a resource type \"widgets\"",
    )
    .await;
    let out = ok(&conf, &["describe", "node", "n1"]).await;
    assert!(out.contains("Non-terminated Pods:"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  default ") && l.contains(" bare ")),
        "{out}"
    );

    // cordon and uncordon.
    assert_eq!(ok(&conf, &["cordon", "n2"]).await, "node/n2 cordoned\n");
    assert_eq!(ok(&conf, &["cordon", "n2"]).await, "node/n2 already cordoned\n");
    assert_eq!(get(&c, "nodes", "n2").await["spec"]["unschedulable"], true);
    assert_eq!(ok(&conf, &["uncordon", "node/n2"]).await, "node/n2 uncordoned\n");
    assert_eq!(
        ok(&conf, &["uncordon", "n2"]).await,
        "node/n2 already uncordoned\n"
    );
    assert!(get(&c, "nodes", "n2").await["spec"]["unschedulable"].is_null());

    // Two ReplicaSet Pods pinned to n1, and a DaemonSet Pod on n1.
    c.create(
        "replicasets.apps",
        &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "pinned", "namespace": "default"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "pinned"}},
                         "template": {"metadata": {"labels": {"app": "pinned"}},
                                      "spec": {"nodeSelector": {"kubernetes.io/hostname": "n1"},
                                               "containers": [{"name": "web", "image": "busybox:1.36"}]}}}}),
    )
    .await
    .expect("replicaset");
    let ds = c
        .create(
            "daemonsets.apps",
            &json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
                    "spec": {"selector": {"matchLabels": {"app": "agent"}},
                             "template": {"metadata": {"labels": {"app": "agent"}},
                                          "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}]}}}}),
        )
        .await
        .expect("daemonset");
    let on_n1 = |c: Client| async move {
        let params = ListParams {
            field_selector: "spec.nodeName=n1".into(),
            ..Default::default()
        };
        c.list("pods", &params).await.map(|(p, _)| p).unwrap_or_default()
    };
    let owned_by = |p: &Value, kind: &str| {
        p["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r["kind"] == kind))
    };
    // The DaemonSet controller (when the control plane has one) puts a Pod
    // on each node; otherwise make one the way it would.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pods = on_n1(c.clone()).await;
        let rs_ready = pods.iter().filter(|p| owned_by(p, "ReplicaSet")).count() == 2;
        let ds_pod = pods.iter().any(|p| owned_by(p, "DaemonSet"));
        if rs_ready && ds_pod {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            assert!(rs_ready, "ReplicaSet pods on n1: {pods:?}");
            c.create(
                "pods",
                &json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "agent-n1", "namespace": "default", "labels": {"app": "agent"},
                                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                                          "uid": ds["metadata"]["uid"], "controller": true}]},
                        "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "busybox:1.36"}]}}),
            )
            .await
            .expect("daemonset pod");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Without --force and --ignore-daemonsets, drain refuses (after
    // cordoning, as kubectl does).
    let o = rk(&conf, &["drain", "n1"]).await;
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.stdout, "node/n1 cordoned\n");
    assert!(
        o.stderr.starts_with("error: unable to drain node \"n1\" due to error: cannot delete Pods that declare no controller (use --force to override): default/bare; cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/"),
        "{o:?}"
    );
    let rs_pods: Vec<String> = on_n1(c.clone())
        .await
        .iter()
        .filter(|p| owned_by(p, "ReplicaSet"))
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(rs_pods.len(), 2);

    let o = rk(
        &conf,
        &[
            "drain",
            "n1",
            "--ignore-daemonsets",
            "--force",
            "--timeout",
            "60s",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.starts_with("node/n1 already cordoned\n"), "{o:?}");
    assert!(o.stdout.contains("deleting pod default/bare\n"), "{o:?}");
    for p in &rs_pods {
        assert!(o.stdout.contains(&format!("pod/{p} deleted\n")), "{o:?}");
    }
    assert!(o.stdout.ends_with("node/n1 drained\n"), "{o:?}");
    assert!(
        o.stderr
            .contains("Warning: ignoring DaemonSet-managed Pods: default/"),
        "{o:?}"
    );
    assert!(
        o.stderr
            .contains("Warning: deleting Pods that declare no controller: default/bare"),
        "{o:?}"
    );
    let left = on_n1(c.clone()).await;
    assert!(left.iter().all(|p| owned_by(p, "DaemonSet")), "{left:?}");
    assert!(!left.is_empty(), "the DaemonSet Pod stays");
    assert_eq!(get(&c, "nodes", "n1").await["spec"]["unschedulable"], true);
    agents.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_and_config_commands() {
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    let dir = tempfile::tempdir().expect("tmp");
    // A copy, so that use-context does not touch the cluster's own file.
    let copy = dir.path().join("config");
    std::fs::copy(&conf, &copy).expect("copy");

    let out = ok(&copy, &["api-resources"]).await;
    assert!(out.starts_with("NAME "), "{out}");
    assert!(out.contains("\ndeployments "), "{out}");
    let out = ok(&copy, &["api-resources", "--namespaced=false", "-o", "name"]).await;
    assert_eq!(out, "namespaces\nnodes\n");

    let out = ok(&copy, &["cluster-info"]).await;
    let addr = &cluster.replicas[0].addr;
    assert!(
        out.starts_with(&format!(
            "rk control plane is running at https://{addr}\nLeader: replica "
        )),
        "{out}"
    );

    assert_eq!(ok(&copy, &["config", "current-context"]).await, "rk\n");
    let out = ok(&copy, &["config", "view"]).await;
    assert!(out.contains("client-key-data: REDACTED"), "{out}");
    assert!(out.contains("certificate-authority-data: DATA+OMITTED"), "{out}");
    let raw = ok(&copy, &["config", "view", "--raw"]).await;
    assert!(!raw.contains("REDACTED"), "{raw}");
    let out = ok(&copy, &["config", "get-contexts"]).await;
    assert!(
        out.starts_with("CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE\n*         rk     rk"),
        "{out}"
    );
    fails(
        &copy,
        &["config", "use-context", "other"],
        "error: no context exists with the name: \"other\"",
    )
    .await;
    // Add a second context and switch to it.
    let mut file = rk_client::config::ConfigFile::load(&copy).expect("load");
    let mut other = file.contexts[0].clone();
    other.name = "other".into();
    other.context.namespace = "kube-system".into();
    file.contexts.push(other);
    std::fs::write(&copy, file.to_yaml()).expect("write");
    assert_eq!(
        ok(&copy, &["config", "use-context", "other"]).await,
        "Switched to context \"other\".\n"
    );
    assert_eq!(ok(&copy, &["config", "current-context"]).await, "other\n");
    // The new context's namespace is the default for requests.
    let o = rk(&copy, &["get", "pods"]).await;
    assert!(o.stderr.contains("kube-system"), "{o:?}");
}
