//! Filters: the hard constraints that rule a node out for a pod.
//!
//! Each filter is a function of the pod's precomputed facts and one node and
//! either passes or names why the node does not fit. Failures borrow from the
//! node instead of formatting strings, because in a large cluster most nodes
//! may fail and the text is only needed when no node fits at all. The
//! reason texts are kube-scheduler's, so messages look familiar.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::affinity::{node_selector_matches, InterPodState};
use super::node_info::{NodeInfo, Readiness};
use super::PodFacts;

/// The taint key Kubernetes puts on cordoned nodes.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint key Kubernetes puts on nodes whose `Ready` is `False`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint key Kubernetes puts on nodes whose `Ready` is `Unknown`.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Which resources a node lacks for a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Insufficient {
    /// The node already holds its allowed number of pods.
    pub pods: bool,
    /// Not enough CPU left.
    pub cpu: bool,
    /// Not enough memory left.
    pub memory: bool,
    /// Not enough ephemeral storage left.
    pub ephemeral_storage: bool,
    /// Other resources that are short, by name.
    pub scalar: Vec<String>,
}

/// Why a node cannot take a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterFailure<'a> {
    /// `spec.unschedulable` is set and not tolerated.
    Unschedulable,
    /// The pod asks for another node by name.
    NodeName,
    /// The node is not ready (or stopped reporting) and the pod does not
    /// tolerate that.
    NotReady,
    /// A `NoSchedule`/`NoExecute` taint the pod does not tolerate.
    UntoleratedTaint(&'a Taint),
    /// `nodeSelector` or required node affinity does not match.
    NodeAffinity,
    /// A requested host port is already bound on the node.
    HostPorts,
    /// The node lacks resources.
    Resources(Insufficient),
    /// Existing pods' required anti-affinity keeps the pod away.
    ExistingPodsAntiAffinity,
    /// The pod's required anti-affinity rules the node out.
    PodAntiAffinity,
    /// The pod's required affinity is not satisfied on the node.
    PodAffinity,
}

impl FilterFailure<'_> {
    /// The reasons in kube-scheduler's words; a resource failure can give
    /// several (one per short resource).
    pub fn reasons(&self) -> Vec<String> {
        let one = |s: &str| vec![s.to_string()];
        match self {
            FilterFailure::Unschedulable => one("node(s) were unschedulable"),
            FilterFailure::NodeName => one("node(s) didn't match the requested node name"),
            FilterFailure::NotReady => one("node(s) were not ready"),
            FilterFailure::UntoleratedTaint(t) => vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or_default()
            )],
            FilterFailure::NodeAffinity => one("node(s) didn't match Pod's node affinity/selector"),
            FilterFailure::HostPorts => one("node(s) didn't have free ports for the requested pod ports"),
            FilterFailure::Resources(i) => {
                let mut out = Vec::new();
                if i.pods {
                    out.push("Too many pods".to_string());
                }
                if i.cpu {
                    out.push("Insufficient cpu".to_string());
                }
                if i.memory {
                    out.push("Insufficient memory".to_string());
                }
                if i.ephemeral_storage {
                    out.push("Insufficient ephemeral-storage".to_string());
                }
                out.extend(i.scalar.iter().map(|s| format!("Insufficient {s}")));
                out
            }
            FilterFailure::ExistingPodsAntiAffinity => {
                one("node(s) didn't satisfy existing pods anti-affinity rules")
            }
            FilterFailure::PodAntiAffinity => one("node(s) didn't match pod anti-affinity rules"),
            FilterFailure::PodAffinity => one("node(s) didn't match pod affinity rules"),
        }
    }
}

/// The result of one filter on one node.
pub type FilterResult<'a> = Result<(), FilterFailure<'a>>;

/// Whether a toleration tolerates a taint with this key, value and effect.
///
/// An empty toleration effect matches every effect; an empty key with
/// `Exists` matches every key; `Exists` ignores the value and `Equal` (the
/// default) compares it.
pub fn tolerates(t: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != effect {
            return false;
        }
    }
    if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if k != key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or_default() == value,
        _ => false,
    }
}

/// Whether any of the tolerations tolerates the taint.
pub fn taint_tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    let value = taint.value.as_deref().unwrap_or_default();
    tolerations
        .iter()
        .any(|t| tolerates(t, &taint.key, value, &taint.effect))
}

/// A cordoned node only takes pods that tolerate
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable<'a>(pod: &PodFacts<'_>, node: &'a NodeInfo) -> FilterResult<'a> {
    if node.is_unschedulable()
        && !pod
            .tolerations
            .iter()
            .any(|t| tolerates(t, TAINT_UNSCHEDULABLE, "", "NoSchedule"))
    {
        return Err(FilterFailure::Unschedulable);
    }
    Ok(())
}

/// A pod that names its node (`spec.nodeName`) fits only there.
pub fn node_name<'a>(pod: &PodFacts<'_>, node: &'a NodeInfo) -> FilterResult<'a> {
    match pod.node_name {
        Some(n) if n != node.name() => Err(FilterFailure::NodeName),
        _ => Ok(()),
    }
}

