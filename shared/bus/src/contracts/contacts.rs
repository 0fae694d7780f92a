//! Events of the contacts service: what happened to a notification, per
//! organisation (the emergency timeline and dashboards follow them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Event;
use crate::subjects;

/// What a notification was about, on every contacts event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRef {
    pub notification_id: Uuid,
    /// The event subject that caused it (`emergency.incident.spread_risk`…).
    pub subject: String,
    /// What it is about, one notification per topic and organisation
    /// (`incident/<id>/spread_risk`, `rules/<id>/proposed`, `drill/<id>/<run>`).
    pub topic: String,
    pub platform_id: Option<Uuid>,
    /// The incident, when it is about one.
    pub incident_id: Option<Uuid>,
    pub organization_id: Uuid,
}

/// A message reached one of the organisation's contacts (the first in each
/// escalation step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationDelivered {
    #[serde(flatten)]
    pub about: NotificationRef,
    pub delivery_id: Uuid,
    pub contact_id: Uuid,
    /// `webhook`, `email`…
    pub channel: String,
    /// 1-based escalation step.
    pub step: u32,
    pub delivered_at: DateTime<Utc>,
}
impl Event for NotificationDelivered {
    const SUBJECT: &'static str = subjects::CONTACTS_NOTIFICATION_DELIVERED;
}

/// Someone of the organisation acknowledged; its escalation stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationAcknowledged {
    #[serde(flatten)]
    pub about: NotificationRef,
    /// A token subject, or `contact:<id>` for a link in a message.
    pub acknowledged_by: String,
    /// `api` or `link`.
    pub via: String,
    pub acknowledged_at: DateTime<Utc>,
    /// 1-based escalation step it was acknowledged in.
    pub step: u32,
    /// From the notification's creation to the acknowledgement.
    pub latency_ms: i64,
}
impl Event for NotificationAcknowledged {
    const SUBJECT: &'static str = subjects::CONTACTS_NOTIFICATION_ACKNOWLEDGED;
}

/// Nobody acknowledged in time (or nobody could be reached): the next step's
/// targets are being told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationEscalated {
    #[serde(flatten)]
    pub about: NotificationRef,
    /// 1-based step entered, and how many times the policy has repeated.
    pub step: u32,
    pub round: u32,
    /// `timeout`, `delivery_failed` or `no_recipients`.
    pub reason: String,
}
impl Event for NotificationEscalated {
    const SUBJECT: &'static str = subjects::CONTACTS_NOTIFICATION_ESCALATED;
}

/// Every step and repeat went by without an acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationExhausted {
    #[serde(flatten)]
    pub about: NotificationRef,
    /// Whether any message reached the organisation at all.
    pub delivered: bool,
}
impl Event for NotificationExhausted {
    const SUBJECT: &'static str = subjects::CONTACTS_NOTIFICATION_EXHAUSTED;
}

/// The platform operator started a contact drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillStarted {
    pub drill_id: Uuid,
    pub platform_id: Uuid,
    pub run: u32,
    pub notification_id: Uuid,
    pub organizations: Vec<Uuid>,
}
impl Event for DrillStarted {
    const SUBJECT: &'static str = subjects::CONTACTS_DRILL_STARTED;
}
