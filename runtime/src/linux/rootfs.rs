//! The container's filesystem view, built by the shim's child inside its new
//! mount namespace (mount_namespaces(7)) so that none of these mounts is seen
//! on the host and all of them vanish with the container's last process:
//!
//! 1. make every mount private, so nothing propagates back to the host;
//! 2. overlayfs of the image layers (lowerdir lists the top-most layer first)
//!    with a per-container upper and work directory;
//! 3. a fresh /proc, a minimal /dev (tmpfs with a few device nodes, its own
//!    devpts instance, /dev/shm, /dev/mqueue), read-only /sys;
//! 4. bind mounts: the Pod's /etc/hosts, /etc/resolv.conf, /etc/hostname and volumes;
//! 5. masked and read-only paths of /proc and /sys (as runc/containerd do by default);
//! 6. pivot_root(2) into the new root and detach the old one.
//!
//! Paths inside the rootfs are resolved with [`resolve_in_root`], which
//! follows symlinks as if the rootfs were `/`, so an image cannot point a
//! mount target at the host.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use super::state::MountConfig;

/// The PATH used when the container's environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Files under /proc and /sys hidden from unprivileged containers.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths under /proc made read-only for unprivileged containers.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Resolves `path` (taken as absolute inside `root`) to a host path under
/// `root`, following symlinks within `root`: `..` and absolute link targets
/// never leave it. Components that do not exist are appended unresolved.
pub fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf, String> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .rev()
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            cur.pop();
            continue;
        }
        let candidate = root.join(cur.iter().collect::<PathBuf>()).join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(format!("too many levels of symbolic links resolving {path}"));
                }
                let target = std::fs::read_link(&candidate)
                    .map_err(|e| format!("read link {}: {e}", candidate.display()))?;
                let target = target.to_string_lossy().to_string();
                if target.starts_with('/') {
                    cur.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty() && *c != ".")
                        .map(str::to_string)
                        .rev(),
                );
            }
            _ => cur.push(part),
        }
    }
    Ok(root.join(cur.iter().collect::<PathBuf>()))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds the program to exec the way Go's `exec.LookPath` does (and reports
/// failures with its messages, which is what Kubernetes users see): a name
/// with a '/' is used as is, otherwise each `PATH` entry is tried in order.
/// `root` is the filesystem root to look in (`/` after pivot_root).
pub fn lookup_executable(name: &str, path_var: &str, root: &Path) -> Result<String, String> {
    if name.is_empty() {
        return Err("exec: no command".to_string());
    }
    let inside = |p: &str| root.join(p.strip_prefix('/').unwrap_or(p));
    if name.contains('/') {
        let host = inside(name);
        return match std::fs::metadata(&host) {
            Ok(_) if is_executable(&host) => Ok(name.to_string()),
            Ok(_) => Err(format!("exec: {name:?}: permission denied")),
            Err(_) => Err(format!("exec: {name:?}: stat {name}: no such file or directory")),
        };
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        if is_executable(&inside(&candidate)) {
            return Ok(candidate);
        }
    }
    Err(format!("exec: {name:?}: executable file not found in $PATH"))
}

/// The value of `PATH` in an environment list, or the default.
pub fn path_from_env(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// The overlayfs mount options: lowerdir is top-most first, the spec's layers are bottom first.
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> String {
    let lower: Vec<String> = layers.iter().rev().map(|p| p.display().to_string()).collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    )
}

/// What the child assembles.
#[derive(Debug)]
pub struct RootfsPlan<'a> {
    pub rootfs: &'a Path,
    pub layers: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
    pub mounts: &'a [MountConfig],
    pub read_only: bool,
    pub privileged: bool,
}

fn mnt(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(src, target, fstype, flags, data).map_err(|e| {
        format!(
            "mount {} on {} ({}): {e}",
            src.map(|s| s.display().to_string()).unwrap_or_default(),
            target.display(),
            fstype.unwrap_or("bind")
        )
    })
}

fn mkdir_p(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("create {}: {e}", p.display()))
}

/// Creates an empty mount point of the same kind (file or directory) as `source`.
fn make_target(target: &Path, source_is_dir: bool) -> Result<(), String> {
    if source_is_dir {
        return mkdir_p(target);
    }
    if let Some(parent) = target.parent() {
        mkdir_p(parent)?;
    }
    if !target.exists() {
        std::fs::File::create(target).map_err(|e| format!("create {}: {e}", target.display()))?;
    }
    Ok(())
}

