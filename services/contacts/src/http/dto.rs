//! Request and response bodies of the contacts API.

use chrono::{DateTime, Utc};
use renkei_web::openapi::{one_of, one_of_or_null};
use serde::{Deserialize, Serialize};
use std::convert::identity;
use utoipa::ToSchema;
use utoipa::openapi::schema::Object;
use uuid::Uuid;

use crate::domain::{Availability, ContactRole, Language};

// The closed vocabularies of request fields, for the OpenAPI document.
fn channel_kinds() -> Object {
    one_of(&["webhook", "email"], identity)
}
fn target_kinds() -> Object {
    one_of(&["role", "contact", "available"], identity)
}
fn contact_roles() -> Object {
    one_of(&ContactRole::ALL, ContactRole::as_str)
}
fn contact_roles_or_null() -> Object {
    one_of_or_null(&ContactRole::ALL, ContactRole::as_str)
}
fn availabilities() -> Object {
    one_of(&Availability::ALL, Availability::as_str)
}
fn availabilities_or_null() -> Object {
    one_of_or_null(&Availability::ALL, Availability::as_str)
}
fn languages_or_null() -> Object {
    one_of_or_null(&[Language::Ja, Language::En], Language::as_str)
}

/// One channel as a client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelBody {
    /// `webhook` or `email`.
    #[schema(schema_with = channel_kinds)]
    pub kind: String,
    /// Webhook: where to POST.
    pub url: Option<String>,
    /// Webhook: the HMAC-SHA256 key receivers verify signatures with (at
    /// least 8 characters; never returned). On PATCH, leave it out to keep
    /// the secret of the same URL.
    pub secret: Option<String>,
    /// Email: the address.
    pub address: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContact {
    pub org_id: Uuid,
    /// The one system the contact is for; leave out for the whole organisation.
    pub system_id: Option<Uuid>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// `ciso`, `csirt`, `system_manager`, `operator_on_duty` or `liaison`.
    #[schema(schema_with = contact_roles)]
    pub role: String,
    /// `ordinary` (business hours), `emergency` (any time) or `both`.
    #[schema(schema_with = availabilities)]
    pub availability: String,
    #[schema(min_items = 1, max_items = 8)]
    pub channels: Vec<ChannelBody>,
    /// IANA zone of the contact's business hours (default `Asia/Tokyo`).
    pub time_zone: Option<String>,
    /// `ja` (default) or `en`: the language of their messages.
    #[schema(schema_with = languages_or_null)]
    pub language: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContact {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(schema_with = contact_roles_or_null)]
    pub role: Option<String>,
    #[schema(schema_with = availabilities_or_null)]
    pub availability: Option<String>,
    pub channels: Option<Vec<ChannelBody>>,
    pub time_zone: Option<String>,
    #[schema(schema_with = languages_or_null)]
    pub language: Option<String>,
    /// A system id, or `null` for the whole organisation.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub system_id: Option<Option<Uuid>>,
}

/// Tells "absent" from "null" in a PATCH body.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A channel as the API shows it: never the secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Whether a signing secret is kept (webhooks).
    pub secret_set: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContactView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub system_id: Option<Uuid>,
    pub name: String,
    pub role: String,
    pub availability: String,
    pub time_zone: String,
    pub language: String,
    pub channels: Vec<ChannelView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    /// `role`, `contact` or `available` (every contact reachable under the
    /// notification's condition: the emergency contacts in an emergency).
    #[schema(schema_with = target_kinds)]
    pub kind: String,
    #[schema(schema_with = contact_roles_or_null)]
    pub role: Option<String>,
    pub contact_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    #[schema(min_items = 1, max_items = 20)]
    pub targets: Vec<TargetBody>,
    /// Seconds to wait for an acknowledgement before the next step.
    #[schema(minimum = 1, maximum = 604800)]
    pub wait_seconds: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicy {
    #[schema(min_items = 1, max_items = 10)]
    pub steps: Vec<StepBody>,
    /// How many times the whole policy runs again after its last step.
    #[serde(default)]
    #[schema(maximum = 10)]
    pub repeat: u32,
    /// A policy for one system of the organisation; leave out for all.
    pub system_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub org_id: Uuid,
    pub system_id: Option<Uuid>,
    pub steps: Vec<StepBody>,
    pub repeat: u32,
    /// True when the organisation has defined none: its emergency contacts,
    /// then its CISO.
    pub default: bool,
    pub updated_by: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    pub from: Uuid,
    pub to: Uuid,
    /// What passes along it ("incident reports"…).
    pub what: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCooperationMap {
    pub ordinary: Vec<LineBody>,
    pub emergency: Vec<LineBody>,
    /// The version the change is based on; a stale one gets a 409.
    pub base_version: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CooperationMapView {
    pub platform_id: Uuid,
    /// 0 for the default map (none saved).
    pub version: u32,
    /// `saved` or `default`.
    pub source: String,
    pub ordinary: Vec<LineBody>,
    pub emergency: Vec<LineBody>,
    /// Names of the organisations on the map.
    pub organizations: std::collections::BTreeMap<Uuid, String>,
    pub updated_by: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// One organisation of a notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrganizationStatus {
    pub org_id: Uuid,
    /// `notifying`, `delivered`, `acknowledged`, `unacknowledged`, or
    /// `informed` (told; no acknowledgement was asked).
    pub state: String,
    pub delivered: bool,
    pub delivered_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// `api` or `link`.
    pub acknowledged_via: Option<String>,
    /// 1-based escalation step, and repeats of the policy so far.
    pub step: u32,
    pub round: u32,
    /// When the next step starts unless someone acknowledges.
    pub next_escalation_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    pub subject: String,
    pub topic: String,
    /// `ordinary` or `emergency`.
    pub condition: String,
    /// `open`, `acknowledged`, `unacknowledged`, or `informed` (every
    /// organisation told; none was asked to acknowledge).
    pub state: String,
    pub title_ja: String,
    pub title_en: String,
    pub platform_id: Option<Uuid>,
    pub incident_id: Option<Uuid>,
    pub drill_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub organizations: Vec<OrganizationStatus>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub attempted_at: DateTime<Utc>,
    pub ok: bool,
    pub detail: String,
    pub duration_ms: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub contact_id: Uuid,
    pub contact_name: String,
    pub channel: String,
    pub address: String,
    pub step: u32,
    pub round: u32,
    /// `pending`, `sending`, `delivered`, `failed` or `cancelled`.
    pub state: String,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// The organisation acknowledging; defaults to the caller's.
    pub org_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDrill {
    pub platform_id: Uuid,
    /// Run again every this many hours (1 to 8760); leave out to run once.
    #[schema(minimum = 1, maximum = 8760)]
    pub repeat_every_hours: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DrillView {
    pub id: Uuid,
    pub platform_id: Uuid,
    pub started_by: String,
    pub repeat_every_hours: Option<u32>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub runs: u32,
    pub last_notification_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Every run, newest first (on `GET /v1/drills/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub report: Option<Vec<crate::drills::RunReport>>,
}
