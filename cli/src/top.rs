//! `rkctl top node|pod`: CPU and memory in use, as `kubectl top` prints them.
//!
//! The numbers come from the control plane's `Metrics` service, which asks
//! the node agents on each call (nothing is stored): CPU is the average
//! over the agent's last 10 s window, memory the working set at its end.
//! A node that does not answer is shown as `<unknown>`, as kubectl shows a
//! node metrics-server has nothing for; so is a Pod on such a node, or one
//! that started too recently to have a window.

use crate::error::{CliError, Result};
use crate::table::Table;
use crate::Ctx;
use rk_client::error::from_status;
use rk_client::ListParams;
use rk_proto::v1 as pb;
use rk_proto::v1::metrics_client::MetricsClient;
use serde_json::Value;
use std::time::Duration;

const UNKNOWN: &str = "<unknown>";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    Cpu,
    Memory,
}

#[derive(Debug, clap::Subcommand)]
pub enum TopCmd {
    /// CPU and memory of nodes, and the share of their allocatable.
    #[command(visible_alias = "nodes", alias = "no")]
    Node(TopNodeArgs),
    /// CPU and memory of Pods (the sum of their containers).
    #[command(visible_alias = "pods", alias = "po")]
    Pod(TopPodArgs),
}

#[derive(Debug, clap::Args)]
pub struct TopNodeArgs {
    /// Only this node.
    name: Option<String>,
    /// Label selector, e.g. disk=ssd.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    selector: Option<String>,
    /// Sort by usage, largest first.
    #[arg(long = "sort-by", value_name = "cpu|memory")]
    sort_by: Option<SortBy>,
    /// Print no header line.
    #[arg(long = "no-headers")]
    no_headers: bool,
}

#[derive(Debug, clap::Args)]
pub struct TopPodArgs {
    /// Only this Pod.
    name: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    all_namespaces: bool,
    /// Label selector, e.g. app=web.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    selector: Option<String>,
    /// One line per container.
    #[arg(long)]
    containers: bool,
    /// Sort by usage, largest first.
    #[arg(long = "sort-by", value_name = "cpu|memory")]
    sort_by: Option<SortBy>,
    /// Print no header line.
    #[arg(long = "no-headers")]
    no_headers: bool,
}

/// Nanocores as kubectl prints CPU: whole millicores, rounded up.
pub fn millicores(nano_cores: u64) -> u64 {
    nano_cores.div_ceil(1_000_000)
}

pub fn format_cpu(nano_cores: u64) -> String {
    format!("{}m", millicores(nano_cores))
}

/// Bytes as kubectl prints memory: whole MiB, rounded down.
pub fn format_memory(bytes: u64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

/// `used` as a share of `total`, truncated like kubectl's `int64(fraction)`;
/// unknown without a total.
pub fn format_percent(used: u64, total: u64) -> String {
    if total == 0 {
        return UNKNOWN.to_string();
    }
    format!("{}%", (used as u128 * 100 / total as u128))
}

/// What a node can give Pods: `status.allocatable` (else capacity) as
/// millicores and bytes.
pub fn allocatable(node: &Value) -> (u64, u64) {
    let q = |res: &str, parse: fn(&str) -> std::result::Result<i128, rk_api::quantity::QuantityError>| {
        ["allocatable", "capacity"]
            .iter()
            .find_map(|k| node["status"][k][res].as_str())
            .and_then(|s| parse(s).ok())
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0)
    };
    (
        q("cpu", rk_api::quantity::parse_milli),
        q("memory", rk_api::quantity::parse_value),
    )
}

/// One node's row source: its name, allocatable and usage (if known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub name: String,
    pub alloc_millicores: u64,
    pub alloc_bytes: u64,
    pub usage: Option<pb::Usage>,
}

/// Largest first; equal keys and unknowns keep name order, and nodes
/// without usage always come last (as kubectl prints them).
fn sort_key(usage: Option<&pb::Usage>, by: Option<SortBy>) -> (bool, std::cmp::Reverse<u64>) {
    let v = match (usage, by) {
        (Some(u), Some(SortBy::Cpu)) => u.cpu_nano_cores,
        (Some(u), Some(SortBy::Memory)) => u.memory_working_set_bytes,
        _ => 0,
    };
    (usage.is_none(), std::cmp::Reverse(v))
}

