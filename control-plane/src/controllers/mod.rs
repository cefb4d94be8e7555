//! The scheduler and the workload controllers. They run on the Raft leader
//! only: [`run_while_leader`] starts them when this replica becomes leader
//! and stops them (and waits for them) when it stops leading, so two
//! replicas never act at once.
//!
//! Decisions are pure functions in the `rk-controllers` crate; this module
//! is the IO around them: caches, queues, writes.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod events;
pub mod gc;
pub mod job;
pub mod nodelifecycle;
pub mod replicaset;
pub mod runtime;
pub mod scheduler;

use crate::clock::SharedClock;
use crate::replica::Replica;
use events::EventRecorder;
use rk_controllers::job::JobBackoff;
use runtime::{run_controller, Ctx, Informer, Writer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The resources the controllers cache.
const WATCHED: &[&str] = &[
    "pods",
    "nodes",
    "namespaces",
    "replicasets.apps",
    "deployments.apps",
    "daemonsets.apps",
    "controllerrevisions.apps",
    "jobs.batch",
    "cronjobs.batch",
    "leases.coordination.k8s.io",
];

/// Decodes a cached JSON object into its typed form.
pub fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, runtime::ReconcileError> {
    serde_json::from_value(v.clone())
        .map_err(|e| runtime::ReconcileError::Other(format!("undecodable object: {e}")))
}

pub fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub use crate::clock::now;

/// Sets (or replaces) a condition in `obj.status.conditions`. Returns
/// whether anything changed, so unchanged conditions cost no write.
pub fn set_condition(obj: &mut Value, ctype: &str, status: &str, reason: &str, message: &str) -> bool {
    let now = crate::clock::now_rfc3339();
    let Some(root) = obj.as_object_mut() else {
        return false;
    };
    let st = root.entry("status").or_insert_with(|| json!({}));
    let Some(st) = st.as_object_mut() else {
        return false;
    };
    let conds = st.entry("conditions").or_insert_with(|| json!([]));
    let Some(list) = conds.as_array_mut() else {
        return false;
    };
    if let Some(c) = list.iter_mut().find(|c| c["type"] == ctype) {
        if c["status"] == status && c["reason"] == reason && c["message"] == message {
            return false;
        }
        let transitioned = c["status"] != status;
        c["status"] = json!(status);
        c["reason"] = json!(reason);
        c["message"] = json!(message);
        c["lastProbeTime"] = Value::Null;
        if transitioned {
            c["lastTransitionTime"] = json!(now);
        }
        return true;
    }
    list.push(
        json!({"type": ctype, "status": status, "reason": reason, "message": message,
                     "lastProbeTime": null, "lastTransitionTime": now}),
    );
    true
}

/// Records "SuccessfulCreate" about `owner` for the Pod it just created,
/// as the ReplicaSet, DaemonSet and Job controllers of Kubernetes do.
pub fn record_pod_created(events: &EventRecorder, owner: &Value, pod: &Value, component: &str) {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let message = format!("Created pod: {name}");
    events.record(owner, "Normal", "SuccessfulCreate", &message, component);
}

/// Records "SuccessfulDelete" about `owner` for the Pod it just deleted.
pub fn record_pod_deleted(events: &EventRecorder, owner: &Value, pod_name: &str, component: &str) {
    let message = format!("Deleted pod: {pod_name}");
    events.record(owner, "Normal", "SuccessfulDelete", &message, component);
}

/// The Event about `object` that [`EventRecorder::record`] writes.
pub fn event_object(object: &Value, etype: &str, reason: &str, message: &str, component: &str) -> Value {
    let source = rk_api::events::Source {
        component,
        host: None,
    };
    rk_api::events::event_for(
        object,
        etype,
        reason,
        message,
        source,
        &crate::clock::now_rfc3339(),
    )
}

/// What the controllers are configured with beyond the store.
#[derive(Clone)]
pub struct Settings {
    /// The clock of the CronJob and Job controllers (see [`crate::clock`]).
    pub clock: SharedClock,
    /// The Job controller's delay before replacing a failed pod.
    pub job_backoff: JobBackoff,
    /// The node lifecycle controller's grace period and default toleration.
    pub node_lifecycle: nodelifecycle::NodeLifecycle,
}

/// How long the controllers get to stop after leadership is lost.
const CONTROLLERS_STOP_GRACE: Duration = Duration::from_secs(5);

/// Waits up to `grace` for `tasks` to end, then aborts those that have
/// not. A controller ends at its next await once its token is cancelled,
/// but one can sit in an await that does not return while this replica
/// does not lead (chaos seed 447 with `--snapshot-every 50` left one so):
/// waiting for it kept `run_while_leader` from ever starting the
/// controllers again, and a replica that led again ran none. Controllers
/// keep nothing outside the store, so one stopped mid-reconcile loses
/// nothing the next leader's first pass does not redo; a write it already
/// proposed commits or not, as it would have anyway.
async fn stop_within(tasks: Vec<Task>, grace: Duration, replica: u64) {
    let deadline = tokio::time::Instant::now() + grace;
    let mut aborted = vec![];
    for (name, mut task) in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
            aborted.push(name);
        }
    }
    if !aborted.is_empty() {
        tracing::warn!(
            replica,
            ?aborted,
            "controller tasks had not stopped {} s after leadership was lost; aborted them",
            grace.as_secs()
        );
    }
}

