//! CronJob decisions: start a Job at each scheduled time.
//!
//! The controller remembers the last scheduled time it acted on in
//! `status.lastScheduleTime` (or, before the first run, the CronJob's
//! creation time). Each reconcile looks for scheduled times after it up to
//! `now`: only the most recent one may start a Job, earlier ones count as
//! missed. Because the caller stores the new `lastScheduleTime` in the same
//! write that creates the Job, a new leader that reconciles right after a
//! failover sees either both or neither, so a run is never started twice
//! nor skipped. Job names are `<cronjob>-<scheduled time in unix minutes>`,
//! so even a duplicate attempt collides on the name.
//!
//! A scheduled time is not run when the CronJob is suspended, when it is
//! older than `startingDeadlineSeconds`, or, with `concurrencyPolicy:
//! Forbid`, while a previous Job is active; `Replace` deletes the active
//! Jobs first, `Allow` (the default) runs them side by side. Finished Jobs
//! beyond `successfulJobsHistoryLimit` (default 3) and
//! `failedJobsHistoryLimit` (default 1) are deleted, oldest first.
//!
//! See [`schedule`] for the schedule syntax and time zone support.

pub mod schedule;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

pub use schedule::{next_after, parse_time_zone, Schedule};

use crate::job::finished_condition;
use crate::podutil::{controller_owner_ref, creation_time, is_being_deleted};

/// The annotation recording the scheduled time on a CronJob's Job.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// `successfulJobsHistoryLimit` when unset.
pub const DEFAULT_SUCCESSFUL_HISTORY: i32 = 3;
/// `failedJobsHistoryLimit` when unset.
pub const DEFAULT_FAILED_HISTORY: i32 = 1;
/// Missed start times are counted up to this many; beyond it the count
/// saturates (the schedule was down for very long).
pub const MAX_MISSED_COUNTED: usize = 10_000;

/// What a CronJob reconcile should do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CronPlan {
    /// Start a Job for this scheduled time ([`job_from_template`]) and store
    /// it as `status.lastScheduleTime` in the same write.
    pub run_at: Option<Timestamp>,
    /// The name of that Job.
    pub job_name: Option<String>,
    /// Scheduled times since the last run that will never run (all but the
    /// most recent one), saturating at [`MAX_MISSED_COUNTED`].
    pub missed: usize,
    /// Active Jobs to delete first (`concurrencyPolicy: Replace`).
    pub delete_active: Vec<String>,
    /// Why the most recent scheduled time does not run (suspended, missed
    /// its starting deadline, Forbid with an active Job, an unparseable
    /// schedule).
    pub skip_reason: Option<String>,
    /// Finished Jobs beyond the history limits, oldest first.
    pub delete_history: Vec<String>,
    /// The next scheduled time after `now`, for requeueing.
    pub next_run: Option<Timestamp>,
}

/// The name of the Job for the run scheduled at `t`.
pub fn job_name(cj: &CronJob, t: Timestamp) -> String {
    format!(
        "{}-{}",
        cj.metadata.name.as_deref().unwrap_or_default(),
        t.as_second().div_euclid(60)
    )
}

/// The schedule of `cj` in its time zone.
pub fn schedule_of(cj: &CronJob) -> Result<Schedule, crate::Error> {
    Schedule::parse_in(&cj.spec.schedule, cj.spec.time_zone.as_deref())
}

