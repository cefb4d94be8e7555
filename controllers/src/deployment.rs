//! Deployment decisions: roll a pod template out through ReplicaSets.
//!
//! A Deployment owns one ReplicaSet per pod-template revision. The *new*
//! ReplicaSet is the one whose template equals the Deployment's (ignoring
//! the `pod-template-hash` label that tells revisions apart); all others are
//! *old*. A rollout moves replicas from old to new:
//!
//! - **RollingUpdate** keeps the total number of pods at most
//!   `replicas + maxSurge` and the number of available pods at least
//!   `replicas - maxUnavailable`: each step either scales the new
//!   ReplicaSet up into the surge headroom, or scales old ones down by what
//!   availability allows (unhealthy old pods first).
//! - **Recreate** scales every old ReplicaSet to zero, waits until their
//!   pods are gone, then creates/scales the new one.
//!
//! [`plan_rollout`] computes one such step; the caller writes the replica
//! counts and reconciles again when ReplicaSet statuses change. Status
//! ([`deployment_status`]) and revision history (annotation
//! `deployment.kubernetes.io/revision`, rollback, cleanup) are computed here
//! too.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::podutil::{controller_owner_ref, creation_time, is_being_deleted, is_controlled_by};
use crate::replicaset::POD_TEMPLATE_HASH_LABEL;
use crate::Error;

/// The annotation holding a ReplicaSet's (and its Deployment's) revision.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The annotation recording the Deployment's replicas on its ReplicaSets.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The annotation recording `replicas + maxSurge` on ReplicaSets.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";

/// Progress deadline when `progressDeadlineSeconds` is unset.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Old ReplicaSets kept when `revisionHistoryLimit` is unset.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

/// The alphabet of template hashes: lowercase consonants and digits that
/// cannot spell words or be confused with each other.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template: stable across processes and
/// versions, at most 10 characters of a safe alphabet.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    template_hash_with_collisions(template, None)
}

/// [`template_hash`], salted with the Deployment's `collisionCount` so that
/// a name clash with a foreign ReplicaSet can be escaped by bumping it.
///
/// The hash is 32-bit FNV-1a over the template's JSON (typed structs and
/// sorted maps serialize deterministically), written in decimal and each
/// digit mapped into a 27-letter alphabet of consonants and digits; that
/// keeps names short and free of vowels, as Kubernetes' hashes are.
pub fn template_hash_with_collisions(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(c) = collision_count {
        feed(&c.to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// A template as JSON without the `pod-template-hash` label, and without an
/// empty label map, for comparisons.
fn template_sans_hash(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
            if labels.is_empty() {
                meta.remove("labels");
            }
        }
        if meta.is_empty() {
            if let Some(obj) = v.as_object_mut() {
                obj.remove("metadata");
            }
        }
    }
    v
}

/// Whether two templates are the same apart from `pod-template-hash`.
pub fn templates_equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_sans_hash(a) == template_sans_hash(b)
}

/// Order ReplicaSets oldest first (creation time, then name).
fn oldest_first(a: &&ReplicaSet, b: &&ReplicaSet) -> std::cmp::Ordering {
    creation_time(&a.metadata)
        .cmp(&creation_time(&b.metadata))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The ReplicaSets among `rss` controlled by `d`.
pub fn owned_replica_sets<'a>(d: &Deployment, rss: &'a [ReplicaSet]) -> Vec<&'a ReplicaSet> {
    let uid = d.metadata.uid.as_deref().unwrap_or_default();
    rss.iter()
        .filter(|rs| !uid.is_empty() && is_controlled_by(&rs.metadata, uid))
        .collect()
}

/// The new ReplicaSet of `d` among `rss` (which should be the ones it
/// owns): the oldest whose template matches the Deployment's.
pub fn find_new_replica_set<'a>(d: &Deployment, rss: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let want = template_sans_hash(&d.spec.template);
    let mut matching: Vec<&ReplicaSet> = rss
        .iter()
        .filter(|rs| {
            rs.spec
                .template
                .as_ref()
                .is_some_and(|t| template_sans_hash(t) == want)
        })
        .collect();
    matching.sort_by(oldest_first);
    matching.first().copied()
}

/// The revision recorded on an object, if any.
pub fn revision(meta: &ObjectMeta) -> Option<i64> {
    meta.annotations.as_ref()?.get(REVISION_ANNOTATION)?.parse().ok()
}

