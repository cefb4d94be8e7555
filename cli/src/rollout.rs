//! `rkctl rollout status|history|undo|restart|pause|resume`.
//!
//! Deployments keep their history in the ReplicaSets they control: each
//! carries the `deployment.kubernetes.io/revision` annotation and the pod
//! template of that revision (plus a `pod-template-hash` label). History
//! reads them; undo copies one template back into the Deployment on the
//! client side, as kubectl does.

use crate::args::kind_ref;
use crate::describe::{controlled_by, pod_template_text, template_without_hash};
use crate::edit::{modify, object_at, one_object, Change};
use crate::error::{CliError, Result};
use crate::table::{arr, at, int, int_or, s, Table};
use crate::time::{format_rfc3339, now_millis, parse_timeout};
use crate::Ctx;
use rk_api::resources::ResourceKind;
use rk_client::{Client, ListParams, WatchEventType};
use rk_proto::v1::WatchRequest;
use serde_json::Value;
use std::time::Duration;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

#[derive(Debug, clap::Subcommand)]
pub enum RolloutCmd {
    /// Watch a rollout until it completes.
    Status {
        #[arg(value_name = "KIND/NAME", required = true)]
        args: Vec<String>,
        /// Keep watching until the rollout finishes (default true).
        #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
        /// Give up after this long (e.g. 30s, 5m); 0 waits forever.
        #[arg(long, value_name = "DURATION", default_value = "0s")]
        timeout: String,
        /// Only succeed for this revision of the Deployment.
        #[arg(long, value_name = "N", default_value_t = 0)]
        revision: i64,
    },
    /// List the revisions of a Deployment.
    History {
        #[arg(value_name = "KIND/NAME", required = true)]
        args: Vec<String>,
        /// Show the pod template of this revision.
        #[arg(long, value_name = "N", default_value_t = 0)]
        revision: i64,
    },
    /// Roll a Deployment back to an earlier revision.
    Undo {
        #[arg(value_name = "KIND/NAME", required = true)]
        args: Vec<String>,
        /// The revision to go back to; 0 is the previous one.
        #[arg(long = "to-revision", value_name = "N", default_value_t = 0)]
        to_revision: i64,
    },
    /// Restart every Pod by changing the template's restartedAt annotation.
    Restart {
        #[arg(value_name = "KIND/NAME", required = true)]
        args: Vec<String>,
    },
    /// Stop the Deployment controller from rolling out template changes.
    Pause {
        #[arg(value_name = "KIND/NAME", required = true)]
        args: Vec<String>,
    },
    /// Let a paused Deployment roll out again.
    Resume {
        #[arg(value_name = "KIND/NAME", required = true)]
        args: Vec<String>,
    },
}

fn not_supported(kind: &ResourceKind, verb: &str) -> CliError {
    CliError::local(format!(
        "no {verb} has been implemented for {}",
        kind.group_resource()
    ))
}

pub async fn run(ctx: &mut Ctx<'_>, cmd: RolloutCmd) -> Result<()> {
    match cmd {
        RolloutCmd::Status {
            args,
            watch,
            timeout,
            revision,
        } => {
            let (kind, name) = one_object(&args, "rollout status")?;
            if !matches!(kind.kind, "Deployment" | "DaemonSet") {
                return Err(not_supported(kind, "status viewer"));
            }
            let timeout = parse_timeout("--timeout", &timeout).map_err(CliError::Local)?;
            status(ctx, kind, &name, watch, timeout, revision).await
        }
        RolloutCmd::History { args, revision } => {
            let (kind, name) = one_object(&args, "rollout history")?;
            if !matches!(kind.kind, "Deployment" | "DaemonSet") {
                return Err(not_supported(kind, "history viewer"));
            }
            history(ctx, kind, &name, revision).await
        }
        RolloutCmd::Undo { args, to_revision } => {
            let (kind, name) = one_object(&args, "rollout undo")?;
            if !matches!(kind.kind, "Deployment" | "DaemonSet") {
                return Err(not_supported(kind, "rollbacker"));
            }
            undo(ctx, kind, &name, to_revision).await
        }
        RolloutCmd::Restart { args } => {
            let (kind, name) = one_object(&args, "rollout restart")?;
            if !matches!(kind.kind, "Deployment" | "DaemonSet") {
                return Err(CliError::local(format!(
                    "restarting is not supported for {}",
                    kind.group_resource()
                )));
            }
            let client = ctx.client()?;
            let ns = ctx.namespace();
            let stamp = format_rfc3339(now_millis());
            modify(&client, kind, &ns, &name, |o| {
                if at(o, &["spec", "paused"]).as_bool().unwrap_or(false) {
                    return Err(CliError::local(format!(
                        "{} \"{name}\" can't restart paused deployment (run rollout resume first)",
                        kind.group_resource()
                    )));
                }
                object_at(o, &["spec", "template", "metadata", "annotations"])
                    .insert(RESTARTED_AT.into(), Value::String(stamp.clone()));
                Ok(Change::Write)
            })
            .await?;
            ctx.print(&format!("{}/{name} restarted\n", kind_ref(kind)));
            Ok(())
        }
        RolloutCmd::Pause { args } => pause(ctx, &args, true).await,
        RolloutCmd::Resume { args } => pause(ctx, &args, false).await,
    }
}

