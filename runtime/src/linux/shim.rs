//! The `rk-shim` helper: everything that must happen in a fresh,
//! single-threaded process (forking, changing namespaces, mounting), so the
//! agent itself never does more after fork() than exec.
//!
//! * `rk-shim run <container dir>` — one per container, for its whole life.
//!   It daemonizes (the runtime started it in a new session; it forks once
//!   more so it is not the agent's child and survives agent restarts), joins
//!   the Pod's network/IPC/UTS namespaces, creates (or joins) the PID
//!   namespace and forks the container process, which builds its rootfs in a
//!   new mount namespace and execs. The shim stays its parent: it reports
//!   "started" or the start error on the control pipe (fd 3), copies the
//!   output into the CRI log, and writes `exit.json` when the process ends.
//! * `rk-shim exec <json>` — one per exec, a child of the agent: joins all
//!   namespaces and the cgroup of a running container, forks (so the command
//!   is inside the PID namespace), execs and exits with the command's code.
//!   With a TTY it sends the PTY master to the runtime over fd 3.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::SystemTime;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};
use serde::{Deserialize, Serialize};

use super::caps;
use super::cgroup::CgroupFs;
use super::logs::{format_entry, LineSplitter, RotatingLog, Stream};
use super::rootfs::{self, lookup_executable, path_from_env, RootfsPlan};
use super::state::{self, ContainerConfig, Exited, StartReply, Started};
use super::sys::{self, CONTROL_FD};
use super::timefmt::to_nanos;

/// What `rk-shim exec` needs, passed as JSON in its argv.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecConfig {
    pub pid: u32,
    pub pid_start: u64,
    pub cgroup: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub uid: u32,
    pub gid: u32,
    pub supplementary_gids: Vec<u32>,
    pub capabilities: u64,
    pub privileged: bool,
    pub tty: bool,
    pub tty_size: Option<(u16, u16)>,
}

/// Exit code of an exec whose command was not found, as a shell reports it.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit code of an exec that failed before running the command.
pub const EXIT_SETUP_FAILED: i32 = 126;
/// Exit code recorded for a container that never started (what runc uses for start errors).
pub const EXIT_START_FAILED: i32 = 128;

/// Entry point of the `rk-shim` binary; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("run"), Some(dir)) => run(Path::new(dir)),
        (Some("exec"), Some(json)) => match serde_json::from_str::<ExecConfig>(json) {
            Ok(cfg) => exec(&cfg),
            Err(e) => {
                eprintln!("rk-shim exec: bad config: {e}");
                EXIT_SETUP_FAILED
            }
        },
        _ => {
            eprintln!("usage: rk-shim run <container dir> | rk-shim exec <json>");
            2
        }
    }
}

/// Takes ownership of the control descriptor the runtime placed at fd 3.
fn control_fd() -> Option<OwnedFd> {
    // F_GETFD succeeds only if fd 3 is open.
    // SAFETY: fcntl(F_GETFD) only queries the descriptor table.
    if unsafe { libc::fcntl(CONTROL_FD, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the runtime hands fd 3 to this process and nothing else in it owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(CONTROL_FD) };
    // Keep it out of the container process.
    let _ = sys::set_cloexec(fd.as_fd(), true);
    Some(fd)
}

fn reply(control: &OwnedFd, r: &StartReply) {
    if let Ok(bytes) = serde_json::to_vec(r) {
        if let Err(e) = sys::write_all(control.as_fd(), &bytes) {
            eprintln!("rk-shim: report start: {e}");
        }
    }
}

fn run(dir: &Path) -> i32 {
    let Some(control) = control_fd() else {
        eprintln!("rk-shim run: no control descriptor");
        return 2;
    };
    // Daemonize: the runtime reaps this first process at once; the second
    // one is adopted by init (or the nearest subreaper) and outlives the agent.
    // SAFETY: single-threaded process.
    match unsafe { fork() } {
        Err(e) => {
            reply(&control, &StartReply::Failed(format!("shim fork: {e}")));
            return 1;
        }
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
    }
    let cfg: ContainerConfig = match state::read_json(&dir.join("config.json")) {
        Ok(Some(c)) => c,
        Ok(None) => {
            reply(&control, &StartReply::Failed("container config missing".into()));
            return 1;
        }
        Err(e) => {
            reply(
                &control,
                &StartReply::Failed(format!("read container config: {e}")),
            );
            return 1;
        }
    };
    match supervise(dir, &cfg, control) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rk-shim {}: {e}", cfg.id);
            1
        }
    }
}