/// The highest revision among `rss` (0 when none has one).
pub fn max_revision(rss: &[ReplicaSet]) -> i64 {
    rss.iter()
        .filter_map(|rs| revision(&rs.metadata))
        .max()
        .unwrap_or(0)
}

/// The ReplicaSet to roll back to: `to_revision` exactly, or with 0 the
/// previous revision (the highest below the current one).
pub fn rollback_target(revisions: &[ReplicaSet], to_revision: i64) -> Option<&ReplicaSet> {
    if to_revision > 0 {
        return revisions
            .iter()
            .find(|rs| revision(&rs.metadata) == Some(to_revision));
    }
    let current = max_revision(revisions);
    revisions
        .iter()
        .filter(|rs| revision(&rs.metadata).is_some_and(|r| r < current))
        .max_by_key(|rs| revision(&rs.metadata))
}

/// The template a rollback writes into the Deployment: the ReplicaSet's,
/// without the `pod-template-hash` label.
pub fn rollback_template(rs: &ReplicaSet) -> Option<PodTemplateSpec> {
    let mut t = rs.spec.template.clone()?;
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    Some(t)
}

/// Old ReplicaSets to delete so that at most `revisionHistoryLimit` remain:
/// the oldest revisions first, skipping any that still have pods, desired
/// replicas or an unobserved change.
pub fn history_to_delete(d: &Deployment, old: &[ReplicaSet]) -> Vec<String> {
    let limit = usize::try_from(
        d.spec
            .revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
            .max(0),
    )
    .unwrap_or(0);
    let mut alive: Vec<&ReplicaSet> = old.iter().filter(|rs| !is_being_deleted(&rs.metadata)).collect();
    if alive.len() <= limit {
        return Vec::new();
    }
    alive.sort_by(|a, b| {
        revision(&a.metadata)
            .unwrap_or(0)
            .cmp(&revision(&b.metadata).unwrap_or(0))
            .then_with(|| oldest_first(a, b))
    });
    let excess = alive.len() - limit;
    alive
        .into_iter()
        .take(excess)
        .filter(|rs| {
            let status = rs.status.as_ref();
            spec_replicas(rs) == 0
                && status.map_or(0, |s| s.replicas) == 0
                && rs.metadata.generation.unwrap_or(0)
                    <= status.and_then(|s| s.observed_generation).unwrap_or(0)
        })
        .filter_map(|rs| rs.metadata.name.clone())
        .collect()
}

/// `spec.replicas` of a ReplicaSet (default 1).
fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

/// `spec.replicas` of a Deployment (default 1).
fn deployment_replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1).max(0)
}

/// An int-or-percent as an absolute count of `total`, rounding up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, Error> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| Error::InvalidIntOrPercent(s.clone()))?;
            let prod = pct * i64::from(total);
            let v = if round_up {
                (prod + 99).div_euclid(100)
            } else {
                prod.div_euclid(100)
            };
            Ok(i32::try_from(v).unwrap_or(i32::MAX))
        }
    }
}

