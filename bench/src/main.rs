//! `rk-bench`: rk's benchmarks, each printed beside a peer measured in the
//! same run on the same machine (these machines are shared and noisy, so
//! only same-run ratios mean much).
//!
//! `rk-bench store` measures the replicated store against etcd 3.4 (three
//! members each, on loopback; etcd plaintext, the targets' reference, and
//! etcd with mutual TLS like rk; the systems take turns, see `store.rs`):
//! sequential 1 KiB writes (p50/p99), 64 writes
//! in flight (throughput, p99), and leader `kill -9` → first successful
//! write (median over 9 kills: rk's failover is bimodal, about 350 ms
//! usually and about 600 ms when the first election splits, so 5 kills
//! gave a median that depended on luck). `RK_BENCH_TRACE=1` prints every
//! failed write attempt after a kill.
//!
//! `rk-bench pods` measures Pod start on a real node (create → Running,
//! the runtime's sandbox + container start beside crun or runc) and the
//! agent's memory.

mod apply;
mod etcd;
mod footprint;
mod join;
mod phases;
mod pods;
mod scheduler;
mod stats;
mod store;
mod summary;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::time::Duration;

// The replicas' allocator, so that `rk-bench apply` measures the state
// machine with the allocator it runs with in a replica.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "rk-bench", about = "rk benchmarks beside their peers")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replicated writes and failover: rk vs etcd.
    Store(store::StoreArgs),
    /// Pod start on a real node: rk vs crun/runc, and the agent's RSS.
    Pods(pods::PodsArgs),
    /// A replica's RSS with 100 Nodes and 1000 Pods; node loss → Pods Running elsewhere.
    Footprint,
    /// A replica joining a store of 30000 objects: snapshot install, catch-up, peak RSS.
    Join(join::JoinArgs),
    /// Scheduling throughput: 5000 simulated nodes, 10000 Pods, bindings in a 3-replica store.
    Scheduler(scheduler::SchedulerArgs),
    /// What the state machine spends applying Pod creations and bindings,
    /// in process (no Raft, no network).
    Apply(apply::ApplyArgs),
    /// Everything above, one after another, then one table of every figure
    /// beside its peer (needs root, etcd, runc/crun and podman).
    All,
}

async fn print_footprint() -> Result<()> {
    eprintln!("measuring a replica's footprint ...");
    let (before, after) = footprint::replica_rss().await?;
    eprintln!("measuring node loss ...");
    let loss = footprint::node_loss().await?;
    println!("Footprint and node loss (rk-bench footprint)");
    println!("  replica RSS: {before:.1} MiB empty, {after:.1} MiB with 100 Nodes and 1000 Pods (k3s server: 1.4-1.6 GB with a workload)");
    println!("  node killed (agent + containers) → its 4 Pods Running on the other node: {loss:.1} s (Kubernetes defaults: 40 s grace + 300 s toleration)");
    Ok(())
}

async fn print_scheduler(args: &scheduler::SchedulerArgs) -> Result<()> {
    eprintln!("measuring the scheduler ...");
    let f = scheduler::run(args).await?;
    print_scheduler_figures(&f, args);
    Ok(())
}

fn print_scheduler_figures(f: &scheduler::SchedulerFigures, args: &scheduler::SchedulerArgs) {
    println!("Scheduler (rk-bench scheduler): {} simulated nodes, {} Pods, bindings committed to a {}-replica store", f.nodes, f.pods, args.replicas);
    println!(
        "  {:.0} pods/s (first create → last binding: {:.2} s, of which creating the Pods {:.2} s); target >= 5000 pods/s (kube-scheduler CI floor at 5000 nodes: 680-810)",
        f.pods_per_second, f.total_seconds, f.create_seconds
    );
    match f.events_lag_seconds {
        Some(lag) => println!(
            "  all {} \"Scheduled\" Events were in the store {lag:.2} s after the last binding",
            f.scheduled_events
        ),
        None => println!(
            "  only {} of {} \"Scheduled\" Events were in the store 60 s after the last binding",
            f.scheduled_events, f.pods
        ),
    }
}

