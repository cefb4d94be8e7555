//! DaemonSet decisions: one pod on every eligible node.
//!
//! A DaemonSet wants exactly one of its pods on each node that is
//! *eligible* ([`node_fit`]): the template's `nodeSelector` and required
//! node affinity match the node, and the node's `NoSchedule`/`NoExecute`
//! taints are tolerated, counting the tolerations every daemon pod gets
//! ([`daemon_tolerations`]). A node may also be eligible to *keep* a pod it
//! could not receive now (an untolerated `NoSchedule` taint, a node that is
//! not ready): then an existing pod stays but no new one is made. Each
//! reconcile ([`plan`]) decides, node by node:
//!
//! - **create** a pod on an eligible node that has none (pods are created
//!   already aimed at their node, see [`pod_for_node`]);
//! - **delete** pods on nodes that may no longer keep them (misscheduled),
//!   finished pods, and all but the oldest pod where a node has several;
//!   pods on nodes that no longer exist are **force-deleted**, because no
//!   agent is left to confirm their termination;
//! - **adopt** matching orphans and **release** pods that stopped matching,
//!   as a ReplicaSet does ([`crate::podutil::claim_pods`]);
//! - with the **RollingUpdate** strategy, delete pods of older revisions so
//!   that at most `maxUnavailable` daemon pods are unavailable at once (an
//!   old pod that is not available anyway is replaced at once); the create
//!   step then puts a current pod in its place. **OnDelete** never deletes
//!   for an update: only pods created later (after someone deletes an old
//!   one) get the new template.
//!
//! Revisions of the template are recorded in ControllerRevision objects
//! ([`plan_history`]), named `<daemonset>-<hash>`; pods carry the hash in
//! the `controller-revision-hash` label, which is how a pod's revision is
//! told. Old revisions beyond `revisionHistoryLimit` are pruned, except
//! those that live pods still use.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
    PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use crate::deployment::{scaled_value, template_hash_with_collisions};
use crate::podutil::{
    available_at, claim_pods, controller_owner_ref, controller_ref, creation_time, is_active, is_available,
    is_being_deleted, is_ready, is_scheduled, is_terminal,
};
use crate::replicaset::{selector_of, BURST_REPLICAS};
use crate::scheduler::affinity::node_selector_matches;
use crate::scheduler::filters::{taint_tolerated, TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE};

/// The label naming the ControllerRevision (by hash) a daemon pod was made
/// from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// Old revisions kept when `revisionHistoryLimit` is unset.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// The taint key for nodes low on disk.
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// The taint key for nodes low on memory.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// The taint key for nodes low on process ids.
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// The taint key for nodes whose network is not configured.
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
/// The field a `matchFields` node selector requirement names a node by.
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// The tolerations Kubernetes adds to every daemon pod: a daemon keeps
/// running on a node that is not ready or unreachable (`NoExecute`, without
/// a time limit), and is placed on nodes under resource pressure or
/// cordoned (`NoSchedule`). Host-network pods also tolerate an unconfigured
/// pod network, which they do not use.
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let exists = |key: &str, effect: &str| Toleration {
        key: Some(key.to_string()),
        operator: Some("Exists".to_string()),
        effect: Some(effect.to_string()),
        ..Toleration::default()
    };
    let mut out = vec![
        exists(TAINT_NOT_READY, "NoExecute"),
        exists(TAINT_UNREACHABLE, "NoExecute"),
        exists(TAINT_DISK_PRESSURE, "NoSchedule"),
        exists(TAINT_MEMORY_PRESSURE, "NoSchedule"),
        exists(TAINT_PID_PRESSURE, "NoSchedule"),
        exists(TAINT_UNSCHEDULABLE, "NoSchedule"),
    ];
    if host_network {
        out.push(exists(TAINT_NETWORK_UNAVAILABLE, "NoSchedule"));
    }
    out
}

/// Adds [`daemon_tolerations`] to a pod spec. A toleration the template
/// already has for the same key, operator, value and effect is replaced
/// (dropping a `tolerationSeconds` it may carry), as Kubernetes'
/// `AddOrUpdateTolerationInPodSpec` does, so a daemon is never evicted for
/// being on an unreachable node.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network == Some(true);
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    for t in daemon_tolerations(host_network) {
        let same = |o: &Toleration| {
            o.key == t.key && o.operator == t.operator && o.value == t.value && o.effect == t.effect
        };
        match list.iter_mut().find(|o| same(o)) {
            Some(existing) => *existing = t,
            None => list.push(t),
        }
    }
}

