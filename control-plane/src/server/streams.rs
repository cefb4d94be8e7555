//! Container streams (logs, exec) proxied to the node agent that runs the
//! Pod, and the `Metrics` service (`rkctl top`), which gathers usage from
//! the agents on each call. Clients only ever talk to the control plane;
//! the control plane reaches agents over mutual TLS with its replica
//! certificate, and agents accept no one else.

use super::auth;
use crate::replica::Replica;
use crate::store::objects::{object_key, resource_prefix, ObjectRead};
use rk_api::selector::{labels_of, LabelSelector};
use rk_api::{ApiError, Reason};
use rk_client::error::to_status;
use rk_proto::v1 as pb;
use rk_proto::v1::metrics_server::Metrics;
use rk_proto::v1::node_streams_client::NodeStreamsClient;
use serde_json::Value;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

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
    Ok((agent_addr(&n)?, p))
}

/// The agent endpoint (`IP:PORT`) a Node publishes: its InternalIP and the
/// port in `status.daemonEndpoints.kubeletEndpoint`.
fn agent_addr(n: &Value) -> Result<String, Status> {
    let node = n["metadata"]["name"].as_str().unwrap_or("");
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
    Ok(if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    })
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

/// How long one node may take to answer a usage request. Nodes are asked
/// in parallel, so a dead or partitioned node costs `top` this much once,
/// and the others are still reported.
const NODE_STATS_TIMEOUT: Duration = Duration::from_secs(3);

/// `rkctl top`: usage fetched live from the agents, never stored (as
/// metrics-server serves metrics.k8s.io). Nodes and Pods are read from this
/// replica's applied state without a read barrier: usage is a sample
/// anyway, and a stale list can only miss a just-registered node or Pod.
pub struct MetricsSvc {
    pub replica: Arc<Replica>,
}

fn list(replica: &Replica, resource: &str, ns: Option<&str>) -> Result<Vec<Value>, Status> {
    replica
        .store
        .list_prefix(&resource_prefix(resource, ns))
        .map(|(items, _)| items)
        .map_err(|e| to_status(&ApiError::new(Reason::InternalError, e.to_string())))
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

/// Asks one node's agent for its latest usage window, within the timeout.
async fn node_stats(replica: &Replica, node: &Value) -> Result<pb::NodeStats, String> {
    let addr = agent_addr(node).map_err(|s| s.message().to_string())?;
    let mut client = agent_client(replica, &addr).map_err(|s| s.message().to_string())?;
    match tokio::time::timeout(NODE_STATS_TIMEOUT, client.stats(pb::StatsRequest {})).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(relay_error(&addr, s).message().to_string()),
        Err(_) => Err(format!(
            "node agent {addr} did not answer within {}s",
            NODE_STATS_TIMEOUT.as_secs()
        )),
    }
}

/// Every named node's answer, asked concurrently.
async fn stats_of(replica: &Replica, nodes: &[Value]) -> BTreeMap<String, Result<pb::NodeStats, String>> {
    let answers = futures::future::join_all(nodes.iter().map(|n| node_stats(replica, n))).await;
    nodes
        .iter()
        .map(|n| name_of(n).to_string())
        .zip(answers)
        .collect()
}

/// Whether a Pod can have usage: bound to a node and not finished.
fn may_run(p: &Value) -> bool {
    let node = p["spec"]["nodeName"].as_str().unwrap_or("");
    let phase = p["status"]["phase"].as_str().unwrap_or("");
    !node.is_empty() && phase != "Succeeded" && phase != "Failed"
}

