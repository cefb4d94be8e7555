//! One worker per Pod bound to this node: it drives the sandbox and the
//! containers toward the Pod's spec (init containers in order, then the
//! app containers, restarts with back-off as the restart policy says),
//! runs hooks and probes, terminates gracefully on deletion, and reports
//! the Pod's status.

use crate::config::{AgentConfig, DataDir};
use crate::images::ImageManager;
use crate::podspec::{self, ConfigError, PodFields, Refs};
use crate::probe::{self, ProbeState};
use crate::status::{self, CState, ContainerView, PodView};
use crate::volumes;
use k8s_openapi::api::core::v1::{Container, Pod};
use rk_api::Reason;
use rk_client::Client;
use rk_runtime::{ContainerSpec, ContainerState, ContainerStatus, Runtime, SandboxSpec, SandboxStatus};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Labels the agent puts on runtime objects to find them again.
pub const LABEL_POD_UID: &str = "rk.pod.uid";
pub const LABEL_POD_NAME: &str = "rk.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "rk.pod.namespace";
pub const LABEL_CONTAINER: &str = "rk.container.name";
pub const LABEL_ATTEMPT: &str = "rk.container.attempt";
pub const LABEL_IMAGE_ID: &str = "rk.image.id";

/// The first wait before a failed status write is tried again; it doubles
/// up to [`REPORT_RETRY_MAX`].
const REPORT_RETRY_MIN: Duration = Duration::from_millis(250);
const REPORT_RETRY_MAX: Duration = Duration::from_secs(5);

/// What every worker shares.
pub struct Env {
    pub rt: Arc<dyn Runtime>,
    pub images: Arc<ImageManager>,
    pub client: Client,
    pub dir: DataDir,
    pub cfg: AgentConfig,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    pub resolv_conf: String,
}

/// Runtime objects found at start-up that belong to one Pod.
#[derive(Debug, Default, Clone)]
pub struct Adopted {
    pub sandbox: Option<SandboxStatus>,
    pub containers: Vec<ContainerStatus>,
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Runs blocking runtime calls off the async threads.
pub async fn blocking<T: Send + 'static>(
    rt: &Arc<dyn Runtime>,
    f: impl FnOnce(&dyn Runtime) -> T + Send + 'static,
) -> T {
    let rt = rt.clone();
    match tokio::task::spawn_blocking(move || f(rt.as_ref())).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// How often a Pod worker looks for containers that exited (the runtime
/// records each exit in a file; Kubernetes' kubelet relists every second).
const EXIT_POLL: Duration = Duration::from_secs(1);

/// Waits `limit`, or less: until one of the containers `ids` is no longer
/// running. Only local state is read, so the Pod's full sync (which may
/// read ConfigMaps and Secrets from the control plane) stays at its own,
/// slower pace while an exit is still noticed within [`EXIT_POLL`].
async fn first_exit(rt: Arc<dyn Runtime>, ids: Vec<String>, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(EXIT_POLL)).await;
        if ids.is_empty() {
            continue;
        }
        let ids = ids.clone();
        let exited = blocking(&rt, move |rt| {
            ids.iter().any(|id| {
                !matches!(
                    rt.container_status(id),
                    Ok(Some(ContainerStatus {
                        state: ContainerState::Running { .. },
                        ..
                    }))
                )
            })
        })
        .await;
        if exited {
            return;
        }
    }
}

/// One container of the Pod and what the agent knows of it.
struct Slot {
    spec: Container,
    init: bool,
    /// The runtime id of the current (or last) instance.
    id: Option<String>,
    restart_count: u32,
    /// Whether an instance was ever started (so the next start is a restart).
    ever_started: bool,
    state: CState,
    last_state: Option<CState>,
    image_id: String,
    started_at: Option<Instant>,
    next_start: Option<Instant>,
    backoff: Duration,
    probes: Option<(Arc<Mutex<ProbeState>>, CancellationToken)>,
}

impl Slot {
    fn new(spec: Container, init: bool) -> Self {
        Self {
            spec,
            init,
            id: None,
            restart_count: 0,
            ever_started: false,
            state: CState::waiting(
                if init {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                },
                "",
            ),
            last_state: None,
            image_id: String::new(),
            started_at: None,
            next_start: None,
            backoff: Duration::ZERO,
            probes: None,
        }
    }

    fn view(&self) -> ContainerView {
        let (ready, started) = match (&self.state, &self.probes) {
            (CState::Running { .. }, Some((p, _))) => p
                .lock()
                .map(|p| (p.ready && p.started, p.started))
                .unwrap_or_default(),
            (CState::Running { .. }, None) => (true, true),
            _ => (false, false),
        };
        ContainerView {
            name: self.spec.name.clone(),
            image: self.spec.image.clone().unwrap_or_default(),
            image_id: self.image_id.clone(),
            container_id: self.id.clone(),
            restart_count: self.restart_count,
            state: self.state.clone(),
            last_state: self.last_state.clone(),
            ready: ready && !self.init,
            started,
        }
    }

