//! Commands about the cluster and the client rather than objects:
//! `api-resources`, `cluster-info` and `config view|get-contexts|
//! use-context|current-context`.

use crate::error::{CliError, Result};
use crate::output::{to_json, to_yaml};
use crate::table::Table;
use crate::Ctx;
use rk_api::resources::{self, ResourceKind};
use rk_client::config::ConfigFile;
use rk_proto::v1::cluster_client::ClusterClient;
use rk_proto::v1::MembersRequest;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ApiResourcesArgs {
    /// Only namespaced (true) or cluster-scoped (false) kinds.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub namespaced: Option<bool>,
    /// Only kinds of this API group ("" for core).
    #[arg(long = "api-group", value_name = "GROUP")]
    pub api_group: Option<String>,
    /// `name` prints only the resource names.
    #[arg(short = 'o', long = "output", value_name = "FORMAT")]
    pub output: Option<String>,
}

/// The `api-resources` table, core kinds first, then by group and name.
pub fn api_resources_table(kinds: &[&ResourceKind]) -> Table {
    let mut kinds: Vec<&&ResourceKind> = kinds.iter().collect();
    kinds.sort_by_key(|k| (!k.group.is_empty(), k.group, k.plural));
    Table {
        headers: ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
            .map(String::from)
            .to_vec(),
        rows: kinds
            .iter()
            .map(|k| {
                vec![
                    k.plural.to_string(),
                    k.short_names.join(","),
                    k.api_version(),
                    k.namespaced.to_string(),
                    k.kind.to_string(),
                ]
            })
            .collect(),
    }
}

pub fn api_resources(ctx: &mut Ctx<'_>, a: ApiResourcesArgs) -> Result<()> {
    let kinds: Vec<&ResourceKind> = resources::all()
        .iter()
        .filter(|k| a.namespaced.is_none_or(|n| k.namespaced == n))
        .filter(|k| a.api_group.as_deref().is_none_or(|g| k.group == g))
        .collect();
    match a.output.as_deref() {
        None | Some("") | Some("wide") => ctx.print(&api_resources_table(&kinds).render(true)),
        Some("name") => {
            let t = api_resources_table(&kinds);
            for (row, k) in t.rows.iter().zip(sorted(&kinds)) {
                let group = if k.group.is_empty() {
                    String::new()
                } else {
                    format!(".{}", k.group)
                };
                ctx.print(&format!("{}{group}\n", row[0]));
            }
        }
        Some(other) => {
            return Err(CliError::local(format!(
                "--output {other} is not available; use name or wide"
            )))
        }
    }
    Ok(())
}

fn sorted<'a>(kinds: &[&'a ResourceKind]) -> Vec<&'a ResourceKind> {
    let mut v = kinds.to_vec();
    v.sort_by_key(|k| (!k.group.is_empty(), k.group, k.plural));
    v
}

