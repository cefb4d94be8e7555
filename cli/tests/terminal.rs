//! What changes when rkctl talks to a terminal: status colours and the
//! progress line of long waits appear there and never in a pipe; and
//! `delete` waits for objects to be gone (kubectl's default), honouring
//! `--timeout` and `--wait=false`. Against a real single-replica control
//! plane; the terminal is a real pty from script(1).

use rk_testkit::{bin, Cluster};
use rkctl::progress::Terminal;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{ok, rk, Out};

const TTY: Terminal = Terminal {
    color: true,
    progress: true,
};

async fn rk_on_terminal(conf: &Path, args: &[&str]) -> Out {
    let mut all = vec!["--config".to_string(), conf.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = rkctl::run_on(all, &mut out, &mut err, TTY).await;
    Out {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Runs the rkctl binary with its output on a pseudo-terminal.
fn rkctl_in_pty(conf: &Path, args: &str, env: &[(&str, &str)]) -> String {
    let cmd = format!("{} --config {} {args}", bin("rkctl").display(), conf.display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .envs(env.iter().copied())
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("run script(1) (bsdutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_until_the_object_is_gone() {
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    let c = cluster.client();
    c.create(
        "configmaps",
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
                "data": {"k": "v"}}),
    )
    .await
    .expect("create configmap");

    // The finalizer holds the object: the wait runs out.
    let o = rk(&conf, &["delete", "configmap", "held", "--timeout=1s"]).await;
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.stdout, "configmap \"held\" deleted\n");
    assert_eq!(
        o.stderr,
        "error: timed out waiting for the condition on configmaps/held\n"
    );
    // --wait=false returns at once; the object is still there.
    let t = Instant::now();
    ok(&conf, &["delete", "configmap", "held", "--wait=false"]).await;
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(c.get("configmaps", "default", "held").await.is_ok());

    // On a terminal the wait draws (and then erases) a progress line.
    let o = rk_on_terminal(&conf, &["delete", "configmap", "held", "--timeout=1s"]).await;
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("\r\x1b[2Kwaiting for 1 object to be deleted: configmaps/held ("),
        "{o:?}"
    );

    // Once the finalizer is removed, a waiting delete returns.
    let releaser = {
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut cm = c.get("configmaps", "default", "held").await.expect("get");
            cm["metadata"]["finalizers"] = json!([]);
            c.update("configmaps", &cm).await.expect("release the finalizer");
        })
    };
    let t = Instant::now();
    let o = rk(&conf, &["delete", "configmap", "held", "--timeout=30s"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "returned before the finalizer went"
    );
    releaser.await.expect("releaser");
    let gone = c.get("configmaps", "default", "held").await;
    assert!(gone.is_err(), "still there after the wait: {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_colours_only_on_a_terminal() {
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    // No node runs it, so it stays Pending.
    cluster
        .client()
        .create(
            "pods",
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "waiting"},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await
        .expect("create pod");

    let piped = ok(&conf, &["get", "pods"]).await;
    assert!(piped.contains("Pending") && !piped.contains('\x1b'), "{piped}");
    let o = rk_on_terminal(&conf, &["get", "pods"]).await;
    assert!(o.stdout.contains("\x1b[33mPending\x1b[0m"), "{o:?}");

    // The real binary decides from its own streams.
    let tty = rkctl_in_pty(&conf, "get pods", &[]);
    assert!(tty.contains("\x1b[33mPending\x1b[0m"), "{tty:?}");
    let no_color = rkctl_in_pty(&conf, "get pods", &[("NO_COLOR", "1")]);
    assert!(
        no_color.contains("Pending") && !no_color.contains('\x1b'),
        "{no_color:?}"
    );
    let out = Command::new(bin("rkctl"))
        .arg("--config")
        .arg(&conf)
        .args(["get", "pods"])
        .output()
        .expect("run rkctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Pending") && !text.contains('\x1b'), "{text:?}");
}
