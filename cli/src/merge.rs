//! The three-way merge of client-side `apply`, as kubectl computed it
//! before server-side apply.
//!
//! Three documents take part: the configuration applied last time (kept in
//! the annotation [`LAST_APPLIED`]), the manifest being applied now, and the
//! live object. The result starts from the live object, then:
//!
//! - a field the manifest sets takes the manifest's value (maps merge key by
//!   key, recursively);
//! - a field the last-applied configuration set but the manifest no longer
//!   mentions (or sets to null) is removed;
//! - a field neither mentions keeps its live value: status, defaults the
//!   server filled in, labels other writers added, `spec.replicas` set by
//!   `rkctl scale` when the manifest leaves replicas out.
//!
//! Lists are replaced wholesale, like a JSON merge patch, except the lists
//! of objects that Kubernetes' strategic merge patch merges by a key; those
//! are merged element by element with the same three-way rule:
//!
//! | field                                                        | key            |
//! |--------------------------------------------------------------|----------------|
//! | containers, initContainers, ephemeralContainers, volumes, env, imagePullSecrets | `name` |
//! | volumeMounts                                                 | `mountPath` (kubectl's key, not `name`) |
//! | ports of a container                                         | `containerPort` |
//! | ports of a Service                                           | `port`         |
//!
//! A keyed list is merged only when every element of the three lists is an
//! object carrying the key; otherwise it is replaced, which is always safe.
//! The merged list lists the manifest's elements in the manifest's order,
//! then the live elements neither configuration mentions, in live order.

use serde_json::{Map, Value};

/// The annotation in which `apply` keeps the configuration it applied.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The configuration recorded in `obj`'s last-applied annotation: `None`
/// when the annotation is missing, and also when it does not parse (an
/// unreadable record is as good as none).
pub fn last_applied(obj: &Value) -> Option<Value> {
    let text = obj
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    serde_json::from_str(text).ok()
}

/// The manifest with its own compact JSON stored in the last-applied
/// annotation. An annotation of that name already in the manifest is left
/// out of the recorded copy, so the record never nests.
pub fn with_last_applied(manifest: &Value) -> Value {
    let mut recorded = manifest.clone();
    if let Some(meta) = recorded.get_mut("metadata").and_then(Value::as_object_mut) {
        let now_empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
            Some(ann) => {
                ann.remove(LAST_APPLIED);
                ann.is_empty()
            }
            None => false,
        };
        if now_empty {
            meta.remove("annotations");
        }
    }
    let text = serde_json::to_string(&recorded).unwrap_or_default();
    let mut out = manifest.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        let ann = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !ann.is_object() {
            *ann = Value::Object(Map::new());
        }
        if let Some(ann) = ann.as_object_mut() {
            ann.insert(LAST_APPLIED.into(), Value::String(text));
        }
    }
    out
}

/// Merges `modified` (the manifest, carrying its last-applied annotation)
/// into `live`, given the last-applied configuration `original` (`None`
/// when the object was not created by apply).
pub fn three_way(original: Option<&Value>, modified: &Value, live: &Value) -> Value {
    merge_value(original, modified, live, "")
}

fn merge_value(original: Option<&Value>, modified: &Value, live: &Value, field: &str) -> Value {
    match (modified, live) {
        (Value::Object(m), Value::Object(l)) => {
            let o = original.and_then(Value::as_object);
            Value::Object(merge_map(o, m, l))
        }
        (Value::Array(m), Value::Array(l)) => {
            let o = original.and_then(Value::as_array);
            match merge_key(field, m, l, o) {
                Some(key) => Value::Array(merge_list(o, m, l, key)),
                None => modified.clone(),
            }
        }
        _ => modified.clone(),
    }
}

fn merge_map(
    original: Option<&Map<String, Value>>,
    modified: &Map<String, Value>,
    live: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = live.clone();
    for (k, mv) in modified {
        if mv.is_null() {
            // An explicit null asks for the field to be gone, as in a merge
            // patch.
            out.remove(k);
            continue;
        }
        let ov = original.and_then(|o| o.get(k));
        let merged = match live.get(k) {
            Some(lv) => merge_value(ov, mv, lv, k),
            None => mv.clone(),
        };
        out.insert(k.clone(), merged);
    }
    if let Some(o) = original {
        for k in o.keys() {
            if !modified.contains_key(k) {
                out.remove(k);
            }
        }
    }
    out
}

/// The key a list of objects named `field` merges by, if it does and every
/// element carries that key.
fn merge_key(
    field: &str,
    modified: &[Value],
    live: &[Value],
    original: Option<&Vec<Value>>,
) -> Option<&'static str> {
    let all = || modified.iter().chain(live).chain(original.into_iter().flatten());
    let key = match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets" => {
            "name"
        }
        "volumeMounts" => "mountPath",
        // Container ports and Service ports share the field name; the
        // elements tell them apart.
        "ports" if all().any(|e| e.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return None,
    };
    all()
        .all(|e| e.get(key).is_some_and(|k| !k.is_null()))
        .then_some(key)
}

