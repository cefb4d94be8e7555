//! Verbs that change one field group of existing objects: `label`,
//! `annotate`, `set image`, `scale`, `cordon` and `uncordon`.
//!
//! Each is a read-modify-write ([`modify`]): read the object, change it in
//! memory, write it back with the read resourceVersion as a precondition,
//! and on a Conflict (someone wrote in between) read again and redo the
//! change, so a concurrent controller update is never overwritten.

use crate::args::{kind_ref, parse_targets, resolve_kind, Target};
use crate::error::{CliError, Result};
use crate::table::{at, int_or, s};
use crate::Ctx;
use rk_api::resources::ResourceKind;
use rk_client::{Client, ListParams};
use serde_json::{Map, Value};

/// How often a read-modify-write is redone after a Conflict.
const ATTEMPTS: usize = 5;

/// What a change function decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The object was changed and must be written.
    Write,
    /// Nothing to write (already in the wanted state).
    Unchanged,
}

/// Reads `kind/name`, applies `change`, and writes the result back with the
/// read resourceVersion as a precondition, retrying on Conflict. Returns
/// the object as written (or as read when unchanged) and the decision.
pub async fn modify<F>(
    client: &Client,
    kind: &ResourceKind,
    ns: &str,
    name: &str,
    mut change: F,
) -> Result<(Value, Change)>
where
    F: FnMut(&mut Value) -> Result<Change>,
{
    let resource = kind.group_resource();
    let ns = if kind.namespaced { ns } else { "" };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut obj = client.get(&resource, ns, name).await?;
        match change(&mut obj)? {
            Change::Unchanged => return Ok((obj, Change::Unchanged)),
            Change::Write => match client.update(&resource, &obj).await {
                Ok(written) => return Ok((written, Change::Write)),
                Err(e) if e.reason == rk_api::Reason::Conflict && attempt < ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            },
        }
    }
}

/// The object at `path` inside `v`, created as an empty object (replacing
/// a null) when missing.
pub fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = v;
    for p in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else {
            unreachable!("made an object above")
        };
        cur = m.entry(p.to_string()).or_insert(Value::Null);
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    match cur {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// Parses a single `KIND NAME` or `KIND/NAME` argument list naming exactly
/// one object.
pub fn one_object(args: &[String], verb: &str) -> Result<(&'static ResourceKind, String)> {
    let targets = parse_targets(args)?;
    match targets.as_slice() {
        [Target { kind, names }] if names.len() == 1 => Ok((kind, names[0].clone())),
        [Target { names, .. }] if names.is_empty() => Err(CliError::local(format!(
            "{verb} requires a resource name, e.g. {verb} deployment/NAME"
        ))),
        _ => Err(CliError::local(format!("{verb} takes exactly one object"))),
    }
}

// ---------------------------------------------------------------- label

#[derive(Debug, clap::Args)]
pub struct MetaArgs {
    /// KIND NAME... or KIND/NAME..., then KEY=VALUE to set and KEY- to
    /// remove.
    #[arg(value_name = "KIND NAME KEY=VAL ...", required = true)]
    pub args: Vec<String>,
    /// Allow changing a key that already has a value.
    #[arg(long)]
    pub overwrite: bool,
    /// Every object of the kind matching this label selector.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Only act if the object's resourceVersion is still this.
    #[arg(long = "resource-version", value_name = "VERSION")]
    pub resource_version: Option<String>,
}

/// One requested change of a label or annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaChange {
    Set(String, String),
    Remove(String),
}

