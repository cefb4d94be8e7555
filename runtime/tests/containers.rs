//! Real containers (needs root, overlayfs and /bin/busybox from busybox-static).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use rk_runtime::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn echo_hello_is_logged_and_exits_zero() {
    let env = TestEnv::new();
    let (sb, st) = env.sandbox("hello-pod");
    assert!(st.pid.is_some());
    let spec = env.container(&sb, &["echo", "hello"]);
    let st = env.rt.start_container(&spec).expect("start");
    assert_eq!(st.sandbox_id, sb);
    assert_eq!(wait_exit(&env.rt, &spec.id, T), (0, None, false));
    let log = std::fs::read_to_string(&spec.log_path).expect("log");
    let line = log.lines().next().expect("a log line");
    let parts: Vec<&str> = line.splitn(4, ' ').collect();
    assert_eq!(parts[1..], ["stdout", "F", "hello"], "{line}");
    assert!(parts[0].ends_with('Z') && parts[0].contains('T'), "{line}");
}

#[test]
fn exit_code_and_stderr() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("exit-pod");
    let spec = env.container(&sb, &["sh", "-c", "echo oops >&2; exit 3"]);
    env.rt.start_container(&spec).expect("start");
    assert_eq!(wait_exit(&env.rt, &spec.id, T), (3, None, false));
    let log = std::fs::read_to_string(&spec.log_path).expect("log");
    assert!(log.contains(" stderr F oops"), "{log}");
}

#[test]
fn missing_executable_is_start_failed() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("missing-pod");
    let spec = env.container(&sb, &["nosuch"]);
    match env.rt.start_container(&spec) {
        Err(RuntimeError::StartFailed(msg)) => {
            assert_eq!(msg, r#"exec: "nosuch": executable file not found in $PATH"#)
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    let (code, _, _) = wait_exit(&env.rt, &spec.id, T);
    assert_eq!(code, 128);
    env.rt.remove_container(&spec.id).expect("remove");
    assert!(env.rt.container_status(&spec.id).expect("status").is_none());
}

#[test]
fn memory_hog_is_oom_killed() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("oom-pod");
    let mut spec = env.container(
        &sb,
        &["sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"],
    );
    spec.resources.memory_limit_bytes = Some(16 << 20);
    env.rt.start_container(&spec).expect("start");
    let (code, signal, oom) = wait_exit(&env.rt, &spec.id, Duration::from_secs(60));
    assert_eq!((code, signal, oom), (137, Some(9), true));
}

#[test]
fn sigterm_reaches_the_container() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("term-pod");
    let spec = env.container(
        &sb,
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.05; done",
        ],
    );
    env.rt.start_container(&spec).expect("start");
    assert!(eventually(T, || log_messages(&spec.log_path).contains(&"ready".to_string())));
    env.rt.signal_container(&spec.id, libc::SIGTERM).expect("signal");
    assert_eq!(wait_exit(&env.rt, &spec.id, T), (7, None, false));
    assert!(log_messages(&spec.log_path).contains(&"got-term".to_string()));
    // Signalling an exited container is not an error.
    env.rt
        .signal_container(&spec.id, libc::SIGKILL)
        .expect("signal exited");
}

#[test]
fn containers_of_a_pod_share_localhost_and_hostname() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("shared-pod");
    let server = env.container(&sb, &["sh", "-c", "hostname; echo from-server | nc -l -p 8080"]);
    env.rt.start_container(&server).expect("start server");
    assert!(eventually(T, || !log_messages(&server.log_path).is_empty()));
    let client = env.container(
        &sb,
        &[
            "sh",
            "-c",
            "hostname; for i in $(seq 50); do nc 127.0.0.1 8080 && exit 0; sleep 0.1; done; exit 1",
        ],
    );
    env.rt.start_container(&client).expect("start client");
    assert_eq!(wait_exit(&env.rt, &client.id, T).0, 0);
    assert_eq!(log_messages(&client.log_path), ["shared-pod", "from-server"]);
    assert_eq!(log_messages(&server.log_path)[0], "shared-pod");
}

