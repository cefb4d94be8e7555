//! Strict decoding of JSON objects into k8s-openapi types.
//!
//! k8s-openapi's deserializers silently ignore unknown fields and serde_json
//! reports type mismatches without saying where they are. Kubernetes rejects
//! unknown fields (`strict decoding error: unknown field "spec.foo"`) and
//! names the offending field, so this module adds both on top:
//!
//! * unknown fields are found by serializing the typed value back to JSON and
//!   walking the input against that round trip: a key the input has but the
//!   round trip lacks was not understood;
//! * a type mismatch is located by deleting parts of the input until the
//!   error changes, which pins down the smallest subtree that causes it
//!   (k8s-openapi treats every absent field as default, so deleting a part
//!   never introduces a new error).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, Reason};
use crate::resources::ResourceKind;

/// Decode `input` as `T`, rejecting malformed and unknown fields.
pub(crate) fn decode<T: DeserializeOwned + Serialize>(
    kind: &ResourceKind,
    input: &Value,
) -> Result<T, ApiError> {
    // Decoded from the tree in place: `from_value` would take a deep copy.
    let typed: T = <T as serde::Deserialize>::deserialize(input).map_err(|e| {
        let detail = e.to_string();
        let path = locate_error::<T>(input, &detail);
        let message = match &path {
            Some(p) => format!("{p}: {detail}"),
            None => detail,
        };
        let err = ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {message}",
            kind = kind.kind,
            version = kind.version,
        ));
        match path {
            Some(p) => err.with_field(p),
            None => err,
        }
    })?;
    let round_trip = serde_json::to_value(&typed)
        .map_err(|e| ApiError::internal(format!("cannot re-encode {}: {e}", kind.kind)))?;
    if let Some(path) = find_unknown(input, &round_trip) {
        return Err(ApiError {
            reason: Reason::BadRequest,
            message: format!("strict decoding error: unknown field \"{path}\""),
            field: Some(path),
        });
    }
    Ok(typed)
}

/// The path of the first key of `input` that `round_trip` does not have.
///
/// Only key presence matters: values may legitimately differ (a Quantity
/// written as the number `1` comes back as the string `"1"`, times are
/// normalized, and so on). Keys whose value is null, `{}` or `[]` are
/// tolerated because carrying no data they may be dropped by a serializer.
pub(crate) fn find_unknown(input: &Value, round_trip: &Value) -> Option<String> {
    let mut found = unknown_key(input, round_trip)?;
    found.reverse();
    Some(format_path(&found))
}

/// [`find_unknown`]'s walk. The path of what it finds is collected innermost
/// first, on the way back: every object being created is walked, and
/// formatting the path of each key it passes cost more than the walk.
fn unknown_key(input: &Value, round_trip: &Value) -> Option<Vec<Segment>> {
    match (input, round_trip) {
        (Value::Object(inp), Value::Object(out)) => inp.iter().find_map(|(key, value)| {
            if is_empty_value(value) {
                return None;
            }
            let mut path = match out.get(key) {
                None => Vec::new(),
                Some(out_value) => unknown_key(value, out_value)?,
            };
            path.push(Segment::Key(key.clone()));
            Some(path)
        }),
        (Value::Array(inp), Value::Array(out)) => inp.iter().zip(out).enumerate().find_map(|(i, (a, b))| {
            let mut path = unknown_key(a, b)?;
            path.push(Segment::Index(i));
            Some(path)
        }),
        _ => None,
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// One step of a JSON path.
#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn format_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn get_at<'a>(v: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| match seg {
        Segment::Key(k) => cur.get(k.as_str()),
        Segment::Index(i) => cur.get(*i),
    })
}

