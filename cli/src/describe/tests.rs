//! Golden tests: objects in, describe text out, with a fixed "now".

use super::*;
use crate::time::parse_rfc3339;
use rk_api::resources::lookup;
use serde_json::json;

fn now() -> Millis {
    parse_rfc3339("2024-03-01T12:00:00Z").expect("valid now")
}

fn render(kind: &str, o: &Value, related: &Related) -> String {
    describe(lookup(kind).expect("known kind"), o, related, now())
}

/// Compares with the expected text, printing the actual text on mismatch
/// so a changed layout is easy to review.
fn golden(actual: &str, expected: &str) {
    if actual != expected {
        eprintln!("----- actual -----\n{actual}------------------");
    }
    assert_eq!(actual, expected);
}

fn event(reason: &str, ty: &str, first: &str, last: &str, count: i64, from: &str, msg: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": format!("x.{reason}"), "namespace": "default"},
           "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "pod-uid"},
           "reason": reason, "type": ty, "message": msg, "count": count,
           "firstTimestamp": first, "lastTimestamp": last, "source": {"component": from}})
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "uid": "pod-uid",
                     "creationTimestamp": "2024-03-01T11:50:00Z",
                     "labels": {"app": "web", "pod-template-hash": "abc"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "hi"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                          "uid": "rs-uid", "controller": true}]},
        "spec": {
            "nodeName": "node-a",
            "containers": [{
                "name": "web", "image": "busybox:1.36",
                "command": ["sh", "-c"], "args": ["httpd -f -p 8080"],
                "ports": [{"containerPort": 8080}],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m", "memory": "32Mi"}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                "env": [{"name": "MODE", "value": "prod"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                 {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}]
            }],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "settings"}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {
            "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.88.0.5", "podIPs": [{"ip": "10.88.0.5"}],
            "startTime": "2024-03-01T11:50:01Z",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
                           {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 1, "image": "busybox:1.36",
                "imageID": "sha256:1234", "containerID": "rk://c1",
                "state": {"running": {"startedAt": "2024-03-01T11:55:00Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "Error",
                                             "startedAt": "2024-03-01T11:50:02Z", "finishedAt": "2024-03-01T11:54:59Z"}}
            }]
        }
    })
}

#[test]
fn pod_layout() {
    let related = Related {
        show_events: true,
        events: vec![
            event(
                "Pulled",
                "Normal",
                "2024-03-01T11:50:02Z",
                "2024-03-01T11:55:00Z",
                2,
                "kubelet",
                "Container image \"busybox:1.36\" already present",
            ),
            event(
                "Scheduled",
                "Normal",
                "2024-03-01T11:50:00Z",
                "2024-03-01T11:50:00Z",
                1,
                "default-scheduler",
                "Successfully assigned default/web-1 to node-a",
            ),
        ],
        ..Default::default()
    };
    golden(
        &render("pod", &pod(), &related),
        "\
Name:             web-1
Namespace:        default
Priority:         0
Service Account:  default
Node:             node-a/10.0.0.1
Start Time:       Fri, 01 Mar 2024 11:50:01 +0000
Labels:           app=web
                  pod-template-hash=abc
Annotations:      note: hi
Status:           Running
IP:               10.88.0.5
IPs:
  IP:           10.88.0.5
Controlled By:  ReplicaSet/web-abc
Containers:
  web:
    Container ID:  rk://c1
    Image:         busybox:1.36
    Image ID:      sha256:1234
    Port:          8080/TCP
    Host Port:     0/TCP
    Command:
      sh
      -c
    Args:
      httpd -f -p 8080
    State:          Running
      Started:      Fri, 01 Mar 2024 11:55:00 +0000
    Last State:     Terminated
      Reason:       Error
      Exit Code:    137
      Started:      Fri, 01 Mar 2024 11:50:02 +0000
      Finished:     Fri, 01 Mar 2024 11:54:59 +0000
    Ready:          True
    Restart Count:  1
    Limits:
      cpu:     500m
      memory:  64Mi
    Requests:
      cpu:      100m
      memory:   32Mi
    Readiness:  http-get http://:8080/ delay=0s timeout=1s period=10s #success=1 #failure=3
    Environment:
      MODE:  prod
      POD:    (v1:metadata.name)
      PASS:  <set to the key 'pw' in secret 'creds'>  Optional: false
    Mounts:
      /data from data (rw)
      /etc/cfg from cfg (ro)
Conditions:
  Type             Status
  Initialized      True
  Ready            True
  ContainersReady  True
  PodScheduled     True
Volumes:
  data:
    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:
    SizeLimit:  <unset>
  cfg:
    Type:        ConfigMap (a volume populated by a ConfigMap)
    Name:        settings
    Optional:    false
QoS Class:       Burstable
Node-Selectors:  <none>
Tolerations:     node.kubernetes.io/not-ready:NoExecute op=Exists for 300s
Events:
  Type    Reason     Age                 From               Message
  ----    ------     ----                ----               -------
  Normal  Scheduled  10m                 default-scheduler  Successfully assigned default/web-1 to node-a
  Normal  Pulled     5m (x2 over 9m58s)  kubelet            Container image \"busybox:1.36\" already present
",
    );
}

