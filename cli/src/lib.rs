//! `rkctl`: the command-line client of rk, modelled on kubectl.
//!
//! Commands: `apply`, `diff`, `get`, `describe`, `delete`, `logs`, `exec`,
//! `cp`, `scale`, `rollout`, `set image`, `label`, `annotate`, `cordon`,
//! `uncordon`, `drain`, `api-resources`, `cluster-info`, `config`, `top`,
//! `explain`, `cluster members|remove-replica`, `completion`, `version`,
//! and the hidden `__complete` the completion scripts call. Every failure
//! prints one kubectl-style line on stderr and makes the command exit
//! non-zero.
//!
//! # Layout
//! - [`args`]: `KIND [NAME...]` / `KIND/NAME` arguments.
//! - [`manifest`]: reading and splitting manifests, locating fields.
//! - [`table`]: the human-readable tables of `get`.
//! - [`merge`]: the three-way merge of client-side apply.
//! - [`jsonpath`]: JSONPath templates (`-o jsonpath`, custom columns,
//!   `--sort-by`).
//! - [`output`]: `-o yaml|json|name|jsonpath|custom-columns`.
//! - [`time`]: timestamps and ages.
//! - [`describe`]: the layouts of `describe`, pure functions of objects.
//! - `complete`: completion scripts and the names they ask for.
//! - `apply`, `diff`, `get`, `delete`, `cluster`, `edit` (label, annotate, set
//!   image, scale, cordon), `rollout`, `drain`, `info` (api-resources,
//!   cluster-info, config), `top` (usage from the agents), `explain` (the
//!   schema of the API's typed structs): the commands.

pub mod args;
pub mod describe;
pub mod error;
pub mod jsonpath;
pub mod manifest;
pub mod merge;
pub mod output;
pub mod progress;
pub mod table;
pub mod time;

mod apply;
mod complete;
mod diff;

mod cluster;
mod delete;
mod drain;
mod edit;
mod explain;
mod get;
mod info;
mod rollout;
mod streams;
mod top;

use clap::{CommandFactory, Parser, Subcommand};
use error::{CliError, Result};
use rk_client::Client;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rkctl",
    about = "rkctl controls an rk cluster.",
    color = clap::ColorChoice::Never,
    disable_version_flag = true
)]
struct Cli {
    /// The client configuration file (default: $RKCONFIG, else ~/.rk/config).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The context of the configuration file to use.
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// The namespace for this request (default: the context's, else "default").
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    namespace: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create or update objects from manifests.
    Apply(apply::ApplyArgs),
    /// Show what apply would change, as a unified diff (exit 1 when it would).
    Diff(diff::DiffArgs),
    /// Display objects.
    Get(get::GetArgs),
    /// Show details of objects, with their Events.
    Describe(describe::DescribeArgs),
    /// Delete objects by kind and name, selector, or manifest.
    Delete(delete::DeleteArgs),
    /// Set the replica count of a Deployment or ReplicaSet (a Job's parallelism).
    Scale(edit::ScaleArgs),
    /// Manage the rollout of a Deployment (or DaemonSet).
    #[command(subcommand)]
    Rollout(rollout::RolloutCmd),
    /// Change fields of objects.
    #[command(subcommand)]
    Set(edit::SetCmd),
    /// Add, change (--overwrite) or remove (KEY-) labels.
    Label(edit::MetaArgs),
    /// Add, change (--overwrite) or remove (KEY-) annotations.
    Annotate(edit::MetaArgs),
    /// Mark nodes unschedulable.
    Cordon {
        #[arg(value_name = "NODE", required = true)]
        nodes: Vec<String>,
    },
    /// Mark nodes schedulable again.
    Uncordon {
        #[arg(value_name = "NODE", required = true)]
        nodes: Vec<String>,
    },
    /// Cordon a node and delete its Pods, waiting until they are gone.
    Drain(drain::DrainArgs),
    /// List the kinds of objects the cluster serves.
    ApiResources(info::ApiResourcesArgs),
    /// Print where the control plane runs and which replica leads.
    ClusterInfo,
    /// Read and change the client configuration file.
    #[command(subcommand)]
    Config(info::ConfigCmd),
    /// Print the logs of a container in a Pod.
    Logs(streams::LogsArgs),
    /// Run a command in a container.
    Exec(streams::ExecArgs),
    /// Copy files to and from containers (tar over exec).
    Cp(streams::CpArgs),
    /// Show CPU and memory in use by nodes or Pods.
    #[command(subcommand)]
    Top(top::TopCmd),
    /// Describe the fields of a kind (KIND or KIND.FIELD.PATH).
    Explain(explain::ExplainArgs),
    /// Inspect and change the control plane's replica set.
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Print a shell completion script (bash, zsh or fish).
    Completion {
        #[arg(value_name = "SHELL")]
        shell: complete::Shell,
    },
    /// Print the client version.
    Version {
        /// Only the client version (the only one there is; accepted for
        /// kubectl compatibility).
        #[arg(long)]
        client: bool,
    },
}

