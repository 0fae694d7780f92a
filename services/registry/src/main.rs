//! `renkei-registry`: the registry alone, for deployments that run each
//! service as its own process.

use clap::Parser;

/// Run the Renkei registry service.
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
    let settings = renkei_settings::Settings::load(&renkei_settings::Sources {
        file: args.config.as_deref(),
        environment: true,
        ..Default::default()
    })?;
    let _telemetry = renkei_telemetry::init(&settings.telemetry, "renkei-registry")?;
    let mut runtime = renkei_web::Runtime::start(&settings, "renkei-registry").await?;
    let registry = renkei_registry::Registry::start(
        &settings,
        runtime.nats.clone(),
        &mut runtime.tasks,
        runtime.cancel.clone(),
    )
    .await?;
    runtime.serve(&settings, vec![registry.module()]).await
}