/// `maxSurge` and `maxUnavailable` as pod counts for `replicas`, or an
/// error for a malformed value.
pub fn try_resolve_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    replicas: i32,
) -> Result<(i32, i32), Error> {
    let surge = scaled_value(max_surge, replicas, true)?.max(0);
    let unavailable = scaled_value(max_unavailable, replicas, false)?.max(0);
    // With neither surge nor unavailability nothing could ever move; allow
    // one pod to be unavailable, as Kubernetes does.
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

/// `maxSurge` and `maxUnavailable` as pod counts for `replicas`: surge rounds
/// up, unavailability down, and when both are 0 one pod may be unavailable.
/// A malformed value (validation rejects these) counts as 0, which can only
/// make the rollout slower, never less safe.
pub fn resolve_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    replicas: i32,
) -> (i32, i32) {
    let surge = scaled_value(max_surge, replicas, true).unwrap_or(0).max(0);
    let unavailable = scaled_value(max_unavailable, replicas, false).unwrap_or(0).max(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Whether the Deployment uses the Recreate strategy.
fn is_recreate(d: &Deployment) -> bool {
    d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// The Deployment's surge and unavailability in pods (both 0 for
/// Recreate). Defaults are 25 % each.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let ru = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".to_string());
    let surge = ru
        .and_then(|r| r.max_surge.clone())
        .unwrap_or_else(|| quarter.clone());
    let unavailable = ru.and_then(|r| r.max_unavailable.clone()).unwrap_or(quarter);
    resolve_fenceposts(&surge, &unavailable, deployment_replicas(d))
}

/// One reconcile step of a rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutPlan {
    /// Create the new ReplicaSet ([`new_replica_set`]) with this many
    /// replicas (only when none exists yet).
    pub create_new: Option<i32>,
    /// Replica counts to write, by ReplicaSet name; only changes appear.
    pub scale: BTreeMap<String, i32>,
    /// The revision the existing new ReplicaSet should carry, when its
    /// annotation is not already the highest (it was re-used by a
    /// rollback).
    pub set_new_revision: Option<i64>,
    /// The rollout is done: the new ReplicaSet has all replicas available
    /// and old ones have none.
    pub complete: bool,
}

impl RolloutPlan {
    /// The replicas `rs` should have after this step.
    pub fn replicas_of(&self, rs: &ReplicaSet) -> i32 {
        rs.metadata
            .name
            .as_ref()
            .and_then(|n| self.scale.get(n))
            .copied()
            .unwrap_or_else(|| spec_replicas(rs))
    }
}

/// Whether the rollout is done given current state.
fn is_complete(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    available: &dyn Fn(&ReplicaSet) -> i32,
) -> bool {
    let replicas = deployment_replicas(d);
    new_rs.is_some_and(|n| spec_replicas(n) == replicas && available(n) >= replicas)
        && old
            .iter()
            .all(|rs| spec_replicas(rs) == 0 && rs.status.as_ref().map_or(0, |s| s.replicas) == 0)
}

/// Whether pods of old ReplicaSets may still be running, judged from their
/// statuses: any reported or terminating replica, or a status that has not
/// yet observed the latest spec, counts.
pub fn old_pods_running(old: &[ReplicaSet]) -> bool {
    old.iter().any(|rs| {
        let status = rs.status.as_ref();
        let stale =
            rs.metadata.generation.unwrap_or(0) > status.and_then(|s| s.observed_generation).unwrap_or(0);
        status.map_or(0, |s| s.replicas) > 0
            || status.and_then(|s| s.terminating_replicas).unwrap_or(0) > 0
            || (stale && spec_replicas(rs) > 0)
    })
}

/// One reconcile step for `d`, given its new ReplicaSet (if it exists yet),
/// its old ReplicaSets and a function giving each ReplicaSet's available
/// pods.
pub fn plan_rollout(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    available: &dyn Fn(&ReplicaSet) -> i32,
) -> RolloutPlan {
    if is_being_deleted(&d.metadata) || d.spec.paused == Some(true) {
        return RolloutPlan::default();
    }
    let mut plan = if is_recreate(d) {
        plan_recreate(d, new_rs, old, old_pods_running(old))
    } else {
        plan_rolling(d, new_rs, old, available)
    };
    if let Some(n) = new_rs {
        let max_old = max_revision(old);
        if revision(&n.metadata).unwrap_or(0) <= max_old {
            plan.set_new_revision = Some(max_old + 1);
        }
    }
    plan.complete =
        plan.create_new.is_none() && plan.scale.is_empty() && is_complete(d, new_rs, old, available);
    plan
}

/// The RollingUpdate step: scale the new ReplicaSet up into the surge
/// headroom, and if that is not possible, scale old ones down as far as
/// availability allows.
fn plan_rolling(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    available: &dyn Fn(&ReplicaSet) -> i32,
) -> RolloutPlan {
    let mut plan = RolloutPlan::default();
    let replicas = deployment_replicas(d);
    let (surge, max_unavailable) = fenceposts(d);
    let new_current = new_rs.map_or(0, spec_replicas);
    let old_total: i32 = old.iter().map(spec_replicas).sum();
    let all = new_current + old_total;

    // Step 1: the new ReplicaSet.
    let new_target = if new_current >= replicas {
        replicas
    } else {
        let max_total = replicas + surge;
        if all >= max_total {
            new_current
        } else {
            new_current + (max_total - all).min(replicas - new_current)
        }
    };
    match new_rs {
        None => {
            plan.create_new = Some(new_target);
            return plan;
        }
        Some(n) if new_target != new_current => {
            plan.scale
                .insert(n.metadata.name.clone().unwrap_or_default(), new_target);
            return plan;
        }
        Some(_) => {}
    }
    if old_total == 0 {
        return plan;
    }

    // Step 2: old ReplicaSets, oldest first.
    let min_available = replicas - max_unavailable;
    let new_unavailable = new_rs.map_or(0, |n| (spec_replicas(n) - available(n)).max(0));
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return plan;
    }
    let mut olds: Vec<&ReplicaSet> = old.iter().filter(|rs| spec_replicas(rs) > 0).collect();
    olds.sort_by(oldest_first);
    let mut targets: Vec<i32> = olds.iter().map(|rs| spec_replicas(rs)).collect();

    // First remove old pods that are not available anyway: losing them
    // costs no availability.
    let mut cleaned = 0;
    for (rs, target) in olds.iter().zip(targets.iter_mut()) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (*target - available(rs)).max(0);
        let n = unhealthy.min(max_scaled_down - cleaned);
        *target -= n;
        cleaned += n;
    }

    // Then available old pods, as far as the minimum allows.
    let available_total: i32 = new_rs.map_or(0, available) + old.iter().map(available).sum::<i32>();
    let mut budget = (available_total - min_available).max(0);
    for target in targets.iter_mut() {
        if budget == 0 {
            break;
        }
        let n = (*target).min(budget);
        *target -= n;
        budget -= n;
    }
    for (rs, target) in olds.iter().zip(targets) {
        if target != spec_replicas(rs) {
            plan.scale
                .insert(rs.metadata.name.clone().unwrap_or_default(), target);
        }
    }
    plan
}

