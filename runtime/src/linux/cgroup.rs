//! cgroups through cgroupfs (cgroups(7)): v1 (one hierarchy per controller,
//! the same relative path created under each) and v2 (one unified tree whose
//! controllers must be enabled in every parent's `cgroup.subtree_control`).
//!
//! The version is detected once: `/sys/fs/cgroup/cgroup.controllers` exists
//! only when the unified hierarchy is mounted there. A v1 "hybrid" host (v2
//! mounted at `/sys/fs/cgroup/unified` with no controllers) counts as v1.
//!
//! Layout: `<parent>/pod-<sandbox>/pause` for the pause process and
//! `<parent>/pod-<sandbox>/<container>` for each container. The pause process
//! gets its own leaf because v2 forbids processes in a cgroup whose children
//! have controllers enabled ("no internal processes").

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::spec::Resources;

/// The CFS period used for cpu limits, as Kubernetes does.
pub const CFS_PERIOD_US: u64 = 100_000;

/// v1 hierarchies the runtime uses. Freezer lets a whole cgroup be stopped
/// before its processes are killed, so a fork loop cannot outrun the kill.
pub const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids", "freezer"];

/// v2 controllers enabled for Pod and container cgroups.
pub const V2_CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {source}")]
pub struct CgroupError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError {
        path: path.to_path_buf(),
        source,
    }
}

/// cpu request (millicores) → v1 `cpu.shares`, as Kubernetes computes it.
pub fn cpu_shares(millis: u64) -> u64 {
    (millis.saturating_mul(1024) / 1000).clamp(2, 262_144)
}

/// v1 shares → v2 `cpu.weight` (1..10000), Kubernetes' conversion.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// cpu limit (millicores) → CFS quota in µs per [`CFS_PERIOD_US`]; at least
/// 1 ms, the kernel's minimum.
pub fn cfs_quota_us(millis: u64) -> u64 {
    (millis.saturating_mul(CFS_PERIOD_US) / 1000).max(1000)
}

/// The files to write for v1, as (controller, file, value), in order.
/// `memory.memsw.limit_in_bytes` is included; callers skip it when the kernel
/// has no swap accounting.
pub fn v1_settings(res: &Resources) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = res.cpu_request_millis {
        out.push(("cpu", "cpu.shares", cpu_shares(m).to_string()));
    }
    if let Some(m) = res.cpu_limit_millis {
        out.push(("cpu", "cpu.cfs_period_us", CFS_PERIOD_US.to_string()));
        out.push(("cpu", "cpu.cfs_quota_us", cfs_quota_us(m).to_string()));
    }
    if let Some(b) = res.memory_limit_bytes {
        out.push(("memory", "memory.limit_in_bytes", b.to_string()));
        out.push(("memory", "memory.memsw.limit_in_bytes", b.to_string()));
    }
    if let Some(p) = res.pids_limit {
        out.push(("pids", "pids.max", p.to_string()));
    }
    out
}

/// The files to write for v2, as (file, value). `memory.swap.max` is skipped
/// by callers when the kernel has no swap controller file.
pub fn v2_settings(res: &Resources) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = res.cpu_request_millis {
        out.push(("cpu.weight", shares_to_weight(cpu_shares(m)).to_string()));
    }
    if let Some(m) = res.cpu_limit_millis {
        out.push(("cpu.max", format!("{} {}", cfs_quota_us(m), CFS_PERIOD_US)));
    }
    if let Some(b) = res.memory_limit_bytes {
        out.push(("memory.max", b.to_string()));
        out.push(("memory.swap.max", "0".to_string()));
    }
    if let Some(p) = res.pids_limit {
        out.push(("pids.max", p.to_string()));
    }
    out
}

/// Reads `key N` from a flat-keyed cgroup file (`memory.events`, `memory.oom_control`).
pub fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// The cgroup filesystem of this host.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    pub version: CgroupVersion,
    root: PathBuf,
}

impl CgroupFs {
    pub fn detect() -> Self {
        Self::at(Path::new("/sys/fs/cgroup"))
    }

