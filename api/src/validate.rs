//! Decoding, defaulting and validation of objects on create and update.
//!
//! Every write goes through [`validate_create`] or [`validate_update`]:
//!
//! 1. the JSON is strictly decoded into the kind's k8s-openapi type
//!    (malformed and unknown fields are `BadRequest`, see `strict`);
//! 2. Kubernetes' defaults are applied (`restartPolicy: Always`,
//!    `replicas: 1`, ...);
//! 3. the object is validated, collecting every problem into one `Invalid`
//!    error worded like the Kubernetes API server's;
//! 4. on update, immutable fields are compared against the stored object;
//! 5. the typed value is serialized back, so the stored JSON is normalized.
//!
//! Per-kind rules live in submodules: `pod` (pod specs, shared by every pod
//! template), `workloads` (Deployment, ReplicaSet, DaemonSet, Job, CronJob,
//! ControllerRevision), `config` (ConfigMap, Secret) and `simple` (Namespace,
//! Node, Event, Lease).

mod config;
mod names;
mod pod;
mod simple;
mod strict;
mod workloads;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceKind;

pub use names::{
    is_config_map_key, is_dns1123_label, is_dns1123_subdomain, is_label_value, is_qualified_name,
};
pub use pod::default_image_pull_policy;
pub use workloads::{
    job_default_selector, resolve_time_zone, validate_cron_schedule, CONTROLLER_UID_LABEL, JOB_NAME_LABEL,
    LEGACY_CONTROLLER_UID_LABEL, LEGACY_JOB_NAME_LABEL,
};

/// Parse, reject unknown/malformed fields, apply defaults, and validate one
/// object for create. Input is the whole object (apiVersion, kind, metadata,
/// spec, status...). Output is the defaulted object as JSON.
/// `kind` is the registry entry the caller resolved from apiVersion/kind.
pub fn validate_create(kind: &ResourceKind, obj: Value) -> Result<Value, ApiError> {
    dispatch(kind, obj, None)
}

/// Same for an update; additionally enforces immutable fields against `old`
/// (the stored object).
///
/// A `metadata.name` or `metadata.namespace` missing from `new` is taken
/// from `old` (the request URL names the object); `uid` and
/// `creationTimestamp` are only compared when `new` sets them.
pub fn validate_update(kind: &ResourceKind, old: &Value, new: Value) -> Result<Value, ApiError> {
    dispatch(kind, new, Some(old))
}

/// True if two objects' `spec` differ in a way that must bump
/// metadata.generation: the JSON of `spec` is compared; kinds without a spec
/// (ConfigMap, Secret, ControllerRevision) compare `data`, `binaryData`,
/// `stringData` and `immutable`; a Namespace never bumps its generation.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let is_namespace = |v: &Value| v.get("kind").and_then(Value::as_str) == Some("Namespace");
    if is_namespace(old) || is_namespace(new) {
        return false;
    }
    let field = |v: &Value, key: &str| v.get(key).cloned().unwrap_or(Value::Null);
    if old.get("spec").is_some() || new.get("spec").is_some() {
        return field(old, "spec") != field(new, "spec");
    }
    ["data", "binaryData", "stringData", "immutable"]
        .iter()
        .any(|key| field(old, key) != field(new, key))
}

/// Collects validation problems as `(field, detail)` pairs worded like
/// Kubernetes' `field.Error`s, so that one request reports all of them.
#[derive(Debug, Default)]
pub(crate) struct Errs {
    causes: Vec<(String, String)>,
}

/// Render a value the way it appears in `Invalid value: ...` messages:
/// strings quoted, numbers bare, structures as JSON.
fn show<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "<unprintable>".to_string())
}

impl Errs {
    fn push(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.causes.push((field.into(), detail.into()));
    }

    /// `field: Invalid value: <value>: <msg>`.
    pub(crate) fn invalid<T: Serialize + ?Sized>(&mut self, field: impl Into<String>, value: &T, msg: &str) {
        self.push(field, format!("Invalid value: {}: {msg}", show(value)));
    }

