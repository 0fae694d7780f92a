//! `renkei-console`: the web console alone, calling the services' API at
//! `console.api_url` or at each service's own address
//! (`console.registry_url`…). It needs neither NATS nor a database.

use clap::Parser;

/// Run the Renkei web console.
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
    let _telemetry = renkei_telemetry::init(&settings.telemetry, "renkei-console")?;
    let console = renkei_console::Alone::spawn(&settings).await?;
    tracing::info!(addr = %console.addr, "listening");
    renkei_web::server::shutdown_signal().await;
    tracing::info!("shutting down");
    console.stop().await
}
