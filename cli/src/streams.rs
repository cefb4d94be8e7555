//! `logs`, `exec` and `cp`: container streams through the control plane,
//! which relays them to the Pod's node agent.

use crate::error::{CliError, Result};
use crate::Ctx;
use rk_client::error::from_status;
use rk_proto::v1 as pb;
use rk_proto::v1::api_client::ApiClient;
use std::io::{Read, Write};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The Pod (`NAME` or `pod/NAME`); omit with -l.
    pod: Option<String>,
    /// The container (required when the Pod has several).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    follow: bool,
    /// The previous instance of the container (after a restart).
    #[arg(short = 'p', long)]
    previous: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    tail: i64,
    /// Only lines newer than this (e.g. 30s, 5m, 2h).
    #[arg(long)]
    since: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    timestamps: bool,
    /// The logs of every Pod matching this label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Prefix each line with its source (`[pod/NAME/CONTAINER]`); the default with -l.
    #[arg(long)]
    prefix: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The Pod (`NAME` or `pod/NAME`).
    pod: String,
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// `[NAMESPACE/]POD:PATH` or a local path.
    src: String,
    /// `[NAMESPACE/]POD:PATH` or a local path.
    dest: String,
    #[arg(short = 'c', long)]
    container: Option<String>,
}

fn pod_name(arg: &str) -> Result<String> {
    match arg.split_once('/') {
        None => Ok(arg.to_string()),
        Some(("pod" | "pods" | "po", name)) => Ok(name.to_string()),
        Some((kind, _)) => Err(CliError::local(format!(
            "logs and exec take a pod, not \"{kind}\"; name the pod (rkctl get pods -l ...)"
        ))),
    }
}

/// "30s", "5m", "2h", "1h30m" → seconds.
pub fn parse_since(s: &str) -> Result<i64> {
    let bad = || {
        CliError::local(format!(
            "invalid argument \"{s}\" for \"--since\": use a duration like 30s, 5m or 2h"
        ))
    };
    let mut total = 0i64;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() || total <= 0 {
        return Err(bad());
    }
    Ok(total)
}

fn api(ctx: &mut Ctx<'_>) -> Result<ApiClient<tonic::transport::Channel>> {
    let c = ctx.client()?;
    Ok(ApiClient::new(c.channel()).max_decoding_message_size(64 * 1024 * 1024))
}

async fn stream_one<W: Write + ?Sized>(
    client: &mut ApiClient<tonic::transport::Channel>,
    req: pb::LogsRequest,
    prefix: Option<String>,
    out: &mut W,
) -> Result<()> {
    let mut stream = client
        .pod_logs(req)
        .await
        .map_err(|s| CliError::Api(from_status(&s)))?
        .into_inner();
    let mut partial = String::new();
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                let text = String::from_utf8_lossy(&chunk.data);
                match &prefix {
                    None => {
                        let _ = out.write_all(text.as_bytes());
                    }
                    Some(p) => {
                        partial.push_str(&text);
                        while let Some(nl) = partial.find('\n') {
                            let line: String = partial.drain(..=nl).collect();
                            let _ = write!(out, "{p} {line}");
                        }
                    }
                }
                let _ = out.flush();
            }
            Ok(None) => break,
            Err(s) => return Err(CliError::Api(from_status(&s))),
        }
    }
    if !partial.is_empty() {
        let _ = writeln!(out, "{} {partial}", prefix.unwrap_or_default());
    }
    Ok(())
}

