//! Shared fixtures for the runtime's root-only integration tests: a busybox
//! rootfs, a runtime on a private state directory and cgroup parent, and
//! spec builders. Every name is unique per test so tests run in parallel and
//! next to other work on the machine; `TestEnv`'s Drop removes what a test leaves.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rk_runtime::*;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique on this machine for the life of this process.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A busybox root filesystem (cheap: one copy and symlinks), used as the single image layer.
pub fn make_rootfs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("rk-rootfs")
        .tempdir()
        .expect("tempdir");
    let root = dir.path();
    for d in ["bin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("copy busybox (apt-get install busybox-static)");
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n").expect("group");
    dir
}

pub fn helper_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_rk-shim"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

pub struct TestEnv {
    pub state: tempfile::TempDir,
    pub rootfs: tempfile::TempDir,
    pub cgroup_parent: String,
    pub cni: Option<CniConfig>,
    pub rt: LinuxRuntime,
}

impl TestEnv {
    pub fn new() -> Self {
        Self::with_cni(None)
    }

    pub fn with_cni(cni: Option<CniConfig>) -> Self {
        let state = tempfile::Builder::new()
            .prefix("rk-state")
            .tempdir()
            .expect("tempdir");
        let cgroup_parent = format!("rk-test/{}", unique("t"));
        let rt = LinuxRuntime::new(RuntimeConfig {
            state_dir: state.path().to_path_buf(),
            cgroup_parent: cgroup_parent.clone(),
            cni: cni.clone(),
            helper_dir: helper_dir(),
        })
        .expect("runtime");
        Self {
            state,
            rootfs: make_rootfs(),
            cgroup_parent,
            cni,
            rt,
        }
    }

    /// A second runtime over the same state, as after an agent restart.
    pub fn reopen(&self) -> LinuxRuntime {
        LinuxRuntime::new(RuntimeConfig {
            state_dir: self.state.path().to_path_buf(),
            cgroup_parent: self.cgroup_parent.clone(),
            cni: self.cni.clone(),
            helper_dir: helper_dir(),
        })
        .expect("runtime")
    }

    pub fn sandbox(&self, hostname: &str) -> (String, SandboxStatus) {
        let id = unique("sb");
        let st = self
            .rt
            .create_sandbox(&sandbox_spec(&id, hostname))
            .expect("create sandbox");
        (id, st)
    }

    pub fn container(&self, sandbox: &str, args: &[&str]) -> ContainerSpec {
        let id = unique("c");
        ContainerSpec {
            id: id.clone(),
            sandbox_id: sandbox.to_string(),
            layers: vec![self.rootfs.path().to_path_buf()],
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            working_dir: String::new(),
            uid: 0,
            gid: 0,
            supplementary_gids: vec![],
            tty: false,
            stdin: false,
            share_process_namespace: false,
            resources: Resources::default(),
            mounts: vec![],
            read_only_rootfs: false,
            capabilities_add: vec![],
            capabilities_drop: vec![],
            privileged: false,
            log_path: self.state.path().join("logs").join(format!("{id}.log")),
            log_max_bytes: 1 << 20,
            log_max_files: 2,
            labels: BTreeMap::from([("name".to_string(), id.clone())]),
        }
    }

    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            vec![root.join(&self.cgroup_parent)]
        } else {
            ["cpu", "memory", "pids", "freezer", "cpuacct"]
                .iter()
                .map(|c| root.join(c).join(&self.cgroup_parent))
                .collect()
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Ok((sandboxes, _)) = self.rt.list() {
            for s in sandboxes {
                let _ = self.rt.remove_sandbox(&s.id);
            }
        }
        for d in self.cgroup_dirs() {
            let _ = std::fs::remove_dir(&d);
        }
        if let Some(cni) = &self.cni {
            // CNI DEL leaves the bridge in place; a test's bridge is its own.
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &cni.bridge])
                .status();
        }
    }
}

pub fn sandbox_spec(id: &str, hostname: &str) -> SandboxSpec {
    SandboxSpec {
        id: id.to_string(),
        hostname: hostname.to_string(),
        host_network: false,
        labels: BTreeMap::from([("pod".to_string(), id.to_string())]),
        resources: Resources::default(),
        etc_hosts: format!("127.0.0.1 localhost\n127.0.0.1 {hostname}\n"),
        resolv_conf: "nameserver 127.0.0.53\n".to_string(),
    }
}

/// Waits until the container has exited and returns (exit code, signal, oom_killed).
pub fn wait_exit(rt: &LinuxRuntime, id: &str, timeout: Duration) -> (i32, Option<i32>, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        match rt
            .container_status(id)
            .expect("status")
            .expect("container exists")
            .state
        {
            ContainerState::Exited {
                exit_code,
                signal,
                oom_killed,
                ..
            } => return (exit_code, signal, oom_killed),
            ContainerState::Running { .. } => {
                assert!(
                    Instant::now() < deadline,
                    "container {id} still running after {timeout:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The log's contents (the message parts of the CRI entries), one per line.
pub fn log_messages(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap_or("").to_string())
        .collect()
}

/// Waits for `cond` to hold, polling.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Runs an exec to completion: (exit code, stdout, stderr).
pub fn exec_output(rt: &LinuxRuntime, id: &str, args: &[&str]) -> (i32, String, String) {
    use std::io::Read;
    let mut p = rt
        .exec(&ExecSpec {
            container_id: id.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            tty: false,
            tty_size: None,
        })
        .expect("exec");
    drop(p.stdin);
    let mut out = String::new();
    p.stdout.read_to_string(&mut out).expect("read stdout");
    let mut err = String::new();
    if let Some(mut e) = p.stderr.take() {
        e.read_to_string(&mut err).expect("read stderr");
    }
    let code = (p.waiter)().expect("wait");
    (code, out, err)
}