async fn pause(ctx: &mut Ctx<'_>, args: &[String], paused: bool) -> Result<()> {
    let verb = if paused { "rollout pause" } else { "rollout resume" };
    let (kind, name) = one_object(args, verb)?;
    if kind.kind != "Deployment" {
        return Err(CliError::local(format!(
            "{} \"{name}\" {}",
            kind.group_resource(),
            if paused {
                "pausing is not supported"
            } else {
                "resuming is not supported"
            }
        )));
    }
    let client = ctx.client()?;
    let ns = ctx.namespace();
    modify(&client, kind, &ns, &name, |o| {
        let now = at(o, &["spec", "paused"]).as_bool().unwrap_or(false);
        if now == paused {
            return Err(CliError::local(format!(
                "{} \"{name}\" is {}",
                kind.group_resource(),
                if paused { "already paused" } else { "not paused" }
            )));
        }
        let spec = object_at(o, &["spec"]);
        if paused {
            spec.insert("paused".into(), Value::Bool(true));
        } else {
            spec.remove("paused");
        }
        Ok(Change::Write)
    })
    .await?;
    let done = if paused { "paused" } else { "resumed" };
    ctx.print(&format!("{}/{name} {done}\n", kind_ref(kind)));
    Ok(())
}

/// Where a rollout stands: a line to print, and whether it is finished.
/// An error is a rollout that cannot finish (its progress deadline passed).
pub fn deployment_status(d: &Value, want_revision: i64) -> Result<(String, bool)> {
    let name = s(d, &["metadata", "name"]);
    if want_revision > 0 {
        let current: i64 = s(d, &["metadata", "annotations", REVISION_ANNOTATION])
            .parse()
            .unwrap_or(0);
        if current != want_revision {
            return Err(CliError::local(format!(
                "desired revision ({want_revision}) is different from the running revision ({current})"
            )));
        }
    }
    if int(d, &["metadata", "generation"]) > int(d, &["status", "observedGeneration"]) {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let progressing = arr(d, &["status", "conditions"])
        .iter()
        .find(|c| s(c, &["type"]) == "Progressing");
    if progressing.is_some_and(|c| s(c, &["reason"]) == "ProgressDeadlineExceeded") {
        return Err(CliError::local(format!(
            "deployment \"{name}\" exceeded its progress deadline"
        )));
    }
    let desired = int_or(d, &["spec", "replicas"], 1);
    let updated = int(d, &["status", "updatedReplicas"]);
    let replicas = int(d, &["status", "replicas"]);
    let available = int(d, &["status", "availableReplicas"]);
    Ok(if updated < desired {
        (
            format!(
                "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {desired} new replicas have been updated..."
            ),
            false,
        )
    } else if replicas > updated {
        (
            format!(
                "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
            false,
        )
    } else if available < updated {
        (
            format!(
                "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            false,
        )
    } else {
        (format!("deployment \"{name}\" successfully rolled out"), true)
    })
}

/// [`deployment_status`] for DaemonSets.
pub fn daemonset_status(d: &Value) -> Result<(String, bool)> {
    let name = s(d, &["metadata", "name"]);
    let strategy = s(d, &["spec", "updateStrategy", "type"]);
    if !strategy.is_empty() && strategy != "RollingUpdate" {
        return Err(CliError::local(
            "rollout status is only available for RollingUpdate strategy type",
        ));
    }
    if int(d, &["metadata", "generation"]) > int(d, &["status", "observedGeneration"]) {
        return Ok((
            "Waiting for daemon set spec update to be observed...".into(),
            false,
        ));
    }
    let desired = int(d, &["status", "desiredNumberScheduled"]);
    let updated = int(d, &["status", "updatedNumberScheduled"]);
    let available = int(d, &["status", "numberAvailable"]);
    Ok(if updated < desired {
        (
            format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
            false,
        )
    } else if available < desired {
        (
            format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {available} of {desired} updated pods are available..."
            ),
            false,
        )
    } else {
        (format!("daemon set \"{name}\" successfully rolled out"), true)
    })
}

async fn status(
    ctx: &mut Ctx<'_>,
    kind: &ResourceKind,
    name: &str,
    watch: bool,
    timeout: Option<Duration>,
    revision: i64,
) -> Result<()> {
    let client = ctx.client()?;
    let ns = ctx.namespace();
    let resource = kind.group_resource();
    let eval = |o: &Value| {
        if kind.kind == "Deployment" {
            deployment_status(o, revision)
        } else {
            daemonset_status(o)
        }
    };
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last_line = String::new();
    let obj = client.get(&resource, &ns, name).await?;
    let uid = s(&obj, &["metadata", "uid"]).to_string();
    let mut since: u64 = s(&obj, &["metadata", "resourceVersion"]).parse().unwrap_or(0);
    let mut current = obj;
    loop {
        let (line, done) = eval(&current)?;
        if line != last_line {
            ctx.print(&format!("{line}\n"));
            ctx.flush();
            last_line = line;
        }
        if done || !watch {
            return Ok(());
        }
        // Wait for the next change of this object (or the deadline).
        let req = WatchRequest {
            resource: resource.clone(),
            namespace: ns.clone(),
            label_selector: String::new(),
            field_selector: format!("metadata.name={name}"),
            since_revision: since,
            bookmark_interval_ms: 0,
        };
        let mut rx = client.watch(req);
        let next = loop {
            let ev = match deadline {
                Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                    Ok(ev) => ev,
                    Err(_) => return Err(CliError::local("timed out waiting for the condition")),
                },
                None => rx.recv().await,
            };
            match ev {
                // The watch ended or expired: read the object afresh.
                None | Some(Err(_)) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break client.get(&resource, &ns, name).await?;
                }
                Some(Ok(ev)) => {
                    since = since.max(ev.revision);
                    if ev.kind == WatchEventType::Bookmark || ev.object.is_null() {
                        continue;
                    }
                    if s(&ev.object, &["metadata", "name"]) != name {
                        continue;
                    }
                    if ev.kind == WatchEventType::Deleted || s(&ev.object, &["metadata", "uid"]) != uid {
                        return Err(CliError::local(format!(
                            "object has been deleted: {} \"{name}\"",
                            kind.group_resource()
                        )));
                    }
                    break ev.object;
                }
            }
        };
        since = since.max(s(&next, &["metadata", "resourceVersion"]).parse().unwrap_or(0));
        current = next;
    }
}

