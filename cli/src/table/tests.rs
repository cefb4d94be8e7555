//! Golden tests: objects in, table text out, with a fixed "now".

use super::*;
use crate::time::parse_rfc3339;
use rk_api::resources::lookup;
use serde_json::json;

const NOW: &str = "2024-03-01T12:00:00Z";

fn now() -> Millis {
    parse_rfc3339(NOW).expect("valid now")
}

fn render(kind: &str, objs: &[Value], opts: TableOpts) -> String {
    let k = lookup(kind).expect("known kind");
    build(k, objs, now(), opts).render(true)
}

fn plain(kind: &str, objs: &[Value]) -> String {
    render(kind, objs, TableOpts::default())
}

fn meta(name: &str, created: &str) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": created})
}

#[test]
fn pods() {
    let running = json!({
        "metadata": meta("web-1", "2024-03-01T11:59:15Z"),
        "spec": {"nodeName": "node-a", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}
        ]}
    });
    let crashing = json!({
        "metadata": meta("crash", "2024-03-01T11:56:58Z"),
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-03-01T11:59:30Z"}}}
        ]}
    });
    let pending = json!({
        "metadata": meta("new", "2024-03-01T11:55:00Z"),
        "spec": {"containers": [{"name": "a"}]}
    });
    let deleting = json!({
        "metadata": {"name": "old", "creationTimestamp": "2024-02-28T12:00:00Z",
                     "deletionTimestamp": "2024-03-01T11:59:00Z"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    });
    let done = json!({
        "metadata": meta("done", "2024-03-01T09:00:00Z"),
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    });
    let killed = json!({
        "metadata": meta("killed", "2024-03-01T09:00:00Z"),
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Failed", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}
    });
    let init = json!({
        "metadata": meta("init", "2024-03-01T11:00:00Z"),
        "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
        "status": {"phase": "Pending",
            "initContainerStatuses": [
                {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "restartCount": 0, "state": {"running": {}}}],
            "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]}
    });
    let objs = [running, crashing, pending, deleting, done, killed, init];
    assert_eq!(
        plain("pods", &objs),
        "\
NAME     READY   STATUS             RESTARTS      AGE
web-1    2/2     Running            0             45s
crash    0/1     CrashLoopBackOff   3 (30s ago)   3m2s
new      0/1     Pending            0             5m
old      1/1     Terminating        0             2d
done     0/1     Completed          0             3h
killed   0/1     Signal:9           0             3h
init     0/1     Init:1/2           0             60m
"
    );
    let wide = render(
        "po",
        &objs[..3],
        TableOpts {
            wide: true,
            ..Default::default()
        },
    );
    assert_eq!(
        wide,
        "\
NAME    READY   STATUS             RESTARTS      AGE    IP         NODE
web-1   2/2     Running            0             45s    10.0.0.5   node-a
crash   0/1     CrashLoopBackOff   3 (30s ago)   3m2s   <none>     <none>
new     0/1     Pending            0             5m     <none>     <none>
"
    );
}

#[test]
fn all_namespaces_and_kind_prefix() {
    let mut a = json!({"metadata": meta("a", "2024-03-01T11:59:00Z"), "data": {"x": "1", "y": "2"}});
    a["metadata"]["namespace"] = json!("kube-system");
    let b = json!({"metadata": meta("b", "2024-03-01T11:59:00Z")});
    assert_eq!(
        render(
            "cm",
            &[a.clone(), b.clone()],
            TableOpts {
                all_namespaces: true,
                ..Default::default()
            }
        ),
        "\
NAMESPACE     NAME   DATA   AGE
kube-system   a      2      60s
default       b      0      60s
"
    );
    assert_eq!(
        render(
            "cm",
            &[a, b],
            TableOpts {
                kind_prefix: true,
                ..Default::default()
            }
        ),
        "\
NAME          DATA   AGE
configmap/a   2      60s
configmap/b   0      60s
"
    );
    // Cluster-scoped kinds get no NAMESPACE column.
    let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2024-02-01T12:00:00Z"},
                    "status": {"phase": "Active"}});
    assert_eq!(
        render(
            "ns",
            &[ns],
            TableOpts {
                all_namespaces: true,
                ..Default::default()
            }
        ),
        "NAME      STATUS   AGE\ndefault   Active   29d\n"
    );
}

