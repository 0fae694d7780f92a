//! `renkei`: run the whole product on one machine, mint development tokens.
//!
//! `renkei up` starts every service of the product in one process, all under
//! one HTTP address, still talking to each other only over NATS exactly as
//! separate binaries do. It uses the NATS server at `--nats-url`, or starts a
//! local `nats-server` with JetStream in the data directory when none answers
//! at a plain `nats://` URL (never for a bus with TLS or credentials).

mod audit;
mod cli;
mod listen;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use renkei_settings::{Settings, Sources};
use renkei_web::Role;

#[derive(Parser)]
#[command(
    name = "renkei",
    version,
    about = "Security coordination for a common platform system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole product on this machine.
    Up {
        /// HTTP address for every service.
        #[arg(long)]
        listen: Option<String>,
        /// Where SQLite files, keys and a local NATS store live.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// NATS to use; started locally when nothing answers there.
        #[arg(long)]
        nats_url: Option<String>,
        /// A PostgreSQL URL instead of the embedded SQLite files.
        #[arg(long)]
        database_url: Option<String>,
        /// A TOML settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a development token signed with the data directory's key.
    Token {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// admin, operator, manager, csirt, ciso, central or auditor.
        #[arg(long, value_parser = parse_role)]
        role: Vec<Role>,
        /// The organisation id (absent for an installation admin).
        #[arg(long)]
        org: Option<uuid::Uuid>,
        #[arg(long, default_value = "dev-user")]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 24 * 3600)]
        ttl: u64,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The tamper-evident audit record: verify it, fetch its signed heads.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Organisations of a running deployment.
    Org {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::org::OrgCommand,
    },
    /// Platforms and linked systems.
    System {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::system::SystemCommand,
    },
    /// Links between systems.
    Link {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::link::LinkCommand,
    },
    /// Import a platform's organisations, systems and links from YAML or
    /// CSV: all validated first, nothing duplicated on re-run.
    Import {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(flatten)]
        args: cli::import::ImportArgs,
    },
    /// Common rules: draft, propose, consensus, accept or object.
    Rules {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::rules::RulesCommand,
    },
    /// The contacts directory.
    Contact {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::contact::ContactCommand,
    },
    /// Incidents: declare, follow, acknowledge, report.
    Incident {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::incident::IncidentCommand,
    },
    /// Contact drills.
    Drill {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::drill::DrillCommand,
    },
    /// Receive webhooks and print them: for demos and for checking a
    /// contact's channel.
    Listen {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// The webhook secret given to the contact's channel: signatures are
        /// checked with it.
        #[arg(long, env = "RENKEI_LISTEN_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Measure the product against the floor under each figure, in one
    /// run: blast radius, GET by id, events, incident alerts, rules
    /// consensus, cold start and memory; writes report.md and report.json.
    Bench {
        #[command(flatten)]
        args: renkei_launcher::bench::BenchArgs,
    },
    /// The id of an organisation or system by its exact name.
    Id {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::lookup::IdCommand,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("`{s}` is not a role; use one of {}", all.join(", "))
    })
}

fn settings(
    config: Option<&std::path::Path>,
    overrides: Vec<(&'static str, Option<String>)>,
) -> anyhow::Result<Settings> {
    let overrides = overrides
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    Ok(Settings::load(&Sources {
        file: config,
        overrides,
        environment: true,
    })?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Audit { command } => audit::run(command).await,
        Command::Org { remote, command } => {
            cli::finish(async { cli::org::run(&cli::Client::new(&remote)?, command).await }.await)
        }
        Command::System { remote, command } => cli::finish(
            async { cli::system::run(&cli::Client::new(&remote)?, command).await }.await,
        ),
        Command::Link { remote, command } => {
            cli::finish(async { cli::link::run(&cli::Client::new(&remote)?, command).await }.await)
        }
        Command::Import { remote, args } => {
            cli::finish(async { cli::import::run(&cli::Client::new(&remote)?, args).await }.await)
        }
        Command::Rules { remote, command } => {
            cli::finish(async { cli::rules::run(&cli::Client::new(&remote)?, command).await }.await)
        }
        Command::Contact { remote, command } => cli::finish(
            async { cli::contact::run(&cli::Client::new(&remote)?, command).await }.await,
        ),
        Command::Incident { remote, command } => cli::finish(
            async { cli::incident::run(&cli::Client::new(&remote)?, command).await }.await,
        ),
        Command::Drill { remote, command } => {
            cli::finish(async { cli::drill::run(&cli::Client::new(&remote)?, command).await }.await)
        }
        Command::Bench { args } => renkei_launcher::bench::run(args).await,
        Command::Listen { listen, secret } => listen::run(&listen, secret).await,
        Command::Id { remote, command } => cli::finish(
            async { cli::lookup::run(&cli::Client::new(&remote)?, command).await }.await,
        ),
        Command::Up {
            listen,
            data_dir,
            nats_url,
            database_url,
            config,
        } => {
            let settings = settings(
                config.as_deref(),
                vec![
                    ("http.listen", listen),
                    ("data_dir", data_dir.map(|d| d.display().to_string())),
                    ("nats.url", nats_url),
                    ("database.url", database_url),
                ],
            )?;
            up(settings).await
        }
        Command::Token {
            data_dir,
            role,
            org,
            sub,
            ttl,
            config,
        } => {
            let settings = settings(
                config.as_deref(),
                vec![("data_dir", data_dir.map(|d| d.display().to_string()))],
            )?;
            // Refuses in the production profile, before creating any key.
            let issuer = renkei_web::identity::dev_issuer(&settings)?;
            if role.is_empty() {
                anyhow::bail!("--role is required");
            }
            if org.is_none() && !role.iter().any(|r| r.needs_no_organisation()) {
                anyhow::bail!("--org is required for every role but admin, central and auditor");
            }
            let token = issuer.issue(&sub, org, &role, ttl)?;
            #[allow(clippy::print_stdout)]
            {
                println!("{token}");
            }
            Ok(())
        }
    }
}

async fn up(settings: Settings) -> anyhow::Result<()> {
    let _telemetry = renkei_telemetry::init(&settings.telemetry, "renkei")?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", settings.data_dir.display()))?;
    // Kept alive for the life of the process; stopped when dropped.
    let _local_nats = renkei_launcher::local_nats::ensure(&settings).await?;
    let running = renkei_launcher::start(&settings, "renkei").await?;
    #[allow(clippy::print_stdout)]
    {
        println!("renkei up: http://{}", running.addr);
        println!("  services : registry, demarcation, contacts, emergency");
        println!(
            "  nats     : {}",
            renkei_bus::nats::redacted(&settings.nats.url)
        );
        println!("  data dir : {}", settings.data_dir.display());
        println!(
            "  database : {}",
            if settings.database.url.is_empty() {
                "SQLite files in the data dir"
            } else {
                "PostgreSQL"
            }
        );
        println!(
            "  tokens   : renkei token --data-dir {} --role admin",
            settings.data_dir.display()
        );
    }
    // SIGTERM too: a stop from a supervisor must drain work and stop the local NATS.
    renkei_web::server::shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await
}