    pub fn at(root: &Path) -> Self {
        let version = if root.join("cgroup.controllers").exists() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        };
        Self {
            version,
            root: root.to_path_buf(),
        }
    }

    /// Every directory that makes up cgroup `rel` (one per mounted v1 controller, or one for v2).
    pub fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        match self.version {
            CgroupVersion::V2 => vec![self.root.join(rel)],
            CgroupVersion::V1 => V1_CONTROLLERS
                .iter()
                .map(|c| self.root.join(c))
                .filter(|p| p.exists())
                .map(|p| p.join(rel))
                .collect(),
        }
    }

    /// The `cgroup.procs` files a process writes its pid into to join cgroup `rel`.
    pub fn procs_files(&self, rel: &str) -> Vec<PathBuf> {
        self.dirs(rel)
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Creates cgroup `rel` (and its parents) and applies `res`.
    pub fn create(&self, rel: &str, res: &Resources) -> Result<(), CgroupError> {
        match self.version {
            CgroupVersion::V1 => {
                for dir in self.dirs(rel) {
                    std::fs::create_dir_all(&dir).map_err(err(&dir))?;
                }
                for (ctrl, file, value) in v1_settings(res) {
                    let path = self.root.join(ctrl).join(rel).join(file);
                    if file == "memory.memsw.limit_in_bytes" && !path.exists() {
                        // Without swap accounting there is no memsw file and no swap to limit.
                        continue;
                    }
                    std::fs::write(&path, &value).map_err(err(&path))?;
                }
            }
            CgroupVersion::V2 => {
                let dir = self.root.join(rel);
                self.enable_v2_controllers(rel)?;
                std::fs::create_dir_all(&dir).map_err(err(&dir))?;
                for (file, value) in v2_settings(res) {
                    let path = dir.join(file);
                    if file == "memory.swap.max" && !path.exists() {
                        continue;
                    }
                    std::fs::write(&path, &value).map_err(err(&path))?;
                }
            }
        }
        Ok(())
    }

    /// Enables the controllers in `subtree_control` of every ancestor of `rel`,
    /// creating them as needed, so `rel` itself gets the controller files.
    fn enable_v2_controllers(&self, rel: &str) -> Result<(), CgroupError> {
        let mut dir = self.root.clone();
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                std::fs::create_dir_all(&dir).map_err(err(&dir))?;
            }
            let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            for c in V2_CONTROLLERS {
                let has = |s: &str| s.split_whitespace().any(|w| w == *c);
                if has(&available) && !has(&enabled) {
                    let path = dir.join("cgroup.subtree_control");
                    std::fs::write(&path, format!("+{c}")).map_err(err(&path))?;
                }
            }
            dir.push(part);
        }
        Ok(())
    }

    /// Moves `pid` into cgroup `rel`.
    pub fn add_pid(&self, rel: &str, pid: u32) -> Result<(), CgroupError> {
        for path in self.procs_files(rel) {
            std::fs::write(&path, pid.to_string()).map_err(err(&path))?;
        }
        Ok(())
    }

    /// How many processes of cgroup `rel` the OOM killer has killed.
    pub fn oom_kills(&self, rel: &str) -> u64 {
        let (path, key) = match self.version {
            CgroupVersion::V1 => (
                self.root.join("memory").join(rel).join("memory.oom_control"),
                "oom_kill",
            ),
            CgroupVersion::V2 => (self.root.join(rel).join("memory.events"), "oom_kill"),
        };
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| parse_keyed(&t, key))
            .unwrap_or(0)
    }

    /// Every pid in cgroup `rel` and its descendants.
    pub fn pids(&self, rel: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for dir in self.dirs(rel) {
            collect_pids(&dir, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// SIGKILLs every process in cgroup `rel` (and below) until none is left,
    /// freezing first where the kernel allows so that forks cannot escape.
    pub fn kill_all(&self, rel: &str, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        if self.version == CgroupVersion::V2 {
            let kill = self.root.join(rel).join("cgroup.kill");
            if kill.exists() {
                // cgroup.kill (Linux 5.14) kills the whole subtree atomically.
                std::fs::write(&kill, "1").map_err(err(&kill))?;
            }
        }
        let freezer = self.root.join("freezer").join(rel).join("freezer.state");
        let use_freezer = self.version == CgroupVersion::V1 && freezer.exists();
        loop {
            if use_freezer {
                let _ = std::fs::write(&freezer, "FROZEN");
            }
            let pids = self.pids(rel);
            for &pid in &pids {
                // A process may exit between the read and the kill: ESRCH is expected.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if use_freezer {
                // Frozen tasks act on the pending SIGKILL once thawed.
                let _ = std::fs::write(&freezer, "THAWED");
            }
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CgroupError {
                    path: self.root.join(rel),
                    source: io::Error::new(io::ErrorKind::TimedOut, format!("processes left: {pids:?}")),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes cgroup `rel` and its descendants (which must have no processes).
    /// Removing a missing cgroup succeeds.
    pub fn remove(&self, rel: &str, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        for dir in self.dirs(rel) {
            remove_tree(&dir, deadline)?;
        }
        Ok(())
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<u32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

fn remove_tree(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(dir)(e)),
    };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&e.path(), deadline)?;
        }
    }
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // A killed process leaves its cgroup a moment after it dies.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(err(dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_weight() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(100), 102);
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(1_000_000), 262_144);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn quota() {
        assert_eq!(cfs_quota_us(500), 50_000);
        assert_eq!(cfs_quota_us(2000), 200_000);
        assert_eq!(cfs_quota_us(1), 1000);
    }

    #[test]
    fn settings() {
        let res = Resources {
            cpu_request_millis: Some(250),
            cpu_limit_millis: Some(500),
            memory_limit_bytes: Some(1 << 20),
            pids_limit: Some(64),
        };
        let v1 = v1_settings(&res);
        assert!(v1.contains(&("cpu", "cpu.shares", "256".to_string())));
        assert!(v1.contains(&("cpu", "cpu.cfs_quota_us", "50000".to_string())));
        assert!(v1.contains(&("memory", "memory.memsw.limit_in_bytes", "1048576".to_string())));
        // memsw must come after the memory limit: the kernel rejects memsw < limit.
        let pos = |f: &str| v1.iter().position(|(_, x, _)| *x == f).expect("present");
        assert!(pos("memory.limit_in_bytes") < pos("memory.memsw.limit_in_bytes"));
        let v2 = v2_settings(&res);
        assert!(v2.contains(&("cpu.max", "50000 100000".to_string())));
        assert!(v2.contains(&("cpu.weight", "10".to_string())));
        assert!(v2.contains(&("memory.swap.max", "0".to_string())));
        assert!(v2.contains(&("pids.max", "64".to_string())));
        assert!(v1_settings(&Resources::default()).is_empty());
    }

    #[test]
    fn keyed_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_keyed(v1, "oom_kill"), Some(3));
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_keyed(v2, "oom_kill"), Some(1));
        assert_eq!(parse_keyed(v2, "missing"), None);
    }

    /// cgroupfs files are plain files to the code, so a directory tree stands in for the kernel.
    #[test]
    fn writes_v2_files_on_a_fake_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("cgroup.controllers"), "cpuset cpu io memory pids\n").expect("write");
        std::fs::write(root.join("cgroup.subtree_control"), "").expect("write");
        let fs = CgroupFs::at(root);
        let res = Resources {
            memory_limit_bytes: Some(1 << 24),
            pids_limit: Some(10),
            ..Resources::default()
        };
        fs.create("rk/pod-a/c1", &res).expect("create");
        assert_eq!(
            std::fs::read_to_string(root.join("rk/pod-a/c1/memory.max")).expect("read"),
            "16777216"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("rk/pod-a/c1/pids.max")).expect("read"),
            "10"
        );
        assert!(!root.join("rk/pod-a/c1/memory.swap.max").exists());
        // The last controller enabled at the root is pids (each is written on its own).
        assert_eq!(
            std::fs::read_to_string(root.join("cgroup.subtree_control")).expect("read"),
            "+pids"
        );
        std::fs::write(root.join("rk/pod-a/c1/memory.events"), "oom 2\noom_kill 2\n").expect("write");
        assert_eq!(fs.oom_kills("rk/pod-a/c1"), 2);
    }

    #[test]
    fn writes_v1_files_on_a_fake_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for c in ["cpu", "memory", "pids"] {
            std::fs::create_dir(root.join(c)).expect("mkdir");
        }
        let fs = CgroupFs::at(root);
        let res = Resources {
            cpu_request_millis: Some(500),
            cpu_limit_millis: Some(250),
            ..Resources::default()
        };
        fs.create("rk/pod-b", &res).expect("create");
        assert_eq!(
            std::fs::read_to_string(root.join("cpu/rk/pod-b/cpu.shares")).expect("read"),
            "512"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("cpu/rk/pod-b/cpu.cfs_quota_us")).expect("read"),
            "25000"
        );
        assert!(root.join("pids/rk/pod-b").is_dir());
        assert!(!root.join("freezer").exists());
        assert_eq!(fs.procs_files("x").len(), 3);
    }

    #[test]
    fn detects_version_and_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("memory")).expect("mkdir");
        let v1 = CgroupFs::at(dir.path());
        assert_eq!(v1.version, CgroupVersion::V1);
        assert_eq!(v1.dirs("rk/pod-a"), vec![dir.path().join("memory/rk/pod-a")]);
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory pids\n").expect("write");
        let v2 = CgroupFs::at(dir.path());
        assert_eq!(v2.version, CgroupVersion::V2);
        assert_eq!(v2.procs_files("rk/x"), vec![dir.path().join("rk/x/cgroup.procs")]);
    }
}