/// Order Jobs oldest first: by start time, Jobs that never started last,
/// then by creation time and name.
fn oldest_first(a: &&Job, b: &&Job) -> std::cmp::Ordering {
    let start = |j: &Job| j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    match (start(a), start(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
    .then_with(|| creation_time(&a.metadata).cmp(&creation_time(&b.metadata)))
    .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Finished Jobs to delete beyond the history limits, oldest first.
pub fn history_to_delete(cj: &CronJob, finished: &[Job]) -> Vec<String> {
    let mut out = Vec::new();
    let limits = [
        (
            "Complete",
            cj.spec
                .successful_jobs_history_limit
                .unwrap_or(DEFAULT_SUCCESSFUL_HISTORY),
        ),
        (
            "Failed",
            cj.spec
                .failed_jobs_history_limit
                .unwrap_or(DEFAULT_FAILED_HISTORY),
        ),
    ];
    for (kind, limit) in limits {
        let mut jobs: Vec<&Job> = finished
            .iter()
            .filter(|j| finished_condition(j).is_some_and(|c| c.type_ == kind))
            .filter(|j| !is_being_deleted(&j.metadata))
            .collect();
        let keep = usize::try_from(limit.max(0)).unwrap_or(0);
        if jobs.len() > keep {
            jobs.sort_by(oldest_first);
            let excess = jobs.len() - keep;
            out.extend(
                jobs.into_iter()
                    .take(excess)
                    .filter_map(|j| j.metadata.name.clone()),
            );
        }
    }
    out
}

/// Decide one reconcile of `cj` at `now`, given its unfinished Jobs
/// (`active_jobs`) and finished ones.
pub fn plan(cj: &CronJob, active_jobs: &[Job], finished: &[Job], now: Timestamp) -> CronPlan {
    let mut out = CronPlan::default();
    if is_being_deleted(&cj.metadata) {
        return out;
    }
    out.delete_history = history_to_delete(cj, finished);
    let schedule = match schedule_of(cj) {
        Ok(s) => s,
        Err(e) => {
            out.skip_reason = Some(e.to_string());
            return out;
        }
    };
    out.next_run = schedule.next_after(now);

    let last = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(|t| t.0)
        .or_else(|| creation_time(&cj.metadata));
    let Some(last) = last else {
        // Without any reference time nothing can have been missed; the
        // first run is the next scheduled time.
        return out;
    };
    let Some(most_recent) = schedule.prev_at_or_before(now).filter(|t| *t > last) else {
        return out;
    };
    // Count the scheduled times in (last, now] to report what was missed.
    let mut count = 0usize;
    let mut t = last;
    while let Some(next) = schedule.next_after(t).filter(|n| *n <= now) {
        count += 1;
        if count >= MAX_MISSED_COUNTED {
            break;
        }
        t = next;
    }
    out.missed = count.saturating_sub(1);

    if cj.spec.suspend == Some(true) {
        out.skip_reason = Some("suspended".to_string());
        return out;
    }
    if let Some(deadline) = cj.spec.starting_deadline_seconds {
        if most_recent.as_second().saturating_add(deadline) < now.as_second() {
            out.skip_reason = Some(format!(
                "missed starting deadline: scheduled for {most_recent}, deadline {deadline}s"
            ));
            return out;
        }
    }
    let name = job_name(cj, most_recent);
    let exists = |jobs: &[Job]| {
        jobs.iter()
            .any(|j| j.metadata.name.as_deref() == Some(name.as_str()))
    };
    if exists(active_jobs) || exists(finished) {
        out.skip_reason = Some(format!("job {name} for this schedule already exists"));
        return out;
    }
    let active: Vec<&Job> = active_jobs
        .iter()
        .filter(|j| finished_condition(j).is_none())
        .collect();
    match cj.spec.concurrency_policy.as_deref().unwrap_or("Allow") {
        "Forbid" if !active.is_empty() => {
            out.skip_reason = Some("previous run is still active (concurrencyPolicy Forbid)".to_string());
            return out;
        }
        "Replace" => {
            out.delete_active = active.iter().filter_map(|j| j.metadata.name.clone()).collect();
        }
        _ => {}
    }
    out.run_at = Some(most_recent);
    out.job_name = Some(name);
    out
}

/// The Job for the run of `cj` scheduled at `scheduled`: named by
/// [`job_name`], with the job template's labels and annotations, the
/// scheduled-time annotation and a controller owner reference.
pub fn job_from_template(cj: &CronJob, scheduled: Timestamp) -> Job {
    let template = cj.spec.job_template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.to_string(), scheduled.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_owner_ref("batch/v1", "CronJob", &cj.metadata)]),
            ..ObjectMeta::default()
        },
        spec: Some(template.spec.unwrap_or_default()),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::testutil::from_json;
    use k8s_openapi::api::batch::v1::{CronJobStatus, JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::{json, Value};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn cronjob(schedule: &str, extra: Value, last: Option<&str>) -> CronJob {
        let mut spec = json!({
            "schedule": schedule,
            "jobTemplate": {"metadata": {"labels": {"app": "report"}},
                            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        let mut cj: CronJob = from_json(json!({
            "metadata": {"name": "report", "namespace": "default", "uid": "cj-uid",
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": spec
        }));
        cj.status = last.map(|l| CronJobStatus {
            last_schedule_time: Some(Time(at(l))),
            ..CronJobStatus::default()
        });
        cj
    }

    fn job(name: &str, finished: Option<&str>, started: &str) -> Job {
        let conditions = finished.map(|kind| {
            vec![JobCondition {
                type_: kind.to_string(),
                status: "True".to_string(),
                ..JobCondition::default()
            }]
        });
        Job {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(JobStatus {
                start_time: Some(Time(at(started))),
                conditions,
                ..JobStatus::default()
            }),
        }
    }

    #[test]
    fn when_to_run() {
        type Case = (
            &'static str,
            CronJob,
            Vec<Job>,
            &'static str,
            Option<&'static str>,
            usize,
            Option<&'static str>,
        );
        let hourly = |extra: Value, last: Option<&'static str>| cronjob("0 * * * *", extra, last);
        let active = vec![job("report-old", None, "2024-01-01T09:00:00Z")];
        let cases: Vec<Case> = vec![
            (
                "nothing due yet",
                hourly(json!({}), Some("2024-01-01T10:00:00Z")),
                vec![],
                "2024-01-01T10:59:00Z",
                None,
                0,
                None,
            ),
            (
                "due",
                hourly(json!({}), Some("2024-01-01T10:00:00Z")),
                vec![],
                "2024-01-01T11:00:30Z",
                Some("2024-01-01T11:00:00Z"),
                0,
                None,
            ),
            (
                "first run counts from creation",
                hourly(json!({}), None),
                vec![],
                "2024-01-01T01:30:00Z",
                Some("2024-01-01T01:00:00Z"),
                0,
                None,
            ),
            (
                "missed runs: only the latest starts",
                hourly(json!({}), Some("2024-01-01T10:00:00Z")),
                vec![],
                "2024-01-01T14:10:00Z",
                Some("2024-01-01T14:00:00Z"),
                3,
                None,
            ),
            (
                "starting deadline passed",
                hourly(
                    json!({"startingDeadlineSeconds": 300}),
                    Some("2024-01-01T10:00:00Z"),
                ),
                vec![],
                "2024-01-01T11:06:00Z",
                None,
                0,
                Some("missed starting deadline"),
            ),
            (
                "within starting deadline",
                hourly(
                    json!({"startingDeadlineSeconds": 300}),
                    Some("2024-01-01T10:00:00Z"),
                ),
                vec![],
                "2024-01-01T11:04:00Z",
                Some("2024-01-01T11:00:00Z"),
                0,
                None,
            ),
            (
                "suspended",
                hourly(json!({"suspend": true}), Some("2024-01-01T10:00:00Z")),
                vec![],
                "2024-01-01T11:00:00Z",
                None,
                0,
                Some("suspended"),
            ),
            (
                "Allow runs alongside",
                hourly(
                    json!({"concurrencyPolicy": "Allow"}),
                    Some("2024-01-01T10:00:00Z"),
                ),
                active.clone(),
                "2024-01-01T11:00:00Z",
                Some("2024-01-01T11:00:00Z"),
                0,
                None,
            ),
            (
                "Forbid waits",
                hourly(
                    json!({"concurrencyPolicy": "Forbid"}),
                    Some("2024-01-01T10:00:00Z"),
                ),
                active.clone(),
                "2024-01-01T11:00:00Z",
                None,
                0,
                Some("Forbid"),
            ),
            (
                "Forbid runs when nothing is active",
                hourly(
                    json!({"concurrencyPolicy": "Forbid"}),
                    Some("2024-01-01T10:00:00Z"),
                ),
                vec![],
                "2024-01-01T11:00:00Z",
                Some("2024-01-01T11:00:00Z"),
                0,
                None,
            ),
            (
                "Replace runs",
                hourly(
                    json!({"concurrencyPolicy": "Replace"}),
                    Some("2024-01-01T10:00:00Z"),
                ),
                active.clone(),
                "2024-01-01T11:00:00Z",
                Some("2024-01-01T11:00:00Z"),
                0,
                None,
            ),
            (
                "already started under this name",
                hourly(json!({}), Some("2024-01-01T10:00:00Z")),
                vec![job("report-28401780", None, "2024-01-01T11:00:00Z")],
                "2024-01-01T11:00:00Z",
                None,
                0,
                Some("already exists"),
            ),
            (
                "named time zone: 09:00 in Berlin is 08:00Z in winter",
                cronjob(
                    "0 9 * * *",
                    json!({"timeZone": "Europe/Berlin"}),
                    Some("2024-01-14T08:00:00Z"),
                ),
                vec![],
                "2024-01-15T08:00:30Z",
                Some("2024-01-15T08:00:00Z"),
                0,
                None,
            ),
            (
                "named time zone: not yet at 08:59Z in summer, 07:00Z was the run",
                cronjob(
                    "0 9 * * *",
                    json!({"timeZone": "Europe/Berlin"}),
                    Some("2024-07-15T07:00:00Z"),
                ),
                vec![],
                "2024-07-15T08:59:00Z",
                None,
                0,
                None,
            ),
            (
                "bad time zone",
                hourly(
                    json!({"timeZone": "Europe/Atlantis"}),
                    Some("2024-01-01T10:00:00Z"),
                ),
                vec![],
                "2024-01-01T11:00:00Z",
                None,
                0,
                Some("invalid spec.timeZone"),
            ),
            (
                "bad schedule",
                cronjob("61 * * * *", json!({}), Some("2024-01-01T10:00:00Z")),
                vec![],
                "2024-01-01T11:00:00Z",
                None,
                0,
                Some("unparseable schedule"),
            ),
        ];
        for (name, cj, active, now, run_at, missed, skip) in cases {
            let p = plan(&cj, &active, &[], at(now));
            assert_eq!(p.run_at, run_at.map(at), "{name}");
            assert_eq!(p.missed, missed, "{name}");
            match (skip, &p.skip_reason) {
                (None, None) => {}
                (Some(want), Some(got)) if got.contains(want) => {}
                (want, got) => panic!("{name}: skip reason {got:?}, want {want:?}"),
            }
            if let Some(t) = p.run_at {
                assert_eq!(p.job_name, Some(job_name(&cj, t)), "{name}");
            }
            let replace = cj.spec.concurrency_policy.as_deref() == Some("Replace");
            assert_eq!(
                p.delete_active,
                if replace {
                    vec!["report-old".to_string()]
                } else {
                    vec![]
                },
                "{name}"
            );
        }
    }

    #[test]
    fn leader_change_never_fires_twice() {
        // The leader planned 11:00, created the Job and stored
        // lastScheduleTime in one write; a new leader reconciling right
        // after sees that write and has nothing to do until 12:00.
        let cj = cronjob("0 * * * *", json!({}), Some("2024-01-01T10:00:00Z"));
        let now = at("2024-01-01T11:00:05Z");
        let first = plan(&cj, &[], &[], now);
        let Some(t) = first.run_at else { panic!("no run") };
        let mut after = cj.clone();
        after.status = Some(CronJobStatus {
            last_schedule_time: Some(Time(t)),
            ..CronJobStatus::default()
        });
        let job = job_from_template(&cj, t);
        let second = plan(
            &after,
            std::slice::from_ref(&job),
            &[],
            at("2024-01-01T11:00:30Z"),
        );
        assert_eq!((second.run_at, second.skip_reason), (None, None));
        assert_eq!(second.next_run, Some(at("2024-01-01T12:00:00Z")));
        // Without the write (the old leader failed before it), the new
        // leader runs the same scheduled time under the same name.
        let retry = plan(&cj, &[], &[], at("2024-01-01T11:00:30Z"));
        assert_eq!((retry.run_at, retry.job_name), (Some(t), first.job_name));
    }

    #[test]
    fn job_names_and_template() {
        let cj = cronjob("*/5 * * * *", json!({}), None);
        let t = at("2024-01-01T11:00:00Z");
        assert_eq!(job_name(&cj, t), "report-28401780");
        let v = serde_json::to_value(job_from_template(&cj, t)).unwrap_or_default();
        assert_eq!(v["metadata"]["name"], json!("report-28401780"));
        assert_eq!(v["metadata"]["labels"], json!({"app": "report"}));
        assert_eq!(
            v["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION],
            json!("2024-01-01T11:00:00Z")
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], json!("CronJob"));
        assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], json!("Never"));
    }

    #[test]
    fn history_limits() {
        let finished = vec![
            job("ok-3", Some("Complete"), "2024-01-01T03:00:00Z"),
            job("ok-1", Some("Complete"), "2024-01-01T01:00:00Z"),
            job("bad-1", Some("Failed"), "2024-01-01T01:30:00Z"),
            job("ok-2", Some("Complete"), "2024-01-01T02:00:00Z"),
            job("bad-2", Some("Failed"), "2024-01-01T02:30:00Z"),
            job("ok-4", Some("Complete"), "2024-01-01T04:00:00Z"),
        ];
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({}), vec!["ok-1", "bad-1"]),
            (
                json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0}),
                vec!["ok-1", "ok-2", "ok-3", "bad-1", "bad-2"],
            ),
            (
                json!({"successfulJobsHistoryLimit": 10, "failedJobsHistoryLimit": 10}),
                vec![],
            ),
        ];
        for (limits, want) in cases {
            let cj = cronjob("@daily", limits.clone(), None);
            assert_eq!(history_to_delete(&cj, &finished), want, "{limits}");
            // plan reports the same cleanup, whatever else it decides.
            assert_eq!(
                plan(&cj, &[], &finished, at("2024-01-01T05:00:00Z")).delete_history,
                want
            );
        }
    }
}
