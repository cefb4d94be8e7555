//! `rkctl drain NODE`: cordon the node, then delete its Pods and wait until
//! they are gone.
//!
//! The Pods kubectl refuses or skips are the same here: DaemonSet-managed
//! Pods are recreated on the node by their controller at once, so deleting
//! them is pointless (they are skipped with `--ignore-daemonsets`, an error
//! without it); mirror Pods belong to the node itself and are skipped; Pods
//! no controller recreates are lost for good, so they need `--force`; Pods
//! with emptyDir data lose it, so they need `--delete-emptydir-data`. rk has
//! no eviction API, so Pods are deleted (honouring `--grace-period`).

use crate::edit::set_unschedulable;
use crate::error::{CliError, Result};
use crate::progress::Progress;
use crate::table::{arr, s};
use crate::time::parse_timeout;
use crate::Ctx;
use rk_client::{DeleteOptions, ListParams};
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// The node to drain.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Skip DaemonSet-managed Pods (their controller would recreate them).
    #[arg(long = "ignore-daemonsets")]
    pub ignore_daemonsets: bool,
    /// Also delete Pods that no controller manages (they are not recreated).
    #[arg(long)]
    pub force: bool,
    /// Also delete Pods using emptyDir volumes (their data is lost).
    #[arg(long = "delete-emptydir-data")]
    pub delete_emptydir_data: bool,
    /// Seconds each Pod gets to terminate; -1 uses the Pod's own value.
    #[arg(long = "grace-period", value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Give up after this long (e.g. 60s, 5m); 0 waits forever.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub timeout: String,
    /// Only select Pods matching this label selector.
    #[arg(long = "pod-selector", value_name = "SELECTOR")]
    pub pod_selector: Option<String>,
}

/// What drain does with one Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Delete,
    /// Skipped silently (mirror Pods, Pods that already finished deleting).
    Skip,
    /// A DaemonSet-managed Pod skipped with a warning.
    DaemonSet,
    /// Refused: no controller and no `--force`.
    Unmanaged,
    /// Deleted with a warning (`--force`).
    UnmanagedForced,
    /// Refused: emptyDir data and no `--delete-emptydir-data`.
    LocalStorage,
}

/// Sorts one Pod into what drain does with it.
pub fn classify(p: &Value, a: &DrainArgs) -> Disposition {
    if !s(p, &["metadata", "annotations", "kubernetes.io/config.mirror"]).is_empty() {
        return Disposition::Skip;
    }
    let finished = matches!(s(p, &["status", "phase"]), "Succeeded" | "Failed");
    let controller = arr(p, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool).unwrap_or(false));
    if controller.is_some_and(|r| s(r, &["kind"]) == "DaemonSet") {
        return Disposition::DaemonSet;
    }
    if controller.is_none() && !finished {
        if !a.force {
            return Disposition::Unmanaged;
        }
        return Disposition::UnmanagedForced;
    }
    let empty_dir = arr(p, &["spec", "volumes"])
        .iter()
        .any(|v| v.get("emptyDir").is_some());
    if empty_dir && !finished && !a.delete_emptydir_data {
        return Disposition::LocalStorage;
    }
    Disposition::Delete
}

fn ns_name(p: &Value) -> String {
    format!(
        "{}/{}",
        s(p, &["metadata", "namespace"]),
        s(p, &["metadata", "name"])
    )
}