/// Splits `label`/`annotate` arguments into resource arguments and
/// changes (`KEY=VALUE`, `KEY-`), as kubectl does: resources come first.
pub fn split_meta_args(args: &[String]) -> Result<(Vec<String>, Vec<MetaChange>)> {
    let mut resources = Vec::new();
    let mut changes = Vec::new();
    for a in args {
        if let Some((k, v)) = a.split_once('=') {
            if k.is_empty() {
                return Err(CliError::local(format!("invalid label spec: {a}")));
            }
            changes.push(MetaChange::Set(k.to_string(), v.to_string()));
        } else if let Some(k) = a.strip_suffix('-').filter(|k| !k.is_empty()) {
            // Object and kind names never end in '-', so this is a key.
            changes.push(MetaChange::Remove(k.to_string()));
        } else if changes.is_empty() {
            resources.push(a.clone());
        } else {
            return Err(CliError::local(format!(
                "all resources must be specified before label changes: {a}"
            )));
        }
    }
    if changes.is_empty() {
        return Err(CliError::local("at least one label update is required"));
    }
    Ok((resources, changes))
}

/// Applies changes to a string map; returns whether anything changed, and
/// notes removed keys that were absent.
pub fn apply_meta_changes(
    map: &mut Map<String, Value>,
    changes: &[MetaChange],
    overwrite: bool,
    missing: &mut Vec<String>,
) -> Result<bool> {
    let mut changed = false;
    for c in changes {
        match c {
            MetaChange::Set(k, v) => {
                if let Some(old) = map.get(k) {
                    let old = old.as_str().unwrap_or_default();
                    if old == v {
                        continue;
                    }
                    if !overwrite {
                        return Err(CliError::local(format!(
                            "'{k}' already has a value ({old}), and --overwrite is false"
                        )));
                    }
                }
                map.insert(k.clone(), Value::String(v.clone()));
                changed = true;
            }
            MetaChange::Remove(k) => {
                if map.remove(k).is_some() {
                    changed = true;
                } else {
                    missing.push(k.clone());
                }
            }
        }
    }
    Ok(changed)
}

