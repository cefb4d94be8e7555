//! The object API: validation and defaulting on the way in, Raft for every
//! write, read barriers for linearizable reads, and watches served from the
//! replica's own history.

use super::auth;
use crate::replica::Replica;
use crate::store::objects::{meta_str, object_key, resource_prefix, resource_version, ObjectRead};
use crate::store::rocks::ReadError;
use crate::store::types::*;
use crate::watch::{self, WatchFilter};
use rk_api::resources::{self, ResourceKind};
use rk_api::{validate, ApiError, Reason};
use rk_client::error::to_status;
use rk_proto::v1 as pb;
use rk_proto::v1::api_server::Api;
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub struct ApiSvc {
    pub replica: Arc<Replica>,
    pub shutdown: tokio_util::sync::CancellationToken,
}

type Result<T> = std::result::Result<T, Status>;

fn err(e: ApiError) -> Status {
    to_status(&e)
}

fn kind_for(resource: &str) -> std::result::Result<&'static ResourceKind, ApiError> {
    resources::lookup(resource).ok_or_else(|| {
        ApiError::new(
            Reason::NotFound,
            format!("the server doesn't have a resource type \"{resource}\""),
        )
    })
}

fn parse_object(bytes: &[u8]) -> std::result::Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(Reason::BadRequest, format!("the object is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::new(Reason::BadRequest, "the object must be a JSON map"));
    }
    Ok(v)
}

/// Resolves the kind from the request's resource and the object's
/// apiVersion/kind, which must agree.
fn kind_of_object(resource: &str, obj: &Value) -> std::result::Result<&'static ResourceKind, ApiError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind_name = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind_name.is_empty() {
        return Err(ApiError::new(Reason::BadRequest, "Object 'Kind' is missing"));
    }
    let by_object = resources::by_api_version_kind(api_version, kind_name).ok_or_else(|| {
        ApiError::new(
            Reason::BadRequest,
            format!("no matches for kind \"{kind_name}\" in version \"{api_version}\""),
        )
    })?;
    if !resource.is_empty() {
        let by_req = kind_for(resource)?;
        if by_req != by_object {
            return Err(ApiError::new(
                Reason::BadRequest,
                format!(
                    "the object's kind {} does not belong to resource {}",
                    kind_name,
                    by_req.group_resource()
                ),
            ));
        }
    }
    Ok(by_object)
}

