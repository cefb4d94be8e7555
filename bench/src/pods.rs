//! `rk-bench pods`: Pod start on a real node.
//!
//! - create → Running: a Pod already bound to the agent's node, from the
//!   create call until a watch sees `phase: Running` in the store (p50/p99);
//! - the runtime's sandbox + container start of `/bin/true` (the agent's
//!   share of that), beside the same container started bare by crun or
//!   runc, measured in this run;
//! - the agent's RSS with 0 and with 100 Pods.

use crate::stats::{rss_kib, Summary};
use anyhow::{bail, Context, Result};
use rk_client::WatchEventType;
use rk_proto::v1 as pb;
use rk_runtime::Runtime;
use rk_testkit::agent::BUSYBOX;
use rk_testkit::Cluster;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct PodsArgs {
    /// Pods timed one after another (create → Running).
    #[arg(long, default_value_t = 50)]
    pub pods: usize,
    /// Pods running when the agent's RSS is read the second time.
    #[arg(long, default_value_t = 100)]
    pub rss_pods: usize,
    /// Bare container starts by the peer runtime (crun, else runc).
    #[arg(long, default_value_t = 50)]
    pub peer_runs: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pod(name: &str, node: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}]}})
}

/// Creates `name` and waits for a watch to report it Running.
async fn create_until_running(c: &rk_client::Client, name: &str, node: &str) -> Result<Duration> {
    let (_, rev) = c
        .list(
            "pods",
            &rk_client::ListParams {
                field_selector: format!("metadata.name={name}"),
                ..Default::default()
            },
        )
        .await?;
    let mut events = c.watch(pb::WatchRequest {
        resource: "pods".into(),
        namespace: "default".into(),
        field_selector: format!("metadata.name={name}"),
        since_revision: rev,
        ..Default::default()
    });
    let t = Instant::now();
    c.create("pods", &pod(name, node)).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .with_context(|| format!("pod {name} did not run within 60 s"))?;
        match ev {
            Some(Ok(e)) if e.kind != WatchEventType::Bookmark && e.object["status"]["phase"] == "Running" => {
                return Ok(t.elapsed())
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("watch: {e}"),
            None => bail!("watch ended"),
        }
    }
}

/// The runtime alone: sandbox (with CNI) + container of /bin/true, started.
fn runtime_start(runs: usize, layers: &Path) -> Result<(Summary, Summary)> {
    let state = tempfile::tempdir()?;
    let helper_dir = rk_testkit::bin("rk-shim")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let rt = rk_runtime::LinuxRuntime::new(rk_runtime::RuntimeConfig {
        state_dir: state.path().to_path_buf(),
        cgroup_parent: format!("rk-bench/{}", std::process::id()),
        cni: Some(rk_runtime::CniConfig {
            bridge: format!("rkbench{}", std::process::id() % 10000),
            subnet: "10.93.0.0/24".into(),
            ..Default::default()
        }),
        helper_dir,
    })?;
    let (mut with_cni, mut total) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let id = format!("bench-{i}");
        let t = Instant::now();
        rt.create_sandbox(&rk_runtime::SandboxSpec {
            id: id.clone(),
            hostname: id.clone(),
            host_network: false,
            labels: Default::default(),
            resources: Default::default(),
            etc_hosts: String::new(),
            resolv_conf: String::new(),
        })?;
        let sandbox = t.elapsed();
        rt.start_container(&rk_runtime::ContainerSpec {
            id: format!("{id}-c"),
            sandbox_id: id.clone(),
            layers: vec![layers.to_path_buf()],
            args: vec!["/bin/true".into()],
            env: vec!["PATH=/bin".into()],
            working_dir: String::new(),
            uid: 0,
            gid: 0,
            supplementary_gids: vec![],
            tty: false,
            stdin: false,
            share_process_namespace: false,
            resources: Default::default(),
            mounts: vec![],
            read_only_rootfs: false,
            capabilities_add: vec![],
            capabilities_drop: vec![],
            privileged: false,
            log_path: state.path().join(format!("{id}.log")),
            log_max_bytes: 1 << 20,
            log_max_files: 1,
            labels: Default::default(),
        })?;
        total.push(t.elapsed());
        with_cni.push(sandbox);
        rt.remove_sandbox(&id)?;
    }
    let _ = Command::new("ip")
        .args(["link", "del", &format!("rkbench{}", std::process::id() % 10000)])
        .status();
    Ok((Summary::of(&mut with_cni), Summary::of(&mut total)))
}

