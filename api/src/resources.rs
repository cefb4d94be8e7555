//! The registry of resource kinds rk serves.
//!
//! Each entry records the names Kubernetes uses for a kind (group, version,
//! kind, plural, singular, short names) plus whether it is namespaced and has
//! a status subresource. The CLI resolves user input (`deploy`, `pods`,
//! `deployments.apps`) with [`lookup`]; the server resolves manifests with
//! [`by_api_version_kind`].

/// One kind of resource, with the names Kubernetes uses for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceKind {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// API version within the group, e.g. `v1`.
    pub version: &'static str,
    /// CamelCase kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Lowercase plural resource name, e.g. `deployments`.
    pub plural: &'static str,
    /// Lowercase singular name, e.g. `deployment`.
    pub singular: &'static str,
    /// kubectl short names, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether the kind has a `status` subresource.
    pub has_status: bool,
}

impl ResourceKind {
    /// The `apiVersion` as written in manifests: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group-qualified resource: `deployments.apps`, or `pods` for core.
    pub fn group_resource(&self) -> String {
        qualify(self.plural, self.group)
    }

    /// The group-qualified kind as used in validation messages:
    /// `Deployment.apps`, or `Pod` for core.
    pub fn group_kind(&self) -> String {
        qualify(self.kind, self.group)
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

/// Shorthand to keep the table below readable.
const fn kind(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    has_status: bool,
) -> ResourceKind {
    ResourceKind {
        group,
        version: "v1",
        kind,
        plural,
        singular,
        short_names,
        namespaced,
        has_status,
    }
}

static ALL: [ResourceKind; 13] = [
    kind("", "Namespace", "namespaces", "namespace", &["ns"], false, true),
    kind("", "Node", "nodes", "node", &["no"], false, true),
    kind("", "Pod", "pods", "pod", &["po"], true, true),
    kind("", "ConfigMap", "configmaps", "configmap", &["cm"], true, false),
    kind("", "Secret", "secrets", "secret", &[], true, false),
    kind("", "Event", "events", "event", &["ev"], true, false),
    kind(
        "apps",
        "Deployment",
        "deployments",
        "deployment",
        &["deploy"],
        true,
        true,
    ),
    kind(
        "apps",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        &["rs"],
        true,
        true,
    ),
    kind(
        "apps",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        &["ds"],
        true,
        true,
    ),
    kind(
        "apps",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        &[],
        true,
        false,
    ),
    kind("batch", "Job", "jobs", "job", &[], true, true),
    kind("batch", "CronJob", "cronjobs", "cronjob", &["cj"], true, true),
    kind(
        "coordination.k8s.io",
        "Lease",
        "leases",
        "lease",
        &[],
        true,
        false,
    ),
];

/// Every supported kind.
pub fn all() -> &'static [ResourceKind] {
    &ALL
}

/// Whether `name` (already lowercased) names `k` by plural, singular, short
/// name or kind.
fn names_kind(k: &ResourceKind, name: &str) -> bool {
    k.plural == name
        || k.singular == name
        || k.kind.eq_ignore_ascii_case(name)
        || k.short_names.contains(&name)
}

/// Find by plural, singular, short name, Kind (all case-insensitive), or
/// "plural.group" ("deployments.apps", "deploy.apps" ok). The kubectl form
/// "resource.version.group" ("deployments.v1.apps") is accepted too.
pub fn lookup(name: &str) -> Option<&'static ResourceKind> {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return None;
    }
    if let Some(k) = ALL.iter().find(|k| names_kind(k, &name)) {
        return Some(k);
    }
    // Group names contain dots themselves (coordination.k8s.io), so only the
    // first dot separates the resource from the group.
    let (resource, rest) = name.split_once('.')?;
    if rest.is_empty() {
        return None;
    }
    ALL.iter().find(|k| {
        names_kind(k, resource)
            && (rest == k.group
                || rest == format!("{}.{}", k.version, k.group)
                || (k.group.is_empty() && rest == k.version))
    })
}

/// Find by apiVersion + kind as written in a manifest. Wrong group/version
/// for a known kind => None. Kinds are matched case-sensitively, as the
/// Kubernetes API server does.
pub fn by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static ResourceKind> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ALL.iter()
        .find(|k| k.kind == kind && k.group == group && k.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("pods", Some("Pod")),
            ("pod", Some("Pod")),
            ("po", Some("Pod")),
            ("Pod", Some("Pod")),
            ("PODS", Some("Pod")),
            ("ns", Some("Namespace")),
            ("no", Some("Node")),
            ("nodes", Some("Node")),
            ("cm", Some("ConfigMap")),
            ("configmap", Some("ConfigMap")),
            ("secrets", Some("Secret")),
            ("ev", Some("Event")),
            ("deploy", Some("Deployment")),
            ("deployments.apps", Some("Deployment")),
            ("deploy.apps", Some("Deployment")),
            ("Deployment.apps", Some("Deployment")),
            ("deployments.v1.apps", Some("Deployment")),
            ("deployments.batch", None),
            ("rs", Some("ReplicaSet")),
            ("ds", Some("DaemonSet")),
            ("controllerrevisions", Some("ControllerRevision")),
            ("jobs", Some("Job")),
            ("jobs.batch", Some("Job")),
            ("cj", Some("CronJob")),
            ("cronjobs.batch", Some("CronJob")),
            ("lease", Some("Lease")),
            ("leases.coordination.k8s.io", Some("Lease")),
            ("leases.coordination", None),
            ("pods.v1", Some("Pod")),
            ("services", None),
            ("", None),
            ("pods.", None),
        ];
        for (input, want) in cases {
            assert_eq!(lookup(input).map(|k| k.kind), *want, "lookup({input:?})");
        }
    }

    #[test]
    fn api_version_kind_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("v1", "Pod", Some("pods")),
            ("apps/v1", "Deployment", Some("deployments")),
            ("v1", "Deployment", None),
            ("apps/v1beta1", "Deployment", None),
            ("extensions/v1beta1", "Deployment", None),
            ("batch/v1", "CronJob", Some("cronjobs")),
            ("coordination.k8s.io/v1", "Lease", Some("leases")),
            ("v1", "pod", None),
            ("v1", "Service", None),
        ];
        for (av, kind, want) in cases {
            assert_eq!(
                by_api_version_kind(av, kind).map(|k| k.plural),
                *want,
                "{av} {kind}"
            );
        }
    }

    #[test]
    fn derived_names() {
        let d = lookup("deploy").expect("deployment registered");
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.group_resource(), "deployments.apps");
        assert_eq!(d.group_kind(), "Deployment.apps");
        let p = lookup("po").expect("pod registered");
        assert_eq!(p.api_version(), "v1");
        assert_eq!(p.group_resource(), "pods");
        assert_eq!(p.group_kind(), "Pod");
    }

    #[test]
    fn scope_and_status_flags() {
        for k in all() {
            let cluster = matches!(k.kind, "Namespace" | "Node");
            assert_eq!(k.namespaced, !cluster, "{}", k.kind);
            let status = matches!(
                k.kind,
                "Namespace" | "Node" | "Pod" | "Deployment" | "ReplicaSet" | "DaemonSet" | "Job" | "CronJob"
            );
            assert_eq!(k.has_status, status, "{}", k.kind);
            assert_eq!(by_api_version_kind(&k.api_version(), k.kind), Some(k));
        }
    }
}
