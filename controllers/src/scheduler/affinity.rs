//! Node affinity and inter-pod (anti-)affinity matching.
//!
//! *Node affinity* compares a pod's `nodeSelector` and node selector terms
//! with a node's labels (and, for `matchFields`, its name). Terms are ORed,
//! the expressions inside a term are ANDed.
//!
//! *Inter-pod affinity* is about other pods: a term names the pods it cares
//! about (a label selector over some namespaces) and a topology key; the
//! term holds on a node when some matching pod runs on a node with the same
//! value of that key (same host, same zone, ...). Affinity requires such a
//! pod, anti-affinity forbids it. Existing pods' anti-affinity terms also
//! keep an incoming pod away from them.
//!
//! Terms are compiled once ([`AffinityTerm`]) so that label selectors are
//! not re-parsed for every node. [`InterPodState`] gathers, once per
//! scheduling call, which topology domains hold matching pods, so that each
//! node is then checked with a few hash lookups.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{
    Affinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use rk_api::selector::LabelSelector;

use super::node_info::{labels_or_empty, NodeInfo};
use super::PodFacts;

/// The label every node carries with its host name.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// The label naming a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Whether one node selector requirement holds for a node's labels.
pub fn requirement_matches(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&req.key);
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => !value.is_some_and(|v| values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            // Both sides must be integers; anything else never matches, as in
            // Kubernetes.
            let (Some(label), [bound]) = (value, values) else {
                return false;
            };
            match (label.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(l), Ok(b)) if req.operator == "Gt" => l > b,
                (Ok(l), Ok(b)) => l < b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether one `matchFields` requirement holds. Only `metadata.name` with
/// `In`/`NotIn` is defined for nodes.
fn field_requirement_matches(req: &NodeSelectorRequirement, node_name: &str) -> bool {
    if req.key != "metadata.name" {
        return false;
    }
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => values.iter().any(|v| v == node_name),
        "NotIn" => !values.iter().any(|v| v == node_name),
        _ => false,
    }
}

/// Whether a node selector term holds. A term with no requirements matches
/// nothing, as in Kubernetes.
pub fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, labels))
        && fields.iter().all(|r| field_requirement_matches(r, node_name))
}

/// Whether any term of a node selector holds.
pub fn node_selector_matches(sel: &NodeSelector, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    sel.node_selector_terms
        .iter()
        .any(|t| term_matches(t, labels, node_name))
}

/// The value a node has for a topology key. Nodes without a hostname label
/// use their name, since rk's node agent and hand-written test nodes may
/// omit the label and "per host" should still mean per node.
pub fn topology_value<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a str> {
    match labels_or_empty(&node.node().metadata).get(key) {
        Some(v) => Some(v.as_str()),
        None if key == HOSTNAME_LABEL => Some(node.name()),
        None => None,
    }
}

/// Which namespaces a pod affinity term looks at.
#[derive(Debug, Clone)]
enum NamespaceScope {
    /// Every namespace (an empty `namespaceSelector`).
    All,
    /// The listed namespaces plus those whose labels match the selector.
    Some {
        names: Vec<String>,
        selector: Option<LabelSelector>,
    },
}

/// A pod affinity term, compiled for repeated matching.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    /// `None` when the term's selector is missing or invalid: it then
    /// matches no pod.
    selector: Option<LabelSelector>,
    namespaces: NamespaceScope,
    /// The node label whose values define the domains.
    pub topology_key: String,
    /// The weight of a preferred term; 1 for required terms.
    pub weight: i64,
}

