//! `renkei-emergency`: the emergency service alone, for deployments that run
//! each service as its own process.

use clap::Parser;

/// Run the Renkei emergency service.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// A TOML settings file (defaults, then this, then RENKEI_* variables).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    renkei_web::run_alone::<renkei_emergency::Emergency>(args.config.as_deref(), "renkei-emergency")
        .await
}
