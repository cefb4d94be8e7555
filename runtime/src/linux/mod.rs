//! [`LinuxRuntime`]: the [`Runtime`] on Linux namespaces, cgroups, overlayfs and CNI.
//!
//! The runtime itself only writes state files, cgroup files and one bind
//! mount; everything that needs fork() or namespace changes happens in two
//! helper binaries it starts (the agent is multi-threaded, so it must not do
//! more than exec after fork):
//!
//! * `rk-pause` holds a Pod's namespaces (see its source);
//! * `rk-shim` creates and supervises one container, or runs one exec (see [`shim`]).
//!
//! All state is on disk under `state_dir` (layout in [`state`]), and
//! processes are recognised by pid *and* start time, so a runtime created
//! after an agent restart adopts what the previous one started.
//!
//! A container whose shim was killed is SIGKILLed with it (parent-death
//! signal); its status then reads `Exited` with exit code 137 and no signal,
//! a stand-in since nobody saw the real end.

mod caps;
mod cgroup;
mod cni;
mod logs;
mod rootfs;
pub mod shim;
mod state;
mod stats;
mod sys;
mod timefmt;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use cgroup::CgroupVersion;
pub use cni::CniConfig;

use crate::spec::*;
use cgroup::CgroupFs;
use shim::ExecConfig;
use state::{ContainerConfig, Exited, MountConfig, SandboxRecord, StartReply, Started};
use timefmt::{from_nanos, to_nanos};

/// How long `start_container` waits for the shim to report.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long removal waits for killed processes to go.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Exit code reported for a container whose end nobody observed (see the module doc).
pub const EXIT_CODE_UNKNOWN: i32 = 137;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// All runtime state; it must survive agent restarts.
    pub state_dir: PathBuf,
    /// cgroup path (relative to each hierarchy's root) under which Pod cgroups are
    /// created, e.g. "rk" or "rk/node-a", so several agents on one host stay apart.
    pub cgroup_parent: String,
    /// Pod networking; `None` gives Pods a network namespace with only loopback.
    pub cni: Option<CniConfig>,
    /// Directory holding the `rk-pause` and `rk-shim` executables.
    pub helper_dir: PathBuf,
}

#[derive(Debug)]
pub struct LinuxRuntime {
    cfg: RuntimeConfig,
    cgroups: CgroupFs,
    last_cap: u32,
    /// One lock per sandbox id: creation, removal and container starts of a Pod are serialised.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> RuntimeError {
    let what = what.into();
    move |source| RuntimeError::Io { what, source }
}

fn cg_err(e: cgroup::CgroupError) -> RuntimeError {
    RuntimeError::Io {
        what: format!("cgroup {}", e.path.display()),
        source: e.source,
    }
}

fn check_id(kind: &str, id: &str) -> Result<(), RuntimeError> {
    if state::valid_id(id) && id != "pause" {
        Ok(())
    } else {
        Err(RuntimeError::Invalid(format!(
            "{kind} id {id:?} must be 1-200 characters of [A-Za-z0-9_.-] (and not \"pause\")"
        )))
    }
}

fn remove_dir(path: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(format!("remove {}", path.display()))(e)),
        _ => Ok(()),
    }
}

impl LinuxRuntime {
    pub fn new(cfg: RuntimeConfig) -> Result<Self, RuntimeError> {
        let parent_ok = !cfg.cgroup_parent.is_empty()
            && !cfg.cgroup_parent.starts_with('/')
            && cfg.cgroup_parent.split('/').all(state::valid_id);
        if !parent_ok {
            return Err(RuntimeError::Invalid(format!(
                "cgroup_parent {:?} must be a relative path of plain names",
                cfg.cgroup_parent
            )));
        }
        if let Some(cni) = &cfg.cni {
            cni::validate(cni).map_err(RuntimeError::Invalid)?;
        }
        for exe in ["rk-pause", "rk-shim"] {
            let p = cfg.helper_dir.join(exe);
            if !p.is_file() {
                return Err(RuntimeError::NotFound(format!("helper {}", p.display())));
            }
        }
        for sub in ["sandboxes", "containers", "cni/ipam"] {
            let p = cfg.state_dir.join(sub);
            std::fs::create_dir_all(&p).map_err(io_err(format!("create {}", p.display())))?;
        }
        Ok(Self {
            cfg,
            cgroups: CgroupFs::detect(),
            last_cap: caps::last_cap(),
            locks: Mutex::default(),
        })
    }

