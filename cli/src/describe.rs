//! `rkctl describe KIND [NAME...]`: a readable, kubectl-like account of
//! objects with the objects related to them and their Events.
//!
//! Rendering ([`describe`]) is a pure function of the object, what was
//! fetched about it ([`Related`]) and `now`, so layouts are golden-tested
//! without a cluster; [`run`] does the fetching.

mod tabwriter;

use crate::args::parse_targets;
use crate::error::{CliError, Result};
use crate::table::{arr, at, int, int_or, key_values, node_roles, or_none, s, selector_string};
use crate::time::{format_rfc1123z, human_duration_millis, now_millis, timestamp, Millis};
use crate::Ctx;
use rk_api::resources::ResourceKind;
use rk_client::{Client, ListParams};
use serde_json::Value;
pub use tabwriter::Tw;

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// KIND [NAME...] or KIND/NAME...; a NAME that matches no object
    /// describes the objects whose names start with it.
    #[arg(value_name = "KIND [NAME...]")]
    pub args: Vec<String>,
    /// Describe the objects matching a label selector.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Whether to list the Events about each object.
    #[arg(long = "show-events", default_value_t = true, action = clap::ArgAction::Set)]
    pub show_events: bool,
}

/// What describe shows beside an object, fetched separately.
#[derive(Debug, Clone, Default)]
pub struct Related {
    /// Events whose involvedObject is the object.
    pub events: Vec<Value>,
    /// Whether Events are shown at all (`--show-events`).
    pub show_events: bool,
    /// For a Node: the Pods bound to it. For a ReplicaSet, DaemonSet or
    /// Job: the Pods it controls.
    pub pods: Vec<Value>,
    /// For a Deployment: the ReplicaSets it controls.
    pub replicasets: Vec<Value>,
}

