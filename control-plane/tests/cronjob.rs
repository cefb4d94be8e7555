//! The CronJob controller in a real control plane, on a test clock: the
//! replica runs with the hidden `--test-clock-file` flag, and each test
//! moves time by rewriting that file, so schedules minutes or months apart
//! are reached in a fraction of a second. No node agents: a fake one marks
//! bound pods Running (or, labelled `fake-exit`, finished).

mod common;

use common::fake_agents;
use k8s_openapi::jiff::{civil, SignedDuration, Timestamp};
use rk_client::{Client, ListParams};
use rk_testkit::Cluster;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// The time the control plane's CronJob and Job controllers see.
struct TestClock {
    dir: tempfile::TempDir,
}

impl TestClock {
    /// A clock standing at the real time now.
    fn new() -> TestClock {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TestClock { dir };
        clock.set(Timestamp::now());
        clock
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("clock")
    }

    /// Moves the clock to `t`. The new time is written beside the file and
    /// renamed over it, so the controller never reads half a timestamp.
    fn set(&self, t: Timestamp) {
        let tmp = self.dir.path().join("clock.tmp");
        std::fs::write(&tmp, t.to_string()).expect("write clock");
        std::fs::rename(&tmp, self.path()).expect("move clock");
    }

    fn start_cluster(&self) -> Cluster {
        let path = self.path().display().to_string();
        Cluster::start_with(1, &["--test-clock-file", &path])
    }
}

/// What every test here runs against: one replica on a test clock, one
/// Ready node, and a fake agent that runs the pods bound to it.
struct World {
    clock: TestClock,
    client: Client,
    _cluster: Cluster,
    stop: tokio_util::sync::CancellationToken,
    agents: tokio::task::JoinHandle<()>,
}

impl World {
    async fn start() -> World {
        let clock = TestClock::new();
        let cluster = clock.start_cluster();
        let client = cluster.client();
        client.create("nodes", &node("n1")).await.expect("node");
        let stop = tokio_util::sync::CancellationToken::new();
        let agents = fake_agents(cluster.client(), stop.clone());
        World {
            clock,
            client,
            _cluster: cluster,
            stop,
            agents,
        }
    }

    async fn finish(self) {
        self.stop.cancel();
        let _ = self.agents.await;
    }
}

/// How long a reconcile on the test clock takes to notice a new time
/// (it looks every 100 ms), with a wide margin: for checking that
/// something did *not* happen.
const SETTLE: Duration = Duration::from_millis(800);

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "8", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": "2026-11-27T00:00:00Z", "lastTransitionTime": "2026-11-27T00:00:00Z"}]}})
}