fn bind(source: &Path, target: &Path, read_only: bool) -> Result<(), String> {
    mnt(
        Some(source),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    if read_only {
        mnt(
            None,
            target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
            None,
        )?;
    }
    Ok(())
}

/// Builds the root filesystem and pivots into it. Runs in the container's
/// new mount namespace; on return the process's root is the container's.
pub fn setup(plan: &RootfsPlan<'_>) -> Result<(), String> {
    let root = plan.rootfs;
    // Nothing mounted from here on may propagate to the host's namespace.
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    let opts = overlay_options(plan.layers, plan.upper, plan.work);
    mnt(
        Some(Path::new("overlay")),
        root,
        Some("overlay"),
        MsFlags::empty(),
        Some(&opts),
    )?;

    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let proc_dir = resolve_in_root(root, "/proc")?;
    mkdir_p(&proc_dir)?;
    mnt(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        nosuid_noexec_nodev,
        None,
    )?;

    setup_dev(root)?;

    let sys = resolve_in_root(root, "/sys")?;
    mkdir_p(&sys)?;
    let mut sys_flags = nosuid_noexec_nodev;
    if !plan.privileged {
        sys_flags |= MsFlags::MS_RDONLY;
    }
    mnt(Some(Path::new("sysfs")), &sys, Some("sysfs"), sys_flags, None)?;

    for m in plan.mounts {
        let md =
            std::fs::metadata(&m.source).map_err(|e| format!("mount source {}: {e}", m.source.display()))?;
        let target = resolve_in_root(root, &m.destination)?;
        make_target(&target, md.is_dir())?;
        bind(&m.source, &target, m.read_only)?;
    }

    if !plan.privileged {
        let null = root.join("dev/null");
        for p in MASKED_PATHS {
            let target = resolve_in_root(root, p)?;
            match std::fs::metadata(&target) {
                Ok(md) if md.is_dir() => mnt(
                    Some(Path::new("tmpfs")),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    Some("size=0"),
                )?,
                Ok(_) => mnt(Some(&null), &target, None, MsFlags::MS_BIND, None)?,
                Err(_) => {}
            }
        }
        for p in READONLY_PATHS {
            let target = resolve_in_root(root, p)?;
            if target.exists() {
                bind(&target, &target, true)?;
            }
        }
    }

    // The runc way to pivot without a spare directory: stack the old root
    // under the new one, then detach it.
    nix::unistd::chdir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detach old root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    if plan.read_only {
        mnt(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

fn setup_dev(root: &Path) -> Result<(), String> {
    let dev = resolve_in_root(root, "/dev")?;
    mkdir_p(&dev)?;
    mnt(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .map_err(|e| format!("mknod {}: {e}", p.display()))?;
        // mknod is subject to the umask; the nodes must be usable by every uid.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| format!("chmod {}: {e}", p.display()))?;
    }
    let pts = dev.join("pts");
    mkdir_p(&pts)?;
    mnt(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = dev.join("shm");
    mkdir_p(&shm)?;
    mnt(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )?;
    let mqueue = dev.join("mqueue");
    mkdir_p(&mqueue)?;
    // /dev/mqueue is optional: some kernels are built without POSIX message queues.
    let _ = mnt(
        Some(Path::new("mqueue")),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        None,
    );
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        let p = dev.join(link);
        std::os::unix::fs::symlink(target, &p).map_err(|e| format!("symlink {}: {e}", p.display()))?;
    }
    Ok(())
}

/// Collapses `.` and `..` lexically (for messages and for working directories).
pub fn clean_abs(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => out.push(s.to_str().unwrap_or("")),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_symlinks_inside_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).expect("mkdir");
        symlink("/usr/lib", root.join("lib")).expect("symlink");
        symlink("../../..", root.join("usr/lib/up")).expect("symlink");
        symlink("/etc/shadow", root.join("evil")).expect("symlink");
        assert_eq!(
            resolve_in_root(root, "/lib/x").expect("resolve"),
            root.join("usr/lib/x")
        );
        assert_eq!(
            resolve_in_root(root, "/lib/up/etc").expect("resolve"),
            root.join("etc")
        );
        assert_eq!(
            resolve_in_root(root, "/../../etc/passwd").expect("resolve"),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(root, "/evil").expect("resolve"),
            root.join("etc/shadow")
        );
        symlink("loop", root.join("loop")).expect("symlink");
        assert!(resolve_in_root(root, "/loop").is_err());
    }

    #[test]
    fn looks_up_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).expect("mkdir");
        std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
        std::fs::write(root.join("usr/bin/tool"), "").expect("write");
        std::fs::set_permissions(root.join("usr/bin/tool"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::write(root.join("bin/tool"), "").expect("write");
        std::fs::set_permissions(root.join("bin/tool"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        assert_eq!(
            lookup_executable("tool", "/bin:/usr/bin", root).expect("found"),
            "/usr/bin/tool"
        );
        assert_eq!(
            lookup_executable("nosuch", "/bin:/usr/bin", root).expect_err("missing"),
            r#"exec: "nosuch": executable file not found in $PATH"#
        );
        assert_eq!(
            lookup_executable("/usr/bin/tool", "", root).expect("found"),
            "/usr/bin/tool"
        );
        assert!(lookup_executable("/bin/tool", "", root)
            .expect_err("not executable")
            .contains("permission"));
        assert!(lookup_executable("/nope", "", root)
            .expect_err("missing")
            .contains("no such file"));
    }

    #[test]
    fn env_path_and_overlay_options() {
        let env = vec!["A=1".to_string(), "PATH=/x:/y".to_string()];
        assert_eq!(path_from_env(&env), "/x:/y");
        assert_eq!(path_from_env(&[]), DEFAULT_PATH);
        let layers = vec![PathBuf::from("/l/base"), PathBuf::from("/l/top")];
        assert_eq!(
            overlay_options(&layers, Path::new("/u"), Path::new("/w")),
            "lowerdir=/l/top:/l/base,upperdir=/u,workdir=/w"
        );
        assert_eq!(clean_abs("a/../b/./c"), "/b/c");
    }
}
