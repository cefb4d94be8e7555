//! Pure Pod status: each container's observed state becomes Kubernetes'
//! `containerStatuses`, and the whole Pod's phase and conditions follow
//! from them and the restart policy.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
    },
}

impl CState {
    pub fn waiting(reason: &str, message: &str) -> Self {
        CState::Waiting {
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            CState::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            CState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            CState::Terminated {
                exit_code,
                signal,
                reason,
                message,
                started_at,
                finished_at,
            } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at});
                if let Some(s) = signal {
                    t["signal"] = json!(s);
                }
                if !message.is_empty() {
                    t["message"] = json!(message);
                }
                json!({"terminated": t})
            }
        }
    }

    /// A `terminated` state as a container status in the store has it;
    /// `None` for any other state, or one that does not read.
    pub fn terminated_from_json(state: &Value) -> Option<CState> {
        let t = state.get("terminated")?;
        let text = |k: &str| t[k].as_str().unwrap_or_default().to_string();
        Some(CState::Terminated {
            exit_code: t["exitCode"].as_i64().and_then(|c| i32::try_from(c).ok())?,
            signal: t["signal"].as_i64().and_then(|s| i32::try_from(s).ok()),
            reason: text("reason"),
            message: text("message"),
            started_at: text("startedAt"),
            finished_at: text("finishedAt"),
        })
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self {
            CState::Terminated { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }
}

/// What the agent knows about one container of a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub restart_count: u32,
    pub state: CState,
    pub last_state: Option<CState>,
    pub ready: bool,
    pub started: bool,
}

impl ContainerView {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "restartCount": self.restart_count,
            "ready": self.ready,
            "started": self.started,
            "state": self.state.to_json(),
            "lastState": self.last_state.as_ref().map(CState::to_json).unwrap_or_else(|| json!({})),
        });
        if let Some(id) = &self.container_id {
            v["containerID"] = json!(format!("rk://{id}"));
        }
        v
    }
}

/// Whether a container that exited with `code` is started again.
pub fn restarts(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// Init containers always run until they succeed, unless the Pod's policy is Never.
pub fn init_restarts(policy: &str, code: i32) -> bool {
    code != 0 && policy != "Never"
}

/// The Pod phase from its containers, as kubelet computes it.
pub fn phase(policy: &str, init: &[ContainerView], app: &[ContainerView]) -> &'static str {
    for c in init {
        match c.state.exit_code() {
            Some(0) => continue,
            Some(code) if !init_restarts(policy, code) => return "Failed",
            _ => return "Pending",
        }
    }
    let mut running_or_restarting = false;
    let mut all_terminal = true;
    let mut any_failed = false;
    for c in app {
        match &c.state {
            CState::Running { .. } => {
                running_or_restarting = true;
                all_terminal = false;
            }
            CState::Terminated { exit_code, .. } => {
                if restarts(policy, *exit_code) {
                    running_or_restarting = true;
                    all_terminal = false;
                } else if *exit_code != 0 {
                    any_failed = true;
                }
            }
            CState::Waiting { .. } => {
                all_terminal = false;
                // A container waiting to be restarted has run before.
                if c.restart_count > 0 || c.last_state.is_some() {
                    running_or_restarting = true;
                } else {
                    return "Pending";
                }
            }
        }
    }
    if all_terminal && !app.is_empty() {
        return if any_failed { "Failed" } else { "Succeeded" };
    }
    if running_or_restarting {
        "Running"
    } else {
        "Pending"
    }
}

fn condition(t: &str, ok: bool, reason: Option<&str>, now: &str) -> Value {
    let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now, "lastProbeTime": null});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

pub struct PodView<'a> {
    pub policy: &'a str,
    pub init: &'a [ContainerView],
    pub app: &'a [ContainerView],
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
    pub start_time: &'a str,
    /// A Pod-level failure (e.g. the sandbox could not be created).
    pub message: Option<&'a str>,
}