#[tonic::async_trait]
impl Metrics for MetricsSvc {
    async fn node_metrics(
        &self,
        req: Request<pb::NodeMetricsRequest>,
    ) -> Result<Response<pb::NodeMetricsList>, Status> {
        auth::require_api(&req)?;
        let name = req.into_inner().name;
        let nodes = if name.is_empty() {
            list(&self.replica, "nodes", None)?
        } else {
            vec![get(&self.replica, "nodes", "", &name)?]
        };
        let mut stats = stats_of(&self.replica, &nodes).await;
        let items = nodes
            .iter()
            .map(|n| {
                let name = name_of(n).to_string();
                let answer = stats
                    .remove(&name)
                    .unwrap_or_else(|| Err(format!("node {name} was not asked")));
                match answer {
                    Ok(s) => pb::NodeMetrics {
                        name,
                        available: true,
                        error: String::new(),
                        usage: s.usage,
                        timestamp_ms: s.timestamp_ms,
                        window_ms: s.window_ms,
                    },
                    Err(error) => pb::NodeMetrics {
                        name,
                        error,
                        ..Default::default()
                    },
                }
            })
            .collect();
        Ok(Response::new(pb::NodeMetricsList { items }))
    }

    async fn pod_metrics(
        &self,
        req: Request<pb::PodMetricsRequest>,
    ) -> Result<Response<pb::PodMetricsList>, Status> {
        auth::require_api(&req)?;
        let r = req.into_inner();
        let selector = LabelSelector::parse(&r.label_selector).map_err(|e| to_status(&e))?;
        let ns = (!r.namespace.is_empty()).then_some(r.namespace.as_str());
        let pods: Vec<Value> = if r.name.is_empty() {
            list(&self.replica, "pods", ns)?
                .into_iter()
                .filter(|p| selector.matches(&labels_of(p)))
                .collect()
        } else {
            vec![get(&self.replica, "pods", ns.unwrap_or("default"), &r.name)?]
        };
        let pods: Vec<Value> = pods.into_iter().filter(may_run).collect();
        let mut node_names: Vec<&str> = pods
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str())
            .collect();
        node_names.sort_unstable();
        node_names.dedup();
        let mut nodes = Vec::new();
        let mut stats = BTreeMap::new();
        for n in node_names {
            match get(&self.replica, "nodes", "", n) {
                Ok(v) => nodes.push(v),
                Err(s) => {
                    stats.insert(n.to_string(), Err(s.message().to_string()));
                }
            }
        }
        stats.extend(stats_of(&self.replica, &nodes).await);
        let items = pods
            .iter()
            .map(|p| {
                let node = p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
                let mut m = pb::PodMetrics {
                    namespace: p["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                    name: name_of(p).to_string(),
                    node: node.clone(),
                    ..Default::default()
                };
                let uid = p["metadata"]["uid"].as_str().unwrap_or("");
                match stats.get(&node) {
                    Some(Ok(s)) => match s.pods.iter().find(|ps| ps.uid == uid) {
                        Some(ps) => {
                            m.available = true;
                            m.containers = ps.containers.clone();
                            m.timestamp_ms = s.timestamp_ms;
                            m.window_ms = s.window_ms;
                        }
                        None => m.error = "no usage window for the Pod yet".into(),
                    },
                    Some(Err(e)) => m.error = e.clone(),
                    None => m.error = format!("node {node} was not asked"),
                }
                m
            })
            .collect();
        Ok(Response::new(pb::PodMetricsList { items }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_address_from_the_node_status() {
        let node = |ip: &str| {
            json!({"metadata": {"name": "n1"}, "status": {
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": ip}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}})
        };
        assert_eq!(agent_addr(&node("10.0.0.5")).ok(), Some("10.0.0.5:10250".into()));
        assert_eq!(agent_addr(&node("fd00::5")).ok(), Some("[fd00::5]:10250".into()));
        let err = agent_addr(&json!({"metadata": {"name": "n2"}})).expect_err("no address");
        assert_eq!(err.message(), "node n2 has no InternalIP address");
    }

    #[test]
    fn only_bound_unfinished_pods_can_have_usage() {
        let pod = |node: &str, phase: &str| json!({"spec": {"nodeName": node}, "status": {"phase": phase}});
        assert!(may_run(&pod("n1", "Running")));
        assert!(may_run(&pod("n1", "Pending")));
        assert!(!may_run(&pod("", "Pending")));
        assert!(!may_run(&pod("n1", "Succeeded")));
        assert!(!may_run(&pod("n1", "Failed")));
    }
}
