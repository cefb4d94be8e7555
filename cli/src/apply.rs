//! `rkctl apply -f FILE|DIR|-`.
//!
//! Client-side apply, as kubectl did it before server-side apply: an object
//! that does not exist is created with the manifest recorded in its
//! last-applied annotation; one that exists is updated to the three-way
//! merge of that record, the manifest and the live object (see
//! [`crate::merge`]), with the live resourceVersion as a precondition, or
//! left alone when the merge changes nothing. An object created some other
//! way has no record: apply warns, merges as if the record were empty and
//! writes the record.

use crate::args::kind_ref;
use crate::error::{CliError, Result};
use crate::manifest::{parse_source_ordered, read_sources, Manifest};
use crate::merge::{last_applied, three_way, with_last_applied, LAST_APPLIED};
use crate::output::str_at;
use crate::Ctx;
use rk_api::resources::{by_api_version_kind, ResourceKind};
use rk_api::ApiError;
use rk_client::Client;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them, or - for stdin (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<String>,
    /// none, client (print what would happen) or server (validate on the
    /// server without persisting).
    #[arg(
        long = "dry-run",
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "client"
    )]
    pub dry_run: Option<String>,
}

/// `--dry-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    None,
    Client,
    Server,
}

impl DryRun {
    pub fn parse(v: Option<&str>) -> Result<DryRun> {
        match v {
            None | Some("none") | Some("false") => Ok(DryRun::None),
            Some("client") | Some("true") => Ok(DryRun::Client),
            Some("server") => Ok(DryRun::Server),
            Some(other) => Err(CliError::local(format!(
                "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
            ))),
        }
    }

    /// What kubectl appends to its result lines.
    pub fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }
}

