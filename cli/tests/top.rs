//! `rkctl top` against a real replica and a real agent running a busybox
//! Pod that burns CPU and holds memory; and a node whose agent never
//! answers, which must show as `<unknown>` without holding up the rest.
//! Needs root (the agent runs containers).

mod common;

use common::{ok, rk};
use rk_testkit::agent::{eventually, BUSYBOX};
use rk_testkit::Cluster;
use serde_json::json;
use std::time::{Duration, Instant};

/// `NAME CPU MEMORY...` cells of the row starting with `name`.
fn row<'a>(table: &'a str, name: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
}

fn number(cell: &str, unit: &str) -> u64 {
    cell.strip_suffix(unit)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{cell:?} is not a number of {unit}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_a_busy_pod_and_the_nodes() {
    let cluster = Cluster::start(1);
    let agent = cluster.add_agent(&[]);
    let conf = cluster.admin_conf();
    let c = cluster.client();
    let logs = || format!("{}\n==== agent ====\n{}", cluster.logs(), agent.log());

    // About 8 MB held in a shell variable, and a loop that spins most of
    // the time (bounded, so it cannot starve a 2-core machine).
    let script = "a=$(head -c 8000000 /dev/zero | tr '\\0' x); \
                  while true; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.05; done";
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "burner", "labels": {"app": "burn"}},
        "spec": {"nodeName": agent.name, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "spin", "image": BUSYBOX, "command": ["sh", "-c", script]}]}});
    c.create("pods", &pod).await.expect("create pod");

    // A node whose agent accepts connections and never says a word: the
    // replica must give up on it after its per-node timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    c.create(
        "nodes",
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "silent"}}),
    )
    .await
    .expect("create node");
    let mut node = c.get("nodes", "", "silent").await.expect("get node");
    node["status"] = json!({
        "capacity": {"cpu": "1", "memory": "1Gi"},
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    });
    c.update_status("nodes", &node).await.expect("node status");

    // The agent reports a Pod once it has run through a whole 10 s window.
    let table = eventually(Duration::from_secs(120), "burner has usage", logs, || {
        let conf = conf.clone();
        async move {
            let o = rk(&conf, &["top", "pod"]).await;
            let r = row(&o.stdout, "burner")?;
            (o.code == 0 && r[1] != "<unknown>" && number(r[1], "m") > 0).then_some(o.stdout)
        }
    })
    .await;
    assert!(table.starts_with("NAME "), "{table}");
    assert!(table.contains("CPU(cores)   MEMORY(bytes)\n"), "{table}");
    let r = row(&table, "burner").expect("burner row");
    assert!(number(r[2], "Mi") >= 4, "the 8 MB the Pod holds: {table}");

    let by_label = ok(
        &conf,
        &["top", "pod", "-l", "app=burn", "--containers", "--no-headers"],
    )
    .await;
    let r = row(&by_label, "burner").unwrap_or_else(|| panic!("{by_label}"));
    assert_eq!(r[1], "spin", "{by_label}");
    assert!(number(r[2], "m") > 0 && number(r[3], "Mi") > 0, "{by_label}");
    assert_eq!(ok(&conf, &["top", "pod", "-l", "app=other"]).await, "");
    let all = ok(&conf, &["top", "pods", "-A"]).await;
    assert!(all.starts_with("NAMESPACE "), "{all}");
    assert!(all.contains("default"), "{all}");

    let o = rk(&conf, &["top", "pod", "nosuch"]).await;
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(
        o.stderr,
        "Error from server (NotFound): pods \"nosuch\" not found\n"
    );

    let started = Instant::now();
    let nodes = ok(&conf, &["top", "node"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a silent node held `top node` up for {:?}",
        started.elapsed()
    );
    assert!(
        nodes.starts_with("NAME ") && nodes.contains("CPU(cores)   CPU%"),
        "{nodes}"
    );
    let real = row(&nodes, &agent.name).unwrap_or_else(|| panic!("{nodes}"));
    assert!(number(real[1], "m") > 0, "{nodes}");
    assert!(real[2].ends_with('%') && real[4].ends_with('%'), "{nodes}");
    assert!(number(real[3], "Mi") > 0, "{nodes}");
    assert_eq!(
        row(&nodes, "silent"),
        Some(vec!["silent", "<unknown>", "<unknown>", "<unknown>", "<unknown>"]),
        "{nodes}"
    );
    // The silent node comes last, whatever the order asked for.
    assert!(nodes.trim_end().ends_with("<unknown>"), "{nodes}");
    let one = ok(
        &conf,
        &["top", "node", &agent.name, "--no-headers", "--sort-by", "memory"],
    )
    .await;
    assert_eq!(one.lines().count(), 1, "{one}");
    assert!(one.starts_with(&agent.name), "{one}");
    drop(silent);
}
