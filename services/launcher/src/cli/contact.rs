//! `renkei contact`: the contacts directory.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Client, output};

#[derive(clap::Subcommand, Debug)]
pub enum ContactCommand {
    /// The contacts of an organisation (or all the caller may see).
    List {
        #[arg(long)]
        org: Option<Uuid>,
        #[arg(long)]
        system: Option<Uuid>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Add a contact reached by webhook or email.
    #[command(group(clap::ArgGroup::new("channel").required(true).multiple(true).args(["webhook", "email"])))]
    Add {
        #[arg(long)]
        org: Uuid,
        /// Only for this system of the organisation.
        #[arg(long)]
        system: Option<Uuid>,
        #[arg(long)]
        name: String,
        /// ciso, csirt, system_manager, operator_on_duty or liaison.
        #[arg(long)]
        role: String,
        /// ordinary, emergency or both.
        #[arg(long)]
        availability: String,
        /// A webhook URL (needs --secret).
        #[arg(long)]
        webhook: Option<String>,
        /// The webhook's signing secret (at least 8 characters).
        #[arg(
            long,
            requires = "webhook",
            env = "RENKEI_WEBHOOK_SECRET",
            hide_env_values = true
        )]
        secret: Option<String>,
        /// An email address.
        #[arg(long)]
        email: Option<String>,
        /// IANA time zone (default Asia/Tokyo).
        #[arg(long)]
        time_zone: Option<String>,
        /// ja or en.
        #[arg(long)]
        language: Option<String>,
    },
    /// Remove a contact.
    Remove { id: Uuid },
}

fn channels(c: &Value) -> String {
    c["channels"]
        .as_array()
        .map(|chs| {
            chs.iter()
                .map(|ch| {
                    let at = ch["url"].as_str().or(ch["address"].as_str()).unwrap_or("");
                    format!("{}:{at}", output::text(&ch["kind"]))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

pub async fn run(client: &Client, command: ContactCommand) -> anyhow::Result<()> {
    match command {
        ContactCommand::List { org, system, role } => {
            let mut query = Vec::new();
            if let Some(o) = org {
                query.push(format!("org_id={o}"));
            }
            if let Some(s) = system {
                query.push(format!("system_id={s}"));
            }
            if let Some(r) = role {
                query.push(format!("role={r}"));
            }
            let path = format!("/v1/contacts?{}", query.join("&"));
            let items = client.list_all(&path).await?;
            output::show(client.format(), &Value::Array(items.clone()), |_| {
                let rows = items
                    .iter()
                    .map(|c| {
                        vec![
                            output::text(&c["name"]),
                            output::text(&c["role"]),
                            output::text(&c["availability"]),
                            channels(c),
                            output::text(&c["id"]),
                        ]
                    })
                    .collect();
                output::table(&["name", "role", "availability", "channels", "id"], rows);
            });
        }
        ContactCommand::Add {
            org,
            system,
            name,
            role,
            availability,
            webhook,
            secret,
            email,
            time_zone,
            language,
        } => {
            let mut chs = Vec::new();
            if let Some(url) = webhook {
                chs.push(json!({"kind": "webhook", "url": url, "secret": secret}));
            }
            if let Some(address) = email {
                chs.push(json!({"kind": "email", "address": address}));
            }
            let mut body = json!({"org_id": org, "name": name, "role": role,
                                  "availability": availability, "channels": chs});
            if let Some(s) = system {
                body["system_id"] = json!(s);
            }
            if let Some(tz) = time_zone {
                body["time_zone"] = json!(tz);
            }
            if let Some(l) = language {
                body["language"] = json!(l);
            }
            let contact = client.post("/v1/contacts", body).await?;
            output::show(client.format(), &contact, |c| {
                output::line(&format!("added contact {}", output::text(&c["id"])));
                output::record(
                    c,
                    &[
                        "id",
                        "org_id",
                        "system_id",
                        "name",
                        "role",
                        "availability",
                        "time_zone",
                        "language",
                    ],
                );
                output::line(&format!("channels: {}", channels(c)));
            });
        }
        ContactCommand::Remove { id } => {
            client.delete(&format!("/v1/contacts/{id}")).await?;
            if client.json {
                output::json(&json!({"removed": id}));
            } else {
                output::line(&format!("removed contact {id}"));
            }
        }
    }
    Ok(())
}
