//! Kinds with little to check: Namespace, Node, Event and Lease.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node};

use super::{is_qualified_name, Errs, Rules};

/// Label Kubernetes puts on every Namespace so that namespace selectors can
/// match namespaces by name.
pub(crate) const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl Rules for Namespace {
    fn apply_defaults(&mut self) {
        if let Some(name) = self.metadata.name.clone().filter(|n| !n.is_empty()) {
            self.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(NAMESPACE_NAME_LABEL.to_string(), name);
        }
        let status = self.status.get_or_insert_with(Default::default);
        if status.phase.as_deref().is_none_or(str::is_empty) {
            status.phase = Some("Active".to_string());
        }
    }

    fn validate(&self, errs: &mut Errs) {
        let finalizers = self.spec.as_ref().and_then(|s| s.finalizers.as_ref());
        for (i, f) in finalizers.into_iter().flatten().enumerate() {
            if let Err(e) = is_qualified_name(f) {
                errs.invalid(format!("spec.finalizers[{i}]"), f, &e);
            }
        }
    }
}

impl Rules for Node {
    fn validate(&self, errs: &mut Errs) {
        let taints = self.spec.as_ref().and_then(|s| s.taints.as_ref());
        for (i, taint) in taints.into_iter().flatten().enumerate() {
            let path = format!("spec.taints[{i}]");
            if let Err(e) = is_qualified_name(&taint.key) {
                errs.invalid(format!("{path}.key"), &taint.key, &e);
            }
            if taint.effect.is_empty() {
                errs.required(format!("{path}.effect"), "");
            } else {
                errs.one_of(
                    &format!("{path}.effect"),
                    Some(taint.effect.as_str()),
                    &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                );
            }
        }
    }
}

impl Rules for Event {
    fn validate(&self, errs: &mut Errs) {
        let event_ns = self.metadata.namespace.as_deref().unwrap_or_default();
        if let Some(ns) = self.involved_object.namespace.as_deref() {
            if !ns.is_empty() && ns != event_ns {
                errs.invalid("involvedObject.namespace", ns, "does not match event.namespace");
            }
        }
        errs.non_negative("count", self.count);
    }
}

impl Rules for Lease {
    fn validate(&self, errs: &mut Errs) {
        let Some(spec) = &self.spec else { return };
        if let Some(d) = spec.lease_duration_seconds {
            if d <= 0 {
                errs.invalid("spec.leaseDurationSeconds", &d, "must be greater than 0");
            }
        }
        errs.non_negative("spec.leaseTransitions", spec.lease_transitions);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_defaults() {
        let out = create(
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        );
        assert_eq!(out["metadata"]["labels"][NAMESPACE_NAME_LABEL], "team-a");
        assert_eq!(out["status"]["phase"], "Active");
        let out = create(
            "namespaces",
            json!({"metadata": {"name": "t"}, "status": {"phase": "Terminating"}}),
        );
        assert_eq!(out["status"]["phase"], "Terminating");
        let err = create_err(
            "namespaces",
            json!({"metadata": {"name": "t"}, "spec": {"finalizers": ["a b"]}}),
        );
        assert_invalid(&err, "spec.finalizers[0]", "Invalid value");
    }

    #[test]
    fn node_rules() {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
                          "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
                          "status": {"capacity": {"cpu": "4", "memory": "8Gi"}, "conditions": [{"type": "Ready", "status": "True"}]}});
        let old = create("nodes", node.clone());
        assert_eq!(old["status"]["capacity"]["memory"], "8Gi");
        let err = create_err(
            "nodes",
            merge(
                node.clone(),
                json!({"spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}),
            ),
        );
        assert_invalid(&err, "spec.taints[0].effect", "Unsupported value");
        let err = create_err(
            "nodes",
            merge(node.clone(), json!({"spec": {"taints": [{"key": "k"}]}})),
        );
        assert_invalid(&err, "spec.taints[0].effect", "Required value");
        // Anything may change on a Node.
        update(
            "nodes",
            &old,
            merge(
                old.clone(),
                json!({"spec": {"unschedulable": true, "taints": null, "podCIDR": "10.0.0.0/24"}}),
            ),
        );
    }

    #[test]
    fn event_rules() {
        let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.17a", "namespace": "prod"},
                        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "prod"},
                        "reason": "Scheduled", "message": "assigned", "type": "Normal", "count": 1,
                        "firstTimestamp": "2024-05-01T10:00:00Z", "eventTime": "2024-05-01T10:00:00.123456Z"});
        let out = create("events", ev.clone());
        assert_eq!(out["eventTime"], "2024-05-01T10:00:00.123456Z");
        let err = create_err(
            "events",
            merge(ev.clone(), json!({"involvedObject": {"namespace": "dev"}})),
        );
        assert_invalid(&err, "involvedObject.namespace", "does not match event.namespace");
        let err = create_err("events", merge(ev, json!({"involvedObject": {"nmae": "x"}})));
        assert_eq!(err.field.as_deref(), Some("involvedObject.nmae"));
    }

    #[test]
    fn lease_rules() {
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "controller", "namespace": "kube-system"},
                           "spec": {"holderIdentity": "cp-1", "leaseDurationSeconds": 15, "renewTime": "2024-05-01T10:00:00.000000Z"}});
        let old = create("leases", lease.clone());
        assert_eq!(old["spec"]["holderIdentity"], "cp-1");
        let err = create_err(
            "leases",
            merge(lease, json!({"spec": {"leaseDurationSeconds": 0}})),
        );
        assert_invalid(&err, "spec.leaseDurationSeconds", "must be greater than 0");
        update(
            "leases",
            &old,
            merge(
                old.clone(),
                json!({"spec": {"holderIdentity": "cp-2", "leaseTransitions": 1}}),
            ),
        );
    }
}