/// The annotation kubectl apply keeps; describe leaves it out, as kubectl
/// does, because it repeats the whole object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub(crate) async fn run(ctx: &mut Ctx<'_>, a: DescribeArgs) -> Result<()> {
    let targets = parse_targets(&a.args)?;
    let selector = a.selector.clone().unwrap_or_default();
    if !selector.is_empty() && targets.iter().any(|t| !t.names.is_empty()) {
        return Err(CliError::local(
            "name cannot be provided when a selector is specified",
        ));
    }
    let client = ctx.client()?;
    let ns = ctx.namespace();
    let now = now_millis();
    let mut printed = 0usize;
    let mut failed = false;
    for t in &targets {
        let resource = t.kind.group_resource();
        let ns_for_kind = if t.kind.namespaced { ns.as_str() } else { "" };
        let mut objects = Vec::new();
        if t.names.is_empty() {
            let params = ListParams {
                namespace: (t.kind.namespaced && !a.all_namespaces).then(|| ns.clone()),
                label_selector: selector.clone(),
                ..Default::default()
            };
            objects = client.list(&resource, &params).await?.0;
        } else {
            for name in &t.names {
                match client.get(&resource, ns_for_kind, name).await {
                    Ok(o) => objects.push(o),
                    Err(e) if e.reason == rk_api::Reason::NotFound => {
                        // kubectl describes the objects whose names start
                        // with the argument when none has that exact name.
                        let params = ListParams {
                            namespace: t.kind.namespaced.then(|| ns.clone()),
                            ..Default::default()
                        };
                        let (all, _) = client.list(&resource, &params).await?;
                        let matching: Vec<Value> = all
                            .into_iter()
                            .filter(|o| s(o, &["metadata", "name"]).starts_with(name.as_str()))
                            .collect();
                        if matching.is_empty() {
                            ctx.report(&e.into());
                            failed = true;
                        }
                        objects.extend(matching);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        for o in &objects {
            let related = fetch_related(&client, t.kind, o, a.show_events).await?;
            if printed > 0 {
                ctx.print("\n\n");
            }
            ctx.print(&describe(t.kind, o, &related, now));
            ctx.flush();
            printed += 1;
        }
    }
    if printed == 0 && !failed {
        let namespaced = targets.iter().any(|t| t.kind.namespaced);
        if namespaced && !a.all_namespaces {
            ctx.eprint_line(&format!("No resources found in {ns} namespace."));
        } else {
            ctx.eprint_line("No resources found");
        }
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

/// Whether `o` names `owner_uid` as its controller.
pub fn controlled_by(o: &Value, owner_uid: &str) -> bool {
    !owner_uid.is_empty()
        && arr(o, &["metadata", "ownerReferences"]).iter().any(|r| {
            r.get("controller").and_then(Value::as_bool).unwrap_or(false) && s(r, &["uid"]) == owner_uid
        })
}

/// Lists what describe shows beside `o`.
pub async fn fetch_related(
    client: &Client,
    kind: &ResourceKind,
    o: &Value,
    show_events: bool,
) -> Result<Related> {
    let ns = s(o, &["metadata", "namespace"]).to_string();
    let name = s(o, &["metadata", "name"]);
    let uid = s(o, &["metadata", "uid"]);
    let mut r = Related {
        show_events,
        ..Default::default()
    };
    if show_events {
        let params = ListParams {
            // Events about cluster-scoped objects are recorded in some
            // namespace ("default" by rk's controllers): look everywhere.
            namespace: kind.namespaced.then(|| ns.clone()),
            field_selector: format!("involvedObject.name={name}"),
            ..Default::default()
        };
        let (events, _) = client.list("events", &params).await?;
        r.events = events
            .into_iter()
            .filter(|e| {
                let ev_uid = s(e, &["involvedObject", "uid"]);
                s(e, &["involvedObject", "kind"]) == kind.kind && (ev_uid.is_empty() || ev_uid == uid)
            })
            .collect();
    }
    match kind.kind {
        "Node" => {
            let params = ListParams {
                field_selector: format!("spec.nodeName={name}"),
                ..Default::default()
            };
            r.pods = client.list("pods", &params).await?.0;
        }
        "Deployment" => {
            let params = ListParams {
                namespace: Some(ns.clone()),
                ..Default::default()
            };
            let (rs, _) = client.list("replicasets.apps", &params).await?;
            r.replicasets = rs.into_iter().filter(|x| controlled_by(x, uid)).collect();
        }
        "ReplicaSet" | "DaemonSet" | "Job" => {
            let params = ListParams {
                namespace: Some(ns.clone()),
                ..Default::default()
            };
            let (pods, _) = client.list("pods", &params).await?;
            r.pods = pods.into_iter().filter(|p| controlled_by(p, uid)).collect();
        }
        _ => {}
    }
    Ok(r)
}

/// The describe text of one object.
pub fn describe(kind: &ResourceKind, o: &Value, related: &Related, now: Millis) -> String {
    let mut w = Tw::new();
    match kind.kind {
        "Pod" => pod(&mut w, o),
        "Node" => node(&mut w, o, related, now),
        "Deployment" => deployment(&mut w, o, related),
        "ReplicaSet" => replicaset(&mut w, o, related),
        "DaemonSet" => daemonset(&mut w, o, related),
        "Job" => job(&mut w, o, now),
        "CronJob" => cronjob(&mut w, o),
        "Namespace" => namespace(&mut w, o),
        "ConfigMap" => configmap(&mut w, o),
        "Secret" => {
            // kubectl shows no Events for Secrets.
            secret(&mut w, o);
            return w.render();
        }
        _ => generic(&mut w, o),
    }
    if related.show_events {
        events(&mut w, &related.events, now);
    }
    w.render()
}

fn time_of(v: &Value) -> String {
    match timestamp(v) {
        Some(t) => format_rfc1123z(t),
        None => "<unset>".into(),
    }
}

fn bool_str(v: &Value) -> &'static str {
    if v.as_bool().unwrap_or(false) {
        "true"
    } else {
        "false"
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `Name:`, `Namespace:` (namespaced kinds), `Labels:` and `Annotations:`.
fn header(w: &mut Tw, o: &Value, namespaced: bool) {
    w.line(0, &format!("Name:\t{}", s(o, &["metadata", "name"])));
    if namespaced {
        w.line(0, &format!("Namespace:\t{}", s(o, &["metadata", "namespace"])));
    }
    labels(w, 0, "Labels:", at(o, &["metadata", "labels"]));
    annotations(w, 0, at(o, &["metadata", "annotations"]));
}

/// A string map one `key=value` per line, the first beside the title.
fn labels(w: &mut Tw, level: usize, title: &str, map: &Value) {
    let entries: Vec<(String, String)> = map
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
        .unwrap_or_default();
    if entries.is_empty() {
        w.line(level, &format!("{title}\t<none>"));
        return;
    }
    for (i, (k, v)) in entries.iter().enumerate() {
        let t = if i == 0 { title } else { "" };
        w.line(level, &format!("{t}\t{k}={v}"));
    }
}

/// Annotations one `key: value` per line, without kubectl's own
/// last-applied configuration.
fn annotations(w: &mut Tw, level: usize, map: &Value) {
    let entries: Vec<(String, String)> = map
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != LAST_APPLIED)
                .map(|(k, v)| (k.clone(), scalar(v)))
                .collect()
        })
        .unwrap_or_default();
    if entries.is_empty() {
        w.line(level, "Annotations:\t<none>");
        return;
    }
    for (i, (k, v)) in entries.iter().enumerate() {
        let t = if i == 0 { "Annotations:" } else { "" };
        // Multi-line values would break the layout; keep them on one line.
        w.line(level, &format!("{t}\t{k}: {}", v.replace('\n', "\\n")));
    }
}

fn controlled_by_line(w: &mut Tw, o: &Value) {
    let owner = arr(o, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool).unwrap_or(false));
    if let Some(r) = owner {
        w.line(
            0,
            &format!("Controlled By:\t{}/{}", s(r, &["kind"]), s(r, &["name"])),
        );
    }
}

fn taint_string(t: &Value) -> String {
    let mut out = s(t, &["key"]).to_string();
    let value = s(t, &["value"]);
    if !value.is_empty() {
        out.push('=');
        out.push_str(value);
    }
    let effect = s(t, &["effect"]);
    if !effect.is_empty() {
        out.push(':');
        out.push_str(effect);
    }
    out
}

fn toleration_string(t: &Value) -> String {
    let mut out = taint_string(t);
    if s(t, &["operator"]) == "Exists" && s(t, &["value"]).is_empty() {
        if out.is_empty() {
            out.push_str("op=Exists");
        } else {
            out.push_str(" op=Exists");
        }
    }
    if !at(t, &["tolerationSeconds"]).is_null() {
        out.push_str(&format!(" for {}s", int(t, &["tolerationSeconds"])));
    }
    out
}

/// A list printed one item per line, the first beside the title.
fn multiline(w: &mut Tw, level: usize, title: &str, items: &[String]) {
    if items.is_empty() {
        w.line(level, &format!("{title}\t<none>"));
        return;
    }
    for (i, item) in items.iter().enumerate() {
        let t = if i == 0 { title } else { "" };
        w.line(level, &format!("{t}\t{item}"));
    }
}

fn pod(w: &mut Tw, o: &Value) {
    w.line(0, &format!("Name:\t{}", s(o, &["metadata", "name"])));
    w.line(0, &format!("Namespace:\t{}", s(o, &["metadata", "namespace"])));
    w.line(0, &format!("Priority:\t{}", int(o, &["spec", "priority"])));
    let sa = s(o, &["spec", "serviceAccountName"]);
    w.line(
        0,
        &format!("Service Account:\t{}", if sa.is_empty() { "default" } else { sa }),
    );
    let node = s(o, &["spec", "nodeName"]);
    let host_ip = s(o, &["status", "hostIP"]);
    let node = match (node, host_ip) {
        ("", _) => "<none>".to_string(),
        (n, "") => n.to_string(),
        (n, ip) => format!("{n}/{ip}"),
    };
    w.line(0, &format!("Node:\t{node}"));
    if !at(o, &["status", "startTime"]).is_null() {
        w.line(
            0,
            &format!("Start Time:\t{}", time_of(at(o, &["status", "startTime"]))),
        );
    }
    labels(w, 0, "Labels:", at(o, &["metadata", "labels"]));
    annotations(w, 0, at(o, &["metadata", "annotations"]));
    let phase = match s(o, &["status", "phase"]) {
        "" => "Pending",
        p => p,
    };
    if !at(o, &["metadata", "deletionTimestamp"]).is_null() {
        w.line(
            0,
            &format!(
                "Status:\tTerminating (lasts {})",
                human_duration_millis(int(o, &["metadata", "deletionGracePeriodSeconds"]) * 1000)
            ),
        );
        w.line(
            0,
            &format!(
                "Termination Grace Period:\t{}s",
                int(o, &["metadata", "deletionGracePeriodSeconds"])
            ),
        );
    } else {
        w.line(0, &format!("Status:\t{phase}"));
    }
    for (title, path) in [("Reason:", "reason"), ("Message:", "message")] {
        let v = s(o, &["status", path]);
        if !v.is_empty() {
            w.line(0, &format!("{title}\t{v}"));
        }
    }
    w.line(0, &format!("IP:\t{}", s(o, &["status", "podIP"])));
    let ips: Vec<String> = arr(o, &["status", "podIPs"])
        .iter()
        .map(|i| s(i, &["ip"]).to_string())
        .collect();
    if ips.is_empty() {
        w.line(0, "IPs:\t<none>");
    } else {
        w.line(0, "IPs:");
        for ip in ips {
            w.line(1, &format!("IP:\t{ip}"));
        }
    }
    controlled_by_line(w, o);
    let statuses = |key: &str| -> Vec<Value> { arr(o, &["status", key]).to_vec() };
    let inits = arr(o, &["spec", "initContainers"]);
    if !inits.is_empty() {
        w.line(0, "Init Containers:");
        containers(w, inits, Some(&statuses("initContainerStatuses")), "");
    }
    w.line(0, "Containers:");
    containers(
        w,
        arr(o, &["spec", "containers"]),
        Some(&statuses("containerStatuses")),
        "",
    );
    let conditions = arr(o, &["status", "conditions"]);
    if !conditions.is_empty() {
        w.line(0, "Conditions:");
        w.line(1, "Type\tStatus");
        for c in conditions {
            w.line(1, &format!("{}\t{}", s(c, &["type"]), s(c, &["status"])));
        }
    }
    volumes(w, arr(o, &["spec", "volumes"]), 0, "");
    let qos = match s(o, &["status", "qosClass"]) {
        "" => qos_class(at(o, &["spec"])),
        q => q.to_string(),
    };
    w.line(0, &format!("QoS Class:\t{qos}"));
    let selectors: Vec<String> = at(o, &["spec", "nodeSelector"])
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", scalar(v))).collect())
        .unwrap_or_default();
    multiline(w, 0, "Node-Selectors:", &selectors);
    let tolerations: Vec<String> = arr(o, &["spec", "tolerations"])
        .iter()
        .map(toleration_string)
        .collect();
    multiline(w, 0, "Tolerations:", &tolerations);
}

/// Kubernetes' QoS class of a Pod spec: Guaranteed when every container
/// limits cpu and memory and requests what it limits, BestEffort when none
/// requests or limits anything, Burstable otherwise.
pub fn qos_class(spec: &Value) -> String {
    let all: Vec<&Value> = arr(spec, &["containers"])
        .iter()
        .chain(arr(spec, &["initContainers"]))
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let limits = at(c, &["resources", "limits"]);
        let requests = at(c, &["resources", "requests"]);
        for res in ["cpu", "memory"] {
            let l = limits.get(res).map(scalar);
            let r = requests.get(res).map(scalar);
            if l.is_some() || r.is_some() {
                any = true;
            }
            match (l, r) {
                (Some(l), Some(r)) if quantity_eq(&l, &r) => {}
                (Some(_), None) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort".into()
    } else if guaranteed {
        "Guaranteed".into()
    } else {
        "Burstable".into()
    }
}

fn quantity_eq(a: &str, b: &str) -> bool {
    match (rk_api::quantity::parse_milli(a), rk_api::quantity::parse_milli(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The containers of a Pod (with their statuses) or of a Pod template
/// (`statuses` None; names indented by one more space, as kubectl does).
fn containers(w: &mut Tw, list: &[Value], statuses: Option<&[Value]>, space: &str) {
    for c in list {
        let name = s(c, &["name"]);
        w.line(1, &format!("{space}{name}:"));
        let status = statuses.and_then(|st| st.iter().find(|x| s(x, &["name"]) == name));
        if let Some(st) = status {
            w.line(2, &format!("Container ID:\t{}", s(st, &["containerID"])));
        }
        w.line(2, &format!("Image:\t{}", s(c, &["image"])));
        if let Some(st) = status {
            w.line(2, &format!("Image ID:\t{}", s(st, &["imageID"])));
        }
        let ports = arr(c, &["ports"]);
        let port = |key: &str| -> String {
            let list: Vec<String> = ports
                .iter()
                .map(|p| {
                    let proto = match s(p, &["protocol"]) {
                        "" => "TCP",
                        x => x,
                    };
                    format!("{}/{proto}", int(p, &[key]))
                })
                .collect();
            if list.is_empty() {
                "<none>".into()
            } else {
                list.join(", ")
            }
        };
        let plural = if ports.len() > 1 { "s" } else { "" };
        w.line(2, &format!("Port{plural}:\t{}", port("containerPort")));
        w.line(2, &format!("Host Port{plural}:\t{}", port("hostPort")));
        for (title, key) in [("Command:", "command"), ("Args:", "args")] {
            let items = arr(c, &[key]);
            if !items.is_empty() {
                w.line(2, title);
                for i in items {
                    w.lines(3, &scalar(i));
                }
            }
        }
        if statuses.is_some() {
            match status {
                Some(st) => {
                    container_state(w, "State:", at(st, &["state"]));
                    if at(st, &["lastState"]).as_object().is_some_and(|m| !m.is_empty()) {
                        container_state(w, "Last State:", at(st, &["lastState"]));
                    }
                    let ready = if st.get("ready").and_then(Value::as_bool).unwrap_or(false) {
                        "True"
                    } else {
                        "False"
                    };
                    w.line(2, &format!("Ready:\t{ready}"));
                    w.line(2, &format!("Restart Count:\t{}", int(st, &["restartCount"])));
                }
                None => {
                    w.line(2, "State:\tWaiting");
                    w.line(2, "Ready:\tFalse");
                    w.line(2, "Restart Count:\t0");
                }
            }
        }
        for (title, key) in [("Limits:", "limits"), ("Requests:", "requests")] {
            if let Some(m) = at(c, &["resources", key]).as_object().filter(|m| !m.is_empty()) {
                w.line(2, title);
                for (k, v) in m {
                    w.line(3, &format!("{k}:\t{}", scalar(v)));
                }
            }
        }
        for (title, key) in [
            ("Liveness:", "livenessProbe"),
            ("Readiness:", "readinessProbe"),
            ("Startup:", "startupProbe"),
        ] {
            if at(c, &[key]).is_object() {
                w.line(2, &format!("{title}\t{}", probe(at(c, &[key]))));
            }
        }
        let env_from = arr(c, &["envFrom"]);
        if !env_from.is_empty() {
            w.line(2, "Environment Variables from:");
            for e in env_from {
                let (kind, src) = if at(e, &["configMapRef"]).is_object() {
                    ("ConfigMap", at(e, &["configMapRef"]))
                } else {
                    ("Secret", at(e, &["secretRef"]))
                };
                let prefix = s(e, &["prefix"]);
                let prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!(" with prefix '{prefix}'")
                };
                w.line(
                    3,
                    &format!(
                        "{}\t{kind}{prefix}\tOptional: {}",
                        s(src, &["name"]),
                        bool_str(at(src, &["optional"]))
                    ),
                );
            }
        }
        let env = arr(c, &["env"]);
        if env.is_empty() {
            w.line(2, "Environment:\t<none>");
        } else {
            w.line(2, "Environment:");
            for e in env {
                w.line(3, &format!("{}:\t{}", s(e, &["name"]), env_value(e)));
            }
        }
        let mounts = arr(c, &["volumeMounts"]);
        if mounts.is_empty() {
            w.line(2, "Mounts:\t<none>");
        } else {
            w.line(2, "Mounts:");
            for m in mounts {
                let mut flags = vec![if at(m, &["readOnly"]).as_bool().unwrap_or(false) {
                    "ro".to_string()
                } else {
                    "rw".to_string()
                }];
                let sub = s(m, &["subPath"]);
                if !sub.is_empty() {
                    flags.push(format!("path=\"{sub}\""));
                }
                w.line(
                    3,
                    &format!(
                        "{} from {} ({})",
                        s(m, &["mountPath"]),
                        s(m, &["name"]),
                        flags.join(",")
                    ),
                );
            }
        }
    }
}

fn env_value(e: &Value) -> String {
    if let Some(v) = e.get("value") {
        return scalar(v);
    }
    let from = at(e, &["valueFrom"]);
    if from.get("fieldRef").is_some() {
        let api = match s(from, &["fieldRef", "apiVersion"]) {
            "" => "v1",
            v => v,
        };
        return format!(" ({api}:{})", s(from, &["fieldRef", "fieldPath"]));
    }
    if from.get("resourceFieldRef").is_some() {
        return format!(" ({})", s(from, &["resourceFieldRef", "resource"]));
    }
    if let Some(r) = from.get("configMapKeyRef") {
        return format!(
            "<set to the key '{}' of config map '{}'>\tOptional: {}",
            s(r, &["key"]),
            s(r, &["name"]),
            bool_str(at(r, &["optional"]))
        );
    }
    if let Some(r) = from.get("secretKeyRef") {
        return format!(
            "<set to the key '{}' in secret '{}'>\tOptional: {}",
            s(r, &["key"]),
            s(r, &["name"]),
            bool_str(at(r, &["optional"]))
        );
    }
    String::new()
}

fn probe(p: &Value) -> String {
    let action = if let Some(e) = p.get("exec") {
        let cmd: Vec<String> = arr(e, &["command"]).iter().map(scalar).collect();
        format!("exec [{}]", cmd.join(" "))
    } else if let Some(h) = p.get("httpGet") {
        let scheme = match s(h, &["scheme"]) {
            "" => "http".to_string(),
            x => x.to_ascii_lowercase(),
        };
        format!(
            "http-get {scheme}://{}:{}{}",
            s(h, &["host"]),
            scalar(at(h, &["port"])),
            s(h, &["path"])
        )
    } else if let Some(t) = p.get("tcpSocket") {
        format!("tcp-socket {}:{}", s(t, &["host"]), scalar(at(t, &["port"])))
    } else if let Some(g) = p.get("grpc") {
        format!("grpc <pod>:{} {}", int(g, &["port"]), s(g, &["service"]))
    } else {
        "unknown".into()
    };
    format!(
        "{action} delay={}s timeout={}s period={}s #success={} #failure={}",
        int(p, &["initialDelaySeconds"]),
        int_or(p, &["timeoutSeconds"], 1),
        int_or(p, &["periodSeconds"], 10),
        int_or(p, &["successThreshold"], 1),
        int_or(p, &["failureThreshold"], 3)
    )
}

fn container_state(w: &mut Tw, title: &str, state: &Value) {
    if let Some(r) = state.get("running") {
        w.line(2, &format!("{title}\tRunning"));
        w.line(3, &format!("Started:\t{}", time_of(at(r, &["startedAt"]))));
    } else if let Some(t) = state.get("waiting") {
        w.line(2, &format!("{title}\tWaiting"));
        let reason = s(t, &["reason"]);
        if !reason.is_empty() {
            w.line(3, &format!("Reason:\t{reason}"));
        }
        let message = s(t, &["message"]);
        if !message.is_empty() {
            w.line(3, &format!("Message:\t{message}"));
        }
    } else if let Some(t) = state.get("terminated") {
        w.line(2, &format!("{title}\tTerminated"));
        let reason = s(t, &["reason"]);
        if !reason.is_empty() {
            w.line(3, &format!("Reason:\t{reason}"));
        }
        let message = s(t, &["message"]);
        if !message.is_empty() {
            w.line(3, &format!("Message:\t{message}"));
        }
        w.line(3, &format!("Exit Code:\t{}", int(t, &["exitCode"])));
        if int(t, &["signal"]) != 0 {
            w.line(3, &format!("Signal:\t{}", int(t, &["signal"])));
        }
        w.line(3, &format!("Started:\t{}", time_of(at(t, &["startedAt"]))));
        w.line(3, &format!("Finished:\t{}", time_of(at(t, &["finishedAt"]))));
    } else {
        w.line(2, &format!("{title}\tWaiting"));
    }
}

/// The volumes of a Pod (level 0, `Volumes:`) or a Pod template (level 1,
/// names indented by one more space).
fn volumes(w: &mut Tw, list: &[Value], level: usize, space: &str) {
    if list.is_empty() {
        w.line(level, "Volumes:\t<none>");
        return;
    }
    w.line(level, "Volumes:");
    for v in list {
        w.line(level + 1, &format!("{space}{}:", s(v, &["name"])));
        let l = level + 2;
        if let Some(e) = v.get("emptyDir") {
            w.line(
                l,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)",
            );
            w.line(l, &format!("Medium:\t{}", s(e, &["medium"])));
            let limit = s(e, &["sizeLimit"]);
            w.line(
                l,
                &format!("SizeLimit:\t{}", if limit.is_empty() { "<unset>" } else { limit }),
            );
        } else if let Some(h) = v.get("hostPath") {
            w.line(l, "Type:\tHostPath (bare host directory volume)");
            w.line(l, &format!("Path:\t{}", s(h, &["path"])));
            w.line(l, &format!("HostPathType:\t{}", s(h, &["type"])));
        } else if let Some(c) = v.get("configMap") {
            w.line(l, "Type:\tConfigMap (a volume populated by a ConfigMap)");
            w.line(l, &format!("Name:\t{}", s(c, &["name"])));
            w.line(l, &format!("Optional:\t{}", bool_str(at(c, &["optional"]))));
        } else if let Some(c) = v.get("secret") {
            w.line(l, "Type:\tSecret (a volume populated by a Secret)");
            w.line(l, &format!("SecretName:\t{}", s(c, &["secretName"])));
            w.line(l, &format!("Optional:\t{}", bool_str(at(c, &["optional"]))));
        } else if let Some(d) = v.get("downwardAPI") {
            w.line(
                l,
                "Type:\tDownwardAPI (a volume populated by information about the pod)",
            );
            w.line(l, "Items:");
            for item in arr(d, &["items"]) {
                let src = if item.get("fieldRef").is_some() {
                    s(item, &["fieldRef", "fieldPath"]).to_string()
                } else {
                    s(item, &["resourceFieldRef", "resource"]).to_string()
                };
                w.line(l + 1, &format!("{src} -> {}", s(item, &["path"])));
            }
        } else if v.get("projected").is_some() {
            w.line(
                l,
                "Type:\tProjected (a volume that contains injected data from multiple sources)",
            );
        } else if let Some(c) = v.get("persistentVolumeClaim") {
            w.line(
                l,
                "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)",
            );
            w.line(l, &format!("ClaimName:\t{}", s(c, &["claimName"])));
            w.line(l, &format!("ReadOnly:\t{}", bool_str(at(c, &["readOnly"]))));
        } else {
            w.line(l, "Type:\t<unknown>");
        }
    }
}

/// A Pod template as Deployments, ReplicaSets, DaemonSets, Jobs and
/// CronJobs show it.
pub(crate) fn pod_template(w: &mut Tw, level: usize, t: &Value) {
    w.line(level, "Pod Template:");
    let l = level + 1;
    labels(w, l, "Labels:", at(t, &["metadata", "labels"]));
    if at(t, &["metadata", "annotations"])
        .as_object()
        .is_some_and(|m| !m.is_empty())
    {
        annotations(w, l, at(t, &["metadata", "annotations"]));
    }
    let sa = s(t, &["spec", "serviceAccountName"]);
    if !sa.is_empty() {
        w.line(l, &format!("Service Account:\t{sa}"));
    }
    let inits = arr(t, &["spec", "initContainers"]);
    if !inits.is_empty() {
        w.line(l, "Init Containers:");
        containers(w, inits, None, " ");
    }
    w.line(l, "Containers:");
    containers(w, arr(t, &["spec", "containers"]), None, " ");
    volumes(w, arr(t, &["spec", "volumes"]), l, " ");
    let selectors: Vec<String> = at(t, &["spec", "nodeSelector"])
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", scalar(v))).collect())
        .unwrap_or_default();
    multiline(w, l, "Node-Selectors:", &selectors);
    let tolerations: Vec<String> = arr(t, &["spec", "tolerations"])
        .iter()
        .map(toleration_string)
        .collect();
    multiline(w, l, "Tolerations:", &tolerations);
}

/// A Pod template on its own, as `rollout history --revision` prints it.
pub fn pod_template_text(t: &Value) -> String {
    let mut w = Tw::new();
    pod_template(&mut w, 0, t);
    w.render()
}

fn conditions_table(w: &mut Tw, o: &Value) {
    let conditions = arr(o, &["status", "conditions"]);
    if conditions.is_empty() {
        return;
    }
    w.line(0, "Conditions:");
    w.line(1, "Type\tStatus\tReason");
    w.line(1, "----\t------\t------");
    for c in conditions {
        w.line(
            1,
            &format!(
                "{}\t{}\t{}",
                s(c, &["type"]),
                s(c, &["status"]),
                s(c, &["reason"])
            ),
        );
    }
}

fn creation(w: &mut Tw, o: &Value) {
    w.line(
        0,
        &format!(
            "CreationTimestamp:\t{}",
            time_of(at(o, &["metadata", "creationTimestamp"]))
        ),
    );
}

fn pods_status(w: &mut Tw, pods: &[Value]) {
    let count = |phase: &str| {
        pods.iter()
            .filter(|p| match s(p, &["status", "phase"]) {
                "" => phase == "Pending",
                x => x == phase,
            })
            .count()
    };
    w.line(
        0,
        &format!(
            "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed",
            count("Running"),
            count("Pending"),
            count("Succeeded"),
            count("Failed")
        ),
    );
}

/// The template of a ReplicaSet without its `pod-template-hash` label, to
/// compare with its Deployment's.
pub fn template_without_hash(rs: &Value) -> Value {
    let mut t = at(rs, &["spec", "template"]).clone();
    if let Some(labels) = t
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
    }
    t
}

fn rs_summary(rs: &Value) -> String {
    format!(
        "{} ({}/{} replicas created)",
        s(rs, &["metadata", "name"]),
        int(rs, &["status", "replicas"]),
        int_or(rs, &["spec", "replicas"], 1)
    )
}

fn deployment(w: &mut Tw, o: &Value, related: &Related) {
    w.line(0, &format!("Name:\t{}", s(o, &["metadata", "name"])));
    w.line(0, &format!("Namespace:\t{}", s(o, &["metadata", "namespace"])));
    creation(w, o);
    labels(w, 0, "Labels:", at(o, &["metadata", "labels"]));
    annotations(w, 0, at(o, &["metadata", "annotations"]));
    w.line(
        0,
        &format!("Selector:\t{}", selector_string(at(o, &["spec", "selector"]))),
    );
    let desired = int_or(o, &["spec", "replicas"], 1);
    w.line(
        0,
        &format!(
            "Replicas:\t{desired} desired | {} updated | {} total | {} available | {} unavailable",
            int(o, &["status", "updatedReplicas"]),
            int(o, &["status", "replicas"]),
            int(o, &["status", "availableReplicas"]),
            int(o, &["status", "unavailableReplicas"])
        ),
    );
    let strategy = match s(o, &["spec", "strategy", "type"]) {
        "" => "RollingUpdate",
        x => x,
    };
    w.line(0, &format!("StrategyType:\t{strategy}"));
    w.line(
        0,
        &format!("MinReadySeconds:\t{}", int(o, &["spec", "minReadySeconds"])),
    );
    if strategy == "RollingUpdate" {
        let ru = at(o, &["spec", "strategy", "rollingUpdate"]);
        let pct = |k: &str| match ru.get(k) {
            None | Some(Value::Null) => "25%".to_string(),
            Some(v) => scalar(v),
        };
        w.line(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge",
                pct("maxUnavailable"),
                pct("maxSurge")
            ),
        );
    }
    if at(o, &["spec", "paused"]).as_bool().unwrap_or(false) {
        w.line(0, "Paused:\ttrue");
    }
    pod_template(w, 0, at(o, &["spec", "template"]));
    conditions_table(w, o);
    let template = at(o, &["spec", "template"]);
    let mut rss: Vec<&Value> = related.replicasets.iter().collect();
    rss.sort_by_key(|r| s(r, &["metadata", "name"]).to_string());
    let (new, old): (Vec<&Value>, Vec<&Value>) = rss
        .into_iter()
        .partition(|r| &template_without_hash(r) == template);
    let old: Vec<String> = old
        .into_iter()
        .filter(|r| int(r, &["status", "replicas"]) > 0 || int(r, &["spec", "replicas"]) > 0)
        .map(rs_summary)
        .collect();
    w.line(0, &format!("OldReplicaSets:\t{}", or_none(&old.join(", "))));
    w.line(
        0,
        &format!(
            "NewReplicaSet:\t{}",
            new.first()
                .map(|r| rs_summary(r))
                .unwrap_or_else(|| "<none>".into())
        ),
    );
}

fn replicaset(w: &mut Tw, o: &Value, related: &Related) {
    w.line(0, &format!("Name:\t{}", s(o, &["metadata", "name"])));
    w.line(0, &format!("Namespace:\t{}", s(o, &["metadata", "namespace"])));
    w.line(
        0,
        &format!("Selector:\t{}", selector_string(at(o, &["spec", "selector"]))),
    );
    labels(w, 0, "Labels:", at(o, &["metadata", "labels"]));
    annotations(w, 0, at(o, &["metadata", "annotations"]));
    controlled_by_line(w, o);
    w.line(
        0,
        &format!(
            "Replicas:\t{} current / {} desired",
            int(o, &["status", "replicas"]),
            int_or(o, &["spec", "replicas"], 1)
        ),
    );
    pods_status(w, &related.pods);
    pod_template(w, 0, at(o, &["spec", "template"]));
    conditions_table(w, o);
}

fn daemonset(w: &mut Tw, o: &Value, related: &Related) {
    w.line(0, &format!("Name:\t{}", s(o, &["metadata", "name"])));
    w.line(0, &format!("Namespace:\t{}", s(o, &["metadata", "namespace"])));
    w.line(
        0,
        &format!("Selector:\t{}", selector_string(at(o, &["spec", "selector"]))),
    );
    w.line(
        0,
        &format!(
            "Node-Selector:\t{}",
            or_none(&key_values(at(o, &["spec", "template", "spec", "nodeSelector"])))
        ),
    );
    labels(w, 0, "Labels:", at(o, &["metadata", "labels"]));
    annotations(w, 0, at(o, &["metadata", "annotations"]));
    for (title, key) in [
        ("Desired Number of Nodes Scheduled:", "desiredNumberScheduled"),
        ("Current Number of Nodes Scheduled:", "currentNumberScheduled"),
        (
            "Number of Nodes Scheduled with Up-to-date Pods:",
            "updatedNumberScheduled",
        ),
        (
            "Number of Nodes Scheduled with Available Pods:",
            "numberAvailable",
        ),
        ("Number of Nodes Misscheduled:", "numberMisscheduled"),
    ] {
        w.line(0, &format!("{title}\t{}", int(o, &["status", key])));
    }
    pods_status(w, &related.pods);
    pod_template(w, 0, at(o, &["spec", "template"]));
}

fn job(w: &mut Tw, o: &Value, now: Millis) {
    w.line(0, &format!("Name:\t{}", s(o, &["metadata", "name"])));
    w.line(0, &format!("Namespace:\t{}", s(o, &["metadata", "namespace"])));
    w.line(
        0,
        &format!("Selector:\t{}", selector_string(at(o, &["spec", "selector"]))),
    );
    labels(w, 0, "Labels:", at(o, &["metadata", "labels"]));
    annotations(w, 0, at(o, &["metadata", "annotations"]));
    controlled_by_line(w, o);
    w.line(
        0,
        &format!("Parallelism:\t{}", int_or(o, &["spec", "parallelism"], 1)),
    );
    let completions = match at(o, &["spec", "completions"]) {
        Value::Null => "<unset>".to_string(),
        v => scalar(v),
    };
    w.line(0, &format!("Completions:\t{completions}"));
    let mode = match s(o, &["spec", "completionMode"]) {
        "" => "NonIndexed",
        m => m,
    };
    w.line(0, &format!("Completion Mode:\t{mode}"));
    w.line(0, &format!("Suspend:\t{}", bool_str(at(o, &["spec", "suspend"]))));
    w.line(
        0,
        &format!("Backoff Limit:\t{}", int_or(o, &["spec", "backoffLimit"], 6)),
    );
    let start = timestamp(at(o, &["status", "startTime"]));
    let end = timestamp(at(o, &["status", "completionTime"]));
    if let Some(st) = start {
        w.line(0, &format!("Start Time:\t{}", format_rfc1123z(st)));
    }
    if let Some(e) = end {
        w.line(0, &format!("Completed At:\t{}", format_rfc1123z(e)));
    }
    match (start, end) {
        (Some(st), Some(e)) => w.line(0, &format!("Duration:\t{}", human_duration_millis(e - st))),
        (Some(st), None) => w.line(0, &format!("Duration:\t{}", human_duration_millis(now - st))),
        _ => {}
    }
    w.line(
        0,
        &format!(
            "Pods Statuses:\t{} Active ({} Ready) / {} Succeeded / {} Failed",
            int(o, &["status", "active"]),
            int(o, &["status", "ready"]),
            int(o, &["status", "succeeded"]),
            int(o, &["status", "failed"])
        ),
    );
    pod_template(w, 0, at(o, &["spec", "template"]));
    conditions_table(w, o);
}

fn unset_or(v: &Value) -> String {
    match v {
        Value::Null => "<unset>".into(),
        v => scalar(v),
    }
}

fn cronjob(w: &mut Tw, o: &Value) {
    header(w, o, true);
    w.line(0, &format!("Schedule:\t{}", s(o, &["spec", "schedule"])));
    let tz = s(o, &["spec", "timeZone"]);
    if !tz.is_empty() {
        w.line(0, &format!("Time Zone:\t{tz}"));
    }
    let policy = match s(o, &["spec", "concurrencyPolicy"]) {
        "" => "Allow",
        p => p,
    };
    w.line(0, &format!("Concurrency Policy:\t{policy}"));
    let suspend = if at(o, &["spec", "suspend"]).as_bool().unwrap_or(false) {
        "True"
    } else {
        "False"
    };
    w.line(0, &format!("Suspend:\t{suspend}"));
    w.line(
        0,
        &format!(
            "Successful Job History Limit:\t{}",
            int_or(o, &["spec", "successfulJobsHistoryLimit"], 3)
        ),
    );
    w.line(
        0,
        &format!(
            "Failed Job History Limit:\t{}",
            int_or(o, &["spec", "failedJobsHistoryLimit"], 1)
        ),
    );
    w.line(
        0,
        &format!(
            "Starting Deadline Seconds:\t{}",
            unset_or(at(o, &["spec", "startingDeadlineSeconds"]))
        ),
    );
    let js = at(o, &["spec", "jobTemplate", "spec"]);
    let sel = at(js, &["selector"]);
    w.line(
        0,
        &format!(
            "Selector:\t{}",
            if sel.is_null() {
                "<unset>".to_string()
            } else {
                selector_string(sel)
            }
        ),
    );
    w.line(
        0,
        &format!("Parallelism:\t{}", unset_or(at(js, &["parallelism"]))),
    );
    w.line(
        0,
        &format!("Completions:\t{}", unset_or(at(js, &["completions"]))),
    );
    pod_template(w, 0, at(js, &["template"]));
    let last = at(o, &["status", "lastScheduleTime"]);
    w.line(
        0,
        &format!(
            "Last Schedule Time:\t{}",
            if last.is_null() {
                "<unset>".to_string()
            } else {
                time_of(last)
            }
        ),
    );
    let active: Vec<String> = arr(o, &["status", "active"])
        .iter()
        .map(|r| s(r, &["name"]).to_string())
        .collect();
    w.line(0, &format!("Active Jobs:\t{}", or_none(&active.join(", "))));
}

fn namespace(w: &mut Tw, o: &Value) {
    header(w, o, false);
    let phase = match s(o, &["status", "phase"]) {
        "" => "Active",
        p => p,
    };
    w.line(0, &format!("Status:\t{phase}"));
}

fn configmap(w: &mut Tw, o: &Value) {
    header(w, o, true);
    w.line(0, "");
    w.line(0, "Data");
    w.line(0, "====");
    if let Some(m) = at(o, &["data"]).as_object() {
        for (k, v) in m {
            w.line(0, &format!("{k}:"));
            w.line(0, "----");
            w.lines(0, &scalar(v));
            w.line(0, "");
        }
    }
    w.line(0, "");
    w.line(0, "BinaryData");
    w.line(0, "====");
    if let Some(m) = at(o, &["binaryData"]).as_object() {
        for (k, v) in m {
            w.line(0, &format!("{k}: {} bytes", base64_len(&scalar(v))));
        }
    }
    w.line(0, "");
}

/// The decoded length of base64 text, computed without decoding.
fn base64_len(text: &str) -> usize {
    let t = text.trim();
    let padding = t.chars().rev().take_while(|c| *c == '=').count();
    (t.len() / 4 * 3).saturating_sub(padding)
        + match t.len() % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        }
}

fn secret(w: &mut Tw, o: &Value) {
    header(w, o, true);
    w.line(0, "");
    let ty = match s(o, &["type"]) {
        "" => "Opaque",
        t => t,
    };
    w.line(0, &format!("Type:\t{ty}"));
    w.line(0, "");
    w.line(0, "Data");
    w.line(0, "====");
    // Only sizes: a Secret's values are never printed.
    let mut sizes: Vec<(String, usize)> = Vec::new();
    if let Some(m) = at(o, &["data"]).as_object() {
        sizes.extend(m.iter().map(|(k, v)| (k.clone(), base64_len(&scalar(v)))));
    }
    if let Some(m) = at(o, &["stringData"]).as_object() {
        sizes.extend(m.iter().map(|(k, v)| (k.clone(), scalar(v).len())));
    }
    sizes.sort();
    for (k, n) in sizes {
        w.line(0, &format!("{k}:\t{n} bytes"));
    }
}

/// Parses a cpu quantity into millicores and a memory (or other) quantity
/// into units; unreadable quantities count as zero.
fn milli(q: &str) -> i128 {
    rk_api::quantity::parse_milli(q).unwrap_or(0)
}

/// A summed quantity in the shortest exact Kubernetes form: millicores as
/// `100m` or `2`, byte counts with a binary suffix when exact.
fn format_quantity(resource: &str, millis: i128) -> String {
    if resource == "cpu" {
        return if millis % 1000 == 0 {
            (millis / 1000).to_string()
        } else {
            format!("{millis}m")
        };
    }
    let units = millis / 1000;
    if units == 0 {
        return "0".into();
    }
    for (suffix, factor) in [
        ("Ti", 1i128 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if units % factor == 0 {
            return format!("{}{suffix}", units / factor);
        }
    }
    units.to_string()
}

fn percent(part: i128, whole: i128) -> i128 {
    if whole <= 0 {
        0
    } else {
        part * 100 / whole
    }
}

/// The sum over a Pod's containers of one resource request or limit, in
/// milli-units (init containers count when larger, as Kubernetes does).
fn pod_resource(p: &Value, which: &str, resource: &str) -> i128 {
    let sum: i128 = arr(p, &["spec", "containers"])
        .iter()
        .map(|c| milli(s(c, &["resources", which, resource])))
        .sum();
    let init = arr(p, &["spec", "initContainers"])
        .iter()
        .map(|c| milli(s(c, &["resources", which, resource])))
        .max()
        .unwrap_or(0);
    sum.max(init)
}

fn node(w: &mut Tw, o: &Value, related: &Related, now: Millis) {
    w.line(0, &format!("Name:\t{}", s(o, &["metadata", "name"])));
    w.line(0, &format!("Roles:\t{}", node_roles(o)));
    labels(w, 0, "Labels:", at(o, &["metadata", "labels"]));
    annotations(w, 0, at(o, &["metadata", "annotations"]));
    creation(w, o);
    let taints: Vec<String> = arr(o, &["spec", "taints"]).iter().map(taint_string).collect();
    multiline(w, 0, "Taints:", &taints);
    w.line(
        0,
        &format!("Unschedulable:\t{}", bool_str(at(o, &["spec", "unschedulable"]))),
    );
    let conditions = arr(o, &["status", "conditions"]);
    if conditions.is_empty() {
        w.line(0, "Conditions:\t<none>");
    } else {
        w.line(0, "Conditions:");
        w.line(
            1,
            "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage",
        );
        w.line(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------",
        );
        for c in conditions {
            w.line(
                1,
                &format!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s(c, &["type"]),
                    s(c, &["status"]),
                    time_of(at(c, &["lastHeartbeatTime"])),
                    time_of(at(c, &["lastTransitionTime"])),
                    s(c, &["reason"]),
                    s(c, &["message"])
                ),
            );
        }
    }
    let addresses = arr(o, &["status", "addresses"]);
    if addresses.is_empty() {
        w.line(0, "Addresses:\t<none>");
    } else {
        w.line(0, "Addresses:");
        for a in addresses {
            w.line(1, &format!("{}:\t{}", s(a, &["type"]), s(a, &["address"])));
        }
    }
    for (title, key) in [("Capacity:", "capacity"), ("Allocatable:", "allocatable")] {
        if let Some(m) = at(o, &["status", key]).as_object() {
            w.line(0, title);
            for (k, v) in m {
                w.line(1, &format!("{k}:\t{}", scalar(v)));
            }
        }
    }
    let info = at(o, &["status", "nodeInfo"]);
    if info.is_object() {
        w.line(0, "System Info:");
        for (title, key) in [
            ("Machine ID:", "machineID"),
            ("System UUID:", "systemUUID"),
            ("Boot ID:", "bootID"),
            ("Kernel Version:", "kernelVersion"),
            ("OS Image:", "osImage"),
            ("Operating System:", "operatingSystem"),
            ("Architecture:", "architecture"),
            ("Container Runtime Version:", "containerRuntimeVersion"),
            ("Kubelet Version:", "kubeletVersion"),
        ] {
            w.line(1, &format!("{title}\t{}", s(info, &[key])));
        }
    }
    let cidr = s(o, &["spec", "podCIDR"]);
    if !cidr.is_empty() {
        w.line(0, &format!("PodCIDR:\t{cidr}"));
        let cidrs: Vec<String> = arr(o, &["spec", "podCIDRs"]).iter().map(scalar).collect();
        w.line(
            0,
            &format!(
                "PodCIDRs:\t{}",
                if cidrs.is_empty() {
                    cidr.to_string()
                } else {
                    cidrs.join(",")
                }
            ),
        );
    }
    let pods: Vec<&Value> = related
        .pods
        .iter()
        .filter(|p| !matches!(s(p, &["status", "phase"]), "Succeeded" | "Failed"))
        .collect();
    let alloc = |r: &str| milli(s(o, &["status", "allocatable", r]));
    let (cpu_alloc, mem_alloc) = (alloc("cpu"), alloc("memory"));
    let cell = |r: &str, v: i128, whole: i128| format!("{} ({}%)", format_quantity(r, v), percent(v, whole));
    w.line(0, &format!("Non-terminated Pods:\t({} in total)", pods.len()));
    if !pods.is_empty() {
        w.line(
            1,
            "Namespace\tName\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge",
        );
        w.line(
            1,
            "---------\t----\t------------\t----------\t---------------\t-------------\t---",
        );
    }
    let mut totals = [0i128; 4];
    for p in &pods {
        let values = [
            pod_resource(p, "requests", "cpu"),
            pod_resource(p, "limits", "cpu"),
            pod_resource(p, "requests", "memory"),
            pod_resource(p, "limits", "memory"),
        ];
        for (t, v) in totals.iter_mut().zip(values) {
            *t += v;
        }
        w.line(
            1,
            &format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                s(p, &["metadata", "namespace"]),
                s(p, &["metadata", "name"]),
                cell("cpu", values[0], cpu_alloc),
                cell("cpu", values[1], cpu_alloc),
                cell("memory", values[2], mem_alloc),
                cell("memory", values[3], mem_alloc),
                crate::time::age(at(p, &["metadata", "creationTimestamp"]), now)
            ),
        );
    }
    w.line(0, "Allocated resources:");
    w.line(1, "(Total limits may be over 100 percent, i.e., overcommitted.)");
    w.line(1, "Resource\tRequests\tLimits");
    w.line(1, "--------\t--------\t------");
    w.line(
        1,
        &format!(
            "cpu\t{}\t{}",
            cell("cpu", totals[0], cpu_alloc),
            cell("cpu", totals[1], cpu_alloc)
        ),
    );
    w.line(
        1,
        &format!(
            "memory\t{}\t{}",
            cell("memory", totals[2], mem_alloc),
            cell("memory", totals[3], mem_alloc)
        ),
    );
}

