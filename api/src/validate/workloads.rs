//! Workload controllers: Deployment, ReplicaSet, DaemonSet, Job, CronJob
//! and ControllerRevision — Kubernetes' defaults, validation and immutable
//! fields, plus the Job selector generation the server performs on create.

use jiff::tz::{Offset, TimeZone};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value};

use super::pod::{default_template, validate_template, RestartRule};
use super::{validate_labels, Errs, Rules};
use crate::selector::from_k8s_causes;

/// Label (and selector key) carrying the uid of the Job that owns a pod.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// Pre-1.27 spelling of [`CONTROLLER_UID_LABEL`], still set for compatibility.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// Label carrying the name of the Job that owns a pod.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Pre-1.27 spelling of [`JOB_NAME_LABEL`], still set for compatibility.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";

fn set_default<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

fn selector_is_empty(sel: &K8sSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// Validate a controller's selector against its pod template's labels.
/// `empty_ok` is false for the apps kinds, where an empty selector would
/// adopt every pod in the namespace.
fn validate_selector(
    selector: &K8sSelector,
    template: &PodTemplateSpec,
    path: &str,
    what: &str,
    errs: &mut Errs,
) {
    if selector_is_empty(selector) {
        errs.invalid(
            format!("{path}.selector"),
            selector,
            &format!("empty selector is invalid for {what}"),
        );
        return;
    }
    match from_k8s_causes(selector) {
        Err(causes) => errs.extend_prefixed(&format!("{path}.selector"), causes),
        Ok(parsed) => {
            let labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            if !parsed.matches(&labels) {
                errs.invalid(
                    format!("{path}.template.metadata.labels"),
                    &labels,
                    "selector does not match template labels",
                );
            }
        }
    }
}

/// Whether two selectors select the same thing, ignoring how empty parts
/// are spelled (`matchLabels: {}` versus absent).
fn same_selector(a: Option<&K8sSelector>, b: Option<&K8sSelector>) -> bool {
    let canonical = |s: Option<&K8sSelector>| {
        s.filter(|s| !selector_is_empty(s))
            .map(|s| from_k8s_causes(s).map_err(|_| s.clone()))
    };
    canonical(a) == canonical(b)
}

fn check_selector_immutable(old: &K8sSelector, new: &K8sSelector, errs: &mut Errs) {
    if !same_selector(Some(old), Some(new)) {
        errs.immutable("spec.selector", new);
    }
}

const PERCENT_FMT: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// Validate an int-or-percent field (`maxSurge`, `maxUnavailable`) and
/// report whether it is zero.
fn check_int_or_percent(value: Option<&IntOrString>, field: &str, errs: &mut Errs) -> bool {
    match value {
        None => true,
        Some(IntOrString::Int(i)) => {
            if *i < 0 {
                errs.invalid(field, i, "must be greater than or equal to 0");
            }
            *i == 0
        }
        Some(IntOrString::String(s)) => {
            let digits = s.strip_suffix('%').unwrap_or_default();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                errs.invalid(field, s, PERCENT_FMT);
                return false;
            }
            if digits.parse::<u64>().is_ok_and(|p| p > 100) && field.ends_with("maxUnavailable") {
                errs.invalid(field, s, "must not be greater than 100%");
            }
            digits.bytes().all(|b| b == b'0')
        }
    }
}

/// Whether an int-or-percent is one [`check_int_or_percent`] accepts, so
/// that a malformed value is reported once, not again by a later rule.
fn is_well_formed_int_or_percent(value: Option<&IntOrString>) -> bool {
    match value {
        None => true,
        Some(IntOrString::Int(i)) => *i >= 0,
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())),
    }
}

impl Rules for Deployment {
    fn apply_defaults(&mut self) {
        let spec = &mut self.spec;
        set_default(&mut spec.replicas, 1);
        set_default(&mut spec.revision_history_limit, 10);
        set_default(&mut spec.progress_deadline_seconds, 600);
        let strategy = spec.strategy.get_or_insert_with(Default::default);
        set_default(&mut strategy.type_, "RollingUpdate".to_string());
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy.rolling_update.get_or_insert_with(Default::default);
            set_default(&mut ru.max_surge, IntOrString::String("25%".to_string()));
            set_default(&mut ru.max_unavailable, IntOrString::String("25%".to_string()));
        }
        default_template(&mut spec.template, true);
    }

    fn validate(&self, errs: &mut Errs) {
        let spec = &self.spec;
        errs.non_negative("spec.replicas", spec.replicas);
        errs.non_negative("spec.minReadySeconds", spec.min_ready_seconds);
        errs.non_negative("spec.revisionHistoryLimit", spec.revision_history_limit);
        if let Some(deadline) = spec.progress_deadline_seconds {
            if deadline < 0 {
                errs.invalid(
                    "spec.progressDeadlineSeconds",
                    &deadline,
                    "must be greater than or equal to 0",
                );
            } else if deadline <= spec.min_ready_seconds.unwrap_or(0) {
                errs.invalid(
                    "spec.progressDeadlineSeconds",
                    &deadline,
                    "must be greater than minReadySeconds",
                );
            }
        }
        if let Some(strategy) = &spec.strategy {
            match strategy.type_.as_deref() {
                Some("Recreate") => {
                    if strategy.rolling_update.is_some() {
                        errs.forbidden(
                            "spec.strategy.rollingUpdate",
                            "may not be specified when strategy `type` is 'Recreate'",
                        );
                    }
                }
                Some("RollingUpdate") | None => {
                    if let Some(ru) = &strategy.rolling_update {
                        let surge_zero = check_int_or_percent(
                            ru.max_surge.as_ref(),
                            "spec.strategy.rollingUpdate.maxSurge",
                            errs,
                        );
                        let field = "spec.strategy.rollingUpdate.maxUnavailable";
                        let unavailable_zero = check_int_or_percent(ru.max_unavailable.as_ref(), field, errs);
                        if surge_zero && unavailable_zero {
                            errs.invalid(field, &ru.max_unavailable, "may not be 0 when `maxSurge` is 0");
                        }
                    }
                }
                Some(other) => errs.unsupported("spec.strategy.type", other, &["Recreate", "RollingUpdate"]),
            }
        }
        validate_selector(&spec.selector, &spec.template, "spec", "deployment", errs);
        validate_template(&spec.template, "spec.template", RestartRule::AlwaysOnly, errs);
    }

    fn validate_update(&self, old: &Self, errs: &mut Errs) {
        check_selector_immutable(&old.spec.selector, &self.spec.selector, errs);
    }
}

