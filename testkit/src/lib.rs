//! Test support: real `rk-control-plane` processes on loopback, with the
//! levers integration tests and benchmarks need (kill -9, restart, find the
//! leader, clients pointed at one replica or all of them).
//!
//! Binaries are found next to the running test executable's `deps/`
//! directory (`target/debug/`), or in `$RK_BIN_DIR`. Build them first:
//! `cargo build --workspace --bins`.

pub mod agent;
pub mod registry;

use rk_client::config::ConfigFile;
use rk_client::Client;
use rk_proto::v1 as pb;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of one of the workspace's binaries.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("RK_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not found: run `cargo build --workspace --bins` first (or set RK_BIN_DIR)",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

pub struct ReplicaProc {
    pub dir: PathBuf,
    pub addr: String,
    child: Option<Child>,
    extra: Vec<String>,
}

impl ReplicaProc {
    fn spawn(&mut self, args: &[String]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("open replica log");
        let child = Command::new(bin("rk-control-plane"))
            .args(args)
            .args(&self.extra)
            .env(
                "RUST_LOG",
                std::env::var("RK_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn rk-control-plane");
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// kill -9, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a graceful exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for ReplicaProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of real replicas under one temporary directory.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub replicas: Vec<ReplicaProc>,
    pub token: String,
    extra: Vec<String>,
}

fn wait_for_file(p: &Path, timeout: Duration, what: &str, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !p.exists() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up in {timeout:?}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Cluster {
    /// Starts `n` replicas: one `init`, then `join`s, one at a time.
    pub fn start(n: usize) -> Cluster {
        Self::start_with(n, &[])
    }

    /// Like [`start`](Self::start) with extra flags for every replica.
    pub fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("rk-test-")
            .tempdir()
            .expect("tempdir");
        let mut c = Cluster {
            root,
            replicas: vec![],
            token: String::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        c.add_init();
        for _ in 1..n {
            c.add_join();
        }
        c
    }

    fn new_proc(&self) -> ReplicaProc {
        let i = self.replicas.len();
        ReplicaProc {
            dir: self.root.path().join(format!("r{i}")),
            addr: format!("127.0.0.1:{}", free_port()),
            child: None,
            extra: self.extra.clone(),
        }
    }

    fn add_init(&mut self) {
        let mut r = self.new_proc();
        let args = vec![
            "init".into(),
            "--data-dir".into(),
            r.dir.display().to_string(),
            "--listen".into(),
            r.addr.clone(),
        ];
        r.spawn(&args);
        wait_for_file(
            &r.dir.join("replica.json"),
            Duration::from_secs(30),
            "init",
            &|| r.log(),
        );
        self.token = std::fs::read_to_string(r.dir.join("join-token"))
            .expect("join-token")
            .trim()
            .to_string();
        self.replicas.push(r);
    }

    /// Adds one replica with `join` and waits until it is a member.
    pub fn add_join(&mut self) -> usize {
        let mut r = self.new_proc();
        let server = self
            .replicas
            .iter()
            .find(|r| r.is_running())
            .map(|r| r.addr.clone())
            .expect("a running replica to join through");
        let args = vec![
            "join".into(),
            "--data-dir".into(),
            r.dir.display().to_string(),
            "--listen".into(),
            r.addr.clone(),
            "--server".into(),
            server,
            "--token".into(),
            self.token.clone(),
        ];
        r.spawn(&args);
        wait_for_file(
            &r.dir.join("replica.json"),
            Duration::from_secs(60),
            "join",
            &|| r.log(),
        );
        self.replicas.push(r);
        self.replicas.len() - 1
    }

    pub fn addrs(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.addr.clone()).collect()
    }

    /// An admin config listing the given replicas.
    pub fn config_for(&self, which: &[usize]) -> PathBuf {
        let base = ConfigFile::load(&self.replicas[0].dir.join("admin.conf")).expect("admin.conf");
        let r = base.resolve(Path::new("admin.conf"), None).expect("resolve");
        let servers: Vec<String> = which
            .iter()
            .map(|i| format!("https://{}", self.replicas[*i].addr))
            .collect();
        let cfg = ConfigFile::new(&servers, &r.ca_pem, &r.cert_pem, &r.key_pem);
        let name = which.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("-");
        let p = self.root.path().join(format!("admin-{name}.conf"));
        std::fs::write(&p, cfg.to_yaml()).expect("write config");
        p
    }

    /// An admin config listing every replica.
    pub fn admin_conf(&self) -> PathBuf {
        let all: Vec<usize> = (0..self.replicas.len()).collect();
        self.config_for(&all)
    }

    /// A client that fails over among every replica.
    pub fn client(&self) -> Client {
        Client::from_config_file(&self.admin_conf(), None).expect("client")
    }

    /// A client bound to one replica.
    pub fn client_for(&self, i: usize) -> Client {
        let mut c = Client::from_config_file(&self.config_for(&[i]), None).expect("client");
        c.failover_timeout = Duration::from_secs(5);
        c
    }

    pub fn kill(&mut self, i: usize) {
        self.replicas[i].kill();
    }

    /// Cuts replica `i` off until the returned guard is dropped: its open
    /// connections are destroyed, so requests in flight are lost, and every
    /// new packet to or from its port is dropped. (Dropping packets alone
    /// would only delay what was sent, and a frozen process's kernel would
    /// still accept it.) Needs root, `nft` and `ss`.
    pub fn cut(&self, i: usize) -> LinkCut {
        let port = self.replicas[i]
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .expect("replica address has a port");
        LinkCut::new(port)
    }

    pub fn restart(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        let args = vec!["run".into(), "--data-dir".into(), r.dir.display().to_string()];
        r.spawn(&args);
    }

    /// The index of the replica that leads, as seen by a majority of the
    /// running ones, waiting up to `timeout`.
    pub async fn leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            for (i, r) in self.replicas.iter().enumerate() {
                if !r.is_running() {
                    continue;
                }
                let c = self.client_for(i);
                let mut cc = pb::cluster_client::ClusterClient::new(c.channel());
                let resp =
                    tokio::time::timeout(Duration::from_millis(500), cc.members(pb::MembersRequest {})).await;
                if let Ok(Ok(m)) = resp {
                    let m = m.into_inner();
                    if let Some(l) = m.members.iter().find(|x| x.id == m.leader_id) {
                        if let Some(idx) = self
                            .replicas
                            .iter()
                            .position(|r| r.addr == l.addr && r.is_running())
                        {
                            return Some(idx);
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Joins and starts a node agent that has the busybox test image
    /// ([`agent::BUSYBOX`]) and the given extra `run` flags.
    pub fn add_agent(&self, extra: &[&str]) -> agent::AgentProc {
        let server = self
            .replicas
            .iter()
            .find(|r| r.is_running())
            .map(|r| r.addr.clone())
            .expect("a running replica");
        let mut a = agent::AgentProc::join(
            self.root.path(),
            &server,
            &self.token,
            Some(agent::busybox_images()),
            extra,
        );
        a.start();
        a
    }

    /// Every replica's log, for failure messages.
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("==== replica {i} ({}) ====\n{}", r.addr, r.log()))
            .collect()
    }
}

/// A cut link (see [`Cluster::cut`]): an nftables table dropping one TCP
/// port's traffic, removed on drop.
pub struct LinkCut {
    table: String,
}

impl LinkCut {
    fn new(port: u16) -> LinkCut {
        let table = format!("rk_test_cut_{port}");
        let rules = format!(
            "table inet {table} {{\n\
             chain in {{ type filter hook input priority 0; tcp dport {port} drop; tcp sport {port} drop; }}\n\
             }}\n"
        );
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run nft (install nftables)");
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin.write_all(rules.as_bytes()).expect("write nft rules");
        }
        let status = child.wait().expect("wait for nft");
        assert!(status.success(), "nft refused the cut rules:\n{rules}");
        // Dropped packets alone would be retransmitted once the cut heals;
        // destroying the open connections makes what was in flight lost.
        let filter = format!("( dport = :{port} or sport = :{port} )");
        let killed = Command::new("ss")
            .args(["-K", "-t", &filter])
            .stdout(Stdio::null())
            .status()
            .expect("run ss (install iproute2)");
        assert!(killed.success(), "ss -K {filter} failed");
        LinkCut { table }
    }
}

impl Drop for LinkCut {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}
