//! `renkei rules`: common rules versions and their consensus.

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Client, named, names, output};

#[derive(clap::Subcommand, Debug)]
pub enum RulesCommand {
    /// Draft a rules version for a platform from a YAML or JSON file
    /// (`{title, rules: [{id, title, text, controls}], cooperation,
    /// emergency_measures, matrix_version}`).
    Draft {
        #[arg(long)]
        platform: Uuid,
        #[arg(long)]
        file: PathBuf,
    },
    /// The rules versions of a platform.
    List {
        #[arg(long)]
        platform: Uuid,
    },
    /// One rules version.
    Show { id: Uuid },
    /// Propose a draft to every linked-system owner of the platform.
    Propose {
        id: Uuid,
        /// Response deadline (RFC 3339); default 14 days from now.
        #[arg(long)]
        respond_by: Option<String>,
    },
    /// The consensus board: accepted, objected and silent organisations,
    /// and the deadline.
    Status { id: Uuid },
    /// Accept a proposed version for the caller's organisation.
    Accept { id: Uuid },
    /// Object to a proposed version for the caller's organisation.
    Object {
        id: Uuid,
        #[arg(long)]
        reason: String,
        /// An objection to one rule, `RULE_ID=reason` (repeatable).
        #[arg(long = "rule")]
        rules: Vec<String>,
    },
    /// Withdraw the caller's organisation's objection.
    WithdrawObjection { id: Uuid },
}

/// A file's content as JSON: YAML for .yaml/.yml, JSON otherwise.
pub fn read_document(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ext == "yaml" || ext == "yml" {
        serde_yaml_ng::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    } else {
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}:{}: not valid JSON: {e}", path.display(), e.line()))
    }
}

fn version_table(v: &Value) {
    output::record(
        v,
        &[
            "id",
            "platform_id",
            "version",
            "state",
            "title",
            "matrix_version",
            "proposed_at",
            "respond_by",
            "in_force_at",
        ],
    );
    let rows = v["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    vec![
                        output::text(&r["id"]),
                        output::text(&r["title"]),
                        output::text(&r["controls"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    output::table(&["rule", "title", "controls"], rows);
}

async fn decide(client: &Client, id: Uuid, body: Value) -> anyhow::Result<()> {
    let decision = client
        .post(&format!("/v1/rules/{id}/decisions"), body)
        .await?;
    if client.json {
        output::json(&decision);
        return Ok(());
    }
    let position = match decision["position"].as_str() {
        Some("pending") => "silent",
        Some(p) => p,
        None => "recorded",
    };
    output::line(&format!(
        "organisation {} is now {position} on rules version {id}",
        output::text(&decision["organization_id"])
    ));
    let consensus = client.get(&format!("/v1/rules/{id}/consensus")).await?;
    output::line(&format!(
        "rules version {id} is now {}",
        output::text(&consensus["state"])
    ));
    Ok(())
}

pub async fn run(client: &Client, command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Draft { platform, file } => {
            let body = read_document(&file)?;
            if !body.is_object() {
                anyhow::bail!(
                    "{}: a rules file is one object with `rules: [...]`",
                    file.display()
                );
            }
            let version = client
                .post(&format!("/v1/platforms/{platform}/rules"), body)
                .await?;
            output::show(client.format(), &version, |v| {
                output::line(&format!(
                    "drafted rules version {} (version {})",
                    output::text(&v["id"]),
                    output::text(&v["version"])
                ));
                version_table(v);
            });
        }
        RulesCommand::List { platform } => {
            let items = client
                .list_all(&format!("/v1/platforms/{platform}/rules"))
                .await?;
            output::show(client.format(), &Value::Array(items.clone()), |_| {
                let rows = items
                    .iter()
                    .map(|v| {
                        vec![
                            output::text(&v["version"]),
                            output::text(&v["state"]),
                            output::text(&v["title"]),
                            output::when(&v["respond_by"]),
                            output::text(&v["id"]),
                        ]
                    })
                    .collect();
                output::table(&["version", "state", "title", "respond by", "id"], rows);
            });
        }
        RulesCommand::Show { id } => {
            let v = client.get(&format!("/v1/rules/{id}")).await?;
            output::show(client.format(), &v, version_table);
        }
        RulesCommand::Propose { id, respond_by } => {
            let body = match respond_by {
                Some(at) => json!({"respond_by": at}),
                None => json!({}),
            };
            let v = client
                .post(&format!("/v1/rules/{id}/propose"), body)
                .await?;
            output::show(client.format(), &v, |v| {
                output::line(&format!(
                    "proposed rules version {id}: answers due by {}",
                    output::when(&v["respond_by"])
                ));
            });
        }
        RulesCommand::Status { id } => {
            let c = client.get(&format!("/v1/rules/{id}/consensus")).await?;
            if client.json {
                output::json(&c);
                return Ok(());
            }
            let orgs = names(client, "/v1/organizations").await;
            let count = |k: &str| c[k].as_array().map_or(0, Vec::len);
            output::line(&format!(
                "rules version {} ({}): {}; deadline {}",
                output::text(&c["version"]),
                output::text(&c["version_id"]),
                output::text(&c["state"]),
                output::when(&c["respond_by"]),
            ));
            output::line(&format!(
                "{} required: {} accepted, {} objected, {} silent",
                count("required"),
                count("accepted"),
                count("objected"),
                count("pending"),
            ));
            let rows = c["parties"]
                .as_array()
                .map(|parties| {
                    parties
                        .iter()
                        .map(|p| {
                            let position = match p["position"].as_str() {
                                Some("pending") => "silent".to_owned(),
                                _ => output::text(&p["position"]),
                            };
                            vec![
                                named(&orgs, &p["organization_id"]),
                                position,
                                output::text(&p["decided_by"]),
                                output::when(&p["decided_at"]),
                                output::text(&p["reason"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            output::table(
                &["organisation", "position", "decided by", "at", "reason"],
                rows,
            );
        }
        RulesCommand::Accept { id } => decide(client, id, json!({"decision": "accept"})).await?,
        RulesCommand::Object { id, reason, rules } => {
            let rules = rules
                .iter()
                .map(|r| match r.split_once('=') {
                    Some((rule, why)) => Ok(json!({"rule_id": rule.trim(), "reason": why.trim()})),
                    None => Err(anyhow::anyhow!("--rule `{r}`: give RULE_ID=reason")),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            decide(
                client,
                id,
                json!({"decision": "object", "reason": reason, "rules": rules}),
            )
            .await?;
        }
        RulesCommand::WithdrawObjection { id } => {
            decide(client, id, json!({"decision": "withdraw_objection"})).await?;
        }
    }
    Ok(())
}
