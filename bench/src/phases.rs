//! The three phases of `rk-bench store`, driven the same way for every
//! system: each system supplies only how to write one key.

use crate::stats::Summary;
use anyhow::Result;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes `n` keys `{prefix}-{i}` one after another; their latencies.
pub async fn sequential<W, F>(n: usize, prefix: &str, write: W) -> Result<Summary>
where
    W: Fn(String) -> F,
    F: Future<Output = Result<()>>,
{
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        write(format!("{prefix}-{i}")).await?;
        lat.push(t.elapsed());
    }
    Ok(Summary::of(&mut lat))
}

/// Writes `total` keys `conc-{i}` with `in_flight` writers, each starting
/// its next write when the last one is acknowledged. Returns the latencies
/// and the writes per second.
pub async fn concurrent<W, F>(total: usize, in_flight: usize, write: W) -> Result<(Summary, f64)>
where
    W: Fn(String) -> F + Clone + Send + 'static,
    F: Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..in_flight {
        let write = write.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                write(format!("conc-{i}")).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed();
    Ok((Summary::of(&mut all), total as f64 / elapsed.as_secs_f64()))
}

/// Writes keys `fo-{kill}-{i}` until one is acknowledged, each attempt
/// given 500 ms; the time from `killed` to that write. `RK_BENCH_TRACE=1`
/// prints each failed attempt.
pub async fn first_write_after<W, F>(killed: Instant, kill: usize, system: &str, write: W) -> Result<Duration>
where
    W: Fn(String) -> F,
    F: Future<Output = Result<()>>,
{
    let trace = std::env::var_os("RK_BENCH_TRACE").is_some();
    for i in 1.. {
        match tokio::time::timeout(Duration::from_millis(500), write(format!("fo-{kill}-{i}"))).await {
            Ok(Ok(())) => return Ok(killed.elapsed()),
            Ok(Err(e)) if trace => eprintln!("    attempt {i} at {:?}: {e}", killed.elapsed()),
            Err(_) if trace => eprintln!("    attempt {i} at {:?}: no answer in 500 ms", killed.elapsed()),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        if killed.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    anyhow::bail!("{system} did not recover from a leader kill in 30 s")
}