#[test]
fn pid_namespaces_isolate_unless_shared() {
    let env = TestEnv::new();
    let (sb1, _) = env.sandbox("pid-a");
    let sleeper = env.container(&sb1, &["sleep", "1000"]);
    env.rt.start_container(&sleeper).expect("start");

    // Another Pod does not see it.
    let (sb2, _) = env.sandbox("pid-b");
    let other = env.container(&sb2, &["ps", "-o", "comm"]);
    env.rt.start_container(&other).expect("start");
    assert_eq!(wait_exit(&env.rt, &other.id, T).0, 0);
    let seen = log_messages(&other.log_path);
    assert!(!seen.contains(&"sleep".to_string()), "{seen:?}");

    // Nor does a sibling with its own PID namespace, where it is PID 1.
    let sibling = env.container(&sb1, &["sh", "-c", "ps -o pid,comm"]);
    env.rt.start_container(&sibling).expect("start");
    assert_eq!(wait_exit(&env.rt, &sibling.id, T).0, 0);
    let seen = log_messages(&sibling.log_path).join("\n");
    assert!(!seen.contains("sleep"), "{seen}");
    assert!(seen.contains("1 ps"), "{seen}");

    // With shareProcessNamespace both see each other and pause is PID 1.
    let (sb3, _) = env.sandbox("pid-shared");
    let mut a = env.container(&sb3, &["sleep", "1000"]);
    a.share_process_namespace = true;
    env.rt.start_container(&a).expect("start");
    let mut b = env.container(&sb3, &["ps", "-o", "pid,comm"]);
    b.share_process_namespace = true;
    env.rt.start_container(&b).expect("start");
    assert_eq!(wait_exit(&env.rt, &b.id, T).0, 0);
    let seen = log_messages(&b.log_path).join("\n");
    assert!(seen.contains("sleep"), "{seen}");
    assert!(seen.contains("1 rk-pause"), "{seen}");
}

#[test]
fn exec_runs_inside_the_container() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("exec-pod");
    let mut spec = env.container(&sb, &["sh", "-c", "echo marker > /tmp/m; sleep 1000"]);
    spec.env.push("GREETING=hi".into());
    env.rt.start_container(&spec).expect("start");
    assert!(eventually(T, || exec_output(
        &env.rt,
        &spec.id,
        &["cat", "/tmp/m"]
    )
    .1 == "marker\n"));
    let (code, out, _) = exec_output(
        &env.rt,
        &spec.id,
        &["sh", "-c", "echo $GREETING $(hostname); exit 5"],
    );
    assert_eq!((code, out.as_str()), (5, "hi exec-pod\n"));
    // Same PID namespace as the container: its sleep is visible.
    let (_, ps, _) = exec_output(&env.rt, &spec.id, &["ps", "-o", "comm"]);
    assert!(ps.contains("sleep"), "{ps}");
    let (code, _, err) = exec_output(&env.rt, &spec.id, &["nosuch"]);
    assert_eq!(code, 127);
    assert!(err.contains("executable file not found"), "{err}");

    // Stdin is passed through.
    let mut p = env
        .rt
        .exec(&ExecSpec {
            container_id: spec.id.clone(),
            args: vec!["cat".into()],
            env: vec![],
            tty: false,
            tty_size: None,
        })
        .expect("exec cat");
    p.stdin.write_all(b"piped\n").expect("write");
    drop(p.stdin);
    let mut out = String::new();
    p.stdout.read_to_string(&mut out).expect("read");
    assert_eq!(out, "piped\n");
    assert_eq!((p.waiter)().expect("wait"), 0);
}