/// Every benchmark, each section's details as it finishes, then one table.
/// A section that fails is reported in the table and the rest still run.
async fn all() -> Result<()> {
    use summary::{ratio, Row};
    let mut rows: Vec<Row> = Vec::new();
    let msf = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let met = |ok: bool| Some(ok);

    let args = store::StoreArgs {
        skip_etcd_tls: true,
        ..Default::default()
    };
    match store::measure(&args).await {
        Ok(measured) => {
            store::print(&measured, &args);
            let (rk, e) = (&measured.rk, measured.etcd.as_ref());
            println!();
            if let Some(s) = &rk.seq {
                let mut r = Row::new("store: sequential 1 KiB write, p50");
                r.rk = msf(s.p50);
                r.target = "rk/etcd <= 1".into();
                if let Some(es) = e.and_then(|e| e.seq.as_ref()) {
                    r.peer = format!("etcd {}", msf(es.p50));
                    r.ratio = ratio(s.p50.as_secs_f64(), es.p50.as_secs_f64());
                    r.met = met(s.p50 <= es.p50);
                }
                rows.push(r);
            }
            if let Some((s, tput)) = &rk.conc {
                let mut r = Row::new(format!("store: {} writes in flight, throughput", args.in_flight));
                r.rk = format!("{tput:.0}/s");
                r.target = "rk/etcd >= 2".into();
                let mut p = Row::new(format!("store: {} writes in flight, p99", args.in_flight));
                p.rk = msf(s.p99);
                p.target = "rk/etcd <= 1".into();
                if let Some((es, etput)) = e.and_then(|e| e.conc.as_ref()) {
                    r.peer = format!("etcd {etput:.0}/s");
                    r.ratio = ratio(*tput, *etput);
                    r.met = met(*tput >= 2.0 * etput);
                    p.peer = format!("etcd {}", msf(es.p99));
                    p.ratio = ratio(s.p99.as_secs_f64(), es.p99.as_secs_f64());
                    p.met = met(s.p99 <= es.p99);
                }
                rows.push(r);
                rows.push(p);
            }
            if let Some(s) = &rk.failover {
                let mut r = Row::new(format!("leader kill -9 → first write, median of {}", args.kills));
                r.rk = msf(s.p50);
                r.target = "rk <= 500 ms".into();
                r.met = met(s.p50 <= Duration::from_millis(500));
                if let Some(es) = e.and_then(|e| e.failover.as_ref()) {
                    r.peer = format!("etcd {}", msf(es.p50));
                    r.ratio = ratio(s.p50.as_secs_f64(), es.p50.as_secs_f64());
                }
                rows.push(r);
            }
        }
        Err(e) => rows.push(Row::failed("store", &format!("{e:#}"))),
    }

    let sched = scheduler::SchedulerArgs::default();
    eprintln!("measuring the scheduler ...");
    match scheduler::run(&sched).await {
        Ok(f) => {
            print_scheduler_figures(&f, &sched);
            println!();
            let mut r = Row::new(format!(
                "scheduler: {} Pods on {} nodes, {} replicas",
                f.pods, f.nodes, sched.replicas
            ));
            r.rk = format!("{:.0} pods/s", f.pods_per_second);
            r.peer = "kube-scheduler CI floor 680-810 (published)".into();
            r.target = ">= 5000 pods/s".into();
            r.met = met(f.pods_per_second >= 5000.0);
            rows.push(r);
        }
        Err(e) => rows.push(Row::failed("scheduler", &format!("{e:#}"))),
    }

    match pods::measure(&pods::PodsArgs {
        pods: 50,
        rss_pods: 100,
        peer_runs: 50,
    })
    .await
    {
        Ok(f) => {
            pods::print(&f);
            println!();
            let mut r = Row::new("pod: create → Running, p50");
            r.rk = msf(f.start.p50);
            r.target = "<= 50 ms".into();
            r.met = met(f.start.p50 <= Duration::from_millis(50));
            if let Ok(p) = &f.podman {
                r.peer = format!("podman pod create + run {}", msf(p.p50));
                r.ratio = ratio(f.start.p50.as_secs_f64(), p.p50.as_secs_f64());
            }
            rows.push(r);
            let mut r = Row::new("runtime: sandbox + container start, p50");
            r.rk = msf(f.runtime.p50);
            r.target = "rk/peer <= 2".into();
            if let Ok((name, p)) = &f.peer {
                r.peer = format!("{name} bare {}", msf(p.p50));
                r.ratio = ratio(f.runtime.p50.as_secs_f64(), p.p50.as_secs_f64());
                r.met = met(f.runtime.p50.as_secs_f64() <= 2.0 * p.p50.as_secs_f64());
            }
            rows.push(r);
            let mib = |k: u64| k as f64 / 1024.0;
            if let (Some(idle), Some(busy)) = (f.rss_idle, f.rss_busy) {
                let mut r = Row::new("agent RSS: 0 Pods / 100 Pods");
                r.rk = format!("{:.1} / {:.1} MiB", mib(idle), mib(busy));
                r.target = "<= 20 MiB + 1 MiB per Pod".into();
                r.met = met(mib(idle) <= 20.0 && mib(busy) <= 20.0 + f.rss_pods as f64);
                rows.push(r);
            }
        }
        Err(e) => rows.push(Row::failed("pod start", &format!("{e:#}"))),
    }

    eprintln!("measuring a replica's footprint ...");
    match footprint::replica_rss().await {
        Ok((before, after)) => {
            let mut r = Row::new("replica RSS: empty / 100 Nodes + 1000 Pods");
            r.rk = format!("{before:.1} / {after:.1} MiB");
            r.peer = "k3s server 1.4-1.6 GB (published)".into();
            rows.push(r);
        }
        Err(e) => rows.push(Row::failed("replica RSS", &format!("{e:#}"))),
    }
    eprintln!("measuring node loss ...");
    match footprint::node_loss().await {
        Ok(secs) => {
            let mut r = Row::new("node killed → its Pods Running elsewhere");
            r.rk = format!("{secs:.1} s");
            r.peer = "Kubernetes defaults 40 s + 300 s".into();
            r.target = "<= 10 s".into();
            r.met = met(secs <= 10.0);
            rows.push(r);
        }
        Err(e) => rows.push(Row::failed("node loss", &format!("{e:#}"))),
    }

    println!(
        "rk-bench all: every figure beside its peer from the same run (or a published figure where marked)"
    );
    print!("{}", summary::render(&rows));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    rk_client::tls::init_crypto();
    let cli = Cli::parse();
    let args = match cli.cmd {
        Some(Cmd::Store(a)) => a,
        Some(Cmd::Pods(a)) => return pods::run(&a).await,
        Some(Cmd::Footprint) => return print_footprint().await,
        Some(Cmd::Join(a)) => return join::run(&a).await,
        Some(Cmd::Scheduler(a)) => return print_scheduler(&a).await,
        Some(Cmd::Apply(a)) => return apply::run(&a).await,
        Some(Cmd::All) => return all().await,
        None => store::StoreArgs::default(),
    };
    let measured = store::measure(&args).await?;
    store::print(&measured, &args);
    Ok(())
}