/// Whether a DaemonSet's pod belongs on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFit {
    /// A pod should be created here if there is none.
    pub should_run: bool,
    /// A pod already here may stay. Implied by `should_run`; without it an
    /// existing pod is misscheduled and is deleted.
    pub should_continue_running: bool,
}

const NO_FIT: NodeFit = NodeFit {
    should_run: false,
    should_continue_running: false,
};

/// The node's `Ready` condition status, `None` when it reports none.
fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// Whether `ds` wants a pod on `node`, as Kubernetes'
/// `NodeShouldRunDaemonPod` decides.
///
/// The template's `nodeName`, `nodeSelector` and required node affinity
/// must match, or the node is ruled out altogether. An untolerated
/// `NoExecute` taint rules it out too; an untolerated `NoSchedule` taint
/// only stops new pods. rk marks unready nodes with their `Ready` condition
/// rather than with Kubernetes' `not-ready`/`unreachable` `NoSchedule`
/// taints, so an unready node is treated as if it carried that taint (the
/// scheduler would not bind a pod there either). A node being deleted takes
/// no new pods. Cordoned nodes do take daemon pods: every daemon pod
/// tolerates `node.kubernetes.io/unschedulable`.
pub fn node_fit(ds: &DaemonSet, node: &Node) -> NodeFit {
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    let empty_spec = PodSpec::default();
    let spec = ds.spec.template.spec.as_ref().unwrap_or(&empty_spec);
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != node_name)
    {
        return NO_FIT;
    }
    let empty_labels = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty_labels);
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return NO_FIT;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    if let Some(required) = required {
        if !node_selector_matches(required, labels, node_name) {
            return NO_FIT;
        }
    }

    let mut with_defaults = PodSpec {
        tolerations: spec.tolerations.clone(),
        host_network: spec.host_network,
        ..PodSpec::default()
    };
    add_daemon_tolerations(&mut with_defaults);
    let tolerations = with_defaults.tolerations.unwrap_or_default();
    let mut fit = NodeFit {
        should_run: !is_being_deleted(&node.metadata),
        should_continue_running: true,
    };
    for taint in node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
    {
        if taint_tolerated(&tolerations, taint) {
            continue;
        }
        match taint.effect.as_str() {
            "NoExecute" => return NO_FIT,
            "NoSchedule" => fit.should_run = false,
            _ => {}
        }
    }
    let condition_taint = match ready_status(node) {
        Some("True") => None,
        Some("False") => Some(TAINT_NOT_READY),
        _ => Some(TAINT_UNREACHABLE),
    };
    if let Some(key) = condition_taint {
        let taint = k8s_openapi::api::core::v1::Taint {
            key: key.to_string(),
            effect: "NoSchedule".to_string(),
            ..Default::default()
        };
        if !taint_tolerated(&tolerations, &taint) {
            fit.should_run = false;
        }
    }
    fit
}

/// The node a daemon pod is meant for: its `spec.nodeName` once bound,
/// before that the node its required affinity names with a single
/// `matchFields metadata.name In [node]` term (the form [`pod_for_node`]
/// writes). Pods of any other shape have no target node.
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == NODE_NAME_FIELD && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.as_str()),
            _ => None,
        })
}

/// Replaces the required node affinity with the single term
/// `matchFields metadata.name In [node]`, keeping preferred terms and
/// inter-pod affinity. The node was chosen because it satisfied the
/// template's own required terms, so nothing is lost; the scheduler then
/// binds the pod there, checking resources and host ports on the way.
pub fn set_node_affinity(spec: &mut PodSpec, node: &str) {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: NODE_NAME_FIELD.to_string(),
                operator: "In".to_string(),
                values: Some(vec![node.to_string()]),
            }]),
        }],
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(selector);
}

/// A new pod of `ds` for `node`, from revision `hash` of the template: the
/// template's labels plus `controller-revision-hash`, its annotations,
/// `generateName` `<daemonset>-`, the daemon tolerations, the node affinity
/// naming `node`, and a controller owner reference that blocks the owner's
/// deletion.
pub fn pod_for_node(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds.spec.template.clone();
    let mut meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.to_string(), hash.to_string());
    let mut spec = template.spec.unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    set_node_affinity(&mut spec, node);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.metadata.name.as_deref().unwrap_or_default())),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations.take(),
            finalizers: meta.finalizers.take(),
            owner_references: Some(vec![controller_owner_ref("apps/v1", "DaemonSet", &ds.metadata)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Whether the pod was made from revision `hash`.
pub fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_HASH_LABEL))
        .is_some_and(|h| h == hash)
}