    fn stop_probes(&mut self) {
        if let Some((_, cancel)) = self.probes.take() {
            cancel.cancel();
        }
    }
}

pub struct Worker {
    env: Arc<Env>,
    uid: String,
    pod: Pod,
    raw: Value,
    slots: Vec<Slot>,
    sandbox: Option<SandboxStatus>,
    pod_ip: Option<String>,
    start_time: String,
    message: Option<String>,
    last_status: Value,
    volumes: Option<volumes::Prepared>,
    wake_tx: mpsc::Sender<()>,
    wake_rx: mpsc::Receiver<()>,
}

fn meta<'a>(
    pod: &'a Pod,
    f: impl Fn(&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &'a Option<String>,
) -> &'a str {
    f(&pod.metadata).as_deref().unwrap_or("")
}

impl Worker {
    pub fn new(env: Arc<Env>, raw: Value, adopted: Adopted) -> Result<Self, serde_json::Error> {
        let pod: Pod = serde_json::from_value(raw.clone())?;
        let uid = meta(&pod, |m| &m.uid).to_string();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut slots: Vec<Slot> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| Slot::new(c.clone(), true))
            .chain(spec.containers.iter().map(|c| Slot::new(c.clone(), false)))
            .collect();
        // Adoption: the newest instance of each container is the current one;
        // older ones are leftovers of restarts.
        let mut leftovers = Vec::new();
        for c in adopted.containers {
            let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
            let attempt: u32 = c
                .labels
                .get(LABEL_ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            match slots.iter_mut().find(|s| s.spec.name == name) {
                Some(slot) if slot.id.is_none() || attempt >= slot.restart_count => {
                    if let Some(old) = slot.id.replace(c.id.clone()) {
                        leftovers.push(old);
                    }
                    slot.restart_count = attempt;
                    slot.ever_started = true;
                    slot.state = observed_state(&c.state);
                    if matches!(c.state, ContainerState::Running { .. }) {
                        slot.started_at = Some(Instant::now());
                    }
                }
                _ => leftovers.push(c.id),
            }
        }
        restore_finished(&mut slots, &raw["status"]);
        let start_time = raw["status"]["startTime"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(crate::node::now_rfc3339);
        let (wake_tx, wake_rx) = mpsc::channel(16);
        let pod_ip = adopted.sandbox.as_ref().and_then(|s| s.ip.clone());
        let mut w = Self {
            env,
            uid,
            pod,
            raw: raw.clone(),
            slots,
            sandbox: adopted.sandbox,
            pod_ip,
            start_time,
            message: None,
            last_status: raw["status"].clone(),
            volumes: None,
            wake_tx,
            wake_rx,
        };
        if w.pod_spec().host_network == Some(true) {
            w.pod_ip = Some(w.env.cfg.node_ip.clone());
        }
        for id in leftovers {
            let rt = w.env.rt.clone();
            tokio::spawn(async move {
                let _ = blocking(&rt, move |rt| rt.remove_container(&id)).await;
            });
        }
        // Restart probes for adopted running containers.
        let ip = w.pod_ip.clone().unwrap_or_default();
        for slot in &mut w.slots {
            if let (Some(id), CState::Running { .. }) = (&slot.id, &slot.state) {
                let cancel = CancellationToken::new();
                let state = probe::start(
                    w.env.rt.clone(),
                    id,
                    &slot.spec,
                    &ip,
                    w.wake_tx.clone(),
                    cancel.clone(),
                );
                slot.probes = Some((state, cancel));
            }
        }
        Ok(w)
    }

    fn pod_spec(&self) -> k8s_openapi::api::core::v1::PodSpec {
        self.pod.spec.clone().unwrap_or_default()
    }

    fn policy(&self) -> String {
        self.pod_spec().restart_policy.unwrap_or_else(|| "Always".into())
    }

    fn name(&self) -> &str {
        meta(&self.pod, |m| &m.name)
    }

    fn namespace(&self) -> &str {
        meta(&self.pod, |m| &m.namespace)
    }

    /// Drives the Pod until it is deleted (then cleans up) or the agent
    /// stops (then leaves everything running for the next agent to adopt).
    pub async fn run(mut self, mut updates: watch::Receiver<Option<Value>>, cancel: CancellationToken) {
        // A status write that failed is retried with back-off, whatever
        // `sync` would otherwise wait for: a finished Pod waits an hour,
        // and its Job cannot count it until the store has its phase.
        let mut report_retry = REPORT_RETRY_MIN;
        loop {
            let mut next = self.sync().await;
            if self.report().await {
                report_retry = REPORT_RETRY_MIN;
            } else {
                next = next.min(report_retry);
                report_retry = (report_retry * 2).min(REPORT_RETRY_MAX);
            }
            let exit_or_timeout = first_exit(self.env.rt.clone(), self.running_ids(), next);
            tokio::select! {
                _ = cancel.cancelled() => {
                    for s in &mut self.slots { s.stop_probes(); }
                    return;
                }
                changed = updates.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let latest = updates.borrow_and_update().clone();
                    match latest {
                        None => {
                            // Removed from the store without waiting for us.
                            self.terminate(Some(0)).await;
                            return;
                        }
                        Some(raw) => {
                            if !raw["metadata"]["deletionTimestamp"].is_null() {
                                let grace = raw["metadata"]["deletionGracePeriodSeconds"].as_i64();
                                if let Ok(p) = serde_json::from_value(raw.clone()) { self.pod = p; }
                                self.raw = raw;
                                self.terminate(grace).await;
                                self.confirm_deletion().await;
                                return;
                            }
                            if let Ok(p) = serde_json::from_value::<Pod>(raw.clone()) {
                                self.pod = p;
                                self.raw = raw;
                            }
                        }
                    }
                }
                _ = self.wake_rx.recv() => {}
                _ = exit_or_timeout => {}
            }
        }
    }

