//! The parts of the API's answers the pages show. Unknown fields are
//! ignored: the console reads the public API as any client does.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct System {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub owner_org_id: Uuid,
    pub platform_id: Uuid,
    pub lifecycle: String,
    pub confidentiality: i16,
    pub integrity: i16,
    pub availability: i16,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    pub from_system_id: Uuid,
    pub to_system_id: Uuid,
    pub kind: String,
    pub propagates: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    pub system_id: Uuid,
    pub hops: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BlastRadius {
    pub affected: Vec<Affected>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cooperation {
    pub ordinary: String,
    pub emergency: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RulesVersion {
    pub id: Uuid,
    pub version: u32,
    pub state: String,
    pub title: String,
    pub rules: Vec<Rule>,
    pub cooperation: Cooperation,
    pub emergency_measures: Vec<String>,
    pub respond_by: Option<DateTime<Utc>>,
    pub in_force_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Party {
    pub organization_id: Uuid,
    pub position: String,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Consensus {
    pub state: String,
    pub respond_by: Option<DateTime<Utc>>,
    pub required: Vec<Uuid>,
    pub accepted: Vec<Uuid>,
    pub objected: Vec<Uuid>,
    pub pending: Vec<Uuid>,
    pub parties: Vec<Party>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Control {
    pub id: String,
    pub area: String,
    pub title_ja: String,
    pub title_en: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Assignment {
    pub control: String,
    pub system_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub role: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Matrix {
    pub version: Option<u32>,
    pub controls: Option<Vec<String>>,
    pub assignments: Vec<Assignment>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Gap {
    pub control: String,
    pub system_id: Uuid,
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Gaps {
    pub complete: bool,
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub kind: String,
    pub url: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub availability: String,
    pub language: String,
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Target {
    pub kind: String,
    pub role: Option<String>,
    pub contact_id: Option<Uuid>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub targets: Vec<Target>,
    pub wait_seconds: u32,
}

impl Step {
    /// The wait as people read it.
    pub fn wait(&self) -> String {
        crate::pages::incidents::duration(i64::from(self.wait_seconds))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Policy {
    pub steps: Vec<Step>,
    pub repeat: u32,
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DrillOutcome {
    pub org_id: Uuid,
    pub state: String,
    pub seconds_to_acknowledge: Option<f64>,
    pub step: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DrillRun {
    pub run: u32,
    pub started_at: DateTime<Utc>,
    pub organizations: Vec<DrillOutcome>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Drill {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub report: Option<Vec<DrillRun>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AffectedOrg {
    pub org_id: Uuid,
    pub org_name: String,
    pub hops: i32,
    pub at_risk: bool,
    pub delivered: bool,
    pub acknowledged: bool,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub escalation_step: i32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Incident {
    pub id: Uuid,
    pub platform_id: Uuid,
    pub system_name: String,
    pub org_id: Uuid,
    pub category: String,
    pub severity: i32,
    pub tlp: String,
    pub summary: Option<String>,
    pub detected_at: DateTime<Utc>,
    pub declared_at: DateTime<Utc>,
    pub declared_by: String,
    pub status: String,
    pub report_due_at: Option<DateTime<Utc>>,
    pub assessment_pending: bool,
    pub affected: Vec<AffectedOrg>,
}

impl Incident {
    pub fn acknowledged_count(&self) -> usize {
        self.affected.iter().filter(|a| a.acknowledged).count()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    pub title: String,
    pub owner_org_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    pub overdue: bool,
    pub state: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    pub id: Uuid,
    pub incident_id: Option<Uuid>,
    pub state: String,
}
