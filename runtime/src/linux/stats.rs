//! Resource usage read from cgroupfs, for `rkctl top`.
//!
//! The numbers are the ones cAdvisor (and so kubelet and metrics-server)
//! reports, so `top` means the same here as in Kubernetes:
//!
//! * CPU: cumulative nanoseconds. v1 `cpuacct.usage` is in ns already; v2
//!   `cpu.stat` gives `usage_usec`.
//! * memory working set: usage minus inactive file pages. v1:
//!   `memory.usage_in_bytes` − `total_inactive_file` of `memory.stat` (the
//!   `total_` counters include descendants, like the usage does; `inactive_file`
//!   alone would be this cgroup's own pages only, and a Pod cgroup holds
//!   none itself). v2: `memory.current` − `inactive_file` (v2 counters are
//!   always hierarchical). Inactive file pages are cache the kernel reclaims
//!   first, so they are left out of what a workload "uses".
//!
//! Parsing is kept apart from reading so it can be tested on fixed text.

use std::io;
use std::path::{Path, PathBuf};

use super::cgroup::{parse_keyed, CgroupFs, CgroupVersion};
use crate::spec::CgroupUsage;

/// Working set from a usage and an inactive-file count; cAdvisor clamps at
/// zero too (the two files are not read atomically).
fn working_set(usage: u64, inactive_file: u64) -> u64 {
    usage.saturating_sub(inactive_file)
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// v1: `cpuacct.usage`, `memory.usage_in_bytes` and `memory.stat`.
pub fn parse_v1(cpuacct_usage: &str, memory_usage: &str, memory_stat: &str) -> Option<CgroupUsage> {
    let usage = number(memory_usage)?;
    // Missing on no kernel rk supports, but a zero keeps the usage readable.
    let inactive = parse_keyed(memory_stat, "total_inactive_file").unwrap_or(0);
    Some(CgroupUsage {
        cpu_usage_ns: number(cpuacct_usage)?,
        memory_working_set_bytes: working_set(usage, inactive),
    })
}

/// v2: `cpu.stat`, `memory.current` and `memory.stat`.
pub fn parse_v2(cpu_stat: &str, memory_current: &str, memory_stat: &str) -> Option<CgroupUsage> {
    let usage = number(memory_current)?;
    let inactive = parse_keyed(memory_stat, "inactive_file").unwrap_or(0);
    Some(CgroupUsage {
        cpu_usage_ns: parse_keyed(cpu_stat, "usage_usec")?.saturating_mul(1000),
        memory_working_set_bytes: working_set(usage, inactive),
    })
}

/// Reads a cgroup file; `None` when it (or its cgroup) does not exist.
fn read(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// The directory of cgroup `rel` that holds `file`: on v1 each controller
/// has its own hierarchy (and cpuacct may be co-mounted with cpu), so the
/// right one is found by the file it must contain.
fn dir_with(fs: &CgroupFs, rel: &str, file: &str) -> Option<PathBuf> {
    fs.dirs(rel).into_iter().find(|d| d.join(file).exists())
}

/// The usage of cgroup `rel`, or `None` when it does not exist (a cgroup
/// removed between listing and reading is not an error).
pub fn usage(fs: &CgroupFs, rel: &str) -> io::Result<Option<CgroupUsage>> {
    let (cpu, mem, stat) = match fs.version {
        CgroupVersion::V1 => {
            let (Some(cpu), Some(mem)) = (
                dir_with(fs, rel, "cpuacct.usage"),
                dir_with(fs, rel, "memory.usage_in_bytes"),
            ) else {
                return Ok(None);
            };
            (
                cpu.join("cpuacct.usage"),
                mem.join("memory.usage_in_bytes"),
                mem.join("memory.stat"),
            )
        }
        CgroupVersion::V2 => {
            let Some(dir) = fs.dirs(rel).into_iter().next() else {
                return Ok(None);
            };
            (
                dir.join("cpu.stat"),
                dir.join("memory.current"),
                dir.join("memory.stat"),
            )
        }
    };
    let (Some(cpu), Some(mem), Some(stat)) = (read(&cpu)?, read(&mem)?, read(&stat)?) else {
        return Ok(None);
    };
    let parsed = match fs.version {
        CgroupVersion::V1 => parse_v1(&cpu, &mem, &stat),
        CgroupVersion::V2 => parse_v2(&cpu, &mem, &stat),
    };
    parsed.map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unreadable usage in cgroup {rel}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_working_set_excludes_inactive_file_of_the_subtree() {
        let stat = "cache 8192\nrss 4096\ninactive_file 0\ntotal_cache 1056768\ntotal_rss 2097152\n\
                    total_inactive_file 1048576\ntotal_active_file 8192\n";
        assert_eq!(
            parse_v1("27966863764089\n", "3158016\n", stat),
            Some(CgroupUsage {
                cpu_usage_ns: 27_966_863_764_089,
                memory_working_set_bytes: 3_158_016 - 1_048_576,
            })
        );
        // Read at different instants, inactive can exceed usage: clamp, don't wrap.
        let u = parse_v1("1", "100", "total_inactive_file 4096\n").expect("parses");
        assert_eq!(u.memory_working_set_bytes, 0);
        assert_eq!(parse_v1("", "100", ""), None);
        assert_eq!(parse_v1("5", "x", ""), None);
    }

    #[test]
    fn v2_cpu_is_microseconds_and_working_set_excludes_inactive_file() {
        let cpu = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n";
        let stat = "anon 4096\nfile 12288\nactive_file 4096\ninactive_file 8192\n";
        assert_eq!(
            parse_v2(cpu, "20480\n", stat),
            Some(CgroupUsage {
                cpu_usage_ns: 1_500_000,
                memory_working_set_bytes: 20480 - 8192,
            })
        );
        assert_eq!(parse_v2("user_usec 1\n", "1", ""), None);
    }

    #[test]
    fn reads_v1_and_v2_trees_and_missing_cgroups_are_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // v1 with cpu and cpuacct as separate hierarchies.
        for (ctrl, files) in [
            ("cpu", vec![]),
            ("cpuacct", vec![("cpuacct.usage", "42\n")]),
            (
                "memory",
                vec![
                    ("memory.usage_in_bytes", "1000\n"),
                    ("memory.stat", "total_inactive_file 300\n"),
                ],
            ),
        ] {
            let d = root.join(ctrl).join("rk/pod-a");
            std::fs::create_dir_all(&d).expect("mkdir");
            for (f, t) in files {
                std::fs::write(d.join(f), t).expect("write");
            }
        }
        let fs = CgroupFs::at(root);
        assert_eq!(
            usage(&fs, "rk/pod-a").expect("read"),
            Some(CgroupUsage {
                cpu_usage_ns: 42,
                memory_working_set_bytes: 700
            })
        );
        assert_eq!(usage(&fs, "rk/pod-gone").expect("read"), None);

        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").expect("write");
        let d = root.join("rk/pod-b/c1");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("cpu.stat"), "usage_usec 7\n").expect("write");
        std::fs::write(d.join("memory.current"), "500\n").expect("write");
        std::fs::write(d.join("memory.stat"), "inactive_file 100\n").expect("write");
        let fs = CgroupFs::at(root);
        assert_eq!(
            usage(&fs, "rk/pod-b/c1").expect("read"),
            Some(CgroupUsage {
                cpu_usage_ns: 7000,
                memory_working_set_bytes: 400
            })
        );
        assert_eq!(usage(&fs, "rk/pod-b/c2").expect("read"), None);
        std::fs::write(d.join("memory.current"), "garbage").expect("write");
        assert!(usage(&fs, "rk/pod-b/c1").is_err());
    }
}
