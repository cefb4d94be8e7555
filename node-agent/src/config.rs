//! The agent's data directory and the settings it keeps there.
//!
//! `join` writes everything `run` needs, so a restarted agent comes back
//! with the same identity, addresses and cgroup subtree:
//!
//! ```text
//! DIR/agent.json        settings (name, servers, listen address, pod network...)
//! DIR/pki/{ca.crt,node.crt,node.key}
//! DIR/images/           image archives to import (watched)
//! DIR/image-store/      the content-addressed image store
//! DIR/runtime/          sandbox and container state (survives restarts)
//! DIR/pods/<uid>/       per-Pod volumes (emptyDir, projected ConfigMaps and Secrets)
//! DIR/logs/<ns>_<pod>_<uid>/<container>/<attempt>.log
//! ```

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    /// The Node's name (and the certificate's identity `system:node:NAME`).
    pub name: String,
    /// Control-plane replicas, HOST:PORT.
    pub servers: Vec<String>,
    /// Where the agent serves container streams (logs, exec) to the control plane.
    pub listen: String,
    /// The address other machines reach this node at (the Node's InternalIP).
    pub node_ip: String,
    /// This node's Pod IP range (CNI bridge + host-local), e.g. 10.88.0.0/16.
    pub pod_cidr: String,
    /// The CNI bridge's name.
    pub bridge: String,
    /// The agent's cgroup subtree, relative to each hierarchy's root.
    pub cgroup_parent: String,
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Labels added to the Node at registration (`--node-label k=v`).
    #[serde(default)]
    pub node_labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new(p: &Path) -> Self {
        Self(p.to_path_buf())
    }
    pub fn config(&self) -> PathBuf {
        self.0.join("agent.json")
    }
    pub fn ca(&self) -> PathBuf {
        self.0.join("pki/ca.crt")
    }
    pub fn cert(&self) -> PathBuf {
        self.0.join("pki/node.crt")
    }
    pub fn key(&self) -> PathBuf {
        self.0.join("pki/node.key")
    }
    pub fn images(&self) -> PathBuf {
        self.0.join("images")
    }
    pub fn image_store(&self) -> PathBuf {
        self.0.join("image-store")
    }
    pub fn runtime(&self) -> PathBuf {
        self.0.join("runtime")
    }
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.0.join("pods").join(uid)
    }
    pub fn pods(&self) -> PathBuf {
        self.0.join("pods")
    }
    pub fn pod_logs(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.0.join("logs").join(format!("{namespace}_{name}_{uid}"))
    }
    pub fn logs(&self) -> PathBuf {
        self.0.join("logs")
    }

    pub fn load(&self) -> Result<AgentConfig> {
        let path = self.config();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "read {} (has this node joined? run `rk-node-agent join` first)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a valid agent config", path.display()))
    }

    pub fn save(&self, cfg: &AgentConfig) -> Result<()> {
        let text = serde_json::to_string_pretty(cfg).context("encode agent config")?;
        write_private(&self.config(), &text)
    }

    pub fn identity(&self) -> Result<rk_client::tls::TlsIdentity> {
        let read = |p: PathBuf| std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()));
        Ok(rk_client::tls::TlsIdentity {
            ca_pem: read(self.ca())?,
            cert_pem: read(self.cert())?,
            key_pem: read(self.key())?,
        })
    }
}

/// Writes a file readable only by its owner, durably (it holds keys).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("write {}", tmp.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("write {}", tmp.display()))?;
    f.sync_all().with_context(|| format!("sync {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