pub fn node_table(mut rows: Vec<NodeRow>, sort_by: Option<SortBy>) -> Table {
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows.sort_by_key(|r| sort_key(r.usage.as_ref(), sort_by));
    let headers = ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"];
    Table {
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows: rows
            .into_iter()
            .map(|r| match r.usage {
                Some(u) => vec![
                    r.name,
                    format_cpu(u.cpu_nano_cores),
                    format_percent(millicores(u.cpu_nano_cores), r.alloc_millicores),
                    format_memory(u.memory_working_set_bytes),
                    format_percent(u.memory_working_set_bytes, r.alloc_bytes),
                ],
                None => std::iter::once(r.name)
                    .chain(std::iter::repeat_n(UNKNOWN.to_string(), 4))
                    .collect(),
            })
            .collect(),
    }
}

/// A Pod's usage: the sum of its containers', as kubectl adds them up.
pub fn pod_usage(m: &pb::PodMetrics) -> Option<pb::Usage> {
    m.available.then(|| {
        m.containers
            .iter()
            .filter_map(|c| c.usage.as_ref())
            .fold(pb::Usage::default(), |acc, u| pb::Usage {
                cpu_nano_cores: acc.cpu_nano_cores + u.cpu_nano_cores,
                memory_working_set_bytes: acc.memory_working_set_bytes + u.memory_working_set_bytes,
            })
    })
}

fn usage_cells(u: Option<&pb::Usage>) -> [String; 2] {
    match u {
        Some(u) => [
            format_cpu(u.cpu_nano_cores),
            format_memory(u.memory_working_set_bytes),
        ],
        None => [UNKNOWN.to_string(), UNKNOWN.to_string()],
    }
}

pub fn pod_table(
    mut pods: Vec<pb::PodMetrics>,
    all_namespaces: bool,
    containers: bool,
    sort_by: Option<SortBy>,
) -> Table {
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut headers: Vec<&str> = Vec::new();
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    if containers {
        headers.extend(["POD", "NAME"]);
    } else {
        headers.push("NAME");
    }
    headers.extend(["CPU(cores)", "MEMORY(bytes)"]);
    // One line per Pod, or per container; each with the usage it sorts by.
    let mut lines: Vec<(Vec<String>, Option<pb::Usage>)> = Vec::new();
    for p in &pods {
        let mut lead = Vec::new();
        if all_namespaces {
            lead.push(p.namespace.clone());
        }
        lead.push(p.name.clone());
        if !containers {
            lines.push((lead, pod_usage(p)));
        } else if !p.available || p.containers.is_empty() {
            lead.push(UNKNOWN.to_string());
            lines.push((lead, None));
        } else {
            let mut cs = p.containers.clone();
            cs.sort_by(|a, b| a.name.cmp(&b.name));
            for c in cs {
                let mut l = lead.clone();
                l.push(c.name);
                lines.push((l, c.usage));
            }
        }
    }
    lines.sort_by_key(|(_, u)| sort_key(u.as_ref(), sort_by));
    Table {
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows: lines
            .into_iter()
            .map(|(mut cells, u)| {
                cells.extend(usage_cells(u.as_ref()));
                cells
            })
            .collect(),
    }
}

