//! `rkctl explain` end to end, without a cluster: a golden output, the
//! recursive form, and the errors. Regenerate the golden file after a
//! deliberate change (a k8s-openapi upgrade changes descriptions) with
//! `RK_UPDATE_GOLDEN=1 cargo test -p rkctl --test explain`.

async fn rkctl(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = rkctl::run_with(args.iter().map(|s| s.to_string()).collect(), &mut out, &mut err).await;
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[tokio::test]
async fn deployment_strategy_matches_the_golden_output() {
    // Cargo's run-time CARGO_MANIFEST_DIR first: a shared build directory
    // may hand this checkout a test binary compiled in another.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let golden = crate_dir.join("tests/golden/explain-deployment-strategy.txt");
    let (code, out, err) = rkctl(&["explain", "deployment.spec.strategy"]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    if std::env::var_os("RK_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &out).expect("write golden");
    }
    let want = std::fs::read_to_string(&golden).expect("read golden");
    assert_eq!(out, want, "explain output changed; see the header of this file");
}

#[tokio::test]
async fn recursive_names_every_nested_field() {
    let (code, out, _) = rkctl(&["explain", "deploy.spec.strategy.rollingUpdate", "--recursive"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\n\
         FIELD: rollingUpdate <RollingUpdateDeployment>\n\n\
         DESCRIPTION:\n    \
         Rolling update config params. Present only if DeploymentStrategyType =\n    \
         RollingUpdate.\n    \
         Spec to control the desired behavior of rolling update.\n\n\
         FIELDS:\n  maxSurge\t<IntOrString>\n  maxUnavailable\t<IntOrString>\n"
    );
}

#[tokio::test]
async fn unknown_fields_and_kinds_fail() {
    let (code, out, err) = rkctl(&["explain", "pod.spec.containers.foo"]).await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, "", "error: field \"foo\" does not exist\n")
    );
    let (code, _, err) = rkctl(&["explain", "widgets"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "error: the server doesn't have a resource type \"widgets\"\n")
    );
    let (code, _, err) = rkctl(&["explain", "pod..spec"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "error: invalid field path \"pod..spec\"\n")
    );
}
