//! Chaos scenarios for rk: a local multi-host cluster (`deploy/local`), a
//! workload (a writer recording every acknowledged write, a watcher, a
//! Deployment that scales and rolls, a Job), and faults chosen from a seed
//! (kill -9 of replicas — the leader included — and agents, cut links,
//! partitions; never more than a minority of replicas at once). After the
//! faults heal the run checks:
//! - every acknowledged write is present with its value;
//! - the watcher saw revisions that never go back, no event twice, and every acknowledged write;
//! - the Deployment reaches its ready replicas within 30 s;
//! - the Job has exactly its completions;
//! - no node runs containers of a Pod the store does not bind to it.

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rk_client::{Client, ListParams, WatchEventType};
use rk_proto::v1 as pb;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const REPLICAS: usize = 3;
pub const NODES: usize = 2;

pub struct Scenario {
    pub seed: u64,
    pub dir: PathBuf,
    pub duration: Duration,
    pub bin_dir: Option<PathBuf>,
    /// Flags for every start of every replica (`cluster up --replica-args`),
    /// e.g. a low `--snapshot-every` so that replicas that fall behind catch
    /// up by installing snapshots.
    pub replica_args: Option<String>,
    pub keep: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub schedule: Vec<String>,
    pub acknowledged: usize,
    pub unacknowledged: usize,
    pub watched: usize,
    /// Snapshots the replicas installed from a leader (read from their
    /// logs): how often a replica that fell behind caught up that way.
    pub snapshots_installed: usize,
    pub failures: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {}: {} faults", self.seed, self.schedule.len())?;
        for s in &self.schedule {
            writeln!(f, "  {s}")?;
        }
        writeln!(
            f,
            "  writes acknowledged {}, unacknowledged (ambiguous) {}, watch events {}, snapshots installed {}",
            self.acknowledged, self.unacknowledged, self.watched, self.snapshots_installed
        )?;
        if self.failures.is_empty() {
            write!(f, "  PASS")
        } else {
            for x in &self.failures {
                writeln!(f, "  FAIL: {x}")?;
            }
            write!(f, "  FAILED (replay: rk-chaos --seed {})", self.seed)
        }
    }
}

/// `deploy/local/cluster` of the source tree. Cargo names the crate's
/// directory at run time when it runs the tests; that comes first, because
/// a build directory shared between checkouts can hand one checkout a test
/// binary compiled in another, whose compile-time path may be gone. For the
/// same reason a binary run by hand whose compile-time path is gone looks
/// in the current directory, the root of a checkout.
fn script() -> PathBuf {
    const SCRIPT: &str = "deploy/local/cluster";
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        return PathBuf::from(dir).join("..").join(SCRIPT);
    }
    let compiled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(SCRIPT);
    if compiled.exists() {
        compiled
    } else {
        PathBuf::from(SCRIPT)
    }
}

fn cluster(s: &Scenario, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(script());
    cmd.args(args).arg("--dir").arg(&s.dir);
    if args.first() == Some(&"up") {
        if let Some(b) = &s.bin_dir {
            cmd.arg("--bin-dir").arg(b);
        }
    }
    let out = cmd
        .output()
        .with_context(|| format!("run deploy/local/cluster {args:?}"))?;
    if !out.status.success() {
        bail!(
            "deploy/local/cluster {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillReplica(usize),
    KillLeader,
    KillAgent(usize),
    CutReplica(usize),
    Partition(usize, usize),
    CutAgent(usize),
}

/// The member index (1-based) of the leader, from any replica that answers.
async fn leader(c: &Client) -> Option<usize> {
    for (_, ch) in c.channels_in_order() {
        let mut cc = pb::cluster_client::ClusterClient::new(ch);
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), cc.members(pb::MembersRequest {})).await
        else {
            continue;
        };
        let m = m.into_inner();
        let addr = m.members.iter().find(|x| x.id == m.leader_id)?.addr.clone();
        // deploy/local gives replica rK the address .(10+K).
        let octet: usize = addr.rsplit_once(':')?.0.rsplit('.').next()?.parse().ok()?;
        return octet.checked_sub(10);
    }
    None
}

fn deployment(replicas: i64, version: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "chaos-web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "chaos-web"}},
                 "template": {"metadata": {"labels": {"app": "chaos-web"}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": "rk.local/busybox:1", "command": ["sleep", "3600"],
                                                       "env": [{"name": "VERSION", "value": version}]}]}}}})
}