/// The revision of a ReplicaSet (0 when it has none).
pub fn revision_of(rs: &Value) -> i64 {
    s(rs, &["metadata", "annotations", REVISION_ANNOTATION])
        .parse()
        .unwrap_or(0)
}

/// The ReplicaSets a Deployment controls.
async fn replicasets_of(client: &Client, d: &Value) -> Result<Vec<Value>> {
    let params = ListParams {
        namespace: Some(s(d, &["metadata", "namespace"]).to_string()),
        ..Default::default()
    };
    let (items, _) = client.list("replicasets.apps", &params).await?;
    let uid = s(d, &["metadata", "uid"]);
    Ok(items.into_iter().filter(|r| controlled_by(r, uid)).collect())
}

/// A DaemonSet's history, its ControllerRevisions, in the shape of a
/// Deployment's ReplicaSets (revision annotation, change cause, template),
/// so `history` and `undo` treat both kinds alike.
async fn daemonset_revisions(client: &Client, ds: &Value) -> Result<Vec<Value>> {
    let params = ListParams {
        namespace: Some(s(ds, &["metadata", "namespace"]).to_string()),
        ..Default::default()
    };
    let (items, _) = client.list("controllerrevisions.apps", &params).await?;
    let uid = s(ds, &["metadata", "uid"]);
    Ok(items
        .iter()
        .filter(|r| controlled_by(r, uid))
        .map(revision_as_replicaset)
        .collect())
}

