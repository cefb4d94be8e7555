//! Pod networking through CNI plugins (the CNI spec, version 1.0.0): rk-pause
//! brings `lo` up itself, then `bridge` with `host-local` IPAM
//! creates a veth pair from the Pod's network namespace to a host bridge that
//! holds the gateway address, so the host reaches Pod IPs directly.
//!
//! A plugin is an executable called with `CNI_*` variables in its
//! environment and the network configuration as JSON on stdin; it prints a
//! result (or an error object) as JSON on stdout. The configurations used for
//! ADD are stored with the sandbox so DEL repeats them exactly even if the
//! runtime's configuration changed since.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const CNI_VERSION: &str = "1.0.0";

/// How the runtime wires Pods to the host network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConfig {
    /// Where the plugin executables are (Debian: /usr/lib/cni).
    pub bin_dir: PathBuf,
    /// The host bridge (at most 15 characters, an interface name).
    pub bridge: String,
    /// The Pod subnet in CIDR form.
    pub subnet: String,
    /// The bridge's address; host-local picks the subnet's first address when `None`.
    pub gateway: Option<String>,
}

impl Default for CniConfig {
    fn default() -> Self {
        Self {
            bin_dir: PathBuf::from("/usr/lib/cni"),
            bridge: "rk0".to_string(),
            subnet: "10.88.0.0/16".to_string(),
            gateway: None,
        }
    }
}

/// One plugin call, as stored with the sandbox for DEL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginCall {
    pub plugin: String,
    pub ifname: String,
    pub conf: Value,
}

/// Everything needed to undo a sandbox's network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPlan {
    pub bin_dir: PathBuf,
    pub calls: Vec<PluginCall>,
}

/// Checks the parts of the configuration that would otherwise fail late, inside a plugin.
pub fn validate(cfg: &CniConfig) -> Result<(), String> {
    if cfg.bridge.is_empty() || cfg.bridge.len() > 15 || cfg.bridge.contains(['/', ' ']) {
        return Err(format!(
            "bridge name {:?} is not a valid interface name",
            cfg.bridge
        ));
    }
    let (addr, len) = cfg
        .subnet
        .split_once('/')
        .ok_or_else(|| format!("subnet {:?} is not CIDR", cfg.subnet))?;
    addr.parse::<std::net::IpAddr>()
        .map_err(|e| format!("subnet {:?}: {e}", cfg.subnet))?;
    len.parse::<u8>()
        .map_err(|e| format!("subnet {:?}: {e}", cfg.subnet))?;
    if let Some(gw) = &cfg.gateway {
        gw.parse::<std::net::IpAddr>()
            .map_err(|e| format!("gateway {gw:?}: {e}"))?;
    }
    Ok(())
}

/// The plugin calls for a Pod network: the bridge. `lo` is brought up by
/// rk-pause itself, which saves the loopback plugin's process start on
/// every sandbox (plans saved by older versions still list it, and DEL
/// replays whatever was saved).
pub fn plan(cfg: &CniConfig, ipam_dir: &Path) -> NetworkPlan {
    let mut range = json!({ "subnet": cfg.subnet });
    if let Some(gw) = &cfg.gateway {
        range["gateway"] = json!(gw);
    }
    let bridge = json!({
        "cniVersion": CNI_VERSION,
        // host-local keeps its allocations under dataDir/<name>, so the name is per bridge.
        "name": format!("rk-{}", cfg.bridge),
        "type": "bridge",
        "bridge": cfg.bridge,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[range]],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "dataDir": ipam_dir,
        },
    });
    NetworkPlan {
        bin_dir: cfg.bin_dir.clone(),
        calls: vec![PluginCall {
            plugin: "bridge".into(),
            ifname: "eth0".into(),
            conf: bridge,
        }],
    }
}

/// The Pod IP (without prefix length) from an ADD result: `ips[0].address`.
pub fn parse_ip(result: &[u8]) -> Result<Option<String>, String> {
    let v: Value = serde_json::from_slice(result).map_err(|e| format!("CNI result is not JSON: {e}"))?;
    let Some(addr) = v
        .get("ips")
        .and_then(|ips| ips.get(0))
        .and_then(|ip| ip.get("address"))
    else {
        return Ok(None);
    };
    let addr = addr
        .as_str()
        .ok_or("CNI result: ips[0].address is not a string")?;
    let ip = addr.split('/').next().unwrap_or(addr);
    ip.parse::<std::net::IpAddr>()
        .map_err(|e| format!("CNI result: address {addr:?}: {e}"))?;
    Ok(Some(ip.to_string()))
}