    /// `field: Required value` or `field: Required value: <msg>`.
    pub(crate) fn required(&mut self, field: impl Into<String>, msg: &str) {
        if msg.is_empty() {
            self.push(field, "Required value");
        } else {
            self.push(field, format!("Required value: {msg}"));
        }
    }

    /// `field: Unsupported value: "x": supported values: "a", "b"`.
    pub(crate) fn unsupported(&mut self, field: impl Into<String>, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        self.push(
            field,
            format!(
                "Unsupported value: \"{value}\": supported values: {}",
                list.join(", ")
            ),
        );
    }

    /// `field: Duplicate value: "x"`.
    pub(crate) fn duplicate(&mut self, field: impl Into<String>, value: &str) {
        self.push(field, format!("Duplicate value: \"{value}\""));
    }

    /// `field: Not found: "x"`.
    pub(crate) fn not_found(&mut self, field: impl Into<String>, value: &str) {
        self.push(field, format!("Not found: \"{value}\""));
    }

    /// `field: Forbidden: <msg>`.
    pub(crate) fn forbidden(&mut self, field: impl Into<String>, msg: &str) {
        self.push(field, format!("Forbidden: {msg}"));
    }

    /// `field: Invalid value: <value>: field is immutable`.
    pub(crate) fn immutable<T: Serialize + ?Sized>(&mut self, field: impl Into<String>, value: &T) {
        self.invalid(field, value, "field is immutable");
    }

    /// Check that an optional number is ≥ 0.
    pub(crate) fn non_negative<N: Into<i64> + Copy + Serialize>(&mut self, field: &str, value: Option<N>) {
        if let Some(v) = value {
            if v.into() < 0 {
                self.invalid(field, &v, "must be greater than or equal to 0");
            }
        }
    }

    /// Check that an optional string is one of `supported` (unset is fine).
    pub(crate) fn one_of(&mut self, field: &str, value: Option<&str>, supported: &[&str]) {
        if let Some(v) = value {
            if !supported.contains(&v) {
                self.unsupported(field, v, supported);
            }
        }
    }

    /// Add problems reported with paths relative to `prefix`.
    pub(crate) fn extend_prefixed(&mut self, prefix: &str, causes: Vec<(String, String)>) {
        for (field, detail) in causes {
            self.push(format!("{prefix}.{field}"), detail);
        }
    }

    fn into_result(self, kind: &ResourceKind, meta: &ObjectMeta) -> Result<(), ApiError> {
        if self.causes.is_empty() {
            return Ok(());
        }
        let name = meta
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(meta.generate_name.as_deref())
            .unwrap_or_default();
        Err(ApiError::invalid_many(&kind.group_kind(), name, &self.causes))
    }
}

/// Validate label keys and values of a labels map at `path`.
pub(crate) fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &str, errs: &mut Errs) {
    for (key, value) in labels.into_iter().flatten() {
        if let Err(e) = is_qualified_name(key) {
            errs.invalid(path, key, &e);
        }
        if let Err(e) = is_label_value(value) {
            errs.invalid(path, value, &e);
        }
    }
}

/// Kubernetes caps the total size of annotations (keys plus values).
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Per-kind defaulting and validation rules, applied by [`process`].
trait Rules: DeserializeOwned + Serialize + Metadata<Ty = ObjectMeta> {
    /// Apply Kubernetes' defaults.
    fn apply_defaults(&mut self) {}

    /// On update, fill in server-managed fields the client may have left out
    /// (e.g. a Job's generated selector) from the stored object.
    fn inherit(&mut self, _old: &Self) {}

    /// Validate the (defaulted) object.
    fn validate(&self, _errs: &mut Errs) {}

    /// Validate an update against the stored object (immutable fields).
    fn validate_update(&self, _old: &Self, _errs: &mut Errs) {}
}