fn template(image: &str, hash: Option<&str>) -> Value {
    let mut labels = json!({"app": "web"});
    if let Some(h) = hash {
        labels["pod-template-hash"] = json!(h);
    }
    json!({"metadata": {"labels": labels},
           "spec": {"containers": [{"name": "web", "image": image}]}})
}

fn replicaset(name: &str, image: &str, revision: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": name, "namespace": "default",
                        "annotations": {"deployment.kubernetes.io/revision": revision},
                        "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d-uid", "controller": true}]},
           "spec": {"replicas": replicas, "template": template(image, Some(&name[4..]))},
           "status": {"replicas": replicas}})
}

#[test]
fn deployment_layout() {
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid",
                     "creationTimestamp": "2024-03-01T11:00:00Z",
                     "labels": {"app": "web"},
                     "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
                 "template": template("busybox:1.37", None)},
        "status": {"replicas": 3, "updatedReplicas": 1, "availableReplicas": 2, "unavailableReplicas": 1,
                   "conditions": [
                       {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}
    });
    let related = Related {
        show_events: true,
        replicasets: vec![
            replicaset("web-old1", "busybox:1.36", "1", 2),
            replicaset("web-new2", "busybox:1.37", "2", 1),
        ],
        ..Default::default()
    };
    golden(
        &render("deploy", &d, &related),
        "\
Name:                   web
Namespace:              default
CreationTimestamp:      Fri, 01 Mar 2024 11:00:00 +0000
Labels:                 app=web
Annotations:            deployment.kubernetes.io/revision: 2
Selector:               app=web
Replicas:               2 desired | 1 updated | 3 total | 2 available | 1 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 1 max surge
Pod Template:
  Labels:  app=web
  Containers:
   web:
    Image:         busybox:1.37
    Port:          <none>
    Host Port:     <none>
    Environment:   <none>
    Mounts:        <none>
  Volumes:         <none>
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      True    MinimumReplicasAvailable
  Progressing    True    ReplicaSetUpdated
OldReplicaSets:  web-old1 (2/2 replicas created)
NewReplicaSet:   web-new2 (1/1 replicas created)
Events:          <none>
",
    );
}

