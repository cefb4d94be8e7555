//! Table tests for the scheduler: each filter passing and failing, the
//! unschedulable message, score ordering, tie-breaking, sampling, and a
//! larger run checking that every placement is feasible.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use super::*;
use crate::podutil::testutil::from_json;

/// Merge `patch` into `base`: objects merge key by key, anything else
/// (arrays included) replaces.
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

/// A ready node with 4 CPUs, 8Gi and 110 pods, patched by `extra`.
fn node(name: &str, extra: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut v, extra);
    from_json(v)
}

/// A pod in `default` requesting 100m CPU and 128Mi, patched by `extra`.
fn pod(name: &str, extra: Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    });
    merge(&mut v, extra);
    from_json(v)
}

fn requests(cpu: &str, mem: &str) -> Value {
    json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}})
}

fn owned(uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}
    ]}})
}

fn with(mut a: Value, b: Value) -> Value {
    merge(&mut a, b);
    a
}

fn ctx() -> ScheduleContext {
    ScheduleContext::default()
}

#[test]
fn single_node_filters() {
    type Case = (
        &'static str,
        Value,
        Value,
        Vec<Pod>,
        Result<(), Vec<&'static str>>,
    );
    let taint = |key: &str, value: &str, effect: &str| json!({"spec": {"taints": [{"key": key, "value": value, "effect": effect}]}});
    let tolerate = |t: Value| json!({"spec": {"tolerations": [t]}});
    let affinity = |terms: Value| {
        json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }}}})
    };
    let labeled = json!({"metadata": {"labels": {"disk": "ssd", "gen": "5"}}});
    let port_pod = |port: i32, proto: &str| {
        json!({"spec": {"containers": [{"name": "c", "ports": [
            {"containerPort": 80, "hostPort": port, "protocol": proto}
        ]}]}})
    };
    let cases: Vec<Case> = vec![
        ("fits", json!({}), json!({}), vec![], Ok(())),
        (
            "cpu",
            requests("5", "1Gi"),
            json!({}),
            vec![],
            Err(vec!["Insufficient cpu"]),
        ),
        (
            "memory",
            requests("1", "9Gi"),
            json!({}),
            vec![],
            Err(vec!["Insufficient memory"]),
        ),
        (
            "cpu and memory",
            requests("5", "9Gi"),
            json!({}),
            vec![],
            Err(vec!["Insufficient cpu", "Insufficient memory"]),
        ),
        (
            "existing pods use the cpu",
            requests("1", "1Gi"),
            json!({}),
            vec![pod("big", requests("3500m", "1Gi"))],
            Err(vec!["Insufficient cpu"]),
        ),
        (
            "exactly full still fits",
            requests("500m", "1Gi"),
            json!({}),
            vec![pod("big", requests("3500m", "1Gi"))],
            Ok(()),
        ),
        (
            "pod count",
            json!({}),
            json!({"status": {"allocatable": {"pods": "1"}}}),
            vec![pod("other", json!({}))],
            Err(vec!["Too many pods"]),
        ),
        (
            "extended resource",
            json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"example.com/gpu": "1"}}}]}}),
            json!({}),
            vec![],
            Err(vec!["Insufficient example.com/gpu"]),
        ),
        (
            "extended resource available",
            json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"example.com/gpu": "1"}}}]}}),
            json!({"status": {"allocatable": {"example.com/gpu": "1"}}}),
            vec![],
            Ok(()),
        ),
        (
            "nodeSelector matches",
            json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
            labeled.clone(),
            vec![],
            Ok(()),
        ),
        (
            "nodeSelector mismatch",
            json!({"spec": {"nodeSelector": {"disk": "hdd"}}}),
            labeled.clone(),
            vec![],
            Err(vec!["node(s) didn't match Pod's node affinity/selector"]),
        ),
        (
            "affinity In",
            affinity(
                json!([{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}]}]),
            ),
            labeled.clone(),
            vec![],
            Ok(()),
        ),
        (
            "affinity NotIn",
            affinity(
                json!([{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]),
            ),
            labeled.clone(),
            vec![],
            Err(vec!["node(s) didn't match Pod's node affinity/selector"]),
        ),
        (
            "affinity Exists",
            affinity(json!([{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}])),
            labeled.clone(),
            vec![],
            Ok(()),
        ),
        (
            "affinity DoesNotExist",
            affinity(json!([{"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}])),
            labeled.clone(),
            vec![],
            Err(vec!["node(s) didn't match Pod's node affinity/selector"]),
        ),
        (
            "affinity Gt",
            affinity(json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]}])),
            labeled.clone(),
            vec![],
            Ok(()),
        ),
        (
            "affinity Lt",
            affinity(json!([{"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["5"]}]}])),
            labeled.clone(),
            vec![],
            Err(vec!["node(s) didn't match Pod's node affinity/selector"]),
        ),
        (
            "affinity matchFields",
            affinity(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}])),
            json!({}),
            vec![],
            Ok(()),
        ),
        (
            "affinity terms are ORed",
            affinity(json!([
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]},
                {"matchExpressions": [{"key": "gen", "operator": "In", "values": ["5"]}]}
            ])),
            labeled.clone(),
            vec![],
            Ok(()),
        ),
        (
            "expressions in a term are ANDed",
            affinity(json!([{"matchExpressions": [
                {"key": "disk", "operator": "In", "values": ["ssd"]},
                {"key": "gen", "operator": "In", "values": ["4"]}
            ]}])),
            labeled.clone(),
            vec![],
            Err(vec!["node(s) didn't match Pod's node affinity/selector"]),
        ),
        (
            "untolerated NoSchedule taint",
            json!({}),
            taint("dedicated", "gpu", "NoSchedule"),
            vec![],
            Err(vec!["node(s) had untolerated taint {dedicated: gpu}"]),
        ),
        (
            "untolerated NoExecute taint",
            json!({}),
            taint("dedicated", "gpu", "NoExecute"),
            vec![],
            Err(vec!["node(s) had untolerated taint {dedicated: gpu}"]),
        ),
        (
            "PreferNoSchedule only scores",
            json!({}),
            taint("dedicated", "gpu", "PreferNoSchedule"),
            vec![],
            Ok(()),
        ),
        (
            "toleration Equal",
            tolerate(
                json!({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}),
            ),
            taint("dedicated", "gpu", "NoSchedule"),
            vec![],
            Ok(()),
        ),
        (
            "toleration Equal with another value",
            tolerate(json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})),
            taint("dedicated", "gpu", "NoSchedule"),
            vec![],
            Err(vec!["node(s) had untolerated taint {dedicated: gpu}"]),
        ),
        (
            "toleration Exists with empty effect",
            tolerate(json!({"key": "dedicated", "operator": "Exists"})),
            taint("dedicated", "gpu", "NoExecute"),
            vec![],
            Ok(()),
        ),
        (
            "toleration for another effect",
            tolerate(json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"})),
            taint("dedicated", "gpu", "NoSchedule"),
            vec![],
            Err(vec!["node(s) had untolerated taint {dedicated: gpu}"]),
        ),
        (
            "empty key with Exists tolerates everything",
            tolerate(json!({"operator": "Exists"})),
            taint("anything", "x", "NoSchedule"),
            vec![],
            Ok(()),
        ),
        (
            "cordoned",
            json!({}),
            json!({"spec": {"unschedulable": true}}),
            vec![],
            Err(vec!["node(s) were unschedulable"]),
        ),
        (
            "cordoned but tolerated",
            tolerate(
                json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
            ),
            json!({"spec": {"unschedulable": true}}),
            vec![],
            Ok(()),
        ),
        (
            "not ready",
            json!({}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            vec![],
            Err(vec!["node(s) were not ready"]),
        ),
        (
            "unknown readiness",
            json!({}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            vec![],
            Err(vec!["node(s) were not ready"]),
        ),
        (
            "not ready but tolerated",
            tolerate(json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists"})),
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            vec![],
            Ok(()),
        ),
        (
            "host port taken",
            port_pod(8080, "TCP"),
            json!({}),
            vec![pod("web", port_pod(8080, "TCP"))],
            Err(vec!["node(s) didn't have free ports for the requested pod ports"]),
        ),
        (
            "host port on another protocol",
            port_pod(8080, "UDP"),
            json!({}),
            vec![pod("web", port_pod(8080, "TCP"))],
            Ok(()),
        ),
        (
            "host network binds container ports",
            json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}}),
            json!({}),
            vec![pod("web", port_pod(8080, "TCP"))],
            Err(vec!["node(s) didn't have free ports for the requested pod ports"]),
        ),
        (
            "nodeName elsewhere",
            json!({"spec": {"nodeName": "other"}}),
            json!({}),
            vec![],
            Err(vec!["node(s) didn't match the requested node name"]),
        ),
    ];
    for (name, pod_patch, node_patch, existing, want) in cases {
        let p = pod("p", pod_patch);
        let info = NodeInfo::new(node("n", node_patch), existing);
        let got = check_node(&p, &info, std::slice::from_ref(&info), &ctx());
        let want = want.map_err(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
        assert_eq!(got, want, "{name}");
    }
}