/// The state every command shares: where output goes and how to reach the
/// cluster.
pub(crate) struct Ctx<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    config: Option<PathBuf>,
    context: Option<String>,
    /// The `-n` flag, when given.
    pub namespace_flag: Option<String>,
    client: Option<Client>,
    /// Whether stdout and stderr are terminals (colour, progress lines).
    pub term: progress::Terminal,
}

impl Ctx<'_> {
    /// Writes to stdout; a closed pipe is not an error worth reporting.
    pub fn print(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// Writes one line to stderr.
    pub fn eprint_line(&mut self, s: &str) {
        let _ = writeln!(self.err, "{s}");
    }

    /// Reports an error on stderr.
    pub fn report(&mut self, e: &CliError) {
        if let Some(l) = e.line() {
            self.eprint_line(&l);
        }
    }

    /// The `--context` flag, when given.
    pub fn context_flag(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The configuration file: `--config`, else `$RKCONFIG`, else
    /// `~/.rk/config`.
    pub fn config_path(&self) -> Result<PathBuf> {
        if let Some(p) = &self.config {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var_os("RKCONFIG").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".rk").join("config")),
            None => Err(CliError::local(
                "no configuration has been provided: pass --config or set RKCONFIG",
            )),
        }
    }

    /// The client, built from the configuration on first use.
    pub fn client(&mut self) -> Result<Client> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let path = self.config_path()?;
        let mut c = Client::from_config_file(&path, self.context.as_deref())
            .map_err(|e| CliError::Local(e.message))?;
        // An operator at a prompt wants a dead server reported quickly; a
        // leader election is waited out on the server side, not here.
        c.failover_timeout = std::time::Duration::from_secs(3);
        self.client = Some(c.clone());
        Ok(c)
    }

    /// The namespace requests default to: `-n`, else the context's, else
    /// `default`. Call after [`Ctx::client`].
    pub fn namespace(&self) -> String {
        if let Some(ns) = self.namespace_flag.as_ref().filter(|n| !n.is_empty()) {
            return ns.clone();
        }
        match &self.client {
            Some(c) if !c.default_namespace.is_empty() => c.default_namespace.clone(),
            _ => "default".into(),
        }
    }
}

/// Runs rkctl with the process's arguments and standard streams; returns
/// the exit status.
pub async fn run() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    run_on(args, &mut out, &mut err, progress::Terminal::detect()).await
}

/// Runs rkctl with explicit arguments (without the program name; a leading
/// `rkctl` is tolerated) and output streams; returns the exit status (0 on
/// success, 1 on any failure). Reads stdin only for `-f -`.
pub async fn run_with(args: Vec<String>, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    run_on(args, stdout, stderr, progress::Terminal::default()).await
}

/// [`run_with`] for streams that may be terminals: `term` says whether
/// status cells are coloured and long waits draw a progress line.
pub async fn run_on(
    args: Vec<String>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    term: progress::Terminal,
) -> i32 {
    let mut args = args;
    if args
        .first()
        .is_some_and(|a| a == "rkctl" || a.ends_with("/rkctl"))
    {
        args.remove(0);
    }
    // The shells' completion functions call `rkctl __complete WORDS...
    // PARTIAL`; those words are whatever the user typed so far, so they are
    // read by hand rather than by the parser, which would reject them.
    if args.first().is_some_and(|a| a == complete::HIDDEN) {
        complete::names(&args[1..], stdout).await;
        return 0;
    }
    let cli = match Cli::try_parse_from(std::iter::once("rkctl".to_string()).chain(args.iter().cloned())) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let text = e.to_string();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = stdout.write_all(text.as_bytes());
                    0
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = stderr.write_all(text.as_bytes());
                    1
                }
                _ => {
                    let line = text
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("error: invalid arguments");
                    let _ = writeln!(stderr, "{}", error::local_line(line));
                    // diff keeps 1 for "there are differences".
                    if subcommand_of(&args) == Some("diff") {
                        2
                    } else {
                        1
                    }
                }
            };
        }
    };
    let mut ctx = Ctx {
        out: stdout,
        err: stderr,
        config: cli.config,
        context: cli.context,
        namespace_flag: cli.namespace,
        client: None,
        term,
    };
    let result = match cli.cmd {
        Cmd::Apply(a) => apply::run(&mut ctx, a).await,
        Cmd::Diff(a) => diff::run(&mut ctx, a).await,
        Cmd::Get(a) => get::run(&mut ctx, a).await,
        Cmd::Describe(a) => describe::run(&mut ctx, a).await,
        Cmd::Delete(a) => delete::run(&mut ctx, a).await,
        Cmd::Scale(a) => edit::scale(&mut ctx, a).await,
        Cmd::Rollout(c) => rollout::run(&mut ctx, c).await,
        Cmd::Set(c) => edit::set(&mut ctx, c).await,
        Cmd::Label(a) => edit::label_or_annotate(&mut ctx, a, "labels").await,
        Cmd::Annotate(a) => edit::label_or_annotate(&mut ctx, a, "annotations").await,
        Cmd::Cordon { nodes } => edit::set_unschedulable(&mut ctx, &nodes, true).await,
        Cmd::Uncordon { nodes } => edit::set_unschedulable(&mut ctx, &nodes, false).await,
        Cmd::Drain(a) => drain::run(&mut ctx, a).await,
        Cmd::ApiResources(a) => info::api_resources(&mut ctx, a),
        Cmd::ClusterInfo => info::cluster_info(&mut ctx).await,
        Cmd::Config(c) => info::config(&mut ctx, c),
        Cmd::Cluster(c) => cluster::run(&mut ctx, c).await,
        Cmd::Logs(a) => streams::logs(&mut ctx, a).await,
        Cmd::Exec(a) => streams::exec(&mut ctx, a).await,
        Cmd::Cp(a) => streams::cp(&mut ctx, a).await,
        Cmd::Top(c) => top::run(&mut ctx, c).await,
        Cmd::Explain(a) => explain::run(&mut ctx, a),
        Cmd::Completion { shell } => {
            ctx.print(&complete::script(shell, Cli::command()));
            Ok(())
        }
        Cmd::Version { .. } => {
            ctx.print(&format!("Client Version: v{}\n", env!("CARGO_PKG_VERSION")));
            Ok(())
        }
    };
    ctx.flush();
    match result {
        Ok(()) => 0,
        Err(CliError::Exit(code)) => code,
        Err(e) => {
            ctx.report(&e);
            let _ = ctx.err.flush();
            1
        }
    }
}

