//! `renkei-demarcation`: the demarcation service alone, for deployments that run each
//! service as its own process.

use clap::Parser;

/// Run the Renkei demarcation service.
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
    let _telemetry = renkei_telemetry::init(&settings.telemetry, "renkei-demarcation")?;
    let mut runtime = renkei_web::Runtime::start(&settings, "renkei-demarcation").await?;
    let service = renkei_demarcation::Demarcation::start(
        &settings,
        runtime.nats.clone(),
        &mut runtime.tasks,
        runtime.cancel.clone(),
    )
    .await?;
    runtime.serve(&settings, vec![service.module()]).await
}