impl Rules for ReplicaSet {
    fn apply_defaults(&mut self) {
        set_default(&mut self.spec.replicas, 1);
        if let Some(template) = &mut self.spec.template {
            default_template(template, true);
        }
    }

    fn validate(&self, errs: &mut Errs) {
        let spec = &self.spec;
        errs.non_negative("spec.replicas", spec.replicas);
        errs.non_negative("spec.minReadySeconds", spec.min_ready_seconds);
        let empty = PodTemplateSpec::default();
        let template = spec.template.as_ref().unwrap_or(&empty);
        validate_selector(&spec.selector, template, "spec", "replicaset", errs);
        validate_template(template, "spec.template", RestartRule::AlwaysOnly, errs);
    }

    fn validate_update(&self, old: &Self, errs: &mut Errs) {
        check_selector_immutable(&old.spec.selector, &self.spec.selector, errs);
    }
}

impl Rules for DaemonSet {
    fn apply_defaults(&mut self) {
        let spec = &mut self.spec;
        set_default(&mut spec.revision_history_limit, 10);
        let strategy = spec.update_strategy.get_or_insert_with(Default::default);
        set_default(&mut strategy.type_, "RollingUpdate".to_string());
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy.rolling_update.get_or_insert_with(Default::default);
            set_default(&mut ru.max_unavailable, IntOrString::Int(1));
            set_default(&mut ru.max_surge, IntOrString::Int(0));
        }
        default_template(&mut spec.template, true);
    }

    fn validate(&self, errs: &mut Errs) {
        let spec = &self.spec;
        errs.non_negative("spec.minReadySeconds", spec.min_ready_seconds);
        errs.non_negative("spec.revisionHistoryLimit", spec.revision_history_limit);
        if let Some(strategy) = &spec.update_strategy {
            match strategy.type_.as_deref() {
                Some("OnDelete") | None => {}
                Some("RollingUpdate") => {
                    if let Some(ru) = &strategy.rolling_update {
                        let surge_zero = check_int_or_percent(
                            ru.max_surge.as_ref(),
                            "spec.updateStrategy.rollingUpdate.maxSurge",
                            errs,
                        );
                        let field = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                        let unavailable_zero = check_int_or_percent(ru.max_unavailable.as_ref(), field, errs);
                        if surge_zero && unavailable_zero {
                            errs.invalid(field, &ru.max_unavailable, "cannot be 0 when maxSurge is 0");
                        }
                        // rk's DaemonSet controller replaces a node's pod by
                        // deleting the old one first; rejecting a surge is
                        // better than silently ignoring it.
                        if !surge_zero && is_well_formed_int_or_percent(ru.max_surge.as_ref()) {
                            errs.forbidden(
                                "spec.updateStrategy.rollingUpdate.maxSurge",
                                "rk does not support maxSurge for DaemonSets; set it to 0 and use maxUnavailable",
                            );
                        }
                    }
                }
                Some(other) => {
                    errs.unsupported("spec.updateStrategy.type", other, &["OnDelete", "RollingUpdate"])
                }
            }
        }
        validate_selector(&spec.selector, &spec.template, "spec", "daemonset", errs);
        validate_template(&spec.template, "spec.template", RestartRule::AlwaysOnly, errs);
    }

    fn validate_update(&self, old: &Self, errs: &mut Errs) {
        check_selector_immutable(&old.spec.selector, &self.spec.selector, errs);
    }
}

impl Rules for ControllerRevision {
    fn validate(&self, errs: &mut Errs) {
        errs.non_negative("revision", self.revision);
    }

    fn validate_update(&self, old: &Self, errs: &mut Errs) {
        if self.data != old.data {
            errs.immutable("data", &self.data);
        }
    }
}

/// Kubernetes' Job defaults. Not applied to a CronJob's job template,
/// matching Kubernetes, where the Job created from it is defaulted instead.
fn default_job_spec(spec: &mut JobSpec) {
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
        spec.parallelism = Some(1);
    }
    set_default(&mut spec.parallelism, 1);
    // With a per-index limit the global limit is effectively unbounded.
    let backoff = if spec.backoff_limit_per_index.is_some() {
        i32::MAX
    } else {
        6
    };
    set_default(&mut spec.backoff_limit, backoff);
    set_default(&mut spec.completion_mode, "NonIndexed".to_string());
    set_default(&mut spec.suspend, false);
    let replacement = if spec.pod_failure_policy.is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(&mut spec.pod_replacement_policy, replacement.to_string());
    default_template(&mut spec.template, false);
}

