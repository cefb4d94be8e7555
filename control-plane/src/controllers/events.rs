//! Events, recorded off the path of the decisions they report.
//!
//! Controllers report what they did (a Pod scheduled, created, evicted) as
//! Kubernetes Events. Writing each one inside the decision's own write made
//! every binding transaction twice as large: the scheduler benchmark bound
//! 28% more Pods per second without them. So, as kube-scheduler's event
//! broadcaster does, a controller hands its Event to an [`EventRecorder`]
//! and goes on; one task per leadership term writes the queued Events in
//! batches, one transaction at a time, after the changes they report have
//! committed.
//!
//! Events are best effort, as in Kubernetes: the queue is bounded, and an
//! Event that finds it full is dropped and counted (with a warning), never
//! waited for. The queue is lost when leadership moves.

use super::runtime::Writer;
use crate::store::types::Op;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Events waiting to be written at most; kube-scheduler's broadcaster keeps
/// 1000, but a batch here costs little, and a burst of 10000 Pods should
/// not lose its "Scheduled" Events.
const QUEUED_EVENTS: usize = 16384;
/// Events per transaction.
const EVENTS_PER_TXN: usize = 256;

/// The controllers' handle for recording Events. Cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    queue: mpsc::Sender<Value>,
    dropped: Arc<AtomicU64>,
}

impl EventRecorder {
    /// A recorder whose Events `writer` commits until `term` ends.
    pub fn start(writer: Writer, term: CancellationToken) -> (EventRecorder, tokio::task::JoinHandle<()>) {
        let (recorder, pending) = Self::with_queue(QUEUED_EVENTS);
        let task = tokio::spawn(write_events(pending, writer, term));
        (recorder, task)
    }

    /// A recorder and the receiving end of its queue of `capacity` Events.
    fn with_queue(capacity: usize) -> (EventRecorder, mpsc::Receiver<Value>) {
        let (queue, pending) = mpsc::channel(capacity);
        let recorder = EventRecorder {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (recorder, pending)
    }

    /// Queues an Event about `object` (see [`super::event_object`]).
    pub fn record(&self, object: &Value, etype: &str, reason: &str, message: &str, component: &str) {
        self.queue_event(super::event_object(object, etype, reason, message, component));
    }

    /// Queues `event`, or drops it if the queue is full or closed.
    fn queue_event(&self, event: Value) {
        if let Err(e) = self.queue.try_send(event) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // The 1st, 2nd, 4th, 8th... drop: a flood of them stays a few lines.
            if dropped.is_power_of_two() {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "the queue is full",
                    mpsc::error::TrySendError::Closed(_) => "this replica no longer leads",
                };
                tracing::warn!(dropped, "an Event was dropped: {why}");
            }
        }
    }
}

/// Writes queued Events until `term` ends: whatever is queued when a write
/// starts, up to [`EVENTS_PER_TXN`], goes into one transaction.
async fn write_events(mut pending: mpsc::Receiver<Value>, writer: Writer, term: CancellationToken) {
    let mut batch = Vec::with_capacity(EVENTS_PER_TXN);
    loop {
        let received = tokio::select! {
            _ = term.cancelled() => return,
            n = pending.recv_many(&mut batch, EVENTS_PER_TXN) => n,
        };
        if received == 0 {
            return;
        }
        write_batch(&writer, std::mem::take(&mut batch)).await;
    }
}

/// Writes `events` in one transaction. One that cannot be written (its
/// namespace is going away, say) would fail the others with it, so after
/// a failure each is written on its own; what still fails is logged.
async fn write_batch(writer: &Writer, events: Vec<Value>) {
    let ops: Vec<Op> = events
        .iter()
        .filter_map(|ev| match writer.create_op("events", ev) {
            Ok(op) => Some(op),
            Err(e) => {
                tracing::debug!(error = %e, "an Event was not valid");
                None
            }
        })
        .collect();
    let count = ops.len();
    if count == 0 {
        return;
    }
    let Err(e) = writer.txn(ops).await else {
        return;
    };
    if count <= 1 || e.reason == rk_api::Reason::ServiceUnavailable {
        tracing::debug!(error = %e, events = count, "could not record Events");
        return;
    }
    for ev in &events {
        if let Err(e) = writer.create("events", ev).await {
            tracing::debug!(error = %e, reason = %ev["reason"], "could not record an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "uid": "u-1"}})
    }

    #[tokio::test]
    async fn events_are_queued_in_order_and_dropped_never_waited_for_once_the_queue_is_full() {
        let (recorder, mut pending) = EventRecorder::with_queue(2);
        for name in ["a", "b", "c"] {
            recorder.record(&pod(name), "Normal", "Scheduled", &format!("{name} placed"), "s");
        }
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 1);
        let mut queued = Vec::new();
        pending.recv_many(&mut queued, 10).await;
        let names: Vec<&str> = queued
            .iter()
            .map(|e| e["involvedObject"]["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(names, ["a", "b"], "the first two, in order; the third dropped");
        assert_eq!(queued[0]["reason"], "Scheduled");
        assert_eq!(queued[0]["message"], "a placed");
        // Once the writer is gone (leadership moved), recording drops too.
        drop(pending);
        recorder.record(&pod("d"), "Normal", "Scheduled", "d placed", "s");
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 2);
    }
}
