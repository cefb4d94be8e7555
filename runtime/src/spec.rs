//! The narrow interface between the node agent's Pod logic and the OS.
//!
//! The agent decides *what* should run (from Pod specs); an implementation of
//! [`Runtime`] makes it so with namespaces, cgroups and overlayfs. Keeping the
//! interface this small lets the agent's Pod logic be unit-tested with a fake
//! runtime, without root.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

/// Everything needed to create a Pod's sandbox: the pause process that holds
/// the Pod's network, IPC and UTS namespaces, its cgroup and its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Unique and stable for the Pod (the agent uses the Pod's uid).
    pub id: String,
    /// Set as the UTS hostname (the Pod's name, or spec.hostname).
    pub hostname: String,
    /// Share the host's network namespace instead of creating one (no CNI then).
    pub host_network: bool,
    /// Labels the agent uses to find its sandboxes again after a restart
    /// (namespace, name, uid of the Pod). Stored with the sandbox, returned by `list`.
    pub labels: BTreeMap<String, String>,
    /// Pod-level cgroup limits (the sum of the containers' limits, when all set them).
    pub resources: Resources,
    /// Contents of /etc/hosts and /etc/resolv.conf that every container of the Pod sees.
    pub etc_hosts: String,
    pub resolv_conf: String,
}

/// cgroup limits. `None` means unlimited / kernel default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// cpu requests in millicores → cpu.shares (v1, 2..262144, 1024 per core) or cpu.weight (v2).
    pub cpu_request_millis: Option<u64>,
    /// cpu limit in millicores → cfs quota over a 100 ms period (v1 cpu.cfs_quota_us, v2 cpu.max).
    pub cpu_limit_millis: Option<u64>,
    /// memory.limit_in_bytes (v1) / memory.max (v2).
    pub memory_limit_bytes: Option<u64>,
    /// pids.max.
    pub pids_limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// A host path (a file or a directory), bind-mounted.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub read_only: bool,
}

/// One container process inside an existing sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Unique on the node, e.g. `<pod uid>-<container name>-<attempt>`.
    pub id: String,
    pub sandbox_id: String,
    /// Image layer directories (already unpacked, overlay whiteouts in place), bottom first.
    pub layers: Vec<PathBuf>,
    /// argv[0] is the program (resolved inside the rootfs through PATH when it has no '/').
    pub args: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// Absolute; created if missing. Empty means "/".
    pub working_dir: String,
    pub uid: u32,
    pub gid: u32,
    pub supplementary_gids: Vec<u32>,
    /// Allocate a pseudo-terminal as the container's stdio (spec.containers[].tty).
    pub tty: bool,
    /// Keep stdin open (spec.containers[].stdin): writes come through `attach`, not used by tests yet.
    pub stdin: bool,
    /// Join the sandbox's PID namespace instead of getting a new one (shareProcessNamespace).
    pub share_process_namespace: bool,
    pub resources: Resources,
    /// Bind mounts (volumes) applied after the rootfs is assembled, in order.
    pub mounts: Vec<Mount>,
    pub read_only_rootfs: bool,
    /// Extra capabilities beyond Kubernetes' default set, and ones to drop (names like "NET_ADMIN", "ALL").
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub privileged: bool,
    /// Where stdout/stderr go, in the CRI log format
    /// (`2006-01-02T15:04:05.999999999Z stdout F message`), rotated by size.
    pub log_path: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// Stored with the container and returned by `list` (pod uid, container name, attempt...).
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    pub id: String,
    /// Pid of the pause process; `None` once it is gone.
    pub pid: Option<u32>,
    /// The Pod IP from CNI (the host IP for host-network Pods is filled in by the agent).
    pub ip: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub created_at: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Started: the process exists.
    Running { pid: u32, started_at: SystemTime },
    Exited {
        /// Exit code; 128 + signal number when it was killed by a signal.
        exit_code: i32,
        signal: Option<i32>,
        /// The kernel's OOM killer ended it (from the cgroup's OOM counters).
        oom_killed: bool,
        started_at: SystemTime,
        finished_at: SystemTime,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub sandbox_id: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
}