/// Four nodes in two zones; `db` runs on n1, `cache` (in namespace `other`)
/// on n3, and `loner` on n4 refuses `app=noisy` neighbours on its host.
fn affinity_cluster() -> Vec<NodeInfo> {
    let zoned = |name: &str, zone: &str| {
        node(
            name,
            json!({"metadata": {"labels": {"topology.kubernetes.io/zone": zone}}}),
        )
    };
    vec![
        NodeInfo::new(
            zoned("n1", "a"),
            vec![pod("db", json!({"metadata": {"labels": {"app": "db"}}}))],
        ),
        NodeInfo::new(zoned("n2", "a"), vec![]),
        NodeInfo::new(
            zoned("n3", "b"),
            vec![pod(
                "cache",
                json!({"metadata": {"namespace": "other", "labels": {"app": "cache"}}}),
            )],
        ),
        NodeInfo::new(
            zoned("n4", "b"),
            vec![pod(
                "loner",
                json!({"metadata": {"labels": {"app": "loner"}}, "spec": {"affinity": {"podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"app": "noisy"}},
                        "topologyKey": "kubernetes.io/hostname"
                    }]
                }}}}),
            )],
        ),
    ]
}

#[test]
fn inter_pod_affinity_filters() {
    let term =
        |app: &str, key: &str| json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key});
    let required = |kind: &str, terms: Value| json!({"spec": {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": terms}}}});
    let host = "kubernetes.io/hostname";
    let zone = "topology.kubernetes.io/zone";
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("no terms", json!({}), vec!["n1", "n2", "n3", "n4"]),
        (
            "affinity to db per host",
            required("podAffinity", json!([term("db", host)])),
            vec!["n1"],
        ),
        (
            "affinity to db per zone",
            required("podAffinity", json!([term("db", zone)])),
            vec!["n1", "n2"],
        ),
        (
            "anti-affinity to db per zone",
            required("podAntiAffinity", json!([term("db", zone)])),
            vec!["n3", "n4"],
        ),
        (
            "anti-affinity to db per host",
            required("podAntiAffinity", json!([term("db", host)])),
            vec!["n2", "n3", "n4"],
        ),
        (
            "cache lives in another namespace",
            required("podAffinity", json!([term("cache", host)])),
            vec![],
        ),
        (
            "namespaces widen the term",
            required(
                "podAffinity",
                json!([{"labelSelector": {"matchLabels": {"app": "cache"}}, "namespaces": ["other"], "topologyKey": zone}]),
            ),
            vec!["n3", "n4"],
        ),
        (
            "empty namespaceSelector means all namespaces",
            required(
                "podAffinity",
                json!([{"labelSelector": {"matchLabels": {"app": "cache"}}, "namespaceSelector": {}, "topologyKey": host}]),
            ),
            vec!["n3"],
        ),
        (
            "existing pod's anti-affinity",
            json!({"metadata": {"labels": {"app": "noisy"}}}),
            vec!["n1", "n2", "n3"],
        ),
        (
            "first pod of a self-affine group goes anywhere",
            with(
                json!({"metadata": {"labels": {"app": "new"}}}),
                required("podAffinity", json!([term("new", zone)])),
            ),
            vec!["n1", "n2", "n3", "n4"],
        ),
        (
            "affinity to a group that does not exist",
            required("podAffinity", json!([term("ghost", zone)])),
            vec![],
        ),
    ];
    let nodes = affinity_cluster();
    for (name, patch, want) in cases {
        let p = pod("p", patch);
        let feasible: Vec<&str> = nodes
            .iter()
            .filter(|n| check_node(&p, n, &nodes, &ctx()).is_ok())
            .map(|n| n.name())
            .collect();
        assert_eq!(feasible, want, "{name}");
    }
    // The failure reasons name the kind of rule.
    let reasons = |patch: Value, node: usize| check_node(&pod("p", patch), &nodes[node], &nodes, &ctx());
    assert_eq!(
        reasons(required("podAffinity", json!([term("db", host)])), 1),
        Err(vec!["node(s) didn't match pod affinity rules".to_string()])
    );
    assert_eq!(
        reasons(required("podAntiAffinity", json!([term("db", host)])), 0),
        Err(vec!["node(s) didn't match pod anti-affinity rules".to_string()])
    );
    assert_eq!(
        reasons(json!({"metadata": {"labels": {"app": "noisy"}}}), 3),
        Err(vec![
            "node(s) didn't satisfy existing pods anti-affinity rules".to_string()
        ])
    );
}

#[test]
fn tracking_the_nodes_with_pod_terms_decides_the_same() {
    let mut nodes = affinity_cluster();
    // A fifth node whose pod prefers `app=web` neighbours in its zone, so
    // that term-less pods get a preference from an existing pod too.
    nodes.push(NodeInfo::new(
        node(
            "n5",
            json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "a"}}}),
        ),
        vec![pod(
            "friendly",
            json!({"spec": {"affinity": {"podAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "topology.kubernetes.io/zone"
                }}]
            }}}}),
        )],
    ));
    let tracked: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].has_pod_terms()).collect();
    assert_eq!(tracked, [3, 4], "loner on n4 and friendly on n5 have terms");
    let pods = [
        json!({}),
        json!({"metadata": {"labels": {"app": "noisy"}}}),
        json!({"metadata": {"labels": {"app": "web"}}}),
        json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}
        ]}}}}),
    ];
    for patch in pods {
        let p = pod("p", patch.clone());
        for seed in 0..5 {
            let c = ScheduleContext { seed, ..ctx() };
            assert_eq!(
                schedule_tracked(&p, &nodes, Some(&tracked), &c),
                schedule(&p, &nodes, &c),
                "{patch}, seed {seed}"
            );
        }
    }
}