/// Nodes that are not ready take only pods tolerating the matching
/// `not-ready`/`unreachable` taint (as DaemonSet pods do).
pub fn node_ready<'a>(pod: &PodFacts<'_>, node: &'a NodeInfo) -> FilterResult<'a> {
    let key = match node.readiness() {
        Readiness::Ready => return Ok(()),
        Readiness::NotReady => TAINT_NOT_READY,
        Readiness::Unknown => TAINT_UNREACHABLE,
    };
    if pod
        .tolerations
        .iter()
        .any(|t| tolerates(t, key, "", "NoSchedule"))
    {
        Ok(())
    } else {
        Err(FilterFailure::NotReady)
    }
}

/// `NoSchedule` and `NoExecute` taints must be tolerated;
/// `PreferNoSchedule` only lowers the score.
pub fn taint_toleration<'a>(pod: &PodFacts<'_>, node: &'a NodeInfo) -> FilterResult<'a> {
    for taint in node.taints() {
        if matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !taint_tolerated(pod.tolerations, taint)
        {
            return Err(FilterFailure::UntoleratedTaint(taint));
        }
    }
    Ok(())
}

/// `nodeSelector` labels must all be present, and one of the required node
/// affinity terms must hold.
pub fn node_affinity<'a>(pod: &PodFacts<'_>, node: &'a NodeInfo) -> FilterResult<'a> {
    // Most pods ask for neither, and the labels live behind the node's
    // box: reading them anyway cost a cache miss per node looked at.
    if pod.node_selector.is_none() && pod.required_node_affinity.is_none() {
        return Ok(());
    }
    let labels = node.labels();
    if let Some(sel) = pod.node_selector {
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return Err(FilterFailure::NodeAffinity);
        }
    }
    if let Some(required) = pod.required_node_affinity {
        if !node_selector_matches(required, labels, node.name()) {
            return Err(FilterFailure::NodeAffinity);
        }
    }
    Ok(())
}

/// Every host port the pod binds must be free on the node.
pub fn node_ports<'a>(pod: &PodFacts<'_>, node: &'a NodeInfo) -> FilterResult<'a> {
    let used = node.used_host_ports();
    if pod
        .host_ports
        .iter()
        .any(|want| used.iter().any(|u| u.conflicts(want)))
    {
        return Err(FilterFailure::HostPorts);
    }
    Ok(())
}

/// The pod's requests must fit in what is left of the node's allocatable
/// amounts, and the node must accept one more pod. Resources the pod does
/// not request are not checked, so an overcommitted node still takes
/// request-less pods, as in Kubernetes.
pub fn node_resources_fit<'a>(pod: &PodFacts<'_>, node: &'a NodeInfo) -> FilterResult<'a> {
    let alloc = node.allocatable();
    let used = node.requested();
    let req = &pod.requests;
    let short = |want: i64, have: i64, taken: i64| want > 0 && want > have.saturating_sub(taken);
    let mut ins = Insufficient {
        pods: i64::try_from(node.pod_count()).unwrap_or(i64::MAX) >= node.allowed_pod_count(),
        cpu: short(req.milli_cpu, alloc.milli_cpu, used.milli_cpu),
        memory: short(req.memory, alloc.memory, used.memory),
        ephemeral_storage: short(
            req.ephemeral_storage,
            alloc.ephemeral_storage,
            used.ephemeral_storage,
        ),
        scalar: Vec::new(),
    };
    for (name, want) in &req.scalar {
        if short(*want, alloc.get(name), used.get(name)) {
            ins.scalar.push(name.clone());
        }
    }
    if ins == Insufficient::default() {
        Ok(())
    } else {
        Err(FilterFailure::Resources(ins))
    }
}

/// Required inter-pod affinity and anti-affinity, in both directions.
pub fn inter_pod_affinity<'a>(
    pod: &PodFacts<'_>,
    state: &InterPodState,
    node: &'a NodeInfo,
) -> FilterResult<'a> {
    if state.violates_existing_anti(node) {
        return Err(FilterFailure::ExistingPodsAntiAffinity);
    }
    if state.violates_anti(pod, node) {
        return Err(FilterFailure::PodAntiAffinity);
    }
    if !state.satisfies_affinity(pod, node) {
        return Err(FilterFailure::PodAffinity);
    }
    Ok(())
}

/// Run every filter, cheapest and most selective first, stopping at the
/// first failure.
pub fn run_all<'a>(pod: &PodFacts<'_>, state: &InterPodState, node: &'a NodeInfo) -> FilterResult<'a> {
    node_unschedulable(pod, node)?;
    node_name(pod, node)?;
    node_ready(pod, node)?;
    taint_toleration(pod, node)?;
    node_affinity(pod, node)?;
    node_ports(pod, node)?;
    node_resources_fit(pod, node)?;
    inter_pod_affinity(pod, state, node)
}
