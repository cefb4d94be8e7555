//! The three phases of `rk-bench store`, driven the same way for every
//! system: each system supplies only how to write one key.

use anyhow::Result;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a system writes one key. Every system's writes go through the same
/// boxing, so it costs them alike.
pub type Write = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

pub fn writer<F, Fut>(write: F) -> Write
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    Arc::new(move |key| Box::pin(write(key)))
}

/// Writes `n` keys `{prefix}-{i}` one after another; their latencies.
pub async fn sequential(n: usize, prefix: &str, write: &Write) -> Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        write(format!("{prefix}-{i}")).await?;
        lat.push(t.elapsed());
    }
    Ok(lat)
}

/// Writes `total` keys `{prefix}-{i}` with `in_flight` writers, each
/// starting its next write when the last one is acknowledged. Returns the
/// latencies and the time all of it took.
pub async fn concurrent(
    total: usize,
    in_flight: usize,
    prefix: &str,
    write: &Write,
) -> Result<(Vec<Duration>, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..in_flight {
        let write = write.clone();
        let next = next.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                write(format!("{prefix}-{i}")).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, start.elapsed()))
}

/// Writes keys `fo-{kill}-{i}` until one is acknowledged, each attempt
/// given 500 ms; the time from `killed` to that write. `RK_BENCH_TRACE=1`
/// prints each failed attempt.
pub async fn first_write_after(
    killed: Instant,
    kill: usize,
    system: &str,
    write: &Write,
) -> Result<Duration> {
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