#[test]
fn deployments_replicasets_daemonsets() {
    let d = json!({
        "metadata": meta("web", "2024-03-01T11:57:00Z"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    assert_eq!(
        plain("deploy", std::slice::from_ref(&d)),
        "NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nweb    2/3     3            2           3m\n"
    );
    assert_eq!(
        render(
            "deployments.apps",
            &[d],
            TableOpts {
                wide: true,
                ..Default::default()
            }
        ),
        "\
NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES       SELECTOR
web    2/3     3            2           3m    nginx        nginx:1.25   app=web
"
    );
    let rs = json!({
        "metadata": meta("web-5d8f7", "2024-03-01T11:57:00Z"),
        "spec": {"replicas": 3},
        "status": {"replicas": 3, "readyReplicas": 1}
    });
    assert_eq!(
        plain("rs", &[rs]),
        "NAME        DESIRED   CURRENT   READY   AGE\nweb-5d8f7   3         3         1       3m\n"
    );
    let ds = json!({
        "metadata": meta("agent", "2024-02-29T12:00:00Z"),
        "spec": {"template": {"spec": {"nodeSelector": {"os": "linux", "disk": "ssd"}}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}
    });
    let ds2 = json!({"metadata": meta("logs", "2024-02-29T12:00:00Z")});
    assert_eq!(
        plain("ds", &[ds, ds2]),
        "\
NAME    DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR       AGE
agent   3         3         2       3            2           disk=ssd,os=linux   24h
logs    0         0         0       0            0           <none>              24h
"
    );
}

#[test]
fn jobs_and_cronjobs() {
    let done = json!({
        "metadata": meta("once", "2024-03-01T11:00:00Z"),
        "spec": {"completions": 1},
        "status": {"succeeded": 1, "startTime": "2024-03-01T11:00:00Z",
                   "completionTime": "2024-03-01T11:00:42Z",
                   "conditions": [{"type": "Complete", "status": "True"}]}
    });
    let running = json!({
        "metadata": meta("batch", "2024-03-01T11:58:00Z"),
        "spec": {"completions": 5, "parallelism": 2},
        "status": {"succeeded": 2, "startTime": "2024-03-01T11:58:00Z"}
    });
    let failed = json!({
        "metadata": meta("bad", "2024-03-01T11:58:00Z"),
        "spec": {"parallelism": 3},
        "status": {"conditions": [{"type": "Failed", "status": "True"}]}
    });
    assert_eq!(
        plain("jobs", &[done, running, failed]),
        "\
NAME    STATUS     COMPLETIONS   DURATION   AGE
once    Complete   1/1           42s        60m
batch   Running    2/5           2m         2m
bad     Failed     0/1 of 3                 2m
"
    );
    let cj = json!({
        "metadata": meta("nightly", "2024-02-20T12:00:00Z"),
        "spec": {"schedule": "0 3 * * *", "timeZone": "Etc/UTC", "suspend": true},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": "2024-03-01T03:00:00Z"}
    });
    let cj2 = json!({
        "metadata": meta("often", "2024-03-01T11:00:00Z"),
        "spec": {"schedule": "*/5 * * * *"}
    });
    assert_eq!(
        plain("cj", &[cj, cj2]),
        "\
NAME      SCHEDULE      TIMEZONE   SUSPEND   ACTIVE   LAST SCHEDULE   AGE
nightly   0 3 * * *     Etc/UTC    True      1        9h              10d
often     */5 * * * *   <none>     False     0        <none>          60m
"
    );
}

#[test]
fn nodes() {
    let a = json!({
        "metadata": {"name": "node-a", "creationTimestamp": "2024-02-01T12:00:00Z",
                     "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "nodeInfo": {"kubeletVersion": "v0.1.0"}}
    });
    let b = json!({
        "metadata": {"name": "node-b", "creationTimestamp": "2024-03-01T08:00:00Z"},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "False"}],
                   "nodeInfo": {"kubeletVersion": "v0.1.0"}}
    });
    let c = json!({"metadata": {"name": "node-c"}});
    assert_eq!(
        plain("nodes", &[a, b, c]),
        "\
NAME     STATUS                        ROLES                  AGE         VERSION
node-a   Ready                         control-plane,worker   29d         v0.1.0
node-b   NotReady,SchedulingDisabled   <none>                 4h          v0.1.0
node-c   Unknown                       <none>                 <unknown>   
"
    );
}

#[test]
fn namespaces_configmaps_secrets() {
    let ns = [
        json!({"metadata": {"name": "default", "creationTimestamp": "2024-03-01T11:59:59Z"}, "status": {"phase": "Active"}}),
        json!({"metadata": {"name": "gone", "creationTimestamp": "2024-03-01T11:00:00Z"}, "status": {"phase": "Terminating"}}),
    ];
    assert_eq!(
        plain("namespaces", &ns),
        "NAME      STATUS        AGE\ndefault   Active        1s\ngone      Terminating   60m\n"
    );
    let cm = json!({"metadata": meta("cfg", "2024-03-01T11:00:00Z"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}});
    assert_eq!(
        plain("configmaps", &[cm]),
        "NAME   DATA   AGE\ncfg    2      60m\n"
    );
    let sec = [
        json!({"metadata": meta("tls", "2024-03-01T11:00:00Z"), "type": "kubernetes.io/tls",
               "data": {"tls.crt": "", "tls.key": ""}}),
        json!({"metadata": meta("plain", "2024-03-01T11:00:00Z")}),
    ];
    assert_eq!(
        plain("secret", &sec),
        "\
NAME    TYPE                DATA   AGE
tls     kubernetes.io/tls   2      60m
plain   Opaque              0      60m
"
    );
}

#[test]
fn events() {
    let e1 = json!({
        "metadata": meta("web.1", "2024-03-01T11:50:00Z"),
        "type": "Normal", "reason": "Scheduled",
        "involvedObject": {"kind": "Pod", "name": "web-1"},
        "message": "Successfully assigned default/web-1 to node-a",
        "firstTimestamp": "2024-03-01T11:59:50Z", "lastTimestamp": "2024-03-01T11:59:50Z", "count": 1
    });
    let e2 = json!({
        "metadata": meta("web.2", "2024-03-01T11:50:00Z"),
        "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "crash"},
        "message": "Back-off restarting failed container",
        "firstTimestamp": "2024-03-01T11:50:00Z", "lastTimestamp": "2024-03-01T11:58:00Z", "count": 7
    });
    let e3 = json!({
        "metadata": meta("web.3", "2024-03-01T11:50:00Z"),
        "type": "Normal", "reason": "ScalingReplicaSet",
        "involvedObject": {"kind": "Deployment", "name": "web"},
        "message": "Scaled up replica set web-5d8f7 to 3",
        "eventTime": "2024-03-01T11:57:00.000000Z"
    });
    assert_eq!(
        plain("ev", &[e1.clone(), e2, e3]),
        "\
LAST SEEN          TYPE      REASON              OBJECT           MESSAGE
10s                Normal    Scheduled           pod/web-1        Successfully assigned default/web-1 to node-a
2m (x7 over 10m)   Warning   BackOff             pod/crash        Back-off restarting failed container
3m                 Normal    ScalingReplicaSet   deployment/web   Scaled up replica set web-5d8f7 to 3
"
    );
    assert_eq!(
        render(
            "events",
            &[e1],
            TableOpts {
                all_namespaces: true,
                ..Default::default()
            }
        ),
        "\
NAMESPACE   LAST SEEN   TYPE     REASON      OBJECT      MESSAGE
default     10s         Normal   Scheduled   pod/web-1   Successfully assigned default/web-1 to node-a
"
    );
}

#[test]
fn leases_and_controllerrevisions() {
    let l = [
        json!({"metadata": meta("rk-scheduler", "2024-03-01T10:00:00Z"), "spec": {"holderIdentity": "replica-1"}}),
        json!({"metadata": meta("free", "2024-03-01T10:00:00Z"), "spec": {}}),
    ];
    assert_eq!(
        plain("lease", &l),
        "NAME           HOLDER      AGE\nrk-scheduler   replica-1   120m\nfree                       120m\n"
    );
    let cr = [
        json!({"metadata": {"name": "agent-7c9d", "creationTimestamp": "2024-03-01T10:30:00Z",
               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": true}]},
               "revision": 2}),
        json!({"metadata": {"name": "orphan", "creationTimestamp": "2024-03-01T10:30:00Z"}, "revision": 1}),
    ];
    assert_eq!(
        plain("controllerrevisions", &cr),
        "\
NAME         CONTROLLER             REVISION   AGE
agent-7c9d   daemonset.apps/agent   2          90m
orphan       <none>                 1          90m
"
    );
}

#[test]
fn watch_rows_keep_the_table_widths() {
    let k = lookup("cm").expect("known");
    let a = json!({"metadata": meta("a", "2024-03-01T11:59:00Z")});
    let t = build(k, &[a], now(), TableOpts::default());
    let widths = t.widths();
    let later = json!({"metadata": meta("a-much-longer-name", "2024-03-01T11:59:30Z"), "data": {"k": "v"}});
    assert_eq!(
        render_row(&row(k, &later, now(), TableOpts::default()), &widths),
        "a-much-longer-name   1      30s\n"
    );
    let short = json!({"metadata": meta("b", "2024-03-01T11:59:30Z")});
    assert_eq!(
        render_row(&row(k, &short, now(), TableOpts::default()), &widths),
        "b      0      30s\n"
    );
}
