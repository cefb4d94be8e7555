//! Resource usage for `rkctl top`: the node's and its Pods' CPU and memory.
//!
//! CPU is a rate, so it needs two readings of cumulative counters. The agent
//! keeps a sampler that reads every counter every [`SAMPLE_INTERVAL`] and
//! answers with the window between the last two readings, as kubelet and
//! metrics-server do, rather than sampling twice on request:
//!
//! * a request is answered at once from memory, so `rkctl top node` over many
//!   nodes costs one round trip, not a second of sleeping per call;
//! * a 10 s window smooths the bursts a 1 s window would show, and matches
//!   what `kubectl top` users expect to read;
//! * the cost is small and bounded: a few small cgroupfs reads per container
//!   every 10 s, whether or not anyone asks.
//!
//! The price is that a Pod shows up only once it has been running at two
//! readings (10–20 s), as with metrics-server; until then it has no metrics.
//!
//! Node CPU comes from `/proc/stat` (every CPU's busy time: all but idle
//! and iowait), node memory is `MemTotal - MemAvailable` from
//! `/proc/meminfo`; Pods and containers are read from their cgroups
//! through the runtime ([`Runtime::cgroup_usage`]).

use crate::pod::{LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use rk_proto::v1 as pb;
use rk_runtime::{CgroupUsage, ContainerState, Runtime};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the counters are read; a reported window is this long.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// One container's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSample {
    pub name: String,
    pub usage: CgroupUsage,
}

/// One Pod's reading: its cgroup and its running containers by runtime id
/// (the id carries the attempt, so a restarted container, whose counters
/// start again at zero, is never compared with its predecessor).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSample {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub usage: Option<CgroupUsage>,
    pub containers: BTreeMap<String, ContainerSample>,
}

/// Every counter at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Monotonic time of the reading (the wall clock may jump).
    pub at: Duration,
    /// Wall-clock time of the reading, Unix milliseconds, for the answer.
    pub timestamp_ms: i64,
    /// The whole node: busy CPU time and memory in use.
    pub node: CgroupUsage,
    /// By sandbox id.
    pub pods: BTreeMap<String, PodSample>,
}

/// Busy CPU time of the node in nanoseconds, from the aggregate `cpu` line
/// of `/proc/stat` (in clock ticks of `1/clk_tck` s): everything except
/// idle and iowait. guest time is already part of user time and is not
/// added again.
pub fn parse_proc_stat(text: &str, clk_tck: u64) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    if fields.len() < 8 || clk_tck == 0 {
        return None;
    }
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().map(|&i| fields[i]).sum();
    Some((busy as u128 * 1_000_000_000 / clk_tck as u128) as u64)
}

/// Memory in use on the node, `MemTotal - MemAvailable`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let kib = |key: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let total = kib("MemTotal")?;
    let available = kib("MemAvailable")?;
    Some(total.saturating_sub(available).saturating_mul(1024))
}

/// Average cores, in nanocores, of a cumulative counter over `dt`; `None`
/// when the counter went backwards (a cgroup made anew) or no time passed.
fn nano_cores(prev_ns: u64, last_ns: u64, dt: Duration) -> Option<u64> {
    let used = last_ns.checked_sub(prev_ns)?;
    let dt = dt.as_nanos();
    if dt == 0 {
        return None;
    }
    u64::try_from(used as u128 * 1_000_000_000 / dt).ok()
}

fn usage(prev: &CgroupUsage, last: &CgroupUsage, dt: Duration) -> Option<pb::Usage> {
    Some(pb::Usage {
        cpu_nano_cores: nano_cores(prev.cpu_usage_ns, last.cpu_usage_ns, dt)?,
        memory_working_set_bytes: last.memory_working_set_bytes,
    })
}

/// The window between two readings, as the agent reports it. Pods and
/// containers missing from either reading are left out: they have no rate.
pub fn window(prev: &Sample, last: &Sample) -> Option<pb::NodeStats> {
    let dt = last.at.checked_sub(prev.at).filter(|d| !d.is_zero())?;
    let mut pods = Vec::new();
    for (id, p) in &last.pods {
        let Some(before) = prev.pods.get(id) else {
            continue;
        };
        let containers: Vec<pb::ContainerStats> = p
            .containers
            .iter()
            .filter_map(|(id, c)| {
                let b = before.containers.get(id)?;
                Some(pb::ContainerStats {
                    name: c.name.clone(),
                    usage: Some(usage(&b.usage, &c.usage, dt)?),
                })
            })
            .collect();
        let pod_usage = match (&before.usage, &p.usage) {
            (Some(b), Some(l)) => usage(b, l, dt),
            _ => None,
        };
        if containers.is_empty() && pod_usage.is_none() {
            continue;
        }
        pods.push(pb::PodStats {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
            usage: pod_usage,
            containers,
        });
    }
    Some(pb::NodeStats {
        usage: Some(usage(&prev.node, &last.node, dt)?),
        timestamp_ms: last.timestamp_ms,
        window_ms: u32::try_from(dt.as_millis()).unwrap_or(u32::MAX),
        pods,
    })
}