fn job() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "chaos-batch", "namespace": "default"},
        "spec": {"completions": 3, "parallelism": 1, "backoffLimit": 20,
                 "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "rk.local/busybox:1", "command": ["sh", "-c", "sleep 2"]}]}}}})
}

#[derive(Default)]
struct Ledger {
    /// name → (value, revision) for every acknowledged create.
    acked: BTreeMap<String, (String, u64)>,
    ambiguous: usize,
}

async fn retry<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, rk_client::ApiError>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => bail!("{what}: {e}"),
        }
    }
}

pub async fn run(s: &Scenario) -> Result<Report> {
    let mut report = Report {
        seed: s.seed,
        ..Default::default()
    };
    let _ = cluster(s, &["down", "--purge"]);
    let n = REPLICAS.to_string();
    let m = NODES.to_string();
    let mut up = vec!["up", "--replicas", &n, "--nodes", &m];
    if let Some(flags) = &s.replica_args {
        up.extend(["--replica-args", flags.as_str()]);
    }
    cluster(s, &up)?;
    let result = scenario(s, &mut report).await;
    report.snapshots_installed = (1..=REPLICAS)
        .filter_map(|i| std::fs::read_to_string(s.dir.join(format!("r{i}.log"))).ok())
        .map(|log| log.matches("installed a snapshot from the leader").count())
        .sum();
    if !s.keep {
        let _ = cluster(s, &["down", "--purge"]);
    }
    result?;
    Ok(report)
}