/// Where the container's output goes.
enum Output {
    Pipes { stdout: OwnedFd, stderr: OwnedFd },
    Tty(OwnedFd),
}

fn write_exit(dir: &Path, e: &Exited) {
    if let Err(err) = state::write_json(&dir.join("exit.json"), e) {
        eprintln!("rk-shim: write exit status: {err}");
    }
}

fn start_failed(dir: &Path, control: &OwnedFd, msg: String) -> Result<(), String> {
    write_exit(
        dir,
        &Exited {
            exit_code: EXIT_START_FAILED,
            signal: None,
            oom_killed: false,
            finished_at_ns: to_nanos(SystemTime::now()),
            unknown: false,
            start_error: Some(msg.clone()),
        },
    );
    reply(control, &StartReply::Failed(msg.clone()));
    Err(msg)
}

fn open_ns(pid: u32, name: &str) -> Result<File, String> {
    File::open(format!("/proc/{pid}/ns/{name}")).map_err(|e| format!("open {name} namespace of {pid}: {e}"))
}

fn supervise(dir: &Path, cfg: &ContainerConfig, control: OwnedFd) -> Result<(), String> {
    let _ = nix::sys::prctl::set_child_subreaper(true);
    if !state::alive(cfg.sandbox_pid, cfg.sandbox_pid_start) {
        return start_failed(dir, &control, "the sandbox's pause process is gone".into());
    }
    let mut log = match RotatingLog::open(&cfg.log_path, cfg.log_max_bytes, cfg.log_max_files) {
        Ok(l) => l,
        Err(e) => return start_failed(dir, &control, format!("open log {}: {e}", cfg.log_path.display())),
    };
    let ns = (|| -> Result<Vec<(File, CloneFlags)>, String> {
        let mut v = vec![
            (open_ns(cfg.sandbox_pid, "net")?, CloneFlags::CLONE_NEWNET),
            (open_ns(cfg.sandbox_pid, "ipc")?, CloneFlags::CLONE_NEWIPC),
            (open_ns(cfg.sandbox_pid, "uts")?, CloneFlags::CLONE_NEWUTS),
        ];
        if cfg.share_process_namespace {
            v.push((open_ns(cfg.sandbox_pid, "pid")?, CloneFlags::CLONE_NEWPID));
        }
        Ok(v)
    })();
    let ns = match ns {
        Ok(ns) => ns,
        Err(e) => return start_failed(dir, &control, e),
    };
    // Joining these changes only the shim's network/IPC/UTS view (it uses
    // none of them) and, for PID, where its children are created.
    for (f, kind) in &ns {
        if let Err(e) = setns(f, *kind) {
            return start_failed(dir, &control, format!("join sandbox namespace {kind:?}: {e}"));
        }
    }
    if !cfg.share_process_namespace {
        if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
            return start_failed(dir, &control, format!("new pid namespace: {e}"));
        }
    }
    drop(ns);

    let made = (|| -> std::io::Result<_> {
        let status = sys::pipe()?;
        let (tty_parent, tty_child) = if cfg.tty {
            let (a, b) = sys::socket_pair()?;
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        let pipes = if cfg.tty {
            None
        } else {
            Some((sys::pipe()?, sys::pipe()?))
        };
        Ok((status, tty_parent, tty_child, pipes))
    })();
    let ((status_r, status_w), tty_parent, tty_child, pipes) = match made {
        Ok(m) => m,
        Err(e) => return start_failed(dir, &control, format!("create stdio: {e}")),
    };

    // SAFETY: the shim is single-threaded, so the child may allocate and do anything.
    let child = match unsafe { fork() } {
        Err(e) => return start_failed(dir, &control, format!("fork: {e}")),
        Ok(ForkResult::Child) => {
            drop(status_r);
            drop(tty_parent);
            let stdio = pipes
                .as_ref()
                .map(|((_, out_w), (_, err_w))| (out_w.as_fd(), err_w.as_fd()));
            let Err(msg) = container_child(cfg, stdio, tty_child.as_ref().map(|f| f.as_fd()));
            let _ = sys::write_all(status_w.as_fd(), msg.as_bytes());
            // SAFETY: _exit skips atexit handlers and buffers inherited from the shim.
            unsafe { libc::_exit(1) }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(status_w);
    drop(tty_child);
    let output = match pipes {
        Some(((out_r, _), (err_r, _))) => Some(Output::Pipes {
            stdout: out_r,
            stderr: err_r,
        }),
        None => match tty_parent.as_ref().map(|s| sys::recv_fd(s.as_fd())) {
            Some(Ok(Some(master))) => Some(Output::Tty(master)),
            _ => None,
        },
    };
    drop(tty_parent);
    let msg = sys::read_to_end(status_r.as_fd()).unwrap_or_default();
    if !msg.is_empty() || output.is_none() {
        let _ = waitpid(child, None);
        let msg = String::from_utf8_lossy(&msg).to_string();
        let msg = if msg.is_empty() {
            "container process failed to start".to_string()
        } else {
            msg
        };
        return start_failed(dir, &control, msg);
    }
    let pid = child.as_raw() as u32;
    let started = Started {
        shim_pid: std::process::id(),
        shim_start: state::start_time(std::process::id()).unwrap_or(0),
        pid,
        pid_start: state::start_time(pid).unwrap_or(0),
        started_at_ns: to_nanos(SystemTime::now()),
    };
    if let Err(e) = state::write_json(&dir.join("started.json"), &started) {
        // Without the record nobody can find the process: do not leave it running.
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        return start_failed(dir, &control, format!("record start: {e}"));
    }
    reply(&control, &StartReply::Started(started));
    drop(control);

    if let Some(output) = output {
        pump(child, output, &mut log);
    }
    let status = wait_for(child);
    let (exit_code, signal) = match status {
        Some(WaitStatus::Exited(_, code)) => (code, None),
        Some(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let oom_killed = CgroupFs::detect().oom_kills(&cfg.cgroup) > 0;
    write_exit(
        dir,
        &Exited {
            exit_code,
            signal,
            oom_killed,
            finished_at_ns: to_nanos(SystemTime::now()),
            unknown: status.is_none(),
            start_error: None,
        },
    );
    Ok(())
}

/// Reaps children until `child` is among them (the shim is a subreaper, so
/// orphans of the container may be handed to it too).
fn wait_for(child: Pid) -> Option<WaitStatus> {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(s @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _))) if p == child => {
                return Some(s)
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => return None,
        }
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
}

/// Copies the container's output into the log until every stream is closed,
/// or the process has exited and what it left in the pipes is drained (a
/// background process may keep a pipe open after the main one is gone).
fn pump(child: Pid, output: Output, log: &mut RotatingLog) {
    let mut streams: Vec<(OwnedFd, Stream, LineSplitter)> = match output {
        Output::Pipes { stdout, stderr } => vec![
            (stdout, Stream::Stdout, LineSplitter::default()),
            (stderr, Stream::Stderr, LineSplitter::default()),
        ],
        Output::Tty(master) => vec![(master, Stream::Stdout, LineSplitter::default())],
    };
    let pidfd = sys::pidfd_open(child.as_raw()).ok();
    let mut buf = vec![0u8; 32 * 1024];
    let mut exited = false;
    while !streams.is_empty() {
        let mut ready = vec![false; streams.len()];
        let mut child_done = false;
        {
            let mut fds: Vec<PollFd<'_>> = streams
                .iter()
                .map(|(fd, _, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            if let Some(p) = &pidfd {
                if !exited {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(_) => break,
            }
            for (i, fd) in fds.iter().enumerate() {
                let hit = fd.revents().is_some_and(|r| !r.is_empty());
                if i < streams.len() {
                    ready[i] = hit;
                } else {
                    child_done = hit;
                }
            }
        }
        if child_done {
            // From now on read only what is already buffered.
            exited = true;
            for (fd, _, _) in &streams {
                set_nonblocking(fd.as_fd());
            }
            ready.iter_mut().for_each(|r| *r = true);
        }
        let mut closed = Vec::new();
        for (i, (fd, stream, splitter)) in streams.iter_mut().enumerate() {
            if !ready[i] {
                continue;
            }
            loop {
                match nix::unistd::read(&*fd, &mut buf) {
                    Ok(0) => {
                        closed.push(i);
                        break;
                    }
                    Ok(n) => {
                        let now = SystemTime::now();
                        let s = *stream;
                        splitter.push(&buf[..n], &mut |line, partial| {
                            if let Err(e) = log.write_entry(&format_entry(now, s, partial, line)) {
                                eprintln!("rk-shim: write log: {e}");
                            }
                        });
                        if !exited {
                            break;
                        }
                    }
                    Err(nix::Error::EINTR) => {}
                    // EIO: the pty's other side is closed. EAGAIN: drained after exit.
                    Err(_) => {
                        closed.push(i);
                        break;
                    }
                }
            }
        }
        for i in closed.into_iter().rev() {
            let (_, s, mut splitter) = streams.remove(i);
            let now = SystemTime::now();
            splitter.finish(&mut |line, partial| {
                let _ = log.write_entry(&format_entry(now, s, partial, line));
            });
        }
    }
}

/// Sets groups, gid and uid, then the capability sets, no_new_privs and the
/// parent-death signal; shared by containers and execs.
fn become_user(
    uid: u32,
    gid: u32,
    groups: &[u32],
    capabilities: u64,
    privileged: bool,
) -> Result<(), String> {
    let last = caps::last_cap();
    // Dropping from the bounding set needs CAP_SETPCAP, which a non-root uid no longer has.
    caps::drop_bounding(capabilities, last)?;
    nix::sys::prctl::set_keepcaps(true).map_err(|e| format!("keep caps: {e}"))?;
    let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).map_err(|e| format!("setgroups: {e}"))?;
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(|e| format!("setgid {gid}: {e}"))?;
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|e| format!("setuid {uid}: {e}"))?;
    caps::set(capabilities)?;
    let _ = nix::sys::prctl::set_keepcaps(false);
    if !privileged {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    }
    Ok(())
}

/// The environment to exec with: PATH and HOME added when missing, as Docker does.
fn full_env(env: &[String], uid: u32) -> Vec<String> {
    let mut out = env.to_vec();
    if !out.iter().any(|e| e.starts_with("PATH=")) {
        out.push(format!("PATH={}", rootfs::DEFAULT_PATH));
    }
    if !out.iter().any(|e| e.starts_with("HOME=")) {
        out.push(if uid == 0 {
            "HOME=/root".to_string()
        } else {
            "HOME=/".to_string()
        });
    }
    out
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, String> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| format!("{s:?} contains a NUL byte")))
        .collect()
}

/// Resolves and execs the program; only returns on failure, with whether the program was missing.
fn exec_program(args: &[String], env: &[String]) -> (String, bool) {
    let Some(argv0) = args.first() else {
        return ("exec: no command".to_string(), true);
    };
    let path = match lookup_executable(argv0, path_from_env(env), Path::new("/")) {
        Ok(p) => p,
        Err(msg) => return (msg, true),
    };
    let (argv, envp) = match (cstrings(args), cstrings(env)) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(m), _) | (_, Err(m)) => return (m, false),
    };
    let Ok(cpath) = CString::new(path.as_bytes()) else {
        return (format!("exec: {path:?}: bad path"), false);
    };
    let Err(e) = nix::unistd::execve(&cpath, &argv, &envp);
    (
        format!("exec: {argv0:?}: {}", e.desc().to_lowercase()),
        e == nix::Error::ENOENT,
    )
}

