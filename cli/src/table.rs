//! kubectl-style tables for `rkctl get`.
//!
//! Columns are laid out like kubectl's tab writer: every column but the last
//! is as wide as its longest cell plus three spaces (at least six), headers
//! are upper case. Rendering takes `now` as a parameter so output is
//! reproducible in tests.

use crate::args::kind_ref;
use crate::time::{age, human_duration_millis, timestamp, Millis};
use rk_api::resources::ResourceKind;
use serde_json::Value;

/// Options that change a table's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableOpts {
    /// `-o wide`: extra columns.
    pub wide: bool,
    /// `-A`: a leading NAMESPACE column (namespaced kinds only).
    pub all_namespaces: bool,
    /// Several kinds in one command: names are printed as `kind/name`.
    pub kind_prefix: bool,
}

/// A table: header cells and rows of cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

const MIN_WIDTH: usize = 6;
const PADDING: usize = 3;

fn width(s: &str) -> usize {
    s.chars().count()
}

impl Table {
    /// Column widths as the tab writer computes them (for all but the last
    /// column; the last is never padded).
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![0usize; self.headers.len()];
        for row in std::iter::once(&self.headers).chain(self.rows.iter()) {
            for (i, c) in row.iter().enumerate() {
                if i < w.len() {
                    w[i] = w[i].max(width(c));
                }
            }
        }
        w.into_iter().map(|m| (m + PADDING).max(MIN_WIDTH)).collect()
    }

    /// The whole table, optionally with its header line.
    pub fn render(&self, header: bool) -> String {
        let widths = self.widths();
        let mut out = String::new();
        if header {
            out.push_str(&render_row(&self.headers, &widths));
        }
        for r in &self.rows {
            out.push_str(&render_row(r, &widths));
        }
        out
    }
}

/// One line of a table, with a trailing newline. Cells wider than the
/// given widths push the following columns right.
pub fn render_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, c) in cells.iter().enumerate() {
        line.push_str(c);
        if i + 1 < cells.len() {
            let w = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .max(width(c) + PADDING)
                .max(MIN_WIDTH);
            line.extend(std::iter::repeat_n(' ', w - width(c)));
        }
    }
    line.push('\n');
    line
}

/// The column headers for a kind.
pub fn headers(kind: &ResourceKind, opts: TableOpts) -> Vec<String> {
    let mut h: Vec<&str> = match kind.kind {
        "Pod" => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "Deployment" => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "ReplicaSet" => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "DaemonSet" => vec![
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ],
        "Job" => vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "CronJob" => vec![
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
        "Node" => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "Namespace" => vec!["NAME", "STATUS", "AGE"],
        "ConfigMap" => vec!["NAME", "DATA", "AGE"],
        "Secret" => vec!["NAME", "TYPE", "DATA", "AGE"],
        "Event" => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "Lease" => vec!["NAME", "HOLDER", "AGE"],
        "ControllerRevision" => vec!["NAME", "CONTROLLER", "REVISION", "AGE"],
        _ => vec!["NAME", "AGE"],
    };
    if opts.wide {
        match kind.kind {
            "Pod" => h.extend(["IP", "NODE"]),
            "Deployment" | "ReplicaSet" | "DaemonSet" | "Job" | "CronJob" => {
                h.extend(["CONTAINERS", "IMAGES", "SELECTOR"])
            }
            "Node" => h.extend([
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME",
            ]),
            _ => {}
        }
    }
    let mut h: Vec<String> = h.into_iter().map(str::to_string).collect();
    if opts.all_namespaces && kind.namespaced {
        h.insert(0, "NAMESPACE".into());
    }
    h
}

/// Builds the table of a list of objects of one kind.
pub fn build(kind: &ResourceKind, objs: &[Value], now: Millis, opts: TableOpts) -> Table {
    Table {
        headers: headers(kind, opts),
        rows: objs.iter().map(|o| row(kind, o, now, opts)).collect(),
    }
}

pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return &Value::Null,
        }
    }
    cur
}

pub(crate) fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

pub(crate) fn int(v: &Value, path: &[&str]) -> i64 {
    let x = at(v, path);
    x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)).unwrap_or(0)
}