/// One ControllerRevision as [`daemonset_revisions`] presents it.
pub fn revision_as_replicaset(rev: &Value) -> Value {
    let mut template = at(rev, &["data", "spec", "template"]).clone();
    if let Some(t) = template.as_object_mut() {
        t.remove("$patch");
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        REVISION_ANNOTATION.into(),
        Value::String(int(rev, &["revision"]).to_string()),
    );
    let cause = s(rev, &["metadata", "annotations", CHANGE_CAUSE]);
    if !cause.is_empty() {
        annotations.insert(CHANGE_CAUSE.into(), Value::String(cause.to_string()));
    }
    serde_json::json!({
        "metadata": {"name": s(rev, &["metadata", "name"]), "annotations": annotations},
        "spec": {"template": template},
    })
}

/// The history of a Deployment (its ReplicaSets) or of a DaemonSet (its
/// ControllerRevisions, see [`daemonset_revisions`]).
async fn revisions_of(client: &Client, kind: &ResourceKind, obj: &Value) -> Result<Vec<Value>> {
    if kind.kind == "DaemonSet" {
        daemonset_revisions(client, obj).await
    } else {
        replicasets_of(client, obj).await
    }
}

/// The `rollout history` table: one row per revision, oldest first.
pub fn history_table(replicasets: &[Value]) -> Table {
    let mut rows: Vec<(i64, String)> = replicasets
        .iter()
        .filter(|r| revision_of(r) > 0)
        .map(|r| {
            let cause = s(r, &["metadata", "annotations", CHANGE_CAUSE]);
            (
                revision_of(r),
                if cause.is_empty() {
                    "<none>".to_string()
                } else {
                    cause.to_string()
                },
            )
        })
        .collect();
    rows.sort();
    rows.dedup_by_key(|r| r.0);
    Table {
        headers: vec!["REVISION".into(), "CHANGE-CAUSE".into()],
        rows: rows.into_iter().map(|(r, c)| vec![r.to_string(), c]).collect(),
    }
}

async fn history(ctx: &mut Ctx<'_>, kind: &ResourceKind, name: &str, revision: i64) -> Result<()> {
    let client = ctx.client()?;
    let ns = ctx.namespace();
    let d = client.get(&kind.group_resource(), &ns, name).await?;
    let rss = revisions_of(&client, kind, &d).await?;
    if revision > 0 {
        let Some(rs) = rss.iter().find(|r| revision_of(r) == revision) else {
            return Err(CliError::local(format!(
                "unable to find the specified revision {revision}"
            )));
        };
        ctx.print(&format!("{}/{name} with revision #{revision}\n", kind_ref(kind)));
        ctx.print(&pod_template_text(at(rs, &["spec", "template"])));
        return Ok(());
    }
    ctx.print(&format!("{}/{name}\n", kind_ref(kind)));
    let t = history_table(&rss);
    if t.rows.is_empty() {
        ctx.print("No rollout history found.\n");
    } else {
        ctx.print(&t.render(true));
    }
    ctx.print("\n");
    Ok(())
}

/// Chooses the ReplicaSet to roll back to: `to_revision`, or for 0 the
/// newest revision before the current (highest) one.
pub fn rollback_target<'a>(name: &str, rss: &'a [Value], to_revision: i64) -> Result<&'a Value> {
    let mut revisions: Vec<i64> = rss.iter().map(revision_of).filter(|r| *r > 0).collect();
    revisions.sort_unstable();
    revisions.dedup();
    if revisions.is_empty() {
        return Err(CliError::local(format!(
            "no rollout history found for deployment \"{name}\""
        )));
    }
    let want = if to_revision > 0 {
        to_revision
    } else if revisions.len() >= 2 {
        revisions[revisions.len() - 2]
    } else {
        return Err(CliError::local(format!(
            "no rollout history found for deployment \"{name}\""
        )));
    };
    rss.iter()
        .find(|r| revision_of(r) == want)
        .ok_or_else(|| CliError::local(format!("unable to find specified revision {want} in history")))
}

