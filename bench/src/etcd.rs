//! An etcd cluster on loopback (three members for `store`), driven over
//! its gRPC API: plaintext, or with mutual TLS on client and peer traffic
//! as kubeadm deploys etcd for Kubernetes (and as rk always runs). Members
//! can be added later (`join`).

use anyhow::{bail, Context, Result};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

pub type Kv = pb::kv_client::KvClient<Channel>;

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    /// The client side of mutual TLS, when the cluster runs it.
    client_tls: Option<ClientTlsConfig>,
    /// The TLS flags every member gets, when the cluster runs it.
    tls_flags: Vec<String>,
    /// Flags every member gets besides those.
    extra: Vec<String>,
}

/// Writes a CA, one certificate for every member (serving clients and
/// peers, and presented to peers) and one for the benchmark's client into
/// `dir`; returns the member flags and the client's TLS configuration.
fn mutual_tls(dir: &std::path::Path) -> Result<(Vec<String>, ClientTlsConfig)> {
    use rk_control_plane::pki::CertificateAuthority;
    let ca = CertificateAuthority::generate("rk-bench etcd").context("etcd CA")?;
    let member = ca
        .issue("etcd", &["127.0.0.1".into(), "localhost".into()])
        .context("etcd member certificate")?;
    let client = ca.issue("rk-bench", &[]).context("etcd client certificate")?;
    let write = |name: &str, pem: &str| -> Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, pem).with_context(|| format!("write {}", path.display()))?;
        Ok(path.display().to_string())
    };
    let ca_file = write("ca.pem", &ca.cert_pem)?;
    let cert_file = write("member.pem", &member.cert_pem)?;
    let key_file = write("member-key.pem", &member.key_pem)?;
    let mut flags = vec![];
    for prefix in ["", "peer-"] {
        flags.extend([
            format!("--{prefix}cert-file={cert_file}"),
            format!("--{prefix}key-file={key_file}"),
            format!("--{prefix}trusted-ca-file={ca_file}"),
            format!("--{prefix}client-cert-auth"),
        ]);
    }
    rk_client::tls::init_crypto();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.cert_pem))
        .identity(Identity::from_pem(&client.cert_pem, &client.key_pem));
    Ok((flags, tls))
}

impl EtcdCluster {
    /// Starts `n` members, with mutual TLS on every connection if `tls`.
    pub async fn start(n: usize, tls: bool) -> Result<EtcdCluster> {
        Self::start_with(n, tls, &[]).await
    }

