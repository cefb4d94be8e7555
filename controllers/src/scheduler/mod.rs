//! The scheduler's decision: which node a pending pod should run on.
//!
//! Scheduling is two passes over the nodes, as in kube-scheduler:
//!
//! 1. **Filter**: hard constraints rule nodes out ([`filters`]): readiness,
//!    cordoning, taints, node selectors and affinity, host ports, resources
//!    and inter-pod affinity. If no node passes, the pod is
//!    [`Unschedulable`] and the message counts the reasons, e.g.
//!    `0/5 nodes are available: 2 Insufficient cpu, 3 node(s) didn't match
//!    Pod's node affinity/selector.`
//! 2. **Score**: the remaining nodes are ranked by weighted soft preferences
//!    ([`scores`]); the best wins, ties going to the first node by name (or
//!    rotating among tied nodes with [`ScheduleContext::seed`]).
//!
//! Throughput matters (thousands of pods per second over thousands of
//! nodes), so everything about the pod is computed once per call
//! ([`PodFacts`]), everything about a node once per change ([`NodeInfo`]),
//! and, like kube-scheduler's `percentageOfNodesToScore`, the filter pass
//! can stop once [`ScheduleContext::max_nodes_to_score`] feasible nodes are
//! found. The scan then starts where the previous one stopped
//! ([`ScheduleContext::start_index`]), so every node gets its turn.

pub mod affinity;
pub mod filters;
pub mod node_info;
pub mod resources;
pub mod scores;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, Pod, PreferredSchedulingTerm, Toleration};

pub use affinity::{InterPodState, PodAffinityTerms, HOSTNAME_LABEL, ZONE_LABEL};
pub use filters::FilterFailure;
pub use node_info::{HostPort, NodeInfo, Readiness};
pub use resources::Resources;
pub use scores::ScoreWeights;

use crate::podutil::controller_ref;
use crate::Error;
use node_info::{labels_or_empty, pod_host_ports};

/// Parameters of one scheduling decision.
#[derive(Debug, Clone, Default)]
pub struct ScheduleContext {
    /// Chooses among nodes with equal best scores: candidates are ordered by
    /// name and the one at `seed % count` wins. 0 always picks the first
    /// name; a caller that wants ties spread can pass a counter.
    pub seed: u64,
    /// Stop filtering once this many feasible nodes are found (0 = look at
    /// every node). See [`default_nodes_to_score`].
    pub max_nodes_to_score: usize,
    /// The index in the node slice where the filter pass starts; pass the
    /// previous decision's [`ScheduleDecision::next_start_index`].
    pub start_index: usize,
    /// Score weights.
    pub weights: ScoreWeights,
    /// Labels of namespaces by name, for affinity terms with a
    /// `namespaceSelector`. Namespaces missing here match no selector.
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// kube-scheduler's sampling rule: score at most 10 % of the nodes, but at
/// least 100 (all of them in small clusters).
pub fn default_nodes_to_score(total_nodes: usize) -> usize {
    (total_nodes / 10).max(100)
}

/// Where the pod should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleDecision {
    /// The chosen node's name.
    pub node: String,
    /// Its weighted total score.
    pub score: i64,
    /// How many feasible nodes were scored.
    pub feasible: usize,
    /// Where the next call should start its scan.
    pub next_start_index: usize,
}

/// No node can take the pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unschedulable {
    /// Reason → number of nodes that failed for it.
    pub reasons: BTreeMap<String, usize>,
    /// kube-scheduler's summary, e.g. `0/3 nodes are available: 3 Insufficient cpu.`
    pub message: String,
}

impl Unschedulable {
    /// The summary for `total` nodes failing with `reasons`.
    pub fn new(total: usize, reasons: BTreeMap<String, usize>) -> Unschedulable {
        let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let message = if parts.is_empty() {
            format!("0/{total} nodes are available.")
        } else {
            format!("0/{total} nodes are available: {}.", parts.join(", "))
        };
        Unschedulable { reasons, message }
    }

    fn other(message: String) -> Unschedulable {
        Unschedulable {
            reasons: BTreeMap::new(),
            message,
        }
    }
}

static EMPTY_NAMESPACES: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();

