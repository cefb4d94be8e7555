//! A three-member etcd cluster on loopback, driven over its gRPC API:
//! plaintext, or with mutual TLS on client and peer traffic as kubeadm
//! deploys etcd for Kubernetes (and as rk always runs).

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
    args: Vec<String>,
    child: Option<Child>,
}

pub struct EtcdCluster {
    _dir: tempfile::TempDir,
    members: Vec<Member>,
    /// The client side of mutual TLS, when the cluster runs it.
    client_tls: Option<ClientTlsConfig>,
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
        let dir = tempfile::Builder::new().prefix("rk-bench-etcd-").tempdir()?;
        let (tls_flags, client_tls) = if tls {
            let (flags, client) = mutual_tls(dir.path())?;
            (flags, Some(client))
        } else {
            (vec![], None)
        };
        let scheme = if tls { "https" } else { "http" };
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| (rk_testkit::free_port(), rk_testkit::free_port()))
            .collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}={scheme}://127.0.0.1:{peer}"))
            .collect();
        let mut members = vec![];
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("e{i}");
            let mut args = vec![
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                dir.path().join(&name).display().to_string(),
                "--listen-client-urls".into(),
                format!("{scheme}://127.0.0.1:{client}"),
                "--advertise-client-urls".into(),
                format!("{scheme}://127.0.0.1:{client}"),
                "--listen-peer-urls".into(),
                format!("{scheme}://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls".into(),
                format!("{scheme}://127.0.0.1:{peer}"),
                "--initial-cluster".into(),
                initial.join(","),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                "rk-bench".into(),
                "--log-level".into(),
                "error".into(),
            ];
            args.extend(tls_flags.iter().cloned());
            let mut m = Member {
                name,
                client_port: *client,
                args,
                child: None,
            };
            m.spawn()?;
            members.push(m);
        }
        let c = EtcdCluster {
            _dir: dir,
            members,
            client_tls,
        };
        c.leader().await?;
        Ok(c)
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
