//! `rk-bench`: rk's benchmarks, each printed beside a peer measured in the
//! same run on the same machine (these machines are shared and noisy, so
//! only same-run ratios mean much).
//!
//! `rk-bench store` measures the replicated store against etcd 3.4 (three
//! members each, on loopback; etcd plaintext, the targets' reference, and
//! etcd with mutual TLS like rk): sequential 1 KiB writes (p50/p99), 64 writes
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
mod phases;
mod pods;
mod scheduler;
mod stats;
mod summary;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rk_testkit::Cluster;
use serde_json::json;
use stats::Summary;
use std::time::{Duration, Instant};

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
    Store(StoreArgs),
    /// Pod start on a real node: rk vs crun/runc, and the agent's RSS.
    Pods(pods::PodsArgs),
    /// A replica's RSS with 100 Nodes and 1000 Pods; node loss → Pods Running elsewhere.
    Footprint,
    /// Scheduling throughput: 5000 simulated nodes, 10000 Pods, bindings in a 3-replica store.
    Scheduler(scheduler::SchedulerArgs),
    /// What the state machine spends applying Pod creations and bindings,
    /// in process (no Raft, no network).
    Apply(apply::ApplyArgs),
    /// Everything above, one after another, then one table of every figure
    /// beside its peer (needs root, etcd, runc/crun and podman).
    All,
}

#[derive(clap::Args, Clone)]
struct StoreArgs {
    /// Sequential writes per system.
    #[arg(long, default_value_t = 2000)]
    sequential: usize,
    /// Writes in the concurrent phase.
    #[arg(long, default_value_t = 10000)]
    concurrent: usize,
    /// Writes in flight in the concurrent phase.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Leader kills for the failover figure.
    #[arg(long, default_value_t = 9)]
    kills: usize,
    /// Measure rk only.
    #[arg(long)]
    skip_etcd: bool,
    /// Measure etcd plaintext only, not also with mutual TLS.
    #[arg(long)]
    skip_etcd_tls: bool,
    /// Replicas per system (failover needs at least 3).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
}

impl Default for StoreArgs {
    fn default() -> Self {
        StoreArgs {
            sequential: 2000,
            concurrent: 10000,
            in_flight: 64,
            kills: 9,
            skip_etcd: false,
            skip_etcd_tls: false,
            replicas: 3,
        }
    }
}

fn payload() -> String {
    // 1 KiB of value bytes.
    "x".repeat(1024)
}

#[derive(Default)]
struct StoreFigures {
    seq: Option<Summary>,
    conc: Option<(Summary, f64)>,
    /// CPU time all members used per write in the concurrent phase: what
    /// a write costs, whatever else the 2 cores were doing meanwhile.
    conc_cpu_per_write: Option<Duration>,
    failover: Option<Summary>,
}

// ------------------------------------------------------------------ rk

fn rk_object(name: &str, value: &str) -> serde_json::Value {
    json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":"default"},"data":{"v":value}})
}

