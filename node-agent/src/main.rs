//! `rk-node-agent`: a placeholder until the node agent lands. It parses
//! the command line the agent will have, then says plainly that it cannot
//! run Pods yet, so nobody mistakes it for a working agent.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "rk-node-agent",
    version,
    about = "rk node agent (not implemented yet)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Obtain a node certificate from the control plane.
    Join {
        #[arg(long)]
        server: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// Run the agent from its data directory.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let _ = Cli::parse();
    eprintln!("error: rk-node-agent is not implemented yet: this build has the control plane and rkctl only");
    ExitCode::from(2)
}
