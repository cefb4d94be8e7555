//! Liveness, readiness and startup probes (exec, httpGet, tcpSocket), with
//! Kubernetes' timing fields and defaults. Each running container instance
//! gets one task; results land in a shared [`ProbeState`] and wake the
//! Pod's worker, which acts on them (restart, readiness).

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rk_runtime::{ExecSpec, Runtime};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeState {
    pub ready: bool,
    pub started: bool,
    /// Set when the liveness (or startup) probe failed `failureThreshold` times.
    pub failed: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

struct Timing {
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

fn timing(p: &Probe) -> Timing {
    let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
    Timing {
        initial_delay: secs(p.initial_delay_seconds, 0),
        period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
    }
}

fn port_of(c: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// One probe attempt: Ok(()) on success, Err(message) on failure.
async fn run_once(
    rt: &Arc<dyn Runtime>,
    container_id: &str,
    c: &Container,
    p: &Probe,
    ip: &str,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &p.exec {
        let spec = ExecSpec {
            container_id: container_id.to_string(),
            args: exec.command.clone().unwrap_or_default(),
            env: vec![],
            tty: false,
            tty_size: None,
        };
        let rt = rt.clone();
        let task = tokio::task::spawn_blocking(move || -> Result<(i32, String), String> {
            let mut proc = rt.exec(&spec).map_err(|e| e.to_string())?;
            let mut out = String::new();
            let _ = proc.stdout.read_to_string(&mut out);
            let code = (proc.waiter)().map_err(|e| e.to_string())?;
            Ok((code, out))
        });
        return match tokio::time::timeout(timeout, task).await {
            Err(_) => Err(format!("command timed out after {}s", timeout.as_secs())),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Ok(Ok((0, _)))) => Ok(()),
            Ok(Ok(Ok((code, out)))) => Err(format!("command exited with {code}: {}", out.trim())),
        };
    }
    if let Some(tcp) = &p.tcp_socket {
        let port =
            port_of(c, &tcp.port).ok_or("the probe's port is not a number or a named container port")?;
        let host = tcp.host.clone().unwrap_or_else(|| ip.to_string());
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), port)))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if let Some(http) = &p.http_get {
        let port = http.port.clone();
        let port = port_of(c, &port).ok_or("the probe's port is not a number or a named container port")?;
        let host = http.host.clone().unwrap_or_else(|| ip.to_string());
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| e.to_string())?;
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: rk-probe/0.1\r\nConnection: close\r\n");
            for h in http.http_headers.iter().flatten() {
                req.push_str(&format!("{}: {}\r\n", h.name, h.value));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 512];
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            let head = String::from_utf8_lossy(&buf[..n]);
            let code: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| "malformed HTTP response".to_string())?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        };
        return match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r.map_err(|e| format!("Get \"http://{host}:{port}{path}\": {e}")),
            Err(_) => Err(format!(
                "Get \"http://{host}:{port}{path}\": context deadline exceeded"
            )),
        };
    }
    Err("the probe has no handler (exec, httpGet or tcpSocket)".into())
}

#[allow(clippy::too_many_arguments)] // One task's whole context; a struct would only rename it.
async fn probe_loop(
    kind: Kind,
    p: Probe,
    rt: Arc<dyn Runtime>,
    container_id: String,
    c: Container,
    ip: String,
    state: Arc<Mutex<ProbeState>>,
    wake: tokio::sync::mpsc::Sender<()>,
    cancel: CancellationToken,
) {
    let t = timing(&p);
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(t.initial_delay) => {}
    }
    let (mut successes, mut failures) = (0u32, 0u32);
    loop {
        // Liveness and readiness wait for the startup probe to succeed.
        let gated = kind != Kind::Startup && !state.lock().map(|s| s.started).unwrap_or(false);
        if !gated {
            let result = run_once(&rt, &container_id, &c, &p, &ip, t.timeout).await;
            let mut changed = false;
            if let Ok(mut s) = state.lock() {
                match result {
                    Ok(()) => {
                        failures = 0;
                        successes += 1;
                        if successes >= t.success_threshold {
                            match kind {
                                Kind::Readiness if !s.ready => {
                                    s.ready = true;
                                    changed = true;
                                }
                                Kind::Startup if !s.started => {
                                    s.started = true;
                                    changed = true;
                                }
                                _ => {}
                            }
                        }
                    }
                    Err(msg) => {
                        successes = 0;
                        failures += 1;
                        if failures >= t.failure_threshold {
                            match kind {
                                Kind::Readiness if s.ready => {
                                    s.ready = false;
                                    changed = true;
                                }
                                Kind::Liveness | Kind::Startup if s.failed.is_none() => {
                                    let what = if kind == Kind::Liveness {
                                        "Liveness"
                                    } else {
                                        "Startup"
                                    };
                                    s.failed = Some(format!("{what} probe failed: {msg}"));
                                    changed = true;
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
            if changed {
                let _ = wake.try_send(());
            }
            if kind == Kind::Startup && state.lock().map(|s| s.started).unwrap_or(false) {
                return;
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(if gated { Duration::from_millis(200) } else { t.period }) => {}
        }
    }
}

/// Starts the container's probes. Without a readiness probe the container
/// is ready once started; without a startup probe it is started at once.
pub fn start(
    rt: Arc<dyn Runtime>,
    container_id: &str,
    c: &Container,
    ip: &str,
    wake: tokio::sync::mpsc::Sender<()>,
    cancel: CancellationToken,
) -> Arc<Mutex<ProbeState>> {
    let state = Arc::new(Mutex::new(ProbeState {
        ready: c.readiness_probe.is_none(),
        started: c.startup_probe.is_none(),
        failed: None,
    }));
    for (kind, p) in [
        (Kind::Startup, &c.startup_probe),
        (Kind::Liveness, &c.liveness_probe),
        (Kind::Readiness, &c.readiness_probe),
    ] {
        if let Some(p) = p {
            tokio::spawn(probe_loop(
                kind,
                p.clone(),
                rt.clone(),
                container_id.to_string(),
                c.clone(),
                ip.to_string(),
                state.clone(),
                wake.clone(),
                cancel.clone(),
            ));
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_match_kubernetes() {
        let p: Probe = serde_json::from_value(json!({"exec": {"command": ["true"]}})).expect("probe");
        let t = timing(&p);
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        let c: Container =
            serde_json::from_value(json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}))
                .expect("c");
        assert_eq!(port_of(&c, &IntOrString::String("http".into())), Some(8080));
        assert_eq!(port_of(&c, &IntOrString::Int(81)), Some(81));
        assert_eq!(port_of(&c, &IntOrString::String("nope".into())), None);
    }
}
