//! Job decisions: run pods until enough succeed, or give up.
//!
//! A Job runs up to `parallelism` pods at a time until `completions` of them
//! have succeeded. In `NonIndexed` mode any pod's success counts; in
//! `Indexed` mode each index `0..completions` must succeed once, and every
//! pod carries its index in the `batch.kubernetes.io/job-completion-index`
//! annotation. With `completions` unset (work-queue style) the Job is done
//! once any pod has succeeded and the rest have stopped.
//!
//! The Job fails when failures exceed `backoffLimit` (with
//! `restartPolicy: OnFailure` container restarts count too, since such pods
//! rarely reach the `Failed` phase) or when it has been active for
//! `activeDeadlineSeconds`. A finished Job deletes its remaining pods and,
//! with `ttlSecondsAfterFinished`, is itself deleted after that delay
//! ([`ttl_expired`]).
//!
//! Completions and failures are counted once, into `status.succeeded` and
//! `status.failed`, never recounted from the pods that happen to exist:
//! a Succeeded pod removed later (its node lost, a user's delete) still
//! completed. Every pod the Job creates carries the [`TRACKING_FINALIZER`];
//! a pod that holds it has not been counted yet. A reconcile counts the
//! pods that finished (or are being deleted before finishing: failures)
//! and releases their finalizers *in the same store transaction* as the
//! status that counts them, so each pod is counted exactly once whatever
//! fails in between. (Kubernetes, without multi-object transactions, gets
//! the same guarantee in three steps through `uncountedTerminatedPods`.)
//!
//! After a pod fails, its replacement waits an exponential back-off, as in
//! Kubernetes: 10 s after the first failure, 20 s after the second, 40 s
//! after the third, and so on up to 6 minutes ([`JobBackoff`]). The delay
//! runs from the time of the newest failure ([`failure_time`]); while it
//! runs, the plan creates nothing and asks to be rechecked when it ends.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::podutil::{
    controller_owner_ref, creation_time, deletion_order, is_active, is_being_deleted, is_ready, is_terminal,
    phase, restart_count,
};

/// The annotation (and label) carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The label naming a pod's Job.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The label carrying the uid of a pod's Job.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// `backoffLimit` when unset.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;
/// Held by every pod a Job creates until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// At most this many pods are created, deleted or counted per reconcile
/// (they all go into one transaction).
pub const MAX_POD_CHANGES_PER_SYNC: usize = 250;

/// What a Job reconcile should do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPlan {
    /// How many pods to create ([`pod_from_template`] with no index).
    /// For Indexed Jobs this equals `create_indexes.len()`.
    pub create: usize,
    /// For Indexed Jobs: the indexes to create pods for, ascending.
    pub create_indexes: Vec<i32>,
    /// Names of pods to delete. Those holding the tracking finalizer also
    /// appear in `release`: a pod the Job deletes itself is not a failure.
    pub delete: Vec<String>,
    /// Names of pods whose tracking finalizer to remove, in the same
    /// transaction as `status`, which counts them.
    pub release: Vec<String>,
    /// The status to write (counts as observed before acting).
    pub status: JobStatus,
    /// Whether the Job has finished (Complete or Failed).
    pub finished: bool,
    /// When to look again although nothing changes: the earlier of the
    /// active deadline and the end of the failure back-off.
    pub recheck_at: Option<Timestamp>,
}

/// The delay before a failed pod is replaced: `base` after the first
/// failure, doubling with each further one, at most `max`. Kubernetes uses
/// 10 s and 6 minutes ([`JobBackoff::default`]); tests use a shorter base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBackoff {
    /// The delay after one failure.
    pub base: Duration,
    /// The longest delay, however many failures.
    pub max: Duration,
}

impl Default for JobBackoff {
    fn default() -> Self {
        JobBackoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(360),
        }
    }
}

/// What the failure back-off allows at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffGate {
    /// Replacement pods may be created now.
    CreateNow,
    /// Wait: create nothing before this time.
    RecheckAt(Timestamp),
}

impl JobBackoff {
    /// The delay after `failures` failures: none for zero, else
    /// `base * 2^(failures - 1)`, at most `max`.
    pub fn delay(&self, failures: i32) -> Duration {
        if failures <= 0 {
            return Duration::ZERO;
        }
        // Past 2^31 the cap has long been reached; this also keeps the
        // shift in range.
        let doublings = u32::try_from(failures - 1).unwrap_or(0).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// Whether pods may be created at `now`, after `failures` failures the
    /// newest of which happened at `last_failure`. Without a time for the
    /// last failure (no failed pod is left to date it) nothing is held
    /// back. A failure time after `now` (a node's clock ahead of this one)
    /// counts as `now`, so clock skew can delay by at most one full back-off.
    pub fn gate(&self, failures: i32, last_failure: Option<Timestamp>, now: Timestamp) -> BackoffGate {
        let delay = self.delay(failures);
        let Some(last) = last_failure else {
            return BackoffGate::CreateNow;
        };
        if delay.is_zero() {
            return BackoffGate::CreateNow;
        }
        let Ok(delay) = SignedDuration::try_from(delay) else {
            return BackoffGate::CreateNow;
        };
        match last.min(now).checked_add(delay) {
            Ok(until) if until > now => BackoffGate::RecheckAt(until),
            _ => BackoffGate::CreateNow,
        }
    }
}

/// When a failed pod failed, the way Kubernetes dates it: the latest
/// `finishedAt` of its terminated containers; else when its Ready
/// condition last turned false; else when its deletion was requested (a
/// pod deleted before finishing); else its creation. (A Job's status
/// carries no time of its own update to fall back on.)
pub fn failure_time(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let finished = status
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    let not_ready = || {
        status?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready" && c.status == "False")?
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
    };
    finished
        .or_else(not_ready)
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| creation_time(&pod.metadata))
}