#[test]
fn exec_with_a_tty() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("tty-pod");
    let spec = env.container(&sb, &["sleep", "1000"]);
    env.rt.start_container(&spec).expect("start");
    let p = env
        .rt
        .exec(&ExecSpec {
            container_id: spec.id.clone(),
            args: vec!["sh".into(), "-c".into(), "tty; stty size".into()],
            env: vec![],
            tty: true,
            tty_size: Some((100, 30)),
        })
        .expect("exec");
    let master = p.pty_master.as_ref().expect("pty");
    env.rt.resize_tty(master, 120, 40).expect("resize");
    let mut out = Vec::new();
    let mut stdout = p.stdout;
    let mut buf = [0u8; 1024];
    // Reading a pty master fails with EIO once the other side is closed.
    while let Ok(n) = stdout.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("40 120") || out.contains("30 100"), "{out}");
    assert_eq!((p.waiter)().expect("wait"), 0);
}

#[test]
fn tty_container_logs_terminal_output() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("ttyc-pod");
    let mut spec = env.container(&sb, &["tty"]);
    spec.tty = true;
    env.rt.start_container(&spec).expect("start");
    assert_eq!(wait_exit(&env.rt, &spec.id, T).0, 0);
    let msgs = log_messages(&spec.log_path);
    assert!(msgs.iter().any(|m| m.starts_with("/dev/pts/")), "{msgs:?}");
}

#[test]
fn security_defaults() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("sec-pod");
    let script = "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; \
                  id -u; \
                  cat /proc/kcore | wc -c; \
                  touch /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable; \
                  touch /sys/x 2>/dev/null && echo sys-writable; \
                  ls /dev | tr '\\n' ' '; echo; \
                  cat /etc/hosts | head -1";
    let mut spec = env.container(&sb, &["sh", "-c", script]);
    spec.uid = 65534;
    spec.gid = 65534;
    env.rt.start_container(&spec).expect("start");
    assert_eq!(wait_exit(&env.rt, &spec.id, T).0, 0);
    let msgs = log_messages(&spec.log_path);
    let text = msgs.join("\n");
    assert!(msgs.contains(&"NoNewPrivs:\t1".to_string()), "{text}");
    // A non-root process keeps no effective capabilities after exec.
    assert!(msgs.contains(&"CapEff:\t0000000000000000".to_string()), "{text}");
    assert!(msgs.contains(&"65534".to_string()), "{text}");
    assert!(msgs.contains(&"0".to_string()), "kcore masked: {text}");
    assert!(!text.contains("writable"), "{text}");
    assert!(
        text.contains("null") && text.contains("pts") && text.contains("urandom"),
        "{text}"
    );
    assert!(msgs.contains(&"127.0.0.1 localhost".to_string()), "{text}");

    // Root gets Kubernetes' default set (0xa80425fb) plus what is added.
    let mut root = env.container(&sb, &["grep", "CapEff", "/proc/self/status"]);
    root.capabilities_add = vec!["NET_ADMIN".into()];
    env.rt.start_container(&root).expect("start");
    assert_eq!(wait_exit(&env.rt, &root.id, T).0, 0);
    assert_eq!(log_messages(&root.log_path), ["CapEff:\t00000000a80435fb"]);
}

#[test]
fn adoption_after_restart_and_full_cleanup() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("adopt-pod");
    let spec = env.container(&sb, &["sh", "-c", "echo up; sleep 1000"]);
    let pid = match env.rt.start_container(&spec).expect("start").state {
        ContainerState::Running { pid, .. } => pid,
        s => panic!("not running: {s:?}"),
    };
    let done = env.container(&sb, &["true"]);
    env.rt.start_container(&done).expect("start");
    wait_exit(&env.rt, &done.id, T);

    // A new runtime over the same state sees the same world.
    let rt2 = env.reopen();
    let (sandboxes, containers) = rt2.list().expect("list");
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].id, sb);
    assert!(sandboxes[0].pid.is_some());
    assert_eq!(sandboxes[0].labels.get("pod"), Some(&sb));
    assert_eq!(containers.len(), 2);
    let running = containers.iter().find(|c| c.id == spec.id).expect("running one");
    assert!(matches!(running.state, ContainerState::Running { pid: p, .. } if p == pid));
    assert_eq!(exec_output(&rt2, &spec.id, &["echo", "adopted"]).1, "adopted\n");
    // Creating the sandbox again is idempotent.
    let again = rt2
        .create_sandbox(&sandbox_spec(&sb, "adopt-pod"))
        .expect("create again");
    assert_eq!(again.pid, sandboxes[0].pid);

    rt2.remove_sandbox(&sb).expect("remove");
    rt2.remove_sandbox(&sb).expect("remove twice");
    assert!(rt2.sandbox_status(&sb).expect("status").is_none());
    assert!(rt2.container_status(&spec.id).expect("status").is_none());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let state = env.state.path().to_string_lossy().to_string();
    assert!(!mounts.contains(&state), "mounts left under {state}");
    for d in env.cgroup_dirs() {
        let left: Vec<_> = std::fs::read_dir(&d)
            .map(|r| r.flatten().filter(|e| e.path().is_dir()).count())
            .into_iter()
            .collect();
        assert!(left.iter().all(|n| *n == 0), "cgroups left under {}", d.display());
    }
    assert_eq!(
        std::fs::read_dir(env.state.path().join("containers"))
            .expect("dir")
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(env.state.path().join("sandboxes"))
            .expect("dir")
            .count(),
        0
    );
}