/// kubectl's label for a field name: `holderIdentity` → `Holder Identity`.
fn smart_label(key: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
            continue;
        }
        let prev = chars[i - 1];
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        if c.is_uppercase() && (prev.is_lowercase() || (prev.is_uppercase() && next_lower)) {
            out.push(' ');
        }
        out.push(*c);
    }
    out
}

fn generic_value(w: &mut Tw, level: usize, key: &str, v: &Value) {
    match v {
        Value::Object(m) => {
            w.line(level, &format!("{}:", smart_label(key)));
            for (k, x) in m {
                generic_value(w, level + 1, k, x);
            }
        }
        Value::Array(items) => {
            w.line(level, &format!("{}:", smart_label(key)));
            for x in items {
                match x {
                    Value::Object(m) => {
                        for (k, y) in m {
                            generic_value(w, level + 1, k, y);
                        }
                    }
                    other => w.line(level + 1, &scalar(other)),
                }
            }
        }
        other => w.line(level, &format!("{}:\t{}", smart_label(key), scalar(other))),
    }
}

/// Kinds without a dedicated layout (Event, Lease, ControllerRevision):
/// every field but metadata, labelled as kubectl's generic describer does.
fn generic(w: &mut Tw, o: &Value) {
    header(w, o, !s(o, &["metadata", "namespace"]).is_empty());
    w.line(0, &format!("API Version:\t{}", s(o, &["apiVersion"])));
    w.line(0, &format!("Kind:\t{}", s(o, &["kind"])));
    if let Some(m) = o.as_object() {
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            generic_value(w, 0, k, v);
        }
    }
}

