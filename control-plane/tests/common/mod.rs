//! Helpers shared by the control-plane integration tests.

use rk_client::{Client, ListParams};
use serde_json::json;
use std::time::Duration;

/// Stands in for node agents: marks every bound pod Running and Ready, as
/// an agent would once its containers start, or, for pods labelled
/// fake-exit=N, finished with that exit code; confirms deletes at once.
pub fn fake_agents(c: Client, stop: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let (pods, _) = c.list("pods", &ListParams::default()).await.unwrap_or_default();
            for mut p in pods {
                let bound = p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
                if bound && !p["metadata"]["deletionTimestamp"].is_null() {
                    // A real agent stops the containers, then confirms with a
                    // zero-grace delete; these fake containers stop at once.
                    let _ = c
                        .delete(
                            "pods",
                            p["metadata"]["namespace"].as_str().unwrap_or("default"),
                            p["metadata"]["name"].as_str().unwrap_or(""),
                            &rk_client::DeleteOptions {
                                grace_period_seconds: Some(0),
                                ..Default::default()
                            },
                        )
                        .await;
                    continue;
                }
                if !bound || p["status"]["phase"] == "Running" {
                    continue;
                }
                let now = "2026-11-27T00:00:00Z";
                // Pods labelled fake-exit=N "run to completion" with that code.
                if let Some(code) = p["metadata"]["labels"]["fake-exit"]
                    .as_str()
                    .and_then(|c| c.parse::<i64>().ok())
                {
                    if p["status"]["phase"] == "Succeeded" || p["status"]["phase"] == "Failed" {
                        continue;
                    }
                    p["status"]["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
                    p["status"]["containerStatuses"] = json!([{"name": "c", "ready": false, "restartCount": 0,
                        "image": p["spec"]["containers"][0]["image"], "imageID": "",
                        "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                                                 "startedAt": now, "finishedAt": now}}}]);
                    let _ = c.update_status("pods", &p).await;
                    continue;
                }
                let mut conditions = p["status"]["conditions"].as_array().cloned().unwrap_or_default();
                conditions.retain(|c| c["type"] != "Ready");
                conditions.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": now}));
                p["status"]["phase"] = json!("Running");
                p["status"]["conditions"] = json!(conditions);
                p["status"]["containerStatuses"] = json!([{"name": "c", "ready": true, "restartCount": 0,
                    "image": p["spec"]["containers"][0]["image"], "imageID": "", "started": true,
                    "state": {"running": {"startedAt": now}}}]);
                let _ = c.update_status("pods", &p).await;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    })
}
