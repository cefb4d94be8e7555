//! `rkctl delete KIND NAME...` and `rkctl delete -f FILE`.

use crate::apply::DryRun;
use crate::args::{kind_ref, parse_targets};
use crate::error::{CliError, Result};
use crate::manifest::{parse_source_ordered, read_sources};
use crate::output::str_at;
use crate::Ctx;
use rk_api::resources::{by_api_version_kind, ResourceKind};
use rk_client::{Client, DeleteOptions, ListParams};
use serde_json::Value;

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
            Ok(_) => {
                self.deleted += 1;
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
}

pub async fn run(ctx: &mut Ctx<'_>, a: DeleteArgs) -> Result<()> {
    let dry = DryRun::parse(a.dry_run.as_deref())?;
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
