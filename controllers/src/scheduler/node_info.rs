//! A node with the pods bound to it and aggregates cached for scheduling.
//!
//! The scheduler looks at every node for every pod, so anything derived from
//! a node or its pods (allocatable amounts, the sum of requests, host ports
//! in use, readiness, per-owner pod counts, compiled affinity terms of pods
//! that have them) is computed once when the [`NodeInfo`] is built and then
//! kept up to date incrementally by [`NodeInfo::add_pod`] and
//! [`NodeInfo::remove_pod`]. The node and pods are therefore private: a
//! change that bypassed these methods would leave the caches stale.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::affinity::{PodAffinityTerms, ZONE_LABEL};
use super::resources::{is_sidecar, parse_quantity, pod_non_zero_requests, pod_requests, Resources};
use crate::podutil::controller_ref;

static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// An object's labels, or an empty map.
pub(crate) fn labels_or_empty(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    meta.labels.as_ref().unwrap_or(&EMPTY_LABELS)
}

/// A small, fast hasher for short strings (owner uids, zone names). The
/// values it hashes are looked up once per candidate node per pod, where
/// SipHash's protection against adversarial keys costs more than the lookup
/// itself; uids are chosen by the API server, not by users.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

/// The 64-bit hash of a string, used as a compact key.
///
/// Keys that are only used for *scoring* (owner uids for spreading, zone
/// names) are compared by this hash alone: comparing the strings would
/// touch one cold heap allocation per node per pod, which dominated the
/// scheduling loop, and a collision between two of a cluster's uids or
/// zones (odds around 2^-64 per pair) could only shift a preference, never
/// place a pod where it does not fit.
pub fn string_key(s: &str) -> u64 {
    let mut h = FastHasher::default();
    h.write(s.as_bytes());
    // Mix the length in so that zero-padded chunks of different strings
    // differ.
    h.write(&(s.len() as u64).to_le_bytes());
    h.finish()
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A host port a pod binds: the (IP, protocol, port) triple that must be
/// unique on a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// The host IP; `0.0.0.0` (all addresses) when unset.
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP`; `TCP` when unset.
    pub protocol: String,
    /// The port number.
    pub port: i32,
}

impl HostPort {
    /// Whether two bindings cannot coexist: same port and protocol, and the
    /// same address or either one binding all addresses.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || wildcard(&self.ip) || wildcard(&other.ip))
    }
}

/// The host ports a pod binds. With host networking every container port is
/// a host port.
pub fn pod_host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let host_network = spec.host_network == Some(true);
    let sidecars = spec.init_containers.iter().flatten().filter(|c| is_sidecar(c));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = match p.host_port {
                Some(hp) if hp > 0 => hp,
                _ if host_network => p.container_port,
                _ => return None,
            };
            Some(HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p
                    .protocol
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "TCP".into()),
                port,
            })
        })
        .collect()
}

/// A node's `Ready` condition, reduced to what scheduling needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `Ready=True`.
    Ready,
    /// `Ready=False`: the node reports it cannot run pods.
    NotReady,
    /// `Ready=Unknown` or no condition: the node stopped reporting.
    Unknown,
}

/// The inter-pod terms of one pod on the node, compiled.
#[derive(Debug, Clone)]
pub(crate) struct ExistingPodTerms {
    namespace: String,
    name: String,
    pub(crate) terms: PodAffinityTerms,
}

/// A node, the pods bound to it and cached aggregates.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Boxed, and what the filters read of it copied out below: every pod
    /// looks at hundreds of nodes, and a compact `NodeInfo` keeps that to a
    /// few cache lines per node.
    node: Box<Node>,
    unschedulable: bool,
    taints: Vec<Taint>,
    pods: Vec<Pod>,
    name: String,
    allocatable: Resources,
    allowed_pods: i64,
    requested: Resources,
    non_zero_cpu: i64,
    non_zero_memory: i64,
    host_ports: Vec<HostPort>,
    readiness: Readiness,
    zone: Option<String>,
    zone_hash: u64,
    owner_counts: FastMap<u64, u32>,
    name_prefix: u128,
    affinity_pods: Vec<ExistingPodTerms>,
}

impl NodeInfo {
    /// Build the aggregates for `node` and the (non-terminated) `pods` bound
    /// to it.
    ///
    /// Quantities that do not parse count as zero: they were validated when
    /// written, and one corrupt object must not stop scheduling.
    pub fn new(node: Node, pods: Vec<Pod>) -> NodeInfo {
        let mut info = NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable: Resources::default(),
            allowed_pods: 0,
            requested: Resources::default(),
            non_zero_cpu: 0,
            non_zero_memory: 0,
            host_ports: Vec::new(),
            readiness: Readiness::Unknown,
            zone: None,
            zone_hash: 0,
            owner_counts: FastMap::default(),
            name_prefix: 0,
            affinity_pods: Vec::new(),
            unschedulable: false,
            taints: Vec::new(),
            node: Box::new(node),
            pods: Vec::with_capacity(pods.len()),
        };
        info.refresh_node();
        for pod in pods {
            info.add_pod(pod);
        }
        info
    }

    /// Replace the node object (labels, taints, allocatable, conditions
    /// changed) and recompute what derives from it.
    pub fn set_node(&mut self, node: Node) {
        *self.node = node;
        self.refresh_node();
    }

    fn refresh_node(&mut self) {
        self.name = self.node.metadata.name.clone().unwrap_or_default();
        let spec = self.node.spec.as_ref();
        self.unschedulable = spec.and_then(|s| s.unschedulable) == Some(true);
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.zone = labels_or_empty(&self.node.metadata).get(ZONE_LABEL).cloned();
        self.zone_hash = self.zone.as_deref().map_or(0, string_key);
        // The first 16 bytes, zero-padded, as a big-endian integer order
        // like the strings they start.
        let mut prefix = [0u8; 16];
        let n = self.name.len().min(16);
        prefix[..n].copy_from_slice(&self.name.as_bytes()[..n]);
        self.name_prefix = u128::from_be_bytes(prefix);
        let status = self.node.status.as_ref();
        self.allocatable = Resources::default();
        self.allowed_pods = 0;
        if let Some(alloc) = status.and_then(|s| s.allocatable.as_ref()) {
            for (name, q) in alloc {
                let v = parse_quantity(name, q).unwrap_or(0);
                if name == "pods" {
                    self.allowed_pods = v;
                } else {
                    self.allocatable.add(&single(name, v));
                }
            }
        }
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        self.readiness = match ready.map(|c| c.status.as_str()) {
            Some("True") => Readiness::Ready,
            Some("False") => Readiness::NotReady,
            _ => Readiness::Unknown,
        };
    }

    /// Account for a pod newly bound to this node.
    pub fn add_pod(&mut self, pod: Pod) {
        self.requested.add(&pod_requests(&pod).unwrap_or_default());
        let (cpu, mem) = pod_non_zero_requests(&pod).unwrap_or_default();
        self.non_zero_cpu = self.non_zero_cpu.saturating_add(cpu);
        self.non_zero_memory = self.non_zero_memory.saturating_add(mem);
        self.host_ports.extend(pod_host_ports(&pod));
        if let Some(owner) = controller_ref(&pod.metadata) {
            *self.owner_counts.entry(string_key(&owner.uid)).or_insert(0) += 1;
        }
        let terms = PodAffinityTerms::of(&pod);
        if !terms.is_empty() {
            self.affinity_pods.push(ExistingPodTerms {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                terms,
            });
        }
        self.pods.push(pod);
    }

    /// Forget a pod (it terminated, was deleted or moved), returning it.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<Pod> {
        let same = |p: &Pod| {
            p.metadata.namespace.as_deref().unwrap_or_default() == namespace
                && p.metadata.name.as_deref() == Some(name)
        };
        let idx = self.pods.iter().position(same)?;
        let pod = self.pods.swap_remove(idx);
        self.requested.sub(&pod_requests(&pod).unwrap_or_default());
        let (cpu, mem) = pod_non_zero_requests(&pod).unwrap_or_default();
        self.non_zero_cpu = self.non_zero_cpu.saturating_sub(cpu).max(0);
        self.non_zero_memory = self.non_zero_memory.saturating_sub(mem).max(0);
        for hp in pod_host_ports(&pod) {
            if let Some(i) = self.host_ports.iter().position(|h| *h == hp) {
                self.host_ports.swap_remove(i);
            }
        }
        if let Some(owner) = controller_ref(&pod.metadata) {
            let key = string_key(&owner.uid);
            if let Some(c) = self.owner_counts.get_mut(&key) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.owner_counts.remove(&key);
                }
            }
        }
        self.affinity_pods
            .retain(|t| !(t.namespace == namespace && t.name == name));
        Some(pod)
    }

    /// The node object.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Whether a pod on the node has inter-pod (anti-)affinity terms, which
    /// the pods being scheduled must then be checked against.
    pub fn has_pod_terms(&self) -> bool {
        !self.affinity_pods.is_empty()
    }

    /// The pods bound to the node.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        labels_or_empty(&self.node.metadata)
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        &self.taints
    }

    /// Whether `spec.unschedulable` is set (the node is cordoned).
    pub fn is_unschedulable(&self) -> bool {
        self.unschedulable
    }

    /// The node's readiness.
    pub fn readiness(&self) -> Readiness {
        self.readiness
    }

    /// The node's zone label, if any.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// The [`string_key`] of the zone, for grouping nodes by zone.
    pub fn zone_key(&self) -> Option<u64> {
        self.zone.as_ref().map(|_| self.zone_hash)
    }

    /// What the node offers to pods (`status.allocatable`).
    pub fn allocatable(&self) -> &Resources {
        &self.allocatable
    }

    /// How many pods the node accepts (`status.allocatable.pods`). A node
    /// that does not report it accepts none, as in Kubernetes: its agent has
    /// not finished registering. Likewise missing CPU or memory means none.
    pub fn allowed_pod_count(&self) -> i64 {
        self.allowed_pods
    }

    /// The sum of the requests of the pods on the node.
    pub fn requested(&self) -> &Resources {
        &self.requested
    }

    /// Requested CPU in millicores.
    pub fn requested_milli_cpu(&self) -> i64 {
        self.requested.milli_cpu
    }

    /// Requested memory in bytes.
    pub fn requested_memory(&self) -> i64 {
        self.requested.memory
    }

    /// CPU and memory requested, counting defaults for containers without
    /// requests (used for scoring only).
    pub fn non_zero_requested(&self) -> (i64, i64) {
        (self.non_zero_cpu, self.non_zero_memory)
    }

    /// The number of pods on the node.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The host ports bound by pods on the node.
    pub fn used_host_ports(&self) -> &[HostPort] {
        &self.host_ports
    }

    /// How many pods on the node are controlled by the owner with `uid`.
    pub fn pods_of_owner(&self, uid: &str) -> u32 {
        self.pods_of_owner_key(string_key(uid))
    }

    /// [`NodeInfo::pods_of_owner`] by the owner's [`string_key`].
    pub fn pods_of_owner_key(&self, key: u64) -> u32 {
        self.owner_counts.get(&key).copied().unwrap_or(0)
    }

    /// Compare node names, first by a prefix kept inline (no pointer chase
    /// for the common short names), then in full.
    pub fn cmp_name(&self, other: &NodeInfo) -> std::cmp::Ordering {
        self.name_prefix
            .cmp(&other.name_prefix)
            .then_with(|| self.name.cmp(&other.name))
    }

    /// Pods on the node that have inter-pod terms, with those compiled.
    pub(crate) fn affinity_pods(&self) -> &[ExistingPodTerms] {
        &self.affinity_pods
    }
}

fn single(name: &str, v: i64) -> Resources {
    let mut r = Resources::default();
    match name {
        "cpu" => r.milli_cpu = v,
        "memory" => r.memory = v,
        "ephemeral-storage" => r.ephemeral_storage = v,
        other => {
            r.scalar.insert(other.to_string(), v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::testutil::from_json;
    use serde_json::json;

    #[test]
    fn aggregates_follow_add_and_remove() {
        let node: Node = from_json(json!({
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "example.com/gpu": "2"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }));
        let pod = |name: &str, cpu: &str, port: Option<i32>| -> Pod {
            let ports = port
                .map(|p| json!([{"containerPort": 80, "hostPort": p}]))
                .unwrap_or(json!([]));
            from_json(json!({
                "metadata": {"name": name, "namespace": "default",
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                                  "uid": "rs-1", "controller": true}]},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}, "ports": ports}]}
            }))
        };
        let mut info = NodeInfo::new(node, vec![pod("a", "1", Some(8080))]);
        assert_eq!(info.name(), "n1");
        assert_eq!(info.zone(), Some("z1"));
        assert_eq!(info.readiness(), Readiness::Ready);
        assert_eq!(info.allocatable().milli_cpu, 4000);
        assert_eq!(info.allocatable().get("example.com/gpu"), 2);
        assert_eq!(info.allowed_pod_count(), 110);
        assert_eq!(info.requested_milli_cpu(), 1000);
        assert_eq!(info.used_host_ports().len(), 1);
        info.add_pod(pod("b", "500m", None));
        assert_eq!((info.requested_milli_cpu(), info.pod_count()), (1500, 2));
        assert_eq!(info.pods_of_owner("rs-1"), 2);
        assert!(info.remove_pod("default", "a").is_some());
        assert!(info.remove_pod("default", "a").is_none());
        assert_eq!((info.requested_milli_cpu(), info.pod_count()), (500, 1));
        assert_eq!(info.pods_of_owner("rs-1"), 1);
        assert!(info.used_host_ports().is_empty());
    }

    #[test]
    fn host_port_conflicts() {
        let hp = |ip: &str, proto: &str, port| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        let cases = [
            (hp("0.0.0.0", "TCP", 80), hp("10.0.0.1", "TCP", 80), true),
            (hp("10.0.0.2", "TCP", 80), hp("10.0.0.1", "TCP", 80), false),
            (hp("10.0.0.1", "TCP", 80), hp("10.0.0.1", "TCP", 80), true),
            (hp("0.0.0.0", "UDP", 80), hp("0.0.0.0", "TCP", 80), false),
            (hp("0.0.0.0", "TCP", 81), hp("0.0.0.0", "TCP", 80), false),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.conflicts(&b), want, "{a:?} {b:?}");
        }
    }
}
