//! `renkei incident`: declare incidents, follow their spread, acknowledge
//! alerts, report to the central body.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Client, output};

#[derive(clap::Subcommand, Debug)]
pub enum IncidentCommand {
    /// Declare an incident on a system.
    Declare {
        #[arg(long)]
        system: Uuid,
        /// malware, unauthorized_access, data_leak, denial_of_service,
        /// outage or other.
        #[arg(long)]
        category: String,
        /// 1 (highest) to 4.
        #[arg(long)]
        severity: i64,
        /// clear, green, amber, amber+strict or red.
        #[arg(long)]
        tlp: String,
        #[arg(long)]
        summary: String,
        /// When it was detected (RFC 3339); default now.
        #[arg(long)]
        detected_at: Option<String>,
    },
    /// The incident: its status, report deadline and who it may spread to
    /// (with delivery and acknowledgement).
    Status { id: Uuid },
    /// Move the incident to its next status.
    Move {
        id: Uuid,
        /// triaged, contained, recovered or closed.
        #[arg(long)]
        to: String,
        #[arg(long)]
        reason: String,
    },
    /// The incidents the caller can see, newest first.
    List {
        /// declared, triaged, contained, recovered or closed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        platform: Option<Uuid>,
    },
    /// Every step of the incident, oldest first.
    Timeline { id: Uuid },
    /// The incident's tasks from its playbook.
    Tasks { id: Uuid },
    /// Acknowledge the spread alert sent to the caller's organisation.
    Acknowledge { id: Uuid },
    /// Write a report to the central body (a draft generated from the
    /// incident), and with --file file it.
    Report {
        id: Uuid,
        /// initial, follow_up or final.
        #[arg(long, default_value = "initial")]
        kind: String,
        /// File the report at once (sent to the central bodies).
        #[arg(long)]
        file: bool,
    },
}