/// The time of the newest failure among `pods`: those that failed, and
/// those being deleted before they succeeded (a lost node's pods).
fn newest_failure(pods: &[Pod]) -> Option<Timestamp> {
    pods.iter()
        .filter(|p| phase(p) == "Failed" || (is_being_deleted(&p.metadata) && phase(p) != "Succeeded"))
        .filter_map(failure_time)
        .max()
}

fn spec_of(job: &Job) -> JobSpec {
    job.spec.clone().unwrap_or_default()
}

fn is_indexed(spec: &JobSpec) -> bool {
    spec.completion_mode.as_deref() == Some("Indexed")
}

/// The completion index of a pod, from its annotation (or label).
pub fn completion_index(pod: &Pod) -> Option<i32> {
    let meta = &pod.metadata;
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX_ANNOTATION))
        .or_else(|| {
            meta.labels
                .as_ref()
                .and_then(|l| l.get(COMPLETION_INDEX_ANNOTATION))
        })
        .and_then(|v| v.parse().ok())
        .filter(|i: &i32| *i >= 0)
}

/// Render a set of indexes as Kubernetes' `completedIndexes`: ascending,
/// consecutive runs collapsed to `first-last`, e.g. `0-2,4`.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    let flush = |parts: &mut Vec<String>, (a, b): (i32, i32)| {
        parts.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    };
    for &i in indexes {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some(r) => {
                flush(&mut parts, r);
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        flush(&mut parts, r);
    }
    parts.join(",")
}

/// Parse a `completedIndexes` string back into a set; malformed parts are
/// skipped.
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// The Job's finishing condition (`Complete` or `Failed` with status
/// `True`), if it has finished.
pub fn finished_condition(job: &Job) -> Option<&JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

/// When a finished Job with `ttlSecondsAfterFinished` may be deleted.
pub fn ttl_expires_at(job: &Job) -> Option<Timestamp> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = finished_condition(job)?;
    let at = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .or(finished.last_transition_time.as_ref())?;
    Timestamp::from_second(at.0.as_second().saturating_add(i64::from(ttl))).ok()
}

/// Whether a finished Job's `ttlSecondsAfterFinished` has passed at `now`.
pub fn ttl_expired(job: &Job, now: Timestamp) -> bool {
    ttl_expires_at(job).is_some_and(|at| at <= now)
}

fn job_condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Set (or replace) a condition in a list, keeping the transition time if
/// it was already in the same state.
fn set_condition(conditions: &mut Vec<JobCondition>, new: JobCondition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(c) if c.status == new.status && c.reason == new.reason => {}
        Some(c) => *c = new,
        None => conditions.push(new),
    }
}

fn names<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Vec<String> {
    pods.into_iter().filter_map(|p| p.metadata.name.clone()).collect()
}

