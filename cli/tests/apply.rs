//! Client-side apply (the three-way merge), diff, name completion and the
//! JSONPath printers of `get`, against a real single-replica control plane.

use rk_testkit::Cluster;
use serde_json::{json, Value};

mod common;
use common::{ok, rk};

/// A Deployment without `replicas`, so that `scale` owns that field.
const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
    tier: front
spec:
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
          env:
            - name: A
              value: \"1\"
            - name: B
              value: \"2\"
";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

async fn live(c: &rk_client::Client, resource: &str, name: &str) -> Value {
    c.get(resource, "default", name).await.expect("get")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_merges_three_ways() {
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    let c = cluster.client();
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("web.yaml");
    let f = file.to_str().expect("utf8");
    std::fs::write(&file, WEB).expect("write");

    // Create: the manifest is recorded in the annotation.
    assert_eq!(
        ok(&conf, &["apply", "-f", f]).await,
        "deployment.apps/web created\n"
    );
    let d = live(&c, "deployments.apps", "web").await;
    let recorded: Value = serde_json::from_str(
        d["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .expect("annotation"),
    )
    .expect("json");
    assert_eq!(
        recorded["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );
    assert!(recorded["metadata"]["annotations"].is_null(), "{recorded}");
    assert_eq!(
        ok(&conf, &["apply", "-f", f]).await,
        "deployment.apps/web unchanged\n"
    );
    let o = rk(&conf, &["diff", "-f", f]).await;
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (0, "", ""),
        "{o:?}"
    );

    // Fields nobody's manifest mentions survive: a scale, another writer's
    // label.
    ok(&conf, &["scale", "deployment/web", "--replicas", "4"]).await;
    ok(&conf, &["label", "deployment", "web", "owner=ops"]).await;
    assert_eq!(
        ok(&conf, &["apply", "-f", f]).await,
        "deployment.apps/web unchanged\n"
    );

    // Dropping a label and an env var from the manifest removes them; the
    // image changes; the rest stays.
    let changed = WEB
        .replace("    tier: front\n", "")
        .replace("            - name: B\n              value: \"2\"\n", "")
        .replace("busybox:1.36", "busybox:1.37");
    std::fs::write(&file, &changed).expect("write");
    let o = rk(&conf, &["diff", "-f", f]).await;
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout.starts_with(
            "--- live/apps.v1.Deployment.default.web\n+++ merged/apps.v1.Deployment.default.web\n"
        ),
        "{o:?}"
    );
    for line in [
        "-    tier: front",
        "-        - name: B",
        "-        image: busybox:1.36",
        "+        image: busybox:1.37",
    ] {
        assert!(o.stdout.lines().any(|l| l == line), "{line}: {o:?}");
    }
    assert!(!o.stdout.contains("replicas"), "{o:?}");
    assert!(!o.stdout.contains("resourceVersion"), "{o:?}");
    for dry in ["--dry-run=client", "--dry-run=server"] {
        let suffix = if dry.ends_with("client") {
            "(dry run)"
        } else {
            "(server dry run)"
        };
        assert_eq!(
            ok(&conf, &["apply", "-f", f, dry]).await,
            format!("deployment.apps/web configured {suffix}\n")
        );
    }
    assert_eq!(
        live(&c, "deployments.apps", "web").await["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    assert_eq!(
        ok(&conf, &["apply", "-f", f]).await,
        "deployment.apps/web configured\n"
    );
    let d = live(&c, "deployments.apps", "web").await;
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["labels"], json!({"app": "web", "owner": "ops"}));
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox:1.37");
    assert_eq!(container["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(
        ok(&conf, &["apply", "-f", f]).await,
        "deployment.apps/web unchanged\n"
    );
    let o = rk(&conf, &["diff", "-f", f]).await;
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{o:?}");

    // An object created without apply has no record: apply warns, keeps
    // what the manifest does not mention, and writes the record.
    c.create(
        "configmaps",
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "default"}, "data": {"a": "0", "keep": "x"}}),
    )
    .await
    .expect("configmap");
    let cm = dir.path().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n",
    )
    .expect("write");
    let cm = cm.to_str().expect("utf8");
    let o = rk(&conf, &["apply", "-f", cm]).await;
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "configmap/settings configured\n"),
        "{o:?}"
    );
    assert_eq!(
        o.stderr,
        format!("Warning: resource configmaps/settings is missing the {LAST_APPLIED} annotation which is required by rkctl apply. rkctl apply should only be used on resources created declaratively by rkctl apply. The missing annotation will be patched automatically.\n")
    );
    let live_cm = live(&c, "configmaps", "settings").await;
    assert_eq!(live_cm["data"], json!({"a": "1", "keep": "x"}));
    assert!(live_cm["metadata"]["annotations"][LAST_APPLIED].is_string());
    let o = rk(&conf, &["apply", "-f", cm]).await;
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str()),
        ("configmap/settings unchanged\n", "")
    );

    // diff of an object that does not exist yet, and diff's failures.
    let new = dir.path().join("new.yaml");
    std::fs::write(
        &new,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fresh\ndata:\n  k: v\n",
    )
    .expect("write");
    let o = rk(&conf, &["diff", "-f", new.to_str().expect("utf8")]).await;
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stdout.contains("\n+data:\n+  k: v\n"), "{o:?}");
    assert!(
        c.get("configmaps", "default", "fresh").await.is_err(),
        "diff must not create"
    );
    std::fs::write(&new, "apiVersion: v1\nkind: Widget\nmetadata:\n  name: w\n").expect("write");
    let o = rk(&conf, &["diff", "-f", new.to_str().expect("utf8")]).await;
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.starts_with("error: resource mapping not found"), "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_and_get_printers() {
    let cluster = Cluster::start(1);
    let conf = cluster.admin_conf();
    let c = cluster.client();
    for (name, n) in [("beta", 3), ("alpha", 10), ("gamma", 1)] {
        c.create(
            "configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default", "labels": {"n": n.to_string()}},
                    "data": {"n": n.to_string()}}),
        )
        .await
        .expect("configmap");
    }
    c.create(
        "configmaps",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "elsewhere", "namespace": "other"}}),
    )
    .await
    .ok();
    let confs = conf.display().to_string();

    // The hidden completion command, as the shell scripts call it.
    let complete = |args: &[&str]| {
        let mut all: Vec<String> = vec!["__complete".into()];
        all.extend(args.iter().map(|s| s.to_string()));
        all
    };
    let run = |args: Vec<String>| async move {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = rkctl::run_with(args, &mut out, &mut err).await;
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    };
    let (code, out, err) = run(complete(&["--config", &confs, "get", "configmaps", ""])).await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "alpha\nbeta\ngamma\n", "")
    );
    let (_, out, _) = run(complete(&[
        "describe", "--config", &confs, "cm", "-o", "yaml", "g",
    ]))
    .await;
    assert_eq!(out, "gamma\n");
    let (_, out, _) = run(complete(&["--config", &confs, "delete", "cm/a"])).await;
    assert_eq!(out, "cm/alpha\n");
    let (_, out, _) = run(complete(&["--config", &confs, "-n", "other", "get", "cm", ""])).await;
    assert!(out == "elsewhere\n" || out.is_empty(), "{out}");
    let (_, out, _) = run(complete(&["--config", &confs, "get", ""])).await;
    assert!(out.lines().any(|l| l == "deployments"), "{out}");
    assert!(out.lines().any(|l| l == "configmaps"), "{out}");
    // Failures print nothing and exit 0.
    let (code, out, err) = run(complete(&["--config", "/nonexistent", "get", "cm", ""])).await;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    let (code, out, err) = run(complete(&["--config", &confs, "get", "widgets", ""])).await;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));

    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&conf, &["completion", shell]).await;
        assert!(script.contains("rkctl __complete"), "{shell}: no dynamic names");
        assert!(script.contains("rkctl"), "{shell}");
    }
    let o = rk(&conf, &["completion", "tcsh"]).await;
    assert_eq!(o.code, 1);

    // -o jsonpath, -o custom-columns, --sort-by.
    assert_eq!(
        ok(&conf, &["get", "cm", "beta", "-o", "jsonpath={.metadata.name}"]).await,
        "beta"
    );
    assert_eq!(
        ok(&conf, &["get", "cm", "-o", "jsonpath={.items[*].metadata.name}"]).await,
        "alpha beta gamma"
    );
    assert_eq!(
        ok(
            &conf,
            &[
                "get",
                "cm",
                "--sort-by",
                ".metadata.labels.n",
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}"#
            ]
        )
        .await,
        "gamma\nalpha\nbeta\n",
        "labels are strings: sorted as text"
    );
    assert_eq!(
        ok(
            &conf,
            &[
                "get",
                "cm",
                "-o",
                "custom-columns=NAME:.metadata.name,N:.data.n,NS:{.metadata.namespace}",
                "--sort-by={.metadata.name}"
            ]
        )
        .await,
        "NAME    N     NS\nalpha   10    default\nbeta    3     default\ngamma   1     default\n"
    );
    let o = rk(&conf, &["get", "cm", "-o", "jsonpath={.items[0"]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.starts_with("error: error parsing jsonpath"), "{o:?}");
}
