//! Linux capabilities (capabilities(7)): which ones a container keeps, and
//! the syscalls that drop the rest.
//!
//! A container gets Kubernetes' (containerd's) default set, plus
//! `capabilities.add`, minus `capabilities.drop`; "ALL" in `drop` empties the
//! default set first and "ALL" in `add` grants everything, as containerd
//! does. Privileged containers keep every capability.

/// Capability names in number order (see linux/capability.h), without the `CAP_` prefix.
pub const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Kubernetes' default capability set for containers.
pub const DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The number of a capability name (`"NET_ADMIN"` or `"CAP_NET_ADMIN"`, any case).
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// The capability set as a bit mask over numbers `0..=last_cap`.
pub fn compute(add: &[String], drop: &[String], privileged: bool, last_cap: u32) -> Result<u64, String> {
    let all = if last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (last_cap + 1)) - 1
    };
    if privileged {
        return Ok(all);
    }
    let is_all = |s: &String| s.eq_ignore_ascii_case("ALL") || s.eq_ignore_ascii_case("CAP_ALL");
    let mut set = 0u64;
    if !drop.iter().any(is_all) {
        for n in DEFAULT {
            set |= 1 << number(n).ok_or_else(|| format!("unknown capability {n}"))?;
        }
    }
    for d in drop.iter().filter(|d| !is_all(d)) {
        let n = number(d).ok_or_else(|| format!("unknown capability {d:?} in drop"))?;
        set &= !(1 << n);
    }
    if add.iter().any(is_all) {
        return Ok(all);
    }
    for a in add {
        let n = number(a).ok_or_else(|| format!("unknown capability {a:?} in add"))?;
        if n > last_cap {
            return Err(format!("capability {a} is not supported by this kernel"));
        }
        set |= 1 << n;
    }
    Ok(set & all)
}

/// The highest capability number the running kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability outside `set` from the bounding set. Needs
/// CAP_SETPCAP, so it runs before the uid change.
pub fn drop_bounding(set: u64, last_cap: u32) -> Result<(), String> {
    for cap in 0..=last_cap {
        if set & (1 << cap) == 0 {
            // SAFETY: prctl with PR_CAPBSET_DROP takes a capability number and
            // reads no memory.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 {
                let err = std::io::Error::last_os_error();
                // EINVAL means the kernel does not know this capability: nothing to drop.
                if err.raw_os_error() != Some(libc::EINVAL) {
                    return Err(format!("drop capability {cap} from bounding set: {err}"));
                }
            }
        }
    }
    Ok(())
}

/// Makes `set` the permitted and effective sets, with an empty inheritable
/// set (as runc does since CVE-2022-24769). Runs after the uid change, which
/// (with keep-caps) keeps the permitted set but clears the effective one.
pub fn set(set: u64) -> Result<(), String> {
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let lo = set as u32;
    let hi = (set >> 32) as u32;
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads one header and two data structs (version 3 layout),
    // both alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn default_set() {
        let set = compute(&[], &[], false, 40).expect("compute");
        assert_eq!(set.count_ones(), 14);
        assert_ne!(set & (1 << number("NET_RAW").expect("known")), 0);
        assert_eq!(set & (1 << number("SYS_ADMIN").expect("known")), 0);
    }

    #[test]
    fn add_and_drop() {
        let set = compute(
            &s(&["NET_ADMIN", "cap_sys_time"]),
            &s(&["CAP_NET_RAW", "kill"]),
            false,
            40,
        )
        .expect("compute");
        assert_eq!(set.count_ones(), 14);
        assert_ne!(set & (1 << 12), 0);
        assert_ne!(set & (1 << 25), 0);
        assert_eq!(set & (1 << 13), 0);
        assert_eq!(set & (1 << 5), 0);
    }

    #[test]
    fn drop_all_then_add() {
        let set = compute(&s(&["NET_BIND_SERVICE"]), &s(&["ALL"]), false, 40).expect("compute");
        assert_eq!(set, 1 << 10);
    }

    #[test]
    fn privileged_and_add_all() {
        assert_eq!(
            compute(&[], &s(&["ALL"]), true, 40).expect("compute"),
            (1 << 41) - 1
        );
        assert_eq!(
            compute(&s(&["ALL"]), &[], false, 37).expect("compute"),
            (1 << 38) - 1
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(compute(&s(&["NOPE"]), &[], false, 40).is_err());
        assert!(compute(&s(&["BPF"]), &[], false, 37).is_err());
    }
}