/// Whether the Job still has to count this pod.
pub fn is_tracked(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

/// Whether a pod is done as far as its Job is concerned: finished, or
/// being deleted (then it can no longer succeed).
fn is_done(pod: &Pod) -> bool {
    is_terminal(pod) || is_being_deleted(&pod.metadata)
}

/// Decide one reconcile of `job` given its pods at `now`, with
/// Kubernetes' failure back-off.
pub fn plan(job: &Job, pods: &[Pod], now: Timestamp) -> JobPlan {
    plan_with_backoff(job, pods, now, &JobBackoff::default())
}

/// [`plan`] with a given failure back-off.
pub fn plan_with_backoff(job: &Job, pods: &[Pod], now: Timestamp, backoff: &JobBackoff) -> JobPlan {
    let mut out = decide(job, pods, now);
    // Replacements for failed pods wait out the back-off. The failures
    // are the Job's count including those counted in this plan.
    if out.create > 0 && !out.finished {
        let failures = out.status.failed.unwrap_or(0);
        if let BackoffGate::RecheckAt(at) = backoff.gate(failures, newest_failure(pods), now) {
            out.create = 0;
            out.create_indexes.clear();
            out.recheck_at = Some(out.recheck_at.map_or(at, |deadline| deadline.min(at)));
        }
    }
    // A pod the Job deletes itself is let go, not counted as a failure.
    for name in &out.delete {
        let tracked = pods
            .iter()
            .any(|p| p.metadata.name.as_ref() == Some(name) && is_tracked(p));
        if tracked && !out.release.contains(name) {
            out.release.push(name.clone());
        }
    }
    out
}

fn decide(job: &Job, pods: &[Pod], now: Timestamp) -> JobPlan {
    let spec = spec_of(job);
    let prev = job.status.clone().unwrap_or_default();
    let indexed = is_indexed(&spec);
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let suspended = spec.suspend == Some(true);
    let mut out = JobPlan::default();

    // Count the pods that finished since the last reconcile; they are
    // released in the same write.
    let newly_done: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_tracked(p) && is_done(p))
        .take(MAX_POD_CHANGES_PER_SYNC)
        .collect();
    let newly_succeeded: Vec<&Pod> = newly_done
        .iter()
        .copied()
        .filter(|p| phase(p) == "Succeeded")
        .collect();
    let newly_failed = newly_done.len() - newly_succeeded.len();
    let as_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let succeeded_count = prev
        .succeeded
        .unwrap_or(0)
        .saturating_add(as_i32(newly_succeeded.len()));
    let failed_count = prev.failed.unwrap_or(0).saturating_add(as_i32(newly_failed));
    let finished_before = finished_condition(job).is_some();
    if !finished_before {
        out.release = names(newly_done.iter().copied());
    }

    let mut active: Vec<&Pod> = pods.iter().filter(|p| is_active(p)).collect();
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    // With OnFailure the kubelet restarts failing containers in place, so
    // the restarts are the failures.
    let restarts: i64 = if on_failure {
        active.iter().map(|p| restart_count(p)).sum()
    } else {
        0
    };
    let failures = i64::from(failed_count).saturating_add(restarts);

    let mut succeeded_indexes: BTreeSet<i32> = BTreeSet::new();
    if indexed {
        let limit = completions.unwrap_or(0);
        succeeded_indexes = parse_indexes(prev.completed_indexes.as_deref().unwrap_or(""));
        succeeded_indexes.extend(
            newly_succeeded
                .iter()
                .filter_map(|p| completion_index(p))
                .filter(|i| *i < limit),
        );
    }
    let succeeded = if indexed {
        succeeded_indexes.len()
    } else {
        usize::try_from(succeeded_count).unwrap_or(0)
    };

    let mut status = JobStatus {
        active: Some(as_i32(active.len())),
        ready: Some(as_i32(active.iter().filter(|p| is_ready(p)).count())),
        succeeded: Some(succeeded_count),
        failed: Some(failed_count),
        terminating: Some(as_i32(
            pods.iter()
                .filter(|p| is_being_deleted(&p.metadata) && !is_terminal(p))
                .count(),
        )),
        start_time: prev.start_time.clone(),
        completion_time: prev.completion_time.clone(),
        completed_indexes: indexed.then(|| format_indexes(&succeeded_indexes)),
        conditions: prev.conditions.clone(),
        ..JobStatus::default()
    };

    // A finished Job's counts are final: it only stops what still runs and
    // lets go of every pod.
    if finished_before {
        out.delete = names(active);
        out.release = names(pods.iter().filter(|p| is_tracked(p)));
        out.finished = true;
        out.status = JobStatus {
            active: status.active,
            ready: status.ready,
            terminating: status.terminating,
            ..prev
        };
        return out;
    }
    let mut conditions = status.conditions.take().unwrap_or_default();
    if suspended {
        set_condition(
            &mut conditions,
            job_condition("Suspended", "JobSuspended", "Job suspended", now),
        );
        out.delete = names(active);
        status.conditions = Some(conditions);
        out.status = status;
        return out;
    }
    if let Some(c) = conditions
        .iter_mut()
        .find(|c| c.type_ == "Suspended" && c.status == "True")
    {
        *c = JobCondition {
            status: "False".to_string(),
            reason: Some("JobResumed".to_string()),
            message: Some("Job resumed".to_string()),
            last_transition_time: Some(Time(now)),
            last_probe_time: Some(Time(now)),
            ..c.clone()
        };
    }
    let start = status.start_time.get_or_insert(Time(now)).0;

    // Failure: the deadline, then the backoff limit.
    let deadline_at = spec
        .active_deadline_seconds
        .map(|s| start.as_second().saturating_add(s));
    let failure = if deadline_at.is_some_and(|at| now.as_second() >= at) {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else if failures > i64::from(spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)) {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else {
        None
    };
    if let Some((reason, message)) = failure {
        set_condition(&mut conditions, job_condition("Failed", reason, message, now));
        out.delete = names(active);
        out.finished = true;
        status.conditions = Some(conditions);
        out.status = status;
        return out;
    }
    out.recheck_at = deadline_at.and_then(|at| Timestamp::from_second(at).ok());

    // Success.
    let complete = match (indexed, completions) {
        (true, Some(c)) => succeeded_indexes.len() >= usize::try_from(c.max(0)).unwrap_or(0),
        (_, Some(c)) => succeeded >= usize::try_from(c.max(0)).unwrap_or(0),
        (_, None) => succeeded > 0 && active.is_empty(),
    };
    if complete {
        set_condition(
            &mut conditions,
            job_condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            ),
        );
        status.completion_time = Some(Time(now));
        out.delete = names(active);
        out.finished = true;
        out.recheck_at = None;
        status.conditions = Some(conditions);
        out.status = status;
        return out;
    }
    status.conditions = Some(conditions).filter(|c| !c.is_empty());

    // Running: how many pods should be active now.
    let remaining = completions.map(|c| usize::try_from(c.max(0)).unwrap_or(0).saturating_sub(succeeded));
    let parallelism = usize::try_from(parallelism).unwrap_or(0);
    if indexed {
        plan_indexed(
            &mut out,
            &active,
            &succeeded_indexes,
            completions.unwrap_or(0),
            parallelism,
        );
    } else {
        let want = match remaining {
            Some(r) => parallelism.min(r),
            // Work-queue Jobs start no new pods once one has succeeded.
            None if succeeded > 0 => active.len(),
            None => parallelism,
        };
        if active.len() < want {
            out.create = (want - active.len()).min(MAX_POD_CHANGES_PER_SYNC);
        } else if active.len() > want {
            active.sort_by(|a, b| deletion_order(a, b));
            let surplus = (active.len() - want).min(MAX_POD_CHANGES_PER_SYNC);
            out.delete = names(active.iter().take(surplus).copied());
        }
    }
    out.status = status;
    out
}

