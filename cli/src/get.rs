//! `rkctl get KIND [NAME...]`.

use crate::args::{kind_ref, parse_targets, Target};
use crate::error::{CliError, Result};
use crate::jsonpath::Template;
use crate::output::{custom_columns_table, list_of, to_json, to_yaml, Format};
use crate::table::{self, render_row, TableOpts};
use crate::time::now_millis;
use crate::Ctx;
use rk_api::resources::ResourceKind;
use rk_client::{Client, ListParams, WatchEventType};
use rk_proto::v1::WatchRequest;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// KIND [NAME...], KIND1,KIND2 [NAME...] or KIND/NAME...
    #[arg(value_name = "KIND [NAME...]")]
    pub args: Vec<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Output format: yaml, json, wide, name, jsonpath=TEMPLATE or
    /// custom-columns=HEADER:PATH,...
    #[arg(short = 'o', long = "output", value_name = "FORMAT")]
    pub output: Option<String>,
    /// Label selector, e.g. app=web,tier!=db.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Field selector, e.g. spec.nodeName=node-a.
    #[arg(long = "field-selector", value_name = "SELECTOR")]
    pub field_selector: Option<String>,
    /// Sort list output by this JSONPath, e.g. .metadata.name.
    #[arg(long = "sort-by", value_name = "JSONPATH")]
    pub sort_by: Option<String>,
    /// After listing, watch for changes (until interrupted).
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,
    /// Say nothing about named objects that do not exist.
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
}

/// The objects found for one kind.
struct Group {
    kind: &'static ResourceKind,
    objects: Vec<Value>,
}

