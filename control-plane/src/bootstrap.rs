//! Start-up: `init` creates a cluster, `join` adds a replica to one, `run`
//! restarts a replica from its data directory.
//!
//! Data directory layout:
//! - `db/`: RocksDB (Raft log + state machine).
//! - `pki/ca.crt`, `pki/ca.key`: the cluster CA.
//! - `pki/replica.crt`, `pki/replica.key`: this replica's identity.
//! - `join-token`: the token that admits replicas and nodes.
//! - `admin.conf`: an admin client config (written by init and join).
//! - `replica.json`: this replica's id and addresses.

use crate::network::Network;
use crate::pki::{CertificateAuthority, JoinToken, ADMIN_CN, REPLICA_CN_PREFIX};
use crate::replica::Replica;
use crate::server::{self, ServerTls};
use crate::store::rocks::{open_db, LogStore, StateMachine};
use crate::store::types::*;
use anyhow::{anyhow, bail, Context, Result};
use openraft::BasicNode;
use rk_client::config::ConfigFile;
use rk_client::tls::TlsIdentity;
use rk_controllers::job::JobBackoff;
use rk_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Tunables, with defaults chosen for fast failover on a LAN.
#[derive(Debug, Clone)]
pub struct Options {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Revisions of watch history kept for resuming watches.
    pub history_limit: u64,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// Test only: the CronJob and Job controllers read the time from this
    /// file instead of the system clock (see [`crate::clock::FileClock`]).
    pub test_clock_file: Option<PathBuf>,
    /// Whether the Raft service offers AppendEntriesStream (tests turn it
    /// off to stand for an older replica).
    pub serve_append_stream: bool,
    /// The Job controller's delay before replacing a failed pod.
    pub job_backoff: JobBackoff,
    /// When a node counts as lost, and how long its Pods stay.
    pub node_lifecycle: crate::controllers::nodelifecycle::NodeLifecycle,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat_ms: 100,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            history_limit: 20_000,
            snapshot_every: 10_000,
            test_clock_file: None,
            serve_append_stream: true,
            job_backoff: JobBackoff::default(),
            node_lifecycle: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub id: u64,
    pub listen: String,
    pub advertise: String,
}

pub struct DataDir(pub PathBuf);

impl DataDir {
    fn p(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
    pub fn db(&self) -> PathBuf {
        self.p("db")
    }
    pub fn admin_conf(&self) -> PathBuf {
        self.p("admin.conf")
    }
    pub fn join_token(&self) -> PathBuf {
        self.p("join-token")
    }
    fn info(&self) -> PathBuf {
        self.p("replica.json")
    }
    fn pki(&self, f: &str) -> PathBuf {
        self.0.join("pki").join(f)
    }
    fn exists(&self) -> bool {
        self.info().exists()
    }
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    f.sync_all().with_context(|| format!("sync {}", path.display()))?;
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

fn host_of(addr: &str) -> String {
    rk_client::tls::host_of(addr).to_string()
}

fn check_addr(flag: &str, addr: &str) -> Result<()> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("{flag} {addr}: expected HOST:PORT"))?;
    if host.is_empty() {
        bail!("{flag} {addr}: the host is empty");
    }
    port.parse::<u16>()
        .map_err(|_| anyhow!("{flag} {addr}: \"{port}\" is not a port number"))?;
    Ok(())
}

fn advertise_for(listen: &str, advertise: Option<&str>) -> Result<String> {
    check_addr("--listen", listen)?;
    match advertise {
        Some(a) => {
            check_addr("--advertise", a)?;
            Ok(a.to_string())
        }
        None => {
            let h = host_of(listen);
            if h == "0.0.0.0" || h == "::" {
                bail!("--listen {listen} binds every address; give --advertise HOST:PORT so other members know where to reach this replica");
            }
            Ok(listen.to_string())
        }
    }
}

/// An admin client config for `servers`, with a fresh admin certificate.
fn admin_config(ca: &CertificateAuthority, servers: &[String]) -> Result<String> {
    let admin = ca.issue(ADMIN_CN, &[])?;
    let urls: Vec<String> = servers.iter().map(|s| rk_client::tls::server_uri(s)).collect();
    Ok(ConfigFile::new(&urls, &ca.cert_pem, &admin.cert_pem, &admin.key_pem).to_yaml())
}