/// `crun run` (or `runc run`) of /bin/true in a busybox bundle.
fn peer_start(runs: usize, rootfs: &Path) -> Result<(String, Summary)> {
    let bundle = tempfile::tempdir()?;
    // runc refuses a symlinked rootfs: give the bundle its own copy.
    let root = bundle.path().join("rootfs");
    let copied = Command::new("cp").arg("-a").arg(rootfs).arg(&root).status()?;
    if !copied.success() {
        bail!("copying the rootfs into the bundle failed");
    }
    for peer in ["crun", "runc"] {
        let Ok(spec) = Command::new(peer)
            .args(["spec", "--bundle"])
            .arg(bundle.path())
            .status()
        else {
            continue;
        };
        if !spec.success() {
            continue;
        }
        let path = bundle.path().join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        cfg["process"]["terminal"] = json!(false);
        cfg["process"]["args"] = json!(["/bin/true"]);
        std::fs::write(&path, serde_json::to_vec(&cfg)?)?;
        let mut lat = Vec::new();
        let mut ok = true;
        for i in 0..runs {
            let id = format!("rkbench-{}-{i}", std::process::id());
            let t = Instant::now();
            let st = Command::new(peer)
                .args(["run", "--bundle"])
                .arg(bundle.path())
                .arg(&id)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()?;
            if !st.status.success() {
                // crun refuses cgroup v1 hybrid hosts whose unified mount holds a
                // controller (hugetlb here); runc is the fallback.
                eprintln!("{peer} failed: {}", String::from_utf8_lossy(&st.stderr).trim());
                ok = false;
                break;
            }
            lat.push(t.elapsed());
        }
        let _ = std::fs::remove_file(&path);
        if ok {
            return Ok((peer.to_string(), Summary::of(&mut lat)));
        }
    }
    bail!("neither crun nor runc could run a container here (./scripts/install-deps --bench installs them)")
}

/// podman's pod create + run of a sleeping busybox container, in a scratch
/// store (cgroupfs, runc: crun refuses this hybrid cgroup host; rlimits
/// capped as peers.md found necessary here). Returns (per-pod time, note).
fn podman_start(runs: usize) -> Result<Summary> {
    let tmp = tempfile::tempdir()?;
    let archive = tmp.path().join("busybox.tar");
    rk_testkit::agent::build_busybox_archive(&archive, "rk.local/busybox:1")?;
    let conf = tmp.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n",
    )?;
    let root = tmp.path().join("root");
    let run = tmp.path().join("run");
    let podman = |args: &[&str]| {
        Command::new("podman")
            .env("CONTAINERS_CONF", &conf)
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&run)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
    };
    let load = podman(&["load", "-i", &archive.display().to_string()])?;
    if !load.status.success() {
        bail!("podman load: {}", String::from_utf8_lossy(&load.stderr).trim());
    }
    let mut lat = Vec::new();
    for i in 0..runs {
        let pod = format!("rkbench-{i}");
        let t = Instant::now();
        let created = podman(&["pod", "create", "--name", &pod])?;
        if !created.status.success() {
            bail!(
                "podman pod create: {}",
                String::from_utf8_lossy(&created.stderr).trim()
            );
        }
        let started = podman(&["run", "-d", "--pod", &pod, "rk.local/busybox:1", "sleep", "3600"])?;
        if !started.status.success() {
            bail!("podman run: {}", String::from_utf8_lossy(&started.stderr).trim());
        }
        lat.push(t.elapsed());
    }
    let _ = podman(&["pod", "rm", "-a", "-f", "-t", "0"]);
    let _ = podman(&["system", "reset", "-f"]);
    Ok(Summary::of(&mut lat))
}

/// What `rk-bench pods` measures.
pub struct PodFigures {
    pub pods: usize,
    pub rss_pods: usize,
    /// create → Running in the store.
    pub start: Summary,
    /// The runtime's sandbox (pause + CNI) alone.
    pub sandbox: Summary,
    /// The runtime's sandbox + container.
    pub runtime: Summary,
    /// The peer runtime's name and bare container start.
    pub peer: Result<(String, Summary)>,
    /// podman pod create + run -d.
    pub podman: Result<Summary>,
    /// The agent's RSS in KiB with no Pods and with `rss_pods`.
    pub rss_idle: Option<u64>,
    pub rss_busy: Option<u64>,
}

