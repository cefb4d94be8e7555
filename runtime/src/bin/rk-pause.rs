//! `rk-pause <hostname> [--host-network]`: a Pod's infra process.
//!
//! It creates the Pod's IPC, UTS and PID namespaces (and its network
//! namespace unless `--host-network`), then forks: the child is PID 1 of the
//! Pod's PID namespace, sets the hostname, brings `lo` up and then only reaps
//! zombies until SIGTERM or SIGINT. The parent prints the child's pid on
//! stdout once the child is ready and exits, so the runtime gets the pid and
//! the pause process is not the runtime's child (it was started in its own
//! session, so killing the agent does not touch it).
//!
//! Deliberately tiny: no runtime, no allocation after setup.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::exit;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("rk-pause: {what}: {e}");
    exit(1)
}

/// Sets IFF_UP on `lo` (the CNI loopback plugin does the same; without CNI nobody else would).
fn loopback_up() -> Result<(), std::io::Error> {
    // SAFETY: plain socket(2) call; the descriptor is closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the ioctls read and write the ifreq we own; the union field used is ifru_flags.
    let r = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) != 0 {
            -1
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &req)
        }
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(sock) };
    if r != 0 {
        return Err(err);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(hostname) = args.get(1).cloned() else {
        eprintln!("usage: rk-pause <hostname> [--host-network]");
        exit(2)
    };
    let host_network = args.iter().skip(2).any(|a| a == "--host-network");
    let mut flags = CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID;
    if !host_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Err(e) = unshare(flags) {
        fail("unshare", e);
    }
    let (ready_r, ready_w) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => fail("pipe", e),
    };
    // Block the signals we wait for before forking, so none is lost in between.
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        set.add(s);
    }
    if let Err(e) = set.thread_block() {
        fail("block signals", e);
    }
    // SAFETY: this process is single-threaded, so the child may do anything after fork.
    match unsafe { fork() } {
        Err(e) => fail("fork", e),
        Ok(ForkResult::Parent { child }) => {
            drop(ready_w);
            let mut b = [0u8; 1];
            match nix::unistd::read(&ready_r, &mut b) {
                Ok(1) => {}
                _ => fail("pause process", "failed during setup"),
            }
            let mut out = std::io::stdout();
            if writeln!(out, "{child}").and_then(|_| out.flush()).is_err() {
                exit(1);
            }
            exit(0)
        }
        Ok(ForkResult::Child) => {
            drop(ready_r);
            if let Err(e) = nix::unistd::sethostname(&hostname) {
                fail("sethostname", e);
            }
            if !host_network {
                if let Err(e) = loopback_up() {
                    fail("bring lo up", e);
                }
            }
            let _ = nix::unistd::chdir("/");
            // Let go of the runtime's stdout pipe so its reader sees end of file.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                // SAFETY: dup2 onto stdin/stdout; both descriptors are valid.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                }
            }
            if nix::unistd::write(&ready_w, b"1").is_err() {
                exit(1);
            }
            drop(ready_w);
            loop {
                match set.wait() {
                    Ok(Signal::SIGCHLD) => loop {
                        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                            Ok(WaitStatus::StillAlive) | Err(_) => break,
                            Ok(_) => {}
                        }
                    },
                    Ok(_) => exit(0),
                    Err(_) => {}
                }
            }
        }
    }
}