/// Calls the Metrics service on each replica in turn until one answers:
/// any replica can, from its own state.
async fn ask<T, F, Fut>(ctx: &mut Ctx<'_>, call: F) -> Result<T>
where
    F: Fn(MetricsClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let client = ctx.client()?;
    let mut last = tonic::Status::unavailable("the configuration lists no servers");
    for (_, ch) in client.channels_in_order() {
        // The server gives each node 3 s; this bounds a replica that hangs.
        match tokio::time::timeout(Duration::from_secs(10), call(MetricsClient::new(ch))).await {
            Ok(Ok(r)) => return Ok(r.into_inner()),
            Ok(Err(st)) if st.code() == tonic::Code::Unavailable => last = st,
            Ok(Err(st)) => return Err(from_status(&st).into()),
            Err(_) => last = tonic::Status::unavailable("the control plane did not answer within 10s"),
        }
    }
    Err(from_status(&last).into())
}

pub async fn run(ctx: &mut Ctx<'_>, cmd: TopCmd) -> Result<()> {
    match cmd {
        TopCmd::Node(a) => top_nodes(ctx, a).await,
        TopCmd::Pod(a) => top_pods(ctx, a).await,
    }
}

async fn top_nodes(ctx: &mut Ctx<'_>, a: TopNodeArgs) -> Result<()> {
    let client = ctx.client()?;
    if a.name.is_some() && a.selector.is_some() {
        return Err(CliError::local(
            "name cannot be provided when a selector is specified",
        ));
    }
    let nodes: Vec<Value> = match &a.name {
        Some(n) => vec![client.get("nodes", "", n).await?],
        None => {
            let params = ListParams {
                label_selector: a.selector.clone().unwrap_or_default(),
                ..Default::default()
            };
            client.list("nodes", &params).await?.0
        }
    };
    if nodes.is_empty() {
        ctx.eprint_line("No resources found");
        return Ok(());
    }
    let name = a.name.clone().unwrap_or_default();
    let metrics = ask(ctx, |mut m| {
        let name = name.clone();
        async move { m.node_metrics(pb::NodeMetricsRequest { name }).await }
    })
    .await?;
    let rows = nodes
        .iter()
        .map(|n| {
            let name = n["metadata"]["name"].as_str().unwrap_or("").to_string();
            let (alloc_millicores, alloc_bytes) = allocatable(n);
            let usage = metrics
                .items
                .iter()
                .find(|m| m.name == name && m.available)
                .and_then(|m| m.usage);
            NodeRow {
                name,
                alloc_millicores,
                alloc_bytes,
                usage,
            }
        })
        .collect();
    ctx.print(&node_table(rows, a.sort_by).render(!a.no_headers));
    Ok(())
}

async fn top_pods(ctx: &mut Ctx<'_>, a: TopPodArgs) -> Result<()> {
    ctx.client()?;
    if a.name.is_some() && a.selector.is_some() {
        return Err(CliError::local(
            "name cannot be provided when a selector is specified",
        ));
    }
    let namespace = if a.all_namespaces && a.name.is_none() {
        String::new()
    } else {
        ctx.namespace()
    };
    let req = pb::PodMetricsRequest {
        namespace: namespace.clone(),
        name: a.name.clone().unwrap_or_default(),
        label_selector: a.selector.clone().unwrap_or_default(),
    };
    let metrics = ask(ctx, |mut m| {
        let req = req.clone();
        async move { m.pod_metrics(req).await }
    })
    .await?;
    if let Some(name) = &a.name {
        match metrics.items.first() {
            Some(m) if m.available => {}
            Some(m) => {
                return Err(CliError::local(format!(
                    "metrics not available for pod {namespace}/{name}: {}",
                    m.error
                )))
            }
            None => {
                return Err(CliError::local(format!(
                    "metrics not available for pod {namespace}/{name}: it is not running"
                )))
            }
        }
    }
    if metrics.items.is_empty() {
        if namespace.is_empty() {
            ctx.eprint_line("No resources found");
        } else {
            ctx.eprint_line(&format!("No resources found in {namespace} namespace."));
        }
        return Ok(());
    }
    let all = a.all_namespaces && a.name.is_none();
    ctx.print(&pod_table(metrics.items, all, a.containers, a.sort_by).render(!a.no_headers));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usage(cpu: u64, mem: u64) -> Option<pb::Usage> {
        Some(pb::Usage {
            cpu_nano_cores: cpu,
            memory_working_set_bytes: mem,
        })
    }

    #[test]
    fn formats_like_kubectl() {
        assert_eq!(format_cpu(250_000_000), "250m");
        // Any CPU at all shows as at least 1m: MilliValue rounds up.
        assert_eq!(format_cpu(1), "1m");
        assert_eq!(format_cpu(0), "0m");
        assert_eq!(format_cpu(1_500_000_001), "1501m");
        assert_eq!(format_memory(123 * 1024 * 1024 + 1000), "123Mi");
        assert_eq!(format_memory(1000), "0Mi");
        assert_eq!(format_percent(250, 2000), "12%");
        assert_eq!(format_percent(1999, 2000), "99%");
        assert_eq!(format_percent(5, 0), "<unknown>");
    }

    #[test]
    fn allocatable_prefers_allocatable_over_capacity() {
        let n = json!({"status": {"capacity": {"cpu": "4", "memory": "8Gi"},
                                  "allocatable": {"cpu": "3500m", "memory": "7Gi"}}});
        assert_eq!(allocatable(&n), (3500, 7 << 30));
        let n = json!({"status": {"capacity": {"cpu": "2", "memory": "1024Ki"}}});
        assert_eq!(allocatable(&n), (2000, 1 << 20));
        assert_eq!(allocatable(&json!({})), (0, 0));
    }

    #[test]
    fn node_table_with_unknown_nodes_last() {
        let rows = vec![
            NodeRow {
                name: "b".into(),
                alloc_millicores: 2000,
                alloc_bytes: 4 << 30,
                usage: usage(250_000_000, 1 << 30),
            },
            NodeRow {
                name: "a-dead".into(),
                alloc_millicores: 2000,
                alloc_bytes: 4 << 30,
                usage: None,
            },
            NodeRow {
                name: "c".into(),
                alloc_millicores: 1000,
                alloc_bytes: 1 << 30,
                usage: usage(900_000_000, 100 << 20),
            },
        ];
        let t = node_table(rows.clone(), None);
        assert_eq!(
            t.render(true),
            "NAME     CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%\n\
             b        250m         12%         1024Mi          25%\n\
             c        900m         90%         100Mi           9%\n\
             a-dead   <unknown>    <unknown>   <unknown>       <unknown>\n"
        );
        let names = |t: &Table| t.rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&node_table(rows.clone(), Some(SortBy::Cpu))),
            ["c", "b", "a-dead"]
        );
        assert_eq!(
            names(&node_table(rows, Some(SortBy::Memory))),
            ["b", "c", "a-dead"]
        );
    }

    fn pod(ns: &str, name: &str, containers: &[(&str, u64, u64)]) -> pb::PodMetrics {
        pb::PodMetrics {
            namespace: ns.into(),
            name: name.into(),
            available: true,
            containers: containers
                .iter()
                .map(|(n, c, m)| pb::ContainerStats {
                    name: n.to_string(),
                    usage: usage(*c, *m),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn pod_tables_sum_containers_and_split_them_on_request() {
        let pods = vec![
            pod(
                "default",
                "web",
                &[("nginx", 2_000_000, 30 << 20), ("sidecar", 500_000, 2 << 20)],
            ),
            pod("kube", "dns", &[("dns", 10_000_000, 10 << 20)]),
            pb::PodMetrics {
                namespace: "default".into(),
                name: "fresh".into(),
                error: "no usage window for the Pod yet".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            pod_table(pods.clone(), false, false, None).render(true),
            "NAME    CPU(cores)   MEMORY(bytes)\n\
             web     3m           32Mi\n\
             dns     10m          10Mi\n\
             fresh   <unknown>    <unknown>\n"
        );
        assert_eq!(
            pod_table(pods.clone(), true, true, Some(SortBy::Memory)).render(false),
            "default     web     nginx       2m           30Mi\n\
             kube        dns     dns         10m          10Mi\n\
             default     web     sidecar     1m           2Mi\n\
             default     fresh   <unknown>   <unknown>    <unknown>\n"
        );
        let t = pod_table(pods, false, false, Some(SortBy::Cpu));
        let names: Vec<&str> = t.rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(names, ["dns", "web", "fresh"]);
    }
}