#[test]
fn namespace_selector_uses_context_labels() {
    let nodes = affinity_cluster();
    let p = pod(
        "p",
        json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "cache"}},
            "namespaceSelector": {"matchLabels": {"team": "infra"}},
            "topologyKey": "kubernetes.io/hostname"
        }]}}}}),
    );
    assert!(schedule(&p, &nodes, &ctx()).is_err());
    let mut c = ctx();
    c.namespace_labels.insert(
        "other".into(),
        BTreeMap::from([("team".to_string(), "infra".to_string())]),
    );
    assert_eq!(schedule(&p, &nodes, &c).map(|d| d.node), Ok("n3".to_string()));
}

#[test]
fn unschedulable_message_counts_sorted_reasons() {
    let mut nodes = Vec::new();
    for i in 0..2 {
        nodes.push(NodeInfo::new(
            node(
                &format!("small-{i}"),
                json!({"metadata": {"labels": {"disk": "ssd"}}, "status": {"allocatable": {"cpu": "1"}}}),
            ),
            vec![],
        ));
    }
    for i in 0..3 {
        nodes.push(NodeInfo::new(node(&format!("big-{i}"), json!({})), vec![]));
    }
    let p = pod(
        "p",
        with(
            requests("2", "1Gi"),
            json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
        ),
    );
    let err = schedule(&p, &nodes, &ctx()).err();
    let want = Unschedulable {
        reasons: BTreeMap::from([
            ("Insufficient cpu".to_string(), 2),
            ("node(s) didn't match Pod's node affinity/selector".to_string(), 3),
        ]),
        message: "0/5 nodes are available: 2 Insufficient cpu, 3 node(s) didn't match Pod's node \
                  affinity/selector."
            .to_string(),
    };
    assert_eq!(err, Some(want));

    let empty = schedule(&p, &[], &ctx()).err().map(|e| e.message);
    assert_eq!(empty.as_deref(), Some("no nodes available to schedule pods"));
    let bad = pod("bad", requests("lots", "1Gi"));
    let err = schedule(&bad, &nodes, &ctx())
        .err()
        .map(|e| e.message)
        .unwrap_or_default();
    assert!(err.contains("invalid quantity \"lots\""), "{err}");
    let gated = pod("g", json!({"spec": {"schedulingGates": [{"name": "wait"}]}}));
    assert!(schedule(&gated, &nodes, &ctx()).is_err());
}

