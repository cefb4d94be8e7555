//! The Node object and its Lease: registration at start, a Lease renewed
//! every `lease_interval` (what the control plane's node lifecycle watches),
//! and the Ready condition refreshed less often.

use crate::config::AgentConfig;
use rk_api::{ApiError, Reason};
use rk_client::Client;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pods a node accepts, as kubelet's default.
pub const MAX_PODS: u32 = 110;
const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Facts about this machine for the Node's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInfo {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub cgroup_version: &'static str,
    pub hostname: String,
}

impl MachineInfo {
    pub fn detect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "v2"
        } else {
            "v1"
        };
        Self {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory_bytes: memory_kib * 1024,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            os_image,
            machine_id: read("/etc/machine-id").trim().to_string(),
            boot_id: read("/proc/sys/kernel/random/boot_id").trim().to_string(),
            cgroup_version,
            hostname: crate::join::default_node_name(),
        }
    }
}

/// Memory kept back from Pods for the system and the agent itself.
const RESERVED_MEMORY: u64 = 256 * 1024 * 1024;

/// The Node object this agent registers (metadata and spec).
pub fn node_object(cfg: &AgentConfig) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": cfg.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
    });
    for (k, v) in &cfg.node_labels {
        labels[k] = json!(v);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": cfg.name, "labels": labels},
        "spec": {"podCIDR": cfg.pod_cidr, "podCIDRs": [cfg.pod_cidr]},
    })
}

/// The Node's status: capacity, addresses, machine facts and conditions.
pub fn node_status(cfg: &AgentConfig, m: &MachineInfo, stream_port: u16, now: &str) -> Value {
    let allocatable_memory = m.memory_bytes.saturating_sub(RESERVED_MEMORY);
    let condition = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "capacity": {"cpu": m.cpus.to_string(), "memory": format!("{}Ki", m.memory_bytes / 1024), "pods": MAX_PODS.to_string()},
        "allocatable": {"cpu": m.cpus.to_string(), "memory": format!("{}Ki", allocatable_memory / 1024), "pods": MAX_PODS.to_string()},
        "addresses": [{"type": "InternalIP", "address": cfg.node_ip}, {"type": "Hostname", "address": cfg.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": stream_port}},
        "nodeInfo": {
            "machineID": m.machine_id, "systemUUID": m.machine_id, "bootID": m.boot_id,
            "kernelVersion": m.kernel, "osImage": m.os_image, "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "containerRuntimeVersion": concat!("rk://", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": concat!("rk-", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
        },
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "rk node agent has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "rk node agent has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "rk node agent has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "rk node agent is posting ready status"),
        ],
    })
}

/// Keeps transition times of conditions whose status did not change, so
/// `lastTransitionTime` means what Kubernetes says it means.
fn keep_transition_times(new: &mut Value, old: &Value) {
    let Some(old_conds) = old["conditions"].as_array() else {
        return;
    };
    if let Some(conds) = new["conditions"].as_array_mut() {
        for c in conds {
            if let Some(prev) = old_conds.iter().find(|o| o["type"] == c["type"]) {
                if prev["status"] == c["status"] && !prev["lastTransitionTime"].is_null() {
                    c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
                }
            }
        }
    }
}

/// The current time; jiff's own clock is not compiled into k8s-openapi's build.
pub fn now_timestamp() -> k8s_openapi::jiff::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    k8s_openapi::jiff::Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as i32)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

pub use rk_api::time::now_rfc3339;

/// Now as a MicroTime (`2026-11-27T06:00:00.123456Z`), as Leases use.
fn now_micro() -> String {
    let t = now_timestamp();
    let whole = now_rfc3339();
    let micros = t.subsec_nanosecond() / 1000;
    format!("{}.{micros:06}Z", whole.trim_end_matches('Z'))
}

/// Creates or refreshes the Node, then writes its status.
pub async fn register(
    client: &Client,
    cfg: &AgentConfig,
    m: &MachineInfo,
    stream_port: u16,
) -> Result<(), ApiError> {
    let desired = node_object(cfg);
    let current = match client.create("nodes", &desired).await {
        Ok(n) => n,
        Err(e) if e.reason == Reason::AlreadyExists => {
            let mut n = client.get("nodes", "", &cfg.name).await?;
            let mut changed = false;
            for (k, v) in desired["metadata"]["labels"].as_object().into_iter().flatten() {
                if n["metadata"]["labels"][k] != *v {
                    n["metadata"]["labels"][k] = v.clone();
                    changed = true;
                }
            }
            if n["spec"]["podCIDR"] != desired["spec"]["podCIDR"] {
                n["spec"]["podCIDR"] = desired["spec"]["podCIDR"].clone();
                n["spec"]["podCIDRs"] = desired["spec"]["podCIDRs"].clone();
                changed = true;
            }
            if changed {
                client.update("nodes", &n).await?
            } else {
                n
            }
        }
        Err(e) => return Err(e),
    };
    post_status(client, cfg, m, stream_port, current).await?;
    Ok(())
}

