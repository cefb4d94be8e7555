//! A three-member etcd cluster on loopback, driven over its gRPC API.

use anyhow::{bail, Context, Result};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

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
}

impl EtcdCluster {
    pub async fn start(n: usize) -> Result<EtcdCluster> {
        let dir = tempfile::Builder::new().prefix("rk-bench-etcd-").tempdir()?;
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| (rk_testkit::free_port(), rk_testkit::free_port()))
            .collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
            .collect();
        let mut members = vec![];
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("e{i}");
            let args = vec![
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                dir.path().join(&name).display().to_string(),
                "--listen-client-urls".into(),
                format!("http://127.0.0.1:{client}"),
                "--advertise-client-urls".into(),
                format!("http://127.0.0.1:{client}"),
                "--listen-peer-urls".into(),
                format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://127.0.0.1:{peer}"),
                "--initial-cluster".into(),
                initial.join(","),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                "rk-bench".into(),
                "--log-level".into(),
                "error".into(),
            ];
            let mut m = Member {
                name,
                client_port: *client,
                args,
                child: None,
            };
            m.spawn()?;
            members.push(m);
        }
        let c = EtcdCluster { _dir: dir, members };
        c.leader().await?;
        Ok(c)
    }

    fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    pub async fn kv(&self, i: usize) -> Result<Kv> {
        let ch = Channel::from_shared(self.endpoint(i))?.connect().await?;
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
                let Ok(ep) = Channel::from_shared(self.endpoint(i)) else {
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
