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
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
