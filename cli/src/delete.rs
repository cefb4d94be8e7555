//! `rkctl delete KIND NAME...` and `rkctl delete -f FILE`.

use crate::apply::DryRun;
use crate::args::{kind_ref, parse_targets};
use crate::error::{CliError, Result};
use crate::manifest::{parse_source_ordered, read_sources};
use crate::output::str_at;
use crate::progress::Progress;
use crate::time::parse_timeout;
use crate::Ctx;
use rk_api::resources::{by_api_version_kind, ResourceKind};
use rk_client::{Client, DeleteOptions, ListParams};
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// KIND NAME..., KIND/NAME..., or KIND with -l / --all.
    #[arg(value_name = "KIND [NAME...]")]
    pub args: Vec<String>,
    /// Delete the objects of a manifest file, directory or - for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<String>,
    /// Delete the objects matching a label selector.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Delete the objects matching a field selector.
    #[arg(long = "field-selector", value_name = "SELECTOR")]
    pub field_selector: Option<String>,
    /// Delete every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
    /// With --all or a selector: in every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// What happens to dependents: background, foreground or orphan.
    #[arg(
        long,
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "background"
    )]
    pub cascade: Option<String>,
    /// Seconds the object gets to terminate; -1 keeps the object's default.
    #[arg(long = "grace-period", value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Shorthand for --grace-period=1.
    #[arg(long)]
    pub now: bool,
    /// With --grace-period=0: remove immediately.
    #[arg(long)]
    pub force: bool,
    /// Wait until the objects are gone (finalizers done, Pods terminated)
    /// before returning, as kubectl does; `--wait=false` returns at once.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub wait: bool,
    /// How long --wait may take (0: no limit), e.g. 30s or 5m.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub timeout: String,
    /// Treat objects that do not exist as deleted.
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
    /// none, client or server.
    #[arg(
        long = "dry-run",
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "client"
    )]
    pub dry_run: Option<String>,
}

/// Maps `--cascade` onto a propagation policy.
pub fn propagation_policy(cascade: Option<&str>) -> Result<String> {
    Ok(match cascade.map(str::to_ascii_lowercase).as_deref() {
        None | Some("background") | Some("true") => "Background",
        Some("foreground") => "Foreground",
        Some("orphan") | Some("false") => "Orphan",
        Some(_) => {
            return Err(CliError::local(format!(
                "invalid cascade value ({}). Must be \"background\", \"foreground\", or \"orphan\"",
                cascade.unwrap_or_default()
            )))
        }
    }
    .to_string())
}

/// kubectl's grace period rules: `--now` is one second, 0 needs `--force`
/// (otherwise it becomes 1), `--force` alone means 0, negative is unset.
pub fn grace_period(n: i64, now: bool, force: bool) -> Option<i64> {
    let mut g = if now { 1 } else { n };
    if force && g < 0 {
        g = 0;
    }
    if g == 0 && !force {
        g = 1;
    }
    (g >= 0).then_some(g)
}

struct Deleter {
    client: Client,
    opts: DeleteOptions,
    dry: DryRun,
    ignore_not_found: bool,
    failed: bool,
    deleted: usize,
    /// What `--wait` waits for: the objects deleted so far.
    gone: Vec<Deleted>,
}

/// An object a delete was accepted for.
struct Deleted {
    /// `kind/name`, as printed.
    label: String,
    resource: String,
    namespace: String,
    name: String,
    /// The deleted object's uid: an object recreated under the same name
    /// is another object and does not hold the wait up.
    uid: String,
}