fn raft_config(opts: &Options) -> Result<Arc<openraft::Config>> {
    let cfg = openraft::Config {
        cluster_name: "rk".into(),
        heartbeat_interval: opts.heartbeat_ms,
        election_timeout_min: opts.election_timeout_min_ms,
        election_timeout_max: opts.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(opts.snapshot_every),
        // Keep a tail of the log after a snapshot so a briefly lagging
        // follower catches up from entries rather than a whole snapshot.
        max_in_snapshot_log_to_keep: (opts.snapshot_every / 10).min(1000),
        purge_batch_size: 256,
        // Bounds one AppendEntries (openraft's default is 300 entries) so
        // that it fits in the heartbeat interval openraft allows it, even
        // when controllers commit hundreds of Pods at once.
        max_payload_entries: 64,
        install_snapshot_timeout: 10_000,
        ..Default::default()
    };
    Ok(Arc::new(cfg.validate().context("validate raft config")?))
}

/// A replica that is serving.
pub struct Running {
    pub replica: Arc<Replica>,
    pub shutdown: CancellationToken,
    pub local_addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// Stops serving and shuts Raft down; waits for both.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        let served = self.server.await;
        self.replica
            .raft
            .shutdown()
            .await
            .map_err(|e| anyhow!("raft shutdown: {e}"))?;
        match served {
            Ok(r) => r.context("serve"),
            Err(e) => Err(anyhow!("server task: {e}")),
        }
    }

    /// Waits until the server stops (after `shutdown` is cancelled).
    pub async fn wait(self) -> Result<()> {
        self.shutdown.cancelled().await;
        self.stop().await
    }
}

async fn start(
    dir: &DataDir,
    info: &ReplicaInfo,
    opts: &Options,
    listener: tokio::net::TcpListener,
) -> Result<Running> {
    rk_client::tls::init_crypto();
    let ca = CertificateAuthority {
        cert_pem: read(&dir.pki("ca.crt"))?,
        key_pem: read(&dir.pki("ca.key"))?,
    };
    let cert_pem = read(&dir.pki("replica.crt"))?;
    let key_pem = read(&dir.pki("replica.key"))?;
    let token = JoinToken::parse(&read(&dir.join_token())?).context("parse join-token")?;
    let db = open_db(&dir.db()).with_context(|| format!("open database {}", dir.db().display()))?;
    let log = LogStore::new(db.clone(), info.id).map_err(|e| anyhow!("open the Raft log: {e}"))?;
    let (sm, store) = StateMachine::open(db, info.id, opts.history_limit, log.durability())
        .map_err(|e| anyhow!("open state machine: {e}"))?;
    let net = Network::new(
        TlsIdentity {
            ca_pem: ca.cert_pem.clone(),
            cert_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        },
        log.durability(),
    );
    let raft = Raft::new(info.id, raft_config(opts)?, net.clone(), log, sm)
        .await
        .map_err(|e| anyhow!("start raft: {e}"))?;
    tokio::spawn(net.clone().resend_held_back_commits(raft.clone()));
    let replica = Arc::new(Replica {
        id: info.id,
        batcher: crate::replica::Batcher::spawn(raft.clone()),
        last_forced_election_ms: Default::default(),
        raft,
        store,
        net,
        ca: ca.clone(),
        token,
        advertise: info.advertise.clone(),
    });
    let shutdown = CancellationToken::new();
    let local_addr = listener.local_addr().context("listener address")?;
    let tls = ServerTls {
        chain_pem: format!("{}{}", cert_pem, ca.cert_pem),
        key_pem,
        ca_pem: ca.cert_pem.clone(),
    };
    let server = tokio::spawn(server::serve(
        replica.clone(),
        listener,
        tls,
        opts.serve_append_stream,
        shutdown.clone(),
    ));
    let settings = crate::controllers::Settings {
        clock: crate::clock::controller_clock(opts.test_clock_file.as_deref()),
        job_backoff: opts.job_backoff,
        node_lifecycle: opts.node_lifecycle,
    };
    tokio::spawn(crate::controllers::run_while_leader(
        replica.clone(),
        shutdown.clone(),
        settings,
    ));
    tracing::info!(id = info.id, addr = %local_addr, advertise = %info.advertise, "replica serving");
    Ok(Running {
        replica,
        shutdown,
        local_addr,
        server,
    })
}

