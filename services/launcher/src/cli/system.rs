//! `renkei system`: platforms and linked systems of the registry.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Client, named, names, output};

#[derive(clap::Subcommand, Debug)]
pub enum SystemCommand {
    /// Every system the caller can see.
    List {
        /// Only the systems of this platform.
        #[arg(long)]
        platform: Option<Uuid>,
        /// Only the systems this organisation owns.
        #[arg(long)]
        owner: Option<Uuid>,
        /// pending_rules, active, suspended or retired.
        #[arg(long)]
        lifecycle: Option<String>,
    },
    /// One system.
    Show { id: Uuid },
    /// Register a platform (`--kind platform`) or a linked system on one.
    Register {
        #[arg(long)]
        name: String,
        /// platform or linked.
        #[arg(long, default_value = "linked")]
        kind: String,
        /// The owning organisation.
        #[arg(long)]
        owner: Uuid,
        /// The platform a linked system joins.
        #[arg(long)]
        platform: Option<Uuid>,
        /// 1 to 3.
        #[arg(long, short = 'c')]
        confidentiality: i64,
        /// 1 to 2.
        #[arg(long, short = 'i')]
        integrity: i64,
        /// 1 to 2.
        #[arg(long, short = 'a')]
        availability: i64,
        #[arg(long)]
        description: Option<String>,
    },
    /// Change a system's descriptive fields.
    Update {
        id: Uuid,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        confidentiality: Option<i64>,
        #[arg(long)]
        integrity: Option<i64>,
        #[arg(long)]
        availability: Option<i64>,
    },
}

const FIELDS: &[&str] = &[
    "id",
    "name",
    "kind",
    "owner_org_id",
    "platform_id",
    "confidentiality",
    "integrity",
    "availability",
    "lifecycle",
    "description",
    "created_at",
    "updated_at",
];

pub async fn run(client: &Client, command: SystemCommand) -> anyhow::Result<()> {
    match command {
        SystemCommand::List {
            platform,
            owner,
            lifecycle,
        } => {
            let mut query = Vec::new();
            if let Some(p) = platform {
                query.push(format!("platform_id={p}"));
            }
            if let Some(o) = owner {
                query.push(format!("owner_org_id={o}"));
            }
            if let Some(l) = lifecycle {
                query.push(format!("lifecycle={l}"));
            }
            let path = if query.is_empty() {
                "/v1/systems".to_owned()
            } else {
                format!("/v1/systems?{}", query.join("&"))
            };
            let items = client.list_all(&path).await?;
            if client.format() != output::Format::Table {
                output::show(client.format(), &Value::Array(items), |_| {});
                return Ok(());
            }
            let orgs = names(client, "/v1/organizations").await;
            let systems = names(client, "/v1/systems").await;
            let rows = items
                .iter()
                .map(|s| {
                    vec![
                        output::text(&s["name"]),
                        output::text(&s["kind"]),
                        named(&orgs, &s["owner_org_id"]),
                        named(&systems, &s["platform_id"]),
                        format!(
                            "{}/{}/{}",
                            s["confidentiality"], s["integrity"], s["availability"]
                        ),
                        output::text(&s["lifecycle"]),
                        output::text(&s["id"]),
                    ]
                })
                .collect();
            output::table(
                &[
                    "name",
                    "kind",
                    "owner",
                    "platform",
                    "C/I/A",
                    "lifecycle",
                    "id",
                ],
                rows,
            );
        }
        SystemCommand::Show { id } => {
            let system = client.get(&format!("/v1/systems/{id}")).await?;
            output::show(client.format(), &system, |s| output::record(s, FIELDS));
        }
        SystemCommand::Register {
            name,
            kind,
            owner,
            platform,
            confidentiality,
            integrity,
            availability,
            description,
        } => {
            let mut body = json!({
                "name": name, "kind": kind, "owner_org_id": owner,
                "confidentiality": confidentiality, "integrity": integrity,
                "availability": availability,
            });
            if let Some(p) = platform {
                body["platform_id"] = json!(p);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let system = client.post("/v1/systems", body).await?;
            output::show(client.format(), &system, |s| {
                output::line(&format!("registered system {}", output::text(&s["id"])));
                output::record(s, FIELDS);
            });
        }
        SystemCommand::Update {
            id,
            name,
            description,
            confidentiality,
            integrity,
            availability,
        } => {
            let mut body = Map::new();
            if let Some(v) = name {
                body.insert("name".into(), json!(v));
            }
            if let Some(v) = description {
                body.insert("description".into(), json!(v));
            }
            if let Some(v) = confidentiality {
                body.insert("confidentiality".into(), json!(v));
            }
            if let Some(v) = integrity {
                body.insert("integrity".into(), json!(v));
            }
            if let Some(v) = availability {
                body.insert("availability".into(), json!(v));
            }
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --name, --description, --confidentiality, \
                     --integrity or --availability"
                );
            }
            let system = client
                .patch(&format!("/v1/systems/{id}"), Value::Object(body))
                .await?;
            output::show(client.format(), &system, |s| output::record(s, FIELDS));
        }
    }
    Ok(())
}