pub async fn logs(ctx: &mut Ctx<'_>, a: LogsArgs) -> Result<()> {
    let since_seconds = a.since.as_deref().map(parse_since).transpose()?.unwrap_or(0);
    let mut client = api(ctx)?;
    let ns = ctx.namespace();
    let base = pb::LogsRequest {
        namespace: ns.clone(),
        pod: String::new(),
        container: a.container.clone().unwrap_or_default(),
        follow: a.follow,
        previous: a.previous,
        tail_lines: a.tail,
        since_seconds,
        timestamps: a.timestamps,
    };
    match (&a.pod, &a.selector) {
        (Some(pod), None) => {
            let pod = pod_name(pod)?;
            let prefix = a
                .prefix
                .then(|| format!("[pod/{pod}/{}]", a.container.clone().unwrap_or_default()));
            stream_one(&mut client, pb::LogsRequest { pod, ..base }, prefix, ctx.out).await
        }
        (None, Some(sel)) => {
            let c = ctx.client()?;
            let (pods, _) = c
                .list(
                    "pods",
                    &rk_client::ListParams {
                        namespace: Some(ns),
                        label_selector: sel.clone(),
                        ..Default::default()
                    },
                )
                .await?;
            if pods.is_empty() {
                ctx.eprint_line("No resources found");
                return Ok(());
            }
            // One stream per Pod and container, interleaved line by line.
            let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
            let mut tasks = Vec::new();
            for p in &pods {
                let name = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let containers: Vec<String> = match &a.container {
                    Some(c) => vec![c.clone()],
                    None => p["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["name"].as_str().map(str::to_string))
                        .collect(),
                };
                for cname in containers {
                    let req = pb::LogsRequest {
                        pod: name.clone(),
                        container: cname.clone(),
                        ..base.clone()
                    };
                    let mut client = client.clone();
                    let tx = tx.clone();
                    let prefix = format!("[pod/{name}/{cname}]");
                    tasks.push(tokio::spawn(async move {
                        let mut w = ChannelWriter(tx);
                        stream_one(&mut client, req, Some(prefix), &mut w).await
                    }));
                }
            }
            drop(tx);
            while let Some(chunk) = rx.recv().await {
                let _ = ctx.out.write_all(&chunk);
            }
            for t in tasks {
                if let Ok(Err(e)) = t.await {
                    ctx.report(&e);
                }
            }
            Ok(())
        }
        (Some(_), Some(_)) => Err(CliError::local("only one of a pod name or -l may be given")),
        (None, None) => Err(CliError::local("expected a pod name or -l SELECTOR")),
    }
}

/// Hands each write to the task that owns stdout.
struct ChannelWriter(mpsc::UnboundedSender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Puts the terminal in raw mode while alive.
struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    fn enable() -> Option<Self> {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a properly sized struct.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(Self { saved })
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `enable`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

fn terminal_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
    }
}

/// Runs `command` in the container with `input` as stdin (None: no stdin)
/// and returns its exit code; output goes to `out`/`err`.
#[allow(clippy::too_many_arguments)]
async fn run_exec(
    client: &mut ApiClient<tonic::transport::Channel>,
    namespace: &str,
    pod: &str,
    container: &str,
    command: Vec<String>,
    tty: bool,
    input: Option<mpsc::Receiver<pb::ExecInput>>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let (cols, rows) = if tty {
        terminal_size().unwrap_or((80, 24))
    } else {
        (0, 0)
    };
    let (tx, rx) = mpsc::channel::<pb::ExecInput>(16);
    let start = pb::ExecInput {
        input: Some(pb::exec_input::Input::Start(pb::ExecStart {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
            command,
            tty,
            stdin: input.is_some(),
            cols: cols.into(),
            rows: rows.into(),
        })),
    };
    let _ = tx.send(start).await;
    match input {
        None => {
            let _ = tx
                .send(pb::ExecInput {
                    input: Some(pb::exec_input::Input::CloseStdin(true)),
                })
                .await;
            // Keep the request stream open until the command ends: closing it
            // would look like the client going away.
            tokio::spawn(async move {
                tx.closed().await;
            });
        }
        Some(mut input) => {
            tokio::spawn(async move {
                while let Some(m) = input.recv().await {
                    if tx.send(m).await.is_err() {
                        return;
                    }
                }
                tx.closed().await;
            });
        }
    }
    let mut stream = client
        .pod_exec(ReceiverStream::new(rx))
        .await
        .map_err(|s| CliError::Api(from_status(&s)))?
        .into_inner();
    loop {
        match stream.message().await {
            Ok(Some(pb::ExecOutput { output: Some(o) })) => match o {
                pb::exec_output::Output::Stdout(d) => {
                    let _ = out.write_all(&d);
                    let _ = out.flush();
                }
                pb::exec_output::Output::Stderr(d) => {
                    let _ = err.write_all(&d);
                    let _ = err.flush();
                }
                pb::exec_output::Output::ExitCode(c) => return Ok(c),
            },
            Ok(Some(_)) => {}
            Ok(None) => return Err(CliError::local("the exec stream ended without an exit code")),
            Err(s) => return Err(CliError::Api(from_status(&s))),
        }
    }
}

/// Reads the process's stdin on a thread and turns it into exec input.
fn stdin_pump() -> mpsc::Receiver<pb::ExecInput> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 8192];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(pb::ExecInput {
                        input: Some(pb::exec_input::Input::CloseStdin(true)),
                    });
                    return;
                }
                Ok(n) => {
                    let m = pb::ExecInput {
                        input: Some(pb::exec_input::Input::Stdin(buf[..n].to_vec())),
                    };
                    if tx.blocking_send(m).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

pub async fn exec(ctx: &mut Ctx<'_>, a: ExecArgs) -> Result<()> {
    let pod = pod_name(&a.pod)?;
    let mut client = api(ctx)?;
    let ns = ctx.namespace();
    // A terminal is only real when stdin is one; kubectl warns the same way.
    let tty = if a.tty && !a.stdin {
        ctx.eprint_line("Unable to use a TTY - input is not a terminal or the right kind of file");
        false
    } else {
        a.tty
    };
    let _raw = if tty { RawTerminal::enable() } else { None };
    let input = a.stdin.then(stdin_pump);
    let code = run_exec(
        &mut client,
        &ns,
        &pod,
        a.container.as_deref().unwrap_or(""),
        a.command,
        tty,
        input,
        ctx.out,
        ctx.err,
    )
    .await?;
    if code == 0 {
        Ok(())
    } else {
        Err(CliError::Exit(code))
    }
}

/// `[ns/]pod:path` → (namespace, pod, path).
fn remote(spec: &str) -> Option<(Option<String>, String, String)> {
    let (left, path) = spec.split_once(':')?;
    if left.is_empty() || left.contains('.') && !left.contains('/') && std::path::Path::new(left).exists() {
        return None;
    }
    let (ns, pod) = match left.split_once('/') {
        Some((ns, pod)) => (Some(ns.to_string()), pod.to_string()),
        None => (None, left.to_string()),
    };
    Some((ns, pod, path.to_string()))
}

pub async fn cp(ctx: &mut Ctx<'_>, a: CpArgs) -> Result<()> {
    let mut client = api(ctx)?;
    let default_ns = ctx.namespace();
    let container = a.container.clone().unwrap_or_default();
    match (remote(&a.src), remote(&a.dest)) {
        (None, Some((ns, pod, path))) => {
            // Local → container: a tar of the source, unpacked by the container's tar.
            let src = std::path::Path::new(&a.src);
            if !src.exists() {
                return Err(CliError::local(format!("{}: no such file or directory", a.src)));
            }
            let dest = std::path::Path::new(&path);
            let (dir, name) = match (dest.parent(), dest.file_name()) {
                (Some(d), Some(n)) if !path.ends_with('/') => {
                    (d.display().to_string(), n.to_string_lossy().into_owned())
                }
                _ => (
                    path.clone(),
                    src.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
            };
            let dir = if dir.is_empty() { "/".to_string() } else { dir };
            let mut archive = tar::Builder::new(Vec::new());
            let added = if src.is_dir() {
                archive.append_dir_all(&name, src)
            } else {
                archive.append_path_with_name(src, &name)
            };
            added.map_err(|e| CliError::local(format!("{}: {e}", a.src)))?;
            let bytes = archive
                .into_inner()
                .map_err(|e| CliError::local(format!("{}: {e}", a.src)))?;
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                for chunk in bytes.chunks(64 * 1024) {
                    let m = pb::ExecInput {
                        input: Some(pb::exec_input::Input::Stdin(chunk.to_vec())),
                    };
                    if tx.send(m).await.is_err() {
                        return;
                    }
                }
                let _ = tx
                    .send(pb::ExecInput {
                        input: Some(pb::exec_input::Input::CloseStdin(true)),
                    })
                    .await;
                tx.closed().await;
            });
            let mut err = Vec::new();
            let code = run_exec(
                &mut client,
                &ns.unwrap_or(default_ns),
                &pod,
                &container,
                vec!["tar".into(), "xf".into(), "-".into(), "-C".into(), dir],
                false,
                Some(rx),
                &mut std::io::sink(),
                &mut err,
            )
            .await?;
            if code != 0 {
                return Err(CliError::local(format!(
                    "copying into {pod}: tar exited with {code}: {}",
                    String::from_utf8_lossy(&err).trim()
                )));
            }
            Ok(())
        }
        (Some((ns, pod, path)), None) => {
            // Container → local: the container's tar of the path, unpacked here.
            let p = std::path::Path::new(&path);
            let parent = p
                .parent()
                .map(|d| d.display().to_string())
                .filter(|d| !d.is_empty())
                .unwrap_or("/".into());
            let base = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| ".".into());
            let mut out = Vec::new();
            let mut err = Vec::new();
            let code = run_exec(
                &mut client,
                &ns.unwrap_or(default_ns),
                &pod,
                &container,
                vec![
                    "tar".into(),
                    "cf".into(),
                    "-".into(),
                    "-C".into(),
                    parent,
                    base.clone(),
                ],
                false,
                None,
                &mut out,
                &mut err,
            )
            .await?;
            if code != 0 {
                return Err(CliError::local(format!(
                    "copying from {pod}: tar exited with {code}: {}",
                    String::from_utf8_lossy(&err).trim()
                )));
            }
            let dest = std::path::PathBuf::from(&a.dest);
            let mut archive = tar::Archive::new(std::io::Cursor::new(out));
            let entries = archive
                .entries()
                .map_err(|e| CliError::local(format!("reading the archive: {e}")))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| CliError::local(format!("reading the archive: {e}")))?;
                let rel = entry
                    .path()
                    .map_err(|e| CliError::local(format!("reading the archive: {e}")))?
                    .into_owned();
                // The archive's top entry is `base`; it lands at `dest`.
                let stripped = rel.strip_prefix(&base).unwrap_or(&rel).to_path_buf();
                if stripped
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(CliError::local(format!(
                        "refusing the archive path {}",
                        rel.display()
                    )));
                }
                let target = if stripped.as_os_str().is_empty() {
                    dest.clone()
                } else {
                    dest.join(stripped)
                };
                if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| CliError::local(format!("{}: {e}", parent.display())))?;
                }
                entry
                    .unpack(&target)
                    .map_err(|e| CliError::local(format!("{}: {e}", target.display())))?;
            }
            Ok(())
        }
        (Some(_), Some(_)) => Err(CliError::local(
            "one of src or dest must be a local file or directory",
        )),
        (None, None) => Err(CliError::local(
            "one of src or dest must be a remote file specification (POD:PATH)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_durations() {
        assert_eq!(parse_since("30s").ok(), Some(30));
        assert_eq!(parse_since("5m").ok(), Some(300));
        assert_eq!(parse_since("1h30m").ok(), Some(5400));
        assert!(parse_since("5").is_err());
        assert!(parse_since("x").is_err());
    }

    #[test]
    fn remote_specs() {
        assert_eq!(remote("web:/tmp/x"), Some((None, "web".into(), "/tmp/x".into())));
        assert_eq!(
            remote("ns/web:/tmp"),
            Some((Some("ns".into()), "web".into(), "/tmp".into()))
        );
        assert_eq!(remote("/local/file"), None);
        assert_eq!(pod_name("pod/web").ok().as_deref(), Some("web"));
        assert!(pod_name("deployment/web").is_err());
    }
}