async fn scenario(s: &Scenario, report: &mut Report) -> Result<()> {
    let mut client =
        Client::from_config_file(&s.dir.join("admin.conf"), None).map_err(|e| anyhow::anyhow!("{e}"))?;
    client.failover_timeout = Duration::from_secs(20);
    client.attempt_timeout = Duration::from_secs(3);
    let c = client;
    let (d, j, all) = (deployment(4, "v1"), job(), ListParams::default());
    // A create whose first attempt was applied but not acknowledged finds
    // the object already there on retry: that is success.
    let created = |r: Result<Value, rk_client::ApiError>| match r {
        Err(e) if e.reason == rk_client::Reason::AlreadyExists => Ok(Value::Null),
        other => other,
    };
    retry("create the deployment", || async {
        created(c.create("deployments", &d).await)
    })
    .await?;
    retry("create the job", || async { created(c.create("jobs", &j).await) }).await?;
    let (_, start_rev) = retry("list", || c.list("configmaps", &all)).await?;

    // The watcher: every configmap event from start_rev on, in order.
    let watched: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let order_errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut events = c.watch(pb::WatchRequest {
        resource: "configmaps".into(),
        namespace: "default".into(),
        since_revision: start_rev,
        ..Default::default()
    });
    let (w, oe) = (watched.clone(), order_errors.clone());
    let watcher = tokio::spawn(async move {
        let mut last = start_rev;
        let mut seen_at_last = std::collections::HashSet::new();
        while let Some(ev) = events.recv().await {
            let Ok(ev) = ev else { continue };
            if ev.kind == WatchEventType::Bookmark {
                continue;
            }
            let name = ev.object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            // A transaction's changes share a revision; each write here is
            // its own transaction, so revisions strictly increase, and
            // no object appears twice at one revision in any case.
            let repeated = ev.revision == last && seen_at_last.contains(&name);
            if ev.revision < last || repeated || (ev.revision == last && last == start_rev) {
                if let Ok(mut e) = oe.lock() {
                    e.push(format!("watch revision {} ({name}) after {last}", ev.revision));
                }
            }
            if ev.revision != last {
                seen_at_last.clear();
            }
            seen_at_last.insert(name.clone());
            last = ev.revision;
            if let Ok(mut w) = w.lock() {
                w.push((ev.revision, name));
            }
        }
    });

    // The writer: sequential creates; only acknowledged ones are promises.
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (l, st, wc, seed) = (ledger.clone(), stop.clone(), c.clone(), s.seed);
    let writer = tokio::spawn(async move {
        let mut i = 0u64;
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            let name = format!("w-{i}");
            let value = format!("{seed}-{i}");
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"v": value}});
            match wc.create("configmaps", &obj).await {
                Ok(o) => {
                    let rev = o["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0);
                    if let Ok(mut l) = l.lock() {
                        l.acked.insert(name, (value, rev));
                    }
                }
                Err(_) => {
                    if let Ok(mut l) = l.lock() {
                        l.ambiguous += 1;
                    }
                }
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    // Faults, from the seed.
    let mut rng = rand::rngs::StdRng::seed_from_u64(s.seed);
    let begin = Instant::now();
    let mut version = 1;
    while begin.elapsed() < s.duration {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1000..3000))).await;
        let fault = match rng.random_range(0..6) {
            0 => Fault::KillReplica(rng.random_range(1..=REPLICAS)),
            1 => Fault::KillLeader,
            2 => Fault::KillAgent(rng.random_range(1..=NODES)),
            3 => Fault::CutReplica(rng.random_range(1..=REPLICAS)),
            4 => {
                let a = rng.random_range(1..=REPLICAS);
                let b = (a % REPLICAS) + 1;
                Fault::Partition(a, b)
            }
            _ => Fault::CutAgent(rng.random_range(1..=NODES)),
        };
        let hold = Duration::from_millis(rng.random_range(2000..6000));
        // The workload changes too: scale or roll the Deployment.
        let change = rng.random_range(0..3);
        let t = begin.elapsed().as_secs_f32();
        let line = match fault {
            Fault::KillReplica(k) => {
                cluster(s, &["kill", &format!("r{k}")])?;
                tokio::time::sleep(hold).await;
                cluster(s, &["restart", &format!("r{k}")])?;
                format!("{t:5.1}s kill -9 r{k}, restart after {hold:?}")
            }
            Fault::KillLeader => {
                let k = leader(&c).await.unwrap_or(1);
                cluster(s, &["kill", &format!("r{k}")])?;
                tokio::time::sleep(hold).await;
                cluster(s, &["restart", &format!("r{k}")])?;
                format!("{t:5.1}s kill -9 the leader (r{k}), restart after {hold:?}")
            }
            Fault::KillAgent(k) => {
                cluster(s, &["kill", &format!("n{k}")])?;
                tokio::time::sleep(hold).await;
                cluster(s, &["restart", &format!("n{k}")])?;
                format!("{t:5.1}s kill -9 n{k} and its containers, restart after {hold:?}")
            }
            Fault::CutReplica(k) => {
                cluster(s, &["cut", &format!("r{k}")])?;
                tokio::time::sleep(hold).await;
                cluster(s, &["heal", &format!("r{k}")])?;
                format!("{t:5.1}s cut r{k}, heal after {hold:?}")
            }
            Fault::Partition(a, b) => {
                cluster(s, &["partition", &format!("r{a}"), &format!("r{b}")])?;
                tokio::time::sleep(hold).await;
                cluster(s, &["heal"])?;
                format!("{t:5.1}s partition r{a} | r{b}, heal after {hold:?}")
            }
            Fault::CutAgent(k) => {
                cluster(s, &["cut", &format!("n{k}")])?;
                tokio::time::sleep(hold).await;
                cluster(s, &["heal", &format!("n{k}")])?;
                format!("{t:5.1}s cut n{k}, heal after {hold:?}")
            }
        };
        let line = match change {
            0 => {
                let replicas = rng.random_range(2..=6);
                let r = c.get("deployments", "default", "chaos-web").await;
                if let Ok(mut d) = r {
                    d["spec"]["replicas"] = json!(replicas);
                    let _ = c.update("deployments", &d).await;
                }
                format!("{line}; scale chaos-web to {replicas}")
            }
            1 => {
                version += 1;
                let r = c.get("deployments", "default", "chaos-web").await;
                if let Ok(mut d) = r {
                    d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] =
                        json!(format!("v{version}"));
                    let _ = c.update("deployments", &d).await;
                }
                format!("{line}; roll chaos-web to v{version}")
            }
            _ => line,
        };
        eprintln!("seed {}: {line}", s.seed);
        report.schedule.push(line);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.await;
    cluster(s, &["heal"])?;
    for k in 1..=REPLICAS {
        cluster(s, &["restart", &format!("r{k}")])?;
    }
    for k in 1..=NODES {
        cluster(s, &["restart", &format!("n{k}")])?;
    }
    check(s, &c, report, &ledger, &watched, &order_errors).await?;
    watcher.abort();
    Ok(())
}