#[test]
fn killed_shim_takes_its_container_down() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("shimkill-pod");
    let spec = env.container(&sb, &["sleep", "1000"]);
    env.rt.start_container(&spec).expect("start");
    let started: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            env.state
                .path()
                .join("containers")
                .join(&spec.id)
                .join("started.json"),
        )
        .expect("read"),
    )
    .expect("json");
    let shim = started["shim_pid"].as_i64().expect("shim pid") as i32;
    // SAFETY: kill(2) with a pid we read; no memory involved.
    assert_eq!(unsafe { libc::kill(shim, libc::SIGKILL) }, 0);
    let (code, _, oom) = wait_exit(&env.rt, &spec.id, T);
    assert_eq!((code, oom), (137, false));
}

#[test]
fn removing_a_running_container_kills_it() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("rm-pod");
    let mut spec = env.container(&sb, &["sh", "-c", "sleep 1000 & sleep 1000"]);
    spec.resources = Resources {
        cpu_request_millis: Some(100),
        cpu_limit_millis: Some(500),
        memory_limit_bytes: Some(64 << 20),
        pids_limit: Some(32),
    };
    let started = Instant::now();
    env.rt.start_container(&spec).expect("start");
    eprintln!("start took {:?}", started.elapsed());
    env.rt.remove_container(&spec.id).expect("remove");
    env.rt.remove_container(&spec.id).expect("remove twice");
    assert!(env.rt.container_status(&spec.id).expect("status").is_none());
}

#[test]
fn volumes_and_read_only_rootfs() {
    let env = TestEnv::new();
    let (sb, _) = env.sandbox("vol-pod");
    let vol = tempfile::tempdir().expect("tempdir");
    std::fs::write(vol.path().join("in.txt"), "from-host\n").expect("write");
    let ro = tempfile::tempdir().expect("tempdir");
    let script = "cat /data/in.txt; echo out > /data/out.txt; \
                  touch /x 2>/dev/null || echo rootfs-ro; \
                  touch /ro/x 2>/dev/null || echo volume-ro; \
                  pwd";
    let mut spec = env.container(&sb, &["sh", "-c", script]);
    spec.read_only_rootfs = true;
    spec.working_dir = "/data/sub/../".into();
    spec.mounts = vec![
        Mount {
            source: vol.path().to_path_buf(),
            destination: "/data".into(),
            read_only: false,
        },
        Mount {
            source: ro.path().to_path_buf(),
            destination: "/ro".into(),
            read_only: true,
        },
    ];
    env.rt.start_container(&spec).expect("start");
    assert_eq!(wait_exit(&env.rt, &spec.id, T).0, 0);
    assert_eq!(
        log_messages(&spec.log_path),
        ["from-host", "rootfs-ro", "volume-ro", "/data"]
    );
    assert_eq!(
        std::fs::read_to_string(vol.path().join("out.txt")).expect("read"),
        "out\n"
    );
}