#[test]
fn score_ordering() {
    let zoned = |name: &str, zone: &str| {
        node(
            name,
            json!({"metadata": {"labels": {"topology.kubernetes.io/zone": zone}}}),
        )
    };
    type Case = (&'static str, Vec<NodeInfo>, Value, &'static str);
    let cases: Vec<Case> = vec![
        (
            "least allocated prefers the idle node",
            vec![
                NodeInfo::new(node("a", json!({})), vec![pod("x", requests("3", "6Gi"))]),
                NodeInfo::new(node("b", json!({})), vec![]),
            ],
            json!({}),
            "b",
        ),
        (
            "balanced allocation avoids lopsided use",
            vec![
                // Same free total, but a's CPU would be nearly gone while
                // its memory idles; b stays balanced.
                NodeInfo::new(node("a", json!({})), vec![pod("x", requests("3", "0"))]),
                NodeInfo::new(node("b", json!({})), vec![pod("x", requests("1500m", "3Gi"))]),
            ],
            requests("500m", "512Mi"),
            "b",
        ),
        (
            "spread pods of one owner over nodes",
            vec![
                NodeInfo::new(node("a", json!({})), vec![pod("r1", owned("rs-1"))]),
                NodeInfo::new(node("b", json!({})), vec![pod("r2", owned("rs-1"))]),
                NodeInfo::new(node("c", json!({})), vec![pod("o", owned("other"))]),
            ],
            owned("rs-1"),
            "c",
        ),
        (
            "spread over zones before nodes",
            vec![
                // a and c hold no pod of the owner, but a's zone holds
                // two; c wins although it is busier and later by name.
                NodeInfo::new(zoned("a", "z1"), vec![]),
                NodeInfo::new(
                    zoned("b", "z1"),
                    vec![pod("r1", owned("rs-1")), pod("r2", owned("rs-1"))],
                ),
                NodeInfo::new(zoned("c", "z2"), vec![pod("o", owned("other"))]),
            ],
            owned("rs-1"),
            "c",
        ),
        (
            "preferred node affinity",
            vec![
                NodeInfo::new(node("a", json!({})), vec![]),
                NodeInfo::new(
                    node("b", json!({"metadata": {"labels": {"disk": "ssd"}}})),
                    vec![],
                ),
            ],
            json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}
            ]}}}}),
            "b",
        ),
        (
            "preferred pod affinity",
            vec![
                NodeInfo::new(node("a", json!({})), vec![]),
                NodeInfo::new(
                    node("b", json!({})),
                    vec![pod("cache", json!({"metadata": {"labels": {"app": "cache"}}}))],
                ),
            ],
            json!({"spec": {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}},
                                                    "topologyKey": "kubernetes.io/hostname"}}
            ]}}}}),
            "b",
        ),
        (
            "preferred pod anti-affinity",
            vec![
                NodeInfo::new(
                    node("a", json!({})),
                    vec![pod("web", json!({"metadata": {"labels": {"app": "web"}}}))],
                ),
                NodeInfo::new(node("b", json!({})), vec![pod("db", requests("1", "1Gi"))]),
            ],
            json!({"spec": {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}},
                                                    "topologyKey": "kubernetes.io/hostname"}}
            ]}}}}),
            "b",
        ),
        (
            "PreferNoSchedule taints are avoided",
            vec![
                NodeInfo::new(
                    node(
                        "a",
                        json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]}}),
                    ),
                    vec![],
                ),
                NodeInfo::new(node("b", json!({})), vec![pod("x", requests("1", "1Gi"))]),
            ],
            json!({}),
            "b",
        ),
        (
            "tolerated PreferNoSchedule taints are not",
            vec![
                NodeInfo::new(
                    node(
                        "a",
                        json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]}}),
                    ),
                    vec![],
                ),
                NodeInfo::new(node("b", json!({})), vec![pod("x", requests("1", "1Gi"))]),
            ],
            json!({"spec": {"tolerations": [{"key": "k", "operator": "Exists"}]}}),
            "a",
        ),
        (
            "ties go to the first name",
            vec![
                NodeInfo::new(node("b", json!({})), vec![]),
                NodeInfo::new(node("a", json!({})), vec![]),
            ],
            json!({}),
            "a",
        ),
    ];
    for (name, nodes, patch, want) in cases {
        let got = schedule(&pod("p", patch), &nodes, &ctx()).map(|d| d.node);
        assert_eq!(got.as_deref(), Ok(want), "{name}");
    }
}