    pub fn cgroup_version(&self) -> CgroupVersion {
        self.cgroups.version
    }

    fn lock(&self, sandbox_id: &str) -> Arc<Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(sandbox_id.to_string()).or_default().clone()
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.cfg.state_dir.join("sandboxes").join(id)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.cfg.state_dir.join("containers").join(id)
    }

    fn pod_cgroup(&self, sandbox_id: &str) -> String {
        format!("{}/pod-{sandbox_id}", self.cfg.cgroup_parent)
    }

    fn container_cgroup(&self, sandbox_id: &str, id: &str) -> String {
        format!("{}/{id}", self.pod_cgroup(sandbox_id))
    }

    fn sandbox_record(&self, id: &str) -> Result<Option<SandboxRecord>, RuntimeError> {
        let p = self.sandbox_dir(id).join("sandbox.json");
        state::read_json(&p).map_err(io_err(format!("read {}", p.display())))
    }

    fn container_config(&self, id: &str) -> Result<Option<ContainerConfig>, RuntimeError> {
        let p = self.container_dir(id).join("config.json");
        state::read_json(&p).map_err(io_err(format!("read {}", p.display())))
    }

    fn dir_names(&self, sub: &str) -> Result<Vec<String>, RuntimeError> {
        let dir = self.cfg.state_dir.join(sub);
        let rd = std::fs::read_dir(&dir).map_err(io_err(format!("list {}", dir.display())))?;
        let mut v: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        Ok(v)
    }

    fn container_ids(&self) -> Result<Vec<String>, RuntimeError> {
        self.dir_names("containers")
    }

    fn sandbox_status_of(&self, r: &SandboxRecord) -> SandboxStatus {
        SandboxStatus {
            id: r.id.clone(),
            pid: state::alive(r.pid, r.pid_start).then_some(r.pid),
            ip: r.ip.clone(),
            labels: r.labels.clone(),
            created_at: from_nanos(r.created_at_ns),
        }
    }

    fn helper(&self, name: &str) -> PathBuf {
        self.cfg.helper_dir.join(name)
    }

    /// Starts a helper with `control` as its fd 3, optionally in a new session.
    fn spawn_helper(
        &self,
        mut cmd: Command,
        control: Option<&OwnedFd>,
        new_session: bool,
    ) -> io::Result<std::process::Child> {
        let raw = control.map(|c| c.as_raw_fd());
        // SAFETY: the closure runs between fork and exec in the child and only
        // makes async-signal-safe syscalls (setsid, dup2, fcntl).
        unsafe {
            cmd.pre_exec(move || {
                if new_session && libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(fd) = raw {
                    if fd == sys::CONTROL_FD {
                        // Already in place: only clear close-on-exec.
                        if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                            return Err(io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, sys::CONTROL_FD) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cmd.spawn()
    }

    fn log_file(&self, path: &Path) -> Result<File, RuntimeError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err(format!("open {}", path.display())))
    }

    fn create_sandbox_locked(&self, spec: &SandboxSpec) -> Result<SandboxStatus, RuntimeError> {
        let dir = self.sandbox_dir(&spec.id);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        for (name, content) in [
            ("hosts", spec.etc_hosts.as_str()),
            ("resolv.conf", spec.resolv_conf.as_str()),
            ("hostname", &format!("{}\n", spec.hostname)),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, content).map_err(io_err(format!("write {}", p.display())))?;
        }
        let pod_cg = self.pod_cgroup(&spec.id);
        self.cgroups.create(&pod_cg, &spec.resources).map_err(cg_err)?;
        let pause_cg = format!("{pod_cg}/pause");
        self.cgroups
            .create(&pause_cg, &Resources::default())
            .map_err(cg_err)?;

        let mut cmd = Command::new(self.helper("rk-pause"));
        cmd.arg(&spec.hostname);
        if spec.host_network {
            cmd.arg("--host-network");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(self.log_file(&dir.join("pause.log"))?);
        let mut child = self
            .spawn_helper(cmd, None, true)
            .map_err(io_err("start rk-pause"))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out)
                .read_line(&mut line)
                .map_err(io_err("read rk-pause pid"))?;
        }
        let _ = child.wait();
        let pid: u32 = line.trim().parse().map_err(|_| {
            let log = std::fs::read_to_string(dir.join("pause.log")).unwrap_or_default();
            RuntimeError::StartFailed(format!("pause process did not start: {}", log.trim()))
        })?;
        let pid_start = state::start_time(pid)
            .ok_or_else(|| RuntimeError::StartFailed("pause process exited at once".into()))?;
        self.cgroups.add_pid(&pause_cg, pid).map_err(cg_err)?;

        let mut ip = None;
        if !spec.host_network {
            let netns = dir.join("netns");
            File::create(&netns).map_err(io_err(format!("create {}", netns.display())))?;
            let src = PathBuf::from(format!("/proc/{pid}/ns/net"));
            // The bind mount keeps the namespace (and CNI's view of it) alive
            // by path, independently of the pause process.
            mount(Some(&src), &netns, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| io_err(format!("bind {} on {}", src.display(), netns.display()))(e.into()))?;
            if let Some(cni) = &self.cfg.cni {
                let plan = cni::plan(cni, &self.cfg.state_dir.join("cni/ipam"));
                let p = dir.join("network.json");
                state::write_json(&p, &plan).map_err(io_err(format!("write {}", p.display())))?;
                ip = cni::add(&plan, &spec.id, &netns).map_err(RuntimeError::Network)?;
            }
        }
        let record = SandboxRecord {
            id: spec.id.clone(),
            hostname: spec.hostname.clone(),
            host_network: spec.host_network,
            labels: spec.labels.clone(),
            created_at_ns: to_nanos(SystemTime::now()),
            pid,
            pid_start,
            ip,
        };
        let p = dir.join("sandbox.json");
        state::write_json(&p, &record).map_err(io_err(format!("write {}", p.display())))?;
        Ok(self.sandbox_status_of(&record))
    }

    fn remove_sandbox_locked(&self, id: &str) -> Result<(), RuntimeError> {
        for cid in self.container_ids()? {
            if self.container_config(&cid)?.is_some_and(|c| c.sandbox_id == id) {
                self.remove_container_locked(&cid)?;
            }
        }
        let dir = self.sandbox_dir(id);
        let netns = dir.join("netns");
        let plan: Option<cni::NetworkPlan> = state::read_json(&dir.join("network.json")).unwrap_or(None);
        if let Some(plan) = plan {
            // A failed DEL leaks at most an address: removal must still finish.
            if let Err(e) = cni::del(&plan, id, &netns) {
                tracing::warn!(sandbox = id, error = %e, "CNI DEL failed");
            }
        }
        if let Some(r) = self.sandbox_record(id)? {
            if state::alive(r.pid, r.pid_start) {
                let _ = kill(Pid::from_raw(r.pid as i32), Signal::SIGKILL);
            }
        }
        let pod_cg = self.pod_cgroup(id);
        self.cgroups.kill_all(&pod_cg, KILL_TIMEOUT).map_err(cg_err)?;
        self.cgroups.remove(&pod_cg, KILL_TIMEOUT).map_err(cg_err)?;
        match umount2(&netns, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(io_err(format!("unmount {}", netns.display()))(e.into())),
        }
        remove_dir(&dir)
    }

    fn container_status_of(&self, cfg: &ContainerConfig) -> Result<ContainerStatus, RuntimeError> {
        let dir = self.container_dir(&cfg.id);
        let read_exit = || -> Result<Option<Exited>, RuntimeError> {
            let p = dir.join("exit.json");
            state::read_json(&p).map_err(io_err(format!("read {}", p.display())))
        };
        let p = dir.join("started.json");
        let started: Option<Started> =
            state::read_json(&p).map_err(io_err(format!("read {}", p.display())))?;
        let exited = |e: Exited, started_at: SystemTime| ContainerState::Exited {
            exit_code: e.exit_code,
            signal: e.signal,
            oom_killed: e.oom_killed,
            started_at,
            finished_at: from_nanos(e.finished_at_ns),
        };
        let started_at = started
            .as_ref()
            .map_or(from_nanos(cfg.created_at_ns), |s| from_nanos(s.started_at_ns));
        let status = |state| ContainerStatus {
            id: cfg.id.clone(),
            sandbox_id: cfg.sandbox_id.clone(),
            state,
            labels: cfg.labels.clone(),
        };
        if let Some(e) = read_exit()? {
            return Ok(status(exited(e, started_at)));
        }
        let Some(s) = started else {
            // Neither started nor failed: the shim died during the start.
            let e = Exited {
                exit_code: shim::EXIT_START_FAILED,
                signal: None,
                oom_killed: false,
                finished_at_ns: cfg.created_at_ns,
                unknown: true,
                start_error: Some("the container never started".into()),
            };
            return Ok(status(exited(e, started_at)));
        };
        if state::alive(s.pid, s.pid_start) {
            return Ok(status(ContainerState::Running {
                pid: s.pid,
                started_at,
            }));
        }
        // The process is gone; its shim writes exit.json in a moment if it lives.
        let deadline = Instant::now() + Duration::from_secs(2);
        while state::alive(s.shim_pid, s.shim_start) && Instant::now() < deadline {
            if let Some(e) = read_exit()? {
                return Ok(status(exited(e, started_at)));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(e) = read_exit()? {
            return Ok(status(exited(e, started_at)));
        }
        let e = Exited {
            exit_code: EXIT_CODE_UNKNOWN,
            signal: None,
            oom_killed: self.cgroups.oom_kills(&cfg.cgroup) > 0,
            finished_at_ns: to_nanos(SystemTime::now()),
            unknown: true,
            start_error: None,
        };
        if !state::alive(s.shim_pid, s.shim_start) {
            // Record the stand-in so later reads agree on it (and on its time).
            let _ = state::write_json(&dir.join("exit.json"), &e);
        }
        Ok(status(exited(e, started_at)))
    }

    fn remove_container_locked(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.container_dir(id);
        let Some(cfg) = self.container_config(id)? else {
            return remove_dir(&dir);
        };
        let started: Option<Started> = state::read_json(&dir.join("started.json")).unwrap_or(None);
        if let Some(s) = &started {
            if state::alive(s.pid, s.pid_start) {
                let _ = kill(Pid::from_raw(s.pid as i32), Signal::SIGKILL);
            }
        }
        self.cgroups.kill_all(&cfg.cgroup, KILL_TIMEOUT).map_err(cg_err)?;
        if let Some(s) = &started {
            // Let the shim record the exit and let go of the directory before it is removed.
            let deadline = Instant::now() + KILL_TIMEOUT;
            while state::alive(s.shim_pid, s.shim_start) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.cgroups.remove(&cfg.cgroup, KILL_TIMEOUT).map_err(cg_err)?;
        // The rootfs is mounted only in the container's own mount namespace,
        // which died with its last process; nothing is mounted here.
        remove_dir(&dir)
    }

    fn start_container_locked(&self, spec: &ContainerSpec) -> Result<ContainerStatus, RuntimeError> {
        let Some(sandbox) = self.sandbox_record(&spec.sandbox_id)? else {
            return Err(RuntimeError::NotFound(format!("sandbox {}", spec.sandbox_id)));
        };
        if !state::alive(sandbox.pid, sandbox.pid_start) {
            return Err(RuntimeError::Invalid(format!(
                "sandbox {} is not running",
                spec.sandbox_id
            )));
        }
        let dir = self.container_dir(&spec.id);
        if dir.exists() {
            return Err(RuntimeError::Invalid(format!(
                "container {} already exists",
                spec.id
            )));
        }
        if spec.args.is_empty() {
            return Err(RuntimeError::Invalid("container has no command".into()));
        }
        if spec.layers.is_empty() {
            return Err(RuntimeError::Invalid("container has no image layers".into()));
        }
        for l in &spec.layers {
            if !l.is_dir() {
                return Err(RuntimeError::NotFound(format!("image layer {}", l.display())));
            }
        }
        let capabilities = caps::compute(
            &spec.capabilities_add,
            &spec.capabilities_drop,
            spec.privileged,
            self.last_cap,
        )
        .map_err(RuntimeError::Invalid)?;
        let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &rootfs] {
            std::fs::create_dir_all(d).map_err(io_err(format!("create {}", d.display())))?;
        }
        if let Some(parent) = spec.log_path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(format!("create {}", parent.display())))?;
        }
        let cgroup = self.container_cgroup(&spec.sandbox_id, &spec.id);
        self.cgroups.create(&cgroup, &spec.resources).map_err(cg_err)?;
        let sdir = self.sandbox_dir(&spec.sandbox_id);
        let mut mounts: Vec<MountConfig> = ["hosts", "resolv.conf", "hostname"]
            .iter()
            .map(|f| MountConfig {
                source: sdir.join(f),
                destination: format!("/etc/{f}"),
                read_only: spec.read_only_rootfs,
            })
            .collect();
        mounts.extend(spec.mounts.iter().map(|m| MountConfig {
            source: m.source.clone(),
            destination: m.destination.clone(),
            read_only: m.read_only,
        }));
        let cfg = ContainerConfig {
            id: spec.id.clone(),
            sandbox_id: spec.sandbox_id.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            working_dir: spec.working_dir.clone(),
            uid: spec.uid,
            gid: spec.gid,
            supplementary_gids: spec.supplementary_gids.clone(),
            tty: spec.tty,
            share_process_namespace: spec.share_process_namespace,
            layers: spec.layers.clone(),
            upper,
            work,
            rootfs,
            mounts,
            read_only_rootfs: spec.read_only_rootfs,
            privileged: spec.privileged,
            capabilities,
            log_path: spec.log_path.clone(),
            log_max_bytes: spec.log_max_bytes,
            log_max_files: spec.log_max_files,
            labels: spec.labels.clone(),
            sandbox_pid: sandbox.pid,
            sandbox_pid_start: sandbox.pid_start,
            cgroup,
            cgroup_version: self.cgroups.version,
            created_at_ns: to_nanos(SystemTime::now()),
        };
        let p = dir.join("config.json");
        state::write_json(&p, &cfg).map_err(io_err(format!("write {}", p.display())))?;

        let (ctl_r, ctl_w) = sys::pipe().map_err(io_err("control pipe"))?;
        let mut cmd = Command::new(self.helper("rk-shim"));
        cmd.arg("run").arg(&dir);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log_file(&dir.join("shim.log"))?);
        let mut child = self
            .spawn_helper(cmd, Some(&ctl_w), true)
            .map_err(io_err("start rk-shim"))?;
        drop(ctl_w);
        // The first shim process only forks the long-lived one and exits.
        let _ = child.wait();
        let reply = read_with_timeout(&ctl_r, START_TIMEOUT).map_err(io_err("read shim reply"))?;
        match serde_json::from_slice::<StartReply>(&reply) {
            Ok(StartReply::Started(s)) => Ok(ContainerStatus {
                id: cfg.id,
                sandbox_id: cfg.sandbox_id,
                state: ContainerState::Running {
                    pid: s.pid,
                    started_at: from_nanos(s.started_at_ns),
                },
                labels: cfg.labels,
            }),
            Ok(StartReply::Failed(msg)) => Err(RuntimeError::StartFailed(msg)),
            Err(_) => {
                let log = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
                Err(RuntimeError::StartFailed(format!(
                    "container shim failed: {}",
                    log.trim()
                )))
            }
        }
    }
}