impl Deleter {
    async fn delete(&mut self, ctx: &mut Ctx<'_>, kind: &ResourceKind, ns: &str, name: &str) -> Result<()> {
        let resource = kind.group_resource();
        let ns = if kind.namespaced { ns } else { "" };
        let r = if self.dry == DryRun::Client {
            self.client.get(&resource, ns, name).await.map(|_| Value::Null)
        } else {
            self.client.delete(&resource, ns, name, &self.opts).await
        };
        match r {
            Ok(v) => {
                self.deleted += 1;
                if self.dry == DryRun::None {
                    self.gone.push(Deleted {
                        label: format!("{}/{name}", kind.plural),
                        resource: resource.clone(),
                        namespace: ns.to_string(),
                        name: name.to_string(),
                        uid: str_at(&v, &["metadata", "uid"]).to_string(),
                    });
                }
                ctx.print(&format!(
                    "{} \"{name}\" deleted{}\n",
                    kind_ref(kind),
                    self.dry.suffix()
                ));
                ctx.flush();
            }
            Err(e) if e.reason == rk_api::Reason::NotFound && self.ignore_not_found => {}
            Err(e) => {
                if e.message.starts_with("Unable to connect") {
                    return Err(e.into());
                }
                ctx.report(&e.into());
                self.failed = true;
            }
        }
        Ok(())
    }