/// Validate a Job spec at `path`. `generated_uid` is `Some(uid)` for a Job
/// object (whose selector, unless manual, must be the one the server
/// generates) and `None` for a CronJob's job template.
fn validate_job_spec(spec: &JobSpec, path: &str, generated_uid: Option<&str>, errs: &mut Errs) {
    for (field, value) in [
        ("parallelism", spec.parallelism),
        ("completions", spec.completions),
        ("backoffLimit", spec.backoff_limit),
        ("backoffLimitPerIndex", spec.backoff_limit_per_index),
        ("maxFailedIndexes", spec.max_failed_indexes),
        ("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished),
    ] {
        errs.non_negative(&format!("{path}.{field}"), value);
    }
    errs.non_negative(
        &format!("{path}.activeDeadlineSeconds"),
        spec.active_deadline_seconds,
    );
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.completions.is_none() {
                errs.required(format!("{path}.completions"), "when completion mode is Indexed");
            }
        }
        Some(other) => errs.unsupported(
            format!("{path}.completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        ),
    }
    errs.one_of(
        &format!("{path}.podReplacementPolicy"),
        spec.pod_replacement_policy.as_deref(),
        &["TerminatingOrFailed", "Failed"],
    );

    let manual = spec.manual_selector == Some(true);
    match (&spec.selector, generated_uid) {
        (Some(selector), Some(uid)) if !manual => {
            // Only the selector the server generates is acceptable.
            let labels = selector.match_labels.clone().unwrap_or_default();
            let generated = labels.len() == 1
                && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
                && labels
                    .get(CONTROLLER_UID_LABEL)
                    .is_some_and(|v| !v.is_empty() && (uid.is_empty() || v == uid));
            if generated {
                validate_selector(selector, &spec.template, path, "job", errs);
            } else {
                errs.invalid(
                    format!("{path}.selector"),
                    selector,
                    "`selector` will be auto-generated",
                );
            }
        }
        (Some(selector), _) => validate_selector(selector, &spec.template, path, "job", errs),
        (None, Some(_)) if manual => errs.required(format!("{path}.selector"), ""),
        (None, _) => {}
    }
    validate_template(
        &spec.template,
        &format!("{path}.template"),
        RestartRule::JobOnly,
        errs,
    );
}

impl Rules for Job {
    fn apply_defaults(&mut self) {
        default_job_spec(self.spec.get_or_insert_with(Default::default));
    }

    /// A client replacing a Job usually sends its manifest without the
    /// selector and template labels the server generated; carry them over
    /// so the update is not rejected as changing immutable fields.
    fn inherit(&mut self, old: &Self) {
        let (Some(new_spec), Some(old_spec)) = (&mut self.spec, &old.spec) else {
            return;
        };
        if new_spec.manual_selector == Some(true) || new_spec.selector.is_some() {
            return;
        }
        new_spec.selector.clone_from(&old_spec.selector);
        let old_labels = old_spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref());
        let new_labels = new_spec
            .template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default);
        for key in [
            CONTROLLER_UID_LABEL,
            LEGACY_CONTROLLER_UID_LABEL,
            JOB_NAME_LABEL,
            LEGACY_JOB_NAME_LABEL,
        ] {
            if let Some(value) = old_labels.and_then(|l| l.get(key)) {
                new_labels.entry(key.to_string()).or_insert_with(|| value.clone());
            }
        }
    }

    fn validate(&self, errs: &mut Errs) {
        let empty = JobSpec::default();
        let uid = self.metadata.uid.as_deref().unwrap_or_default();
        validate_job_spec(self.spec.as_ref().unwrap_or(&empty), "spec", Some(uid), errs);
    }

    fn validate_update(&self, old: &Self, errs: &mut Errs) {
        let empty = JobSpec::default();
        let new = self.spec.as_ref().unwrap_or(&empty);
        let old = old.spec.as_ref().unwrap_or(&empty);
        if !same_selector(old.selector.as_ref(), new.selector.as_ref()) {
            errs.immutable("spec.selector", &new.selector);
        }
        if old.template != new.template {
            errs.immutable("spec.template", &new.template);
        }
        if old.completions != new.completions {
            errs.immutable("spec.completions", &new.completions);
        }
        if old.completion_mode != new.completion_mode {
            errs.immutable("spec.completionMode", &new.completion_mode);
        }
    }
}

impl Rules for CronJob {
    fn apply_defaults(&mut self) {
        let spec = &mut self.spec;
        set_default(&mut spec.concurrency_policy, "Allow".to_string());
        set_default(&mut spec.suspend, false);
        set_default(&mut spec.successful_jobs_history_limit, 3);
        set_default(&mut spec.failed_jobs_history_limit, 1);
        if let Some(job) = &mut spec.job_template.spec {
            default_template(&mut job.template, false);
        }
    }

