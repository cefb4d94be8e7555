//! Pod specs: Kubernetes' defaults and validation, shared by Pods and by the
//! pod templates inside Deployments, ReplicaSets, DaemonSets, Jobs and
//! CronJobs, plus the rules for updating a Pod.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec, Probe};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

use super::{common_keys, is_dns1123_label, validate_labels, Errs, Rules};
use crate::quantity;

/// Which `restartPolicy` values a pod spec may have in its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartRule {
    /// A bare Pod: `Always`, `OnFailure` or `Never`.
    Any,
    /// A template of a long-running controller: only `Always`.
    AlwaysOnly,
    /// A Job template: `OnFailure` or `Never`, and it must be given.
    JobOnly,
}

/// The `imagePullPolicy` Kubernetes defaults to for an image reference:
/// `Always` when the tag is `latest` or missing, `IfNotPresent` otherwise
/// (including references pinned by digest).
pub fn default_image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // A ':' before the last '/' belongs to a registry host:port, not a tag.
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if !tag.is_empty() && tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn set_default<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

fn default_probe(probe: &mut Probe) {
    set_default(&mut probe.timeout_seconds, 1);
    set_default(&mut probe.period_seconds, 10);
    set_default(&mut probe.success_threshold, 1);
    set_default(&mut probe.failure_threshold, 3);
    if let Some(http) = &mut probe.http_get {
        set_default(&mut http.path, "/".to_string());
        set_default(&mut http.scheme, "HTTP".to_string());
    }
}

fn default_container(c: &mut Container) {
    if c.image_pull_policy.is_none() {
        let image = c.image.as_deref().unwrap_or_default();
        c.image_pull_policy = Some(default_image_pull_policy(image).to_string());
    }
    set_default(
        &mut c.termination_message_path,
        "/dev/termination-log".to_string(),
    );
    set_default(&mut c.termination_message_policy, "File".to_string());
    set_default(&mut c.resources, Default::default());
    for port in c.ports.iter_mut().flatten() {
        set_default(&mut port.protocol, "TCP".to_string());
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
}

/// Apply Kubernetes' pod-spec defaults. `default_restart` is false for Job
/// templates, where a missing `restartPolicy` is an error instead.
pub(crate) fn default_pod_spec(spec: &mut PodSpec, default_restart: bool) {
    if default_restart {
        set_default(&mut spec.restart_policy, "Always".to_string());
    }
    set_default(&mut spec.termination_grace_period_seconds, 30);
    set_default(&mut spec.dns_policy, "ClusterFirst".to_string());
    set_default(&mut spec.scheduler_name, "default-scheduler".to_string());
    set_default(&mut spec.enable_service_links, true);
    set_default(&mut spec.security_context, Default::default());
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    // 0644, the mode Kubernetes gives projected files by default.
    const DEFAULT_MODE: i32 = 0o644;
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = &mut volume.config_map {
            set_default(&mut cm.default_mode, DEFAULT_MODE);
        }
        if let Some(secret) = &mut volume.secret {
            set_default(&mut secret.default_mode, DEFAULT_MODE);
        }
    }
}

/// Apply pod-spec defaults inside a template (if it has a spec).
pub(crate) fn default_template(template: &mut PodTemplateSpec, default_restart: bool) {
    if let Some(spec) = &mut template.spec {
        default_pod_spec(spec, default_restart);
    }
}

/// Validate a pod template: its labels and its pod spec.
pub(crate) fn validate_template(template: &PodTemplateSpec, path: &str, rule: RestartRule, errs: &mut Errs) {
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    validate_labels(labels, &format!("{path}.metadata.labels"), errs);
    let empty = PodSpec::default();
    validate_pod_spec(
        template.spec.as_ref().unwrap_or(&empty),
        &format!("{path}.spec"),
        rule,
        errs,
    );
}

const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

fn check_port(errs: &mut Errs, field: String, port: i32) {
    if !(1..=65535).contains(&port) {
        errs.invalid(field, &port, "must be between 1 and 65535, inclusive");
    }
}

/// IANA service names, the syntax of named ports: at most 15 lowercase
/// alphanumerics or '-', at least one letter, no leading/trailing or double
/// '-'.
fn is_port_name(name: &str) -> bool {
    name.len() <= 15
        && is_dns1123_label(name).is_ok()
        && !name.contains("--")
        && name.bytes().any(|b| b.is_ascii_lowercase())
}

