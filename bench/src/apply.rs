//! `rk-bench apply`: what the state machine spends per write, measured in
//! this process on a real RocksDB, with no Raft, network or other replica
//! competing for the CPU.
//!
//! Every replica applies every entry, so this cost is paid three times per
//! write in a 3-replica cluster; in `rk-bench scheduler` it is the largest
//! share of the machine. End-to-end figures on a shared 2-core machine
//! drift by a fifth within an hour; this one is steady enough to compare
//! two builds of the state machine.
//!
//! The entries are shaped as the cluster produces them: Pods created in
//! transactions of `--per-txn` (as `rk-bench scheduler` creates them), and
//! bindings with their "Scheduled" Events in transactions of the same size,
//! 16 transactions per Raft entry (the batcher joins the transactions that
//! queued while the previous entry committed). The scheduler now commits
//! the Events in transactions of their own, after the bindings; the
//! benchmark keeps its shape so that its figures stay comparable. Encoding a command is the proposer's work and is not timed;
//! decoding it is the state machine's and is.

use anyhow::{anyhow, bail, Context, Result};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};
use rk_control_plane::store::rocks::{open_db, LogDurability, StateMachine};
use rk_control_plane::store::types::{Command, Entry, LogCommand, LogId, Op, Txn};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Transactions per Raft entry. Kept at 16, the shape when this benchmark
/// was written, so its figures stay comparable across builds.
const TXNS_PER_ENTRY: usize = 16;

#[derive(clap::Args, Clone)]
pub struct ApplyArgs {
    /// Pods created, then bound, per round.
    #[arg(long, default_value_t = 8192)]
    pods: usize,
    /// Pods per transaction.
    #[arg(long, default_value_t = 128)]
    per_txn: usize,
    /// Rounds, each on a fresh database; the median is printed.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// Microseconds per Pod of one round.
struct Round {
    create: f64,
    bind: f64,
}

fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("apply-{i:05}"), "namespace": "default",
                     "uid": format!("00000000-0000-4000-8000-{i:012}"),
                     "creationTimestamp": "2026-11-27T00:00:00Z", "labels": {"app": "apply-bench"}},
        "spec": {"containers": [{"name": "c", "image": "rk.test/pause:1", "imagePullPolicy": "IfNotPresent",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "schedulerName": "default-scheduler", "enableServiceLinks": true},
        "status": {"phase": "Pending"}})
}

fn txn(ops: Vec<Op>) -> Command {
    Command::Txn(Txn {
        now: "2026-11-27T00:00:00Z".into(),
        ops,
    })
}

/// Raft entries of `TXNS_PER_ENTRY` transactions each, numbered from `next`.
fn entries(txns: Vec<Command>, next: &mut u64) -> Result<Vec<Entry>> {
    txns.chunks(TXNS_PER_ENTRY)
        .map(|chunk| {
            let members = chunk
                .iter()
                .map(LogCommand::encode)
                .collect::<Result<Vec<_>, _>>()?;
            *next += 1;
            Ok(Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), *next),
                payload: EntryPayload::Normal(LogCommand::batch(&members)?),
            })
        })
        .collect()
}

/// Applies each entry on its own, as Raft hands them over when they commit
/// one by one; returns the time spent and the revision of each transaction.
async fn apply_all(sm: &mut StateMachine, entries: Vec<Entry>) -> Result<(Duration, Vec<u64>)> {
    let mut spent = Duration::ZERO;
    let mut revisions = Vec::new();
    for entry in entries {
        let t = Instant::now();
        let results = sm.apply(vec![entry]).await.context("apply")?;
        spent += t.elapsed();
        for outcome in results.into_iter().flat_map(|r| r.outcomes) {
            let applied = outcome.map_err(|e| anyhow!("a transaction failed: {}", e.message))?;
            revisions.push(applied.revision);
        }
    }
    Ok((spent, revisions))
}

async fn round(args: &ApplyArgs) -> Result<Round> {
    let dir = tempfile::tempdir()?;
    let db = open_db(dir.path())?;
    let (mut sm, _store) = StateMachine::open(db, 1, 100_000, LogDurability::everything())
        .map_err(|e| anyhow!("open the state machine: {e}"))?;
    let mut next = 0;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    let setup = entries(
        vec![txn(vec![Op::Create {
            resource: "namespaces".into(),
            object: namespace,
        }])],
        &mut next,
    )?;
    apply_all(&mut sm, setup).await?;

    let pods: Vec<Value> = (0..args.pods).map(pod).collect();
    let creates: Vec<Command> = pods
        .chunks(args.per_txn)
        .map(|chunk| {
            txn(chunk
                .iter()
                .map(|p| Op::Create {
                    resource: "pods".into(),
                    object: p.clone(),
                })
                .collect())
        })
        .collect();
    let (create_time, create_revs) = apply_all(&mut sm, entries(creates, &mut next)?).await?;

    let mut binds = Vec::new();
    for (chunk, rev) in pods.chunks(args.per_txn).zip(&create_revs) {
        let mut ops = Vec::new();
        for (i, p) in chunk.iter().enumerate() {
            let name = p["metadata"]["name"].as_str().unwrap_or_default();
            let node = format!("node-{:04}", i % 500);
            ops.push(Op::Bind {
                namespace: "default".into(),
                name: name.to_string(),
                expected_rv: *rev,
                node: node.clone(),
            });
            let message = format!("Successfully assigned default/{name} to {node}");
            let event = rk_control_plane::controllers::event_object(
                p,
                "Normal",
                "Scheduled",
                &message,
                "default-scheduler",
            );
            ops.push(Op::Create {
                resource: "events".into(),
                object: event,
            });
        }
        binds.push(txn(ops));
    }
    let (bind_time, bind_revs) = apply_all(&mut sm, entries(binds, &mut next)?).await?;
    if bind_revs.len() != create_revs.len() {
        bail!(
            "{} binding transactions applied, {} expected",
            bind_revs.len(),
            create_revs.len()
        );
    }
    let per_pod = |d: Duration| d.as_secs_f64() * 1e6 / args.pods as f64;
    Ok(Round {
        create: per_pod(create_time),
        bind: per_pod(bind_time),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(args: &ApplyArgs) -> Result<()> {
    if args.pods == 0 || args.per_txn == 0 || args.rounds == 0 {
        bail!("--pods, --per-txn and --rounds must be at least 1");
    }
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        rounds.push(round(args).await?);
    }
    let create: Vec<f64> = rounds.iter().map(|r| r.create).collect();
    let bind: Vec<f64> = rounds.iter().map(|r| r.bind).collect();
    println!(
        "State machine apply (rk-bench apply): {} Pods, {} per transaction, {TXNS_PER_ENTRY} transactions per entry, one replica, in process",
        args.pods, args.per_txn
    );
    println!(
        "  create: {:.1} µs/Pod, binding + Scheduled Event: {:.1} µs/Pod (median of {} rounds; rounds: {})",
        median(create.clone()),
        median(bind.clone()),
        args.rounds,
        rounds
            .iter()
            .map(|r| format!("{:.1}/{:.1}", r.create, r.bind))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
