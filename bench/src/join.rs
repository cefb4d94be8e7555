//! `rk-bench join`: a replica joining a store that already holds many
//! objects. The store's log has been compacted into a snapshot, so the new
//! replica installs the snapshot and then catches up on the log after it.
//! Prints the snapshot's size, the time from `join` to the installed
//! snapshot and to a caught-up state, and the joining replica's peak RSS
//! (what an operator sizes a new machine for).

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
}

/// A process's peak RSS (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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

pub async fn run(args: &JoinArgs) -> Result<()> {
    let every = args.snapshot_every.to_string();
    let mut cluster = Cluster::start_with(1, &["--snapshot-every", &every]);
    cluster
        .leader(Duration::from_secs(10))
        .await
        .context("the first replica elected no leader")?;
    let client = cluster.client();
    let value = "x".repeat(args.value_bytes);
    eprintln!("writing {} ConfigMaps ...", args.objects);
    let written = Instant::now();
    let mut creates = futures::stream::iter(0..args.objects)
        .map(|i| {
            let client = client.clone();
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("join-{i}"), "namespace": "default"},
                "data": {"v": &value}});
            async move { client.create("configmaps", &object).await }
        })
        .buffer_unordered(32);
    while let Some(result) = creates.next().await {
        result.context("create a ConfigMap")?;
    }
    let write_seconds = written.elapsed().as_secs_f64();
    let (_, revision) = client
        .list("configmaps", &Default::default())
        .await
        .context("list the ConfigMaps")?;

    eprintln!("joining a second replica ...");
    let joined = Instant::now();
    let joiner = cluster.add_join();
    let pid = cluster.replicas[joiner].pid().context("the joiner's pid")?;
    let deadline = joined + Duration::from_secs(300);
    let install_seconds = loop {
        if cluster.replicas[joiner].log().contains("installed a snapshot") {
            break joined.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            bail!(
                "the joiner installed no snapshot in 300 s; its log:\n{}",
                cluster.replicas[joiner].log()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Caught up: a local read on the joiner sees the last write.
    let local = cluster.client_for(joiner);
    let last = format!("join-{}", args.objects - 1);
    let caught_up_seconds = loop {
        if local
            .get_opts("configmaps", "default", &last, Consistency::Local)
            .await
            .is_ok()
        {
            break joined.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            bail!("the joiner did not catch up in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let peak = peak_rss_kib(pid).context("the joiner's peak RSS")?;
    let snapshot = installed_snapshot_bytes(&cluster.replicas[joiner].log());

    println!(
        "Joining a store (rk-bench join): {} ConfigMaps of {} B (revision {revision}), --snapshot-every {}",
        args.objects, args.value_bytes, args.snapshot_every
    );
    println!(
        "  written in {write_seconds:.1} s ({:.0} writes/s, 32 in flight, one replica)",
        args.objects as f64 / write_seconds
    );
    match snapshot {
        Some(bytes) => println!("  snapshot installed: {:.1} MB", bytes as f64 / 1e6),
        None => println!("  snapshot installed: size not found in the joiner's log"),
    }
    println!("  join → snapshot installed: {install_seconds:.2} s; → caught up (a local read sees the last write): {caught_up_seconds:.2} s");
    println!("  joiner's peak RSS: {:.0} MiB", peak as f64 / 1024.0);
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
