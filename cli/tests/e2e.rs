//! rkctl against a real single-replica cluster: every verb of the spine,
//! with its error paths, through the real binary.

use rk_testkit::Cluster;
use std::path::Path;
use std::process::Command;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn rkctl(config: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_rkctl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run rkctl");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: busybox:1.36
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: \"1\"
";

#[test]
fn apply_get_delete_round_trip() {
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, WEB).expect("write");
    let f = file.to_str().expect("utf8");

    let o = rkctl(&conf, &["apply", "-f", f]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        "deployment.apps/web created\nconfigmap/settings created\n"
    );
    let o = rkctl(&conf, &["apply", "-f", f]);
    assert_eq!(
        o.stdout,
        "deployment.apps/web unchanged\nconfigmap/settings unchanged\n"
    );
    std::fs::write(&file, WEB.replace("replicas: 2", "replicas: 3")).expect("write");
    let o = rkctl(&conf, &["apply", "-f", f]);
    assert_eq!(
        o.stdout,
        "deployment.apps/web configured\nconfigmap/settings unchanged\n"
    );

    let o = rkctl(&conf, &["get", "deployments"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut lines = o.stdout.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(lines.next().expect("row").starts_with("web "));

    let o = rkctl(&conf, &["get", "deploy", "web", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json output");
    assert_eq!(v["spec"]["replicas"], 3);
    assert_eq!(v["metadata"]["generation"], 2);
    let o = rkctl(&conf, &["get", "configmaps", "-l", "app=none"]);
    assert_eq!(o.code, 0);
    assert!(
        o.stderr.contains("No resources found in default namespace."),
        "{}",
        o.stderr
    );
    let o = rkctl(&conf, &["get", "cm", "-o", "name"]);
    assert_eq!(o.stdout, "configmap/settings\n");

    let o = rkctl(&conf, &["get", "deployment", "nope"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr.trim(),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
    let o = rkctl(&conf, &["get", "widgets"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("the server doesn't have a resource type \"widgets\""),
        "{}",
        o.stderr
    );

    let o = rkctl(&conf, &["delete", "deployment", "web"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "deployment.apps \"web\" deleted\n");
    let o = rkctl(&conf, &["delete", "-f", f]);
    assert_eq!(o.code, 1, "the deployment is already gone");
    assert!(
        o.stdout.contains("configmap \"settings\" deleted"),
        "{}",
        o.stdout
    );
    assert!(o.stderr.contains("(NotFound)"), "{}", o.stderr);
}

#[test]
fn bad_manifests_name_the_file_line_and_field() {
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    let dir = tempfile::tempdir().expect("tmp");

    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        WEB.replace("image: busybox:1.36", "image: busybox:1.36\n          imagee: x"),
    )
    .expect("write");
    let o = rkctl(&conf, &["apply", "-f", typo.to_str().expect("utf8")]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("typo.yaml") && o.stderr.contains("line 18") && o.stderr.contains("imagee"),
        "{}",
        o.stderr
    );
    // The other document in the file still applies; nothing of the bad one does.
    assert!(o.stdout.contains("configmap/settings created"), "{}", o.stdout);
    assert_eq!(rkctl(&conf, &["get", "deploy", "web"]).code, 1);

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: [unclosed\n",
    )
    .expect("write");
    let o = rkctl(&conf, &["apply", "-f", broken.to_str().expect("utf8")]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("broken.yaml") && o.stderr.contains("line"),
        "{}",
        o.stderr
    );

    let o = rkctl(&conf, &["apply", "-f", "/nonexistent/x.yaml"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr.trim(),
        "error: the path \"/nonexistent/x.yaml\" does not exist"
    );
}

#[test]
fn unreachable_servers_and_foreign_certificates_fail_cleanly() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().expect("tmp");
    // A config that points at a port nobody listens on.
    let good = std::fs::read_to_string(cluster.admin_conf()).expect("conf");
    let addr = &cluster.replicas[0].addr;
    let dead = dir.path().join("dead.conf");
    std::fs::write(
        &dead,
        good.replace(addr.as_str(), &format!("127.0.0.1:{}", rk_testkit::free_port())),
    )
    .expect("write");
    let o = rkctl(&dead, &["get", "pods"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.starts_with("Unable to connect to the server"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stderr.lines().count(), 1, "one line: {}", o.stderr);

    // A client certificate from another CA.
    let ca = rk_control_plane::pki::CertificateAuthority::generate("other").expect("ca");
    let leaf = ca.issue("rk:admin", &[]).expect("leaf");
    let real = rk_client::config::ConfigFile::load(&cluster.admin_conf()).expect("load");
    let r = real.resolve(Path::new("x"), None).expect("resolve");
    let foreign = rk_client::config::ConfigFile::new(
        &[format!("https://{addr}")],
        &r.ca_pem,
        &leaf.cert_pem,
        &leaf.key_pem,
    );
    let bad = dir.path().join("foreign.conf");
    std::fs::write(&bad, foreign.to_yaml()).expect("write");
    let o = rkctl(&bad, &["get", "pods"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr.lines().count(), 1, "one line: {}", o.stderr);
    assert!(o.stdout.is_empty());

    let o = rkctl(&dir.path().join("missing.conf"), &["get", "pods"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.starts_with("error:"), "{}", o.stderr);
}

/// The bash script end to end: names come from the cluster through the
/// real binary's `__complete`, and everything else from clap's function.
#[test]
fn bash_completion_asks_the_cluster() {
    if Command::new("bash").arg("-c").arg("true").status().is_err() {
        eprintln!("no bash; skipping");
        return;
    }
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, WEB).expect("write");
    let o = rkctl(&conf, &["apply", "-f", file.to_str().expect("utf8")]);
    assert_eq!(o.code, 0, "{}", o.stderr);

    let bin = Path::new(env!("CARGO_BIN_EXE_rkctl"));
    let path = format!(
        "{}:{}",
        bin.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = |words: &str, cword: usize| -> String {
        let script = format!(
            "source <(rkctl completion bash)\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n_rkctl_dynamic rkctl \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("PATH", &path)
            .env("RKCONFIG", &conf)
            .output()
            .expect("run bash");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(complete("rkctl get deploy ''", 3), "web\n");
    assert_eq!(complete("rkctl describe configmap s", 3), "settings\n");
    assert_eq!(complete("rkctl get deploy/w", 2), "deploy/web\n");
    assert!(complete("rkctl ap", 1).lines().any(|l| l == "apply"));
    assert!(complete("rkctl get --al", 2)
        .lines()
        .any(|l| l == "--all-namespaces"));
}
