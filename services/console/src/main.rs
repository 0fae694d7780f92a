//! `renkei-console`: the web console alone, calling the services' API at
//! `console.api_url`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "renkei-console", version, about = "The Renkei web console")]
struct Args {
    /// A TOML settings file.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    renkei_web::run_alone::<renkei_console::Console>(args.config.as_deref(), "console").await
}