/// Parse one of a container's resource maps, reporting malformed and
/// negative quantities. Returns each resource's value in milli-units next
/// to the quantity as written.
fn parse_resource_map(
    map: Option<&BTreeMap<String, Quantity>>,
    field: &str,
    errs: &mut Errs,
) -> BTreeMap<String, (i128, String)> {
    let mut parsed = BTreeMap::new();
    for (name, q) in map.into_iter().flatten() {
        let qfield = format!("{field}[{name}]");
        match quantity::parse_milli(&q.0) {
            Ok(v) if v < 0 => errs.invalid(qfield, &q.0, "must be greater than or equal to 0"),
            Ok(v) => {
                parsed.insert(name.clone(), (v, q.0.clone()));
            }
            Err(e) => errs.invalid(qfield, &q.0, &e.to_string()),
        }
    }
    parsed
}

fn validate_resources(c: &Container, path: &str, errs: &mut Errs) {
    let Some(res) = &c.resources else { return };
    let requests_field = format!("{path}.resources.requests");
    let requests = parse_resource_map(res.requests.as_ref(), &requests_field, errs);
    let limits = parse_resource_map(res.limits.as_ref(), &format!("{path}.resources.limits"), errs);
    for name in common_keys(&requests, &limits) {
        if let (Some((req, req_text)), Some((lim, lim_text))) = (requests.get(name), limits.get(name)) {
            if req > lim {
                errs.invalid(
                    requests_field.clone(),
                    req_text,
                    &format!("must be less than or equal to {name} limit of {lim_text}"),
                );
            }
        }
    }
}

fn validate_container(
    c: &Container,
    path: &str,
    names: &mut BTreeSet<String>,
    volumes: &BTreeSet<&str>,
    errs: &mut Errs,
) {
    if c.name.is_empty() {
        errs.required(format!("{path}.name"), "");
    } else if let Err(e) = is_dns1123_label(&c.name) {
        errs.invalid(format!("{path}.name"), &c.name, &e);
    } else if !names.insert(c.name.clone()) {
        errs.duplicate(format!("{path}.name"), &c.name);
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        errs.required(format!("{path}.image"), "");
    }
    errs.one_of(
        &format!("{path}.imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        PULL_POLICIES,
    );
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let ppath = format!("{path}.ports[{i}]");
        check_port(errs, format!("{ppath}.containerPort"), port.container_port);
        if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
            check_port(errs, format!("{ppath}.hostPort"), host_port);
        }
        errs.one_of(&format!("{ppath}.protocol"), port.protocol.as_deref(), PROTOCOLS);
        if let Some(name) = port.name.as_deref() {
            if !is_port_name(name) {
                errs.invalid(
                    format!("{ppath}.name"),
                    name,
                    "must be no more than 15 characters, contain only lowercase alphanumerics or '-', and contain at least one letter",
                );
            }
        }
    }
    for (i, env) in c.env.iter().flatten().enumerate() {
        if env.name.is_empty() {
            errs.required(format!("{path}.env[{i}].name"), "");
        }
    }
    for (i, mount) in c.volume_mounts.iter().flatten().enumerate() {
        let mpath = format!("{path}.volumeMounts[{i}]");
        if mount.name.is_empty() {
            errs.required(format!("{mpath}.name"), "");
        } else if !volumes.contains(mount.name.as_str()) {
            errs.not_found(format!("{mpath}.name"), &mount.name);
        }
        if mount.mount_path.is_empty() {
            errs.required(format!("{mpath}.mountPath"), "");
        }
    }
    validate_resources(c, path, errs);
}

