//! The agent's stream endpoint: container logs, exec and resource usage,
//! served over mutual TLS to control-plane replicas only (rkctl reaches it
//! through the control plane, never directly).

use crate::config::DataDir;
use crate::pod::{LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use rk_proto::v1 as pb;
use rk_proto::v1::node_streams_server::{NodeStreams, NodeStreamsServer};
use rk_runtime::{ContainerState, ContainerStatus, ExecSpec, Runtime};
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

const REPLICA_CN_PREFIX: &str = "rk:replica:";

pub struct StreamSvc {
    pub rt: Arc<dyn Runtime>,
    pub dir: DataDir,
    /// The usage readings `Stats` answers from (see [`crate::stats`]).
    pub stats: Arc<crate::stats::Sampler>,
}

fn require_replica<T>(req: &Request<T>) -> Result<(), Status> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let first = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let cn = x509_parser::parse_x509_certificate(first.as_ref())
        .ok()
        .and_then(|(_, c)| {
            c.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok().map(str::to_string))
        })
        .unwrap_or_default();
    if cn.starts_with(REPLICA_CN_PREFIX) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "\"{cn}\" may not use the node's stream endpoint; only the control plane may"
        )))
    }
}

/// The Pod's containers on this node: (container name, attempt, status), newest attempt first.
/// A container of a Pod found in the runtime: its name, attempt and status.
type Found = (String, u32, ContainerStatus);

fn pod_containers(rt: &dyn Runtime, ns: &str, pod: &str) -> Result<(String, Vec<Found>), Status> {
    let (_, containers) = rt.list().map_err(|e| Status::internal(e.to_string()))?;
    let mut uid = String::new();
    let mut out = Vec::new();
    for c in containers {
        if c.labels.get(LABEL_POD_NAMESPACE).map(String::as_str) != Some(ns)
            || c.labels.get(LABEL_POD_NAME).map(String::as_str) != Some(pod)
        {
            continue;
        }
        uid = c.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
        let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
        let attempt = c
            .labels
            .get(LABEL_ATTEMPT)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        out.push((name, attempt, c));
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.1));
    Ok((uid, out))
}

fn pick_container(containers: &[Found], wanted: &str, pod: &str) -> Result<Found, Status> {
    let mut names: Vec<&str> = containers.iter().map(|c| c.0.as_str()).collect();
    names.sort();
    names.dedup();
    let name = if wanted.is_empty() {
        match names.as_slice() {
            [] => {
                return Err(Status::not_found(format!(
                    "pod \"{pod}\" has no running containers on this node"
                )))
            }
            [one] => one.to_string(),
            many => {
                return Err(Status::invalid_argument(format!(
                    "a container name must be specified for pod {pod}, choose one of: [{}]",
                    many.join(" ")
                )))
            }
        }
    } else {
        wanted.to_string()
    };
    containers
        .iter()
        .find(|c| c.0 == name)
        .cloned()
        .ok_or_else(|| Status::not_found(format!("container \"{name}\" in pod \"{pod}\" is not available")))
}

/// The newest log directory of `namespace/pod` and the Pod uid it belongs to.
fn find_pod_logs(dir: &DataDir, namespace: &str, pod: &str) -> Option<(String, PathBuf)> {
    let prefix = format!("{namespace}_{pod}_");
    std::fs::read_dir(dir.logs())
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let uid = name.strip_prefix(&prefix)?.to_string();
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, uid, e.path()))
        })
        .max_by_key(|(m, _, _)| *m)
        .map(|(_, uid, p)| (uid, p))
}

