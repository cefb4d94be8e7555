use anyhow::Result;
use clap::{Parser, Subcommand};
use rk_node_agent::agent::{self, RunOptions};
use rk_node_agent::config::DataDir;
use rk_node_agent::join::{self, JoinOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "rk-node-agent",
    version,
    about = "rk's node agent: runs the Pods bound to this node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Joins the cluster with a join token and prepares the data directory.
    Join {
        /// A control-plane replica, HOST:PORT.
        #[arg(long)]
        server: String,
        /// The cluster's join token (DIR/join-token of a replica).
        #[arg(long)]
        token: String,
        #[arg(long)]
        data_dir: PathBuf,
        /// The Node's name (default: this machine's hostname).
        #[arg(long)]
        name: Option<String>,
        /// Where the control plane reaches this agent's stream endpoint.
        #[arg(long, default_value = "0.0.0.0:10250")]
        listen: String,
        /// The Node's InternalIP (default: the address that reaches --server).
        #[arg(long)]
        node_ip: Option<String>,
        /// This node's Pod IP range.
        #[arg(long, default_value = "10.88.0.0/16")]
        pod_cidr: String,
        /// The Linux bridge Pods attach to.
        #[arg(long, default_value = "rk0")]
        bridge: String,
        /// The agent's cgroup subtree (default rk/NAME).
        #[arg(long)]
        cgroup_parent: Option<String>,
        /// A registry reached over plain HTTP (repeatable).
        #[arg(long = "insecure-registry")]
        insecure_registries: Vec<String>,
        /// A label for the Node, KEY=VALUE (repeatable).
        #[arg(long = "node-label")]
        node_labels: Vec<String>,
        /// Start serving right after joining.
        #[arg(long)]
        run: bool,
    },
    /// Runs the agent from its data directory.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        run: RunFlags,
    },
}

#[derive(clap::Args, Clone)]
struct RunFlags {
    /// A registry reached over plain HTTP (repeatable; added to those given at join).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The first CrashLoopBackOff delay, in milliseconds (it doubles up to --backoff-max-ms).
    #[arg(long, default_value_t = 10_000)]
    backoff_initial_ms: u64,
    #[arg(long, default_value_t = 300_000)]
    backoff_max_ms: u64,
    /// How often the node's Lease is renewed, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    lease_interval_ms: u64,
    /// Container log size before rotation, in bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    log_max_bytes: u64,
    #[arg(long, default_value_t = 5)]
    log_max_files: u32,
    /// How long one request to a replica may take before the agent tries
    /// the next replica, in milliseconds. It must stay well under the
    /// control plane's --node-monitor-grace-period, or one stalled replica
    /// makes the node look lost.
    #[arg(long, default_value_t = 2_000)]
    api_timeout_ms: u64,
}

impl RunFlags {
    fn options(&self) -> RunOptions {
        RunOptions {
            insecure_registries: self.insecure_registries.clone(),
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms.max(self.backoff_initial_ms)),
            lease_interval: Duration::from_millis(self.lease_interval_ms.max(100)),
            log_max_bytes: self.log_max_bytes.max(4096),
            log_max_files: self.log_max_files.max(1),
            api_attempt_timeout: Duration::from_millis(self.api_timeout_ms.max(100)),
            ..RunOptions::default()
        }
    }
}

fn shutdown_token() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        t.cancel();
    });
    token
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Join {
            server,
            token,
            data_dir,
            name,
            listen,
            node_ip,
            pod_cidr,
            bridge,
            cgroup_parent,
            insecure_registries,
            node_labels,
            run,
        } => {
            let dir = DataDir::new(&data_dir);
            let cfg = join::join(
                &dir,
                JoinOptions {
                    server,
                    token,
                    name,
                    listen,
                    node_ip,
                    pod_cidr,
                    bridge,
                    cgroup_parent,
                    insecure_registries,
                    node_labels,
                },
            )
            .await?;
            eprintln!(
                "joined as node {}; start it with: rk-node-agent run --data-dir {}",
                cfg.name,
                data_dir.display()
            );
            if run {
                agent::run(dir, RunOptions::default(), shutdown_token()).await?;
            }
            Ok(())
        }
        Command::Run { data_dir, run } => {
            agent::run(DataDir::new(&data_dir), run.options(), shutdown_token()).await
        }
    }
}
