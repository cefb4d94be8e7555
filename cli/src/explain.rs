//! `rkctl explain KIND[.FIELD...]`: the fields of a kind, their types and
//! descriptions, laid out as kubectl prints them.
//!
//! The schema is generated from the very types the API server decodes
//! every object into (`rk_api::validate` strictly decodes into
//! k8s-openapi's structs and rejects fields they lack), through their
//! `schemars::JsonSchema` impls, which carry Kubernetes' own field
//! descriptions. So explain lists exactly the fields the server accepts,
//! with no second, hand-written schema to drift from them. `root_schema`
//! mirrors the kind → type table of `rk_api::validate`; a test checks it
//! covers every kind the registry serves.
//!
//! The schema is compiled into rkctl rather than fetched from the server
//! (kubectl reads /openapi/v3): client and server are built from the same
//! `rk-api`, and explain then works without a cluster.

use crate::args::resolve_kind;
use crate::error::{CliError, Result};
use crate::Ctx;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod, Secret};
use k8s_openapi::schemars::{generate::SchemaSettings, JsonSchema};
use rk_api::resources::ResourceKind;
use serde_json::{Map, Value};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// KIND, or KIND.FIELD.FIELD... (e.g. pod.spec.containers).
    #[arg(value_name = "KIND[.FIELD...]")]
    resource: String,
    /// List the fields of every field below, without descriptions.
    #[arg(long)]
    recursive: bool,
}

/// Kind → the typed struct the server decodes it into, as in
/// `rk_api::validate`'s dispatch.
fn root_schema(kind: &ResourceKind) -> Option<Value> {
    fn of<T: JsonSchema>() -> Value {
        SchemaSettings::draft2020_12()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value()
    }
    Some(match kind.kind {
        "Namespace" => of::<Namespace>(),
        "Node" => of::<Node>(),
        "Pod" => of::<Pod>(),
        "ConfigMap" => of::<ConfigMap>(),
        "Secret" => of::<Secret>(),
        "Event" => of::<Event>(),
        "Deployment" => of::<Deployment>(),
        "ReplicaSet" => of::<ReplicaSet>(),
        "DaemonSet" => of::<DaemonSet>(),
        "ControllerRevision" => of::<ControllerRevision>(),
        "Job" => of::<Job>(),
        "CronJob" => of::<CronJob>(),
        "Lease" => of::<Lease>(),
        _ => return None,
    })
}

/// A generated schema: the kind's own and the definitions it refers to.
struct Schema {
    root: Value,
    defs: Map<String, Value>,
}

/// The definition name a `$ref` points at (`#/$defs/NAME`).
fn ref_name(s: &Value) -> Option<&str> {
    s.get("$ref")?.as_str()?.rsplit('/').next()
}

/// The last dotted segment of a definition name: `Container` for
/// `io.k8s.api.core.v1.Container`, as kubectl names types.
fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn str_of<'a>(s: &'a Value, key: &str) -> Option<&'a str> {
    s.get(key).and_then(Value::as_str)
}

impl Schema {
    /// Follows `$ref`s to the schema they name.
    fn resolve<'a>(&'a self, mut s: &'a Value) -> &'a Value {
        // Bounded: a definition that only refers on to others ends somewhere.
        for _ in 0..16 {
            match ref_name(s).and_then(|n| self.defs.get(n)) {
                Some(d) => s = d,
                None => break,
            }
        }
        s
    }

    /// The object schema a field's children live in: through references,
    /// array items and map values (kubectl walks `containers.name` the
    /// same way).
    fn element<'a>(&'a self, s: &'a Value) -> &'a Value {
        let mut s = self.resolve(s);
        for _ in 0..16 {
            let next = match str_of(s, "type") {
                Some("array") => s.get("items"),
                Some("object") if s.get("properties").is_none() => {
                    s.get("additionalProperties").filter(|v| v.is_object())
                }
                _ => None,
            };
            match next {
                Some(n) => s = self.resolve(n),
                None => break,
            }
        }
        s
    }

    /// The type as kubectl prints it: `string`, `[]Container`,
    /// `map[string]string`, `ObjectMeta`, `IntOrString`, `Quantity`.
    fn type_name(&self, s: &Value) -> String {
        if let Some(name) = ref_name(s) {
            let Some(def) = self.defs.get(name) else {
                return short(name).to_string();
            };
            let primitive = matches!(
                str_of(def, "type"),
                Some("string" | "integer" | "number" | "boolean")
            );
            // Named scalars (Time, MicroTime) read as their JSON type;
            // IntOrString and Quantity keep their names, as in kubectl.
            if primitive && def.get("x-kubernetes-int-or-string").is_none() {
                return self.type_name(def);
            }
            return short(name).to_string();
        }
        if s.get("x-kubernetes-int-or-string").is_some() {
            return "IntOrString".to_string();
        }
        match str_of(s, "type") {
            Some("array") => match s.get("items") {
                Some(items) => format!("[]{}", self.type_name(items)),
                None => "[]Object".to_string(),
            },
            Some("object") => match s.get("additionalProperties").filter(|v| v.is_object()) {
                Some(v) if s.get("properties").is_none() => format!("map[string]{}", self.type_name(v)),
                _ => "Object".to_string(),
            },
            Some(t) => t.to_string(),
            None => "Object".to_string(),
        }
    }

