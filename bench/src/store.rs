//! `rk-bench store`: rk's replicated store beside etcd 3.4, three members
//! each on loopback: sequential 1 KiB writes (p50/p99), 64 writes in
//! flight (throughput, p99, CPU per write), and leader `kill -9` → first
//! successful write.
//!
//! Every system under test runs for the whole measurement, and the
//! latency and throughput phases take turns in rounds (rk, etcd, etcd with
//! TLS, then the next round starting one system later). This machine's
//! speed drifts by a fifth or more within minutes; measured one after the
//! other, rk and etcd met different machines, and the same build's ratio
//! to etcd moved from run to run by more than most changes it was meant
//! to judge. Taking turns puts every system through the same drift. A
//! system that is not being measured is idle but for its heartbeats.

use crate::etcd::{self, EtcdCluster};
use crate::phases::{self, Write};
use crate::stats::{self, Summary};
use anyhow::{Context, Result};
use rk_testkit::Cluster;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// Sequential writes per system, spread over the rounds.
    #[arg(long, default_value_t = 2000)]
    pub sequential: usize,
    /// Writes in the concurrent phase per system, spread over the rounds.
    #[arg(long, default_value_t = 10000)]
    pub concurrent: usize,
    /// Writes in flight in the concurrent phase.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Turns each system takes at each phase (see the module docs).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Leader kills for the failover figure.
    #[arg(long, default_value_t = 9)]
    pub kills: usize,
    /// Measure rk only.
    #[arg(long)]
    pub skip_etcd: bool,
    /// Measure etcd plaintext only, not also with mutual TLS.
    #[arg(long)]
    pub skip_etcd_tls: bool,
    /// Replicas per system (failover needs at least 3).
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
}

