//! `renkei org`: organisations of the registry.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Client, output};

#[derive(clap::Subcommand, Debug)]
pub enum OrgCommand {
    /// Every organisation the caller can see.
    List,
    /// One organisation.
    Show { id: Uuid },
    /// Register an organisation (installation admin only).
    Register {
        #[arg(long)]
        name: String,
        /// platform_operator, government_agency,
        /// incorporated_administrative_agency, designated_corporation or
        /// central_body.
        #[arg(long)]
        kind: String,
        /// The competent ministry (for incorporated administrative agencies
        /// and designated corporations).
        #[arg(long)]
        competent_org: Option<Uuid>,
    },
    /// Rename an organisation (installation admin only).
    Update {
        id: Uuid,
        #[arg(long)]
        name: String,
    },
}

const FIELDS: &[&str] = &["id", "name", "kind", "competent_org_id", "created_at"];

pub fn table(items: &[Value]) {
    let rows = items
        .iter()
        .map(|o| {
            vec![
                output::text(&o["name"]),
                output::text(&o["kind"]),
                output::text(&o["id"]),
                output::when(&o["created_at"]),
            ]
        })
        .collect();
    output::table(&["name", "kind", "id", "created"], rows);
}

pub async fn run(client: &Client, command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::List => {
            let items = client.list_all("/v1/organizations").await?;
            output::show(client.format(), &Value::Array(items.clone()), |_| {
                table(&items)
            });
        }
        OrgCommand::Show { id } => {
            let org = client.get(&format!("/v1/organizations/{id}")).await?;
            output::show(client.format(), &org, |o| output::record(o, FIELDS));
        }
        OrgCommand::Register {
            name,
            kind,
            competent_org,
        } => {
            let mut body = json!({"name": name, "kind": kind});
            if let Some(c) = competent_org {
                body["competent_org_id"] = json!(c);
            }
            let org = client.post("/v1/organizations", body).await?;
            output::show(client.format(), &org, |o| {
                output::line(&format!(
                    "registered organisation {}",
                    output::text(&o["id"])
                ));
                output::record(o, FIELDS);
            });
        }
        OrgCommand::Update { id, name } => {
            let org = client
                .patch(&format!("/v1/organizations/{id}"), json!({"name": name}))
                .await?;
            output::show(client.format(), &org, |o| output::record(o, FIELDS));
        }
    }
    Ok(())
}