    /// The fields of an object schema, sorted, with whether each is required.
    fn fields<'a>(&'a self, s: &'a Value) -> Vec<(&'a str, &'a Value, bool)> {
        let s = self.element(s);
        let mut required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if std::ptr::eq(s, &self.root) {
            // k8s-openapi lists a kind's metadata and spec as required only
            // because its Rust fields are not Options; it decodes their
            // absence as empty, and Kubernetes' schema does not require them.
            required.retain(|f| *f != "metadata" && *f != "spec");
        }
        let mut out: Vec<(&str, &Value, bool)> = s
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.as_str(), v, required.contains(&k.as_str())))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// Greedy word wrap of each line of `text` to `width` columns, each line
/// prefixed with `indent`; blank lines are kept as paragraph breaks.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    for line in text.trim_end().lines() {
        let mut cur = String::new();
        for word in line.split_whitespace() {
            if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
                out.push_str(indent);
                out.push_str(&cur);
                out.push('\n');
                cur.clear();
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        if cur.is_empty() {
            out.push('\n');
        } else {
            out.push_str(indent);
            out.push_str(&cur);
            out.push('\n');
        }
    }
    out
}

const WIDTH: usize = 76;

/// The text of `rkctl explain`: `path` is the field path after the kind.
pub fn explain(kind: &ResourceKind, path: &[&str], recursive: bool) -> Result<String> {
    let root =
        root_schema(kind).ok_or_else(|| CliError::local(format!("no schema for kind {}", kind.kind)))?;
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let schema = Schema { root, defs };
    // Walk the path: each step looks the name up among the fields of
    // the previous step's (element) type.
    let mut field: Option<(&str, &Value)> = None;
    let mut at = &schema.root;
    for name in path {
        let fields = schema.fields(at);
        let Some((n, s, _)) = fields.into_iter().find(|(n, _, _)| n == name) else {
            return Err(CliError::local(format!("field \"{name}\" does not exist")));
        };
        field = Some((n, s));
        at = s;
    }

    let mut out = String::new();
    if !kind.group.is_empty() {
        out.push_str(&format!("GROUP:      {}\n", kind.group));
    }
    out.push_str(&format!("KIND:       {}\n", kind.kind));
    out.push_str(&format!("VERSION:    {}\n\n", kind.version));
    let element = schema.element(at);
    let mut description = String::new();
    if let Some((name, s)) = field {
        out.push_str(&format!("FIELD: {name} <{}>\n\n", schema.type_name(s)));
        // A field's own words, then its type's (kubectl prints both).
        if let Some(d) = str_of(s, "description") {
            description.push_str(d);
            description.push('\n');
        }
        if !std::ptr::eq(element, s) {
            if let Some(d) = str_of(element, "description") {
                description.push_str(d);
                description.push('\n');
            }
        }
    } else if let Some(d) = str_of(&schema.root, "description") {
        description.push_str(d);
    }
    out.push_str("DESCRIPTION:\n");
    if description.trim().is_empty() {
        out.push_str("    <empty>\n");
    } else {
        out.push_str(&wrap(&description, WIDTH, "    "));
    }
    let fields = schema.fields(at);
    if !fields.is_empty() {
        out.push_str("\nFIELDS:\n");
        if recursive {
            let mut seen = Vec::new();
            recurse(&schema, at, 1, &mut seen, &mut out);
        } else {
            for (name, s, required) in fields {
                out.push_str(&field_line(&schema, name, s, required, 1));
                match str_of(s, "description") {
                    Some(d) => out.push_str(&wrap(d, WIDTH, "    ")),
                    None => out.push_str("    <no description>\n"),
                }
                out.push('\n');
            }
        }
    }
    Ok(out)
}

fn field_line(schema: &Schema, name: &str, s: &Value, required: bool, depth: usize) -> String {
    format!(
        "{}{name}\t<{}>{}\n",
        "  ".repeat(depth),
        schema.type_name(s),
        if required { " -required-" } else { "" }
    )
}

/// `--recursive`: names and types only, children indented under their
/// parent. A type already being expanded above is not expanded again
/// (recursive types would never end).
fn recurse<'a>(schema: &'a Schema, s: &'a Value, depth: usize, seen: &mut Vec<&'a Value>, out: &mut String) {
    let element = schema.element(s);
    if seen.iter().any(|v| std::ptr::eq(*v, element)) {
        return;
    }
    seen.push(element);
    for (name, f, required) in schema.fields(s) {
        out.push_str(&field_line(schema, name, f, required, depth));
        recurse(schema, f, depth + 1, seen, out);
    }
    seen.pop();
}