fn dispatch(kind: &ResourceKind, obj: Value, old: Option<&Value>) -> Result<Value, ApiError> {
    match kind.kind {
        "Namespace" => process::<Namespace>(kind, obj, old),
        "Node" => process::<Node>(kind, obj, old),
        "Pod" => process::<Pod>(kind, obj, old),
        "ConfigMap" => process::<ConfigMap>(kind, obj, old),
        "Secret" => process::<Secret>(kind, obj, old),
        "Event" => process::<Event>(kind, obj, old),
        "Deployment" => process::<Deployment>(kind, obj, old),
        "ReplicaSet" => process::<ReplicaSet>(kind, obj, old),
        "DaemonSet" => process::<DaemonSet>(kind, obj, old),
        "ControllerRevision" => process::<ControllerRevision>(kind, obj, old),
        "Job" => process::<Job>(kind, obj, old),
        "CronJob" => process::<CronJob>(kind, obj, old),
        "Lease" => process::<Lease>(kind, obj, old),
        other => Err(ApiError::internal(format!(
            "no validation rules registered for kind {other}"
        ))),
    }
}

/// Check that `apiVersion` and `kind`, when present, agree with `kind`.
fn check_type_meta(kind: &ResourceKind, obj: &Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object() else {
        return Err(ApiError::bad_request(format!(
            "{} must be a JSON object",
            kind.kind
        )));
    };
    let expected_version = kind.api_version();
    match map.get("apiVersion") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if *v == expected_version => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({expected_version})",
            other.as_str().map_or_else(|| other.to_string(), str::to_string)
        ))
            .with_field("apiVersion"))
        }
    }
    match map.get("kind") {
        None | Some(Value::Null) => {}
        Some(Value::String(k)) if k == kind.kind => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({})",
                other.as_str().map_or_else(|| other.to_string(), str::to_string),
                kind.kind
            ))
            .with_field("kind"))
        }
    }
    Ok(())
}

fn process<T: Rules>(kind: &ResourceKind, obj: Value, old: Option<&Value>) -> Result<Value, ApiError> {
    check_type_meta(kind, &obj)?;
    let mut new: T = strict::decode(kind, &obj)?;
    // The stored object was validated when written, so it is decoded
    // leniently; failing here means the store holds something corrupt.
    let old: Option<T> = old
        .map(|o| {
            serde_json::from_value(o.clone())
                .map_err(|e| ApiError::internal(format!("stored {} cannot be decoded: {e}", kind.kind)))
        })
        .transpose()?;
    if let Some(old) = &old {
        inherit_metadata(new.metadata_mut(), old.metadata());
        new.inherit(old);
    }
    default_metadata(kind, new.metadata_mut());
    new.apply_defaults();

    let mut errs = Errs::default();
    validate_metadata(kind, new.metadata(), &mut errs);
    new.validate(&mut errs);
    if let Some(old) = &old {
        validate_metadata_update(new.metadata(), old.metadata(), &mut errs);
        new.validate_update(old, &mut errs);
    }
    errs.into_result(kind, new.metadata())?;
    serde_json::to_value(&new).map_err(|e| ApiError::internal(format!("cannot encode {}: {e}", kind.kind)))
}