/// A task the leader runs, named for the log.
type Task = (&'static str, tokio::task::JoinHandle<()>);

/// Runs the controllers whenever this replica leads, until `shutdown`.
pub async fn run_while_leader(replica: Arc<Replica>, shutdown: CancellationToken, settings: Settings) {
    let mut metrics = replica.raft.metrics();
    loop {
        // Wait to become leader.
        loop {
            let leads = metrics.borrow().current_leader == Some(replica.id);
            if leads {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = metrics.changed() => if r.is_err() { return },
            }
        }
        // Everything committed before we lead must be applied before the
        // controllers look at the cache, or they would act on old state.
        if replica.read_barrier().await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        tracing::info!(
            replica = replica.id,
            "leading: starting the scheduler and controllers"
        );
        let term = shutdown.child_token();
        let tasks = start(replica.clone(), term.clone(), shutdown.clone(), &settings);
        // Run until leadership is lost or we shut down.
        loop {
            let leads = metrics.borrow().current_leader == Some(replica.id);
            if !leads {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = metrics.changed() => if r.is_err() { break },
            }
        }
        term.cancel();
        stop_within(tasks, CONTROLLERS_STOP_GRACE, replica.id).await;
        tracing::info!(replica = replica.id, "no longer leading: controllers stopped");
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Runs one controller on the shared cache until `term`.
fn spawn<R: runtime::Reconciler>(
    name: &'static str,
    reconciler: R,
    ctx: &Arc<Ctx>,
    informer: &Informer,
    term: &CancellationToken,
) -> Task {
    let task = tokio::spawn(run_controller(
        Arc::new(reconciler),
        ctx.clone(),
        informer.subscribe(),
        term.clone(),
    ));
    (name, task)
}

fn start(
    replica: Arc<Replica>,
    term: CancellationToken,
    shutdown: CancellationToken,
    settings: &Settings,
) -> Vec<Task> {
    let informer = Arc::new(Informer::new(replica.store.clone(), WATCHED));
    let live = replica.store.subscribe();
    if let Err(e) = informer.relist() {
        tracing::warn!(error = %e, "initial list for the controllers failed");
    }
    let (events, recorder) =
        EventRecorder::start(Writer::new(replica.clone(), shutdown.clone()), term.clone());
    let ctx = Arc::new(Ctx {
        cache: informer.cache.clone(),
        writer: Writer::new(replica.clone(), shutdown),
        events,
    });
    let mut tasks = vec![("event recorder", recorder)];
    {
        let informer = informer.clone();
        let term = term.clone();
        tasks.push((
            "informer",
            tokio::spawn(async move { informer.run(live, term).await }),
        ));
    }
    tasks.push(spawn(
        "scheduler",
        scheduler::Scheduler::default(),
        &ctx,
        &informer,
        &term,
    ));
    tasks.push(spawn(
        "deployment",
        deployment::DeploymentController,
        &ctx,
        &informer,
        &term,
    ));
    tasks.push(spawn(
        "replicaset",
        replicaset::ReplicaSetController,
        &ctx,
        &informer,
        &term,
    ));
    tasks.push(spawn(
        "daemonset",
        daemonset::DaemonSetController,
        &ctx,
        &informer,
        &term,
    ));
    let jobs = job::JobController {
        clock: settings.clock.clone(),
        backoff: settings.job_backoff,
    };
    tasks.push(spawn("job", jobs, &ctx, &informer, &term));
    let cronjobs = cronjob::CronJobController {
        clock: settings.clock.clone(),
    };
    tasks.push(spawn("cronjob", cronjobs, &ctx, &informer, &term));
    tasks.push(spawn(
        "node lifecycle",
        settings.node_lifecycle,
        &ctx,
        &informer,
        &term,
    ));
    let gc = gc::GarbageCollector {
        store: replica.store.clone(),
    };
    tasks.push(spawn("garbage collector", gc, &ctx, &informer, &term));
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn controller_tasks_that_do_not_stop_are_aborted_after_the_grace() {
        let finished = tokio::spawn(async {});
        let stuck = tokio::spawn(std::future::pending::<()>());
        let stuck_handle = stuck.abort_handle();
        let started = tokio::time::Instant::now();
        stop_within(
            vec![("finished", finished), ("stuck", stuck)],
            Duration::from_millis(50),
            1,
        )
        .await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50),
            "waited the grace: {waited:?}"
        );
        assert!(waited < Duration::from_secs(5), "but no longer: {waited:?}");
        tokio::time::timeout(Duration::from_secs(5), async {
            while !stuck_handle.is_finished() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the stuck task was aborted");
    }

    #[tokio::test]
    async fn controller_tasks_that_stop_are_not_waited_on_longer() {
        let quick = tokio::spawn(tokio::time::sleep(Duration::from_millis(10)));
        let started = tokio::time::Instant::now();
        stop_within(vec![("quick", quick)], Duration::from_secs(30), 1).await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
