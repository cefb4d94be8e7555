//! Keeping large background writes (snapshots) from delaying the Raft
//! log's fsyncs, which every write waits for.
//!
//! A snapshot of a large store is tens of megabytes, written on every
//! replica at about the same moment (they reach the same log index
//! together). Written at once and then fsynced, those megabytes were queued
//! ahead of the log's own small fsyncs: under load each of those took
//! 15-65 ms instead of well under one while a snapshot was being stored,
//! and the 99th percentile of write latency doubled or tripled.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// How much a [`PacedWriter`] lets the kernel hold before it starts writing
/// it out.
const PACE_CHUNK: u64 = 1 << 20;

/// Gives the calling thread a lower CPU priority (nice 10), for work that
/// may wait behind Raft's. Linux keeps the nice value per thread, so no
/// other thread is affected.
pub fn lower_thread_priority() {
    // SAFETY: gettid and setpriority take and return plain integers and
    // touch no memory of this process.
    let failed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0
    };
    if failed {
        tracing::warn!(error = %io::Error::last_os_error(), "could not lower the priority of a background thread");
    }
}

/// Writes a file so that it reaches the disk as it is written, a chunk at
/// a time, with at most two chunks under way: after each chunk the kernel is
/// told to start writing it out, and the writer waits for the chunk before
/// it. The final fsync then finds almost nothing left to do, and the disk
/// never holds more than a couple of megabytes of this file ahead of
/// anyone else's fsync.
///
/// Pacing is an optimisation only: if the file system refuses
/// `sync_file_range`, the writer stops pacing and the caller's fsync does
/// all the work, as without it.
pub struct PacedWriter {
    file: File,
    written: u64,
    /// Where the chunk being filled starts.
    chunk_start: u64,
    /// The chunk whose writeback was started last, to wait for next.
    in_flight: Option<(u64, u64)>,
    pacing: bool,
}

impl PacedWriter {
    pub fn new(file: File) -> Self {
        PacedWriter {
            file,
            written: 0,
            chunk_start: 0,
            in_flight: None,
            pacing: true,
        }
    }

    pub fn into_file(self) -> File {
        self.file
    }

    fn pace(&mut self) {
        let chunk = (self.chunk_start, self.written - self.chunk_start);
        self.chunk_start = self.written;
        let started = sync_range(&self.file, chunk, libc::SYNC_FILE_RANGE_WRITE);
        let waited = match self.in_flight.replace(chunk) {
            Some(previous) => sync_range(
                &self.file,
                previous,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            ),
            None => Ok(()),
        };
        if let Err(e) = started.and(waited) {
            tracing::debug!(error = %e, "sync_file_range refused; the snapshot is written unpaced");
            self.pacing = false;
        }
    }
}

fn sync_range(file: &File, (offset, len): (u64, u64), flags: libc::c_uint) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: the descriptor is open for as long as `file` is borrowed, and
    // sync_file_range reads no memory of this process.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Write for PacedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.pacing && self.written - self.chunk_start >= PACE_CHUNK {
            self.pace();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_paced_file_holds_exactly_what_was_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        let mut w =
            io::BufWriter::with_capacity(64 * 1024, PacedWriter::new(File::create(&path).expect("create")));
        let mut expected = Vec::new();
        // Several chunks, written in pieces that do not line up with them.
        for i in 0..(3 * PACE_CHUNK / 1000 + 7) {
            let piece = format!("{i:0999}\n");
            w.write_all(piece.as_bytes()).expect("write");
            expected.extend_from_slice(piece.as_bytes());
        }
        let paced = w.into_inner().map_err(|e| e.into_error()).expect("flush");
        assert!(paced.pacing, "sync_file_range works here");
        assert!(paced.in_flight.is_some(), "more than one chunk was paced");
        paced.into_file().sync_all().expect("sync");
        let mut back = Vec::new();
        File::open(&path)
            .expect("open")
            .read_to_end(&mut back)
            .expect("read");
        assert_eq!(back, expected);
    }
}
