//! The rk client library: connects to the control plane over mutual TLS,
//! fails over between replicas, and speaks the object API in JSON values.
//!
//! # Layout
//! - [`config`]: the `admin.conf` file format.
//! - [`tls`]: mutual-TLS channels and join-time CA discovery.
//! - [`coalesce`]: fewer `writev` calls per HTTP/2 connection.
//! - [`error`]: API errors to and from gRPC statuses.

pub mod coalesce;
pub mod config;
pub mod error;
pub mod join;
pub mod tls;

pub use rk_api::{ApiError, Reason};
use rk_proto::v1 as pb;
use rk_proto::v1::api_client::ApiClient;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

pub use pb::watch_event::Type as WatchEventType;
pub use pb::Consistency;

/// A connection to the cluster: one channel per replica, used in turn.
#[derive(Clone)]
pub struct Client {
    servers: Arc<Vec<String>>,
    channels: Arc<Vec<Channel>>,
    current: Arc<AtomicUsize>,
    /// The namespace of the current context.
    pub default_namespace: String,
    /// How long a call keeps trying other replicas when none answers.
    pub failover_timeout: Duration,
    /// How long one attempt against one replica may take before that
    /// replica counts as unreachable (a cut link drops packets silently,
    /// so without this a call would wait for TCP or HTTP/2 keepalives).
    pub attempt_timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_resource_version: Option<String>,
    pub precondition_uid: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub namespace: Option<String>,
    pub label_selector: String,
    pub field_selector: String,
    pub local: bool,
}

/// A decoded watch event.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: WatchEventType,
    pub revision: u64,
    pub resource: String,
    pub object: Value,
}

fn decode(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            Reason::InternalError,
            format!("the server sent an undecodable object: {e}"),
        )
    })
}