#[test]
fn node_layout() {
    let n = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-a", "creationTimestamp": "2024-02-28T12:00:00Z",
                     "labels": {"kubernetes.io/hostname": "node-a", "node-role.kubernetes.io/worker": ""}},
        "spec": {"unschedulable": true, "podCIDR": "10.88.1.0/24",
                 "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
        "status": {
            "capacity": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "agent is posting ready status",
                            "lastHeartbeatTime": "2024-03-01T11:59:50Z", "lastTransitionTime": "2024-02-28T12:00:05Z"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "node-a"}],
            "nodeInfo": {"machineID": "m1", "systemUUID": "u1", "bootID": "b1", "kernelVersion": "6.1.0",
                         "osImage": "Debian GNU/Linux 12", "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "rk://0.1.0", "kubeletVersion": "v0.1.0"}
        }
    });
    let mut p = pod();
    p["metadata"]["creationTimestamp"] = json!("2024-03-01T11:00:00Z");
    let done = json!({"metadata": {"name": "job-x", "namespace": "default"}, "spec": {"containers": []},
                      "status": {"phase": "Succeeded"}});
    let related = Related {
        show_events: true,
        pods: vec![p, done],
        ..Default::default()
    };
    golden(&render("node", &n, &related), "\
Name:               node-a
Roles:              worker
Labels:             kubernetes.io/hostname=node-a
                    node-role.kubernetes.io/worker=
Annotations:        <none>
CreationTimestamp:  Wed, 28 Feb 2024 12:00:00 +0000
Taints:             node.kubernetes.io/unschedulable:NoSchedule
Unschedulable:      true
Conditions:
  Type   Status  LastHeartbeatTime                LastTransitionTime               Reason        Message
  ----   ------  -----------------                ------------------               ------        -------
  Ready  True    Fri, 01 Mar 2024 11:59:50 +0000  Wed, 28 Feb 2024 12:00:05 +0000  KubeletReady  agent is posting ready status
Addresses:
  InternalIP:  10.0.0.1
  Hostname:    node-a
Capacity:
  cpu:     4
  memory:  4Gi
  pods:    110
Allocatable:
  cpu:     4
  memory:  4Gi
  pods:    110
System Info:
  Machine ID:                 m1
  System UUID:                u1
  Boot ID:                    b1
  Kernel Version:             6.1.0
  OS Image:                   Debian GNU/Linux 12
  Operating System:           linux
  Architecture:               amd64
  Container Runtime Version:  rk://0.1.0
  Kubelet Version:            v0.1.0
PodCIDR:                      10.88.1.0/24
PodCIDRs:                     10.88.1.0/24
Non-terminated Pods:          (1 in total)
  Namespace                   Name   CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age
  ---------                   ----   ------------  ----------  ---------------  -------------  ---
  default                     web-1  100m (2%)     500m (12%)  32Mi (0%)        64Mi (1%)      60m
Allocated resources:
  (Total limits may be over 100 percent, i.e., overcommitted.)
  Resource  Requests   Limits
  --------  --------   ------
  cpu       100m (2%)  500m (12%)
  memory    32Mi (0%)  64Mi (1%)
Events:     <none>
");
}

#[test]
fn secrets_never_show_values() {
    let sec = json!({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": "creds", "namespace": "default"},
                     "type": "Opaque", "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}});
    let text = render(
        "secret",
        &sec,
        &Related {
            show_events: true,
            ..Default::default()
        },
    );
    golden(
        &text,
        "\
Name:         creds
Namespace:    default
Labels:       <none>
Annotations:  <none>

Type:  Opaque

Data
====
password:  7 bytes
user:      5 bytes
",
    );
    assert!(!text.contains("aHVudGVyMg") && !text.contains("hunter2"));
}

#[test]
fn configmap_and_generic_layouts() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "settings", "namespace": "default"},
                    "data": {"a": "1", "b.conf": "x=1\ny=2\n"}});
    golden(
        &render(
            "cm",
            &cm,
            &Related {
                show_events: true,
                ..Default::default()
            },
        ),
        "\
Name:         settings
Namespace:    default
Labels:       <none>
Annotations:  <none>

Data
====
a:
----
1

b.conf:
----
x=1
y=2


BinaryData
====

Events:  <none>
",
    );
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "node-a", "namespace": "kube-node-lease"},
                       "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40,
                                "renewTime": "2024-03-01T11:59:59.000000Z"}});
    golden(
        &render(
            "lease",
            &lease,
            &Related {
                show_events: true,
                ..Default::default()
            },
        ),
        "\
Name:         node-a
Namespace:    kube-node-lease
Labels:       <none>
Annotations:  <none>
API Version:  coordination.k8s.io/v1
Kind:         Lease
Spec:
  Holder Identity:         node-a
  Lease Duration Seconds:  40
  Renew Time:              2024-03-01T11:59:59.000000Z
Events:                    <none>
",
    );
}

#[test]
fn qos_classes() {
    assert_eq!(qos_class(&json!({"containers": [{"name": "a"}]})), "BestEffort");
    assert_eq!(
        qos_class(&json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})),
        "Guaranteed"
    );
    assert_eq!(
        qos_class(
            &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                                         "requests": {"cpu": "1000m", "memory": "1Gi"}}}]})
        ),
        "Guaranteed"
    );
    assert_eq!(
        qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
        "Burstable"
    );
}
