//! Watches the Pods bound to this node and keeps one worker per Pod:
//! list-then-watch from a revision, adoption of what the runtime already
//! runs, and removal of sandboxes no Pod wants.

use crate::pod::{Adopted, Env, Worker, LABEL_POD_UID};
use rk_api::Reason;
use rk_client::{ListParams, WatchEventType};
use rk_proto::v1 as pb;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

struct Running {
    tx: watch::Sender<Option<Value>>,
    handle: tokio::task::JoinHandle<()>,
}

pub struct Manager {
    env: Arc<Env>,
    workers: HashMap<String, Running>,
    adopted: HashMap<String, Adopted>,
    cancel: CancellationToken,
}

fn uid_of(p: &Value) -> String {
    p["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

impl Manager {
    pub fn new(env: Arc<Env>, cancel: CancellationToken) -> Self {
        Self {
            env,
            workers: HashMap::new(),
            adopted: HashMap::new(),
            cancel,
        }
    }

    /// Loads what the runtime runs, grouped by Pod uid, for adoption.
    async fn load_runtime(&mut self) {
        let listed = crate::pod::blocking(&self.env.rt, |rt| rt.list()).await;
        match listed {
            Ok((sandboxes, containers)) => {
                for s in sandboxes {
                    let uid = s
                        .labels
                        .get(LABEL_POD_UID)
                        .cloned()
                        .unwrap_or_else(|| s.id.clone());
                    self.adopted.entry(uid).or_default().sandbox = Some(s);
                }
                for c in containers {
                    let uid = c.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
                    self.adopted.entry(uid).or_default().containers.push(c);
                }
                tracing::info!(pods = self.adopted.len(), "found existing pods in the runtime");
            }
            Err(e) => tracing::error!(error = %e, "listing the runtime's state failed; starting clean"),
        }
    }

    fn upsert(&mut self, pod: Value) {
        let uid = uid_of(&pod);
        if uid.is_empty() {
            return;
        }
        if let Some(w) = self.workers.get(&uid) {
            if !w.handle.is_finished() {
                let _ = w.tx.send(Some(pod));
                return;
            }
            // The worker finished (a terminated Pod was confirmed deleted).
            if !pod["metadata"]["deletionTimestamp"].is_null() {
                return;
            }
        }
        let adopted = self.adopted.remove(&uid).unwrap_or_default();
        let (tx, rx) = watch::channel(Some(pod.clone()));
        let worker = match Worker::new(self.env.clone(), pod.clone(), adopted) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(pod = %pod["metadata"]["name"], error = %e, "the Pod does not decode; ignoring it");
                return;
            }
        };
        // A Pod already being deleted still gets a worker: it stops what
        // runs and confirms the deletion.
        let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
        if deleting {
            let _ = tx.send(Some(pod));
        }
        let handle = tokio::spawn(worker.run(rx, self.cancel.child_token()));
        self.workers.insert(uid, Running { tx, handle });
    }

    fn remove(&mut self, pod: &Value) {
        if let Some(w) = self.workers.get(&uid_of(pod)) {
            let _ = w.tx.send(None);
        }
    }

    /// Workers whose Pods are gone and whose work is finished are dropped.
    fn reap(&mut self) {
        self.workers.retain(|_, w| !w.handle.is_finished());
    }

    /// Removes runtime sandboxes of Pods that no longer exist.
    async fn remove_orphans(&mut self, live: &[String]) {
        let orphans: Vec<String> = self
            .adopted
            .keys()
            .filter(|u| !live.contains(u))
            .cloned()
            .collect();
        for uid in orphans {
            if let Some(a) = self.adopted.remove(&uid) {
                tracing::info!(pod_uid = %uid, "removing a sandbox no Pod wants");
                let ids: Vec<String> = a.containers.iter().map(|c| c.id.clone()).collect();
                let sandbox = a.sandbox.map(|s| s.id);
                let _ = crate::pod::blocking(&self.env.rt, move |rt| {
                    for id in ids {
                        let _ = rt.remove_container(&id);
                    }
                    if let Some(s) = sandbox {
                        let _ = rt.remove_sandbox(&s);
                    }
                })
                .await;
                let _ = std::fs::remove_dir_all(self.env.dir.pod_dir(&uid));
            }
        }
    }

    /// List, then watch from the list's revision; relist when the watch
    /// says the revision was compacted away.
    pub async fn run(mut self) {
        self.load_runtime().await;
        let selector = format!("spec.nodeName={}", self.env.cfg.name);
        let mut first = true;
        loop {
            let params = ListParams {
                field_selector: selector.clone(),
                ..Default::default()
            };
            let (pods, revision) = match self.env.client.list("pods", &params).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "listing this node's pods failed; retrying");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let live: Vec<String> = pods.iter().map(uid_of).collect();
            for (uid, w) in &self.workers {
                if !live.contains(uid) {
                    let _ = w.tx.send(None);
                }
            }
            for p in pods {
                self.upsert(p);
            }
            if first {
                self.remove_orphans(&live).await;
                first = false;
            }
            let mut events = self.env.client.watch(pb::WatchRequest {
                resource: "pods".into(),
                field_selector: selector.clone(),
                since_revision: revision,
                ..Default::default()
            });
            loop {
                let ev = tokio::select! {
                    _ = self.cancel.cancelled() => {
                        for (_, w) in self.workers.drain() { let _ = w.handle.await; }
                        return;
                    }
                    ev = events.recv() => ev,
                };
                match ev {
                    Some(Ok(ev)) => match ev.kind {
                        WatchEventType::Added | WatchEventType::Modified => self.upsert(ev.object),
                        WatchEventType::Deleted => self.remove(&ev.object),
                        WatchEventType::Bookmark => self.reap(),
                    },
                    Some(Err(e)) if e.reason == Reason::Gone => {
                        tracing::info!("pod watch expired; relisting");
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "pod watch failed; relisting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                    None => break,
                }
            }
        }
    }
}