pub(crate) fn int_or(v: &Value, path: &[&str], default: i64) -> i64 {
    if at(v, path).is_null() {
        default
    } else {
        int(v, path)
    }
}

pub(crate) fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn count_keys(v: &Value, path: &[&str]) -> usize {
    at(v, path).as_object().map(|m| m.len()).unwrap_or(0)
}

pub(crate) fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

/// One table row for an object.
pub fn row(kind: &ResourceKind, o: &Value, now: Millis, opts: TableOpts) -> Vec<String> {
    let mut name = s(o, &["metadata", "name"]).to_string();
    if opts.kind_prefix {
        name = format!("{}/{}", kind_ref(kind), name);
    }
    let created = age(at(o, &["metadata", "creationTimestamp"]), now);
    let mut r: Vec<String> = match kind.kind {
        "Pod" => pod_row(o, name, created, now, opts.wide),
        "Deployment" => vec![
            name,
            format!(
                "{}/{}",
                int(o, &["status", "readyReplicas"]),
                int_or(o, &["spec", "replicas"], 1)
            ),
            int(o, &["status", "updatedReplicas"]).to_string(),
            int(o, &["status", "availableReplicas"]).to_string(),
            created,
        ],
        "ReplicaSet" => vec![
            name,
            int_or(o, &["spec", "replicas"], 1).to_string(),
            int(o, &["status", "replicas"]).to_string(),
            int(o, &["status", "readyReplicas"]).to_string(),
            created,
        ],
        "DaemonSet" => vec![
            name,
            int(o, &["status", "desiredNumberScheduled"]).to_string(),
            int(o, &["status", "currentNumberScheduled"]).to_string(),
            int(o, &["status", "numberReady"]).to_string(),
            int(o, &["status", "updatedNumberScheduled"]).to_string(),
            int(o, &["status", "numberAvailable"]).to_string(),
            or_none(&key_values(at(o, &["spec", "template", "spec", "nodeSelector"]))),
            created,
        ],
        "Job" => job_row(o, name, created, now),
        "CronJob" => vec![
            name,
            s(o, &["spec", "schedule"]).to_string(),
            or_none(s(o, &["spec", "timeZone"])),
            if at(o, &["spec", "suspend"]).as_bool().unwrap_or(false) {
                "True".into()
            } else {
                "False".into()
            },
            arr(o, &["status", "active"]).len().to_string(),
            match timestamp(at(o, &["status", "lastScheduleTime"])) {
                Some(t) => human_duration_millis(now - t),
                None => "<none>".into(),
            },
            created,
        ],
        "Node" => vec![
            name,
            node_status(o),
            node_roles(o),
            created,
            s(o, &["status", "nodeInfo", "kubeletVersion"]).to_string(),
        ],
        "Namespace" => vec![
            name,
            match s(o, &["status", "phase"]) {
                "" => "Active".to_string(),
                p => p.to_string(),
            },
            created,
        ],
        "ConfigMap" => vec![
            name,
            (count_keys(o, &["data"]) + count_keys(o, &["binaryData"])).to_string(),
            created,
        ],
        "Secret" => vec![
            name,
            match s(o, &["type"]) {
                "" => "Opaque".to_string(),
                t => t.to_string(),
            },
            (count_keys(o, &["data"]) + count_keys(o, &["stringData"])).to_string(),
            created,
        ],
        "Event" => event_row(o, now),
        "Lease" => vec![name, s(o, &["spec", "holderIdentity"]).to_string(), created],
        "ControllerRevision" => vec![name, controller_of(o), int(o, &["revision"]).to_string(), created],
        _ => vec![name, created],
    };
    if opts.wide {
        match kind.kind {
            "Deployment" | "ReplicaSet" | "DaemonSet" | "Job" => r.extend(workload_wide(
                at(o, &["spec", "template", "spec"]),
                at(o, &["spec", "selector"]),
            )),
            "CronJob" => r.extend(workload_wide(
                at(o, &["spec", "jobTemplate", "spec", "template", "spec"]),
                at(o, &["spec", "jobTemplate", "spec", "selector"]),
            )),
            "Node" => r.extend(node_wide(o)),
            _ => {}
        }
    }
    if opts.all_namespaces && kind.namespaced {
        r.insert(0, s(o, &["metadata", "namespace"]).to_string());
    }
    r
}