/// When an Event last happened, for sorting.
fn event_time(e: &Value) -> Option<Millis> {
    timestamp(at(e, &["lastTimestamp"]))
        .or_else(|| timestamp(at(e, &["series", "lastObservedTime"])))
        .or_else(|| timestamp(at(e, &["eventTime"])))
        .or_else(|| timestamp(at(e, &["firstTimestamp"])))
        .or_else(|| timestamp(at(e, &["metadata", "creationTimestamp"])))
}

/// The `Events:` section: oldest first, with kubectl's columns.
fn events(w: &mut Tw, list: &[Value], now: Millis) {
    if list.is_empty() {
        w.line(0, "Events:\t<none>");
        return;
    }
    let mut sorted: Vec<&Value> = list.iter().collect();
    sorted.sort_by_key(|e| event_time(e).unwrap_or(0));
    let since = |t: Option<Millis>| match t {
        Some(t) => human_duration_millis(now - t),
        None => "<unknown>".to_string(),
    };
    w.line(0, "Events:");
    w.line(1, "Type\tReason\tAge\tFrom\tMessage");
    w.line(1, "----\t------\t----\t----\t-------");
    for e in sorted {
        let first = timestamp(at(e, &["firstTimestamp"])).or_else(|| timestamp(at(e, &["eventTime"])));
        let age = if at(e, &["series"]).is_object() {
            format!(
                "{} (x{} over {})",
                since(timestamp(at(e, &["series", "lastObservedTime"]))),
                int(e, &["series", "count"]),
                since(timestamp(at(e, &["eventTime"])))
            )
        } else if int(e, &["count"]) > 1 {
            format!(
                "{} (x{} over {})",
                since(timestamp(at(e, &["lastTimestamp"]))),
                int(e, &["count"]),
                since(first)
            )
        } else {
            since(first.or_else(|| event_time(e)))
        };
        let from = match s(e, &["source", "component"]) {
            "" => s(e, &["reportingComponent"]),
            c => c,
        };
        w.line(
            1,
            &format!(
                "{}\t{}\t{age}\t{from}\t{}",
                s(e, &["type"]),
                s(e, &["reason"]),
                s(e, &["message"]).trim().replace('\n', " ")
            ),
        );
    }
}

#[cfg(test)]
mod tests;