async fn post_status(
    client: &Client,
    cfg: &AgentConfig,
    m: &MachineInfo,
    stream_port: u16,
    mut node: Value,
) -> Result<Value, ApiError> {
    let mut status = node_status(cfg, m, stream_port, &now_rfc3339());
    keep_transition_times(&mut status, &node["status"]);
    node["status"] = status;
    node["metadata"]["resourceVersion"] = Value::Null;
    client.update_status("nodes", &node).await
}

/// Renews the Lease every `interval` and the Node status every
/// `status_interval` until cancelled. Failures are logged and retried: a
/// node that cannot reach the control plane keeps its Pods running.
pub async fn heartbeat(
    client: Client,
    cfg: AgentConfig,
    m: MachineInfo,
    stream_port: u16,
    interval: Duration,
    status_interval: Duration,
    cancel: CancellationToken,
) {
    let mut lease: Option<Value> = None;
    let mut last_status = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        let result = renew_lease(&client, &cfg.name, interval, &mut lease).await;
        match (&result, failing) {
            (Err(e), false) => {
                tracing::warn!(error = %e, "lease renewal failed; retrying");
                failing = true;
            }
            (Ok(()), true) => {
                tracing::info!("lease renewed again");
                failing = false;
            }
            _ => {}
        }
        if last_status.elapsed() >= status_interval {
            last_status = tokio::time::Instant::now();
            match client.get("nodes", "", &cfg.name).await {
                Ok(n) => {
                    if let Err(e) = post_status(&client, &cfg, &m, stream_port, n).await {
                        tracing::warn!(error = %e, "node status update failed");
                    }
                }
                Err(e) if e.reason == Reason::NotFound => {
                    // Someone deleted our Node: register it again, as kubelet does.
                    if let Err(e) = register(&client, &cfg, &m, stream_port).await {
                        tracing::warn!(error = %e, "re-registering the node failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the node failed"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn renew_lease(
    client: &Client,
    name: &str,
    interval: Duration,
    lease: &mut Option<Value>,
) -> Result<(), ApiError> {
    let duration = (interval.as_secs() * 5).max(5);
    let mut l = match lease.take() {
        Some(l) => l,
        None => match client.get("leases", LEASE_NAMESPACE, name).await {
            Ok(l) => l,
            Err(e) if e.reason == Reason::NotFound => {
                let fresh = json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": now_micro()},
                });
                *lease = Some(client.create("leases", &fresh).await?);
                return Ok(());
            }
            Err(e) => return Err(e),
        },
    };
    l["spec"]["renewTime"] = json!(now_micro());
    l["spec"]["holderIdentity"] = json!(name);
    match client.update("leases", &l).await {
        Ok(updated) => {
            *lease = Some(updated);
            Ok(())
        }
        // Someone else wrote it (or it was deleted): read it again next time.
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AgentConfig {
        AgentConfig {
            name: "n1".into(),
            servers: vec!["127.0.0.1:7000".into()],
            listen: "127.0.0.1:0".into(),
            node_ip: "10.0.0.5".into(),
            pod_cidr: "10.88.0.0/16".into(),
            bridge: "rk0".into(),
            cgroup_parent: "rk/n1".into(),
            insecure_registries: vec![],
            node_labels: [("zone".to_string(), "a".to_string())].into(),
        }
    }

    #[test]
    fn node_carries_capacity_addresses_and_ready() {
        let m = MachineInfo {
            cpus: 2,
            memory_bytes: 4 * 1024 * 1024 * 1024,
            kernel: "6.1.0".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            cgroup_version: "v1",
            hostname: "h".into(),
        };
        let n = node_object(&cfg());
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(n["metadata"]["labels"]["zone"], "a");
        let s = node_status(&cfg(), &m, 10250, "2026-11-27T00:00:00Z");
        assert_eq!(s["capacity"]["cpu"], "2");
        assert_eq!(s["capacity"]["memory"], "4194304Ki");
        assert_eq!(s["allocatable"]["memory"], "3932160Ki");
        assert_eq!(s["addresses"][0]["address"], "10.0.0.5");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        let mut again = node_status(&cfg(), &m, 10250, "2026-11-27T00:01:00Z");
        keep_transition_times(&mut again, &s);
        let ready = again["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["lastTransitionTime"], "2026-11-27T00:00:00Z");
        assert_eq!(ready["lastHeartbeatTime"], "2026-11-27T00:01:00Z");
    }
}