fn incident_table(i: &Value) {
    output::record(
        i,
        &[
            "id",
            "status",
            "category",
            "severity",
            "tlp",
            "summary",
            "system_name",
            "system_id",
            "platform_id",
            "org_id",
            "declared_by",
            "declared_at",
            "report_due_at",
            "report_due_in_secs",
            "assessments",
            "assessment_pending",
            "withheld",
        ],
    );
    let rows: Vec<Vec<String>> = i["affected"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|a| {
                    vec![
                        output::text(&a["org_name"]),
                        output::text(&a["hops"]),
                        output::text(&a["at_risk"]),
                        output::text(&a["delivered"]),
                        output::text(&a["acknowledged"]),
                        output::text(&a["acknowledged_by"]),
                        output::text(&a["escalation_step"]),
                        output::text(&a["unacknowledged"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        output::line("affected: nobody else (so far)");
    } else {
        output::line("affected organisations:");
        output::table(
            &[
                "organisation",
                "hops",
                "at risk",
                "delivered",
                "acknowledged",
                "by",
                "step",
                "unacknowledged",
            ],
            rows,
        );
    }
}

/// The spread alert to the caller's organisation about this incident.
async fn alert_of(client: &Client, incident: Uuid) -> anyhow::Result<Value> {
    let subject = "emergency.incident.spread_risk";
    let items = client
        .list_all(&format!("/v1/notifications?subject={subject}"))
        .await?;
    let wanted = incident.to_string();
    items
        .into_iter()
        .find(|n| n["incident_id"].as_str() == Some(wanted.as_str()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no spread alert about incident {incident} was sent to your organisation \
                 (yet): only an organisation the incident may spread to acknowledges one"
            )
        })
}

pub async fn run(client: &Client, command: IncidentCommand) -> anyhow::Result<()> {
    match command {
        IncidentCommand::Declare {
            system,
            category,
            severity,
            tlp,
            summary,
            detected_at,
        } => {
            let detected_at = detected_at.unwrap_or_else(|| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            });
            let incident = client
                .post(
                    "/v1/incidents",
                    json!({"system_id": system, "category": category, "severity": severity,
                           "tlp": tlp, "summary": summary, "detected_at": detected_at}),
                )
                .await?;
            output::show(client.format(), &incident, |i| {
                output::line(&format!("declared incident {}", output::text(&i["id"])));
                incident_table(i);
            });
        }
        IncidentCommand::Status { id } => {
            let incident = client.get(&format!("/v1/incidents/{id}")).await?;
            output::show(client.format(), &incident, incident_table);
        }
        IncidentCommand::Move { id, to, reason } => {
            let incident = client
                .post(
                    &format!("/v1/incidents/{id}/status"),
                    json!({"to": to, "reason": reason}),
                )
                .await?;
            output::show(client.format(), &incident, |i| {
                output::line(&format!(
                    "incident {id} is now {}",
                    output::text(&i["status"])
                ));
            });
        }
        IncidentCommand::List { status, platform } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(format!("status={s}"));
            }
            if let Some(p) = platform {
                query.push(format!("platform_id={p}"));
            }
            let items = client
                .list_all(&format!("/v1/incidents?{}", query.join("&")))
                .await?;
            output::show(client.format(), &Value::Array(items.clone()), |_| {
                let rows = items
                    .iter()
                    .map(|i| {
                        vec![
                            output::when(&i["declared_at"]),
                            output::text(&i["status"]),
                            output::text(&i["severity"]),
                            output::text(&i["category"]),
                            output::text(&i["system_name"]),
                            output::text(&i["tlp"]),
                            i["affected"].as_array().map_or(0, Vec::len).to_string(),
                            output::text(&i["id"]),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "declared", "status", "sev", "category", "system", "tlp", "affected", "id",
                    ],
                    rows,
                );
            });
        }
        IncidentCommand::Timeline { id } => {
            let items = client
                .list_all(&format!("/v1/incidents/{id}/timeline"))
                .await?;
            output::show(client.format(), &Value::Array(items.clone()), |_| {
                let rows = items
                    .iter()
                    .map(|e| {
                        vec![
                            output::when(&e["at"]),
                            output::text(&e["kind"]),
                            output::text(&e["actor"]),
                            output::text(&e["text"]),
                        ]
                    })
                    .collect();
                output::table(&["at", "kind", "actor", "what"], rows);
            });
        }
        IncidentCommand::Tasks { id } => {
            let items = client
                .list_all(&format!("/v1/incidents/{id}/tasks"))
                .await?;
            output::show(client.format(), &Value::Array(items.clone()), |_| {
                if items.is_empty() {
                    output::line("no tasks (no playbook for this category on the platform)");
                    return;
                }
                let rows = items
                    .iter()
                    .map(|t| {
                        vec![
                            output::text(&t["position"]),
                            output::text(&t["title"]),
                            output::text(&t["control"]),
                            output::text(&t["owner_org_id"]),
                            output::text(&t["state"]),
                            output::when(&t["due_at"]),
                            output::text(&t["overdue"]),
                            output::text(&t["id"]),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "#", "task", "control", "owner", "state", "due", "overdue", "id",
                    ],
                    rows,
                );
            });
        }
        IncidentCommand::Acknowledge { id } => {
            let alert = alert_of(client, id).await?;
            let nid = output::text(&alert["id"]);
            let status = client
                .post(&format!("/v1/notifications/{nid}/ack"), json!({}))
                .await?;
            output::show(client.format(), &status, |s| {
                output::line(&format!(
                    "acknowledged the alert about incident {id} for organisation {} ({})",
                    output::text(&s["org_id"]),
                    output::text(&s["state"]),
                ));
            });
        }
        IncidentCommand::Report { id, kind, file } => {
            let mut report = client
                .post(
                    &format!("/v1/incidents/{id}/reports"),
                    json!({"kind": kind}),
                )
                .await?;
            if file {
                let rid = output::text(&report["id"]);
                report = client
                    .post(&format!("/v1/reports/{rid}/file"), json!({}))
                    .await?;
            }
            output::show(client.format(), &report, |r| {
                output::line(&format!(
                    "{} report {} is {}",
                    output::text(&r["kind"]),
                    output::text(&r["id"]),
                    output::text(&r["state"]),
                ));
                output::record(
                    r,
                    &[
                        "id",
                        "incident_id",
                        "kind",
                        "state",
                        "created_by",
                        "created_at",
                        "filed_by",
                        "filed_at",
                    ],
                );
            });
        }
    }
    Ok(())
}
