//! Small syscall helpers shared by the runtime and the shim: passing file
//! descriptors over Unix sockets (SCM_RIGHTS, unix(7)), pseudo-terminals
//! (pty(7)), pidfds (pidfd_open(2)).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::cmsg_space;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::socket::{recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned};
use nix::sys::socket::{MsgFlags, SockFlag, SockType, UnixAddr};

/// The file descriptor number a helper receives its control channel on.
pub const CONTROL_FD: RawFd = 3;

pub fn io_err(what: &str) -> impl FnOnce(nix::Error) -> io::Error + '_ {
    move |e| io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_err("pipe"))
}

/// A close-on-exec pair of connected Unix stream sockets.
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io_err("socketpair"))
}

pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = if on { FdFlag::FD_CLOEXEC } else { FdFlag::empty() };
    fcntl(fd, FcntlArg::F_SETFD(flags)).map_err(io_err("fcntl F_SETFD"))?;
    Ok(())
}

/// Sends one file descriptor (with a one-byte payload, since a message must carry data).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &[IoSlice::new(b"F")],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .map_err(io_err("send fd"))?;
    Ok(())
}

/// Receives one file descriptor; `None` when the peer closed without sending one.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = cmsg_space!([RawFd; 1]);
    let msg = loop {
        match recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::Error::EINTR) => continue,
            other => break other.map_err(io_err("receive fd"))?,
        }
    };
    for c in msg.cmsgs().map_err(io_err("receive fd"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us; nobody else owns it.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Ok(None)
}

/// Opens a new pseudo-terminal through `ptmx` (the multiplexer of whichever
/// devpts instance the caller sees) and returns (master, slave). The slave is
/// opened with TIOCGPTPEER so it comes from the same devpts instance, whatever
/// the mount namespace looks like.
pub fn open_pty(ptmx: &Path) -> io::Result<(OwnedFd, OwnedFd)> {
    let master: OwnedFd = nix::fcntl::open(
        ptmx,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(io_err("open ptmx"))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which is valid for the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(io::Error::other(format!(
            "unlock pty: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::other(format!(
            "open pty peer: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: the ioctl returned a fresh descriptor that we now own.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

pub fn set_winsize(fd: BorrowedFd<'_>, cols: u16, rows: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct from the pointer, valid for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::other(format!(
            "set window size: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Makes `fd` (a terminal) the controlling terminal of the calling session leader.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(io::Error::other(format!(
            "set controlling tty: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// A pidfd for `pid` (Linux 5.3): becomes readable when the process exits.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Points stdin, stdout and stderr of the calling process at the given descriptors.
pub fn redirect_stdio(
    stdin: BorrowedFd<'_>,
    stdout: BorrowedFd<'_>,
    stderr: BorrowedFd<'_>,
) -> io::Result<()> {
    nix::unistd::dup2_stdin(stdin).map_err(io_err("dup2 stdin"))?;
    nix::unistd::dup2_stdout(stdout).map_err(io_err("dup2 stdout"))?;
    nix::unistd::dup2_stderr(stderr).map_err(io_err("dup2 stderr"))?;
    Ok(())
}

pub fn dev_null() -> io::Result<OwnedFd> {
    Ok(std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

/// Writes all of `data` to a raw descriptor (used where no `File` is at hand).
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads until end of file.
pub fn read_to_end(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
