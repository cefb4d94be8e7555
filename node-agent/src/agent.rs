//! `rk-node-agent run`: everything wired together.

use crate::config::DataDir;
use crate::images::ImageManager;
use crate::manager::Manager;
use crate::node::{self, MachineInfo};
use crate::pod::Env;
use crate::streams::{self, StreamSvc};
use anyhow::{Context, Result};
use rk_client::Client;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Settings that `run` may change without rejoining.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub insecure_registries: Vec<String>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub lease_interval: Duration,
    pub status_interval: Duration,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    pub image_gc_high_percent: u64,
    pub image_gc_low_percent: u64,
    /// How long one request waits for a replica before the client tries
    /// the next one.
    pub api_attempt_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            insecure_registries: vec![],
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            lease_interval: Duration::from_secs(1),
            status_interval: Duration::from_secs(10),
            log_max_bytes: 10 * 1024 * 1024,
            log_max_files: 5,
            image_gc_high_percent: 85,
            image_gc_low_percent: 80,
            api_attempt_timeout: Duration::from_secs(2),
        }
    }
}

/// The directory holding this executable: the runtime's helper binaries
/// (`rk-pause`, `rk-shim`) ship beside it.
fn helper_dir() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("locate the agent's executable")?;
    Ok(exe.parent().map(|p| p.to_path_buf()).unwrap_or_default())
}

fn host_resolv_conf() -> String {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    // A loopback resolver on the host is unreachable from a Pod's own
    // network namespace; drop those lines as kubelet's resolver handling does.
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.trim();
            !(l.starts_with("nameserver 127.") || l.starts_with("nameserver ::1"))
        })
        .collect();
    let mut out = kept.join("\n");
    out.push('\n');
    out
}

pub async fn run(dir: DataDir, opts: RunOptions, shutdown: CancellationToken) -> Result<()> {
    rk_client::tls::init_crypto();
    let mut cfg = dir.load()?;
    for r in &opts.insecure_registries {
        if !cfg.insecure_registries.contains(r) {
            cfg.insecure_registries.push(r.clone());
        }
    }
    let identity = dir.identity()?;
    let mut client = Client::new(cfg.servers.clone(), identity.clone()).context("control-plane client")?;
    // A replica that stops answering must not stall Lease renewals past the
    // node grace period: give up on it quickly and move to the next.
    client.attempt_timeout = opts.api_attempt_timeout;
    let rt_config = rk_runtime::RuntimeConfig {
        state_dir: dir.runtime(),
        cgroup_parent: cfg.cgroup_parent.clone(),
        cni: Some(rk_runtime::CniConfig {
            bridge: cfg.bridge.clone(),
            subnet: cfg.pod_cidr.clone(),
            ..Default::default()
        }),
        helper_dir: helper_dir()?,
    };
    let runtime: Arc<dyn rk_runtime::Runtime> =
        Arc::new(rk_runtime::LinuxRuntime::new(rt_config).context("start the container runtime")?);
    let store = Arc::new(rk_image::ImageStore::open(&dir.image_store()).context("open the image store")?);
    let pull = rk_image::PullOptions {
        insecure_registries: cfg.insecure_registries.clone(),
        ..Default::default()
    };
    let images = Arc::new(ImageManager::new(store, dir.image_store(), pull));
    std::fs::create_dir_all(dir.images()).with_context(|| format!("create {}", dir.images().display()))?;
    {
        // Archives present at start are imported before any Pod needs them.
        let (images, d) = (images.clone(), dir.images());
        tokio::task::spawn_blocking(move || images.import_new(&d, false))
            .await
            .context("import images")?;
    }
    let sampler = Arc::new(crate::stats::Sampler::default());
    let svc = StreamSvc {
        rt: runtime.clone(),
        dir: dir.clone(),
        stats: sampler.clone(),
    };
    let (port, stream_server) = streams::serve(&cfg.listen, &identity, svc, shutdown.clone()).await?;
    let machine = MachineInfo::detect();
    let mut attempt = 0u32;
    loop {
        match node::register(&client, &cfg, &machine, port).await {
            Ok(()) => break,
            Err(e) => {
                attempt += 1;
                if attempt == 1 || attempt.is_multiple_of(30) {
                    tracing::warn!(error = %e, "registering the node failed; retrying");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    tracing::info!(node = %cfg.name, port, "node registered");
    let env = Arc::new(Env {
        rt: runtime,
        images: images.clone(),
        client: client.clone(),
        dir: dir.clone(),
        cfg: cfg.clone(),
        backoff_initial: opts.backoff_initial,
        backoff_max: opts.backoff_max,
        log_max_bytes: opts.log_max_bytes,
        log_max_files: opts.log_max_files,
        resolv_conf: host_resolv_conf(),
    });
    let heartbeat = tokio::spawn(node::heartbeat(
        client.clone(),
        cfg.clone(),
        machine,
        port,
        opts.lease_interval,
        opts.status_interval,
        shutdown.clone(),
    ));
    let importer = tokio::spawn(images.clone().import_loop(dir.images(), shutdown.clone()));
    let gc = tokio::spawn(image_gc(env.clone(), opts.clone(), shutdown.clone()));
    let usage = tokio::spawn(crate::stats::run(
        sampler,
        env.rt.clone(),
        crate::stats::SAMPLE_INTERVAL,
        shutdown.clone(),
    ));
    let manager = Manager::new(env, shutdown.clone());
    let pods = tokio::spawn(manager.run());
    shutdown.cancelled().await;
    tracing::info!("shutting down; containers keep running for the next agent to adopt");
    for h in [heartbeat, importer, gc, usage, pods, stream_server] {
        let _ = h.await;
    }
    Ok(())
}

/// Periodic image garbage collection over images no container uses.
async fn image_gc(env: Arc<Env>, opts: RunOptions, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
        let listed = crate::pod::blocking(&env.rt, |rt| rt.list()).await;
        let Ok((_, containers)) = listed else { continue };
        let in_use: std::collections::HashSet<String> = containers
            .iter()
            .filter_map(|c| c.labels.get(crate::pod::LABEL_IMAGE_ID).cloned())
            .collect();
        let images = env.images.clone();
        let (high, low) = (opts.image_gc_high_percent, opts.image_gc_low_percent);
        let _ = tokio::task::spawn_blocking(move || images.collect_garbage(&in_use, high, low)).await;
    }
}