/// Reads a descriptor to its end, giving up after `timeout`.
fn read_with_timeout(fd: &OwnedFd, timeout: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer from the shim"));
        }
        let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl Runtime for LinuxRuntime {
    fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxStatus, RuntimeError> {
        check_id("sandbox", &spec.id)?;
        if spec.hostname.is_empty() || spec.hostname.len() > 64 {
            return Err(RuntimeError::Invalid(format!(
                "hostname {:?} must be 1-64 bytes",
                spec.hostname
            )));
        }
        let lock = self.lock(&spec.id);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = self.sandbox_record(&spec.id)? {
            if state::alive(r.pid, r.pid_start) {
                return Ok(self.sandbox_status_of(&r));
            }
        }
        // A dead or half-created sandbox is cleared away and made anew.
        if self.sandbox_dir(&spec.id).exists() {
            self.remove_sandbox_locked(&spec.id)?;
        }
        self.create_sandbox_locked(spec).inspect_err(|_| {
            if let Err(e) = self.remove_sandbox_locked(&spec.id) {
                tracing::warn!(sandbox = %spec.id, error = %e, "cleanup after failed sandbox creation");
            }
        })
    }

    fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        check_id("sandbox", id)?;
        let lock = self.lock(id);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.remove_sandbox_locked(id)
    }

    fn start_container(&self, spec: &ContainerSpec) -> Result<ContainerStatus, RuntimeError> {
        check_id("container", &spec.id)?;
        check_id("sandbox", &spec.sandbox_id)?;
        let lock = self.lock(&spec.sandbox_id);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.start_container_locked(spec)
    }

    fn signal_container(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        check_id("container", id)?;
        let sig =
            Signal::try_from(signal).map_err(|_| RuntimeError::Invalid(format!("bad signal {signal}")))?;
        if self.container_config(id)?.is_none() {
            return Err(RuntimeError::NotFound(format!("container {id}")));
        }
        let p = self.container_dir(id).join("started.json");
        let started: Option<Started> =
            state::read_json(&p).map_err(io_err(format!("read {}", p.display())))?;
        if let Some(s) = started {
            if state::alive(s.pid, s.pid_start) {
                match kill(Pid::from_raw(s.pid as i32), sig) {
                    Ok(()) | Err(nix::Error::ESRCH) => {}
                    Err(e) => return Err(io_err(format!("signal container {id}"))(e.into())),
                }
            }
        }
        Ok(())
    }

    fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        check_id("container", id)?;
        let Some(cfg) = self.container_config(id)? else {
            return remove_dir(&self.container_dir(id));
        };
        let lock = self.lock(&cfg.sandbox_id);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.remove_container_locked(id)
    }

    fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>, RuntimeError> {
        check_id("container", id)?;
        match self.container_config(id)? {
            Some(cfg) => self.container_status_of(&cfg).map(Some),
            None => Ok(None),
        }
    }

    fn sandbox_status(&self, id: &str) -> Result<Option<SandboxStatus>, RuntimeError> {
        check_id("sandbox", id)?;
        Ok(self.sandbox_record(id)?.map(|r| self.sandbox_status_of(&r)))
    }

    fn list(&self) -> Result<(Vec<SandboxStatus>, Vec<ContainerStatus>), RuntimeError> {
        let mut sandboxes = Vec::new();
        for id in self.dir_names("sandboxes")? {
            if let Some(r) = self.sandbox_record(&id)? {
                sandboxes.push(self.sandbox_status_of(&r));
            }
        }
        let mut containers = Vec::new();
        for id in self.container_ids()? {
            if let Some(cfg) = self.container_config(&id)? {
                containers.push(self.container_status_of(&cfg)?);
            }
        }
        Ok((sandboxes, containers))
    }

    fn exec(&self, spec: &ExecSpec) -> Result<ExecProcess, RuntimeError> {
        check_id("container", &spec.container_id)?;
        if spec.args.is_empty() {
            return Err(RuntimeError::Invalid("exec has no command".into()));
        }
        let Some(cfg) = self.container_config(&spec.container_id)? else {
            return Err(RuntimeError::NotFound(format!("container {}", spec.container_id)));
        };
        let p = self.container_dir(&cfg.id).join("started.json");
        let started: Option<Started> =
            state::read_json(&p).map_err(io_err(format!("read {}", p.display())))?;
        let Some(s) = started.filter(|s| state::alive(s.pid, s.pid_start)) else {
            return Err(RuntimeError::Invalid(format!(
                "container {} is not running",
                cfg.id
            )));
        };
        let mut env = cfg.env.clone();
        env.extend(spec.env.iter().cloned());
        let ecfg = ExecConfig {
            pid: s.pid,
            pid_start: s.pid_start,
            cgroup: cfg.cgroup.clone(),
            args: spec.args.clone(),
            env,
            working_dir: cfg.working_dir.clone(),
            uid: cfg.uid,
            gid: cfg.gid,
            supplementary_gids: cfg.supplementary_gids.clone(),
            capabilities: cfg.capabilities,
            privileged: cfg.privileged,
            tty: spec.tty,
            tty_size: spec.tty_size,
        };
        let json =
            serde_json::to_string(&ecfg).map_err(|e| RuntimeError::Invalid(format!("exec config: {e}")))?;
        let mut cmd = Command::new(self.helper("rk-shim"));
        cmd.arg("exec").arg(json);
        if spec.tty {
            let (mine, theirs) = sys::socket_pair().map_err(io_err("exec socket"))?;
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = self
                .spawn_helper(cmd, Some(&theirs), false)
                .map_err(io_err("start rk-shim exec"))?;
            drop(theirs);
            let master = match sys::recv_fd(mine.as_fd()) {
                Ok(Some(m)) => m,
                _ => {
                    let out = child
                        .wait_with_output()
                        .map_err(io_err("wait for rk-shim exec"))?;
                    let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
                    return Err(RuntimeError::StartFailed(format!("exec: {msg}")));
                }
            };
            // The helper's own errors are of no interest once the terminal is up.
            drop(child.stderr.take());
            let dup = |f: &OwnedFd| f.try_clone().map_err(io_err("duplicate pty master"));
            let stdin = File::from(dup(&master)?);
            let pty = dup(&master)?;
            Ok(ExecProcess {
                pid: child.id(),
                stdin,
                stdout: File::from(master),
                stderr: None,
                waiter: Box::new(move || child_code(child.wait()?)),
                pty_master: Some(pty),
            })
        } else {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = self
                .spawn_helper(cmd, None, false)
                .map_err(io_err("start rk-shim exec"))?;
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(RuntimeError::Invalid("exec stdio missing".into()));
            };
            Ok(ExecProcess {
                pid: child.id(),
                stdin: File::from(OwnedFd::from(stdin)),
                stdout: File::from(OwnedFd::from(stdout)),
                stderr: Some(File::from(OwnedFd::from(stderr))),
                waiter: Box::new(move || child_code(child.wait()?)),
                pty_master: None,
            })
        }
    }

    fn resize_tty(&self, pty_master: &OwnedFd, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        sys::set_winsize(pty_master.as_fd(), cols, rows).map_err(io_err("resize terminal"))
    }

    fn cgroup_usage(
        &self,
        sandbox_id: &str,
        container_id: Option<&str>,
    ) -> Result<Option<CgroupUsage>, RuntimeError> {
        check_id("sandbox", sandbox_id)?;
        let rel = match container_id {
            Some(id) => {
                check_id("container", id)?;
                self.container_cgroup(sandbox_id, id)
            }
            None => self.pod_cgroup(sandbox_id),
        };
        stats::usage(&self.cgroups, &rel).map_err(io_err(format!("usage of cgroup {rel}")))
    }
}

fn child_code(status: std::process::ExitStatus) -> io::Result<i32> {
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