#[test]
fn seed_rotates_ties() {
    let nodes: Vec<NodeInfo> = ["c", "a", "b"]
        .iter()
        .map(|n| NodeInfo::new(node(n, json!({})), vec![]))
        .collect();
    let picks: Vec<String> = (0..4)
        .filter_map(|seed| {
            let c = ScheduleContext { seed, ..ctx() };
            schedule(&pod("p", json!({})), &nodes, &c).ok().map(|d| d.node)
        })
        .collect();
    assert_eq!(picks, ["a", "b", "c", "a"]);
}

#[test]
fn sampling_stops_early_and_rotates() {
    let nodes: Vec<NodeInfo> = (0..10)
        .map(|i| NodeInfo::new(node(&format!("n{i}"), json!({})), vec![]))
        .collect();
    let c = ScheduleContext {
        max_nodes_to_score: 3,
        start_index: 8,
        ..ctx()
    };
    let d = schedule(&pod("p", json!({})), &nodes, &c).map_err(|e| e.message);
    // The scan visits n8, n9, n0 and stops.
    assert_eq!(d.as_ref().map(|d| (d.feasible, d.next_start_index)), Ok((3, 1)));
    assert_eq!(d.map(|d| d.node), Ok("n0".to_string()));
    assert_eq!(default_nodes_to_score(50), 100);
    assert_eq!(default_nodes_to_score(5000), 500);
}

