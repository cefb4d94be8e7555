//! The shape every controller shares: a cache fed by list-then-watch from
//! the leader's own store, a de-duplicating work queue of keys, and
//! `reconcile(key, ctx) -> Result<Action>` that is idempotent and is not
//! told why it runs. Errors requeue the key with exponential back-off.
//!
//! Controllers run only while this replica leads (see [`run_while_leader`]);
//! their writes use [`Writer`], which refuses to forward to another leader,
//! so a deposed leader cannot keep acting through the new one.

use crate::replica::Replica;
use crate::server::api::ApiSvc;
use crate::store::objects::meta_str;
use crate::store::rocks::{AppliedBatch, ObjectStore};
use crate::store::types::{Command, EventKind, Op, RevisionEvents, Txn};
use rk_api::{ApiError, Reason};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// How long a reconcile waits for the cache to apply its controller's
/// last write.
const CACHE_WAIT: Duration = Duration::from_secs(2);

/// What to do with a key after reconciling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long even if nothing changes.
    Requeue(Duration),
    /// Wait for a change to something the controller watches.
    AwaitChange,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    Other(String),
}

/// `namespace/name`, or `name` for cluster-scoped objects.
pub fn key_of(obj: &Value) -> String {
    let ns = meta_str(obj, "namespace");
    let name = meta_str(obj, "name");
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

/// The key of `obj`'s controller owner, if that owner is a `kind`.
pub fn controller_owner_key(obj: &Value, kind: &str) -> Option<String> {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true && r["kind"] == kind)
        .and_then(|r| r["name"].as_str())
        .map(|n| format!("{ns}/{n}"))
}

/// Whether `obj`'s controller owner has this uid.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["controller"] == true && r["uid"] == uid))
}

pub fn split_key(key: &str) -> (&str, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => ("", key),
    }
}

/// An in-memory copy of the objects of the watched resources, current as
/// of `revision`.
pub struct Cache {
    objects: RwLock<HashMap<String, CachedResource>>,
    revision: std::sync::atomic::AtomicU64,
    /// The same revision, for waiting on.
    applied: tokio::sync::watch::Sender<u64>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            objects: RwLock::default(),
            revision: std::sync::atomic::AtomicU64::new(0),
            applied: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// The cached objects of one resource.
#[derive(Default)]
struct CachedResource {
    /// By [`key_of`].
    objects: BTreeMap<String, Arc<Value>>,
    /// How many times the informer changed them (see [`Cache::changes`]).
    changes: u64,
}

impl Cache {
    fn set_revision(&self, rev: u64) {
        self.revision.store(rev, std::sync::atomic::Ordering::Release);
        self.applied.send_replace(rev);
    }

    /// Waits (at most `limit`) until the cache has applied `revision`: a
    /// controller's next reconcile must see its own last writes, or it
    /// would act twice (two Pods for one missing replica) or decide on
    /// counts it has already changed.
    pub async fn caught_up(&self, revision: u64, limit: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn get(&self, resource: &str, key: &str) -> Option<Arc<Value>> {
        let map = self.objects.read().ok()?;
        map.get(resource)?.objects.get(key).cloned()
    }

    /// Every cached object of `resource`, in one namespace or all.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Ok(map) = self.objects.read() else {
            return vec![];
        };
        let Some(objs) = map.get(resource).map(|r| &r.objects) else {
            return vec![];
        };
        match namespace {
            None => objs.values().cloned().collect(),
            Some(ns) => {
                let prefix = format!("{ns}/");
                objs.range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, v)| v.clone())
                    .collect()
            }
        }
    }

    /// Calls `visit` with the key and object of every cached object of
    /// `resource`, under the cache's read lock: the informer waits
    /// meanwhile, so `visit` should be quick. For passes over many objects
    /// that look at most of them only briefly, it saves what [`Cache::list`]
    /// costs (a clone of every handle) and what [`key_of`] costs (a fresh
    /// key string per object).
    pub fn scan(&self, resource: &str, mut visit: impl FnMut(&str, &Arc<Value>)) {
        let Ok(map) = self.objects.read() else {
            return;
        };
        for (key, obj) in map.get(resource).into_iter().flat_map(|r| &r.objects) {
            visit(key, obj);
        }
    }

    pub fn revision(&self) -> u64 {
        self.revision.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A count that moves whenever a cached object of `resource` changes
    /// (0 while none ever was cached). A reader that rebuilds something
    /// from one resource reads it first and skips the rebuild when it has
    /// not moved since the last: the scheduler looked at all 5000 Nodes in
    /// every pass only to find that none had changed.
    pub fn changes(&self, resource: &str) -> u64 {
        let Ok(map) = self.objects.read() else {
            return 0;
        };
        map.get(resource).map_or(0, |r| r.changes)
    }

    pub(super) fn replace(&self, resource: &str, items: Vec<Value>) {
        if let Ok(mut map) = self.objects.write() {
            let m = map.entry(resource.to_string()).or_default();
            m.changes += 1;
            m.objects.clear();
            for o in items {
                m.objects.insert(key_of(&o), Arc::new(o));
            }
        }
    }

    /// One change, as the informer applies it (tests build caches so).
    #[cfg(test)]
    pub(super) fn apply(&self, resource: &str, kind: EventKind, obj: &Arc<Value>) {
        self.apply_all([(resource, kind, obj)]);
    }

    /// Applies several changes under one write lock. The informer takes
    /// the lock once per applied batch rather than once per change: a
    /// scheduler pass reads every cached Pod under the read lock, and a
    /// burst of bindings otherwise queued a lock handoff behind it for each.
    pub(super) fn apply_all<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a str, EventKind, &'a Arc<Value>)>,
    ) {
        let Ok(mut map) = self.objects.write() else {
            return;
        };
        for (resource, kind, obj) in changes {
            let m = match map.get_mut(resource) {
                Some(m) => m,
                None => map.entry(resource.to_string()).or_default(),
            };
            m.changes += 1;
            match kind {
                EventKind::Deleted => {
                    m.objects.remove(&key_of(obj));
                }
                _ => {
                    m.objects.insert(key_of(obj), obj.clone());
                }
            }
        }
    }
}

