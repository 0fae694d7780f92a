//! `renkei drill`: contact drills (a test notice through every linked
//! organisation's real escalation path).

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Client, output};

#[derive(clap::Subcommand, Debug)]
pub enum DrillCommand {
    /// Start a drill on a platform (its operator), once or on a schedule.
    Start {
        #[arg(long)]
        platform: Uuid,
        /// Repeat every N hours (1–8760); once when left out.
        #[arg(long)]
        every_hours: Option<u32>,
    },
    /// The drills of the platforms the caller operates.
    List,
    /// One drill and the report of its last runs.
    Show { id: Uuid },
    /// Stop a drill's schedule (its reports stay).
    Stop { id: Uuid },
}

fn row(d: &Value) -> Vec<String> {
    vec![
        output::text(&d["id"]),
        output::text(&d["platform_id"]),
        output::text(&d["repeat_every_hours"]),
        output::text(&d["runs"]),
        output::when(&d["next_run_at"]),
        output::when(&d["created_at"]),
    ]
}

const HEADERS: &[&str] = &["id", "platform", "every (h)", "runs", "next run", "started"];

pub async fn run(client: &Client, command: DrillCommand) -> anyhow::Result<()> {
    match command {
        DrillCommand::Start {
            platform,
            every_hours,
        } => {
            let mut body = json!({"platform_id": platform});
            if let Some(h) = every_hours {
                body["repeat_every_hours"] = json!(h);
            }
            let drill = client.post("/v1/drills", body).await?;
            output::show(client.format(), &drill, |d| {
                output::line(&format!("started drill {}", output::text(&d["id"])));
                output::table(HEADERS, vec![row(d)]);
            });
        }
        DrillCommand::List => {
            let items = client.list_all("/v1/drills").await?;
            output::show(client.format(), &Value::Array(items.clone()), |_| {
                output::table(HEADERS, items.iter().map(row).collect());
            });
        }
        DrillCommand::Show { id } => {
            let drill = client.get(&format!("/v1/drills/{id}")).await?;
            output::show(client.format(), &drill, |d| {
                output::table(HEADERS, vec![row(d)]);
                if let Some(report) = d["report"].as_array() {
                    output::line("last runs (newest first):");
                    output::json(&Value::Array(report.clone()));
                }
            });
        }
        DrillCommand::Stop { id } => {
            let drill = client.delete(&format!("/v1/drills/{id}")).await?;
            output::show(client.format(), &drill, |_| {
                output::line(&format!("stopped drill {id}"));
            });
        }
    }
    Ok(())
}
