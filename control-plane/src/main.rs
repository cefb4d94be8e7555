//! `rk-control-plane`: create, join or restart a control-plane replica.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use rk_control_plane::bootstrap::{self, Options};
use rk_control_plane::controllers::nodelifecycle::{NodeLifecycle, DEFAULT_TOLERATION, NODE_GRACE};
use rk_controllers::job::JobBackoff;
use std::path::PathBuf;
use std::time::Duration;

// glibc's allocator spent about a quarter of the leader's CPU in the
// scheduler benchmark (malloc_consolidate, unlink_chunk: the many small
// JSON values of every object, freed in bursts); mimalloc's per-thread
// free lists avoid that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "rk-control-plane", version, about = "rk control-plane replica")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Tuning {
    /// Raft heartbeat interval. openraft also allows each AppendEntries
    /// only this long, so it must cover one replication round of up to
    /// 512 KiB, fsync included, on a loaded machine: 40 ms proved too short
    /// for 10000 Pods scheduled across 3 replicas on 2 cores.
    #[arg(long, default_value_t = 100)]
    heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout; the upper bound is
    /// twice this. A follower starts an election after the leader lease
    /// (the upper bound) plus a random timeout, so failover takes roughly
    /// 3-4x this value.
    #[arg(long, default_value_t = 150)]
    election_timeout_ms: u64,
    /// Revisions of watch history kept so watchers can resume.
    #[arg(long, default_value_t = 20_000)]
    history_limit: u64,
    /// Raft log entries between state-machine snapshots (older entries are
    /// then purged, which bounds the log on disk).
    #[arg(long, default_value_t = 10_000)]
    snapshot_every: u64,
    /// Test only: the CronJob and Job controllers read the time from this
    /// file, an RFC 3339 timestamp the test rewrites to move time, instead
    /// of the system clock.
    #[arg(long, hide = true)]
    test_clock_file: Option<PathBuf>,
    /// The Job controller's delay before replacing a failed pod, in
    /// milliseconds, doubled with each further failure up to 6 minutes.
    /// Kubernetes' 10 s; tests lower it.
    #[arg(long, hide = true, default_value_t = 10_000)]
    job_backoff_base_ms: u64,
    /// Test only: answer AppendEntriesStream with "unimplemented", as
    /// replicas from before it did, so leaders fall back to unary calls.
    #[arg(long, hide = true)]
    test_without_append_stream: bool,
    /// Seconds a node may go without renewing its Lease before it is
    /// marked unreachable (Kubernetes' kube-controller-manager flag of the
    /// same name, 40 s there). Raise it where agents can stall for seconds,
    /// such as emulated VMs.
    #[arg(long, default_value_t = NODE_GRACE.as_secs())]
    node_monitor_grace_period: u64,
    /// Seconds a Pod without its own toleration stays on an unreachable
    /// node before it is evicted (kube-apiserver's flag; 300 s there).
    #[arg(long, default_value_t = DEFAULT_TOLERATION.as_secs())]
    default_unreachable_toleration_seconds: u64,
}

impl Tuning {
    fn options(&self) -> Options {
        Options {
            heartbeat_ms: self.heartbeat_ms,
            election_timeout_min_ms: self.election_timeout_ms,
            election_timeout_max_ms: self.election_timeout_ms * 2,
            history_limit: self.history_limit,
            snapshot_every: self.snapshot_every,
            test_clock_file: self.test_clock_file.clone(),
            serve_append_stream: !self.test_without_append_stream,
            job_backoff: JobBackoff {
                base: Duration::from_millis(self.job_backoff_base_ms),
                ..JobBackoff::default()
            },
            node_lifecycle: NodeLifecycle {
                grace: Duration::from_secs(self.node_monitor_grace_period.max(1)),
                default_toleration: Duration::from_secs(self.default_unreachable_toleration_seconds),
            },
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new cluster with this replica as its first member, and serve.
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        /// HOST:PORT to listen on.
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: String,
        /// HOST:PORT other members and clients use (defaults to --listen).
        #[arg(long)]
        advertise: Option<String>,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Join an existing cluster as a new replica, and serve.
    Join {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        listen: String,
        #[arg(long)]
        advertise: Option<String>,
        /// HOST:PORT of any current member.
        #[arg(long)]
        server: String,
        /// The join token (DATA_DIR/join-token on any member).
        #[arg(long)]
        token: String,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Restart an existing replica from its data directory.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
        /// Override the listen address recorded at init/join.
        #[arg(long)]
        listen: Option<String>,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Write an admin config listing every current member.
    AdminConfig {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, short)]
        output: PathBuf,
    },
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let running = match cli.cmd {
        Cmd::Init {
            data_dir,
            listen,
            advertise,
            tuning,
        } => {
            let r = bootstrap::init(&data_dir, &listen, advertise.as_deref(), &tuning.options()).await?;
            eprintln!(
                "rk cluster initialized.\n  admin config: {}\n  join token:   {}",
                data_dir.join("admin.conf").display(),
                data_dir.join("join-token").display()
            );
            r
        }
        Cmd::Join {
            data_dir,
            listen,
            advertise,
            server,
            token,
            tuning,
        } => {
            bootstrap::join(
                &data_dir,
                &listen,
                advertise.as_deref(),
                &server,
                &token,
                &tuning.options(),
            )
            .await?
        }
        Cmd::Run {
            data_dir,
            listen,
            tuning,
        } => bootstrap::run(&data_dir, listen.as_deref(), &tuning.options()).await?,
        Cmd::AdminConfig { data_dir, output } => {
            rk_client::tls::init_crypto();
            return bootstrap::write_admin_config(&data_dir, &output).await;
        }
    };
    // The first SIGTERM/SIGINT stops gracefully; Raft state is on disk, so
    // a second signal (or kill -9) loses nothing that was acknowledged.
    shutdown_signal().await;
    tracing::info!("shutting down");
    let token = running.shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        std::process::exit(130);
    });
    token.cancel();
    running.stop().await
}