fn encode(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

impl Client {
    /// Builds a client from explicit material.
    pub fn new(servers: Vec<String>, identity: tls::TlsIdentity) -> Result<Self, ApiError> {
        if servers.is_empty() {
            return Err(ApiError::new(Reason::BadRequest, "no server address given"));
        }
        let mut channels = Vec::new();
        for s in &servers {
            let ch = tls::channel(s, &identity)
                .map_err(|e| ApiError::new(Reason::BadRequest, format!("invalid server address {s}: {e}")))?;
            channels.push(ch);
        }
        Ok(Client {
            servers: Arc::new(servers),
            channels: Arc::new(channels),
            current: Arc::new(AtomicUsize::new(0)),
            default_namespace: "default".into(),
            failover_timeout: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(8),
        })
    }

    /// Builds a client from an `admin.conf`-style file.
    pub fn from_config_file(path: &Path, context: Option<&str>) -> Result<Self, ApiError> {
        let file =
            config::ConfigFile::load(path).map_err(|e| ApiError::new(Reason::BadRequest, e.to_string()))?;
        let r = file
            .resolve(path, context)
            .map_err(|e| ApiError::new(Reason::BadRequest, e.to_string()))?;
        let mut c = Client::new(
            r.servers,
            tls::TlsIdentity {
                ca_pem: r.ca_pem,
                cert_pem: r.cert_pem,
                key_pem: r.key_pem,
            },
        )?;
        c.default_namespace = r.namespace;
        Ok(c)
    }

    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The channel to the replica currently in use.
    pub fn channel(&self) -> Channel {
        let i = self.current.load(Ordering::Relaxed) % self.channels.len();
        self.channels[i].clone()
    }

    /// Every replica's channel, the current one first: for callers of the
    /// other services (Cluster) that want to fail over themselves.
    pub fn channels_in_order(&self) -> Vec<(String, Channel)> {
        let n = self.channels.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        (0..n)
            .map(|k| {
                let i = (start + k) % n;
                (self.servers[i].clone(), self.channels[i].clone())
            })
            .collect()
    }

    fn rotate(&self, from: usize) {
        let _ = self.current.compare_exchange(
            from,
            (from + 1) % self.channels.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Runs a read against the current replica; on "unavailable" or a
    /// broken connection tries the next one, with a short pause once every
    /// replica has been tried.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, ApiError>
    where
        F: Fn(ApiClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_with(f, true).await
    }

    /// Runs a write. It moves to another replica only when the request
    /// certainly did not take effect (the replica refused the connection or
    /// had no leader). A connection that breaks mid-request is reported,
    /// not retried: the write may or may not have been applied.
    async fn call_write<T, F, Fut>(&self, f: F) -> Result<T, ApiError>
    where
        F: Fn(ApiClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_with(f, false).await
    }

    async fn call_with<T, F, Fut>(&self, f: F, idempotent: bool) -> Result<T, ApiError>
    where
        F: Fn(ApiClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.failover_timeout;
        let mut attempts = 0usize;
        loop {
            let i = self.current.load(Ordering::Relaxed) % self.channels.len();
            let client = ApiClient::new(self.channels[i].clone())
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20);
            let answered = match tokio::time::timeout(self.attempt_timeout, f(client)).await {
                Ok(r) => r,
                Err(_) => {
                    // Later calls start at another replica.
                    self.rotate(i);
                    if idempotent && tokio::time::Instant::now() < deadline {
                        attempts += 1;
                        continue;
                    }
                    let mut msg = format!(
                        "{} did not answer within {:?}",
                        self.servers[i], self.attempt_timeout
                    );
                    if !idempotent {
                        msg.push_str(": the write may or may not have been applied");
                    }
                    return Err(ApiError::new(Reason::Timeout, msg));
                }
            };
            match answered {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(st)
                    if (error::is_retryable(&st) || (idempotent && error::is_broken_connection(&st)))
                        && tokio::time::Instant::now() < deadline =>
                {
                    attempts += 1;
                    self.rotate(i);
                    if attempts.is_multiple_of(self.channels.len()) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                Err(st) => {
                    if error::is_broken_connection(&st)
                        || (st.code() == tonic::Code::Unavailable && st.metadata().get("rk-reason").is_none())
                    {
                        let mut msg = format!(
                            "Unable to connect to the server {}: {}",
                            self.servers[i],
                            st.message()
                        );
                        if !idempotent && error::is_broken_connection(&st) {
                            msg.push_str(" (the connection broke mid-request: the write may or may not have been applied)");
                        }
                        self.rotate(i);
                        return Err(ApiError::new(Reason::ServiceUnavailable, msg));
                    }
                    return Err(error::from_status(&st));
                }
            }
        }
    }

    pub async fn create(&self, resource: &str, obj: &Value) -> Result<Value, ApiError> {
        self.create_opts(resource, obj, false).await
    }

    pub async fn create_opts(&self, resource: &str, obj: &Value, dry_run: bool) -> Result<Value, ApiError> {
        let body = encode(obj);
        let r = self
            .call_write(|mut c| {
                let req = pb::CreateRequest {
                    resource: resource.to_string(),
                    object: body.clone(),
                    dry_run,
                };
                async move { c.create(req).await }
            })
            .await?;
        decode(&r.object)
    }

    /// Replaces an object. A resourceVersion in the object is a
    /// precondition.
    pub async fn update(&self, resource: &str, obj: &Value) -> Result<Value, ApiError> {
        self.update_opts(resource, obj, false, false).await
    }

    pub async fn update_status(&self, resource: &str, obj: &Value) -> Result<Value, ApiError> {
        self.update_opts(resource, obj, true, false).await
    }

    pub async fn update_opts(
        &self,
        resource: &str,
        obj: &Value,
        status: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let body = encode(obj);
        let r = self
            .call_write(|mut c| {
                let req = pb::UpdateRequest {
                    resource: resource.to_string(),
                    object: body.clone(),
                    status,
                    dry_run,
                };
                async move { c.update(req).await }
            })
            .await?;
        decode(&r.object)
    }

    pub async fn get(&self, resource: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.get_opts(resource, namespace, name, Consistency::Linearizable)
            .await
    }

    pub async fn get_opts(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        consistency: Consistency,
    ) -> Result<Value, ApiError> {
        let r = self
            .call(|mut c| {
                let req = pb::GetRequest {
                    r#ref: Some(pb::ObjectRef {
                        resource: resource.to_string(),
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    }),
                    consistency: consistency as i32,
                };
                async move { c.get(req).await }
            })
            .await?;
        decode(&r.object)
    }

    /// Lists objects; returns them with the revision they were read at.
    pub async fn list(&self, resource: &str, p: &ListParams) -> Result<(Vec<Value>, u64), ApiError> {
        let r = self
            .call(|mut c| {
                let req = pb::ListRequest {
                    resource: resource.to_string(),
                    namespace: p.namespace.clone().unwrap_or_default(),
                    label_selector: p.label_selector.clone(),
                    field_selector: p.field_selector.clone(),
                    consistency: if p.local {
                        Consistency::Local as i32
                    } else {
                        Consistency::Linearizable as i32
                    },
                };
                async move { c.list(req).await }
            })
            .await?;
        let items = r.items.iter().map(|b| decode(b)).collect::<Result<Vec<_>, _>>()?;
        Ok((items, r.revision))
    }

    pub async fn delete(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let r = self
            .call_write(|mut c| {
                let req = pb::DeleteRequest {
                    r#ref: Some(pb::ObjectRef {
                        resource: resource.to_string(),
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    }),
                    precondition_uid: opts.precondition_uid.clone().unwrap_or_default(),
                    precondition_resource_version: opts
                        .precondition_resource_version
                        .clone()
                        .unwrap_or_default(),
                    propagation_policy: opts.propagation_policy.clone().unwrap_or_default(),
                    grace_period_seconds: opts.grace_period_seconds,
                    dry_run: opts.dry_run,
                };
                async move { c.delete(req).await }
            })
            .await?;
        decode(&r.object)
    }

    /// A multi-object transaction: all ops commit under one revision, or
    /// none does.
    pub async fn txn(&self, ops: Vec<pb::TxnOp>) -> Result<(u64, Vec<Value>), ApiError> {
        let r = self
            .call_write(|mut c| {
                let req = pb::TxnRequest { ops: ops.clone() };
                async move { c.txn(req).await }
            })
            .await?;
        let objs = r
            .objects
            .iter()
            .map(|b| if b.is_empty() { Ok(Value::Null) } else { decode(b) })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((r.revision, objs))
    }

    /// Opens one watch stream on the current replica.
    pub async fn watch_once(
        &self,
        req: pb::WatchRequest,
    ) -> Result<tonic::Streaming<pb::WatchEvent>, ApiError> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.watch(req).await }
        })
        .await
    }

    /// A watch that survives replica failures: when a stream breaks it
    /// reopens on another replica where it left off ([`ResumePoint`]), so
    /// the caller sees every change once, in order. Ends with an error only
    /// for non-retryable failures (for example Expired: relist). The server
    /// opens every stream with a BOOKMARK naming its start revision, which
    /// pins "from now" (since_revision 0) before any reconnect.
    pub fn watch(&self, mut req: pb::WatchRequest) -> tokio::sync::mpsc::Receiver<Result<Event, ApiError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let client = self.clone();
        tokio::spawn(async move {
            let mut resume = ResumePoint::new(req.since_revision);
            loop {
                req.since_revision = resume.since();
                resume.new_stream();
                let mut stream = match client.watch_once(req.clone()).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                loop {
                    match stream.message().await {
                        Ok(Some(ev)) => {
                            let fresh = if ev.r#type() == WatchEventType::Bookmark {
                                resume.bookmark(ev.revision)
                            } else {
                                resume.admit(ev.revision)
                            };
                            if !fresh {
                                continue;
                            }
                            let object = if ev.object.is_empty() {
                                Value::Null
                            } else {
                                match decode(&ev.object) {
                                    Ok(v) => v,
                                    Err(e) => {
                                        let _ = tx.send(Err(e)).await;
                                        return;
                                    }
                                }
                            };
                            let e = Event {
                                kind: ev.r#type(),
                                revision: ev.revision,
                                resource: ev.resource,
                                object,
                            };
                            if tx.send(Ok(e)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(st) => {
                            if !error::is_retryable(&st)
                                && st.code() != tonic::Code::Internal
                                && st.code() != tonic::Code::Unknown
                                && st.code() != tonic::Code::Cancelled
                            {
                                let _ = tx.send(Err(error::from_status(&st))).await;
                                return;
                            }
                            break;
                        }
                    }
                }
                // The stream broke: move to the next replica.
                let i = client.current.load(Ordering::Relaxed);
                client.rotate(i);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        rx
    }
}

/// Where a watch stands, so that a stream reopened after a failure delivers
/// each event exactly once.
///
/// A transaction's changes share one revision and arrive as consecutive
/// events of that revision, so a revision is known to be complete only once
/// a later revision or a bookmark at or past it arrives (the server sends a
/// bookmark only between revisions). A new stream therefore starts after
/// the last *complete* revision; the server replays the revision that was
/// under way in the same order, and the events of it already delivered are
/// skipped by position.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResumePoint {
    /// Every event up to this revision has been delivered.
    complete: u64,
    /// The revision being delivered (equal to `complete` when none is).
    current: u64,
    /// Events of `current` delivered so far.
    delivered: usize,
    /// Events of `current` seen on the present stream.
    position: usize,
}

impl ResumePoint {
    fn new(since: u64) -> ResumePoint {
        ResumePoint {
            complete: since,
            current: since,
            delivered: 0,
            position: 0,
        }
    }

    /// The `since_revision` for the next stream.
    fn since(&self) -> u64 {
        self.complete
    }

    fn new_stream(&mut self) {
        self.position = 0;
    }

    /// Whether a change event at `revision` is new to the caller.
    fn admit(&mut self, revision: u64) -> bool {
        if revision < self.current || (revision == self.current && self.current == self.complete) {
            return false;
        }
        if revision == self.current {
            self.position += 1;
            if self.position <= self.delivered {
                return false;
            }
            self.delivered += 1;
            return true;
        }
        self.complete = self.current;
        self.current = revision;
        self.delivered = 1;
        self.position = 1;
        true
    }

    /// Whether a bookmark at `revision` is news (not behind what was
    /// delivered); it completes every revision up to it.
    fn bookmark(&mut self, revision: u64) -> bool {
        if revision < self.current {
            return false;
        }
        *self = ResumePoint::new(revision);
        true
    }
}

#[cfg(test)]
mod resume_tests {
    use super::ResumePoint;

    #[test]
    fn a_resumed_watch_delivers_each_event_of_a_transaction_once() {
        let mut r = ResumePoint::new(10);
        // A first stream: its opening bookmark, one whole revision, and
        // two of a transaction's three events.
        assert!(r.bookmark(10));
        assert!(r.admit(11));
        assert!(r.admit(12));
        assert!(r.admit(12));
        // It breaks; the next stream starts after revision 11, the last
        // complete one, and replays 12 in the same order.
        assert_eq!(r.since(), 11);
        r.new_stream();
        assert!(!r.bookmark(11), "the opening bookmark is behind");
        assert!(!r.admit(12));
        assert!(!r.admit(12));
        assert!(r.admit(12), "the third event of revision 12 is new");
        assert!(r.admit(13));
        // A bookmark completes revision 13; a replay of it is not news.
        assert!(r.bookmark(13));
        assert_eq!(r.since(), 13);
        assert!(!r.admit(13));
        assert!(!r.admit(9));
    }
}
