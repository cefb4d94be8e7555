//! Wall-clock time at one-second resolution, the resolution of Kubernetes'
//! timestamps (creationTimestamp, conditions, lastScheduleTime).
//!
//! [`now`] is the system clock. The controllers whose decisions are about
//! time itself, CronJob (when to run) and Job (deadlines, failure
//! back-off, TTL), read the time through a [`Clock`] instead, so that
//! integration tests can move time forward by minutes or months in an
//! instant ([`FileClock`], selected by the hidden `--test-clock-file` flag).
//! Everything else stays on the system clock: node leases, condition and
//! event timestamps and the API server's creationTimestamp are compared
//! with times that other processes write, and a clock that jumps would
//! make every node look dead.

use k8s_openapi::jiff::Timestamp;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use rk_api::time::{now, now_rfc3339};

/// Where a controller reads the time, and how long it sleeps to see a
/// given time arrive.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in whole seconds.
    fn now(&self) -> Timestamp;

    /// How long to wait before looking again for the clock to read `t`.
    fn until(&self, t: Timestamp) -> Duration;
}

/// The clock controllers share.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock: what every production replica uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        now()
    }

    /// The whole seconds until `t`, at least one, so a wake-up never spins
    /// within the second that `now` truncates to.
    fn until(&self, t: Timestamp) -> Duration {
        let secs = t.as_second().saturating_sub(now().as_second()).max(1);
        Duration::from_secs(u64::try_from(secs).unwrap_or(1))
    }
}

/// Test only: the time written in a file, as an RFC 3339 timestamp
/// (`2030-01-15T07:59:00Z`). Time stands still until the test rewrites the
/// file (it should write a new file and rename it over the old one, so a
/// reader never sees half a timestamp). An unreadable or unparseable file
/// keeps the last time read, or, before any was, the system time.
#[derive(Debug)]
pub struct FileClock {
    path: PathBuf,
    last: Mutex<Option<Timestamp>>,
}

/// How often a controller on a [`FileClock`] looks at the time again: the
/// file can jump ahead at any moment, so the time it waits for may already
/// be there.
pub const FILE_CLOCK_POLL: Duration = Duration::from_millis(100);

impl FileClock {
    pub fn new(path: PathBuf) -> FileClock {
        FileClock {
            path,
            last: Mutex::new(None),
        }
    }

    fn read(&self) -> Option<Timestamp> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let t: Timestamp = text.trim().parse().ok()?;
        Timestamp::from_second(t.as_second()).ok()
    }
}

impl Clock for FileClock {
    fn now(&self) -> Timestamp {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match self.read() {
            Some(t) => {
                *last = Some(t);
                t
            }
            None => {
                tracing::debug!(path = %self.path.display(), "test clock file unreadable; keeping the last time");
                last.unwrap_or_else(now)
            }
        }
    }

    fn until(&self, _t: Timestamp) -> Duration {
        FILE_CLOCK_POLL
    }
}

/// The controllers' clock: the system clock, or for tests the time in
/// `test_clock_file`.
pub fn controller_clock(test_clock_file: Option<&std::path::Path>) -> SharedClock {
    match test_clock_file {
        Some(path) => {
            tracing::warn!(path = %path.display(), "controllers read the time from a test clock file");
            Arc::new(FileClock::new(path.to_path_buf()))
        }
        None => Arc::new(SystemClock),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_clock_reads_the_file_and_keeps_the_last_good_time() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("clock");
        let clock = FileClock::new(path.clone());
        let system = now();
        // No file yet: the system time.
        assert!(clock.now().as_second() >= system.as_second());
        let steps = [
            ("2030-01-15T07:59:00Z\n", "2030-01-15T07:59:00Z"),
            ("2030-01-15T08:00:30.750Z", "2030-01-15T08:00:30Z"),
            ("2030-01-15T09:00:00+01:00", "2030-01-15T08:00:00Z"),
            ("", "2030-01-15T08:00:00Z"),
            ("not a time", "2030-01-15T08:00:00Z"),
        ];
        for (content, want) in steps {
            std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(clock.now().to_string(), want, "{content:?}");
        }
        assert_eq!(clock.until(system), FILE_CLOCK_POLL);
    }

    #[test]
    fn system_clock_waits_whole_seconds() {
        let c = SystemClock;
        let t = c.now();
        let cases = [(-10, 1), (0, 1), (1, 1), (90, 90)];
        for (ahead, want) in cases {
            let at = Timestamp::from_second(t.as_second() + ahead).unwrap_or(t);
            let got = c.until(at).as_secs();
            // The second may turn between the two readings.
            assert!(got == want || got + 1 == want, "{ahead}: {got}");
        }
    }
}
