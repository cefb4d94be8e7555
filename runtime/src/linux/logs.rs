//! Container logs in the CRI format that kubelet and `kubectl logs` read:
//! `<RFC3339Nano UTC> <stdout|stderr> <F|P> <content>\n`, one entry per line of
//! output. A line longer than [`MAX_LINE`] is cut into partial (`P`) entries
//! followed by a final (`F`) one, as containerd does, so a process that never
//! prints a newline cannot make the shim buffer without bound.
//!
//! Files rotate by size: `log` → `log.1` → … → `log.<max_files - 1>`, the
//! oldest dropped, so at most `max_files` files exist (kubelet's
//! `containerLogMaxFiles` counts the live file too).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::timefmt::rfc3339_nano;

/// The longest content carried by one log entry (containerd's default is 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One CRI log entry, newline included.
pub fn format_entry(ts: SystemTime, stream: Stream, partial: bool, content: &[u8]) -> Vec<u8> {
    let ts = rfc3339_nano(ts);
    let mut out = Vec::with_capacity(ts.len() + content.len() + 12);
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.push(b' ');
    out.push(if partial { b'P' } else { b'F' });
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// Cuts a byte stream into log entries: complete lines (without their
/// newline) as final entries, over-long runs as partial ones.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; `emit(content, partial)` is called for every entry they complete.
    pub fn push(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take_line(&data[..i], emit);
                    data = &data[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(data);
                    data = &[];
                }
            }
            while self.pending.len() >= MAX_LINE {
                let rest = self.pending.split_off(MAX_LINE);
                emit(&self.pending, true);
                self.pending = rest;
            }
        }
    }

    fn take_line(&mut self, tail: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        if self.pending.is_empty() {
            // The common case: no copy, but still honour the line size cap.
            let mut line = tail;
            while line.len() > MAX_LINE {
                emit(&line[..MAX_LINE], true);
                line = &line[MAX_LINE..];
            }
            emit(line, false);
            return;
        }
        self.pending.extend_from_slice(tail);
        let mut line = std::mem::take(&mut self.pending);
        while line.len() > MAX_LINE {
            let rest = line.split_off(MAX_LINE);
            emit(&line, true);
            line = rest;
        }
        emit(&line, false);
    }

    /// At end of stream, what is left without a newline becomes a final entry.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            emit(&line, false);
        }
    }
}

/// The name of the `n`-th rotated file (`n` ≥ 1).
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// An append-only log file that rotates when the next entry would push it past `max_bytes`.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: u32,
}

impl RotatingLog {
    /// Opens (appending to) `path`. `max_bytes == 0` disables rotation.
    pub fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            max_files,
        })
    }

    pub fn write_entry(&mut self, entry: &[u8]) -> io::Result<()> {
        if self.max_bytes > 0 && self.size > 0 && self.size + entry.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(entry)?;
        self.size += entry.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files <= 1 {
            // No room for history: start the one file afresh.
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let oldest = self.max_files - 1;
        match std::fs::remove_file(rotated_path(&self.path, oldest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..oldest).rev() {
            match std::fs::rename(rotated_path(&self.path, n), rotated_path(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, rotated_path(&self.path, 1))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        for c in chunks {
            s.push(c, &mut |l, p| out.push((l.to_vec(), p)));
        }
        s.finish(&mut |l, p| out.push((l.to_vec(), p)));
        out
    }

    #[test]
    fn entry_format() {
        let t = UNIX_EPOCH + Duration::new(1_136_214_245, 5_000);
        let e = format_entry(t, Stream::Stderr, false, b"hello");
        assert_eq!(e, b"2006-01-02T15:04:05.000005Z stderr F hello\n");
        let e = format_entry(t, Stream::Stdout, true, b"");
        assert_eq!(e, b"2006-01-02T15:04:05.000005Z stdout P \n");
    }

    #[test]
    fn splits_lines_across_chunks() {
        let got = split(&[b"he", b"llo\nwor", b"ld\n\nlast"]);
        let want: Vec<(Vec<u8>, bool)> = vec![
            (b"hello".to_vec(), false),
            (b"world".to_vec(), false),
            (b"".to_vec(), false),
            (b"last".to_vec(), false),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn long_lines_become_partial_entries() {
        let long = vec![b'a'; MAX_LINE * 2 + 10];
        let mut data = long.clone();
        data.push(b'\n');
        let got = split(&[&data[..100], &data[100..]]);
        assert_eq!(got.len(), 3);
        assert!(got[0].1 && got[1].1 && !got[2].1);
        assert_eq!(got[2].0.len(), 10);
        let joined: Vec<u8> = got.iter().flat_map(|(l, _)| l.clone()).collect();
        assert_eq!(joined, long);
    }

    #[test]
    fn rotates_and_keeps_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let mut log = RotatingLog::open(&path, 10, 3).expect("open");
        for i in 0..5u8 {
            log.write_entry(&[b'0' + i; 8]).expect("write");
        }
        assert_eq!(std::fs::read(&path).expect("read"), b"44444444");
        assert_eq!(std::fs::read(rotated_path(&path, 1)).expect("read"), b"33333333");
        assert_eq!(std::fs::read(rotated_path(&path, 2)).expect("read"), b"22222222");
        assert!(!rotated_path(&path, 3).exists());
    }

    #[test]
    fn single_file_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let mut log = RotatingLog::open(&path, 10, 1).expect("open");
        log.write_entry(b"aaaaaaaa").expect("write");
        log.write_entry(b"bbbbbbbb").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"bbbbbbbb");
        assert!(!rotated_path(&path, 1).exists());
    }
}
