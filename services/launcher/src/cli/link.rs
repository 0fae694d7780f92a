//! `renkei link`: the directed links between systems of a platform.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Client, named, names, output};

#[derive(clap::Subcommand, Debug)]
pub enum LinkCommand {
    /// Every link the caller can see.
    List {
        #[arg(long)]
        platform: Option<Uuid>,
        /// Links from or to this system.
        #[arg(long)]
        system: Option<Uuid>,
    },
    /// Link two systems of one platform (the platform operator).
    Register {
        #[arg(long)]
        from: Uuid,
        #[arg(long)]
        to: Uuid,
        /// network, data_flow, identity, shared_infrastructure or operations.
        #[arg(long)]
        kind: String,
        /// Incident categories that travel over the link, comma-separated
        /// (malware, unauthorized_access, data_leak, denial_of_service,
        /// outage, other).
        #[arg(long, value_delimiter = ',')]
        propagates: Vec<String>,
    },
    /// Remove a link.
    Remove { id: Uuid },
}

pub async fn run(client: &Client, command: LinkCommand) -> anyhow::Result<()> {
    match command {
        LinkCommand::List { platform, system } => {
            let mut query = Vec::new();
            if let Some(p) = platform {
                query.push(format!("platform_id={p}"));
            }
            if let Some(s) = system {
                query.push(format!("system_id={s}"));
            }
            let path = if query.is_empty() {
                "/v1/links".to_owned()
            } else {
                format!("/v1/links?{}", query.join("&"))
            };
            let items = client.list_all(&path).await?;
            if client.format() != output::Format::Table {
                output::show(client.format(), &Value::Array(items), |_| {});
                return Ok(());
            }
            let systems = names(client, "/v1/systems").await;
            let rows = items
                .iter()
                .map(|l| {
                    vec![
                        named(&systems, &l["from_system_id"]),
                        named(&systems, &l["to_system_id"]),
                        output::text(&l["kind"]),
                        output::text(&l["propagates"]),
                        output::text(&l["id"]),
                    ]
                })
                .collect();
            output::table(&["from", "to", "kind", "propagates", "id"], rows);
        }
        LinkCommand::Register {
            from,
            to,
            kind,
            propagates,
        } => {
            let propagates: Vec<String> = propagates
                .into_iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            let link = client
                .post(
                    "/v1/links",
                    json!({"from_system_id": from, "to_system_id": to,
                           "kind": kind, "propagates": propagates}),
                )
                .await?;
            output::show(client.format(), &link, |l| {
                output::line(&format!("registered link {}", output::text(&l["id"])));
                output::record(
                    l,
                    &[
                        "id",
                        "platform_id",
                        "from_system_id",
                        "to_system_id",
                        "kind",
                        "propagates",
                    ],
                );
            });
        }
        LinkCommand::Remove { id } => {
            client.delete(&format!("/v1/links/{id}")).await?;
            if client.json {
                output::json(&json!({"removed": id}));
            } else {
                output::line(&format!("removed link {id}"));
            }
        }
    }
    Ok(())
}