pub async fn run(args: &PodsArgs) -> Result<()> {
    let f = measure(args).await?;
    print(&f);
    Ok(())
}

pub async fn measure(args: &PodsArgs) -> Result<PodFigures> {
    let rootfs = tempfile::tempdir()?;
    rk_image::testing::busybox_rootfs(rootfs.path())?;
    eprintln!("measuring the runtime's sandbox + container start ...");
    let (sandbox, runtime) = runtime_start(args.peer_runs, rootfs.path())?;
    eprintln!("measuring the peer's bare container start ...");
    let peer = peer_start(args.peer_runs, rootfs.path());

    eprintln!("measuring podman's pod create + run ...");
    let podman = podman_start(args.peer_runs.min(20));

    eprintln!("measuring create → Running through a real cluster ...");
    let cluster = Cluster::start(1);
    let agent = cluster.add_agent(&[]);
    let c = cluster.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.get("nodes", "", &agent.name).await.is_err() {
        if Instant::now() > deadline {
            bail!("the agent did not register:\n{}", agent.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // image import
    let pid = agent.pid().context("agent pid")?;
    let rss_idle = rss_kib(pid);
    create_until_running(&c, "warm", &agent.name).await?;
    let mut lat = Vec::new();
    for i in 0..args.pods {
        lat.push(create_until_running(&c, &format!("p{i}"), &agent.name).await?);
    }
    let start = Summary::of(&mut lat);
    for i in args.pods..args.rss_pods {
        create_until_running(&c, &format!("p{i}"), &agent.name).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_busy = rss_kib(pid);
    drop(agent);
    Ok(PodFigures {
        pods: args.pods,
        rss_pods: args.rss_pods,
        start,
        sandbox,
        runtime,
        peer,
        podman,
        rss_idle,
        rss_busy,
    })
}

pub fn print(f: &PodFigures) {
    let PodFigures {
        start,
        sandbox,
        runtime,
        peer,
        podman,
        rss_idle,
        rss_busy,
        ..
    } = f;
    let (rss_idle, rss_busy) = (*rss_idle, *rss_busy);
    println!(
        "Pod start (rk-bench pods; {} Pods, one at a time, 1 replica + 1 agent on loopback)",
        f.pods
    );
    println!(
        "  create → Running in the store   p50 {:7.1} ms   p99 {:7.1} ms   (target p50 ≤ 50 ms)",
        ms(start.p50),
        ms(start.p99)
    );
    println!(
        "  runtime sandbox (pause + CNI)   p50 {:7.1} ms   p99 {:7.1} ms",
        ms(sandbox.p50),
        ms(sandbox.p99)
    );
    println!(
        "  runtime sandbox + container     p50 {:7.1} ms   p99 {:7.1} ms",
        ms(runtime.p50),
        ms(runtime.p99)
    );
    match &peer {
        Ok((name, s)) => {
            println!(
                "  {name} run /bin/true (bare)       p50 {:7.1} ms   p99 {:7.1} ms",
                ms(s.p50),
                ms(s.p99)
            );
            println!(
                "  ratio rk sandbox+container / {name}: {:.2}× (target ≤ 2×)",
                runtime.p50.as_secs_f64() / s.p50.as_secs_f64().max(1e-9)
            );
        }
        Err(e) => println!("  peer: not measured: {e}"),
    }
    match &podman {
        Ok(s) => println!(
            "  podman pod create + run -d      p50 {:7.1} ms   p99 {:7.1} ms   (rk create → Running / podman: {:.2}×)",
            ms(s.p50),
            ms(s.p99),
            start.p50.as_secs_f64() / s.p50.as_secs_f64().max(1e-9)
        ),
        Err(e) => println!("  podman: not measured: {e}"),
    }
    let fmt = |r: Option<u64>| {
        r.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "  agent RSS: {} with 0 Pods, {} with {} Pods (target ≤ 20 MiB + 1 MiB per Pod)",
        fmt(rss_idle),
        fmt(rss_busy),
        f.rss_pods
    );
    if let (Some(a), Some(b)) = (rss_idle, rss_busy) {
        println!(
            "  agent RSS per Pod: {:.1} KiB",
            (b.saturating_sub(a)) as f64 / f.rss_pods as f64
        );
    }
}