async fn rk_store(args: &StoreArgs) -> Result<StoreFigures> {
    let mut cluster = Cluster::start(args.replicas);
    let mut figs = StoreFigures::default();
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .context("rk leader")?;
    let write = |c: rk_client::Client, value: String| {
        move |key: String| {
            let c = c.clone();
            let value = value.clone();
            async move {
                c.create("configmaps", &rk_object(&key, &value)).await?;
                Ok(())
            }
        }
    };
    let c = cluster.client_for(leader);
    let put = write(c.clone(), payload());
    // Warm up connections and caches.
    phases::sequential(50, "warm", &put).await?;
    figs.seq = Some(phases::sequential(args.sequential, "seq", &put).await?);
    let cpu = stats::CpuMeter::start(cluster.replicas.iter().filter_map(|r| r.pid()).collect());
    figs.conc = Some(phases::concurrent(args.concurrent, args.in_flight, put).await?);
    figs.conc_cpu_per_write = Some(cpu.per_write(args.concurrent));

    let mut failovers = vec![];
    for k in 0..args.kills {
        let leader = cluster
            .leader(Duration::from_secs(20))
            .await
            .context("rk leader before kill")?;
        let survivor = (leader + 1) % 3;
        let put = write(cluster.client_for(survivor), "x".into());
        // Make sure the survivor's connection is warm.
        put(format!("pre-{k}")).await?;
        cluster.kill(leader);
        let killed = Instant::now();
        failovers.push(phases::first_write_after(killed, k, "rk", &put).await?);
        let new_leader = cluster.leader(Duration::from_secs(5)).await;
        eprintln!(
            "  rk kill {k}: killed replica {leader}, first write after {:?}, new leader {new_leader:?}",
            killed.elapsed()
        );
        cluster.restart(leader);
        // Let the restarted member catch up before the next kill.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    figs.failover = Some(Summary::of(&mut failovers));
    Ok(figs)
}

// ------------------------------------------------------------------ etcd

async fn etcd_store(args: &StoreArgs, tls: bool) -> Result<StoreFigures> {
    let mut cluster = etcd::EtcdCluster::start(3, tls).await?;
    let mut figs = StoreFigures::default();
    let leader = cluster.leader().await?;
    let write = |kv: etcd::Kv, value: Vec<u8>| {
        move |key: String| {
            let kv = kv.clone();
            let value = value.clone();
            async move { etcd::put(&kv, key, value).await }
        }
    };
    let put = write(cluster.kv(leader).await?, payload().into_bytes());
    phases::sequential(50, "warm", &put).await?;
    figs.seq = Some(phases::sequential(args.sequential, "seq", &put).await?);
    let cpu = stats::CpuMeter::start(cluster.pids());
    figs.conc = Some(phases::concurrent(args.concurrent, args.in_flight, put).await?);
    figs.conc_cpu_per_write = Some(cpu.per_write(args.concurrent));

    let mut failovers = vec![];
    for k in 0..args.kills {
        let leader = cluster.leader().await?;
        let survivor = (leader + 1) % 3;
        let put = write(cluster.kv(survivor).await?, b"x".to_vec());
        put(format!("pre-{k}")).await?;
        cluster.kill(leader);
        failovers.push(phases::first_write_after(Instant::now(), k, "etcd", &put).await?);
        cluster.restart(leader)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    figs.failover = Some(Summary::of(&mut failovers));
    Ok(figs)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The store figures: rk, etcd plaintext (the targets' reference, as
/// measured in peers.md) and, when measured, etcd with mutual TLS on client
/// and peer traffic, as kubeadm deploys it and as rk always runs.
fn print_store(
    rk: &StoreFigures,
    etcd: Option<&StoreFigures>,
    etcd_tls: Option<&StoreFigures>,
    args: &StoreArgs,
) {
    println!(
        "rk-bench store: {} replicas each on loopback; rk over mutual TLS; etcd 3.4 plaintext{}; 1 KiB values",
        args.replicas,
        if etcd_tls.is_some() { " and with mutual TLS" } else { "" }
    );
    let tls = etcd_tls.is_some();
    if tls {
        println!(
            "{:<44} {:>14} {:>14} {:>10} {:>14} {:>10}   target",
            "figure", "rk", "etcd", "rk/etcd", "etcd TLS", "rk/TLS"
        );
    } else {
        println!(
            "{:<44} {:>14} {:>14} {:>10}   target",
            "figure", "rk", "etcd", "rk/etcd"
        );
    }
    let row = |name: &str,
               r: Option<f64>,
               e: Option<f64>,
               et: Option<f64>,
               fmt: &dyn Fn(f64) -> String,
               target: &str| {
        let ratio = |e: Option<f64>| match (r, e) {
            (Some(r), Some(e)) if e > 0.0 => format!("{:.2}", r / e),
            _ => "-".into(),
        };
        let shown = |v: Option<f64>| v.map(fmt).unwrap_or_else(|| "-".into());
        let tls_part = if tls {
            format!(" {:>14} {:>10}", shown(et), ratio(et))
        } else {
            String::new()
        };
        println!(
            "{:<44} {:>14} {:>14} {:>10}{}   {}",
            name,
            shown(r),
            shown(e),
            ratio(e),
            tls_part,
            target
        );
    };
    let msf = |v: f64| format!("{v:.2} ms");
    let d = |s: Option<&Summary>, f: fn(&Summary) -> Duration| s.map(|s| f(s).as_secs_f64() * 1000.0);
    let peers = [etcd, etcd_tls];
    let seq = |f: fn(&Summary) -> Duration| peers.map(|p| d(p.and_then(|e| e.seq.as_ref()), f));
    let [e, et] = seq(|s| s.p50);
    row(
        &format!("sequential write p50 (n={})", args.sequential),
        d(rk.seq.as_ref(), |s| s.p50),
        e,
        et,
        &msf,
        "rk/etcd <= 1",
    );
    let [e, et] = seq(|s| s.p99);
    row(
        "sequential write p99",
        d(rk.seq.as_ref(), |s| s.p99),
        e,
        et,
        &msf,
        "",
    );
    let [e, et] = peers.map(|p| p.and_then(|e| e.conc.as_ref()).map(|c| c.1));
    row(
        &format!("{} in flight: throughput (writes/s)", args.in_flight),
        rk.conc.as_ref().map(|c| c.1),
        e,
        et,
        &|v| format!("{v:.0}/s"),
        "rk/etcd >= 2",
    );
    let p99 = |c: &(Summary, f64)| c.0.p99.as_secs_f64() * 1000.0;
    let [e, et] = peers.map(|p| p.and_then(|e| e.conc.as_ref()).map(p99));
    row(
        &format!("{} in flight: p99", args.in_flight),
        rk.conc.as_ref().map(p99),
        e,
        et,
        &msf,
        "rk/etcd <= 1",
    );
    let cpu = |f: &StoreFigures| f.conc_cpu_per_write.map(|c| c.as_secs_f64() * 1e6);
    let [e, et] = peers.map(|p| p.and_then(cpu));
    row(
        &format!("{} in flight: CPU per write, all members", args.in_flight),
        cpu(rk),
        e,
        et,
        &|v| format!("{v:.0} us"),
        "",
    );
    let [e, et] = peers.map(|p| d(p.and_then(|e| e.failover.as_ref()), |s| s.p50));
    row(
        &format!("leader kill -9 -> first write, median (n={})", args.kills),
        d(rk.failover.as_ref(), |s| s.p50),
        e,
        et,
        &msf,
        "rk <= 500 ms",
    );
    for (who, figs) in [("rk", Some(rk)), ("etcd", etcd), ("etcd TLS", etcd_tls)] {
        if let Some(f) = figs.and_then(|f| f.failover.as_ref()) {
            println!(
                "  {who} failovers: {}",
                f.samples.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
            );
        }
    }
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

    let args = StoreArgs::default();
    eprintln!("measuring rk ...");
    match rk_store(&args).await {
        Ok(rk) => {
            eprintln!("measuring etcd ...");
            let etcd = etcd_store(&args, false).await;
            if let Err(e) = &etcd {
                eprintln!("etcd: {e:#}");
            }
            let etcd = etcd.ok();
            print_store(&rk, etcd.as_ref(), None, &args);
            println!();
            let e = etcd.as_ref();
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
        Some(Cmd::Scheduler(a)) => return print_scheduler(&a).await,
        Some(Cmd::Apply(a)) => return apply::run(&a).await,
        Some(Cmd::All) => return all().await,
        None => StoreArgs::default(),
    };
    eprintln!("measuring rk ...");
    let rk = rk_store(&args).await?;
    let etcd = if args.skip_etcd {
        None
    } else {
        eprintln!("measuring etcd ...");
        Some(etcd_store(&args, false).await?)
    };
    let etcd_tls = if args.skip_etcd || args.skip_etcd_tls {
        None
    } else {
        eprintln!("measuring etcd with mutual TLS ...");
        Some(etcd_store(&args, true).await?)
    };
    print_store(&rk, etcd.as_ref(), etcd_tls.as_ref(), &args);
    Ok(())
}