/// Everything about the pod being scheduled that filters and scores need,
/// computed once per scheduling call.
#[derive(Debug)]
pub struct PodFacts<'p> {
    /// The pod.
    pub pod: &'p Pod,
    /// Its namespace (`default` when unset).
    pub namespace: &'p str,
    /// Its labels.
    pub labels: &'p BTreeMap<String, String>,
    /// Namespace labels for `namespaceSelector`s.
    pub namespace_labels: &'p BTreeMap<String, BTreeMap<String, String>>,
    /// Its effective resource requests.
    pub requests: Resources,
    /// CPU (millicores) and memory (bytes) with scoring defaults.
    pub non_zero: (i64, i64),
    /// The host ports it binds.
    pub host_ports: Vec<HostPort>,
    /// Its tolerations.
    pub tolerations: &'p [Toleration],
    /// Its `nodeSelector`.
    pub node_selector: Option<&'p BTreeMap<String, String>>,
    /// Its required node affinity.
    pub required_node_affinity: Option<&'p NodeSelector>,
    /// Its preferred node affinity terms.
    pub preferred_node_affinity: &'p [PreferredSchedulingTerm],
    /// `spec.nodeName`, when the pod asks for a node.
    pub node_name: Option<&'p str>,
    /// The uid of its controller, for spreading.
    pub owner_uid: Option<&'p str>,
    /// Its inter-pod terms, compiled.
    pub affinity_terms: PodAffinityTerms,
}

impl<'p> PodFacts<'p> {
    /// Gather the facts for `pod`. Fails only on unparseable quantities.
    pub fn new(pod: &'p Pod, ctx: &'p ScheduleContext) -> Result<PodFacts<'p>, Error> {
        Self::with_namespaces(pod, &ctx.namespace_labels)
    }

    fn with_namespaces(
        pod: &'p Pod,
        namespace_labels: &'p BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<PodFacts<'p>, Error> {
        let spec = pod.spec.as_ref();
        let node_affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref());
        Ok(PodFacts {
            pod,
            namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
            labels: labels_or_empty(&pod.metadata),
            namespace_labels,
            requests: resources::pod_requests(pod)?,
            non_zero: resources::pod_non_zero_requests(pod)?,
            host_ports: pod_host_ports(pod),
            tolerations: spec.and_then(|s| s.tolerations.as_deref()).unwrap_or_default(),
            node_selector: spec
                .and_then(|s| s.node_selector.as_ref())
                .filter(|m| !m.is_empty()),
            required_node_affinity: node_affinity
                .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref()),
            preferred_node_affinity: node_affinity
                .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_deref())
                .unwrap_or_default(),
            node_name: spec
                .and_then(|s| s.node_name.as_deref())
                .filter(|n| !n.is_empty()),
            owner_uid: controller_ref(&pod.metadata).map(|r| r.uid.as_str()),
            affinity_terms: PodAffinityTerms::of(pod),
        })
    }
}

/// A feasible node and its scores.
struct Candidate<'n> {
    node: &'n NodeInfo,
    least_allocated: i64,
    balanced: i64,
    node_affinity_raw: i64,
    taints_raw: i64,
    inter_pod_raw: i64,
    owner_count: u32,
}

/// Choose a node for `pod` among `nodes`.
pub fn schedule(
    pod: &Pod,
    nodes: &[NodeInfo],
    ctx: &ScheduleContext,
) -> Result<ScheduleDecision, Unschedulable> {
    schedule_tracked(pod, nodes, None, ctx)
}

/// [`schedule`] for a caller that keeps track of which nodes hold pods with
/// inter-pod terms: `nodes_with_pod_terms` lists their indices in `nodes`
/// (see [`InterPodState::build_tracked`]); `None` means unknown, and every
/// node is looked at. The decision is the same either way.
pub fn schedule_tracked(
    pod: &Pod,
    nodes: &[NodeInfo],
    nodes_with_pod_terms: Option<&[usize]>,
    ctx: &ScheduleContext,
) -> Result<ScheduleDecision, Unschedulable> {
    if nodes.is_empty() {
        return Err(Unschedulable::other(
            "no nodes available to schedule pods".to_string(),
        ));
    }
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
    {
        return Err(Unschedulable::other(
            "pod has unresolved scheduling gates".to_string(),
        ));
    }
    let facts = PodFacts::new(pod, ctx).map_err(|e| Unschedulable::other(e.to_string()))?;
    let state = InterPodState::build_tracked(&facts, nodes, nodes_with_pod_terms);

    let total = nodes.len();
    let wanted = if ctx.max_nodes_to_score == 0 {
        total
    } else {
        ctx.max_nodes_to_score.min(total)
    };
    let start = ctx.start_index % total;
    let mut candidates: Vec<Candidate<'_>> = Vec::with_capacity(wanted.min(1024));
    let mut failures: Vec<FilterFailure<'_>> = Vec::new();
    let mut visited = 0;
    for k in 0..total {
        let node = &nodes[(start + k) % total];
        visited = k + 1;
        match filters::run_all(&facts, &state, node) {
            Ok(()) => {
                candidates.push(Candidate {
                    node,
                    least_allocated: 0,
                    balanced: 0,
                    node_affinity_raw: 0,
                    taints_raw: 0,
                    inter_pod_raw: 0,
                    owner_count: 0,
                });
                if candidates.len() >= wanted {
                    break;
                }
            }
            // Reasons only matter when nothing fits, so stop keeping them
            // once something does.
            Err(f) if candidates.is_empty() => failures.push(f),
            Err(_) => {}
        }
    }
    if candidates.is_empty() {
        let mut reasons = BTreeMap::new();
        for f in &failures {
            for r in f.reasons() {
                *reasons.entry(r).or_insert(0) += 1;
            }
        }
        return Err(Unschedulable::new(total, reasons));
    }

    score_candidates(&facts, &state, &mut candidates);
    let (node, score) = pick_best(&candidates, ctx);
    Ok(ScheduleDecision {
        node: node.to_string(),
        score,
        feasible: candidates.len(),
        next_start_index: (start + visited) % total,
    })
}

