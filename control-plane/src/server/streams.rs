//! Container streams (logs, exec) proxied to the node agent that runs the
//! Pod. Clients only ever talk to the control plane; the control plane
//! reaches agents over mutual TLS with its replica certificate, and agents
//! accept no one else.

use crate::replica::Replica;
use crate::store::objects::{object_key, ObjectRead};
use rk_api::{ApiError, Reason};
use rk_client::error::to_status;
use rk_proto::v1 as pb;
use rk_proto::v1::node_streams_client::NodeStreamsClient;
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};

pub type LogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogChunk, Status>> + Send>>;
pub type ExecStream = Pin<Box<dyn Stream<Item = Result<pb::ExecOutput, Status>> + Send>>;

fn get(replica: &Replica, resource: &str, ns: &str, name: &str) -> Result<Value, Status> {
    replica
        .store
        .get(&object_key(resource, ns, name))
        .map_err(|e| to_status(&ApiError::new(Reason::InternalError, e)))?
        .ok_or_else(|| to_status(&ApiError::not_found(resource, name)))
}

/// The container a request means: the named one (which must exist), or
/// the Pod's default (its `kubectl.kubernetes.io/default-container`
/// annotation, else its only container), as kubectl resolves it.
fn resolve_container(p: &Value, pod: &str, wanted: &str) -> Result<String, Status> {
    let names = |key: &str| -> Vec<String> {
        p["spec"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let app = names("containers");
    let init = names("initContainers");
    if !wanted.is_empty() {
        if app.iter().chain(init.iter()).any(|n| n == wanted) {
            return Ok(wanted.to_string());
        }
        return Err(to_status(&ApiError::new(
            Reason::BadRequest,
            format!("container {wanted} is not valid for pod {pod}"),
        )));
    }
    if let Some(d) = p["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str() {
        return Ok(d.to_string());
    }
    match app.as_slice() {
        [one] => Ok(one.clone()),
        many => Err(to_status(&ApiError::new(
            Reason::BadRequest,
            format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                many.join(" ")
            ),
        ))),
    }
}

/// The agent endpoint (`IP:PORT`) of the node running `namespace/pod`, and the Pod.
fn agent_for(replica: &Replica, namespace: &str, pod: &str) -> Result<(String, Value), Status> {
    let ns = if namespace.is_empty() {
        "default"
    } else {
        namespace
    };
    let p = get(replica, "pods", ns, pod)?;
    let node = p["spec"]["nodeName"].as_str().unwrap_or("");
    if node.is_empty() {
        return Err(to_status(&ApiError::new(
            Reason::BadRequest,
            format!("pod {pod} is not scheduled to a node yet"),
        )));
    }
    let n = get(replica, "nodes", "", node)?;
    let ip = n["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .ok_or_else(|| Status::unavailable(format!("node {node} has no InternalIP address")))?;
    let port = n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .ok_or_else(|| Status::unavailable(format!("node {node} publishes no agent endpoint")))?;
    let addr = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    Ok((addr, p))
}

fn agent_client(
    replica: &Replica,
    addr: &str,
) -> Result<NodeStreamsClient<tonic::transport::Channel>, Status> {
    let ch = replica
        .net
        .channel(addr)
        .map_err(|e| Status::unavailable(format!("node agent {addr}: {e}")))?;
    Ok(NodeStreamsClient::new(ch))
}

pub async fn logs(replica: &Arc<Replica>, mut req: pb::LogsRequest) -> Result<LogsStream, Status> {
    let (addr, pod) = agent_for(replica, &req.namespace, &req.pod)?;
    req.container = resolve_container(&pod, &req.pod, &req.container)?;
    if req.namespace.is_empty() {
        req.namespace = "default".into();
    }
    let mut client = agent_client(replica, &addr)?;
    let stream = client
        .logs(req)
        .await
        .map_err(|s| relay_error(&addr, s))?
        .into_inner();
    Ok(Box::pin(stream))
}

pub async fn exec(replica: &Arc<Replica>, mut input: Streaming<pb::ExecInput>) -> Result<ExecStream, Status> {
    let mut first = input
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("an exec stream must start with ExecStart"))?;
    let Some(pb::exec_input::Input::Start(start)) = &mut first.input else {
        return Err(Status::invalid_argument(
            "an exec stream must start with ExecStart",
        ));
    };
    let (addr, pod) = agent_for(replica, &start.namespace, &start.pod)?;
    start.container = resolve_container(&pod, &start.pod, &start.container)?;
    if start.namespace.is_empty() {
        start.namespace = "default".into();
    }
    let mut client = agent_client(replica, &addr)?;
    // The client's stream goes on to the agent unchanged, first message
    // included; a broken client stream simply ends the agent's input.
    let rest = input.map_while(|m| m.ok());
    let outbound = tokio_stream::once(first).chain(rest);
    let stream = client
        .exec(outbound)
        .await
        .map_err(|s| relay_error(&addr, s))?
        .into_inner();
    Ok(Box::pin(stream))
}

/// Errors from the agent keep their code (NotFound, InvalidArgument...);
/// transport failures say which node could not be reached.
fn relay_error(addr: &str, s: Status) -> Status {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => {
            Status::unavailable(format!("node agent {addr}: {}", s.message()))
        }
        _ => s,
    }
}