async fn check(
    s: &Scenario,
    c: &Client,
    report: &mut Report,
    ledger: &Arc<Mutex<Ledger>>,
    watched: &Arc<Mutex<Vec<(u64, String)>>>,
    order_errors: &Arc<Mutex<Vec<String>>>,
) -> Result<()> {
    let (acked, ambiguous) = {
        let l = ledger.lock().map_err(|_| anyhow::anyhow!("ledger poisoned"))?;
        (l.acked.clone(), l.ambiguous)
    };
    report.acknowledged = acked.len();
    report.unacknowledged = ambiguous;
    // 1. Every acknowledged write, with its value.
    let all = ListParams::default();
    let (items, _) = retry("list configmaps", || c.list("configmaps", &all)).await?;
    let present: BTreeMap<String, String> = items
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                o["data"]["v"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (name, (value, _)) in &acked {
        match present.get(name) {
            Some(v) if v == value => {}
            Some(v) => report
                .failures
                .push(format!("acknowledged write {name}={value} reads back as {v}")),
            None => report.failures.push(format!("acknowledged write {name} is lost")),
        }
    }
    // 2. The watcher saw every acknowledged write, in revision order.
    let want: BTreeSet<u64> = acked.values().map(|(_, r)| *r).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen: BTreeSet<u64> = watched
            .lock()
            .map(|w| w.iter().map(|(r, _)| *r).collect())
            .unwrap_or_default();
        let missing: Vec<u64> = want.difference(&seen).copied().collect();
        report.watched = seen.len();
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            report.failures.push(format!(
                "the watcher never saw {} acknowledged revisions (first {:?})",
                missing.len(),
                &missing[..missing.len().min(5)]
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Ok(e) = order_errors.lock() {
        report.failures.extend(e.iter().cloned());
    }
    // 3. The Deployment reaches its ready replicas.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = c
            .get("deployments", "default", "chaos-web")
            .await
            .unwrap_or(Value::Null);
        let want = d["spec"]["replicas"].as_i64().unwrap_or(-1);
        let ready = d["status"]["readyReplicas"].as_i64().unwrap_or(0);
        let updated = d["status"]["updatedReplicas"].as_i64().unwrap_or(0);
        if ready == want && updated == want && d["status"]["replicas"].as_i64() == Some(want) {
            break;
        }
        if Instant::now() > deadline {
            report.failures.push(format!(
                "chaos-web: {ready}/{want} ready, {updated} updated 30 s after the faults healed"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // 4. The Job has exactly its completions.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let j = c
            .get("jobs", "default", "chaos-batch")
            .await
            .unwrap_or(Value::Null);
        let succeeded = j["status"]["succeeded"].as_i64().unwrap_or(0);
        if succeeded >= 3 {
            let (pods, _) = c
                .list(
                    "pods",
                    &ListParams {
                        label_selector: "job-name=chaos-batch".into(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap_or_default();
            let done = pods
                .iter()
                .filter(|p| p["status"]["phase"] == "Succeeded")
                .count();
            if succeeded != 3 || done > 3 {
                report.failures.push(format!(
                    "chaos-batch: {succeeded} succeeded (status), {done} Succeeded Pods; want exactly 3"
                ));
            }
            break;
        }
        if Instant::now() > deadline {
            report.failures.push(format!(
                "chaos-batch: {succeeded}/3 completions 90 s after the faults healed"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // 5. No node runs containers of a Pod the store does not bind to it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (pods, _) = c.list("pods", &ListParams::default()).await.unwrap_or_default();
        let bound: BTreeSet<(String, String)> = pods
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                (
                    p["spec"]["nodeName"].as_str().unwrap_or_default().to_string(),
                    p["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let strays: Vec<String> = running_containers(&s.dir)
            .into_iter()
            .filter(|(node, uid)| !bound.contains(&(node.clone(), uid.clone())))
            .map(|(node, uid)| format!("{node}:{uid}"))
            .collect();
        if strays.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            report.failures.push(format!(
                "containers of Pods no longer bound there keep running: {strays:?}"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// (node, pod uid) of every live container process (`rk-shim run DIR/nK/runtime/containers/<uid>-...`).
fn running_containers(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let prefix = dir.display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.first().is_some_and(|a| a.ends_with("rk-shim"))
            || args.get(1).map(String::as_str) != Some("run")
        {
            continue;
        }
        let Some(path) = args.get(2) else { continue };
        let Some(rest) = path.strip_prefix(&prefix) else {
            continue;
        };
        // /nK/runtime/containers/<36-char uid>-<name>-<attempt>
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        if parts.len() >= 4 && parts[1] == "runtime" && parts[3].len() > 36 {
            out.push((parts[0].to_string(), parts[3][..36].to_string()));
        }
    }
    out
}