/// `label` (field "labels") and `annotate` (field "annotations").
pub async fn label_or_annotate(ctx: &mut Ctx<'_>, a: MetaArgs, field: &str) -> Result<()> {
    let (verb_done, verb_undone, noun) = if field == "labels" {
        ("labeled", "unlabeled", "label")
    } else {
        ("annotated", "unannotated", "annotation")
    };
    let (resources, changes) = split_meta_args(&a.args)?;
    if resources.is_empty() {
        return Err(CliError::local(
            "You must provide one or more resources by argument or filename.",
        ));
    }
    if field == "labels" {
        for c in &changes {
            if let MetaChange::Set(k, v) = c {
                validate_label(k, v)?;
            }
        }
    }
    let targets = parse_targets(&resources)?;
    let selector = a.selector.clone().unwrap_or_default();
    let by_selector = a.all || !selector.is_empty();
    let client = ctx.client()?;
    let ns = ctx.namespace();
    let mut objects: Vec<(&'static ResourceKind, String)> = Vec::new();
    for t in &targets {
        if t.names.is_empty() {
            if !by_selector {
                return Err(CliError::local(
                    "resource(s) were provided, but no name was specified",
                ));
            }
            let params = ListParams {
                namespace: t.kind.namespaced.then(|| ns.clone()),
                label_selector: selector.clone(),
                ..Default::default()
            };
            let (items, _) = client.list(&t.kind.group_resource(), &params).await?;
            for o in items {
                objects.push((t.kind, s(&o, &["metadata", "name"]).to_string()));
            }
        } else {
            objects.extend(t.names.iter().map(|n| (t.kind, n.clone())));
        }
    }
    let only_removals = changes.iter().all(|c| matches!(c, MetaChange::Remove(_)));
    for (kind, name) in objects {
        let mut missing = Vec::new();
        let rv = a.resource_version.clone();
        let (_, outcome) = modify(&client, kind, &ns, &name, |o| {
            missing.clear();
            if let Some(rv) = &rv {
                if s(o, &["metadata", "resourceVersion"]) != rv {
                    return Err(CliError::Api(rk_api::ApiError::new(
                        rk_api::Reason::Conflict,
                        format!(
                            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                            kind.group_resource()
                        ),
                    )));
                }
            }
            let map = object_at(o, &["metadata", field]);
            let changed = apply_meta_changes(map, &changes, a.overwrite, &mut missing)?;
            Ok(if changed { Change::Write } else { Change::Unchanged })
        })
        .await?;
        for k in &missing {
            ctx.print(&format!("{noun} \"{k}\" not found.\n"));
        }
        let what = match outcome {
            Change::Unchanged => format!("not {verb_done}"),
            Change::Write if only_removals => verb_undone.to_string(),
            Change::Write => verb_done.to_string(),
        };
        ctx.print(&format!("{}/{name} {what}\n", kind_ref(kind)));
        ctx.flush();
    }
    Ok(())
}

/// Kubernetes' label syntax: an optional DNS-subdomain prefix and a name of
/// at most 63 characters ([A-Za-z0-9] at both ends, `-_.` inside); values
/// follow the name rule or are empty.
fn validate_label(key: &str, value: &str) -> Result<()> {
    fn name_ok(n: &str) -> bool {
        n.len() <= 63
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && n.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
    }
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !p.starts_with('-')
                        && !p.ends_with('-')
                });
            if !prefix_ok {
                return Err(CliError::local(format!("invalid label key \"{key}\"")));
            }
            name
        }
        None => key,
    };
    if !name_ok(name) {
        return Err(CliError::local(format!("invalid label key \"{key}\"")));
    }
    if !value.is_empty() && !name_ok(value) {
        return Err(CliError::local(format!(
            "invalid label value: \"{key}={value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )));
    }
    Ok(())
}

// ------------------------------------------------------------ set image

#[derive(Debug, clap::Subcommand)]
pub enum SetCmd {
    /// Change container images: set image KIND/NAME CONTAINER=IMAGE ...
    /// (`*=IMAGE` for every container).
    Image {
        #[arg(value_name = "KIND/NAME CONTAINER=IMAGE", required = true)]
        args: Vec<String>,
    },
}

/// Where a kind keeps its Pod spec.
fn pod_spec_path(kind: &ResourceKind) -> Option<&'static [&'static str]> {
    Some(match kind.kind {
        "Pod" => &["spec"],
        "Deployment" | "ReplicaSet" | "DaemonSet" | "Job" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    })
}

/// Sets images in a Pod spec; errors name a container that does not exist.
pub fn set_images(spec: &mut Value, images: &[(String, String)]) -> Result<bool> {
    let mut changed = false;
    for (container, image) in images {
        let mut found = false;
        for list in ["initContainers", "containers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if container == "*" || c.get("name").and_then(Value::as_str) == Some(container) {
                        found = true;
                        if c.get("image").and_then(Value::as_str) != Some(image) {
                            c["image"] = Value::String(image.clone());
                            changed = true;
                        }
                    }
                }
            }
        }
        if !found {
            return Err(CliError::local(format!(
                "unable to find container named \"{container}\""
            )));
        }
    }
    Ok(changed)
}

pub async fn set(ctx: &mut Ctx<'_>, cmd: SetCmd) -> Result<()> {
    let SetCmd::Image { args } = cmd;
    let split = args.iter().position(|a| a.contains('=')).unwrap_or(args.len());
    let (res, specs) = args.split_at(split);
    if specs.is_empty() {
        return Err(CliError::local("at least one image update is required"));
    }
    let mut images = Vec::new();
    for spec in specs {
        match spec.split_once('=') {
            Some((c, i)) if !c.is_empty() && !i.is_empty() => images.push((c.to_string(), i.to_string())),
            _ => return Err(CliError::local(format!("invalid image update: {spec}"))),
        }
    }
    let targets = parse_targets(res)?;
    let client = ctx.client()?;
    let ns = ctx.namespace();
    for t in &targets {
        let Some(path) = pod_spec_path(t.kind) else {
            return Err(CliError::local(format!(
                "the kind {} has no containers whose image can be set",
                t.kind.kind
            )));
        };
        if t.names.is_empty() {
            return Err(CliError::local(
                "resource(s) were provided, but no name was specified",
            ));
        }
        for name in &t.names {
            modify(&client, t.kind, &ns, name, |o| {
                let spec = path.iter().try_fold(&mut *o, |cur, p| cur.get_mut(*p));
                let Some(spec) = spec else {
                    return Err(CliError::local(format!("{name} has no pod spec")));
                };
                Ok(if set_images(spec, &images)? {
                    Change::Write
                } else {
                    Change::Unchanged
                })
            })
            .await?;
            ctx.print(&format!("{}/{name} image updated\n", kind_ref(t.kind)));
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- scale

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// KIND NAME... or KIND/NAME... (deployments, replicasets, jobs).
    #[arg(value_name = "KIND/NAME", required = true)]
    pub args: Vec<String>,
    /// The new number of replicas (for a Job: its parallelism).
    #[arg(long, value_name = "N")]
    pub replicas: i64,
    /// Precondition: only scale if the current count is this.
    #[arg(long = "current-replicas", value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub current_replicas: i64,
    /// Precondition: only scale if the resourceVersion is still this.
    #[arg(long = "resource-version", value_name = "VERSION")]
    pub resource_version: Option<String>,
}

/// The field scale changes for a kind: `spec.replicas`, or
/// `spec.parallelism` for Jobs.
fn scale_field(kind: &ResourceKind) -> Option<&'static str> {
    match kind.kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" => Some("replicas"),
        "Job" => Some("parallelism"),
        _ => None,
    }
}

