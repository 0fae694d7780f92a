//! Events of the emergency service that other services act on. The
//! contacts service turns each into messages to people; an organisation's
//! own tooling may follow them too.
//!
//! Severity travels as a word (`critical`, `high`, `medium`, `low` for
//! severities 1–4) so that messages read without a legend.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Event;
use crate::subjects;

/// An organisation an incident may spread to, and through which of its systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtRisk {
    pub organization_id: Uuid,
    /// Its systems the incident can reach.
    pub system_ids: Vec<Uuid>,
    /// The fewest links between the incident's system and one of them.
    pub hops: u32,
    /// For each of `system_ids`, the systems from the incident's system to
    /// it (both included). Empty when the marking (TLP `red`) withholds it.
    #[serde(default)]
    pub paths: Vec<Vec<Uuid>>,
}

/// The spread assessment of an incident: who must be alerted now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSpreadRisk {
    pub incident_id: Uuid,
    pub platform_id: Uuid,
    /// The system the incident was declared on, and its owner.
    pub system_id: Uuid,
    pub organization_id: Uuid,
    pub title: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    pub category: String,
    /// Traffic Light Protocol marking of what may be shared.
    pub tlp: String,
    /// The organisations newly at risk (those alerted by an earlier
    /// assessment are not repeated).
    pub at_risk: Vec<AtRisk>,
    /// Organisations told for coordination, not because they are at risk:
    /// the platform operator and the central bodies (on the first
    /// assessment).
    #[serde(default)]
    pub informed: Vec<Uuid>,
    /// 1 for the declaration's assessment, then one more per re-assessment.
    #[serde(default)]
    pub assessment: u32,
}
impl Event for IncidentSpreadRisk {
    const SUBJECT: &'static str = subjects::EMERGENCY_INCIDENT_SPREAD_RISK;
}

/// An incident moved on (contained, recovered, closed…); the organisations
/// involved are told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentStatusChanged {
    pub incident_id: Uuid,
    pub platform_id: Uuid,
    pub title: String,
    pub severity: String,
    pub from: String,
    pub to: String,
    /// Organisations to tell (the incident's owner and those at risk).
    pub notify: Vec<Uuid>,
    /// The incident's marking (messages carry no detail under `red`).
    #[serde(default)]
    pub tlp: String,
}
impl Event for IncidentStatusChanged {
    const SUBJECT: &'static str = subjects::EMERGENCY_INCIDENT_STATUS_CHANGED;
}

/// A coordination message between an incident's participants. Published
/// on the incident's own subject ([`subjects::incident_messages`]), so that
/// an organisation's tooling can follow one incident; its type is
/// `emergency.message.posted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePosted {
    pub message_id: Uuid,
    pub incident_id: Uuid,
    pub platform_id: Uuid,
    pub incident_title: String,
    /// `update`, `request`, `instruction`, `advisory`, `assistance_request`.
    pub kind: String,
    pub text: String,
    pub tlp: String,
    /// `ordinary` or `emergency`: which path of each organisation is used.
    pub urgency: String,
    /// Whether each organisation must acknowledge (else it is told once,
    /// without escalation).
    pub ack_required: bool,
    pub from_organization_id: Uuid,
    /// The addressed organisations.
    pub to: Vec<Uuid>,
}
impl Event for MessagePosted {
    const SUBJECT: &'static str = subjects::EMERGENCY_MESSAGE_POSTED;
}

/// An advisory (a vulnerability warning, say) to every organisation of a
/// platform or of all platforms; each confirms through its ordinary contacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisoryIssued {
    pub advisory_id: Uuid,
    /// `None`: every platform.
    pub platform_id: Option<Uuid>,
    pub title: String,
    pub text: String,
    pub tlp: String,
    pub severity: String,
    /// Confirm having acted by then.
    pub act_by: Option<DateTime<Utc>>,
    pub issued_by: Uuid,
    pub organizations: Vec<Uuid>,
}
impl Event for AdvisoryIssued {
    const SUBJECT: &'static str = subjects::EMERGENCY_ADVISORY_ISSUED;
}

/// What an escalation raised by the emergency service is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "about", rename_all = "snake_case")]
pub enum Overdue {
    /// An organisation has not confirmed an advisory by its date.
    Advisory {
        advisory_id: Uuid,
        title: String,
        act_by: DateTime<Utc>,
    },
    /// A playbook task passed its due time unfinished.
    Task {
        task_id: Uuid,
        incident_id: Uuid,
        incident_title: String,
        task_title: String,
        control: String,
        due_at: DateTime<Utc>,
    },
    /// The initial report to the central body was not filed in time.
    Report {
        incident_id: Uuid,
        incident_title: String,
        kind: String,
        due_at: DateTime<Utc>,
    },
}

/// Something owed passed its deadline: the organisation is escalated to,
/// first to `to_role` (a contact role such as `ciso`) when it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineMissed {
    /// Stable per deadline (one escalation each): `task/<id>`,
    /// `report/<incident id>/initial`, `advisory/<id>/<org>`.
    pub topic: String,
    pub platform_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub to_role: Option<String>,
    pub overdue: Overdue,
}
impl Event for DeadlineMissed {
    const SUBJECT: &'static str = subjects::EMERGENCY_DEADLINE_MISSED;
}

/// A report on an incident was filed with the central body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportFiled {
    pub report_id: Uuid,
    pub incident_id: Uuid,
    pub platform_id: Uuid,
    pub incident_title: String,
    /// `initial`, `follow_up` or `final`.
    pub kind: String,
    pub tlp: String,
    pub filed_by: Uuid,
    /// The central bodies to tell.
    pub notify: Vec<Uuid>,
}
impl Event for ReportFiled {
    const SUBJECT: &'static str = subjects::EMERGENCY_REPORT_FILED;
}

/// Severity 1 (highest) to 4 as the word events carry.
pub fn severity_word(severity: u8) -> &'static str {
    match severity {
        1 => "critical",
        2 => "high",
        3 => "medium",
        _ => "low",
    }
}