fn subdirs(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The attempts with a log file in a container's log directory.
fn attempts(p: &Path) -> Vec<u32> {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".log")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One line of a CRI log file: timestamp, stream, whether it ends a line, text.
pub fn parse_cri_line(line: &str) -> Option<(&str, &str, bool, &str)> {
    let mut parts = line.splitn(4, ' ');
    let ts = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let msg = parts.next().unwrap_or("");
    Some((ts, stream, tag.starts_with('F'), msg))
}

fn render(line: &str, timestamps: bool) -> Option<String> {
    let (ts, _, full, msg) = parse_cri_line(line.trim_end_matches('\n'))?;
    let mut out = String::new();
    if timestamps {
        out.push_str(ts);
        out.push(' ');
    }
    out.push_str(msg);
    if full {
        out.push('\n');
    }
    Some(out)
}

fn since_ok(line: &str, cutoff: Option<&str>) -> bool {
    // RFC 3339 UTC timestamps with the same layout compare as strings.
    match (cutoff, parse_cri_line(line)) {
        (Some(c), Some((ts, ..))) => ts >= c,
        _ => true,
    }
}

/// Rotated files first (oldest to newest), then the live one.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = (1..100)
        .map(|i| (i, PathBuf::from(format!("{}.{i}", path.display()))))
        .take_while(|(_, p)| p.exists())
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    rotated
        .into_iter()
        .map(|(_, p)| p)
        .chain(std::iter::once(path.to_path_buf()))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn stream_logs(
    rt: Arc<dyn Runtime>,
    container_id: String,
    path: PathBuf,
    req: pb::LogsRequest,
    tx: mpsc::Sender<Result<pb::LogChunk, Status>>,
) {
    let cutoff = (req.since_seconds > 0).then(|| {
        let t = crate::node::now_timestamp().as_second() - req.since_seconds;
        k8s_openapi::jiff::Timestamp::from_second(t)
            .map(|t| t.to_string())
            .unwrap_or_default()
    });
    let send = |s: String| {
        tx.blocking_send(Ok(pb::LogChunk { data: s.into_bytes() }))
            .is_ok()
    };
    let mut lines: Vec<String> = Vec::new();
    for f in log_files(&path) {
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            if since_ok(&line, cutoff.as_deref()) {
                lines.push(line);
            }
        }
    }
    let skip = if req.tail_lines >= 0 {
        lines.len().saturating_sub(req.tail_lines as usize)
    } else {
        0
    };
    let mut batch = String::new();
    for l in &lines[skip..] {
        if let Some(r) = render(l, req.timestamps) {
            batch.push_str(&r);
        }
        if batch.len() > 32 * 1024 && !send(std::mem::take(&mut batch)) {
            return;
        }
    }
    if !batch.is_empty() && !send(batch) {
        return;
    }
    if !req.follow {
        return;
    }
    // Follow: read what is appended; reopen when the file is rotated away.
    let Ok(mut file) = std::fs::File::open(&path) else {
        return;
    };
    let mut pos = file.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
    let mut pending = String::new();
    loop {
        let mut buf = String::new();
        let _ = file.read_to_string(&mut buf);
        if !buf.is_empty() {
            pos += buf.len() as u64;
            pending.push_str(&buf);
            let mut out = String::new();
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                if let Some(r) = render(&line, req.timestamps) {
                    out.push_str(&r);
                }
            }
            if !out.is_empty() && !send(out) {
                return;
            }
            continue;
        }
        if tx.is_closed() {
            return;
        }
        let running = matches!(
            rt.container_status(&container_id),
            Ok(Some(ContainerStatus {
                state: ContainerState::Running { .. },
                ..
            }))
        );
        let len_now = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len_now < pos {
            match std::fs::File::open(&path) {
                Ok(f) => {
                    file = f;
                    pos = 0;
                    continue;
                }
                Err(_) => return,
            }
        }
        if !running {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

type LogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogChunk, Status>> + Send>>;
type ExecStream = Pin<Box<dyn Stream<Item = Result<pb::ExecOutput, Status>> + Send>>;

#[tonic::async_trait]
impl NodeStreams for StreamSvc {
    type LogsStream = LogsStream;
    type ExecStream = ExecStream;

    async fn logs(&self, req: Request<pb::LogsRequest>) -> Result<Response<LogsStream>, Status> {
        require_replica(&req)?;
        let req = req.into_inner();
        // Logs outlive containers (a finished Pod's sandbox is gone), so
        // they are found on disk: DIR/logs/<ns>_<pod>_<uid>/<container>/<attempt>.log.
        let (uid, pod_dir) = find_pod_logs(&self.dir, &req.namespace, &req.pod)
            .ok_or_else(|| Status::not_found(format!("pods \"{}\" has no logs on this node", req.pod)))?;
        let name = if req.container.is_empty() {
            let names = subdirs(&pod_dir);
            match names.as_slice() {
                [one] => one.clone(),
                many => {
                    return Err(Status::invalid_argument(format!(
                        "a container name must be specified for pod {}, choose one of: [{}]",
                        req.pod,
                        many.join(" ")
                    )))
                }
            }
        } else {
            req.container.clone()
        };
        let latest = attempts(&pod_dir.join(&name)).into_iter().max().ok_or_else(|| {
            Status::invalid_argument(format!(
                "container \"{name}\" in pod \"{}\" is waiting to start: no logs yet",
                req.pod
            ))
        })?;
        let attempt = if req.previous {
            latest.checked_sub(1).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "previous terminated container \"{name}\" in pod \"{}\" not found",
                    req.pod
                ))
            })?
        } else {
            latest
        };
        let path = pod_dir.join(&name).join(format!("{attempt}.log"));
        let container_id = crate::pod::container_id(&uid, &name, attempt);
        let (tx, rx) = mpsc::channel(16);
        let rt = self.rt.clone();
        std::thread::spawn(move || stream_logs(rt, container_id, path, req, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn stats(&self, req: Request<pb::StatsRequest>) -> Result<Response<pb::NodeStats>, Status> {
        require_replica(&req)?;
        self.stats.current().map(Response::new).ok_or_else(|| {
            Status::unavailable("metrics not available yet: the node has one usage reading so far")
        })
    }

    async fn exec(&self, req: Request<Streaming<pb::ExecInput>>) -> Result<Response<ExecStream>, Status> {
        require_replica(&req)?;
        let mut input = req.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an exec stream must start with ExecStart"))?;
        let Some(pb::exec_input::Input::Start(start)) = first.input else {
            return Err(Status::invalid_argument(
                "an exec stream must start with ExecStart",
            ));
        };
        if start.command.is_empty() {
            return Err(Status::invalid_argument(
                "you must specify at least one command for the container",
            ));
        }
        let rt = self.rt.clone();
        let (ns, pod) = (start.namespace.clone(), start.pod.clone());
        let (_, containers) = {
            let rt = rt.clone();
            tokio::task::spawn_blocking(move || pod_containers(rt.as_ref(), &ns, &pod))
                .await
                .map_err(|e| Status::internal(e.to_string()))??
        };
        if containers.is_empty() {
            return Err(Status::not_found(format!(
                "pods \"{}\" not found on this node",
                start.pod
            )));
        }
        let (name, _, current) = pick_container(&containers, &start.container, &start.pod)?;
        if !matches!(current.state, ContainerState::Running { .. }) {
            return Err(Status::failed_precondition(format!(
                "cannot exec into a container in a completed pod; current container \"{name}\" is not running"
            )));
        }
        let spec = ExecSpec {
            container_id: current.id.clone(),
            args: start.command.clone(),
            env: if start.tty {
                vec!["TERM=xterm".into()]
            } else {
                vec![]
            },
            tty: start.tty,
            tty_size: (start.tty && start.cols > 0).then_some((start.cols as u16, start.rows as u16)),
        };
        let proc = {
            let rt = rt.clone();
            tokio::task::spawn_blocking(move || rt.exec(&spec))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::internal(format!("exec in container \"{name}\": {e}")))?
        };
        let (tx, rx) = mpsc::channel::<Result<pb::ExecOutput, Status>>(32);
        let rk_runtime::ExecProcess {
            stdin,
            stdout,
            stderr,
            waiter,
            pty_master,
            ..
        } = proc;
        // Output readers: one thread per stream; the exit code goes last,
        // after both have drained.
        let reader = |mut f: std::fs::File, tx: mpsc::Sender<Result<pb::ExecOutput, Status>>, err: bool| {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let data = buf[..n].to_vec();
                            let out = if err {
                                pb::exec_output::Output::Stderr(data)
                            } else {
                                pb::exec_output::Output::Stdout(data)
                            };
                            if tx
                                .blocking_send(Ok(pb::ExecOutput { output: Some(out) }))
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            })
        };
        let out_thread = reader(stdout, tx.clone(), false);
        let err_thread = stderr.map(|e| reader(e, tx.clone(), true));
        let done = CancellationToken::new();
        let exit_tx = tx.clone();
        let done_w = done.clone();
        std::thread::spawn(move || {
            let code = waiter().unwrap_or(255);
            done_w.cancel();
            // With a TTY the master only reports EOF once every slave fd is
            // closed; the command has exited, so stop waiting soon after.
            let _ = out_thread.join();
            if let Some(t) = err_thread {
                let _ = t.join();
            }
            let _ = exit_tx.blocking_send(Ok(pb::ExecOutput {
                output: Some(pb::exec_output::Output::ExitCode(code)),
            }));
        });
        // Input: stdin bytes, resizes and EOF from the client.
        let (in_tx, in_rx) = std::sync::mpsc::channel::<Option<Vec<u8>>>();
        std::thread::spawn(move || {
            let mut stdin = Some(stdin);
            while let Ok(msg) = in_rx.recv() {
                let failed = match (msg, stdin.as_mut()) {
                    (Some(data), Some(f)) => f.write_all(&data).is_err(),
                    (None, _) => true,
                    _ => false,
                };
                if failed {
                    stdin = None;
                }
            }
        });
        let pty = pty_master.map(Arc::new);
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = done.cancelled() => return,
                    m = input.message() => m,
                };
                match msg {
                    Ok(Some(pb::ExecInput {
                        input: Some(pb::exec_input::Input::Stdin(data)),
                    })) => {
                        let _ = in_tx.send(Some(data));
                    }
                    Ok(Some(pb::ExecInput {
                        input: Some(pb::exec_input::Input::Resize(size)),
                    })) => {
                        if let Some(p) = &pty {
                            let (rt, p) = (rt.clone(), p.clone());
                            let _ = tokio::task::spawn_blocking(move || {
                                rt.resize_tty(&p, size.cols as u16, size.rows as u16)
                            })
                            .await;
                        }
                    }
                    Ok(Some(pb::ExecInput {
                        input: Some(pb::exec_input::Input::CloseStdin(true)),
                    }))
                    | Ok(None)
                    | Err(_) => {
                        let _ = in_tx.send(None);
                        if !matches!(msg, Ok(Some(_))) {
                            return;
                        }
                    }
                    Ok(Some(_)) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Binds `listen` (port 0 picks one) and returns the port and the server future.
pub async fn serve(
    listen: &str,
    identity: &rk_client::tls::TlsIdentity,
    svc: StreamSvc,
    cancel: CancellationToken,
) -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("bind the stream endpoint {listen}"))?;
    let port = listener.local_addr().context("local address")?.port();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem))
        .client_ca_root(Certificate::from_pem(&identity.ca_pem));
    let server = Server::builder()
        .tls_config(tls)
        .context("TLS configuration")?
        .add_service(NodeStreamsServer::new(svc));
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let handle = tokio::spawn(async move {
        if let Err(e) = server
            .serve_with_incoming_shutdown(incoming, cancel.cancelled())
            .await
        {
            tracing::error!(error = %e, "the stream endpoint stopped");
        }
    });
    Ok((port, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_render_with_and_without_timestamps() {
        let l = "2026-11-27T06:00:00.123456789Z stdout F hello world";
        assert_eq!(render(l, false).as_deref(), Some("hello world\n"));
        assert_eq!(
            render(l, true).as_deref(),
            Some("2026-11-27T06:00:00.123456789Z hello world\n")
        );
        let partial = "2026-11-27T06:00:00.1Z stderr P part";
        assert_eq!(render(partial, false).as_deref(), Some("part"));
        assert!(since_ok(l, Some("2026-11-27T05:00:00Z")));
        assert!(!since_ok(l, Some("2026-11-27T07:00:00Z")));
    }
}
