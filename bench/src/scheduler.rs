//! Scheduler throughput: many simulated nodes, many pending Pods, every
//! binding committed to a real 3-replica store (kube-scheduler's
//! scheduler_perf "SchedulingBasic", 5000 nodes / 10000 Pods).
//!
//! Nodes are API objects only (no agents; a Node without a Lease is left
//! alone by node lifecycle, so it stays Ready). Pods are created in
//! transactions of 500 so creation is not what is measured; the clock runs
//! from the first create to the last binding seen on a watch, so creation
//! time counts against the scheduler, never for it. The Pods' "Scheduled"
//! Events are written after their bindings (as kube-scheduler's are); how
//! long after the last binding the last of them is in the store is printed
//! beside the figure.

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt};
use rk_client::{Event, WatchEventType};
use rk_proto::v1 as pb;
use rk_testkit::Cluster;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct SchedulerArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 5000)]
    pub nodes: usize,
    /// Pending Pods to schedule.
    #[arg(long, default_value_t = 10000)]
    pub pods: usize,
    /// Control-plane replicas.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Give up when the Pods are not all bound after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub deadline_secs: u64,
}

impl Default for SchedulerArgs {
    fn default() -> Self {
        SchedulerArgs {
            nodes: 5000,
            pods: 10000,
            replicas: 3,
            deadline_secs: 600,
        }
    }
}

pub struct SchedulerFigures {
    pub nodes: usize,
    pub pods: usize,
    /// Pods bound per second, first create → last binding.
    pub pods_per_second: f64,
    /// Seconds to create the Pods (inside the measured window).
    pub create_seconds: f64,
    /// Seconds from the first create to the last binding.
    pub total_seconds: f64,
    /// Seconds from the last binding until every Pod's "Scheduled" Event
    /// was in the store (`None`: not all within the deadline).
    pub events_lag_seconds: Option<f64>,
    /// How many "Scheduled" Events were in the store at the end.
    pub scheduled_events: usize,
}

