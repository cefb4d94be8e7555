//! Footprint and node loss: a replica's RSS holding 100 Nodes and 1000
//! Pods, and the time from a node's death (agent and containers killed)
//! until its Pods run again elsewhere.

use crate::stats::rss_kib;
use anyhow::{bail, Context, Result};
use rk_testkit::agent::BUSYBOX;
use rk_testkit::Cluster;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// RSS (MiB) of a single replica before and after it holds 100 Nodes and 1000 Pods.
pub async fn replica_rss() -> Result<(f64, f64)> {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    let pid = cluster.replicas[0].pid().context("replica pid")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
    for i in 0..100 {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("fake-{i}"), "labels": {"kubernetes.io/hostname": format!("fake-{i}")}},
            "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}, "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}});
        c.create("nodes", &node).await?;
    }
    for i in 0..1000 {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p-{i}"), "labels": {"app": "footprint"}},
            "spec": {"containers": [{"name": "c", "image": BUSYBOX, "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}});
        c.create("pods", &pod).await?;
    }
    // Let the scheduler bind them and the state settle.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (pods, _) = c.list("pods", &Default::default()).await?;
        if pods
            .iter()
            .all(|p| p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()))
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the scheduler did not bind 1000 Pods within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
    Ok((before, after))
}

/// Seconds from killing a node (agent + containers) until all of a
/// 4-replica Deployment runs on the other node.
pub async fn node_loss() -> Result<f64> {
    let cluster = Cluster::start(1);
    let mut a = cluster.add_agent(&[]);
    let b = cluster.add_agent(&[]);
    let c = cluster.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c
        .list("nodes", &Default::default())
        .await
        .map(|(n, _)| n.len())
        .unwrap_or(0)
        < 2
    {
        if Instant::now() > deadline {
            bail!("agents did not register");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "loss"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "loss"}},
                 "template": {"metadata": {"labels": {"app": "loss"}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}}});
    c.create("deployments", &d).await?;
    let running = |pods: &[Value], node: Option<&str>| {
        pods.iter()
            .filter(|p| p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| node.is_none_or(|n| p["spec"]["nodeName"] == n))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (pods, _) = c.list("pods", &Default::default()).await?;
        if running(&pods, None) == 4 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the Deployment did not run");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.kill();
    a.clean_runtime();
    let t = Instant::now();
    loop {
        let (pods, _) = c.list("pods", &Default::default()).await?;
        if running(&pods, Some(&b.name)) == 4 {
            return Ok(t.elapsed().as_secs_f64());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("the Pods did not move within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