async fn undo(ctx: &mut Ctx<'_>, kind: &ResourceKind, name: &str, to_revision: i64) -> Result<()> {
    let client = ctx.client()?;
    let ns = ctx.namespace();
    let d = client.get(&kind.group_resource(), &ns, name).await?;
    let rss = revisions_of(&client, kind, &d).await?;
    let mut skipped: Option<i64> = None;
    modify(&client, kind, &ns, name, |d| {
        if at(d, &["spec", "paused"]).as_bool().unwrap_or(false) {
            return Err(CliError::local(format!(
                "you cannot rollback a paused deployment; resume it first with 'rkctl rollout resume deployment/{name}' and try again"
            )));
        }
        let target = rollback_target(name, &rss, to_revision)?;
        let template = template_without_hash(target);
        if at(d, &["spec", "template"]) == &template {
            skipped = Some(revision_of(target));
            return Ok(Change::Unchanged);
        }
        object_at(d, &["spec"]).insert("template".into(), template);
        skipped = None;
        Ok(Change::Write)
    })
    .await?;
    match skipped {
        Some(rev) => ctx.print(&format!(
            "{}/{name} skipped rollback (current template already matches revision {rev})\n",
            kind_ref(kind)
        )),
        None => ctx.print(&format!("{}/{name} rolled back\n", kind_ref(kind))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(generation: i64, observed: i64, status: Value) -> Value {
        let mut st = status;
        st["observedGeneration"] = json!(observed);
        json!({"metadata": {"name": "web", "generation": generation,
                            "annotations": {REVISION_ANNOTATION: "2"}},
               "spec": {"replicas": 2}, "status": st})
    }

    #[test]
    fn status_lines() {
        let cases = [
            (deploy(2, 1, json!({})), "Waiting for deployment spec update to be observed...", false),
            (
                deploy(2, 2, json!({"replicas": 3, "updatedReplicas": 1})),
                "Waiting for deployment \"web\" rollout to finish: 1 out of 2 new replicas have been updated...",
                false,
            ),
            (
                deploy(2, 2, json!({"replicas": 3, "updatedReplicas": 2})),
                "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...",
                false,
            ),
            (
                deploy(2, 2, json!({"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1})),
                "Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available...",
                false,
            ),
            (
                deploy(2, 2, json!({"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2})),
                "deployment \"web\" successfully rolled out",
                true,
            ),
        ];
        for (d, line, done) in cases {
            assert_eq!(deployment_status(&d, 0).unwrap(), (line.to_string(), done));
        }
        let stuck = deploy(
            2,
            2,
            json!({"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(
            deployment_status(&stuck, 0).unwrap_err().line().as_deref(),
            Some("error: deployment \"web\" exceeded its progress deadline")
        );
        assert!(deployment_status(&deploy(1, 1, json!({})), 3).is_err());
    }

    #[test]
    fn daemonset_lines() {
        let ds = json!({"metadata": {"name": "agent", "generation": 1},
                        "status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                                   "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert_eq!(
            daemonset_status(&ds).unwrap().0,
            "Waiting for daemon set \"agent\" rollout to finish: 1 of 2 updated pods are available..."
        );
    }

    fn rs(rev: &str, image: &str) -> Value {
        json!({"metadata": {"name": format!("web-{rev}"), "annotations": {REVISION_ANNOTATION: rev}},
               "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": rev}},
                                     "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn daemonset_revisions_read_like_replicasets() {
        let rev = json!({"metadata": {"name": "agent-5d8f", "annotations": {CHANGE_CAUSE: "rkctl set image"}},
                         "revision": 2,
                         "data": {"spec": {"template": {"$patch": "replace",
                                  "metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": "b"}]}}}}});
        let as_rs = revision_as_replicaset(&rev);
        assert_eq!(revision_of(&as_rs), 2);
        assert_eq!(
            history_table(std::slice::from_ref(&as_rs)).render(true),
            "REVISION   CHANGE-CAUSE\n2          rkctl set image\n"
        );
        assert_eq!(
            template_without_hash(&as_rs),
            json!({"metadata": {"labels": {"app": "agent"}},
                   "spec": {"containers": [{"name": "c", "image": "b"}]}})
        );
    }

    #[test]
    fn history_and_rollback_targets() {
        let mut with_cause = rs("3", "c");
        with_cause["metadata"]["annotations"][CHANGE_CAUSE] = json!("rkctl set image");
        let rss = vec![rs("2", "b"), with_cause, rs("1", "a")];
        assert_eq!(
            history_table(&rss).render(true),
            "REVISION   CHANGE-CAUSE\n1          <none>\n2          <none>\n3          rkctl set image\n"
        );
        assert_eq!(
            s(rollback_target("web", &rss, 0).unwrap(), &["metadata", "name"]),
            "web-2"
        );
        assert_eq!(
            s(rollback_target("web", &rss, 1).unwrap(), &["metadata", "name"]),
            "web-1"
        );
        assert_eq!(
            rollback_target("web", &rss, 9).unwrap_err().line().as_deref(),
            Some("error: unable to find specified revision 9 in history")
        );
        assert!(rollback_target("web", &rss[..1], 0).is_err());
        let t = template_without_hash(&rss[0]);
        assert_eq!(t["metadata"]["labels"], json!({"app": "web"}));
    }
}