/// A process started inside a running container by `exec`.
#[derive(Debug)]
pub struct ExecSpec {
    pub container_id: String,
    pub args: Vec<String>,
    /// Added to the container's environment.
    pub env: Vec<String>,
    pub tty: bool,
    /// Initial terminal size (cols, rows) when `tty`.
    pub tty_size: Option<(u16, u16)>,
}

/// The handles of a running exec: its pid and the host side of its stdio.
/// With a TTY, `stdin` and `stdout` are both the PTY master and `stderr` is None.
pub struct ExecProcess {
    pub pid: u32,
    pub stdin: std::fs::File,
    pub stdout: std::fs::File,
    pub stderr: Option<std::fs::File>,
    /// Waits for the process and returns its exit code (128 + signal when killed).
    pub waiter: Box<dyn FnOnce() -> std::io::Result<i32> + Send>,
    /// The PTY master, to resize the terminal (`None` without a TTY).
    pub pty_master: Option<std::os::fd::OwnedFd>,
}

/// What a cgroup has used, read at one instant. Rates (CPU cores) come from
/// two readings; the agent keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// CPU time used since the cgroup was created, in nanoseconds (cumulative).
    pub cpu_usage_ns: u64,
    /// Memory usage minus inactive file pages (cAdvisor's "working set": the
    /// page cache the kernel can drop at once is not counted).
    pub memory_working_set_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("network setup failed: {0}")]
    Network(String),
    /// The container process could not be started (bad command, missing binary...).
    /// The message is what `kubectl describe` shows, e.g.
    /// `exec: "nosuch": executable file not found in $PATH`.
    #[error("{0}")]
    StartFailed(String),
}

/// The OS side of running Pods. Methods block (they make syscalls and may
/// wait briefly); the async agent calls them from `spawn_blocking`.
pub trait Runtime: Send + Sync + 'static {
    /// Starts the pause process in new namespaces (sharing the host network when
    /// asked), creates the Pod cgroup, and sets up the network through CNI.
    /// Idempotent: an existing live sandbox with this id is returned as is.
    fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxStatus, RuntimeError>;
    /// Kills every container of the sandbox and the pause process, tears down the
    /// network (CNI DEL), removes the cgroup and the state. Idempotent.
    fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError>;
    /// Creates the rootfs and starts the process. Returns once the process runs
    /// (or failed to start).
    fn start_container(&self, spec: &ContainerSpec) -> Result<ContainerStatus, RuntimeError>;
    /// Sends a signal (e.g. SIGTERM, SIGKILL) to the container's main process.
    /// Not an error if the container already exited.
    fn signal_container(&self, id: &str, signal: i32) -> Result<(), RuntimeError>;
    /// Removes an exited container's rootfs and state (kills it first if still running).
    fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;
    fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>, RuntimeError>;
    fn sandbox_status(&self, id: &str) -> Result<Option<SandboxStatus>, RuntimeError>;
    /// Everything found in the runtime's state directory, for adoption after an agent restart.
    fn list(&self) -> Result<(Vec<SandboxStatus>, Vec<ContainerStatus>), RuntimeError>;
    /// Runs a process inside a running container (its namespaces, cgroup, rootfs, user).
    fn exec(&self, spec: &ExecSpec) -> Result<ExecProcess, RuntimeError>;
    /// Resizes an exec's terminal.
    fn resize_tty(&self, pty_master: &std::os::fd::OwnedFd, cols: u16, rows: u16)
        -> Result<(), RuntimeError>;
    /// Current usage of a sandbox's cgroup (its containers and the pause
    /// process), or of one of its containers' when `container_id` is given.
    /// `None` when that cgroup does not exist (removed, or not created yet).
    fn cgroup_usage(
        &self,
        sandbox_id: &str,
        container_id: Option<&str>,
    ) -> Result<Option<CgroupUsage>, RuntimeError>;
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("pid", &self.pid)
            .field("tty", &self.pty_master.is_some())
            .finish()
    }
}