impl AffinityTerm {
    /// Compile `term` as written in a pod in `namespace` with `labels` (the
    /// owner pod's, used for `matchLabelKeys`/`mismatchLabelKeys`).
    pub fn compile(
        term: &PodAffinityTerm,
        weight: i64,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> AffinityTerm {
        let selector = term.label_selector.as_ref().and_then(|sel| {
            let mut sel = sel.clone();
            // matchLabelKeys and mismatchLabelKeys narrow the selector to
            // pods that share (or do not share) the owner's label values.
            let extra = |keys: &Option<Vec<String>>, op: &str| -> Vec<metav1::LabelSelectorRequirement> {
                keys.iter()
                    .flatten()
                    .filter_map(|k| {
                        labels.get(k).map(|v| metav1::LabelSelectorRequirement {
                            key: k.clone(),
                            operator: op.to_string(),
                            values: Some(vec![v.clone()]),
                        })
                    })
                    .collect()
            };
            let mut exprs = extra(&term.match_label_keys, "In");
            exprs.extend(extra(&term.mismatch_label_keys, "NotIn"));
            if !exprs.is_empty() {
                sel.match_expressions.get_or_insert_with(Vec::new).extend(exprs);
            }
            LabelSelector::from_k8s(&sel).ok()
        });
        let listed = term.namespaces.clone().unwrap_or_default();
        let namespaces = match &term.namespace_selector {
            Some(ns_sel) if is_empty_selector(ns_sel) => NamespaceScope::All,
            Some(ns_sel) => NamespaceScope::Some {
                names: listed,
                // An invalid namespace selector selects no namespace.
                selector: Some(LabelSelector::from_k8s(ns_sel).unwrap_or_else(|_| never())),
            },
            None if listed.is_empty() => NamespaceScope::Some {
                names: vec![namespace.to_string()],
                selector: None,
            },
            None => NamespaceScope::Some {
                names: listed,
                selector: None,
            },
        };
        AffinityTerm {
            selector,
            namespaces,
            topology_key: term.topology_key.clone(),
            weight,
        }
    }

    /// Whether a pod in `namespace` with `labels` is one this term is about.
    pub fn matches(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> bool {
        let Some(selector) = &self.selector else {
            return false;
        };
        let in_scope = match &self.namespaces {
            NamespaceScope::All => true,
            NamespaceScope::Some { names, selector } => {
                names.iter().any(|n| n == namespace)
                    || selector.as_ref().is_some_and(|s| {
                        namespace_labels
                            .get(namespace)
                            .is_some_and(|ns_labels| s.matches(ns_labels))
                    })
            }
        };
        in_scope && selector.matches(labels)
    }
}

fn is_empty_selector(sel: &metav1::LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// A selector no label set satisfies (a key that must both exist and not).
fn never() -> LabelSelector {
    LabelSelector::parse("rk.invalid/never,!rk.invalid/never").unwrap_or_default()
}

/// A pod's four kinds of inter-pod terms, compiled.
#[derive(Debug, Clone, Default)]
pub struct PodAffinityTerms {
    /// Required affinity.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required anti-affinity.
    pub required_anti: Vec<AffinityTerm>,
    /// Preferred affinity, with weights.
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred anti-affinity, with weights.
    pub preferred_anti: Vec<AffinityTerm>,
}

impl PodAffinityTerms {
    /// Compile the inter-pod terms of `pod`.
    pub fn of(pod: &Pod) -> PodAffinityTerms {
        let affinity: Option<&Affinity> = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let labels = labels_or_empty(&pod.metadata);
        let mut out = PodAffinityTerms::default();
        if let Some(pa) = affinity.and_then(|a| a.pod_affinity.as_ref()) {
            for t in pa
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
            {
                out.required_affinity
                    .push(AffinityTerm::compile(t, 1, namespace, labels));
            }
            for w in pa
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
            {
                let term = &w.pod_affinity_term;
                let weight = i64::from(w.weight);
                out.preferred_affinity
                    .push(AffinityTerm::compile(term, weight, namespace, labels));
            }
        }
        if let Some(pa) = affinity.and_then(|a| a.pod_anti_affinity.as_ref()) {
            for t in pa
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
            {
                out.required_anti
                    .push(AffinityTerm::compile(t, 1, namespace, labels));
            }
            for w in pa
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
            {
                let term = &w.pod_affinity_term;
                let weight = i64::from(w.weight);
                out.preferred_anti
                    .push(AffinityTerm::compile(term, weight, namespace, labels));
            }
        }
        out
    }

    /// Whether the pod has no inter-pod terms at all.
    pub fn is_empty(&self) -> bool {
        self.required_affinity.is_empty()
            && self.required_anti.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti.is_empty()
    }
}

/// The weight an existing pod's *required* affinity term toward the incoming
/// pod adds to the score of nodes in its domain (Kubernetes'
/// `hardPodAffinityWeight` default).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// Cluster-wide facts for inter-pod affinity, computed once per scheduling
/// call from every node's pods.
#[derive(Debug, Default)]
pub struct InterPodState {
    /// For each required affinity term of the incoming pod: the topology
    /// values whose domains already hold a matching pod.
    affinity_domains: Vec<HashSet<String>>,
    /// Whether the incoming pod may ignore its affinity because it is the
    /// first of its group: nothing matches any term anywhere and the pod
    /// matches all its own terms.
    affinity_self_match: bool,
    /// For each required anti-affinity term of the incoming pod: the
    /// topology values whose domains hold a matching pod.
    anti_domains: Vec<HashSet<String>>,
    /// Topology key → values forbidden by existing pods' required
    /// anti-affinity that matches the incoming pod.
    existing_anti: HashMap<String, HashSet<String>>,
    /// Topology key → value → preference score from preferred terms in
    /// either direction.
    preferred: HashMap<String, HashMap<String, i64>>,
}

impl InterPodState {
    /// Gather the state for `pod` over all `nodes`.
    pub fn build(pod: &PodFacts<'_>, nodes: &[NodeInfo]) -> InterPodState {
        Self::build_tracked(pod, nodes, None)
    }

    /// [`InterPodState::build`] for a caller that knows which nodes hold
    /// pods with inter-pod terms (`Some` of their indices in `nodes`, every
    /// node for which [`NodeInfo::has_pod_terms`] holds). A pod with no
    /// terms of its own then visits only those nodes: what the others hold
    /// cannot affect it, and touching every node of a large cluster for
    /// every pod cost more than the rest of its filtering.
    pub fn build_tracked(
        pod: &PodFacts<'_>,
        nodes: &[NodeInfo],
        nodes_with_pod_terms: Option<&[usize]>,
    ) -> InterPodState {
        let terms = &pod.affinity_terms;
        let ns_labels = pod.namespace_labels;
        let mut st = InterPodState {
            affinity_domains: vec![HashSet::new(); terms.required_affinity.len()],
            anti_domains: vec![HashSet::new(); terms.required_anti.len()],
            ..InterPodState::default()
        };
        let incoming_needs_scan = !terms.is_empty();
        let visited: Box<dyn Iterator<Item = &NodeInfo>> = match nodes_with_pod_terms {
            Some(indices) if !incoming_needs_scan => Box::new(indices.iter().filter_map(|&i| nodes.get(i))),
            _ => Box::new(nodes.iter()),
        };
        for node in visited {
            // Existing pods' terms toward the incoming pod: only pods with
            // terms are visited, through the node's precompiled list.
            for existing in node.affinity_pods() {
                for t in &existing.terms.required_anti {
                    if t.matches(pod.namespace, pod.labels, ns_labels) {
                        if let Some(v) = topology_value(node, &t.topology_key) {
                            st.existing_anti
                                .entry(t.topology_key.clone())
                                .or_default()
                                .insert(v.to_string());
                        }
                    }
                }
                let weighted = [
                    (&existing.terms.preferred_affinity, 1),
                    (&existing.terms.preferred_anti, -1),
                    (&existing.terms.required_affinity, 0),
                ];
                for (list, sign) in weighted {
                    for t in list {
                        if !t.matches(pod.namespace, pod.labels, ns_labels) {
                            continue;
                        }
                        let w = if sign == 0 {
                            HARD_POD_AFFINITY_WEIGHT
                        } else {
                            sign * t.weight
                        };
                        st.add_preference(node, &t.topology_key, w);
                    }
                }
            }
            if !incoming_needs_scan {
                continue;
            }
            for other in node.pods() {
                let other_ns = other.metadata.namespace.as_deref().unwrap_or("default");
                let other_labels = labels_or_empty(&other.metadata);
                for (i, t) in terms.required_affinity.iter().enumerate() {
                    if t.matches(other_ns, other_labels, ns_labels) {
                        if let Some(v) = topology_value(node, &t.topology_key) {
                            if let Some(set) = st.affinity_domains.get_mut(i) {
                                set.insert(v.to_string());
                            }
                        }
                    }
                }
                for (i, t) in terms.required_anti.iter().enumerate() {
                    if t.matches(other_ns, other_labels, ns_labels) {
                        if let Some(v) = topology_value(node, &t.topology_key) {
                            if let Some(set) = st.anti_domains.get_mut(i) {
                                set.insert(v.to_string());
                            }
                        }
                    }
                }
                for t in &terms.preferred_affinity {
                    if t.matches(other_ns, other_labels, ns_labels) {
                        st.add_preference(node, &t.topology_key, t.weight);
                    }
                }
                for t in &terms.preferred_anti {
                    if t.matches(other_ns, other_labels, ns_labels) {
                        st.add_preference(node, &t.topology_key, -t.weight);
                    }
                }
            }
        }
        st.affinity_self_match = !terms.required_affinity.is_empty()
            && st.affinity_domains.iter().all(HashSet::is_empty)
            && terms
                .required_affinity
                .iter()
                .all(|t| t.matches(pod.namespace, pod.labels, ns_labels));
        st
    }

    fn add_preference(&mut self, node: &NodeInfo, key: &str, weight: i64) {
        if let Some(v) = topology_value(node, key) {
            let e = self
                .preferred
                .entry(key.to_string())
                .or_default()
                .entry(v.to_string())
                .or_insert(0);
            *e = e.saturating_add(weight);
        }
    }

    /// Whether existing pods' required anti-affinity forbids `node`.
    pub fn violates_existing_anti(&self, node: &NodeInfo) -> bool {
        self.existing_anti
            .iter()
            .any(|(key, values)| topology_value(node, key).is_some_and(|v| values.contains(v)))
    }

    /// Whether the incoming pod's required anti-affinity forbids `node`.
    pub fn violates_anti(&self, pod: &PodFacts<'_>, node: &NodeInfo) -> bool {
        pod.affinity_terms
            .required_anti
            .iter()
            .zip(&self.anti_domains)
            .any(|(t, domains)| topology_value(node, &t.topology_key).is_some_and(|v| domains.contains(v)))
    }

    /// Whether the incoming pod's required affinity holds on `node`.
    pub fn satisfies_affinity(&self, pod: &PodFacts<'_>, node: &NodeInfo) -> bool {
        let terms = &pod.affinity_terms.required_affinity;
        if self.affinity_self_match {
            // The first pod of a self-affine group may go anywhere that has
            // the topology keys, or it could never start.
            return terms
                .iter()
                .all(|t| topology_value(node, &t.topology_key).is_some());
        }
        terms
            .iter()
            .zip(&self.affinity_domains)
            .all(|(t, domains)| topology_value(node, &t.topology_key).is_some_and(|v| domains.contains(v)))
    }

    /// Whether any preferred term in either direction applies, i.e. whether
    /// inter-pod scoring has anything to do.
    pub fn has_preferences(&self) -> bool {
        !self.preferred.is_empty()
    }

    /// The raw preference score of `node`: the sum of weights of preferred
    /// terms whose domain contains the node (anti-affinity subtracts).
    pub fn preference(&self, node: &NodeInfo) -> i64 {
        self.preferred
            .iter()
            .filter_map(|(key, values)| topology_value(node, key).and_then(|v| values.get(v)))
            .sum()
    }
}