/// The Recreate step: old ReplicaSets to zero first; the new one is created
/// or scaled only once `old_pods_running` is false.
pub fn plan_recreate(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    old_pods_running: bool,
) -> RolloutPlan {
    let mut plan = RolloutPlan::default();
    for rs in old.iter().filter(|rs| spec_replicas(rs) > 0) {
        plan.scale.insert(rs.metadata.name.clone().unwrap_or_default(), 0);
    }
    if !plan.scale.is_empty() || old_pods_running {
        return plan;
    }
    let replicas = deployment_replicas(d);
    match new_rs {
        None => plan.create_new = Some(replicas),
        Some(n) if spec_replicas(n) != replicas => {
            plan.scale
                .insert(n.metadata.name.clone().unwrap_or_default(), replicas);
        }
        Some(_) => {}
    }
    plan
}

/// The new ReplicaSet for `d`'s current template: named
/// `<deployment>-<hash>`, its selector and template labels extended with
/// `pod-template-hash`, annotated with the revision, and controlled by the
/// Deployment.
pub fn new_replica_set(d: &Deployment, revision: i64, replicas: i32) -> ReplicaSet {
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash_with_collisions(&d.spec.template, collisions);
    let mut template = d.spec.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
    let labels = meta.labels.clone();
    let mut selector = d.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
    let (surge, _) = fenceposts(d);
    let desired = deployment_replicas(d);
    let annotations = BTreeMap::from([
        (REVISION_ANNOTATION.to_string(), revision.to_string()),
        (DESIRED_REPLICAS_ANNOTATION.to_string(), desired.to_string()),
        (MAX_REPLICAS_ANNOTATION.to_string(), (desired + surge).to_string()),
    ]);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                d.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: d.metadata.namespace.clone(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_owner_ref("apps/v1", "Deployment", &d.metadata)]),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: d.spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
        status: None,
    }
}

fn find_condition<'a>(status: Option<&'a DeploymentStatus>, type_: &str) -> Option<&'a DeploymentCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// A condition at `now`, keeping the previous transition time when the
/// status did not change and the previous update time when nothing at all
/// changed.
fn condition(
    previous: Option<&DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
    touch: bool,
) -> DeploymentCondition {
    let now_t = Time(now);
    match previous {
        Some(p) if p.status.as_deref() == Some(status) && p.reason.as_deref() == Some(reason) && !touch => {
            p.clone()
        }
        Some(p) if p.status.as_deref() == Some(status) => DeploymentCondition {
            type_: Some(type_.to_string()),
            status: Some(status.to_string()),
            reason: Some(reason.to_string()),
            message: Some(message),
            last_update_time: Some(now_t),
            last_transition_time: p.last_transition_time.clone(),
        },
        _ => DeploymentCondition {
            type_: Some(type_.to_string()),
            status: Some(status.to_string()),
            reason: Some(reason.to_string()),
            message: Some(message),
            last_update_time: Some(now_t.clone()),
            last_transition_time: Some(now_t),
        },
    }
}

