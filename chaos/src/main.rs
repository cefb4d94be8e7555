use clap::Parser;
use rk_chaos::{run, Scenario};
use std::path::PathBuf;
use std::time::Duration;

/// Chaos scenarios against a local multi-host cluster (deploy/local):
/// faults chosen from a seed while a workload runs, then checks.
#[derive(Parser)]
#[command(name = "rk-chaos")]
struct Cli {
    /// The first seed (printed; the same seed replays the same schedule).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many seeds to run, from --seed on.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Seconds of faults per scenario.
    #[arg(long, default_value_t = 40)]
    duration: u64,
    /// Where clusters live (one subdirectory per seed).
    #[arg(long, default_value = "/tmp/rk-chaos")]
    dir: PathBuf,
    /// Directory of rk's binaries (default: deploy/local/cluster's choice).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Flags given to every start of every replica, e.g. "--snapshot-every
    /// 200" to have lagging replicas catch up through snapshots.
    #[arg(long, allow_hyphen_values = true)]
    replica_args: Option<String>,
    /// Leave the cluster up after the run.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rk_client::tls::init_crypto();
    let cli = Cli::parse();
    let mut failed = Vec::new();
    for seed in cli.seed..cli.seed + cli.seeds {
        let s = Scenario {
            seed,
            dir: cli.dir.join(format!("seed-{seed}")),
            duration: Duration::from_secs(cli.duration),
            bin_dir: cli.bin_dir.clone(),
            replica_args: cli.replica_args.clone(),
            keep: cli.keep,
        };
        let report = run(&s).await?;
        println!("{report}");
        if !report.failures.is_empty() {
            failed.push(seed);
        }
    }
    if failed.is_empty() {
        println!("all {} seed(s) passed", cli.seeds);
        Ok(())
    } else {
        anyhow::bail!("failing seeds: {failed:?} (replay one with: rk-chaos --seed N)")
    }
}