/// `cluster-info`: the servers of the current context and the Raft leader,
/// as any reachable replica reports it.
pub async fn cluster_info(ctx: &mut Ctx<'_>) -> Result<()> {
    let client = ctx.client()?;
    let servers = client.servers().to_vec();
    let mut answer = None;
    let mut last_err = String::new();
    for (_, ch) in client.channels_in_order() {
        let mut one = ClusterClient::new(ch);
        match tokio::time::timeout(Duration::from_secs(3), one.members(MembersRequest {})).await {
            Ok(Ok(r)) => {
                answer = Some(r.into_inner());
                break;
            }
            Ok(Err(st)) => last_err = st.message().to_string(),
            Err(_) => last_err = "no answer within 3s".into(),
        }
    }
    let Some(r) = answer else {
        return Err(CliError::Api(rk_api::ApiError::new(
            rk_api::Reason::ServiceUnavailable,
            format!(
                "Unable to connect to the server {}: {last_err}",
                servers.join(",")
            ),
        )));
    };
    for s in &servers {
        ctx.print(&format!("rk control plane is running at {s}\n"));
    }
    match r.members.iter().find(|m| m.leader || m.id == r.leader_id) {
        Some(m) if r.leader_id != 0 || m.leader => ctx.print(&format!(
            "Leader: replica {} at {} (term {}, {} replicas)\n",
            m.id,
            m.addr,
            r.term,
            r.members.len()
        )),
        _ => ctx.print("Leader: none elected\n"),
    }
    ctx.print("\nTo list the replicas and their roles, use 'rkctl cluster members'.\n");
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCmd {
    /// Print the configuration (key and certificate data hidden).
    View {
        /// Print key and certificate data too.
        #[arg(long)]
        raw: bool,
        /// Only what the current context uses.
        #[arg(long)]
        minify: bool,
        /// yaml (default) or json.
        #[arg(short = 'o', long = "output", value_name = "FORMAT")]
        output: Option<String>,
    },
    /// List the contexts.
    GetContexts {
        /// Only this context.
        #[arg(value_name = "NAME")]
        name: Option<String>,
        /// `name` prints only the context names.
        #[arg(short = 'o', long = "output", value_name = "FORMAT")]
        output: Option<String>,
    },
    /// Make a context the current one.
    UseContext {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Print the current context.
    CurrentContext,
}

/// Hides key and certificate material, as kubectl config view does.
pub fn redact(c: &mut ConfigFile) {
    for cl in &mut c.clusters {
        if !cl.cluster.certificate_authority_data.is_empty() {
            cl.cluster.certificate_authority_data = "DATA+OMITTED".into();
        }
    }
    for u in &mut c.users {
        if !u.user.client_certificate_data.is_empty() {
            u.user.client_certificate_data = "DATA+OMITTED".into();
        }
        if !u.user.client_key_data.is_empty() {
            u.user.client_key_data = "REDACTED".into();
        }
    }
}

/// Keeps only the current context (or `context`) and what it refers to.
pub fn minify(c: &mut ConfigFile, context: Option<&str>) -> Result<()> {
    let want = context.unwrap_or(&c.current_context).to_string();
    let Some(ctx) = c.contexts.iter().find(|x| x.name == want).cloned() else {
        return Err(CliError::local(format!("cannot locate context {want}")));
    };
    c.contexts.retain(|x| x.name == want);
    c.clusters.retain(|x| x.name == ctx.context.cluster);
    c.users.retain(|x| x.name == ctx.context.user);
    c.current_context = want;
    Ok(())
}

/// The `config get-contexts` table.
pub fn contexts_table(c: &ConfigFile, only: Option<&str>) -> Result<Table> {
    let rows: Vec<Vec<String>> = c
        .contexts
        .iter()
        .filter(|x| only.is_none_or(|n| x.name == n))
        .map(|x| {
            vec![
                if x.name == c.current_context { "*" } else { "" }.to_string(),
                x.name.clone(),
                x.context.cluster.clone(),
                x.context.user.clone(),
                x.context.namespace.clone(),
            ]
        })
        .collect();
    if let Some(n) = only {
        if rows.is_empty() {
            return Err(CliError::local(format!("context {n} not found")));
        }
    }
    Ok(Table {
        headers: ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
            .map(String::from)
            .to_vec(),
        rows,
    })
}

fn load(path: &Path) -> Result<ConfigFile> {
    ConfigFile::load(path).map_err(|e| CliError::local(e.to_string()))
}

/// Writes the file through a temporary file and a rename, so a crash never
/// leaves half a configuration; the file keeps owner-only permissions
/// because it holds a private key.
fn save(path: &Path, c: &ConfigFile) -> Result<()> {
    let fail = |e: std::io::Error| CliError::local(format!("error writing \"{}\": {e}", path.display()));
    let tmp = path.with_extension("rkctl-tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        f.write_all(c.to_yaml().as_bytes()).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

pub fn config(ctx: &mut Ctx<'_>, cmd: ConfigCmd) -> Result<()> {
    let path = ctx.config_path()?;
    match cmd {
        ConfigCmd::View {
            raw,
            minify: min,
            output,
        } => {
            let mut c = load(&path)?;
            if min {
                minify(&mut c, ctx.context_flag())?;
            }
            if !raw {
                redact(&mut c);
            }
            let v = serde_json::to_value(&c)
                .map_err(|e| CliError::local(format!("error printing the configuration: {e}")))?;
            let text = match output.as_deref() {
                None | Some("yaml") => to_yaml(&v)?,
                Some("json") => to_json(&v),
                Some(other) => {
                    return Err(CliError::local(format!(
                        "unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,yaml"
                    )))
                }
            };
            ctx.print(&text);
        }
        ConfigCmd::GetContexts { name, output } => {
            let c = load(&path)?;
            let t = contexts_table(&c, name.as_deref())?;
            match output.as_deref() {
                Some("name") => {
                    for r in &t.rows {
                        ctx.print(&format!("{}\n", r[1]));
                    }
                }
                None | Some("") => ctx.print(&t.render(true)),
                Some(other) => {
                    return Err(CliError::local(format!(
                        "output must be one of '' or 'name': {other}"
                    )))
                }
            }
        }
        ConfigCmd::UseContext { name } => {
            let mut c = load(&path)?;
            if !c.contexts.iter().any(|x| x.name == name) {
                return Err(CliError::local(format!(
                    "no context exists with the name: \"{name}\""
                )));
            }
            c.current_context = name.clone();
            save(&path, &c)?;
            ctx.print(&format!("Switched to context \"{name}\".\n"));
        }
        ConfigCmd::CurrentContext => {
            let c = load(&path)?;
            if c.current_context.is_empty() {
                return Err(CliError::local("current-context is not set"));
            }
            ctx.print(&format!("{}\n", c.current_context));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_resources_layout() {
        let kinds: Vec<&ResourceKind> = resources::all().iter().collect();
        let text = api_resources_table(&kinds).render(true);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("NAME                  SHORTNAMES   APIVERSION               NAMESPACED   KIND")
        );
        assert_eq!(
            lines.next(),
            Some("configmaps            cm           v1                       true         ConfigMap")
        );
        assert!(text.contains(
            "\ndeployments           deploy       apps/v1                  true         Deployment\n"
        ));
        assert!(text
            .contains("\nleases                             coordination.k8s.io/v1   true         Lease\n"));
        assert_eq!(text.lines().count(), 1 + resources::all().len());
    }

    fn sample() -> ConfigFile {
        let mut c = ConfigFile::new(&["https://127.0.0.1:7443".into()], "CA", "CERT", "KEY");
        let mut other = c.contexts[0].clone();
        other.name = "ops".into();
        other.context.namespace = "kube-system".into();
        c.contexts.push(other);
        c
    }

    #[test]
    fn contexts() {
        let c = sample();
        assert_eq!(
            contexts_table(&c, None).unwrap().render(true),
            "\
CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE
*         rk     rk        admin      \n          ops    rk        admin      kube-system
"
        );
        assert!(contexts_table(&c, Some("nope")).is_err());
    }

    #[test]
    fn view_hides_keys() {
        let mut c = sample();
        redact(&mut c);
        let text = c.to_yaml();
        assert!(text.contains("client-key-data: REDACTED"), "{text}");
        assert!(
            text.contains("certificate-authority-data: DATA+OMITTED"),
            "{text}"
        );
        assert!(!text.contains(&base64_of("KEY")), "{text}");
        let mut m = sample();
        minify(&mut m, Some("ops")).unwrap();
        assert_eq!(m.contexts.len(), 1);
        assert_eq!(m.current_context, "ops");
    }

    fn base64_of(s: &str) -> String {
        // "KEY" in base64, without pulling in a base64 crate for one test.
        assert_eq!(s, "KEY");
        "S0VZ".into()
    }
}