    fn validate(&self, errs: &mut Errs) {
        let spec = &self.spec;
        if spec.schedule.trim().is_empty() {
            errs.required("spec.schedule", "");
        } else if let Err(e) = validate_cron_schedule(&spec.schedule) {
            errs.invalid("spec.schedule", &spec.schedule, &e);
        }
        if let Some(tz) = spec.time_zone.as_deref() {
            if let Err(e) = resolve_time_zone(tz) {
                errs.invalid("spec.timeZone", tz, &e);
            }
        }
        errs.one_of(
            "spec.concurrencyPolicy",
            spec.concurrency_policy.as_deref(),
            &["Allow", "Forbid", "Replace"],
        );
        errs.non_negative("spec.startingDeadlineSeconds", spec.starting_deadline_seconds);
        errs.non_negative(
            "spec.successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit,
        );
        errs.non_negative("spec.failedJobsHistoryLimit", spec.failed_jobs_history_limit);
        let labels = spec
            .job_template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref());
        validate_labels(labels, "spec.jobTemplate.metadata.labels", errs);
        let empty = JobSpec::default();
        let job = spec.job_template.spec.as_ref().unwrap_or(&empty);
        validate_job_spec(job, "spec.jobTemplate.spec", None, errs);
    }
}

/// Get (creating as needed) the JSON object at `path` under `v`. Returns
/// `None` if something other than an object or null is in the way.
fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for key in path {
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
        cur = cur.as_object_mut()?.entry(key.to_string()).or_insert(Value::Null);
    }
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut()
}

/// The selector generation the Kubernetes API server performs when creating
/// a Job without `manualSelector: true`: `spec.selector.matchLabels` gets
/// `batch.kubernetes.io/controller-uid: <uid>`, and the pod template gets
/// the controller-uid and job-name labels (both current and legacy
/// spellings) unless it already has them. Call it with the uid the server
/// assigned, before or after [`validate_create`](super::validate_create).
pub fn job_default_selector(job: &mut Value, uid: &str) {
    if job.pointer("/spec/manualSelector") == Some(&Value::Bool(true)) {
        return;
    }
    let name = job
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(match_labels) = object_at(job, &["spec", "selector", "matchLabels"]) {
        match_labels
            .entry(CONTROLLER_UID_LABEL)
            .or_insert_with(|| Value::String(uid.to_string()));
    }
    if let Some(labels) = object_at(job, &["spec", "template", "metadata", "labels"]) {
        for (key, value) in [
            (CONTROLLER_UID_LABEL, uid),
            (LEGACY_CONTROLLER_UID_LABEL, uid),
            (JOB_NAME_LABEL, name.as_str()),
            (LEGACY_JOB_NAME_LABEL, name.as_str()),
        ] {
            labels
                .entry(key)
                .or_insert_with(|| Value::String(value.to_string()));
        }
    }
}

/// The allowed range and value names of each of the five cron fields.
const CRON_FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    (
        "month",
        1,
        12,
        &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    ),
    (
        "day of week",
        0,
        6,
        &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    ),
];

const CRON_MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Parse one value of a cron field: a number in range or a name.
fn cron_value(s: &str, field: usize) -> Result<u32, String> {
    let (name, min, max, names) = CRON_FIELDS[field];
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        // Month names start at 1, day names at 0 (Sunday).
        let offset = if min == 1 { 1 } else { 0 };
        return u32::try_from(i).map(|i| i + offset).map_err(|e| e.to_string());
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid {name} value \"{s}\""));
    }
    match s.parse::<u32>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("{name} value {s} out of range {min}-{max}")),
    }
}

/// Check one comma-separated cron field.
fn cron_field(field_text: &str, field: usize) -> Result<(), String> {
    let (name, _, _, _) = CRON_FIELDS[field];
    for part in field_text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            if step.is_empty()
                || !step.bytes().all(|b| b.is_ascii_digit())
                || step.parse::<u32>().is_ok_and(|s| s == 0)
            {
                return Err(format!(
                    "invalid step \"{step}\" in {name} field \"{field_text}\""
                ));
            }
        }
        // '?' means "no specific value" and is accepted where Kubernetes'
        // cron parser accepts it: day of month and day of week.
        if range == "*" || (range == "?" && field >= 2 && field != 3) {
            continue;
        }
        match range.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (cron_value(lo, field)?, cron_value(hi, field)?);
                if lo > hi {
                    return Err(format!(
                        "beginning of range ({lo}) beyond end of range ({hi}) in {name} field \"{field_text}\""
                    ));
                }
            }
            None => {
                cron_value(range, field)?;
            }
        }
    }
    Ok(())
}

/// The time zone a CronJob's `spec.timeZone` names, as Kubernetes accepts
/// it: any name in the IANA time zone database (rk compiles the database
/// in, as Kubernetes embeds its tzdata, so a host without
/// /usr/share/zoneinfo behaves the same), but not `Local`, whose meaning
/// would depend on the replica. As an rk extension, carried over from when
/// rk had no database, a fixed offset such as `+05:30` or `-0800` is
/// accepted too.
pub fn resolve_time_zone(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() {
        return Err("unknown time zone".to_string());
    }
    if let Some(offset) = fixed_offset(name) {
        return Ok(TimeZone::fixed(offset));
    }
    if name.eq_ignore_ascii_case("Local") {
        return Err(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .to_string(),
        );
    }
    // Kubernetes' own filter on each path component, which also keeps
    // names like `../etc/passwd` away from the database lookup.
    let valid_part = |p: &str| {
        (1..=14).contains(&p.len())
            && p != "."
            && p != ".."
            && !p.starts_with('-')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
    };
    let unknown = || format!("unknown time zone {name}");
    if !name.split('/').all(valid_part) {
        return Err(unknown());
    }
    let tz = TimeZone::get(name).map_err(|_| unknown())?;
    // The database lookup ignores case; Go's (and so Kubernetes') does not,
    // and a manifest rk accepts should not be refused by Kubernetes.
    if tz.iana_name() != Some(name) {
        return Err(unknown());
    }
    Ok(tz)
}