    /// With `--wait`: returns once every deleted object is gone, drawing a
    /// progress line on a terminal, or fails at the deadline.
    async fn wait(&mut self, ctx: &mut Ctx<'_>, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut progress = Progress::new(ctx.term.progress);
        loop {
            let mut still = Vec::new();
            for d in self.gone.drain(..) {
                match self.client.get(&d.resource, &d.namespace, &d.name).await {
                    Ok(o) if d.uid.is_empty() || str_at(&o, &["metadata", "uid"]) == d.uid => still.push(d),
                    Ok(_) => {}
                    Err(e) if e.reason == rk_api::Reason::NotFound => {}
                    Err(e) => {
                        progress.clear(ctx.err);
                        return Err(e.into());
                    }
                }
            }
            self.gone = still;
            if self.gone.is_empty() {
                progress.clear(ctx.err);
                return Ok(());
            }
            let labels: Vec<&str> = self.gone.iter().map(|d| d.label.as_str()).collect();
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                progress.clear(ctx.err);
                return Err(CliError::local(format!(
                    "timed out waiting for the condition on {}",
                    labels.join(", ")
                )));
            }
            let shown: Vec<&str> = labels.iter().take(3).copied().collect();
            let more = labels.len().saturating_sub(shown.len());
            progress.show(
                ctx.err,
                &format!(
                    "waiting for {} to be deleted: {}{}",
                    if labels.len() == 1 {
                        "1 object".to_string()
                    } else {
                        format!("{} objects", labels.len())
                    },
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

pub async fn run(ctx: &mut Ctx<'_>, a: DeleteArgs) -> Result<()> {
    let dry = DryRun::parse(a.dry_run.as_deref())?;
    let timeout = if a.wait {
        parse_timeout("--timeout", &a.timeout).map_err(CliError::Local)?
    } else {
        None
    };
    let policy = propagation_policy(a.cascade.as_deref())?;
    let selector = a.selector.clone().unwrap_or_default();
    let field_selector = a.field_selector.clone().unwrap_or_default();
    let opts = DeleteOptions {
        propagation_policy: Some(policy),
        grace_period_seconds: grace_period(a.grace_period, a.now, a.force),
        dry_run: dry == DryRun::Server,
        ..Default::default()
    };

    if !a.files.is_empty() {
        if !a.args.is_empty() {
            return Err(CliError::local("cannot specify both -f and resource arguments"));
        }
        let sources = read_sources(&a.files)?;
        let parsed: Vec<_> = sources.iter().flat_map(parse_source_ordered).collect();
        let client = ctx.client()?;
        let ns = ctx.namespace();
        let mut d = Deleter {
            client,
            opts,
            dry,
            ignore_not_found: a.ignore_not_found,
            failed: false,
            deleted: 0,
            gone: Vec::new(),
        };
        for item in parsed {
            let m = match item {
                Ok(m) => m,
                Err(line) => {
                    ctx.eprint_line(&line);
                    d.failed = true;
                    continue;
                }
            };
            let av = str_at(&m.object, &["apiVersion"]);
            let kind = str_at(&m.object, &["kind"]);
            let name = str_at(&m.object, &["metadata", "name"]);
            let obj_ns = str_at(&m.object, &["metadata", "namespace"]);
            let obj_ns = if obj_ns.is_empty() { ns.as_str() } else { obj_ns };
            let Some(rk) = by_api_version_kind(av, kind) else {
                ctx.report(&CliError::local(format!(
                    "resource mapping not found for name: \"{name}\" namespace: \"{obj_ns}\" from \"{}\": no matches for kind \"{kind}\" in version \"{av}\"",
                    m.source
                )));
                d.failed = true;
                continue;
            };
            if name.is_empty() {
                ctx.report(&CliError::local(format!(
                    "resource name may not be empty (a {} in \"{}\")",
                    kind_ref(rk),
                    m.source
                )));
                d.failed = true;
                continue;
            }
            d.delete(ctx, rk, obj_ns, name).await?;
        }
        if a.wait {
            d.wait(ctx, timeout).await?;
        }
        return if d.failed { Err(CliError::Reported) } else { Ok(()) };
    }

    if a.args.is_empty() {
        return Err(CliError::local(
            "You must provide one or more resources by argument or filename.",
        ));
    }
    let targets = parse_targets(&a.args)?;
    let by_selector = a.all || !selector.is_empty() || !field_selector.is_empty();
    for t in &targets {
        if t.names.is_empty() && !by_selector {
            return Err(CliError::local(
                "resource(s) were provided, but no name was specified",
            ));
        }
        if !t.names.is_empty() && by_selector {
            return Err(CliError::local(
                "name cannot be provided when a selector is specified",
            ));
        }
    }
    let client = ctx.client()?;
    let ns = ctx.namespace();
    let mut d = Deleter {
        client: client.clone(),
        opts,
        dry,
        ignore_not_found: a.ignore_not_found,
        failed: false,
        deleted: 0,
        gone: Vec::new(),
    };
    let mut listed_any = false;
    for t in &targets {
        if !t.names.is_empty() {
            for name in &t.names {
                d.delete(ctx, t.kind, &ns, name).await?;
            }
            continue;
        }
        listed_any = true;
        let params = ListParams {
            namespace: if t.kind.namespaced && !a.all_namespaces {
                Some(ns.clone())
            } else {
                None
            },
            label_selector: selector.clone(),
            field_selector: field_selector.clone(),
            local: false,
        };
        let (items, _) = client.list(&t.kind.group_resource(), &params).await?;
        for o in &items {
            let name = str_at(o, &["metadata", "name"]);
            let obj_ns = str_at(o, &["metadata", "namespace"]);
            d.delete(ctx, t.kind, obj_ns, name).await?;
        }
    }
    if listed_any && d.deleted == 0 && !d.failed {
        ctx.eprint_line("No resources found");
    }
    if a.wait {
        d.wait(ctx, timeout).await?;
    }
    if d.failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cascade_values() {
        assert_eq!(propagation_policy(None).unwrap(), "Background");
        assert_eq!(propagation_policy(Some("background")).unwrap(), "Background");
        assert_eq!(propagation_policy(Some("foreground")).unwrap(), "Foreground");
        assert_eq!(propagation_policy(Some("orphan")).unwrap(), "Orphan");
        assert_eq!(propagation_policy(Some("false")).unwrap(), "Orphan");
        assert!(propagation_policy(Some("sideways")).is_err());
    }

    #[test]
    fn grace_periods() {
        assert_eq!(grace_period(-1, false, false), None);
        assert_eq!(grace_period(30, false, false), Some(30));
        assert_eq!(grace_period(0, false, false), Some(1));
        assert_eq!(grace_period(0, false, true), Some(0));
        assert_eq!(grace_period(-1, false, true), Some(0));
        assert_eq!(grace_period(-1, true, false), Some(1));
    }
}