fn is_unset(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

/// Take name and namespace from the stored object when the update omits
/// them.
fn inherit_metadata(new: &mut ObjectMeta, old: &ObjectMeta) {
    if is_unset(&new.name) {
        new.name = old.name.clone();
    }
    if is_unset(&new.namespace) {
        new.namespace = old.namespace.clone();
    }
}

fn default_metadata(kind: &ResourceKind, meta: &mut ObjectMeta) {
    if kind.namespaced {
        if is_unset(&meta.namespace) {
            meta.namespace = Some("default".to_string());
        }
    } else {
        // Cluster-scoped objects have no namespace; kubectl happily sends
        // one from the current context, and Kubernetes ignores it.
        meta.namespace = None;
    }
}

/// A syntax check for names, returning Kubernetes' message on failure.
type NameCheck = fn(&str) -> Result<(), String>;

/// The name rule of a kind: (validator, extra length limit).
fn name_rule(kind: &ResourceKind) -> (NameCheck, Option<usize>) {
    match kind.kind {
        "Namespace" => (is_dns1123_label, None),
        // The CronJob controller appends an 11-character suffix to create
        // Job names, which must stay within 63 characters.
        "CronJob" => (is_dns1123_subdomain, Some(52)),
        _ => (is_dns1123_subdomain, None),
    }
}

fn validate_metadata(kind: &ResourceKind, meta: &ObjectMeta, errs: &mut Errs) {
    let (check_name, max_len) = name_rule(kind);
    match meta.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => {
            if let Err(e) = check_name(name) {
                errs.invalid("metadata.name", name, &e);
            } else if let Some(max) = max_len.filter(|max| name.len() > *max) {
                errs.invalid(
                    "metadata.name",
                    name,
                    &format!("must be no more than {max} characters"),
                );
            }
        }
        None => match meta.generate_name.as_deref().filter(|n| !n.is_empty()) {
            Some(prefix) => {
                // The server appends a random suffix, so a trailing '-' is
                // fine; Kubernetes checks the prefix with it masked.
                let masked = match prefix.strip_suffix('-') {
                    Some(p) => format!("{p}a"),
                    None => prefix.to_string(),
                };
                if let Err(e) = check_name(&masked) {
                    errs.invalid("metadata.generateName", prefix, &e);
                }
            }
            None => errs.required("metadata.name", "name or generateName is required"),
        },
    }
    if kind.namespaced {
        if let Some(ns) = meta.namespace.as_deref() {
            if let Err(e) = is_dns1123_label(ns) {
                errs.invalid("metadata.namespace", ns, &e);
            }
        }
    }
    validate_labels(meta.labels.as_ref(), "metadata.labels", errs);
    let mut annotation_size = 0;
    for (key, value) in meta.annotations.iter().flatten() {
        if let Err(e) = is_qualified_name(&key.to_ascii_lowercase()) {
            errs.invalid("metadata.annotations", key, &e);
        }
        annotation_size += key.len() + value.len();
    }
    if annotation_size > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(
            "metadata.annotations",
            format!("Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        );
    }
    for (i, finalizer) in meta.finalizers.iter().flatten().enumerate() {
        if let Err(e) = is_qualified_name(finalizer) {
            errs.invalid(format!("metadata.finalizers[{i}]"), finalizer, &e);
        }
    }
    let mut controllers = 0;
    for (i, owner) in meta.owner_references.iter().flatten().enumerate() {
        let path = format!("metadata.ownerReferences[{i}]");
        for (field, value) in [
            ("apiVersion", &owner.api_version),
            ("kind", &owner.kind),
            ("name", &owner.name),
            ("uid", &owner.uid),
        ] {
            if value.is_empty() {
                errs.invalid(
                    format!("{path}.{field}"),
                    value,
                    &format!("{field} must not be empty"),
                );
            }
        }
        if owner.controller == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        errs.invalid(
            "metadata.ownerReferences",
            &controllers,
            "Only one reference can have Controller set to true",
        );
    }
}

fn validate_metadata_update(new: &ObjectMeta, old: &ObjectMeta, errs: &mut Errs) {
    let changed = |n: &Option<String>, o: &Option<String>| !is_unset(n) && n != o;
    if changed(&new.name, &old.name) {
        errs.immutable("metadata.name", &new.name);
    }
    if changed(&new.namespace, &old.namespace) {
        errs.immutable("metadata.namespace", &new.namespace);
    }
    if !is_unset(&new.uid) && !is_unset(&old.uid) && new.uid != old.uid {
        errs.immutable("metadata.uid", &new.uid);
    }
    if let Some(created) = &new.creation_timestamp {
        if old.creation_timestamp.as_ref() != Some(created) {
            errs.immutable("metadata.creationTimestamp", created);
        }
    }
}

/// Keys present in both maps, for cross-checks such as requests ≤ limits.
pub(crate) fn common_keys<'a, V, W>(
    a: &'a BTreeMap<String, V>,
    b: &'a BTreeMap<String, W>,
) -> BTreeSet<&'a String> {
    a.keys().filter(|k| b.contains_key(*k)).collect()
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the validation tests.

    use super::*;
    use crate::error::Reason;
    use crate::resources::lookup;

    pub(crate) fn kind(name: &str) -> &'static ResourceKind {
        lookup(name).unwrap_or_else(|| panic!("kind {name} not registered"))
    }

    pub(crate) fn create(kind_name: &str, obj: Value) -> Value {
        validate_create(kind(kind_name), obj.clone())
            .unwrap_or_else(|e| panic!("create {kind_name} {obj} failed: {e}"))
    }

    pub(crate) fn create_err(kind_name: &str, obj: Value) -> ApiError {
        match validate_create(kind(kind_name), obj.clone()) {
            Ok(out) => panic!("create {kind_name} {obj} was accepted as {out}"),
            Err(e) => e,
        }
    }

    pub(crate) fn update_err(kind_name: &str, old: &Value, new: Value) -> ApiError {
        match validate_update(kind(kind_name), old, new.clone()) {
            Ok(out) => panic!("update {kind_name} to {new} was accepted as {out}"),
            Err(e) => e,
        }
    }

    pub(crate) fn update(kind_name: &str, old: &Value, new: Value) -> Value {
        validate_update(kind(kind_name), old, new.clone())
            .unwrap_or_else(|e| panic!("update {kind_name} to {new} failed: {e}"))
    }

    /// Assert an `Invalid` error mentions `field` and `needle`.
    pub(crate) fn assert_invalid(err: &ApiError, field: &str, needle: &str) {
        assert_eq!(err.reason, Reason::Invalid, "{}", err.message);
        assert!(
            err.message.contains(&format!("{field}: ")),
            "message {:?} does not name field {field}",
            err.message
        );
        assert!(
            err.message.contains(needle),
            "message {:?} does not contain {needle:?}",
            err.message
        );
    }

    /// Apply a JSON merge patch (RFC 7386) to build test variants.
    pub(crate) fn merge(mut base: Value, patch: Value) -> Value {
        merge_into(&mut base, patch);
        base
    }

    fn merge_into(base: &mut Value, patch: Value) {
        match patch {
            Value::Object(p) => {
                if !base.is_object() {
                    *base = Value::Object(Default::default());
                }
                if let Value::Object(b) = base {
                    for (k, v) in p {
                        if v.is_null() {
                            b.remove(&k);
                        } else {
                            merge_into(b.entry(k).or_insert(Value::Null), v);
                        }
                    }
                }
            }
            other => *base = other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use crate::error::Reason;
    use serde_json::json;

    fn cm(meta: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}})
    }

    #[test]
    fn names_by_kind() {
        let long52 = "a".repeat(52);
        let long53 = "a".repeat(53);
        let long64 = "a".repeat(64);
        let sub253 = format!("{}.{}", "a".repeat(126), "b".repeat(126));
        let cases: &[(&str, &str, bool)] = &[
            ("configmaps", "web", true),
            ("configmaps", "web.v1", true),
            ("configmaps", "Web", false),
            ("configmaps", "-web", false),
            ("configmaps", "web_1", false),
            ("configmaps", &sub253, true),
            ("namespaces", "team-a", true),
            ("namespaces", "team.a", false),
            ("namespaces", &long64, false),
            ("nodes", "node-1.example.com", true),
            ("leases", "a.b", true),
        ];
        for (kind_name, name, ok) in cases {
            let obj = json!({"metadata": {"name": name}});
            let result = validate_create(kind(kind_name), obj);
            assert_eq!(result.is_ok(), *ok, "{kind_name} {name}: {result:?}");
            if let Err(e) = result {
                assert_invalid(&e, "metadata.name", "Invalid value");
            }
        }
        let cron = |name: &str| {
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
                   "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                       "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}})
        };
        create("cronjobs", cron(&long52));
        let err = create_err("cronjobs", cron(&long53));
        assert_invalid(&err, "metadata.name", "must be no more than 52 characters");
    }

    #[test]
    fn name_or_generate_name_required() {
        let err = create_err("configmaps", cm(json!({})));
        assert_invalid(&err, "metadata.name", "Required value");
        assert_eq!(err.field.as_deref(), Some("metadata.name"));

        let out = create("configmaps", cm(json!({"generateName": "web-"})));
        assert_eq!(out["metadata"]["generateName"], "web-");
        assert!(out["metadata"].get("name").is_none());

        let err = create_err("configmaps", cm(json!({"generateName": "Web-"})));
        assert_invalid(&err, "metadata.generateName", "Invalid value: \"Web-\"");
        let err = create_err("namespaces", json!({"metadata": {"generateName": "a.b-"}}));
        assert_invalid(&err, "metadata.generateName", "RFC 1123 label");
        // The message uses generateName when there is no name yet.
        assert!(
            err.message.starts_with("Namespace \"a.b-\" is invalid"),
            "{}",
            err.message
        );
    }

    #[test]
    fn namespace_defaulting_and_scope() {
        let out = create("configmaps", cm(json!({"name": "a"})));
        assert_eq!(out["metadata"]["namespace"], "default");
        let out = create("configmaps", cm(json!({"name": "a", "namespace": "prod"})));
        assert_eq!(out["metadata"]["namespace"], "prod");
        let err = create_err("configmaps", cm(json!({"name": "a", "namespace": "Prod"})));
        assert_invalid(&err, "metadata.namespace", "Invalid value: \"Prod\"");
        let out = create(
            "nodes",
            json!({"metadata": {"name": "n1", "namespace": "default"}}),
        );
        assert!(out["metadata"].get("namespace").is_none(), "{out}");
        let out = create(
            "namespaces",
            json!({"metadata": {"name": "ns1", "namespace": "x"}}),
        );
        assert!(out["metadata"].get("namespace").is_none(), "{out}");
    }

    #[test]
    fn labels_and_annotations() {
        let ok = cm(
            json!({"name": "a", "labels": {"app.kubernetes.io/name": "web", "empty": "", "v": "1.2_3-x"},
                            "annotations": {"example.com/Some-Key": "anything at all / even spaces"}}),
        );
        create("configmaps", ok);
        let cases: &[(Value, &str, &str)] = &[
            (
                json!({"labels": {"a b": "x"}}),
                "metadata.labels",
                "Invalid value: \"a b\"",
            ),
            (
                json!({"labels": {"a": "-x"}}),
                "metadata.labels",
                "Invalid value: \"-x\"",
            ),
            (
                json!({"labels": {"a": "x".repeat(64)}}),
                "metadata.labels",
                "must be no more than 63 characters",
            ),
            (
                json!({"labels": {"Example.com/a": "x"}}),
                "metadata.labels",
                "prefix part",
            ),
            (
                json!({"labels": {"a/b/c": "x"}}),
                "metadata.labels",
                "name part must consist",
            ),
            (
                json!({"annotations": {"a b": "x"}}),
                "metadata.annotations",
                "Invalid value: \"a b\"",
            ),
            (
                json!({"finalizers": ["a b"]}),
                "metadata.finalizers[0]",
                "Invalid value: \"a b\"",
            ),
        ];
        for (meta, field, needle) in cases {
            let meta = merge(json!({"name": "a"}), meta.clone());
            let err = create_err("configmaps", cm(meta));
            assert_invalid(&err, field, needle);
        }
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let err = create_err("configmaps", cm(json!({"name": "a", "annotations": {"k": big}})));
        assert_invalid(&err, "metadata.annotations", "Too long");
    }

    #[test]
    fn owner_references() {
        let owner = |uid: &str, controller: bool| json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": controller});
        create(
            "configmaps",
            cm(json!({"name": "a", "ownerReferences": [owner("u1", true), owner("u2", false)]})),
        );
        let err = create_err(
            "configmaps",
            cm(json!({"name": "a", "ownerReferences": [owner("", true)]})),
        );
        assert_invalid(&err, "metadata.ownerReferences[0].uid", "uid must not be empty");
        let err = create_err(
            "configmaps",
            cm(json!({"name": "a", "ownerReferences": [owner("u1", true), owner("u2", true)]})),
        );
        assert_invalid(&err, "metadata.ownerReferences", "Only one reference");
    }

    #[test]
    fn type_meta_must_match_kind() {
        let err = create_err(
            "configmaps",
            json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
        );
        assert_eq!(err.reason, Reason::BadRequest);
        assert_eq!(err.field.as_deref(), Some("apiVersion"));
        let err = create_err(
            "configmaps",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}}),
        );
        assert_eq!(err.reason, Reason::BadRequest);
        assert_eq!(err.field.as_deref(), Some("kind"));
        let err = create_err("configmaps", json!([1, 2]));
        assert_eq!(err.reason, Reason::BadRequest);
        // apiVersion and kind are filled in when absent.
        let out = create("configmaps", json!({"metadata": {"name": "a"}}));
        assert_eq!(out["apiVersion"], "v1");
        assert_eq!(out["kind"], "ConfigMap");
    }

    #[test]
    fn multiple_errors_are_reported_together() {
        let err = create_err("configmaps", cm(json!({"name": "A", "namespace": "B"})));
        assert_eq!(err.reason, Reason::Invalid);
        assert!(
            err.message.starts_with("ConfigMap \"A\" is invalid: ["),
            "{}",
            err.message
        );
        assert!(err.message.contains("metadata.name: Invalid value: \"A\""));
        assert!(err.message.contains("metadata.namespace: Invalid value: \"B\""));
        assert_eq!(err.field.as_deref(), Some("metadata.name"));
    }

    #[test]
    fn metadata_immutable_on_update() {
        let old = create(
            "configmaps",
            cm(
                json!({"name": "a", "namespace": "ns", "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z"}),
            ),
        );
        // Omitted name/namespace/uid/creationTimestamp are fine.
        let out = update("configmaps", &old, json!({"data": {"k": "v2"}}));
        assert_eq!(out["metadata"]["name"], "a");
        assert_eq!(out["metadata"]["namespace"], "ns");
        update("configmaps", &old, old.clone());

        let cases: &[(Value, &str)] = &[
            (json!({"metadata": {"name": "b"}}), "metadata.name"),
            (json!({"metadata": {"namespace": "other"}}), "metadata.namespace"),
            (json!({"metadata": {"uid": "u2"}}), "metadata.uid"),
            (
                json!({"metadata": {"creationTimestamp": "2025-01-01T00:00:00Z"}}),
                "metadata.creationTimestamp",
            ),
        ];
        for (patch, field) in cases {
            let new = merge(old.clone(), patch.clone());
            let err = update_err("configmaps", &old, new);
            assert_invalid(&err, field, "field is immutable");
        }
        // A uid on only one side is not compared.
        let no_uid = merge(old.clone(), json!({"metadata": {"uid": null}}));
        update(
            "configmaps",
            &no_uid,
            merge(no_uid.clone(), json!({"metadata": {"uid": "u9"}})),
        );
    }

    #[test]
    fn spec_changed_table() {
        let d = |replicas: i64| json!({"kind": "Deployment", "spec": {"replicas": replicas}, "status": {"replicas": 0}});
        let cases: &[(Value, Value, bool)] = &[
            (d(1), d(1), false),
            (d(1), d(2), true),
            (
                d(1),
                merge(
                    d(1),
                    json!({"status": {"replicas": 5}, "metadata": {"labels": {"a": "b"}}}),
                ),
                false,
            ),
            (
                json!({"kind": "ConfigMap", "data": {"a": "1"}}),
                json!({"kind": "ConfigMap", "data": {"a": "1"}}),
                false,
            ),
            (
                json!({"kind": "ConfigMap", "data": {"a": "1"}}),
                json!({"kind": "ConfigMap", "data": {"a": "2"}}),
                true,
            ),
            (
                json!({"kind": "ConfigMap"}),
                json!({"kind": "ConfigMap", "binaryData": {"a": "AA=="}}),
                true,
            ),
            (
                json!({"kind": "Secret", "data": {}}),
                json!({"kind": "Secret", "data": {}, "immutable": true}),
                true,
            ),
            (
                json!({"kind": "Secret", "metadata": {"labels": {}}}),
                json!({"kind": "Secret"}),
                false,
            ),
            (
                json!({"kind": "Namespace", "spec": {"finalizers": ["kubernetes"]}}),
                json!({"kind": "Namespace", "spec": {}}),
                false,
            ),
            (
                json!({"kind": "Pod", "spec": {"nodeName": ""}}),
                json!({"kind": "Pod", "spec": {"nodeName": "n1"}}),
                true,
            ),
        ];
        for (old, new, want) in cases {
            assert_eq!(spec_changed(old, new), *want, "{old} -> {new}");
        }
    }
}