/// The order in which a node's daemon pods are preferred (Kubernetes'
/// `podByCreationTimestampAndPhase`): bound pods first, then the oldest,
/// then by name. The first is the one kept and reported in status.
fn daemon_pod_order(a: &&Pod, b: &&Pod) -> Ordering {
    is_scheduled(b)
        .cmp(&is_scheduled(a))
        .then_with(
            || match (creation_time(&a.metadata), creation_time(&b.metadata)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (None, None) => Ordering::Equal,
            },
        )
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Whether the DaemonSet replaces pods on template changes
/// (`RollingUpdate`, the default) rather than waiting for deletes.
fn is_rolling_update(ds: &DaemonSet) -> bool {
    ds.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// `maxUnavailable` as a count of the `desired` daemon pods: a percentage
/// rounds up, as in Kubernetes; the default is 1. Since rk does not
/// support `maxSurge` for DaemonSets, a value of 0 (or a malformed one,
/// which validation rejects) would stall every rollout, so it counts as 1,
/// as Kubernetes does when neither surge nor unavailability is allowed.
pub fn max_unavailable(ds: &DaemonSet, desired: i32) -> i32 {
    let value = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    let n = scaled_value(&value, desired, true).unwrap_or(0).max(0);
    if n == 0 {
        1
    } else {
        n
    }
}

/// What a DaemonSet reconcile should do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonSetPlan {
    /// Nodes to create a pod on ([`pod_for_node`]), by name.
    pub create: Vec<String>,
    /// Names of pods to delete gracefully.
    pub delete: Vec<String>,
    /// Names of pods to delete without waiting for their node's agent:
    /// their node no longer exists.
    pub force_delete: Vec<String>,
    /// Names of matching orphan pods to adopt.
    pub adopt: Vec<String>,
    /// Names of owned pods that no longer match and must be released.
    pub release: Vec<String>,
    /// The status observed before acting.
    pub status: DaemonSetStatus,
    /// When a ready pod becomes available (after `minReadySeconds`), so the
    /// caller can reconcile again then; `None` if nothing is waiting.
    pub recheck_at: Option<Timestamp>,
}

/// Decide one reconcile of `ds`, given every node, the pods of its
/// namespace (others are ignored), the hash of its current revision
/// ([`plan_history`]) and the time.
pub fn plan(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], hash: &str, now: Timestamp) -> DaemonSetPlan {
    let selector = selector_of(&ds.spec.selector);
    let claimed = claim_pods(&ds.metadata, selector.as_ref(), pods);
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let mut out = DaemonSetPlan {
        adopt: claimed.adopt,
        release: claimed.release,
        ..DaemonSetPlan::default()
    };

    // Pods without a target node were not made by a DaemonSet (or were
    // rewritten); they are left alone rather than guessed at.
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in &claimed.ours {
        if let Some(node) = target_node(pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    let mut fits: Vec<(&str, NodeFit)> = nodes
        .iter()
        .map(|n| (n.metadata.name.as_deref().unwrap_or_default(), node_fit(ds, n)))
        .collect();
    fits.sort_by(|a, b| a.0.cmp(b.0));

    out.status = status(ds, &fits, &by_node, hash, now);
    out.recheck_at = claimed
        .ours
        .iter()
        .filter(|p| is_active(p) && !is_available(p, min_ready, now))
        .filter_map(|p| available_at(p, min_ready))
        .min();
    if is_being_deleted(&ds.metadata) {
        return out;
    }

    // Pods on nodes that are gone: no agent will confirm a graceful
    // deletion, so they are removed at once (Kubernetes' pod garbage
    // collector does this for pods on deleted nodes).
    let known: BTreeSet<&str> = fits.iter().map(|(n, _)| *n).collect();
    for (node, pods) in &by_node {
        if !known.contains(node) {
            out.force_delete
                .extend(pods.iter().filter_map(|p| p.metadata.name.clone()));
        }
    }

    // Unavailable daemon pods across eligible nodes, old pods that may be
    // replaced at no cost in availability, and available old pods that
    // may be replaced within maxUnavailable.
    let mut unavailable = 0;
    let mut replace_now: Vec<&Pod> = Vec::new();
    let mut candidates: Vec<&Pod> = Vec::new();
    let name_of = |p: &&Pod| p.metadata.name.clone();
    for (node, fit) in &fits {
        let live: Vec<&Pod> = by_node
            .get(node)
            .map(|ps| {
                ps.iter()
                    .copied()
                    .filter(|p| !is_being_deleted(&p.metadata))
                    .collect()
            })
            .unwrap_or_default();
        if !fit.should_continue_running {
            out.delete.extend(live.iter().filter_map(name_of));
            continue;
        }
        let (finished, mut running): (Vec<&Pod>, Vec<&Pod>) = live.into_iter().partition(|p| is_terminal(p));
        // A finished daemon pod (its restart policy is Always, so the node
        // refused or evicted it) is replaced by a fresh one.
        out.delete.extend(finished.iter().filter_map(name_of));
        if running.is_empty() {
            if fit.should_run {
                out.create.push(node.to_string());
                unavailable += 1;
            }
            continue;
        }
        running.sort_by(daemon_pod_order);
        if running.len() > 1 {
            out.delete.extend(running[1..].iter().filter_map(name_of));
            unavailable += 1;
            continue;
        }
        // Only nodes that could receive a replacement take part in a
        // rollout: replacing a pod on a node that accepts no new pods would
        // leave the node without its daemon.
        if !fit.should_run {
            continue;
        }
        let pod = running[0];
        let available = is_available(pod, min_ready, now);
        if is_updated(pod, hash) {
            if !available {
                unavailable += 1;
            }
        } else if !available {
            replace_now.push(pod);
        } else {
            candidates.push(pod);
        }
    }
    out.create.truncate(BURST_REPLICAS);

    if is_rolling_update(ds) {
        let max = max_unavailable(ds, out.status.desired_number_scheduled);
        let budget = usize::try_from((max - unavailable).max(0)).unwrap_or(0);
        out.delete.extend(replace_now.iter().filter_map(name_of));
        out.delete
            .extend(candidates.iter().take(budget).filter_map(name_of));
    }
    out
}

/// The status of `ds` from its pods grouped by target node, counted as
/// Kubernetes does: on each node that should run a daemon, the preferred
/// pod ([`daemon_pod_order`]) decides ready, available and updated; a node
/// that should not run one but has one counts as misscheduled.
fn status(
    ds: &DaemonSet,
    fits: &[(&str, NodeFit)],
    by_node: &BTreeMap<&str, Vec<&Pod>>,
    hash: &str,
    now: Timestamp,
) -> DaemonSetStatus {
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let mut s = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        // Conditions describe failures only the caller sees; keep them.
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..DaemonSetStatus::default()
    };
    let (mut available, mut updated) = (0, 0);
    for (node, fit) in fits {
        // A pod that is both finished and being deleted is on its way out
        // and says nothing about the node.
        let mut pods: Vec<&Pod> = by_node
            .get(node)
            .map(|ps| {
                ps.iter()
                    .copied()
                    .filter(|p| !(is_being_deleted(&p.metadata) && is_terminal(p)))
                    .collect()
            })
            .unwrap_or_default();
        if !fit.should_run {
            if !pods.is_empty() {
                s.number_misscheduled += 1;
            }
            continue;
        }
        s.desired_number_scheduled += 1;
        pods.sort_by(daemon_pod_order);
        let Some(pod) = pods.first() else {
            continue;
        };
        s.current_number_scheduled += 1;
        if is_ready(pod) {
            s.number_ready += 1;
            if is_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if is_updated(pod, hash) {
            updated += 1;
        }
    }
    s.number_available = Some(available);
    s.number_unavailable = Some(s.desired_number_scheduled - available);
    s.updated_number_scheduled = Some(updated);
    s
}

/// A revision's `data`: the template as a patch of the DaemonSet spec.
/// Kubernetes stores a strategic-merge patch holding the template; a plain
/// `{"spec": {"template": ...}}` is such a patch.
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    json!({"spec": {"template": template}})
}

/// The template a revision records, if its data holds one.
pub fn revision_template(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let t = rev.data.0.get("spec")?.get("template")?;
    serde_json::from_value(t.clone()).ok()
}

/// A revision's number (0 when unset).
pub fn revision_number(rev: &ControllerRevision) -> i64 {
    rev.revision.unwrap_or(0)
}

/// The hash a revision stands for: its `controller-revision-hash` label.
pub fn revision_hash(rev: &ControllerRevision) -> Option<&str> {
    rev.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// The hash of `ds`'s current template, salted with its `collisionCount`
/// so that a name clash with a foreign revision can be escaped.
pub fn template_revision_hash(ds: &DaemonSet) -> String {
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    template_hash_with_collisions(&ds.spec.template, collisions)
}

/// A ControllerRevision recording `ds`'s current template as `revision`:
/// named `<daemonset>-<hash>`, labelled with the template's labels and the
/// hash, and controlled by the DaemonSet.
pub fn new_revision(ds: &DaemonSet, hash: &str, revision: i64) -> ControllerRevision {
    let mut labels = ds
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.to_string(), hash.to_string());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                ds.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![controller_owner_ref("apps/v1", "DaemonSet", &ds.metadata)]),
            ..ObjectMeta::default()
        },
        data: RawExtension(revision_data(&ds.spec.template)),
        revision: Some(revision),
    }
}