/// The status of `d` at `now` from its ReplicaSets: counts, plus the
/// `Available` condition (at least `replicas - maxUnavailable` available)
/// and the `Progressing` condition (`NewReplicaSetAvailable` when done,
/// `ReplicaSetUpdated` while counts move, `ProgressDeadlineExceeded` when
/// they have not moved for `progressDeadlineSeconds`).
pub fn deployment_status(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    available: &dyn Fn(&ReplicaSet) -> i32,
    now: Timestamp,
) -> DeploymentStatus {
    let replicas = deployment_replicas(d);
    let all: Vec<&ReplicaSet> = new_rs.into_iter().chain(old.iter()).collect();
    let actual = |rs: &ReplicaSet| rs.status.as_ref().map_or(0, |s| s.replicas);
    let total_actual: i32 = all.iter().map(|rs| actual(rs)).sum();
    let total_spec: i32 = all.iter().map(|rs| spec_replicas(rs)).sum();
    let ready: i32 = all
        .iter()
        .map(|rs| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0))
        .sum();
    let terminating: i32 = all
        .iter()
        .map(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.terminating_replicas)
                .unwrap_or(0)
        })
        .sum();
    let available_total: i32 = all.iter().map(|rs| available(rs)).sum();
    let updated = new_rs.map_or(0, actual);
    let previous = d.status.as_ref();

    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total_actual),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available_total),
        unavailable_replicas: Some((total_spec - available_total).max(0)),
        terminating_replicas: Some(terminating),
        collision_count: previous.and_then(|s| s.collision_count),
        conditions: None,
    };

    let (_, max_unavailable) = fenceposts(d);
    let max_unavailable = if is_recreate(d) {
        0
    } else {
        max_unavailable.min(replicas)
    };
    let prev_available = find_condition(previous, "Available");
    let available_cond = if available_total >= replicas - max_unavailable {
        condition(
            prev_available,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_string(),
            now,
            false,
        )
    } else {
        condition(
            prev_available,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_string(),
            now,
            false,
        )
    };

    let rs_name = new_rs.and_then(|n| n.metadata.name.clone()).unwrap_or_default();
    let prev_progressing = find_condition(previous, "Progressing");
    let complete = updated == replicas
        && total_actual == replicas
        && available_total == replicas
        && new_rs.is_some_and(|n| spec_replicas(n) == replicas);
    // Compare with the last recorded status: more updated, ready or
    // available pods, or fewer old ones, is progress.
    let prev_count = |f: fn(&DeploymentStatus) -> Option<i32>| previous.and_then(f).unwrap_or(0);
    let prev_old = prev_count(|s| s.replicas) - prev_count(|s| s.updated_replicas);
    let progressed = updated > prev_count(|s| s.updated_replicas)
        || total_actual - updated < prev_old
        || ready > prev_count(|s| s.ready_replicas)
        || available_total > prev_count(|s| s.available_replicas);
    let rolling_out = new_rs.is_none_or(|n| spec_replicas(n) != replicas)
        || old.iter().any(|rs| spec_replicas(rs) > 0 || actual(rs) > 0);
    let prev_reason = prev_progressing.and_then(|c| c.reason.as_deref());
    let deadline = i64::from(
        d.spec
            .progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS),
    );
    let timed_out = prev_progressing
        .filter(|c| c.reason.as_deref() != Some("NewReplicaSetAvailable"))
        .and_then(|c| c.last_update_time.as_ref())
        .is_some_and(|t| t.0.as_second().saturating_add(deadline) < now.as_second());

    let progressing_cond = if d.spec.paused == Some(true) {
        Some(condition(
            prev_progressing,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".to_string(),
            now,
            false,
        ))
    } else if complete {
        Some(condition(
            prev_progressing,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            now,
            false,
        ))
    } else if prev_reason == Some("NewReplicaSetAvailable") && !rolling_out {
        // A finished rollout losing a pod is not a new rollout: keep the
        // condition rather than starting a deadline clock.
        prev_progressing.cloned()
    } else if progressed
        || prev_progressing.is_none()
        || matches!(prev_reason, Some("NewReplicaSetAvailable" | "DeploymentPaused"))
    {
        Some(condition(
            prev_progressing,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
            now,
            true,
        ))
    } else if timed_out || prev_reason == Some("ProgressDeadlineExceeded") {
        Some(condition(
            prev_progressing,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            now,
            false,
        ))
    } else {
        prev_progressing.cloned()
    };

    // Keep any other conditions (ReplicaFailure is set by the caller).
    let mut conditions: Vec<DeploymentCondition> = previous
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !matches!(c.type_.as_deref(), Some("Available" | "Progressing")))
        .collect();
    conditions.push(available_cond);
    conditions.extend(progressing_cond);
    status.conditions = Some(conditions);
    status
}

#[cfg(test)]
mod tests;