fn join_cgroup(rel: &str) -> Result<(), String> {
    for path in CgroupFs::detect().procs_files(rel) {
        // "0" means the writing process.
        std::fs::write(&path, "0").map_err(|e| format!("join cgroup {}: {e}", path.display()))?;
    }
    Ok(())
}

fn chdir_working_dir(dir: &str) -> Result<(), String> {
    let dir = if dir.is_empty() {
        "/".to_string()
    } else {
        rootfs::clean_abs(dir)
    };
    if !Path::new(&dir).is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("create working directory {dir}: {e}"))?;
    }
    nix::unistd::chdir(dir.as_str()).map_err(|e| format!("chdir to working directory {dir}: {e}"))
}

/// The container process, from fork to exec. Returns only with an error message.
fn container_child(
    cfg: &ContainerConfig,
    pipes: Option<(BorrowedFd<'_>, BorrowedFd<'_>)>,
    tty_sock: Option<BorrowedFd<'_>>,
) -> Result<Infallible, String> {
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    join_cgroup(&cfg.cgroup)?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("new mount namespace: {e}"))?;
    rootfs::setup(&RootfsPlan {
        rootfs: &cfg.rootfs,
        layers: &cfg.layers,
        upper: &cfg.upper,
        work: &cfg.work,
        mounts: &cfg.mounts,
        read_only: cfg.read_only_rootfs,
        privileged: cfg.privileged,
    })?;
    let null = sys::dev_null().map_err(|e| format!("open /dev/null: {e}"))?;
    match (pipes, tty_sock) {
        (Some((out, err)), _) => {
            sys::redirect_stdio(null.as_fd(), out, err).map_err(|e| e.to_string())?;
        }
        (None, Some(sock)) => {
            // Opened after pivot_root so the terminal belongs to the container's own devpts.
            let (master, slave) = sys::open_pty(Path::new("/dev/ptmx")).map_err(|e| e.to_string())?;
            sys::set_controlling_tty(slave.as_fd()).map_err(|e| e.to_string())?;
            sys::send_fd(sock, master.as_fd()).map_err(|e| e.to_string())?;
            drop(master);
            sys::redirect_stdio(slave.as_fd(), slave.as_fd(), slave.as_fd()).map_err(|e| e.to_string())?;
        }
        (None, None) => return Err("no stdio for the container".into()),
    }
    drop(null);
    chdir_working_dir(&cfg.working_dir)?;
    let env = full_env(&cfg.env, cfg.uid);
    become_user(
        cfg.uid,
        cfg.gid,
        &cfg.supplementary_gids,
        cfg.capabilities,
        cfg.privileged,
    )?;
    // The container dies with its shim: with nobody left to record its exit,
    // a still-running orphan would be a process no status can describe.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("pdeathsig: {e}"))?;
    Err(exec_program(&cfg.args, &env).0)
}

