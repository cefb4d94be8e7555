//! Pod networking through the CNI bridge plugin (needs root and the
//! containernetworking-plugins package in /usr/lib/cni).

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::*;
use rk_runtime::*;

const T: Duration = Duration::from_secs(20);

/// A bridge name and /24 subnet of this test alone.
fn private_network(n: u8) -> CniConfig {
    let pid = std::process::id();
    CniConfig {
        bin_dir: "/usr/lib/cni".into(),
        bridge: format!("rkt{}n{n}", pid % 100_000),
        subnet: format!("10.{}.{}.0/24", 200 + n, pid % 250),
        gateway: None,
    }
}

fn have_plugins() -> bool {
    let ok = Path::new("/usr/lib/cni/bridge").exists() && Path::new("/usr/lib/cni/host-local").exists();
    if !ok {
        eprintln!("CNI plugins missing: apt-get install -y containernetworking-plugins");
    }
    ok
}

#[test]
fn pod_gets_an_ip_the_host_can_reach() {
    assert!(have_plugins());
    let cni = private_network(1);
    let env = TestEnv::with_cni(Some(cni.clone()));
    let (sb, st) = env.sandbox("net-pod");
    let ip: Ipv4Addr = st.ip.as_deref().expect("pod ip").parse().expect("ipv4");
    let prefix = cni.subnet.rsplit_once(".0/").expect("subnet").0;
    assert!(ip.to_string().starts_with(prefix), "{ip} not in {}", cni.subnet);

    let server = env.container(
        &sb,
        &["sh", "-c", "while true; do echo pong | nc -l -p 8080; done"],
    );
    env.rt.start_container(&server).expect("start");
    let reply = (0..100).find_map(|_| {
        let mut s = match TcpStream::connect_timeout(&(ip, 8080).into(), Duration::from_millis(200)) {
            Ok(s) => s,
            Err(_) => {
                // Refused until the server listens.
                std::thread::sleep(Duration::from_millis(50));
                return None;
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out).filter(|o| !o.is_empty())
    });
    assert_eq!(reply.as_deref(), Some("pong\n"));

    // The Pod sees its address on eth0 and a default route via the bridge.
    let probe = env.container(&sb, &["sh", "-c", "ip -4 addr show eth0; ip route"]);
    env.rt.start_container(&probe).expect("start");
    assert_eq!(wait_exit(&env.rt, &probe.id, T).0, 0);
    let out = log_messages(&probe.log_path).join("\n");
    assert!(
        out.contains(&ip.to_string()) && out.contains("default via"),
        "{out}"
    );

    // A second Pod gets another address; removal frees the first.
    let (sb2, st2) = env.sandbox("net-pod-2");
    assert_ne!(st2.ip, st.ip);
    env.rt.remove_sandbox(&sb).expect("remove");
    env.rt.remove_sandbox(&sb2).expect("remove");
    let ipam = env
        .state
        .path()
        .join("cni/ipam")
        .join(format!("rk-{}", cni.bridge));
    assert!(!ipam.join(ip.to_string()).exists(), "address still allocated");
}

#[test]
fn without_cni_a_pod_has_loopback_only() {
    let env = TestEnv::new();
    let (sb, st) = env.sandbox("lo-pod");
    assert_eq!(st.ip, None);
    let probe = env.container(
        &sb,
        &["sh", "-c", "ls /sys/class/net | tr '\\n' ' '; ip -o link show lo"],
    );
    env.rt.start_container(&probe).expect("start");
    assert_eq!(wait_exit(&env.rt, &probe.id, T).0, 0);
    let out = log_messages(&probe.log_path).join("\n");
    assert!(out.starts_with("lo "), "{out}");
    assert!(out.contains("UP"), "{out}");

    // The pause process exits on SIGTERM; creating the sandbox again replaces it.
    let pid = st.pid.expect("pause pid");
    // SAFETY: kill(2) on the pid the runtime reported; no memory involved.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    assert!(eventually(T, || env
        .rt
        .sandbox_status(&sb)
        .expect("status")
        .expect("exists")
        .pid
        .is_none()));
    let again = env
        .rt
        .create_sandbox(&sandbox_spec(&sb, "lo-pod"))
        .expect("recreate");
    assert!(again.pid.is_some_and(|p| p != pid));
}

#[test]
fn host_network_pods_share_the_host_namespace() {
    let env = TestEnv::new();
    let id = unique("sb");
    let mut spec = sandbox_spec(&id, "hostnet-pod");
    spec.host_network = true;
    let st = env.rt.create_sandbox(&spec).expect("create");
    assert_eq!(st.ip, None);
    let probe = env.container(&id, &["readlink", "/proc/1/ns/net"]);
    env.rt.start_container(&probe).expect("start");
    assert_eq!(wait_exit(&env.rt, &probe.id, T).0, 0);
    let host_ns = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    let seen = log_messages(&probe.log_path);
    assert_eq!(seen, [host_ns.to_string_lossy().to_string()]);
}