pub fn run(ctx: &mut Ctx<'_>, a: ExplainArgs) -> Result<()> {
    let mut parts = a.resource.split('.');
    let kind = resolve_kind(parts.next().unwrap_or(""))?;
    let path: Vec<&str> = parts.collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(CliError::local(format!("invalid field path \"{}\"", a.resource)));
    }
    let text = explain(kind, &path, a.recursive)?;
    ctx.print(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk_api::resources;

    fn kind(name: &str) -> &'static ResourceKind {
        resolve_kind(name).expect("kind")
    }

    #[test]
    fn every_served_kind_has_a_schema() {
        for k in resources::all() {
            let text = explain(k, &[], false).unwrap_or_else(|e| panic!("{}: {e:?}", k.kind));
            assert!(text.contains(&format!("KIND:       {}\n", k.kind)), "{text}");
            assert!(text.contains("\n  apiVersion\t<string>\n"), "{}: {text}", k.kind);
            assert!(
                text.contains("\n  metadata\t<ObjectMeta>\n"),
                "{}: {text}",
                k.kind
            );
        }
    }

    #[test]
    fn kind_header_and_fields() {
        let text = explain(kind("deployments"), &[], false).expect("explain");
        assert!(
            text.starts_with(
                "GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nDESCRIPTION:\n    \
                 Deployment enables declarative updates for Pods and ReplicaSets.\n\nFIELDS:\n"
            ),
            "{text}"
        );
        for line in [
            "  metadata\t<ObjectMeta>\n",
            "  spec\t<DeploymentSpec>\n",
            "  status\t<DeploymentStatus>\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        // Core kinds have no group line.
        assert!(explain(kind("po"), &[], false)
            .expect("explain")
            .starts_with("KIND:       Pod\nVERSION:    v1\n"));
    }

    #[test]
    fn field_paths_go_through_lists_and_mark_required_fields() {
        let text = explain(kind("pod"), &["spec", "containers"], false).expect("explain");
        assert!(text.contains("FIELD: containers <[]Container>\n"), "{text}");
        // The field's description, then its element type's.
        assert!(
            text.contains("List of containers belonging to the pod."),
            "{text}"
        );
        assert!(text.contains("A single application container"), "{text}");
        for line in [
            "  name\t<string> -required-\n",
            "  args\t<[]string>\n",
            "  env\t<[]EnvVar>\n",
            "  resources\t<ResourceRequirements>\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        // Through the list to one of the element's fields: a leaf has no FIELDS.
        let leaf = explain(kind("pod"), &["spec", "containers", "image"], false).expect("explain");
        assert!(leaf.contains("FIELD: image <string>\n"), "{leaf}");
        assert!(!leaf.contains("FIELDS:"), "{leaf}");
        let res = explain(kind("pod"), &["spec", "containers", "resources"], false).expect("explain");
        assert!(res.contains("  limits\t<map[string]Quantity>\n"), "{res}");
        let meta = explain(kind("cm"), &["metadata"], false).expect("explain");
        assert!(meta.contains("  creationTimestamp\t<string>\n"), "{meta}");
        assert!(meta.contains("  labels\t<map[string]string>\n"), "{meta}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert_eq!(
            explain(kind("pod"), &["spec", "foo"], false).unwrap_err(),
            CliError::local("field \"foo\" does not exist")
        );
        assert_eq!(
            explain(kind("deploy"), &["spec", "strategy", "nope"], false).unwrap_err(),
            CliError::local("field \"nope\" does not exist")
        );
    }

    #[test]
    fn recursive_lists_nested_fields_without_descriptions() {
        let text = explain(kind("deployment"), &["spec", "strategy"], true).expect("explain");
        assert!(
            text.ends_with(
                "FIELDS:\n  rollingUpdate\t<RollingUpdateDeployment>\n    maxSurge\t<IntOrString>\n    \
                 maxUnavailable\t<IntOrString>\n  type\t<string>\n"
            ),
            "{text}"
        );
        // A whole Pod, recursively: finite, and deep.
        let pod = explain(kind("pod"), &[], true).expect("explain");
        assert!(pod.contains("\n          name\t<string> -required-\n"), "{pod}");
    }

    #[test]
    fn wraps_words_and_keeps_paragraphs() {
        assert_eq!(
            wrap("one two three four\n\nfive", 9, "  "),
            "  one two\n  three\n  four\n\n  five\n"
        );
        assert_eq!(
            wrap("averyveryverylongword x", 5, ""),
            "averyveryverylongword\nx\n"
        );
    }
}