    /// The same, with `extra` flags for every member.
    pub async fn start_with(n: usize, tls: bool, extra: &[&str]) -> Result<EtcdCluster> {
        let dir = tempfile::Builder::new().prefix("rk-bench-etcd-").tempdir()?;
        let (tls_flags, client_tls) = if tls {
            let (flags, client) = mutual_tls(dir.path())?;
            (flags, Some(client))
        } else {
            (vec![], None)
        };
        let mut c = EtcdCluster {
            dir,
            members: vec![],
            client_tls,
            tls_flags,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        c.members = (0..n)
            .map(|i| c.member(i, rk_testkit::free_port(), rk_testkit::free_port()))
            .collect();
        let initial = c.initial_cluster();
        for m in &mut c.members {
            m.args.extend(["--initial-cluster".into(), initial.clone()]);
            m.args.extend(["--initial-cluster-state".into(), "new".into()]);
            m.spawn()?;
        }
        c.leader().await?;
        Ok(c)
    }

    fn scheme(&self) -> &'static str {
        if self.client_tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn peer_url(&self, m: &Member) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), m.peer_port)
    }

    /// `--initial-cluster` listing every member.
    fn initial_cluster(&self) -> String {
        let urls: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, self.peer_url(m)))
            .collect();
        urls.join(",")
    }

    /// Member `i`'s flags but for `--initial-cluster*`.
    fn member(&self, i: usize, client: u16, peer: u16) -> Member {
        let scheme = self.scheme();
        let name = format!("e{i}");
        let mut args: Vec<String> = vec![
            "--name".into(),
            name.clone(),
            "--data-dir".into(),
            self.dir.path().join(&name).display().to_string(),
            "--listen-client-urls".into(),
            format!("{scheme}://127.0.0.1:{client}"),
            "--advertise-client-urls".into(),
            format!("{scheme}://127.0.0.1:{client}"),
            "--listen-peer-urls".into(),
            format!("{scheme}://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls".into(),
            format!("{scheme}://127.0.0.1:{peer}"),
            "--initial-cluster-token".into(),
            "rk-bench".into(),
            "--log-level".into(),
            "error".into(),
        ];
        args.extend(self.tls_flags.iter().cloned());
        args.extend(self.extra.iter().cloned());
        Member {
            name,
            client_port: client,
            peer_port: peer,
            args,
            child: None,
        }
    }

    /// Adds a member (etcd's MemberAdd through the leader, then the new
    /// member started with `--initial-cluster-state existing`); returns its
    /// index.
    pub async fn add_member(&mut self) -> Result<usize> {
        let leader = self.leader().await?;
        let i = self.members.len();
        let m = self.member(i, rk_testkit::free_port(), rk_testkit::free_port());
        let ch = self.endpoint(leader)?.connect().await?;
        pb::cluster_client::ClusterClient::new(ch)
            .member_add(pb::MemberAddRequest {
                peer_ur_ls: vec![self.peer_url(&m)],
                is_learner: false,
            })
            .await
            .context("etcd MemberAdd")?;
        self.members.push(m);
        let initial = self.initial_cluster();
        let m = &mut self.members[i];
        m.args.extend(["--initial-cluster".into(), initial]);
        m.args
            .extend(["--initial-cluster-state".into(), "existing".into()]);
        m.spawn()?;
        Ok(i)
    }

    /// Member `i`'s status.
    pub async fn status(&self, i: usize) -> Result<pb::StatusResponse> {
        let ch = self.endpoint(i)?.connect().await?;
        Ok(pb::maintenance_client::MaintenanceClient::new(ch)
            .status(pb::StatusRequest {})
            .await?
            .into_inner())
    }

    /// Member `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    fn endpoint(&self, i: usize) -> Result<Endpoint> {
        let port = self.members[i].client_port;
        Ok(match &self.client_tls {
            Some(tls) => {
                Channel::from_shared(format!("https://127.0.0.1:{port}"))?.tls_config(tls.clone())?
            }
            None => Channel::from_shared(format!("http://127.0.0.1:{port}"))?,
        }
        .tcp_nodelay(true))
    }

    pub async fn kv(&self, i: usize) -> Result<Kv> {
        // The same socket handling as rk's client (rk_client::coalesce),
        // so the two are compared on equal terms on the client side.
        let ch = self
            .endpoint(i)?
            .connect_with_connector(tower::service_fn(rk_client::tls::connect_tcp))
            .await?;
        Ok(pb::kv_client::KvClient::new(ch))
    }

    /// The index of the leader, waiting for one.
    pub async fn leader(&self) -> Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                let Ok(ep) = self.endpoint(i) else {
                    continue;
                };
                let Ok(Ok(ch)) = tokio::time::timeout(Duration::from_millis(300), ep.connect()).await else {
                    continue;
                };
                let mut mc = pb::maintenance_client::MaintenanceClient::new(ch);
                if let Ok(Ok(r)) =
                    tokio::time::timeout(Duration::from_millis(500), mc.status(pb::StatusRequest {})).await
                {
                    let r = r.into_inner();
                    if r.leader != 0 && r.header.as_ref().map(|h| h.member_id) == Some(r.leader) {
                        return Ok(i);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("etcd elected no leader in 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many members the cluster has, running or not.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The process ids of the members that are running.
    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        // A restarted member rejoins from its data dir.
        for a in m.args.iter_mut() {
            if a == "new" {
                *a = "existing".into();
            }
        }
        m.spawn()
    }
}

impl Member {
    fn spawn(&mut self) -> Result<()> {
        let child = Command::new("etcd")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start etcd member {} (apt-get install etcd-server)", self.name))?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

pub async fn put(kv: &Kv, key: String, value: Vec<u8>) -> Result<()> {
    let mut kv = kv.clone();
    kv.put(pb::PutRequest {
        key: key.into_bytes(),
        value,
        ..Default::default()
    })
    .await?;
    Ok(())
}