/// Many pods onto a varied cluster: every placement must pass every filter
/// at the time it is made, and at the end no node is overcommitted, no host
/// port is bound twice and no anti-affinity is violated.
#[test]
fn many_pods_land_on_feasible_nodes() {
    let mut nodes: Vec<NodeInfo> = (0..1000)
        .map(|i| {
            let mut extra = json!({"metadata": {"labels": {
                "topology.kubernetes.io/zone": format!("zone-{}", i % 5),
                "disk": if i % 3 == 0 { "ssd" } else { "hdd" }
            }}});
            if i % 10 == 0 {
                merge(&mut extra, json!({"spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}}));
            }
            if i % 97 == 0 {
                merge(&mut extra, json!({"spec": {"unschedulable": true}}));
            }
            if i % 89 == 0 {
                merge(&mut extra, json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
            }
            let cpu = ["2", "4", "8"][i % 3];
            merge(&mut extra, json!({"status": {"allocatable": {"cpu": cpu, "pods": "8"}}}));
            NodeInfo::new(node(&format!("node-{i:04}"), extra), vec![])
        })
        .collect();
    let index: BTreeMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name().to_string(), i))
        .collect();

    let mut c = ScheduleContext {
        max_nodes_to_score: default_nodes_to_score(nodes.len()),
        ..ctx()
    };
    let mut placed = 0;
    for i in 0..2000 {
        let mut patch = with(
            requests(["250m", "500m", "1"][i % 3], "256Mi"),
            owned(&format!("rs-{}", i % 40)),
        );
        match i % 7 {
            0 => merge(&mut patch, json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            1 => merge(
                &mut patch,
                json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra"}]}}),
            ),
            2 => merge(
                &mut patch,
                json!({"metadata": {"labels": {"app": format!("solo-{}", i % 11)}},
                       "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                           "labelSelector": {"matchLabels": {"app": format!("solo-{}", i % 11)}},
                           "topologyKey": "kubernetes.io/hostname"}]}}}}),
            ),
            3 => merge(
                &mut patch,
                json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "250m"}},
                                                "ports": [{"containerPort": 80, "hostPort": 9000}]}]}}),
            ),
            _ => {}
        }
        let p = pod(&format!("pod-{i}"), patch);
        let d = match schedule(&p, &nodes, &c) {
            Ok(d) => d,
            Err(e) => panic!("pod-{i}: {e}"),
        };
        c.start_index = d.next_start_index;
        c.seed += 1;
        let Some(&at) = index.get(&d.node) else {
            panic!("unknown node {}", d.node);
        };
        assert_eq!(
            check_node(&p, &nodes[at], &nodes, &ctx()),
            Ok(()),
            "pod-{i} on {}",
            d.node
        );
        let mut bound = p;
        if let Some(spec) = bound.spec.as_mut() {
            spec.node_name = Some(d.node.clone());
        }
        nodes[at].add_pod(bound);
        placed += 1;
    }
    assert_eq!(placed, 2000);

    for n in &nodes {
        assert!(
            n.requested_milli_cpu() <= n.allocatable().milli_cpu,
            "{} overcommitted",
            n.name()
        );
        assert!(
            n.pod_count() as i64 <= n.allowed_pod_count(),
            "{} too many pods",
            n.name()
        );
        let ports: Vec<_> = n.used_host_ports().to_vec();
        let unique: BTreeSet<_> = ports.iter().collect();
        assert_eq!(ports.len(), unique.len(), "{} binds a port twice", n.name());
        let solo: Vec<&str> = n
            .pods()
            .iter()
            .filter_map(|p| p.metadata.labels.as_ref()?.get("app").map(String::as_str))
            .collect();
        let unique: BTreeSet<_> = solo.iter().collect();
        assert_eq!(solo.len(), unique.len(), "{} breaks anti-affinity", n.name());
        if n.pod_count() > 0 {
            assert!(
                !n.is_unschedulable() && n.readiness() == Readiness::Ready,
                "{}",
                n.name()
            );
        }
    }
}