fn merge_list(original: Option<&Vec<Value>>, modified: &[Value], live: &[Value], key: &str) -> Vec<Value> {
    let find = |list: &[Value], k: &Value| list.iter().find(|e| e.get(key) == Some(k)).cloned();
    let mut out = Vec::new();
    for m in modified {
        let Some(k) = m.get(key) else { continue };
        let o = original.and_then(|o| find(o, k));
        match find(live, k) {
            Some(l) => out.push(merge_value(o.as_ref(), m, &l, "")),
            None => out.push(m.clone()),
        }
    }
    for l in live {
        let Some(k) = l.get(key) else { continue };
        let in_modified = modified.iter().any(|m| m.get(key) == Some(k));
        let in_original = original.is_some_and(|o| o.iter().any(|e| e.get(key) == Some(k)));
        if !in_modified && !in_original {
            out.push(l.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn three_way_rules() {
        let original = json!({"metadata": {"labels": {"app": "web", "old": "x"}},
                              "spec": {"replicas": 2, "paused": false}});
        let modified = json!({"metadata": {"labels": {"app": "web2"}}, "spec": {"minReadySeconds": 5}});
        let live = json!({"metadata": {"name": "web", "uid": "u", "labels": {"app": "web", "old": "x", "other": "y"}},
                          "spec": {"replicas": 7, "paused": false, "revisionHistoryLimit": 10},
                          "status": {"replicas": 7}});
        let got = three_way(Some(&original), &modified, &live);
        assert_eq!(
            got,
            json!({"metadata": {"name": "web", "uid": "u", "labels": {"app": "web2", "other": "y"}},
                   "spec": {"minReadySeconds": 5, "revisionHistoryLimit": 10},
                   "status": {"replicas": 7}})
        );
    }

    #[test]
    fn replicas_left_out_keep_the_scaled_value() {
        let manifest = json!({"spec": {"template": {"x": 1}}});
        let live = json!({"spec": {"replicas": 5, "template": {"x": 0}}});
        let got = three_way(Some(&manifest), &manifest, &live);
        assert_eq!(got, json!({"spec": {"replicas": 5, "template": {"x": 1}}}));
        // Without a record nothing is removed.
        let got = three_way(
            None,
            &json!({"spec": {"a": null, "b": 2}}),
            &json!({"spec": {"a": 1, "c": 3}}),
        );
        assert_eq!(got, json!({"spec": {"b": 2, "c": 3}}));
    }

    #[test]
    fn plain_lists_are_replaced() {
        let got = three_way(
            Some(&json!({"args": ["a", "b"]})),
            &json!({"args": ["c"]}),
            &json!({"args": ["a", "b", "z"]}),
        );
        assert_eq!(got, json!({"args": ["c"]}));
        // A keyed list whose elements lack the key is replaced too.
        let got = three_way(
            None,
            &json!({"env": [{"value": "1"}]}),
            &json!({"env": [{"name": "A"}]}),
        );
        assert_eq!(got, json!({"env": [{"value": "1"}]}));
    }

    #[test]
    fn keyed_lists_merge_by_element() {
        let original = json!({"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "GONE", "value": "g"}]},
            {"name": "b", "image": "b:1"}]});
        let modified = json!({"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "NEW", "value": "n"}],
             "ports": [{"containerPort": 80}]},
            {"name": "c", "image": "c:1"}]});
        let live = json!({"containers": [
            {"name": "sidecar", "image": "s:1"},
            {"name": "b", "image": "b:1"},
            {"name": "a", "image": "a:1", "imagePullPolicy": "IfNotPresent",
             "env": [{"name": "INJECTED", "value": "i"}, {"name": "X", "value": "1"}, {"name": "GONE", "value": "g"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}]}]});
        let got = three_way(Some(&original), &modified, &live);
        assert_eq!(
            got,
            json!({"containers": [
                {"name": "a", "image": "a:2", "imagePullPolicy": "IfNotPresent",
                 "env": [{"name": "X", "value": "1"}, {"name": "NEW", "value": "n"}, {"name": "INJECTED", "value": "i"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "c", "image": "c:1"},
                {"name": "sidecar", "image": "s:1"}]})
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let got = three_way(
            None,
            &json!({"ports": [{"port": 80, "targetPort": 8080}]}),
            &json!({"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}),
        );
        assert_eq!(
            got,
            json!({"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]})
        );
    }

    #[test]
    fn annotation_records_the_manifest() {
        let m =
            json!({"metadata": {"name": "a", "annotations": {LAST_APPLIED: "stale"}}, "data": {"k": "v"}});
        let with = with_last_applied(&m);
        let rec = last_applied(&with).unwrap();
        assert_eq!(rec, json!({"metadata": {"name": "a"}, "data": {"k": "v"}}));
        let m = json!({"metadata": {"name": "a", "annotations": {"x": "1"}}});
        let rec = last_applied(&with_last_applied(&m)).unwrap();
        assert_eq!(rec, m);
        assert_eq!(last_applied(&json!({"metadata": {}})), None);
    }
}