/// The subcommand named in `args`, skipping the global flags before it.
fn subcommand_of(args: &[String]) -> Option<&str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "--context" | "-n" | "--namespace" => {
                it.next();
            }
            a if a.starts_with('-') => {}
            a => return Some(a),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run_args(args: &[&str]) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_with(args.iter().map(|s| s.to_string()).collect(), &mut out, &mut err).await;
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[tokio::test]
    async fn version() {
        let (code, out, err) = run_args(&["version"]).await;
        assert_eq!(code, 0);
        assert_eq!(out, format!("Client Version: v{}\n", env!("CARGO_PKG_VERSION")));
        assert_eq!(err, "");
        let (code, out, _) = run_args(&["rkctl", "version", "--client"]).await;
        assert_eq!(code, 0);
        assert!(out.starts_with("Client Version: v"));
    }

    #[tokio::test]
    async fn usage_errors_are_one_line() {
        let (code, out, err) = run_args(&["get", "pods", "--bogus"]).await;
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");

        let (code, _, err) = run_args(&["frobnicate"]).await;
        assert_eq!(code, 1);
        assert_eq!(err.lines().count(), 1, "{err}");

        // diff exits 2 on errors: 1 means "there are differences".
        let (code, _, err) = run_args(&["-n", "x", "diff", "--bogus"]).await;
        assert_eq!(code, 2, "{err}");
        let (code, _, err) = run_args(&["diff"]).await;
        assert_eq!((code, err.as_str()), (2, "error: must specify -f\n"));
    }

    #[tokio::test]
    async fn local_errors_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        let cfg = cfg.to_string_lossy().into_owned();
        let (code, _, err) = run_args(&["--config", &cfg, "get", "foo"]).await;
        assert_eq!(
            (code, err.as_str()),
            (1, "error: the server doesn't have a resource type \"foo\"\n")
        );
        let (code, _, err) = run_args(&["get", "pods", "-o", "xml", "--config", &cfg]).await;
        assert_eq!(code, 1);
        assert!(err.starts_with("error: unable to match a printer"), "{err}");
        let missing = dir.path().join("x.yaml").to_string_lossy().into_owned();
        let (code, _, err) = run_args(&["apply", "-f", &missing, "--config", &cfg]).await;
        assert_eq!(
            (code, err),
            (1, format!("error: the path \"{missing}\" does not exist\n"))
        );
        // A missing configuration file is a local error too.
        let (code, _, err) = run_args(&["get", "pods", "--config", &cfg]).await;
        assert_eq!(code, 1);
        assert!(err.starts_with("error: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[tokio::test]
    async fn apply_reports_parse_errors_per_document() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.yaml");
        std::fs::write(&f, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n").unwrap();
        let f = f.to_string_lossy().into_owned();
        let cfg = dir.path().join("config").to_string_lossy().into_owned();
        let (code, _, err) = run_args(&["apply", "-f", &f, "--config", &cfg]).await;
        assert_eq!(code, 1);
        assert!(
            err.starts_with(&format!("error: error parsing {f}: line ")),
            "{err}"
        );
    }
}
