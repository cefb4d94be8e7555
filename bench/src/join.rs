//! `rk-bench join`: a replica joining a store that already holds many
//! objects. The store's log has been compacted into a snapshot, so the new
//! replica installs the snapshot and then catches up on the log after it.
//! Prints the snapshot's size, the time from `join` to the installed
//! snapshot and to a caught-up state, and the joining replica's peak RSS
//! (what an operator sizes a new machine for), beside etcd doing the same
//! (`--snapshot-count` as low, a member added with MemberAdd, caught up
//! once it has applied the leader's last index).

use crate::etcd::{self, EtcdCluster};
use crate::stats::peak_rss_kib;
use anyhow::{bail, Context, Result};
use futures::StreamExt;
use rk_client::Consistency;
use rk_testkit::Cluster;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct JoinArgs {
    /// ConfigMaps in the store before the replica joins.
    #[arg(long, default_value_t = 30_000)]
    pub objects: usize,
    /// Bytes of data in each ConfigMap.
    #[arg(long, default_value_t = 1024)]
    pub value_bytes: usize,
    /// The replicas' `--snapshot-every`: low enough that the log the
    /// joiner needs has been compacted away.
    #[arg(long, default_value_t = 2000)]
    pub snapshot_every: u64,
    /// Measure rk only.
    #[arg(long)]
    pub skip_etcd: bool,
}

/// The `bytes=` figure of the joiner's "installed a snapshot" log line.
fn installed_snapshot_bytes(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("installed a snapshot"))?;
    // The log is colored: strip the escape sequences before reading fields.
    let plain: String = {
        let mut out = String::with_capacity(line.len());
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    plain
        .split_whitespace()
        .find_map(|f| f.strip_prefix("bytes="))
        .and_then(|v| v.parse().ok())
}

/// What one system's join cost.
struct Joined {
    writes_per_second: f64,
    /// Join → snapshot installed (rk only: etcd does not say when).
    install_seconds: Option<f64>,
    caught_up_seconds: f64,
    peak_kib: u64,
    snapshot_bytes: Option<u64>,
}

/// Creates `n` objects through `create`, 32 in flight; returns writes/s.
async fn fill<F, Fut>(n: usize, create: F) -> Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let started = Instant::now();
    let mut creates = futures::stream::iter(0..n).map(create).buffer_unordered(32);
    while let Some(result) = creates.next().await {
        result?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Polls `done` every 20 ms until it is true; returns the seconds since
/// `from`, or fails after 300 s.
async fn seconds_until<F, Fut>(from: Instant, what: &str, mut done: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if done().await {
            return Ok(from.elapsed().as_secs_f64());
        }
        if from.elapsed() > Duration::from_secs(300) {
            bail!("{what} did not happen in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn rk_join(args: &JoinArgs) -> Result<Joined> {
    let every = args.snapshot_every.to_string();
    let mut cluster = Cluster::start_with(1, &["--snapshot-every", &every]);
    cluster
        .leader(Duration::from_secs(10))
        .await
        .context("the first replica elected no leader")?;
    let client = cluster.client();
    let value = "x".repeat(args.value_bytes);
    eprintln!("rk: writing {} ConfigMaps ...", args.objects);
    let writes_per_second = fill(args.objects, |i| {
        let client = client.clone();
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("join-{i}"), "namespace": "default"},
            "data": {"v": &value}});
        async move {
            client
                .create("configmaps", &object)
                .await
                .map(drop)
                .map_err(|e| anyhow::anyhow!("create a ConfigMap: {e}"))
        }
    })
    .await?;

    eprintln!("rk: joining a second replica ...");
    let joined = Instant::now();
    let joiner = cluster.add_join();
    let pid = cluster.replicas[joiner].pid().context("the joiner's pid")?;
    let install_seconds = seconds_until(joined, "rk's snapshot install", || {
        let installed = cluster.replicas[joiner].log().contains("installed a snapshot");
        async move { installed }
    })
    .await?;
    // Caught up: a local read on the joiner sees the last write.
    let local = cluster.client_for(joiner);
    let last = format!("join-{}", args.objects - 1);
    let caught_up_seconds = seconds_until(joined, "rk's catch-up", || async {
        local
            .get_opts("configmaps", "default", &last, Consistency::Local)
            .await
            .is_ok()
    })
    .await?;
    Ok(Joined {
        writes_per_second,
        install_seconds: Some(install_seconds),
        caught_up_seconds,
        peak_kib: peak_rss_kib(pid).context("the joiner's peak RSS")?,
        snapshot_bytes: installed_snapshot_bytes(&cluster.replicas[joiner].log()),
    })
}