fn namespace_for(kind: &ResourceKind, ns: &str) -> String {
    if kind.namespaced {
        if ns.is_empty() {
            "default".into()
        } else {
            ns.to_string()
        }
    } else {
        String::new()
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl ApiSvc {
    /// Validates, defaults and stamps a new object; returns it with the
    /// resource it belongs to.
    pub(crate) fn prepare_create(
        &self,
        resource: &str,
        raw: Value,
    ) -> std::result::Result<(&'static ResourceKind, Value), ApiError> {
        let kind = kind_of_object(resource, &raw)?;
        if !meta_str(&raw, "resourceVersion").is_empty() {
            return Err(ApiError::new(
                Reason::BadRequest,
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut obj = validate::validate_create(kind, raw)?;
        let meta = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::new(Reason::BadRequest, "metadata is required"))?;
        let name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    kind.kind,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            meta.insert("name".into(), json!(format!("{prefix}{}", random_suffix())));
        }
        let ns = namespace_for(kind, meta.get("namespace").and_then(Value::as_str).unwrap_or(""));
        if ns.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), json!(ns));
        }
        let uid = uuid::Uuid::new_v4().to_string();
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(crate::clock::now_rfc3339()));
        for f in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "generation",
        ] {
            meta.remove(f);
        }
        if kind.kind == "Job" {
            validate::job_default_selector(&mut obj, &uid);
        }
        // As in Kubernetes, a namespace holds the "kubernetes" finalizer so
        // deleting it first empties it (the garbage collector does that).
        if kind.kind == "Namespace" && obj["spec"]["finalizers"].is_null() {
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
        }
        Ok((kind, obj))
    }

    async fn create_inner(&self, req: pb::CreateRequest) -> std::result::Result<Written, ApiError> {
        let (kind, obj) = self.prepare_create(&req.resource, parse_object(&req.object)?)?;
        if req.dry_run {
            return Ok(Written::unwritten(obj, self.replica.store.revision()));
        }
        let applied = self
            .replica
            .propose(Command::Txn(Txn {
                now: crate::clock::now_rfc3339(),
                ops: vec![Op::Create {
                    resource: kind.group_resource(),
                    object: obj,
                }],
            }))
            .await?;
        Ok(applied.into_first())
    }

    /// Builds the Update op for `new`: validation against the stored object
    /// and the resourceVersion precondition. Returns the op and whether the
    /// precondition was the caller's own (not retried on conflict).
    pub(crate) fn prepare_update(
        &self,
        resource: &str,
        raw: Value,
        status: bool,
    ) -> std::result::Result<(Op, bool), ApiError> {
        let kind = kind_of_object(resource, &raw)?;
        if status && !kind.has_status {
            return Err(ApiError::new(
                Reason::NotFound,
                format!("{} has no status subresource", kind.group_resource()),
            ));
        }
        let ns = namespace_for(kind, meta_str(&raw, "namespace"));
        let name = meta_str(&raw, "name").to_string();
        if name.is_empty() {
            return Err(ApiError::invalid(
                kind.kind,
                "",
                "metadata.name",
                "Required value: name is required",
            ));
        }
        let key = object_key(&kind.group_resource(), &ns, &name);
        let old = self
            .replica
            .store
            .get(&key)
            .map_err(|e| ApiError::new(Reason::InternalError, e))?
            .ok_or_else(|| ApiError::not_found(&kind.group_resource(), &name))?;
        let caller_rv = resource_version(&raw);
        if !meta_str(&raw, "resourceVersion").is_empty() && caller_rv.is_none() {
            return Err(ApiError::new(
                Reason::BadRequest,
                "metadata.resourceVersion: not a valid resource version",
            ));
        }
        let mut candidate = raw;
        if let Some(m) = candidate.get_mut("metadata").and_then(Value::as_object_mut) {
            if ns.is_empty() {
                m.remove("namespace");
            } else {
                m.insert("namespace".into(), json!(ns));
            }
        }
        let validated = if status {
            let mut merged = old.clone();
            if let Some(m) = merged.as_object_mut() {
                match candidate.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            validate::validate_update(kind, &old, merged)?
        } else {
            validate::validate_update(kind, &old, candidate)?
        };
        let own = caller_rv.is_some();
        Ok((
            Op::Update {
                resource: kind.group_resource(),
                object: validated,
                expected_rv: caller_rv.or_else(|| resource_version(&old)),
                status,
            },
            own,
        ))
    }

    async fn update_inner(&self, req: pb::UpdateRequest) -> std::result::Result<Written, ApiError> {
        // An update without a resourceVersion is validated against the
        // object as stored now; if someone else writes in between, validate
        // again rather than lose their write or skip immutability checks.
        let raw = parse_object(&req.object)?;
        for _ in 0..8 {
            let (op, own_precondition) = self.prepare_update(&req.resource, raw.clone(), req.status)?;
            if req.dry_run {
                if let Op::Update { object, .. } = op {
                    return Ok(Written::unwritten(object, self.replica.store.revision()));
                }
            }
            match self
                .replica
                .propose(Command::Txn(Txn {
                    now: crate::clock::now_rfc3339(),
                    ops: vec![op],
                }))
                .await
            {
                Ok(a) => return Ok(a.into_first()),
                Err(e) if e.reason == Reason::Conflict && !own_precondition => {
                    self.replica.read_barrier().await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::new(
            Reason::Conflict,
            "the object is being modified too often; try again",
        ))
    }

    fn delete_op(&self, req: &pb::DeleteRequest) -> std::result::Result<Op, ApiError> {
        let r = req
            .r#ref
            .as_ref()
            .ok_or_else(|| ApiError::new(Reason::BadRequest, "ref is required"))?;
        let kind = kind_for(&r.resource)?;
        let rv = if req.precondition_resource_version.is_empty() {
            None
        } else {
            Some(req.precondition_resource_version.parse().map_err(|_| {
                ApiError::new(
                    Reason::BadRequest,
                    "preconditions.resourceVersion: not a valid resource version",
                )
            })?)
        };
        let propagation = match req.propagation_policy.as_str() {
            "" => None,
            p @ ("Background" | "Foreground" | "Orphan") => Some(p.to_string()),
            other => {
                return Err(ApiError::new(
                    Reason::BadRequest,
                    format!("propagationPolicy: Unsupported value: \"{other}\": supported values: \"Background\", \"Foreground\", \"Orphan\""),
                ))
            }
        };
        Ok(Op::Delete {
            resource: kind.group_resource(),
            namespace: namespace_for(kind, &r.namespace),
            name: r.name.clone(),
            expected_rv: rv,
            expected_uid: Some(req.precondition_uid.clone()).filter(|s| !s.is_empty()),
            propagation,
            grace_period_seconds: req.grace_period_seconds,
        })
    }

    async fn barrier(&self, consistency: i32) -> std::result::Result<(), ApiError> {
        if consistency == pb::Consistency::Local as i32 {
            Ok(())
        } else {
            self.replica.read_barrier().await
        }
    }
}

fn written_response(written: Written) -> Response<pb::ObjectResponse> {
    let revision = written.revision;
    Response::new(pb::ObjectResponse {
        object: written.into_json(),
        revision,
    })
}

fn obj_response(obj: &Value, revision: u64) -> Response<pb::ObjectResponse> {
    Response::new(pb::ObjectResponse {
        object: serde_json::to_vec(obj).unwrap_or_default(),
        revision,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent>> + Send>>;

#[tonic::async_trait]
impl Api for ApiSvc {
    async fn create(&self, req: Request<pb::CreateRequest>) -> Result<Response<pb::ObjectResponse>> {
        auth::require_api(&req)?;
        let written = self.create_inner(req.into_inner()).await.map_err(err)?;
        Ok(written_response(written))
    }

    async fn update(&self, req: Request<pb::UpdateRequest>) -> Result<Response<pb::ObjectResponse>> {
        auth::require_api(&req)?;
        let written = self.update_inner(req.into_inner()).await.map_err(err)?;
        Ok(written_response(written))
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::ObjectResponse>> {
        auth::require_api(&req)?;
        let req = req.into_inner();
        let op = self.delete_op(&req).map_err(err)?;
        if req.dry_run {
            if let Op::Delete {
                resource,
                namespace,
                name,
                ..
            } = &op
            {
                let obj = self
                    .replica
                    .store
                    .get(&object_key(resource, namespace, name))
                    .map_err(|e| err(ApiError::new(Reason::InternalError, e)))?
                    .ok_or_else(|| err(ApiError::not_found(resource, name)))?;
                return Ok(obj_response(&obj, self.replica.store.revision()));
            }
        }
        let a = self
            .replica
            .propose(Command::Txn(Txn {
                now: crate::clock::now_rfc3339(),
                ops: vec![op],
            }))
            .await
            .map_err(err)?;
        Ok(written_response(a.into_first()))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::ObjectResponse>> {
        auth::require_api(&req)?;
        let req = req.into_inner();
        let r = req
            .r#ref
            .ok_or_else(|| Status::invalid_argument("ref is required"))?;
        let kind = kind_for(&r.resource).map_err(err)?;
        self.barrier(req.consistency).await.map_err(err)?;
        let resource = kind.group_resource();
        let ns = namespace_for(kind, &r.namespace);
        let obj = self
            .replica
            .store
            .get(&object_key(&resource, &ns, &r.name))
            .map_err(|e| err(ApiError::new(Reason::InternalError, e)))?
            .ok_or_else(|| err(ApiError::not_found(&resource, &r.name)))?;
        Ok(obj_response(&obj, self.replica.store.revision()))
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>> {
        auth::require_api(&req)?;
        let req = req.into_inner();
        let kind = kind_for(&req.resource).map_err(err)?;
        let filter = WatchFilter::new(
            Some(kind),
            &req.namespace,
            &req.label_selector,
            &req.field_selector,
        )
        .map_err(err)?;
        self.barrier(req.consistency).await.map_err(err)?;
        let ns = (kind.namespaced && !req.namespace.is_empty()).then_some(req.namespace.as_str());
        let (items, revision) = self
            .replica
            .store
            .list_prefix(&resource_prefix(&kind.group_resource(), ns))
            .map_err(|e| err(e.into()))?;
        let items = items
            .iter()
            .filter(|o| filter.matches_object(o))
            .map(|o| serde_json::to_vec(o).unwrap_or_default())
            .collect();
        Ok(Response::new(pb::ListResponse { items, revision }))
    }

    type WatchStream = WatchStream;
    type PodLogsStream = super::streams::LogsStream;
    type PodExecStream = super::streams::ExecStream;

    async fn pod_logs(&self, req: Request<pb::LogsRequest>) -> Result<Response<Self::PodLogsStream>> {
        auth::require_api(&req)?;
        self.barrier(pb::Consistency::Linearizable as i32)
            .await
            .map_err(err)?;
        Ok(Response::new(
            super::streams::logs(&self.replica, req.into_inner()).await?,
        ))
    }

    async fn pod_exec(
        &self,
        req: Request<tonic::Streaming<pb::ExecInput>>,
    ) -> Result<Response<Self::PodExecStream>> {
        auth::require_api(&req)?;
        self.barrier(pb::Consistency::Linearizable as i32)
            .await
            .map_err(err)?;
        Ok(Response::new(
            super::streams::exec(&self.replica, req.into_inner()).await?,
        ))
    }

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>> {
        auth::require_api(&req)?;
        let req = req.into_inner();
        let kind = if req.resource.is_empty() {
            None
        } else {
            Some(kind_for(&req.resource).map_err(err)?)
        };
        let filter =
            WatchFilter::new(kind, &req.namespace, &req.label_selector, &req.field_selector).map_err(err)?;
        let store = self.replica.store.clone();
        // Subscribing before reading the history closes the window in
        // which a write could be neither in the history read nor in the
        // live feed.
        let live = store.subscribe();
        let since = if req.since_revision == 0 {
            store.revision()
        } else {
            req.since_revision
        };
        match store.compacted() {
            Ok(c) if since < c => {
                return Err(err(ApiError::new(
                    Reason::Gone,
                    format!("too old resource version: {since} ({c})"),
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(err(ApiError::new(Reason::InternalError, e.to_string()))),
        }
        let interval = if req.bookmark_interval_ms == 0 {
            std::time::Duration::from_secs(5)
        } else {
            std::time::Duration::from_millis(req.bookmark_interval_ms as u64)
        };
        let stream = watch::serve(store, live, filter, since, interval, self.shutdown.clone());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>> {
        auth::require_api(&req)?;
        let req = req.into_inner();
        let mut ops = Vec::new();
        for (i, op) in req.ops.into_iter().enumerate() {
            let converted = match op.op {
                Some(pb::txn_op::Op::Create(c)) => {
                    let (kind, obj) = parse_object(&c.object)
                        .and_then(|raw| self.prepare_create(&c.resource, raw))
                        .map_err(err)?;
                    Op::Create {
                        resource: kind.group_resource(),
                        object: obj,
                    }
                }
                Some(pb::txn_op::Op::Update(u)) => {
                    parse_object(&u.object)
                        .and_then(|raw| self.prepare_update(&u.resource, raw, u.status))
                        .map_err(err)?
                        .0
                }
                Some(pb::txn_op::Op::Delete(d)) => self.delete_op(&d).map_err(err)?,
                Some(pb::txn_op::Op::CheckExists(r)) => {
                    let kind = kind_for(&r.resource).map_err(err)?;
                    Op::CheckExists {
                        resource: kind.group_resource(),
                        namespace: namespace_for(kind, &r.namespace),
                        name: r.name,
                        expected_rv: if op.check_resource_version.is_empty() {
                            None
                        } else {
                            Some(op.check_resource_version.parse().map_err(|_| {
                                Status::invalid_argument(format!(
                                    "ops[{i}].checkResourceVersion: not a number"
                                ))
                            })?)
                        },
                    }
                }
                Some(pb::txn_op::Op::CheckAbsent(r)) => {
                    let kind = kind_for(&r.resource).map_err(err)?;
                    Op::CheckAbsent {
                        resource: kind.group_resource(),
                        namespace: namespace_for(kind, &r.namespace),
                        name: r.name,
                    }
                }
                None => return Err(Status::invalid_argument(format!("ops[{i}] is empty"))),
            };
            ops.push(converted);
        }
        let a = self
            .replica
            .propose(Command::Txn(Txn {
                now: crate::clock::now_rfc3339(),
                ops,
            }))
            .await
            .map_err(err)?;
        Ok(Response::new(pb::TxnResponse {
            revision: a.revision,
            objects: a
                .objects
                .iter()
                .map(|o| {
                    if o.is_null() {
                        vec![]
                    } else {
                        serde_json::to_vec(o).unwrap_or_default()
                    }
                })
                .collect(),
        }))
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Compacted { .. } => ApiError::new(Reason::Gone, e.to_string()),
            ReadError::Storage(s) => ApiError::new(Reason::InternalError, s),
        }
    }
}
