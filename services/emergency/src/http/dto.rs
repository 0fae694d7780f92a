//! Request and response bodies of the emergency API (snake_case JSON).
//! Request bodies refuse unknown fields: a server-controlled field (`id`,
//! `status`, `org_id`…) sent by a client is an error naming it.

use chrono::{DateTime, Utc};
use renkei_web::openapi::{one_of, one_of_or_null};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::report::ReportContent;
use crate::domain::{
    Category, MessageKind, PlaybookStep, ReportKind, Review, Status, TaskState, Tlp, Urgency,
};

// The closed vocabularies of request fields, for the OpenAPI document.
fn categories() -> Object {
    one_of(&Category::ALL, Category::as_str)
}
fn tlps() -> Object {
    one_of(&Tlp::ALL, Tlp::as_str)
}
fn tlps_or_null() -> Object {
    one_of_or_null(&Tlp::ALL, Tlp::as_str)
}
fn statuses() -> Object {
    one_of(&Status::ALL, Status::as_str)
}
fn task_states() -> Object {
    one_of(&TaskState::ALL, TaskState::as_str)
}
fn report_kinds() -> Object {
    one_of(&ReportKind::ALL, ReportKind::as_str)
}
fn message_kinds() -> Object {
    one_of(&MessageKind::ALL, MessageKind::as_str)
}
fn urgencies_or_null() -> Object {
    one_of_or_null(&Urgency::ALL, Urgency::as_str)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclareIncident {
    /// The linked system (or the platform itself) the incident is on.
    pub system_id: Uuid,
    /// `malware`, `unauthorized_access`, `data_leak`, `denial_of_service`,
    /// `outage` or `other`.
    #[schema(schema_with = categories)]
    pub category: String,
    /// 1 (highest) to 4.
    #[schema(minimum = 1, maximum = 4)]
    pub severity: i64,
    /// `clear`, `green`, `amber`, `amber+strict` or `red`.
    #[schema(schema_with = tlps)]
    pub tlp: String,
    #[schema(min_length = 1, max_length = 5000)]
    pub summary: String,
    pub detected_at: DateTime<Utc>,
}

/// One organisation the incident may spread to, with its alert's state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AffectedView {
    pub org_id: Uuid,
    pub org_name: String,
    pub system_ids: Vec<Uuid>,
    /// Paths from the incident's system (absent when the marking withholds them).
    pub paths: Option<Vec<Vec<Uuid>>>,
    pub hops: i32,
    /// Whether the latest assessment still finds it at risk.
    pub at_risk: bool,
    pub alerted_at: DateTime<Utc>,
    pub delivered: bool,
    pub delivered_at: Option<DateTime<Utc>>,
    pub acknowledged: bool,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The escalation step reached (0 before the first delivery).
    pub escalation_step: i32,
    /// Every step went by without an acknowledgement.
    pub unacknowledged: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentView {
    pub id: Uuid,
    pub platform_id: Uuid,
    pub system_id: Uuid,
    pub system_name: String,
    /// The declaring organisation (owner of the system).
    pub org_id: Uuid,
    pub category: String,
    pub severity: i32,
    pub tlp: String,
    /// Absent when the marking withholds it from the caller.
    pub summary: Option<String>,
    pub detected_at: DateTime<Utc>,
    pub declared_at: DateTime<Utc>,
    pub declared_by: String,
    pub status: String,
    pub status_changed_at: DateTime<Utc>,
    /// The initial report's deadline, while it is not filed.
    pub report_due_at: Option<DateTime<Utc>>,
    /// Seconds left until it (negative: overdue).
    pub report_due_in_secs: Option<i64>,
    pub report_escalated: bool,
    pub assessments: i32,
    /// A re-assessment of the spread is owed (the registry is asked).
    pub assessment_pending: bool,
    pub affected: Vec<AffectedView>,
    pub review: Option<Review>,
    /// What the caller's marking withholds (`summary`, `paths`, `others`).
    pub withheld: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentFilter {
    /// Only incidents in this status.
    pub status: Option<String>,
    pub platform_id: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `triaged`, `contained`, `recovered` or `closed`.
    #[schema(schema_with = statuses)]
    pub to: String,
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub org_id: Option<Uuid>,
    pub text: String,
    pub detail: serde_json::Value,
    pub trace_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    pub id: Uuid,
    pub incident_id: Uuid,
    pub position: i32,
    pub title: String,
    pub control: String,
    pub description: String,
    pub owner_org_id: Option<Uuid>,
    /// `matrix` (accountable), `matrix_responsible`, or `platform_operator`
    /// (the matrix names nobody for the control).
    pub owner_source: String,
    pub due_at: DateTime<Utc>,
    pub overdue: bool,
    pub state: String,
    pub reason: Option<String>,
    pub updated_by: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub escalated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskChange {
    /// `in_progress`, `done` or `not_applicable`.
    #[schema(schema_with = task_states)]
    pub state: String,
    /// Required for `not_applicable`.
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlaybook {
    #[schema(schema_with = categories)]
    pub category: String,
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(min_items = 1, max_items = 50)]
    pub steps: Vec<PlaybookStep>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlaybook {
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(min_items = 1, max_items = 50)]
    pub steps: Vec<PlaybookStep>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlaybookView {
    pub id: Uuid,
    pub platform_id: Uuid,
    pub category: String,
    pub title: String,
    pub steps: Vec<PlaybookStep>,
    pub version: i32,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReport {
    /// `initial`, `follow_up` or `final`.
    #[schema(schema_with = report_kinds)]
    pub kind: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditReport {
    #[schema(max_length = 20000)]
    pub what_happened: Option<String>,
    #[schema(max_length = 20000)]
    pub measures_taken: Option<String>,
    #[schema(max_length = 20000)]
    pub notes: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportView {
    pub id: Uuid,
    pub incident_id: Uuid,
    pub kind: String,
    /// `draft` or `filed`.
    pub state: String,
    pub content: ReportContent,
    pub org_id: Uuid,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub filed_at: Option<DateTime<Utc>>,
    pub filed_by: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// `update`, `request`, `instruction`, `advisory` or `assistance_request`.
    #[schema(schema_with = message_kinds)]
    pub kind: String,
    #[schema(min_length = 1, max_length = 10000)]
    pub text: String,
    /// No looser than the incident's marking; default the incident's.
    #[schema(schema_with = tlps_or_null)]
    pub tlp: Option<String>,
    /// `ordinary` or `emergency` (default).
    #[schema(schema_with = urgencies_or_null)]
    pub urgency: Option<String>,
    /// Default true.
    pub ack_required: Option<bool>,
    /// Default: every participant but the sender (an assistance request:
    /// the central body).
    pub to_org_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecipientView {
    pub org_id: Uuid,
    pub org_name: String,
    pub delivered: bool,
    pub delivered_at: Option<DateTime<Utc>>,
    pub acknowledged: bool,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub incident_id: Uuid,
    pub from_org_id: Uuid,
    pub author: String,
    pub kind: String,
    pub text: String,
    pub tlp: String,
    pub urgency: String,
    pub ack_required: bool,
    pub created_at: DateTime<Utc>,
    /// The NATS subject the incident's messages are published on.
    pub subject: String,
    pub recipients: Vec<RecipientView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueAdvisory {
    /// Absent: every platform (central body only).
    pub platform_id: Option<Uuid>,
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(min_length = 1, max_length = 20000)]
    pub text: String,
    #[schema(schema_with = tlps)]
    pub tlp: String,
    /// 1 (highest) to 4.
    #[schema(minimum = 1, maximum = 4)]
    pub severity: i64,
    /// Confirm having acted by then.
    pub act_by: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfirmationView {
    pub org_id: Uuid,
    pub org_name: String,
    pub delivered: bool,
    pub delivered_at: Option<DateTime<Utc>>,
    pub confirmed: bool,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Escalated for not confirming by `act_by`.
    pub escalated: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdvisoryView {
    pub id: Uuid,
    pub platform_id: Option<Uuid>,
    pub title: String,
    pub text: String,
    pub tlp: String,
    pub severity: i32,
    pub act_by: Option<DateTime<Utc>>,
    pub issued_by_org: Uuid,
    pub issued_by: String,
    pub created_at: DateTime<Utc>,
    pub confirmed: usize,
    pub organizations: usize,
    pub confirmations: Vec<ConfirmationView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportFilter {
    /// `draft` or `filed`.
    pub state: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}