/// Validate a pod spec at `path` (`spec` or `spec.template.spec`).
pub(crate) fn validate_pod_spec(spec: &PodSpec, path: &str, rule: RestartRule, errs: &mut Errs) {
    // Volumes first: container mounts refer to them.
    let mut volumes = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let vpath = format!("{path}.volumes[{i}]");
        if volume.name.is_empty() {
            errs.required(format!("{vpath}.name"), "");
        } else if let Err(e) = is_dns1123_label(&volume.name) {
            errs.invalid(format!("{vpath}.name"), &volume.name, &e);
        } else if !volumes.insert(volume.name.as_str()) {
            errs.duplicate(format!("{vpath}.name"), &volume.name);
        }
        // Counting the keys of the JSON form avoids listing the thirty-odd
        // volume source fields by hand.
        let sources = match serde_json::to_value(volume) {
            Ok(Value::Object(m)) => m.keys().filter(|k| *k != "name").count(),
            _ => 1,
        };
        if sources == 0 {
            errs.required(vpath, "must specify a volume type");
        } else if sources > 1 {
            errs.forbidden(vpath, "may not specify more than 1 volume type");
        }
    }

    if spec.containers.is_empty() {
        errs.required(format!("{path}.containers"), "");
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        validate_container(
            c,
            &format!("{path}.initContainers[{i}]"),
            &mut names,
            &volumes,
            errs,
        );
    }
    for (i, c) in spec.containers.iter().enumerate() {
        validate_container(c, &format!("{path}.containers[{i}]"), &mut names, &volumes, errs);
    }

    let restart_field = format!("{path}.restartPolicy");
    let restart = spec.restart_policy.as_deref();
    match rule {
        RestartRule::Any => errs.one_of(&restart_field, restart, &["Always", "OnFailure", "Never"]),
        RestartRule::AlwaysOnly => errs.one_of(&restart_field, restart, &["Always"]),
        RestartRule::JobOnly => match restart {
            None | Some("") => errs.required(restart_field, "valid values: \"OnFailure\", \"Never\""),
            other => errs.one_of(&restart_field, other, &["OnFailure", "Never"]),
        },
    }
    errs.one_of(
        &format!("{path}.dnsPolicy"),
        spec.dns_policy.as_deref(),
        DNS_POLICIES,
    );
    errs.non_negative(
        &format!("{path}.terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
    );
    if let Some(deadline) = spec.active_deadline_seconds {
        if deadline < 1 {
            errs.invalid(
                format!("{path}.activeDeadlineSeconds"),
                &deadline,
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    validate_labels(spec.node_selector.as_ref(), &format!("{path}.nodeSelector"), errs);
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let tpath = format!("{path}.tolerations[{i}]");
        let key_empty = t.key.as_deref().is_none_or(str::is_empty);
        match t.operator.as_deref() {
            None | Some("") | Some("Equal") => {
                if key_empty {
                    errs.invalid(
                        format!("{tpath}.operator"),
                        &t.operator,
                        "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                    );
                }
            }
            Some("Exists") => {
                if t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                    errs.invalid(
                        format!("{tpath}.operator"),
                        &t.value,
                        "value must be empty when `operator` is 'Exists'",
                    );
                }
            }
            Some(other) => errs.unsupported(format!("{tpath}.operator"), other, &["Equal", "Exists"]),
        }
        if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
            errs.one_of(
                &format!("{tpath}.effect"),
                Some(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            );
        }
    }
}

/// The message Kubernetes gives for a forbidden pod spec change.
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Pod specs are immutable except for container images,
/// `activeDeadlineSeconds` (set or lowered), added tolerations, removed
/// scheduling gates, and `nodeName` going from empty to set (binding).
pub(crate) fn validate_pod_spec_update(old: &PodSpec, new: &PodSpec, errs: &mut Errs) {
    // Overwrite every field that may change with its old value; whatever
    // still differs was an illegal change.
    let mut normalized = new.clone();
    if normalized.containers.len() == old.containers.len() {
        for (n, o) in normalized.containers.iter_mut().zip(&old.containers) {
            n.image.clone_from(&o.image);
        }
    }
    if let (Some(new_init), Some(old_init)) = (&mut normalized.init_containers, &old.init_containers) {
        if new_init.len() == old_init.len() {
            for (n, o) in new_init.iter_mut().zip(old_init) {
                n.image.clone_from(&o.image);
            }
        }
    }

    match (old.active_deadline_seconds, new.active_deadline_seconds) {
        (Some(_), None) => errs.invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        ),
        (Some(o), Some(n)) if n > o => errs.invalid(
            "spec.activeDeadlineSeconds",
            &n,
            "must be less than or equal to previous value",
        ),
        _ => {}
    }
    normalized.active_deadline_seconds = old.active_deadline_seconds;

    let old_tolerations = old.tolerations.as_deref().unwrap_or_default();
    let new_tolerations = new.tolerations.as_deref().unwrap_or_default();
    if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        normalized.tolerations.clone_from(&old.tolerations);
    }

    let old_gates = old.scheduling_gates.as_deref().unwrap_or_default();
    let new_gates = new.scheduling_gates.as_deref().unwrap_or_default();
    if new_gates.iter().all(|g| old_gates.contains(g)) {
        normalized.scheduling_gates.clone_from(&old.scheduling_gates);
    }

    let unbound = old.node_name.as_deref().is_none_or(str::is_empty);
    if unbound {
        normalized.node_name.clone_from(&old.node_name);
    }

    if normalized != *old {
        errs.forbidden("spec", POD_UPDATE_FORBIDDEN);
    }
}