/// Remove the node at `path` (which must be non-empty) from `v`.
fn remove_at(v: &mut Value, path: &[Segment]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parent_path {
        let next = match seg {
            Segment::Key(k) => cur.get_mut(k.as_str()),
            Segment::Index(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (Segment::Key(k), Value::Object(m)) => {
            m.remove(k);
        }
        (Segment::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

/// Find the smallest subtree of `input` whose removal makes the decoding
/// error `original` go away or change. Returns `None` if the error cannot be
/// pinned below the root (e.g. two identical errors in different places).
fn locate_error<T: DeserializeOwned>(input: &Value, original: &str) -> Option<String> {
    let mut path: Vec<Segment> = Vec::new();
    'descend: loop {
        let children: Vec<Segment> = match get_at(input, &path) {
            Some(Value::Object(m)) => m.keys().cloned().map(Segment::Key).collect(),
            Some(Value::Array(a)) => (0..a.len()).map(Segment::Index).collect(),
            _ => break,
        };
        for child in children {
            let mut candidate = path.clone();
            candidate.push(child);
            let mut trial = input.clone();
            remove_at(&mut trial, &candidate);
            let same_error = matches!(
                serde_json::from_value::<T>(trial),
                Err(e) if e.to_string() == original
            );
            if !same_error {
                path = candidate;
                continue 'descend;
            }
        }
        break;
    }
    (!path.is_empty()).then(|| format_path(&path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Pod, Secret};
    use serde_json::json;

    fn deploy_kind() -> &'static ResourceKind {
        lookup("deployments").expect("registered")
    }

    fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec})
    }

    #[test]
    fn unknown_fields_at_several_depths() {
        let cases: &[(Value, &str)] = &[
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}, "extra": 1}),
                "extra",
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "lables": {"a": "b"}}}),
                "metadata.lables",
            ),
            (deployment(json!({"replicas": 1, "replica": 2})), "spec.replica"),
            (
                deployment(json!({"template": {"spec": {"containers": [
                    {"name": "a", "image": "x"},
                    {"name": "b", "imagee": "x"}
                ]}}})),
                "spec.template.spec.containers[1].imagee",
            ),
            (
                deployment(json!({"template": {"spec": {"containers": [
                    {"name": "a", "image": "x", "ports": [{"containerPort": 80, "protocl": "TCP"}]}
                ]}}})),
                "spec.template.spec.containers[0].ports[0].protocl",
            ),
            (
                deployment(json!({"strategy": {"rollingUpdate": {"maxSurge": 1, "maxSurges": 2}}})),
                "spec.strategy.rollingUpdate.maxSurges",
            ),
        ];
        for (input, path) in cases {
            let err = match decode::<Deployment>(deploy_kind(), input) {
                Ok(_) => panic!("accepted {input}"),
                Err(e) => e,
            };
            assert_eq!(err.reason, Reason::BadRequest);
            assert_eq!(
                err.message,
                format!("strict decoding error: unknown field \"{path}\"")
            );
            assert_eq!(err.field.as_deref(), Some(*path));
        }
    }

    #[test]
    fn legitimate_round_trip_differences_are_accepted() {
        let input = deployment(json!({
            "replicas": 1,
            "selector": {"matchLabels": {}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
            "paused": null,
            "unknownButNull": null,
            "unknownButEmpty": {},
            "template": {"metadata": {"labels": {}}, "spec": {
                "containers": [{"name": "a", "image": "x",
                    "resources": {"limits": {"cpu": 1, "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": 1024}},
                    "args": []}],
                "volumes": []
            }}
        }));
        let result = decode::<Deployment>(deploy_kind(), &input);
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn malformed_types_name_the_field() {
        let cases: &[(Value, &str, &str)] = &[
            (
                deployment(json!({"replicas": "three"})),
                "spec.replicas",
                "invalid type: string \"three\"",
            ),
            (
                deployment(json!({"replicas": 1.5})),
                "spec.replicas",
                "invalid type: floating point",
            ),
            (deployment(json!("nope")), "spec", "invalid type: string"),
            (
                deployment(json!({"template": {"spec": {"containers": [{"name": "a"}, {"name": 5}]}}})),
                "spec.template.spec.containers[1].name",
                "invalid type: integer `5`",
            ),
            (
                deployment(json!({"template": {"spec": {"containers": {"name": "a"}}}})),
                "spec.template.spec.containers",
                "expected a sequence",
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "labels": {"a": 1}}}),
                "metadata.labels.a",
                "invalid type: integer `1`",
            ),
        ];
        for (input, field, needle) in cases {
            let err = match decode::<Deployment>(deploy_kind(), input) {
                Ok(_) => panic!("accepted {input}"),
                Err(e) => e,
            };
            assert_eq!(err.reason, Reason::BadRequest);
            assert_eq!(err.field.as_deref(), Some(*field), "{}", err.message);
            assert!(err.message.contains(needle), "{}", err.message);
            assert!(
                err.message
                    .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: "),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn int_or_string_and_quantity_values_survive() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{
            "name": "a", "image": "x",
            "resources": {"requests": {"cpu": 1, "memory": "128Mi"}},
            "livenessProbe": {"httpGet": {"port": "http"}},
            "readinessProbe": {"tcpSocket": {"port": 8080}}
        }]}});
        let typed: Pod = match decode(lookup("pods").expect("registered"), &pod) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let out = serde_json::to_value(&typed).unwrap_or_default();
        let c = &out["spec"]["containers"][0];
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert_eq!(c["resources"]["requests"]["memory"], "128Mi");
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
        assert_eq!(c["readinessProbe"]["tcpSocket"]["port"], 8080);
    }

    #[test]
    fn secret_string_data_is_known_and_bad_base64_is_located() {
        let kind = lookup("secrets").expect("registered");
        let ok = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "stringData": {"a": "b"}, "data": {"c": "ZA=="}});
        assert!(decode::<Secret>(kind, &ok).is_ok());
        let bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                         "data": {"c": "not base64!"}});
        let err = decode::<Secret>(kind, &bad).err();
        assert_eq!(err.and_then(|e| e.field), Some("data.c".to_string()));
    }

    #[test]
    fn find_unknown_paths() {
        let input = json!({"a": {"b": [{"c": 1}, {"c": 1, "d": 2}]}});
        let round = json!({"a": {"b": [{"c": "1"}, {"c": "1"}]}});
        assert_eq!(find_unknown(&input, &round), Some("a.b[1].d".to_string()));
        assert_eq!(find_unknown(&round, &input), None);
        assert_eq!(
            find_unknown(&json!({"x": null, "y": [], "z": {}}), &json!({})),
            None
        );
    }
}