/// The Indexed part of a reconcile: drop pods with bad, finished or
/// duplicate indexes, then start the lowest missing indexes up to
/// `parallelism` (or delete the excess).
fn plan_indexed(
    out: &mut JobPlan,
    active: &[&Pod],
    succeeded: &BTreeSet<i32>,
    completions: i32,
    parallelism: usize,
) {
    let mut by_index: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
    for pod in active {
        match completion_index(pod) {
            Some(i) if i < completions && !succeeded.contains(&i) => by_index.entry(i).or_default().push(pod),
            _ => out.delete.extend(pod.metadata.name.clone()),
        }
    }
    // Of several pods for one index keep the most valuable (the last in
    // deletion order).
    let mut kept: Vec<&Pod> = Vec::new();
    for pods in by_index.values_mut() {
        pods.sort_by(|a, b| deletion_order(a, b));
        if let Some((keep, extra)) = pods.split_last() {
            kept.push(keep);
            out.delete.extend(names(extra.iter().copied()));
        }
    }
    let remaining = usize::try_from(completions.max(0))
        .unwrap_or(0)
        .saturating_sub(succeeded.len());
    let want = parallelism.min(remaining);
    if kept.len() > want {
        kept.sort_by(|a, b| deletion_order(a, b));
        out.delete
            .extend(names(kept.iter().take(kept.len() - want).copied()));
    } else {
        let missing = (0..completions).filter(|i| !succeeded.contains(i) && !by_index.contains_key(i));
        out.create_indexes = missing
            .take((want - kept.len()).min(MAX_POD_CHANGES_PER_SYNC))
            .collect();
        out.create = out.create_indexes.len();
    }
}

