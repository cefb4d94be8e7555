//! Latency summaries.

use std::time::Duration;

pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
    pub samples: Vec<Duration>,
}

impl Summary {
    /// Nearest-rank percentiles of `v` (sorted in place).
    pub fn of(v: &mut [Duration]) -> Summary {
        v.sort();
        let pick = |q: f64| -> Duration {
            if v.is_empty() {
                return Duration::ZERO;
            }
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Summary {
            p50: pick(0.5),
            p99: pick(0.99),
            samples: v.to_vec(),
        }
    }
}

/// A process's resident set size in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A process's peak RSS (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// A KiB figure of `/proc/PID/status`, by its `field:` prefix.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time a set of processes uses from a starting point on.
pub struct CpuMeter {
    pids: Vec<u32>,
    start: Duration,
}

impl CpuMeter {
    pub fn start(pids: Vec<u32>) -> Self {
        let start = cpu_time(&pids);
        Self { pids, start }
    }

    /// The CPU time used since the start.
    pub fn used(&self) -> Duration {
        cpu_time(&self.pids).saturating_sub(self.start)
    }
}

/// The CPU time (user and system) that the processes have used so far,
/// from /proc; a process that has exited counts nothing.
pub fn cpu_time(pids: &[u32]) -> Duration {
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let ticks: u64 = pids.iter().filter_map(|pid| process_ticks(*pid)).sum();
    Duration::from_secs_f64(ticks as f64 / ticks_per_second)
}

/// utime + stime of one process, in clock ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the fields
    // after it start with the state (field 3), so utime (14) and stime
    // (15) are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_what_this_process_burns() {
        let me = std::process::id();
        let before = cpu_time(&[me]);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = cpu_time(&[me]) - before;
        assert!(
            used >= Duration::from_millis(200),
            "{used:?} for 300 ms of spinning"
        );
        assert_eq!(cpu_time(&[u32::MAX]), Duration::ZERO, "no such process");
    }
}
