//! Scores: soft preferences among the nodes that passed the filters.
//!
//! Every score is an integer in `0..=100`, higher is better. Some can be
//! computed from one node alone (resource use); the others are *raw* values
//! (sums of weights, counts) that only mean something relative to the other
//! candidates, so they are normalized over the candidate set. The final
//! score is the weighted sum ([`ScoreWeights`]).

use super::filters::taint_tolerated;
#[cfg(test)]
use super::node_info::string_key;
use super::node_info::NodeInfo;
use super::PodFacts;

/// The maximum of every individual score.
pub const MAX_SCORE: i64 = 100;

/// How much each score counts in the total. The defaults are
/// kube-scheduler's plugin weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreWeights {
    /// Prefer nodes with more free CPU and memory after placement.
    pub least_allocated: i64,
    /// Prefer nodes whose CPU and memory use stay balanced.
    pub balanced_allocation: i64,
    /// Prefer nodes and zones with fewer pods of the same owner.
    pub spread: i64,
    /// Preferred node affinity terms.
    pub node_affinity: i64,
    /// Preferred inter-pod affinity and anti-affinity.
    pub inter_pod_affinity: i64,
    /// Avoid untolerated `PreferNoSchedule` taints.
    pub taint_toleration: i64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            least_allocated: 1,
            balanced_allocation: 1,
            spread: 2,
            node_affinity: 2,
            inter_pod_affinity: 2,
            taint_toleration: 3,
        }
    }
}

/// Parts per 10 000 of `capacity` used by `used`, capped at all of it. A
/// node without any of the resource counts as full. Integer arithmetic keeps
/// scores exact and the hot loop free of float rounding.
fn used_bp(used: i64, capacity: i64) -> i64 {
    if capacity <= 0 {
        return 10_000;
    }
    let used = used.clamp(0, capacity);
    // 64 bits hold any real amount times 10 000 (memory up to 900 TB);
    // 128-bit division, several times slower, is only the fallback.
    match used.checked_mul(10_000) {
        Some(scaled) => scaled / capacity,
        None => i64::try_from(i128::from(used) * 10_000 / i128::from(capacity)).unwrap_or(10_000),
    }
}

/// CPU and memory use, in parts per 10 000, the node would have with the
/// pod placed.
fn use_after(pod: &PodFacts<'_>, node: &NodeInfo) -> (i64, i64) {
    let (cpu, mem) = node.non_zero_requested();
    let alloc = node.allocatable();
    (
        used_bp(cpu.saturating_add(pod.non_zero.0), alloc.milli_cpu),
        used_bp(mem.saturating_add(pod.non_zero.1), alloc.memory),
    )
}

/// The mean of the free CPU fraction and the free memory fraction after
/// placing the pod, times 100: empty nodes score high, spreading load.
pub fn least_allocated(pod: &PodFacts<'_>, node: &NodeInfo) -> i64 {
    let (cpu, mem) = use_after(pod, node);
    ((10_000 - cpu) + (10_000 - mem)) * MAX_SCORE / 20_000
}

/// `1 - |cpuFraction - memFraction|` after placing the pod, times 100:
/// nodes where one resource would run out while the other idles score low.
pub fn balanced_allocation(pod: &PodFacts<'_>, node: &NodeInfo) -> i64 {
    let (cpu, mem) = use_after(pod, node);
    (10_000 - (cpu - mem).abs()) * MAX_SCORE / 10_000
}

/// The sum of the weights of the pod's preferred node affinity terms that
/// hold on the node (raw; see [`normalize`]).
pub fn preferred_node_affinity(pod: &PodFacts<'_>, node: &NodeInfo) -> i64 {
    pod.preferred_node_affinity
        .iter()
        .filter(|t| super::affinity::term_matches(&t.preference, node.labels(), node.name()))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// The number of `PreferNoSchedule` taints on the node that the pod does
/// not tolerate (raw; fewer is better, see [`normalize_reverse`]).
pub fn untolerated_prefer_no_schedule(pod: &PodFacts<'_>, node: &NodeInfo) -> i64 {
    node.taints()
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !taint_tolerated(pod.tolerations, t))
        .count() as i64
}

/// Scale a raw value so that `max` (the largest among the candidates)
/// becomes 100; 0 when nothing is positive.
pub fn normalize(v: i64, max: i64) -> i64 {
    if max > 0 {
        v.clamp(0, max) * MAX_SCORE / max
    } else {
        0
    }
}

/// Scale a raw value where less is better: 0 gets 100 and `max` gets 0 (all
/// 100 when the maximum is 0).
pub fn normalize_reverse(v: i64, max: i64) -> i64 {
    if max > 0 {
        MAX_SCORE - v.clamp(0, max) * MAX_SCORE / max
    } else {
        MAX_SCORE
    }
}

/// Scale a raw value that may be negative linearly from `min..=max` onto
/// `0..=100`; 0 when all candidates are equal, so it does not distort the
/// total.
pub fn normalize_range(v: i64, min: i64, max: i64) -> i64 {
    if max > min {
        (v.clamp(min, max) - min) * MAX_SCORE / (max - min)
    } else {
        0
    }
}

/// Spreading of one owner's pods over the candidate nodes and their zones:
/// fewer on the node and in its zone is better, zones counting two thirds
/// when nodes have zones (losing a zone takes more pods down than losing a
/// node).
#[derive(Debug, Default)]
pub struct Spread {
    max_node: u32,
    /// Pods of the owner per zone, by zone key ([`NodeInfo::zone_key`]);
    /// clusters have few zones, so a vector beats a map.
    zones: Vec<(u64, u64)>,
    max_zone: u64,
}