pub async fn run(ctx: &mut Ctx<'_>, a: ApplyArgs) -> Result<()> {
    if a.files.is_empty() {
        return Err(CliError::local("must specify -f"));
    }
    let dry = DryRun::parse(a.dry_run.as_deref())?;
    let sources = read_sources(&a.files)?;
    let parsed: Vec<_> = sources.iter().flat_map(parse_source_ordered).collect();
    if parsed.is_empty() {
        return Err(CliError::local("no objects passed to apply"));
    }
    let mut failed = false;
    let mut target: Option<(Client, String)> = None;
    for item in parsed {
        let m = match item {
            Ok(m) => m,
            Err(line) => {
                ctx.eprint_line(&line);
                failed = true;
                continue;
            }
        };
        let (client, ns) = match &target {
            Some(t) => t.clone(),
            None => {
                let c = ctx.client()?;
                let t = (c, ctx.namespace());
                target = Some(t.clone());
                t
            }
        };
        let explicit = ctx.namespace_flag.is_some();
        let mut warnings = Vec::new();
        let result = apply_one(&client, &m, &ns, explicit, dry, &mut warnings).await;
        for w in &warnings {
            ctx.eprint_line(w);
        }
        match result {
            Ok(line) => {
                ctx.print(&line);
                ctx.print("\n");
                ctx.flush();
            }
            Err(e) => {
                ctx.report(&e);
                failed = true;
                // Without a server there is nothing more to try.
                if matches!(&e, CliError::Api(api) if api.message.starts_with("Unable to connect")) {
                    return Err(CliError::Reported);
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

/// Wraps a server error with where it came from: `error when creating
/// "web.yaml" (line 12): ...`. Connection failures are left as they are.
fn in_context(e: ApiError, action: &str, m: &Manifest) -> CliError {
    if e.message.starts_with("Unable to connect") {
        return CliError::Api(e);
    }
    let line = e
        .field
        .as_deref()
        .and_then(|f| m.line_of(f))
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default();
    let message = format!("error when {action} \"{}\"{line}: {}", m.source, e.message);
    CliError::Api(ApiError { message, ..e })
}

/// A manifest checked and resolved against the kinds rk serves.
pub(crate) struct Resolved {
    /// The manifest, with its namespace filled in (or removed, for a
    /// cluster-scoped kind).
    pub obj: Value,
    pub kind: &'static ResourceKind,
    pub name: String,
    /// "" for cluster-scoped kinds.
    pub ns: String,
    /// `deployment.apps/web`.
    pub label: String,
}

/// Checks that a manifest names a kind and an object, and resolves its
/// namespace: the manifest's, else `default_ns`.
pub(crate) fn resolve(m: &Manifest, default_ns: &str, explicit_ns: bool) -> Result<Resolved> {
    let mut obj = m.object.clone();
    let api_version = str_at(&obj, &["apiVersion"]).to_string();
    let kind = str_at(&obj, &["kind"]).to_string();
    let mut missing = Vec::new();
    if api_version.is_empty() {
        missing.push("apiVersion not set");
    }
    if kind.is_empty() {
        missing.push("kind not set");
    }
    if !missing.is_empty() {
        return Err(CliError::local(format!(
            "error validating \"{}\": error validating data: [{}]",
            m.source,
            missing.join(", ")
        )));
    }
    let name = str_at(&obj, &["metadata", "name"]).to_string();
    let obj_ns = str_at(&obj, &["metadata", "namespace"]).to_string();
    let ns = if obj_ns.is_empty() {
        default_ns.to_string()
    } else {
        obj_ns.clone()
    };
    let Some(rk) = by_api_version_kind(&api_version, &kind) else {
        return Err(CliError::local(format!(
            "resource mapping not found for name: \"{name}\" namespace: \"{ns}\" from \"{}\": no matches for kind \"{kind}\" in version \"{api_version}\"",
            m.source
        )));
    };
    if name.is_empty() {
        return Err(CliError::local(format!(
            "error when retrieving current configuration of {} from \"{}\": resource name may not be empty",
            kind_ref(rk),
            m.source
        )));
    }
    let ns = if rk.namespaced {
        if explicit_ns && !obj_ns.is_empty() && obj_ns != default_ns {
            return Err(CliError::local(format!(
                "the namespace from the provided object \"{obj_ns}\" does not match the namespace \"{default_ns}\". You must pass '--namespace={obj_ns}' to perform this operation."
            )));
        }
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        ns
    } else {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
        String::new()
    };
    let label = format!("{}/{name}", kind_ref(rk));
    Ok(Resolved {
        obj,
        kind: rk,
        name,
        ns,
        label,
    })
}

/// What applying a manifest to a live object amounts to.
pub(crate) struct Merged {
    /// The object to write: the three-way merge, with the live identity.
    pub desired: Value,
    /// Whether `desired` says nothing `live` does not already say.
    pub unchanged: bool,
    /// Set when the live object lacks the last-applied annotation.
    pub warning: Option<String>,
}

/// Merges the manifest `obj` into `live` (see [`crate::merge`]).
pub(crate) fn merge_into_live(r: &Resolved, live: &Value) -> Merged {
    let original = last_applied(live);
    let warning = original.is_none().then(|| {
        format!(
            "Warning: resource {}/{} is missing the {LAST_APPLIED} annotation which is required by rkctl apply. rkctl apply should only be used on resources created declaratively by rkctl apply. The missing annotation will be patched automatically.",
            r.kind.plural, r.name
        )
    });
    let modified = with_last_applied(&r.obj);
    let merged = three_way(original.as_ref(), &modified, live);
    let desired = with_live_identity(merged, live);
    let (a, b) = (comparable(&desired), comparable(live));
    let unchanged = is_subset(&a, &b) && is_subset(&b, &a);
    Merged {
        desired,
        unchanged,
        warning,
    }
}

/// Applies one object; returns the line to print. Warnings go to
/// `warnings`.
async fn apply_one(
    client: &Client,
    m: &Manifest,
    default_ns: &str,
    explicit_ns: bool,
    dry: DryRun,
    warnings: &mut Vec<String>,
) -> Result<String> {
    let r = resolve(m, default_ns, explicit_ns)?;
    let resource = r.kind.group_resource();
    let (ns, name, label) = (&r.ns, &r.name, &r.label);
    // A concurrent writer can slip in between the read and the write (the
    // object appears after the NotFound, or changes after the GET): read
    // again and redo the decision a few times before giving up.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let retry = attempt < 3;
        let live = match client.get(&resource, ns, name).await {
            Ok(live) => live,
            Err(e) if e.reason == rk_api::Reason::NotFound => {
                let obj = with_last_applied(&r.obj);
                let r = match dry {
                    DryRun::Client => Ok(Value::Null),
                    DryRun::Server => client.create_opts(&resource, &obj, true).await,
                    DryRun::None => client.create(&resource, &obj).await,
                };
                match r {
                    Ok(_) => return Ok(format!("{label} created{}", dry.suffix())),
                    Err(e) if e.reason == rk_api::Reason::AlreadyExists && retry => continue,
                    Err(e) => return Err(in_context(e, "creating", m)),
                }
            }
            Err(e) => {
                if e.message.starts_with("Unable to connect") {
                    return Err(CliError::Api(e));
                }
                let message = format!(
                    "error when retrieving current configuration of {label} from \"{}\": {}",
                    m.source, e.message
                );
                return Err(CliError::Api(ApiError { message, ..e }));
            }
        };
        let merged = merge_into_live(&r, &live);
        if merged.unchanged {
            return Ok(format!("{label} unchanged{}", dry.suffix()));
        }
        let r = match dry {
            DryRun::Client => Ok(Value::Null),
            DryRun::Server => client.update_opts(&resource, &merged.desired, false, true).await,
            DryRun::None => client.update(&resource, &merged.desired).await,
        };
        match r {
            Ok(_) => {
                warnings.extend(merged.warning);
                return Ok(format!("{label} configured{}", dry.suffix()));
            }
            Err(e) if matches!(e.reason, rk_api::Reason::Conflict | rk_api::Reason::NotFound) && retry => {
                continue
            }
            Err(e) => return Err(in_context(e, "updating", m)),
        }
    }
}

/// The manifest with the live object's resourceVersion (a precondition:
/// a concurrent change makes the update fail with Conflict rather than be
/// overwritten) and uid.
pub fn with_live_identity(mut obj: Value, live: &Value) -> Value {
    let live_meta = live.get("metadata");
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["resourceVersion", "uid"] {
            match live_meta.and_then(|m| m.get(key)) {
                Some(v) => {
                    meta.insert(key.into(), v.clone());
                }
                None => {
                    meta.remove(key);
                }
            }
        }
    }
    obj
}

/// The parts of a manifest that apply compares against the live object:
/// everything but server-managed metadata and status.
pub fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "resourceVersion",
                "uid",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                meta.remove(k);
            }
        }
    }
    v
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether every field `want` sets has the same value in `have`: objects
/// compare key by key (keys `want` lacks are ignored), lists element by
/// element with equal lengths, numbers by value. An empty or null value in
/// `want` also matches an absent field.
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, wv)| match h.get(k) {
            Some(hv) => is_subset(wv, hv),
            None => is_empty_value(wv),
        }),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a == b || (a.as_f64().is_some() && a.as_f64() == b.as_f64()),
        (Value::Null, Value::Null) => true,
        (w, h) if is_empty_value(w) && is_empty_value(h) => true,
        (w, h) => w == h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "42",
                         "generation": 3, "creationTimestamp": "2024-03-01T00:00:00Z",
                         "labels": {"app": "web", "extra": "x"}},
            "spec": {"replicas": 2, "revisionHistoryLimit": 10,
                     "template": {"spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Always"}]}}},
            "status": {"replicas": 2}
        })
    }

    #[test]
    fn subset_matches_when_manifest_fields_agree() {
        let manifest = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "annotations": {}},
            "spec": {"replicas": 2.0, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            "status": {"replicas": 7}
        });
        assert!(is_subset(&comparable(&manifest), &live()));
    }

    #[test]
    fn subset_ignores_server_metadata() {
        let mut manifest = live();
        manifest["metadata"]["resourceVersion"] = json!("1");
        manifest["metadata"]["uid"] = json!("other");
        manifest["metadata"]["generation"] = json!(1);
        assert!(!is_subset(&manifest, &live()));
        assert!(is_subset(&comparable(&manifest), &live()));
    }

    #[test]
    fn subset_detects_changes() {
        let changed = [
            json!({"spec": {"replicas": 3}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "httpd"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c"}, {"name": "d"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": []}}}}),
            json!({"metadata": {"labels": {"app": "api"}}}),
            json!({"spec": {"paused": true}}),
            json!({"spec": {"replicas": "2"}}),
        ];
        for c in changed {
            assert!(!is_subset(&comparable(&c), &live()), "{c}");
        }
        assert!(is_subset(&json!({"spec": {"paused": null, "x": []}}), &live()));
    }

    #[test]
    fn update_carries_live_identity() {
        let manifest = json!({"metadata": {"name": "web", "resourceVersion": "1"}, "spec": {}});
        let out = with_live_identity(manifest, &live());
        assert_eq!(out["metadata"]["resourceVersion"], "42");
        assert_eq!(out["metadata"]["uid"], "u-1");
        assert_eq!(out["metadata"]["name"], "web");
    }

    #[test]
    fn dry_run_values() {
        assert_eq!(DryRun::parse(None).unwrap(), DryRun::None);
        assert_eq!(DryRun::parse(Some("client")).unwrap(), DryRun::Client);
        assert_eq!(DryRun::parse(Some("server")).unwrap(), DryRun::Server);
        assert!(DryRun::parse(Some("maybe")).is_err());
        assert_eq!(DryRun::Server.suffix(), " (server dry run)");
    }

    #[test]
    fn errors_name_file_and_line() {
        let doc = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        imagee: x\n";
        let m = Manifest {
            object: Value::Null,
            source: "web.yaml".into(),
            doc_text: doc.into(),
            start_line: 3,
            path_prefix: String::new(),
        };
        let e = ApiError {
            reason: rk_api::Reason::BadRequest,
            message: "strict decoding error: unknown field \"spec.template.spec.containers[0].imagee\""
                .into(),
            field: Some("spec.template.spec.containers[0].imagee".into()),
        };
        let line = in_context(e, "creating", &m).line().unwrap_or_default();
        assert_eq!(
            line,
            "Error from server (BadRequest): error when creating \"web.yaml\" (line 12): strict decoding error: unknown field \"spec.template.spec.containers[0].imagee\""
        );
    }
}
