//! Serving a watch: replay the history after the requested revision, then
//! follow the live feed, in revision order, with no gaps and no
//! duplicates. A watcher that falls behind the live feed (or notices a gap)
//! re-reads the history it missed; one whose start was compacted away gets
//! Expired and must relist.

use crate::store::rocks::{AppliedBatch, ObjectStore, ReadError};
use crate::store::types::{EventKind, RevisionEvents, StoredEvent};
use rk_api::resources::ResourceKind;
use rk_api::selector::{labels_of, FieldSelector, LabelSelector};
use rk_api::{ApiError, Reason};
use rk_proto::v1 as pb;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// Which objects a list or watch is about.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    resource: Option<String>,
    namespace: String,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl WatchFilter {
    pub fn new(
        kind: Option<&ResourceKind>,
        namespace: &str,
        labels: &str,
        fields: &str,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            resource: kind.map(|k| k.group_resource()),
            namespace: if kind.is_some_and(|k| !k.namespaced) {
                String::new()
            } else {
                namespace.to_string()
            },
            labels: LabelSelector::parse(labels)?,
            fields: FieldSelector::parse(fields)?,
        })
    }

    pub fn matches_object(&self, obj: &Value) -> bool {
        if !self.namespace.is_empty() && crate::store::objects::meta_str(obj, "namespace") != self.namespace {
            return false;
        }
        self.labels.matches(&labels_of(obj)) && self.fields.matches(obj)
    }

    /// What a watcher with this filter sees of one stored change, if
    /// anything. An object that starts or stops matching a selector is
    /// ADDED or DELETED from the watcher's point of view.
    pub fn convert<'a>(&self, ev: &'a StoredEvent) -> Option<(pb::watch_event::Type, &'a Value)> {
        use pb::watch_event::Type;
        if let Some(r) = &self.resource {
            if &ev.resource != r {
                return None;
            }
        }
        let now = self.matches_object(&ev.object);
        let before = ev.prev.as_ref().is_some_and(|p| self.matches_object(p));
        match ev.kind {
            EventKind::Added => now.then_some((Type::Added, &ev.object)),
            EventKind::Deleted => (now || before).then_some((Type::Deleted, &ev.object)),
            EventKind::Modified => match (before, now) {
                (true, true) => Some((Type::Modified, &ev.object)),
                (false, true) => Some((Type::Added, &ev.object)),
                (true, false) => Some((Type::Deleted, &ev.object)),
                (false, false) => None,
            },
        }
    }
}

fn bookmark(revision: u64) -> pb::WatchEvent {
    pb::WatchEvent {
        r#type: pb::watch_event::Type::Bookmark as i32,
        revision,
        resource: String::new(),
        object: vec![],
    }
}

struct Sender {
    tx: mpsc::Sender<Result<pb::WatchEvent, Status>>,
    filter: WatchFilter,
    last: u64,
}

impl Sender {
    /// Sends the watcher's view of one revision. Err means the client left.
    async fn revision(&mut self, rev: &RevisionEvents) -> Result<(), ()> {
        for ev in &rev.events {
            if let Some((t, obj)) = self.filter.convert(ev) {
                let msg = pb::WatchEvent {
                    r#type: t as i32,
                    revision: rev.revision,
                    resource: ev.resource.clone(),
                    object: serde_json::to_vec(obj).unwrap_or_default(),
                };
                self.tx.send(Ok(msg)).await.map_err(|_| ())?;
            }
        }
        self.last = rev.revision;
        Ok(())
    }

    /// Replays history up to the store's current revision.
    async fn catch_up(&mut self, store: &ObjectStore) -> Result<(), Option<Status>> {
        let current = store.revision();
        if current <= self.last {
            return Ok(());
        }
        match store.history(self.last, current) {
            Ok(revs) => {
                for r in &revs {
                    if r.revision > self.last {
                        self.revision(r).await.map_err(|_| None)?;
                    }
                }
                Ok(())
            }
            Err(e @ ReadError::Compacted { .. }) => Err(Some(rk_client::error::to_status(&ApiError::new(
                Reason::Gone,
                format!("the watch fell behind the retained history: {e}; relist"),
            )))),
            Err(e) => Err(Some(Status::internal(e.to_string()))),
        }
    }
}

/// Starts serving one watch; returns the stream of events.
pub fn serve(
    store: ObjectStore,
    mut live: broadcast::Receiver<Arc<AppliedBatch>>,
    filter: WatchFilter,
    since: u64,
    bookmark_every: Duration,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<pb::WatchEvent, Status>> {
    let (tx, rx) = mpsc::channel(512);
    tokio::spawn(async move {
        let mut s = Sender {
            tx,
            filter,
            last: since,
        };
        // The first message pins the start revision for the client, so a
        // reconnect before any event still resumes at the right place.
        if s.tx.send(Ok(bookmark(since))).await.is_err() {
            return;
        }
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        let mut need_catch_up = true;
        loop {
            if need_catch_up {
                match s.catch_up(&store).await {
                    Ok(()) => need_catch_up = false,
                    Err(Some(st)) => {
                        let _ = s.tx.send(Err(st)).await;
                        return;
                    }
                    Err(None) => return,
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = s.tx.send(Err(Status::unavailable("replica shutting down"))).await;
                    return;
                }
                _ = s.tx.closed() => return,
                msg = live.recv() => match msg {
                    Ok(batch) => {
                        for r in &batch.revisions {
                            if r.revision <= s.last {
                                continue;
                            }
                            if r.revision != s.last + 1 {
                                need_catch_up = true;
                                break;
                            }
                            if s.revision(r).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => need_catch_up = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick() => {
                    if s.tx.send(Ok(bookmark(s.last))).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::watch_event::Type;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata":{"name":"p","namespace":"default","labels":labels}})
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let kind = rk_api::resources::lookup("pods").expect("pods");
        let f = WatchFilter::new(Some(kind), "", "app=web", "").expect("filter");
        let ev = |kind, obj, prev| StoredEvent {
            kind,
            resource: "pods".into(),
            object: obj,
            prev,
        };
        let web = std::sync::Arc::new(pod(json!({"app":"web"})));
        let db = std::sync::Arc::new(pod(json!({"app":"db"})));
        assert_eq!(
            f.convert(&ev(EventKind::Added, web.clone(), None)).map(|x| x.0),
            Some(Type::Added)
        );
        assert_eq!(
            f.convert(&ev(EventKind::Added, db.clone(), None)).map(|x| x.0),
            None
        );
        assert_eq!(
            f.convert(&ev(EventKind::Modified, db.clone(), Some(web.clone())))
                .map(|x| x.0),
            Some(Type::Deleted)
        );
        assert_eq!(
            f.convert(&ev(EventKind::Modified, web.clone(), Some(db.clone())))
                .map(|x| x.0),
            Some(Type::Added)
        );
        assert_eq!(
            f.convert(&ev(EventKind::Modified, web.clone(), Some(web.clone())))
                .map(|x| x.0),
            Some(Type::Modified)
        );
        assert_eq!(
            f.convert(&ev(EventKind::Deleted, web.clone(), Some(web.clone())))
                .map(|x| x.0),
            Some(Type::Deleted)
        );
        let other = StoredEvent {
            kind: EventKind::Added,
            resource: "configmaps".into(),
            object: web,
            prev: None,
        };
        assert!(f.convert(&other).is_none());
    }
}