/// A literal UTC offset: `+HH`, `+HHMM` or `+HH:MM` (or with `-`), at most
/// 14 hours.
fn fixed_offset(s: &str) -> Option<Offset> {
    let (sign, rest) = match s.split_at_checked(1)? {
        ("+", r) => (1, r),
        ("-", r) => (-1, r),
        _ => return None,
    };
    let digits = match rest.split_once(':') {
        Some((h, m)) if h.len() == 2 && m.len() == 2 => format!("{h}{m}"),
        Some(_) => return None,
        None => rest.to_string(),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let (h, m) = digits.split_at(2);
    let hours: i32 = h.parse().ok()?;
    let minutes: i32 = if m.is_empty() { 0 } else { m.parse().ok()? };
    if hours > 14 || minutes > 59 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// Check the syntax of a CronJob schedule: five fields (minute, hour, day
/// of month, month, day of week) made of numbers, names, `*`, `?`, ranges,
/// lists and steps, or one of the `@yearly`-style macros.
pub fn validate_cron_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule.trim();
    if schedule.starts_with("TZ=") || schedule.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_string());
    }
    if schedule.starts_with('@') {
        if CRON_MACROS.contains(&schedule.to_ascii_lowercase().as_str()) {
            return Ok(());
        }
        return Err(format!("unrecognized descriptor: {schedule}"));
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {schedule}",
            fields.len()
        ));
    }
    for (i, text) in fields.iter().enumerate() {
        cron_field(text, i)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::validate_create;
    use super::*;
    use crate::error::Reason;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}})
    }

    fn replicaset() -> Value {
        merge(
            deployment(),
            json!({"kind": "ReplicaSet", "metadata": {"name": "web-abc"}}),
        )
    }

    fn daemonset() -> Value {
        merge(
            deployment(),
            json!({"kind": "DaemonSet", "metadata": {"name": "agent"}}),
        )
    }

    fn job() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
               "spec": {"template": {"spec": {"restartPolicy": "Never",
                   "containers": [{"name": "pi", "image": "perl:5.34"}]}}}})
    }

    fn cronjob() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello"},
               "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                   "restartPolicy": "OnFailure", "containers": [{"name": "hello", "image": "busybox"}]}}}}}})
    }

    #[test]
    fn deployment_defaults() {
        let out = create("deployments", deployment());
        let spec = &out["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");

        // Recreate gets no rollingUpdate block; explicit values survive.
        let out = create(
            "deployments",
            merge(
                deployment(),
                json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}}),
            ),
        );
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let out = create(
            "deployments",
            merge(
                deployment(),
                json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 2}}}}),
            ),
        );
        assert_eq!(
            out["spec"]["strategy"]["rollingUpdate"],
            json!({"maxSurge": 2, "maxUnavailable": "25%"})
        );
    }

    #[test]
    fn deployment_validation_table() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"spec": {"replicas": -1}}),
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                json!({"spec": {"selector": null}}),
                "spec.selector",
                "empty selector is invalid for deployment",
            ),
            (
                json!({"spec": {"selector": {"matchLabels": null, "matchExpressions": []}}}),
                "spec.selector",
                "empty selector is invalid",
            ),
            (
                json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}),
                "spec.template.metadata.labels",
                "Invalid value: {\"app\":\"web\"}: selector does not match template labels",
            ),
            (
                json!({"spec": {"template": {"metadata": {"labels": null}}}}),
                "spec.template.metadata.labels",
                "selector does not match template labels",
            ),
            (
                json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "Has"}]}}}),
                "spec.selector.matchExpressions[0].operator",
                "Unsupported value: \"Has\"",
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}}),
                "spec.template.spec.containers[0].image",
                "Required value",
            ),
            (
                json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}),
                "spec.template.spec.restartPolicy",
                "Unsupported value: \"Never\": supported values: \"Always\"",
            ),
            (
                json!({"spec": {"strategy": {"type": "Canary"}}}),
                "spec.strategy.type",
                "Unsupported value",
            ),
            (
                json!({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}}),
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            ),
            (
                json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "x%"}}}}),
                "spec.strategy.rollingUpdate.maxSurge",
                "a valid percent string",
            ),
            (
                json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": -1}}}}),
                "spec.strategy.rollingUpdate.maxSurge",
                "greater than or equal to 0",
            ),
            (
                json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": "150%"}}}}),
                "spec.strategy.rollingUpdate.maxUnavailable",
                "must not be greater than 100%",
            ),
            (
                json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}}),
                "spec.strategy.rollingUpdate.maxUnavailable",
                "may not be 0 when `maxSurge` is 0",
            ),
            (
                json!({"spec": {"minReadySeconds": 700}}),
                "spec.progressDeadlineSeconds",
                "must be greater than minReadySeconds",
            ),
            (
                json!({"spec": {"revisionHistoryLimit": -2}}),
                "spec.revisionHistoryLimit",
                "greater than or equal to 0",
            ),
        ];
        for (patch, field, needle) in cases {
            let err = create_err("deployments", merge(deployment(), patch));
            assert_invalid(&err, field, needle);
            assert!(
                err.message.starts_with("Deployment.apps \"web\" is invalid: "),
                "{}",
                err.message
            );
        }
        // Malformed and unknown fields are BadRequest with a path.
        let err = create_err(
            "deployments",
            merge(deployment(), json!({"spec": {"replicas": "three"}})),
        );
        assert_eq!(err.reason, Reason::BadRequest);
        assert_eq!(err.field.as_deref(), Some("spec.replicas"));
        let err = create_err(
            "deployments",
            merge(
                deployment(),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x", "imagee": "y"}]}}}}),
            ),
        );
        assert_eq!(
            err.field.as_deref(),
            Some("spec.template.spec.containers[0].imagee")
        );
    }

    #[test]
    fn selector_expressions_matching_template() {
        let obj = merge(
            deployment(),
            json!({"spec": {"selector": {"matchLabels": null, "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["web", "api"]},
                {"key": "canary", "operator": "DoesNotExist"}]}}}),
        );
        create("deployments", obj);
    }

    #[test]
    fn apps_selector_immutable() {
        for (kind_name, obj) in [
            ("deployments", deployment()),
            ("replicasets", replicaset()),
            ("daemonsets", daemonset()),
        ] {
            let old = create(kind_name, obj);
            let changed = merge(
                old.clone(),
                json!({"spec": {"selector": {"matchLabels": {"app": "web", "v": "2"}},
                                "template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}}),
            );
            let err = update_err(kind_name, &old, changed);
            assert_invalid(&err, "spec.selector", "field is immutable");
            // Other spec changes are fine; spelling an empty part differently is not a change.
            let ok = merge(
                old.clone(),
                json!({"spec": {"minReadySeconds": 5, "selector": {"matchExpressions": []}}}),
            );
            update(kind_name, &old, ok);
        }
    }

    #[test]
    fn replicaset_defaults_and_validation() {
        let out = create("replicasets", replicaset());
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(
            out["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            30
        );
        let err = create_err(
            "replicasets",
            merge(replicaset(), json!({"spec": {"replicas": -3}})),
        );
        assert_invalid(&err, "spec.replicas", "Invalid value: -3");
        let err = create_err(
            "replicasets",
            merge(replicaset(), json!({"spec": {"template": null}})),
        );
        assert_invalid(&err, "spec.template.spec.containers", "Required value");
        let err = create_err(
            "replicasets",
            merge(
                replicaset(),
                json!({"spec": {"selector": {"matchLabels": {"x": "y"}}}}),
            ),
        );
        assert_invalid(
            &err,
            "spec.template.metadata.labels",
            "selector does not match template labels",
        );
    }

    #[test]
    fn daemonset_defaults_and_validation() {
        let out = create("daemonsets", daemonset());
        assert_eq!(
            out["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(out["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            out["spec"]["template"]["spec"]["schedulerName"],
            "default-scheduler"
        );
        let out = create(
            "daemonsets",
            merge(
                daemonset(),
                json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
            ),
        );
        assert_eq!(out["spec"]["updateStrategy"], json!({"type": "OnDelete"}));

        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"spec": {"updateStrategy": {"type": "Sometimes"}}}),
                "spec.updateStrategy.type",
                "Unsupported value",
            ),
            (
                json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0}}}}),
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                "cannot be 0 when maxSurge is 0",
            ),
            (
                json!({"spec": {"selector": {"matchLabels": null}}}),
                "spec.selector",
                "empty selector is invalid for daemonset",
            ),
            (
                json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxSurge": "10%"}}}}),
                "spec.updateStrategy.rollingUpdate.maxSurge",
                "does not support maxSurge",
            ),
            (
                json!({"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}}),
                "spec.template.spec.restartPolicy",
                "Unsupported value",
            ),
        ];
        for (patch, field, needle) in cases {
            let err = create_err("daemonsets", merge(daemonset(), patch));
            assert_invalid(&err, field, needle);
        }
    }

    #[test]
    fn job_defaults() {
        let out = create("jobs", job());
        let spec = &out["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert!(spec.get("manualSelector").is_none());
        assert!(spec.get("selector").is_none());
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");

        // Only parallelism given: completions stays unset.
        let out = create("jobs", merge(job(), json!({"spec": {"parallelism": 3}})));
        assert_eq!(out["spec"]["parallelism"], 3);
        assert!(out["spec"].get("completions").is_none());
        // Only completions given: parallelism defaults to 1.
        let out = create("jobs", merge(job(), json!({"spec": {"completions": 5}})));
        assert_eq!(out["spec"]["completions"], 5);
        assert_eq!(out["spec"]["parallelism"], 1);
    }

    #[test]
    fn job_validation_table() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"spec": {"template": {"spec": {"restartPolicy": null}}}}),
                "spec.template.spec.restartPolicy",
                "Required value: valid values: \"OnFailure\", \"Never\"",
            ),
            (
                json!({"spec": {"template": {"spec": {"restartPolicy": "Always"}}}}),
                "spec.template.spec.restartPolicy",
                "Unsupported value: \"Always\"",
            ),
            (
                json!({"spec": {"parallelism": -1}}),
                "spec.parallelism",
                "greater than or equal to 0",
            ),
            (
                json!({"spec": {"completions": -1}}),
                "spec.completions",
                "greater than or equal to 0",
            ),
            (
                json!({"spec": {"backoffLimit": -1}}),
                "spec.backoffLimit",
                "greater than or equal to 0",
            ),
            (
                json!({"spec": {"completionMode": "Sometimes"}}),
                "spec.completionMode",
                "Unsupported value",
            ),
            (
                json!({"spec": {"completionMode": "Indexed", "parallelism": 2}}),
                "spec.completions",
                "Required value",
            ),
            (
                json!({"spec": {"selector": {"matchLabels": {"app": "pi"}}}}),
                "spec.selector",
                "`selector` will be auto-generated",
            ),
            (
                json!({"spec": {"manualSelector": true}}),
                "spec.selector",
                "Required value",
            ),
            (
                json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"app": "pi"}}}}),
                "spec.template.metadata.labels",
                "selector does not match template labels",
            ),
        ];
        for (patch, field, needle) in cases {
            let err = create_err("jobs", merge(job(), patch));
            assert_invalid(&err, field, needle);
            assert!(
                err.message.starts_with("Job.batch \"pi\" is invalid: "),
                "{}",
                err.message
            );
        }
        let manual = merge(
            job(),
            json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"app": "pi"}},
                            "template": {"metadata": {"labels": {"app": "pi"}}}}}),
        );
        create("jobs", manual);
        create(
            "jobs",
            merge(
                job(),
                json!({"spec": {"completionMode": "Indexed", "completions": 3}}),
            ),
        );
    }

    #[test]
    fn job_generated_selector() {
        // The server generates the selector before or after validation.
        let mut obj = merge(job(), json!({"metadata": {"uid": "uid-1"}}));
        job_default_selector(&mut obj, "uid-1");
        assert_eq!(
            obj["spec"]["selector"],
            json!({"matchLabels": {CONTROLLER_UID_LABEL: "uid-1"}})
        );
        assert_eq!(
            obj["spec"]["template"]["metadata"]["labels"],
            json!({CONTROLLER_UID_LABEL: "uid-1", LEGACY_CONTROLLER_UID_LABEL: "uid-1",
                   JOB_NAME_LABEL: "pi", LEGACY_JOB_NAME_LABEL: "pi"})
        );
        let stored = create("jobs", obj.clone());

        let mut after = create("jobs", job());
        job_default_selector(&mut after, "uid-2");
        assert_eq!(
            after["spec"]["selector"]["matchLabels"][CONTROLLER_UID_LABEL],
            "uid-2"
        );
        assert_eq!(
            after["spec"]["template"]["metadata"]["labels"][JOB_NAME_LABEL],
            "pi"
        );

        // A selector naming another uid is rejected.
        let mut wrong = merge(job(), json!({"metadata": {"uid": "uid-1"}}));
        job_default_selector(&mut wrong, "uid-9");
        let err = create_err("jobs", wrong);
        assert_invalid(&err, "spec.selector", "will be auto-generated");

        // manualSelector: true is left alone.
        let mut manual = merge(job(), json!({"spec": {"manualSelector": true}}));
        job_default_selector(&mut manual, "uid-1");
        assert!(manual["spec"].get("selector").is_none());

        // User labels are preserved; generated ones are added beside them.
        let mut labelled = merge(
            job(),
            json!({"spec": {"template": {"metadata": {"labels": {"app": "pi", JOB_NAME_LABEL: "custom"}}}}}),
        );
        job_default_selector(&mut labelled, "u");
        let labels = &labelled["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["app"], "pi");
        assert_eq!(labels[JOB_NAME_LABEL], "custom");
        assert_eq!(labels[LEGACY_JOB_NAME_LABEL], "pi");

        // Replacing a Job with its original manifest keeps the generated
        // selector and labels instead of failing as an immutable change.
        let out = update("jobs", &stored, job());
        assert_eq!(out["spec"]["selector"], stored["spec"]["selector"]);
        assert_eq!(out["spec"]["template"], stored["spec"]["template"]);
    }

    #[test]
    fn job_immutable_fields() {
        let mut obj = merge(job(), json!({"metadata": {"uid": "u1"}}));
        job_default_selector(&mut obj, "u1");
        let old = create("jobs", obj);
        let cases: Vec<(Value, &str)> = vec![
            (json!({"spec": {"completions": 2}}), "spec.completions"),
            (
                json!({"spec": {"completionMode": "Indexed"}}),
                "spec.completionMode",
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.36"}]}}}}),
                "spec.template",
            ),
            (
                json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}}}}),
                "spec.selector",
            ),
        ];
        for (patch, field) in cases {
            let err = update_err("jobs", &old, merge(old.clone(), patch));
            assert_invalid(&err, field, "field is immutable");
        }
        // Mutable fields.
        update(
            "jobs",
            &old,
            merge(
                old.clone(),
                json!({"spec": {"parallelism": 4, "suspend": true, "activeDeadlineSeconds": 60}}),
            ),
        );
        update("jobs", &old, merge(old.clone(), json!({"status": {"active": 1}})));
    }

    #[test]
    fn cronjob_defaults_and_validation() {
        let out = create("cronjobs", cronjob());
        let spec = &out["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        let job_spec = &spec["jobTemplate"]["spec"];
        assert_eq!(job_spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(
            job_spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        // Job-level defaults belong to the Jobs the CronJob creates.
        assert!(job_spec.get("backoffLimit").is_none());

        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"spec": {"schedule": ""}}),
                "spec.schedule",
                "Required value",
            ),
            (
                json!({"spec": {"schedule": "* * * *"}}),
                "spec.schedule",
                "expected exactly 5 fields",
            ),
            (
                json!({"spec": {"schedule": "61 * * * *"}}),
                "spec.schedule",
                "out of range",
            ),
            (
                json!({"spec": {"schedule": "@every 1h"}}),
                "spec.schedule",
                "unrecognized descriptor",
            ),
            (
                json!({"spec": {"schedule": "TZ=UTC * * * * *"}}),
                "spec.schedule",
                "use timeZone field",
            ),
            (
                json!({"spec": {"timeZone": ""}}),
                "spec.timeZone",
                "unknown time zone",
            ),
            (
                json!({"spec": {"timeZone": "Mars/Olympus_Mons"}}),
                "spec.timeZone",
                "unknown time zone Mars/Olympus_Mons",
            ),
            (
                json!({"spec": {"timeZone": "europe/berlin"}}),
                "spec.timeZone",
                "unknown time zone",
            ),
            (
                json!({"spec": {"timeZone": "../../etc/passwd"}}),
                "spec.timeZone",
                "unknown time zone",
            ),
            (
                json!({"spec": {"timeZone": "Local"}}),
                "spec.timeZone",
                "explicit time zone",
            ),
            (
                json!({"spec": {"concurrencyPolicy": "Sometimes"}}),
                "spec.concurrencyPolicy",
                "Unsupported value",
            ),
            (
                json!({"spec": {"startingDeadlineSeconds": -1}}),
                "spec.startingDeadlineSeconds",
                "greater than or equal to 0",
            ),
            (
                json!({"spec": {"successfulJobsHistoryLimit": -1}}),
                "spec.successfulJobsHistoryLimit",
                "greater than or equal to 0",
            ),
            (
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": null}}}}}}),
                "spec.jobTemplate.spec.template.spec.restartPolicy",
                "Required value",
            ),
            (
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Always"}}}}}}),
                "spec.jobTemplate.spec.template.spec.restartPolicy",
                "Unsupported value",
            ),
            (
                json!({"spec": {"jobTemplate": {"spec": null}}}),
                "spec.jobTemplate.spec.template.spec.containers",
                "Required value",
            ),
            (
                json!({"spec": {"jobTemplate": {"metadata": {"labels": {"a": "-"}}}}}),
                "spec.jobTemplate.metadata.labels",
                "Invalid value",
            ),
        ];
        for (patch, field, needle) in cases {
            let err = create_err("cronjobs", merge(cronjob(), patch));
            assert_invalid(&err, field, needle);
        }
    }

    #[test]
    fn time_zones() {
        let cases = [
            ("Europe/Berlin", Some("Europe/Berlin")),
            ("America/New_York", Some("America/New_York")),
            ("UTC", Some("UTC")),
            ("Etc/UTC", Some("Etc/UTC")),
            ("Etc/GMT+5", Some("Etc/GMT+5")),
            ("US/Eastern", Some("US/Eastern")),
            ("+05:30", None),
            ("-0800", None),
            ("+02", None),
            ("", None),
            ("Local", None),
            ("Europe/Atlantis", None),
            ("europe/berlin", None),
            ("+25:00", None),
            ("+5:30", None),
        ];
        for (name, iana) in cases {
            let ok = matches!(name, "+05:30" | "-0800" | "+02") || iana.is_some();
            match resolve_time_zone(name) {
                Ok(tz) => {
                    assert!(ok, "{name:?} accepted");
                    assert_eq!(tz.iana_name(), iana, "{name:?}");
                }
                Err(e) => assert!(!ok, "{name:?} refused: {e}"),
            }
        }
        let fixed = resolve_time_zone("+05:30")
            .ok()
            .and_then(|tz| tz.to_fixed_offset().ok())
            .map(|o| o.seconds());
        assert_eq!(fixed, Some(5 * 3600 + 1800));
        let tz = json!({"spec": {"timeZone": "Europe/Berlin"}});
        create("cronjobs", merge(cronjob(), tz));
    }

    #[test]
    fn cron_schedules() {
        let ok = [
            "* * * * *",
            "*/5 * * * *",
            "0 0 * * 0",
            "0 9-17 * * mon-fri",
            "0 0 1,15 * *",
            "30 2 * JAN,Jul ?",
            "0 0 ? * SUN",
            "5/15 * * * *",
            "0-59/10 0-23/2 1-31 1-12 0-6",
            "  0 0 * * *  ",
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        ];
        for s in ok {
            assert_eq!(validate_cron_schedule(s), Ok(()), "{s:?}");
        }
        let bad = [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 7",
            "*/0 * * * *",
            "*/ * * * *",
            "5-1 * * * *",
            "a * * * *",
            "* * * foo *",
            "* * * * mon-",
            "? * * * *",
            "* * * ? *",
            "@reboot",
            "@every 5m",
            "1,,2 * * * *",
        ];
        for s in bad {
            assert!(validate_cron_schedule(s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn controller_revision_rules() {
        let rev = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
                         "metadata": {"name": "web-5d4f"}, "revision": 2,
                         "data": {"spec": {"template": {"anything": ["goes", 1]}}}});
        let old = create("controllerrevisions", rev.clone());
        assert_eq!(old["data"], rev["data"]);
        let err = create_err("controllerrevisions", merge(rev.clone(), json!({"revision": -1})));
        assert_invalid(&err, "revision", "greater than or equal to 0");
        let err = update_err(
            "controllerrevisions",
            &old,
            merge(old.clone(), json!({"data": {"spec": 1}})),
        );
        assert_invalid(&err, "data", "field is immutable");
        update(
            "controllerrevisions",
            &old,
            merge(old.clone(), json!({"revision": 3})),
        );
    }

    #[test]
    fn kind_registry_drives_validation() {
        // The registry entry, not the JSON, picks the rules.
        let err = validate_create(kind("jobs"), deployment());
        assert_eq!(err.map_err(|e| e.reason), Err(Reason::BadRequest));
    }
}