    /// The runtime ids of the containers last seen running.
    fn running_ids(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, CState::Running { .. }))
            .filter_map(|s| s.id.clone())
            .collect()
    }

    /// Whether the Pod has finished: by what its containers did, or
    /// because the store already has it finished. A Pod never leaves a
    /// terminal phase (Kubernetes' rule too): nothing of it is started
    /// again, and no status that undoes its ending is written.
    fn is_terminal(&self) -> bool {
        let (init, app) = self.views();
        is_terminal_phase(status::phase(&self.policy(), &init, &app)) || self.reported_finished()
    }

    fn reported_finished(&self) -> bool {
        self.last_status["phase"].as_str().is_some_and(is_terminal_phase)
    }

    fn views(&self) -> (Vec<ContainerView>, Vec<ContainerView>) {
        let init = self.slots.iter().filter(|s| s.init).map(Slot::view).collect();
        let app = self.slots.iter().filter(|s| !s.init).map(Slot::view).collect();
        (init, app)
    }

    async fn fetch_refs(&self) -> Result<Refs, ConfigError> {
        let spec = self.pod_spec();
        let mut cms = std::collections::BTreeSet::new();
        let mut secrets = std::collections::BTreeSet::new();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
        {
            for f in c.env_from.iter().flatten() {
                if let Some(r) = &f.config_map_ref {
                    cms.insert(r.name.clone());
                }
                if let Some(r) = &f.secret_ref {
                    secrets.insert(r.name.clone());
                }
            }
            for e in c.env.iter().flatten() {
                if let Some(v) = &e.value_from {
                    if let Some(r) = &v.config_map_key_ref {
                        cms.insert(r.name.clone());
                    }
                    if let Some(r) = &v.secret_key_ref {
                        secrets.insert(r.name.clone());
                    }
                }
            }
        }
        for v in spec.volumes.iter().flatten() {
            if let Some(cm) = &v.config_map {
                cms.insert(cm.name.clone());
            }
            if let Some(s) = &v.secret {
                secrets.insert(s.secret_name.clone().unwrap_or_default());
            }
        }
        let mut refs = Refs::default();
        let ns = self.namespace().to_string();
        for name in cms {
            match self.env.client.get("configmaps", &ns, &name).await {
                Ok(cm) => {
                    let mut data: BTreeMap<String, String> = BTreeMap::new();
                    for (k, v) in cm["data"].as_object().into_iter().flatten() {
                        data.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                    }
                    refs.config_maps.insert(name, data);
                }
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(ConfigError(format!("reading configmap \"{name}\": {e}"))),
            }
        }
        for name in secrets {
            match self.env.client.get("secrets", &ns, &name).await {
                Ok(s) => {
                    use base64::Engine;
                    let mut data: BTreeMap<String, String> = BTreeMap::new();
                    for (k, v) in s["data"].as_object().into_iter().flatten() {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(v.as_str().unwrap_or_default())
                            .map_err(|_| {
                                ConfigError(format!("secret \"{name}\" key {k}: not valid base64"))
                            })?;
                        data.insert(k.clone(), String::from_utf8_lossy(&bytes).into_owned());
                    }
                    for (k, v) in s["stringData"].as_object().into_iter().flatten() {
                        data.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                    }
                    refs.secrets.insert(name, data);
                }
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(ConfigError(format!("reading secret \"{name}\": {e}"))),
            }
        }
        Ok(refs)
    }

    /// One pass toward the spec. Returns when to look again.
    async fn sync(&mut self) -> Duration {
        const TICK: Duration = Duration::from_secs(1);
        tracing::debug!(pod = %self.name(), "sync");
        self.refresh().await;
        if self.is_terminal() {
            // A finished Pod keeps no processes: only its status and logs remain.
            if self.sandbox.take().is_some() {
                let id = self.uid.clone();
                if let Err(e) = blocking(&self.env.rt, move |rt| rt.remove_sandbox(&id)).await {
                    tracing::warn!(pod = %self.name(), error = %e, "removing the finished Pod's sandbox failed");
                }
            }
            return Duration::from_secs(3600);
        }
        let refs = match self.fetch_refs().await {
            Ok(r) => r,
            Err(e) => {
                self.config_error(&e);
                return TICK * 2;
            }
        };
        if self.volumes.is_none() {
            match volumes::prepare(&self.pod, &self.env.dir.pod_dir(&self.uid), &refs) {
                Ok(v) => self.volumes = Some(v),
                Err(e) => {
                    self.config_error(&e);
                    return TICK * 2;
                }
            }
        }
        if let Err(msg) = self.ensure_sandbox().await {
            self.message = Some(msg);
            return TICK * 2;
        }
        self.message = None;
        let policy = self.policy();
        let now = Instant::now();
        let mut next = Duration::from_secs(5);
        // Init containers, one at a time, in order.
        for i in 0..self.slots.len() {
            if !self.slots[i].init {
                continue;
            }
            match self.slots[i].state.clone() {
                CState::Terminated { exit_code: 0, .. } => continue,
                CState::Running { .. } => return TICK,
                CState::Terminated { exit_code, .. } if !status::init_restarts(&policy, exit_code) => {
                    return TICK * 60
                }
                _ => {
                    if let Some(wait) = self.slots[i]
                        .next_start
                        .and_then(|t| t.checked_duration_since(now))
                    {
                        self.back_off(i);
                        return wait;
                    }
                    self.start(i, &refs).await;
                    return TICK;
                }
            }
        }
        for i in 0..self.slots.len() {
            if self.slots[i].init {
                continue;
            }
            let start = match &self.slots[i].state {
                CState::Running { .. } => false,
                CState::Terminated { exit_code, .. } => status::restarts(&policy, *exit_code),
                CState::Waiting { .. } => true,
            };
            if !start {
                continue;
            }
            if let Some(wait) = self.slots[i]
                .next_start
                .and_then(|t| t.checked_duration_since(now))
            {
                self.back_off(i);
                next = next.min(wait);
                continue;
            }
            self.start(i, &refs).await;
            next = next.min(TICK);
        }
        next
    }

    fn config_error(&mut self, e: &ConfigError) {
        for s in &mut self.slots {
            if !s.ever_started {
                s.state = CState::waiting("CreateContainerConfigError", &e.0);
            }
        }
    }

    fn back_off(&mut self, i: usize) {
        let name = self.name().to_string();
        let namespace = self.namespace().to_string();
        let s = &mut self.slots[i];
        if matches!(s.state, CState::Waiting { .. }) || !s.ever_started {
            return;
        }
        let wait = s
            .next_start
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        let msg = format!(
            "back-off {}s restarting failed container={} pod={name}_{namespace}({})",
            wait.as_secs().max(1),
            s.spec.name,
            self.uid
        );
        s.last_state = Some(s.state.clone());
        s.state = CState::waiting("CrashLoopBackOff", &msg);
        let container = s.spec.name.clone();
        self.event(
            "Warning",
            "BackOff",
            format!("Back-off restarting failed container {container}"),
        );
    }

    /// Records a Kubernetes Event about this Pod, as the kubelet would
    /// (source "kubelet" on this node). Best effort and in the background:
    /// a Pod never waits on its Events.
    fn event(&self, etype: &'static str, reason: &'static str, message: String) {
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.name(), "namespace": self.namespace(), "uid": self.uid}});
        let source = rk_api::events::Source {
            component: "kubelet",
            host: Some(&self.env.cfg.name),
        };
        let now = crate::node::now_rfc3339();
        let event = rk_api::events::event_for(&pod, etype, reason, &message, source, &now);
        let client = self.env.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.create("events", &event).await {
                tracing::debug!(error = %e, reason, "could not record event");
            }
        });
    }

    /// Reads every live container's state from the runtime and notices exits.
    async fn refresh(&mut self) {
        let ids: Vec<(usize, String)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.state, CState::Running { .. }))
            .filter_map(|(i, s)| s.id.clone().map(|id| (i, id)))
            .collect();
        if ids.is_empty() {
            return;
        }
        let observed = blocking(&self.env.rt, move |rt| {
            ids.into_iter()
                .map(|(i, id)| (i, rt.container_status(&id)))
                .collect::<Vec<_>>()
        })
        .await;
        for (i, st) in observed {
            let s = &mut self.slots[i];
            let failed_probe = s
                .probes
                .as_ref()
                .and_then(|(p, _)| p.lock().ok().and_then(|p| p.failed.clone()));
            match st {
                Ok(Some(ContainerStatus {
                    state: ContainerState::Running { .. },
                    ..
                })) => {
                    if let Some(reason) = failed_probe {
                        tracing::info!(pod = %meta(&self.pod, |m| &m.name), container = %s.spec.name, %reason, "restarting container");
                        s.stop_probes();
                        let id = s.id.clone().unwrap_or_default();
                        let grace = self
                            .pod
                            .spec
                            .as_ref()
                            .and_then(|p| p.termination_grace_period_seconds)
                            .unwrap_or(30);
                        stop_container(&self.env.rt, &id, Duration::from_secs(grace.max(0) as u64)).await;
                    }
                }
                Ok(Some(c)) => {
                    let state = observed_state(&c.state);
                    self.exited(i, state);
                }
                Ok(None) => {
                    let state = CState::Terminated {
                        exit_code: 137,
                        signal: None,
                        reason: "ContainerStatusUnknown".into(),
                        message: "The container could not be located when the pod was terminated".into(),
                        started_at: String::new(),
                        finished_at: crate::node::now_rfc3339(),
                    };
                    self.exited(i, state);
                }
                Err(e) => tracing::warn!(error = %e, "reading container state failed"),
            }
        }
    }

    fn exited(&mut self, i: usize, state: CState) {
        let initial = self.env.backoff_initial;
        let max = self.env.backoff_max;
        let s = &mut self.slots[i];
        s.stop_probes();
        // A container that ran long enough resets its back-off, as kubelet's
        // does after ten minutes. The first restart is immediate, then the
        // delay starts at `initial` and doubles up to `max`.
        if s.started_at.map(|t| t.elapsed()).unwrap_or_default() > Duration::from_secs(600) {
            s.backoff = Duration::ZERO;
        }
        let delay = s.backoff;
        s.next_start = (!delay.is_zero()).then(|| Instant::now() + delay);
        s.backoff = if delay.is_zero() {
            initial
        } else {
            (delay * 2).min(max)
        };
        s.state = state;
    }

    async fn ensure_sandbox(&mut self) -> Result<(), String> {
        if let Some(sb) = &self.sandbox {
            let id = sb.id.clone();
            match blocking(&self.env.rt, move |rt| rt.sandbox_status(&id)).await {
                Ok(Some(s)) if s.pid.is_some() => return Ok(()),
                _ => {
                    tracing::warn!(pod = %self.name(), "the Pod's sandbox is gone; recreating it and its containers");
                    for i in 0..self.slots.len() {
                        if matches!(self.slots[i].state, CState::Running { .. }) {
                            let st = CState::Terminated {
                                exit_code: 137,
                                signal: Some(9),
                                reason: "Error".into(),
                                message: "the Pod's sandbox exited".into(),
                                started_at: String::new(),
                                finished_at: crate::node::now_rfc3339(),
                            };
                            self.exited(i, st);
                        }
                    }
                    let id = self.uid.clone();
                    let _ = blocking(&self.env.rt, move |rt| rt.remove_sandbox(&id)).await;
                    self.sandbox = None;
                }
            }
        }
        let spec = self.pod_spec();
        let host_network = spec.host_network == Some(true);
        let hostname = spec.hostname.clone().unwrap_or_else(|| self.name().to_string());
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_POD_UID.to_string(), self.uid.clone());
        labels.insert(LABEL_POD_NAME.to_string(), self.name().to_string());
        labels.insert(LABEL_POD_NAMESPACE.to_string(), self.namespace().to_string());
        let sb_spec = SandboxSpec {
            id: self.uid.clone(),
            hostname: hostname.clone(),
            host_network,
            labels,
            resources: podspec::pod_resources(&spec.containers),
            etc_hosts: String::new(),
            resolv_conf: self.env.resolv_conf.clone(),
        };
        let t = Instant::now();
        let created = blocking(&self.env.rt, move |rt| rt.create_sandbox(&sb_spec))
            .await
            .map_err(|e| format!("Failed to create pod sandbox: {e}"))?;
        tracing::debug!(pod = %self.name(), ms = t.elapsed().as_millis() as u64, "sandbox created");
        self.pod_ip = if host_network {
            Some(self.env.cfg.node_ip.clone())
        } else {
            created.ip.clone()
        };
        // /etc/hosts needs the Pod IP, known only now.
        let hosts = format!(
            "# Kubernetes-managed hosts file (rk).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{}\n",
            self.pod_ip.clone().unwrap_or_else(|| "127.0.0.1".into()),
            hostname
        );
        let dir = self.env.dir.pod_dir(&self.uid);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        std::fs::write(dir.join("hosts"), hosts)
            .map_err(|e| format!("write {}/hosts: {e}", dir.display()))?;
        std::fs::write(dir.join("resolv.conf"), &self.env.resolv_conf)
            .map_err(|e| format!("write {}/resolv.conf: {e}", dir.display()))?;
        self.sandbox = Some(created);
        Ok(())
    }

    async fn start(&mut self, i: usize, refs: &Refs) {
        let image_name = self.slots[i].spec.image.clone().unwrap_or_default();
        let policy = self.slots[i].spec.image_pull_policy.clone();
        let t = Instant::now();
        let ensured = self.env.images.ensure(&image_name, policy.as_deref()).await;
        tracing::debug!(image = %image_name, ms = t.elapsed().as_millis() as u64, "image ready");
        let image = match ensured {
            Ok(img) => img,
            Err(f) => {
                let s = &mut self.slots[i];
                // Repeated failures are ImagePullBackOff, as kubelet reports them.
                let reason = if matches!(&s.state, CState::Waiting { reason, .. } if reason == "ErrImagePull" || reason == "ImagePullBackOff")
                {
                    "ImagePullBackOff"
                } else {
                    f.reason
                };
                let event = format!("Failed to pull image \"{image_name}\": {}", f.message);
                s.state = CState::waiting(reason, &f.message);
                s.backoff = if s.backoff.is_zero() {
                    self.env.backoff_initial
                } else {
                    (s.backoff * 2).min(self.env.backoff_max)
                };
                s.next_start = Some(Instant::now() + s.backoff);
                self.event("Warning", "Failed", event);
                return;
            }
        };
        let spec = match self.container_spec(i, &image, refs) {
            Ok(s) => s,
            Err(e) => {
                self.slots[i].state = CState::waiting("CreateContainerConfigError", &e.0);
                self.slots[i].next_start = Some(Instant::now() + Duration::from_secs(2));
                return;
            }
        };
        let previous = self.slots[i].id.clone();
        if let Some(old) = previous {
            let _ = blocking(&self.env.rt, move |rt| rt.remove_container(&old)).await;
        }
        let s = &mut self.slots[i];
        if s.ever_started {
            if !matches!(s.state, CState::Waiting { .. }) {
                s.last_state = Some(s.state.clone());
            }
            s.restart_count += 1;
        }
        let spec = ContainerSpec {
            id: container_id(&self.uid, &s.spec.name, s.restart_count),
            labels: {
                let mut l = spec.labels;
                l.insert(LABEL_ATTEMPT.into(), s.restart_count.to_string());
                l.insert(LABEL_IMAGE_ID.into(), image.id.clone());
                l
            },
            log_path: spec.log_path.with_file_name(format!("{}.log", s.restart_count)),
            ..spec
        };
        if let Some(parent) = spec.log_path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        s.id = Some(spec.id.clone());
        s.ever_started = true;
        s.image_id = image.id.clone();
        let id = spec.id.clone();
        let t = Instant::now();
        let started = blocking(&self.env.rt, move |rt| rt.start_container(&spec)).await;
        tracing::debug!(container = %id, ms = t.elapsed().as_millis() as u64, "container started");
        let name = self.slots[i].spec.name.clone();
        match &started {
            Ok(_) => self.event("Normal", "Started", format!("Started container {name}")),
            Err(e) => self.event("Warning", "Failed", format!("Error: {e}")),
        }
        let s = &mut self.slots[i];
        match started {
            Ok(st) => {
                s.state = observed_state(&st.state);
                s.started_at = Some(Instant::now());
                let ip = self.pod_ip.clone().unwrap_or_default();
                if let Some(h) = s.spec.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
                    if let Some(cmd) = h.exec.as_ref().and_then(|e| e.command.clone()) {
                        let cmd_id = id.clone();
                        let result = blocking(&self.env.rt, move |rt| run_hook(rt, &cmd_id, cmd)).await;
                        if let Err(msg) = result {
                            tracing::info!(container = %s.spec.name, %msg, "postStart hook failed; killing the container");
                            stop_container(&self.env.rt, &id, Duration::ZERO).await;
                        }
                    }
                }
                let cancel = CancellationToken::new();
                let state = probe::start(
                    self.env.rt.clone(),
                    &id,
                    &s.spec,
                    &ip,
                    self.wake_tx.clone(),
                    cancel.clone(),
                );
                s.probes = Some((state, cancel));
            }
            Err(e) => {
                let now = crate::node::now_rfc3339();
                let st = CState::Terminated {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: e.to_string(),
                    started_at: now.clone(),
                    finished_at: now,
                };
                self.exited(i, st);
            }
        }
    }

    fn container_spec(
        &self,
        i: usize,
        image: &rk_image::Image,
        refs: &Refs,
    ) -> Result<ContainerSpec, ConfigError> {
        let c = &self.slots[i].spec;
        let pod_spec = self.pod_spec();
        let fields = PodFields {
            pod: &self.pod,
            pod_ip: self.pod_ip.as_deref().unwrap_or(""),
            host_ip: &self.env.cfg.node_ip,
        };
        let env = podspec::environment(c, &image.config, refs, &fields)?;
        let args = podspec::argv(c, &image.config, &env)?;
        let sc = c.security_context.as_ref();
        let (uid, gid, groups) = podspec::user(
            pod_spec.security_context.as_ref(),
            sc,
            &image.config.user,
            &image.layers,
        )?;
        let prepared = self.volumes.clone().unwrap_or_default();
        let mut mounts = volumes::mounts(c, &prepared)?;
        let pod_dir = self.env.dir.pod_dir(&self.uid);
        for (file, dest) in [("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf")] {
            if !mounts.iter().any(|m| m.destination == dest) {
                mounts.push(rk_runtime::Mount {
                    source: pod_dir.join(file),
                    destination: dest.into(),
                    read_only: false,
                });
            }
        }
        let caps = sc.and_then(|s| s.capabilities.clone()).unwrap_or_default();
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_POD_UID.to_string(), self.uid.clone());
        labels.insert(LABEL_POD_NAME.to_string(), self.name().to_string());
        labels.insert(LABEL_POD_NAMESPACE.to_string(), self.namespace().to_string());
        labels.insert(LABEL_CONTAINER.to_string(), c.name.clone());
        Ok(ContainerSpec {
            id: String::new(),
            sandbox_id: self.uid.clone(),
            layers: image.layers.clone(),
            args,
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            working_dir: c
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| image.config.working_dir.clone()),
            uid,
            gid,
            supplementary_gids: groups,
            tty: c.tty.unwrap_or(false),
            stdin: c.stdin.unwrap_or(false),
            share_process_namespace: pod_spec.share_process_namespace.unwrap_or(false),
            resources: podspec::resources(c),
            mounts,
            read_only_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
            capabilities_add: caps.add.unwrap_or_default(),
            capabilities_drop: caps.drop.unwrap_or_default(),
            privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
            log_path: self
                .env
                .dir
                .pod_logs(self.namespace(), self.name(), &self.uid)
                .join(&c.name)
                .join("0.log"),
            log_max_bytes: self.env.log_max_bytes,
            log_max_files: self.env.log_max_files,
            labels,
        })
    }

    /// Graceful termination: preStop hooks, SIGTERM, then SIGKILL when the
    /// grace period is over; then the sandbox and the Pod's files go.
    async fn terminate(&mut self, grace: Option<i64>) {
        let grace = grace
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        let deadline = Instant::now() + Duration::from_secs(grace);
        let running: Vec<String> = self
            .slots
            .iter()
            .filter(|s| matches!(s.state, CState::Running { .. }))
            .map(|s| s.spec.name.clone())
            .collect();
        for name in running {
            self.event("Normal", "Killing", format!("Stopping container {name}"));
        }
        let mut stops = Vec::new();
        for s in &mut self.slots {
            s.stop_probes();
            let (Some(id), CState::Running { .. }) = (s.id.clone(), &s.state) else {
                continue;
            };
            let rt = self.env.rt.clone();
            let pre_stop = s
                .spec
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
                .and_then(|h| h.exec.as_ref())
                .and_then(|e| e.command.clone());
            stops.push(tokio::spawn(async move {
                if let Some(cmd) = pre_stop {
                    let hook_id = id.clone();
                    let hook = blocking(&rt, move |rt| run_hook(rt, &hook_id, cmd));
                    if let Ok(Err(msg)) = tokio::time::timeout_at(deadline.into(), hook).await {
                        tracing::info!(container = %id, %msg, "preStop hook failed");
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                stop_container(&rt, &id, left).await;
            }));
        }
        for s in stops {
            let _ = s.await;
        }
        let uid = self.uid.clone();
        if let Err(e) = blocking(&self.env.rt, move |rt| rt.remove_sandbox(&uid)).await {
            tracing::warn!(pod = %self.name(), error = %e, "removing the sandbox failed");
        }
        let _ = std::fs::remove_dir_all(self.env.dir.pod_dir(&self.uid));
        let _ = std::fs::remove_dir_all(self.env.dir.pod_logs(self.namespace(), self.name(), &self.uid));
        tracing::info!(pod = %format!("{}/{}", self.namespace(), self.name()), "pod terminated");
    }

    /// The node's confirmation that the Pod's containers are gone: the
    /// zero-grace delete that removes the object.
    async fn confirm_deletion(&self) {
        let opts = rk_client::DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: Some(self.uid.clone()),
            ..Default::default()
        };
        for attempt in 0..10u32 {
            match self
                .env
                .client
                .delete("pods", self.namespace(), self.name(), &opts)
                .await
            {
                Ok(_) => return,
                Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => return,
                Err(e) => {
                    tracing::warn!(pod = %self.name(), error = %e, attempt, "confirming the Pod's deletion failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Writes the Pod's status when it changed. Returns whether the store
    /// now holds it (false: the write failed and must be retried).
    async fn report(&mut self) -> bool {
        let (init, app) = self.views();
        let policy = self.policy();
        let view = PodView {
            policy: &policy,
            init: &init,
            app: &app,
            pod_ip: self.pod_ip.as_deref(),
            host_ip: &self.env.cfg.node_ip,
            start_time: &self.start_time,
            message: self.message.as_deref(),
        };
        let now = crate::node::now_rfc3339();
        let status = status::pod_status(&view, &self.last_status, &now);
        let reopens = self.reported_finished() && !status["phase"].as_str().is_some_and(is_terminal_phase);
        if status == self.last_status || reopens {
            return true;
        }
        let mut obj = self.raw.clone();
        obj["status"] = status.clone();
        obj["metadata"]["resourceVersion"] = Value::Null;
        let t = Instant::now();
        let written = self.env.client.update_status("pods", &obj).await;
        tracing::debug!(pod = %self.name(), ms = t.elapsed().as_millis() as u64, phase = %status["phase"], "status written");
        match written {
            Ok(_) => {
                self.last_status = status;
                true
            }
            // The Pod is gone; the watch will end this worker.
            Err(e) if e.reason == Reason::NotFound => true,
            Err(e) => {
                tracing::warn!(pod = %self.name(), error = %e, "writing the Pod status failed; will retry");
                false
            }
        }
    }
}

pub fn container_id(pod_uid: &str, name: &str, attempt: u32) -> String {
    format!("{pod_uid}-{name}-{attempt}")
}

fn is_terminal_phase(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed")
}

/// Gives each container the runtime no longer has the ending its stored
/// status reports, if it had ended. A finished Pod's sandbox is removed,
/// and its containers with it, so an agent restarted after a Pod finished
/// found nothing to adopt and ran the Pod again from the start: a Job's
/// pod with `restartPolicy: Never` completed twice (chaos seed 129).
fn restore_finished(slots: &mut [Slot], status: &Value) {
    for slot in slots.iter_mut().filter(|s| s.id.is_none()) {
        let list = if slot.init {
            "initContainerStatuses"
        } else {
            "containerStatuses"
        };
        let Some(stored) = status[list]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == slot.spec.name.as_str()))
        else {
            continue;
        };
        let Some(ended) = CState::terminated_from_json(&stored["state"]) else {
            continue;
        };
        slot.state = ended;
        slot.last_state = CState::terminated_from_json(&stored["lastState"]);
        slot.ever_started = true;
        slot.restart_count = stored["restartCount"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        slot.id = stored["containerID"]
            .as_str()
            .and_then(|id| id.strip_prefix("rk://"))
            .map(str::to_string);
    }
}

fn observed_state(s: &ContainerState) -> CState {
    match s {
        ContainerState::Running { started_at, .. } => CState::Running {
            started_at: rfc3339(*started_at),
        },
        ContainerState::Exited {
            exit_code,
            signal,
            oom_killed,
            started_at,
            finished_at,
        } => CState::Terminated {
            exit_code: *exit_code,
            signal: *signal,
            reason: status::terminated_reason(*exit_code, *oom_killed).into(),
            message: String::new(),
            started_at: rfc3339(*started_at),
            finished_at: rfc3339(*finished_at),
        },
    }
}

/// Runs a lifecycle hook command in the container; Err names why it failed.
fn run_hook(rt: &dyn Runtime, id: &str, cmd: Vec<String>) -> Result<(), String> {
    use std::io::Read;
    let mut p = rt
        .exec(&rk_runtime::ExecSpec {
            container_id: id.to_string(),
            args: cmd,
            env: vec![],
            tty: false,
            tty_size: None,
        })
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    let _ = p.stdout.read_to_string(&mut out);
    match (p.waiter)() {
        Ok(0) => Ok(()),
        Ok(code) => Err(format!("command exited with {code}: {}", out.trim())),
        Err(e) => Err(e.to_string()),
    }
}

async fn has_exited(rt: &Arc<dyn Runtime>, id: &str) -> bool {
    let id = id.to_string();
    blocking(rt, move |rt| {
        !matches!(
            rt.container_status(&id),
            Ok(Some(ContainerStatus {
                state: ContainerState::Running { .. },
                ..
            }))
        )
    })
    .await
}

/// SIGTERM, wait up to `grace`, SIGKILL, wait for the exit.
pub async fn stop_container(rt: &Arc<dyn Runtime>, id: &str, grace: Duration) {
    if !grace.is_zero() {
        let sid = id.to_string();
        let _ = blocking(rt, move |rt| rt.signal_container(&sid, libc::SIGTERM)).await;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if has_exited(rt, id).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let sid = id.to_string();
    let _ = blocking(rt, move |rt| rt.signal_container(&sid, libc::SIGKILL)).await;
    for _ in 0..100 {
        if has_exited(rt, id).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slot(name: &str) -> Slot {
        let spec = Container {
            name: name.into(),
            ..Default::default()
        };
        Slot::new(spec, false)
    }

    #[test]
    fn a_container_the_runtime_lost_keeps_the_ending_the_store_has() {
        let status = json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "done", "restartCount": 2, "containerID": "rk://pod-done-2",
             "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                      "startedAt": "2026-11-28T13:39:57Z", "finishedAt": "2026-11-28T13:39:59Z"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                          "startedAt": "2026-11-28T13:39:50Z", "finishedAt": "2026-11-28T13:39:52Z"}}},
            {"name": "running", "restartCount": 0, "state": {"running": {"startedAt": "2026-11-28T13:39:57Z"}}}
        ]});
        let mut slots = vec![slot("done"), slot("running"), slot("adopted")];
        slots[2].id = Some("pod-adopted-0".into());
        restore_finished(&mut slots, &status);

        let done = &slots[0];
        assert_eq!(done.state.exit_code(), Some(0));
        assert_eq!(done.last_state.as_ref().and_then(CState::exit_code), Some(1));
        assert_eq!((done.restart_count, done.ever_started), (2, true));
        assert_eq!(done.id.as_deref(), Some("pod-done-2"));
        // A container stored as running is unknown now: the runtime decides.
        assert!(matches!(slots[1].state, CState::Waiting { .. }));
        assert!(!slots[1].ever_started);
        // What the runtime still has wins over the store.
        assert_eq!(slots[2].id.as_deref(), Some("pod-adopted-0"));
        assert!(matches!(slots[2].state, CState::Waiting { .. }));
    }
}