/// One change the informer saw, fanned out to the controllers.
#[derive(Debug, Clone)]
pub struct Change {
    pub resource: String,
    pub kind: EventKind,
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
}

/// Keeps a [`Cache`] current: lists every watched resource at one
/// revision, then follows the store's feed; on a lag or gap it relists.
pub struct Informer {
    store: ObjectStore,
    resources: Vec<String>,
    pub cache: Arc<Cache>,
    changes: broadcast::Sender<Change>,
}

impl Informer {
    pub fn new(store: ObjectStore, resources: &[&str]) -> Self {
        let (changes, _) = broadcast::channel(16384);
        Informer {
            store,
            resources: resources.iter().map(|s| s.to_string()).collect(),
            cache: Arc::new(Cache::default()),
            changes,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Lists every resource into the cache; returns the revision.
    pub fn relist(&self) -> Result<u64, String> {
        let mut rev = 0;
        for r in &self.resources {
            let (items, at) = self
                .store
                .list_prefix(&format!("{r}/"))
                .map_err(|e| e.to_string())?;
            self.cache.replace(r, items);
            rev = rev.max(at);
        }
        self.cache.set_revision(rev);
        Ok(rev)
    }

    /// Follows the store until cancelled.
    pub async fn run(&self, mut live: broadcast::Receiver<Arc<AppliedBatch>>, cancel: CancellationToken) {
        let mut last = self.cache.revision();
        loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => return,
                m = live.recv() => m,
            };
            match msg {
                Ok(batch) => {
                    // The revisions that follow on from `last` without a
                    // gap; anything after a gap is left to the resync.
                    let mut next = last;
                    let fresh: Vec<&RevisionEvents> = batch
                        .revisions
                        .iter()
                        .filter(|r| r.revision > last)
                        .take_while(|r| {
                            let follows = r.revision == next + 1;
                            next = r.revision;
                            follows
                        })
                        .collect();
                    let watched = || {
                        fresh
                            .iter()
                            .flat_map(|r| &r.events)
                            .filter(|ev| self.resources.contains(&ev.resource))
                    };
                    // In the cache before any controller hears of them, as
                    // each change was before.
                    self.cache
                        .apply_all(watched().map(|ev| (ev.resource.as_str(), ev.kind, &ev.object)));
                    for ev in watched() {
                        let _ = self.changes.send(Change {
                            resource: ev.resource.clone(),
                            kind: ev.kind,
                            object: ev.object.clone(),
                            prev: ev.prev.clone(),
                        });
                    }
                    if let Some(r) = fresh.last() {
                        last = r.revision;
                        self.cache.set_revision(last);
                    }
                    if batch.revisions.last().is_some_and(|r| r.revision > last) {
                        last = self.resync(&cancel).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => last = self.resync(&cancel).await,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Relists after missing changes and tells every controller to look at
    /// everything again (a resync), since it cannot know what it missed.
    async fn resync(&self, cancel: &CancellationToken) -> u64 {
        loop {
            match self.relist() {
                Ok(rev) => {
                    for r in &self.resources {
                        for o in self.cache.list(r, None) {
                            let _ = self.changes.send(Change {
                                resource: r.clone(),
                                kind: EventKind::Modified,
                                object: o,
                                prev: None,
                            });
                        }
                    }
                    return rev;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "informer relist failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return 0,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
    }
}

/// Writes for controllers: the API's own validation and defaulting, but
/// only while this replica leads.
pub struct Writer {
    api: ApiSvc,
    /// The revision of the newest write this writer committed.
    last_write: std::sync::atomic::AtomicU64,
}

impl Writer {
    pub fn new(replica: Arc<Replica>, shutdown: CancellationToken) -> Self {
        Writer {
            api: ApiSvc { replica, shutdown },
            last_write: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn ensure_leader(&self) -> Result<(), ApiError> {
        let r = &self.api.replica;
        if r.raft.metrics().borrow().current_leader == Some(r.id) {
            Ok(())
        } else {
            Err(ApiError::new(
                Reason::ServiceUnavailable,
                "this replica no longer leads",
            ))
        }
    }

    pub async fn create(&self, resource: &str, obj: &Value) -> Result<Value, ApiError> {
        self.ensure_leader()?;
        let (kind, obj) = self.api.prepare_create(resource, obj.clone())?;
        self.commit(vec![Op::Create {
            resource: kind.group_resource(),
            object: obj,
        }])
        .await
    }

    /// Replaces an object; its resourceVersion, if set, is a precondition.
    pub async fn update(&self, resource: &str, obj: &Value) -> Result<Value, ApiError> {
        self.ensure_leader()?;
        let (op, _) = self.api.prepare_update(resource, obj.clone(), false)?;
        self.commit(vec![op]).await
    }

    pub async fn update_status(&self, resource: &str, obj: &Value) -> Result<Value, ApiError> {
        self.ensure_leader()?;
        let (op, _) = self.api.prepare_update(resource, obj.clone(), true)?;
        self.commit(vec![op]).await
    }

    pub async fn delete(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.ensure_leader()?;
        self.commit(vec![Op::Delete {
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            expected_rv: None,
            expected_uid: uid.map(str::to_string),
            propagation: None,
            grace_period_seconds: None,
        }])
        .await
    }

    /// Deletes a Pod without waiting for its node: for Pods whose node is
    /// unreachable, whose agent cannot confirm termination.
    pub async fn force_delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<Value, ApiError> {
        self.force_delete_pod_at(namespace, name, uid, None).await
    }

    /// Like [`force_delete_pod`](Self::force_delete_pod), but only if the
    /// Pod is still at `resource_version`: a decision taken on a cached copy
    /// must not delete a Pod that changed since (say, one that has just
    /// been reported Succeeded and now counts as a Job completion).
    pub async fn force_delete_pod_at(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        resource_version: Option<u64>,
    ) -> Result<Value, ApiError> {
        self.ensure_leader()?;
        self.commit(vec![Op::Delete {
            resource: "pods".to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            expected_rv: resource_version,
            expected_uid: Some(uid.to_string()),
            propagation: None,
            grace_period_seconds: Some(0),
        }])
        .await
    }

    /// A prepared transaction (ops already validated), all or nothing.
    pub async fn txn(&self, ops: Vec<Op>) -> Result<Vec<Arc<Value>>, ApiError> {
        self.ensure_leader()?;
        let applied = self
            .api
            .replica
            .propose_local(Command::Txn(Txn {
                now: crate::clock::now_rfc3339(),
                ops,
            }))
            .await?;
        self.last_write
            .fetch_max(applied.revision, std::sync::atomic::Ordering::AcqRel);
        Ok(applied.objects)
    }

    /// The revision of the newest write committed through this writer.
    pub fn last_write(&self) -> u64 {
        self.last_write.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Validates a new object into an op for [`Writer::txn`].
    pub fn create_op(&self, resource: &str, obj: &Value) -> Result<Op, ApiError> {
        let (kind, object) = self.api.prepare_create(resource, obj.clone())?;
        Ok(Op::Create {
            resource: kind.group_resource(),
            object,
        })
    }

    /// Validates an update into an op for [`Writer::txn`].
    pub fn update_op(&self, resource: &str, obj: &Value, status: bool) -> Result<Op, ApiError> {
        Ok(self.api.prepare_update(resource, obj.clone(), status)?.0)
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Value, ApiError> {
        Ok(crate::store::types::first_object(self.txn(ops).await?))
    }
}

/// Everything a reconciler may use.
pub struct Ctx {
    pub cache: Arc<Cache>,
    pub writer: Writer,
    /// Where controllers report what they did (written off their path).
    pub events: super::events::EventRecorder,
}

/// A controller: which changes concern which keys, and how to reconcile a
/// key.
pub trait Reconciler: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The keys to reconcile after `change` (often the object's own key, or
    /// its owner's).
    fn keys_for(&self, change: &Change, cache: &Cache) -> Vec<String>;
    /// Every key worth reconciling after a (re)start.
    fn all_keys(&self, cache: &Cache) -> Vec<String>;
    fn reconcile(&self, key: &str, ctx: &Ctx) -> impl Future<Output = Result<Action, ReconcileError>> + Send;
}

/// A de-duplicating queue: a key waiting to be processed is queued once.
struct Queue {
    tx: mpsc::UnboundedSender<String>,
    queued: Mutex<HashSet<String>>,
}

impl Queue {
    fn add(&self, key: String) {
        if let Ok(mut q) = self.queued.lock() {
            if q.insert(key.clone()) {
                let _ = self.tx.send(key);
            }
        }
    }

    fn taken(&self, key: &str) {
        if let Ok(mut q) = self.queued.lock() {
            q.remove(key);
        }
    }
}

/// Runs one controller until `cancel`: feeds its queue from the informer's
/// changes and reconciles keys one at a time per key, `workers` at once.
pub async fn run_controller<R: Reconciler>(
    reconciler: Arc<R>,
    ctx: Arc<Ctx>,
    mut changes: broadcast::Receiver<Change>,
    cancel: CancellationToken,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let queue = Arc::new(Queue {
        tx,
        queued: Mutex::new(HashSet::new()),
    });
    for k in reconciler.all_keys(&ctx.cache) {
        queue.add(k);
    }
    let failures: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let feeder = {
        let queue = queue.clone();
        let reconciler = reconciler.clone();
        let ctx = ctx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            loop {
                let c = tokio::select! {
                    _ = cancel.cancelled() => return,
                    c = changes.recv() => c,
                };
                match c {
                    Ok(change) => {
                        for k in reconciler.keys_for(&change, &ctx.cache) {
                            queue.add(k);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for k in reconciler.all_keys(&ctx.cache) {
                            queue.add(k);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    };
    loop {
        let key = tokio::select! {
            _ = cancel.cancelled() => break,
            k = rx.recv() => match k { Some(k) => k, None => break },
        };
        queue.taken(&key);
        // Read your writes. The wait is bounded: the informer may be
        // relisting, and a stale decision is still caught by the
        // writes' preconditions.
        if !ctx.cache.caught_up(ctx.writer.last_write(), CACHE_WAIT).await {
            tracing::debug!(
                controller = reconciler.name(),
                "cache behind the last write; reconciling anyway"
            );
        }
        let result = reconciler.reconcile(&key, &ctx).await;
        let requeue = match result {
            Ok(Action::AwaitChange) => {
                clear_failures(&failures, &key);
                None
            }
            Ok(Action::Requeue(d)) => {
                clear_failures(&failures, &key);
                Some(d)
            }
            Err(e) => {
                let n = bump_failures(&failures, &key);
                let delay =
                    Duration::from_millis(5u64.saturating_mul(1 << n.min(13))).min(Duration::from_secs(30));
                // Conflicts and lost leadership are routine; anything else
                // is worth a warning, once per back-off step.
                match &e {
                    ReconcileError::Api(a)
                        if matches!(a.reason, Reason::Conflict | Reason::ServiceUnavailable) =>
                    {
                        tracing::debug!(controller = reconciler.name(), key = %key, error = %e, "retrying")
                    }
                    _ => {
                        tracing::warn!(controller = reconciler.name(), key = %key, error = %e, ?delay, "reconcile failed; retrying")
                    }
                }
                Some(delay)
            }
        };
        if let Some(d) = requeue {
            let queue = queue.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(d) => queue.add(key),
                }
            });
        }
    }
    feeder.abort();
}

fn clear_failures(f: &Mutex<HashMap<String, u32>>, key: &str) {
    if let Ok(mut m) = f.lock() {
        m.remove(key);
    }
}

fn bump_failures(f: &Mutex<HashMap<String, u32>>, key: &str) -> u32 {
    match f.lock() {
        Ok(mut m) => {
            let n = m.entry(key.to_string()).or_insert(0);
            *n += 1;
            *n
        }
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cache_lists_by_namespace_and_applies_changes() {
        let c = Cache::default();
        c.replace(
            "pods",
            vec![
                json!({"metadata":{"name":"a","namespace":"x"}}),
                json!({"metadata":{"name":"b","namespace":"x"}}),
                json!({"metadata":{"name":"a","namespace":"xy"}}),
            ],
        );
        assert_eq!(c.list("pods", Some("x")).len(), 2);
        assert_eq!(c.list("pods", None).len(), 3);
        c.apply(
            "pods",
            EventKind::Deleted,
            &Arc::new(json!({"metadata":{"name":"a","namespace":"x"}})),
        );
        assert!(c.get("pods", "x/a").is_none());
        assert!(c.get("pods", "xy/a").is_some());
        assert_eq!(split_key("x/a"), ("x", "a"));
        assert_eq!(split_key("node1"), ("", "node1"));
    }
}