impl Rules for Pod {
    fn apply_defaults(&mut self) {
        if let Some(spec) = &mut self.spec {
            default_pod_spec(spec, true);
        }
    }

    fn validate(&self, errs: &mut Errs) {
        let empty = PodSpec::default();
        validate_pod_spec(
            self.spec.as_ref().unwrap_or(&empty),
            "spec",
            RestartRule::Any,
            errs,
        );
    }

    fn validate_update(&self, old: &Self, errs: &mut Errs) {
        let empty = PodSpec::default();
        validate_pod_spec_update(
            old.spec.as_ref().unwrap_or(&empty),
            self.spec.as_ref().unwrap_or(&empty),
            errs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::error::Reason;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    fn simple_pod() -> Value {
        pod(json!({"containers": [{"name": "app", "image": "nginx:1.25"}]}))
    }

    #[test]
    fn pull_policy_defaults() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("nginx:", "Always"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:1.0", "IfNotPresent"),
            ("registry.io/team/app:latest", "Always"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("", "Always"),
        ];
        for (image, want) in cases {
            assert_eq!(default_image_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn pod_defaults() {
        let out = create(
            "pods",
            pod(json!({
                "containers": [{"name": "app", "image": "nginx",
                                "ports": [{"containerPort": 80}],
                                "livenessProbe": {"httpGet": {"port": 80}}}],
                "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                "volumes": [{"name": "cfg", "configMap": {"name": "c"}}]
            })),
        );
        let spec = &out["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["securityContext"], json!({}));
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["resources"], json!({}));
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                   "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(spec["initContainers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["volumes"][0]["configMap"]["defaultMode"], 420);
        assert_eq!(out["metadata"]["namespace"], "default");

        // Explicit values are kept.
        let out = create(
            "pods",
            pod(
                json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                       "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Never",
                                       "ports": [{"containerPort": 53, "protocol": "UDP"}]}]}),
            ),
        );
        assert_eq!(out["spec"]["restartPolicy"], "Never");
        assert_eq!(out["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(out["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(out["spec"]["containers"][0]["ports"][0]["protocol"], "UDP");
    }

    #[test]
    fn status_is_kept() {
        let obj = merge(simple_pod(), json!({"status": {"phase": "Pending"}}));
        let out = create("pods", obj);
        assert_eq!(out["status"]["phase"], "Pending");
    }

    #[test]
    fn pod_validation_table() {
        let c = |extra: Value| merge(json!({"name": "app", "image": "nginx"}), extra);
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"containers": []}), "spec.containers", "Required value"),
            (json!({}), "spec.containers", "Required value"),
            (
                json!({"containers": [{"name": "app"}]}),
                "spec.containers[0].image",
                "Required value",
            ),
            (
                json!({"containers": [{"name": "app", "image": " "}]}),
                "spec.containers[0].image",
                "Required value",
            ),
            (
                json!({"containers": [{"image": "x"}]}),
                "spec.containers[0].name",
                "Required value",
            ),
            (
                json!({"containers": [c(json!({"name": "App"}))]}),
                "spec.containers[0].name",
                "Invalid value: \"App\"",
            ),
            (
                json!({"containers": [c(json!({})), c(json!({}))]}),
                "spec.containers[1].name",
                "Duplicate value: \"app\"",
            ),
            (
                json!({"initContainers": [c(json!({}))], "containers": [c(json!({}))]}),
                "spec.containers[0].name",
                "Duplicate value: \"app\"",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 0}]}))]}),
                "spec.containers[0].ports[0].containerPort",
                "must be between 1 and 65535, inclusive",
            ),
            (
                json!({"containers": [c(json!({"ports": [{}]}))]}),
                "spec.containers[0].ports[0].containerPort",
                "Invalid value: 0",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 70000}]}))]}),
                "spec.containers[0].ports[0].containerPort",
                "Invalid value: 70000",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "hostPort": 65536}]}))]}),
                "spec.containers[0].ports[0].hostPort",
                "between 1 and 65535",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "protocol": "ICMP"}]}))]}),
                "spec.containers[0].ports[0].protocol",
                "Unsupported value: \"ICMP\"",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "name": "this-name-is-too-long"}]}))]}),
                "spec.containers[0].ports[0].name",
                "15 characters",
            ),
            (
                json!({"containers": [c(json!({"imagePullPolicy": "Sometimes"}))]}),
                "spec.containers[0].imagePullPolicy",
                "Unsupported value",
            ),
            (
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "lots"}}}))]}),
                "spec.containers[0].resources.requests[cpu]",
                "quantities must match",
            ),
            (
                json!({"containers": [c(json!({"resources": {"limits": {"memory": "-1Gi"}}}))]}),
                "spec.containers[0].resources.limits[memory]",
                "greater than or equal to 0",
            ),
            (
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}))]}),
                "spec.containers[0].resources.requests",
                "Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ),
            (
                json!({"containers": [c(json!({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1024Mi"}}}))]}),
                "spec.containers[0].resources.requests",
                "memory limit of 1024Mi",
            ),
            (
                json!({"containers": [c(json!({"env": [{"value": "x"}]}))]}),
                "spec.containers[0].env[0].name",
                "Required value",
            ),
            (
                json!({"containers": [c(json!({"volumeMounts": [{"name": "data", "mountPath": "/d"}]}))]}),
                "spec.containers[0].volumeMounts[0].name",
                "Not found: \"data\"",
            ),
            (
                json!({"volumes": [{"name": "data", "emptyDir": {}}], "containers": [c(json!({"volumeMounts": [{"name": "data"}]}))]}),
                "spec.containers[0].volumeMounts[0].mountPath",
                "Required value",
            ),
            (
                json!({"volumes": [{"name": "data"}], "containers": [c(json!({}))]}),
                "spec.volumes[0]",
                "must specify a volume type",
            ),
            (
                json!({"volumes": [{"name": "data", "emptyDir": {}, "hostPath": {"path": "/x"}}], "containers": [c(json!({}))]}),
                "spec.volumes[0]",
                "may not specify more than 1 volume type",
            ),
            (
                json!({"volumes": [{"name": "d", "emptyDir": {}}, {"name": "d", "emptyDir": {}}], "containers": [c(json!({}))]}),
                "spec.volumes[1].name",
                "Duplicate value",
            ),
            (
                json!({"restartPolicy": "Sometimes", "containers": [c(json!({}))]}),
                "spec.restartPolicy",
                "Unsupported value: \"Sometimes\"",
            ),
            (
                json!({"dnsPolicy": "Google", "containers": [c(json!({}))]}),
                "spec.dnsPolicy",
                "Unsupported value",
            ),
            (
                json!({"terminationGracePeriodSeconds": -1, "containers": [c(json!({}))]}),
                "spec.terminationGracePeriodSeconds",
                "greater than or equal to 0",
            ),
            (
                json!({"activeDeadlineSeconds": 0, "containers": [c(json!({}))]}),
                "spec.activeDeadlineSeconds",
                "between 1 and",
            ),
            (
                json!({"nodeSelector": {"disk": "s s d"}, "containers": [c(json!({}))]}),
                "spec.nodeSelector",
                "Invalid value",
            ),
            (
                json!({"tolerations": [{"operator": "Equal", "value": "x"}], "containers": [c(json!({}))]}),
                "spec.tolerations[0].operator",
                "must be Exists",
            ),
            (
                json!({"tolerations": [{"key": "k", "operator": "Exists", "value": "x"}], "containers": [c(json!({}))]}),
                "spec.tolerations[0].operator",
                "value must be empty",
            ),
            (
                json!({"tolerations": [{"key": "k", "effect": "Sometimes"}], "containers": [c(json!({}))]}),
                "spec.tolerations[0].effect",
                "Unsupported value",
            ),
        ];
        for (spec, field, needle) in cases {
            let err = create_err("pods", pod(spec));
            assert_invalid(&err, field, needle);
        }
    }

    #[test]
    fn valid_pods_pass() {
        let specs = [
            json!({"containers": [{"name": "a", "image": "x",
                "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "128Mi"}}}]}),
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "http", "hostPort": 8080}]}]}),
            json!({"volumes": [{"name": "d", "emptyDir": {}}],
                   "containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}]}),
            json!({"tolerations": [{"operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"}],
                   "containers": [{"name": "a", "image": "x"}]}),
            json!({"restartPolicy": "OnFailure", "containers": [{"name": "a", "image": "x"}]}),
        ];
        for spec in specs {
            create("pods", pod(spec));
        }
    }

    #[test]
    fn malformed_pod_fields() {
        let err = create_err(
            "pods",
            pod(json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": "80"}]}]})),
        );
        assert_eq!(err.reason, Reason::BadRequest);
        assert_eq!(
            err.field.as_deref(),
            Some("spec.containers[0].ports[0].containerPort")
        );
        let err = create_err(
            "pods",
            pod(json!({"containers": [{"name": "a", "image": "x", "imagee": "y"}]})),
        );
        assert_eq!(err.field.as_deref(), Some("spec.containers[0].imagee"));
        assert_eq!(
            err.message,
            "strict decoding error: unknown field \"spec.containers[0].imagee\""
        );
    }

    #[test]
    fn pod_update_rules() {
        let old = create(
            "pods",
            pod(json!({"activeDeadlineSeconds": 100,
                       "tolerations": [{"key": "a", "operator": "Exists"}],
                       "schedulingGates": [{"name": "g1"}],
                       "initContainers": [{"name": "i", "image": "busybox:1"}],
                       "containers": [{"name": "app", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent"}]})),
        );
        // Allowed changes.
        let allowed = [
            json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}]}}),
            json!({"spec": {"initContainers": [{"name": "i", "image": "busybox:2", "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}]}}),
            json!({"spec": {"activeDeadlineSeconds": 50}}),
            json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]}}),
            json!({"spec": {"nodeName": "node-1"}}),
            json!({"spec": {"schedulingGates": []}}),
            json!({"metadata": {"labels": {"new": "label"}}}),
            json!({"status": {"phase": "Running"}}),
        ];
        for patch in allowed {
            update("pods", &old, merge(old.clone(), patch));
        }
        // Forbidden changes.
        let forbidden = [
            json!({"spec": {"restartPolicy": "Never"}}),
            json!({"spec": {"containers": [{"name": "other", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}]}}),
            json!({"spec": {"tolerations": []}}),
            json!({"spec": {"schedulingGates": [{"name": "g1"}, {"name": "g2"}]}}),
            json!({"spec": {"terminationGracePeriodSeconds": 5}}),
        ];
        for patch in forbidden {
            let err = update_err("pods", &old, merge(old.clone(), patch));
            assert_invalid(&err, "spec", "Forbidden: pod updates may not change fields");
        }
        let err = update_err(
            "pods",
            &old,
            merge(old.clone(), json!({"spec": {"activeDeadlineSeconds": 200}})),
        );
        assert_invalid(
            &err,
            "spec.activeDeadlineSeconds",
            "less than or equal to previous value",
        );
        let err = update_err(
            "pods",
            &old,
            merge(old.clone(), json!({"spec": {"activeDeadlineSeconds": null}})),
        );
        assert_invalid(&err, "spec.activeDeadlineSeconds", "to nil value");

        // Rebinding a bound pod is forbidden.
        let bound = update(
            "pods",
            &old,
            merge(old.clone(), json!({"spec": {"nodeName": "node-1"}})),
        );
        let err = update_err(
            "pods",
            &bound,
            merge(bound.clone(), json!({"spec": {"nodeName": "node-2"}})),
        );
        assert_invalid(&err, "spec", "Forbidden");
    }
}