fn node(i: usize) -> serde_json::Value {
    let name = format!("sim-{i:05}");
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                     "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
        "status": {"capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})
}

fn pod(i: usize) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("sched-{i:05}"), "namespace": "default", "labels": {"app": "sched-bench"}},
        "spec": {"containers": [{"name": "c", "image": "rk.test/pause:1",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
}

fn create_op(obj: &serde_json::Value) -> Result<pb::TxnOp> {
    Ok(pb::TxnOp {
        op: Some(pb::txn_op::Op::Create(pb::CreateRequest {
            resource: "pods".into(),
            object: serde_json::to_vec(obj)?,
            dry_run: false,
        })),
        check_resource_version: String::new(),
    })
}

pub async fn run(args: &SchedulerArgs) -> Result<SchedulerFigures> {
    let cluster = Cluster::start(args.replicas);
    let leader = cluster
        .leader(Duration::from_secs(20))
        .await
        .context("no leader")?;
    let c = cluster.client_for(leader);
    let t = Instant::now();
    let created: Vec<Result<serde_json::Value, rk_client::ApiError>> = stream::iter(0..args.nodes)
        .map(|i| {
            let c = c.clone();
            async move { c.create("nodes", &node(i)).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for r in created {
        r.context("create node")?;
    }
    eprintln!(
        "  {} nodes created in {:.1} s",
        args.nodes,
        t.elapsed().as_secs_f64()
    );
    // Let the scheduler's snapshot take in the nodes before the clock runs.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (_, from) = c
        .list(
            "pods",
            &rk_client::ListParams {
                namespace: Some("default".into()),
                ..Default::default()
            },
        )
        .await?;
    // Only bound Pods: the server filters out the creations, so the
    // measuring watch costs half of what watching every change would.
    let mut events = c.watch(pb::WatchRequest {
        resource: "pods".into(),
        namespace: "default".into(),
        since_revision: from,
        field_selector: "spec.nodeName!=".into(),
        ..Default::default()
    });
    let total = args.pods;
    let start = Instant::now();
    let creator = {
        let c = c.clone();
        tokio::spawn(async move {
            let batches: Vec<Vec<usize>> = (0..total)
                .collect::<Vec<_>>()
                .chunks(500)
                .map(<[usize]>::to_vec)
                .collect();
            let results: Vec<Result<()>> = stream::iter(batches)
                .map(|batch| {
                    let c = c.clone();
                    async move {
                        let ops = batch
                            .iter()
                            .map(|i| create_op(&pod(*i)))
                            .collect::<Result<Vec<_>>>()?;
                        // A leader change can fail a transaction that was
                        // nevertheless committed; AlreadyExists on a retry
                        // means the first attempt took.
                        let mut attempt = 0;
                        loop {
                            attempt += 1;
                            match c.txn(ops.clone()).await {
                                Ok(_) => return Ok(()),
                                Err(e) if e.reason == rk_client::Reason::AlreadyExists => return Ok(()),
                                Err(e) if attempt < 5 => {
                                    eprintln!("  creating Pods failed ({e}); retrying");
                                    tokio::time::sleep(Duration::from_millis(500)).await;
                                }
                                Err(e) => return Err(anyhow::Error::from(e)),
                            }
                        }
                    }
                })
                .buffer_unordered(4)
                .collect()
                .await;
            results
                .into_iter()
                .collect::<Result<Vec<()>>>()
                .map(|_| start.elapsed())
        })
    };
    let mut creator = Some(creator);
    let mut create_time = None;
    let mut bound: HashSet<String> = HashSet::with_capacity(total);
    let deadline = start + Duration::from_secs(args.deadline_secs);
    while bound.len() < total {
        // Pods that were never created would never be bound: stop at once.
        if creator.as_ref().is_some_and(|c| c.is_finished()) {
            if let Some(done) = creator.take() {
                create_time = Some(done.await??);
            }
        }
        let ev = tokio::time::timeout_at(deadline.into(), events.recv()).await;
        match ev {
            Ok(Some(Ok(Event { object, .. }))) => {
                if object["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
                    bound.insert(
                        object["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
            }
            Ok(Some(Err(e))) => bail!("watch: {e}"),
            Ok(None) => bail!("the watch ended"),
            Err(_) => {
                let tail: Vec<String> = cluster
                    .replicas
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let log = r.log();
                        let lines: Vec<&str> = log.lines().collect();
                        let from = lines.len().saturating_sub(40);
                        format!("==== replica {i} ====\n{}", lines[from..].join("\n"))
                    })
                    .collect();
                bail!(
                    "only {} of {total} pods bound within {} s; the replicas' last log lines:\n{}",
                    bound.len(),
                    args.deadline_secs,
                    tail.join("\n")
                )
            }
        }
    }
    let total_seconds = start.elapsed().as_secs_f64();
    let create_seconds = match (create_time, creator) {
        (Some(t), _) => t,
        (None, Some(c)) => c.await??,
        (None, None) => bail!("the Pod creator vanished"),
    }
    .as_secs_f64();
    let (scheduled_events, events_lag_seconds) = wait_for_scheduled_events(&c, total).await?;
    drop(cluster);
    Ok(SchedulerFigures {
        nodes: args.nodes,
        pods: total,
        pods_per_second: total as f64 / total_seconds,
        create_seconds,
        total_seconds,
        events_lag_seconds,
        scheduled_events,
    })
}

/// Waits up to 60 s for `pods` "Scheduled" Events; returns how many there
/// were and, if all came, when the last one did (seconds from now).
///
/// It lists them once and then watches from the list's revision: listing
/// all of them again and again, as it did, competed for the leader's CPU
/// with the Event writer it was timing, and so overstated the lag.
async fn wait_for_scheduled_events(c: &rk_client::Client, pods: usize) -> Result<(usize, Option<f64>)> {
    const SCHEDULED: &str = "reason=Scheduled";
    let start = Instant::now();
    let params = rk_client::ListParams {
        namespace: Some("default".into()),
        field_selector: SCHEDULED.into(),
        ..Default::default()
    };
    let (listed, revision) = c.list("events", &params).await.context("list events")?;
    let mut seen = listed.len();
    let mut events = c.watch(pb::WatchRequest {
        resource: "events".into(),
        namespace: "default".into(),
        since_revision: revision,
        field_selector: SCHEDULED.into(),
        ..Default::default()
    });
    let deadline = start + Duration::from_secs(60);
    while seen < pods {
        match tokio::time::timeout_at(deadline.into(), events.recv()).await {
            Ok(Some(Ok(Event { kind, .. }))) => seen += usize::from(kind == WatchEventType::Added),
            Ok(Some(Err(e))) => bail!("watching events: {e}"),
            Ok(None) => bail!("the watch on events ended"),
            Err(_) => return Ok((seen, None)),
        }
    }
    Ok((seen, Some(start.elapsed().as_secs_f64())))
}