/// Reads every counter now. `at` is the monotonic time of the reading.
pub fn take_sample(rt: &dyn Runtime, at: Duration) -> Result<Sample, String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("read {p}: {e}"));
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let clk_tck = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    let node_cpu = parse_proc_stat(&read("/proc/stat")?, clk_tck).ok_or("unreadable /proc/stat")?;
    let node_mem = parse_meminfo(&read("/proc/meminfo")?).ok_or("unreadable /proc/meminfo")?;
    let timestamp_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (sandboxes, containers) = rt.list().map_err(|e| e.to_string())?;
    let mut pods = BTreeMap::new();
    for sb in sandboxes.iter().filter(|s| s.pid.is_some()) {
        let label = |k: &str| sb.labels.get(k).cloned().unwrap_or_default();
        pods.insert(
            sb.id.clone(),
            PodSample {
                namespace: label(LABEL_POD_NAMESPACE),
                name: label(LABEL_POD_NAME),
                uid: label(LABEL_POD_UID),
                // A Pod removed since the listing simply has no reading.
                usage: rt.cgroup_usage(&sb.id, None).ok().flatten(),
                containers: BTreeMap::new(),
            },
        );
    }
    for c in &containers {
        if !matches!(c.state, ContainerState::Running { .. }) {
            continue;
        }
        let Some(pod) = pods.get_mut(&c.sandbox_id) else {
            continue;
        };
        if let Ok(Some(u)) = rt.cgroup_usage(&c.sandbox_id, Some(&c.id)) {
            let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
            pod.containers
                .insert(c.id.clone(), ContainerSample { name, usage: u });
        }
    }
    Ok(Sample {
        at,
        timestamp_ms,
        node: CgroupUsage {
            cpu_usage_ns: node_cpu,
            memory_working_set_bytes: node_mem,
        },
        pods,
    })
}

/// The last two readings.
#[derive(Debug, Default)]
pub struct Sampler {
    readings: Mutex<(Option<Sample>, Option<Sample>)>,
}

impl Sampler {
    /// Keeps `s` as the newest reading, the previous newest as the older one.
    pub fn record(&self, s: Sample) {
        let mut r = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        r.0 = r.1.take();
        r.1 = Some(s);
    }

    /// The latest window; `None` until two readings exist.
    pub fn current(&self) -> Option<pb::NodeStats> {
        let r = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        match &*r {
            (Some(prev), Some(last)) => window(prev, last),
            _ => None,
        }
    }
}