impl Default for StoreArgs {
    fn default() -> Self {
        StoreArgs {
            sequential: 2000,
            concurrent: 10000,
            in_flight: 64,
            rounds: 5,
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
pub struct StoreFigures {
    pub seq: Option<Summary>,
    /// CPU time all members used per write in the sequential phase.
    pub seq_cpu_per_write: Option<Duration>,
    /// Latencies, and writes per second over the rounds' summed time.
    pub conc: Option<(Summary, f64)>,
    /// CPU time all members used per write in the concurrent phase: what
    /// a write costs, whatever else the 2 cores were doing meanwhile.
    pub conc_cpu_per_write: Option<Duration>,
    pub failover: Option<Summary>,
}

/// The figures of rk, etcd plaintext and etcd with mutual TLS (the last
/// two unless skipped).
pub struct Measured {
    pub rk: StoreFigures,
    pub etcd: Option<StoreFigures>,
    pub etcd_tls: Option<StoreFigures>,
}

fn rk_object(name: &str, value: &str) -> serde_json::Value {
    json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":"default"},"data":{"v":value}})
}

fn rk_writer(c: rk_client::Client, value: String) -> Write {
    phases::writer(move |key: String| {
        let c = c.clone();
        let object = rk_object(&key, &value);
        async move {
            c.create("configmaps", &object).await?;
            Ok(())
        }
    })
}

fn etcd_writer(kv: etcd::Kv, value: Vec<u8>) -> Write {
    phases::writer(move |key: String| {
        let kv = kv.clone();
        let value = value.clone();
        async move { etcd::put(&kv, key, value).await }
    })
}

enum Members {
    Rk(Cluster),
    Etcd(EtcdCluster),
}

/// One system under test and what was measured of it so far.
struct System {
    name: &'static str,
    members: Members,
    /// Writes to the leader.
    write: Write,
    seq: Vec<Duration>,
    seq_cpu: Duration,
    conc: Vec<Duration>,
    conc_time: Duration,
    conc_cpu: Duration,
}

impl System {
    async fn rk(args: &StoreArgs) -> Result<System> {
        let cluster = Cluster::start(args.replicas);
        let leader = cluster
            .leader(Duration::from_secs(10))
            .await
            .context("rk elected no leader")?;
        let write = rk_writer(cluster.client_for(leader), payload());
        Ok(System::new("rk", Members::Rk(cluster), write))
    }

    async fn etcd(tls: bool) -> Result<System> {
        let cluster = EtcdCluster::start(3, tls).await?;
        let leader = cluster.leader().await?;
        let write = etcd_writer(cluster.kv(leader).await?, payload().into_bytes());
        let name = if tls { "etcd TLS" } else { "etcd" };
        Ok(System::new(name, Members::Etcd(cluster), write))
    }

    fn new(name: &'static str, members: Members, write: Write) -> System {
        System {
            name,
            members,
            write,
            seq: vec![],
            seq_cpu: Duration::ZERO,
            conc: vec![],
            conc_time: Duration::ZERO,
            conc_cpu: Duration::ZERO,
        }
    }

    fn pids(&self) -> Vec<u32> {
        match &self.members {
            Members::Rk(c) => c.replicas.iter().filter_map(|r| r.pid()).collect(),
            Members::Etcd(c) => c.pids(),
        }
    }

    async fn sequential_turn(&mut self, n: usize, round: usize) -> Result<()> {
        let cpu = stats::CpuMeter::start(self.pids());
        let lat = phases::sequential(n, &format!("seq{round}"), &self.write)
            .await
            .with_context(|| format!("{}: sequential writes", self.name))?;
        self.seq_cpu += cpu.used();
        self.seq.extend(lat);
        Ok(())
    }

    async fn concurrent_turn(&mut self, n: usize, in_flight: usize, round: usize) -> Result<()> {
        let cpu = stats::CpuMeter::start(self.pids());
        let (lat, took) = phases::concurrent(n, in_flight, &format!("conc{round}"), &self.write)
            .await
            .with_context(|| format!("{}: concurrent writes", self.name))?;
        self.conc_cpu += cpu.used();
        self.conc.extend(lat);
        self.conc_time += took;
        Ok(())
    }

    /// Kills the leader `kills` times; each time, the time from the kill to
    /// the first write a survivor acknowledges.
    async fn failovers(&mut self, kills: usize) -> Result<Vec<Duration>> {
        let mut took = vec![];
        for k in 0..kills {
            took.push(match &mut self.members {
                Members::Rk(cluster) => rk_failover(cluster, k).await?,
                Members::Etcd(cluster) => etcd_failover(cluster, k).await?,
            });
        }
        Ok(took)
    }

    fn figures(mut self, failovers: Option<Vec<Duration>>) -> StoreFigures {
        let writes = self.conc.len();
        StoreFigures {
            seq_cpu_per_write: Some(self.seq_cpu.div_f64(self.seq.len().max(1) as f64)),
            seq: Some(Summary::of(&mut self.seq)),
            conc: Some((
                Summary::of(&mut self.conc),
                writes as f64 / self.conc_time.as_secs_f64().max(1e-9),
            )),
            conc_cpu_per_write: Some(self.conc_cpu.div_f64(writes.max(1) as f64)),
            failover: failovers.map(|mut f| Summary::of(&mut f)),
        }
    }
}

async fn rk_failover(cluster: &mut Cluster, k: usize) -> Result<Duration> {
    let leader = cluster
        .leader(Duration::from_secs(20))
        .await
        .context("rk leader before kill")?;
    let survivor = (leader + 1) % cluster.replicas.len();
    let write = rk_writer(cluster.client_for(survivor), "x".into());
    // Make sure the survivor's connection is warm.
    write(format!("pre-{k}")).await?;
    cluster.kill(leader);
    let killed = Instant::now();
    let took = phases::first_write_after(killed, k, "rk", &write).await?;
    let new_leader = cluster.leader(Duration::from_secs(5)).await;
    eprintln!(
        "  rk kill {k}: killed replica {leader}, first write after {took:?}, new leader {new_leader:?}"
    );
    cluster.restart(leader);
    // Let the restarted member catch up before the next kill.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(took)
}

async fn etcd_failover(cluster: &mut EtcdCluster, k: usize) -> Result<Duration> {
    let leader = cluster.leader().await?;
    let survivor = (leader + 1) % cluster.len();
    let write = etcd_writer(cluster.kv(survivor).await?, b"x".to_vec());
    write(format!("pre-{k}")).await?;
    cluster.kill(leader);
    let took = phases::first_write_after(Instant::now(), k, "etcd", &write).await?;
    cluster.restart(leader)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(took)
}

/// Starts every system, runs the phases in turns, then the failovers one
/// system at a time.
pub async fn measure(args: &StoreArgs) -> Result<Measured> {
    let rounds = args.rounds.max(1);
    eprintln!("starting rk ...");
    let mut systems = vec![System::rk(args).await?];
    if !args.skip_etcd {
        eprintln!("starting etcd ...");
        systems.push(System::etcd(false).await?);
        if !args.skip_etcd_tls {
            eprintln!("starting etcd with mutual TLS ...");
            systems.push(System::etcd(true).await?);
        }
    }
    for s in &mut systems {
        // Warm up connections and caches.
        phases::sequential(50, "warm", &s.write)
            .await
            .with_context(|| format!("{}: warm-up", s.name))?;
    }
    eprintln!("sequential writes, {rounds} rounds ...");
    for round in 0..rounds {
        let share = share_of(args.sequential, rounds, round);
        for i in turn_order(round, systems.len()) {
            systems[i].sequential_turn(share, round).await?;
        }
    }
    eprintln!("{} writes in flight, {rounds} rounds ...", args.in_flight);
    for round in 0..rounds {
        let share = share_of(args.concurrent, rounds, round);
        for i in turn_order(round, systems.len()) {
            systems[i].concurrent_turn(share, args.in_flight, round).await?;
        }
    }
    let mut figures = vec![];
    for mut s in systems {
        let failovers = if args.kills > 0 {
            eprintln!("{}: leader kills ...", s.name);
            Some(s.failovers(args.kills).await?)
        } else {
            None
        };
        figures.push(s.figures(failovers));
    }
    let mut figures = figures.into_iter();
    let rk = figures.next().context("rk was measured")?;
    Ok(Measured {
        rk,
        etcd: figures.next(),
        etcd_tls: figures.next(),
    })
}

/// Round `round`'s part of `total` writes split over `rounds`.
fn share_of(total: usize, rounds: usize, round: usize) -> usize {
    total / rounds + usize::from(round < total % rounds)
}

/// The order in which `systems` systems take their turns in `round`: each
/// round starts one system later, so that none always goes first (right
/// after a phase change) or always follows the same system.
fn turn_order(round: usize, systems: usize) -> impl Iterator<Item = usize> {
    (0..systems).map(move |i| (i + round) % systems)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The store figures: rk, etcd plaintext (the targets' reference, as
/// measured in peers.md) and, when measured, etcd with mutual TLS on client
/// and peer traffic, as kubeadm deploys it and as rk always runs.
pub fn print(measured: &Measured, args: &StoreArgs) {
    let Measured { rk, etcd, etcd_tls } = measured;
    let (etcd, etcd_tls) = (etcd.as_ref(), etcd_tls.as_ref());
    println!(
        "rk-bench store: {} replicas each on loopback; rk over mutual TLS; etcd 3.4 plaintext{}; 1 KiB values; phases in {} rounds taken in turn",
        args.replicas,
        if etcd_tls.is_some() { " and with mutual TLS" } else { "" },
        args.rounds.max(1)
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
    // One row: the figure `of` each system, shown with `fmt`.
    let peers = [etcd, etcd_tls];
    let figure =
        |name: &str, of: &dyn Fn(&StoreFigures) -> Option<f64>, fmt: &dyn Fn(f64) -> String, target: &str| {
            let [e, et] = peers.map(|p| p.and_then(of));
            row(name, of(rk), e, et, fmt, target);
        };
    let msf = |v: f64| format!("{v:.2} ms");
    let usf = |v: f64| format!("{v:.0} us");
    let ms_of = |d: Duration| d.as_secs_f64() * 1000.0;
    let us_of = |d: Duration| d.as_secs_f64() * 1e6;
    figure(
        &format!("sequential write p50 (n={})", args.sequential),
        &|f| f.seq.as_ref().map(|s| ms_of(s.p50)),
        &msf,
        "rk/etcd <= 1",
    );
    figure(
        "sequential write p99",
        &|f| f.seq.as_ref().map(|s| ms_of(s.p99)),
        &msf,
        "",
    );
    figure(
        "sequential: CPU per write, all members",
        &|f| f.seq_cpu_per_write.map(us_of),
        &usf,
        "",
    );
    figure(
        &format!("{} in flight: throughput (writes/s)", args.in_flight),
        &|f| f.conc.as_ref().map(|c| c.1),
        &|v| format!("{v:.0}/s"),
        "rk/etcd >= 2",
    );
    figure(
        &format!("{} in flight: p99", args.in_flight),
        &|f| f.conc.as_ref().map(|c| ms_of(c.0.p99)),
        &msf,
        "rk/etcd <= 1",
    );
    figure(
        &format!("{} in flight: CPU per write, all members", args.in_flight),
        &|f| f.conc_cpu_per_write.map(us_of),
        &usf,
        "",
    );
    figure(
        &format!("leader kill -9 -> first write, median (n={})", args.kills),
        &|f| f.failover.as_ref().map(|s| ms_of(s.p50)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rounds_share_out_every_write() {
        for (total, rounds) in [(2000, 5), (10000, 5), (7, 3), (2, 5), (0, 4)] {
            let shares: Vec<usize> = (0..rounds).map(|r| share_of(total, rounds, r)).collect();
            assert_eq!(
                shares.iter().sum::<usize>(),
                total,
                "{total} over {rounds}: {shares:?}"
            );
            let (min, max) = (shares.iter().min(), shares.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "even: {shares:?}");
        }
    }

    #[test]
    fn every_system_takes_one_turn_per_round_and_each_goes_first_in_turn() {
        let firsts: Vec<usize> = (0..3)
            .map(|round| {
                let mut order: Vec<usize> = turn_order(round, 3).collect();
                let first = order[0];
                order.sort();
                assert_eq!(order, vec![0, 1, 2]);
                first
            })
            .collect();
        assert_eq!(firsts, vec![0, 1, 2]);
    }
}