async fn etcd_join(args: &JoinArgs) -> Result<Joined> {
    let every = args.snapshot_every.to_string();
    let mut cluster = EtcdCluster::start_with(1, false, &["--snapshot-count", &every]).await?;
    let leader = cluster.leader().await?;
    let kv = cluster.kv(leader).await?;
    let value = "x".repeat(args.value_bytes).into_bytes();
    eprintln!("etcd: writing {} keys ...", args.objects);
    let writes_per_second = fill(args.objects, |i| {
        etcd::put(&kv, format!("join-{i}"), value.clone())
    })
    .await?;
    eprintln!("etcd: adding a second member ...");
    let joined = Instant::now();
    let joiner = cluster.add_member().await?;
    let pid = cluster.pid(joiner).context("the new member's pid")?;
    // Caught up: the new member has applied everything the leader had
    // when it was added (the member change included).
    let target = cluster.status(leader).await?.raft_index;
    let caught_up_seconds = seconds_until(joined, "etcd's catch-up", || async {
        cluster
            .status(joiner)
            .await
            .is_ok_and(|s| s.raft_applied_index >= target)
    })
    .await?;
    Ok(Joined {
        writes_per_second,
        install_seconds: None,
        caught_up_seconds,
        peak_kib: peak_rss_kib(pid).context("the new member's peak RSS")?,
        snapshot_bytes: None,
    })
}

/// The rows printed, in the order [`figures`] gives them.
const FIGURES: [&str; 5] = [
    "writes/s while filling",
    "snapshot installed (size)",
    "join → snapshot installed",
    "join → caught up",
    "joiner's peak RSS (VmHWM)",
];

/// One system's figures, as printed; "-" for one it does not report.
fn figures(j: &Joined) -> [String; 5] {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    [
        format!("{:.0}/s", j.writes_per_second),
        or_dash(j.snapshot_bytes.map(|b| format!("{:.1} MB", b as f64 / 1e6))),
        or_dash(j.install_seconds.map(|s| format!("{s:.2} s"))),
        format!("{:.2} s", j.caught_up_seconds),
        format!("{:.0} MiB", j.peak_kib as f64 / 1024.0),
    ]
}

pub async fn run(args: &JoinArgs) -> Result<()> {
    let rk = rk_join(args).await?;
    let etcd = if args.skip_etcd {
        None
    } else {
        Some(etcd_join(args).await?)
    };
    println!(
        "Joining a store (rk-bench join): {} objects of {} B written by one member (32 in flight), then a second joins; rk --snapshot-every / etcd --snapshot-count {}; etcd plaintext",
        args.objects, args.value_bytes, args.snapshot_every
    );
    let rk = figures(&rk);
    let etcd = etcd.as_ref().map(figures);
    println!("{:<30} {:>12} {:>12}", "figure", "rk", "etcd");
    for (i, name) in FIGURES.iter().enumerate() {
        let peer = etcd.as_ref().map_or("-", |e| e[i].as_str());
        println!("{name:<30} {:>12} {peer:>12}", rk[i]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_size_is_read_from_a_colored_log_line() {
        let line = "\u{1b}[2m2026-11-28T18:17:25Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m installed a snapshot from the leader \u{1b}[3msnapshot\u{1b}[0m\u{1b}[2m=\u{1b}[0m27999-1 \u{1b}[3mbytes\u{1b}[0m\u{1b}[2m=\u{1b}[0m129939931";
        assert_eq!(
            installed_snapshot_bytes(&format!("other\n{line}\n")),
            Some(129_939_931)
        );
        assert_eq!(installed_snapshot_bytes("no such line"), None);
    }
}