fn later(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn terminated_reason(t: &Value, prefix: &str) -> String {
    match t.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        Some(r) => format!("{prefix}{r}"),
        None => {
            let signal = int(t, &["signal"]);
            if signal != 0 {
                format!("{prefix}Signal:{signal}")
            } else {
                format!("{prefix}ExitCode:{}", int(t, &["exitCode"]))
            }
        }
    }
}

fn pod_row(o: &Value, name: String, created: String, now: Millis, wide: bool) -> Vec<String> {
    let statuses = arr(o, &["status", "containerStatuses"]);
    let total = arr(o, &["spec", "containers"]).len().max(statuses.len());
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool).unwrap_or(false))
        .count();
    let mut reason = match (s(o, &["status", "reason"]), s(o, &["status", "phase"])) {
        ("", "") => "Pending".to_string(),
        ("", p) => p.to_string(),
        (r, _) => r.to_string(),
    };
    let mut restarts = 0i64;
    let mut last_restart: Option<Millis> = None;

    // Init containers first: while one has not finished, it names the
    // pod's state.
    let inits = arr(o, &["status", "initContainerStatuses"]);
    let init_total = arr(o, &["spec", "initContainers"]).len().max(inits.len());
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        restarts += int(c, &["restartCount"]);
        last_restart = later(
            last_restart,
            timestamp(at(c, &["lastState", "terminated", "finishedAt"])),
        );
        let terminated = at(c, &["state", "terminated"]);
        let waiting_reason = s(c, &["state", "waiting", "reason"]);
        if terminated.is_object() && int(terminated, &["exitCode"]) == 0 {
            continue;
        }
        if s(c, &["restartPolicy"]) == "Always" && c.get("started").and_then(Value::as_bool) == Some(true) {
            // A running sidecar.
            continue;
        }
        initializing = true;
        reason = if terminated.is_object() {
            terminated_reason(terminated, "Init:")
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{init_total}")
        };
        break;
    }

    if !initializing {
        restarts = 0;
        let mut has_running = false;
        for c in statuses.iter().rev() {
            restarts += int(c, &["restartCount"]);
            last_restart = later(
                last_restart,
                timestamp(at(c, &["lastState", "terminated", "finishedAt"])),
            );
            let waiting = s(c, &["state", "waiting", "reason"]);
            let terminated = at(c, &["state", "terminated"]);
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if terminated.is_object() {
                reason = terminated_reason(terminated, "");
            } else if c.get("ready").and_then(Value::as_bool).unwrap_or(false)
                && at(c, &["state", "running"]).is_object()
            {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = arr(o, &["status", "conditions"])
                .iter()
                .any(|c| s(c, &["type"]) == "Ready" && s(c, &["status"]) == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if !at(o, &["metadata", "deletionTimestamp"]).is_null() {
        reason = if s(o, &["status", "reason"]) == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }

    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", human_duration_millis(now - t)),
        _ => restarts.to_string(),
    };
    let mut r = vec![name, format!("{ready}/{total}"), reason, restarts, created];
    if wide {
        r.push(or_none(s(o, &["status", "podIP"])));
        r.push(or_none(s(o, &["spec", "nodeName"])));
    }
    r
}

pub(crate) fn has_condition(o: &Value, ty: &str) -> bool {
    arr(o, &["status", "conditions"])
        .iter()
        .any(|c| s(c, &["type"]) == ty && s(c, &["status"]) == "True")
}

fn job_row(o: &Value, name: String, created: String, now: Millis) -> Vec<String> {
    let status = if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if !at(o, &["metadata", "deletionTimestamp"]).is_null() {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let succeeded = int(o, &["status", "succeeded"]);
    let completions = if !at(o, &["spec", "completions"]).is_null() {
        format!("{succeeded}/{}", int(o, &["spec", "completions"]))
    } else {
        let parallelism = int_or(o, &["spec", "parallelism"], 1);
        if parallelism > 1 {
            format!("{succeeded}/1 of {parallelism}")
        } else {
            format!("{succeeded}/1")
        }
    };
    let start = timestamp(at(o, &["status", "startTime"]));
    let end = timestamp(at(o, &["status", "completionTime"]));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration_millis(now - s),
        (Some(s), Some(e)) => human_duration_millis(e - s),
    };
    vec![name, status.into(), completions, duration, created]
}

fn node_status(o: &Value) -> String {
    let ready = arr(o, &["status", "conditions"])
        .iter()
        .find(|c| s(c, &["type"]) == "Ready");
    let mut status = match ready {
        Some(c) if s(c, &["status"]) == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if at(o, &["spec", "unschedulable"]).as_bool().unwrap_or(false) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

pub(crate) fn node_roles(o: &Value) -> String {
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = at(o, &["metadata", "labels"]).as_object() {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.push(v.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    or_none(&roles.join(","))
}

fn node_wide(o: &Value) -> Vec<String> {
    let addr = |ty: &str| {
        arr(o, &["status", "addresses"])
            .iter()
            .find(|a| s(a, &["type"]) == ty)
            .map(|a| s(a, &["address"]).to_string())
            .unwrap_or_default()
    };
    let info = |k: &str| or_none(s(o, &["status", "nodeInfo", k]));
    vec![
        or_none(&addr("InternalIP")),
        or_none(&addr("ExternalIP")),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// `k=v,k2=v2` of a string map, sorted by key.
pub(crate) fn key_values(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A label selector in kubectl's text form.
pub(crate) fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    let labels = key_values(at(sel, &["matchLabels"]));
    if !labels.is_empty() {
        parts.push(labels);
    }
    for e in arr(sel, &["matchExpressions"]) {
        let key = s(e, &["key"]);
        let values: Vec<&str> = arr(e, &["values"]).iter().filter_map(Value::as_str).collect();
        parts.push(match s(e, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        });
    }
    or_none(&parts.join(","))
}

fn workload_wide(pod_spec: &Value, selector: &Value) -> Vec<String> {
    let containers = arr(pod_spec, &["containers"]);
    let names: Vec<&str> = containers.iter().map(|c| s(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, &["image"])).collect();
    vec![
        or_none(&names.join(",")),
        or_none(&images.join(",")),
        selector_string(selector),
    ]
}

fn event_row(o: &Value, now: Millis) -> Vec<String> {
    let since = |t: Option<Millis>| match t {
        Some(t) => human_duration_millis(now - t),
        None => "<unknown>".to_string(),
    };
    let first_t = timestamp(at(o, &["firstTimestamp"])).or_else(|| timestamp(at(o, &["eventTime"])));
    let last_t = timestamp(at(o, &["lastTimestamp"])).or(first_t);
    let (last_t, count) = if at(o, &["series"]).is_object() {
        (
            timestamp(at(o, &["series", "lastObservedTime"])).or(last_t),
            int(o, &["series", "count"]),
        )
    } else {
        (last_t, int(o, &["count"]).max(1))
    };
    let last_seen = if count > 1 {
        format!("{} (x{count} over {})", since(last_t), since(first_t))
    } else {
        since(last_t.or_else(|| timestamp(at(o, &["metadata", "creationTimestamp"]))))
    };
    vec![
        last_seen,
        s(o, &["type"]).to_string(),
        s(o, &["reason"]).to_string(),
        format!(
            "{}/{}",
            s(o, &["involvedObject", "kind"]).to_ascii_lowercase(),
            s(o, &["involvedObject", "name"])
        ),
        s(o, &["message"]).replace('\n', " "),
    ]
}

fn controller_of(o: &Value) -> String {
    let owner = arr(o, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool).unwrap_or(false));
    match owner {
        Some(r) => {
            let kind = s(r, &["kind"]).to_ascii_lowercase();
            let group = s(r, &["apiVersion"])
                .split_once('/')
                .map(|(g, _)| g)
                .unwrap_or("");
            let kind = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{kind}/{}", s(r, &["name"]))
        }
        None => "<none>".into(),
    }
}

#[cfg(test)]
mod tests;
