//! Real `rk-node-agent` processes for tests, each with its own data dir,
//! cgroup subtree, CNI bridge and Pod subnet so tests can run in parallel,
//! and a Drop that removes every sandbox the agent left running.

use crate::bin;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct AgentProc {
    pub name: String,
    pub dir: PathBuf,
    pub bridge: String,
    pub subnet: String,
    child: Option<Child>,
    extra: Vec<String>,
}

/// Values unique to this process and call, for names, bridges and subnets.
fn unique() -> (String, u8) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let tag = format!("{:x}{:x}", pid % 0xfffff, n);
    // Subnets 10.90.0.0/24 .. 10.90.255.0/24, spread by pid and counter.
    let octet = ((pid.wrapping_mul(31)).wrapping_add(n.wrapping_mul(7)) % 250) as u8;
    (tag, octet)
}

impl AgentProc {
    /// Joins a new agent to the cluster behind `server` (not started yet).
    pub fn join(root: &Path, server: &str, token: &str, images: Option<&Path>, extra: &[&str]) -> AgentProc {
        let (tag, octet) = unique();
        let name = format!("node-{tag}");
        let dir = root.join(&name);
        let bridge = format!("rkt{tag}").chars().take(15).collect::<String>();
        let subnet = format!("10.90.{octet}.0/24");
        let status = Command::new(bin("rk-node-agent"))
            .args(["join", "--server", server, "--token", token, "--data-dir"])
            .arg(&dir)
            .args([
                "--name",
                &name,
                "--listen",
                "127.0.0.1:0",
                "--node-ip",
                "127.0.0.1",
            ])
            .args([
                "--bridge",
                &bridge,
                "--pod-cidr",
                &subnet,
                "--cgroup-parent",
                &format!("rk-test/{name}"),
            ])
            .stdin(Stdio::null())
            .status()
            .expect("run rk-node-agent join");
        assert!(status.success(), "rk-node-agent join failed");
        if let Some(src) = images {
            let dst = dir.join("images");
            std::fs::create_dir_all(&dst).expect("images dir");
            for e in std::fs::read_dir(src).expect("read images").flatten() {
                std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy image archive");
            }
        }
        AgentProc {
            name,
            dir,
            bridge,
            subnet,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("open agent log");
        let child = Command::new(bin("rk-node-agent"))
            .args(["run", "--data-dir"])
            .arg(&self.dir)
            .args(&self.extra)
            .env(
                "RUST_LOG",
                std::env::var("RK_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn rk-node-agent");
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// kill -9 of the agent alone: its containers keep running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }

    /// Removes every sandbox and container the agent's runtime holds.
    pub fn clean_runtime(&self) {
        let cfg = rk_runtime::RuntimeConfig {
            state_dir: self.dir.join("runtime"),
            cgroup_parent: format!("rk-test/{}", self.name),
            cni: Some(rk_runtime::CniConfig {
                bridge: self.bridge.clone(),
                subnet: self.subnet.clone(),
                ..Default::default()
            }),
            helper_dir: bin("rk-shim").parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let Ok(rt) = rk_runtime::LinuxRuntime::new(cfg) else {
            return;
        };
        use rk_runtime::Runtime;
        if let Ok((sandboxes, containers)) = rt.list() {
            for c in containers {
                let _ = rt.remove_container(&c.id);
            }
            for s in sandboxes {
                let _ = rt.remove_sandbox(&s.id);
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        for ctrl in ["cpu", "cpuacct", "memory", "pids", "freezer", "unified", ""] {
            let p = Path::new("/sys/fs/cgroup")
                .join(ctrl)
                .join("rk-test")
                .join(&self.name);
            let _ = std::fs::remove_dir(&p);
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
        self.clean_runtime();
    }
}

/// A directory holding a busybox image archive, tagged `rk.test/busybox:1`
/// (and its docker.io short name `busybox:1` points elsewhere, so tests
/// always name it fully). Built once per test process.
pub fn busybox_images() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("rk-images-")
            .tempdir()
            .expect("tempdir");
        build_busybox_archive(&dir.path().join("busybox.tar"), BUSYBOX).expect("build busybox image");
        dir
    })
    .path()
}

pub const BUSYBOX: &str = "rk.test/busybox:1";

/// Writes an OCI archive of a busybox image (from Debian's busybox-static)
/// named `reference`, whose default command is `sh`.
pub fn build_busybox_archive(out: &Path, reference: &str) -> std::io::Result<String> {
    let root = tempfile::tempdir()?;
    rk_image::testing::busybox_rootfs(root.path())?;
    let config = rk_image::ImageConfig {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        ..Default::default()
    };
    rk_image::testing::write_oci_archive(out, reference, &[root.path()], &config)
}

/// Waits until `f` returns Some, or panics after `timeout` with `what` and `log()`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, log: impl Fn() -> String, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