/// A CronJob whose runs finish at once (`exit` 0), fail, or (`exit` None)
/// keep running; `extra` is merged into its spec.
fn cronjob(name: &str, schedule: &str, exit: Option<i64>, extra: Value) -> Value {
    let mut labels = json!({"app": name});
    if let Some(code) = exit {
        labels["fake-exit"] = json!(code.to_string());
    }
    let mut cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"schedule": schedule, "successfulJobsHistoryLimit": 10,
                 "jobTemplate": {"spec": {"template": {"metadata": {"labels": labels},
                     "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}});
    if let (Some(spec), Some(extra)) = (cj["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    cj
}

/// Creates `cj` and returns its creation time.
async fn create(c: &Client, cj: &Value) -> Timestamp {
    let created = c.create("cronjobs.batch", cj).await.expect("create cronjob");
    created["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("creationTimestamp")
}

/// The name rk gives the run of `cronjob` scheduled at `t`.
fn run_name(cronjob: &str, t: Timestamp) -> String {
    format!("{cronjob}-{}", t.as_second().div_euclid(60))
}

/// The names of the Jobs of `cronjob` that are not being deleted, sorted.
async fn runs(c: &Client, cronjob: &str) -> Vec<String> {
    let (jobs, _) = c
        .list(
            "jobs.batch",
            &ListParams {
                namespace: Some("default".into()),
                ..Default::default()
            },
        )
        .await
        .expect("list jobs");
    let prefix = format!("{cronjob}-");
    let mut names: Vec<String> = jobs
        .iter()
        .filter(|j| j["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|j| j["metadata"]["name"].as_str())
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// Waits until the runs of `cronjob` are exactly `want`.
async fn wait_runs(c: &Client, cronjob: &str, want: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = runs(c, cronjob).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{cronjob}: runs {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After the controller has had time to act, the runs are still `want`.
async fn still_runs(c: &Client, cronjob: &str, want: &[String]) {
    tokio::time::sleep(SETTLE).await;
    assert_eq!(runs(c, cronjob).await, want, "{cronjob}");
}

async fn last_schedule_time(c: &Client, cronjob: &str) -> Option<Timestamp> {
    let cj = c
        .get("cronjobs.batch", "default", cronjob)
        .await
        .expect("get cronjob");
    cj["status"]["lastScheduleTime"]
        .as_str()
        .and_then(|t| t.parse().ok())
}

/// The first time after `t` on a 5-minute boundary.
fn next_five_minutes(t: Timestamp) -> Timestamp {
    let slot = 300;
    Timestamp::from_second((t.as_second().div_euclid(slot) + 1) * slot).expect("timestamp")
}

fn plus(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs)).expect("timestamp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjob_fires_once_per_scheduled_time_as_the_clock_jumps() {
    let world = World::start().await;
    let (clock, c) = (&world.clock, world.client.clone());

    let created = create(&c, &cronjob("every5", "*/5 * * * *", Some(0), json!({}))).await;
    let s1 = next_five_minutes(created);
    let slot = |n: i64| plus(s1, 300 * n);
    let name = |n: i64| run_name("every5", slot(n));

    clock.set(plus(s1, -60));
    still_runs(&c, "every5", &[]).await;

    clock.set(plus(s1, 10));
    wait_runs(&c, "every5", &[name(0)]).await;
    assert_eq!(last_schedule_time(&c, "every5").await, Some(s1));
    // Later in the same slot: still one run.
    clock.set(plus(s1, 20));
    still_runs(&c, "every5", &[name(0)]).await;

    clock.set(slot(1));
    wait_runs(&c, "every5", &[name(0), name(1)]).await;
    assert_eq!(last_schedule_time(&c, "every5").await, Some(slot(1)));

    // Jumping over slots 2 and 3 runs only the most recent one, 4.
    clock.set(plus(slot(4), 30));
    wait_runs(&c, "every5", &[name(0), name(1), name(4)]).await;
    assert_eq!(last_schedule_time(&c, "every5").await, Some(slot(4)));
    still_runs(&c, "every5", &[name(0), name(1), name(4)]).await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_skips_a_run_while_the_last_is_active_and_replace_replaces_it() {
    let world = World::start().await;
    let (clock, c) = (&world.clock, world.client.clone());

    // Runs that never finish: the fake agent keeps their pods Running.
    let forbid = cronjob(
        "forbid",
        "*/5 * * * *",
        None,
        json!({"concurrencyPolicy": "Forbid"}),
    );
    let replace = cronjob(
        "replace",
        "*/5 * * * *",
        None,
        json!({"concurrencyPolicy": "Replace"}),
    );
    let created = create(&c, &forbid).await.max(create(&c, &replace).await);
    let s1 = next_five_minutes(created);
    let slot = |n: i64| plus(s1, 300 * n);

    clock.set(plus(s1, 10));
    wait_runs(&c, "forbid", &[run_name("forbid", s1)]).await;
    wait_runs(&c, "replace", &[run_name("replace", s1)]).await;

    clock.set(plus(slot(1), 10));
    wait_runs(&c, "replace", &[run_name("replace", slot(1))]).await;
    assert_eq!(last_schedule_time(&c, "replace").await, Some(slot(1)));
    still_runs(&c, "forbid", &[run_name("forbid", s1)]).await;
    assert_eq!(
        last_schedule_time(&c, "forbid").await,
        Some(s1),
        "a skipped run is not recorded"
    );

    // Once the active run is gone, the run Forbid held back starts (there
    // is no startingDeadlineSeconds to make it too late).
    c.delete(
        "jobs.batch",
        "default",
        &run_name("forbid", s1),
        &Default::default(),
    )
    .await
    .expect("delete job");
    wait_runs(&c, "forbid", &[run_name("forbid", slot(1))]).await;
    assert_eq!(last_schedule_time(&c, "forbid").await, Some(slot(1)));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_later_than_the_starting_deadline_is_skipped() {
    let world = World::start().await;
    let (clock, c) = (&world.clock, world.client.clone());

    let cj = cronjob(
        "late",
        "*/5 * * * *",
        Some(0),
        json!({"startingDeadlineSeconds": 60}),
    );
    let s1 = next_five_minutes(create(&c, &cj).await);
    let slot = |n: i64| plus(s1, 300 * n);

    clock.set(plus(s1, 30));
    wait_runs(&c, "late", &[run_name("late", s1)]).await;
    // The controller "was down" through slot 1 until two minutes after it.
    clock.set(plus(slot(1), 120));
    still_runs(&c, "late", &[run_name("late", s1)]).await;
    assert_eq!(last_schedule_time(&c, "late").await, Some(s1));
    // Within the deadline again.
    clock.set(plus(slot(2), 59));
    wait_runs(&c, "late", &[run_name("late", s1), run_name("late", slot(2))]).await;
    assert_eq!(last_schedule_time(&c, "late").await, Some(slot(2)));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_time_zone_fires_at_local_time_in_winter_and_summer() {
    let world = World::start().await;
    let (clock, c) = (&world.clock, world.client.clone());

    // The deadline keeps the clock's jumps of months from starting the
    // most recent missed day at once.
    let cj = cronjob(
        "berlin",
        "0 9 * * *",
        Some(0),
        json!({"timeZone": "Europe/Berlin", "startingDeadlineSeconds": 300}),
    );
    let created = create(&c, &cj).await;
    // Next year's January and July, whenever the test runs.
    let year = created.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).year() + 1;
    let utc = |month: i8, hour: i8| {
        civil::date(year, month, 15)
            .at(hour, 0, 0, 0)
            .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
            .expect("date")
            .timestamp()
    };
    // 09:00 in Berlin: 08:00Z under CET, 07:00Z under CEST.
    let winter = utc(1, 8);
    let summer = utc(7, 7);

    clock.set(plus(winter, -30));
    still_runs(&c, "berlin", &[]).await;
    clock.set(plus(winter, 10));
    wait_runs(&c, "berlin", &[run_name("berlin", winter)]).await;
    assert_eq!(last_schedule_time(&c, "berlin").await, Some(winter));

    let both = [run_name("berlin", winter), run_name("berlin", summer)];
    clock.set(plus(summer, -30));
    still_runs(&c, "berlin", &both[..1]).await;
    clock.set(plus(summer, 10));
    wait_runs(&c, "berlin", &both).await;
    assert_eq!(last_schedule_time(&c, "berlin").await, Some(summer));
    // Not again at 08:00Z, where a fixed +01:00 would have put it.
    clock.set(plus(summer, 3600 + 10));
    still_runs(&c, "berlin", &both).await;

    // An unknown zone is refused by the API server, naming the field.
    let bad = cronjob(
        "mars",
        "0 9 * * *",
        Some(0),
        json!({"timeZone": "Mars/Olympus_Mons"}),
    );
    let err = c.create("cronjobs.batch", &bad).await.expect_err("unknown zone");
    assert!(err.to_string().contains("spec.timeZone"), "{err}");
    world.finish().await;
}