/// Normalize the relative scores over the candidates, weigh and sum them,
/// and pick the best node (see [`ScheduleContext::seed`] for ties).
fn pick_best<'n>(candidates: &[Candidate<'n>], ctx: &ScheduleContext) -> (&'n str, i64) {
    let w = &ctx.weights;
    let max_node_affinity = candidates.iter().map(|c| c.node_affinity_raw).max().unwrap_or(0);
    let max_taints = candidates.iter().map(|c| c.taints_raw).max().unwrap_or(0);
    let max_inter = candidates.iter().map(|c| c.inter_pod_raw).max().unwrap_or(0);
    let min_inter = candidates.iter().map(|c| c.inter_pod_raw).min().unwrap_or(0);
    let spread = scores::Spread::new(candidates.iter().map(|c| (c.owner_count, c.node.zone_key())));
    let mut ties: Vec<&'n NodeInfo> = Vec::new();
    let mut best_score = i64::MIN;
    for c in candidates {
        let total = w.least_allocated * c.least_allocated
            + w.balanced_allocation * c.balanced
            + w.node_affinity * scores::normalize(c.node_affinity_raw, max_node_affinity)
            + w.taint_toleration * scores::normalize_reverse(c.taints_raw, max_taints)
            + w.inter_pod_affinity * scores::normalize_range(c.inter_pod_raw, min_inter, max_inter)
            + w.spread * spread.score(c.owner_count, c.node.zone_key());
        if total > best_score {
            best_score = total;
            ties.clear();
        }
        if total == best_score {
            ties.push(c.node);
        }
    }
    // The tied nodes in name order, position `seed % len`; selecting the
    // k-th is linear, where sorting all ties would dominate the call when
    // many identical nodes tie.
    let k = usize::try_from(ctx.seed % (ties.len().max(1) as u64)).unwrap_or(0);
    let name = if k == 0 {
        ties.iter().copied().min_by(|a, b| a.cmp_name(b))
    } else {
        Some(*ties.select_nth_unstable_by(k, |a, b| a.cmp_name(b)).1)
    };
    (name.map_or("", |n| n.name()), best_score)
}

/// Fill in the per-node scores of the candidates.
fn score_candidates(pod: &PodFacts<'_>, state: &InterPodState, candidates: &mut [Candidate<'_>]) {
    let has_node_pref = !pod.preferred_node_affinity.is_empty();
    let has_inter = state.has_preferences();
    let owner_key = pod.owner_uid.map(node_info::string_key);
    for c in candidates.iter_mut() {
        c.least_allocated = scores::least_allocated(pod, c.node);
        c.balanced = scores::balanced_allocation(pod, c.node);
        if has_node_pref {
            c.node_affinity_raw = scores::preferred_node_affinity(pod, c.node);
        }
        c.taints_raw = scores::untolerated_prefer_no_schedule(pod, c.node);
        if has_inter {
            c.inter_pod_raw = state.preference(c.node);
        }
        if let Some(key) = owner_key {
            c.owner_count = c.node.pods_of_owner_key(key);
        }
    }
}

/// Whether `node` can take `pod` given the cluster `nodes` (for inter-pod
/// affinity), with every reason it cannot. Slower than [`schedule`] per
/// node; meant for admission checks and tests.
pub fn check_node(
    pod: &Pod,
    node: &NodeInfo,
    nodes: &[NodeInfo],
    ctx: &ScheduleContext,
) -> Result<(), Vec<String>> {
    let facts = PodFacts::with_namespaces(pod, &ctx.namespace_labels).map_err(|e| vec![e.to_string()])?;
    let state = InterPodState::build(&facts, nodes);
    filters::run_all(&facts, &state, node).map_err(|f| f.reasons())
}

/// [`PodFacts`] for tests and callers without a context.
pub fn pod_facts(pod: &Pod) -> Result<PodFacts<'_>, Error> {
    PodFacts::with_namespaces(pod, &EMPTY_NAMESPACES)
}