fn resource_version(o: &Value) -> u64 {
    o.get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn name_of(o: &Value) -> &str {
    o.get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub async fn run(ctx: &mut Ctx<'_>, a: GetArgs) -> Result<()> {
    let format = Format::parse(a.output.as_deref())?;
    let sort_by = match a.sort_by.as_deref() {
        Some(p) => Some(Template::parse_relaxed(p).map_err(CliError::Local)?),
        None => None,
    };
    let targets = parse_targets(&a.args)?;
    let named = targets.iter().any(|t| !t.names.is_empty());
    let selector = a.selector.clone().unwrap_or_default();
    let field_selector = a.field_selector.clone().unwrap_or_default();
    if named && (!selector.is_empty() || !field_selector.is_empty()) {
        return Err(CliError::local(
            "name cannot be provided when a selector is specified",
        ));
    }
    if named && a.all_namespaces && targets.iter().any(|t| t.kind.namespaced) {
        return Err(CliError::local(
            "a resource cannot be retrieved by name across all namespaces",
        ));
    }
    if a.watch && targets.len() > 1 {
        return Err(CliError::local(format!(
            "watch is only supported on individual resources and resource collections, but {} resources were found",
            targets.len()
        )));
    }
    let client = ctx.client()?;
    let ns = ctx.namespace();

    let mut groups = Vec::new();
    let mut errors: Vec<CliError> = Vec::new();
    let mut revision = 0u64;
    for t in &targets {
        let (objects, rev) = fetch(&client, t, &ns, &a, &selector, &field_selector, &mut errors).await?;
        revision = revision.max(rev);
        let mut objects = objects;
        if let Some(t) = &sort_by {
            sort_objects(&mut objects, t);
        }
        groups.push(Group {
            kind: t.kind,
            objects,
        });
    }
    let single = targets.len() == 1 && targets[0].names.len() == 1;
    let opts = TableOpts {
        wide: format == Format::Wide,
        all_namespaces: a.all_namespaces,
        kind_prefix: targets.len() > 1,
    };
    let now = now_millis();
    let total: usize = groups.iter().map(|g| g.objects.len()).sum();

    if a.watch {
        // Only one kind gets here.
        let Some(g) = groups.pop() else {
            return Ok(());
        };
        for e in &errors {
            ctx.report(e);
        }
        if !errors.is_empty() {
            return Err(CliError::Reported);
        }
        return watch(ctx, &client, &targets[0], g, format, opts, &ns, &a, revision).await;
    }

    match &format {
        Format::Table | Format::Wide => {
            let mut first = true;
            for g in &groups {
                if g.objects.is_empty() {
                    continue;
                }
                if !first {
                    ctx.print("\n");
                }
                first = false;
                let t = table::build(g.kind, &g.objects, now, opts).render(true);
                if ctx.term.color {
                    ctx.print(&crate::progress::color_status_column(&t));
                } else {
                    ctx.print(&t);
                }
            }
        }
        Format::Name => {
            for g in &groups {
                for o in &g.objects {
                    ctx.print(&format!("{}/{}\n", kind_ref(g.kind), name_of(o)));
                }
            }
        }
        Format::CustomColumns(cols) => {
            let objects: Vec<Value> = groups.iter().flat_map(|g| g.objects.iter().cloned()).collect();
            if !objects.is_empty() {
                ctx.print(&custom_columns_table(cols, &objects).render(true));
            }
        }
        Format::Yaml | Format::Json | Format::JsonPath(_) => {
            let doc = if single && errors.is_empty() && total == 1 {
                groups.into_iter().flat_map(|g| g.objects).next()
            } else if single && total == 0 {
                None
            } else {
                Some(list_of(groups.into_iter().flat_map(|g| g.objects).collect()))
            };
            if let Some(doc) = doc {
                let text = match &format {
                    Format::Yaml => to_yaml(&doc)?,
                    Format::JsonPath(t) => t.render(&doc),
                    _ => to_json(&doc),
                };
                ctx.print(&text);
            }
        }
    }
    if total == 0
        && errors.is_empty()
        && !named
        && matches!(format, Format::Table | Format::Wide | Format::CustomColumns(_))
    {
        let namespaced = targets.iter().any(|t| t.kind.namespaced);
        let msg = if namespaced && !a.all_namespaces {
            format!("No resources found in {ns} namespace.")
        } else {
            "No resources found".to_string()
        };
        ctx.eprint_line(&msg);
    }
    ctx.flush();
    for e in &errors {
        ctx.report(e);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

/// Sorts objects by the first value `path` finds in each: numbers by
/// value, anything else by its text; objects without the field come
/// first. The sort is stable, so ties keep the server's order (by name).
fn sort_objects(objects: &mut [Value], path: &Template) {
    use std::cmp::Ordering;
    let key = |o: &Value| path.values(o).first().map(|v| (*v).clone());
    objects.sort_by(|a, b| match (key(a), key(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
            _ => crate::jsonpath::text_of(&x).cmp(&crate::jsonpath::text_of(&y)),
        },
    });
}

/// Gets the named objects of a target, or lists them. Per-name failures go
/// to `errors`; a failed list is returned as the error.
#[allow(clippy::too_many_arguments)]
async fn fetch(
    client: &Client,
    t: &Target,
    ns: &str,
    a: &GetArgs,
    selector: &str,
    field_selector: &str,
    errors: &mut Vec<CliError>,
) -> Result<(Vec<Value>, u64)> {
    let resource = t.kind.group_resource();
    let ns_for_kind = if t.kind.namespaced { ns } else { "" };
    if !t.names.is_empty() {
        let mut objects = Vec::new();
        let mut rev = 0;
        for name in &t.names {
            match client.get(&resource, ns_for_kind, name).await {
                Ok(o) => {
                    rev = rev.max(resource_version(&o));
                    objects.push(o);
                }
                Err(e) if e.reason == rk_api::Reason::NotFound && a.ignore_not_found => {}
                Err(e) => {
                    // Without a connection the other names fail the same way.
                    if e.message.starts_with("Unable to connect") {
                        return Err(e.into());
                    }
                    errors.push(e.into());
                }
            }
        }
        return Ok((objects, rev));
    }
    let params = ListParams {
        namespace: if t.kind.namespaced && !a.all_namespaces {
            Some(ns.to_string())
        } else {
            None
        },
        label_selector: selector.to_string(),
        field_selector: field_selector.to_string(),
        local: false,
    };
    let (items, rev) = client.list(&resource, &params).await?;
    Ok((items, rev))
}

/// Prints the initial objects, then every change from `revision` on, until
/// the stream ends or the user interrupts.
#[allow(clippy::too_many_arguments)]
async fn watch(
    ctx: &mut Ctx<'_>,
    client: &Client,
    target: &Target,
    g: Group,
    format: Format,
    opts: TableOpts,
    ns: &str,
    a: &GetArgs,
    revision: u64,
) -> Result<()> {
    let kind = g.kind;
    let now = now_millis();
    let initial = match &format {
        Format::CustomColumns(cols) => custom_columns_table(cols, &g.objects),
        _ => table::build(kind, &g.objects, now, opts),
    };
    let widths = initial.widths();
    let mut header_printed = false;
    let mut docs_printed = 0usize;
    let mut print_obj = |ctx: &mut Ctx<'_>, o: &Value, header_printed: &mut bool| -> Result<()> {
        match &format {
            Format::CustomColumns(cols) => {
                if !*header_printed {
                    ctx.print(&render_row(&initial.headers, &widths));
                    *header_printed = true;
                }
                let t = custom_columns_table(cols, std::slice::from_ref(o));
                for r in &t.rows {
                    ctx.print(&render_row(r, &widths));
                }
            }
            Format::JsonPath(t) => ctx.print(&t.render(o)),
            Format::Table | Format::Wide => {
                if !*header_printed {
                    ctx.print(&render_row(&initial.headers, &widths));
                    *header_printed = true;
                }
                let row = render_row(&table::row(kind, o, now_millis(), opts), &widths);
                if ctx.term.color {
                    let header = render_row(&initial.headers, &widths);
                    ctx.print(&crate::progress::color_row(&header, &row));
                } else {
                    ctx.print(&row);
                }
            }
            Format::Name => ctx.print(&format!("{}/{}\n", kind_ref(kind), name_of(o))),
            Format::Yaml => {
                if docs_printed > 0 {
                    ctx.print("---\n");
                }
                ctx.print(&to_yaml(o)?);
            }
            Format::Json => ctx.print(&to_json(o)),
        }
        docs_printed += 1;
        ctx.flush();
        Ok(())
    };
    for o in &g.objects {
        print_obj(ctx, o, &mut header_printed)?;
    }

    let req = WatchRequest {
        resource: kind.group_resource(),
        namespace: if kind.namespaced && !a.all_namespaces {
            ns.to_string()
        } else {
            String::new()
        },
        label_selector: a.selector.clone().unwrap_or_default(),
        field_selector: a.field_selector.clone().unwrap_or_default(),
        since_revision: revision,
        bookmark_interval_ms: 0,
    };
    let mut rx = client.watch(req);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ctrl_c_armed = true;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                None => return Ok(()),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(ev)) => {
                    if ev.kind == WatchEventType::Bookmark || ev.object.is_null() {
                        continue;
                    }
                    if !target.names.is_empty() && !target.names.iter().any(|n| n == name_of(&ev.object)) {
                        continue;
                    }
                    print_obj(ctx, &ev.object, &mut header_printed)?;
                }
            },
            r = &mut ctrl_c, if ctrl_c_armed => {
                if r.is_ok() {
                    return Ok(());
                }
                ctrl_c_armed = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_by_a_path() {
        let mut objs = vec![
            json!({"metadata": {"name": "b"}, "spec": {"replicas": 10}}),
            json!({"metadata": {"name": "c"}, "spec": {"replicas": 9}}),
            json!({"metadata": {"name": "a"}}),
        ];
        let names = |o: &[Value]| o.iter().map(|o| name_of(o).to_string()).collect::<Vec<_>>();
        sort_objects(&mut objs, &Template::parse_relaxed(".spec.replicas").unwrap());
        assert_eq!(names(&objs), ["a", "c", "b"]);
        sort_objects(&mut objs, &Template::parse_relaxed("{.metadata.name}").unwrap());
        assert_eq!(names(&objs), ["a", "b", "c"]);
    }
}
