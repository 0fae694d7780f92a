//! `renkei audit`: check the tamper-evident audit record, and fetch the
//! signed heads to keep.
//!
//! `renkei audit verify` reads each service's database directly (its SQLite
//! file in the data dir, or its schema in PostgreSQL), re-computes the
//! chain and prints one line per service; it needs no NATS and no running
//! service, and exits 0 only when every chain is intact.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ed25519_dalek::VerifyingKey;
use renkei_audit::{SignedHead, Verdict};
use renkei_bus::subjects::AUDITED_SERVICES;
use renkei_settings::Settings;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Re-compute every service's audit chain and name the first entry that
    /// was changed, removed or inserted. Exits 0 only when all are intact.
    Verify {
        /// The data dir of `renkei up`: its SQLite files, and its
        /// audit-signing.key for checking heads.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A PostgreSQL URL: each service's schema is checked instead of
        /// the SQLite files.
        #[arg(long)]
        database_url: Option<String>,
        /// Signed heads to hold the chains to: JSON lines (as
        /// `renkei audit heads` prints them), a JSON array, or the answer of
        /// GET /v1/audit/heads.
        #[arg(long)]
        heads: Option<PathBuf>,
        /// The installation's Ed25519 public key (hex) the heads must be
        /// signed with (repeat it for an installation whose services were
        /// given different keys); default: derived from the data dir's
        /// audit-signing.key (or audit.signing_key).
        #[arg(long)]
        public_key: Vec<String>,
        /// Check only these services (default: all four).
        #[arg(long, value_parser = parse_service)]
        service: Vec<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print every signed head in the AUDIT stream as JSON lines, oldest
    /// first: keep them, and give them to `renkei audit verify --heads`.
    Heads {
        #[arg(long)]
        nats_url: Option<String>,
        /// One service's heads only.
        #[arg(long, value_parser = parse_service)]
        service: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn parse_service(s: &str) -> Result<String, String> {
    if AUDITED_SERVICES.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` keeps no audit chain; use one of {}",
            AUDITED_SERVICES.join(", ")
        ))
    }
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            data_dir,
            database_url,
            heads,
            public_key,
            service,
            config,
        } => {
            let settings = crate::settings(
                config.as_deref(),
                vec![
                    ("data_dir", data_dir.map(|d| d.display().to_string())),
                    ("database.url", database_url),
                ],
            )?;
            let heads = match &heads {
                Some(path) => read_heads(path)?,
                None => Vec::new(),
            };
            let keys: Vec<VerifyingKey> = if public_key.is_empty() {
                renkei_audit::installed_public_key(&settings)?
                    .into_iter()
                    .collect()
            } else {
                public_key
                    .iter()
                    .map(|hex| {
                        renkei_audit::head::public_key(hex)
                            .map_err(|e| anyhow::anyhow!("--public-key {hex}: {e}"))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let services: Vec<&str> = if service.is_empty() {
                AUDITED_SERVICES.to_vec()
            } else {
                service.iter().map(String::as_str).collect()
            };
            let intact = verify(&settings, &services, &heads, &keys).await;
            if !intact {
                std::process::exit(1);
            }
            Ok(())
        }
        AuditCommand::Heads {
            nats_url,
            service,
            config,
        } => {
            let settings = crate::settings(config.as_deref(), vec![("nats.url", nats_url)])?;
            let client = tokio::time::timeout(
                Duration::from_secs(10),
                renkei_bus::nats::connect(&settings.nats, "renkei-audit"),
            )
            .await
            .map_err(|_| anyhow::anyhow!("nats.url: nothing answers at {}", settings.nats.url))??;
            let heads = renkei_audit::heads::all(&client, service.as_deref()).await?;
            let mut out = String::new();
            for head in &heads {
                out.push_str(&serde_json::to_string(head)?);
                out.push('\n');
            }
            print(&out);
            Ok(())
        }
    }
}

#[allow(clippy::print_stdout)]
fn print(text: &str) {
    print!("{text}");
}

fn read_heads(path: &Path) -> anyhow::Result<Vec<SignedHead>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--heads: cannot read {}", path.display()))?;
    renkei_audit::head::parse_heads(&text)
        .map_err(|e| anyhow::anyhow!("--heads {}: {e}", path.display()))
}

/// Checks each service and prints its line; whether all are intact.
async fn verify(
    settings: &Settings,
    services: &[&str],
    heads: &[SignedHead],
    keys: &[VerifyingKey],
) -> bool {
    let mut intact = true;
    for service in services {
        let line = match check(settings, service, heads, keys).await {
            Ok(verdict) => {
                intact &= verdict.intact();
                verdict.to_string()
            }
            Err(error) => {
                intact = false;
                format!("{service}: cannot be checked: {error:#}")
            }
        };
        print(&format!("{line}\n"));
    }
    intact
}

async fn check(
    settings: &Settings,
    service: &str,
    heads: &[SignedHead],
    keys: &[VerifyingKey],
) -> anyhow::Result<Verdict> {
    let conn = open(settings, service).await?;
    let verdict = renkei_audit::verify_database(&conn, service, heads, keys).await;
    conn.close().await.ok();
    verdict
}

/// The service's database, opened for reading only: its SQLite file (which
/// must exist), or the PostgreSQL database with its schema first in the
/// search path.
async fn open(settings: &Settings, service: &str) -> anyhow::Result<DatabaseConnection> {
    let url = settings.database_url_for(service);
    let options = if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        if !Path::new(path).exists() {
            anyhow::bail!("no database at {path}");
        }
        let mut options = ConnectOptions::new(format!("sqlite://{path}?mode=ro"));
        options.max_connections(1).sqlx_logging(false);
        options
    } else {
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(1)
            .sqlx_logging(false)
            .set_schema_search_path(renkei_store::schema_name(service));
        options
    };
    Database::connect(options)
        .await
        .context("the database cannot be opened")
}