/// The Pod's status document. `previous` keeps transition times of
/// conditions that did not change.
pub fn pod_status(v: &PodView, previous: &Value, now: &str) -> Value {
    let phase = phase(v.policy, v.init, v.app);
    let initialized = v.init.iter().all(|c| c.state.exit_code() == Some(0));
    let containers_ready = !v.app.is_empty() && v.app.iter().all(|c| c.ready);
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let reason = |ok: bool, why: &'static str| (!ok).then_some(why);
    let mut conditions = vec![
        condition("PodScheduled", true, None, now),
        condition(
            "Initialized",
            initialized,
            reason(initialized, "ContainersNotInitialized"),
            now,
        ),
        condition(
            "ContainersReady",
            containers_ready,
            reason(
                containers_ready,
                if terminal {
                    "PodCompleted"
                } else {
                    "ContainersNotReady"
                },
            ),
            now,
        ),
        condition(
            "Ready",
            containers_ready,
            reason(
                containers_ready,
                if terminal {
                    "PodCompleted"
                } else {
                    "ContainersNotReady"
                },
            ),
            now,
        ),
    ];
    if let Some(prev) = previous["conditions"].as_array() {
        for c in &mut conditions {
            if let Some(p) = prev.iter().find(|p| p["type"] == c["type"]) {
                if p["status"] == c["status"] && !p["lastTransitionTime"].is_null() {
                    c["lastTransitionTime"] = p["lastTransitionTime"].clone();
                }
            }
        }
    }
    let mut s = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": v.host_ip,
        "hostIPs": [{"ip": v.host_ip}],
        "startTime": v.start_time,
        "containerStatuses": v.app.iter().map(ContainerView::to_json).collect::<Vec<_>>(),
    });
    if !v.init.is_empty() {
        s["initContainerStatuses"] = json!(v.init.iter().map(ContainerView::to_json).collect::<Vec<_>>());
    }
    if let Some(ip) = v.pod_ip {
        s["podIP"] = json!(ip);
        s["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(m) = v.message {
        s["message"] = json!(m);
    }
    s
}

/// The reason kubelet gives a terminated container.
pub fn terminated_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, state: CState, restarts: u32) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "busybox".into(),
            image_id: String::new(),
            container_id: None,
            restart_count: restarts,
            state,
            last_state: None,
            ready: false,
            started: false,
        }
    }
    fn exited(code: i32) -> CState {
        CState::Terminated {
            exit_code: code,
            signal: None,
            reason: terminated_reason(code, false).into(),
            message: String::new(),
            started_at: "t0".into(),
            finished_at: "t1".into(),
        }
    }
    fn running() -> CState {
        CState::Running {
            started_at: "t0".into(),
        }
    }

    #[test]
    fn phases_follow_restart_policy() {
        let creating = CState::waiting("ContainerCreating", "");
        assert_eq!(phase("Always", &[], &[c("a", creating.clone(), 0)]), "Pending");
        assert_eq!(phase("Always", &[], &[c("a", running(), 0)]), "Running");
        assert_eq!(phase("Always", &[], &[c("a", exited(0), 0)]), "Running");
        assert_eq!(phase("Never", &[], &[c("a", exited(0), 0)]), "Succeeded");
        assert_eq!(
            phase("Never", &[], &[c("a", exited(0), 0), c("b", exited(2), 0)]),
            "Failed"
        );
        assert_eq!(
            phase("Never", &[], &[c("a", exited(0), 0), c("b", running(), 0)]),
            "Running"
        );
        assert_eq!(phase("OnFailure", &[], &[c("a", exited(1), 0)]), "Running");
        assert_eq!(phase("OnFailure", &[], &[c("a", exited(0), 1)]), "Succeeded");
        assert_eq!(
            phase(
                "Always",
                &[],
                &[c("a", CState::waiting("CrashLoopBackOff", ""), 3)]
            ),
            "Running"
        );
        // Init containers gate everything.
        assert_eq!(
            phase("Always", &[c("i", running(), 0)], &[c("a", creating.clone(), 0)]),
            "Pending"
        );
        assert_eq!(
            phase("Never", &[c("i", exited(1), 0)], &[c("a", creating.clone(), 0)]),
            "Failed"
        );
        assert_eq!(
            phase("OnFailure", &[c("i", exited(1), 0)], &[c("a", creating, 0)]),
            "Pending"
        );
        assert_eq!(
            phase("Always", &[c("i", exited(0), 0)], &[c("a", running(), 0)]),
            "Running"
        );
    }

    #[test]
    fn status_document_has_kubernetes_shape() {
        let mut a = c("a", running(), 2);
        a.ready = true;
        a.container_id = Some("abc".into());
        a.last_state = Some(exited(137));
        let v = PodView {
            policy: "Always",
            init: &[],
            app: &[a],
            pod_ip: Some("10.88.0.2"),
            host_ip: "10.0.0.1",
            start_time: "t0",
            message: None,
        };
        let s = pod_status(&v, &Value::Null, "now");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.88.0.2");
        assert_eq!(s["containerStatuses"][0]["restartCount"], 2);
        assert_eq!(s["containerStatuses"][0]["containerID"], "rk://abc");
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            137
        );
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "True");
        let later = pod_status(&v, &s, "later");
        let ready2 = later["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready2["lastTransitionTime"], "now");
        assert_eq!(terminated_reason(137, true), "OOMKilled");
    }
}
