//! The rkctl harness shared by the end-to-end test files: run rkctl in
//! process against a cluster's config and capture its streams.

#![allow(dead_code)] // Each test file uses a different subset.

use std::path::Path;

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub async fn rk(conf: &Path, args: &[&str]) -> Out {
    let mut all = vec!["--config".to_string(), conf.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = rkctl::run_with(all, &mut out, &mut err).await;
    Out {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Runs rkctl and insists on success.
pub async fn ok(conf: &Path, args: &[&str]) -> String {
    let o = rk(conf, args).await;
    assert_eq!(o.code, 0, "rkctl {args:?} failed: {o:?}");
    o.stdout
}