/// A new pod for `job`: its template with the Job's labels
/// (`batch.kubernetes.io/job-name`, `batch.kubernetes.io/controller-uid` and
/// their legacy short forms), `generateName` `<job>-` (or `<job>-<index>-`),
/// and a controller owner reference. Indexed pods also get the completion
/// index annotation and label, a `JOB_COMPLETION_INDEX` environment
/// variable and the hostname `<job>-<index>`.
pub fn pod_from_template(job: &Job, index: Option<i32>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let template = spec_of(job).template;
    let mut meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.insert(JOB_NAME_LABEL.to_string(), name.clone());
    labels.insert(CONTROLLER_UID_LABEL.to_string(), uid.clone());
    labels.insert("job-name".to_string(), name.clone());
    labels.insert("controller-uid".to_string(), uid);
    let mut annotations = meta.annotations.take().unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX_ANNOTATION.to_string(), i.to_string());
            annotations.insert(COMPLETION_INDEX_ANNOTATION.to_string(), i.to_string());
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".to_string(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                c.env.get_or_insert_with(Vec::new).push(env.clone());
            }
            if spec.hostname.as_deref().is_none_or(str::is_empty) {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations).filter(|a| !a.is_empty()),
            finalizers: Some({
                let mut f = meta.finalizers.take().unwrap_or_default();
                f.push(TRACKING_FINALIZER.to_string());
                f
            }),
            owner_references: Some(vec![controller_owner_ref("batch/v1", "Job", &job.metadata)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::testutil::{from_json, rfc, ts};
    use serde_json::{json, Value};

    fn job(spec: Value) -> Job {
        let mut base = json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}}}
        });
        if let (Some(b), Some(p)) = (base["spec"].as_object_mut(), spec.as_object()) {
            for (k, v) in p {
                b.insert(k.clone(), v.clone());
            }
        }
        from_json(base)
    }

    /// A pod: `state` is active, ready, succeeded or failed.
    fn pod(name: &str, state: &str, index: Option<i32>) -> Pod {
        let (phase, ready) = match state {
            "active" => ("Running", false),
            "ready" => ("Running", true),
            "succeeded" => ("Succeeded", false),
            "failed" => ("Failed", false),
            other => panic!("state {other}"),
        };
        let annotations = index.map_or(json!({}), |i| json!({COMPLETION_INDEX_ANNOTATION: i.to_string()}));
        from_json(json!({
            "metadata": {"name": name, "namespace": "default", "annotations": annotations,
                         "creationTimestamp": rfc(10), "finalizers": [TRACKING_FINALIZER]},
            "spec": {"containers": [{"name": "c", "image": "perl"}], "nodeName": "n1"},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready {"True"} else {"False"}}
            ]}
        }))
    }

    fn pods(spec: &[(&str, usize)]) -> Vec<Pod> {
        let mut out = Vec::new();
        for (state, n) in spec {
            for i in 0..*n {
                out.push(pod(&format!("{state}-{i}"), state, None));
            }
        }
        out
    }

    fn condition(p: &JobPlan) -> Option<(String, String)> {
        p.status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.status == "True")
            .map(|c| (c.type_.clone(), c.reason.clone().unwrap_or_default()))
    }

    #[test]
    fn non_indexed() {
        type Case = (
            &'static str,
            Value,
            Vec<Pod>,
            usize,
            usize,
            Option<(&'static str, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "start",
                json!({"completions": 5, "parallelism": 2}),
                vec![],
                2,
                0,
                None,
            ),
            (
                "keep parallelism",
                json!({"completions": 5, "parallelism": 2}),
                pods(&[("active", 1), ("succeeded", 2)]),
                1,
                0,
                None,
            ),
            (
                "never more than remaining completions",
                json!({"completions": 5, "parallelism": 2}),
                pods(&[("active", 2), ("succeeded", 4)]),
                0,
                1,
                None,
            ),
            (
                "complete deletes leftovers",
                json!({"completions": 5, "parallelism": 2}),
                pods(&[("active", 1), ("succeeded", 5)]),
                0,
                1,
                Some(("Complete", "CompletionsReached")),
            ),
            (
                "failed pods are replaced",
                json!({"completions": 3, "parallelism": 2}),
                pods(&[("active", 1), ("failed", 1)]),
                1,
                0,
                None,
            ),
            (
                "work queue starts parallelism",
                json!({"parallelism": 3}),
                vec![],
                3,
                0,
                None,
            ),
            (
                "work queue starts nothing after a success",
                json!({"parallelism": 3}),
                pods(&[("active", 2), ("succeeded", 1)]),
                0,
                0,
                None,
            ),
            (
                "work queue completes when all stopped",
                json!({"parallelism": 3}),
                pods(&[("succeeded", 1), ("failed", 1)]),
                0,
                0,
                Some(("Complete", "CompletionsReached")),
            ),
            (
                "backoff limit not yet exceeded",
                json!({"completions": 1, "backoffLimit": 2}),
                pods(&[("failed", 2)]),
                1,
                0,
                None,
            ),
            (
                "backoff limit exceeded",
                json!({"completions": 2, "parallelism": 2, "backoffLimit": 2}),
                pods(&[("failed", 3), ("active", 1)]),
                0,
                1,
                Some(("Failed", "BackoffLimitExceeded")),
            ),
            (
                "suspended",
                json!({"completions": 2, "suspend": true}),
                pods(&[("active", 1)]),
                0,
                1,
                Some(("Suspended", "JobSuspended")),
            ),
        ];
        for (name, spec, pods, create, delete, cond) in cases {
            let p = plan(&job(spec), &pods, ts(1000));
            assert_eq!((p.create, p.delete.len()), (create, delete), "{name}");
            let want = cond.map(|(t, r)| (t.to_string(), r.to_string()));
            assert_eq!(condition(&p), want, "{name}");
            assert_eq!(
                p.finished,
                matches!(cond, Some(("Complete" | "Failed", _))),
                "{name}"
            );
        }
    }

    #[test]
    fn on_failure_restarts_count_toward_backoff() {
        let mut p = pod("a", "active", None);
        if let Some(s) = p.status.as_mut() {
            s.container_statuses = Some(vec![from_json(json!({
                "name": "c", "image": "perl", "imageID": "", "ready": false, "restartCount": 3
            }))]);
        }
        let mut j = job(json!({"backoffLimit": 2}));
        let never = plan(&j, std::slice::from_ref(&p), ts(1000));
        assert_eq!(condition(&never), None);
        if let Some(s) = j.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            s.restart_policy = Some("OnFailure".into());
        }
        let on_failure = plan(&j, std::slice::from_ref(&p), ts(1000));
        assert_eq!(
            condition(&on_failure),
            Some(("Failed".into(), "BackoffLimitExceeded".into()))
        );
        assert_eq!(on_failure.delete, ["a"]);
    }

    #[test]
    fn active_deadline() {
        let mut j = job(json!({"completions": 1, "activeDeadlineSeconds": 100}));
        j.status = Some(JobStatus {
            start_time: Some(Time(ts(0))),
            ..JobStatus::default()
        });
        let running = plan(&j, &pods(&[("active", 1)]), ts(99));
        assert_eq!((condition(&running), running.recheck_at), (None, Some(ts(100))));
        let late = plan(&j, &pods(&[("active", 1)]), ts(100));
        assert_eq!(
            condition(&late),
            Some(("Failed".into(), "DeadlineExceeded".into()))
        );
        assert_eq!((late.delete.len(), late.finished), (1, true));
        // A new Job starts its clock now.
        let fresh = plan(&job(json!({})), &[], ts(42));
        assert_eq!(fresh.status.start_time, Some(Time(ts(42))));
    }

    #[test]
    fn indexed() {
        let indexed = |completions: i32, parallelism: i32| {
            job(json!({"completionMode": "Indexed", "completions": completions, "parallelism": parallelism}))
        };
        type Case = (
            &'static str,
            Job,
            Vec<Pod>,
            Vec<i32>,
            Vec<&'static str>,
            &'static str,
            bool,
        );
        let cases: Vec<Case> = vec![
            ("start", indexed(5, 3), vec![], vec![0, 1, 2], vec![], "", false),
            (
                "fill missing indexes",
                indexed(5, 3),
                vec![
                    pod("s0", "succeeded", Some(0)),
                    pod("s2", "succeeded", Some(2)),
                    pod("a1", "active", Some(1)),
                ],
                vec![3, 4],
                vec![],
                "0,2",
                false,
            ),
            (
                "failed index retried",
                indexed(3, 3),
                vec![
                    pod("f1", "failed", Some(1)),
                    pod("s0", "succeeded", Some(0)),
                    pod("a2", "active", Some(2)),
                ],
                vec![1],
                vec![],
                "0",
                false,
            ),
            (
                "duplicates and strays deleted",
                indexed(3, 3),
                vec![
                    pod("a1", "ready", Some(1)),
                    pod("a1-dup", "active", Some(1)),
                    pod("a7", "active", Some(7)),
                    pod("none", "active", None),
                ],
                vec![0, 2],
                vec!["a7", "none", "a1-dup"],
                "",
                false,
            ),
            (
                "succeeded index not rerun",
                indexed(2, 2),
                vec![pod("s0", "succeeded", Some(0)), pod("a0", "active", Some(0))],
                vec![1],
                vec!["a0"],
                "0",
                false,
            ),
            (
                "complete",
                indexed(5, 3),
                (0..5)
                    .map(|i| pod(&format!("s{i}"), "succeeded", Some(i)))
                    .collect(),
                vec![],
                vec![],
                "0-4",
                true,
            ),
        ];
        for (name, j, pods, create, delete, completed, finished) in cases {
            let p = plan(&j, &pods, ts(1000));
            assert_eq!(p.create_indexes, create, "{name}");
            assert_eq!(p.create, create.len(), "{name}");
            assert_eq!(p.delete, delete, "{name}");
            assert_eq!(p.status.completed_indexes.as_deref(), Some(completed), "{name}");
            assert_eq!(p.finished, finished, "{name}");
        }
    }

    fn counted(j: &mut Job, succeeded: i32, failed: i32) {
        j.status = Some(JobStatus {
            succeeded: Some(succeeded),
            failed: Some(failed),
            start_time: Some(Time(ts(0))),
            ..JobStatus::default()
        });
    }

    fn untracked(mut p: Pod) -> Pod {
        p.metadata.finalizers = None;
        p
    }

    fn deleting(mut p: Pod) -> Pod {
        p.metadata.deletion_timestamp = Some(Time(ts(900)));
        p
    }

    #[test]
    fn each_pod_is_counted_once_and_released_with_the_count() {
        let mut j = job(json!({"completions": 3, "parallelism": 3}));
        // Newly finished pods are counted and released together.
        let p = plan(
            &j,
            &[
                pod("s", "succeeded", None),
                pod("f", "failed", None),
                pod("a", "active", None),
            ],
            ts(1000),
        );
        assert_eq!((p.status.succeeded, p.status.failed), (Some(1), Some(1)));
        assert_eq!(p.release, ["s", "f"]);
        assert_eq!(p.create, 1);
        // Once released they are part of the counts and not counted again.
        counted(&mut j, 1, 1);
        let p = plan(
            &j,
            &[untracked(pod("s", "succeeded", None)), pod("a", "active", None)],
            ts(1000),
        );
        assert_eq!((p.status.succeeded, p.status.failed), (Some(1), Some(1)));
        assert!(p.release.is_empty());
    }

    #[test]
    fn a_counted_completion_survives_its_pod() {
        // Two completions were counted; their pods are gone (node lost,
        // deleted by a user). Only one more run is needed, not three.
        let mut j = job(json!({"completions": 3, "parallelism": 3}));
        counted(&mut j, 2, 0);
        let p = plan(&j, &[], ts(1000));
        assert_eq!((p.create, p.status.succeeded), (1, Some(2)));
        // And the third success completes the Job with exactly 3.
        let p = plan(&j, &[pod("s3", "succeeded", None)], ts(1000));
        assert_eq!(p.status.succeeded, Some(3));
        assert_eq!(
            condition(&p),
            Some(("Complete".into(), "CompletionsReached".into()))
        );
        assert_eq!(p.release, ["s3"]);
    }

    #[test]
    fn a_pod_deleted_before_it_finished_is_a_failure_but_one_the_job_deletes_is_not() {
        let j = job(json!({"completions": 2, "parallelism": 1, "backoffLimit": 0}));
        // Evicted by someone else (its node was lost): a failure, here one
        // past the backoff limit.
        let p = plan(&j, &[deleting(pod("a", "active", None))], ts(1000));
        assert_eq!(p.status.failed, Some(1));
        assert_eq!(p.release, ["a"]);
        assert_eq!(
            condition(&p),
            Some(("Failed".into(), "BackoffLimitExceeded".into()))
        );
        // Surplus pods the Job deletes itself are released, not counted.
        let j = job(json!({"completions": 5, "parallelism": 1}));
        let p = plan(&j, &[pod("a", "ready", None), pod("b", "active", None)], ts(1000));
        assert_eq!(
            (p.delete.clone(), p.status.failed),
            (vec!["b".to_string()], Some(0))
        );
        assert_eq!(p.release, ["b"]);
    }

    #[test]
    fn a_finished_job_keeps_its_counts_and_lets_go_of_every_pod() {
        let mut j = job(json!({"completions": 1}));
        j.status = Some(JobStatus {
            succeeded: Some(1),
            failed: Some(2),
            completion_time: Some(Time(ts(100))),
            conditions: Some(vec![job_condition("Complete", "CompletionsReached", "", ts(100))]),
            ..JobStatus::default()
        });
        let p = plan(
            &j,
            &[pod("late", "succeeded", None), pod("straggler", "active", None)],
            ts(1000),
        );
        assert_eq!((p.status.succeeded, p.status.failed), (Some(1), Some(2)));
        assert_eq!(p.delete, ["straggler"]);
        assert_eq!(p.release, ["late", "straggler"]);
        assert!(p.finished);
    }

    #[test]
    fn indexed_completions_accumulate_in_completed_indexes() {
        let mut j = job(json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3}));
        j.status = Some(JobStatus {
            succeeded: Some(2),
            completed_indexes: Some("0,2".into()),
            ..JobStatus::default()
        });
        // Indexes 0 and 2 are done although their pods are gone.
        let p = plan(&j, &[], ts(1000));
        assert_eq!(p.create_indexes, [1]);
        let p = plan(&j, &[pod("s1", "succeeded", Some(1))], ts(1000));
        assert_eq!(p.status.completed_indexes.as_deref(), Some("0-2"));
        assert!(p.finished);
    }

    #[test]
    fn index_strings() {
        let cases: &[(&[i32], &str)] = &[
            (&[], ""),
            (&[3], "3"),
            (&[0, 1, 2, 4], "0-2,4"),
            (&[1, 2], "1-2"),
            (&[0, 2, 4, 5, 6, 9], "0,2,4-6,9"),
        ];
        for (set, s) in cases {
            let set: BTreeSet<i32> = set.iter().copied().collect();
            assert_eq!(format_indexes(&set), *s);
            assert_eq!(parse_indexes(s), set);
        }
    }

    #[test]
    fn finished_jobs_and_ttl() {
        let mut j = job(json!({"ttlSecondsAfterFinished": 60}));
        assert!(!ttl_expired(&j, ts(10_000)), "running jobs never expire");
        j.status = Some(JobStatus {
            completion_time: Some(Time(ts(100))),
            conditions: Some(vec![job_condition("Complete", "CompletionsReached", "", ts(100))]),
            ..JobStatus::default()
        });
        let cases = [(159, false), (160, true), (1000, true)];
        for (now, want) in cases {
            assert_eq!(ttl_expired(&j, ts(now)), want, "{now}");
        }
        // A finished Job creates nothing and removes stragglers.
        let p = plan(&j, &pods(&[("active", 1)]), ts(200));
        assert_eq!((p.create, p.delete.len(), p.finished), (0, 1, true));
        // Without a TTL nothing expires.
        if let Some(s) = j.spec.as_mut() {
            s.ttl_seconds_after_finished = None;
        }
        assert!(!ttl_expired(&j, ts(10_000)));
        // A failed job's condition time stands in for the completion time.
        let mut failed = job(json!({"ttlSecondsAfterFinished": 0}));
        failed.status = Some(JobStatus {
            conditions: Some(vec![job_condition("Failed", "DeadlineExceeded", "", ts(50))]),
            ..JobStatus::default()
        });
        assert!(ttl_expired(&failed, ts(50)));
    }

    #[test]
    fn backoff_delays_double_up_to_the_cap() {
        let kube = JobBackoff::default();
        let fast = JobBackoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let cases = [
            (kube, 0, 0),
            (kube, -1, 0),
            (kube, 1, 10_000),
            (kube, 2, 20_000),
            (kube, 3, 40_000),
            (kube, 6, 320_000),
            (kube, 7, 360_000),
            (kube, 1000, 360_000),
            (kube, i32::MAX, 360_000),
            (fast, 1, 100),
            (fast, 4, 800),
            (fast, 5, 1000),
        ];
        for (backoff, failures, want_ms) in cases {
            assert_eq!(
                backoff.delay(failures),
                Duration::from_millis(want_ms),
                "{backoff:?} after {failures}"
            );
        }
    }

    #[test]
    fn backoff_gate() {
        let b = JobBackoff::default();
        let cases = [
            ("no failures", 0, Some(100), 100, BackoffGate::CreateNow),
            ("just failed", 1, Some(100), 100, BackoffGate::RecheckAt(ts(110))),
            (
                "still waiting",
                1,
                Some(100),
                109,
                BackoffGate::RecheckAt(ts(110)),
            ),
            ("waited", 1, Some(100), 110, BackoffGate::CreateNow),
            (
                "third failure",
                3,
                Some(100),
                120,
                BackoffGate::RecheckAt(ts(140)),
            ),
            ("capped", 20, Some(100), 200, BackoffGate::RecheckAt(ts(460))),
            ("nothing to date it", 3, None, 100, BackoffGate::CreateNow),
            (
                "failure in the future counts as now",
                1,
                Some(5000),
                100,
                BackoffGate::RecheckAt(ts(110)),
            ),
        ];
        for (name, failures, last, now, want) in cases {
            assert_eq!(b.gate(failures, last.map(ts), ts(now)), want, "{name}");
        }
    }

    fn failed_at(name: &str, finished: Option<i64>, index: Option<i32>) -> Pod {
        let mut p = pod(name, "failed", index);
        if let (Some(s), Some(at)) = (p.status.as_mut(), finished) {
            s.container_statuses = Some(vec![from_json(json!({
                "name": "c", "image": "perl", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "finishedAt": rfc(at)}}
            }))]);
        }
        p
    }

    #[test]
    fn failure_times() {
        let mut not_ready = pod("r", "failed", None);
        if let Some(s) = not_ready.status.as_mut() {
            s.conditions = Some(vec![from_json(json!(
                {"type": "Ready", "status": "False", "lastTransitionTime": rfc(40)}
            ))]);
        }
        let cases = [
            ("container finishedAt", failed_at("f", Some(50), None), Some(50)),
            ("Ready turned false", not_ready, Some(40)),
            (
                "deleted before finishing",
                deleting(pod("d", "active", None)),
                Some(900),
            ),
            ("creation as a last resort", pod("c", "failed", None), Some(10)),
        ];
        for (name, p, want) in cases {
            assert_eq!(failure_time(&p), want.map(ts), "{name}");
        }
    }

    #[test]
    fn a_failed_pod_is_replaced_after_the_backoff() {
        let backoff = JobBackoff::default();
        type Case = (&'static str, Job, Vec<Pod>, i64, usize, Option<i64>);
        let mut one_failure = job(json!({"completions": 2, "parallelism": 2}));
        counted(&mut one_failure, 0, 1);
        let mut three_failures = one_failure.clone();
        counted(&mut three_failures, 0, 3);
        let mut deadline = job(json!({"completions": 1, "activeDeadlineSeconds": 105}));
        counted(&mut deadline, 0, 3);
        let mut indexed = job(json!({"completionMode": "Indexed", "completions": 2, "parallelism": 2}));
        counted(&mut indexed, 0, 1);
        let cases: Vec<Case> = vec![
            (
                // The failure counted in this very plan starts the wait.
                "first failure, just counted",
                job(json!({"completions": 2, "parallelism": 2})),
                vec![failed_at("f", Some(100), None), pod("a", "active", None)],
                100,
                0,
                Some(110),
            ),
            (
                "first failure, 10 s later",
                one_failure.clone(),
                vec![
                    untracked(failed_at("f", Some(100), None)),
                    pod("a", "active", None),
                ],
                110,
                1,
                None,
            ),
            (
                "third failure waits 40 s from the newest",
                three_failures.clone(),
                vec![
                    untracked(failed_at("f1", Some(60), None)),
                    untracked(failed_at("f3", Some(100), None)),
                    untracked(failed_at("f2", Some(80), None)),
                ],
                130,
                0,
                Some(140),
            ),
            (
                "the active deadline comes first",
                deadline,
                vec![untracked(failed_at("f", Some(100), None))],
                101,
                0,
                Some(105),
            ),
            (
                "indexed: the failed index waits too",
                indexed,
                vec![
                    untracked(failed_at("f0", Some(100), Some(0))),
                    pod("a1", "active", Some(1)),
                ],
                105,
                0,
                Some(110),
            ),
            (
                "failed pods gone: nothing to wait for",
                three_failures,
                vec![],
                101,
                2,
                None,
            ),
        ];
        for (name, j, pods, now, create, recheck) in cases {
            let p = plan_with_backoff(&j, &pods, ts(now), &backoff);
            assert_eq!(p.create, create, "{name}");
            if create == 0 {
                // The controller creates from `create_indexes` when set.
                assert!(p.create_indexes.is_empty(), "{name}");
            }
            assert_eq!(p.recheck_at, recheck.map(ts), "{name}");
            assert!(!p.finished, "{name}");
        }
        // A shorter base for tests shortens the wait accordingly.
        let fast = JobBackoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let p = plan_with_backoff(
            &one_failure,
            &[untracked(failed_at("f", Some(100), None))],
            ts(101),
            &fast,
        );
        assert_eq!((p.create, p.recheck_at), (2, None));
    }

    #[test]
    fn template_pods() {
        let j = job(json!({"completionMode": "Indexed", "completions": 3}));
        let p = pod_from_template(&j, Some(2));
        let v = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(v["metadata"]["generateName"], json!("pi-2-"));
        assert_eq!(
            v["metadata"]["annotations"][COMPLETION_INDEX_ANNOTATION],
            json!("2")
        );
        assert_eq!(v["metadata"]["labels"][JOB_NAME_LABEL], json!("pi"));
        assert_eq!(v["metadata"]["labels"][CONTROLLER_UID_LABEL], json!("job-uid"));
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], json!("Job"));
        assert_eq!(v["spec"]["hostname"], json!("pi-2"));
        assert_eq!(v["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
        assert_eq!(
            v["spec"]["containers"][0]["env"][0]["name"],
            json!("JOB_COMPLETION_INDEX")
        );
        let plain = serde_json::to_value(pod_from_template(&job(json!({})), None)).unwrap_or_default();
        assert_eq!(plain["metadata"]["generateName"], json!("pi-"));
        assert_eq!(plain["metadata"].get("annotations"), None);
    }
}