pub async fn run(ctx: &mut Ctx<'_>, a: DrainArgs) -> Result<()> {
    let timeout = parse_timeout("--timeout", &a.timeout).map_err(CliError::Local)?;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let node = match a.node.split_once('/') {
        Some(("node" | "nodes" | "no", n)) => n.to_string(),
        Some(_) => return Err(CliError::local(format!("{} is not a node", a.node))),
        None => a.node.clone(),
    };
    set_unschedulable(ctx, std::slice::from_ref(&node), true).await?;
    let client = ctx.client()?;
    let params = ListParams {
        field_selector: format!("spec.nodeName={node}"),
        label_selector: a.pod_selector.clone().unwrap_or_default(),
        ..Default::default()
    };
    let (pods, _) = client.list("pods", &params).await?;
    let mut delete = Vec::new();
    let mut daemonsets = Vec::new();
    let mut unmanaged = Vec::new();
    let mut forced = Vec::new();
    let mut local = Vec::new();
    for p in &pods {
        match classify(p, &a) {
            Disposition::Delete => delete.push(p),
            Disposition::Skip => {}
            Disposition::DaemonSet => daemonsets.push(ns_name(p)),
            Disposition::Unmanaged => unmanaged.push(ns_name(p)),
            Disposition::UnmanagedForced => {
                forced.push(ns_name(p));
                delete.push(p);
            }
            Disposition::LocalStorage => local.push(ns_name(p)),
        }
    }
    let mut problems = Vec::new();
    if !unmanaged.is_empty() {
        problems.push(format!(
            "cannot delete Pods that declare no controller (use --force to override): {}",
            unmanaged.join(", ")
        ));
    }
    if !daemonsets.is_empty() && !a.ignore_daemonsets {
        problems.push(format!(
            "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}",
            daemonsets.join(", ")
        ));
    }
    if !local.is_empty() {
        problems.push(format!(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): {}",
            local.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(CliError::local(format!(
            "unable to drain node \"{node}\" due to error: {}",
            problems.join("; ")
        )));
    }
    if !daemonsets.is_empty() {
        ctx.eprint_line(&format!(
            "Warning: ignoring DaemonSet-managed Pods: {}",
            daemonsets.join(", ")
        ));
    }
    if !forced.is_empty() {
        ctx.eprint_line(&format!(
            "Warning: deleting Pods that declare no controller: {}",
            forced.join(", ")
        ));
    }
    let opts = DeleteOptions {
        grace_period_seconds: (a.grace_period >= 0).then_some(a.grace_period),
        ..Default::default()
    };
    // Deleted Pods, by namespace, name and uid: a Pod recreated under the
    // same name is another Pod and does not count as still draining.
    let mut waiting: Vec<(String, String, String)> = Vec::new();
    for p in delete {
        let ns = s(p, &["metadata", "namespace"]).to_string();
        let name = s(p, &["metadata", "name"]).to_string();
        ctx.print(&format!("deleting pod {ns}/{name}\n"));
        ctx.flush();
        match client.delete("pods", &ns, &name, &opts).await {
            Ok(_) => waiting.push((ns, name, s(p, &["metadata", "uid"]).to_string())),
            Err(e) if e.reason == rk_api::Reason::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut progress = Progress::new(ctx.term.progress);
    loop {
        let mut still = Vec::new();
        let mut gone = Vec::new();
        for (ns, name, uid) in waiting {
            match client.get("pods", &ns, &name).await {
                Ok(p) if s(&p, &["metadata", "uid"]) == uid => still.push((ns, name, uid)),
                Ok(_) => gone.push(name),
                Err(e) if e.reason == rk_api::Reason::NotFound => gone.push(name),
                Err(e) => {
                    progress.clear(ctx.err);
                    return Err(e.into());
                }
            }
        }
        if !gone.is_empty() {
            // The progress line shares the screen with stdout: erase it
            // before printing, redraw it after.
            progress.clear(ctx.err);
            for name in gone {
                ctx.print(&format!("pod/{name} deleted\n"));
            }
        }
        ctx.flush();
        waiting = still;
        if waiting.is_empty() {
            progress.clear(ctx.err);
            break;
        }
        progress.show(
            ctx.err,
            &format!(
                "draining node \"{node}\": waiting for {} Pod{} to terminate",
                waiting.len(),
                if waiting.len() == 1 { "" } else { "s" }
            ),
        );
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            progress.clear(ctx.err);
            let left: Vec<String> = waiting.iter().map(|(ns, n, _)| format!("{ns}/{n}")).collect();
            return Err(CliError::local(format!(
                "unable to drain node \"{node}\": timed out waiting for the Pods to be deleted: {}",
                left.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    ctx.print(&format!("node/{node} drained\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(force: bool, ds: bool, empty: bool) -> DrainArgs {
        DrainArgs {
            node: "n1".into(),
            ignore_daemonsets: ds,
            force,
            delete_emptydir_data: empty,
            grace_period: -1,
            timeout: "0s".into(),
            pod_selector: None,
        }
    }

    fn owned(kind: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default",
               "ownerReferences": [{"kind": kind, "name": "x", "uid": "u", "controller": true}]},
               "status": {"phase": "Running"}})
    }

    #[test]
    fn classification() {
        let plain = args(false, false, false);
        assert_eq!(classify(&owned("ReplicaSet"), &plain), Disposition::Delete);
        assert_eq!(classify(&owned("DaemonSet"), &plain), Disposition::DaemonSet);
        let bare = json!({"metadata": {"name": "b", "namespace": "default"}, "status": {"phase": "Running"}});
        assert_eq!(classify(&bare, &plain), Disposition::Unmanaged);
        assert_eq!(
            classify(&bare, &args(true, false, false)),
            Disposition::UnmanagedForced
        );
        let done = json!({"metadata": {"name": "b"}, "status": {"phase": "Succeeded"}});
        assert_eq!(classify(&done, &plain), Disposition::Delete);
        let mirror = json!({"metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": "x"}}});
        assert_eq!(classify(&mirror, &plain), Disposition::Skip);
        let mut scratch = owned("ReplicaSet");
        scratch["spec"] = json!({"volumes": [{"name": "s", "emptyDir": {}}]});
        assert_eq!(classify(&scratch, &plain), Disposition::LocalStorage);
        assert_eq!(classify(&scratch, &args(false, false, true)), Disposition::Delete);
    }
}