/// What to do with a DaemonSet's revision history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryPlan {
    /// The hash of the current revision: the `controller-revision-hash`
    /// new pods get.
    pub hash: String,
    /// A revision to create for the current template, when none records
    /// it yet.
    pub create: Option<ControllerRevision>,
    /// An existing revision recording the current template (a rollback)
    /// that must be renumbered above all others: (name, new revision).
    pub renumber: Option<(String, i64)>,
    /// Names of orphan revisions whose labels match the selector, to adopt.
    pub adopt: Vec<String>,
    /// Names of old revisions to delete, beyond `revisionHistoryLimit`.
    pub delete: Vec<String>,
}

/// Decide `ds`'s revision history from the ControllerRevisions of its
/// namespace (others are ignored) and its pods (whose hashes keep their
/// revisions alive).
///
/// The current revision is the newest one whose template equals the
/// DaemonSet's; if it is not the highest revision it is renumbered (the
/// template was rolled back), and if there is none a revision numbered one
/// above the highest is created. Old revisions beyond
/// `revisionHistoryLimit` (default 10) are deleted oldest first, skipping
/// any that a pod of the DaemonSet still carries.
pub fn plan_history(ds: &DaemonSet, revisions: &[ControllerRevision], pods: &[Pod]) -> HistoryPlan {
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    let namespace = ds.metadata.namespace.as_deref().unwrap_or("default");
    let selector = selector_of(&ds.spec.selector);
    let deleting = is_being_deleted(&ds.metadata);
    let mut out = HistoryPlan::default();

    let mut owned: Vec<&ControllerRevision> = Vec::new();
    for rev in revisions {
        if rev.metadata.namespace.as_deref().unwrap_or("default") != namespace || uid.is_empty() {
            continue;
        }
        match controller_ref(&rev.metadata) {
            Some(r) if r.uid == uid => owned.push(rev),
            Some(_) => {}
            None => {
                let empty = BTreeMap::new();
                let labels = rev.metadata.labels.as_ref().unwrap_or(&empty);
                if !deleting
                    && !is_being_deleted(&rev.metadata)
                    && selector.as_ref().is_some_and(|s| s.matches(labels))
                {
                    out.adopt.push(rev.metadata.name.clone().unwrap_or_default());
                    owned.push(rev);
                }
            }
        }
    }
    let max_revision = owned.iter().map(|r| revision_number(r)).max().unwrap_or(0);
    let current = owned
        .iter()
        .copied()
        .filter(|r| revision_template(r).as_ref() == Some(&ds.spec.template))
        .max_by(|a, b| {
            revision_number(a)
                .cmp(&revision_number(b))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
    match current {
        Some(cur) => {
            out.hash = revision_hash(cur)
                .map(str::to_string)
                .unwrap_or_else(|| template_revision_hash(ds));
            if revision_number(cur) < max_revision && !deleting {
                out.renumber = Some((cur.metadata.name.clone().unwrap_or_default(), max_revision + 1));
            }
        }
        None => {
            out.hash = template_revision_hash(ds);
            if !deleting {
                out.create = Some(new_revision(ds, &out.hash, max_revision + 1));
            }
        }
    }
    if deleting {
        return out;
    }

    let limit = usize::try_from(
        ds.spec
            .revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
            .max(0),
    )
    .unwrap_or(0);
    let current_name = current.and_then(|c| c.metadata.name.as_deref());
    let mut old: Vec<&ControllerRevision> = owned
        .into_iter()
        .filter(|r| r.metadata.name.as_deref() != current_name)
        .filter(|r| !is_being_deleted(&r.metadata))
        .collect();
    if old.len() <= limit {
        return out;
    }
    let live: BTreeSet<&str> = pods
        .iter()
        .filter(|p| crate::podutil::is_controlled_by(&p.metadata, uid))
        .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL))
        .map(String::as_str)
        .collect();
    let mut to_kill = old.len() - limit;
    old.sort_by(|a, b| {
        revision_number(a)
            .cmp(&revision_number(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    for rev in old {
        if to_kill == 0 {
            break;
        }
        if revision_hash(rev).is_some_and(|h| live.contains(h)) {
            continue;
        }
        out.delete.push(rev.metadata.name.clone().unwrap_or_default());
        to_kill -= 1;
    }
    out
}

#[cfg(test)]
mod tests;
