//! `rk-node-agent join`: obtain a node certificate with a join token and
//! write the data directory `run` starts from.

use crate::config::{write_private, AgentConfig, DataDir};
use anyhow::{bail, Context, Result};

pub struct JoinOptions {
    pub server: String,
    pub token: String,
    pub name: Option<String>,
    pub listen: String,
    pub node_ip: Option<String>,
    pub pod_cidr: String,
    pub bridge: String,
    pub cgroup_parent: Option<String>,
    pub insecure_registries: Vec<String>,
    pub node_labels: Vec<String>,
}

/// The machine's hostname, lowercased, as a default Node name.
pub fn default_node_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "node".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase()
}

/// The local address this machine uses to reach `server`: found by
/// connecting a UDP socket, which sends nothing.
pub fn local_ip_towards(server: &str) -> Option<String> {
    use std::net::ToSocketAddrs;
    let hostport = server.trim_start_matches("https://");
    let target = hostport.to_socket_addrs().ok()?.next()?;
    let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let sock = std::net::UdpSocket::bind(bind).ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

fn parse_labels(items: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            bail!("--node-label {item}: expected KEY=VALUE");
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub async fn join(dir: &DataDir, opts: JoinOptions) -> Result<AgentConfig> {
    if dir.config().exists() {
        bail!(
            "{} already holds a joined node; start it with `rk-node-agent run --data-dir {}`",
            dir.0.display(),
            dir.0.display()
        );
    }
    let name = opts.name.unwrap_or_else(default_node_name);
    let node_labels = parse_labels(&opts.node_labels)?;
    let node_ip = match opts.node_ip {
        Some(ip) => ip,
        None => local_ip_towards(&opts.server).with_context(|| {
            format!(
                "cannot tell which local address reaches {}; give --node-ip",
                opts.server
            )
        })?,
    };
    rk_client::tls::init_crypto();
    let joined = rk_client::join::join(&opts.server, &opts.token, "node", &name, &node_ip)
        .await
        .context("join")?;
    write_private(&dir.ca(), &joined.identity.ca_pem)?;
    write_private(&dir.cert(), &joined.identity.cert_pem)?;
    write_private(&dir.key(), &joined.identity.key_pem)?;
    let mut servers = joined.response.servers.clone();
    let server = opts.server.trim_start_matches("https://").to_string();
    if !servers.contains(&server) {
        servers.insert(0, server);
    }
    let cfg = AgentConfig {
        cgroup_parent: opts.cgroup_parent.unwrap_or_else(|| format!("rk/{name}")),
        name,
        servers,
        listen: opts.listen,
        node_ip,
        pod_cidr: opts.pod_cidr,
        bridge: opts.bridge,
        insecure_registries: opts.insecure_registries,
        node_labels,
    };
    dir.save(&cfg)?;
    std::fs::create_dir_all(dir.images()).with_context(|| format!("create {}", dir.images().display()))?;
    Ok(cfg)
}
