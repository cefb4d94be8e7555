//! Start-up latency, printed (run with `--nocapture` to see it): sandbox
//! creation plus one container start, median over 20 runs, without CNI and with it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rk_runtime::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(env: &TestEnv, label: &str) {
    let (mut sandbox, mut container, mut total, mut removal) = (vec![], vec![], vec![], vec![]);
    for _ in 0..20 {
        let t0 = Instant::now();
        let (sb, _) = env.sandbox("timing-pod");
        let t1 = Instant::now();
        let spec = env.container(&sb, &["sleep", "1000"]);
        env.rt.start_container(&spec).expect("start");
        let t2 = Instant::now();
        env.rt.remove_sandbox(&sb).expect("remove");
        removal.push(t2.elapsed());
        sandbox.push(t1 - t0);
        container.push(t2 - t1);
        total.push(t2 - t0);
    }
    eprintln!(
        "{label}: median over 20: sandbox {:?}, container start {:?}, sandbox+container {:?}, remove {:?}",
        median(sandbox),
        median(container),
        median(total),
        median(removal)
    );
}

#[test]
fn start_latency() {
    measure(&TestEnv::new(), "no CNI");
    let pid = std::process::id();
    let cni = CniConfig {
        bin_dir: "/usr/lib/cni".into(),
        bridge: format!("rkt{}n9", pid % 100_000),
        subnet: format!("10.209.{}.0/24", pid % 250),
        gateway: None,
    };
    if std::path::Path::new("/usr/lib/cni/bridge").exists() {
        measure(&TestEnv::with_cni(Some(cni)), "CNI bridge");
    }
}