pub async fn scale(ctx: &mut Ctx<'_>, a: ScaleArgs) -> Result<()> {
    if a.replicas < 0 {
        return Err(CliError::local(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0",
        ));
    }
    let targets = parse_targets(&a.args)?;
    for t in &targets {
        if scale_field(t.kind).is_none() {
            return Err(CliError::local(format!(
                "cannot scale {}: only deployments, replicasets and jobs can be scaled",
                t.kind.group_resource()
            )));
        }
        if t.names.is_empty() {
            return Err(CliError::local(
                "resource(s) were provided, but no name was specified",
            ));
        }
    }
    let client = ctx.client()?;
    let ns = ctx.namespace();
    let mut failed = false;
    for t in &targets {
        let field = scale_field(t.kind).unwrap_or("replicas");
        for name in &t.names {
            let r = modify(&client, t.kind, &ns, name, |o| {
                let current = int_or(o, &["spec", field], 1);
                if a.current_replicas >= 0 && current != a.current_replicas {
                    return Err(CliError::local(format!(
                        "Expected replicas to be {}, was {current}",
                        a.current_replicas
                    )));
                }
                if let Some(rv) = &a.resource_version {
                    if s(o, &["metadata", "resourceVersion"]) != rv {
                        return Err(CliError::local(format!(
                            "Expected resource version to be {rv}, was {}",
                            s(o, &["metadata", "resourceVersion"])
                        )));
                    }
                }
                let was_set = !at(o, &["spec", field]).is_null();
                object_at(o, &["spec"]).insert(field.into(), Value::from(a.replicas));
                Ok(if !was_set || current != a.replicas {
                    Change::Write
                } else {
                    Change::Unchanged
                })
            })
            .await;
            match r {
                Ok(_) => ctx.print(&format!("{}/{name} scaled\n", kind_ref(t.kind))),
                Err(e) => {
                    ctx.report(&e);
                    failed = true;
                }
            }
        }
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

// ------------------------------------------------------ cordon/uncordon

/// Sets or clears `spec.unschedulable` on a node; prints what happened.
pub async fn set_unschedulable(ctx: &mut Ctx<'_>, names: &[String], cordon: bool) -> Result<()> {
    if names.is_empty() {
        return Err(CliError::local("a node name is required"));
    }
    let client = ctx.client()?;
    let node = resolve_kind("node")?;
    for arg in names {
        let name = match arg.split_once('/') {
            Some(("node" | "nodes" | "no", n)) => n,
            Some(_) => return Err(CliError::local(format!("{arg} is not a node"))),
            None => arg.as_str(),
        };
        let (_, outcome) = modify(&client, node, "", name, |o| {
            let now = at(o, &["spec", "unschedulable"]).as_bool().unwrap_or(false);
            if now == cordon {
                return Ok(Change::Unchanged);
            }
            let spec = object_at(o, &["spec"]);
            if cordon {
                spec.insert("unschedulable".into(), Value::Bool(true));
            } else {
                spec.remove("unschedulable");
            }
            Ok(Change::Write)
        })
        .await?;
        let verb = if cordon { "cordoned" } else { "uncordoned" };
        match outcome {
            Change::Write => ctx.print(&format!("node/{name} {verb}\n")),
            Change::Unchanged => ctx.print(&format!("node/{name} already {verb}\n")),
        }
        ctx.flush();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn meta_args_split() {
        let (r, c) =
            split_meta_args(&strings(&["pod", "web", "app=x", "tier-", "example.com/owner-"])).unwrap();
        assert_eq!(r, strings(&["pod", "web"]));
        assert_eq!(
            c,
            vec![
                MetaChange::Set("app".into(), "x".into()),
                MetaChange::Remove("tier".into()),
                MetaChange::Remove("example.com/owner".into()),
            ]
        );
        let (r, _) = split_meta_args(&strings(&["deploy/my-web", "a=b"])).unwrap();
        assert_eq!(r, strings(&["deploy/my-web"]));
        assert!(split_meta_args(&strings(&["pod", "web"])).is_err());
        assert!(split_meta_args(&strings(&["pod", "a=b", "web"])).is_err());
    }

    #[test]
    fn meta_changes_need_overwrite() {
        let mut m = json!({"app": "web"}).as_object().cloned().unwrap_or_default();
        let mut missing = Vec::new();
        let e = apply_meta_changes(
            &mut m,
            &[MetaChange::Set("app".into(), "api".into())],
            false,
            &mut missing,
        )
        .unwrap_err();
        assert_eq!(
            e.line().as_deref(),
            Some("error: 'app' already has a value (web), and --overwrite is false")
        );
        // Setting the same value is no change and needs no --overwrite.
        assert!(!apply_meta_changes(
            &mut m,
            &[MetaChange::Set("app".into(), "web".into())],
            false,
            &mut missing
        )
        .unwrap());
        assert!(apply_meta_changes(
            &mut m,
            &[MetaChange::Set("app".into(), "api".into())],
            true,
            &mut missing
        )
        .unwrap());
        assert_eq!(m["app"], "api");
        assert!(
            !apply_meta_changes(&mut m, &[MetaChange::Remove("nope".into())], false, &mut missing).unwrap()
        );
        assert_eq!(missing, vec!["nope".to_string()]);
    }

    #[test]
    fn label_syntax() {
        assert!(validate_label("app", "web").is_ok());
        assert!(validate_label("example.com/tier", "").is_ok());
        assert!(validate_label("-bad", "x").is_err());
        assert!(validate_label("app", "has space").is_err());
    }

    #[test]
    fn images() {
        let mut spec = json!({"initContainers": [{"name": "init", "image": "a"}],
                              "containers": [{"name": "web", "image": "a"}, {"name": "side", "image": "a"}]});
        assert!(set_images(&mut spec, &[("web".into(), "b".into())]).unwrap());
        assert_eq!(spec["containers"][0]["image"], "b");
        assert_eq!(spec["containers"][1]["image"], "a");
        assert!(!set_images(&mut spec, &[("web".into(), "b".into())]).unwrap());
        assert!(set_images(&mut spec, &[("*".into(), "c".into())]).unwrap());
        assert_eq!(spec["initContainers"][0]["image"], "c");
        let e = set_images(&mut spec, &[("nope".into(), "c".into())]).unwrap_err();
        assert_eq!(
            e.line().as_deref(),
            Some("error: unable to find container named \"nope\"")
        );
    }

    #[test]
    fn object_at_creates_maps() {
        let mut v = json!({"metadata": {"labels": null}});
        object_at(&mut v, &["metadata", "labels"]).insert("a".into(), json!("b"));
        object_at(&mut v, &["spec", "template"]).insert("x".into(), json!(1));
        assert_eq!(
            v,
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"template": {"x": 1}}})
        );
    }
}