/// Reads the counters every `interval` until cancelled.
pub async fn run(sampler: Arc<Sampler>, rt: Arc<dyn Runtime>, interval: Duration, cancel: CancellationToken) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(interval);
    // After a stall, one reading is enough: a burst would make tiny windows.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let rt = rt.clone();
        let at = start.elapsed();
        match tokio::task::spawn_blocking(move || take_sample(rt.as_ref(), at)).await {
            Ok(Ok(s)) => {
                sampler.record(s);
                warned = false;
            }
            Ok(Err(e)) if !warned => {
                tracing::warn!(error = %e, "reading resource usage failed");
                warned = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_STAT: &str = "cpu  2464526 8720 304880 968089 24291 0 8989 22688 0 0\n\
                             cpu0 1232263 4360 152440 484044 12145 0 4494 11344 0 0\n\
                             intr 1 2 3\n";

    #[test]
    fn node_cpu_is_busy_ticks_in_nanoseconds() {
        // user + nice + system + irq + softirq + steal, at 100 ticks a second.
        let busy = 2464526 + 8720 + 304880 + 8989 + 22688;
        assert_eq!(parse_proc_stat(PROC_STAT, 100), Some(busy * 10_000_000));
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n", 100), None);
        assert_eq!(parse_proc_stat("cpu  1 2 3\n", 100), None);
        assert_eq!(parse_proc_stat(PROC_STAT, 0), None);
    }

    #[test]
    fn node_memory_is_total_minus_available() {
        let text = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\n\
                    MemAvailable:   12000000 kB\nBuffers:          100 kB\n";
        assert_eq!(parse_meminfo(text), Some(4_000_000 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
    }

    fn u(cpu_ns: u64, mem: u64) -> CgroupUsage {
        CgroupUsage {
            cpu_usage_ns: cpu_ns,
            memory_working_set_bytes: mem,
        }
    }

    /// A container in a test reading: runtime id, name, usage.
    type C<'a> = (&'a str, &'a str, CgroupUsage);
    /// A Pod in a test reading: sandbox id, Pod cgroup usage, containers.
    type P<'a> = (&'a str, Option<CgroupUsage>, &'a [C<'a>]);

    fn sample(at_s: u64, node: CgroupUsage, pods: &[P]) -> Sample {
        Sample {
            at: Duration::from_secs(at_s),
            timestamp_ms: at_s as i64 * 1000,
            node,
            pods: pods
                .iter()
                .map(|(uid, usage, cs)| {
                    let containers = cs
                        .iter()
                        .map(|(id, name, u)| {
                            (
                                id.to_string(),
                                ContainerSample {
                                    name: name.to_string(),
                                    usage: *u,
                                },
                            )
                        })
                        .collect();
                    let p = PodSample {
                        namespace: "default".into(),
                        name: format!("pod-{uid}"),
                        uid: uid.to_string(),
                        usage: *usage,
                        containers,
                    };
                    (uid.to_string(), p)
                })
                .collect(),
        }
    }

    #[test]
    fn window_reports_rates_over_the_interval_and_the_latest_memory() {
        let prev = sample(
            10,
            u(100_000_000_000, 1 << 30),
            &[
                (
                    "a",
                    Some(u(1_000_000_000, 10)),
                    &[("a-web-0", "web", u(900_000_000, 8))],
                ),
                ("gone", Some(u(5, 5)), &[]),
                (
                    "restarted",
                    Some(u(0, 1)),
                    &[("r-c-0", "c", u(50_000_000_000, 1))],
                ),
            ],
        );
        let last = sample(
            20,
            // 15 s of CPU time over 10 s: 1.5 cores.
            u(115_000_000_000, 2 << 30),
            &[
                // 2.5 s over 10 s: 250m; the container 2 s: 200m.
                (
                    "a",
                    Some(u(3_500_000_000, 20)),
                    &[("a-web-0", "web", u(2_900_000_000, 16))],
                ),
                ("new", Some(u(1, 1)), &[("n-c-0", "c", u(1, 1))]),
                // A new attempt has a new id: no rate for it yet, but the Pod has one.
                (
                    "restarted",
                    Some(u(1_000_000_000, 2)),
                    &[("r-c-1", "c", u(1_000, 2))],
                ),
            ],
        );
        let w = window(&prev, &last).expect("window");
        assert_eq!(w.window_ms, 10_000);
        assert_eq!(w.timestamp_ms, 20_000);
        assert_eq!(
            w.usage,
            Some(pb::Usage {
                cpu_nano_cores: 1_500_000_000,
                memory_working_set_bytes: 2 << 30
            })
        );
        let names: Vec<&str> = w.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["pod-a", "pod-restarted"]);
        let a = &w.pods[0];
        assert_eq!(a.uid, "a");
        assert_eq!(
            a.usage,
            Some(pb::Usage {
                cpu_nano_cores: 250_000_000,
                memory_working_set_bytes: 20
            })
        );
        assert_eq!(
            a.containers,
            vec![pb::ContainerStats {
                name: "web".into(),
                usage: Some(pb::Usage {
                    cpu_nano_cores: 200_000_000,
                    memory_working_set_bytes: 16
                })
            }]
        );
        assert!(w.pods[1].containers.is_empty());
        // No time between the readings, or a counter that went back: no window.
        assert_eq!(window(&last, &last), None);
        assert_eq!(window(&last, &prev), None);
    }

    #[test]
    fn sampler_needs_two_readings() {
        let s = Sampler::default();
        assert!(s.current().is_none());
        s.record(sample(0, u(0, 1), &[]));
        assert!(s.current().is_none());
        s.record(sample(10, u(10_000_000_000, 2), &[]));
        assert_eq!(
            s.current().and_then(|w| w.usage).map(|u| u.cpu_nano_cores),
            Some(1_000_000_000)
        );
        s.record(sample(20, u(10_000_000_000, 3), &[]));
        assert_eq!(
            s.current().and_then(|w| w.usage),
            Some(pb::Usage {
                cpu_nano_cores: 0,
                memory_working_set_bytes: 3
            })
        );
    }
}