/// A readable message from a plugin's error output (`{"code", "msg", "details"}`).
pub fn parse_error(out: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(out) {
        if let Some(msg) = v.get("msg").and_then(Value::as_str) {
            let mut s = msg.to_string();
            if let Some(d) = v.get("details").and_then(Value::as_str).filter(|d| !d.is_empty()) {
                s.push_str(": ");
                s.push_str(d);
            }
            if let Some(c) = v.get("code").and_then(Value::as_u64) {
                s.push_str(&format!(" (code {c})"));
            }
            return s;
        }
    }
    String::from_utf8_lossy(out).trim().to_string()
}

/// Runs one plugin and returns its stdout.
pub fn invoke(
    bin_dir: &Path,
    call: &PluginCall,
    command: &str,
    container_id: &str,
    netns: &Path,
) -> Result<Vec<u8>, String> {
    let exe = bin_dir.join(&call.plugin);
    let mut child = Command::new(&exe)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", &call.ifname)
        .env("CNI_PATH", bin_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run CNI plugin {}: {e}", exe.display()))?;
    let conf = serde_json::to_vec(&call.conf).map_err(|e| format!("encode CNI config: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&conf)
            .map_err(|e| format!("write CNI config to {}: {e}", call.plugin))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait for CNI plugin {}: {e}", call.plugin))?;
    if !out.status.success() {
        let mut msg = parse_error(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            msg.push_str(&format!("; stderr: {}", stderr.trim()));
        }
        return Err(format!("CNI {command} {} ({}): {msg}", call.plugin, out.status));
    }
    Ok(out.stdout)
}

/// ADD through every plugin; returns the Pod IP from the last result that has one.
/// On failure the plugins already run are deleted again.
pub fn add(plan: &NetworkPlan, container_id: &str, netns: &Path) -> Result<Option<String>, String> {
    let mut ip = None;
    for (i, call) in plan.calls.iter().enumerate() {
        match invoke(&plan.bin_dir, call, "ADD", container_id, netns).and_then(|out| parse_ip(&out)) {
            Ok(Some(found)) => ip = Some(found),
            Ok(None) => {}
            Err(e) => {
                for done in plan.calls[..i].iter().rev() {
                    let _ = invoke(&plan.bin_dir, done, "DEL", container_id, netns);
                }
                return Err(e);
            }
        }
    }
    Ok(ip)
}

/// DEL through every plugin in reverse order; all are tried, the first error is returned.
pub fn del(plan: &NetworkPlan, container_id: &str, netns: &Path) -> Result<(), String> {
    let mut first = None;
    for call in plan.calls.iter().rev() {
        if let Err(e) = invoke(&plan.bin_dir, call, "DEL", container_id, netns) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_result() {
        let r = br#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],
            "ips":[{"interface":0,"address":"10.88.0.5/16","gateway":"10.88.0.1"}],"dns":{}}"#;
        assert_eq!(parse_ip(r).expect("parse"), Some("10.88.0.5".to_string()));
        assert_eq!(
            parse_ip(br#"{"cniVersion":"1.0.0","dns":{}}"#).expect("parse"),
            None
        );
        assert!(parse_ip(b"nope").is_err());
        assert!(parse_ip(br#"{"ips":[{"address":"x/1"}]}"#).is_err());
    }

    #[test]
    fn parses_errors() {
        let e = br#"{"code":11,"msg":"failed to allocate","details":"range full"}"#;
        assert_eq!(parse_error(e), "failed to allocate: range full (code 11)");
        assert_eq!(parse_error(b"plain text\n"), "plain text");
    }

    #[test]
    fn builds_plan() {
        let cfg = CniConfig {
            gateway: Some("10.9.0.1".into()),
            ..CniConfig::default()
        };
        let p = plan(&cfg, Path::new("/state/ipam"));
        assert_eq!(p.calls.len(), 1);
        let b = &p.calls[0].conf;
        assert_eq!(b["bridge"], "rk0");
        assert_eq!(b["isGateway"], true);
        assert_eq!(b["ipam"]["ranges"][0][0]["gateway"], "10.9.0.1");
        assert_eq!(b["ipam"]["dataDir"], "/state/ipam");
        assert!(validate(&cfg).is_ok());
        assert!(validate(&CniConfig {
            subnet: "10.0.0.0".into(),
            ..CniConfig::default()
        })
        .is_err());
        assert!(validate(&CniConfig {
            bridge: "a-very-long-bridge-name".into(),
            ..CniConfig::default()
        })
        .is_err());
    }
}
