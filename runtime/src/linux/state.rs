//! What the runtime keeps on disk, so that everything survives an agent
//! restart: the agent, the shims and the pause processes only share these files.
//!
//! ```text
//! <state_dir>/sandboxes/<id>/sandbox.json   SandboxRecord (written last on create)
//!                            netns          bind mount of the Pod's network namespace
//!                            network.json   NetworkPlan, written before CNI ADD
//!                            hosts, resolv.conf, hostname
//! <state_dir>/containers/<id>/config.json   ContainerConfig, read by the shim
//!                             started.json  Started, written by the shim once the process exec'd
//!                             exit.json     Exited, written when it ended
//!                             upper/ work/ rootfs/   overlayfs directories
//! <state_dir>/cni/ipam/                      host-local allocations
//! ```
//!
//! Files are replaced atomically (write to a temporary name, then rename), so
//! a reader never sees half a record.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::cgroup::CgroupVersion;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub hostname: String,
    pub host_network: bool,
    pub labels: BTreeMap<String, String>,
    pub created_at_ns: u64,
    pub pid: u32,
    /// /proc/PID/stat start time of the pause process, to tell it from a later process with the same pid.
    pub pid_start: u64,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// Everything the shim needs to create a container, written by the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub sandbox_id: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub uid: u32,
    pub gid: u32,
    pub supplementary_gids: Vec<u32>,
    pub tty: bool,
    pub share_process_namespace: bool,
    /// Image layers, bottom first (as in the spec).
    pub layers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    /// Bind mounts in order: the Pod's /etc files first, then volumes.
    pub mounts: Vec<MountConfig>,
    pub read_only_rootfs: bool,
    pub privileged: bool,
    /// Capability bit mask the process keeps.
    pub capabilities: u64,
    pub log_path: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    pub labels: BTreeMap<String, String>,
    pub sandbox_pid: u32,
    pub sandbox_pid_start: u64,
    pub cgroup: String,
    pub cgroup_version: CgroupVersion,
    pub created_at_ns: u64,
}

/// Written by the shim once the container process has exec'd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub shim_pid: u32,
    pub shim_start: u64,
    pub pid: u32,
    pub pid_start: u64,
    pub started_at_ns: u64,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub finished_at_ns: u64,
    /// Set when nobody saw the process end (its shim was killed), so the code is a stand-in.
    #[serde(default)]
    pub unknown: bool,
    /// Why the process never started, when it did not.
    #[serde(default)]
    pub start_error: Option<String>,
}

/// The shim's answer on its start pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartReply {
    Started(Started),
    Failed(String),
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Reads a JSON record; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Fields 3 (state) and 22 (start time in clock ticks since boot) of /proc/PID/stat.
/// The command name (field 2) may contain spaces and parentheses, so parsing
/// starts after the last ')'.
pub fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

pub fn proc_stat(pid: u32) -> Option<(char, u64)> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_stat(&t))
}

/// The start time of a live process, for later [`alive`] checks.
pub fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, s)| s)
}

/// Whether the process `pid` started at `start` still runs: same start time
/// (not a reused pid) and not a zombie.
pub fn alive(pid: u32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((state, s)) if s == start && state != 'Z' && state != 'X')
}

/// A state-directory name must be a single safe path component.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    1000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some(('S', 987_654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id();
        let start = start_time(me).expect("own stat");
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
    }

    #[test]
    fn ids() {
        assert!(valid_id("abc-123_x.y"));
        assert!(!valid_id(""));
        assert!(!valid_id(".."));
        assert!(!valid_id("a/b"));
    }

    #[test]
    fn json_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.json");
        assert_eq!(read_json::<Exited>(&p).expect("read"), None);
        let e = Exited {
            exit_code: 3,
            signal: None,
            oom_killed: false,
            finished_at_ns: 5,
            unknown: false,
            start_error: None,
        };
        write_json(&p, &e).expect("write");
        assert_eq!(read_json::<Exited>(&p).expect("read"), Some(e));
    }
}
