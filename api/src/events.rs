//! Kubernetes Events (`v1 Event`), built the same way by every component
//! that records them: the controllers and scheduler in the control plane
//! and the node agent (as kubelet).

use serde_json::{json, Value};

/// Who records an Event: `source.component` (and `reportingComponent`),
/// and for the node agent the node it runs on (`source.host`,
/// `reportingInstance`).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

/// The Event `etype` ("Normal" or "Warning") with `reason` and `message`
/// about `object`, at `now` (RFC 3339). `object` needs only its
/// `apiVersion`, `kind` and `metadata` (name, namespace, uid,
/// resourceVersion); absent fields stay absent in `involvedObject`.
///
/// The Event lives in the object's namespace (`default` for cluster-scoped
/// objects, as Kubernetes does) and is named like Kubernetes' Events: the
/// object's name, a dot and a random hexadecimal suffix (generateName
/// cannot end in a dot).
pub fn event_for(
    object: &Value,
    etype: &str,
    reason: &str,
    message: &str,
    source: Source,
    now: &str,
) -> Value {
    let meta = &object["metadata"];
    let ns = meta["namespace"].as_str().unwrap_or("default");
    let name = meta["name"].as_str().unwrap_or("");
    let mut involved = json!({
        "apiVersion": object["apiVersion"], "kind": object["kind"], "name": name, "namespace": ns,
    });
    for field in ["uid", "resourceVersion"] {
        if let Some(v) = meta.get(field).filter(|v| !v.is_null()) {
            involved[field] = v.clone();
        }
    }
    let mut event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{:x}", uuid::Uuid::new_v4().as_u128() >> 64), "namespace": ns},
        "involvedObject": involved,
        "reason": reason, "message": message, "type": etype,
        "source": {"component": source.component},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": source.component,
    });
    if let Some(host) = source.host {
        event["source"]["host"] = json!(host);
        event["reportingInstance"] = json!(host);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_object_and_source() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "42"}});
        let kubelet = Source {
            component: "kubelet",
            host: Some("n1"),
        };
        let back_off = || {
            event_for(
                &pod,
                "Warning",
                "BackOff",
                "Back-off",
                kubelet,
                "2026-11-27T15:00:00Z",
            )
        };
        let e = back_off();
        assert_eq!(e["metadata"]["namespace"], "shop");
        let name = e["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            name.starts_with("web-1.") && name.len() > "web-1.".len(),
            "{name}"
        );
        assert_eq!(
            e["involvedObject"],
            json!({"apiVersion": "v1", "kind": "Pod", "name": "web-1", "namespace": "shop",
                   "uid": "u-1", "resourceVersion": "42"})
        );
        assert_eq!(e["source"], json!({"component": "kubelet", "host": "n1"}));
        assert_eq!(e["reportingInstance"], "n1");
        assert_eq!(
            (e["type"].as_str(), e["reason"].as_str()),
            (Some("Warning"), Some("BackOff"))
        );
        assert_eq!(e["firstTimestamp"], "2026-11-27T15:00:00Z");
        assert_eq!(e["count"], 1);
        let again = back_off();
        assert_ne!(
            again["metadata"]["name"], e["metadata"]["name"],
            "every Event has its own name"
        );
    }

    #[test]
    fn a_cluster_scoped_object_gets_its_events_in_default() {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
        let source = Source {
            component: "node-controller",
            host: None,
        };
        let e = event_for(
            &node,
            "Normal",
            "NodeNotReady",
            "gone",
            source,
            "2026-11-27T15:00:00Z",
        );
        assert_eq!(e["metadata"]["namespace"], "default");
        assert!(e["involvedObject"].get("uid").is_none());
        assert!(e["source"].get("host").is_none() && e.get("reportingInstance").is_none());
    }
}
