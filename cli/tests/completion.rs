//! The completion scripts load in the real shells and complete `rkctl get `
//! with the kinds (which `rkctl __complete` answers without a cluster).
//! Needs bash, zsh and fish (scripts/install-deps installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The script `rkctl completion SHELL` prints, written to a file.
async fn script(dir: &Path, shell: &str) -> PathBuf {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = rkctl::run_with(vec!["completion".into(), shell.into()], &mut out, &mut err).await;
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let p = dir.join(format!("rkctl.{shell}"));
    std::fs::write(&p, out).expect("write script");
    p
}

/// Runs `shell ARGS...` with the freshly built rkctl first on PATH (the
/// scripts call `rkctl __complete`); returns stdout, insisting on success
/// and a quiet stderr.
fn run(shell: &str, args: &[&str]) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_rkctl"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let out = Command::new(shell)
        .args(args)
        .env("PATH", path)
        // No cluster: names would need one, kinds do not.
        .env("RKCONFIG", "/nonexistent/rk-config")
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("run {shell} ({e}): install it with scripts/install-deps"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{shell} {args:?} failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(stderr, "", "{shell} {args:?} complained:\n{stdout}");
    stdout
}

fn assert_kinds(shell: &str, out: &str) {
    let lines: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap_or(l)).collect();
    for kind in ["pods", "deployments", "nodes", "cronjobs"] {
        assert!(lines.contains(&kind), "{shell}: no {kind} in:\n{out}");
    }
}

#[tokio::test]
async fn bash_script_parses_and_completes_kinds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = script(dir.path(), "bash").await;
    let s = s.to_str().expect("utf-8 path");
    run("bash", &["-n", s]);
    let out = run(
        "bash",
        &[
            "-c",
            &format!(
                "source {s}\n\
                 [[ $(complete -p rkctl) == *_rkctl_dynamic* ]] || exit 3\n\
                 COMP_WORDS=(rkctl get '') COMP_CWORD=2\n\
                 _rkctl_dynamic rkctl '' get\n\
                 printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ),
        ],
    );
    assert_kinds("bash", &out);
}

#[tokio::test]
async fn zsh_script_parses_registers_and_completes_kinds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = script(dir.path(), "zsh").await;
    let s = s.to_str().expect("utf-8 path");
    run("zsh", &["-n", s]);
    // Completion widgets only run inside the line editor, so the dynamic
    // function is called as the completion system would, with `compadd`
    // (a builtin there) standing in to print what it is given.
    let out = run(
        "zsh",
        &[
            "-f",
            "-c",
            &format!(
                "autoload -U compinit && compinit -u -D\n\
                 source {s}\n\
                 [[ $_comps[rkctl] == _rkctl_dynamic ]] || {{ print -u2 \"not registered: $_comps[rkctl]\"; exit 3 }}\n\
                 compadd() {{ [[ $1 == -a ]] && print -l -- ${{(P)2}} }}\n\
                 words=(rkctl get '') CURRENT=3\n\
                 _rkctl_dynamic"
            ),
        ],
    );
    assert_kinds("zsh", &out);
}

#[tokio::test]
async fn fish_script_parses_and_completes_kinds_and_verbs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = script(dir.path(), "fish").await;
    let s = s.to_str().expect("utf-8 path");
    run("fish", &["-n", s]);
    // fish completes a command line on request: the real completion path.
    let out = run(
        "fish",
        &[
            "--no-config",
            "-c",
            &format!("source {s}; complete -C 'rkctl get '"),
        ],
    );
    assert_kinds("fish", &out);
    let verbs = run(
        "fish",
        &["--no-config", "-c", &format!("source {s}; complete -C 'rkctl '")],
    );
    let verbs: Vec<&str> = verbs.lines().map(|l| l.split('\t').next().unwrap_or(l)).collect();
    for v in ["get", "top", "explain", "completion"] {
        assert!(verbs.contains(&v), "fish: no {v} in {verbs:?}");
    }
}