impl Spread {
    /// Gather the counts over the candidates: each node's count of the
    /// owner's pods and its zone key ([`NodeInfo::zone_key`]).
    pub fn new(candidates: impl IntoIterator<Item = (u32, Option<u64>)>) -> Spread {
        let mut sp = Spread::default();
        for (count, zone) in candidates {
            sp.max_node = sp.max_node.max(count);
            if let Some(z) = zone {
                match sp.zones.iter_mut().find(|(key, _)| *key == z) {
                    Some((_, n)) => *n += u64::from(count),
                    None => sp.zones.push((z, u64::from(count))),
                }
            }
        }
        sp.max_zone = sp.zones.iter().map(|(_, n)| *n).max().unwrap_or(0);
        sp
    }

    /// The score of a node with `count` pods of the owner in `zone`.
    pub fn score(&self, count: u32, zone: Option<u64>) -> i64 {
        // With no pods anywhere (max 0) every node gets the full score.
        let scale = |have: u64, max: u64| {
            ((max - have.min(max)) * 300)
                .checked_div(max)
                .map_or(300, |v| i64::try_from(v).unwrap_or(0))
        };
        // Work in thirds of a point so the zone weighting stays exact.
        let node = scale(u64::from(count), u64::from(self.max_node));
        let thirds = match zone {
            Some(z) => {
                let have = self
                    .zones
                    .iter()
                    .find(|(key, _)| *key == z)
                    .map_or(0, |(_, c)| *c);
                node / 3 + scale(have, self.max_zone) * 2 / 3
            }
            None => node,
        };
        thirds * MAX_SCORE / 300
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_parts_per_ten_thousand() {
        assert_eq!(used_bp(3, 4), 7_500);
        assert_eq!(used_bp(5, 4), 10_000, "capped at all of it");
        assert_eq!(used_bp(-1, 4), 0);
        assert_eq!(used_bp(1, 0), 10_000, "no capacity counts as full");
        // Past what 64 bits hold times 10 000: the exact 128-bit result.
        assert_eq!(used_bp(i64::MAX / 2, i64::MAX), 4_999);
        assert_eq!(used_bp(i64::MAX, i64::MAX), 10_000);
    }

    #[test]
    fn normalizations() {
        let n = |raw: &[i64]| -> Vec<i64> {
            let max = raw.iter().copied().max().unwrap_or(0);
            raw.iter().map(|v| normalize(*v, max)).collect()
        };
        let rev = |raw: &[i64]| -> Vec<i64> {
            let max = raw.iter().copied().max().unwrap_or(0);
            raw.iter().map(|v| normalize_reverse(*v, max)).collect()
        };
        let range = |raw: &[i64]| -> Vec<i64> {
            let max = raw.iter().copied().max().unwrap_or(0);
            let min = raw.iter().copied().min().unwrap_or(0);
            raw.iter().map(|v| normalize_range(*v, min, max)).collect()
        };
        assert_eq!(n(&[0, 5, 10]), [0, 50, 100]);
        assert_eq!(n(&[0, 0]), [0, 0]);
        assert_eq!(rev(&[0, 1, 2]), [100, 50, 0]);
        assert_eq!(rev(&[0, 0]), [100, 100]);
        assert_eq!(range(&[-10, 0, 10]), [0, 50, 100]);
        assert_eq!(range(&[3, 3]), [0, 0]);
    }

    #[test]
    fn spread_prefers_empty_nodes_and_zones() {
        let scores = |nodes: &[(u32, Option<&'static str>)]| -> Vec<i64> {
            let key = |z: Option<&'static str>| z.map(string_key);
            let nodes: Vec<_> = nodes.iter().map(|(c, z)| (*c, key(*z))).collect();
            let sp = Spread::new(nodes.iter().copied());
            nodes.iter().map(|(c, z)| sp.score(*c, *z)).collect()
        };
        // Without zones: fewer pods of the owner on the node is better.
        assert_eq!(scores(&[(0, None), (1, None), (2, None)]), [100, 50, 0]);
        // With zones: an empty node in a busy zone loses to a node in an
        // empty zone, and beats a busy node in the busy zone.
        let s = scores(&[(0, Some("a")), (2, Some("a")), (0, Some("b"))]);
        assert_eq!(s, [33, 0, 100]);
        assert_eq!(scores(&[(0, Some("a")), (0, None)]), [100, 100]);
    }

    #[test]
    fn resource_scores() {
        use crate::podutil::testutil::from_json;
        use crate::scheduler::{pod_facts, NodeInfo};
        use serde_json::json;
        let node = |cpu_used: &str, mem_used: &str| {
            let n = from_json(json!({"metadata": {"name": "n"},
                "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"}}}));
            let p = from_json(json!({"metadata": {"name": "x"}, "spec": {"containers": [
                {"name": "c", "resources": {"requests": {"cpu": cpu_used, "memory": mem_used}}}]}}));
            NodeInfo::new(n, vec![p])
        };
        let pod = from_json(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}));
        let Ok(facts) = pod_facts(&pod) else {
            panic!("facts")
        };
        // (cpu used, memory used) → (least allocated, balanced)
        let cases = [
            ("0", "0", 75, 100),
            ("1", "1Gi", 50, 100),
            ("3", "0", 37, 25),
            ("3", "3Gi", 0, 100),
        ];
        for (cpu, mem, least, balanced) in cases {
            let n = node(cpu, mem);
            assert_eq!(
                (least_allocated(&facts, &n), balanced_allocation(&facts, &n)),
                (least, balanced),
                "{cpu} {mem}"
            );
        }
    }
}