async fn bind(listen: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))
}

/// Waits until this replica sees a leader and has applied its log.
async fn wait_leader(replica: &Replica, timeout: Duration) -> Result<()> {
    replica
        .raft
        .wait(Some(timeout))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .map_err(|e| anyhow!("no leader elected: {e}"))?;
    Ok(())
}

/// The namespaces every cluster starts with.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates a new cluster in `dir` and serves it.
pub async fn init(dir: &Path, listen: &str, advertise: Option<&str>, opts: &Options) -> Result<Running> {
    let dir = DataDir(dir.to_path_buf());
    if dir.exists() {
        bail!(
            "{} already holds a replica; restart it with `rk-control-plane run --data-dir {}`",
            dir.0.display(),
            dir.0.display()
        );
    }
    let advertise = advertise_for(listen, advertise)?;
    let listener = bind(listen).await?;
    let ca = CertificateAuthority::generate("rk")?;
    let token = JoinToken::generate(&ca.fingerprint()?);
    let mut sans = vec![
        host_of(&advertise),
        host_of(listen),
        "localhost".into(),
        "127.0.0.1".into(),
    ];
    sans.retain(|s| s != "0.0.0.0" && s != "::");
    let cert = ca.issue(&format!("{REPLICA_CN_PREFIX}1"), &sans)?;
    write_private(&dir.pki("ca.crt"), &ca.cert_pem)?;
    write_private(&dir.pki("ca.key"), &ca.key_pem)?;
    write_private(&dir.pki("replica.crt"), &cert.cert_pem)?;
    write_private(&dir.pki("replica.key"), &cert.key_pem)?;
    write_private(&dir.join_token(), &format!("{token}\n"))?;
    let info = ReplicaInfo {
        id: 1,
        listen: listen.to_string(),
        advertise: advertise.clone(),
    };
    let running = start(&dir, &info, opts, listener).await?;
    let mut members = BTreeMap::new();
    members.insert(1u64, BasicNode::new(&advertise));
    running
        .replica
        .raft
        .initialize(members)
        .await
        .map_err(|e| anyhow!("initialize raft: {e}"))?;
    wait_leader(&running.replica, Duration::from_secs(10)).await?;
    let ops = INITIAL_NAMESPACES
        .iter()
        .map(|ns| Op::Create {
            resource: "namespaces".into(),
            object: json!({"apiVersion":"v1","kind":"Namespace","metadata":{
                "name": ns, "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": crate::clock::now_rfc3339()},
                "spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}),
        })
        .collect();
    running
        .replica
        .propose(Command::Txn(Txn {
            now: crate::clock::now_rfc3339(),
            ops,
        }))
        .await
        .map_err(|e| anyhow!("create initial namespaces: {e}"))?;
    // Written last: its presence means the cluster is usable.
    write_private(
        &dir.admin_conf(),
        &admin_config(&ca, std::slice::from_ref(&advertise))?,
    )?;
    std::fs::write(dir.info(), serde_json::to_vec_pretty(&info)?).context("write replica.json")?;
    tracing::info!(dir = %dir.0.display(), "cluster initialized");
    Ok(running)
}

/// Joins the cluster at `server` as a new replica and serves.
pub async fn join(
    dir: &Path,
    listen: &str,
    advertise: Option<&str>,
    server: &str,
    token: &str,
    opts: &Options,
) -> Result<Running> {
    let dir = DataDir(dir.to_path_buf());
    if dir.exists() {
        bail!(
            "{} already holds a replica; restart it with `rk-control-plane run --data-dir {}`",
            dir.0.display(),
            dir.0.display()
        );
    }
    let advertise = advertise_for(listen, advertise)?;
    check_addr("--server", server.trim_start_matches("https://"))?;
    JoinToken::parse(token).context("--token")?;
    let listener = bind(listen).await?;
    let joined = rk_client::join::join(server, token, "replica", "", &advertise).await?;
    let resp = joined.response;
    let key_pem = joined.identity.key_pem;
    write_private(&dir.pki("ca.crt"), &resp.ca_cert_pem)?;
    write_private(&dir.pki("ca.key"), &resp.ca_key_pem)?;
    write_private(&dir.pki("replica.crt"), &resp.cert_pem)?;
    write_private(&dir.pki("replica.key"), &key_pem)?;
    write_private(&dir.join_token(), &format!("{}\n", token.trim()))?;
    let info = ReplicaInfo {
        id: resp.replica_id,
        listen: listen.to_string(),
        advertise: advertise.clone(),
    };
    let running = start(&dir, &info, opts, listener).await?;
    // Ask the cluster to add us, as ourselves; the leader replicates its
    // log (or a snapshot) to us, then promotes us to voter.
    let me = TlsIdentity {
        ca_pem: resp.ca_cert_pem.clone(),
        cert_pem: resp.cert_pem.clone(),
        key_pem,
    };
    let mut last_err = None;
    for _ in 0..30 {
        let ch = rk_client::tls::channel(server, &me)?;
        match pb::cluster_client::ClusterClient::new(ch)
            .add_replica(pb::AddReplicaRequest {
                id: info.id,
                addr: advertise.clone(),
            })
            .await
        {
            Ok(_) => {
                last_err = None;
                break;
            }
            Err(st) => {
                last_err = Some(st.message().to_string());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    if let Some(e) = last_err {
        bail!("the cluster did not add this replica: {e}");
    }
    let mut servers = resp.servers.clone();
    if !servers.contains(&advertise) {
        servers.push(advertise.clone());
    }
    let ca = CertificateAuthority {
        cert_pem: resp.ca_cert_pem,
        key_pem: resp.ca_key_pem,
    };
    write_private(&dir.admin_conf(), &admin_config(&ca, &servers)?)?;
    std::fs::write(dir.info(), serde_json::to_vec_pretty(&info)?).context("write replica.json")?;
    tracing::info!(id = info.id, "joined the cluster");
    Ok(running)
}

/// Restarts the replica whose state is in `dir`.
pub async fn run(dir: &Path, listen: Option<&str>, opts: &Options) -> Result<Running> {
    let dir = DataDir(dir.to_path_buf());
    if !dir.exists() {
        bail!(
            "{} holds no replica (no replica.json); create one with `rk-control-plane init` or `join`",
            dir.0.display()
        );
    }
    let mut info: ReplicaInfo = serde_json::from_slice(
        &std::fs::read(dir.info()).with_context(|| format!("read {}", dir.info().display()))?,
    )
    .with_context(|| format!("parse {}", dir.info().display()))?;
    if let Some(l) = listen {
        info.listen = l.to_string();
    }
    let listener = bind(&info.listen).await?;
    start(&dir, &info, opts, listener).await
}

/// Writes a fresh admin config listing every current member.
pub async fn write_admin_config(dir: &Path, out: &Path) -> Result<()> {
    let dd = DataDir(dir.to_path_buf());
    let ca = CertificateAuthority {
        cert_pem: read(&dd.pki("ca.crt"))?,
        key_pem: read(&dd.pki("ca.key"))?,
    };
    let info: ReplicaInfo = serde_json::from_slice(&std::fs::read(dd.info()).context("read replica.json")?)?;
    let me = TlsIdentity {
        ca_pem: ca.cert_pem.clone(),
        cert_pem: read(&dd.pki("replica.crt"))?,
        key_pem: read(&dd.pki("replica.key"))?,
    };
    let mut servers = vec![info.advertise.clone()];
    if let Ok(ch) = rk_client::tls::channel(&info.advertise, &me) {
        if let Ok(m) = pb::cluster_client::ClusterClient::new(ch)
            .members(pb::MembersRequest {})
            .await
        {
            servers = m.into_inner().members.into_iter().map(|m| m.addr).collect();
        }
    }
    write_private(out, &admin_config(&ca, &servers)?)
}