/// `rk-shim exec`: returns the exit code for the helper process.
fn exec(cfg: &ExecConfig) -> i32 {
    match exec_inner(cfg) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            EXIT_SETUP_FAILED
        }
    }
}

fn exec_inner(cfg: &ExecConfig) -> Result<i32, String> {
    let control = control_fd();
    if !state::alive(cfg.pid, cfg.pid_start) {
        return Err("container is not running".into());
    }
    // Join the cgroup first: after setns(mnt) the host's /sys/fs/cgroup is out of sight.
    join_cgroup(&cfg.cgroup)?;
    let mut ns = Vec::new();
    for (name, kind) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        ns.push((open_ns(cfg.pid, name)?, kind));
    }
    // The mount namespace goes last: it changes what /proc paths mean.
    for (f, kind) in &ns {
        setns(f, *kind).map_err(|e| format!("join container namespace {kind:?}: {e}"))?;
    }
    drop(ns);
    chdir_working_dir(&cfg.working_dir)?;
    let tty = if cfg.tty {
        let control = control.as_ref().ok_or("no control descriptor for the terminal")?;
        let (master, slave) = sys::open_pty(Path::new("/dev/ptmx")).map_err(|e| e.to_string())?;
        if let Some((cols, rows)) = cfg.tty_size {
            sys::set_winsize(master.as_fd(), cols, rows).map_err(|e| e.to_string())?;
        }
        sys::send_fd(control.as_fd(), master.as_fd()).map_err(|e| e.to_string())?;
        Some(slave)
    } else {
        None
    };
    drop(control);
    // SAFETY: the helper is single-threaded.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let code = match exec_child(cfg, tty.as_ref()) {
                Ok(never) => match never {},
                Err((msg, missing)) => {
                    eprintln!("{msg}");
                    if missing {
                        EXIT_NOT_FOUND
                    } else {
                        EXIT_SETUP_FAILED
                    }
                }
            };
            // SAFETY: leave without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(tty);
            Ok(match wait_for(child) {
                Some(WaitStatus::Exited(_, code)) => code,
                Some(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
                _ => 255,
            })
        }
    }
}

fn exec_child(cfg: &ExecConfig, tty: Option<&OwnedFd>) -> Result<Infallible, (String, bool)> {
    let setup = |e: String| (e, false);
    nix::unistd::setsid().map_err(|e| setup(format!("setsid: {e}")))?;
    if let Some(slave) = tty {
        sys::set_controlling_tty(slave.as_fd()).map_err(|e| setup(e.to_string()))?;
        sys::redirect_stdio(slave.as_fd(), slave.as_fd(), slave.as_fd()).map_err(|e| setup(e.to_string()))?;
    }
    let env = full_env(&cfg.env, cfg.uid);
    become_user(
        cfg.uid,
        cfg.gid,
        &cfg.supplementary_gids,
        cfg.capabilities,
        cfg.privileged,
    )
    .map_err(setup)?;
    // An exec'd command must not outlive its helper, whose exit code the caller waits for.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| setup(format!("pdeathsig: {e}")))?;
    Err(exec_program(&cfg.args, &env))
}
